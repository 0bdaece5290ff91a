//! edgecap's control plane: the Cloudflare-compatible PCAP API, accounts and tokens, bucket
//! ownership, and the hub that dispatches captures to agents and gathers their results. It
//! stores state in SQLite or PostgreSQL and never stores packet bytes.
//!
//! - [`app`] builds the router for in-process use; [`run`] serves it on a listener until a
//!   shutdown future resolves (mini-redis style), through [`serve`]: the accept loop (TLS,
//!   connection and handshake limits, header timeout, the peer's address for handlers).
//! - [`config`]: timings and limits; [`AppState`]: what every request sees.
//! - [`api`]: the HTTP routes (captures, ownership, nodes, OpenAPI, health).
//! - [`hub`]: agent sessions over WebSocket, dispatch, progress, grace periods, the writer.
//! - [`status`]: how a capture's status follows from its parts (pure).
//! - [`db`]: the pool, migrations (`migrations/*.sql`) and one module of queries per table.
//! - [`auth`]: bearer tokens; [`secret`]: ids, secrets, digests.
//! - [`destination`]: `destination_conf` URLs through `edgecap_store`, errors naming the field;
//!   [`credentials`]: per-bucket credentials sealed at rest ([`credentials::Vault`]).
//! - [`merge`]: `merge: true`, the nodes' files merged from and back to the destination.
//! - [`estimate`]: size estimates from the nodes' look-back rings (the arithmetic).
//! - [`samples`]: the file of a look-back (`type: simple`) capture from the nodes' samples.
//! - [`sim`]: a light simulated agent, for tests and `edgecap bench dispatch`.
//! - [`quota`]: per-account quotas and the per-node capture cap, checked atomically.
//! - [`metrics`]: `/metrics` (Prometheus) and `/readyz`, with the hook for more readiness
//!   checks.
//! - [`rollups`]: the agents' traffic rollups: bounded writer, downsampling and retention
//!   jobs, the analytics API's queries.
//! - [`rate`]: token buckets (request rates, failed logins, agent messages), bounded.
//! - [`tenancy`]: which traffic and nodes an account may capture (prefixes, node set).
//! - [`clock`]: timestamps; [`error`]: the error enum and the HTTP error.

pub mod api;
pub mod auth;
pub mod clock;
pub mod config;
pub mod credentials;
pub mod dashboard;
pub mod db;
pub mod destination;
pub mod error;
pub mod estimate;
pub mod hub;
pub mod merge;
pub mod metrics;
pub mod quota;
pub mod rate;
pub mod rollups;
pub mod samples;
pub mod secret;
pub mod serve;
pub mod sim;
pub mod status;
pub mod tenancy;

use std::future::Future;
use std::sync::Arc;

pub use config::Config;
pub use db::Db;
pub use error::{Error, HttpError, Result};
pub use hub::Hub;

/// What every request handler sees.
#[derive(Debug, Clone)]
pub struct AppState {
    pub db: Db,
    pub hub: Hub,
    pub config: Arc<Config>,
    /// Request rates per token and failed logins per peer ([`rate`]).
    pub limits: Arc<rate::Limits>,
}

impl AppState {
    /// State on an open database. Starts the hub's writer task, so it needs a Tokio runtime.
    pub fn new(db: Db, config: Config) -> AppState {
        let config = Arc::new(config);
        AppState {
            hub: Hub::new(db.clone(), config.clone()),
            limits: Arc::new(rate::Limits::new(&config)),
            db,
            config,
        }
    }

    /// Connects to the database (migrating it) and builds the state.
    pub async fn open(database_url: &str, config: Config) -> Result<AppState> {
        Ok(AppState::new(Db::connect(database_url).await?, config))
    }
}

/// The API as a router, for in-process tests. Timers (grace periods after a restart, the
/// overdue sweep, the progress flush) run only under [`run`], or after [`Hub::start`].
pub fn app(state: AppState) -> axum::Router {
    api::router(state)
}

/// Serves the API on `listener` until `shutdown` resolves; then closes agent sessions (agents
/// reconnect to the next server process and report), stops the timers and writes what is
/// pending.
pub async fn run(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let background = state.hub.start().await?;
    let rollup_jobs = rollups::jobs::start(state.db.clone(), state.config.clone());
    let hub = state.hub.clone();
    let addr = listener.local_addr().ok();
    let config = state.config.clone();
    tracing::info!(addr = ?addr, tls = config.tls.is_some(), "serving");
    serve::serve(listener, app(state.clone()), &config, async move {
        shutdown.await;
        tracing::info!("shutting down");
        hub.close();
    })
    .await;
    state
        .hub
        .sessions_ended(std::time::Duration::from_secs(5))
        .await;
    drop(background);
    rollup_jobs.abort();
    state.hub.rollups().barrier().await;
    state.hub.flush().await;
    state.hub.retire().await;
    Ok(())
}
