//! `validate_create`: every field group, and that each error names its field.

use super::*;
use serde_json::json;

fn ok_body() -> Value {
    json!({"type": "full", "system": "magic-transit", "time_limit": 60, "colo_name": "fra",
           "destination_conf": "file:///tmp/x", "packet_limit": 1000,
           "filter_v1": {"source_address": "198.18.0.2", "protocol": 17, "destination_port": 53}})
}

fn messages(body: Value) -> Vec<String> {
    validate_create(&body, &AccountLimits::default())
        .unwrap_err()
        .into_iter()
        .map(|e| e.message)
        .collect()
}

#[test]
fn a_cloudflare_shaped_request_validates() {
    let r = validate_create(&ok_body(), &AccountLimits::default()).unwrap();
    assert_eq!(r.time_limit, 60.0);
    assert_eq!(r.packet_limit, Some(1000));
    assert_eq!(r.colo_name.as_deref(), Some("fra"));
    assert_eq!(r.points, ["pre-firewall"]);
    assert_eq!(r.format, "pcapng");
}

#[test]
fn every_bad_field_is_named() {
    let mut b = ok_body();
    b["time_limit"] = json!(0);
    b["packet_limit"] = json!(10.5);
    b["byte_limit"] = json!("lots");
    b["colour"] = json!("red");
    b["snaplen"] = json!(70000);
    b["filter_v1"]["destination_port"] = json!(70000);
    b["format"] = json!("pcapx");
    let m = messages(b);
    for want in [
        "time_limit: 0 is outside",
        "packet_limit: 10.5 is not a whole",
        "byte_limit: must be a whole number",
        "colour: unknown field",
        "snaplen: 70000 is outside 1-65531",
        "filter_v1.destination_port:",
        "format:",
    ] {
        assert!(
            m.iter().any(|x| x.starts_with(want)),
            "{want:?} not in {m:?}"
        );
    }
}

#[test]
fn required_fields_and_simple_type() {
    let m = messages(json!({}));
    for want in [
        "type: is required",
        "system: is required",
        "time_limit: is required",
        "colo_name: is required",
        "destination_conf: is required",
    ] {
        assert!(
            m.iter().any(|x| x.starts_with(want)),
            "{want:?} not in {m:?}"
        );
    }
    assert!(messages(json!([1, 2]))[0].contains("JSON object"));
}

#[test]
fn simple_captures_have_their_own_rules() {
    let simple = json!({
        "type": "simple", "system": "magic-transit", "time_limit": 60, "packet_limit": 100,
        "offset_time": "2026-11-25T07:30:00Z", "filter_v1": {"protocol": 17}
    });
    let r = validate_create(&simple, &AccountLimits::default()).unwrap();
    assert!(r.simple);
    assert_eq!(
        r.offset_time,
        crate::ids::parse_rfc3339("2026-11-25T07:30:00Z")
    );
    // No selection: the whole fleet; no destination (the file is downloaded from the API).
    assert_eq!(
        (r.colo_name, r.nodes, r.destination_conf),
        (None, None, String::new())
    );
    // A destination may be given (the server checks it is the account's): the file goes there.
    let mut b = simple.clone();
    b["destination_conf"] = json!("s3://bucket/dir");
    let r = validate_create(&b, &AccountLimits::default()).unwrap();
    assert_eq!(r.destination_conf, "s3://bucket/dir");
    b["destination_conf"] = json!(null);
    let r = validate_create(&b, &AccountLimits::default()).unwrap();
    assert_eq!(r.destination_conf, "");
    let mut b = simple.clone();
    b["packet_limit"] = json!(10_001);
    b["offset_time"] = json!("yesterday");
    b["byte_limit"] = json!(1000);
    b["destination_conf"] = json!("");
    b["merge"] = json!(true);
    let m = messages(b);
    for want in [
        "packet_limit: 10001 is outside 1-10000",
        "offset_time: \"yesterday\" is not an RFC 3339",
        "byte_limit: applies only to full captures",
        "destination_conf: must be a non-empty string",
        "merge: applies only to full captures",
    ] {
        assert!(
            m.iter().any(|x| x.starts_with(want)),
            "{want:?} not in {m:?}"
        );
    }
    let mut b = simple.clone();
    b.as_object_mut().unwrap().remove("packet_limit");
    assert!(messages(b)[0].starts_with("packet_limit: is required for simple captures"));
    // offset_time is a simple capture's only.
    let mut b = ok_body();
    b["offset_time"] = json!("2026-11-25T07:30:00Z");
    assert!(messages(b)[0].starts_with("offset_time: applies only to simple captures"));
}

