//! One capture, start to end, on a thread of its own: plan it against this node, open its
//! output, run the engine (synchronous, until a limit, the time or a stop), complete the file,
//! write its manifest and say how it went.
//!
//! With a capture namespace only the engine runs on a thread that entered it, so the netlink
//! sockets, the device list and the nftables table belong to that namespace, while the output
//! (an upload's connections, a spool's file) is opened here, in the agent's own namespace: the
//! agent reaches its bucket the way it reaches its server.
//!
//! The order is the promise "fails at once": the output is opened (for a bucket: reachable,
//! present, writable) before the engine installs any rule.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant, SystemTime};

use edgecap_capture::{Config, Summary};
use edgecap_model::protocol::PROGRESS_SECS;
use edgecap_model::{Assignment, Outcome};
use edgecap_store::{layout, upload};

use crate::error::{OutputError, WorkerError};
use crate::ledger::{Counters, Ledger};
use crate::output::{Sink, UploadSettings};
use crate::{plan, report};

/// What a capture thread needs to know about the node.
#[derive(Debug, Clone)]
pub struct NodeContext {
    pub name: String,
    pub config: Config,
    /// Network namespace (`/run/netns/NAME`) captures run in; None: the agent's own.
    pub netns: Option<String>,
    /// How uploads to buckets behave.
    pub upload: UploadSettings,
    /// Captures running at once at most (`--max-captures`).
    pub max_captures: usize,
}

impl NodeContext {
    /// Runs `f` in the capture namespace (on a thread that entered it), or here.
    fn in_capture_ns<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T, WorkerError> {
        match &self.netns {
            None => Ok(f()),
            Some(ns) => edgecap_netns::run(ns, f).map_err(|source| WorkerError::Netns {
                ns: ns.clone(),
                source,
            }),
        }
    }
}

/// What a capture the agent started for a trigger adds to an assignment (issue 14).
#[derive(Debug, Clone, Default)]
pub struct Extras {
    /// Sampled packets from before the firing, written first (pcapng).
    pub prelude: Option<Arc<edgecap_capture::prelude::Prelude>>,
    /// Keeps the first packets for the signature.
    pub tap: Option<Arc<edgecap_capture::prelude::Tap>>,
}

/// Starts the capture on its own thread; its outcome goes to the ledger. If no thread can be
/// started, the outcome is recorded at once.
pub fn spawn(node: &NodeContext, a: Assignment, stop: Arc<AtomicBool>, ledger: Ledger) {
    spawn_with(node, a, Extras::default(), stop, ledger)
}

/// [`spawn`] with a trigger capture's [`Extras`].
pub fn spawn_with(
    node: &NodeContext,
    a: Assignment,
    extras: Extras,
    stop: Arc<AtomicBool>,
    ledger: Ledger,
) {
    let node = node.clone();
    let id = a.capture_id.clone();
    let thread_ledger = ledger.clone();
    let started = std::thread::Builder::new()
        .name(format!("capture-{}", &id[..id.len().min(8)]))
        .spawn(move || {
            crate::metrics::agent().capture_started();
            let outcome = run(&node, &a, extras, &stop, &thread_ledger)
                .unwrap_or_else(|e| failed(&a.capture_id, e.to_string()));
            crate::metrics::agent().capture_ended(outcome.ok);
            tracing::info!(capture = %outcome.capture_id, ok = outcome.ok, packets = outcome.packets,
                error = outcome.error.as_deref().unwrap_or(""), "capture ended");
            thread_ledger.finish(outcome);
        });
    if let Err(e) = started {
        ledger.finish(failed(&id, format!("cannot start a capture thread: {e}")));
    }
}

