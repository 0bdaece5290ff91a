//! Safe on a production node: verdicts unchanged, nothing left behind after any kind of exit,
//! concurrent captures, clear refusals, and loss counted exactly.

use std::process::{Command, Stdio};
use std::time::Duration;

use edgecap_lab::Lab;

use crate::common::*;

/// Packets that reached the origin, counted by an nft counter in its prerouting.
fn origin_counter(lab: &Lab, action: &str) -> u64 {
    let ns = lab.origin_ns();
    if action == "install" {
        let rules = "table inet test_arrivals { chain c { type filter hook prerouting priority -400; udp dport 7777 counter; }; }";
        let mut c = Command::new("ip")
            .args(["netns", "exec", ns, "nft", "-f", "-"])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        c.stdin.take().unwrap().write_all(rules.as_bytes()).unwrap();
        assert!(c.wait().unwrap().success());
        return 0;
    }
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            ns,
            "nft",
            "list",
            "table",
            "inet",
            "test_arrivals",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let at = text.find("counter packets ").expect("counter present") + "counter packets ".len();
    text[at..]
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn capturing_never_changes_what_the_node_forwards() {
    if !root_or_skip() {
        return;
    }
    let lab = lab();
    let scratch = Scratch::new("verdict");
    origin_counter(&lab, "install");
    // Both points at once, each in its own process: every packet still reaches the origin.
    let a = scratch.path("pre.pcapng");
    let b = scratch.path("post.pcapng");
    let pre = start(
        lab.edge_ns(0),
        &[
            "--point",
            "pre-firewall",
            "--dport",
            "7777",
            "-w",
            a.to_str().unwrap(),
        ],
    );
    let post = start(
        lab.edge_ns(0),
        &[
            "--point",
            "post-firewall",
            "--dport",
            "7777",
            "-w",
            b.to_str().unwrap(),
        ],
    );
    lab.send(0, &udp_packets(&lab, 1..=300, 7777, None))
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let d1 = pre.interrupt();
    let d2 = post.interrupt();
    assert!(
        d1.status.success() && d2.status.success(),
        "{}\n{}",
        d1.stderr,
        d2.stderr
    );
    assert_eq!(
        origin_counter(&lab, "read"),
        300,
        "the origin must receive every packet"
    );
    assert_eq!(markers(&a), (1..=300).collect::<Vec<_>>());
    assert_eq!(markers(&b), (1..=300).collect::<Vec<_>>());
    // Two captures at once used two different NFLOG groups.
    assert_ne!(d1.summary()["group"], d2.summary()["group"]);
}

#[test]
fn sigint_and_sigterm_leave_a_complete_file_and_no_rule() {
    if !root_or_skip() {
        return;
    }
    let lab = lab();
    let scratch = Scratch::new("signals");
    for sig in ["INT", "TERM"] {
        let out = scratch.path(&format!("{sig}.pcapng"));
        let run = start(
            lab.edge_ns(0),
            &["--proto", "udp", "-w", out.to_str().unwrap()],
        );
        lab.send(0, &udp_packets(&lab, 1..=50, 9, None)).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        run.signal(sig);
        let done = run.wait(Duration::from_secs(5));
        assert!(done.status.success(), "SIG{sig}: {}", done.stderr);
        assert_eq!(done.summary()["stop_reason"], "stopped");
        assert_eq!(markers(&out), (1..=50).collect::<Vec<_>>(), "SIG{sig}");
        // The file is complete: capinfos reads it to the end without complaint.
        let ci = Command::new("capinfos").arg(&out).output().unwrap();
        assert!(
            ci.status.success(),
            "capinfos: {}",
            String::from_utf8_lossy(&ci.stderr)
        );
        assert!(
            edgecap_tables(lab.edge_ns(0)).is_empty(),
            "SIG{sig}: table left behind"
        );
    }
}

#[test]
fn kill_9_leaves_no_rule_and_frees_the_group() {
    if !root_or_skip() {
        return;
    }
    let lab = lab();
    let scratch = Scratch::new("kill9");
    let out = scratch.path("k.pcapng");
    let group = "61234";
    let run = start(
        lab.edge_ns(0),
        &["--group", group, "-w", out.to_str().unwrap()],
    );
    assert_eq!(edgecap_tables(lab.edge_ns(0)).len(), 1);
    run.signal("KILL");
    let _ = run.wait(Duration::from_secs(5));
    assert!(
        wait_for(Duration::from_secs(2), || edgecap_tables(lab.edge_ns(0))
            .is_empty()),
        "the kernel must drop the owned table when the process dies"
    );
    // The group is free again: a new capture binds it.
    let out2 = scratch.path("k2.pcapng");
    let again = start(
        lab.edge_ns(0),
        &["--group", group, "-w", out2.to_str().unwrap()],
    );
    let done = again.interrupt();
    assert!(done.status.success(), "{}", done.stderr);
}

#[test]
fn a_taken_group_is_refused_clearly_and_installs_nothing() {
    if !root_or_skip() {
        return;
    }
    let lab = lab();
    let scratch = Scratch::new("busy");
    let first = start(
        lab.edge_ns(0),
        &[
            "--group",
            "61235",
            "-w",
            scratch.path("a.pcapng").to_str().unwrap(),
        ],
    );
    let out = edgecap_in(lab.edge_ns(0), &["capture", "--group", "61235", "-w"])
        .arg(scratch.path("b.pcapng"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("NFLOG group 61235 is already bound"), "{err}");
    assert_eq!(
        edgecap_tables(lab.edge_ns(0)).len(),
        1,
        "only the first capture's table"
    );
    assert!(
        !scratch.path("b.pcapng").exists(),
        "no empty file left behind"
    );
    first.interrupt();

    // tcpdump holding the group is refused the same way.
    let mut td = Command::new("ip")
        .args([
            "netns",
            "exec",
            lab.edge_ns(0),
            "tcpdump",
            "-i",
            "nflog:61236",
            "-w",
            "/dev/null",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let out = edgecap_in(lab.edge_ns(0), &["capture", "--group", "61236", "-w"])
        .arg(scratch.path("c.pcapng"))
        .output()
        .unwrap();
    let _ = td.kill();
    let _ = td.wait();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("already bound"), "{err}");
    assert!(edgecap_tables(lab.edge_ns(0)).is_empty());
}

#[test]
fn not_root_is_refused_clearly() {
    if !root_or_skip() {
        return;
    }
    let lab = lab();
    let scratch = Scratch::new("noroot");
    std::fs::set_permissions(
        &scratch.0,
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            lab.edge_ns(0),
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            BIN,
            "capture",
            "-w",
        ])
        .arg(scratch.path("n.pcapng"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("root or CAP_NET_ADMIN"), "{err}");
    assert!(edgecap_tables(lab.edge_ns(0)).is_empty());
}

#[test]
fn loss_is_counted_exactly_and_recorded_in_the_file() {
    if !root_or_skip() {
        return;
    }
    let lab = lab();
    let scratch = Scratch::new("loss");
    let out = scratch.path("l.pcapng");
    // A tiny socket buffer and a paused reader force the kernel to drop batches.
    let run = start(
        lab.edge_ns(0),
        &[
            "--proto",
            "udp",
            "--buffer",
            "4096",
            "-w",
            out.to_str().unwrap(),
        ],
    );
    run.signal("STOP");
    let n = 3500u32;
    let all = udp_packets(&lab, 1..=n, 9, None);
    for chunk in all[..3000].chunks(500) {
        lab.send(0, chunk).unwrap();
        std::thread::sleep(Duration::from_millis(30));
    }
    run.signal("CONT");
    std::thread::sleep(Duration::from_millis(300));
    // Packets after the loss arrive with a sequence gap before them.
    lab.send(0, &all[3000..]).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let done = run.interrupt();
    assert!(done.status.success(), "{}", done.stderr);
    let s = done.summary();
    let packets = s["packets"].as_u64().unwrap();
    let lost = s["lost"].as_u64().unwrap();
    assert!(lost > 0, "the test did not force any loss: {s}");
    assert_eq!(
        packets + lost,
        u64::from(n),
        "captured + lost must equal what the kernel logged"
    );
    assert_eq!(s["logged"], u64::from(n));
    // In the file: per-packet drop counts add up to the loss seen between packets, and the
    // interface statistics block carries the total.
    let rows = tshark_fields(&out, &["frame.drop_count"]);
    let between: u64 = rows.iter().filter_map(|r| r[0].parse::<u64>().ok()).sum();
    assert!(
        between <= lost && between > 0,
        "drop counts {between}, lost {lost}"
    );
    assert_eq!(tshark_packets(&out).len() as u64, packets);
    // The interface statistics block: matched, logged, lost and written, as the summary says.
    assert_eq!(
        isb_counters(&out),
        vec![(
            0,
            Some(u64::from(n)),
            Some(u64::from(n)),
            Some(lost),
            Some(packets)
        )]
    );
}
