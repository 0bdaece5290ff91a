//! The crate's only `unsafe`: the `setns` call.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

/// Moves the *calling thread* into the network namespace at `path` (`/run/netns/NAME`).
/// Other threads of the process are not affected; call it from a thread made for the job.
#[allow(unsafe_code)]
pub(crate) fn enter_netns(path: &Path) -> io::Result<()> {
    let file = File::open(path)?;
    // SAFETY: `file` is an open descriptor for the whole call; setns only reads it.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
