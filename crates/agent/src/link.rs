//! The connection to the server: TCP, TLS for `https://` (an untrusted certificate ends the
//! dial before any secret is sent), then `GET /agent/v1/connect` as this node (its name and
//! own credential, and an enrolment token until it is enrolled), say
//! `hello`, then carry messages both ways until the connection ends. The server's messages
//! start and stop captures; the ledger's outcomes and progress go up; a heartbeat goes up
//! every `heartbeat_secs`, with a WebSocket ping whose pong shows the server is still there.

use std::sync::Arc;
use std::time::Duration;

use edgecap_model::protocol::MAX_ROLLUP_SECONDS;
use edgecap_model::{AgentMsg, Assignment, ServerMsg};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};

use crate::identity::Credential;
use crate::ledger::{Begin, Ledger};
use crate::lookback;
use crate::observer::{Observer, ObserverView};
use crate::settings::Settings;
use crate::triggers::Triggers;
use crate::worker;

/// The connection under the WebSocket: TCP, or TLS over TCP.
trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Stream for T {}

type Ws = WebSocketStream<Box<dyn Stream>>;

/// How long dialling (TCP, upgrade, hello, welcome) may take.
const DIAL_TIMEOUT: Duration = Duration::from_secs(10);
/// Silence from the server (no message, no pong) for this many heartbeats ends the connection.
const SILENT_BEATS: u32 = 4;
/// How long a shutting-down agent waits for its captures to end and report.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(10);

/// Why dialling failed.
#[derive(Debug)]
pub enum DialError {
    /// Worth trying again later (server down, restarting, a stale session of our name).
    Retry(String),
    /// The server says this agent cannot work as configured (token, hello fields).
    Fatal(String),
}

/// A live connection, after `welcome`.
pub struct Connection {
    ws: Ws,
    heartbeat: Duration,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("heartbeat", &self.heartbeat)
            .finish_non_exhaustive()
    }
}

/// How a connection ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    /// The agent is shutting down and has reported what it could.
    Shutdown,
    /// The connection was lost; dial again.
    Lost(String),
}

/// Dials the server and says `hello`.
pub async fn dial(
    settings: &Settings,
    credential: &Credential,
    ledger: &Ledger,
) -> Result<Connection, DialError> {
    match tokio::time::timeout(DIAL_TIMEOUT, dial_inner(settings, credential, ledger)).await {
        Ok(r) => r,
        Err(_) => Err(DialError::Retry(format!(
            "no welcome from {} within {DIAL_TIMEOUT:?}",
            settings.server
        ))),
    }
}

async fn dial_inner(
    settings: &Settings,
    credential: &Credential,
    ledger: &Ledger,
) -> Result<Connection, DialError> {
    let retry = |e: &dyn std::fmt::Display| DialError::Retry(e.to_string());
    let mut request = settings
        .connect_url()
        .into_client_request()
        .map_err(|e| DialError::Fatal(format!("--server: {e}")))?;
    // Who we are: our name and our own credential; the enrolment token only matters until
    // the server has bound the name to the credential.
    let header = |flag: &str, v: &str| {
        v.parse()
            .map_err(|_| DialError::Fatal(format!("{flag}: not usable in an HTTP header")))
    };
    let headers = request.headers_mut();
    let auth = header("--state-dir", &format!("Bearer {}", credential.secret()))?;
    headers.insert("authorization", auth);
    headers.insert(
        edgecap_model::NODE_HEADER,
        header("--name", &settings.name)?,
    );
    if !settings.token.is_empty() {
        let token = header("--token", &settings.token)?;
        headers.insert(edgecap_model::ENROLMENT_HEADER, token);
    }
    // The server's messages get the protocol's one size bound (the library's default is
    // 64 MiB); their depth is checked by `ServerMsg::decode`.
    let config = tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(Some(edgecap_model::MAX_MESSAGE_BYTES))
        .max_frame_size(Some(edgecap_model::MAX_MESSAGE_BYTES));
    let stream = open(settings).await?;
    let mut ws =
        match tokio_tungstenite::client_async_with_config(request, stream, Some(config)).await {
            Ok((ws, _)) => ws,
            Err(tungstenite::Error::Http(resp)) if resp.status().is_client_error() => {
                let body = resp
                    .body()
                    .as_deref()
                    .map(String::from_utf8_lossy)
                    .unwrap_or_default();
                return Err(DialError::Fatal(format!(
                    "the server refused the agent ({}): {}",
                    resp.status(),
                    api_errors(&body)
                )));
            }
            Err(e) => return Err(retry(&e)),
        };
    // Points are listed at each dial: devices may come and go while the agent runs.
    let points = settings.offered_points();
    let (running, finished) = ledger.for_hello();
    let hello = AgentMsg::Hello {
        name: settings.name.clone(),
        labels: settings.labels.clone(),
        points,
        version: settings.version.clone(),
        running,
        finished,
        features: vec![
            edgecap_model::protocol::FEATURE_BOUNDARY.into(),
            edgecap_model::firing::FEATURE_TRIGGERS.into(),
            edgecap_model::firing::FEATURE_TRIGGERS_HEARD.into(),
        ],
    };
    send(&mut ws, &hello).await.map_err(|e| retry(&e))?;
    loop {
        let Some(msg) = ws.next().await else {
            return Err(DialError::Retry("closed before welcome".into()));
        };
        match msg.map_err(|e| retry(&e))? {
            Message::Text(t) => match ServerMsg::decode(&t) {
                Ok(ServerMsg::Welcome { heartbeat_secs }) => {
                    let heartbeat = Duration::from_secs_f64(heartbeat_secs.clamp(0.1, 60.0));
                    return Ok(Connection { ws, heartbeat });
                }
                Ok(ServerMsg::Refused { reason })
                    if reason.starts_with("hello.") || reason.starts_with("node revoked") =>
                {
                    return Err(DialError::Fatal(format!("the server refused: {reason}")));
                }
                Ok(ServerMsg::Refused { reason }) => {
                    return Err(DialError::Retry(format!("the server refused: {reason}")));
                }
                Ok(other) => {
                    return Err(DialError::Retry(format!("expected welcome, got {other:?}")));
                }
                Err(e) => return Err(DialError::Retry(format!("unreadable answer: {e}"))),
            },
            Message::Close(_) => return Err(DialError::Retry("closed before welcome".into())),
            _ => continue,
        }
    }
}

