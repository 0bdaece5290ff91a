use super::*;
use crate::read::Reader;
use crate::{LINKTYPE_ETHERNET, LINKTYPE_RAW};

/// A 28-byte IPv4/UDP packet whose UDP destination port carries `tag`.
fn pkt(tag: u16) -> Vec<u8> {
    let mut p = vec![0u8; 28];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&28u16.to_be_bytes());
    p[9] = 17;
    p[22..24].copy_from_slice(&tag.to_be_bytes());
    p
}

/// A pcapng file: `ifaces` named interfaces, packets (iface, ts_ns, tag).
fn pcapng(ifaces: &[(&str, u16)], packets: &[(u32, u64, u16)]) -> Vec<u8> {
    let ifs: Vec<Interface> = ifaces
        .iter()
        .map(|(n, lt)| Interface {
            linktype: *lt,
            ..Interface::raw(*n, 0)
        })
        .collect();
    let mut w = Writer::new(Vec::new(), Format::Pcapng, &Section::default(), &ifs).unwrap();
    for &(i, ts, tag) in packets {
        let p = pkt(tag);
        w.write_packet(i, ts, &p, 28, Direction::Inbound, 0)
            .unwrap();
    }
    w.finish().unwrap()
}

/// A classic pcap with microsecond timestamps (as tcpdump writes), linktype RAW.
fn pcap_us(packets: &[(u64, u16)]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&0xA1B2_C3D4u32.to_le_bytes());
    f.extend_from_slice(&2u16.to_le_bytes());
    f.extend_from_slice(&4u16.to_le_bytes());
    f.extend_from_slice(&[0; 8]);
    f.extend_from_slice(&262_144u32.to_le_bytes());
    f.extend_from_slice(&u32::from(LINKTYPE_RAW).to_le_bytes());
    for &(ts_ns, tag) in packets {
        let p = pkt(tag);
        f.extend_from_slice(&((ts_ns / 1_000_000_000) as u32).to_le_bytes());
        f.extend_from_slice(&((ts_ns % 1_000_000_000 / 1000) as u32).to_le_bytes());
        f.extend_from_slice(&(p.len() as u32).to_le_bytes());
        f.extend_from_slice(&(p.len() as u32).to_le_bytes());
        f.extend_from_slice(&p);
    }
    f
}

fn input(name: &str, bytes: Vec<u8>) -> MergeInput<std::io::Cursor<Vec<u8>>> {
    MergeInput::new(name, std::io::Cursor::new(bytes)).unwrap()
}

/// (interface name, ts_ns, tag) of every packet of a merged file.
fn read_back(bytes: &[u8]) -> Vec<(String, i64, u16)> {
    let mut r = Reader::new(bytes).unwrap();
    let mut out = Vec::new();
    while let Some(p) = r.next_packet().unwrap() {
        let ip = p.ip.expect("an IP packet behind the link header");
        let tag = u16::from_be_bytes([ip[22], ip[23]]);
        out.push((p.interface_name.to_owned(), p.ts_ns, tag));
    }
    out
}

fn run(
    inputs: Vec<MergeInput<std::io::Cursor<Vec<u8>>>>,
    format: Format,
) -> (MergeSummary, Vec<u8>) {
    let opts = MergeOptions {
        format,
        section: None,
    };
    merge(inputs, Vec::new(), &opts, |_| {}).unwrap()
}

#[test]
fn packets_come_out_in_time_order_with_one_interface_per_node_and_point() {
    let a = pcapng(
        &[
            ("edge0/pre-firewall", LINKTYPE_RAW),
            ("edge0/egress", LINKTYPE_RAW),
        ],
        &[(0, 10, 1), (1, 30, 3), (0, 50, 5)],
    );
    let b = pcapng(
        &[("edge1/pre-firewall", LINKTYPE_RAW)],
        &[(0, 20, 2), (0, 40, 4)],
    );
    let (summary, out) = run(vec![input("edge0", a), input("edge1", b)], Format::Pcapng);
    assert_eq!(summary.packets, 5);
    assert_eq!(summary.per_input, vec![3, 2]);
    let names: Vec<&str> = summary.interfaces.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(
        names,
        ["edge0/pre-firewall", "edge0/egress", "edge1/pre-firewall"]
    );
    assert_eq!(
        read_back(&out),
        vec![
            ("edge0/pre-firewall".into(), 10, 1),
            ("edge1/pre-firewall".into(), 20, 2),
            ("edge0/egress".into(), 30, 3),
            ("edge1/pre-firewall".into(), 40, 4),
            ("edge0/pre-firewall".into(), 50, 5),
        ]
    );
    // Several RAW interfaces would be unreadable for tcpdump: they are written as SLL2 with
    // one snaplen, the direction kept.
    assert_eq!(summary.libpcap_note, None);
    assert!(
        summary
            .interfaces
            .iter()
            .all(|i| i.linktype == crate::LINKTYPE_LINUX_SLL2 && i.snaplen == 0)
    );
    let mut r = Reader::new(&out[..]).unwrap();
    let first = r.next_packet().unwrap().unwrap();
    assert_eq!(first.data.len(), 20 + 28);
    assert_eq!(first.direction, Direction::Inbound);
}

