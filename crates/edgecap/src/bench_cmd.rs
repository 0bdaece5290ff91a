//! `edgecap bench ...`: the benchmarks are a program of their own, `edgecap-bench`
//! (crates/bench), so this binary links none of their code nor their test servers. This
//! command only finds that program and runs it in place of this process, with the same
//! arguments, telling it which `edgecap` to measure (this one, `EDGECAP_BIN`).

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;

use crate::exit::Failure;

/// Replaces this process with `edgecap-bench <args>`; returns only when that fails.
pub fn run(args: &[OsString], log: &str) -> Result<(), Failure> {
    let me = std::env::current_exe()
        .map_err(|e| Failure::runtime(format!("bench: locating the edgecap binary: {e}")))?;
    let bench = find(&me).ok_or_else(|| {
        Failure::runtime(format!(
            "bench: the benchmarks are the program edgecap-bench, which is neither beside {} \
             nor in PATH: build it with `cargo build --release -p edgecap-bench`",
            me.display()
        ))
    })?;
    let mut cmd = Command::new(&bench);
    // Its usage lines and the reports' "Command:" read `edgecap bench ...`, as typed.
    let argv0 = std::env::args_os()
        .next()
        .unwrap_or_else(|| "edgecap".into());
    let mut name = argv0;
    name.push(" bench");
    cmd.arg0(name).env("EDGECAP_BIN", &me);
    // edgecap-bench reads EDGECAP_LOG itself; a --log given here is passed on.
    if std::env::var("EDGECAP_LOG").unwrap_or_else(|_| "warn".into()) != log {
        cmd.args(["--log", log]);
    }
    let err = cmd.args(args).exec();
    Err(Failure::runtime(format!(
        "bench: running {}: {err}",
        bench.display()
    )))
}

/// `edgecap-bench` beside this binary (cargo builds both into `target/<profile>/`), else the
/// first in PATH.
fn find(me: &std::path::Path) -> Option<PathBuf> {
    let beside = me.with_file_name("edgecap-bench");
    if beside.is_file() {
        return Some(beside);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("edgecap-bench"))
        .find(|p| p.is_file())
}
