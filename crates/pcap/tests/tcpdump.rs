//! libpcap's reader (tcpdump) opens classic pcap and single-linktype pcapng with nanosecond
//! timestamps intact, and refuses exactly the pcapng files `libpcap_incompatibility` predicts.

mod common;

use std::process::Command;

use common::{SNAPLEN, T0, ipv4_udp, run, tool, write_sample_file};
use edgecap_pcap::{
    Direction, Format, Interface, LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL2, LINKTYPE_RAW, Section,
    Writer, libpcap_incompatibility,
};

#[test]
fn tcpdump_reads_pcap_with_nanoseconds() {
    let Some(tcpdump) = tool("tcpdump") else {
        return;
    };
    let path = write_sample_file("tcpdump.pcap", Format::Pcap);
    let out = run(
        &tcpdump,
        &["-tt", "--nano", "-n", "-r", path.to_str().unwrap()],
    );
    let lines: Vec<&str> = out.lines().collect();
    let want = [
        "1700000000.123456789 IP 10.0.0.1.5353 > 10.0.0.2.53: ",
        "1700000000.123456790 IP6 2001:db8::1.443 > 2001:db8::2.50000: Flags [P.], seq 1:1441, ack 0, win 65535, length 1440",
        "1700000001.123456789 IP 192.0.2.9.1 > 198.51.100.7.2: UDP, length 1472",
        "1700000002.123456790 IP6 2001:db8::3.22 > 2001:db8::4.40000: Flags [P.], seq 1:4, ack 0, win 65535, length 3",
        "1700000002.123456791 IP 10.0.0.2.53 > 10.0.0.1.5353: ",
    ];
    assert_eq!(lines.len(), want.len(), "{out}");
    for (line, want) in lines.iter().zip(want) {
        assert!(
            line.starts_with(want),
            "{line:?} should start with {want:?}"
        );
    }
}

