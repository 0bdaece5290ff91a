//! `edgecap events [show ID]`: the anomalies the account's triggers saw (`/events`,
//! docs/api.md "Events"): one line each (start, end, trigger, key, nodes, peak, captures), or
//! one event in full.

use reqwest::Method;
use serde_json::Value;

use super::ConnectArgs;
use super::traffic::{query, time};
use crate::exit::Failure;
use crate::out::{self, outln};

/// `edgecap events`.
#[derive(Debug, Clone, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct EventsArgs {
    #[command(subcommand)]
    pub command: Option<EventsCommand>,
    /// Events that started at or after this time (RFC 3339, unix seconds, or a duration
    /// before now: 1h).
    #[arg(long)]
    pub since: Option<String>,
    /// Events that started before this time (as --since).
    #[arg(long)]
    pub until: Option<String>,
    /// Only this trigger's events (32 hex digits).
    #[arg(long)]
    pub trigger: Option<String>,
    /// Page of the list, from 1 [default: 1].
    #[arg(long)]
    pub page: Option<u64>,
    /// Events per page [default: 50].
    #[arg(long)]
    pub per_page: Option<u64>,
    #[command(flatten)]
    pub server: ConnectArgs,
    #[arg(long, help = crate::out::JSON_HELP)]
    pub json: bool,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum EventsCommand {
    /// One event in full: its nodes, captures and files, refusals, signature.
    Show {
        /// Event id (32 hex digits).
        id: String,
        #[command(flatten)]
        server: ConnectArgs,
        #[arg(long, help = crate::out::JSON_HELP)]
        json: bool,
    },
}

/// Runs `edgecap events ...`.
pub fn events(a: &EventsArgs) -> Result<(), Failure> {
    match &a.command {
        Some(EventsCommand::Show { id, server, json }) => {
            if !edgecap_model::ids::is_id(id) {
                return Err(Failure::usage(format!(
                    "ID: {id:?} is not a 32-hex-digit event id"
                )));
            }
            let conn = server.connect()?;
            let e: Value = conn
                .call(Method::GET, &format!("events/{id}"), None)?
                .ok_or_else(|| Failure::runtime("the server returned no event"))?;
            if *json {
                out::json(&e)?;
            } else {
                show(&e);
            }
            Ok(())
        }
        None => {
            if let Some(t) = &a.trigger
                && !edgecap_model::ids::is_id(t)
            {
                return Err(Failure::usage(format!(
                    "--trigger: {t:?} is not a 32-hex-digit trigger id"
                )));
            }
            let q = query(&[
                ("since", a.since.as_deref().map(time)),
                ("until", a.until.as_deref().map(time)),
                ("trigger_id", a.trigger.clone()),
                ("page", a.page.map(|p| p.to_string())),
                ("per_page", a.per_page.map(|p| p.to_string())),
            ]);
            let conn = a.server.connect()?;
            let path = if q.is_empty() {
                "events".to_owned()
            } else {
                format!("events?{q}")
            };
            let list: Vec<Value> = conn.call(Method::GET, &path, None)?.unwrap_or_default();
            if a.json {
                out::json(&list)?;
            } else {
                table(&list);
            }
            Ok(())
        }
    }
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or("-")
}

/// What an event's captures came to: `2 captures`, `1 capture, 1 refused`.
fn captures_text(e: &Value) -> String {
    let n = e["captures"].as_array().map_or(0, Vec::len);
    let refused = e["refusals"].as_array().map_or(0, Vec::len);
    let mut s = format!("{n} capture{}", if n == 1 { "" } else { "s" });
    if refused > 0 {
        s.push_str(&format!(", {refused} refused"));
    }
    s
}

