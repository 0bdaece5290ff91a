//! Validation of `POST /pcaps` bodies into a [`CreateRequest`]. Every problem becomes an
//! [`ApiError`] naming the field and the reason; all problems are reported at once.
//!
//! Checks that need the fleet (does `colo_name` match a node, does every node have the
//! requested points) are the server's; everything else is here.

use serde_json::{Map, Value};

use crate::envelope::{ApiError, codes};

/// Per-account maxima. Defaults are Cloudflare's documented limits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AccountLimits {
    pub max_time_limit: f64,
    pub max_packet_limit: u64,
    pub max_byte_limit: u64,
}

impl Default for AccountLimits {
    fn default() -> Self {
        Self {
            max_time_limit: 300.0,
            max_packet_limit: 10_000,
            max_byte_limit: 1_000_000_000,
        }
    }
}

/// The most bytes NFLOG copies of a packet.
pub const MAX_SNAPLEN: u64 = 65_531;

/// A validated create request (type `full`).
#[derive(Debug, Clone, PartialEq)]
pub struct CreateRequest {
    pub time_limit: f64,
    pub packet_limit: Option<u64>,
    pub byte_limit: Option<u64>,
    /// The structured filter as given (validated), for echoing back.
    pub filter_v1: Value,
    pub filter_v1_parsed: edgecap_filter::StructuredFilter,
    /// A tcpdump-style expression (edgecap extension).
    pub filter: Option<String>,
    /// `colo_name` (or Cloudflare's older `colo`): a node name or a site label.
    pub colo_name: Option<String>,
    /// Node names or `key=value` label selectors (edgecap extension).
    pub nodes: Option<Vec<String>>,
    pub destination_conf: String,
    pub points: Vec<String>,
    pub snaplen: Option<u32>,
    pub sample_rate: Option<f64>,
    /// `pcapng` (default) or `pcap`.
    pub format: String,
    pub merge: bool,
}

const KNOWN: &[&str] = &[
    "type",
    "system",
    "time_limit",
    "packet_limit",
    "byte_limit",
    "filter_v1",
    "offset_time",
    "colo_name",
    "colo",
    "destination_conf",
    "filter",
    "nodes",
    "points",
    "snaplen",
    "sample_rate",
    "format",
    "merge",
];

