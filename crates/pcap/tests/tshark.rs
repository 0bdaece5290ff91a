//! Wireshark's reader (tshark, capinfos) opens the sample pcapng and sees exactly what was
//! written: packets, lengths, nanosecond timestamps, interfaces, direction, drop counts,
//! section metadata and one statistics block per interface.

mod common;

use common::{run, tool, write_sample_file};
use edgecap_pcap::Format;

const FIELDS: &[&str] = &[
    "frame.number",
    "frame.time_epoch",
    "frame.len",
    "frame.cap_len",
    "frame.interface_id",
    "frame.interface_name",
    "frame.interface_description",
    "frame.packet_flags_direction",
    "frame.drop_count",
    "ip.src",
    "ip.dst",
    "ipv6.src",
    "ipv6.dst",
    "udp.srcport",
    "tcp.srcport",
];

#[test]
fn tshark_sees_every_packet_field() {
    let Some(tshark) = tool("tshark") else { return };
    let path = write_sample_file("tshark-fields.pcapng", Format::Pcapng);
    let mut args = vec![
        "-r",
        path.to_str().unwrap(),
        "-T",
        "fields",
        "-E",
        "separator=|",
    ];
    for f in FIELDS {
        args.extend(["-e", f]);
    }
    let out = run(&tshark, &args);
    let lines: Vec<&str> = out.lines().collect();
    // Direction 1 = inbound, 2 = outbound; empty where the writer left epb_flags out.
    // Drop counts appear only where drops_before > 0.
    assert_eq!(
        lines,
        [
            "1|1700000000.123456789|60|60|0|node-a/eth0|uplink|0x00000001||10.0.0.1|10.0.0.2|||5353|",
            "2|1700000000.123456790|1500|128|1|node-a/eth1||0x00000002|3|||2001:db8::1|2001:db8::2||443",
            "3|1700000001.123456789|1500|128|2|node-b/eth0||||192.0.2.9|198.51.100.7|||1|",
            "4|1700000002.123456790|63|63|0|node-a/eth0|uplink|0x00000001|1000000000000|||2001:db8::3|2001:db8::4||22",
            "5|1700000002.123456791|29|29|1|node-a/eth1|||1|10.0.0.2|10.0.0.1|||53|",
        ]
    );
}

#[test]
fn tshark_io_stat_counts_frames_and_wire_bytes() {
    let Some(tshark) = tool("tshark") else { return };
    let path = write_sample_file("tshark-iostat.pcapng", Format::Pcapng);
    let out = run(
        &tshark,
        &["-r", path.to_str().unwrap(), "-q", "-z", "io,stat,0"],
    );
    // The single interval row: "| 0.000 <> 2.000 |      5 |  3152 |".
    let row = out
        .lines()
        .find(|l| l.contains("<>"))
        .expect("an interval row");
    let cells: Vec<&str> = row
        .split('|')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(cells[1..], ["5", "3152"], "{out}");
}

#[test]
fn capinfos_sees_section_interfaces_and_statistics() {
    let Some(capinfos) = tool("capinfos") else {
        return;
    };
    let path = write_sample_file("capinfos.pcapng", Format::Pcapng);
    let out = run(&capinfos, &[path.to_str().unwrap()]);
    let norm: Vec<String> = out
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    let has = |want: &str| {
        assert!(
            norm.iter().any(|l| l == want),
            "missing {want:?} in:\n{out}"
        )
    };
    has("File type: Wireshark/... - pcapng");
    has("File encapsulation: Raw IP");
    has("File timestamp precision: nanoseconds (9)");
    has("Number of packets: 5");
    has("First packet time: 2023-11-14 22:13:20.123456789");
    has("Last packet time: 2023-11-14 22:13:22.123456791");
    has("Capture hardware: node-a");
    has("Capture oper-sys: Linux 6.18");
    has("Capture application: edgecap-pcap tests");
    has("Capture comment: capture 7f3a: udp port 53 or tcp");
    has("Number of interfaces in file: 3");
    has("Name = node-a/eth0");
    has("Description = uplink");
    has("Filter string = meta l4proto { tcp, udp }");
    has("Name = node-b/eth0");
    has("Capture length = 128");
    let per_iface = |prefix: &str| norm.iter().filter(|l| l.starts_with(prefix)).count();
    assert_eq!(per_iface("Time precision = nanoseconds (9)"), 3, "{out}");
    assert_eq!(per_iface("Number of stat entries = 1"), 3, "{out}");
}

#[test]
fn tshark_reads_classic_pcap_with_nanoseconds() {
    let Some(tshark) = tool("tshark") else { return };
    let path = write_sample_file("tshark.pcap", Format::Pcap);
    let fields = [
        "-e",
        "frame.time_epoch",
        "-e",
        "frame.len",
        "-e",
        "frame.cap_len",
    ];
    let mut args = vec![
        "-r",
        path.to_str().unwrap(),
        "-T",
        "fields",
        "-E",
        "separator=|",
    ];
    args.extend(fields);
    let out = run(&tshark, &args);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            "1700000000.123456789|60|60",
            "1700000000.123456790|1500|128",
            "1700000001.123456789|1500|128",
            "1700000002.123456790|63|63",
            "1700000002.123456791|29|29",
        ]
    );
}
