//! `GET /agent/v1/connect`: the WebSocket that carries one agent session. A plain-HTTP link
//! from a non-loopback peer is refused first (`edgecap_tls::plain_link`, unless the server
//! runs with `--insecure-plaintext`). The agent must present its node credential for its name
//! (`auth::node`: enrolling it with an enrolment token at its first connect), then say `hello`
//! with that name within the hello timeout; after `welcome` the
//! socket carries the hub's messages down and the agent's up until either side leaves, the
//! agent falls silent for longer than the heartbeat timeout, or the server shuts down.

use std::collections::BTreeMap;

use axum::Extension;
use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::http::{Extensions, HeaderMap};
use axum::response::{IntoResponse, Response};
use edgecap_model::{AgentMsg, ServerMsg};
use futures_util::SinkExt;
use std::time::{Duration, Instant};

use crate::rate::Bucket;

use crate::AppState;
use crate::db::nodes::NodeInfo;
use crate::error::HttpError;
use crate::serve::Link;

/// Read and write buffers per agent socket. Agent messages are a few hundred bytes; the
/// WebSocket library's default (128 KiB each) would hold 250 MiB for a thousand idle agents.
/// Larger messages still arrive whole: the buffers grow for them.
const SOCKET_BUFFER: usize = 4 << 10;
/// Most bytes waiting in one socket's outgoing buffer (a peer that does not read fills it,
/// and the next send fails, ending the session). Server messages are a few KiB at most.
const MAX_WRITE_BUFFER: usize = 1 << 20;

pub async fn connect(
    State(state): State<AppState>,
    link: Option<Extension<Link>>,
    headers: HeaderMap,
    extensions: Extensions,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    if let Err(refusal) = check_link(link.map(|Extension(l)| l), &state.config) {
        return refusal.into_response();
    }
    // Who it is, without the database; then the upgrade; then the credential, so that only a
    // real agent connection can enrol a node. Each failed authentication costs the peer.
    if let Err(e) = crate::auth::node_credential(&headers) {
        state.limits.auth_failed(crate::rate::peer_of(&extensions));
        return e.into_response();
    }
    let upgrade = match upgrade {
        Ok(u) => u,
        Err(e) => {
            return HttpError::body(
                e.status(),
                format!("agent connection: expected a WebSocket upgrade ({e})"),
            )
            .into_response();
        }
    };
    let node = match crate::auth::node(&state, &headers).await {
        Ok(name) => name,
        Err(e) => {
            if e.status.is_client_error() {
                state.limits.auth_failed(crate::rate::peer_of(&extensions));
            }
            return e.into_response();
        }
    };
    let max_message = state.config.agent_max_message;
    upgrade
        .max_message_size(max_message)
        .max_frame_size(max_message)
        .read_buffer_size(SOCKET_BUFFER)
        .write_buffer_size(SOCKET_BUFFER)
        .max_write_buffer_size(MAX_WRITE_BUFFER.max(max_message))
        .on_upgrade(move |socket| serve(state, socket, node))
}

/// The link rule before anything else: a plain link from a non-loopback peer would carry the
/// agent token up and bucket credentials down readable by anyone on the path.
fn check_link(link: Option<Link>, config: &crate::Config) -> Result<(), HttpError> {
    let Some(link) = link else {
        // Not served by `crate::run` (the peer is unknown): refuse rather than guess.
        return Err(HttpError::forbidden(
            "agent connection: the link's peer is unknown; serve through edgecap_server::run",
        ));
    };
    if link.tls {
        return Ok(());
    }
    let peer = edgecap_tls::Peer::Addr(link.peer.ip());
    match edgecap_tls::plain_link(peer, config.insecure_plaintext) {
        edgecap_tls::PlainLink::Loopback => Ok(()),
        edgecap_tls::PlainLink::Insecure => {
            tracing::warn!(peer = %link.peer, "{}", edgecap_tls::plain::insecure_warning(peer));
            Ok(())
        }
        edgecap_tls::PlainLink::Refused => {
            tracing::warn!(peer = %link.peer, "plain agent connection refused");
            Err(HttpError::forbidden(&format!(
                "agent connection: {}",
                edgecap_tls::plain::refused_reason(peer)
            )))
        }
    }
}

