//! Anomaly triggers (issue 14, edgecap extension): `POST /pcaps/triggers` bodies validated into
//! a [`Trigger`], with every problem named by its field (`condition.above`,
//! `capture.destination_conf`, `budget.captures_per_hour`, ...) and reported at once.
//!
//! A trigger has four groups of fields:
//! - `scope`: what it watches (`filter_v1` and/or `filter`, `colo_name` or `nodes`, `points`);
//! - `condition`: a `metric` (`packets_per_second`, `bits_per_second`, `syn_per_second`) `per`
//!   destination address or for the whole scope, and exactly one of `above` (a fixed
//!   threshold), `above_baseline` (`factor` times a learned EWMA baseline, never below
//!   `floor`) or `below` (traffic that stopped), held for `sustained_seconds`;
//! - `capture`: the full capture it takes (limits, `points`, `destination_conf`,
//!   `pre_trigger_seconds`, file options);
//! - `cooldown_seconds` and `budget` (`captures_per_hour`, `bytes_per_day`).
//!
//! The capture's rules are the create request's: the scope and the capture are checked by
//! [`validate_create`] itself (as the full capture the trigger would start before it is
//! narrowed to what fired), so a trigger can never hold a capture `POST /pcaps` would refuse.
//! What needs the server (is the bucket validated, is the filter inside the account's
//! tenancy) is the server's, with the [`CreateRequest`] this returns.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::envelope::{ApiError, codes};
use crate::request::fields::{kind, opt_string, opt_string_list};
use crate::request::{AccountLimits, CreateRequest, validate_create};

/// The longest `sustained_seconds` and `pre_trigger_seconds`: the reach of an agent's own
/// rollups kept for evaluation and of what the ring is asked for at once (10 minutes).
pub const MAX_WINDOW_SECONDS: u64 = 600;

/// The longest baseline half-life: the observer's look-back reach (24 h).
pub const MAX_HALF_LIFE_SECONDS: u64 = 24 * 3600;

/// The longest cooldown (a day).
pub const MAX_COOLDOWN_SECONDS: u64 = 24 * 3600;

/// Most captures one trigger may start in an hour (one a minute).
pub const MAX_CAPTURES_PER_HOUR: u64 = 60;

/// Most triggers one account may hold.
pub const MAX_TRIGGERS_PER_ACCOUNT: usize = 100;

/// Most characters of a trigger's `name`.
pub const MAX_NAME_CHARS: usize = 128;

/// The largest threshold accepted (10^15 of anything per second).
pub const MAX_THRESHOLD: f64 = 1e15;

/// The largest baseline factor.
pub const MAX_FACTOR: f64 = 1000.0;

/// Defaults of the optional fields.
pub const DEFAULT_SUSTAINED_SECONDS: u64 = 3;
pub const DEFAULT_COOLDOWN_SECONDS: u64 = 300;
pub const DEFAULT_PRE_TRIGGER_SECONDS: u64 = 10;
pub const DEFAULT_HALF_LIFE_SECONDS: u64 = 300;
pub const DEFAULT_CAPTURES_PER_HOUR: u64 = 4;
pub const DEFAULT_BYTES_PER_DAY: u64 = 10_000_000_000;

/// What a condition measures, per second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    PacketsPerSecond,
    BitsPerSecond,
    /// TCP segments with SYN and without ACK.
    SynPerSecond,
}

impl Metric {
    pub const NAMES: &[&str] = &["packets_per_second", "bits_per_second", "syn_per_second"];

    pub fn from_name(s: &str) -> Option<Metric> {
        match s {
            "packets_per_second" => Some(Metric::PacketsPerSecond),
            "bits_per_second" => Some(Metric::BitsPerSecond),
            "syn_per_second" => Some(Metric::SynPerSecond),
            _ => None,
        }
    }
}

/// Over what a condition is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Per {
    /// Each destination address on its own (the attacked one fires).
    Destination,
    /// The whole scope on each node.
    Scope,
}

