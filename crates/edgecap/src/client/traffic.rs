//! `edgecap traffic` and `edgecap top`: the analytics API (`/traffic`, `/traffic/top`) as a
//! table with sparklines and as a live heavy-hitter view.

use std::io::IsTerminal;
use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

use super::{Conn, ConnectArgs};
use crate::exit::Failure;
use crate::out;

/// `edgecap traffic`.
#[derive(Debug, Clone, clap::Args)]
pub struct TrafficArgs {
    /// Start of the range: a duration before now (1h, 30m) or an RFC 3339 time.
    #[arg(long, default_value = "1h")]
    pub since: String,
    /// End of the range (same forms) [default: now].
    #[arg(long)]
    pub until: Option<String>,
    /// Seconds per point (10s, 1m) [default: chosen by the server, at most 1000 points].
    #[arg(long)]
    pub step: Option<String>,
    /// Only these nodes (comma-separated).
    #[arg(long)]
    pub nodes: Option<String>,
    /// Only these points (comma-separated).
    #[arg(long)]
    pub points: Option<String>,
    /// One row per node, point or proto.
    #[arg(long, default_value = "node", value_parser = ["node", "point", "proto"])]
    pub group_by: String,
    #[command(flatten)]
    pub server: ConnectArgs,
    #[arg(long, help = crate::out::JSON_HELP)]
    pub json: bool,
}

/// `edgecap top`.
#[derive(Debug, Clone, clap::Args)]
pub struct TopArgs {
    /// Rank destinations, sources or destination ports.
    #[arg(long, default_value = "dst", value_parser = ["dst", "src", "dport"])]
    pub by: String,
    /// The window each view covers, ending now.
    #[arg(long, default_value = "10s")]
    pub window: String,
    /// Keys shown (1-64).
    #[arg(long, default_value_t = 10)]
    pub limit: u32,
    /// Only these nodes (comma-separated).
    #[arg(long)]
    pub nodes: Option<String>,
    #[command(flatten)]
    pub server: ConnectArgs,
    /// One snapshot as JSON (no refresh).
    #[arg(long, help = crate::out::JSON_HELP)]
    pub json: bool,
}

