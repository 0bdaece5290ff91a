//! Every supported linktype, from a hand-built frame to the IP packet; and the frames that hold
//! none.

use super::tests_build::{ipv4_udp, ipv6_udp};
use super::{Endian, ip_packet};

const LE: Endian = Endian::Little;
const BE: Endian = Endian::Big;

fn eth(ethertype_and_tags: &[u8], ip: &[u8]) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
    f.extend_from_slice(ethertype_and_tags);
    f.extend_from_slice(ip);
    f
}

#[test]
fn raw_variants() {
    let v4 = ipv4_udp(1, 2, 3, b"abc");
    let v6 = ipv6_udp(2, 3, b"abc");
    for lt in [101, 12, 14] {
        assert_eq!(ip_packet(lt, &v4, LE), Some(&v4[..]));
        assert_eq!(ip_packet(lt, &v6, BE), Some(&v6[..]));
        assert_eq!(ip_packet(lt, &[0x50; 40], LE), None, "version 5");
    }
    assert_eq!(ip_packet(228, &v4, LE), Some(&v4[..]));
    assert_eq!(ip_packet(228, &v6, LE), None);
    assert_eq!(ip_packet(229, &v6, LE), Some(&v6[..]));
    assert_eq!(ip_packet(229, &v4, LE), None);
}

#[test]
fn ip_is_trimmed_to_its_declared_length_but_never_extended() {
    let v4 = ipv4_udp(1, 2, 3, b"abc");
    let mut padded = v4.clone();
    padded.extend_from_slice(&[0; 15]);
    assert_eq!(ip_packet(101, &padded, LE), Some(&v4[..]));
    assert_eq!(
        ip_packet(101, &v4[..25], LE),
        Some(&v4[..25]),
        "snaplen cut stays"
    );
    let v6 = ipv6_udp(1, 2, b"abc");
    let mut padded = v6.clone();
    padded.push(0);
    assert_eq!(ip_packet(101, &padded, LE), Some(&v6[..]));
    assert_eq!(
        ip_packet(101, &v6[..39], LE),
        None,
        "shorter than the IPv6 header"
    );
    assert_eq!(
        ip_packet(101, &[0x46, 0, 0, 0], LE),
        None,
        "IHL past the data"
    );
}

#[test]
fn ethernet_with_tags_padding_and_pppoe() {
    let v4 = ipv4_udp(1, 2, 3, b"");
    let v6 = ipv6_udp(2, 3, b"");
    let mut short = eth(&[0x08, 0x00], &v4);
    short.resize(60, 0); // minimum frame: padding after the IP packet
    assert_eq!(ip_packet(1, &short, LE), Some(&v4[..]));
    assert_eq!(ip_packet(1, &eth(&[0x86, 0xDD], &v6), LE), Some(&v6[..]));
    let dot1q = eth(&[0x81, 0x00, 0x00, 0x2A, 0x08, 0x00], &v4);
    assert_eq!(ip_packet(1, &dot1q, LE), Some(&v4[..]));
    let qinq = eth(&[0x88, 0xA8, 0, 1, 0x81, 0x00, 0, 2, 0x86, 0xDD], &v6);
    assert_eq!(ip_packet(1, &qinq, LE), Some(&v6[..]));
    let pppoe = eth(&[0x88, 0x64, 0x11, 0, 0, 1, 0, 30, 0x00, 0x21], &v4);
    assert_eq!(ip_packet(1, &pppoe, LE), Some(&v4[..]));
    assert_eq!(ip_packet(1, &eth(&[0x08, 0x06], &[0; 28]), LE), None, "ARP");
    assert_eq!(
        ip_packet(1, &eth(&[0x81, 0x00, 0], &[]), LE),
        None,
        "cut tag"
    );
    assert_eq!(ip_packet(1, &[0; 13], LE), None);
    // A frame of nothing but tags ends the walk without an answer.
    let tags: Vec<u8> = [0x81u8, 0x00, 0, 1].repeat(20);
    assert_eq!(ip_packet(1, &eth(&tags, &[]), LE), None);
}

#[test]
fn linux_cooked_v1_and_v2() {
    let v4 = ipv4_udp(1, 2, 3, b"x");
    let mut sll = vec![0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0, 0x08, 0x00];
    sll.extend_from_slice(&v4);
    assert_eq!(ip_packet(113, &sll, LE), Some(&v4[..]));
    let v6 = ipv6_udp(1, 2, b"x");
    let mut sll2 = vec![0x86, 0xDD, 0, 0, 0, 0, 0, 3, 0, 1, 0, 6];
    sll2.extend_from_slice(&[0; 8]);
    sll2.extend_from_slice(&v6);
    assert_eq!(ip_packet(276, &sll2, LE), Some(&v6[..]));
    assert_eq!(ip_packet(276, &sll2[..19], LE), None);
    assert_eq!(ip_packet(113, &sll[..15], LE), None);
}

