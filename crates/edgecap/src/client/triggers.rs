//! `edgecap triggers add/ls/rm`: anomaly triggers (`/pcaps/triggers`, docs/api.md
//! "Triggers"). Flags become the API's body as typed (quantities parsed from their units);
//! the server checks every rule and its errors name the body's fields.

use reqwest::Method;
use serde_json::{Map, Value, json};

use super::ConnectArgs;
use crate::exit::Failure;
use crate::out::{self, outln};
use crate::units::{parse_count, parse_duration, parse_size};

/// `edgecap triggers`.
#[derive(Debug, Clone, clap::Args)]
pub struct TriggersArgs {
    #[command(subcommand)]
    pub command: TriggersCommand,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum TriggersCommand {
    /// Add a trigger: when its condition holds on a node, that node takes a capture.
    Add(Box<AddArgs>),
    /// List the account's triggers.
    Ls {
        #[command(flatten)]
        server: ConnectArgs,
        #[arg(long, help = crate::out::JSON_HELP)]
        json: bool,
    },
    /// Delete a trigger (captures it started stay).
    Rm {
        /// Trigger id (32 hex digits).
        id: String,
        #[command(flatten)]
        server: ConnectArgs,
    },
}

/// `edgecap triggers add`.
#[derive(Debug, Clone, clap::Args)]
pub struct AddArgs {
    /// A name for lists and events.
    #[arg(long)]
    pub name: Option<String>,
    /// Watch traffic matching this tcpdump-style expression.
    #[arg(long)]
    pub filter: Option<String>,
    /// Watch this node or site (colo_name).
    #[arg(long)]
    pub colo: Option<String>,
    /// Watch these nodes or label selectors (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub nodes: Vec<String>,
    /// Watch these capture points (comma-separated) [default: pre-firewall].
    #[arg(long, value_delimiter = ',')]
    pub points: Vec<String>,
    /// What to measure: packets_per_second (pps), bits_per_second (bps), syn_per_second
    /// (syn).
    #[arg(long)]
    pub metric: String,
    /// Measure each destination address on its own (the attacked one fires) instead of the
    /// whole scope.
    #[arg(long)]
    pub per_destination: bool,
    /// Fire above this rate (1k, 2.5M).
    #[arg(long, conflicts_with_all = ["above_baseline", "below"])]
    pub above: Option<String>,
    /// Fire above this many times the learned baseline (needs --floor).
    #[arg(long, requires = "floor", conflicts_with = "below")]
    pub above_baseline: Option<f64>,
    /// With --above-baseline: the least rate that can fire.
    #[arg(long, requires = "above_baseline")]
    pub floor: Option<String>,
    /// With --above-baseline: the baseline's half-life (5m, 1h) [default: 5m].
    #[arg(long, requires = "above_baseline")]
    pub half_life: Option<String>,
    /// Fire below this rate (traffic that stopped).
    #[arg(long)]
    pub below: Option<String>,
    /// How long the condition must hold (3s) [default: 3s].
    #[arg(long)]
    pub sustained: Option<String>,
    /// The capture's time limit [default: 60s].
    #[arg(long, default_value = "60s")]
    pub time: String,
    /// The capture's packet limit (whole capture).
    #[arg(long)]
    pub packets: Option<String>,
    /// The capture's byte limit (whole capture; 10MB).
    #[arg(long)]
    pub bytes: Option<String>,
    /// Capture at these points (comma-separated) [default: the watched points].
    #[arg(long, value_delimiter = ',')]
    pub capture_points: Vec<String>,
    /// Where the capture goes: a validated bucket or file:///dir [default: the client
    /// configuration's destination].
    #[arg(long)]
    pub destination: Option<String>,
    /// Seconds of sampled packets from before the firing to put first (10s) [default: 10s].
    #[arg(long)]
    pub pre_trigger: Option<String>,
    /// Time before the trigger can fire again (5m) [default: 5m].
    #[arg(long)]
    pub cooldown: Option<String>,
    /// Captures the trigger may start in an hour [default: 4].
    #[arg(long)]
    pub captures_per_hour: Option<String>,
    /// Bytes its captures may write in a day (10GB) [default: 10GB].
    #[arg(long)]
    pub bytes_per_day: Option<String>,
    #[command(flatten)]
    pub server: ConnectArgs,
    #[arg(long, help = crate::out::JSON_HELP)]
    pub json: bool,
}

/// Runs `edgecap triggers ...`.
pub fn triggers(a: &TriggersArgs) -> Result<(), Failure> {
    match &a.command {
        TriggersCommand::Add(add) => {
            let conn = add.server.connect()?;
            let body = body(add, conn.destination.clone())?;
            let t: Value = conn
                .call(Method::POST, "pcaps/triggers", Some(&body))?
                .ok_or_else(|| {
                    Failure::runtime("the server stored a trigger but returned nothing")
                })?;
            if add.json {
                out::json(&t)?;
            } else {
                outln!("{}", t["id"].as_str().unwrap_or_default());
            }
            Ok(())
        }
        TriggersCommand::Ls { server, json } => {
            let conn = server.connect()?;
            let list: Vec<Value> = conn
                .call(Method::GET, "pcaps/triggers", None)?
                .unwrap_or_default();
            if *json {
                out::json(&list)?;
            } else {
                table(&list);
            }
            Ok(())
        }
        TriggersCommand::Rm { id, server } => {
            if !edgecap_model::ids::is_id(id) {
                return Err(Failure::usage(format!(
                    "ID: {id:?} is not a 32-hex-digit trigger id"
                )));
            }
            let conn = server.connect()?;
            let _: Option<Value> =
                conn.call(Method::DELETE, &format!("pcaps/triggers/{id}"), None)?;
            eprintln!("trigger {id} deleted");
            Ok(())
        }
    }
}

/// The metric's API name from its name or short form.
fn metric(s: &str) -> String {
    match s {
        "pps" => "packets_per_second".into(),
        "bps" => "bits_per_second".into(),
        "syn" => "syn_per_second".into(),
        other => other.into(),
    }
}

/// A rate: a count with an optional SI suffix (1k, 2.5M); fractions pass as typed.
fn rate(flag: &str, v: &str) -> Result<Value, Failure> {
    if let Ok(n) = v.trim().parse::<f64>() {
        return Ok(json!(n));
    }
    // k, M, G: powers of 1000, as sizes take them.
    parse_size(v).map(|n| json!(n)).map_err(|_| {
        Failure::usage(format!(
            "{flag}: {v:?} is not a rate (e.g. 5000, 50k, 2.5, 1M)"
        ))
    })
}

fn seconds(flag: &str, v: &str) -> Result<Value, Failure> {
    let d = parse_duration(v).map_err(|e| Failure::usage(format!("{flag}: {e}")))?;
    let s = d.as_secs_f64();
    Ok(if s.fract() == 0.0 {
        json!(d.as_secs())
    } else {
        json!(s)
    })
}

/// The `POST /pcaps/triggers` body from the flags.
pub(crate) fn body(a: &AddArgs, default_dest: Option<String>) -> Result<Value, Failure> {
    let mut b = Map::new();
    if let Some(n) = &a.name {
        b.insert("name".into(), json!(n));
    }
    let mut scope = Map::new();
    scope.insert("filter_v1".into(), json!({}));
    if let Some(f) = &a.filter {
        scope.insert("filter".into(), json!(f));
    }
    if let Some(c) = &a.colo {
        scope.insert("colo_name".into(), json!(c));
    }
    if !a.nodes.is_empty() {
        scope.insert("nodes".into(), json!(a.nodes));
    }
    if !a.points.is_empty() {
        scope.insert("points".into(), json!(a.points));
    }
    b.insert("scope".into(), Value::Object(scope));

    let mut cond = Map::new();
    cond.insert("metric".into(), json!(metric(&a.metric)));
    cond.insert(
        "per".into(),
        json!(if a.per_destination {
            "destination"
        } else {
            "scope"
        }),
    );
    if let Some(v) = &a.above {
        cond.insert("above".into(), rate("--above", v)?);
    }
    if let Some(k) = a.above_baseline {
        let mut base = Map::new();
        base.insert("factor".into(), json!(k));
        if let Some(f) = &a.floor {
            base.insert("floor".into(), rate("--floor", f)?);
        }
        if let Some(h) = &a.half_life {
            base.insert("half_life_seconds".into(), seconds("--half-life", h)?);
        }
        cond.insert("above_baseline".into(), Value::Object(base));
    }
    if let Some(v) = &a.below {
        cond.insert("below".into(), rate("--below", v)?);
    }
    if let Some(s) = &a.sustained {
        cond.insert("sustained_seconds".into(), seconds("--sustained", s)?);
    }
    b.insert("condition".into(), Value::Object(cond));

    let mut cap = Map::new();
    cap.insert("time_limit".into(), seconds("--time", &a.time)?);
    if let Some(p) = &a.packets {
        let n = parse_count(p).map_err(|e| Failure::usage(format!("--packets: {e}")))?;
        cap.insert("packet_limit".into(), json!(n));
    }
    if let Some(s) = &a.bytes {
        let n = parse_size(s).map_err(|e| Failure::usage(format!("--bytes: {e}")))?;
        cap.insert("byte_limit".into(), json!(n));
    }
    if !a.capture_points.is_empty() {
        cap.insert("points".into(), json!(a.capture_points));
    }
    let dest = a.destination.clone().or(default_dest).ok_or_else(|| {
        Failure::usage(
            "--destination: required (a validated bucket or file:///dir), or set destination \
             in the client configuration",
        )
    })?;
    cap.insert("destination_conf".into(), json!(dest));
    if let Some(p) = &a.pre_trigger {
        cap.insert("pre_trigger_seconds".into(), seconds("--pre-trigger", p)?);
    }
    b.insert("capture".into(), Value::Object(cap));

    if let Some(c) = &a.cooldown {
        b.insert("cooldown_seconds".into(), seconds("--cooldown", c)?);
    }
    let mut budget = Map::new();
    if let Some(n) = &a.captures_per_hour {
        let n = parse_count(n).map_err(|e| Failure::usage(format!("--captures-per-hour: {e}")))?;
        budget.insert("captures_per_hour".into(), json!(n));
    }
    if let Some(s) = &a.bytes_per_day {
        let n = parse_size(s).map_err(|e| Failure::usage(format!("--bytes-per-day: {e}")))?;
        budget.insert("bytes_per_day".into(), json!(n));
    }
    if !budget.is_empty() {
        b.insert("budget".into(), Value::Object(budget));
    }
    Ok(Value::Object(b))
}

/// One line per trigger: id, name, condition, scope.
fn table(list: &[Value]) {
    if list.is_empty() {
        eprintln!("no triggers");
        return;
    }
    outln!("{:<32}  {:<16}  {:<44}  SCOPE", "ID", "NAME", "CONDITION");
    for t in list {
        outln!(
            "{:<32}  {:<16}  {:<44}  {}",
            t["id"].as_str().unwrap_or_default(),
            t["name"].as_str().unwrap_or("-"),
            condition_text(&t["condition"]),
            scope_text(&t["scope"]),
        );
    }
}

fn condition_text(c: &Value) -> String {
    let metric = c["metric"].as_str().unwrap_or("?");
    let per = match c["per"].as_str() {
        Some("destination") => " per dst",
        _ => "",
    };
    let test = if let Some(v) = c["above"].as_f64() {
        format!("> {v}")
    } else if let Some(v) = c["below"].as_f64() {
        format!("< {v}")
    } else {
        let b = &c["above_baseline"];
        format!(
            "> {}x baseline (floor {})",
            b["factor"].as_f64().unwrap_or(0.0),
            b["floor"].as_f64().unwrap_or(0.0)
        )
    };
    format!(
        "{metric}{per} {test} for {}s",
        c["sustained_seconds"].as_u64().unwrap_or(0)
    )
}

fn scope_text(s: &Value) -> String {
    let mut parts = Vec::new();
    if let Some(c) = s["colo_name"].as_str() {
        parts.push(format!("colo {c}"));
    }
    if let Some(n) = s["nodes"].as_array() {
        let names: Vec<&str> = n.iter().filter_map(Value::as_str).collect();
        parts.push(format!("nodes {}", names.join(",")));
    }
    if let Some(f) = s["filter"].as_str() {
        parts.push(format!("filter {f:?}"));
    }
    if s["filter_v1"].as_object().is_some_and(|o| !o.is_empty()) {
        parts.push(format!("filter_v1 {}", s["filter_v1"]));
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(subcommand)]
        command: TriggersCommand,
    }