/// Validates a create body against the account's limits.
pub fn validate_create(
    body: &Value,
    limits: &AccountLimits,
) -> Result<CreateRequest, Vec<ApiError>> {
    let Some(obj) = body.as_object() else {
        return Err(vec![ApiError::new(
            codes::INVALID_BODY,
            "request body: must be a JSON object",
        )]);
    };
    let mut errs = Vec::new();
    for k in obj.keys() {
        if !KNOWN.contains(&k.as_str()) {
            errs.push(ApiError::field(
                k,
                format!("unknown field (known: {})", KNOWN.join(", ")),
            ));
        }
    }
    match obj.get("type").map(Value::as_str) {
        Some(Some("full")) => {}
        Some(Some("simple")) => errs.push(unsupported(
            "type",
            "simple (sampled, look-back) captures are not available in this version; use full",
        )),
        Some(_) => errs.push(ApiError::field("type", "must be \"full\" or \"simple\"")),
        None => errs.push(ApiError::field("type", "is required (\"full\")")),
    }
    match obj.get("system").map(Value::as_str) {
        Some(Some("magic-transit")) => {}
        Some(_) => errs.push(ApiError::field("system", "must be \"magic-transit\"")),
        None => errs.push(ApiError::field("system", "is required (\"magic-transit\")")),
    }
    let time_limit = match obj.get("time_limit") {
        None => {
            errs.push(ApiError::field("time_limit", "is required (seconds)"));
            None
        }
        Some(v) => number_in(v, "time_limit", 1.0, limits.max_time_limit, &mut errs),
    };
    let packet_limit = opt_int(obj, "packet_limit", limits.max_packet_limit, &mut errs);
    let byte_limit = opt_int(obj, "byte_limit", limits.max_byte_limit, &mut errs);
    if obj.contains_key("offset_time") {
        errs.push(ApiError::field(
            "offset_time",
            "applies only to simple captures",
        ));
    }
    let (filter_v1, filter_v1_parsed) = filter_v1(obj, &mut errs);
    let filter = opt_string(obj, "filter", &mut errs);
    // Compiled here as the agents will compile it, so a filter that cannot become nftables
    // rules (a syntax error, too many rules together) is refused before anything is stored.
    match filter_v1_parsed.compile() {
        Err(e) => errs.push(ApiError::field(
            &format!("filter_v1.{}", e.field()),
            strip_field(&e.to_string(), e.field()),
        )),
        Ok(rules) => {
            if let Some(text) = &filter
                && let Err(e) = edgecap_filter::Expression::parse(text)
                    .and_then(|expr| expr.compile_and(&rules))
            {
                errs.push(ApiError::field("filter", e));
            }
        }
    }
    let colo_name = match (
        opt_string(obj, "colo_name", &mut errs),
        opt_string(obj, "colo", &mut errs),
    ) {
        (Some(a), Some(b)) if a != b => {
            errs.push(ApiError::field(
                "colo",
                "differs from colo_name; give one of them",
            ));
            None
        }
        (a, b) => a.or(b),
    };
    let nodes = opt_string_list(obj, "nodes", &mut errs);
    if colo_name.is_none()
        && nodes.is_none()
        && !obj.contains_key("colo_name")
        && !obj.contains_key("nodes")
    {
        errs.push(ApiError::field(
            "colo_name",
            "is required: a node name or site (or give nodes)",
        ));
    }
    let destination_conf = match obj.get("destination_conf") {
        None => {
            errs.push(ApiError::field(
                "destination_conf",
                "is required (e.g. file:///var/lib/edgecap/captures)",
            ));
            String::new()
        }
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        Some(_) => {
            errs.push(ApiError::field(
                "destination_conf",
                "must be a non-empty string",
            ));
            String::new()
        }
    };
    let points =
        opt_string_list(obj, "points", &mut errs).unwrap_or_else(|| vec!["pre-firewall".into()]);
    let snaplen = opt_int(obj, "snaplen", MAX_SNAPLEN, &mut errs).map(|v| v as u32);
    let sample_rate = match obj.get("sample_rate") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_f64() {
            Some(r) if r > 0.0 && r <= 1.0 => Some(r),
            _ => {
                errs.push(ApiError::field(
                    "sample_rate",
                    "must be a number in (0, 1], e.g. 0.01 for 1 in 100",
                ));
                None
            }
        },
    };
    let format = match obj.get("format") {
        None | Some(Value::Null) => "pcapng".to_owned(),
        Some(Value::String(s)) if s == "pcapng" || s == "pcap" => s.clone(),
        Some(_) => {
            errs.push(ApiError::field("format", "must be \"pcapng\" or \"pcap\""));
            String::new()
        }
    };
    let merge = match obj.get("merge") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            errs.push(ApiError::field("merge", "must be true or false"));
            false
        }
    };
    if !errs.is_empty() {
        return Err(errs);
    }
    Ok(CreateRequest {
        time_limit: time_limit.unwrap_or(1.0),
        packet_limit,
        byte_limit,
        filter_v1,
        filter_v1_parsed,
        filter,
        colo_name,
        nodes,
        destination_conf,
        points,
        snaplen,
        sample_rate,
        format,
        merge,
    })
}

/// A field whose value is valid in the API but not served by this version.
fn unsupported(field: &str, reason: &str) -> ApiError {
    ApiError {
        code: codes::UNSUPPORTED,
        ..ApiError::field(field, reason)
    }
}