/// When a second counts toward firing.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Threshold {
    /// The metric is above this value.
    Above(f64),
    /// The metric is above `factor` times its learned baseline and above `floor`.
    AboveBaseline(Baseline),
    /// The metric is below this value ("my traffic stopped").
    Below(f64),
}

/// A learned baseline: an exponentially weighted moving average of the metric over quiet
/// seconds (seconds that fire do not teach it), with this half-life.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    pub factor: f64,
    pub floor: f64,
    pub half_life_seconds: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Condition {
    pub metric: Metric,
    pub per: Per,
    #[serde(flatten)]
    pub threshold: Threshold,
    pub sustained_seconds: u64,
}

/// What a trigger watches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scope {
    pub filter_v1: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub colo_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes: Option<Vec<String>>,
    pub points: Vec<String>,
}

/// The full capture a trigger starts (narrowed, when it fires, to what fired).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaptureTemplate {
    pub time_limit: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packet_limit: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub byte_limit: Option<u64>,
    pub points: Vec<String>,
    /// As given here; the server replaces it with its canonical, secret-free form.
    pub destination_conf: String,
    pub pre_trigger_seconds: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snaplen: Option<u32>,
    pub format: String,
}

/// How much one trigger may capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Budget {
    pub captures_per_hour: u64,
    pub bytes_per_day: u64,
}

/// The part of a trigger's `captures_per_hour` its nodes spend without asking: half of it,
/// rounded down, split among the nodes in its scope ([`node_share`]). The rest
/// ([`pooled_captures`], at least 1) is granted by the server one capture at a time, under the
/// trigger's row lock, to the node that asks (`AgentMsg::Ask`). Together never more than the
/// budget: the local shares add up to `local_captures`, and the server grants at most
/// `pooled_captures` in any hour.
pub fn local_captures(captures_per_hour: u64) -> u64 {
    captures_per_hour / 2
}

/// The captures of `captures_per_hour` only the server grants (see [`local_captures`]).
pub fn pooled_captures(captures_per_hour: u64) -> u64 {
    captures_per_hour - local_captures(captures_per_hour)
}

/// The part of a trigger's `bytes_per_day` its nodes spend without asking: half of it,
/// rounded down, split among the nodes in its scope ([`node_share`]). The rest
/// ([`pooled_bytes`], at least 1) is granted by the server under the trigger's row lock to a
/// node whose local bytes do not cover a capture's byte limit (`AgentMsg::Ask` with `bytes`),
/// up to what the pool has left of the last day ([`grant_bytes`]). Together never more than
/// the budget: the local shares add up to `local_bytes`, and the server grants at most
/// `pooled_bytes` in any day.
pub fn local_bytes(bytes_per_day: u64) -> u64 {
    bytes_per_day / 2
}

/// The bytes of `bytes_per_day` only the server grants (see [`local_bytes`]).
pub fn pooled_bytes(bytes_per_day: u64) -> u64 {
    bytes_per_day - local_bytes(bytes_per_day)
}

/// The fewest bytes a grant from the pool may hold when more were asked: a capture of fewer
/// bytes than this (64 KiB, about 40 full-size packets) is not worth a rule, so such a grant
/// is a refusal (`budget.bytes_per_day`).
pub const MIN_GRANT_BYTES: u64 = 64 * 1024;

/// What the pool grants when `asked` bytes are asked and `left` remain of it in the last day:
/// as much of the ask as is left, or `None` (refused) when that is nothing or less than
/// [`MIN_GRANT_BYTES`] (an ask of fewer than that is granted whole or not at all).
pub fn grant_bytes(asked: u64, left: u64) -> Option<u64> {
    let g = asked.min(left);
    (g > 0 && g >= asked.min(MIN_GRANT_BYTES)).then_some(g)
}

/// The bytes a capture of a trigger wants when its node has `left` bytes of its own share:
/// the trigger's `capture.byte_limit`; without one (the budget is its only bound) what is
/// left, or, with nothing left, the whole `bytes_per_day` (the pool grants what it has).
pub fn wanted_bytes(byte_limit: Option<u64>, bytes_per_day: u64, left: u64) -> u64 {
    byte_limit.unwrap_or(if left > 0 { left } else { bytes_per_day })
}