async fn serve(state: AppState, mut socket: WebSocket, node: String) {
    let config = state.hub.config().clone();
    let hello = match tokio::time::timeout(config.hello_timeout, next_msg(&mut socket)).await {
        Ok(Some(AgentMsg::Hello {
            name,
            labels,
            points,
            version,
            running,
            finished,
            features,
        })) => match validate(name, labels, points, version, &features) {
            Ok(info) if info.name != node => {
                let reason = format!(
                    "hello.name: {:?} is not {node:?}, the node this connection authenticated as",
                    info.name
                );
                return refuse(socket, reason).await;
            }
            Ok(info) => (info, running, finished),
            Err(reason) => return refuse(socket, reason).await,
        },
        Ok(Some(_)) => return refuse(socket, "the first message must be hello".into()).await,
        Ok(None) => return,
        Err(_) => return refuse(socket, "no hello within the time allowed".into()).await,
    };
    let (info, running, finished) = hello;
    let (session, mut outbox) = match state.hub.connect(info) {
        Ok(s) => s,
        Err(reason) => return refuse(socket, reason).await,
    };
    let welcome = ServerMsg::Welcome {
        heartbeat_secs: config.heartbeat.as_secs_f64(),
    };
    let deadline = config.agent_write_timeout;
    if send(&mut socket, &welcome, deadline).await.is_err() {
        return;
    }
    if let Err(e) = session.reconcile(running, finished).await {
        tracing::error!(node = %session.name(), error = %e, "reconciliation failed");
        return;
    }
    let mut closing = session.closing();
    // Messages per connection: a flood ends the session (the agent redials after its backoff).
    let rate = config.agent_msg_rate;
    let mut budget = Bucket::new(rate, Instant::now());
    loop {
        tokio::select! {
            msg = tokio::time::timeout(config.heartbeat_timeout, socket.recv()) => {
                if matches!(msg, Ok(Some(Ok(_)))) && budget.take(rate, Instant::now()).is_err() {
                    let reason = format!(
                        "too many messages: more than {} per second (burst {})",
                        rate.per_sec, rate.burst
                    );
                    tracing::warn!(node = %session.name(), %reason, "closing the session");
                    let _ = close(&mut socket, close_code::POLICY, &reason, deadline).await;
                    break;
                }
                match msg {
                    Err(_) => {
                        tracing::warn!(node = %session.name(), "no heartbeat; closing the connection");
                        let _ = close(&mut socket, close_code::AWAY, "no heartbeat", deadline).await;
                        break;
                    }
                    Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(Message::Close(_)))) => break,
                    Ok(Some(Ok(Message::Text(text)))) => match AgentMsg::decode(&text) {
                        Ok(m) => session.handle(m),
                        Err(e) => tracing::warn!(node = %session.name(), error = %e,
                            "unreadable agent message ignored"),
                    },
                    // Pings are answered by the socket itself; binary frames mean nothing here,
                    // but they still show the agent is alive.
                    Ok(Some(Ok(_))) => session.handle(AgentMsg::Heartbeat { health: None }),
                }
                if let Some(reason) = session.overloaded() {
                    let _ = close(&mut socket, close_code::AGAIN, reason, deadline).await;
                    break;
                }
            }
            out = outbox.recv() => match out {
                Some(m) => if let Err(e) = send(&mut socket, &m, deadline).await {
                    tracing::warn!(node = %session.name(), error = %e, "cannot send to the agent; closing the session");
                    break;
                },
                // The hub dropped the sender: the agent left its messages unread.
                None => {
                    let _ = close(&mut socket, close_code::AGAIN,
                        "too slow: the agent left too many messages unread", deadline).await;
                    break;
                }
            },
            _ = closing.changed() => {
                let _ = close(&mut socket, close_code::RESTART, "server shutting down", deadline).await;
                break;
            }
        }
    }
    drop(session);
}

/// The next text message as a protocol message (None when the socket ends).
async fn next_msg(socket: &mut WebSocket) -> Option<AgentMsg> {
    loop {
        match socket.recv().await? {
            Ok(Message::Text(text)) => return AgentMsg::decode(&text).ok(),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => continue,
        }
    }
}

/// Why a send failed: the socket's error, or its write deadline passed (a peer that does
/// not read).
#[derive(Debug, thiserror::Error)]
enum SendError {
    #[error("{0}")]
    Socket(#[from] axum::Error),
    #[error("not sent within {0:?}: the agent does not read")]
    Deadline(Duration),
}

/// Sends within `deadline`: a send that cannot complete by then fails (the session ends;
/// other sessions, each on its own task, never wait for it).
async fn send_frame(
    socket: &mut WebSocket,
    frame: Message,
    deadline: Duration,
) -> Result<(), SendError> {
    match tokio::time::timeout(deadline, socket.send(frame)).await {
        Ok(r) => Ok(r?),
        Err(_) => Err(SendError::Deadline(deadline)),
    }
}

async fn send(
    socket: &mut WebSocket,
    msg: &ServerMsg,
    deadline: Duration,
) -> Result<(), SendError> {
    let text = serde_json::to_string(msg).unwrap_or_default();
    send_frame(socket, Message::Text(text.into()), deadline).await
}

async fn close(
    socket: &mut WebSocket,
    code: u16,
    reason: &str,
    deadline: Duration,
) -> Result<(), SendError> {
    // A close frame's reason holds at most 123 bytes.
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let frame = Message::Close(Some(CloseFrame {
        code,
        reason: reason[..end].into(),
    }));
    send_frame(socket, frame, deadline).await
}

async fn refuse(mut socket: WebSocket, reason: String) {
    tracing::warn!(%reason, "agent refused");
    let deadline = Duration::from_secs(5);
    let _ = send(&mut socket, &ServerMsg::Refused { reason }, deadline).await;
    let _ = close(&mut socket, close_code::POLICY, "refused", deadline).await;
    let _ = tokio::time::timeout(deadline, socket.flush()).await;
}

/// The rules are the model's, so an agent can check its own settings before it dials.
fn validate(
    name: String,
    labels: BTreeMap<String, String>,
    points: Vec<String>,
    version: String,
    features: &[String],
) -> Result<NodeInfo, String> {
    edgecap_model::check_hello(&name, &labels, &points, &version)?;
    // Only features this server knows are kept (the message's size bounds the list).
    let known = [
        edgecap_model::protocol::FEATURE_BOUNDARY,
        edgecap_model::firing::FEATURE_TRIGGERS,
    ];
    let features = known
        .iter()
        .filter(|k| features.iter().any(|f| f == *k))
        .map(|k| (*k).to_owned())
        .collect();
    Ok(NodeInfo {
        name,
        labels,
        points,
        version,
        features,
    })
}
