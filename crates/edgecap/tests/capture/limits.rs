//! Exact limits (first hit wins), snaplen and sampling, through the real kernel.

use std::time::{Duration, Instant};

use crate::common::*;

#[test]
fn packet_limit_yields_exactly_that_many_packets() {
    if !root_or_skip() {
        return;
    }
    let lab = lab();
    let scratch = Scratch::new("plimit");
    let out = scratch.path("p.pcapng");
    let run = start(
        lab.edge_ns(0),
        &[
            "--proto",
            "udp",
            "--packets",
            "1000",
            "-w",
            out.to_str().unwrap(),
        ],
    );
    lab.send(0, &udp_packets(&lab, 1..=1500, 9, Some(100)))
        .unwrap();
    let done = run.wait(Duration::from_secs(10));
    assert!(done.status.success(), "{}", done.stderr);
    let s = done.summary();
    assert_eq!(s["stop_reason"], "packet-limit");
    assert_eq!(s["packets"], 1000);
    // -w FILE --json -q: the JSON is all of stdout, and nothing of it is on stderr.
    assert_eq!(done.stdout.lines().count(), 1, "{}", done.stdout);
    assert!(!done.stderr.contains('{'), "{}", done.stderr);
    // Exactly the first 1000 packets sent, in order.
    let m = markers(&out);
    assert_eq!(m, (1..=1000).collect::<Vec<u32>>());
    assert!(
        edgecap_tables(lab.edge_ns(0)).is_empty(),
        "rule left behind after the limit"
    );
}

#[test]
fn byte_limit_stops_before_exceeding_it() {
    if !root_or_skip() {
        return;
    }
    let lab = lab();
    let scratch = Scratch::new("blimit");
    let out = scratch.path("b.pcapng");
    // 200-byte packets: 10_000 bytes hold exactly 50 of them; 10_100 still only 50.
    let run = start(
        lab.edge_ns(0),
        &[
            "--proto",
            "udp",
            "--bytes",
            "10100",
            "-w",
            out.to_str().unwrap(),
        ],
    );
    lab.send(0, &udp_packets(&lab, 1..=120, 9, Some(200)))
        .unwrap();
    let done = run.wait(Duration::from_secs(10));
    assert!(done.status.success(), "{}", done.stderr);
    let s = done.summary();
    assert_eq!(s["stop_reason"], "byte-limit");
    assert_eq!(s["packets"], 50);
    assert_eq!(s["bytes"], 10_000);
    let reads = tshark_packets(&out);
    assert_eq!(reads.len(), 50);
    assert_eq!(
        reads.iter().map(|r| u64::from(r.cap_len)).sum::<u64>(),
        10_000
    );
}

#[test]
fn time_limit_ends_the_capture_and_first_limit_wins() {
    if !root_or_skip() {
        return;
    }
    let lab = lab();
    let scratch = Scratch::new("tlimit");
    let out = scratch.path("t.pcapng");
    let started = Instant::now();
    // A packet limit that is never reached: the time limit must win.
    let run = start(
        lab.edge_ns(0),
        &[
            "--time",
            "1500ms",
            "--packets",
            "1000000",
            "--proto",
            "udp",
            "-w",
            out.to_str().unwrap(),
        ],
    );
    lab.send(0, &udp_packets(&lab, 1..=20, 9, Some(100)))
        .unwrap();
    let done = run.wait(Duration::from_secs(10));
    let took = started.elapsed();
    assert!(done.status.success(), "{}", done.stderr);
    let s = done.summary();
    assert_eq!(s["stop_reason"], "time-limit");
    assert_eq!(s["packets"], 20);
    assert!(
        took >= Duration::from_millis(1500),
        "stopped early: {took:?}"
    );
    assert_eq!(markers(&out), (1..=20).collect::<Vec<u32>>());
}

#[test]
fn snaplen_truncates_and_keeps_the_original_length() {
    if !root_or_skip() {
        return;
    }
    let lab = lab();
    let scratch = Scratch::new("snap");
    let out = scratch.path("s.pcapng");
    let run = start(
        lab.edge_ns(0),
        &[
            "--proto",
            "udp",
            "--snaplen",
            "100",
            "--packets",
            "5",
            "-w",
            out.to_str().unwrap(),
        ],
    );
    lab.send(0, &udp_packets(&lab, 1..=5, 9, Some(1000)))
        .unwrap();
    let done = run.wait(Duration::from_secs(10));
    assert!(done.status.success(), "{}", done.stderr);
    for r in tshark_packets(&out) {
        assert_eq!((r.cap_len, r.orig_len), (100, 1000));
        assert_eq!(r.data.len(), 100);
    }
    let rows = tshark_fields(&out, &["frame.cap_len", "frame.len", "ip.len"]);
    assert_eq!(rows.len(), 5);
    for r in rows {
        assert_eq!(r[0], "100", "captured length");
        assert_eq!(r[1], "1000", "original length");
        assert_eq!(r[2], "1000", "IP header still says the real length");
    }
}

#[test]
fn sampling_keeps_about_one_in_n() {
    if !root_or_skip() {
        return;
    }
    let lab = lab();
    let scratch = Scratch::new("sample");
    let out = scratch.path("x.pcapng");
    let run = start(
        lab.edge_ns(0),
        &[
            "--proto",
            "udp",
            "--sample",
            "10",
            "-w",
            out.to_str().unwrap(),
        ],
    );
    let n = 20_000u32;
    for chunk in udp_packets(&lab, 1..=n, 9, Some(64)).chunks(2000) {
        lab.send(0, chunk).unwrap();
    }
    std::thread::sleep(Duration::from_millis(300));
    let done = run.interrupt();
    assert!(done.status.success(), "{}", done.stderr);
    let s = done.summary();
    // Binomial(20000, 0.1): mean 2000, sigma 42.4. Accept mean +- 5 sigma (false failure
    // probability below 1e-6).
    let got = s["packets"].as_u64().unwrap();
    assert!(
        (1788..=2212).contains(&got),
        "sampled {got} of {n} at 1 in 10"
    );
    // The kernel counted every matching packet before sampling and every one it logged after.
    assert_eq!(s["matched"], u64::from(n));
    assert_eq!(s["logged"], got);
    assert_eq!(s["lost"], 0);
    assert_eq!(tshark_packets(&out).len() as u64, got);
}
