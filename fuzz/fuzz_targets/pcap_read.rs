//! The pcap/pcapng reader and the merge on any file: packets, a clean end or an error naming
//! the offset; never a panic or an unbounded allocation.
#![no_main]

use edgecap_pcap::merge::{MergeInput, MergeOptions, merge};
use edgecap_pcap::read::Reader;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(mut r) = Reader::new(data) {
        while let Ok(Some(p)) = r.next_packet() {
            assert_eq!(p.data.len(), p.caplen as usize);
        }
    }
    // The same bytes as two inputs of a merge.
    let half = data.len() / 2;
    let inputs: Result<Vec<_>, _> = [("a", &data[..half]), ("b", &data[half..])]
        .into_iter()
        .map(|(n, b)| MergeInput::new(n, b))
        .collect();
    if let Ok(inputs) = inputs {
        let _ = merge(inputs, std::io::sink(), &MergeOptions::default(), |_| {});
    }
});
