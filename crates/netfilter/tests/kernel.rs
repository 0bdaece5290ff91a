//! Round trip through the kernel: install a capture table built from every filter primitive in
//! a throw-away network namespace, read it back with `nft list`, and compare with the nft
//! syntax each primitive stands for. Needs root; under CI=true it fails rather than skips.
#![allow(clippy::unwrap_used)]

use std::os::fd::AsRawFd;
use std::process::Command;

use edgecap_filter::ir::{Conjunction, Dir, Family, LenOp, Match};
use edgecap_netfilter::{
    CaptureTable, Hook, HookNum, NflogConfig, NflogReader, PointRules, RuleSpec,
};

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root && std::env::var("CI").as_deref() == Ok("true") {
        panic!("needs root and CI=true forbids skipping");
    }
    root
}

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
    fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/run/netns/{}", self.0);
        std::thread::spawn(move || {
            let fd = std::fs::File::open(&path).unwrap();
            // SAFETY: fd is a valid namespace file descriptor for the lifetime of the call.
            let rc = unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .unwrap()
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
    if !is_root() {
        return;
    }
    let ns = Netns::new();
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
                op: LenOp::Le,
                value: 100,
            }],
            "meta length <= 100",
        ),
        (
            vec![Match::Length {
                op: LenOp::Gt,
                value: 1000,
            }],
            "meta length > 1000",
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
    let tail = "counter name \"pre_seen\" numgen random mod 4 0 counter name \"pre_logged\" log prefix \"pre\" group 4242 snaplen 128 return";
    for ((_, want), got) in cases.iter().zip(&rules) {
        // nft prints the sampling compare as `numgen random mod 4 0` (equality implied).
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