#[test]
fn tcpdump_readability_is_known_before_the_merge_runs() {
    let raw = |n| pcapng(&[(n, LINKTYPE_RAW)], &[(0, 10, 1)]);
    let opts = MergeOptions::default();
    let m = Merger::open(
        vec![input("a", raw("a/p")), input("b", raw("b/p"))],
        Vec::new(),
        &opts,
    )
    .unwrap();
    assert_eq!(m.libpcap_note(), None);
    let eth = pcapng(&[("c/eth0", LINKTYPE_ETHERNET)], &[]);
    let m = Merger::open(
        vec![input("a", raw("a/p")), input("c", eth)],
        Vec::new(),
        &opts,
    )
    .unwrap();
    let note = m.libpcap_note().expect("mixed linktypes");
    assert!(note.contains("differ in linktype"), "{note}");
    // Unframed: the RAW interface stays RAW beside the Ethernet one.
    assert_eq!(m.interfaces()[0].linktype, LINKTYPE_RAW);
    let (summary, _) = m.run(|_| {}).unwrap();
    assert_eq!(summary.libpcap_note.as_deref(), Some(note.as_str()));
}

#[test]
fn equal_timestamps_keep_the_inputs_order_and_each_inputs_own_order() {
    let a = pcapng(&[("a/p", LINKTYPE_RAW)], &[(0, 100, 1), (0, 100, 2)]);
    let b = pcapng(&[("b/p", LINKTYPE_RAW)], &[(0, 100, 3), (0, 100, 4)]);
    let c = pcapng(&[("c/p", LINKTYPE_RAW)], &[(0, 50, 5), (0, 100, 6)]);
    let (_, out) = run(
        vec![input("a", a), input("b", b), input("c", c)],
        Format::Pcapng,
    );
    let tags: Vec<u16> = read_back(&out).into_iter().map(|p| p.2).collect();
    assert_eq!(tags, vec![5, 1, 2, 3, 4, 6]);
}

#[test]
fn unnamed_and_plain_interface_names_are_prefixed_with_the_input() {
    let tcpdump = pcap_us(&[(1_000_000_000_123_000, 7)]);
    let dumpcap = pcapng(&[("eth0", LINKTYPE_RAW)], &[(0, 1_000_000_000_123_500, 8)]);
    let (summary, out) = run(
        vec![input("edge2", tcpdump), input("edge3", dumpcap)],
        Format::Pcapng,
    );
    let names: Vec<&str> = summary.interfaces.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["edge2/if0", "edge3/eth0"]);
    // The µs input's timestamp is exact in the ns output.
    assert_eq!(
        read_back(&out),
        vec![
            ("edge2/if0".into(), 1_000_000_000_123_000, 7),
            ("edge3/eth0".into(), 1_000_000_000_123_500, 8),
        ]
    );
}

#[test]
fn later_sections_and_interfaces_are_merged_too() {
    // Two sections in one file (as `cat a.pcapng b.pcapng` makes): the second defines its
    // own interface 0.
    let mut two = pcapng(&[("n1/a", LINKTYPE_RAW)], &[(0, 10, 1), (0, 40, 4)]);
    two.extend(pcapng(&[("n1/b", LINKTYPE_RAW)], &[(0, 60, 6)]));
    let other = pcapng(&[("n2/a", LINKTYPE_RAW)], &[(0, 20, 2), (0, 50, 5)]);
    let (summary, out) = run(vec![input("n1", two), input("n2", other)], Format::Pcapng);
    let names: Vec<&str> = summary.interfaces.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["n1/a", "n2/a", "n1/b"]);
    let got: Vec<(String, u16)> = read_back(&out).into_iter().map(|p| (p.0, p.2)).collect();
    assert_eq!(
        got,
        vec![
            ("n1/a".into(), 1),
            ("n2/a".into(), 2),
            ("n1/a".into(), 4),
            ("n2/a".into(), 5),
            ("n1/b".into(), 6),
        ]
    );
}

#[test]
fn classic_pcap_output_needs_one_linktype() {
    let a = pcapng(&[("a/p", LINKTYPE_RAW)], &[(0, 10_000, 1)]);
    let b = pcap_us(&[(5_000, 2)]);
    let (summary, out) = run(vec![input("a", a), input("b", b)], Format::Pcap);
    assert_eq!(summary.interfaces.len(), 1);
    let r = Reader::new(&out[..]).unwrap();
    assert_eq!(r.format(), Format::Pcap);
    let tags: Vec<u16> = read_back(&out).into_iter().map(|p| p.2).collect();
    assert_eq!(tags, vec![2, 1]);

    let raw = pcapng(&[("a/p", LINKTYPE_RAW)], &[(0, 10, 1)]);
    let eth = pcapng(&[("b/p", LINKTYPE_ETHERNET)], &[]);
    let opts = MergeOptions {
        format: Format::Pcap,
        section: None,
    };
    let err = merge(
        vec![input("a", raw), input("b", eth)],
        Vec::new(),
        &opts,
        |_| {},
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("interface b/p has linktype 1"), "{msg}");
}

#[test]
fn bad_inputs_are_named() {
    let e =
        MergeInput::new("junk.pcap", std::io::Cursor::new(b"not a capture".to_vec())).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("junk.pcap: not a pcap or pcapng file"),
        "{e}"
    );
    let mut cut = pcapng(&[("a/p", LINKTYPE_RAW)], &[(0, 10, 1), (0, 20, 2)]);
    cut.truncate(cut.len() - 10);
    let opts = MergeOptions::default();
    let e = merge(vec![input("cut", cut)], Vec::new(), &opts, |_| {}).unwrap_err();
    assert!(e.to_string().starts_with("cut: file ends early"), "{e}");
    let none: Vec<MergeInput<std::io::Cursor<Vec<u8>>>> = Vec::new();
    assert!(matches!(
        merge(none, Vec::new(), &opts, |_| {}),
        Err(MergeError::NoInputs)
    ));
}
