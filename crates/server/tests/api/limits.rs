//! Back-pressure and limits: per-token request rates and the cost of failed logins (429 with
//! `Retry-After`), the request timeout, the bounds of the hub's queues (outgoing messages,
//! the writer, live progress), the per-agent message rate and the write deadline over real
//! sockets, and the secrets key (never created over sealed secrets; rotated atomically).

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Request, StatusCode};
use edgecap_model::{AgentMsg, ServerMsg, codes};
use edgecap_server::config::Rate;
use edgecap_server::credentials::{self, Vault, ownership_context};
use edgecap_server::db::ownership::{self, Ownership};
use edgecap_server::sim::{SimAgent, hello};
use edgecap_server::{AppState, Config};
use edgecap_store::{Credentials, Secret};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tower::ServiceExt;

use crate::both_databases;
use crate::common::{Backend, Harness, assert_error, test_config};

both_databases!(
    a_burst_over_the_token_rate_gets_429_with_retry_after,
    failed_logins_cost_the_address_then_even_good_requests_wait,
    a_request_over_the_timeout_gets_the_envelope,
    an_agent_that_does_not_read_loses_its_session,
    a_full_writer_queue_ends_the_reporting_session,
    progress_is_kept_only_for_the_sessions_own_captures,
    an_agent_flood_is_cut_off_and_others_are_served,
    a_slow_reader_is_disconnected_without_stalling_others,
    no_new_key_over_sealed_secrets,
    rotation_reseals_everything_or_nothing,
);

/// One request through the router from `peer`; status, headers and the JSON body.
async fn send(
    state: &AppState,
    peer: &str,
    token: Option<&str>,
    method: &str,
    path: &str,
    body: Body,
) -> (StatusCode, HeaderMap, Value) {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let mut req = req
        .header("content-type", "application/json")
        .body(body)
        .unwrap();
    let addr: SocketAddr = peer.parse().unwrap();
    req.extensions_mut().insert(ConnectInfo(addr));
    let resp = edgecap_server::app(state.clone())
        .oneshot(req)
        .await
        .expect("infallible");
    let (status, headers) = (resp.status(), resp.headers().clone());
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let v = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, headers, v)
}

async fn get(h: &Harness, peer: &str, token: &str) -> (StatusCode, HeaderMap, Value) {
    send(
        &h.state,
        peer,
        Some(token),
        "GET",
        &h.acc("pcaps"),
        Body::empty(),
    )
    .await
}

fn assert_throttled(status: StatusCode, headers: &HeaderMap, v: &Value, why: &str) {
    assert_error(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        v,
        u64::from(codes::RATE_LIMITED),
        why,
    );
    let retry: u64 = headers
        .get("retry-after")
        .expect("Retry-After")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1, "{retry}");
}