/// An NFLOG body: nfgenmsg, a prefix TLV, then the payload TLV, in `order`.
fn nflog(order: Endian, family: u8, ip: &[u8]) -> Vec<u8> {
    let mut f = vec![family, 0, 0, 5];
    let mut tlv = |kind: u16, value: &[u8]| {
        let len = (4 + value.len()) as u16;
        match order {
            Endian::Little => {
                f.extend_from_slice(&len.to_le_bytes());
                f.extend_from_slice(&kind.to_le_bytes());
            }
            Endian::Big => {
                f.extend_from_slice(&len.to_be_bytes());
                f.extend_from_slice(&kind.to_be_bytes());
            }
        }
        f.extend_from_slice(value);
        f.resize(f.len().div_ceil(4) * 4, 0);
    };
    tlv(1, &[0x08, 0x00, 1, 0]); // packet header
    tlv(10, b"p0\0"); // prefix, padded
    tlv(9, ip);
    f
}

#[test]
fn nflog_tlvs_in_the_files_byte_order() {
    let v4 = ipv4_udp(1, 2, 3, b"xyz");
    let v6 = ipv6_udp(2, 3, b"xyz");
    for order in [LE, BE] {
        assert_eq!(ip_packet(239, &nflog(order, 2, &v4), order), Some(&v4[..]));
        assert_eq!(ip_packet(239, &nflog(order, 10, &v6), order), Some(&v6[..]));
        assert_eq!(
            ip_packet(239, &nflog(order, 2, &v6), order),
            None,
            "family says v4"
        );
        assert_eq!(ip_packet(239, &nflog(order, 7, &v6), order), Some(&v6[..]));
    }
    // Read in the wrong order the lengths are nonsense: no packet, no panic.
    let wrong = nflog(BE, 2, &v4);
    assert_eq!(ip_packet(239, &wrong, LE), None);
    assert_eq!(
        ip_packet(239, &[2, 0, 0, 0, 0, 0, 9, 0], LE),
        None,
        "zero TLV length"
    );
    assert_eq!(ip_packet(239, &[2, 0, 0, 0], LE), None, "no payload TLV");
    assert_eq!(ip_packet(239, &[], LE), None);
}

#[test]
fn null_and_loop() {
    let v4 = ipv4_udp(1, 2, 3, b"");
    let v6 = ipv6_udp(2, 3, b"");
    let with = |fam: [u8; 4], ip: &[u8]| [&fam[..], ip].concat();
    assert_eq!(
        ip_packet(0, &with(2u32.to_le_bytes(), &v4), LE),
        Some(&v4[..])
    );
    // Written on a big-endian host, read from a little-endian file: still understood.
    assert_eq!(
        ip_packet(0, &with(2u32.to_be_bytes(), &v4), LE),
        Some(&v4[..])
    );
    assert_eq!(
        ip_packet(0, &with(30u32.to_le_bytes(), &v6), LE),
        Some(&v6[..])
    );
    assert_eq!(
        ip_packet(0, &with(24u32.to_be_bytes(), &v6), BE),
        Some(&v6[..])
    );
    assert_eq!(
        ip_packet(0, &with(2u32.to_le_bytes(), &v6), LE),
        None,
        "family mismatch"
    );
    assert_eq!(
        ip_packet(108, &with(2u32.to_be_bytes(), &v4), LE),
        Some(&v4[..])
    );
    assert_eq!(
        ip_packet(108, &with(10u32.to_be_bytes(), &v6), LE),
        Some(&v6[..])
    );
    assert_eq!(ip_packet(108, &with(7u32.to_be_bytes(), &v4), LE), None);
    assert_eq!(ip_packet(108, &[0, 0], LE), None);
}

#[test]
fn ppp_framings() {
    let v4 = ipv4_udp(1, 2, 3, b"");
    let v6 = ipv6_udp(2, 3, b"");
    let with = |head: &[u8], ip: &[u8]| [head, ip].concat();
    assert_eq!(
        ip_packet(9, &with(&[0xFF, 0x03, 0x00, 0x21], &v4), LE),
        Some(&v4[..])
    );
    assert_eq!(ip_packet(9, &with(&[0x00, 0x57], &v6), LE), Some(&v6[..]));
    assert_eq!(
        ip_packet(9, &with(&[0x21], &v4), LE),
        Some(&v4[..]),
        "compressed"
    );
    assert_eq!(
        ip_packet(50, &with(&[0xFF, 0x03, 0x00, 0x21], &v4), LE),
        Some(&v4[..])
    );
    assert_eq!(
        ip_packet(204, &with(&[1, 0xFF, 0x03, 0x00, 0x57], &v6), LE),
        Some(&v6[..])
    );
    assert_eq!(
        ip_packet(9, &with(&[0xC0, 0x21], &[1, 2, 3]), LE),
        None,
        "LCP"
    );
    assert_eq!(ip_packet(9, &[], LE), None);
    assert_eq!(ip_packet(204, &[], LE), None);
}

#[test]
fn unknown_linktypes_hold_no_ip() {
    let v4 = ipv4_udp(1, 2, 3, b"");
    for lt in [105, 147, 127, u16::MAX] {
        assert_eq!(ip_packet(lt, &v4, LE), None);
    }
}
