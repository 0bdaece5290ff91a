//! The processes around the dispatch benchmark: `edgecap admin` and `edgecap server` run from
//! the edgecap binary, the server's CPU time and peak memory read from `/proc`, and the temporary
//! data directory.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::exit::Failure;

/// Runs `edgecap <args>` and returns its stdout.
pub fn run_edgecap(args: &[&str]) -> Result<String, Failure> {
    let exe = crate::edgecap_exe()?;
    let out = Command::new(exe)
        .args(args)
        .output()
        .map_err(|e| Failure::runtime(format!("edgecap {args:?}: {e}")))?;
    if !out.status.success() {
        return Err(Failure::runtime(format!(
            "edgecap {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The server process; killed when dropped.
pub struct Server {
    child: Option<Child>,
    pub url: String,
}

impl Server {
    /// Starts `edgecap server` on `dir` with `extra` flags.
    pub fn start_with(dir: &str, extra: &[&str]) -> Result<Server, Failure> {
        let exe = crate::edgecap_exe()?;
        let mut child = Command::new(exe)
            .args(["server", "--data-dir", dir, "--listen", "127.0.0.1:0"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| Failure::runtime(format!("starting edgecap server: {e}")))?;
        let mut line = String::new();
        if let Some(out) = child.stdout.take() {
            let _ = BufReader::new(out).read_line(&mut line);
        }
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .map(str::to_owned);
        let mut server = Server {
            child: Some(child),
            url: String::new(),
        };
        server.url = url.ok_or_else(|| Failure::runtime(format!("server said {line:?}")))?;
        Ok(server)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// User + system CPU time so far (`/proc/<pid>/stat`, in USER_HZ = 100 ticks a second).
    pub fn cpu(&self) -> Result<Duration, Failure> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid()))
            .map_err(|e| Failure::runtime(format!("server stat: {e}")))?;
        // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let f: Vec<u64> = rest
            .split_whitespace()
            .skip(11)
            .take(2)
            .filter_map(|v| v.parse().ok())
            .collect();
        Ok(Duration::from_millis(f.iter().sum::<u64>() * 10))
    }

    /// Peak resident memory (`VmHWM`), KiB.
    pub fn peak_kib(&self) -> Result<u64, Failure> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .map_err(|e| Failure::runtime(format!("server status: {e}")))?;
        status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| Failure::runtime("no VmHWM in the server's status"))
    }

    /// Resets the peak resident memory to the current one (`5` into `/proc/<pid>/clear_refs`,
    /// the owner's or root's right), so the next [`peak_kib`](Self::peak_kib) is the peak
    /// since now. If the kernel refuses, the peak stays the process's lifetime peak (an upper
    /// bound), and a note says so.
    pub fn reset_peak(&self) {
        if let Err(e) = std::fs::write(format!("/proc/{}/clear_refs", self.pid()), "5") {
            eprintln!(
                "note: the server's peak memory could not be reset ({e}); peaks are since its start"
            );
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SIGTERM: the server closes the agents' sessions and exits cleanly.
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let _ = c.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The temporary data directory, removed at drop.
pub struct Workdir(pub PathBuf);

impl Workdir {
    pub fn new() -> Result<Workdir, Failure> {
        let p = std::env::temp_dir().join(format!(
            "edgecap-bench-dispatch-{:016x}",
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&p)
            .map_err(|e| Failure::runtime(format!("creating {}: {e}", p.display())))?;
        Ok(Workdir(p))
    }
    pub fn dir(&self) -> &str {
        self.0.to_str().unwrap_or_default()
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
