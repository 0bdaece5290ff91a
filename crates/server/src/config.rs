//! How the server runs: timings of the agent protocol, request size, time and rate limits,
//! the bounds of every queue agents feed, the listener (TLS, connection limits) and the
//! endpoint policy. Flags of
//! `edgecap server` fill it; tests shorten the timers.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use crate::rate::Rate;
use edgecap_store::EndpointPolicy;

/// Server settings. `Default` gives the production values.
#[derive(Debug, Clone)]
pub struct Config {
    /// How often agents send a heartbeat (told to them in `welcome`).
    pub heartbeat: Duration,
    /// An agent that sends nothing for this long is taken as gone and its socket closed.
    pub heartbeat_timeout: Duration,
    /// How long a disconnected node may stay away before its running parts are failed.
    pub grace: Duration,
    /// How long after `time_limit` (or after a stop) a part may still report its result
    /// (the tail of an upload) before it is failed with "no result from node".
    pub result_margin: Duration,
    /// How often live progress is written to the database, at most.
    pub progress_flush: Duration,
    /// How often overdue parts are looked for.
    pub sweep: Duration,
    /// Largest accepted request body.
    pub body_limit: usize,
    /// How long an agent has to send `hello` after the WebSocket opens.
    pub hello_timeout: Duration,
    /// The key file that seals per-bucket credentials (`<data dir>/secrets.key`); created on
    /// first use. `None`: credentials given through the API are refused.
    pub secrets_key: Option<PathBuf>,
    /// Merges (`merge: true`) running at once; each holds a few MiB (see `merge.rs`).
    pub merge_concurrency: usize,
    // The listener (`serve.rs`).
    /// Serve HTTPS and `wss://` with this configuration (`--tls-cert`/`--tls-key`); `None`:
    /// plain HTTP.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Accept plain-HTTP agent connections from non-loopback peers (`--insecure-plaintext`),
    /// with a warning at every connect.
    pub insecure_plaintext: bool,
    /// Connections open at once (agent WebSockets included); at the cap, new ones wait in
    /// the backlog.
    pub max_connections: usize,
    /// TLS handshakes running at once.
    pub max_handshakes: usize,
    /// Longest a TLS handshake (waiting for its turn included) may take.
    pub handshake_timeout: Duration,
    /// Longest a client may take to send a request's headers.
    pub header_read_timeout: Duration,
    /// Where a `destination_conf`'s `endpoint=` may point, for the server's own requests
    /// (challenges, merges) and its checks of a capture's destination (`--allow-endpoint`).
    pub endpoints: EndpointPolicy,
    /// Longest an API request may take before it is answered 503 (the agent WebSocket,
    /// which lives for the connection, is exempt).
    pub request_timeout: Duration,
    /// Requests per API token (`edgecap server --token-rate`, `--token-burst`).
    pub token_rate: Rate,
    /// Failed authentications per peer address (IPv6 by /64); past it, every request from
    /// that peer gets 429 until a token is back (`--auth-failure-rate`, `--auth-failure-burst`).
    pub auth_failure_rate: Rate,
    /// Keys each rate table holds at most (the least recently seen is forgotten).
    pub rate_keys: usize,
    /// Messages per agent connection; over it the session is closed and the agent
    /// reconnects after its backoff (`--agent-msg-rate`, `--agent-msg-burst`).
    pub agent_msg_rate: Rate,
    /// Largest WebSocket message an agent may send.
    pub agent_max_message: usize,
    /// Longest a WebSocket send to an agent may take; a slower peer's session is closed.
    pub agent_write_timeout: Duration,
    /// Messages waiting to be sent to one agent; a session that lets more pile up is closed.
    pub agent_outbox: usize,
    /// Agent-driven state changes waiting for the database writer; when it is full, the
    /// session that reports more is closed (its agent resends on reconnect).
    pub write_queue: usize,
    /// Unfinished parts (capture tables) one node may have, whatever the accounts; a create
    /// that would exceed it on a selected node gets 429 (`--max-captures-per-node`).
    pub max_captures_per_node: usize,
    /// `GET /metrics` on the API listener (unauthenticated); false when `edgecap server
    /// --metrics-listen` serves it on its own address instead.
    pub metrics_on_api: bool,
    /// Traffic rollups (`crate::rollups`): batches of seconds waiting for their writer; a
    /// batch that finds it full is dropped and counted (`Rollups::dropped`).
    pub rollup_queue: usize,
    /// How long per-second rows are kept (`--rollup-fine-retention`); older ones live on
    /// only as minutes.
    pub rollup_fine_retention: Duration,
    /// How long per-minute rows are kept (`--rollup-retention`).
    pub rollup_retention: Duration,
    /// How often the downsampling and retention job runs.
    pub rollup_job_every: Duration,
    /// Longest the server waits for one node's answer to a look-back query (estimates,
    /// simple captures); a node that is slower is named as not having answered.
    pub lookback_deadline: Duration,
    /// The recent window a size estimate reads from each node's ring (shorter when the ring
    /// reaches less far back).
    pub estimate_window: Duration,
    /// How long the file of a look-back (`type: simple`) capture is kept (sealed) for
    /// download.
    pub sample_retention: Duration,
    /// How far back a look-back capture may ask (the rings' guaranteed reach); an older
    /// `offset_time` is refused naming it.
    pub lookback_reach: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            heartbeat: Duration::from_secs(2),
            heartbeat_timeout: Duration::from_secs(7),
            grace: Duration::from_secs(10),
            // Above the agents' default upload retry window (120 s), so a part whose last
            // upload part is still retrying is not failed as "no result from node".
            result_margin: Duration::from_secs(180),
            progress_flush: Duration::from_secs(2),
            sweep: Duration::from_secs(1),
            body_limit: 64 * 1024,
            hello_timeout: Duration::from_secs(10),
            secrets_key: None,
            merge_concurrency: 2,
            tls: None,
            insecure_plaintext: false,
            max_connections: 4096,
            max_handshakes: 64,
            handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            endpoints: EndpointPolicy::default(),
            request_timeout: Duration::from_secs(30),
            token_rate: Rate::per(50, Duration::from_secs(1), 1000),
            auth_failure_rate: Rate::per(30, Duration::from_secs(60), 20),
            rate_keys: 65_536,
            agent_msg_rate: Rate::per(200, Duration::from_secs(1), 2000),
            agent_max_message: edgecap_model::MAX_MESSAGE_BYTES,
            agent_write_timeout: Duration::from_secs(10),
            agent_outbox: 1024,
            write_queue: 65_536,
            max_captures_per_node: edgecap_model::protocol::DEFAULT_MAX_CAPTURES_PER_NODE,
            metrics_on_api: true,
            rollup_queue: 4096,
            rollup_fine_retention: Duration::from_secs(6 * 3600),
            rollup_retention: Duration::from_secs(30 * 86400),
            rollup_job_every: Duration::from_secs(60),
            lookback_deadline: Duration::from_secs(3),
            estimate_window: Duration::from_secs(60),
            sample_retention: Duration::from_secs(24 * 3600),
            lookback_reach: Duration::from_secs(24 * 3600),
        }
    }
}