/// TCP to the server, then TLS when `--server` is `https://` (verified with the system roots
/// or `--ca`). A plain link goes only where the plain-link rule allows it (checked again
/// here, so no path dials around it), and a non-loopback one is warned about every time.
async fn open(settings: &Settings) -> Result<Box<dyn Stream>, DialError> {
    let endpoint = settings
        .endpoint()
        .map_err(|e| DialError::Fatal(e.to_string()))?;
    let host = endpoint.bare_host();
    let tcp = TcpStream::connect((host, endpoint.port))
        .await
        .map_err(|e| {
            DialError::Retry(format!(
                "cannot connect to {}:{}: {e}",
                endpoint.host, endpoint.port
            ))
        })?;
    let _ = tcp.set_nodelay(true);
    if !endpoint.tls {
        let rule = settings
            .plain_link(&endpoint)
            .map_err(|e| DialError::Fatal(e.to_string()))?;
        if rule == edgecap_tls::PlainLink::Insecure {
            tracing::warn!(
                server = %settings.server,
                "{}",
                edgecap_tls::plain::insecure_warning(edgecap_tls::Peer::Host(&endpoint.host))
            );
        }
        return Ok(Box::new(tcp));
    }
    // Read at every dial: a CA file replaced while the agent runs is used from the next one.
    let config = edgecap_tls::client_config(settings.ca.as_deref())
        .map_err(|e| DialError::Retry(e.to_string()))?;
    let name = edgecap_tls::server_name(host).map_err(|e| DialError::Fatal(e.to_string()))?;
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| {
            DialError::Retry(format!(
                "{}:{}: {}",
                endpoint.host,
                endpoint.port,
                edgecap_tls::explain_handshake(&e)
            ))
        })?;
    Ok(Box::new(tls))
}

/// The messages of an API error envelope, or the body itself.
fn api_errors(body: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    let msgs: Vec<&str> = v["errors"]
        .as_array()
        .map(|a| a.iter().filter_map(|e| e["message"].as_str()).collect())
        .unwrap_or_default();
    if msgs.is_empty() {
        body.chars().take(200).collect()
    } else {
        msgs.join("; ")
    }
}

async fn send(ws: &mut Ws, msg: &AgentMsg) -> Result<(), tungstenite::Error> {
    let text = serde_json::to_string(msg).unwrap_or_default();
    ws.send(Message::Text(text.into())).await
}

