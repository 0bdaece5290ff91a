//! Reading files back with pcap-parser, an implementation independent of ours. Every helper
//! insists the whole input parses: trailing bytes mean a block length is wrong.

use pcap_parser::pcap::{LegacyPcapBlock, PcapHeader, parse_pcap};
use pcap_parser::pcapng::{Block, PcapNGOption, parse_block_le};

pub fn pcapng_blocks(bytes: &[u8]) -> Vec<Block<'_>> {
    let mut rest = bytes;
    let mut blocks = Vec::new();
    while !rest.is_empty() {
        let offset = bytes.len() - rest.len();
        let (after, block) = parse_block_le(rest)
            .unwrap_or_else(|e| panic!("pcapng block at offset {offset}: {e:?}"));
        blocks.push(block);
        rest = after;
    }
    blocks
}

pub fn pcap_records(bytes: &[u8]) -> (PcapHeader, Vec<LegacyPcapBlock<'_>>) {
    let (rest, capture) = parse_pcap(bytes).unwrap_or_else(|e| panic!("pcap: {e:?}"));
    assert!(
        rest.is_empty(),
        "{} bytes after the last pcap record",
        rest.len()
    );
    (capture.header, capture.blocks)
}

/// Option codes in file order, ending with 0 (opt_endofopt) when the list is non-empty.
pub fn codes(options: &[PcapNGOption<'_>]) -> Vec<u16> {
    options.iter().map(|o| o.code.0).collect()
}

/// The value of option `code`, without its padding, which must be zero.
pub fn option<'a>(options: &'a [PcapNGOption<'_>], code: u16) -> Option<&'a [u8]> {
    let opt = options.iter().find(|o| o.code.0 == code)?;
    let value = opt.as_bytes().unwrap();
    assert!(
        opt.value()[value.len()..].iter().all(|&b| b == 0),
        "option {code} padding"
    );
    Some(value)
}

pub fn ts(high: u32, low: u32) -> u64 {
    (u64::from(high) << 32) | u64::from(low)
}
