use super::*;
use crate::model::{LINKTYPE_ETHERNET, LINKTYPE_RAW};
use std::io;

fn section() -> Section {
    Section {
        user_appl: "edgecap test".to_owned(),
        ..Section::default()
    }
}

fn ifaces() -> Vec<Interface> {
    vec![Interface::raw("a/eth0", 128), Interface::raw("b/eth1", 128)]
}

/// A packet stream exercising every EPB shape, including sizes around the buffer capacities
/// the tests use.
fn feed<W: Write>(w: &mut Writer<W>) -> u64 {
    let data = [0x45u8; 128];
    let mut sum = 0;
    for (i, len) in [0usize, 1, 2, 3, 4, 5, 40, 64, 100, 127, 128]
        .into_iter()
        .enumerate()
    {
        let dir = [Direction::Unknown, Direction::Inbound, Direction::Outbound][i % 3];
        let drops = (i % 2) as u64 * 7;
        let iface = (i % 2) as u32;
        let expect = w.record_len(iface, len, dir, drops);
        let added = w.write_packet(iface, i as u64 * 1_000_000_007, &data[..len], 0, dir, drops);
        assert_eq!(added.unwrap(), expect);
        sum += expect;
    }
    sum
}

#[test]
fn bytes_written_matches_output_for_both_formats() {
    for format in [Format::Pcapng, Format::Pcap] {
        let ifs = ifaces();
        let mut w = Writer::new(Vec::new(), format, &section(), &ifs).unwrap();
        let header = w.bytes_written();
        let sum = feed(&mut w);
        w.write_stats(1, &InterfaceStats::default()).unwrap();
        let total = w.bytes_written();
        assert_eq!(
            total - header,
            sum + if format == Format::Pcap { 0 } else { 52 }
        );
        assert_eq!(w.buffered() as u64, total);
        let out = w.finish().unwrap();
        assert_eq!(out.len() as u64, total, "{format}");
    }
}

#[test]
fn every_buffer_capacity_produces_the_same_bytes() {
    let mut outputs = Vec::new();
    for cap in [DEFAULT_BUFFER_CAPACITY, 0, 1, 37, 100, 200, 1000] {
        let ifs = ifaces();
        let mut w = Writer::with_buffer_capacity(Vec::new(), Format::Pcapng, &section(), &ifs, cap)
            .unwrap();
        feed(&mut w);
        assert!(w.buffered() <= cap);
        outputs.push(w.finish().unwrap());
    }
    assert!(outputs.windows(2).all(|p| p[0] == p[1]));
}

#[test]
fn unknown_interface_and_oversized_packets_are_refused() {
    let ifs = ifaces();
    let mut w = Writer::new(Vec::new(), Format::Pcapng, &section(), &ifs).unwrap();
    let before = w.bytes_written();
    let err = w
        .write_packet(2, 0, &[0x45], 1, Direction::Unknown, 0)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "interface 2 is not defined: this file has 2 interface(s)"
    );
    assert!(w.write_stats(5, &InterfaceStats::default()).is_err());
    let err = w
        .write_packet(1, 0, &[0; 129], 129, Direction::Unknown, 0)
        .unwrap_err();
    assert!(matches!(
        &err,
        Error::PacketTooLong { iface: 1, name, len: 129, limit: 128 } if name == "b/eth1"
    ));
    assert_eq!(w.bytes_written(), before);
}

#[test]
fn record_len_of_absurd_sizes_does_not_overflow() {
    for format in [Format::Pcapng, Format::Pcap] {
        let w = Writer::new(Vec::new(), format, &section(), &ifaces()).unwrap();
        assert_eq!(
            w.record_len(0, usize::MAX, Direction::Outbound, 1),
            u64::MAX
        );
    }
}

#[test]
fn snaplen_zero_means_libpcap_maximum() {
    let ifs = [Interface::raw("any", 0)];
    let mut w = Writer::new(Vec::new(), Format::Pcapng, &section(), &ifs).unwrap();
    let big = vec![0x60; 262_144];
    assert!(w.write_packet(0, 0, &big, 0, Direction::Unknown, 0).is_ok());
    let bigger = vec![0x60; 262_145];
    assert!(
        w.write_packet(0, 0, &bigger, 0, Direction::Unknown, 0)
            .is_err()
    );
}

#[test]
fn orig_len_is_never_below_caplen() {
    for format in [Format::Pcapng, Format::Pcap] {
        let ifs = ifaces();
        let mut w = Writer::new(Vec::new(), format, &section(), &ifs).unwrap();
        let header = w.bytes_written() as usize;
        w.write_packet(0, 0, &[0x45; 8], 3, Direction::Unknown, 0)
            .unwrap();
        let out = w.finish().unwrap();
        let at = header + if format == Format::Pcapng { 24 } else { 12 };
        assert_eq!(out[at..at + 4], 8u32.to_le_bytes(), "{format}");
    }
}

#[test]
fn pcap_rejects_mixed_interfaces_before_touching_the_sink() {
    let mut sink = Vec::new();
    let ifs = [
        Interface::raw("a/eth0", 1500),
        Interface {
            linktype: LINKTYPE_ETHERNET,
            ..Interface::raw("a/eth1", 1500)
        },
    ];
    let err = Writer::new(&mut sink, Format::Pcap, &section(), &ifs).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("one linktype and one snaplen per file"),
        "{msg}"
    );
    assert!(
        msg.contains("interface 1 (\"a/eth1\") has linktype 1"),
        "{msg}"
    );
    assert!(
        msg.contains("interface 0 (\"a/eth0\") has linktype 101"),
        "{msg}"
    );
    assert!(sink.is_empty());

    let ifs = [
        Interface::raw("a/eth0", 1500),
        Interface::raw("a/eth1", 9000),
    ];
    let err = Writer::new(&mut sink, Format::Pcap, &section(), &ifs).unwrap_err();
    assert!(matches!(
        err,
        Error::PcapMixedInterfaces {
            snaplen: 9000,
            first_snaplen: 1500,
            ..
        }
    ));
    assert!(matches!(
        Writer::new(&mut sink, Format::Pcap, &section(), &[]),
        Err(Error::PcapNoInterface)
    ));
    assert!(sink.is_empty());
}

