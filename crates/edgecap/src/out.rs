//! Standard output for every command, and the one wording of `--json` and `-q`.
//!
//! Rust's `println!` panics when stdout is a pipe whose reader has gone (`edgecap ls --json |
//! head -c 100`). Commands print through [`outln!`] instead: a closed pipe ends the output
//! quietly (the reader asked for no more; the command still finishes and exits 0, as `fate`
//! always did), and any other write error (a full disk behind `> file`) is kept and reported by
//! `main` as a failure (exit 1) once the command is done.

use std::io::Write;
use std::sync::Mutex;

use crate::exit::Failure;

/// `--json` where standard output carries nothing else.
pub const JSON_HELP: &str =
    "Print the result as one JSON document on standard output (and nothing else there)";

/// `--json` of commands that can stream packets to standard output (`-w -`).
pub const JSON_BESIDE_DATA_HELP: &str = "Print the result as one JSON document on standard \
     output, or on standard error when -w - sends the packets to standard output";

/// `-q`, the same on every command that has it.
pub const QUIET_HELP: &str = "Quiet: no progress and no human summary on standard error; \
     errors and warnings that change what you get still print (and --json still prints)";

/// The first write error other than a closed pipe (and whether the pipe closed).
static STATE: Mutex<State> = Mutex::new(State {
    closed: false,
    error: None,
});

struct State {
    closed: bool,
    error: Option<String>,
}

/// Writes `text` to standard output unless the reader has gone; see the module doc.
pub fn write(text: std::fmt::Arguments<'_>) {
    let mut state = STATE.lock().unwrap_or_else(|p| p.into_inner());
    if state.closed || state.error.is_some() {
        return;
    }
    let mut out = std::io::stdout().lock();
    match out.write_fmt(text).and_then(|()| out.flush()) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => state.closed = true,
        Err(e) => state.error = Some(e.to_string()),
    }
}

/// One JSON document, pretty-printed, on standard output.
pub fn json<T: serde::Serialize>(value: &T) -> Result<(), Failure> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Failure::runtime(format!("encoding JSON: {e}")))?;
    write(format_args!("{text}\n"));
    Ok(())
}

/// The failure to report once the command is done: a write to standard output that failed
/// for another reason than a closed pipe.
pub fn finish() -> Result<(), Failure> {
    let state = STATE.lock().unwrap_or_else(|p| p.into_inner());
    match &state.error {
        Some(e) => Err(Failure::runtime(format!("writing to standard output: {e}"))),
        None => Ok(()),
    }
}

/// `println!` that never panics on a closed standard output.
macro_rules! outln {
    () => {
        $crate::out::write(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::out::write(format_args!("{}\n", format_args!($($arg)*)))
    };
}
pub(crate) use outln;