fn run(
    node: &NodeContext,
    a: &Assignment,
    extras: Extras,
    stop: &Arc<AtomicBool>,
    ledger: &Ledger,
) -> Result<Outcome, WorkerError> {
    let devices = node.in_capture_ns(edgecap_capture::points::local_devices)?;
    let mut spec = plan::spec(a, &node.name, &node.config, &devices)?;
    spec.prelude = extras.prelude;
    spec.tap = extras.tap;
    let key = layout::node_file(&spec.id, &node.name, spec.format).map_err(OutputError::from)?;
    let manifest_key = layout::node_manifest(&spec.id, &node.name).map_err(OutputError::from)?;
    let sink = Sink::open(
        &a.destination_conf,
        a.credentials.as_ref(),
        &node.name,
        &node.upload,
    )?;
    // The largest the file can get, which sizes the upload's parts (a byte limit bounds it).
    let bound = a
        .byte_limit
        .map(|b| upload::capture_file_bound(b, a.packet_limit));
    let file = sink.create(&key, &node.name, bound, Arc::clone(stop), &node.upload)?;
    spec.sink_buffers = file.buffers();
    let watch = file.watch();
    let every = Duration::from_secs_f64(PROGRESS_SECS);
    let mut last: Option<Instant> = None;
    let mut tally = crate::metrics::Tally::default();
    // The engine calls this several times a second, packets or not.
    let on_progress = |p: &edgecap_capture::Progress| {
        tally.advance(p);
        if let Some(why) = watch.as_ref().and_then(edgecap_store::UploadWatch::failure)
            && !stop.swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            tracing::warn!(capture = %spec.id, error = %why, "upload failed; stopping the capture");
        }
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
    tracing::info!(capture = %spec.id, points = ?a.points, file = %sink.describe(&key), "capture starting");
    let started = SystemTime::now();
    let stop_flag: &AtomicBool = stop;
    let ran = node.in_capture_ns(|| edgecap_capture::run(&spec, file, stop_flag, on_progress))?;
    let ended = SystemTime::now();
    let (summary, file) = match ran {
        Ok(done) => done,
        // The file went with the error, dropped unfinished: discarded (a directory's
        // `.partial` removed, an upload aborted).
        Err(e) => {
            let why = WorkerError::Engine(e);
            let m = report::manifest(a, &node.name, &key, None, Err(&why), started, ended);
            note_manifest(&sink, &manifest_key, &m);
            return Err(why);
        }
    };
    tally.finish(&summary);
    let delivered = file.finish();
    if matches!(sink, Sink::Bucket(_)) {
        crate::metrics::agent().upload(delivered.as_ref().map(|d| d.bytes).map_err(drop));
    }
    let m = report::manifest(
        a,
        &node.name,
        &key,
        Some(&summary),
        delivered.as_ref().map_err(|e| e as &dyn std::fmt::Display),
        started,
        ended,
    );
    let manifest = sink.put_manifest(&manifest_key, &m);
    Ok(outcome(&spec.id, &summary, &key, delivered, manifest))
}

/// The part's outcome. A file that did not complete is a failure that says what the capture
/// took and that none of it is at the key; a file without its manifest is complete, with the
/// manifest's error beside it.
fn outcome(
    capture_id: &str,
    s: &Summary,
    key: &str,
    delivered: Result<crate::output::Delivered, OutputError>,
    manifest: Result<(), OutputError>,
) -> Outcome {
    let reason = serde_json::to_value(s.stop_reason)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned));
    let (ok, error, file) = match (delivered, manifest) {
        (Ok(_), Ok(())) => (true, None, Some(key.to_owned())),
        (Ok(_), Err(e)) => (
            true,
            Some(format!(
                "the file is complete, but its manifest was not written: {e}"
            )),
            Some(key.to_owned()),
        ),
        (Err(e), manifest) => {
            let mut why = format!(
                "{e}; the capture took {} packets ({} bytes, {} lost in the kernel), none of \
                 them delivered: no file is at {key}",
                s.packets, s.bytes, s.lost
            );
            if let Err(m) = manifest {
                why.push_str(&format!("; the manifest was not written either: {m}"));
            }
            (false, Some(why), None)
        }
    };
    Outcome {
        capture_id: capture_id.to_owned(),
        ok,
        error,
        packets: s.packets,
        bytes: s.bytes,
        lost: s.lost,
        stop_reason: reason,
        file,
    }
}

/// Writes a failed part's manifest if the destination takes it; a failure to do so only
/// adds to the log (the part's error is what matters).
fn note_manifest(sink: &Sink, key: &str, m: &edgecap_store::manifest::Manifest) {
    if let Err(e) = sink.put_manifest(key, m) {
        tracing::warn!(manifest = %sink.describe(key), error = %e, "manifest not written");
    }
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
