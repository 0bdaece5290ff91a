//! What each reader says it captured: packets in tcpdump's pcap file, and the readers' own
//! statistics (edgecap's JSON summary, tcpdump's exit lines), kept for comparison with the
//! truth (the offered counter).

use std::fs::File;
use std::io::{self, BufReader, ErrorKind, Read, Seek};
use std::path::Path;

/// Counts the complete records of a classic pcap file. Records are skipped with a relative
/// seek instead of being read, because a few seconds of 1400-byte flood are gigabytes.
pub fn count_pcap_file(path: &Path) -> io::Result<u64> {
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    count_pcap(BufReader::with_capacity(1 << 20, file), len)
}

/// Counts records in a pcap stream of `len` bytes. A record cut short by a killed writer is
/// not counted.
fn count_pcap<R: Read + Seek>(mut r: BufReader<R>, len: u64) -> io::Result<u64> {
    let mut header = [0u8; 24];
    r.read_exact(&mut header)?;
    let big_endian = match header[..4] {
        // Microsecond and nanosecond magics, as written on a little-endian host...
        [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1] => false,
        // ...and on a big-endian one.
        [0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d] => true,
        _ => {
            return Err(io::Error::new(
                ErrorKind::InvalidData,
                "not a classic pcap file",
            ));
        }
    };
    let mut count = 0u64;
    let mut pos = 24u64;
    let mut rec = [0u8; 16];
    // Tracking the position ourselves keeps this at one read per megabyte, not a syscall
    // per record.
    while pos + 16 <= len {
        r.read_exact(&mut rec)?;
        let incl = [rec[8], rec[9], rec[10], rec[11]];
        let incl = if big_endian {
            u32::from_be_bytes(incl)
        } else {
            u32::from_le_bytes(incl)
        };
        pos += 16 + u64::from(incl);
        if pos > len {
            break;
        }
        r.seek_relative(i64::from(incl))?;
        count += 1;
    }
    Ok(count)
}

/// Counts the packets of any capture file edgecap's reader opens (edgecap's pcapng here), so the
/// benchmark counts what reached the file, not what the reader says it wrote.
pub fn count_capture_file(path: &Path) -> io::Result<u64> {
    let file = BufReader::with_capacity(1 << 20, File::open(path)?);
    let mut r = edgecap_pcap::read::Reader::new(file)
        .map_err(|e| io::Error::new(ErrorKind::InvalidData, e.to_string()))?;
    let mut n = 0u64;
    while r
        .next_packet()
        .map_err(|e| io::Error::new(ErrorKind::InvalidData, e.to_string()))?
        .is_some()
    {
        n += 1;
    }
    Ok(n)
}

/// The fields of edgecap's `--json` summary the benchmark uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EdgecapSummary {
    pub packets: u64,
    /// Lost by edgecap's own account (sequence gaps plus the unreceived tail).
    pub lost: u64,
    /// ENOBUFS reports.
    pub overruns: u64,
}

/// Finds the JSON summary among edgecap's output lines (the last line that parses).
pub fn parse_edgecap(lines: &[String]) -> Option<EdgecapSummary> {
    lines.iter().rev().find_map(|l| {
        let v: serde_json::Value = serde_json::from_str(l.trim()).ok()?;
        Some(EdgecapSummary {
            packets: v.get("packets")?.as_u64()?,
            lost: v.get("lost")?.as_u64()?,
            overruns: v.get("overruns")?.as_u64()?,
        })
    })
}

/// tcpdump's exit statistics. For nflog, "dropped by kernel" counts recv calls that failed
/// with ENOBUFS (libpcap's `packets_nobufs`), i.e. congestion events, not lost packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpdumpStats {
    pub captured: Option<u64>,
    pub dropped_by_kernel: Option<u64>,
}

pub fn parse_tcpdump(lines: &[String]) -> TcpdumpStats {
    let number = |suffix: &str| {
        lines
            .iter()
            .find_map(|l| l.trim().strip_suffix(suffix)?.trim().parse().ok())
    };
    TcpdumpStats {
        captured: number("packets captured"),
        dropped_by_kernel: number("packets dropped by kernel"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn pcap(records: &[usize], truncate_last_by: usize) -> Vec<u8> {
        let mut f = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0];
        f.extend([0u8; 8]);
        f.extend(262_144u32.to_le_bytes());
        f.extend(239u32.to_le_bytes());
        for &len in records {
            f.extend([0u8; 8]);
            f.extend((len as u32).to_le_bytes());
            f.extend((len as u32).to_le_bytes());
            f.extend(vec![0xab; len]);
        }
        f.truncate(f.len() - truncate_last_by);
        f
    }

    fn count(bytes: Vec<u8>) -> io::Result<u64> {
        let len = bytes.len() as u64;
        count_pcap(BufReader::new(Cursor::new(bytes)), len)
    }

    #[test]
    fn counts_records() -> io::Result<()> {
        assert_eq!(count(pcap(&[], 0))?, 0);
        assert_eq!(count(pcap(&[92, 1428, 60], 0))?, 3);
        Ok(())
    }

    #[test]
    fn a_cut_last_record_is_not_counted() -> io::Result<()> {
        assert_eq!(count(pcap(&[92, 1428], 10))?, 1);
        assert_eq!(count(pcap(&[92, 1428], 1428 + 5))?, 1);
        Ok(())
    }

    #[test]
    fn rejects_other_formats() {
        let mut ng = pcap(&[], 0);
        ng[..4].copy_from_slice(&[0x0a, 0x0d, 0x0d, 0x0a]);
        assert!(count(ng).is_err());
    }

    #[test]
    fn finds_edgecap_json_after_other_lines() {
        let lines = vec![
            "WARN something".to_string(),
            r#"{"packets":10,"bytes":920,"lost":2,"matched":12,"logged":12,"overruns":1}"#.into(),
        ];
        let s = parse_edgecap(&lines);
        assert_eq!(
            s,
            Some(EdgecapSummary {
                packets: 10,
                lost: 2,
                overruns: 1
            })
        );
        assert_eq!(parse_edgecap(&["no json".to_string()]), None);
    }

    #[test]
    fn reads_tcpdump_exit_lines() {
        let lines: Vec<String> = [
            "tcpdump: listening on nflog:7, link-type NFLOG",
            "2892516 packets captured",
            "2892516 packets received by filter",
            "164964 packets dropped by kernel",
        ]
        .map(String::from)
        .into();
        let s = parse_tcpdump(&lines);
        assert_eq!(s.captured, Some(2_892_516));
        assert_eq!(s.dropped_by_kernel, Some(164_964));
    }
}
