//! The benchmark's only `unsafe`: signalling a child and reaping it with `wait4`, which is the
//! one interface that returns the child's own CPU time (`std::process` exposes no rusage).

use std::io;
use std::time::Duration;

/// How a reaped child ended and what CPU it used.
#[derive(Debug, Clone, Copy)]
pub struct Reaped {
    /// Raw wait status (as from `waitpid`).
    pub status: i32,
    /// User CPU time of the child over its whole life.
    pub user: Duration,
    /// System CPU time of the child over its whole life.
    pub system: Duration,
    /// Peak resident set size of the child, in KiB (`ru_maxrss`).
    pub max_rss_kib: u64,
}

impl Reaped {
    pub fn cpu(&self) -> Duration {
        self.user + self.system
    }

    /// Exit code, or `None` when a signal ended the child.
    pub fn exit_code(&self) -> Option<i32> {
        libc::WIFEXITED(self.status).then(|| libc::WEXITSTATUS(self.status))
    }
}

fn pid_t(pid: u32) -> io::Result<libc::pid_t> {
    libc::pid_t::try_from(pid).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

/// Sends `sig` to child `pid`.
#[allow(unsafe_code)]
pub fn signal(pid: u32, sig: libc::c_int) -> io::Result<()> {
    let pid = pid_t(pid)?;
    // SAFETY: kill(2) takes plain integers and touches no memory of ours. `pid` is a child we
    // have not reaped yet, so the kernel cannot have given its number to another process.
    let r = unsafe { libc::kill(pid, sig) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn timeval(tv: libc::timeval) -> Duration {
    let secs = u64::try_from(tv.tv_sec).unwrap_or(0);
    let micros = u32::try_from(tv.tv_usec).unwrap_or(0);
    Duration::from_secs(secs) + Duration::from_micros(u64::from(micros))
}

/// Reaps child `pid` if it has exited (`WNOHANG`), returning its status and rusage.
/// `Ok(None)` means it is still running. Once this returns `Some`, the pid is gone: the
/// `std::process::Child` that spawned it must not be waited on again.
#[allow(unsafe_code)]
pub fn try_reap(pid: u32) -> io::Result<Option<Reaped>> {
    let pid = pid_t(pid)?;
    let mut status: libc::c_int = 0;
    // SAFETY: `rusage` is a C struct of integers and timevals, for which all-zero bytes are a
    // valid value; wait4 writes only through the two pointers, which point at live locals of
    // the right types for the duration of the call.
    let (r, usage) = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        let r = libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage);
        (r, usage)
    };
    match r {
        0 => Ok(None),
        r if r == pid => Ok(Some(Reaped {
            status,
            user: timeval(usage.ru_utime),
            system: timeval(usage.ru_stime),
            max_rss_kib: u64::try_from(usage.ru_maxrss).unwrap_or(0),
        })),
        _ => Err(io::Error::last_os_error()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;
    use std::time::Instant;

    #[test]
    fn reaps_a_child_and_reports_its_exit() -> Result<(), Box<dyn std::error::Error>> {
        let child = Command::new("sh").args(["-c", "exit 3"]).spawn()?;
        let deadline = Instant::now() + Duration::from_secs(10);
        let reaped = loop {
            if let Some(r) = try_reap(child.id())? {
                break r;
            }
            assert!(Instant::now() < deadline, "child did not exit");
            std::thread::sleep(Duration::from_millis(5));
        };
        assert_eq!(reaped.exit_code(), Some(3));
        Ok(())
    }

    #[test]
    fn signalled_child_has_no_exit_code() -> Result<(), Box<dyn std::error::Error>> {
        let child = Command::new("sleep").arg("30").spawn()?;
        signal(child.id(), libc::SIGKILL)?;
        let deadline = Instant::now() + Duration::from_secs(10);
        let reaped = loop {
            if let Some(r) = try_reap(child.id())? {
                break r;
            }
            assert!(Instant::now() < deadline, "child did not die");
            std::thread::sleep(Duration::from_millis(5));
        };
        assert_eq!(reaped.exit_code(), None);
        Ok(())
    }
}
