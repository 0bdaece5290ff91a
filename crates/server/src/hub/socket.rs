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
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use edgecap_model::{AgentMsg, ServerMsg};
use futures_util::SinkExt;

use crate::AppState;
use crate::db::nodes::NodeInfo;
use crate::error::HttpError;
use crate::serve::Link;

/// Largest message an agent may send: the protocol's one bound (a hello with many finished
/// outcomes fits easily).
const MAX_MESSAGE: usize = edgecap_model::MAX_MESSAGE_BYTES;
/// Read and write buffers per agent socket. Agent messages are a few hundred bytes; the
/// WebSocket library's default (128 KiB each) would hold 250 MiB for a thousand idle agents.
/// Larger messages still arrive whole: the buffers grow for them.
const SOCKET_BUFFER: usize = 4 << 10;

pub async fn connect(
    State(state): State<AppState>,
    link: Option<Extension<Link>>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    if let Err(refusal) = check_link(link.map(|Extension(l)| l), &state.config) {
        return refusal.into_response();
    }
    // Who it is, without the database; then the upgrade; then the credential, so that only a
    // real agent connection can enrol a node.
    if let Err(e) = crate::auth::node_credential(&headers) {
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
        Err(e) => return e.into_response(),
    };
    upgrade
        .max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_MESSAGE)
        .read_buffer_size(SOCKET_BUFFER)
        .write_buffer_size(SOCKET_BUFFER)
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
        })) => match validate(name, labels, points, version) {
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
    if send(&mut socket, &welcome).await.is_err() {
        return;
    }
    if let Err(e) = session.reconcile(running, finished).await {
        tracing::error!(node = %session.name(), error = %e, "reconciliation failed");
        return;
    }
    let mut closing = session.closing();
    loop {
        tokio::select! {
            msg = tokio::time::timeout(config.heartbeat_timeout, socket.recv()) => match msg {
                Err(_) => {
                    tracing::warn!(node = %session.name(), "no heartbeat; closing the connection");
                    let _ = close(&mut socket, close_code::AWAY, "no heartbeat").await;
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
                Ok(Some(Ok(_))) => session.handle(AgentMsg::Heartbeat),
            },
            out = outbox.recv() => match out {
                Some(m) => if send(&mut socket, &m).await.is_err() { break },
                None => break,
            },
            _ = closing.changed() => {
                let _ = close(&mut socket, close_code::RESTART, "server shutting down").await;
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

async fn send(socket: &mut WebSocket, msg: &ServerMsg) -> Result<(), axum::Error> {
    let text = serde_json::to_string(msg).unwrap_or_default();
    socket.send(Message::Text(text.into())).await
}

async fn close(socket: &mut WebSocket, code: u16, reason: &str) -> Result<(), axum::Error> {
    socket
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        })))
        .await
}

async fn refuse(mut socket: WebSocket, reason: String) {
    tracing::warn!(%reason, "agent refused");
    let _ = send(&mut socket, &ServerMsg::Refused { reason }).await;
    let _ = close(&mut socket, close_code::POLICY, "refused").await;
    let _ = socket.flush().await;
}

/// The rules are the model's, so an agent can check its own settings before it dials.
fn validate(
    name: String,
    labels: BTreeMap<String, String>,
    points: Vec<String>,
    version: String,
) -> Result<NodeInfo, String> {
    edgecap_model::check_hello(&name, &labels, &points, &version)?;
    Ok(NodeInfo {
        name,
        labels,
        points,
        version,
    })
}
