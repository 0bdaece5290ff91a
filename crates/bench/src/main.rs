//! `edgecap-bench`: rerunnable benchmarks of edgecap against the standard tools (tcpdump,
//! mergecap) and of its control plane. A program of its own so the `edgecap` binary links
//! none of this code nor its test servers; `edgecap bench ...` runs it (see ARCHITECTURE.md).
//!
//! Several benchmarks run the real `edgecap` binary (capture, merge, server, admin, agent):
//! [`edgecap_exe`] finds it.

mod agent_memory;
mod api;
mod capture;
mod cli;
mod counts;
mod dashboard;
mod dispatch;
mod exit;
mod kernel;
mod measure;
mod merge;
mod noise;
mod observe;
mod paired;
mod reader;
mod report;
mod rollups;
mod sys;
mod trigger;
mod upload;

use std::path::{Path, PathBuf};

use clap::Parser;

use cli::BenchCommand;
use exit::Failure;

fn main() {
    let cli = cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&cli.log))
        .with_writer(std::io::stderr)
        .init();
    let result = match &cli.command {
        BenchCommand::Capture(a) => capture::run(a),
        BenchCommand::Dispatch(a) => dispatch::run(a),
        BenchCommand::Merge(a) => merge::run(a),
        BenchCommand::Upload(a) => upload::run(a),
        BenchCommand::AgentMemory(a) => agent_memory::run(a),
        BenchCommand::Observe(a) => observe::run(a),
        BenchCommand::Rollups(a) => rollups::run(a),
        BenchCommand::Trigger(a) => trigger::run(a),
        BenchCommand::Dashboard(a) => dashboard::run(a),
    };
    if let Err(f) = result {
        eprintln!("edgecap bench: error: {}", f.message);
        std::process::exit(f.code);
    }
}

/// The environment variable naming the `edgecap` binary to measure; `edgecap bench` sets it
/// to itself.
pub const EDGECAP_BIN: &str = "EDGECAP_BIN";

/// The `edgecap` binary the benchmarks run: `$EDGECAP_BIN`, else `edgecap` beside this
/// program (cargo builds both into `target/<profile>/`).
pub fn edgecap_exe() -> Result<PathBuf, Failure> {
    if let Some(p) = std::env::var_os(EDGECAP_BIN) {
        return Ok(PathBuf::from(p));
    }
    let me = std::env::current_exe()
        .map_err(|e| Failure::runtime(format!("locating edgecap-bench itself: {e}")))?;
    let beside = me.with_file_name("edgecap");
    if beside.is_file() {
        return Ok(beside);
    }
    Err(Failure::runtime(format!(
        "the edgecap binary is not beside {} and {EDGECAP_BIN} is not set: build both \
         (cargo build --release -p edgecap -p edgecap-bench) or set {EDGECAP_BIN}",
        me.display()
    )))
}

/// Prints a benchmark's markdown report, and writes it to `--markdown` when given.
fn publish(md: &str, markdown: Option<&Path>) -> Result<(), Failure> {
    print!("{md}");
    if let Some(path) = markdown {
        std::fs::write(path, md).map_err(|e| {
            Failure::runtime(format!("--markdown: writing {}: {e}", path.display()))
        })?;
    }
    Ok(())
}
