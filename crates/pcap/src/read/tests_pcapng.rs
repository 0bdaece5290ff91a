//! pcapng: sections in both byte orders, interface options, every packet block, skipped
//! blocks, and the structural errors.

use super::tests_build::{Ng, ipv4_udp, ipv6_udp, put32, read_all};
use super::{Endian, ReadError, Reader};
use crate::Format;

const SEC: u64 = 1_700_000_000;

#[test]
fn sections_in_both_byte_orders_number_interfaces_globally() {
    let ip = ipv4_udp(7, 40000, 53, b"hello");
    let mut ng = Ng::new(Endian::Little);
    ng.idb(101, 0, &[(2, b"edge0/pre-firewall"), (3, b"the first")]);
    ng.named(101, "edge0/post-firewall");
    ng.epb(1, SEC * 1_000_000 + 5, &ip);
    ng.section(Endian::Big);
    ng.named(101, "origin/ingress");
    ng.epb(0, SEC * 1_000_000 + 9, &ip);
    let mut r = Reader::new(&ng.bytes[..]).unwrap();
    assert_eq!(r.format(), Format::Pcapng);
    let p = r.next_packet().unwrap().unwrap();
    assert_eq!((p.interface, p.interface_name), (1, "edge0/post-firewall"));
    assert_eq!(p.ts_ns, (SEC * 1_000_000 + 5) as i64 * 1000);
    assert_eq!(p.ip, Some(&ip[..]));
    assert_eq!(p.byte_order, Endian::Little);
    let p = r.next_packet().unwrap().unwrap();
    assert_eq!((p.interface, p.interface_name), (2, "origin/ingress"));
    assert_eq!(
        p.byte_order,
        Endian::Big,
        "each packet carries its own section's order"
    );
    assert!(r.next_packet().unwrap().is_none());
    let ifs = r.interfaces();
    assert_eq!(ifs.len(), 3);
    assert_eq!(ifs[0].description.as_deref(), Some("the first"));
    assert_eq!((ifs[2].section, ifs[2].byte_order), (1, Endian::Big));
}

#[test]
fn tsresol_power_of_ten_power_of_two_and_offset() {
    let ip = ipv6_udp(1, 2, b"x");
    let cases: [(&[u8], &[u8], u64, i64); 6] = [
        (
            &[9],
            &[],
            SEC * 1_000_000_000 + 1,
            (SEC * 1_000_000_000 + 1) as i64,
        ),
        (
            &[3],
            &[],
            SEC * 1000 + 250,
            (SEC * 1_000_000_000 + 250_000_000) as i64,
        ),
        (&[0], &[], SEC, (SEC * 1_000_000_000) as i64),
        // 2^-10 s per tick: 1536 ticks = 1.5 s.
        (&[0x8A], &[], 1536, 1_500_000_000),
        // 2^-30 s per tick: 2^30 ticks = 1 s.
        (&[0x9E], &[], 1 << 30, 1_000_000_000),
        // if_tsoffset -100 s on a microsecond clock.
        (&[6], &(-100i64).to_le_bytes(), 200_000_001, 100_000_001_000),
    ];
    for (resol, offset, ticks, want) in cases {
        let mut ng = Ng::new(Endian::Little);
        let mut opts: Vec<(u16, &[u8])> = vec![(9, resol)];
        if !offset.is_empty() {
            opts.push((14, offset));
        }
        ng.idb(101, 0, &opts);
        ng.epb(0, ticks, &ip);
        assert_eq!(
            read_all(&ng.bytes)[0].1,
            want,
            "tsresol {resol:?} offset {offset:?}"
        );
    }
}

#[test]
fn extreme_resolutions_saturate_instead_of_overflowing() {
    for resol in [0u8, 0x7F, 0xFF, 0x80, 0x40] {
        let mut ng = Ng::new(Endian::Big);
        ng.idb(101, 0, &[(9, &[resol]), (14, &i64::MAX.to_be_bytes())]);
        ng.epb(0, u64::MAX, &[]);
        let _ = read_all(&ng.bytes);
    }
}

#[test]
fn simple_and_obsolete_packet_blocks() {
    let ip = ipv4_udp(3, 5, 6, &[0xAB; 40]);
    let mut ng = Ng::new(Endian::Big);
    ng.idb(101, 50, &[(9, &[9])]);
    ng.epb(0, 42, &ip);
    ng.spb(ip.len() as u32, &ip); // longer than the snaplen: cut to 50
    ng.spb(10, &ip[..12]); // orig_len shorter than the data present: cut to 10
    ng.pb(0, 77, &ip);
    let got = read_all(&ng.bytes);
    assert_eq!(
        got,
        vec![
            (0, 42, 68, 68, true),
            (0, 42, 50, 68, true),
            (0, 42, 10, 10, false),
            (0, 77, 68, 68, true),
        ]
    );
    let mut r = Reader::new(&ng.bytes[..]).unwrap();
    assert!(r.next_packet().unwrap().unwrap().ts_known);
    assert!(!r.next_packet().unwrap().unwrap().ts_known);
}