/// Percent-encodes a query value.
fn enc(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b',' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A time flag as the API takes it: a duration means that long before now.
pub(super) fn time(v: &str) -> String {
    match crate::units::parse_duration(v) {
        Ok(_) => format!("-{}", v.trim()),
        Err(_) => v.trim().to_owned(),
    }
}

pub(super) fn query(pairs: &[(&str, Option<String>)]) -> String {
    pairs
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", enc(v))))
        .collect::<Vec<_>>()
        .join("&")
}

const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// A sparkline of `values` in at most `width` characters (each the largest of its share).
pub fn sparkline(values: &[f64], width: usize) -> String {
    if values.is_empty() || width == 0 {
        return String::new();
    }
    let per = values.len().div_ceil(width);
    let cols: Vec<f64> = values
        .chunks(per)
        .map(|c| c.iter().copied().fold(0.0, f64::max))
        .collect();
    let max = cols.iter().copied().fold(0.0, f64::max);
    cols.iter()
        .map(|v| match max > 0.0 {
            true => BARS[((v / max) * 7.0).round().clamp(0.0, 7.0) as usize],
            false => BARS[0],
        })
        .collect()
}

/// A rate with an SI prefix: `12.3k`.
fn si(v: f64) -> String {
    let (d, p) = match v {
        v if v >= 1e9 => (1e9, "G"),
        v if v >= 1e6 => (1e6, "M"),
        v if v >= 1e3 => (1e3, "k"),
        _ => (1.0, ""),
    };
    format!("{:.1}{p}", v / d)
}

/// `edgecap traffic`.
pub fn traffic(a: &TrafficArgs) -> Result<(), Failure> {
    let conn = a.server.connect()?;
    let q = query(&[
        ("since", Some(time(&a.since))),
        ("until", a.until.as_deref().map(time)),
        ("step", a.step.clone()),
        ("nodes", a.nodes.clone()),
        ("points", a.points.clone()),
        ("group_by", Some(a.group_by.clone())),
    ]);
    let v: Value = conn
        .call(Method::GET, &format!("traffic?{q}"), None)?
        .unwrap_or_default();
    if a.json {
        return out::json(&v);
    }
    let step = v["step"].as_f64().unwrap_or(1.0).max(1.0);
    out::write(format_args!(
        "{} to {}, {} s a point ({} rows)\n",
        v["since"].as_str().unwrap_or("?"),
        v["until"].as_str().unwrap_or("?"),
        step,
        v["resolution"].as_str().unwrap_or("?")
    ));
    out::write(format_args!(
        "{:<24} {:>10} {:>10} {:>10}  {}\n",
        a.group_by.to_uppercase(),
        "PKT/S",
        "BIT/S",
        "PEAK PKT/S",
        "HISTORY"
    ));
    for s in v["series"].as_array().into_iter().flatten() {
        let points = s["points"].as_array().cloned().unwrap_or_default();
        let pps: Vec<f64> = points
            .iter()
            .map(|p| p["packets_per_second"].as_f64().unwrap_or(0.0))
            .collect();
        let secs = step * points.len().max(1) as f64;
        let avg_p = s["packets"].as_f64().unwrap_or(0.0) / secs;
        let avg_b = s["bytes"].as_f64().unwrap_or(0.0) * 8.0 / secs;
        let peak = pps.iter().copied().fold(0.0, f64::max);
        out::write(format_args!(
            "{:<24} {:>10} {:>10} {:>10}  {}\n",
            s["key"].as_str().unwrap_or("all"),
            si(avg_p),
            si(avg_b),
            si(peak),
            sparkline(&pps, 60)
        ));
    }
    out::finish()
}

fn top_once(conn: &Conn, a: &TopArgs) -> Result<Value, Failure> {
    let q = query(&[
        ("since", Some(time(&a.window))),
        ("by", Some(a.by.clone())),
        ("limit", Some(a.limit.to_string())),
        ("nodes", a.nodes.clone()),
    ]);
    Ok(conn
        .call(Method::GET, &format!("traffic/top?{q}"), None)?
        .unwrap_or_default())
}

fn render_top(v: &Value, by: &str) {
    out::write(format_args!(
        "{} to {}: {} pkt/s, {} bit/s\n{:<40} {:>12} {:>12}\n",
        v["since"].as_str().unwrap_or("?"),
        v["until"].as_str().unwrap_or("?"),
        si(v["packets_per_second"].as_f64().unwrap_or(0.0)),
        si(v["bits_per_second"].as_f64().unwrap_or(0.0)),
        by.to_uppercase(),
        "PKT/S",
        "AT LEAST"
    ));
    for h in v["hitters"].as_array().into_iter().flatten() {
        let key = match &h["key"] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        out::write(format_args!(
            "{key:<40} {:>12} {:>12}\n",
            si(h["packets_per_second"].as_f64().unwrap_or(0.0)),
            si(h["packets_per_second_min"].as_f64().unwrap_or(0.0)),
        ));
    }
}

/// `edgecap top`: one JSON snapshot, or a view refreshed every second until Ctrl-C.
pub fn top(a: &TopArgs) -> Result<(), Failure> {
    if !(1..=64).contains(&a.limit) {
        return Err(Failure::usage(format!(
            "--limit: {} is not in 1-64",
            a.limit
        )));
    }
    crate::units::parse_duration(&a.window)
        .map_err(|e| Failure::usage(format!("--window: {e}")))?;
    let conn = a.server.connect()?;
    if a.json {
        return out::json(&top_once(&conn, a)?);
    }
    let tty = std::io::stdout().is_terminal();
    loop {
        let v = top_once(&conn, a)?;
        if tty {
            out::write(format_args!("\x1b[H\x1b[2J"));
        }
        render_top(&v, &a.by);
        out::finish()?;
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparklines_scale_to_the_peak() {
        assert_eq!(sparkline(&[0.0, 1.0, 2.0, 4.0], 4), "▁▃▅█");
        assert_eq!(sparkline(&[1.0, 4.0, 2.0, 2.0], 2), "█▅");
        assert_eq!(sparkline(&[0.0, 0.0], 10), "▁▁");
    }

    #[test]
    fn times_and_values_reach_the_api_intact() {
        assert_eq!(time("1h"), "-1h");
        assert_eq!(
            time("2026-01-01T00:00:00+01:00"),
            "2026-01-01T00:00:00+01:00"
        );
        assert_eq!(
            enc("2026-01-01T00:00:00+01:00"),
            "2026-01-01T00%3A00%3A00%2B01%3A00"
        );
    }
}
