//! `fate` on multi-point captures with known drops: exact counts per flow and point, and the
//! sentences.

use edgecap_analyze::{FateReport, Options, fate_text};

use crate::common::{T0, fate, fate_with, pcapng, pcapng_described, udp};

const POINTS: [&str; 3] = ["edge0/pre-firewall", "edge0/post-firewall", "edge0/egress"];

/// The scenario: one flow dropped by the firewall, one losing 3 packets after it, one
/// intact; each packet logged at successive points 1 µs apart.
fn pipeline() -> Vec<u8> {
    let mut pk = Vec::new();
    let mut t = T0;
    for i in 0..152u16 {
        t += 1_000_000;
        let (flow, reach) = match i {
            0..42 => (udp(40000, 53, i), 1),
            42..142 => (
                udp(40001, 5353, i),
                if [50, 60, 70].contains(&i) { 2 } else { 3 },
            ),
            _ => (udp(40002, 80, i), 3),
        };
        for point in 0..reach {
            pk.push((point, t + u64::from(point) * 1000, flow.clone()));
        }
    }
    pcapng(&POINTS, &pk)
}

#[test]
fn dropped_partially_lost_and_intact_flows() {
    let r = fate(&pipeline());
    assert_eq!(
        (r.packets, r.non_ip_packets, r.nodes.len()),
        (152 + 110 + 107, 0, 1)
    );
    let n = &r.nodes[0];
    assert_eq!(n.node.as_deref(), Some("edge0"));
    assert_eq!(n.points, ["pre-firewall", "post-firewall", "egress"]);
    assert_eq!(n.packets, [152, 110, 107]);
    assert_eq!(n.flows_total, 3);
    let f = &n.flows;
    assert_eq!(f[0].packets, [42, 0, 0]);
    assert_eq!(
        f[0].verdict,
        "42 packets of udp 198.18.0.2:40000 > 198.18.1.2:53 seen at pre-firewall, 0 at \
         post-firewall: dropped between them"
    );
    assert_eq!(
        (f[0].affected, f[0].lost[0].packets, f[0].lost[0].of),
        (42, 42, 42)
    );
    assert_eq!(f[1].packets, [100, 100, 97]);
    assert_eq!(
        f[1].verdict,
        "3 of 100 packets of udp 198.18.0.2:40001 > 198.18.1.2:5353 lost between post-firewall \
         and egress"
    );
    assert_eq!(f[2].packets, [10, 10, 10]);
    assert_eq!(
        f[2].verdict,
        "10 packets of udp 198.18.0.2:40002 > 198.18.1.2:80 seen at every point"
    );
    assert!(r.warnings.is_empty() && r.error.is_none());
}

#[test]
fn equal_totals_still_show_the_lost_and_the_new_packet() {
    let mut pk = Vec::new();
    for i in 0..10u16 {
        pk.push((0, T0 + u64::from(i) * 10, udp(1, 2, i)));
        if i != 4 {
            pk.push((1, T0 + u64::from(i) * 10 + 1, udp(1, 2, i)));
        }
    }
    pk.push((1, T0 + 200, udp(1, 2, 100)));
    let r = fate(&pcapng(&POINTS[..2], &pk));
    let f = &r.nodes[0].flows[0];
    assert_eq!(f.packets, [10, 10]);
    assert_eq!(
        f.verdict,
        "1 of 10 packets of udp 198.18.0.2:1 > 198.18.1.2:2 lost between pre-firewall and \
         post-firewall; 1 packet first seen at post-firewall (not at earlier points)"
    );
    assert_eq!(f.appeared[0].point, "post-firewall");
}

#[test]
fn duplicates_match_one_to_one_and_gaps_are_missed_not_lost() {
    let dup = udp(7, 8, 1);
    let pk = vec![
        (0, T0, dup.clone()),
        (0, T0 + 1, dup.clone()),
        (1, T0 + 2, dup.clone()), // only one of the two copies passes
        (2, T0 + 3, dup.clone()),
        (0, T0 + 10, udp(7, 8, 2)),
        (2, T0 + 12, udp(7, 8, 2)), // not logged at post-firewall
    ];
    let r = fate(&pcapng(&POINTS, &pk));
    let f = &r.nodes[0].flows[0];
    assert_eq!(f.packets, [3, 1, 2]);
    assert_eq!(f.lost.len(), 1);
    assert_eq!(
        (f.lost[0].after.as_str(), f.lost[0].packets),
        ("pre-firewall", 1)
    );
    assert_eq!(
        (f.missed[0].point.as_str(), f.missed[0].packets),
        ("post-firewall", 1)
    );
    assert_eq!(f.affected, 2);
    assert!(
        f.verdict
            .ends_with("1 packet not seen at post-firewall but seen before and after it"),
        "{}",
        f.verdict
    );
}

#[test]
fn points_are_ordered_by_pipeline_not_file_order() {
    // File order egress, pre-firewall, post-firewall; an operator point described the way
    // edgecap describes it sits between pre-firewall and post-firewall.
    let ifs = [
        ("edge0/egress", ""),
        ("edge0/pre-firewall", ""),
        ("edge0/post-firewall", ""),
        (
            "edge0/after-ddos",
            "edgecap capture 01 at after-ddos on edge0 (NFLOG group 9; prerouting priority -149)",
        ),
    ];
    let p = udp(1, 2, 3);
    let pk = vec![
        (1, T0, p.clone()),
        (3, T0 + 1, p.clone()),
        (2, T0 + 2, p.clone()),
    ];
    let r = fate(&pcapng_described(&ifs, &pk));
    let n = &r.nodes[0];
    assert_eq!(
        n.points,
        ["pre-firewall", "after-ddos", "post-firewall", "egress"]
    );
    assert_eq!(n.flows[0].packets, [1, 1, 1, 0]);
    assert!(
        n.flows[0]
            .verdict
            .ends_with("seen at post-firewall, 0 at egress: dropped between them")
    );
}

