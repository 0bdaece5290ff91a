//! A simulated agent: speaks the protocol over a real WebSocket but captures nothing. Tests
//! drive it message by message; `edgecap bench dispatch` runs a thousand of them with
//! [`respond`], which answers like a real agent and reports when each message arrived.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use edgecap_model::lookback::{RingAnswer, RingQuery, WireSample};
use edgecap_model::{AgentMsg, ServerMsg};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::error::{Error, Result};

/// One simulated agent connection.
#[derive(Debug)]
pub struct SimAgent {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// A `hello` with `site` and other labels, offering `points`.
pub fn hello(name: &str, labels: &[(&str, &str)], points: &[&str]) -> AgentMsg {
    AgentMsg::Hello {
        name: name.to_owned(),
        labels: labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<BTreeMap<_, _>>(),
        points: points.iter().map(|p| (*p).to_owned()).collect(),
        version: "sim".into(),
        running: vec![],
        finished: vec![],
        features: vec![edgecap_model::protocol::FEATURE_BOUNDARY.into()],
    }
}

/// A [`hello`] that also announces [`FEATURE_TRIGGERS`](edgecap_model::firing::FEATURE_TRIGGERS):
/// the node is sent the triggers whose scope selects it.
pub fn hello_with_triggers(name: &str, labels: &[(&str, &str)], points: &[&str]) -> AgentMsg {
    let mut h = hello(name, labels, points);
    if let AgentMsg::Hello { features, .. } = &mut h {
        features.push(edgecap_model::firing::FEATURE_TRIGGERS.into());
    }
    h
}

/// A firing of `trigger_id` for destination `key` (None: the whole scope) that held from
/// `started` to `at` peaking at `peak`, with the capture the agent started as `capture_id`
/// (None with `refused`: the agent's reason for not starting one).
pub fn firing(
    trigger_id: &str,
    key: Option<std::net::IpAddr>,
    (started, at): (u64, u64),
    peak: f64,
    capture: Option<(&str, edgecap_model::firing::FiredCapture)>,
    refused: Option<&str>,
) -> edgecap_model::firing::Firing {
    let (capture_id, capture) = match capture {
        Some((id, c)) => (Some(id.to_owned()), Some(c)),
        None => (None, None),
    };
    edgecap_model::firing::Firing {
        trigger_id: trigger_id.to_owned(),
        capture_id,
        key,
        started,
        at,
        value: peak,
        peak,
        refused: refused.map(str::to_owned),
        capture,
    }
}

/// The credential a simulated node of `name` enrolled with `token` presents: a node
/// credential's shape, derived rather than random, so its reconnects are its own.
pub fn credential_for(token: &str, name: &str) -> String {
    format!(
        "{}{}",
        edgecap_model::NODE_CREDENTIAL_PREFIX,
        crate::secret::digest(&format!("sim:{token}:{name}"))
    )
}

fn socket_err(e: impl std::fmt::Display) -> Error {
    Error::Agent(e.to_string())
}

impl SimAgent {
    /// Opens `ws://<host:port>/agent/v1/connect` on the server at `base` (`http://host:port`),
    /// sends `hello`, and returns the agent with the server's first answer (`welcome`, or
    /// `refused`). `token` is the enrolment token; the node's credential is derived from it
    /// and the hello's name, so a simulated node reconnects as itself.
    pub async fn connect(
        base: &str,
        token: &str,
        hello: &AgentMsg,
    ) -> Result<(SimAgent, ServerMsg)> {
        let name = match hello {
            AgentMsg::Hello { name, .. } => name.as_str(),
            _ => "sim",
        };
        let credential = credential_for(token, name);
        SimAgent::connect_as(base, name, &credential, Some(token), hello).await
    }

    /// [`connect`](Self::connect) as node `name` with its own `credential` and, if given, an
    /// enrolment token.
    pub async fn connect_as(
        base: &str,
        name: &str,
        credential: &str,
        enrolment: Option<&str>,
        hello: &AgentMsg,
    ) -> Result<(SimAgent, ServerMsg)> {
        let url = format!(
            "{}/agent/v1/connect",
            base.replacen("http://", "ws://", 1).trim_end_matches('/')
        );
        let mut request = url.into_client_request().map_err(socket_err)?;
        let headers = request.headers_mut();
        let auth = format!("Bearer {credential}").parse().map_err(socket_err)?;
        headers.insert("authorization", auth);
        headers.insert(
            edgecap_model::NODE_HEADER,
            name.parse().map_err(socket_err)?,
        );
        if let Some(t) = enrolment {
            headers.insert(
                edgecap_model::ENROLMENT_HEADER,
                t.parse().map_err(socket_err)?,
            );
        }
        let (ws, _) = match tokio_tungstenite::connect_async(request).await {
            Ok(ok) => ok,
            // A refused upgrade: the status and the envelope's text, as an agent shows them.
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                let body = resp.body().as_deref().unwrap_or_default();
                return Err(Error::Agent(format!(
                    "refused: {} {}",
                    resp.status(),
                    String::from_utf8_lossy(body)
                )));
            }
            Err(e) => return Err(socket_err(e)),
        };
        let mut agent = SimAgent { ws };
        agent.send(hello).await?;
        let first = agent
            .recv()
            .await?
            .ok_or_else(|| Error::Agent("closed before welcome".into()))?;
        Ok((agent, first))
    }

