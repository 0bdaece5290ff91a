//! Validation of `POST /pcaps` bodies into a [`CreateRequest`]. Every problem becomes an
//! [`ApiError`] naming the field and the reason; all problems are reported at once.
//!
//! Checks that need the fleet (does `colo_name` match a node, does every node have the
//! requested points) are the server's; everything else is here, one helper per group of
//! fields. The request rules (filter composition, refusals per point, the snaplen bound, the
//! formats) are the ones `edgecap capture` and the agents apply: `edgecap_filter::request` and
//! `edgecap_pcap::Format`.

pub(crate) mod fields;

use edgecap_filter::request as rules;
use serde_json::{Map, Value};

use crate::envelope::{ApiError, codes};
use fields::{opt_int, opt_string, opt_string_list, strip_field};

pub use fields::kind;

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

/// A validated create request (type `full`, or `simple` when [`CreateRequest::simple`]).
#[derive(Debug, Clone, PartialEq)]
pub struct CreateRequest {
    /// `type: simple`: a look-back capture answered from the nodes' rings (issue 13); no
    /// destination, byte limit, snaplen, sample rate or merge; `packet_limit` required.
    pub simple: bool,
    /// `offset_time` of a simple capture (Unix seconds): the window is the `time_limit`
    /// seconds before it. None: now. How far back the rings reach is the server's check.
    pub offset_time: Option<f64>,
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
    unknown_fields(obj, &mut errs);
    let simple = capture_type(obj, &mut errs);
    let (time_limit, packet_limit, byte_limit) = stop_limits(obj, limits, &mut errs);
    let offset_time = if simple {
        simple_rules(obj, &mut errs)
    } else {
        if obj.contains_key("offset_time") {
            errs.push(ApiError::field(
                "offset_time",
                "applies only to simple captures",
            ));
        }
        None
    };
    let points =
        opt_string_list(obj, "points", &mut errs).unwrap_or_else(|| vec!["pre-firewall".into()]);
    let (filter_v1, filter_v1_parsed, filter) = filters(obj, &points, &mut errs);
    let (colo_name, nodes) = selection(obj, !simple, &mut errs);
    // A simple capture's file is downloaded from the API unless it names a destination
    // (the server then writes the file there and keeps nothing).
    let destination_conf = if simple && obj.get("destination_conf").is_none_or(Value::is_null) {
        String::new()
    } else {
        destination(obj, &mut errs)
    };
    let file = file_options(obj, &mut errs);
    if !errs.is_empty() {
        return Err(errs);
    }
    Ok(CreateRequest {
        simple,
        offset_time,
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
        snaplen: file.snaplen,
        sample_rate: file.sample_rate,
        format: file.format,
        merge: file.merge,
    })
}

fn unknown_fields(obj: &Map<String, Value>, errs: &mut Vec<ApiError>) {
    for k in obj.keys().filter(|k| !KNOWN.contains(&k.as_str())) {
        errs.push(ApiError::field(
            k,
            format!("unknown field (known: {})", KNOWN.join(", ")),
        ));
    }
}

/// `type` (true: `simple`) and `system`.
fn capture_type(obj: &Map<String, Value>, errs: &mut Vec<ApiError>) -> bool {
    let simple = match obj.get("type").map(Value::as_str) {
        Some(Some("full")) => false,
        Some(Some("simple")) => true,
        Some(_) => {
            errs.push(ApiError::field("type", "must be \"full\" or \"simple\""));
            false
        }
        None => {
            errs.push(ApiError::field(
                "type",
                "is required (\"full\" or \"simple\")",
            ));
            false
        }
    };
    match obj.get("system").map(Value::as_str) {
        Some(Some("magic-transit")) => {}
        Some(_) => errs.push(ApiError::field("system", "must be \"magic-transit\"")),
        None => errs.push(ApiError::field("system", "is required (\"magic-transit\")")),
    }
    simple
}

/// A simple capture's own rules: `packet_limit` required, the full-only fields refused
/// naming each, and `offset_time` (RFC 3339, UTC) parsed.
fn simple_rules(obj: &Map<String, Value>, errs: &mut Vec<ApiError>) -> Option<f64> {
    if obj.get("packet_limit").is_none_or(Value::is_null) {
        errs.push(ApiError::field(
            "packet_limit",
            "is required for simple captures (the most sampled packets to return)",
        ));
    }
    for (field, why) in [
        ("byte_limit", "a simple capture is bounded by packet_limit"),
        (
            "snaplen",
            "the rings keep the first 160 bytes of each packet",
        ),
        (
            "sample_rate",
            "the rings are sampled already; each interface states its rate",
        ),
        ("merge", "a simple capture is one merged file already"),
    ] {
        if obj.get(field).is_some_and(|v| !v.is_null()) {
            errs.push(ApiError::field(
                field,
                format!("applies only to full captures: {why}"),
            ));
        }
    }
    match obj.get("offset_time") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => match crate::ids::parse_rfc3339(s) {
            Some(t) => Some(t),
            None => {
                errs.push(ApiError::field(
                    "offset_time",
                    format!("{s:?} is not an RFC 3339 UTC time such as 2026-11-25T07:30:00Z"),
                ));
                None
            }
        },
        Some(v) => {
            errs.push(ApiError::field(
                "offset_time",
                format!("must be an RFC 3339 time string, not {}", kind(v)),
            ));
            None
        }
    }
}