impl Connection {
    /// Carries messages until the connection ends or the agent shuts down. On shutdown every
    /// capture is stopped, and the connection stays open until they have all reported (at
    /// most [`SHUTDOWN_WAIT`]).
    pub async fn serve(
        mut self,
        settings: &Settings,
        ledger: &Ledger,
        observer: &Observer,
        triggers: &Triggers,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Ended {
        let node = settings.node();
        let mut beat = tokio::time::interval(self.heartbeat);
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let silent_limit = self.heartbeat * SILENT_BEATS;
        let mut heard = Instant::now();
        let mut stopping: Option<Instant> = None;
        // Answers to look-back queries, made on blocking threads (at most MAX_CONCURRENT).
        let (answer_tx, mut answer_rx) = tokio::sync::mpsc::channel::<Vec<AgentMsg>>(4);
        let queries = Arc::new(tokio::sync::Semaphore::new(lookback::MAX_CONCURRENT));
        let lookback = Lookback {
            tx: answer_tx,
            permits: queries,
            observer: observer.view(),
        };
        // Asks for grants go only over a live connection: when this one ends, every ask
        // still waiting is refused (grants.rs).
        struct Up<'a>(&'a crate::grants::Grants);
        impl Drop for Up<'_> {
            fn drop(&mut self) {
                self.0.set_connected(false);
            }
        }
        triggers.grants().set_connected(true);
        let _up = Up(triggers.grants());
        loop {
            for msg in ledger.outbox() {
                if let Err(e) = send(&mut self.ws, &msg).await {
                    return Ended::Lost(format!("sending: {e}"));
                }
            }
            for ask in triggers.grants().take_unsent() {
                if let Err(e) = send(&mut self.ws, &AgentMsg::Ask { ask }).await {
                    return Ended::Lost(format!("sending: {e}"));
                }
            }
            if let Some(since) = stopping
                && (ledger.is_idle() || since.elapsed() >= SHUTDOWN_WAIT)
            {
                let _ = self.ws.close(None).await;
                return Ended::Shutdown;
            }
            tokio::select! {
                msg = self.ws.next() => {
                    heard = Instant::now();
                    match msg {
                        None | Some(Ok(Message::Close(_))) => {
                            return Ended::Lost("the server closed the connection".into());
                        }
                        Some(Err(e)) => return Ended::Lost(e.to_string()),
                        Some(Ok(Message::Text(t))) => match ServerMsg::decode(&t) {
                            Ok(m) => {
                                if let Err(e) =
                                    self.handle(m, &node, ledger, observer, triggers, &lookback, stopping.is_some()).await
                                {
                                    return Ended::Lost(format!("sending: {e}"));
                                }
                            }
                            Err(e) => tracing::warn!(error = %e, "unreadable server message ignored"),
                        },
                        Some(Ok(_)) => {}
                    }
                }
                Some(msgs) = answer_rx.recv() => {
                    for m in &msgs {
                        if let Err(e) = send(&mut self.ws, m).await {
                            return Ended::Lost(format!("sending: {e}"));
                        }
                    }
                }
                () = ledger.changed() => {}
                () = triggers.grants().changed() => {}
                _ = beat.tick() => {
                    if heard.elapsed() > silent_limit {
                        return Ended::Lost(format!(
                            "nothing from the server for {:.1}s",
                            heard.elapsed().as_secs_f64()
                        ));
                    }
                    let beat = send(&mut self.ws, &AgentMsg::Heartbeat {
                        health: Some(crate::metrics::agent().health()),
                    }).await;
                    let ping = self.ws.send(Message::Ping(Vec::new().into())).await;
                    if let Err(e) = beat.and(ping) {
                        return Ended::Lost(format!("sending: {e}"));
                    }
                    if let Err(e) = self.send_rollups(observer).await {
                        return Ended::Lost(format!("sending: {e}"));
                    }
                }
                changed = shutdown.changed(), if stopping.is_none() => {
                    if changed.is_err() || *shutdown.borrow() {
                        let n = ledger.stop_all();
                        tracing::info!(running = n, "shutting down: stopping captures");
                        stopping = Some(Instant::now());
                    }
                }
                () = tokio::time::sleep(Duration::from_millis(100)), if stopping.is_some() => {}
            }
        }
    }

    /// Sends the observer's closed seconds; what could not be sent waits for the next
    /// connection.
    async fn send_rollups(&mut self, observer: &Observer) -> Result<(), tungstenite::Error> {
        let now_s = edgecap_capture::run::now_ns() / 1_000_000_000;
        let mut seconds = observer.take_seconds(now_s);
        while !seconds.is_empty() {
            let rest = seconds.split_off(seconds.len().min(MAX_ROLLUP_SECONDS));
            let msg = AgentMsg::Rollups { seconds };
            if let Err(e) = send(&mut self.ws, &msg).await {
                if let AgentMsg::Rollups { mut seconds } = msg {
                    seconds.extend(rest);
                    observer.requeue(seconds);
                }
                return Err(e);
            }
            seconds = rest;
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn handle(
        &mut self,
        msg: ServerMsg,
        node: &worker::NodeContext,
        ledger: &Ledger,
        observer: &Observer,
        triggers: &Triggers,
        lookback: &Lookback,
        stopping: bool,
    ) -> Result<(), tungstenite::Error> {
        match msg {
            ServerMsg::Assign { mut assignment } => {
                // The id names a thread, a file and an nftables table: it must be one.
                if !edgecap_model::ids::is_id(&assignment.capture_id) {
                    tracing::warn!(capture = ?assignment.capture_id,
                        "assignment with a malformed capture id ignored");
                    return Ok(());
                }
                assignment.capture_id.make_ascii_lowercase();
                let id = assignment.capture_id.clone();
                send(
                    &mut self.ws,
                    &AgentMsg::Ack {
                        capture_id: id.clone(),
                    },
                )
                .await?;
                start(node, assignment, ledger, stopping);
            }
            ServerMsg::Stop { mut capture_id } => {
                capture_id.make_ascii_lowercase();
                if ledger.stop(&capture_id) {
                    tracing::info!(capture = %capture_id, "stop requested");
                } else {
                    tracing::debug!(capture = %capture_id, "stop for a capture not running here");
                }
            }
            ServerMsg::Accounts { accounts } => observer.set_accounts(&accounts),
            // Evaluated on this node's own seconds (triggers.rs), with or without a link.
            ServerMsg::Triggers {
                triggers: list,
                ack,
            } => {
                observer.view().set_trigger_accounts(&triggers.set(list));
                // Only now is the list in force: the server counts this node as having heard
                // its shares when it reads this (hub/triggers.rs on the server).
                if let Some(ack) = ack {
                    send(&mut self.ws, &AgentMsg::Heard { ack }).await?;
                }
            }
            ServerMsg::Query { query } => {
                if !edgecap_model::ids::is_id(&query.query_id) {
                    tracing::warn!(query = ?query.query_id, "query with a malformed id ignored");
                    return Ok(());
                }
                match lookback.permits.clone().try_acquire_owned() {
                    Err(_) => {
                        let busy = format!(
                            "busy: this node answers at most {} look-back queries at once",
                            lookback::MAX_CONCURRENT
                        );
                        send(&mut self.ws, &lookback::refusal(&query.query_id, busy)).await?;
                    }
                    Ok(permit) => {
                        let (tx, view, node) =
                            (lookback.tx.clone(), lookback.observer.clone(), node.clone());
                        tokio::task::spawn_blocking(move || {
                            let msgs = lookback::answer(&query, &view, &node);
                            let _ = tx.blocking_send(msgs);
                            drop(permit);
                        });
                    }
                }
            }
            // The answer to an ask beyond a trigger's local share (grants.rs).
            ServerMsg::Grant { grant } => triggers.grants().answer(grant),
            ServerMsg::Welcome { .. } => {}
            ServerMsg::Refused { reason } => {
                tracing::warn!(%reason, "the server refused us on a live connection");
            }
        }
        Ok(())
    }
}

/// Where look-back answers go and what bounds them.
struct Lookback {
    tx: tokio::sync::mpsc::Sender<Vec<AgentMsg>>,
    permits: Arc<tokio::sync::Semaphore>,
    observer: ObserverView,
}

/// Starts an assignment unless it runs or ran here already (a repeated `assign` after a
/// reconnect): then the outcome, if any, is reported again.
fn start(node: &worker::NodeContext, a: Assignment, ledger: &Ledger, stopping: bool) {
    if !stopping {
        let _ = start_with(node, a, worker::Extras::default(), ledger);
        return;
    }
    let id = a.capture_id.clone();
    match ledger.begin(&id) {
        Begin::Running => tracing::debug!(capture = %id, "already running"),
        Begin::Finished(outcome) => ledger.finish(outcome),
        Begin::New(_) => ledger.finish(worker::failed(&id, "the agent is shutting down".into())),
    }
}

/// Starts a capture through the one path every capture takes (the ledger, the node's cap,
/// a worker thread). `Err`: why it did not start (its outcome is recorded already when it was
/// new).
pub(crate) fn start_with(
    node: &worker::NodeContext,
    a: Assignment,
    extras: worker::Extras,
    ledger: &Ledger,
) -> Result<(), String> {
    let id = a.capture_id.clone();
    match ledger.begin(&id) {
        Begin::Running => {
            tracing::debug!(capture = %id, "already running");
            Err("already running".into())
        }
        Begin::Finished(outcome) => {
            ledger.finish(outcome);
            Err("already finished".into())
        }
        // The ledger holds this one already: more than the cap means it is one too many.
        Begin::New(_) if ledger.running().len() > node.max_captures => {
            tracing::warn!(capture = %id, max = node.max_captures, "capture over the cap refused");
            let why = format!(
                "this node runs at most {} captures at once (edgecap agent --max-captures); \
                 no rule was installed",
                node.max_captures
            );
            ledger.finish(worker::failed(&id, why.clone()));
            Err(why)
        }
        Begin::New(stop) => {
            tracing::info!(capture = %id, "starting");
            worker::spawn_with(node, a, extras, stop, ledger.clone());
            Ok(())
        }
    }
}