#[test]
fn filter_expressions_are_checked_with_the_structured_filter() {
    let mut b = ok_body();
    b["filter"] = json!("tcp port 80 or icmp");
    let r = validate_create(&b, &AccountLimits::default()).unwrap();
    assert_eq!(r.filter.as_deref(), Some("tcp port 80 or icmp"));
    b["filter"] = json!("tcp port");
    let m = messages(b.clone());
    assert!(m[0].starts_with("filter: "), "{m:?}");
    // Each is fine alone; together, 20 source ports x 20 destination ports pass the
    // rule limit (256).
    let ports: Vec<u16> = (1..=20).collect();
    b["filter_v1"] = json!({"protocol": 6, "source_port": ports});
    b.as_object_mut().unwrap().remove("filter");
    assert!(validate_create(&b, &AccountLimits::default()).is_ok());
    let alternatives: Vec<String> = (1..=20).map(|p| format!("dst port {p}")).collect();
    b["filter"] = json!(alternatives.join(" or "));
    let m = messages(b.clone());
    b["filter_v1"] = json!({});
    assert!(validate_create(&b, &AccountLimits::default()).is_ok());
    assert!(
        m[0].starts_with("filter: ") && m[0].contains("rules"),
        "{m:?}"
    );
}

#[test]
fn merge_is_a_boolean() {
    let mut b = ok_body();
    b["merge"] = json!(true);
    assert!(
        validate_create(&b, &AccountLimits::default())
            .unwrap()
            .merge
    );
    b["merge"] = json!(false);
    assert!(
        !validate_create(&b, &AccountLimits::default())
            .unwrap()
            .merge
    );
    b["merge"] = json!("yes");
    let e = validate_create(&b, &AccountLimits::default()).unwrap_err();
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].message.starts_with("merge: "), "{e:?}");
}

#[test]
fn account_limits_apply() {
    let mut b = ok_body();
    b["time_limit"] = json!(3600);
    assert!(messages(b.clone())[0].starts_with("time_limit: 3600 is outside 1-300"));
    let limits = AccountLimits {
        max_time_limit: 86_400.0,
        ..AccountLimits::default()
    };
    assert!(validate_create(&b, &limits).is_ok());
}

#[test]
fn errors_point_at_the_field() {
    let mut b = ok_body();
    b["filter_v1"]["source_port"] = json!(-1);
    let e = validate_create(&b, &AccountLimits::default()).unwrap_err();
    assert_eq!(
        e[0].source.as_ref().unwrap().pointer,
        "/filter_v1/source_port"
    );
}

#[test]
fn length_tests_at_the_ingress_point_are_refused_as_agents_refuse_them() {
    let mut b = ok_body();
    b["points"] = json!(["pre-firewall", "ingress"]);
    for expr in ["len > 100", "less 100", "udp and greater 60"] {
        b["filter"] = json!(expr);
        let e = validate_create(&b, &AccountLimits::default()).unwrap_err();
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].source.as_ref().unwrap().pointer, "/filter");
        assert!(
            e[0].message
                .starts_with("filter: len, less and greater are not exact at the ingress point"),
            "{e:?}"
        );
    }
    b["points"] = json!(["pre-firewall", "egress"]);
    assert!(validate_create(&b, &AccountLimits::default()).is_ok());
}

#[test]
fn snaplen_is_bounded_by_what_nflog_copies() {
    let mut b = ok_body();
    b["snaplen"] = json!(edgecap_filter::request::MAX_SNAPLEN);
    assert_eq!(
        validate_create(&b, &AccountLimits::default())
            .unwrap()
            .snaplen,
        Some(65_531)
    );
    b["snaplen"] = json!(65_532);
    assert!(messages(b)[0].starts_with("snaplen: 65532 is outside 1-65531"));
}

#[test]
fn a_display_filter_has_the_filter_fields_rules_and_name() {
    let rules = super::display_filter("udp and dst port 53").unwrap();
    let dns = [
        0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 198, 18, 0, 1, 198, 19, 0, 2, 0x9c, 0x40, 0, 53,
        0, 8, 0, 0,
    ];
    assert!(edgecap_filter::matches(&rules, &dns));
    let web = super::display_filter("tcp port 80").unwrap();
    assert!(!edgecap_filter::matches(&web, &dns));
    let e = super::display_filter("udp and and").unwrap_err();
    assert!(e.message.starts_with("filter: "), "{}", e.message);
    assert_eq!(e.source.unwrap().pointer, "/filter");
    // The same bound as POST /pcaps's `filter`: the same message.
    let long = "host 198.18.0.1 or ".repeat(edgecap_filter::MAX_EXPR_LEN / 10) + "udp";
    let e = super::display_filter(&long).unwrap_err();
    let body = serde_json::json!({"type": "full", "system": "magic-transit", "colo_name": "x",
        "destination_conf": "file:///tmp", "filter": long});
    let api = validate_create(&body, &AccountLimits::default()).unwrap_err();
    assert!(
        api.iter().any(|a| a.message == e.message),
        "{e:?} vs {api:?}"
    );
}