/// One node's local share of a trigger's budget when `n` nodes may evaluate it and the node
/// is the `index`-th of them (by name): [`local_captures`] and [`local_bytes`] each split with
/// [`split_limit`](crate::protocol::split_limit) (`x / n`, the first `x % n` nodes one more),
/// so the shares add up to exactly those totals; a share may be 0.
pub fn node_share(budget: Budget, n: usize, index: usize) -> Budget {
    use crate::protocol::split_limit;
    Budget {
        captures_per_hour: split_limit(local_captures(budget.captures_per_hour), n, index),
        bytes_per_day: split_limit(local_bytes(budget.bytes_per_day), n, index),
    }
}

/// A validated trigger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trigger {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub scope: Scope,
    pub condition: Condition,
    pub capture: CaptureTemplate,
    pub cooldown_seconds: u64,
    pub budget: Budget,
}

const KNOWN: &[&str] = &[
    "name",
    "scope",
    "condition",
    "capture",
    "cooldown_seconds",
    "budget",
];
const SCOPE_KNOWN: &[&str] = &["filter_v1", "filter", "colo_name", "nodes", "points"];
const CONDITION_KNOWN: &[&str] = &[
    "metric",
    "per",
    "above",
    "above_baseline",
    "below",
    "sustained_seconds",
];
const BASELINE_KNOWN: &[&str] = &["factor", "floor", "half_life_seconds"];
const CAPTURE_KNOWN: &[&str] = &[
    "time_limit",
    "packet_limit",
    "byte_limit",
    "points",
    "destination_conf",
    "pre_trigger_seconds",
    "snaplen",
    "format",
];
const BUDGET_KNOWN: &[&str] = &["captures_per_hour", "bytes_per_day"];

/// Validates a trigger body against the account's limits. Also returns the full capture the
/// trigger would start (scope and capture fields together), for the server's checks of the
/// destination and the tenancy.
pub fn validate_trigger(
    body: &Value,
    limits: &AccountLimits,
) -> Result<(Trigger, CreateRequest), Vec<ApiError>> {
    let Some(obj) = body.as_object() else {
        return Err(vec![ApiError::new(
            codes::INVALID_BODY,
            "request body: must be a JSON object",
        )]);
    };
    let mut errs = Vec::new();
    unknown(obj, "", KNOWN, &mut errs);
    let name = match opt_string(obj, "name", &mut errs) {
        Some(n) if n.chars().count() > MAX_NAME_CHARS => {
            errs.push(ApiError::field(
                "name",
                format!("is longer than {MAX_NAME_CHARS} characters"),
            ));
            None
        }
        n => n,
    };
    let scope = group(obj, "scope", true, SCOPE_KNOWN, &mut errs);
    let condition = group(obj, "condition", true, CONDITION_KNOWN, &mut errs)
        .and_then(|c| condition(&c, &mut errs));
    let capture = group(obj, "capture", true, CAPTURE_KNOWN, &mut errs);
    let budget = group(obj, "budget", false, BUDGET_KNOWN, &mut errs).unwrap_or_default();
    let cooldown_seconds = whole(
        obj,
        "cooldown_seconds",
        "cooldown_seconds",
        (0, MAX_COOLDOWN_SECONDS),
        DEFAULT_COOLDOWN_SECONDS,
        &mut errs,
    );
    let budget = Budget {
        captures_per_hour: whole(
            &budget,
            "captures_per_hour",
            "budget.captures_per_hour",
            (1, MAX_CAPTURES_PER_HOUR),
            DEFAULT_CAPTURES_PER_HOUR,
            &mut errs,
        ),
        bytes_per_day: whole(
            &budget,
            "bytes_per_day",
            "budget.bytes_per_day",
            (1, u64::MAX >> 11),
            DEFAULT_BYTES_PER_DAY,
            &mut errs,
        ),
    };
    let (Some(scope), Some(capture)) = (scope, capture) else {
        return Err(errs);
    };
    let scope_points = opt_string_list(&scope, "points", &mut Vec::new());
    let pre_trigger_seconds = whole(
        &capture,
        "pre_trigger_seconds",
        "capture.pre_trigger_seconds",
        (0, MAX_WINDOW_SECONDS),
        DEFAULT_PRE_TRIGGER_SECONDS,
        &mut errs,
    );
    let request = as_create(&scope, &capture, limits, &mut errs);
    if let Some(r) = &request
        && let Some(b) = r.byte_limit
        && b > budget.bytes_per_day
    {
        errs.push(ApiError::field(
            "capture.byte_limit",
            format!(
                "{b} is more than budget.bytes_per_day ({}): such a capture could never start",
                budget.bytes_per_day
            ),
        ));
    }
    let (Some(condition), Some(request), true) = (condition, request, errs.is_empty()) else {
        return Err(errs);
    };
    let trigger = Trigger {
        name,
        scope: Scope {
            filter_v1: request.filter_v1.clone(),
            filter: request.filter.clone(),
            colo_name: request.colo_name.clone(),
            nodes: request.nodes.clone(),
            points: scope_points.unwrap_or_else(|| request.points.clone()),
        },
        condition,
        capture: CaptureTemplate {
            time_limit: request.time_limit,
            packet_limit: request.packet_limit,
            byte_limit: request.byte_limit,
            points: request.points.clone(),
            destination_conf: request.destination_conf.clone(),
            pre_trigger_seconds,
            snaplen: request.snaplen,
            format: request.format.clone(),
        },
        cooldown_seconds,
        budget,
    };
    Ok((trigger, request))
}