fn nodes_text(e: &Value) -> String {
    e["nodes"]
        .as_array()
        .map(|n| {
            n.iter()
                .filter_map(|n| n["node"].as_str())
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

/// One line per event, newest first.
fn table(list: &[Value]) {
    if list.is_empty() {
        eprintln!("no events");
        return;
    }
    outln!(
        "{:<32}  {:<20}  {:<20}  {:<16}  {:<15}  {:>12}  {:<16}  CAPTURES",
        "ID",
        "STARTED",
        "ENDED",
        "TRIGGER",
        "KEY",
        "PEAK/S",
        "NODES"
    );
    for e in list {
        let trigger = e["trigger_name"]
            .as_str()
            .or(e["trigger_id"].as_str())
            .unwrap_or("-");
        outln!(
            "{:<32}  {:<20}  {:<20}  {:<16}  {:<15}  {:>12}  {:<16}  {}",
            text(&e["id"]),
            short_time(&e["started"]),
            if e["ended"].is_null() {
                "ongoing".to_owned()
            } else {
                short_time(&e["ended"])
            },
            trigger,
            e["key"].as_str().unwrap_or("(scope)"),
            e["peak"].as_f64().map_or("-".into(), |p| format!("{p:.0}")),
            nodes_text(e),
            captures_text(e),
        );
    }
}

/// RFC 3339 to the second (the list is narrow).
fn short_time(v: &Value) -> String {
    let s = text(v);
    match s.split_once('.') {
        Some((head, _)) => format!("{head}Z"),
        None => s.to_owned(),
    }
}

/// One event in full.
fn show(e: &Value) {
    outln!("event     {}", text(&e["id"]));
    outln!(
        "trigger   {} ({})",
        e["trigger_name"].as_str().unwrap_or("-"),
        text(&e["trigger_id"])
    );
    outln!(
        "key       {}",
        e["key"].as_str().unwrap_or("(the whole scope)")
    );
    outln!("started   {}", text(&e["started"]));
    outln!(
        "ended     {}",
        e["ended"]
            .as_str()
            .unwrap_or("ongoing (a node still holds)")
    );
    outln!("peak      {}/s", e["peak"].as_f64().unwrap_or(0.0));
    outln!("nodes");
    for n in e["nodes"].as_array().into_iter().flatten() {
        outln!(
            "  {:<16}  {} .. {}  peak {}/s",
            text(&n["node"]),
            text(&n["started"]),
            n["ended"].as_str().unwrap_or("holding"),
            n["peak"].as_f64().unwrap_or(0.0)
        );
    }
    outln!("captures");
    for c in e["captures"].as_array().into_iter().flatten() {
        outln!(
            "  {}  {:<16}  {:<8}  {} packets  {}",
            text(&c["id"]),
            text(&c["node"]),
            text(&c["status"]),
            c["packets"].as_u64().unwrap_or(0),
            c["file"].as_str().unwrap_or("(no file yet)")
        );
    }
    if let Some(r) = e["refusals"].as_array().filter(|r| !r.is_empty()) {
        outln!("refused");
        for r in r {
            outln!(
                "  {}  {:<16}  {}",
                text(&r["at"]),
                text(&r["node"]),
                text(&r["reason"])
            );
        }
    }
    match e["signature"].as_object() {
        Some(_) => outln!("signature {}", e["signature"]),
        None => outln!("signature (none yet: it comes once a capture has ended)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(flatten)]
        events: EventsArgs,
    }

    #[test]
    fn list_flags_and_show_parse() {
        let c = Cli::try_parse_from(["e", "--since", "1h", "--json"]).unwrap();
        assert_eq!(c.events.since.as_deref(), Some("1h"));
        assert!(c.events.json && c.events.command.is_none());
        let c = Cli::try_parse_from(["e", "show", &"ab".repeat(16), "--json"]).unwrap();
        assert!(matches!(
            c.events.command,
            Some(EventsCommand::Show { json: true, .. })
        ));
    }

    #[test]
    fn a_bad_id_names_itself_before_any_request() {
        let c = Cli::try_parse_from(["e", "show", "nothex"]).unwrap();
        let e = events(&c.events).unwrap_err();
        assert!(e.message.starts_with("ID:"), "{}", e.message);
        let c = Cli::try_parse_from(["e", "--trigger", "x"]).unwrap();
        let e = events(&c.events).unwrap_err();
        assert!(e.message.starts_with("--trigger:"), "{}", e.message);
    }
}