#[test]
fn nodes_are_separate_and_unnamed_interfaces_are_points_in_file_order() {
    let names = [
        "edge0/pre-firewall",
        "edge1/pre-firewall",
        "edge0/egress",
        "edge1/egress",
    ];
    let p = udp(1, 2, 3);
    let pk = vec![
        (0, T0, p.clone()),
        (2, T0 + 1, p.clone()),
        (1, T0 + 2, p.clone()),
    ];
    let r = fate(&pcapng(&names, &pk));
    let by: Vec<_> = r
        .nodes
        .iter()
        .map(|n| (n.node.clone().unwrap(), n.flows[0].packets.clone()))
        .collect();
    assert_eq!(
        by,
        [
            ("edge0".to_owned(), vec![1, 1]),
            ("edge1".to_owned(), vec![1, 0])
        ]
    );
    assert!(r.nodes.iter().all(|n| n.note.is_none()));

    let r = fate(&pcapng(
        &["eth1", "eth0"],
        &[(0, T0, p.clone()), (1, T0 + 1, p.clone())],
    ));
    let n = &r.nodes[0];
    assert_eq!(
        (n.node.as_deref(), n.points.as_slice()),
        (None, &["eth1".to_owned(), "eth0".to_owned()][..])
    );
    assert!(
        n.note
            .as_deref()
            .unwrap()
            .contains("not named <node>/<point>")
    );
    assert!(fate_text(&r, "f").contains("(interfaces are not named <node>/<point>"));
}

#[test]
fn the_window_decides_when_a_late_packet_is_another_packet() {
    let p = udp(1, 2, 3);
    let pk = vec![(0, T0, p.clone()), (1, T0 + 20_000_000_000, p.clone())];
    let file = pcapng(&POINTS[..2], &pk);
    let r = fate(&file);
    assert_eq!(
        r.nodes[0].flows[0].affected, 1,
        "20 s apart: lost, then a new packet"
    );
    assert_eq!(r.nodes[0].flows[0].appeared.len(), 1);
    let wide = Options {
        window_ns: 30_000_000_000,
        ..Options::default()
    };
    assert_eq!(fate_with(&file, wide).nodes[0].flows[0].affected, 0);
}

#[test]
fn a_full_window_is_reported() {
    let mut pk = Vec::new();
    for i in 0..10u16 {
        pk.push((0, T0 + u64::from(i), udp(1, 2, i)));
    }
    for i in 0..10u16 {
        pk.push((1, T0 + 100 + u64::from(i), udp(1, 2, i)));
    }
    let tight = Options {
        max_pending: 4,
        ..Options::default()
    };
    let r = fate_with(&pcapng(&POINTS[..2], &pk), tight);
    assert!(
        r.warnings[0].contains("more than 4 were waiting"),
        "{:?}",
        r.warnings
    );
    assert_eq!(r.nodes[0].flows[0].packets, [10, 10], "counts stay exact");
}

#[test]
fn non_ip_frames_count_per_point_but_in_no_flow() {
    let pk = vec![(0, T0, vec![0x00, 0x01, 0x02]), (0, T0 + 1, udp(1, 2, 3))];
    let r = fate(&pcapng(&POINTS[..1], &pk));
    assert_eq!((r.packets, r.non_ip_packets), (2, 1));
    assert_eq!(r.nodes[0].packets, [2]);
    assert_eq!(
        r.nodes[0].flows[0].verdict,
        "1 packet of udp 198.18.0.2:1 > 198.18.1.2:2 seen at pre-firewall (the only point)"
    );
}

#[test]
fn json_and_text_forms() {
    let mut r = fate(&pipeline());
    r.limit(2);
    assert_eq!((r.nodes[0].flows.len(), r.nodes[0].flows_total), (2, 3));
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["nodes"][0]["flows"][0]["flow"]["dst_port"], 53);
    assert_eq!(json["nodes"][0]["flows"][0]["flow"]["src"], "198.18.0.2");
    assert_eq!(
        json["nodes"][0]["flows"][1]["lost"][0]["after"],
        "post-firewall"
    );
    assert!(json.get("error").is_none());
    let back: FateReport = serde_json::from_value(json).unwrap();
    assert_eq!(back, r);
    let text = fate_text(&r, "cap.pcapng");
    let want = "\
cap.pcapng: 369 packets, 3 flows on 1 node(s)

node edge0: pre-firewall > post-firewall > egress
  FLOW                                    PRE-FIREWALL  POST-FIREWALL  EGRESS
  udp 198.18.0.2:40000 > 198.18.1.2:53              42              0       0
    42 packets seen at pre-firewall, 0 at post-firewall: dropped between them
  udp 198.18.0.2:40001 > 198.18.1.2:5353           100            100      97
    3 of 100 packets lost between post-firewall and egress
  all packets                                      152            110     107
    (1 more flows not shown; --top 0 shows all)
";
    assert_eq!(text, want, "\n{text}");
}