#[test]
fn tcpdump_reports_the_pcap_linktype_and_snaplen() {
    let Some(tcpdump) = tool("tcpdump") else {
        return;
    };
    let path = write_sample_file("tcpdump-header.pcap", Format::Pcap);
    let out = Command::new(&tcpdump)
        .args(["-n", "-r"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("link-type RAW (Raw IP), snapshot length 128"),
        "{stderr}"
    );
}

#[test]
fn tcpdump_reads_single_interface_pcapng_with_nanoseconds() {
    let Some(tcpdump) = tool("tcpdump") else {
        return;
    };
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("tcpdump-one.pcapng");
    let file = std::fs::File::create(&path).unwrap();
    let ifaces = [Interface::raw("node-a/eth0", SNAPLEN)];
    let mut w = Writer::new(file, Format::Pcapng, &Section::default(), &ifaces).unwrap();
    let p = ipv4_udp([10, 0, 0, 1], [10, 0, 0, 2], 1000, 2000, 10);
    w.write_packet(0, T0 + 7, &p, p.len() as u32, Direction::Outbound, 2)
        .unwrap();
    w.finish().unwrap();
    let out = run(
        &tcpdump,
        &["-tt", "--nano", "-n", "-r", path.to_str().unwrap()],
    );
    assert_eq!(
        out,
        "1700000000.123456796 IP 10.0.0.1.1000 > 10.0.0.2.2000: UDP, length 10\n"
    );
}

#[test]
fn libpcap_incompatibility_predicts_tcpdump() {
    let Some(tcpdump) = tool("tcpdump") else {
        return;
    };
    let iface = |name: &str, linktype: u16, snaplen: u32| Interface {
        linktype,
        ..Interface::raw(name, snaplen)
    };
    let cases = [
        vec![iface("a", LINKTYPE_RAW, 128)],
        vec![iface("a", LINKTYPE_RAW, 128), iface("b", LINKTYPE_RAW, 128)],
        vec![
            iface("a", LINKTYPE_ETHERNET, 128),
            iface("b", LINKTYPE_ETHERNET, 128),
        ],
        vec![
            iface("a", LINKTYPE_LINUX_SLL2, 128),
            iface("b", LINKTYPE_LINUX_SLL2, 128),
        ],
        vec![
            iface("a", LINKTYPE_ETHERNET, 128),
            iface("b", LINKTYPE_ETHERNET, 256),
        ],
        vec![
            iface("a", LINKTYPE_ETHERNET, 128),
            iface("b", LINKTYPE_RAW, 128),
        ],
    ];
    for (n, ifaces) in cases.iter().enumerate() {
        let path =
            std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("compat{n}.pcapng"));
        let file = std::fs::File::create(&path).unwrap();
        let mut w = Writer::new(file, Format::Pcapng, &Section::default(), ifaces).unwrap();
        let last = ifaces.len() as u32 - 1;
        w.write_packet(last, T0, &[0x45; 40], 40, Direction::Unknown, 0)
            .unwrap();
        w.finish().unwrap();
        let out = Command::new(&tcpdump)
            .args(["-n", "-r"])
            .arg(&path)
            .output()
            .unwrap();
        let predicted = libpcap_incompatibility(ifaces);
        assert_eq!(
            out.status.success(),
            predicted.is_none(),
            "case {n}: predicted {predicted:?}, tcpdump said {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn tcpdump_reads_a_merge_of_several_raw_files_with_directions_and_order() {
    use edgecap_pcap::merge::{MergeInput, MergeOptions, merge};
    let Some(tcpdump) = tool("tcpdump") else {
        return;
    };
    // Two nodes' single-point files (RAW, as edgecap writes them), one packet in and one out.
    let node = |name: &str, base: u8, ts: [u64; 2]| {
        let ifaces = [Interface::raw(format!("{name}/pre-firewall"), SNAPLEN)];
        let mut w = Writer::new(Vec::new(), Format::Pcapng, &Section::default(), &ifaces).unwrap();
        for (i, (t, dir)) in ts
            .into_iter()
            .zip([Direction::Inbound, Direction::Outbound])
            .enumerate()
        {
            let p = ipv4_udp(
                [198, 18, base, 1],
                [198, 18, base, 2],
                1000 + i as u16,
                40000,
                4,
            );
            w.write_packet(0, T0 + t, &p, p.len() as u32, dir, 0)
                .unwrap();
        }
        MergeInput::new(name, std::io::Cursor::new(w.finish().unwrap())).unwrap()
    };
    let inputs = vec![node("edge0", 0, [10, 40]), node("edge1", 1, [20, 30])];
    let (summary, bytes) = merge(inputs, Vec::new(), &MergeOptions::default(), |_| {}).unwrap();
    assert_eq!(summary.libpcap_note, None);
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("merged-raw.pcapng");
    std::fs::write(&path, bytes).unwrap();
    let out = run(
        &tcpdump,
        &["-tt", "--nano", "-n", "-r", path.to_str().unwrap()],
    );
    let lines: Vec<&str> = out.lines().collect();
    let want = [
        (
            "1700000000.123456799",
            "In",
            "198.18.0.1.1000 > 198.18.0.2.40000",
        ),
        (
            "1700000000.123456809",
            "In",
            "198.18.1.1.1000 > 198.18.1.2.40000",
        ),
        (
            "1700000000.123456819",
            "Out",
            "198.18.1.1.1001 > 198.18.1.2.40000",
        ),
        (
            "1700000000.123456829",
            "Out",
            "198.18.0.1.1001 > 198.18.0.2.40000",
        ),
    ];
    assert_eq!(lines.len(), want.len(), "{out}");
    for (line, (ts, dir, flow)) in lines.iter().zip(want) {
        // tcpdump prints SLL2's interface (index 0: "?") and direction before the packet.
        let words = line.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            words.starts_with(ts) && words.contains(&format!(" {dir} IP {flow}: UDP, length 4")),
            "{line:?} should be {ts} {dir} {flow}"
        );
    }
}
