//! Flags that one kind of capture would silently ignore are refused (exit 2, naming the flag)
//! before anything is asked of a server or the kernel.

use clap::Parser;

use super::{CaptureArgs, run};
use crate::cli::{Cli, Command};

fn args(flags: &[&str]) -> CaptureArgs {
    let argv = ["edgecap", "capture"].iter().chain(flags);
    match Cli::try_parse_from(argv).unwrap().command {
        Command::Capture(a) => *a,
        other => panic!("not a capture: {other:?}"),
    }
}

/// Nothing listens on port 9 of loopback: a request would fail with exit 1, not 2.
const NO_SERVER: &[&str] = &[
    "--server",
    "http://127.0.0.1:9",
    "--token",
    "t",
    "--colo",
    "x",
];

#[test]
fn local_only_flags_on_a_fleet_capture_are_refused_before_any_request() {
    for (flag, value) in [
        ("--group", "61000"),
        ("--buffer", "8MiB"),
        ("--node", "edge7"),
        ("--config", "/etc/edgecap/agent.toml"),
    ] {
        let err = run(&args(&[NO_SERVER, &[flag, value]].concat())).unwrap_err();
        assert_eq!(err.code, 2, "{flag}: {}", err.message);
        assert!(
            err.message
                .starts_with(&format!("{flag}: applies to a local capture only")),
            "{flag}: {}",
            err.message
        );
    }
    let err = run(&args(&[NO_SERVER, &["-w", "/tmp/x.pcapng"]].concat())).unwrap_err();
    assert_eq!(err.code, 2, "{}", err.message);
    assert!(err.message.starts_with("-w: "), "{}", err.message);
}

#[test]
fn fleet_only_flags_on_a_local_capture_are_refused() {
    for (flag, value) in [("--colo", "fra"), ("--destination", "file:///tmp")] {
        let err = run(&args(&["-w", "/dev/null", flag, value])).unwrap_err();
        assert_eq!(err.code, 2, "{flag}: {}", err.message);
        assert!(err.message.starts_with(flag), "{}", err.message);
    }
}