/// `time_limit` (required), `packet_limit`, `byte_limit`, within the account's maxima.
fn stop_limits(
    obj: &Map<String, Value>,
    limits: &AccountLimits,
    errs: &mut Vec<ApiError>,
) -> (Option<f64>, Option<u64>, Option<u64>) {
    let time_limit = match obj.get("time_limit") {
        None => {
            errs.push(ApiError::field("time_limit", "is required (seconds)"));
            None
        }
        Some(v) => fields::number_in(v, "time_limit", 1.0, limits.max_time_limit, errs),
    };
    let packet_limit = opt_int(obj, "packet_limit", limits.max_packet_limit, errs);
    let byte_limit = opt_int(obj, "byte_limit", limits.max_byte_limit, errs);
    (time_limit, packet_limit, byte_limit)
}

/// `filter_v1` and `filter`, composed and checked against the points as agents will, so a
/// filter that cannot become nftables rules (a syntax error, too many rules together, a
/// length test at `ingress`) is refused before anything is stored.
fn filters(
    obj: &Map<String, Value>,
    points: &[String],
    errs: &mut Vec<ApiError>,
) -> (Value, edgecap_filter::StructuredFilter, Option<String>) {
    let (filter_v1, parsed) = filter_v1(obj, errs);
    let filter = opt_string(obj, "filter", errs);
    match rules::compose(&parsed, filter.as_deref()) {
        Err(rules::ComposeError::Structured(e)) => errs.push(ApiError::field(
            &format!("filter_v1.{}", e.field()),
            strip_field(&e.to_string(), e.field()),
        )),
        Err(rules::ComposeError::Expression(e)) => errs.push(ApiError::field("filter", e)),
        Ok(composed) => {
            // Only the built-in name is known here; a node that configures another point at
            // its ingress hook refuses the assignment itself, with the same rule.
            let at_ingress = points.iter().any(|p| p == rules::INGRESS_POINT);
            if let Err(e) = rules::check_points(&composed.rules, at_ingress) {
                errs.push(ApiError::field("filter", e));
            }
        }
    }
    (filter_v1, parsed, filter)
}

/// A display filter over packets already captured (the dashboard's packet view): a
/// tcpdump-style expression with the `filter` field's own rules (`compose` of an empty
/// structured filter and the expression: the size and depth bounds, the grammar, the rule
/// limit), its error named `filter` as `POST /pcaps` names it. The rules are for
/// `edgecap_filter::matches`.
pub fn display_filter(text: &str) -> Result<Vec<edgecap_filter::ir::Conjunction>, ApiError> {
    rules::compose(&edgecap_filter::StructuredFilter::default(), Some(text))
        .map(|c| c.rules)
        .map_err(|e| match e {
            rules::ComposeError::Expression(e) => ApiError::field("filter", e),
            rules::ComposeError::Structured(e) => ApiError::field("filter", e),
        })
}

fn filter_v1(
    obj: &Map<String, Value>,
    errs: &mut Vec<ApiError>,
) -> (Value, edgecap_filter::StructuredFilter) {
    let v = obj.get("filter_v1").cloned().unwrap_or(Value::Null);
    if v.is_null() {
        return (Value::Object(Map::new()), Default::default());
    }
    let raw: edgecap_filter::RawFilter = match serde_json::from_value(v.clone()) {
        Ok(r) => r,
        Err(e) => {
            errs.push(ApiError::field("filter_v1", e));
            return (v, Default::default());
        }
    };
    match raw.validate() {
        Ok(f) => (v, f),
        Err(e) => {
            errs.push(ApiError::field(
                &format!("filter_v1.{}", e.field()),
                strip_field(&e.to_string(), e.field()),
            ));
            (v, Default::default())
        }
    }
}

/// Which nodes: `colo_name` (or `colo`, which must agree) and/or `nodes`; one is required
/// when `required` (a full capture; a simple one without either spans the fleet).
fn selection(
    obj: &Map<String, Value>,
    required: bool,
    errs: &mut Vec<ApiError>,
) -> (Option<String>, Option<Vec<String>>) {
    let colo_name = match (
        opt_string(obj, "colo_name", errs),
        opt_string(obj, "colo", errs),
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
    let nodes = opt_string_list(obj, "nodes", errs);
    if required
        && colo_name.is_none()
        && nodes.is_none()
        && !obj.contains_key("colo_name")
        && !obj.contains_key("nodes")
    {
        errs.push(ApiError::field(
            "colo_name",
            "is required: a node name or site (or give nodes)",
        ));
    }
    (colo_name, nodes)
}

/// `destination_conf`, as a string (the server parses it).
fn destination(obj: &Map<String, Value>, errs: &mut Vec<ApiError>) -> String {
    match obj.get("destination_conf") {
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
    }
}

/// What each node's file holds and how it is delivered.
struct FileOptions {
    snaplen: Option<u32>,
    sample_rate: Option<f64>,
    format: String,
    merge: bool,
}

/// `snaplen` (at most what NFLOG copies), `sample_rate`, `format`, `merge`.
fn file_options(obj: &Map<String, Value>, errs: &mut Vec<ApiError>) -> FileOptions {
    let snaplen = opt_int(obj, "snaplen", u64::from(rules::MAX_SNAPLEN), errs).map(|v| v as u32);
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
        None | Some(Value::Null) => edgecap_pcap::Format::Pcapng.extension().to_owned(),
        Some(Value::String(s)) if edgecap_pcap::Format::from_name(s).is_some() => s.clone(),
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
    FileOptions {
        snaplen,
        sample_rate,
        format,
        merge,
    }
}

#[cfg(test)]
mod fuzz_tests;
#[cfg(test)]
mod tests;
