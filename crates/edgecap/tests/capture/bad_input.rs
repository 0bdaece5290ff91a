//! Bad input: a message naming the option and the reason, exit code 2, nothing installed.

use crate::common::*;

#[test]
fn every_bad_option_is_refused_with_exit_2_and_nothing_installed() {
    if !root_or_skip() {
        return;
    }
    let lab = lab();
    let scratch = Scratch::new("bad");
    let ok_out = scratch.path("out.pcapng");
    let ok = ok_out.to_str().unwrap();
    let cases: &[(&[&str], &str, &str)] = &[
        (
            &["--src", "198.18.0.300", "-w", ok],
            "--src",
            "198.18.0.300",
        ),
        (&["--dst", "2001:db8::/129", "-w", ok], "--dst", "129"),
        // Fleet-only options on a local capture would be ignored: refused instead.
        (&["--colo", "fra1", "-w", ok], "--colo", "fleet captures"),
        (
            &["--nodes", "site=fra1", "-w", ok],
            "--nodes",
            "fleet captures",
        ),
        (
            &["--destination", "file:///tmp", "-w", ok],
            "--destination",
            "fleet captures",
        ),
        (&["--merge", "-w", ok], "--merge", "fleet captures"),
        (&["--src", "198.18.0.0/33", "-w", ok], "--src", "33"),
        (&["--dport", "70000", "-w", ok], "--dport", "70000"),
        (&["--sport", "-1", "-w", ok], "--sport", "-1"),
        (&["--proto", "tcpp", "-w", ok], "--proto", "tcpp"),
        (&["--proto", "256", "-w", ok], "--proto", "256"),
        (
            &["--proto", "icmp", "--dport", "53", "-w", ok],
            "--dport",
            "icmp",
        ),
        (
            &["--packets", "0", "-w", ok],
            "--packets",
            "greater than zero",
        ),
        (
            &["--packets", "-5", "-w", ok],
            "--packets",
            "greater than zero",
        ),
        (&["--bytes", "0", "-w", ok], "--bytes", "greater than zero"),
        (&["--time", "0", "-w", ok], "--time", "greater than zero"),
        (&["--time", "-3s", "-w", ok], "--time", "-3s"),
        (
            &["--time", "10 fortnights", "-w", ok],
            "--time",
            "fortnights",
        ),
        (
            &["--snaplen", "0", "-w", ok],
            "--snaplen",
            "greater than zero",
        ),
        (&["--snaplen", "70000", "-w", ok], "--snaplen", "65531"),
        (
            &["--sample", "0", "-w", ok],
            "--sample",
            "greater than zero",
        ),
        (
            &["--point", "after-lunch", "-w", ok],
            "--point",
            "after-lunch",
        ),
        (&["--format", "pcapx", "-w", ok], "--format", "pcapx"),
        (
            &["-w", "/nonexistent-dir/x.pcapng"],
            "-w",
            "/nonexistent-dir/x.pcapng",
        ),
        (
            &["--filter", "tcp and", "-w", ok],
            "--filter",
            "at character 8 (end of expression)",
        ),
        (
            &["--filter", "ether host 02:00:00:00:00:01", "-w", ok],
            "--filter",
            "at character 1 (\"ether\"): ether is not supported; hint: edgecap captures at the IP layer",
        ),
        (
            &["--filter", "port 80 or tcp[13] + 1 > 3", "-w", ok],
            "--filter",
            "at character 20 (\"+\"): arithmetic on packet fields is not supported",
        ),
        (
            &["--filter", "host 198.18.0.0/16", "-w", ok],
            "--filter",
            "needs net, not host",
        ),
        (
            &["--filter", "ip6 protochain 6", "-w", ok],
            "--filter",
            "protochain",
        ),
        (&["--filter", "", "-w", ok], "--filter", "empty"),
        (
            &["--filter", "udp[8:4] == 0xdeadbeef or tcp", "-w", ok],
            "--filter",
            "reads udp[8:4] == 3735928559, past the headers every such packet has",
        ),
        (
            &[
                "--point",
                "ingress",
                "--filter",
                "udp[8:4] == 0xdeadbeef",
                "-w",
                ok,
            ],
            "--filter",
            "payload fields (past the minimal headers, such as udp[8:4]) are not exact at the \
             ingress point",
        ),
        (
            &[
                "--point",
                "ingress",
                "--filter",
                "udp and less 100",
                "-w",
                ok,
            ],
            "--filter",
            "not exact at the ingress point",
        ),
        (
            &[
                "--filter",
                "(net 198.18.0.0/24 or net 198.18.1.0/24 or net 198.18.2.0/24 or \
                 net 198.18.3.0/24) and (net 198.18.4.0/24 or net 198.18.5.0/24 or \
                 net 198.18.6.0/24 or net 198.18.7.0/24) and (port 1 or port 2 or port 3 or \
                 port 4 or port 5)",
                "-w",
                ok,
            ],
            "--filter",
            "expands to 320 rules, more than the limit of 256",
        ),
        (
            // Each part alone fits; ANDed with the structured options it does not.
            &[
                "--dport",
                "1,2,3,4,5,6,7,8",
                "--filter",
                "host 198.18.0.1 or 198.18.0.2 or 198.18.0.3 or 198.18.0.4 or 198.18.0.5 or 198.18.0.6",
                "-w",
                ok,
            ],
            "--filter",
            "ANDed with the structured filter (addresses, ports, protocols) expands to 288 rules",
        ),
    ];
    for (args, option, reason) in cases {
        let mut full = vec!["capture"];
        full.extend_from_slice(args);
        let out = edgecap_in(lab.edge_ns(0), &full).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: exit code; stderr: {err}"
        );
        assert!(
            err.contains(option),
            "{args:?}: message must name {option}: {err}"
        );
        assert!(
            err.contains(reason),
            "{args:?}: message must say {reason:?}: {err}"
        );
        assert!(
            edgecap_tables(lab.edge_ns(0)).is_empty(),
            "{args:?}: something was installed"
        );
        assert!(
            !ok_out.exists(),
            "{args:?}: output file created despite bad input"
        );
    }
}