    pub async fn send(&mut self, msg: &AgentMsg) -> Result<()> {
        self.send_counted(msg).await.map(|_| ())
    }

    /// [`send`](Self::send), returning the bytes of the message's text.
    pub async fn send_counted(&mut self, msg: &AgentMsg) -> Result<usize> {
        let text = serde_json::to_string(msg).map_err(socket_err)?;
        let n = text.len();
        self.ws
            .send(Message::Text(text.into()))
            .await
            .map_err(socket_err)?;
        Ok(n)
    }

    /// Sends the observer's closed seconds, as an agent does at each heartbeat (at most
    /// `MAX_ROLLUP_SECONDS` per message: longer lists go in several messages).
    pub async fn send_rollups(&mut self, seconds: &[edgecap_observe::Second]) -> Result<()> {
        for chunk in seconds.chunks(edgecap_model::protocol::MAX_ROLLUP_SECONDS) {
            self.send(&AgentMsg::Rollups {
                seconds: chunk.to_vec(),
            })
            .await?;
        }
        Ok(())
    }

    /// Sends `text` as it is (tests of what the server does with junk).
    pub async fn send_text(&mut self, text: &str) -> Result<()> {
        self.ws
            .send(Message::Text(text.to_owned().into()))
            .await
            .map_err(socket_err)
    }

    /// Reports that a trigger fired (or was refused), as an agent does ([`firing`]).
    pub async fn fired(&mut self, firing: edgecap_model::firing::Firing) -> Result<()> {
        self.send(&AgentMsg::Fired { firing }).await
    }

    /// Asks for a capture beyond the node's local share of a trigger's hourly budget; the
    /// answer comes as a `ServerMsg::Grant`.
    pub async fn ask(&mut self, ask: edgecap_model::firing::Ask) -> Result<()> {
        self.send(&AgentMsg::Ask { ask }).await
    }

    /// Reports that a key that fired stopped holding.
    pub async fn ended(&mut self, ending: edgecap_model::firing::Ending) -> Result<()> {
        self.send(&AgentMsg::Ended { ending }).await
    }

    /// Sends the attack signature of a trigger's ended capture.
    pub async fn signed(&mut self, signed: edgecap_model::firing::Signed) -> Result<()> {
        self.send(&AgentMsg::Signed {
            signed: Box::new(signed),
        })
        .await
    }

    /// The next protocol message; None when the server closed the connection.
    pub async fn recv(&mut self) -> Result<Option<ServerMsg>> {
        loop {
            match self.ws.next().await {
                None | Some(Ok(Message::Close(_))) => return Ok(None),
                Some(Err(e)) => return Err(socket_err(e)),
                Some(Ok(Message::Text(t))) => {
                    match serde_json::from_str(&t).map_err(socket_err)? {
                        // A simulated agent has no observer: which accounts to keep apart
                        // means nothing to it (and would get in the way of what tests wait
                        // for).
                        ServerMsg::Accounts { .. } => continue,
                        msg => return Ok(Some(msg)),
                    }
                }
                Some(Ok(_)) => continue,
            }
        }
    }

    /// Like [`recv`](Self::recv), giving up after `d` (Ok(None) then too).
    pub async fn recv_within(&mut self, d: Duration) -> Result<Option<ServerMsg>> {
        tokio::time::timeout(d, self.recv())
            .await
            .unwrap_or(Ok(None))
    }

    /// Closes the connection cleanly.
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }

    /// Drops the connection without a close handshake, like a crashed agent.
    pub fn abort(self) {
        drop(self);
    }
}

/// What a responding simulated agent saw, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// An `assign` arrived (and was acknowledged at once).
    Assigned { capture_id: String, at: Instant },
    /// A `stop` arrived (and `done` was sent at once).
    Stopped { capture_id: String, at: Instant },
    /// The connection ended.
    Closed,
}

/// The samples a simulated node's ring answers a look-back query with (the agent sends at
/// most the query's `limit` of them).
pub type RingFn = dyn Fn(&RingQuery) -> Vec<WireSample> + Send + Sync;

/// The rollup seconds a simulated node sends for the unix seconds `[from, until)`.
pub type RollupFn = dyn Fn(u64, u64) -> Vec<edgecap_observe::Second> + Send + Sync;

/// What a [`respond_with`] agent sends beyond acknowledgements: its ring's answers and its
/// rollups. The default answers every query with no sample and sends no rollup.
#[derive(Clone, Default)]
pub struct Script {
    pub ring: Option<Arc<RingFn>>,
    pub rollups: Option<Arc<RollupFn>>,
    /// What every agent given a clone of this script sent.
    pub sent: Arc<Sent>,
}

impl std::fmt::Debug for Script {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Script")
            .field("ring", &self.ring.is_some())
            .field("rollups", &self.rollups.is_some())
            .field("sent", &self.sent)
            .finish()
    }
}

