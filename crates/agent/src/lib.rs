//! edgecap's node agent: a pipeline of small parts with one job each.
//!
//! ```text
//!  server --assign/stop--> link --begin--> ledger --> worker thread (in --netns, if given)
//!     ^                      |                ^          plan -> engine -> output
//!     +---ack/progress/done--+<---outbox------+-----------progress, outcome
//! ```
//!
//! - [`settings`]: who the node is and where the server is, checked before the first dial.
//! - [`identity`]: the node's own credential, made once in its state directory.
//! - [`link`]: one connection: dial with the node's credential (and, until it is enrolled, the
//!   enrolment token), `hello`, then messages both ways, heartbeats and pings; how it ended.
//! - [`backoff`]: delays between dials.
//! - [`ledger`]: what runs here and what the server has yet to hear; outlives connections.
//! - [`worker`]: one capture on its own thread: plan, open the file, run the engine, report.
//! - [`plan`]: an assignment checked against this node and turned into the engine's spec.
//! - [`observer`]: always-on observation in the capture namespace: the look-back ring and the
//!   node's per-second rollups (issue 12).
//! - [`triggers`]: the server's triggers evaluated on those seconds ([`detect`]), their
//!   captures started here, with or without a link (issue 14).
//! - [`output`]: where a node's file goes (`NodeFile`: a local directory through the spool, or
//!   a bucket through a streaming, bounded upload started before the capture).
//! - [`report`]: the manifest written beside each file.
//! - [`metrics`]: the agent's Prometheus metrics and health (`--metrics-listen`, heartbeats).
//! - [`error`]: why a capture could not run or deliver its file: typed, with their sources,
//!   displayed as the text the server is sent.
//!
//! [`run`] ties them together: dial, serve, and on a lost connection dial again with backoff,
//! while captures keep running and their outcomes wait in the ledger.

pub mod backoff;
pub mod detect;
pub mod error;
pub mod grants;
pub mod identity;
pub mod ledger;
pub mod link;
pub mod lookback;
pub mod metrics;
pub mod observer;
pub mod output;
pub mod plan;
pub mod report;
pub mod settings;
pub mod triggers;
pub mod worker;

use std::future::Future;

pub use settings::{Settings, SettingsError};

/// Why the agent stopped without being asked to.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// The server will not take this agent as configured (token, name).
    #[error("{0}")]
    Refused(String),
}

/// Runs the agent until `shutdown` resolves: then every capture is stopped and, if the server
/// is reachable, their outcomes are reported before this returns.
pub async fn run(
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AgentError> {
    settings.check()?;
    let credential = identity::load_or_create(&settings.state_dir)?;
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let watcher = tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let ledger = ledger::Ledger::default();
    let probe = tokio::spawn(metrics::probe_loop(settings.netns.clone()));
    // Always watching, apart from captures: its failure is logged, never fatal.
    let observer = observer::Observer::start(&settings.node());
    // Triggers run on the observer's seconds whether or not the server is connected.
    let triggers = triggers::Triggers::default();
    let edge = triggers::Edge::start(
        triggers.clone(),
        observer.view(),
        settings.node(),
        ledger.clone(),
    );
    let mut backoff = backoff::Backoff::default();
    // Several servers (replicas): a failed dial or a lost connection moves to the next one.
    let servers = settings.servers().len().max(1);
    let mut at = 0usize;
    let full = settings;
    let mut settings = full.with_server(at);
    tracing::info!(node = %settings.name, server = %full.server,
        netns = settings.netns.as_deref().unwrap_or("-"), "agent starting");
    let result = loop {
        if *stop_rx.borrow() {
            break Ok(());
        }
        let dialled = tokio::select! {
            r = link::dial(&settings, &credential, &ledger) => r,
            _ = stop_rx.changed() => continue,
        };
        match dialled {
            Ok(conn) => {
                backoff.reset();
                // Each connection starts with no account kept apart; the server sends the
                // list when there is one (hub/scopes.rs).
                observer.set_accounts(&[]);
                tracing::info!(server = %settings.server, "connected");
                metrics::agent().set_connected(true);
                let ended = conn
                    .serve(&settings, &ledger, &observer, &triggers, &mut stop_rx)
                    .await;
                metrics::agent().set_connected(false);
                match ended {
                    link::Ended::Shutdown => break Ok(()),
                    link::Ended::Lost(why) => {
                        tracing::warn!(reason = %why, running = ledger.running().len(),
                            "connection lost; captures keep running")
                    }
                }
            }
            Err(link::DialError::Fatal(why)) => break Err(AgentError::Refused(why)),
            Err(link::DialError::Retry(why)) => {
                tracing::warn!(reason = %why, server = %settings.server, "cannot reach the server")
            }
        }
        if servers > 1 {
            at = (at + 1) % servers;
            settings = full.with_server(at);
        }
        let delay = backoff.next_delay();
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = stop_rx.changed() => {}
        }
    };
    // Whatever ended the loop, leave no capture running: their tables go with their sockets
    // when the threads end, and a process exit would end them less cleanly. No trigger
    // starts one meanwhile.
    let _ = tokio::task::spawn_blocking(move || edge.stop()).await;
    ledger.stop_all();
    let until = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while !ledger.is_idle() && tokio::time::Instant::now() < until {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let observer_stop = tokio::task::spawn_blocking(move || observer.stop());
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), observer_stop).await;
    watcher.abort();
    probe.abort();
    result
}
