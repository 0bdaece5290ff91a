//! `validate_trigger`: each group of fields, defaults, and that every error names its field.

use super::*;
use serde_json::json;

fn ok_body() -> Value {
    json!({
        "name": "udp flood",
        "scope": {"filter_v1": {"protocol": 17}, "colo_name": "fra"},
        "condition": {"metric": "packets_per_second", "per": "destination", "above": 50000,
                      "sustained_seconds": 2},
        "capture": {"time_limit": 30, "packet_limit": 10000,
                    "destination_conf": "s3://pcaps/edge", "pre_trigger_seconds": 20},
        "cooldown_seconds": 120,
        "budget": {"captures_per_hour": 2, "bytes_per_day": 1000000000u64}
    })
}

fn errors(body: Value) -> Vec<ApiError> {
    validate_trigger(&body, &AccountLimits::default()).unwrap_err()
}

/// Asserts an error at `pointer` whose message starts with its dotted path and contains
/// `text`.
fn assert_named(errs: &[ApiError], pointer: &str, text: &str) {
    let dotted = pointer.trim_start_matches('/').replace('/', ".");
    assert!(
        errs.iter().any(|e| e.code == codes::INVALID_FIELD
            && e.source.as_ref().map(|s| s.pointer.as_str()) == Some(pointer)
            && e.message.starts_with(&format!("{dotted}: "))
            && e.message.contains(text)),
        "no error at {pointer} containing {text:?}: {errs:#?}"
    );
}

/// Sets the field at `pointer` (its parent must be an object), replacing the parent when it
/// is not one.
fn set(b: &mut Value, pointer: &str, value: Value) {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let p = if parent.is_empty() {
        b
    } else {
        b.pointer_mut(parent).unwrap()
    };
    if !p.is_object() {
        *p = json!({});
    }
    p[key] = value;
}

#[test]
fn a_trigger_validates_with_its_capture() {
    let (t, req) = validate_trigger(&ok_body(), &AccountLimits::default()).unwrap();
    assert_eq!(t.name.as_deref(), Some("udp flood"));
    assert_eq!(t.condition.metric, Metric::PacketsPerSecond);
    assert_eq!(t.condition.per, Per::Destination);
    assert_eq!(t.condition.threshold, Threshold::Above(50000.0));
    assert_eq!(t.condition.sustained_seconds, 2);
    assert_eq!(t.scope.points, ["pre-firewall"]);
    assert_eq!(t.capture.points, ["pre-firewall"]);
    assert_eq!(t.capture.pre_trigger_seconds, 20);
    assert_eq!(t.capture.packet_limit, Some(10000));
    assert_eq!(t.cooldown_seconds, 120);
    assert_eq!(
        t.budget,
        Budget {
            captures_per_hour: 2,
            bytes_per_day: 1_000_000_000
        }
    );
    // The capture it would start is the create request of the same fields.
    assert!(!req.simple);
    assert_eq!(req.colo_name.as_deref(), Some("fra"));
    assert_eq!(req.destination_conf, "s3://pcaps/edge");
    assert_eq!(req.time_limit, 30.0);
    assert_eq!(req.filter_v1_parsed.protocol.len(), 1);
}

#[test]
fn defaults_fill_what_is_left_out() {
    let body = json!({
        "scope": {"nodes": ["edge0"]},
        "condition": {"metric": "syn_per_second", "below": 5},
        "capture": {"time_limit": 10, "destination_conf": "file:///tmp/x"},
    });
    let (t, _) = validate_trigger(&body, &AccountLimits::default()).unwrap();
    assert_eq!(t.name, None);
    assert_eq!(t.condition.per, Per::Scope);
    assert_eq!(t.condition.threshold, Threshold::Below(5.0));
    assert_eq!(t.condition.sustained_seconds, DEFAULT_SUSTAINED_SECONDS);
    assert_eq!(t.capture.pre_trigger_seconds, DEFAULT_PRE_TRIGGER_SECONDS);
    assert_eq!(t.cooldown_seconds, DEFAULT_COOLDOWN_SECONDS);
    assert_eq!(t.budget.captures_per_hour, DEFAULT_CAPTURES_PER_HOUR);
    assert_eq!(t.budget.bytes_per_day, DEFAULT_BYTES_PER_DAY);
    assert_eq!(t.capture.format, "pcapng");
}