    fn add(args: &[&str]) -> AddArgs {
        let mut all = vec!["t", "add"];
        all.extend_from_slice(args);
        match Cli::try_parse_from(all).unwrap().command {
            TriggersCommand::Add(a) => *a,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn flags_become_the_api_body() {
        let a = add(&[
            "--name",
            "flood",
            "--colo",
            "fra",
            "--filter",
            "udp",
            "--metric",
            "pps",
            "--per-destination",
            "--above",
            "50k",
            "--sustained",
            "2s",
            "--packets",
            "10000",
            "--destination",
            "file:///srv/pcaps",
            "--pre-trigger",
            "20s",
            "--cooldown",
            "10m",
            "--captures-per-hour",
            "2",
            "--bytes-per-day",
            "1GB",
        ]);
        let b = body(&a, None).unwrap();
        assert_eq!(
            b,
            json!({
                "name": "flood",
                "scope": {"filter_v1": {}, "filter": "udp", "colo_name": "fra"},
                "condition": {"metric": "packets_per_second", "per": "destination",
                              "above": 50000, "sustained_seconds": 2},
                "capture": {"time_limit": 60, "packet_limit": 10000,
                            "destination_conf": "file:///srv/pcaps", "pre_trigger_seconds": 20},
                "cooldown_seconds": 600,
                "budget": {"captures_per_hour": 2, "bytes_per_day": 1_000_000_000u64},
            })
        );
        // The body passes the server's own validation.
        edgecap_model::trigger::validate_trigger(&b, &Default::default()).unwrap();
    }

    #[test]
    fn baseline_and_below_conditions() {
        let a = add(&[
            "--nodes",
            "edge0,edge1",
            "--metric",
            "bps",
            "--above-baseline",
            "4",
            "--floor",
            "1M",
            "--half-life",
            "1h",
            "--destination",
            "file:///x",
        ]);
        let b = body(&a, None).unwrap();
        assert_eq!(
            b["condition"]["above_baseline"],
            json!({"factor": 4.0, "floor": 1_000_000, "half_life_seconds": 3600})
        );
        assert_eq!(b["scope"]["nodes"], json!(["edge0", "edge1"]));
        let a = add(&["--colo", "fra", "--metric", "pps", "--below", "10"]);
        let b = body(&a, Some("file:///d".into())).unwrap();
        assert_eq!(b["condition"]["below"], json!(10.0));
        assert_eq!(b["capture"]["destination_conf"], "file:///d");
    }

    #[test]
    fn bad_flags_name_themselves() {
        let a = add(&["--colo", "fra", "--metric", "pps", "--above", "lots"]);
        let e = body(&a, Some("file:///d".into())).unwrap_err();
        assert!(e.message.starts_with("--above:"), "{}", e.message);
        let a = add(&[
            "--colo",
            "fra",
            "--metric",
            "pps",
            "--above",
            "1",
            "--sustained",
            "x",
        ]);
        let e = body(&a, Some("file:///d".into())).unwrap_err();
        assert!(e.message.starts_with("--sustained:"), "{}", e.message);
        let a = add(&["--colo", "fra", "--metric", "pps", "--above", "1"]);
        let e = body(&a, None).unwrap_err();
        assert!(e.message.starts_with("--destination:"), "{}", e.message);
        assert!(
            Cli::try_parse_from([
                "t", "add", "--metric", "pps", "--above", "1", "--below", "2"
            ])
            .is_err()
        );
    }
}
