//! Property tests (proptest) of `validate_create` with arbitrary JSON: it returns, and every
//! error names a field (its message starts with the field its source points at). The
//! stable-toolchain counterpart of `fuzz/`'s `create_body` target, with a bounded number of
//! cases.

use proptest::prelude::*;
use serde_json::{Map, Value, json};

use super::{AccountLimits, validate_create};

/// Any JSON value, at most 4 levels and a few dozen nodes deep.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::String),
        prop::sample::select(vec![
            "full",
            "headers",
            "simple",
            "magic-transit",
            "fra",
            "site=lab",
            "file:///tmp/x",
            "s3://b/p?region=r",
            "udp",
            "tcp port 80",
            "((",
            "pcapng",
            "pre-firewall",
            "198.18.0.0/15",
            "2001:db8::/32",
            "5000-5010",
            "-1",
            "1e400",
        ])
        .prop_map(|s| Value::String(s.to_owned())),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(field(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// The fields a create request knows, and a few it does not.
fn field() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "type",
        "system",
        "time_limit",
        "packet_limit",
        "byte_limit",
        "colo_name",
        "colo",
        "nodes",
        "destination_conf",
        "filter_v1",
        "filter",
        "points",
        "snaplen",
        "sample_rate",
        "format",
        "merge",
        "credentials",
        "source_address",
        "protocol",
        "destination_port",
        "source_port",
        "destination_address",
        "x",
        "",
    ])
    .prop_map(str::to_owned)
}

/// Every error names what it is about: a field (message `<field>: ...`, source pointing at
/// it) or the body.
fn check(body: &Value) -> Result<(), TestCaseError> {
    let Err(errors) = validate_create(body, &AccountLimits::default()) else {
        return Ok(());
    };
    prop_assert!(!errors.is_empty());
    for e in errors {
        match &e.source {
            Some(src) => {
                let path = src.pointer.trim_start_matches('/').replace('/', ".");
                prop_assert!(
                    e.message.starts_with(&format!("{path}: ")),
                    "{} does not name {}",
                    e.message,
                    path
                );
            }
            None => prop_assert!(e.message.starts_with("request body"), "{}", e.message),
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Any JSON document at all.
    #[test]
    fn any_body_is_answered_with_named_errors(body in any_json()) {
        check(&body)?;
    }

    /// A valid request with one field replaced by anything.
    #[test]
    fn any_value_in_any_field_is_answered_with_named_errors(k in field(), v in any_json()) {
        let mut body = json!({
            "type": "full", "system": "magic-transit", "time_limit": 60, "colo_name": "fra",
            "destination_conf": "file:///tmp/x", "packet_limit": 1000,
            "filter_v1": {"source_address": "198.18.0.2", "protocol": 17},
        });
        body[&k] = v;
        check(&body)?;
    }

    /// A valid request whose `filter` is any text, including deep nesting: refused naming
    /// `filter` (and the limit when it is the nesting or the length).
    #[test]
    fn any_filter_text_is_answered_naming_filter(
        text in "[()! a-z0-9.&|]{0,80}",
        depth in 0usize..200,
    ) {
        let filter = format!("{}{text}{}", "(".repeat(depth), ")".repeat(depth));
        let body = json!({
            "type": "full", "system": "magic-transit", "time_limit": 60, "colo_name": "fra",
            "destination_conf": "file:///tmp/x", "filter": filter,
        });
        check(&body)?;
        if depth > edgecap_filter::MAX_EXPR_DEPTH {
            let errs = validate_create(&body, &AccountLimits::default()).unwrap_err();
            prop_assert!(errs.iter().any(|e| e.message.starts_with("filter: ")
                && e.message.contains("limit of 64 levels")), "{:?}", errs);
        }
    }
}
