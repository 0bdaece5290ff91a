//! The file of a look-back (`type: simple`) capture, from the samples the nodes' rings
//! returned (issue 13). Pure: no I/O.
//!
//! - [`keep`]: every node's samples in one time order; when more than the packet limit
//!   arrived, the limit's worth evenly spread over them (the `i·n/limit`-th of the `n`, the
//!   rule each agent's ring applies to its own matches), so the whole window stays
//!   represented rather than only its start;
//! - [`write`]: pcapng with one interface per node and point, `<node>/<point>`, whose
//!   description states the effective sampling rate (each packet stands for 1 in N of the
//!   matching traffic: the ring's rate, times the thinning to fit the limits); several
//!   interfaces are framed as Linux cooked v2 (tcpdump reads them), one stays raw IP; or
//!   classic pcap, raw IP, which has no interfaces.
//!
//! A sample whose bytes are not hex is left out and counted, never fatal.

use std::collections::BTreeMap;

use edgecap_model::lookback::{WireSample, unhex};
use edgecap_pcap::{Direction, Format, Interface, LINKTYPE_LINUX_SLL2, Section, Writer};

/// The most bytes of a packet the control plane keeps: a ring's snaplen. A node that sends
/// more (misconfigured or hostile) has its samples cut here, as they arrive.
pub const MAX_KEPT_BYTES: usize = 160;

/// Cuts a sample from a node to [`MAX_KEPT_BYTES`] (its true length stays in `orig_len`),
/// and bounds its point name. A cut that would split a character leaves data that is not
/// hex, so the sample is later left out as unreadable.
pub fn bound(s: &mut WireSample) {
    if s.data.len() > 2 * MAX_KEPT_BYTES {
        s.data = s
            .data
            .get(..2 * MAX_KEPT_BYTES)
            .map_or_else(|| "-".to_owned(), str::to_owned);
    }
    if s.point.len() > 64 {
        s.point = s.point.chars().take(64).collect();
    }
}

/// One node's samples, as its answer gave them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeSamples {
    pub node: String,
    pub samples: Vec<WireSample>,
    /// Each returned sample stood for this many matching ring samples (the node's own
    /// thinning to the query's limit).
    pub thinned_by: f64,
}

/// A kept sample: the node (index into the input) and the sample.
pub type Kept<'a> = (usize, &'a WireSample);

/// The samples of every node in time order (ties by node), at most `limit`, evenly spread
/// when more arrived; and by how much they were thinned (1.0 when none was left out).
pub fn keep(nodes: &[NodeSamples], limit: usize) -> (Vec<Kept<'_>>, f64) {
    let mut all: Vec<Kept<'_>> = nodes
        .iter()
        .enumerate()
        .flat_map(|(i, n)| n.samples.iter().map(move |s| (i, s)))
        .collect();
    all.sort_by_key(|(i, s)| (s.ts_ns, *i));
    let n = all.len();
    if n <= limit {
        return (all, 1.0);
    }
    if limit == 0 {
        return (Vec::new(), 1.0);
    }
    let kept = (0..limit).map(|i| all[i * n / limit]).collect();
    (kept, n as f64 / limit as f64)
}

/// What [`write`] made.
#[derive(Debug, Clone, PartialEq)]
pub struct File {
    pub bytes: Vec<u8>,
    pub packets: u64,
    /// Samples left out because their bytes were not hex.
    pub unreadable: u64,
}

