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

/// A look-back capture through a server that would fail with exit 1 if it were asked.
const LOOK_BACK: &[&str] = &[
    "--server",
    "http://127.0.0.1:9",
    "--token",
    "t",
    "--look-back",
    "1m",
];

#[test]
fn flags_a_look_back_capture_would_ignore_are_refused_naming_the_flag() {
    let flags: &[&[&str]] = &[
        &["--time", "30s"],
        &["--bytes", "1MB"],
        &["--snaplen", "128"],
        &["--sample", "10"],
        &["--merge"],
        &["--detach"],
        &["--estimate"],
        &["--config", "/etc/edgecap/agent.toml"],
        &["--group", "61000"],
        &["--buffer", "8MiB"],
        &["--node", "edge7"],
    ];
    for extra in flags {
        let argv = [LOOK_BACK, &["-w", "/dev/null"], extra].concat();
        let err = run(&args(&argv)).unwrap_err();
        assert_eq!(err.code, 2, "{extra:?}: {}", err.message);
        assert!(
            err.message
                .starts_with(&format!("{}: does not apply to --look-back", extra[0])),
            "{extra:?}: {}",
            err.message
        );
    }
}

#[test]
fn a_look_back_capture_needs_one_place_for_its_file_and_a_valid_window() {
    let cases: &[(&[&str], &str)] = &[
        (&[], "-w: give the file"),
        (
            &["-w", "/dev/null", "--destination", "file:///tmp"],
            "-w: with --destination",
        ),
        (&["-w", "-", "--at", "yesterday"], "--at: \"yesterday\""),
        (
            &["-w", "-", "--at", "2026-11-25 07:30:00"],
            "--at: \"2026-11-25 07:30:00\"",
        ),
        (&["-w", "-", "--packets", "many"], "--packets: "),
    ];
    for (extra, start) in cases {
        let err = run(&args(&[LOOK_BACK, extra].concat())).unwrap_err();
        assert_eq!(err.code, 2, "{extra:?}: {}", err.message);
        assert!(err.message.starts_with(start), "{extra:?}: {}", err.message);
    }
    for window in ["0s", "ten minutes", "-5m"] {
        let argv = [&LOOK_BACK[..4], &["--look-back", window, "-w", "-"]].concat();
        let err = run(&args(&argv)).unwrap_err();
        assert_eq!(err.code, 2, "{window}: {}", err.message);
        assert!(err.message.starts_with("--look-back: "), "{}", err.message);
    }
}

#[test]
fn at_without_look_back_is_refused_on_every_kind_of_capture() {
    for argv in [
        &["-w", "/dev/null", "--at", "5m"][..],
        &[NO_SERVER, &["--destination", "file:///tmp", "--at", "5m"]].concat()[..],
    ] {
        let err = run(&args(argv)).unwrap_err();
        assert_eq!(err.code, 2, "{argv:?}: {}", err.message);
        assert!(err.message.starts_with("--at: "), "{}", err.message);
    }
}

#[test]
fn an_unwritable_file_refuses_a_look_back_before_the_server_is_asked() {
    // With --account the client asks the server nothing before the create request.
    let account = ["--account", "0123456789abcdef0123456789abcdef"];
    let argv = [
        LOOK_BACK,
        &account,
        &["-w", "/nonexistent-edgecap-dir/x.pcap"],
    ]
    .concat();
    let err = run(&args(&argv)).unwrap_err();
    assert_eq!(err.code, 2, "{}", err.message);
    assert!(
        err.message.starts_with("-w: cannot write"),
        "{}",
        err.message
    );

    // A server that cannot be reached: exit 1, and the opened file is not left behind.
    let dir = std::env::temp_dir().join(format!("edgecap-lookback-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("x.pcapng");
    let argv = [LOOK_BACK, &account, &["-w", file.to_str().unwrap()]].concat();
    let err = run(&args(&argv)).unwrap_err();
    assert_eq!(err.code, 1, "{}", err.message);
    assert!(err.message.starts_with("cannot reach"), "{}", err.message);
    assert!(!file.exists());
    std::fs::remove_dir_all(&dir).unwrap();
}
