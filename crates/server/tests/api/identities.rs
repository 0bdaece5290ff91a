//! Node identities over real WebSockets: a node's name is bound to the credential it
//! presented at its first connect (with an enrolment token); another credential cannot take
//! it, connected or not; enrolment tokens expire, are used up, and are needed only once;
//! a revoked node is cut off at once (revoked through the API, or in the database by another
//! process), its parts fail with the reason, and it cannot come back until forgotten.

use std::time::{Duration, Instant};

use edgecap_model::{AgentMsg, ServerMsg};
use edgecap_server::AppState;
use edgecap_server::auth::Scope;
use edgecap_server::db::identities;
use edgecap_server::db::tokens::{self, Kind, Limits};
use edgecap_server::sim::{SimAgent, hello};
use serde_json::json;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::both_databases;
use crate::common::{Backend, Harness, assert_error};

both_databases!(
    a_name_is_taken_only_with_its_credential,
    enrolment_tokens_expire_are_used_up_and_needed_once,
    a_revoked_node_is_cut_off_and_its_parts_fail,
    a_node_revoked_elsewhere_is_cut_off_by_the_poll,
);

struct Server {
    base: String,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<edgecap_server::Result<()>>,
}

impl Server {
    async fn start(state: AppState) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(edgecap_server::run(listener, state, async move {
            let _ = rx.await;
        }));
        Server {
            base,
            stop: Some(tx),
            task,
        }
    }

    async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
    }
}

fn cred(n: u8) -> String {
    format!("ecn_{}", format!("{n:02x}").repeat(32))
}

/// Connects `name` with `credential` (and `token`, if given): the first answer, or the
/// refusal's text (HTTP status and envelope).
async fn dial(
    s: &Server,
    name: &str,
    credential: &str,
    token: Option<&str>,
) -> Result<(SimAgent, ServerMsg), String> {
    SimAgent::connect_as(
        &s.base,
        name,
        credential,
        token,
        &hello(name, &[("site", "fra")], &["pre-firewall"]),
    )
    .await
    .map_err(|e| e.to_string())
}

fn welcomed(r: &Result<(SimAgent, ServerMsg), String>) -> bool {
    matches!(r, Ok((_, ServerMsg::Welcome { .. })))
}

async fn a_name_is_taken_only_with_its_credential(b: Backend) {
    let Some(h) = Harness::new(b).await else {
        return;
    };
    let s = Server::start(h.state.clone()).await;
    let t = Some(h.agent_token.as_str());
    let first = dial(&s, "edge0", &cred(1), t).await;
    assert!(welcomed(&first), "{:?}", first.as_ref().err());
    // Another credential, with a valid enrolment token, while edge0 is connected: refused.
    let e = dial(&s, "edge0", &cred(2), t).await.err().unwrap();
    assert!(
        e.contains("403") && e.contains("bound to another node credential"),
        "{e}"
    );
    // ... and after it left.
    first.unwrap().0.close().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let e = dial(&s, "edge0", &cred(2), t).await.err().unwrap();
    assert!(e.contains("bound to another node credential"), "{e}");
    // One credential is one node's: it cannot take a second name.
    let e = dial(&s, "edge1", &cred(1), t).await.err().unwrap();
    assert!(e.contains("belongs to node") && e.contains("edge0"), "{e}");
    // The owner comes back without any enrolment token; its hello must carry its own name.
    let back = dial(&s, "edge0", &cred(1), None).await;
    assert!(welcomed(&back), "{:?}", back.as_ref().err());
    let (_, first) = SimAgent::connect_as(&s.base, "edge2", &cred(3), t, &hello("edge0", &[], &[]))
        .await
        .unwrap();
    assert!(
        matches!(&first, ServerMsg::Refused { reason } if reason.contains("hello.name")),
        "{first:?}"
    );
    // Not a credential at all (an agent token in its place), or no name: 401.
    for (name, c) in [("edge3", h.agent_token.as_str()), ("", cred(4).as_str())] {
        let e = dial(&s, name, c, t).await.err().unwrap();
        assert!(e.contains("401"), "{e}");
    }
    let names: Vec<String> = identities::list(&h.state.db)
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert_eq!(names, ["edge0", "edge2"]);
    s.stop().await;
}

async fn enrolment_tokens_expire_are_used_up_and_needed_once(b: Backend) {
    let Some(h) = Harness::new(b).await else {
        return;
    };
    let s = Server::start(h.state.clone()).await;
    let db = &h.state.db;
    let once = Limits {
        max_uses: Some(1),
        ..Limits::default()
    };
    let (one, once_secret) = tokens::create_limited(db, Kind::Agent, None, "one", &once)
        .await
        .unwrap();
    let a = dial(&s, "edge0", &cred(1), Some(&once_secret)).await;
    assert!(welcomed(&a), "{:?}", a.as_ref().err());
    let e = dial(&s, "edge1", &cred(2), Some(&once_secret))
        .await
        .err()
        .unwrap();
    assert!(e.contains("401") && e.contains("used up"), "{e}");
    // Reconnecting does not count as a use, with or without the used-up token.
    a.unwrap().0.close().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let again = dial(&s, "edge0", &cred(1), Some(&once_secret)).await;
    assert!(welcomed(&again), "{:?}", again.as_ref().err());
    let listed = tokens::list(db).await.unwrap();
    let t = listed.iter().find(|t| t.id == one.id).unwrap();
    assert_eq!((t.uses, t.max_uses), (Some(1), Some(1)));
    // Expired.
    let past = Limits {
        expires_on: Some(edgecap_model::ids::rfc3339(1_000_000_000.0)),
        ..Limits::default()
    };
    let (_, old) = tokens::create_limited(db, Kind::Agent, None, "old", &past)
        .await
        .unwrap();
    let e = dial(&s, "edge1", &cred(2), Some(&old)).await.err().unwrap();
    assert!(e.contains("401") && e.contains("expired"), "{e}");
    // Revoked, unknown, or an API token: not an enrolment token.
    let (t2, revoked) = tokens::create(db, Kind::Agent, None, "r").await.unwrap();
    assert!(tokens::revoke(db, Kind::Agent, &t2.id).await.unwrap());
    for bad in [revoked.as_str(), "eca_nope", h.token.as_str()] {
        let e = dial(&s, "edge1", &cred(2), Some(bad)).await.err().unwrap();
        assert!(e.contains("not a valid enrolment token"), "{e}");
    }
    // No token at all for a new node.
    let e = dial(&s, "edge1", &cred(2), None).await.err().unwrap();
    assert!(e.contains("not enrolled"), "{e}");
    assert_eq!(identities::list(db).await.unwrap().len(), 1);
    s.stop().await;
}

