//! The cases of the golden-byte tests, shared by `tests/golden.rs` (which compares the pure
//! builders with the recorded bytes, no root) and `examples/record_golden.rs` (which records
//! them once from the kernel path). Each is a filter and a set of capture points.

use edgecap_filter::ir::{Base, CmpOp, Conjunction, Dir, Family, Match, Payload, Test};
use edgecap_netfilter::{Hook, HookNum, PointRules};

/// One recorded capture: NFLOG bind, install, optional traffic, counters, detach, unbind.
// Each user of this file reads the fields it needs.
#[allow(dead_code)]
pub struct Case {
    pub name: &'static str,
    pub table: String,
    pub group: u16,
    pub snaplen: u32,
    pub sample_one_in: Option<u32>,
    pub filter: Vec<Conjunction>,
    pub points: Vec<PointRules>,
    /// Devices the namespace needs for the ingress hooks, made in pairs as veth peers.
    pub devices: &'static [&'static str],
    /// UDP datagrams sent from and to 198.18.0.1 over `lo` after the install; every one is
    /// logged once.
    pub datagrams: u32,
    /// Whether the kernel accepts the install batch.
    pub installs: bool,
}

/// The address the traffic of a case is sent from and to.
#[allow(dead_code)]
pub const TRAFFIC_ADDR: &str = "198.18.0.1";
/// The port it is sent to (a bound socket receives it, so no ICMP answer is logged).
#[allow(dead_code)]
pub const TRAFFIC_PORT: u16 = 9;

fn hook(hook: HookNum, priority: i32) -> Hook {
    Hook {
        hook,
        priority,
        device: None,
    }
}

fn ingress(device: &str, priority: i32) -> Hook {
    Hook {
        hook: HookNum::Ingress,
        priority,
        device: Some(device.into()),
    }
}

fn point(label: &str, hooks: Vec<Hook>) -> PointRules {
    PointRules {
        label: label.into(),
        hooks,
    }
}

fn conj(matches: Vec<Match>) -> Conjunction {
    Conjunction { matches }
}

fn addr(dir: Dir, addr: &str, prefix_len: u8, negate: bool) -> Match {
    Match::Addr {
        dir,
        addr: addr.parse().expect("a literal address"),
        prefix_len,
        negate,
    }
}

fn net_payload(offset: u16, size: u8, test: Test) -> Match {
    Match::Payload(Payload {
        base: Base::Network,
        offset,
        size,
        mask: None,
        test,
    })
}

const TCP: Match = Match::L4Proto {
    proto: 6,
    negate: false,
};

pub fn cases() -> Vec<Case> {
    vec![
        // `tcp dst port 443 or tcp[tcpflags] & (syn|ack) == syn` at prerouting.
        Case {
            name: "tcp_port_prerouting",
            table: "edgecap_g1".into(),
            group: 4301,
            snaplen: 128,
            sample_one_in: None,
            filter: vec![
                conj(vec![
                    TCP,
                    Match::Port {
                        dir: Dir::Dst,
                        lo: 443,
                        hi: 443,
                        negate: false,
                    },
                ]),
                conj(vec![
                    TCP,
                    Match::TcpFlags {
                        mask: 0x12,
                        value: 0x02,
                        negate: false,
                    },
                ]),
            ],
            points: vec![point("p0", vec![hook(HookNum::Prerouting, -310)])],
            devices: &[],
            datagrams: 0,
            installs: true,
        },
        // `src net 198.18.0.0/15 or not dst net 2001:db8::/33` at postrouting, with traffic.
        Case {
            name: "host_prefix_postrouting",
            table: "edgecap_g2".into(),
            group: 4302,
            snaplen: 96,
            sample_one_in: None,
            filter: vec![
                conj(vec![
                    Match::Family(Family::V4),
                    addr(Dir::Src, "198.18.0.0", 15, false),
                ]),
                conj(vec![
                    Match::Family(Family::V6),
                    addr(Dir::Dst, "2001:db8::", 33, true),
                ]),
            ],
            points: vec![point("p0", vec![hook(HookNum::Postrouting, 10)])],
            devices: &[],
            datagrams: 3,
            installs: true,
        },
        // `ip proto {6,17,132} and not udp src portrange 1024-2048`, `ip6 nexthdr != {6,17}`:
        // anonymous sets, a range; at ingress on two devices and at input.
        Case {
            name: "sets_ingress_devices",
            table: "edgecap_g3".into(),
            group: 4303,
            snaplen: 65535,
            sample_one_in: None,
            filter: vec![
                conj(vec![
                    Match::Family(Family::V4),
                    net_payload(
                        9,
                        1,
                        Test::Set {
                            values: vec![6, 17, 132],
                            negate: false,
                        },
                    ),
                    Match::Port {
                        dir: Dir::Src,
                        lo: 1024,
                        hi: 2048,
                        negate: true,
                    },
                ]),
                conj(vec![
                    Match::Family(Family::V6),
                    net_payload(
                        6,
                        1,
                        Test::Set {
                            values: vec![6, 17],
                            negate: true,
                        },
                    ),
                ]),
            ],
            points: vec![
                point(
                    "p0",
                    vec![ingress("ecgold0", -500), ingress("ecgold1", -500)],
                ),
                point("p1", vec![hook(HookNum::Input, 0)]),
            ],
            devices: &["ecgold0", "ecgold1"],
            datagrams: 0,
            installs: true,
        },
        // `len >= 100 or (ip and ip[6:2] < 0x4000)`, one packet in 4, at three points.
        Case {
            name: "length_sampled_three_points",
            table: "edgecap_g4".into(),
            group: 4304,
            snaplen: 256,
            sample_one_in: Some(4),
            filter: vec![
                conj(vec![Match::Length {
                    op: CmpOp::Ge,
                    value: 100,
                }]),
                conj(vec![
                    Match::Family(Family::V4),
                    net_payload(
                        6,
                        2,
                        Test::Cmp {
                            op: CmpOp::Lt,
                            value: 0x4000,
                        },
                    ),
                ]),
            ],
            points: vec![
                point("p0", vec![hook(HookNum::Prerouting, -310)]),
                point("p1", vec![hook(HookNum::Output, 0)]),
                point("p2", vec![hook(HookNum::Postrouting, 100)]),
            ],
            devices: &[],
            datagrams: 0,
            installs: true,
        },
        // A table name longer than nf_tables allows (255 bytes): the kernel refuses the batch
        // and says why in an extended ACK.
        Case {
            name: "long_name_refused",
            table: format!("edgecap_{}", "x".repeat(300)),
            group: 4305,
            snaplen: 128,
            sample_one_in: None,
            filter: vec![conj(vec![TCP])],
            points: vec![point("p0", vec![hook(HookNum::Input, 0)])],
            devices: &[],
            datagrams: 0,
            installs: false,
        },
    ]
}