/// Errors for the fields of `obj` (at `at`, "" for the top) outside `known`.
fn unknown(obj: &Map<String, Value>, at: &str, known: &[&str], errs: &mut Vec<ApiError>) {
    for k in obj.keys().filter(|k| !known.contains(&k.as_str())) {
        errs.push(ApiError::field(
            &format!("{at}{k}"),
            format!("unknown field (known: {})", known.join(", ")),
        ));
    }
}

/// The object at `field`, its unknown fields reported; None (with an error when
/// `required`) when absent or not an object.
fn group(
    obj: &Map<String, Value>,
    field: &str,
    required: bool,
    known: &[&str],
    errs: &mut Vec<ApiError>,
) -> Option<Map<String, Value>> {
    match obj.get(field) {
        None | Some(Value::Null) => {
            if required {
                errs.push(ApiError::field(field, "is required (an object)"));
            }
            None
        }
        Some(Value::Object(m)) => {
            unknown(m, &format!("{field}."), known, errs);
            Some(m.clone())
        }
        Some(v) => {
            errs.push(ApiError::field(
                field,
                format!("must be an object, not {}", kind(v)),
            ));
            None
        }
    }
}

/// A whole number at `obj[key]` (named `path`) in `lo..=hi`, or `default` when absent.
fn whole(
    obj: &Map<String, Value>,
    key: &str,
    path: &str,
    (lo, hi): (u64, u64),
    default: u64,
    errs: &mut Vec<ApiError>,
) -> u64 {
    let v = match obj.get(key) {
        None | Some(Value::Null) => return default,
        Some(v) => v,
    };
    match v.as_f64() {
        Some(n) if n.fract() == 0.0 && n >= lo as f64 && n <= hi as f64 => n as u64,
        Some(n) if n.fract() != 0.0 => {
            errs.push(ApiError::field(path, format!("{n} is not a whole number")));
            default
        }
        Some(n) if n < 1.0 && lo >= 1 => {
            errs.push(ApiError::field(
                path,
                format!("{n} is outside {lo}-{hi}: a budget of zero would never capture; delete the trigger instead"),
            ));
            default
        }
        Some(n) => {
            errs.push(ApiError::field(path, format!("{n} is outside {lo}-{hi}")));
            default
        }
        None => {
            errs.push(ApiError::field(
                path,
                format!("must be a whole number ({lo}-{hi}), not {}", kind(v)),
            ));
            default
        }
    }
}

