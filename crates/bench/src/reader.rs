//! One capture process under test (edgecap or tcpdump) inside the edge namespace: start it,
//! wait until it reads the group, stop it with SIGINT, and reap it with its CPU time.
//!
//! `ip netns exec` enters the namespace and then execs the program, so the child pid we
//! spawn *is* the reader and `wait4` reports the reader's own CPU, all threads included.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use edgecap_lab::Lab;

use super::kernel;
use super::sys::{self, Reaped};
use crate::exit::Failure;

/// Longest a reader may take to start reading.
const READY_TIMEOUT: Duration = Duration::from_secs(15);
/// Longest a reader may take to exit after SIGINT (edgecap drains for at most 2 s; tcpdump
/// flushes its file buffer).
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// tcpdump prints "listening on" right after binding the group; a short settle covers the
/// step between binding and its first recv.
const TCPDUMP_SETTLE: Duration = Duration::from_millis(200);
const POLL: Duration = Duration::from_millis(20);

/// The readers compared, in the order they run for each size and rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReaderKind {
    Edgecap,
    /// `tcpdump -i nflog:N -w FILE`: every default.
    Tcpdump,
    /// `tcpdump -B 4096 -i nflog:N -w FILE`: a 4 MiB socket buffer, tcpdump's best.
    TcpdumpBig,
}

impl ReaderKind {
    /// Parses a `--readers` entry.
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim() {
            "edgecap" => Some(ReaderKind::Edgecap),
            "tcpdump" => Some(ReaderKind::Tcpdump),
            "tcpdump-B" | "tcpdump-b" => Some(ReaderKind::TcpdumpBig),
            _ => None,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            ReaderKind::Edgecap => "edgecap",
            ReaderKind::Tcpdump => "tcpdump",
            ReaderKind::TcpdumpBig => "tcpdump -B 4096",
        }
    }

    pub fn is_tcpdump(self) -> bool {
        self != ReaderKind::Edgecap
    }

    /// File name suffix: edgecap writes pcapng by default, tcpdump classic pcap.
    pub fn extension(self) -> &'static str {
        if self.is_tcpdump() { "pcap" } else { "pcapng" }
    }

    fn command(self, group: u16, file: &Path) -> Result<(String, Vec<String>), Failure> {
        let file = file.to_string_lossy().into_owned();
        Ok(match self {
            ReaderKind::Edgecap => {
                let exe = crate::edgecap_exe()?;
                let args = ["capture", "--proto", "udp", "--dport", "9", "--group"]
                    .map(String::from)
                    .into_iter()
                    .chain([
                        group.to_string(),
                        "-w".into(),
                        file,
                        "--json".into(),
                        "-q".into(),
                    ])
                    .collect();
                (exe.to_string_lossy().into_owned(), args)
            }
            ReaderKind::Tcpdump | ReaderKind::TcpdumpBig => {
                let mut args: Vec<String> = Vec::new();
                if self == ReaderKind::TcpdumpBig {
                    args.extend(["-B".into(), "4096".into()]);
                }
                // `-Z root`: Debian's tcpdump otherwise drops to user "tcpdump" and chowns its
                // output, which with --null-sink would be /dev/null itself.
                args.extend(["-Z".into(), "root".into()]);
                args.extend(["-i".into(), format!("nflog:{group}"), "-w".into(), file]);
                ("tcpdump".into(), args)
            }
        })
    }
}

/// A reader that has been started and is reading.
#[derive(Debug)]
pub struct Running {
    kind: ReaderKind,
    child: Child,
    lines: mpsc::Receiver<String>,
    /// The lines it printed (stderr, and stdout where edgecap's summary goes), as read.
    output: Vec<String>,
    reaped: bool,
}

/// A reader that has exited.
#[derive(Debug)]
pub struct Finished {
    pub reaped: Reaped,
    /// Everything it printed, line by line (stdout and stderr interleaved as read).
    pub output: Vec<String>,
}

