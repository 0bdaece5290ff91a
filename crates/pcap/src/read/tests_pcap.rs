//! Classic pcap: both byte orders, both resolutions, and every way a file can be cut short or
//! be something else.

use std::io::{self, Read};

use super::tests_build::{ipv4_udp, pcap_header, pcap_record, read_all};
use super::{Endian, ReadError, Reader};
use crate::Format;

const US: u32 = 0xA1B2_C3D4;
const NS: u32 = 0xA1B2_3C4D;

fn two_packets(order: Endian, magic: u32) -> Vec<u8> {
    let mut f = pcap_header(order, magic, 101);
    pcap_record(
        &mut f,
        order,
        1_700_000_000,
        123_456,
        &ipv4_udp(1, 40000, 53, b"q"),
    );
    pcap_record(&mut f, order, 1_700_000_001, 7, &[0x00, 0x01]);
    f
}

#[test]
fn both_byte_orders_and_resolutions() {
    for order in [Endian::Little, Endian::Big] {
        for (magic, frac_ns) in [(US, 123_456_000), (NS, 123_456)] {
            let f = two_packets(order, magic);
            let mut r = Reader::new(&f[..]).unwrap();
            assert_eq!(r.format(), Format::Pcap);
            let i = &r.interfaces()[0];
            assert_eq!(
                (i.name.as_str(), i.named, i.linktype, i.snaplen),
                ("if0", false, 101, 65535)
            );
            let p = r.next_packet().unwrap().unwrap();
            assert_eq!(
                p.ts_ns,
                1_700_000_000 * 1_000_000_000 + frac_ns,
                "{order:?} {magic:x}"
            );
            assert_eq!((p.caplen, p.orig_len, p.interface), (29, 33, 0));
            assert_eq!(p.interface_name, "if0");
            assert_eq!(
                p.byte_order, order,
                "the packet carries the file's byte order"
            );
            assert_eq!(p.ip.unwrap().len(), 29);
            let p = r.next_packet().unwrap().unwrap();
            assert!(p.ip.is_none(), "2 bytes are no IP packet");
            assert!(r.next_packet().unwrap().is_none());
            assert!(r.next_packet().unwrap().is_none(), "end is sticky");
        }
    }
}

#[test]
fn linktype_fcs_bits_are_ignored() {
    let mut f = pcap_header(Endian::Little, US, 0x1400_0065);
    pcap_record(&mut f, Endian::Little, 1, 0, &ipv4_udp(1, 1, 2, b""));
    let r = Reader::new(&f[..]).unwrap();
    assert_eq!(r.interfaces()[0].linktype, 101);
}

#[test]
fn not_a_capture_names_the_first_bytes() {
    let e = Reader::new(&b"HELLO world"[..]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "not a pcap or pcapng file (starts with 0x48454c4c)"
    );
    assert!(e.offset().is_none());
    let e = Reader::new(&b""[..]).unwrap_err();
    assert_eq!(e.to_string(), "not a pcap or pcapng file (it is empty)");
    let e = Reader::new(&[0xD4u8, 0xC3][..]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "not a pcap or pcapng file (starts with 0xd4c3 and has only 2 bytes)"
    );
}

#[test]
fn wrong_version_is_malformed() {
    let mut f = pcap_header(Endian::Big, US, 1);
    f[4..6].copy_from_slice(&3u16.to_be_bytes());
    let e = Reader::new(&f[..]).unwrap_err();
    assert!(e.to_string().contains("pcap version 3"), "{e}");
}

#[test]
fn truncation_everywhere_names_the_offset() {
    let f = two_packets(Endian::Little, US);
    // Cut inside the file header.
    let e = Reader::new(&f[..10]).unwrap_err();
    assert!(
        matches!(
            e,
            ReadError::Truncated {
                offset: 0,
                got: 10,
                ..
            }
        ),
        "{e:?}"
    );
    // Cut inside the second record's header, then inside its data.
    let second = 24 + 16 + 29;
    for cut in [second + 5, second + 17] {
        let mut r = Reader::new(&f[..cut]).unwrap();
        assert!(r.next_packet().unwrap().is_some());
        let e = r.next_packet().unwrap_err();
        match e {
            ReadError::Truncated { offset, got, .. } => {
                assert_eq!((offset, got), (second as u64, (cut - second) as u64));
            }
            other => panic!("{other:?}"),
        }
        assert!(e.to_string().contains(&format!("offset {second}")), "{e}");
    }
}

#[test]
fn absurd_caplen_is_refused_before_allocating() {
    let mut f = pcap_header(Endian::Little, US, 101);
    f.extend_from_slice(&[0; 8]);
    f.extend_from_slice(&u32::MAX.to_le_bytes());
    f.extend_from_slice(&u32::MAX.to_le_bytes());
    let mut r = Reader::new(&f[..]).unwrap();
    let e = r.next_packet().unwrap_err();
    assert!(e.to_string().contains("at offset 24"), "{e}");
    assert!(e.to_string().contains("4294967295 captured bytes"), "{e}");
}

/// Fails after `left` bytes, like a disk error mid-file.
struct Failing<'a> {
    data: &'a [u8],
    left: usize,
}

impl Read for Failing<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Err(io::Error::other("device gone"));
        }
        let n = buf.len().min(self.left).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        self.left -= n;
        Ok(n)
    }
}

#[test]
fn source_errors_are_io_with_offset() {
    let f = two_packets(Endian::Little, NS);
    let mut r = Reader::new(Failing { data: &f, left: 30 }).unwrap();
    let e = r.next_packet().unwrap_err();
    assert!(e.is_io());
    assert_eq!(e.offset(), Some(30));
    assert_eq!(e.to_string(), "read error at offset 30: device gone");
}

#[test]
fn reads_our_own_writer() {
    use crate::{Direction, Interface, Section, Writer};
    let ip = ipv4_udp(9, 1000, 2000, b"payload");
    let w = Writer::new(
        Vec::new(),
        Format::Pcap,
        &Section::default(),
        &[Interface::raw("n/p", 0)],
    )
    .unwrap();
    let mut w = w;
    w.write_packet(0, 1_000_000_123, &ip, 0, Direction::Unknown, 0)
        .unwrap();
    let bytes = w.finish().unwrap();
    assert_eq!(read_all(&bytes), vec![(0, 1_000_000_123, 35, 35, true)]);
}
