//! `edgecap capture`: validate every option, open the output, run the engine, print a summary.
//!
//! - `args`: the flags as typed;
//! - `validate`: flags -> the engine's spec, through the builder the agent shares.

use std::fs::File;
use std::io::Write;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use edgecap_capture::{CaptureError, CaptureSpec, FileSpool, Summary};

use crate::exit::Failure;

mod args;
mod validate;

pub use args::{CaptureArgs, FleetArgs};
pub use validate::{LookBack, validate};

/// Output opened before anything touches the kernel, so an unwritable path changes nothing.
enum Output {
    /// `-w -`: records are buffered by the pcap writer and flushed per kernel batch.
    Stdout(File),
    /// A FIFO or device (`/dev/null`): plain sequential writes.
    Stream { file: File, path: PathBuf },
    /// A regular file: written by the spool's own thread, with `O_DIRECT` where possible.
    Spool { spool: FileSpool, path: PathBuf },
}

fn open_output(path: &Path) -> Result<Output, Failure> {
    if path == Path::new("-") {
        // A File on fd 1 avoids stdout's line buffering, which would flush on every 0x0a byte.
        let fd = std::io::stdout()
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| Failure::runtime(format!("-w -: cannot use standard output: {e}")))?;
        return Ok(Output::Stdout(File::from(fd)));
    }
    let cannot =
        |e: std::io::Error| Failure::usage(format!("-w: cannot write {}: {e}", path.display()));
    match FileSpool::create(path).map_err(cannot)? {
        Some((spool, _)) => Ok(Output::Spool {
            spool,
            path: path.to_owned(),
        }),
        None => Ok(Output::Stream {
            file: std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(cannot)?,
            path: path.to_owned(),
        }),
    }
}

pub fn run(a: &CaptureArgs) -> Result<(), Failure> {
    // A look-back capture: every flag checked before the server is asked anything.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    if let Some(lb) = validate::look_back(a, now)? {
        let conn = a.server.connect()?;
        return crate::client::look_back(&conn, a, &lb);
    }
    // A fleet capture when a server is named, or when there is no -w and the client
    // configuration (written by `edgecap up`) names one.
    if a.server.wants_server() || (a.write.is_none() && a.server.config_names_server()?) {
        if a.write.is_some() {
            return Err(Failure::usage(
                "-w: a fleet capture (--server) writes where --destination says; -w is for local captures",
            ));
        }
        if let Some(opt) = local_only_option(a) {
            return Err(Failure::usage(format!(
                "{opt}: applies to a local capture only (-w); a fleet capture (--server, or a \
                 client config naming one) runs on the nodes with their agents' settings"
            )));
        }
        let conn = a.server.connect()?;
        return crate::client::capture(&conn, a, &a.fleet);
    }
    let Some(write) = &a.write else {
        return Err(Failure::usage(
            "-w: give an output file (or - for standard output), or --server for a fleet capture",
        ));
    };
    if let Some(opt) = fleet_only_option(&a.fleet) {
        return Err(Failure::usage(format!(
            "{opt}: is for fleet captures through a server (--server, or no -w with a client \
             config); this capture runs on this node only and writes -w"
        )));
    }
    let mut spec = validate(a)?;
    if spec.filter.is_empty() {
        // tcpdump accepts such a filter too (`ip and ip6`); say so rather than wait silently.
        eprintln!(
            "warning: the filter can match no packet: {}",
            spec.filter_text
        );
    }
    let output = open_output(write)?;
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .map_err(|e| Failure::runtime(format!("installing signal handler: {e}")))?;
    }
    let bar = progress_bar(a.quiet);
    let target = |path: &Path, remove: bool| Target {
        what: path.display().to_string(),
        remove_on_error: remove.then(|| path.to_owned()),
    };
    let (summary, path) = match output {
        Output::Stdout(f) => {
            let to = Target {
                what: "standard output".into(),
                remove_on_error: None,
            };
            (
                capture_into(&spec, f, &stop, &bar, &to, |mut f| f.flush())?,
                None,
            )
        }
        Output::Stream { file, path } => {
            let to = target(&path, false);
            let s = capture_into(&spec, file, &stop, &bar, &to, |mut f| f.flush())?;
            (s, Some(path))
        }
        Output::Spool { spool, path } => {
            spec.sink_buffers = true;
            let to = target(&path, true);
            let s = capture_into(&spec, spool, &stop, &bar, &to, FileSpool::finish)?;
            (s, Some(path))
        }
    };
    print_summary(&summary, a, path.as_deref());
    Ok(())
}