/// A positive, finite number at `path`, at most `hi`.
fn positive(v: &Value, path: &str, hi: f64, errs: &mut Vec<ApiError>) -> Option<f64> {
    match v.as_f64() {
        Some(n) if n > 0.0 && n <= hi => Some(n),
        Some(n) if n < 0.0 => {
            errs.push(ApiError::field(
                path,
                format!("{n} is negative; a rate is at least 0"),
            ));
            None
        }
        Some(n) => {
            errs.push(ApiError::field(path, format!("{n} is outside (0, {hi:e}]")));
            None
        }
        None => {
            errs.push(ApiError::field(
                path,
                format!("must be a number, not {}", kind(v)),
            ));
            None
        }
    }
}

fn condition(c: &Map<String, Value>, errs: &mut Vec<ApiError>) -> Option<Condition> {
    let metric = match c.get("metric") {
        None | Some(Value::Null) => {
            errs.push(ApiError::field(
                "condition.metric",
                format!("is required (one of {})", Metric::NAMES.join(", ")),
            ));
            None
        }
        Some(Value::String(s)) => match Metric::from_name(s) {
            Some(m) => Some(m),
            None => {
                errs.push(ApiError::field(
                    "condition.metric",
                    format!(
                        "{s:?} is not a metric (one of {})",
                        Metric::NAMES.join(", ")
                    ),
                ));
                None
            }
        },
        Some(v) => {
            errs.push(ApiError::field(
                "condition.metric",
                format!("must be a string, not {}", kind(v)),
            ));
            None
        }
    };
    let per = match c.get("per") {
        None | Some(Value::Null) => Some(Per::Scope),
        Some(Value::String(s)) if s == "destination" => Some(Per::Destination),
        Some(Value::String(s)) if s == "scope" => Some(Per::Scope),
        Some(_) => {
            errs.push(ApiError::field(
                "condition.per",
                "must be \"destination\" (each destination address) or \"scope\" (the whole scope)",
            ));
            None
        }
    };
    let given: Vec<&str> = ["above", "above_baseline", "below"]
        .into_iter()
        .filter(|k| c.get(*k).is_some_and(|v| !v.is_null()))
        .collect();
    let threshold = match given.as_slice() {
        ["above"] => {
            positive(&c["above"], "condition.above", MAX_THRESHOLD, errs).map(Threshold::Above)
        }
        ["below"] => {
            if per == Some(Per::Destination) {
                errs.push(ApiError::field(
                    "condition.below",
                    "applies to the whole scope (per: \"scope\"): a destination that sends \
                     nothing has no rate to watch",
                ));
            }
            positive(&c["below"], "condition.below", MAX_THRESHOLD, errs).map(Threshold::Below)
        }
        ["above_baseline"] => baseline(&c["above_baseline"], errs).map(Threshold::AboveBaseline),
        [_, second, ..] => {
            errs.push(ApiError::field(
                &format!("condition.{second}"),
                format!(
                    "give only one of above, above_baseline, below (got {})",
                    given.join(", ")
                ),
            ));
            None
        }
        _ => {
            errs.push(ApiError::field(
                "condition.above",
                "one of above, above_baseline or below is required",
            ));
            None
        }
    };
    let sustained_seconds = whole(
        c,
        "sustained_seconds",
        "condition.sustained_seconds",
        (1, MAX_WINDOW_SECONDS),
        DEFAULT_SUSTAINED_SECONDS,
        errs,
    );
    Some(Condition {
        metric: metric?,
        per: per?,
        threshold: threshold?,
        sustained_seconds,
    })
}

