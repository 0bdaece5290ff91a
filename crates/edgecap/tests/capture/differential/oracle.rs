//! What tcpdump selects: the corpus file read through `tcpdump -r FILE -w - EXPR`, with and
//! without libpcap's BPF optimizer.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use edgecap_lab::packet::find_marker;

/// The packets of a pcap/pcapng file, read by tcpdump (with a filter when given): tcpdump
/// re-writes them as classic pcap on stdout.
pub fn tcpdump_packets(file: &Path, filter: Option<&str>) -> Result<Vec<Vec<u8>>, String> {
    tcpdump_packets_with(file, filter, &[])
}

fn tcpdump_packets_with(
    file: &Path,
    filter: Option<&str>,
    options: &[&str],
) -> Result<Vec<Vec<u8>>, String> {
    let mut c = Command::new("tcpdump");
    c.args(options)
        .args(["-n", "-r"])
        .arg(file)
        .args(["-w", "-"]);
    if let Some(f) = filter {
        c.arg(f);
    }
    let out = c.output().map_err(|e| format!("running tcpdump: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
    }
    let b = &out.stdout;
    if b.len() < 24 || b[..4] != 0xa1b2_c3d4u32.to_le_bytes() {
        return Err("tcpdump wrote no little-endian pcap".into());
    }
    let mut packets = Vec::new();
    let mut off = 24;
    while off + 16 <= b.len() {
        let cap = u32::from_le_bytes(b[off + 8..off + 12].try_into().unwrap()) as usize;
        packets.push(b[off + 16..off + 16 + cap].to_vec());
        off += 16 + cap;
    }
    Ok(packets)
}

/// What tcpdump selects from the corpus file: the markers of the packets.
#[derive(Debug)]
pub struct Oracle {
    /// Selected with the BPF optimizer (tcpdump's default), `None` when the optimizer refused
    /// the filter as matching nothing.
    pub optimized: Option<BTreeSet<u32>>,
    /// Selected without it (`tcpdump -O`): libpcap's direct translation of the expression.
    pub unoptimized: BTreeSet<u32>,
}

impl Oracle {
    pub fn run(file: &Path, filter: &str) -> Result<Oracle, String> {
        let markers = |ps: Vec<Vec<u8>>| ps.iter().filter_map(|p| find_marker(p)).collect();
        let optimized = match tcpdump_packets(file, Some(filter)) {
            Err(e) if e.contains("expression rejects all packets") => None,
            other => Some(markers(other?)),
        };
        let unoptimized = markers(tcpdump_packets_with(file, Some(filter), &["-O"])?);
        Ok(Oracle {
            optimized,
            unoptimized,
        })
    }

    /// The two compilations disagree: libpcap's optimizer changed the meaning. (Refusing a
    /// filter as matching nothing agrees when the unoptimized filter indeed matches nothing.)
    pub fn optimizer_disagrees(&self) -> bool {
        match &self.optimized {
            Some(o) => *o != self.unoptimized,
            None => !self.unoptimized.is_empty(),
        }
    }
}
