//! One capture, start to end, on a thread of its own: plan it against this node, open its
//! file, run the engine (synchronous, until a limit, the time or a stop), finish the file and
//! say how it went. With a capture namespace the whole body runs on a thread that entered it,
//! so the netlink sockets, the device list and the nftables table all belong to that
//! namespace; the file is written in the agent's own mount namespace.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use edgecap_capture::{CaptureError, Config};
use edgecap_model::protocol::PROGRESS_SECS;
use edgecap_model::{Assignment, Outcome};

use crate::ledger::{Counters, Ledger};
use crate::output::Sink;
use crate::plan;

/// What a capture thread needs to know about the node.
#[derive(Debug, Clone)]
pub struct NodeContext {
    pub name: String,
    pub config: Config,
    /// Network namespace (`/run/netns/NAME`) captures run in; None: the agent's own.
    pub netns: Option<String>,
}

/// Starts the capture on its own thread; its outcome goes to the ledger. If no thread can be
/// started, the outcome is recorded at once.
pub fn spawn(node: &NodeContext, a: Assignment, stop: Arc<AtomicBool>, ledger: Ledger) {
    let node = node.clone();
    let id = a.capture_id.clone();
    let thread_ledger = ledger.clone();
    let started = std::thread::Builder::new()
        .name(format!("capture-{}", &id[..id.len().min(8)]))
        .spawn(move || {
            let outcome = match &node.netns {
                None => capture(&node, &a, &stop, &thread_ledger),
                Some(ns) => edgecap_lab::netns::run(ns, || capture(&node, &a, &stop, &thread_ledger))
                    .unwrap_or_else(|e| failed(&a.capture_id, format!("network namespace {ns}: {e}"))),
            };
            tracing::info!(capture = %outcome.capture_id, ok = outcome.ok, packets = outcome.packets,
                error = outcome.error.as_deref().unwrap_or(""), "capture ended");
            thread_ledger.finish(outcome);
        });
    if let Err(e) = started {
        ledger.finish(failed(&id, format!("cannot start a capture thread: {e}")));
    }
}

/// Runs one capture to its end, on the calling thread.
fn capture(node: &NodeContext, a: &Assignment, stop: &AtomicBool, ledger: &Ledger) -> Outcome {
    match run(node, a, stop, ledger) {
        Ok(o) => o,
        Err(e) => failed(&a.capture_id, e),
    }
}

fn run(
    node: &NodeContext,
    a: &Assignment,
    stop: &AtomicBool,
    ledger: &Ledger,
) -> Result<Outcome, String> {
    let devices = edgecap_capture::points::local_devices();
    let mut spec = plan::spec(a, &node.name, &node.config, &devices)?;
    let sink = Sink::from_conf(&a.destination_conf)?;
    let key = edgecap_store::layout::node_file(&spec.id, &node.name, spec.format)
        .map_err(|e| e.to_string())?;
    let file = sink.create(&key, &node.name)?;
    spec.sink_buffers = file.buffers();
    let every = Duration::from_secs_f64(PROGRESS_SECS);
    let mut last: Option<Instant> = None;
    let on_progress = |p: &edgecap_capture::Progress| {
        if last.is_none_or(|t| t.elapsed() >= every) {
            last = Some(Instant::now());
            ledger.progress(
                &spec.id,
                Counters {
                    packets: p.packets,
                    bytes: p.bytes,
                    lost: p.lost,
                },
            );
        }
    };
    tracing::info!(capture = %spec.id, points = ?a.points, file = %key, "capture starting");
    let (summary, file) = match edgecap_capture::run(&spec, file, stop, on_progress) {
        Ok(done) => done,
        // The file went with the error (dropped unfinished, so discarded).
        Err(CaptureError::OutputClosed(_)) => {
            return Err("the output was closed before the capture ended".into());
        }
        Err(e) => return Err(e.to_string()),
    };
    file.finish()
        .map_err(|e| format!("destination_conf: writing {key}: {e}"))?;
    let reason = serde_json::to_value(summary.stop_reason)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned));
    Ok(Outcome {
        capture_id: spec.id.clone(),
        ok: true,
        error: None,
        packets: summary.packets,
        bytes: summary.bytes,
        lost: summary.lost,
        stop_reason: reason,
        file: Some(key),
    })
}

/// The outcome of a capture that could not run or whose file could not be completed.
pub fn failed(capture_id: &str, error: String) -> Outcome {
    Outcome {
        capture_id: capture_id.to_owned(),
        ok: false,
        error: Some(error),
        packets: 0,
        bytes: 0,
        lost: 0,
        stop_reason: None,
        file: None,
    }
}
