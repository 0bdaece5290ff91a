use super::*;

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn assemble(epb: &Epb, data: &[u8]) -> Vec<u8> {
    let mut v = epb.head.to_vec();
    v.extend_from_slice(data);
    v.extend_from_slice(epb.tail());
    v
}

#[test]
fn pad32_rounds_up_to_four() {
    let pads: Vec<usize> = (0..9).map(pad32).collect();
    assert_eq!(pads, [0, 3, 2, 1, 0, 3, 2, 1, 0]);
}

#[test]
fn epb_without_options_has_no_endofopt() {
    let data = [0x45, 1, 2, 3, 4];
    let epb = epb(
        3,
        0x0000_0001_0000_0002,
        data.len(),
        1500,
        Direction::Unknown,
        0,
    );
    let block = assemble(&epb, &data);
    let mut want = Vec::new();
    for v in [6u32, 40, 3, 1, 2, 5, 1500] {
        want.extend_from_slice(&v.to_le_bytes());
    }
    want.extend_from_slice(&data);
    want.extend_from_slice(&[0, 0, 0]);
    want.extend_from_slice(&40u32.to_le_bytes());
    assert_eq!(block, want);
}

#[test]
fn epb_with_direction_and_drops() {
    let data = [0x60, 0, 0, 0];
    let epb = epb(
        0,
        7,
        data.len(),
        4,
        Direction::Outbound,
        0x0102_0304_0506_0708,
    );
    let block = assemble(&epb, &data);
    let total = 28 + 4 + 8 + 12 + 4 + 4;
    assert_eq!(block.len(), total);
    assert_eq!(u32_at(&block, 4) as usize, total);
    assert_eq!(u32_at(&block, total - 4) as usize, total);
    let opts = &block[32..total - 4];
    assert_eq!(
        opts,
        [
            2, 0, 4, 0, 2, 0, 0, 0, // epb_flags = outbound
            4, 0, 8, 0, 8, 7, 6, 5, 4, 3, 2, 1, // epb_dropcount
            0, 0, 0, 0, // opt_endofopt
        ]
    );
    let inbound = epb_with(Direction::Inbound);
    assert_eq!(inbound[28..32], [2, 0, 4, 0]);
    assert_eq!(u32_at(&inbound, 32), 1);
}

fn epb_with(dir: Direction) -> Vec<u8> {
    assemble(&epb(0, 0, 0, 0, dir, 0), &[])
}

#[test]
fn epb_len_matches_the_block_for_every_shape() {
    let data = [0xAAu8; 9];
    for len in 0..=data.len() {
        for dir in [Direction::Unknown, Direction::Inbound, Direction::Outbound] {
            for drops in [0, 1, u64::MAX] {
                let block = assemble(&epb(1, 1, len, 9, dir, drops), &data[..len]);
                assert_eq!(block.len() as u64, epb_len(len, dir, drops));
                assert_eq!(block.len() % 4, 0);
                assert_eq!(u32_at(&block, 4) as usize, block.len());
                assert_eq!(u32_at(&block, block.len() - 4) as usize, block.len());
            }
        }
    }
}

#[test]
fn shb_minimal_is_byte_exact() {
    let section = Section {
        user_appl: "ab".to_owned(),
        ..Section::default()
    };
    let b = shb(&section).unwrap();
    let want: Vec<u8> = [
        &[0x0a, 0x0d, 0x0d, 0x0a][..],
        &40u32.to_le_bytes(),
        &[0x4d, 0x3c, 0x2b, 0x1a, 1, 0, 0, 0],
        &[0xff; 8],
        &[4, 0, 2, 0, b'a', b'b', 0, 0],
        &[0, 0, 0, 0],
        &40u32.to_le_bytes(),
    ]
    .concat();
    assert_eq!(b, want);
}

#[test]
fn shb_without_options_has_no_endofopt() {
    let b = shb(&Section::default()).unwrap();
    assert_eq!(b.len(), 28);
    assert_eq!(u32_at(&b, 4), 28);
}

#[test]
fn idb_always_has_nanosecond_resolution() {
    let iface = Interface {
        name: "n/eth0".to_owned(),
        description: Some(String::new()),
        filter: Some("tcp".to_owned()),
        linktype: 101,
        snaplen: 65535,
    };
    let b = idb(0, &iface).unwrap();
    assert_eq!(u32_at(&b, 0), 1);
    assert_eq!(b[8..16], [101, 0, 0, 0, 0xff, 0xff, 0, 0]);
    // if_name (6 bytes + 2 pad), no empty if_description, if_tsresol, if_filter, endofopt.
    assert_eq!(
        b[16..28],
        [2, 0, 6, 0, b'n', b'/', b'e', b't', b'h', b'0', 0, 0]
    );
    assert_eq!(b[28..36], [9, 0, 1, 0, 9, 0, 0, 0]);
    assert_eq!(b[36..44], [11, 0, 4, 0, 0, b't', b'c', b'p']);
    assert_eq!(b[44..48], [0, 0, 0, 0]);
    assert_eq!(b.len(), 52);
    assert_eq!(u32_at(&b, 48), 52);
}

#[test]
fn isb_splits_timestamps_high_then_low() {
    let stats = InterfaceStats {
        start_ns: 0x0000_0001_0000_0002,
        end_ns: 0x0000_0003_0000_0004,
        os_drop: Some(5),
        ..InterfaceStats::default()
    };
    let b = isb(2, &stats).unwrap();
    assert_eq!(u32_at(&b, 0), 5);
    assert_eq!(u32_at(&b, 8), 2);
    assert_eq!((u32_at(&b, 12), u32_at(&b, 16)), (3, 4));
    assert_eq!(b[20..32], [2, 0, 8, 0, 1, 0, 0, 0, 2, 0, 0, 0]);
    assert_eq!(b[32..44], [3, 0, 8, 0, 3, 0, 0, 0, 4, 0, 0, 0]);
    assert_eq!(b[44..48], [7, 0, 8, 0]);
    assert_eq!(b[48..56], 5u64.to_le_bytes());
    assert_eq!(b[56..60], [0, 0, 0, 0]);
    assert_eq!(b.len(), 64);
}

#[test]
fn oversized_option_names_block_and_option() {
    let section = Section {
        user_appl: "x".to_owned(),
        comment: Some("c".repeat(70_000)),
        ..Section::default()
    };
    let err = shb(&section).unwrap_err();
    assert!(matches!(
        &err,
        Error::OptionTooLong { block, option: "opt_comment", len: 70_000 } if block == "SHB"
    ));
    let iface = Interface {
        filter: Some("f".repeat(65_535)),
        ..Interface::raw("eth9", 0)
    };
    let msg = idb(4, &iface).unwrap_err().to_string();
    assert!(
        msg.contains("IDB of interface 4 (\"eth9\")") && msg.contains("if_filter"),
        "{msg}"
    );
    // The largest value that fits is accepted.
    let section = Section {
        comment: Some("c".repeat(65_535)),
        ..section
    };
    assert_eq!(shb(&section).unwrap().len() % 4, 0);
}
