//! The detector: sustain, cooldown, budgets, baseline, below, per destination, bounds.

use super::*;
use edgecap_model::request::AccountLimits;
use serde_json::json;

fn trigger(condition: serde_json::Value, extra: serde_json::Value) -> Trigger {
    let mut b = json!({
        "scope": {"colo_name": "fra"},
        "condition": condition,
        "capture": {"time_limit": 30, "byte_limit": 1_000_000, "destination_conf": "file:///x"},
        "cooldown_seconds": 0,
        "budget": {"captures_per_hour": 60},
    });
    for (k, v) in extra.as_object().unwrap() {
        b[k] = v.clone();
    }
    edgecap_model::trigger::validate_trigger(&b, &AccountLimits::default())
        .unwrap()
        .0
}

fn scope(t: u64, v: f64) -> Observation {
    Observation {
        t,
        scope: v,
        destinations: vec![],
    }
}

/// Feeds `values` from second 100 on; the decisions with their seconds.
fn run(d: &mut Detector, values: &[f64]) -> Vec<Decision> {
    values
        .iter()
        .enumerate()
        .flat_map(|(i, v)| d.second(&scope(100 + i as u64, *v)))
        .collect()
}

fn fires(ds: &[Decision]) -> Vec<u64> {
    ds.iter()
        .filter_map(|d| match d {
            Decision::Fire { at, .. } => Some(*at),
            _ => None,
        })
        .collect()
}

#[test]
fn fires_only_after_the_condition_held_sustained_seconds_in_a_row() {
    let t = trigger(
        json!({"metric": "packets_per_second", "above": 100, "sustained_seconds": 3}),
        json!({}),
    );
    let mut d = Detector::new(t);
    // Two seconds above, one below, then three above: fires on the third of those.
    let ds = run(&mut d, &[500.0, 500.0, 50.0, 500.0, 700.0, 600.0, 600.0]);
    assert_eq!(fires(&ds), vec![105]);
    match &ds[0] {
        Decision::Fire {
            key,
            started,
            peak,
            value,
            ..
        } => {
            assert_eq!(*key, None);
            assert_eq!(*started, 103);
            assert_eq!(*peak, 700.0);
            assert_eq!(*value, 600.0);
        }
        other => panic!("{other:?}"),
    }
    // Exactly at the threshold does not hold.
    let mut d = Detector::new(trigger(
        json!({"metric": "packets_per_second", "above": 100, "sustained_seconds": 1}),
        json!({}),
    ));
    assert!(run(&mut d, &[100.0, 100.0]).is_empty());
}

#[test]
fn a_missing_second_breaks_the_run() {
    let mut d = Detector::new(trigger(
        json!({"metric": "packets_per_second", "above": 100, "sustained_seconds": 3}),
        json!({}),
    ));
    assert!(d.second(&scope(10, 500.0)).is_empty());
    assert!(d.second(&scope(11, 500.0)).is_empty());
    // Second 12 never came (the agent was busy): 13 and 14 are a new run of two.
    assert!(d.second(&scope(13, 500.0)).is_empty());
    assert!(d.second(&scope(14, 500.0)).is_empty());
    assert_eq!(fires(&d.second(&scope(15, 500.0))), vec![15]);
    // An old second is ignored.
    assert!(d.second(&scope(12, 500.0)).is_empty());
}