fn number_in(v: &Value, field: &str, lo: f64, hi: f64, errs: &mut Vec<ApiError>) -> Option<f64> {
    match v.as_f64() {
        Some(n) if n >= lo && n <= hi => Some(n),
        Some(n) => {
            errs.push(ApiError::field(field, format!("{n} is outside {lo}-{hi}")));
            None
        }
        None => {
            errs.push(ApiError::field(
                field,
                format!("must be a number ({lo}-{hi}), not {}", kind(v)),
            ));
            None
        }
    }
}

/// An optional whole number in 1..=max (JSON numbers such as 100.0 count as whole).
fn opt_int(
    obj: &Map<String, Value>,
    field: &str,
    max: u64,
    errs: &mut Vec<ApiError>,
) -> Option<u64> {
    let v = obj.get(field)?;
    if v.is_null() {
        return None;
    }
    match v.as_f64() {
        Some(n) if n.fract() == 0.0 && n >= 1.0 && n <= max as f64 => Some(n as u64),
        Some(n) if n.fract() != 0.0 => {
            errs.push(ApiError::field(field, format!("{n} is not a whole number")));
            None
        }
        Some(n) => {
            errs.push(ApiError::field(field, format!("{n} is outside 1-{max}")));
            None
        }
        None => {
            errs.push(ApiError::field(
                field,
                format!("must be a whole number (1-{max}), not {}", kind(v)),
            ));
            None
        }
    }
}

fn opt_string(obj: &Map<String, Value>, field: &str, errs: &mut Vec<ApiError>) -> Option<String> {
    match obj.get(field)? {
        Value::Null => None,
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        v => {
            errs.push(ApiError::field(
                field,
                format!("must be a non-empty string, not {}", kind(v)),
            ));
            None
        }
    }
}

fn opt_string_list(
    obj: &Map<String, Value>,
    field: &str,
    errs: &mut Vec<ApiError>,
) -> Option<Vec<String>> {
    match obj.get(field)? {
        Value::Null => None,
        Value::Array(items) if !items.is_empty() => {
            let mut out = Vec::new();
            for (i, it) in items.iter().enumerate() {
                match it.as_str().map(str::trim) {
                    Some(s) if !s.is_empty() => out.push(s.to_owned()),
                    _ => errs.push(ApiError::field(
                        &format!("{field}.{i}"),
                        "must be a non-empty string",
                    )),
                }
            }
            Some(out)
        }
        v => {
            errs.push(ApiError::field(
                field,
                format!("must be a non-empty array of strings, not {}", kind(v)),
            ));
            None
        }
    }
}

fn filter_v1(
    obj: &Map<String, Value>,
    errs: &mut Vec<ApiError>,
) -> (Value, edgecap_filter::StructuredFilter) {
    let v = obj.get("filter_v1").cloned().unwrap_or(Value::Null);
    if v.is_null() {
        return (
            Value::Object(Map::new()),
            edgecap_filter::StructuredFilter::default(),
        );
    }
    let raw: edgecap_filter::RawFilter = match serde_json::from_value(v.clone()) {
        Ok(r) => r,
        Err(e) => {
            errs.push(ApiError::field("filter_v1", e));
            return (v, edgecap_filter::StructuredFilter::default());
        }
    };
    match raw.validate() {
        Ok(f) => (v, f),
        Err(e) => {
            errs.push(ApiError::field(
                &format!("filter_v1.{}", e.field()),
                strip_field(&e.to_string(), e.field()),
            ));
            (v, edgecap_filter::StructuredFilter::default())
        }
    }
}

/// The filter crate's messages start with the field name; avoid saying it twice.
fn strip_field(msg: &str, field: &str) -> String {
    msg.strip_prefix(field)
        .and_then(|m| m.strip_prefix(": "))
        .unwrap_or(msg)
        .to_owned()
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
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
        let mut b = ok_body();
        b["type"] = json!("simple");
        let e = validate_create(&b, &AccountLimits::default()).unwrap_err();
        assert_eq!(e[0].code, codes::UNSUPPORTED);
        assert!(messages(json!([1, 2]))[0].contains("JSON object"));
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
}