/// The first option given that only a fleet capture uses (a local capture would ignore it).
fn fleet_only_option(f: &FleetArgs) -> Option<&'static str> {
    [
        (!f.nodes.is_empty(), "--nodes"),
        (f.colo.is_some(), "--colo"),
        (f.destination.is_some(), "--destination"),
        (f.merge, "--merge"),
        (f.detach, "--detach"),
        (f.estimate, "--estimate"),
    ]
    .into_iter()
    .find_map(|(given, opt)| given.then_some(opt))
}

/// The first option given that only a local capture uses (a fleet capture would ignore it:
/// the create request has no field for it, each agent uses its own configuration).
fn local_only_option(a: &CaptureArgs) -> Option<&'static str> {
    [
        (a.config.is_some(), "--config"),
        (a.group.is_some(), "--group"),
        (a.buffer.is_some(), "--buffer"),
        (a.node.is_some(), "--node"),
    ]
    .into_iter()
    .find_map(|(given, opt)| given.then_some(opt))
}

/// Where the capture goes, for messages, and whether a failed capture's file is removed (only
/// regular files: never a device or FIFO the user named).
struct Target {
    what: String,
    remove_on_error: Option<PathBuf>,
}

/// Runs the engine into `sink`, then `finish`es the sink (flush, or join the spool's writer).
/// On a failure a file that holds nothing useful is removed rather than left half-written.
fn capture_into<W: Write>(
    spec: &CaptureSpec,
    sink: W,
    stop: &AtomicBool,
    bar: &indicatif::ProgressBar,
    target: &Target,
    finish: impl FnOnce(W) -> std::io::Result<()>,
) -> Result<Summary, Failure> {
    let on_progress = |p: &edgecap_capture::Progress| {
        bar.set_message(format!(
            "{} packets, {} bytes, {} lost, {:.1}s",
            p.packets,
            p.bytes,
            p.lost,
            p.elapsed.as_secs_f64()
        ));
        bar.tick();
    };
    let result = edgecap_capture::run(spec, sink, stop, on_progress);
    bar.finish_and_clear();
    match result {
        Ok((summary, sink)) => {
            finish(sink).map_err(|e| Failure::runtime(format!("writing {}: {e}", target.what)))?;
            Ok(summary)
        }
        Err(CaptureError::OutputClosed(summary)) => Ok(*summary),
        Err(e) => {
            if let Some(p) = &target.remove_on_error {
                // Nothing useful was captured; do not leave a header-only file behind.
                let _ = std::fs::remove_file(p);
            }
            Err(Failure::runtime(e.to_string()))
        }
    }
}

/// The summary: `--json` on standard output (standard error when `-w -` streams the packets
/// there), else the human lines on standard error unless `-q`.
fn print_summary(s: &Summary, a: &CaptureArgs, path: Option<&Path>) {
    if a.json {
        let v = serde_json::to_string(s).unwrap_or_default();
        if path.is_none() {
            let _ = writeln!(std::io::stderr().lock(), "{v}");
        } else {
            crate::out::outln!("{v}");
        }
        return;
    }
    if a.quiet {
        return;
    }
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{s}");
    if let Some(p) = path {
        let _ = writeln!(err, "wrote {} ({} bytes)", p.display(), s.file_bytes);
    }
}

fn progress_bar(quiet: bool) -> indicatif::ProgressBar {
    if quiet {
        return indicatif::ProgressBar::hidden();
    }
    // Draws only when stderr is a terminal, so pipelines and logs stay clean.
    let bar = indicatif::ProgressBar::new_spinner();
    bar.enable_steady_tick(Duration::from_millis(200));
    bar.set_message("waiting for packets");
    bar
}

#[cfg(test)]
mod parity_tests;
#[cfg(test)]
mod refusal_tests;