#[test]
fn the_cooldown_holds_between_captures_and_the_run_reports_its_end() {
    let mut d = Detector::new(trigger(
        json!({"metric": "packets_per_second", "above": 100, "sustained_seconds": 1}),
        json!({"cooldown_seconds": 10}),
    ));
    // A flood of 25 s: fires at once, then every 10 s while it lasts.
    let mut values = vec![1000.0; 25];
    values.push(0.0);
    let ds = run(&mut d, &values);
    assert_eq!(fires(&ds), vec![100, 110, 120]);
    assert_eq!(
        ds.last(),
        Some(&Decision::Ended {
            key: None,
            started: 100,
            ended: 124,
            peak: 1000.0
        })
    );
    // A new flood within the cooldown of the last capture is refused once, then fires when
    // the cooldown has passed.
    let mut d = Detector::new(trigger(
        json!({"metric": "packets_per_second", "above": 100, "sustained_seconds": 1}),
        json!({"cooldown_seconds": 10}),
    ));
    let ds = run(
        &mut d,
        &[
            500.0, 0.0, 500.0, 500.0, 500.0, 0.0, 0.0, 0.0, 0.0, 0.0, 500.0,
        ],
    );
    assert_eq!(fires(&ds), vec![100, 110]);
    let refused: Vec<_> = ds
        .iter()
        .filter(|d| matches!(d, Decision::Refused { .. }))
        .collect();
    assert_eq!(
        refused,
        vec![&Decision::Refused {
            key: None,
            started: 102,
            at: 102,
            peak: 500.0,
            why: Refusal::Cooldown
        }]
    );
}

/// The seconds of the asks among `ds`, with their reservations.
fn asks(ds: &[Decision]) -> Vec<(u64, u64)> {
    ds.iter()
        .filter_map(|d| match d {
            Decision::Ask {
                at, reservation, ..
            } => Some((*at, *reservation)),
            _ => None,
        })
        .collect()
}

#[test]
fn the_local_share_fires_at_once_beyond_it_the_detector_asks_and_it_frees_up_after_an_hour() {
    let mut d = Detector::new(trigger(
        json!({"metric": "packets_per_second", "above": 100, "sustained_seconds": 1}),
        json!({"budget": {"captures_per_hour": 2, "bytes_per_day": 10_000_000}}),
    ));
    // Three separate floods: the node's share (2) starts two captures; the third asks.
    let ds = run(&mut d, &[500.0, 0.0, 500.0, 0.0, 500.0, 0.0]);
    assert_eq!(fires(&ds), vec![100, 102]);
    let a = asks(&ds);
    assert_eq!(a.iter().map(|a| a.0).collect::<Vec<_>>(), vec![104]);
    assert!(
        !ds.iter().any(|x| matches!(x, Decision::Refused { .. })),
        "{ds:?}"
    );
    assert_eq!(d.asking(), 1);
    // The ask holds its bytes (1 MB each) until it is answered; refused, they go back.
    assert_eq!(d.bytes_left(106), 7_000_000);
    d.answered(a[0].1, false);
    assert_eq!((d.asking(), d.bytes_left(106)), (0, 8_000_000));
    // A later flood asks again; granted, it keeps its bytes and does not use the local share.
    let ds = d.second(&scope(106, 500.0));
    let a = asks(&ds);
    assert_eq!(a.len(), 1, "{ds:?}");
    d.answered(a[0].1, true);
    assert_eq!((d.asking(), d.bytes_left(107)), (0, 7_000_000));
    // An answer for nothing waiting changes nothing.
    d.answered(a[0].1, false);
    assert_eq!(d.bytes_left(107), 7_000_000);
    // An hour after the first local capture, the share starts one more without asking.
    assert!(
        d.second(&scope(3699, 0.0))
            .iter()
            .all(|x| matches!(x, Decision::Ended { .. }))
    );
    assert_eq!(fires(&d.second(&scope(3700, 500.0))), vec![3700]);
    assert!(
        d.second(&scope(3701, 0.0))
            .iter()
            .all(|x| matches!(x, Decision::Ended { .. }))
    );
    // At 3702 the capture of 102 is an hour old too; the granted one (106) never counted.
    assert_eq!(fires(&d.second(&scope(3702, 500.0))), vec![3702]);
    assert!(
        d.second(&scope(3703, 0.0))
            .iter()
            .all(|x| matches!(x, Decision::Ended { .. }))
    );
    assert_eq!(asks(&d.second(&scope(3704, 500.0))).len(), 1);
}

