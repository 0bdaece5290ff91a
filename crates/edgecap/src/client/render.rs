//! Human output of fleet captures: progress bars per node while running, tables after.

use std::collections::BTreeMap;
use std::time::Duration;

use edgecap_model::{Capture, NodeResult};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::out::outln;

/// One progress bar per node, created as nodes appear in the capture's results: filled by
/// packets toward the node's share when the capture has a packet limit, else by time toward
/// the time limit. Drawn only when stderr is a terminal.
pub struct Bars {
    multi: MultiProgress,
    bars: std::cell::RefCell<BTreeMap<String, ProgressBar>>,
    hidden: bool,
}

const STYLE: &str = "{prefix:<16} [{bar:24}] {msg}";

impl Bars {
    pub fn new(hidden: bool) -> Self {
        let multi = MultiProgress::new();
        if hidden {
            multi.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        }
        Self {
            multi,
            bars: Default::default(),
            hidden,
        }
    }

    pub fn update(&self, c: &Capture, elapsed: Duration) {
        if self.hidden {
            return;
        }
        let mut bars = self.bars.borrow_mut();
        for r in &c.node_results {
            let bar = bars.entry(r.node.clone()).or_insert_with(|| {
                let b = self.multi.add(ProgressBar::new(1));
                b.set_style(
                    ProgressStyle::with_template(STYLE)
                        .unwrap_or_else(|_| ProgressStyle::default_bar())
                        .progress_chars("=> "),
                );
                b.set_prefix(r.node.clone());
                b
            });
            let (len, pos) = bar_fill(c, r, elapsed);
            bar.set_length(len);
            bar.set_position(pos);
            bar.set_message(node_line(r, elapsed, c.time_limit));
        }
    }

    pub fn finish(&self) {
        for b in self.bars.borrow().values() {
            b.finish_and_clear();
        }
    }
}

/// (length, position) of a node's bar.
fn bar_fill(c: &Capture, r: &NodeResult, elapsed: Duration) -> (u64, u64) {
    if r.status.is_terminal() {
        return (1, 1);
    }
    match r.packet_limit {
        Some(share) => (share.max(1), r.packets.min(share)),
        None => {
            let tenths = (c.time_limit * 10.0).max(1.0) as u64;
            (tenths, ((elapsed.as_secs_f64() * 10.0) as u64).min(tenths))
        }
    }
}

/// The text beside a node's bar.
fn node_line(r: &NodeResult, elapsed: Duration, time_limit: f64) -> String {
    let share = r.packet_limit.map(|l| format!("/{l}")).unwrap_or_default();
    let tail = match (&r.error_message, &r.stop_reason) {
        (Some(e), _) => format!("  {e}"),
        (None, Some(why)) => format!("  {why}"),
        (None, None) => format!("  {:.0}/{time_limit:.0}s", elapsed.as_secs_f64()),
    };
    format!(
        "{:<8} {}{share} packets, {} bytes, {} lost{tail}",
        r.status.as_str(),
        r.packets,
        r.bytes,
        r.lost
    )
}

pub fn capture_table(list: &[Capture]) {
    outln!(
        "{:<32}  {:<8}  {:<27}  {:>5}  {:>9}  FILTER",
        "ID",
        "STATUS",
        "SUBMITTED",
        "NODES",
        "PACKETS"
    );
    for c in list {
        outln!(
            "{:<32}  {:<8}  {:<27}  {:>5}  {:>9}  {}",
            c.id,
            c.status.as_str(),
            c.submitted,
            c.node_results.len(),
            c.packets_captured,
            filter_text(c)
        );
    }
}

