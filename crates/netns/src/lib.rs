//! Running Rust code inside a named network namespace (as `ip netns` names them): on a fresh
//! thread that `setns`es first, since `setns` moves only the calling thread. Sockets opened
//! there (netlink, AF_PACKET, UDP) belong to that namespace for their whole life, wherever
//! they are used afterwards, and threads spawned from inside inherit the namespace.
//!
//! Its own crate because two unrelated users need it: the agent (`--netns`: its captures run
//! in the edge's namespace) and the lab (senders and tests). The agent must not depend on the
//! lab for it.
//!
//! ```no_run
//! let devs = edgecap_netns::run("edge0", || {
//!     std::fs::read_to_string("/proc/thread-self/net/dev")
//! })??;
//! assert!(devs.contains("lo"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod sys;

use std::io;
use std::path::PathBuf;
use std::thread;

/// Where `ip netns` keeps its namespace handles.
pub const NETNS_DIR: &str = "/run/netns";

/// The handle of namespace `ns`: `/run/netns/<ns>`.
pub fn path(ns: &str) -> PathBuf {
    PathBuf::from(NETNS_DIR).join(ns)
}

/// Why code could not run inside a namespace.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    /// Opening the namespace handle or `setns` failed (no such namespace, no privilege).
    #[error("entering {}: {source}", path.display())]
    Enter {
        /// The handle that was opened.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// No thread could be started.
    #[error("spawning a thread: {0}")]
    Spawn(#[source] io::Error),
    /// The code given to [`run`] panicked.
    #[error("a thread running inside a network namespace panicked")]
    Panicked,
}

/// Moves the calling thread into namespace `ns`, for a thread made for the purpose.
fn enter(ns: &str) -> Result<(), NetnsError> {
    let path = path(ns);
    sys::enter_netns(&path).map_err(|source| NetnsError::Enter { path, source })
}

/// Runs `f` inside network namespace `ns` (by name, as in `ip netns`) on a scoped thread and
/// returns its result; `f` may borrow from the caller.
pub fn run<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> Result<T, NetnsError> {
    thread::scope(|s| {
        thread::Builder::new()
            .name(format!("netns-{ns}"))
            .spawn_scoped(s, || enter(ns).map(|()| f()))
            .map_err(NetnsError::Spawn)?
            .join()
            .map_err(|_| NetnsError::Panicked)?
    })
}

/// Spawns a thread that enters `ns` and then runs `f`, for long-running work (a capture
/// agent, a reader). The handle yields an error if entering the namespace failed.
pub fn spawn<T, F>(ns: &str, f: F) -> Result<thread::JoinHandle<Result<T, NetnsError>>, NetnsError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let owned = ns.to_string();
    thread::Builder::new()
        .name(format!("netns-{ns}"))
        .spawn(move || enter(&owned).map(|()| f()))
        .map_err(NetnsError::Spawn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_namespace_is_an_error_naming_its_handle() {
        let e = run("edgecap-no-such-namespace", || ()).unwrap_err();
        assert!(matches!(e, NetnsError::Enter { .. }));
        assert!(
            e.to_string()
                .starts_with("entering /run/netns/edgecap-no-such-namespace: "),
            "{e}"
        );
    }
}
