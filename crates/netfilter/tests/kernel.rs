//! Round trip through the kernel: install a capture table built from every filter primitive in
//! a throw-away network namespace, read it back with `nft list`, and compare with the nft
//! syntax each primitive stands for. Needs root; under CI=true it fails rather than skips.
#![allow(clippy::unwrap_used)]

use std::process::Command;

use edgecap_filter::ir::{Base, CmpOp, Conjunction, Dir, Family, Match, Payload, Test};
use edgecap_netfilter::{
    CaptureTable, Counting, Hook, HookNum, NflogConfig, NflogReader, PointRules, RuleSpec,
};
use edgecap_testkit::root_or_skip;

/// A network namespace removed at drop.
struct Netns(String);

impl Netns {
    fn new() -> Self {
        let name = format!("ecnf{:08x}", rand_u32());
        assert!(
            Command::new("ip")
                .args(["netns", "add", &name])
                .status()
                .unwrap()
                .success()
        );
        Self(name)
    }
    /// Runs `f` on a thread that has entered the namespace (setns is per thread).
    fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        edgecap_netns::run(&self.0, f).unwrap()
    }
    fn nft(&self, args: &[&str]) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.0, "nft"])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn rand_u32() -> u32 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    t.subsec_nanos() ^ std::process::id().rotate_left(16)
}

fn v4(addr: &str, len: u8) -> Match {
    Match::Addr {
        dir: Dir::Src,
        addr: addr.parse().unwrap(),
        prefix_len: len,
        negate: false,
    }
}