#[test]
fn captures_the_server_recorded_count_against_a_fresh_detectors_share_for_their_hour() {
    let t = trigger(
        json!({"metric": "packets_per_second", "above": 100, "sustained_seconds": 1}),
        json!({"budget": {"captures_per_hour": 2, "bytes_per_day": 10_000_000}}),
    );
    // A restarted agent: the server recorded two captures of its share, at 50 and 90.
    let mut d = Detector::new(t.clone());
    d.seed(&[90, 50]);
    let ds = run(&mut d, &[500.0, 0.0, 500.0]);
    assert!(fires(&ds).is_empty(), "its share is spent: {ds:?}");
    assert_eq!(asks(&ds).len(), 2, "{ds:?}");
    // An hour after the first, one is free again; after the second, both.
    assert_eq!(fires(&d.second(&scope(3650, 500.0))), vec![3650]);
    // Without the seed, the same floods start captures of its own share at once.
    let mut fresh = Detector::new(t);
    assert_eq!(
        fires(&run(&mut fresh, &[500.0, 0.0, 500.0])),
        vec![100, 102]
    );
    // At most MAX_SPENT entries are kept, the latest.
    let mut many = Detector::new(trigger(
        json!({"metric": "packets_per_second", "above": 100, "sustained_seconds": 1}),
        json!({}),
    ));
    let spent: Vec<u64> = (0..1000).collect();
    many.seed(&spent);
    assert_eq!(many.captures.len(), edgecap_model::firing::MAX_SPENT);
    assert_eq!(many.captures.front(), Some(&940));
}

#[test]
fn a_node_without_a_local_share_asks_for_every_capture() {
    let mut d = Detector::new(trigger(
        json!({"metric": "packets_per_second", "above": 100, "sustained_seconds": 1}),
        json!({}),
    ));
    d.set_budget(edgecap_model::trigger::Budget {
        captures_per_hour: 0,
        bytes_per_day: 10_000_000,
    });
    let ds = run(&mut d, &[500.0, 0.0, 500.0]);
    assert!(fires(&ds).is_empty(), "{ds:?}");
    assert_eq!(asks(&ds).len(), 2, "{ds:?}");
}

#[test]
fn a_refused_ask_gives_the_cooldown_back_and_a_granted_one_keeps_it() {
    let mut d = Detector::new(trigger(
        json!({"metric": "packets_per_second", "above": 100, "sustained_seconds": 1}),
        json!({"cooldown_seconds": 10, "budget": {"captures_per_hour": 1}}),
    ));
    // Local at 100; at 120 (after the cooldown) the share is spent: ask.
    assert_eq!(fires(&d.second(&scope(100, 500.0))), vec![100]);
    d.second(&scope(101, 0.0));
    let a = asks(&d.second(&scope(120, 500.0)));
    assert_eq!(a.len(), 1);
    d.second(&scope(121, 0.0));
    // Refused: the trigger's cooldown is the local capture's again (over), so the next run
    // asks at once rather than being refused for the cooldown.
    d.answered(a[0].1, false);
    let a = asks(&d.second(&scope(122, 500.0)));
    assert_eq!(a.len(), 1);
    d.second(&scope(123, 0.0));
    // Granted: the cooldown runs from 122.
    d.answered(a[0].1, true);
    let ds = d.second(&scope(125, 500.0));
    assert!(
        matches!(
            ds[..],
            [Decision::Refused {
                why: Refusal::Cooldown,
                ..
            }]
        ),
        "{ds:?}"
    );
}

/// The asks among `ds`: (second, local bytes held, bytes asked, capture asked, reservation).
fn byte_asks(ds: &[Decision]) -> Vec<(u64, u64, Option<u64>, bool, u64)> {
    ds.iter()
        .filter_map(|d| match d {
            Decision::Ask {
                at,
                byte_limit,
                bytes,
                capture,
                reservation,
                ..
            } => Some((*at, *byte_limit, *bytes, *capture, *reservation)),
            _ => None,
        })
        .collect()
}