/// A size estimate (`POST /pcaps/estimate`): per node and in total, with ranges.
pub fn estimate(e: &serde_json::Value) {
    let num = |v: &serde_json::Value| v.as_f64().unwrap_or(0.0);
    let ranged = |v: &serde_json::Value, unit: &str| {
        format!(
            "{}{unit} ({}-{})",
            si(num(&v["expected"])),
            si(num(&v["low"])),
            si(num(&v["high"]))
        )
    };
    let ends = |v: &serde_json::Value| {
        format!(
            "{} after {:.1}s",
            v["ends_by"].as_str().unwrap_or("?"),
            num(&v["ends_after_seconds"])
        )
    };
    outln!(
        "estimate from the last {}s of each node's look-back ring ({} of {} nodes answered)",
        num(&e["window"]["seconds"]),
        e["nodes_answered"],
        e["nodes_selected"]
    );
    outln!(
        "  {:<16}  {:<9}  {:>22}  {:>22}  {:>22}  ENDS / REASON",
        "NODE",
        "STATUS",
        "PACKETS/S",
        "BYTES/S",
        "FILE BYTES"
    );
    for n in e["nodes"].as_array().into_iter().flatten() {
        let status = n["status"].as_str().unwrap_or("?");
        if status == "answered" {
            outln!(
                "  {:<16}  {:<9}  {:>22}  {:>22}  {:>22}  {}",
                n["node"].as_str().unwrap_or("?"),
                status,
                ranged(&n["packets_per_second"], ""),
                ranged(&n["bytes_per_second"], "B"),
                ranged(&n["file_bytes"], "B"),
                ends(n)
            );
        } else {
            outln!(
                "  {:<16}  {:<9}  {:>22}  {:>22}  {:>22}  {}",
                n["node"].as_str().unwrap_or("?"),
                status,
                "-",
                "-",
                "-",
                n["error"].as_str().unwrap_or("")
            );
        }
    }
    let t = &e["total"];
    if t.is_object() {
        outln!(
            "  {:<16}  {:<9}  {:>22}  {:>22}  {:>22}  {}",
            "total",
            "",
            ranged(&t["packets_per_second"], ""),
            ranged(&t["bytes_per_second"], "B"),
            ranged(&t["file_bytes"], "B"),
            ends(t)
        );
    }
    outln!(
        "  ranges: {}",
        e["confidence"].as_str().unwrap_or("95% Poisson ranges")
    );
}

/// 1234567 -> "1.2M" (SI prefixes; below 1000 as is, rounded).
fn si(x: f64) -> String {
    const UNITS: [&str; 5] = ["", "k", "M", "G", "T"];
    let mut x = x;
    let mut i = 0;
    while x >= 1000.0 && i + 1 < UNITS.len() {
        x /= 1000.0;
        i += 1;
    }
    if i == 0 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}{}", UNITS[i])
    }
}

pub fn capture_detail(c: &Capture) {
    outln!("capture {}  {}", c.id, c.status.as_str());
    outln!("  filter   {}", filter_text(c));
    outln!("  points   {}", c.points.join(", "));
    outln!("  output   {}", c.destination_conf);
    if let Some(m) = &c.merged_file {
        outln!("  merged   {}", object_url(&c.destination_conf, m));
    } else if c.merge && !c.status.is_terminal() {
        outln!("  merged   (being written)");
    }
    outln!(
        "  total    {} packets, {} bytes, {} lost",
        c.packets_captured,
        c.bytes_captured,
        c.packets_lost
    );
    if let Some(e) = &c.error_message {
        outln!("  error    {e}");
    }
    outln!(
        "  {:<16}  {:<8}  {:>9}  {:>11}  {:>6}  FILE / REASON",
        "NODE",
        "STATUS",
        "PACKETS",
        "BYTES",
        "LOST"
    );
    for r in &c.node_results {
        // The file where a user can open it: its key under the destination.
        let tail = r
            .error_message
            .clone()
            .or_else(|| r.file.as_ref().map(|f| object_url(&c.destination_conf, f)))
            .unwrap_or_default();
        outln!(
            "  {:<16}  {:<8}  {:>9}  {:>11}  {:>6}  {tail}",
            r.node,
            r.status.as_str(),
            r.packets,
            r.bytes,
            r.lost
        );
    }
}

/// The URL of a file under a destination: the key joins the path, before any options
/// (`s3://b/dir/<id>/edge0.pcapng?region=..`), which is also what `edgecap merge` reads.
pub fn object_url(destination: &str, key: &str) -> String {
    let (base, query) = destination
        .split_once('?')
        .map_or((destination, None), |(b, q)| (b, Some(q)));
    let url = format!("{}/{key}", base.trim_end_matches('/'));
    match query {
        Some(q) => format!("{url}?{q}"),
        None => url,
    }
}

fn filter_text(c: &Capture) -> String {
    let v1 = match &c.filter_v1 {
        serde_json::Value::Object(m) if m.is_empty() => None,
        v => Some(v.to_string()),
    };
    match (v1, &c.filter) {
        (None, None) => "all packets".into(),
        (Some(a), None) => a,
        (None, Some(e)) => e.clone(),
        (Some(a), Some(e)) => format!("{a} and ({e})"),
    }
}