#[test]
fn a_baseline_condition_keeps_factor_floor_and_half_life() {
    let mut b = ok_body();
    b["condition"] = json!({"metric": "bits_per_second",
        "above_baseline": {"factor": 4, "floor": 1e6, "half_life_seconds": 600}});
    let (t, _) = validate_trigger(&b, &AccountLimits::default()).unwrap();
    assert_eq!(
        t.condition.threshold,
        Threshold::AboveBaseline(Baseline {
            factor: 4.0,
            floor: 1e6,
            half_life_seconds: 600
        })
    );
}

#[test]
fn bad_conditions_are_named() {
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            json!({"metric": "pps", "above": 1}),
            "/condition/metric",
            "not a metric",
        ),
        (json!({"above": 1}), "/condition/metric", "is required"),
        (
            json!({"metric": "packets_per_second", "above": -5}),
            "/condition/above",
            "negative",
        ),
        (
            json!({"metric": "packets_per_second", "above": 0}),
            "/condition/above",
            "outside",
        ),
        (
            json!({"metric": "packets_per_second", "above": "lots"}),
            "/condition/above",
            "must be a number",
        ),
        (
            json!({"metric": "packets_per_second", "below": -1}),
            "/condition/below",
            "negative",
        ),
        (
            json!({"metric": "packets_per_second"}),
            "/condition/above",
            "one of above",
        ),
        (
            json!({"metric": "packets_per_second", "above": 5, "below": 1}),
            "/condition/below",
            "only one",
        ),
        (
            json!({"metric": "packets_per_second", "per": "node", "above": 5}),
            "/condition/per",
            "destination",
        ),
        (
            json!({"metric": "packets_per_second", "per": "destination", "below": 5}),
            "/condition/below",
            "whole scope",
        ),
        (
            json!({"metric": "packets_per_second", "above": 5, "sustained_seconds": 601}),
            "/condition/sustained_seconds",
            "outside 1-600",
        ),
        (
            json!({"metric": "packets_per_second", "above": 5, "sustained_seconds": 0}),
            "/condition/sustained_seconds",
            "outside 1-600",
        ),
        (
            json!({"metric": "packets_per_second", "above_baseline": {"factor": 0.5, "floor": 10}}),
            "/condition/above_baseline/factor",
            "outside (1,",
        ),
        (
            json!({"metric": "packets_per_second", "above_baseline": {"factor": 3}}),
            "/condition/above_baseline/floor",
            "is required",
        ),
        (
            json!({"metric": "packets_per_second", "above_baseline": {"factor": 3, "floor": -1}}),
            "/condition/above_baseline/floor",
            "negative",
        ),
        (
            json!({"metric": "packets_per_second",
                   "above_baseline": {"factor": 3, "floor": 1, "half_life_seconds": 90000}}),
            "/condition/above_baseline/half_life_seconds",
            "outside 1-86400",
        ),
        (
            json!({"metric": "packets_per_second",
                   "above_baseline": {"factor": 3, "floor": 1, "window": 5}}),
            "/condition/above_baseline/window",
            "unknown field",
        ),
        (
            json!({"metric": "packets_per_second", "above": 5, "threshold": 5}),
            "/condition/threshold",
            "unknown field",
        ),
    ];
    for (condition, pointer, text) in cases {
        let mut b = ok_body();
        b["condition"] = condition.clone();
        let errs = errors(b);
        assert_named(&errs, pointer, text);
    }
}

#[test]
fn budgets_cooldown_and_windows_are_bounded() {
    let cases: Vec<(&str, Value, &str, &str)> = vec![
        (
            "/budget",
            json!({"captures_per_hour": 0}),
            "/budget/captures_per_hour",
            "budget of zero",
        ),
        (
            "/budget",
            json!({"bytes_per_day": 0}),
            "/budget/bytes_per_day",
            "budget of zero",
        ),
        (
            "/budget",
            json!({"captures_per_hour": 61}),
            "/budget/captures_per_hour",
            "outside 1-60",
        ),
        (
            "/budget",
            json!({"captures_per_hour": 1.5}),
            "/budget/captures_per_hour",
            "not a whole number",
        ),
        ("/budget", json!(5), "/budget", "must be an object"),
        (
            "/cooldown_seconds",
            json!(-1),
            "/cooldown_seconds",
            "outside 0-86400",
        ),
        (
            "/capture/pre_trigger_seconds",
            json!(601),
            "/capture/pre_trigger_seconds",
            "outside 0-600",
        ),
        ("/name", json!("x".repeat(129)), "/name", "longer than 128"),
        ("/colour", json!("red"), "/colour", "unknown field"),
    ];
    for (at, value, pointer, text) in cases {
        let mut b = ok_body();
        set(&mut b, at, value);
        let errs = errors(b);
        assert_named(&errs, pointer, text);
    }
}