async fn a_burst_over_the_token_rate_gets_429_with_retry_after(b: Backend) {
    let config = Config {
        token_rate: Rate::per(1, Duration::from_secs(3600), 5),
        ..test_config()
    };
    let Some(h) = Harness::with_config(b, config).await else {
        return;
    };
    for _ in 0..5 {
        let (s, _, v) = get(&h, "198.18.0.1:4000", &h.token).await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    let (s, headers, v) = get(&h, "198.18.0.1:4000", &h.token).await;
    assert_throttled(s, &headers, &v, "too many requests with this token");
    // The same token from another address is the same token.
    let (s, headers, v) = get(&h, "198.18.0.9:4000", &h.token).await;
    assert_throttled(s, &headers, &v, "too many requests with this token");
    // Another token is served.
    let other = format!("/client/v4/accounts/{}/pcaps", h.other.id);
    let (s, _, v) = send(
        &h.state,
        "198.18.0.1:4000",
        Some(&h.other_token),
        "GET",
        &other,
        Body::empty(),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

async fn failed_logins_cost_the_address_then_even_good_requests_wait(b: Backend) {
    let config = Config {
        auth_failure_rate: Rate::per(1, Duration::from_secs(3600), 3),
        ..test_config()
    };
    let Some(h) = Harness::with_config(b, config).await else {
        return;
    };
    let bad = "ecp_0000000000000000000000000000000000000000000000000000000000000000";
    for _ in 0..3 {
        let (s, _, v) = get(&h, "[2001:db8::1]:4000", bad).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
    }
    // Spent: the right token from that address waits too, and so does its /64.
    let (s, headers, v) = get(&h, "[2001:db8::1]:4000", &h.token).await;
    assert_throttled(s, &headers, &v, "failed authentications");
    let (s, headers, v) = get(&h, "[2001:db8::2]:4001", &h.token).await;
    assert_throttled(s, &headers, &v, "failed authentications");
    // Another /64 and an IPv4 client are served.
    let (s, _, v) = get(&h, "[2001:db8:0:1::1]:4000", &h.token).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, _, v) = get(&h, "198.18.0.2:4000", &h.token).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // A request without a token costs too.
    for _ in 0..3 {
        let (s, _, _) = send(
            &h.state,
            "198.18.0.3:1",
            None,
            "GET",
            &h.acc("pcaps"),
            Body::empty(),
        )
        .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }
    let (s, headers, v) = get(&h, "198.18.0.3:1", &h.token).await;
    assert_throttled(s, &headers, &v, "failed authentications");
}

async fn a_request_over_the_timeout_gets_the_envelope(b: Backend) {
    let config = Config {
        request_timeout: Duration::from_millis(300),
        ..test_config()
    };
    let Some(h) = Harness::with_config(b, config).await else {
        return;
    };
    // A body whose first bytes arrive and whose end never does.
    use futures_util::StreamExt;
    let stream = futures_util::stream::once(std::future::ready(Ok::<_, std::io::Error>(
        axum::body::Bytes::from_static(b"{\"type\":"),
    )))
    .chain(futures_util::stream::pending());
    let (s, _, v) = tokio::time::timeout(
        Duration::from_secs(10),
        send(
            &h.state,
            "198.18.0.1:1",
            Some(&h.token),
            "POST",
            &h.acc("pcaps"),
            Body::from_stream(stream),
        ),
    )
    .await
    .expect("answered by the server's timeout");
    assert_error(
        s,
        StatusCode::SERVICE_UNAVAILABLE,
        &v,
        u64::from(codes::TIMEOUT),
        "request timeout (300ms)",
    );
    // Nothing was created, and the server answers the next request.
    assert_eq!(h.count("captures").await, 0);
    let (s, _, v) = get(&h, "198.18.0.1:1", &h.token).await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

async fn an_agent_that_does_not_read_loses_its_session(b: Backend) {
    let config = Config {
        agent_outbox: 2,
        ..test_config()
    };
    let Some(h) = Harness::with_config(b, config).await else {
        return;
    };
    let mut node = h.node("edge0", &[("site", "fra")], &["pre-firewall"]);
    let ids: Vec<String> = (0..3).map(|_| edgecap_server::secret::new_id()).collect();
    for id in &ids {
        h.state.hub.send(
            "edge0",
            ServerMsg::Stop {
                capture_id: id.clone(),
            },
        );
    }
    // Two queued, the third found the queue full: the session's queue ends after the two.
    for id in &ids[..2] {
        assert_eq!(
            node.next().await,
            ServerMsg::Stop {
                capture_id: id.clone()
            }
        );
    }
    let end = tokio::time::timeout(Duration::from_secs(1), node.rx.recv())
        .await
        .expect("the queue ends");
    assert_eq!(end, None);
    assert!(!h.state.hub.send(
        "edge0",
        ServerMsg::Stop {
            capture_id: ids[0].clone()
        }
    ));
}

async fn a_full_writer_queue_ends_the_reporting_session(b: Backend) {
    let config = Config {
        write_queue: 1,
        ..test_config()
    };
    let Some(h) = Harness::with_config(b, config).await else {
        return;
    };
    let node = h.node("edge0", &[("site", "fra")], &["pre-firewall"]);
    assert_eq!(node.session.overloaded(), None);
    // Far more reports than the queue holds, faster than a database takes them.
    for _ in 0..10_000 {
        node.session.handle(AgentMsg::Ack {
            capture_id: edgecap_server::secret::new_id(),
        });
        if node.session.overloaded().is_some() {
            break;
        }
    }
    let why = node
        .session
        .overloaded()
        .expect("the session is overloaded");
    assert!(why.contains("reconnect later"), "{why}");
    // The server's own writes still go through.
    h.state.hub.barrier().await;
}

async fn progress_is_kept_only_for_the_sessions_own_captures(b: Backend) {
    let Some(h) = Harness::new(b).await else {
        return;
    };
    let mut node = h.node("edge0", &[("site", "fra")], &["pre-firewall"]);
    let id = h.create("fra", json!({})).await;
    assert!(matches!(node.next().await, ServerMsg::Assign { .. }));
    let progress = |capture_id: &str| AgentMsg::Progress {
        capture_id: capture_id.to_owned(),
        packets: 7,
        bytes: 700,
        lost: 0,
    };
    node.session.handle(progress(&id));
    assert_eq!(h.state.hub.progress(&id)["edge0"].packets, 7);
    // Made-up capture ids take no memory.
    for _ in 0..1000 {
        let other = edgecap_server::secret::new_id();
        node.session.handle(progress(&other));
        assert!(h.state.hub.progress(&other).is_empty());
    }
}

/// A server listening on 127.0.0.1 until dropped.
struct Server {
    base: String,
    stop: Option<oneshot::Sender<()>>,
}

impl Server {
    async fn start(state: AppState) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(edgecap_server::run(listener, state, async move {
            let _ = rx.await;
        }));
        Server {
            base,
            stop: Some(tx),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

async fn connect(h: &Harness, s: &Server, name: &str) -> SimAgent {
    let (a, first) = SimAgent::connect(
        &s.base,
        &h.agent_token,
        &hello(name, &[("site", "fra")], &["pre-firewall"]),
    )
    .await
    .unwrap();
    assert!(matches!(first, ServerMsg::Welcome { .. }), "{first:?}");
    a
}

async fn connected(state: &AppState, name: &str) -> bool {
    state.hub.live_nodes().iter().any(|n| n.info.name == name)
}

async fn an_agent_flood_is_cut_off_and_others_are_served(b: Backend) {
    let config = Config {
        heartbeat_timeout: Duration::from_secs(60),
        agent_msg_rate: Rate::per(1, Duration::from_secs(1), 50),
        ..test_config()
    };
    let Some(h) = Harness::with_config(b, config).await else {
        return;
    };
    let s = Server::start(h.state.clone()).await;
    let mut calm = connect(&h, &s, "calm").await;
    let mut flood = connect(&h, &s, "flood").await;
    let mut sent = 0;
    for _ in 0..2000 {
        if flood
            .send(&AgentMsg::Heartbeat { health: None })
            .await
            .is_err()
        {
            break;
        }
        sent += 1;
    }
    assert!(sent > 50, "{sent}");
    // The server closes the flooding session (the rest of what it sent is dropped)...
    let mut closed = false;
    for _ in 0..100 {
        if !connected(&h.state, "flood").await {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(closed, "the flooding agent is still connected");
    assert_eq!(
        flood
            .recv_within(Duration::from_secs(2))
            .await
            .ok()
            .flatten(),
        None
    );
    // ... while the calm agent keeps its session and is sent its work.
    assert!(connected(&h.state, "calm").await);
    let id = h.create("fra", json!({})).await;
    match calm.recv_within(Duration::from_secs(2)).await.unwrap() {
        Some(ServerMsg::Assign { assignment }) => assert_eq!(assignment.capture_id, id),
        other => panic!("expected the assignment, got {other:?}"),
    }
    calm.send(&AgentMsg::Heartbeat { health: None })
        .await
        .unwrap();
}

async fn a_slow_reader_is_disconnected_without_stalling_others(b: Backend) {
    let config = Config {
        heartbeat_timeout: Duration::from_secs(60),
        agent_write_timeout: Duration::from_millis(500),
        // Room for every message: the socket's deadline, not the queue, ends the session.
        agent_outbox: 1 << 20,
        ..test_config()
    };
    let Some(h) = Harness::with_config(b, config).await else {
        return;
    };
    let s = Server::start(h.state.clone()).await;
    let _slow = connect(&h, &s, "slow").await; // never reads
    let mut fast = connect(&h, &s, "fast").await;
    let stop = |i: u32| ServerMsg::Stop {
        capture_id: format!("{i:032x}"),
    };
    // Messages to the slow agent until its socket buffers are full and a send waits past
    // the deadline (bounded: a few hundred thousand small messages at most).
    let mut gone = false;
    for i in 0..400_000u32 {
        if !h.state.hub.send("slow", stop(i)) {
            gone = true;
            break;
        }
        if i % 1000 == 999 {
            // Meanwhile the other agent is served at once.
            assert!(h.state.hub.send("fast", stop(i)));
            let got = fast.recv_within(Duration::from_secs(1)).await.unwrap();
            assert_eq!(got, Some(stop(i)));
        }
        if i % 200 == 199 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    assert!(gone, "the slow agent was never disconnected");
    assert!(!connected(&h.state, "slow").await);
    assert!(connected(&h.state, "fast").await);
}

fn creds() -> Credentials {
    Credentials::AccessKey {
        access_key_id: "AKIDLIMITS".into(),
        secret_access_key: Secret::new("sealed-and-rotated"),
        session_token: None,
    }
}

/// An ownership row holding `sealed` (or credentials sealed with `vault`).
async fn ownership_row(h: &Harness, n: u32, sealed: &str) {
    let o = Ownership {
        id: edgecap_server::secret::new_id(),
        destination_conf: format!("s3://bucket-{n}/captures?region=us-east-1"),
        filename: "ownership-challenge-x.txt".into(),
        status: "pending".into(),
        submitted: format!("2026-01-01T00:00:0{n}Z"),
        validated: String::new(),
    };
    let sealed = if sealed.is_empty() {
        h.state
            .hub
            .vault()
            .seal(&creds(), &ownership_context(&o.id))
            .unwrap()
    } else {
        sealed.to_owned()
    };
    ownership::upsert_pending(&h.state.db, &h.account.id, &o, "digest", Some(&sealed))
        .await
        .unwrap();
}

async fn stored(h: &Harness, n: u32) -> (String, String) {
    let dest = format!("s3://bucket-{n}/captures?region=us-east-1");
    let s = ownership::by_destination(&h.state.db, &h.account.id, &dest)
        .await
        .unwrap()
        .unwrap();
    (s.ownership.id, s.credentials.unwrap())
}

async fn no_new_key_over_sealed_secrets(b: Backend) {
    let Some(h) = Harness::new(b).await else {
        return;
    };
    let key = h._tmp.0.join("secrets.key");
    // An empty database: a missing key is created.
    credentials::check_key(h.state.hub.vault(), &h.state.db)
        .await
        .unwrap();
    assert!(key.exists());
    ownership_row(&h, 1, "").await;
    credentials::check_key(&Vault::new(Some(key.clone())), &h.state.db)
        .await
        .unwrap();
    // The key file gone: refused, saying why and what to do, and nothing is created.
    let missing = h._tmp.0.join("elsewhere.key");
    let err = credentials::check_key(&Vault::new(Some(missing.clone())), &h.state.db)
        .await
        .unwrap_err();
    assert!(err.contains("holds 1 sealed credential"), "{err}");
    assert!(err.contains("--secrets-key"), "{err}");
    assert!(!missing.exists());
    // Another key: refused too.
    let other = h._tmp.0.join("other.key");
    Vault::new(Some(other.clone())).check().unwrap();
    let err = credentials::check_key(&Vault::new(Some(other)), &h.state.db)
        .await
        .unwrap_err();
    assert!(err.contains("not the key they were sealed with"), "{err}");
}

async fn rotation_reseals_everything_or_nothing(b: Backend) {
    let Some(h) = Harness::new(b).await else {
        return;
    };
    let key = h._tmp.0.join("secrets.key");
    ownership_row(&h, 1, "").await;
    ownership_row(&h, 2, "").await;
    let old_key = std::fs::read(&key).unwrap();
    let (id1, before) = stored(&h, 1).await;

    let done = credentials::rotate(&h.state.db, &key).await.unwrap();
    assert!(done.contains("re-sealed 2 secret(s)"), "{done}");
    let new_key = std::fs::read(&key).unwrap();
    assert_ne!(new_key, old_key);
    assert!(!credentials::pending_key_path(&key).exists());
    let (_, after) = stored(&h, 1).await;
    assert_ne!(after, before);
    // The new key opens every secret; the old one opens none.
    let fresh = Vault::new(Some(key.clone()));
    assert_eq!(
        fresh.open(&after, &ownership_context(&id1)).unwrap(),
        creds()
    );
    let (id2, second) = stored(&h, 2).await;
    assert_eq!(
        fresh.open(&second, &ownership_context(&id2)).unwrap(),
        creds()
    );
    let old_path = h._tmp.0.join("old.key");
    std::fs::write(&old_path, &old_key).unwrap();
    std::fs::set_permissions(
        &old_path,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let old = Vault::new(Some(old_path));
    assert!(old.open(&after, &ownership_context(&id1)).is_err());
    credentials::check_key(&fresh, &h.state.db).await.unwrap();

    // A secret that does not open: the rotation fails and changes nothing.
    ownership_row(&h, 3, "v1.00").await;
    let err = credentials::rotate(&h.state.db, &key).await.unwrap_err();
    assert!(err.contains("nothing changed"), "{err}");
    assert_eq!(std::fs::read(&key).unwrap(), new_key);
    assert!(!credentials::pending_key_path(&key).exists());
    assert_eq!(stored(&h, 1).await.1, after);
    assert_eq!(stored(&h, 2).await.1, second);
    assert_eq!(
        Vault::new(Some(key))
            .open(&after, &ownership_context(&id1))
            .unwrap(),
        creds()
    );
}