/// What a look-back capture's nodes did, for standard error: the count, the nodes that
/// answered, and the ones missing with their reasons.
pub fn look_back_report(c: &Capture) -> String {
    let (answered, missing): (Vec<&NodeResult>, Vec<&NodeResult>) = c
        .node_results
        .iter()
        .partition(|r| r.status != edgecap_model::Status::Failed);
    let mut s = format!(
        "look-back capture {} ({}): {} packets from {} of {} nodes\n",
        c.id,
        c.status.as_str(),
        c.packets_captured,
        answered.len(),
        c.node_results.len()
    );
    let names = |rs: &[&NodeResult], detail: &dyn Fn(&NodeResult) -> String| {
        rs.iter()
            .map(|r| format!("{} ({})", r.node, detail(r)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if !answered.is_empty() {
        let line = names(&answered, &|r| format!("{} packets", r.packets));
        s.push_str(&format!("answered: {line}\n"));
    }
    if !missing.is_empty() {
        let line = names(&missing, &|r| {
            r.error_message
                .clone()
                .unwrap_or_else(|| "no answer".into())
        });
        s.push_str(&format!("missing: {line}\n"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgecap_model::Status;

    fn node(status: Status, packets: u64, limit: Option<u64>) -> NodeResult {
        NodeResult {
            node: "edge0".into(),
            status,
            packets,
            bytes: packets * 100,
            lost: 0,
            packet_limit: limit,
            byte_limit: None,
            file: None,
            error_message: None,
            stop_reason: None,
        }
    }

    #[test]
    fn files_are_shown_as_urls_under_their_destination() {
        assert_eq!(
            object_url("file:///srv/x", "id/e0.pcapng"),
            "file:///srv/x/id/e0.pcapng"
        );
        assert_eq!(
            object_url("s3://b/edge?region=eu-west-1", "id/e0.pcapng"),
            "s3://b/edge/id/e0.pcapng?region=eu-west-1"
        );
        assert_eq!(object_url("gs://b/", "id/e0.pcapng"), "gs://b/id/e0.pcapng");
    }

    #[test]
    fn bars_fill_by_share_or_by_time() {
        let c: Capture = serde_json::from_value(serde_json::json!({
            "id": "0123456789abcdef0123456789abcdef", "type": "full", "system": "magic-transit",
            "status": "running", "submitted": "", "time_limit": 30.0, "filter_v1": {},
            "destination_conf": "file:///x", "packets_captured": 0, "points": [],
            "format": "pcapng", "bytes_captured": 0, "packets_lost": 0, "node_results": []
        }))
        .unwrap();
        let t = Duration::from_secs(3);
        assert_eq!(
            bar_fill(&c, &node(Status::Running, 4, Some(10)), t),
            (10, 4)
        );
        assert_eq!(
            bar_fill(&c, &node(Status::Running, 40, Some(10)), t),
            (10, 10)
        );
        assert_eq!(bar_fill(&c, &node(Status::Running, 4, None), t), (300, 30));
        assert_eq!(bar_fill(&c, &node(Status::Success, 4, None), t), (1, 1));
        let line = node_line(&node(Status::Running, 4, Some(10)), t, 30.0);
        assert_eq!(line, "running  4/10 packets, 400 bytes, 0 lost  3/30s");
        let mut failed = node(Status::Failed, 1, None);
        failed.error_message = Some("node edge0 disconnected".into());
        assert!(node_line(&failed, t, 30.0).ends_with("  node edge0 disconnected"));
    }

    #[test]
    fn a_look_back_report_names_the_nodes_that_answered_and_the_missing_ones() {
        let c: Capture = serde_json::from_value(serde_json::json!({
            "id": "0123456789abcdef0123456789abcdef", "type": "simple", "system": "magic-transit",
            "status": "success", "submitted": "", "time_limit": 60.0, "filter_v1": {},
            "destination_conf": "", "packets_captured": 7, "points": [],
            "format": "pcapng", "bytes_captured": 0, "packets_lost": 0, "node_results": []
        }))
        .unwrap();
        let mut c = c;
        let mut edge1 = node(Status::Success, 0, None);
        edge1.node = "edge1".into();
        let mut edge2 = node(Status::Failed, 0, None);
        edge2.node = "edge2".into();
        edge2.error_message = Some("not connected".into());
        c.node_results = vec![node(Status::Success, 7, None), edge1, edge2];
        assert_eq!(
            look_back_report(&c),
            "look-back capture 0123456789abcdef0123456789abcdef (success): 7 packets from 2 of 3 \
             nodes\nanswered: edge0 (7 packets), edge1 (0 packets)\nmissing: edge2 (not \
             connected)\n"
        );
    }
}
