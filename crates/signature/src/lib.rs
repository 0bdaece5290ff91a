//! Attack signatures: from the packets of an attack (and, optionally, of a baseline of normal
//! traffic), the header and payload fields that single the attack out, each with its coverage
//! of the attack and its hit rate on the baseline, and a proposed mitigation: a tcpdump-style
//! expression made of the chosen fields and the nftables rule edgecap compiles it to.
//!
//! Pure: no I/O. Packets are raw IP packets (no link-layer header, as
//! `edgecap_pcap::read::Packet::ip` gives them); whatever is not IPv4 or IPv6 is skipped and
//! counted. Work is bounded on any input: at most [`Limits::max_packets`] packets of each side
//! are looked at, value counts keep at most [`MAX_DISTINCT`] distinct values per field, and
//! payload bytes are read in a window of [`Limits::payload_window`] bytes.
//!
//! How it decides:
//! 1. Candidates: for each field (protocol, destination, source prefix, ports, TTL, length,
//!    TCP flags, fixed payload bytes), the value most attack packets share.
//! 2. Coverage and baseline hit rate: each candidate is compiled by `edgecap-filter` and run
//!    through its userspace matcher over the attack and the baseline, so the numbers are what
//!    the rule would do in the kernel.
//! 3. Choice: candidates covering at least [`Limits::min_coverage`] of the attack. With a
//!    baseline, greedily the one that most lowers the baseline hit rate, while it does; without,
//!    all of them (the most specific rule the attack allows). A field implied by another
//!    (the protocol of a port) is left out.
//! 4. Mitigation: the chosen fields ANDed, checked with edgecap's parser and compiler; payload
//!    fields are exact only in a one-rule filter, so if the rule would need more, they are
//!    dropped. Its coverage and hit rate are measured the same way.

mod decode;
mod field;
mod search;

use serde::{Deserialize, Serialize};

pub use field::Field;

/// At most this many distinct values of one field are counted; values first seen after that
/// are not candidates (a value shared by most packets is seen long before).
pub const MAX_DISTINCT: usize = 4096;

/// The bytes of a packet a signature can read: the IPv4 header (at most 60 bytes) plus the
/// filter language's reach into the transport header (256), rounded up. A caller may keep only
/// this many bytes of each packet (lengths come from the IP header, not the bytes kept), so
/// memory is bounded by `max_packets * PACKET_BYTES_USED`.
pub const PACKET_BYTES_USED: usize = 512;

/// The bounds of one computation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    /// Packets looked at on each side (the first ones; the rest are counted as skipped).
    pub max_packets: usize,
    /// The share of attack packets (0..=1) a field must cover to be proposed.
    pub min_coverage: f64,
    /// Payload bytes examined after the minimal transport header (at most up to byte 256 of
    /// the transport header, the filter language's reach).
    pub payload_window: u16,
    /// Payload fields proposed at most (each 1, 2 or 4 bytes).
    pub max_payload_fields: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_packets: 100_000,
            min_coverage: 0.99,
            payload_window: 64,
            max_payload_fields: 2,
        }
    }
}

/// One candidate field with how well it singles out the attack.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldReport {
    /// The field and its value.
    #[serde(flatten)]
    pub field: Field,
    /// The value for people.
    pub value: String,
    /// The field as a tcpdump-style primitive.
    pub expression: String,
    /// Share of the attack's packets it matches (0..=1).
    pub coverage: f64,
    /// Share of the baseline's packets it matches, when there is a baseline.
    pub baseline_hit_rate: Option<f64>,
    /// Part of the proposed mitigation.
    pub chosen: bool,
}

/// The proposed rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mitigation {
    /// A tcpdump-style expression edgecap's `--filter` (and tcpdump) accept.
    pub expression: String,
    /// The nftables rules it compiles to (one per line, nft syntax), each ending in
    /// `counter drop`, for `nft add rule inet TABLE CHAIN ...` in a filter chain.
    pub nft: Vec<String>,
    /// Share of the attack's packets the rule matches.
    pub coverage: f64,
    /// Share of the baseline's packets the rule matches, when there is a baseline.
    pub baseline_hit_rate: Option<f64>,
    /// Fields left out because the rule could not hold them exactly (payload fields when the
    /// rule needs more than one nftables rule), with the reason.
    pub dropped: Vec<String>,
}

/// What [`signature`] found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signature {
    /// Attack packets looked at (IPv4 or IPv6).
    pub attack_packets: usize,
    /// Attack packets skipped: not IP, or past [`Limits::max_packets`].
    pub attack_skipped: usize,
    /// Baseline packets looked at, when there is a baseline.
    pub baseline_packets: Option<usize>,
    /// Every candidate, best first.
    pub fields: Vec<FieldReport>,
    /// The proposed rule; `None` when no field covers enough of the attack (the reason is in
    /// `note`).
    pub mitigation: Option<Mitigation>,
    /// Why there is no mitigation, or what to keep in mind about it.
    pub note: Option<String>,
}

/// The signature of `attack` (raw IP packets), with hit rates on `baseline` when given.
pub fn signature<P: AsRef<[u8]>>(
    attack: &[P],
    baseline: Option<&[P]>,
    limits: &Limits,
) -> Signature {
    search::run(attack, baseline, limits)
}

#[cfg(test)]
mod tests;