#[test]
fn interfaces_can_be_added_mid_stream() {
    let mut w = Writer::new(Vec::new(), Format::Pcapng, &section(), &[]).unwrap();
    assert_eq!(w.add_interface(&Interface::raw("x", 64)).unwrap(), 0);
    assert_eq!(w.add_interface(&Interface::raw("y", 64)).unwrap(), 1);
    assert_eq!(w.interface_count(), 2);
    w.write_packet(1, 0, &[0x45], 1, Direction::Inbound, 0)
        .unwrap();

    let ifs = [Interface::raw("x", 64)];
    let mut w = Writer::new(Vec::new(), Format::Pcap, &section(), &ifs).unwrap();
    let header = w.bytes_written();
    assert_eq!(w.add_interface(&Interface::raw("y", 64)).unwrap(), 1);
    assert!(w.add_interface(&Interface::raw("z", 65)).is_err());
    assert_eq!(w.bytes_written(), header);
}

#[test]
fn pcap_ignores_stats_and_rejects_far_future_timestamps() {
    let ifs = [Interface {
        linktype: LINKTYPE_RAW,
        ..Interface::raw("x", 64)
    }];
    let mut w = Writer::new(Vec::new(), Format::Pcap, &section(), &ifs).unwrap();
    w.write_stats(0, &InterfaceStats::default()).unwrap();
    assert_eq!(w.bytes_written(), 24);
    let err = w
        .write_packet(0, u64::MAX, &[0x45], 1, Direction::Unknown, 0)
        .unwrap_err();
    assert!(matches!(
        err,
        Error::TimestampOutOfRange { ts_ns: u64::MAX }
    ));
    assert_eq!(w.bytes_written(), 24);
}

/// Accepts `budget` bytes, then fails; writes at most `chunk` bytes per call.
struct FlakySink {
    out: Vec<u8>,
    budget: usize,
    chunk: usize,
    over_report: bool,
}

impl Write for FlakySink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.budget == 0 {
            return Err(io::Error::new(io::ErrorKind::StorageFull, "disk full"));
        }
        let n = buf.len().min(self.chunk).min(self.budget);
        self.out.extend_from_slice(&buf[..n]);
        self.budget -= n;
        Ok(if self.over_report { n + 1000 } else { n })
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn flaky(budget: usize, chunk: usize, over_report: bool) -> FlakySink {
    FlakySink {
        out: Vec::new(),
        budget,
        chunk,
        over_report,
    }
}

#[test]
fn short_writes_are_completed() {
    let reference = {
        let mut w = Writer::new(Vec::new(), Format::Pcapng, &section(), &ifaces()).unwrap();
        feed(&mut w);
        w.finish().unwrap()
    };
    for cap in [0, 64, DEFAULT_BUFFER_CAPACITY] {
        let sink = flaky(usize::MAX, 3, false);
        let mut w =
            Writer::with_buffer_capacity(sink, Format::Pcapng, &section(), &ifaces(), cap).unwrap();
        feed(&mut w);
        assert_eq!(w.finish().unwrap().out, reference, "capacity {cap}");
    }
}

#[test]
fn a_failed_sink_poisons_the_writer() {
    for cap in [0, 64] {
        let sink = flaky(200, 1000, false);
        let mut w =
            Writer::with_buffer_capacity(sink, Format::Pcapng, &section(), &ifaces(), cap).unwrap();
        let data = [0x45; 100];
        let err = loop {
            if let Err(e) = w.write_packet(0, 0, &data, 100, Direction::Inbound, 0) {
                break e;
            }
        };
        let msg = err.to_string();
        assert!(matches!(err, Error::Io { .. }), "{msg}");
        assert!(msg.contains("disk full"), "{msg}");
        let again = w
            .write_packet(0, 0, &data, 100, Direction::Inbound, 0)
            .unwrap_err();
        assert!(
            matches!(&again, Error::SinkFailed(m) if m.contains("disk full")),
            "{again}"
        );
        assert!(matches!(w.flush(), Err(Error::SinkFailed(_))));
        assert!(w.finish().is_err());
    }
}

#[test]
fn an_over_reporting_sink_is_an_error_not_a_panic() {
    let sink = flaky(usize::MAX, 5, true);
    let result = Writer::with_buffer_capacity(sink, Format::Pcapng, &section(), &ifaces(), 0);
    let err = result.unwrap_err();
    assert!(err.to_string().contains("reported writing"), "{err}");
}

#[test]
fn dropping_flushes_what_is_buffered() {
    let mut out = Vec::new();
    {
        let mut w = Writer::new(&mut out, Format::Pcap, &section(), &ifaces()).unwrap();
        w.write_packet(0, 0, &[0x45; 4], 4, Direction::Unknown, 0)
            .unwrap();
    }
    assert_eq!(out.len(), 24 + 16 + 4);
}

#[test]
fn format_parses_and_names_bad_values() {
    assert_eq!("pcapng".parse::<Format>().unwrap(), Format::Pcapng);
    assert_eq!("PCAP".parse::<Format>().unwrap(), Format::Pcap);
    let err = "pcap-ng".parse::<Format>().unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown capture file format \"pcap-ng\": expected \"pcapng\" or \"pcap\""
    );
    assert_eq!(Format::Pcap.to_string(), "pcap");
}