/// The file of `kept` (from [`keep`]) in `format`. `merge_thinning` is what [`keep`] said;
/// `comment` goes into the section header (pcapng).
pub fn write(
    nodes: &[NodeSamples],
    kept: &[Kept<'_>],
    merge_thinning: f64,
    format: Format,
    comment: &str,
) -> Result<File, String> {
    // One interface per node and point, in order of first appearance by name.
    let mut ifaces: BTreeMap<(usize, &str), (u32, u64, u64)> = BTreeMap::new();
    for (i, s) in kept {
        let e = ifaces
            .entry((*i, s.point.as_str()))
            .or_insert((0, u64::MAX, 0));
        e.1 = e.1.min(s.one_in);
        e.2 = e.2.max(s.one_in);
    }
    for (n, e) in ifaces.values_mut().enumerate() {
        e.0 = n as u32;
    }
    let framed = format == Format::Pcapng && ifaces.len() > 1;
    let interfaces: Vec<Interface> = match format {
        Format::Pcap => vec![Interface::raw("look-back", 65_535)],
        Format::Pcapng if ifaces.is_empty() => vec![Interface::raw("look-back", 65_535)],
        Format::Pcapng => ifaces
            .iter()
            .map(|(&(i, point), &(_, lo, hi))| {
                let node = &nodes[i];
                let factor = node.thinned_by.max(1.0) * merge_thinning.max(1.0);
                let rate = |one_in: u64| (one_in as f64 * factor).round() as u64;
                let description = if lo == hi {
                    format!(
                        "sampled: each packet stands for 1 in {} matching packets",
                        rate(lo)
                    )
                } else {
                    format!(
                        "sampled: each packet stands for 1 in {} to 1 in {} matching packets \
                         (the ring's rate varies by period)",
                        rate(lo),
                        rate(hi)
                    )
                };
                let mut iface = Interface::raw(format!("{}/{point}", node.node), 65_535);
                iface.description = Some(description);
                if framed {
                    iface.linktype = LINKTYPE_LINUX_SLL2;
                    iface.snaplen = 65_535 + edgecap_pcap::SLL2_HEADER_LEN as u32;
                }
                iface
            })
            .collect(),
    };
    let section = Section {
        user_appl: format!("edgecap {}", env!("CARGO_PKG_VERSION")),
        os: None,
        hardware: None,
        comment: Some(comment.to_owned()),
    };
    let mut w =
        Writer::new(Vec::new(), format, &section, &interfaces).map_err(|e| e.to_string())?;
    let (mut packets, mut unreadable) = (0u64, 0u64);
    for (i, s) in kept {
        let Some(data) = unhex(&s.data) else {
            unreadable += 1;
            continue;
        };
        let iface = match format {
            Format::Pcap => 0,
            Format::Pcapng => ifaces.get(&(*i, s.point.as_str())).map_or(0, |e| e.0),
        };
        let written = if framed {
            let head = edgecap_pcap::sll2_header(&data, s.ifindex, Direction::Unknown);
            w.write_framed_packet(
                iface,
                s.ts_ns,
                &head,
                &data,
                s.orig_len.saturating_add(head.len() as u32),
                Direction::Unknown,
                0,
            )
        } else {
            w.write_packet(iface, s.ts_ns, &data, s.orig_len, Direction::Unknown, 0)
        };
        written.map_err(|e| e.to_string())?;
        packets += 1;
    }
    let bytes = w.finish().map_err(|e| e.to_string())?;
    Ok(File {
        bytes,
        packets,
        unreadable,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgecap_model::lookback::hex;
    use edgecap_pcap::read::Reader;

    fn sample(ts_ns: u64, point: &str, one_in: u64, marker: u8) -> WireSample {
        // A 28-byte IPv4/UDP header and a marker byte; the packet was 1,000 bytes long.
        let mut ip = vec![
            0x45, 0, 0x03, 0xe8, 0, 0, 0, 0, 64, 17, 0, 0, 198, 18, 0, 1, 198, 19, 0, 1,
        ];
        ip.extend_from_slice(&[0x9c, 0x40, 0x13, 0x88, 0x03, 0xd4, 0, 0, marker]);
        WireSample {
            ts_ns,
            orig_len: 1000,
            point: point.into(),
            ifindex: 2,
            one_in,
            data: hex(&ip),
        }
    }

    fn nodes() -> Vec<NodeSamples> {
        vec![
            NodeSamples {
                node: "edge-a".into(),
                samples: (0..5)
                    .map(|i| sample(i * 10, "pre-firewall", 8, i as u8))
                    .collect(),
                thinned_by: 1.0,
            },
            NodeSamples {
                node: "edge-b".into(),
                samples: (0..5)
                    .map(|i| sample(i * 10 + 5, "egress", 64, 100 + i as u8))
                    .collect(),
                thinned_by: 2.0,
            },
        ]
    }

    #[test]
    fn samples_are_cut_to_160_bytes_as_they_arrive() {
        let mut s = sample(0, "pre-firewall", 1, 0);
        s.data = hex(&[0xab; 1500]);
        s.point = "p".repeat(100);
        bound(&mut s);
        assert_eq!(unhex(&s.data).unwrap(), vec![0xab; 160]);
        assert_eq!(s.point.len(), 64);
        let mut odd = sample(0, "pre-firewall", 1, 0);
        odd.data = format!("{}é", "a".repeat(319));
        bound(&mut odd);
        assert_eq!(unhex(&odd.data), None, "left out later, never a panic");
    }

    #[test]
    fn samples_are_merged_in_time_order_and_thinned_evenly() {
        let n = nodes();
        let (all, by) = keep(&n, 100);
        assert_eq!(by, 1.0);
        let ts: Vec<u64> = all.iter().map(|(_, s)| s.ts_ns).collect();
        assert_eq!(ts, vec![0, 5, 10, 15, 20, 25, 30, 35, 40, 45]);
        let (some, by) = keep(&n, 5);
        assert_eq!(by, 2.0);
        // Every other one: the whole window, not its first half.
        let ts: Vec<u64> = some.iter().map(|(_, s)| s.ts_ns).collect();
        assert_eq!(ts, vec![0, 10, 20, 30, 40]);
        assert!(keep(&n, 0).0.is_empty());
    }

    #[test]
    fn pcapng_has_an_interface_per_node_and_point_stating_its_rate() {
        let n = nodes();
        // 4 of 10: the 0th, 2nd, 5th and 7th, two of each node.
        let (kept, by) = keep(&n, 4);
        assert_eq!(by, 2.5);
        let f = write(&n, &kept, by, Format::Pcapng, "capture x").unwrap();
        assert_eq!((f.packets, f.unreadable), (4, 0));
        let mut r = Reader::new(&f.bytes[..]).unwrap();
        let mut seen = Vec::new();
        while let Some(p) = r.next_packet().unwrap() {
            seen.push((p.interface_name.to_owned(), p.ts_ns, p.orig_len));
        }
        // The true length: 1,000 bytes of IP behind the 20-byte SLL2 framing.
        assert_eq!(
            seen,
            vec![
                ("edge-a/pre-firewall".into(), 0, 1020),
                ("edge-a/pre-firewall".into(), 10, 1020),
                ("edge-b/egress".into(), 25, 1020),
                ("edge-b/egress".into(), 35, 1020),
            ]
        );
        let ifaces = r.interfaces();
        assert_eq!(ifaces.len(), 2);
        let desc = |i: usize| ifaces[i].description.clone().unwrap();
        // edge-a: 1 in 8, thinned by 2.5 to fit: 1 in 20; edge-b: 64, its own 2, then 2.5.
        assert!(desc(0).contains("1 in 20 "), "{}", desc(0));
        assert!(desc(1).contains("1 in 320 "), "{}", desc(1));
    }

    #[test]
    fn classic_pcap_is_raw_ip_with_true_lengths_and_bad_hex_is_left_out() {
        let mut n = nodes();
        n[1].samples[0].data = "zz".into();
        let (kept, by) = keep(&n, 100);
        let f = write(&n, &kept, by, Format::Pcap, "").unwrap();
        assert_eq!((f.packets, f.unreadable), (9, 1));
        let mut r = Reader::new(&f.bytes[..]).unwrap();
        assert_eq!(r.format(), Format::Pcap);
        let mut count = 0;
        while let Some(p) = r.next_packet().unwrap() {
            assert_eq!((p.caplen, p.orig_len), (29, 1000));
            count += 1;
        }
        assert_eq!(count, 9);
    }
}