#[test]
fn a_zero_cooldown_is_allowed() {
    let mut b = ok_body();
    b["cooldown_seconds"] = json!(0);
    let (t, _) = validate_trigger(&b, &AccountLimits::default()).unwrap();
    assert_eq!(t.cooldown_seconds, 0);
}

#[test]
fn the_capture_follows_the_create_rules_named_in_its_group() {
    let mut b = ok_body();
    b["scope"]["filter_v1"]["destination_port"] = json!(70000);
    b["scope"]["filter"] = json!("udp and and");
    b["capture"]["time_limit"] = json!(0);
    b["capture"]["packet_limit"] = json!(10.5);
    b["capture"]["snaplen"] = json!(70000);
    b["capture"]["format"] = json!("pcapx");
    b["capture"]["destination_conf"] = json!("");
    let errs = errors(b);
    assert_named(&errs, "/scope/filter_v1/destination_port", "");
    assert_named(&errs, "/scope/filter", "");
    assert_named(&errs, "/capture/time_limit", "outside");
    assert_named(&errs, "/capture/packet_limit", "not a whole");
    assert_named(&errs, "/capture/snaplen", "outside 1-65531");
    assert_named(&errs, "/capture/format", "pcapng");
    assert_named(&errs, "/capture/destination_conf", "non-empty");
    // A capture over the account's limits is refused as POST /pcaps would refuse it.
    let mut b = ok_body();
    b["capture"]["packet_limit"] = json!(10001);
    assert_named(&errors(b), "/capture/packet_limit", "outside 1-10000");
}

#[test]
fn scope_selection_groups_and_points_are_named() {
    let mut b = ok_body();
    b["scope"] = json!({"filter_v1": {}});
    assert_named(&errors(b), "/scope/colo_name", "is required");
    let mut b = ok_body();
    b["scope"]["nodes"] = json!([""]);
    assert_named(&errors(b), "/scope/nodes/0", "non-empty");
    let mut b = ok_body();
    b["scope"]["points"] = json!("pre-firewall");
    assert_named(&errors(b), "/scope/points", "array");
    let mut b = ok_body();
    b["scope"]["points"] = json!(["ingress"]);
    b["capture"]["points"] = json!([7]);
    assert_named(&errors(b), "/capture/points/0", "non-empty");
    let mut b = ok_body();
    b["scope"]["colour"] = json!(1);
    b["capture"]["merge"] = json!(true);
    let errs = errors(b);
    assert_named(&errs, "/scope/colour", "unknown field");
    assert_named(&errs, "/capture/merge", "unknown field");
    for group in ["scope", "condition", "capture"] {
        let mut b = ok_body();
        b.as_object_mut().unwrap().remove(group);
        assert_named(&errors(b), &format!("/{group}"), "is required");
    }
}

#[test]
fn a_byte_limit_over_the_daily_budget_is_refused() {
    let mut b = ok_body();
    b["capture"]["byte_limit"] = json!(2_000_000);
    b["budget"]["bytes_per_day"] = json!(1_000_000);
    assert_named(&errors(b), "/capture/byte_limit", "budget.bytes_per_day");
}

#[test]
fn scope_and_capture_points_may_differ() {
    let mut b = ok_body();
    b["scope"]["points"] = json!(["pre-firewall"]);
    b["capture"]["points"] = json!(["pre-firewall", "egress"]);
    let (t, req) = validate_trigger(&b, &AccountLimits::default()).unwrap();
    assert_eq!(t.scope.points, ["pre-firewall"]);
    assert_eq!(t.capture.points, ["pre-firewall", "egress"]);
    assert_eq!(req.points, t.capture.points);
}