/// Counts of what simulated agents sent (message bytes are the JSON text's).
#[derive(Debug, Default)]
pub struct Sent {
    pub answer_messages: AtomicU64,
    pub answer_bytes: AtomicU64,
    pub samples: AtomicU64,
    pub rollup_messages: AtomicU64,
    pub rollup_bytes: AtomicU64,
    pub rollup_seconds: AtomicU64,
}

impl Sent {
    fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }
    /// A counter's value.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// The messages answering `query` with `samples` (cut to the query's limit), as a real
/// agent sends them ([`RingAnswer::chunked`]), the totals in the first.
fn answers(query: RingQuery, mut samples: Vec<WireSample>) -> Vec<AgentMsg> {
    samples.truncate(usize::try_from(query.limit).unwrap_or(usize::MAX));
    let matched = samples.len() as u64;
    let est_packets = samples.iter().map(|s| s.one_in).sum();
    let est_bytes = samples
        .iter()
        .map(|s| s.one_in * u64::from(s.orig_len))
        .sum();
    let one_in = samples.iter().map(|s| s.one_in).max().unwrap_or(1);
    let (start, end) = (query.from_ns / 1_000_000_000, query.to_ns / 1_000_000_000);
    let head = edgecap_model::lookback::AnswerHead {
        matched,
        est_packets,
        est_bytes,
        thinned_by: 1.0,
        periods: vec![edgecap_model::lookback::PeriodRate { start, end, one_in }],
        reach_start: Some(start),
    };
    RingAnswer::chunked(&query.query_id, head, samples)
        .into_iter()
        .map(|answer| AgentMsg::Answer { answer })
        .collect()
}

fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Runs `agent` like a real agent that captures nothing: acknowledges every `assign`, answers
/// every `stop` with a successful `done` and every look-back `query` with an empty answer,
/// and sends a heartbeat every `heartbeat`. Each arrival is reported on `seen` with the time
/// it was read, before the answer is written.
pub async fn respond(agent: SimAgent, heartbeat: Duration, seen: mpsc::UnboundedSender<Seen>) {
    respond_with(agent, heartbeat, seen, Script::default()).await;
}

/// [`respond`], with the `script`'s ring answering look-back queries and its rollups sent
/// after each heartbeat (the seconds since the previous one, as a real agent does).
pub async fn respond_with(
    mut agent: SimAgent,
    heartbeat: Duration,
    seen: mpsc::UnboundedSender<Seen>,
    script: Script,
) {
    let mut beat = tokio::time::interval(heartbeat);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut rolled_until = unix_secs();
    loop {
        let msgs = tokio::select! {
            msg = agent.recv() => match msg {
                Ok(Some(ServerMsg::Assign { assignment })) => {
                    let capture_id = assignment.capture_id;
                    let _ = seen.send(Seen::Assigned { capture_id: capture_id.clone(), at: Instant::now() });
                    vec![AgentMsg::Ack { capture_id }]
                }
                Ok(Some(ServerMsg::Stop { capture_id })) => {
                    let _ = seen.send(Seen::Stopped { capture_id: capture_id.clone(), at: Instant::now() });
                    vec![AgentMsg::Done {
                        outcome: edgecap_model::Outcome {
                            capture_id,
                            ok: true,
                            error: None,
                            packets: 0,
                            bytes: 0,
                            lost: 0,
                            stop_reason: Some("stopped".into()),
                            file: None,
                        },
                    }]
                }
                // Without a ring in the script a simulated node observes nothing: it answers
                // every look-back query at once, with no sample.
                Ok(Some(ServerMsg::Query { query })) => {
                    let samples = script.ring.as_ref().map(|r| r(&query)).unwrap_or_default();
                    answers(query, samples)
                }
                Ok(Some(_)) => continue,
                Ok(None) | Err(_) => break,
            },
            _ = beat.tick() => {
                let mut msgs = vec![AgentMsg::Heartbeat { health: None }];
                if let Some(roll) = &script.rollups {
                    let now = unix_secs();
                    let seconds = roll(rolled_until, now);
                    rolled_until = now.max(rolled_until);
                    for chunk in seconds.chunks(edgecap_model::protocol::MAX_ROLLUP_SECONDS) {
                        msgs.push(AgentMsg::Rollups { seconds: chunk.to_vec() });
                    }
                }
                msgs
            }
        };
        let mut ok = true;
        for m in &msgs {
            match agent.send_counted(m).await {
                Ok(n) => {
                    let s = &script.sent;
                    let (count, bytes) = match m {
                        AgentMsg::Answer { answer } => {
                            Sent::add(&s.samples, answer.samples.len());
                            (&s.answer_messages, &s.answer_bytes)
                        }
                        AgentMsg::Rollups { seconds } => {
                            Sent::add(&s.rollup_seconds, seconds.len());
                            (&s.rollup_messages, &s.rollup_bytes)
                        }
                        _ => continue,
                    };
                    Sent::add(count, 1);
                    Sent::add(bytes, n);
                }
                Err(_) => {
                    ok = false;
                    break;
                }
            }
        }
        if !ok {
            break;
        }
    }
    let _ = seen.send(Seen::Closed);
}