#[test]
fn unknown_blocks_are_skipped() {
    let ip = ipv4_udp(3, 5, 6, b"");
    let mut ng = Ng::new(Endian::Little);
    ng.block(4, &[1, 0, 4, 0, 198, 18, 0, 1, 0, 0, 0, 0]); // name resolution
    ng.idb(101, 0, &[]);
    ng.block(5, &[0; 20]); // interface statistics
    ng.block(0x4000_0BAD, &[7; 30]); // custom, copyable
    ng.block(0x0000_000A, &[0; 9]); // decryption secrets
    ng.epb(0, 1, &ip);
    let got = read_all(&ng.bytes);
    assert_eq!(got.len(), 1);
    let r = Reader::new(&ng.bytes[..]).unwrap();
    let _ = r;
    let mut r = Reader::new(&ng.bytes[..]).unwrap();
    r.next_packet().unwrap();
    assert_eq!(
        r.interfaces()[0].name,
        "if0",
        "unnamed interface gets a synthesized name"
    );
    assert!(!r.interfaces()[0].named);
}

#[test]
fn option_strings_lose_nul_padding() {
    let mut ng = Ng::new(Endian::Little);
    ng.idb(101, 0, &[(2, b"eth0\0\0"), (3, b"")]);
    ng.epb(0, 1, &[]);
    let mut r = Reader::new(&ng.bytes[..]).unwrap();
    r.next_packet().unwrap();
    assert_eq!(r.interfaces()[0].name, "eth0");
    assert_eq!(r.interfaces()[0].description.as_deref(), Some(""));
}

fn err(bytes: &[u8]) -> ReadError {
    let mut r = match Reader::new(bytes) {
        Ok(r) => r,
        Err(e) => return e,
    };
    loop {
        match r.next_packet() {
            Ok(Some(_)) => {}
            Ok(None) => panic!("expected an error"),
            Err(e) => return e,
        }
    }
}

#[test]
fn structural_errors_name_offset_and_reason() {
    let base = || {
        let mut ng = Ng::new(Endian::Little);
        ng.idb(101, 0, &[]);
        ng
    };
    // 28 (SHB) + 20 (IDB) = 48: the next block's offset.
    let mut ng = base();
    ng.epb(3, 1, &[]);
    let e = err(&ng.bytes);
    assert_eq!(
        e.to_string(),
        "malformed file at offset 48: packet refers to interface 3 but section 0 defines 1 \
         interface(s) before it"
    );
    let mut ng = base();
    ng.epb(0, 1, &[1, 2, 3, 4]);
    let n = ng.bytes.len();
    ng.bytes[n - 4] = 99;
    assert!(
        err(&ng.bytes).to_string().contains("ends with 99"),
        "trailer mismatch"
    );
    let mut ng = base();
    put32(&mut ng.bytes, Endian::Little, 6);
    put32(&mut ng.bytes, Endian::Little, 13);
    assert!(err(&ng.bytes).to_string().contains("multiple of 4"));
    let mut ng = base();
    put32(&mut ng.bytes, Endian::Little, 6);
    put32(&mut ng.bytes, Endian::Little, 0xFFFF_FFF0);
    assert!(
        err(&ng.bytes)
            .to_string()
            .contains("more than the 16777216")
    );
    let mut ng = base();
    ng.epb(0, 1, &[1; 30]);
    let e = err(&ng.bytes[..ng.bytes.len() - 3]);
    assert!(
        matches!(e, ReadError::Truncated { offset: 48, .. }),
        "{e:?}"
    );
    // An EPB whose caplen exceeds its body.
    let mut ng = base();
    ng.epb(0, 1, &[1; 8]);
    ng.bytes[48 + 8 + 12..48 + 8 + 16].copy_from_slice(&100u32.to_le_bytes());
    assert!(
        err(&ng.bytes)
            .to_string()
            .contains("claims 100 captured bytes but holds only 8")
    );
    // An option claiming more than its block.
    let mut ng = Ng::new(Endian::Big);
    ng.idb(101, 0, &[(2, b"abcd")]);
    let opt_len_at = 28 + 8 + 8 + 2;
    ng.bytes[opt_len_at..opt_len_at + 2].copy_from_slice(&200u16.to_be_bytes());
    assert!(
        err(&ng.bytes)
            .to_string()
            .contains("option 2 claims 200 bytes")
    );
}

#[test]
fn section_header_errors() {
    let mut ng = Ng::new(Endian::Little);
    ng.bytes[8..12].copy_from_slice(&[1, 2, 3, 4]);
    assert!(
        err(&ng.bytes)
            .to_string()
            .contains("byte-order magic 0x01020304")
    );
    let mut ng = Ng::new(Endian::Big);
    ng.bytes[12..14].copy_from_slice(&2u16.to_be_bytes());
    assert!(err(&ng.bytes).to_string().contains("major version 2"));
    let ng = Ng::new(Endian::Little);
    let e = err(&ng.bytes[..20]);
    assert!(matches!(e, ReadError::Truncated { offset: 0, .. }), "{e:?}");
    // A second section whose header is cut.
    let mut ng = Ng::new(Endian::Little);
    ng.section(Endian::Big);
    let e = err(&ng.bytes[..ng.bytes.len() - 1]);
    assert!(
        matches!(e, ReadError::Truncated { offset: 28, .. }),
        "{e:?}"
    );
}

#[test]
fn reads_our_own_writer() {
    use crate::{Direction, Interface, Section, Writer};
    let ip = ipv4_udp(9, 1000, 2000, b"payload");
    let ifs = [Interface::raw("n/a", 0), Interface::raw("n/b", 0)];
    let mut w = Writer::new(Vec::new(), Format::Pcapng, &Section::default(), &ifs).unwrap();
    w.write_packet(1, 5_000_000_007, &ip, 0, Direction::Inbound, 3)
        .unwrap();
    let bytes = w.finish().unwrap();
    assert_eq!(read_all(&bytes), vec![(1, 5_000_000_007, 35, 35, true)]);
}