#[test]
fn every_primitive_reads_back_as_the_nft_it_stands_for() {
    if !root_or_skip() {
        return;
    }
    let ns = Netns::new();
    let payload = |base, offset, size, mask, test| {
        Match::Payload(Payload {
            base,
            offset,
            size,
            mask,
            test,
        })
    };
    let cmp = |op, value| Test::Cmp { op, value };
    let tcp = Match::L4Proto {
        proto: 6,
        negate: false,
    };
    let cases: Vec<(Vec<Match>, &str)> = vec![
        (
            vec![Match::Family(Family::V4), v4("198.18.0.0", 15)],
            "ip saddr 198.18.0.0/15",
        ),
        (
            vec![Match::Family(Family::V4), v4("198.18.0.7", 32)],
            "ip saddr 198.18.0.7",
        ),
        (
            vec![
                Match::Family(Family::V6),
                Match::Addr {
                    dir: Dir::Dst,
                    addr: "2001:db8::".parse().unwrap(),
                    prefix_len: 32,
                    negate: true,
                },
            ],
            "ip6 daddr != 2001:db8::/32",
        ),
        (
            vec![
                Match::L4Proto {
                    proto: 17,
                    negate: false,
                },
                Match::Port {
                    dir: Dir::Dst,
                    lo: 53,
                    hi: 53,
                    negate: false,
                },
            ],
            "udp dport 53",
        ),
        (
            vec![
                tcp.clone(),
                Match::Port {
                    dir: Dir::Src,
                    lo: 1024,
                    hi: 65535,
                    negate: true,
                },
            ],
            "tcp sport != 1024-65535",
        ),
        (
            vec![Match::L4Proto {
                proto: 47,
                negate: true,
            }],
            "meta l4proto != gre",
        ),
        (
            vec![
                tcp.clone(),
                Match::TcpFlags {
                    mask: 0x12,
                    value: 0x02,
                    negate: false,
                },
            ],
            "tcp flags syn / syn,ack",
        ),
        (
            vec![
                tcp.clone(),
                Match::TcpFlags {
                    mask: 0x05,
                    value: 0,
                    negate: true,
                },
            ],
            "tcp flags fin,rst",
        ),
        (
            vec![Match::Length {
                op: CmpOp::Le,
                value: 100,
            }],
            "meta length <= 100",
        ),
        (
            vec![Match::Length {
                op: CmpOp::Gt,
                value: 1000,
            }],
            "meta length > 1000",
        ),
        (
            vec![Match::Length {
                op: CmpOp::Ne,
                value: 64,
            }],
            "meta length != 64",
        ),
        (
            vec![
                Match::Family(Family::V4),
                payload(Base::Network, 9, 1, None, cmp(CmpOp::Eq, 6)),
            ],
            "ip protocol tcp",
        ),
        (
            vec![
                Match::Family(Family::V4),
                payload(Base::Network, 6, 2, Some(0x1fff), cmp(CmpOp::Ne, 0)),
            ],
            "ip frag-off & 8191 != 0",
        ),
        (
            vec![
                Match::Family(Family::V4),
                payload(
                    Base::Network,
                    9,
                    1,
                    None,
                    Test::Set {
                        values: vec![6, 17, 132],
                        negate: false,
                    },
                ),
                payload(Base::Transport, 0, 2, None, cmp(CmpOp::Eq, 80)),
            ],
            "ip protocol { 6, 17, 132 } th sport 80",
        ),
        (
            vec![
                Match::Family(Family::V6),
                payload(
                    Base::Network,
                    6,
                    1,
                    None,
                    Test::Set {
                        values: vec![6, 17, 132],
                        negate: true,
                    },
                ),
            ],
            "ip6 nexthdr != { 6, 17, 132 }",
        ),
        (
            vec![
                Match::Family(Family::V6),
                payload(
                    Base::Network,
                    42,
                    2,
                    None,
                    Test::Range {
                        lo: 1024,
                        hi: 2048,
                        negate: true,
                    },
                ),
            ],
            "meta nfproto ipv6 @nh,336,16 != 0x400-0x800",
        ),
        (
            vec![
                Match::Family(Family::V4),
                payload(Base::Transport, 13, 1, Some(0x12), cmp(CmpOp::Eq, 2)),
            ],
            "meta nfproto ipv4 @th,104,8 & 0x12 == 0x2",
        ),
        (
            vec![
                Match::Family(Family::V4),
                payload(Base::Transport, 13, 1, None, cmp(CmpOp::Ge, 3)),
            ],
            "meta nfproto ipv4 @th,104,8 >= 0x3",
        ),
        (
            vec![
                Match::Family(Family::V4),
                payload(Base::Network, 12, 4, None, cmp(CmpOp::Lt, 0xc612_0000)),
            ],
            "ip saddr < 198.18.0.0",
        ),
    ];
    let filter: Vec<Conjunction> = cases
        .iter()
        .map(|(m, _)| Conjunction { matches: m.clone() })
        .collect();
    let listing = ns.run(move || {
        let _reader = NflogReader::bind(&NflogConfig::tuned(4242, 128)).unwrap();
        let points = [PointRules {
            label: "pre".into(),
            hooks: vec![Hook {
                hook: HookNum::Prerouting,
                priority: -310,
                device: None,
            }],
        }];
        let table = CaptureTable::install(
            "edgecap_rt",
            &points,
            &RuleSpec {
                filter: &filter,
                group: 4242,
                snaplen: 128,
                sample_one_in: Some(4),
                counting: Counting::Objects,
            },
        )
        .unwrap();
        let out = Command::new("nft")
            .args(["list", "table", "inet", "edgecap_rt"])
            .output()
            .unwrap();
        drop(table);
        String::from_utf8_lossy(&out.stdout).into_owned()
    });
    let rules: Vec<&str> = listing
        .lines()
        .map(str::trim)
        .filter(|l| l.contains("log prefix"))
        .collect();
    assert_eq!(rules.len(), cases.len(), "{listing}");
    let tail = "counter name \"pre_seen\" meta random < 1073741824 counter name \"pre_logged\" log prefix \"pre\" group 4242 snaplen 128 return";
    for ((_, want), got) in cases.iter().zip(&rules) {
        // nft prints the sampling compare with its bound as a number: 2^32 / 4.
        assert_eq!(*got, format!("{want} {tail}"), "full listing:\n{listing}");
    }
    assert!(listing.contains("flags owner"), "{listing}");
    assert!(
        listing.contains("type filter hook prerouting priority raw - 10; policy accept;"),
        "{listing}"
    );
    // The table belonged to the thread's socket, now closed: the kernel removed it.
    assert!(!ns.nft(&["list", "tables"]).contains("edgecap_rt"));
}