#[test]
fn beyond_its_local_bytes_the_detector_asks_the_pool_for_the_rest() {
    let mut d = Detector::new(trigger(
        json!({"metric": "packets_per_second", "above": 100, "sustained_seconds": 1}),
        json!({"budget": {"captures_per_hour": 60, "bytes_per_day": 1000},
               "capture": {"time_limit": 30, "byte_limit": 600, "destination_conf": "file:///x"}}),
    ));
    let ds = run(&mut d, &[500.0, 0.0, 500.0, 0.0]);
    // 600 of the local 1000 at once; the next capture's 600 are 400 local and 200 asked of
    // the pool (its capture is of the node's own share: only bytes are asked).
    let first = match ds.first() {
        Some(Decision::Fire {
            byte_limit: 600,
            reservation,
            ..
        }) => *reservation,
        other => panic!("{other:?} in {ds:?}"),
    };
    let a = byte_asks(&ds);
    assert_eq!(
        a.iter().map(|a| (a.0, a.1, a.2, a.3)).collect::<Vec<_>>(),
        vec![(102, 400, Some(200), false)]
    );
    assert!(
        !ds.iter().any(|x| matches!(x, Decision::Refused { .. })),
        "{ds:?}"
    );
    assert_eq!(d.bytes_left(103), 0, "the ask holds its local bytes");
    // Refused: its local bytes and its local capture go back.
    d.answered(a[0].4, false);
    assert_eq!(d.bytes_left(103), 400);
    assert_eq!(d.captures.len(), 1);
    // Asked again, granted: the local 400 stay held (the server counts its 200).
    let a = byte_asks(&d.second(&scope(104, 500.0)));
    assert_eq!((a[0].1, a[0].2), (400, Some(200)));
    d.answered(a[0].4, true);
    assert_eq!((d.bytes_left(105), d.captures.len()), (0, 2));
    // The first capture wrote only 100 bytes: 500 are free again. A day after, everything.
    d.settle(first, 100);
    assert_eq!(d.bytes_left(105), 500);
    assert_eq!(d.bytes_left(104 + 24 * 3600), 1000);
}

#[test]
fn bytes_the_server_recorded_count_against_a_fresh_detectors_share_for_their_day() {
    let t = trigger(
        json!({"metric": "packets_per_second", "above": 100, "sustained_seconds": 1}),
        json!({"budget": {"captures_per_hour": 60, "bytes_per_day": 1000},
               "capture": {"time_limit": 30, "byte_limit": 600, "destination_conf": "file:///x"}}),
    );
    // A restarted agent: the server recorded 400 and 300 bytes of its share, at 90 and 50.
    let mut d = Detector::new(t.clone());
    d.seed_bytes(&[[90, 400], [50, 300]]);
    assert_eq!(d.bytes_left(100), 300);
    // Its 300 left do not cover a capture of 600: it asks the pool for the other 300.
    let a = byte_asks(&run(&mut d, &[500.0]));
    assert_eq!((a[0].1, a[0].2), (300, Some(300)));
    // A day after each, its bytes are free again; nothing settles a seeded entry.
    d.answered(a[0].4, false);
    d.settle(0, 0);
    assert_eq!(d.bytes_left(50 + 24 * 3600), 600);
    assert_eq!(d.bytes_left(90 + 24 * 3600), 1000);
    // Without the seed the same flood fires at once within the share.
    let mut fresh = Detector::new(t);
    assert_eq!(fires(&run(&mut fresh, &[500.0])), vec![100]);
}