/// Waits (at most `within`) for the agent's connection to end; the messages it got first.
async fn until_closed(a: &mut SimAgent, within: Duration) -> Vec<ServerMsg> {
    let until = Instant::now() + within;
    let mut got = Vec::new();
    while Instant::now() < until {
        match a.recv_within(until - Instant::now()).await {
            Ok(Some(m)) => got.push(m),
            _ => return got,
        }
    }
    panic!("still connected after {within:?}; got {got:?}");
}

async fn a_revoked_node_is_cut_off_and_its_parts_fail(b: Backend) {
    let Some(h) = Harness::new(b).await else {
        return;
    };
    let s = Server::start(h.state.clone()).await;
    let (mut a, _) = dial(&s, "edge0", &cred(1), Some(&h.agent_token))
        .await
        .unwrap();
    let id = h.create("fra", json!({})).await;
    match a.recv_within(Duration::from_secs(2)).await.unwrap() {
        Some(ServerMsg::Assign { .. }) => {}
        other => panic!("expected assign, got {other:?}"),
    }
    a.send(&AgentMsg::Ack {
        capture_id: id.clone(),
    })
    .await
    .unwrap();
    h.wait_for(&id, Duration::from_secs(5), |c| c["status"] == "running")
        .await;
    // The operator's token, with the `nodes` scope the operator gave it.
    let ops = Limits {
        scopes: Some(vec![Scope::Nodes]),
        ..Limits::default()
    };
    let (_, op) = tokens::create_limited(&h.state.db, Kind::Api, Some(&h.account.id), "ops", &ops)
        .await
        .unwrap();
    let (st, v) = h
        .call_as(Some(&op), "POST", &h.acc("nodes/edge9/revoke"), None)
        .await;
    assert_error(st, axum::http::StatusCode::NOT_FOUND, &v, 1003, "edge9");
    let start = Instant::now();
    let (st, v) = h
        .call_as(Some(&op), "POST", &h.acc("nodes/edge0/revoke"), None)
        .await;
    assert_eq!(st, axum::http::StatusCode::OK, "{v}");
    assert!(v["result"]["revoked"].is_string(), "{v}");
    let got = until_closed(&mut a, Duration::from_secs(1)).await;
    assert!(start.elapsed() < Duration::from_secs(1));
    assert!(
        got.iter()
            .any(|m| matches!(m, ServerMsg::Refused { reason } if reason.contains("node revoked"))),
        "{got:?}"
    );
    let c = h
        .wait_for(&id, Duration::from_secs(5), |c| c["status"] == "failed")
        .await;
    let part = &c["node_results"][0];
    assert!(
        part["error_message"]
            .as_str()
            .unwrap_or("")
            .contains("node revoked"),
        "{c}"
    );
    // It cannot come back; another credential cannot take the name either.
    let e = dial(&s, "edge0", &cred(1), Some(&h.agent_token))
        .await
        .err()
        .unwrap();
    assert!(e.contains("401") && e.contains("node revoked"), "{e}");
    let e = dial(&s, "edge0", &cred(2), Some(&h.agent_token))
        .await
        .err()
        .unwrap();
    assert!(e.contains("bound to another node credential"), "{e}");
    // Forgotten, the name is free for a new enrolment.
    assert_eq!(
        identities::forget(&h.state.db, "edge0").await.unwrap(),
        identities::Forgot::Done
    );
    // (Once the server's next poll has seen it; until then it asks the node to retry.)
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let fresh = dial(&s, "edge0", &cred(2), Some(&h.agent_token)).await;
        if welcomed(&fresh) {
            break;
        }
        assert!(Instant::now() < until, "{:?}", fresh.as_ref().err());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    s.stop().await;
}

async fn a_node_revoked_elsewhere_is_cut_off_by_the_poll(b: Backend) {
    let Some(h) = Harness::new(b).await else {
        return;
    };
    let s = Server::start(h.state.clone()).await;
    let (mut a, _) = dial(&s, "edge0", &cred(1), Some(&h.agent_token))
        .await
        .unwrap();
    let (_other, _) = dial(&s, "edge1", &cred(2), Some(&h.agent_token))
        .await
        .unwrap();
    // As `edgecap admin node revoke` or another replica would: in the database only.
    let start = Instant::now();
    assert!(
        identities::revoke(&h.state.db, "edge0")
            .await
            .unwrap()
            .is_some()
    );
    until_closed(&mut a, Duration::from_secs(1)).await;
    assert!(start.elapsed() < Duration::from_secs(1));
    // The other node is untouched.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(h.state.hub.live_nodes().len(), 1);
    assert_eq!(h.state.hub.live_nodes()[0].info.name, "edge1");
    s.stop().await;
}