/// The `expr` arrays of the rules of `table` in `ns`, as `nft -j` lists them.
fn rule_exprs(ns: &str, table: &str) -> Vec<Vec<serde_json::Value>> {
    let out = Command::new("ip")
        .args([
            "netns", "exec", ns, "nft", "-j", "list", "table", "inet", table,
        ])
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    json["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| o.get("rule"))
        .map(|r| r["expr"].as_array().unwrap().clone())
        .collect()
}

/// Every kind of rule tcpdump expressions compile to, installed twice: by us over netlink, and
/// by `nft -f` from the text `render_nft` shows for it. nft must read both back as the same
/// expressions: our encoding is nft's encoding of what we display.
#[test]
fn compiled_expressions_encode_as_nft_encodes_their_rendering() {
    if !root_or_skip() {
        return;
    }
    let ns = Netns::new();
    let expressions = [
        "tcp",
        "not udp",
        "icmp6 or ip6 proto 47",
        "port 53",
        "not portrange 1000-2000",
        "tcp src port 80 and udp dst port 53",
        "host 198.18.0.1 and not net 2001:db8::/33",
        "tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn",
        "not tcp[13] > 3",
        "ip[6:2] & 0x1fff != 0 or icmp6[icmp6type] == icmp6-echo",
        "udp[4:2] < 100 and len >= 60 and less 1000",
        "icmp[icmptype] != icmp-echo and greater 64",
        "ip6[0:4] & 0xfff00000 == 0x60000000",
    ];
    let filter: Vec<Conjunction> = expressions
        .iter()
        .flat_map(|e| {
            edgecap_filter::Expression::parse(e)
                .unwrap()
                .compile()
                .unwrap()
        })
        .collect();
    let text = edgecap_filter::render_nft(&filter);
    let mut script = String::from(
        "table inet nftref {\n chain c {\n  type filter hook prerouting priority -310; policy accept;\n",
    );
    for line in &text {
        script.push_str(&format!("  {line}\n"));
    }
    script.push_str(" }\n}\n");
    let mut child = Command::new("ip")
        .args(["netns", "exec", &ns.0, "nft", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), script.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "nft refused our rendering: {}\n{script}",
        String::from_utf8_lossy(&out.stderr)
    );
    let filter_for_kernel = filter.clone();
    let ns_path = ns.0.clone();
    let ours = ns.run(move || {
        let _reader = NflogReader::bind(&NflogConfig::tuned(4243, 128)).unwrap();
        let points = [PointRules {
            label: "pre".into(),
            hooks: vec![Hook {
                hook: HookNum::Prerouting,
                priority: -310,
                device: None,
            }],
        }];
        let spec = RuleSpec {
            filter: &filter_for_kernel,
            group: 4243,
            snaplen: 128,
            sample_one_in: None,
            counting: Counting::Objects,
        };
        let table = CaptureTable::install("edgecap_json", &points, &spec).unwrap();
        // Listed while the owning socket is open; the table goes with it.
        let listed = rule_exprs(&ns_path, "edgecap_json");
        drop(table);
        listed
    });
    let theirs = rule_exprs(&ns.0, "nftref");
    assert_eq!(ours.len(), filter.len());
    assert_eq!(theirs.len(), filter.len());
    for ((mine, nft), line) in ours.iter().zip(&theirs).zip(&text) {
        // Ours end with the capture tail: counter, log, return.
        let matches = &mine[..mine.len() - 3];
        assert_eq!(matches, nft.as_slice(), "rule `{line}` differs");
    }
}

/// The largest filter (MAX_RULES rules, each with several matches and an anonymous set) on a
/// point with two hooks installs in one batch: the socket buffers hold the batch and its ACKs.
#[test]
fn the_largest_filter_installs_in_one_batch() {
    if !root_or_skip() {
        return;
    }
    let ns = Netns::new();
    // 2 directions x 128 ports = 256 rules, each: family, protocol set, fragment test, port.
    let ports: Vec<String> = (1..=64).map(|p| format!("port {p}")).collect();
    let expr =
        edgecap_filter::Expression::parse(&format!("ip and ({})", ports.join(" or "))).unwrap();
    let filter = expr.compile().unwrap();
    assert_eq!(filter.len(), 128);
    let filter: Vec<Conjunction> = filter
        .iter()
        .flat_map(|c| {
            // The same rules again with a length test, to reach the limit.
            let mut longer = c.clone();
            longer.matches.push(Match::Length {
                op: CmpOp::Ge,
                value: 100,
            });
            [c.clone(), longer]
        })
        .collect();
    assert_eq!(filter.len(), edgecap_filter::MAX_RULES);
    let ns_path = ns.0.clone();
    let listed = ns.run(move || {
        let _reader = NflogReader::bind(&NflogConfig::tuned(4244, 128)).unwrap();
        let hook = |h| Hook {
            hook: h,
            priority: 10,
            device: None,
        };
        let points = [PointRules {
            label: "post".into(),
            hooks: vec![hook(HookNum::Input), hook(HookNum::Forward)],
        }];
        let spec = RuleSpec {
            filter: &filter,
            group: 4244,
            snaplen: 128,
            sample_one_in: Some(2),
            counting: Counting::Objects,
        };
        let table = CaptureTable::install("edgecap_big", &points, &spec).unwrap();
        let listed = rule_exprs(&ns_path, "edgecap_big").len();
        drop(table);
        listed
    });
    assert_eq!(listed, 2 * edgecap_filter::MAX_RULES);
}

/// After an overrun (the kernel dropped batches because the receive buffer was full) the
/// reader counts the report and still reads the batches queued behind it: an overrun never
/// looks like a quiet socket.
#[test]
fn an_overrun_is_counted_and_the_batches_behind_it_are_still_read() {
    if !root_or_skip() {
        return;
    }
    let ns = Netns::new();
    for args in [
        &["addr", "add", "198.18.0.1/32", "dev", "lo"][..],
        &["link", "set", "lo", "up"][..],
    ] {
        assert!(
            Command::new("ip")
                .args(["-n", &ns.0])
                .args(args)
                .status()
                .unwrap()
                .success()
        );
    }
    let (first, overruns, packets) = ns.run(|| {
        let mut cfg = NflogConfig::tuned(4245, 128);
        // The smallest buffer the kernel grants: the first batch fills it.
        cfg.rcvbuf = 1;
        let mut reader = NflogReader::bind(&cfg).unwrap();
        let filter = [Conjunction {
            matches: vec![
                Match::Family(Family::V4),
                Match::Addr {
                    dir: Dir::Dst,
                    addr: "198.18.0.1".parse().unwrap(),
                    prefix_len: 32,
                    negate: false,
                },
            ],
        }];
        let points = [PointRules {
            label: "out".into(),
            hooks: vec![Hook {
                hook: HookNum::Output,
                priority: 0,
                device: None,
            }],
        }];
        let spec = RuleSpec {
            filter: &filter,
            group: 4245,
            snaplen: 128,
            sample_one_in: None,
            counting: Counting::Objects,
        };
        let _table = CaptureTable::install("edgecap_ovr", &points, &spec).unwrap();
        // Many full batches (1000 packets or 128 KiB each) while nobody reads.
        let sock = std::net::UdpSocket::bind("198.18.0.1:0").unwrap();
        for i in 0..20_000u32 {
            let _ = sock.send_to(&i.to_be_bytes(), "198.18.0.1:9");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        let first = reader.recv(std::time::Duration::from_millis(200)).unwrap();
        let mut packets = reader.packets().count();
        while reader.recv(std::time::Duration::from_millis(100)).unwrap() {
            packets += reader.packets().count();
        }
        (first, reader.stats().enobufs, packets)
    });
    assert!(overruns >= 1, "the test did not overrun the socket");
    assert!(
        first,
        "the first receive after an overrun must return the batch queued behind it"
    );
    assert!(packets > 0 && packets < 20_000, "{packets} packets read");
}

/// Both ways of counting give the same exact totals: every matching packet before sampling
/// and every packet logged after it, read back by point. In-rule counters leave no named
/// counter objects in the table and go with their chains (read while they exist).
#[test]
fn in_rule_counters_count_as_exactly_as_counter_objects() {
    if !root_or_skip() {
        return;
    }
    let ns = Netns::new();
    for args in [
        &["addr", "add", "198.18.0.1/32", "dev", "lo"][..],
        &["link", "set", "lo", "up"][..],
    ] {
        assert!(
            Command::new("ip")
                .args(["-n", &ns.0])
                .args(args)
                .status()
                .unwrap()
                .success()
        );
    }
    const SENT: u64 = 1000;
    for (i, counting) in [Counting::Objects, Counting::InRule]
        .into_iter()
        .enumerate()
    {
        let group = 4246 + i as u16;
        let table_name = format!("edgecap_cnt{i}");
        let ns_path = ns.0.clone();
        let (counters, read, listing, after_detach) = ns.run(move || {
            let mut reader = NflogReader::bind(&NflogConfig::tuned(group, 128)).unwrap();
            let filter = [Conjunction {
                matches: vec![v4("198.18.0.1", 32)],
            }];
            let points = [PointRules {
                label: "out".into(),
                hooks: vec![Hook {
                    hook: HookNum::Output,
                    priority: 0,
                    device: None,
                }],
            }];
            let spec = RuleSpec {
                filter: &filter,
                group,
                snaplen: 128,
                sample_one_in: Some(4),
                counting,
            };
            let mut table = CaptureTable::install(&table_name, &points, &spec).unwrap();
            // A listener, so no ICMP port-unreachable answers (which would match too).
            let _sink = std::net::UdpSocket::bind("198.18.0.1:9").unwrap();
            let sock = std::net::UdpSocket::bind("198.18.0.1:0").unwrap();
            for n in 0..SENT as u32 {
                sock.send_to(&n.to_be_bytes(), "198.18.0.1:9").unwrap();
            }
            let mut read = 0u64;
            while reader.recv(std::time::Duration::from_millis(300)).unwrap() {
                read += reader.packets().count() as u64;
            }
            let counters = table.counters("out").unwrap();
            let listing = String::from_utf8_lossy(
                &Command::new("ip")
                    .args(["netns", "exec", &ns_path, "nft", "list", "table", "inet"])
                    .arg(&table_name)
                    .output()
                    .unwrap()
                    .stdout,
            )
            .into_owned();
            table.detach().unwrap();
            let after_detach = table.counters("out").map_err(|e| e.to_string());
            (counters, read, listing, after_detach)
        });
        // IPv4 20 + UDP 8 + 4 bytes of payload.
        assert_eq!(counters.matched, SENT, "{counting:?}");
        assert_eq!(counters.matched_bytes, SENT * 32, "{counting:?}");
        assert_eq!(
            counters.logged, read,
            "{counting:?}: every logged packet was read"
        );
        // 1 in 4 at random: binomial, so within 6 standard deviations of a quarter (a
        // wrong bound, such as one in the wrong byte order, is off by orders of magnitude).
        let (expect, sd) = (SENT as f64 / 4.0, (SENT as f64 * 0.25 * 0.75).sqrt());
        assert!(
            (counters.logged as f64 - expect).abs() <= 6.0 * sd,
            "{counting:?}: 1 in 4 sampled, {} logged of {SENT}",
            counters.logged
        );
        match counting {
            Counting::Objects => {
                assert!(listing.contains("counter name \"out_seen\""), "{listing}");
                assert_eq!(after_detach, Ok(counters), "objects outlive the chains");
            }
            Counting::InRule => {
                assert!(!listing.contains("counter name"), "{listing}");
                assert!(listing.contains("counter packets"), "{listing}");
                let e = after_detach.unwrap_err();
                assert!(e.contains("out"), "{e}");
            }
        }
    }
}
