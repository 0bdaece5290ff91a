//! Running Rust code inside a lab namespace: [`edgecap_netns`]'s threads that `setns` first,
//! with the lab's error type. Sockets opened there (netlink, AF_PACKET, UDP) belong to that
//! namespace for their whole life, and threads spawned from inside inherit it.
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

use edgecap_netns::NetnsError;

use crate::LabError;

impl From<NetnsError> for LabError {
    fn from(e: NetnsError) -> Self {
        match e {
            NetnsError::Enter { path, source } => {
                LabError::io(format!("entering {}", path.display()), source)
            }
            NetnsError::Spawn(source) => LabError::io("spawning a thread", source),
            NetnsError::Panicked => LabError::ThreadPanicked,
        }
    }
}

/// Runs `f` inside network namespace `ns` (by name, as in `ip netns`) on a scoped thread and
/// returns its result; `f` may borrow from the caller.
pub fn run<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> Result<T, LabError> {
    Ok(edgecap_netns::run(ns, f)?)
}

/// Spawns a thread that enters `ns` and then runs `f`, for long-running work (a capture
/// agent, a reader). The handle yields an error if entering the namespace failed.
pub fn spawn<T, F>(ns: &str, f: F) -> Result<thread::JoinHandle<Result<T, NetnsError>>, LabError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    Ok(edgecap_netns::spawn(ns, f)?)
}