/// Starts `kind` in namespace `ns` on `group`, writing `file`, and returns once it reads.
pub fn start(
    lab: &Lab,
    ns: &str,
    kind: ReaderKind,
    group: u16,
    file: &Path,
) -> Result<Running, Failure> {
    let (program, args) = kind.command(group, file)?;
    let mut cmd = lab.exec(ns, &program, &args);
    // edgecap prints its --json summary on stdout; tcpdump writes nothing there.
    let stdout = if kind.is_tcpdump() {
        Stdio::null()
    } else {
        Stdio::piped()
    };
    cmd.stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| Failure::runtime(format!("starting {}: {e}", kind.label())))?;
    let (tx, lines) = mpsc::channel();
    // Reading the pipes on threads keeps them from filling and lets us watch for tcpdump's
    // "listening on" while we poll for other things.
    if let Some(out) = child.stdout.take() {
        forward_lines(out, tx.clone());
    }
    if let Some(err) = child.stderr.take() {
        forward_lines(err, tx);
    }
    let mut running = Running {
        kind,
        child,
        lines,
        output: Vec::new(),
        reaped: false,
    };
    running.wait_ready(lab, ns)?;
    Ok(running)
}

/// Sends each line of `pipe` to `tx` from a thread, until the pipe or the channel closes.
fn forward_lines(pipe: impl std::io::Read + Send + 'static, tx: mpsc::Sender<String>) {
    thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
}

impl Running {
    fn collect_lines(&mut self) {
        self.output.extend(self.lines.try_iter());
    }

    /// Fails if the reader has already exited (e.g. the group is busy).
    fn check_alive(&mut self) -> Result<(), Failure> {
        let pid = self.child.id();
        if let Some(r) = sys::try_reap(pid).map_err(|e| Failure::runtime(format!("wait4: {e}")))? {
            self.reaped = true;
            thread::sleep(POLL);
            self.collect_lines();
            return Err(Failure::runtime(format!(
                "{} exited before it was ready (status {}): {}",
                self.kind.label(),
                r.status,
                self.output.join(" | ")
            )));
        }
        Ok(())
    }

    fn wait_ready(&mut self, lab: &Lab, ns: &str) -> Result<(), Failure> {
        let deadline = Instant::now() + READY_TIMEOUT;
        while Instant::now() < deadline {
            self.check_alive()?;
            if self.kind.is_tcpdump() {
                if let Ok(line) = self.lines.recv_timeout(POLL) {
                    let ready = line.contains("listening on");
                    self.output.push(line);
                    if ready {
                        thread::sleep(TCPDUMP_SETTLE);
                        return Ok(());
                    }
                }
            } else {
                if kernel::edgecap_table_present(lab, ns)? {
                    return Ok(());
                }
                self.collect_lines();
                thread::sleep(POLL);
            }
        }
        Err(Failure::runtime(format!(
            "{} was not ready after {READY_TIMEOUT:?}: {}",
            self.kind.label(),
            self.output.join(" | ")
        )))
    }

    /// Sends SIGINT (both readers flush, print their statistics and exit on it) and reaps.
    pub fn stop(mut self) -> Result<Finished, Failure> {
        let pid = self.child.id();
        sys::signal(pid, libc::SIGINT)
            .map_err(|e| Failure::runtime(format!("stopping {}: {e}", self.kind.label())))?;
        let deadline = Instant::now() + STOP_TIMEOUT;
        let reaped = loop {
            match sys::try_reap(pid).map_err(|e| Failure::runtime(format!("wait4: {e}")))? {
                Some(r) => break r,
                None if Instant::now() < deadline => thread::sleep(Duration::from_millis(5)),
                None => {
                    return Err(Failure::runtime(format!(
                        "{} did not exit within {STOP_TIMEOUT:?} of SIGINT",
                        self.kind.label()
                    )));
                }
            }
        };
        self.reaped = true;
        // The pipe closes with the process; the reading thread then hangs up the channel.
        let until = Instant::now() + Duration::from_secs(2);
        while let Ok(line) = self
            .lines
            .recv_timeout(until.saturating_duration_since(Instant::now()))
        {
            self.output.push(line);
        }
        Ok(Finished {
            reaped,
            output: std::mem::take(&mut self.output),
        })
    }
}

impl Drop for Running {
    /// On any error path, never leave a reader running behind us.
    fn drop(&mut self) {
        if self.reaped {
            return;
        }
        let pid = self.child.id();
        let _ = sys::signal(pid, libc::SIGKILL);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if !matches!(sys::try_reap(pid), Ok(None)) {
                return;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }
}
