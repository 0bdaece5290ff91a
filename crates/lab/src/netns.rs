//! Running Rust code inside a lab namespace: on a fresh thread that `setns`es first, since
//! `setns` moves only the calling thread. Sockets opened there (netlink, AF_PACKET, UDP)
//! belong to that namespace for their whole life, wherever they are used afterwards, and
//! threads spawned from inside inherit the namespace.
//!
//! ```no_run
//! # let lab = edgecap_lab::Lab::new(&edgecap_lab::LabSpec::default())?;
//! let devs = edgecap_lab::netns::run(lab.edge_ns(0), || {
//!     std::fs::read_to_string("/proc/thread-self/net/dev")
//! })??;
//! assert!(devs.contains("from-src"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::thread;

use crate::{Lab, LabError, sys};

/// Moves the calling thread into namespace `ns`, for a thread made for the purpose.
fn enter(ns: &str) -> Result<(), LabError> {
    let path = Lab::netns_path(ns);
    sys::enter_netns(&path).map_err(|e| LabError::io(format!("entering {}", path.display()), e))
}

/// Runs `f` inside network namespace `ns` (by name, as in `ip netns`) on a scoped thread and
/// returns its result; `f` may borrow from the caller.
pub fn run<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> Result<T, LabError> {
    thread::scope(|s| {
        thread::Builder::new()
            .name(format!("netns-{ns}"))
            .spawn_scoped(s, || enter(ns).map(|()| f()))
            .map_err(|e| LabError::io("spawning a thread", e))?
            .join()
            .map_err(|_| LabError::ThreadPanicked)?
    })
}

/// Spawns a thread that enters `ns` and then runs `f`, for long-running work (a capture
/// agent, a reader). The handle yields an error if entering the namespace failed.
pub fn spawn<T, F>(ns: &str, f: F) -> Result<thread::JoinHandle<Result<T, LabError>>, LabError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let owned = ns.to_string();
    thread::Builder::new()
        .name(format!("netns-{ns}"))
        .spawn(move || enter(&owned).map(|()| f()))
        .map_err(|e| LabError::io("spawning a thread", e))
}