#[test]
fn a_node_without_local_bytes_asks_for_them_with_or_without_the_capture() {
    let t = trigger(
        json!({"metric": "packets_per_second", "above": 100, "sustained_seconds": 1}),
        json!({"budget": {"captures_per_hour": 4, "bytes_per_day": 2_000_000}}),
    );
    // A new node: its bytes share is 0 until the split settles; its captures share is 1.
    let mut d = Detector::new(t.clone());
    d.set_budget(edgecap_model::trigger::Budget {
        captures_per_hour: 1,
        bytes_per_day: 0,
    });
    let a = byte_asks(&run(&mut d, &[500.0, 0.0]));
    assert_eq!(
        a.iter().map(|a| (a.0, a.1, a.2, a.3)).collect::<Vec<_>>(),
        vec![(100, 0, Some(1_000_000), false)]
    );
    // Refused: its captures share is free again, so once it has bytes it fires at once.
    d.answered(a[0].4, false);
    d.set_budget(edgecap_model::trigger::Budget {
        captures_per_hour: 1,
        bytes_per_day: 1_000_000,
    });
    assert_eq!(fires(&d.second(&scope(102, 500.0))), vec![102]);
    // No share of either: both are asked.
    let mut d = Detector::new(t);
    d.set_budget(edgecap_model::trigger::Budget {
        captures_per_hour: 0,
        bytes_per_day: 0,
    });
    let a = byte_asks(&run(&mut d, &[500.0]));
    assert_eq!((a[0].1, a[0].2, a[0].3), (0, Some(1_000_000), true));
    // A capture without a byte limit takes what is left of its share without asking; with
    // nothing left it asks for the whole day's bytes (the pool grants what it has).
    let mut d = Detector::new(trigger(
        json!({"metric": "packets_per_second", "above": 100, "sustained_seconds": 1}),
        json!({"budget": {"bytes_per_day": 1000},
               "capture": {"time_limit": 30, "destination_conf": "file:///x"}}),
    ));
    d.set_budget(edgecap_model::trigger::Budget {
        captures_per_hour: 2,
        bytes_per_day: 300,
    });
    let ds = run(&mut d, &[500.0, 0.0, 500.0]);
    assert!(
        matches!(
            ds.first(),
            Some(Decision::Fire {
                byte_limit: 300,
                ..
            })
        ),
        "{ds:?}"
    );
    let a = byte_asks(&ds);
    assert_eq!(
        a.iter().map(|a| (a.0, a.1, a.2, a.3)).collect::<Vec<_>>(),
        vec![(102, 0, Some(1000), false)]
    );
}

#[test]
fn a_baseline_learns_quiet_seconds_and_respects_its_floor() {
    let mut d = Detector::new(trigger(
        json!({"metric": "bits_per_second", "sustained_seconds": 2,
               "above_baseline": {"factor": 3, "floor": 1000, "half_life_seconds": 10}}),
        json!({}),
    ));
    // Quiet at 2000 for a minute: 2.5x does not hold, 4x does.
    let mut values = vec![2000.0; 60];
    values.extend([5000.0, 5000.0, 5000.0]);
    assert!(fires(&run(&mut d, &values)).is_empty());
    let mut d = Detector::new(d.trigger().clone());
    let mut values = vec![2000.0; 60];
    values.extend([8000.0, 8000.0]);
    assert_eq!(fires(&run(&mut d, &values)), vec![161]);
    // A baseline that slowly rises with the traffic follows it (no firing on a gentle ramp).
    let mut d = Detector::new(d.trigger().clone());
    let ramp: Vec<f64> = (0..600).map(|i| 2000.0 + 10.0 * i as f64).collect();
    assert!(fires(&run(&mut d, &ramp)).is_empty());
    // Below the floor nothing fires, however many times the baseline it is.
    let mut d = Detector::new(d.trigger().clone());
    let mut values = vec![10.0; 30];
    values.extend([900.0; 5]);
    assert!(fires(&run(&mut d, &values)).is_empty());
}

#[test]
fn below_fires_when_a_steady_flow_stops_and_not_before_it_started() {
    let mut d = Detector::new(trigger(
        json!({"metric": "packets_per_second", "below": 10, "sustained_seconds": 3}),
        json!({}),
    ));
    // Nothing yet: no traffic ever reached the threshold.
    assert!(run(&mut d, &[0.0; 10]).is_empty());
    let mut d = Detector::new(d.trigger().clone());
    let mut values = vec![100.0; 5];
    values.extend([0.0; 5]);
    values.extend([100.0; 2]);
    let ds = run(&mut d, &values);
    assert_eq!(fires(&ds), vec![107]);
    assert!(ds.iter().any(|x| matches!(
        x,
        Decision::Ended {
            started: 105,
            ended: 109,
            ..
        }
    )));
    // After firing it re-arms only when the flow is back: staying at 0 fires no more.
    let mut d = Detector::new(d.trigger().clone());
    let mut values = vec![100.0; 3];
    values.extend([0.0; 100]);
    assert_eq!(fires(&run(&mut d, &values)), vec![105]);
}

