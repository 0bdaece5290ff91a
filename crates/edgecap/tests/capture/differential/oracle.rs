//! What tcpdump selects: the corpus file read through `tcpdump -r FILE -w - EXPR`, with and
//! without libpcap's BPF optimizer.

use std::collections::BTreeSet;
use std::path::Path;

use edgecap_lab::packet::find_marker;

/// The packets of a pcap/pcapng file, read by tcpdump (with a filter when given): their bytes.
pub fn tcpdump_packets(file: &Path, filter: Option<&str>) -> Result<Vec<Vec<u8>>, String> {
    tcpdump_packets_with(file, filter, &[])
}

fn tcpdump_packets_with(
    file: &Path,
    filter: Option<&str>,
    options: &[&str],
) -> Result<Vec<Vec<u8>>, String> {
    let packets = edgecap_testkit::readers::tcpdump_packets(file, filter, options)?;
    Ok(packets.into_iter().map(|p| p.data).collect())
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
