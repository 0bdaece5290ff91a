//! Human output of fleet captures: progress bars per node while running, tables after.

use std::collections::BTreeMap;
use std::time::Duration;

use edgecap_model::Capture;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

/// One spinner per node, created as nodes appear in the capture's results.
pub struct Bars {
    multi: MultiProgress,
    bars: std::cell::RefCell<BTreeMap<String, ProgressBar>>,
    hidden: bool,
}

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
                let b = self.multi.add(ProgressBar::new_spinner());
                b.set_style(
                    ProgressStyle::with_template("{spinner} {prefix:<16} {msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                b.set_prefix(r.node.clone());
                b
            });
            bar.set_message(format!(
                "{:<8} {:>9} packets {:>11} bytes {:>6} lost  {:.0}s",
                r.status.as_str(),
                r.packets,
                r.bytes,
                r.lost,
                elapsed.as_secs_f64()
            ));
            bar.tick();
        }
    }

    pub fn finish(&self) {
        for b in self.bars.borrow().values() {
            b.finish_and_clear();
        }
    }
}

pub fn capture_table(list: &[Capture]) {
    println!(
        "{:<32}  {:<8}  {:<27}  {:>5}  {:>9}  FILTER",
        "ID", "STATUS", "SUBMITTED", "NODES", "PACKETS"
    );
    for c in list {
        println!(
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

pub fn capture_detail(c: &Capture) {
    println!("capture {}  {}", c.id, c.status.as_str());
    println!("  filter   {}", filter_text(c));
    println!("  points   {}", c.points.join(", "));
    println!("  output   {}", c.destination_conf);
    println!(
        "  total    {} packets, {} bytes, {} lost",
        c.packets_captured, c.bytes_captured, c.packets_lost
    );
    if let Some(e) = &c.error_message {
        println!("  error    {e}");
    }
    println!(
        "  {:<16}  {:<8}  {:>9}  {:>11}  {:>6}  FILE / REASON",
        "NODE", "STATUS", "PACKETS", "BYTES", "LOST"
    );
    for r in &c.node_results {
        let tail = r
            .error_message
            .clone()
            .or_else(|| r.file.clone())
            .unwrap_or_default();
        println!(
            "  {:<16}  {:<8}  {:>9}  {:>11}  {:>6}  {tail}",
            r.node,
            r.status.as_str(),
            r.packets,
            r.bytes,
            r.lost
        );
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
