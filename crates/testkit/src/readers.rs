//! Files read back with the standard tools, proving they open them: the packets as tshark or
//! tcpdump re-write them (classic pcap on stdout, parsed here), and tshark's fields. A missing
//! tool fails the test (CI installs them, `.ci/run`).

use std::path::Path;
use std::process::Command;

/// One packet as a reader wrote it back.
#[derive(Debug, Clone)]
pub struct ReadPacket {
    /// The captured bytes (an IP packet for edgecap's files).
    pub data: Vec<u8>,
    pub cap_len: u32,
    pub orig_len: u32,
}

/// Opens `file` with tshark and returns its packets in file order; panics unless tshark
/// reads it.
pub fn tshark_packets(file: &Path) -> Vec<ReadPacket> {
    tshark_packets_where(file, None)
}

/// [`tshark_packets`] of the packets matching a tshark display filter, when given.
pub fn tshark_packets_where(file: &Path, display_filter: Option<&str>) -> Vec<ReadPacket> {
    let mut c = Command::new("tshark");
    c.args(["-n", "-r"]).arg(file);
    if let Some(f) = display_filter {
        c.args(["-Y", f]);
    }
    c.args(["-F", "pcap", "-w", "-"]);
    pcap_from(&mut c).unwrap_or_else(|e| panic!("tshark could not read {}: {e}", file.display()))
}

/// The packets tcpdump selects from `file` (all, or those matching a libpcap `filter`), with
/// extra tcpdump `options` (e.g. `-O`). Err: what tcpdump said, for tests that expect it to
/// refuse a filter.
pub fn tcpdump_packets(
    file: &Path,
    filter: Option<&str>,
    options: &[&str],
) -> Result<Vec<ReadPacket>, String> {
    let mut c = Command::new("tcpdump");
    c.args(options)
        .args(["-n", "-r"])
        .arg(file)
        .args(["-w", "-"]);
    if let Some(f) = filter {
        c.arg(f);
    }
    pcap_from(&mut c)
}

/// tshark's fields of each packet of `file`, one row per packet (`-T fields`, `|` between
/// fields, so the `,` between repeated values of one field stays inside it).
pub fn tshark_fields(file: &Path, fields: &[&str]) -> Vec<Vec<String>> {
    let mut c = Command::new("tshark");
    c.args(["-n", "-r"])
        .arg(file)
        .args(["-T", "fields", "-E", "separator=|"]);
    for f in fields {
        c.args(["-e", f]);
    }
    let out = c
        .output()
        .unwrap_or_else(|e| panic!("running tshark: {e} (.ci/run installs it)"));
    assert!(
        out.status.success(),
        "tshark could not read {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split('|').map(str::to_owned).collect())
        .collect()
}

/// Runs a reader that writes classic little-endian pcap to stdout and parses its packets.
fn pcap_from(c: &mut Command) -> Result<Vec<ReadPacket>, String> {
    let program = c.get_program().to_string_lossy().into_owned();
    let out = c
        .output()
        .map_err(|e| format!("running {program}: {e} (.ci/run installs it)"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
    }
    parse_pcap(&out.stdout).map_err(|e| format!("{program}: {e}"))
}

/// The packets of a classic little-endian pcap (micro- or nanosecond magic).
fn parse_pcap(b: &[u8]) -> Result<Vec<ReadPacket>, String> {
    let magic = b
        .get(..4)
        .map(|m| u32::from_le_bytes([m[0], m[1], m[2], m[3]]));
    if b.len() < 24 || !matches!(magic, Some(0xa1b2_c3d4 | 0xa1b2_3c4d)) {
        return Err(format!("wrote no little-endian pcap (magic {magic:x?})"));
    }
    let u32_at = |at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    let mut out = Vec::new();
    let mut off = 24;
    while off + 16 <= b.len() {
        let cap_len = u32_at(off + 8);
        let orig_len = u32_at(off + 12);
        let data = b
            .get(off + 16..off + 16 + cap_len as usize)
            .ok_or_else(|| format!("packet at byte {off} is cut short"))?
            .to_vec();
        out.push(ReadPacket {
            data,
            cap_len,
            orig_len,
        });
        off += 16 + cap_len as usize;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcap_records_are_parsed_and_bad_headers_refused() {
        let mut b = vec![0u8; 24];
        b[..4].copy_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        for (cap, orig) in [(3u32, 60u32), (1, 1)] {
            b.extend_from_slice(&[0; 8]);
            b.extend_from_slice(&cap.to_le_bytes());
            b.extend_from_slice(&orig.to_le_bytes());
            b.extend(std::iter::repeat_n(7u8, cap as usize));
        }
        let p = parse_pcap(&b).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(
            (p[0].cap_len, p[0].orig_len, &p[0].data[..]),
            (3, 60, &[7u8; 3][..])
        );
        assert!(parse_pcap(&b[..10]).is_err());
        assert!(parse_pcap(&b[..b.len() - 1]).is_err());
    }
}