fn baseline(v: &Value, errs: &mut Vec<ApiError>) -> Option<Baseline> {
    const AT: &str = "condition.above_baseline";
    let Value::Object(b) = v else {
        errs.push(ApiError::field(
            AT,
            format!(
                "must be an object {{factor, floor, half_life_seconds}}, not {}",
                kind(v)
            ),
        ));
        return None;
    };
    unknown(b, &format!("{AT}."), BASELINE_KNOWN, errs);
    let factor = match b.get("factor") {
        None | Some(Value::Null) => {
            errs.push(ApiError::field(
                &format!("{AT}.factor"),
                "is required (e.g. 5: fire at five times the baseline)",
            ));
            None
        }
        Some(f) => {
            match f.as_f64() {
                Some(n) if n > 1.0 && n <= MAX_FACTOR => Some(n),
                Some(n) => {
                    errs.push(ApiError::field(
                    &format!("{AT}.factor"),
                    format!("{n} is outside (1, {MAX_FACTOR}]: the rate must rise above its baseline"),
                ));
                    None
                }
                None => {
                    errs.push(ApiError::field(
                        &format!("{AT}.factor"),
                        format!("must be a number, not {}", kind(f)),
                    ));
                    None
                }
            }
        }
    };
    let floor = match b.get("floor") {
        None | Some(Value::Null) => {
            errs.push(ApiError::field(
                &format!("{AT}.floor"),
                "is required: the least rate that can fire, however low the baseline",
            ));
            None
        }
        Some(f) => positive(f, &format!("{AT}.floor"), MAX_THRESHOLD, errs),
    };
    let half_life_seconds = whole(
        b,
        "half_life_seconds",
        &format!("{AT}.half_life_seconds"),
        (1, MAX_HALF_LIFE_SECONDS),
        DEFAULT_HALF_LIFE_SECONDS,
        errs,
    );
    Some(Baseline {
        factor: factor?,
        floor: floor?,
        half_life_seconds,
    })
}

/// The scope and capture groups as the create body of the full capture the trigger would
/// start, validated by [`validate_create`]; its errors are renamed into the trigger's groups.
fn as_create(
    scope: &Map<String, Value>,
    capture: &Map<String, Value>,
    limits: &AccountLimits,
    errs: &mut Vec<ApiError>,
) -> Option<CreateRequest> {
    let mut body = Map::new();
    body.insert("type".into(), "full".into());
    body.insert("system".into(), "magic-transit".into());
    let mut from_scope = Vec::new();
    for k in ["filter_v1", "filter", "colo_name", "nodes"] {
        if let Some(v) = scope.get(k) {
            body.insert(k.into(), v.clone());
            from_scope.push(k);
        }
    }
    for k in CAPTURE_KNOWN {
        if *k != "pre_trigger_seconds"
            && let Some(v) = capture.get(*k)
        {
            body.insert((*k).into(), v.clone());
        }
    }
    // The capture's points default to the scope's.
    if !capture.contains_key("points")
        && let Some(p) = scope.get("points")
    {
        body.insert("points".into(), p.clone());
        from_scope.push("points");
    } else if scope.contains_key("points") {
        let mut own = Vec::new();
        opt_string_list(scope, "points", &mut own);
        errs.extend(own.into_iter().map(|e| in_group(e, "scope")));
    }
    match validate_create(&Value::Object(body), limits) {
        Ok(r) => Some(r),
        Err(found) => {
            for e in found {
                let top = e
                    .source
                    .as_ref()
                    .and_then(|s| s.pointer.split('/').nth(1))
                    .unwrap_or_default()
                    .to_owned();
                let in_scope = from_scope.contains(&top.as_str())
                    || (top == "colo_name" && !scope.contains_key("nodes"));
                errs.push(in_group(e, if in_scope { "scope" } else { "capture" }));
            }
            None
        }
    }
}

/// `e` about field `x` becomes about `group.x` (the server's checks of a trigger's scope
/// and capture use it too).
pub fn in_group(mut e: ApiError, group: &str) -> ApiError {
    if let Some(s) = &mut e.source {
        let path = s.pointer.trim_start_matches('/').replace('/', ".");
        if let Some(rest) = e.message.strip_prefix(&format!("{path}: ")) {
            e.message = format!("{group}.{path}: {rest}");
        }
        s.pointer = format!("/{group}{}", s.pointer);
    }
    e
}

#[cfg(test)]
#[path = "trigger_tests.rs"]
mod tests;