#[test]
fn a_trigger_round_trips_through_json() {
    for condition in [
        json!({"metric": "packets_per_second", "per": "destination", "above": 5}),
        json!({"metric": "syn_per_second", "below": 2}),
        json!({"metric": "bits_per_second",
               "above_baseline": {"factor": 3, "floor": 100, "half_life_seconds": 60}}),
    ] {
        let mut b = ok_body();
        b["condition"] = condition.clone();
        let (t, _) = validate_trigger(&b, &AccountLimits::default()).unwrap();
        let text = serde_json::to_value(&t).unwrap();
        // The stored form uses the API's own field names.
        for (k, v) in condition.as_object().unwrap() {
            let stored = &text["condition"][k];
            match v.as_f64() {
                Some(n) => assert_eq!(stored.as_f64(), Some(n), "{text}"),
                None if k != "above_baseline" => assert_eq!(stored, v, "{text}"),
                None => assert_eq!(stored["factor"].as_f64(), Some(3.0), "{text}"),
            }
        }
        let back: Trigger = serde_json::from_value(text.clone()).unwrap();
        assert_eq!(back, t);
        // And the stored form validates to itself.
        let (again, _) = validate_trigger(&text, &AccountLimits::default()).unwrap();
        assert_eq!(again, t);
    }
}

#[test]
fn not_an_object_is_refused() {
    let errs = errors(json!([1]));
    assert_eq!(errs[0].code, codes::INVALID_BODY);
}

#[test]
fn local_shares_and_the_pool_never_add_up_to_more_than_the_budget() {
    for per_hour in 1..=MAX_CAPTURES_PER_HOUR {
        assert_eq!(
            local_captures(per_hour) + pooled_captures(per_hour),
            per_hour
        );
        assert!(pooled_captures(per_hour) >= 1, "{per_hour}");
        for bytes in [1u64, 2, 7, 10_000_000_000, u64::MAX] {
            assert_eq!(local_bytes(bytes) + pooled_bytes(bytes), bytes);
            assert!(pooled_bytes(bytes) >= 1 && local_bytes(bytes) <= pooled_bytes(bytes));
        }
        for bytes in [1u64, 7, 10_000_000_000, u64::MAX >> 11] {
            for n in 1..=13usize {
                let b = Budget {
                    captures_per_hour: per_hour,
                    bytes_per_day: bytes,
                };
                let shares: Vec<Budget> = (0..n).map(|i| node_share(b, n, i)).collect();
                let captures: u64 = shares.iter().map(|s| s.captures_per_hour).sum();
                let sum: u128 = shares.iter().map(|s| u128::from(s.bytes_per_day)).sum();
                assert_eq!(captures, local_captures(per_hour), "{per_hour} over {n}");
                assert_eq!(sum, u128::from(local_bytes(bytes)), "{bytes} over {n}");
                let spread = |f: fn(&Budget) -> u64| {
                    shares.iter().map(f).max().unwrap() - shares.iter().map(f).min().unwrap()
                };
                assert!(spread(|s| s.captures_per_hour) <= 1 && spread(|s| s.bytes_per_day) <= 1);
            }
        }
    }
    // The fleet test's budget: 2 an hour on two edges is one local capture on the first
    // edge, none on the second, and one the server grants.
    let b = Budget {
        captures_per_hour: 2,
        bytes_per_day: 10,
    };
    assert_eq!(node_share(b, 2, 0).captures_per_hour, 1);
    assert_eq!(node_share(b, 2, 1).captures_per_hour, 0);
    assert_eq!(pooled_captures(2), 1);
}

#[test]
fn the_bytes_pool_grants_what_is_left_but_never_a_useless_sliver() {
    // Enough left: the whole ask.
    assert_eq!(grant_bytes(1_000_000, 5_000_000), Some(1_000_000));
    // Less left than asked: what is left, if it is worth a capture.
    assert_eq!(grant_bytes(1_000_000, 200_000), Some(200_000));
    assert_eq!(
        grant_bytes(1_000_000, MIN_GRANT_BYTES),
        Some(MIN_GRANT_BYTES)
    );
    assert_eq!(grant_bytes(1_000_000, MIN_GRANT_BYTES - 1), None);
    // A small ask is granted whole or not at all; nothing left, nothing asked: refused.
    assert_eq!(grant_bytes(500, 500), Some(500));
    assert_eq!(grant_bytes(500, 499), None);
    assert_eq!(grant_bytes(500, 0), None);
    assert_eq!(grant_bytes(0, 1000), None);
    // Never more than asked or left.
    for asked in [1u64, 100, 70_000, 1 << 30] {
        for left in [0u64, 1, 65_535, 65_536, 1 << 20, u64::MAX] {
            if let Some(g) = grant_bytes(asked, left) {
                assert!(g <= asked && g <= left && g > 0, "{asked} {left} {g}");
            }
        }
    }
    assert_eq!(wanted_bytes(Some(600), 1000, 300), 600);
    assert_eq!(wanted_bytes(None, 1000, 300), 300);
    assert_eq!(wanted_bytes(None, 1000, 0), 1000);
}