#[test]
fn per_destination_fires_for_the_attacked_address_only() {
    let mut d = Detector::new(trigger(
        json!({"metric": "packets_per_second", "per": "destination", "above": 1000,
               "sustained_seconds": 2}),
        json!({}),
    ));
    let victim: IpAddr = "198.18.1.10".parse().unwrap();
    let benign: IpAddr = "198.18.1.20".parse().unwrap();
    let mut ds = Vec::new();
    for t in 0..4 {
        ds.extend(d.second(&Observation {
            t: 50 + t,
            // The scope's total is far above the threshold; no single benign address is.
            scope: 50_000.0,
            destinations: vec![(victim, 20_000.0), (benign, 900.0)],
        }));
    }
    assert_eq!(fires(&ds), vec![51]);
    assert!(matches!(ds[0], Decision::Fire { key: Some(k), .. } if k == victim));
    // The victim drops out of the heavy hitters: its run ends.
    let ds = d.second(&Observation {
        t: 54,
        scope: 900.0,
        destinations: vec![(benign, 900.0)],
    });
    assert!(
        matches!(ds[..], [Decision::Ended { key: Some(k), started: 50, ended: 53, .. }] if k == victim)
    );
}

#[test]
fn keys_are_bounded() {
    let mut d = Detector::new(trigger(
        json!({"metric": "packets_per_second", "per": "destination", "above": 1000}),
        json!({}),
    ));
    for t in 0..3u64 {
        let destinations = (0..(MAX_KEYS as u32))
            .map(|i| {
                (
                    IpAddr::from(std::net::Ipv4Addr::from((t as u32) << 24 | i)),
                    1.0,
                )
            })
            .collect();
        d.second(&Observation {
            t: 1 + t,
            scope: 0.0,
            destinations,
        });
    }
    assert!(d.keys.len() <= MAX_KEYS);
}

#[test]
fn observations_come_from_rollup_seconds() {
    let dst: IpAddr = "198.18.1.10".parse().unwrap();
    let second = Second {
        t: 7,
        point: "pre-firewall".into(),
        account: None,
        packets: 1000,
        bytes: 100_000,
        exact: true,
        samples: 16,
        one_in: 64,
        families: [1024, 0],
        tcp: 1024,
        udp: 0,
        icmp: 0,
        other: 0,
        syn: 512,
        rst: 0,
        lengths: [0; 8],
        top_dst: vec![edgecap_observe::sketch::Hitter {
            key: dst,
            count: 512,
            error: 0,
        }],
        top_src: vec![],
        top_dport: vec![],
    };
    let other_point = Second {
        point: "egress".into(),
        ..second.clone()
    };
    let points = vec!["pre-firewall".to_owned()];
    let o = observe(
        7,
        &[&second, &other_point],
        Metric::PacketsPerSecond,
        &points,
    );
    assert_eq!(o.scope, 1000.0);
    assert_eq!(o.destinations, vec![(dst, 512.0)]);
    let o = observe(7, &[&second], Metric::BitsPerSecond, &points);
    assert_eq!(o.scope, 800_000.0);
    // Half the sampled packets went to dst: half the bits.
    assert_eq!(o.destinations, vec![(dst, 400_000.0)]);
    let o = observe(7, &[&second], Metric::SynPerSecond, &points);
    assert_eq!(o.scope, 512.0);
    // Another second is not this one.
    assert_eq!(
        observe(8, &[&second], Metric::SynPerSecond, &points).scope,
        0.0
    );
}
