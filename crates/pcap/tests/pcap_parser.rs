//! pcap-parser, an independent reader, sees every block and field exactly as written.

mod common;

use common::readback::{codes, option, pcap_records, pcapng_blocks, ts};
use common::{SNAPLEN, interfaces, packets, section, stats, write_sample};
use edgecap_pcap::{Direction, Format, LINKTYPE_RAW};
use pcap_parser::pcapng::Block;

#[test]
fn pcapng_section_and_interfaces() {
    let (bytes, total) = write_sample(Vec::new(), Format::Pcapng);
    assert_eq!(bytes.len() as u64, total);
    let blocks = pcapng_blocks(&bytes);
    assert_eq!(blocks.len(), 1 + 3 + 5 + 3);

    let Block::SectionHeader(shb) = &blocks[0] else {
        panic!("first block {:?}", blocks[0])
    };
    assert_eq!(shb.bom, 0x1A2B_3C4D);
    assert!(!shb.big_endian());
    assert_eq!((shb.major_version, shb.minor_version), (1, 0));
    assert_eq!(shb.section_len, -1);
    assert_eq!(shb.block_len1, shb.block_len2);
    let want = section();
    assert_eq!(shb.shb_userappl().unwrap().unwrap(), want.user_appl);
    assert_eq!(shb.shb_os().unwrap().unwrap(), want.os.unwrap());
    assert_eq!(shb.shb_hardware().unwrap().unwrap(), want.hardware.unwrap());
    assert_eq!(
        option(&shb.options, 1).unwrap(),
        want.comment.unwrap().as_bytes()
    );
    assert_eq!(codes(&shb.options), [1, 2, 3, 4, 0]);

    for (i, want) in interfaces().iter().enumerate() {
        let Block::InterfaceDescription(idb) = &blocks[1 + i] else {
            panic!("IDB {i}")
        };
        assert_eq!(idb.linktype.0, i32::from(LINKTYPE_RAW));
        assert_eq!(idb.snaplen, SNAPLEN);
        assert_eq!(idb.block_len1, idb.block_len2);
        assert_eq!(idb.if_name().unwrap().unwrap(), want.name);
        assert_eq!(idb.if_tsresol().unwrap().unwrap(), 9);
        assert_eq!(idb.ts_resolution(), Some(1_000_000_000));
        assert_eq!(
            idb.if_description().map(Result::unwrap),
            want.description.as_deref()
        );
        let filter = want
            .filter
            .as_ref()
            .map(|f| [&[0u8][..], f.as_bytes()].concat());
        assert_eq!(option(&idb.options, 11), filter.as_deref());
        assert_eq!(codes(&idb.options).last(), Some(&0));
    }
}

#[test]
fn pcapng_packets_are_exact() {
    let (bytes, _) = write_sample(Vec::new(), Format::Pcapng);
    let blocks = pcapng_blocks(&bytes);
    let epbs: Vec<_> = blocks
        .iter()
        .filter_map(|b| {
            if let Block::EnhancedPacket(e) = b {
                Some(e)
            } else {
                None
            }
        })
        .collect();
    let want = packets();
    assert_eq!(epbs.len(), want.len());
    for (epb, p) in epbs.iter().zip(&want) {
        assert_eq!(epb.if_id, p.iface);
        assert_eq!(ts(epb.ts_high, epb.ts_low), p.ts_ns);
        assert_eq!(epb.caplen as usize, p.data.len());
        assert_eq!(epb.origlen, p.orig_len);
        assert_eq!(&epb.data[..p.data.len()], &p.data[..]);
        assert!(
            epb.data[p.data.len()..].iter().all(|&b| b == 0),
            "padding is zero"
        );
        assert_eq!(epb.data.len() % 4, 0);
        assert_eq!(epb.block_len1, epb.block_len2);

        let flags = match p.dir {
            Direction::Unknown => None,
            Direction::Inbound => Some(1u32),
            Direction::Outbound => Some(2),
        };
        let got_flags = option(&epb.options, 2).map(|v| u32::from_le_bytes(v.try_into().unwrap()));
        assert_eq!(got_flags, flags);
        let got_drops = option(&epb.options, 4).map(|v| u64::from_le_bytes(v.try_into().unwrap()));
        assert_eq!(got_drops, (p.drops > 0).then_some(p.drops));
        let mut want_codes = Vec::new();
        if flags.is_some() {
            want_codes.push(2);
        }
        if p.drops > 0 {
            want_codes.push(4);
        }
        if !want_codes.is_empty() {
            want_codes.push(0);
        }
        assert_eq!(codes(&epb.options), want_codes);
    }
}

#[test]
fn pcapng_statistics_are_exact() {
    let (bytes, _) = write_sample(Vec::new(), Format::Pcapng);
    let blocks = pcapng_blocks(&bytes);
    for (i, block) in blocks[9..].iter().enumerate() {
        let Block::InterfaceStatistics(isb) = block else {
            panic!("ISB {i}: {block:?}")
        };
        let want = stats(i as u32);
        assert_eq!(isb.if_id, i as u32);
        assert_eq!(ts(isb.ts_high, isb.ts_low), want.end_ns);
        let (h, l) = isb.isb_starttime().unwrap().unwrap();
        assert_eq!(ts(h, l), want.start_ns);
        let (h, l) = isb.isb_endtime().unwrap().unwrap();
        assert_eq!(ts(h, l), want.end_ns);
        assert_eq!(isb.isb_ifrecv().map(Result::unwrap), want.if_recv);
        assert_eq!(isb.isb_ifdrop().map(Result::unwrap), want.if_drop);
        assert_eq!(
            isb.isb_filteraccept().map(Result::unwrap),
            want.filter_accept
        );
        assert_eq!(isb.isb_osdrop().map(Result::unwrap), want.os_drop);
        assert_eq!(isb.isb_usrdeliv().map(Result::unwrap), want.usr_deliv);
        assert_eq!(
            option(&isb.options, 1),
            want.comment.as_deref().map(str::as_bytes)
        );
        assert_eq!(codes(&isb.options).last(), Some(&0));
        assert_eq!(isb.block_len1, isb.block_len2);
    }
}

#[test]
fn pcap_header_and_records_are_exact() {
    let (bytes, total) = write_sample(Vec::new(), Format::Pcap);
    assert_eq!(bytes.len() as u64, total);
    let (header, records) = pcap_records(&bytes);
    assert_eq!(header.magic_number, 0xA1B2_3C4D);
    assert!(header.is_nanosecond_precision());
    assert!(!header.is_bigendian());
    assert_eq!((header.version_major, header.version_minor), (2, 4));
    assert_eq!(header.snaplen, SNAPLEN);
    assert_eq!(header.network.0, i32::from(LINKTYPE_RAW));
    let want = packets();
    assert_eq!(records.len(), want.len());
    for (r, p) in records.iter().zip(&want) {
        // ts_usec holds nanoseconds in the 0xA1B23C4D variant.
        assert_eq!(
            u64::from(r.ts_sec) * 1_000_000_000 + u64::from(r.ts_usec),
            p.ts_ns
        );
        assert_eq!(r.caplen as usize, p.data.len());
        assert_eq!(r.origlen, p.orig_len);
        assert_eq!(r.data, &p.data[..]);
    }
}
