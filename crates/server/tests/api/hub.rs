//! The agent hub over real WebSockets: a listening server (`run`) and simulated agents that
//! speak the protocol.

use std::time::{Duration, Instant};

use edgecap_model::{AgentMsg, Outcome, ServerMsg};
use edgecap_server::sim::{SimAgent, hello};
use edgecap_server::{AppState, Config};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::both_databases;
use crate::common::{Backend, Harness, call, test_config};

both_databases!(
    dispatch_ack_progress_and_done,
    stop_reaches_the_agent,
    a_part_is_assigned_once_when_a_create_races_a_hello,
    a_lost_node_fails_after_the_grace_period,
    a_node_back_within_grace_keeps_its_capture,
    a_node_back_without_its_capture_fails_it,
    outcomes_delivered_in_hello_are_recorded,
    duplicate_names_are_refused,
    unacknowledged_parts_are_assigned_again,
    silent_agents_are_disconnected,
    hello_comes_first_and_tokens_are_checked,
    captures_survive_a_server_restart,
);

/// A server listening on 127.0.0.1 until stopped.
struct Server {
    base: String,
    state: AppState,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<edgecap_server::Result<()>>,
}

impl Server {
    async fn start(state: AppState) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(edgecap_server::run(listener, state.clone(), async move {
            let _ = rx.await;
        }));
        Server {
            base,
            state,
            stop: Some(tx),
            task,
        }
    }

    async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("server stops within 10 s")
            .expect("server task")
            .expect("server result");
    }
}

fn hub_config() -> Config {
    Config {
        heartbeat_timeout: Duration::from_secs(60),
        ..test_config()
    }
}

async fn setup(b: Backend) -> Option<(Harness, Server)> {
    let h = Harness::with_config(b, hub_config()).await?;
    let server = Server::start(h.state.clone()).await;
    Some((h, server))
}

async fn agent(h: &Harness, s: &Server, name: &str) -> SimAgent {
    agent_with(h, s, name, vec![], vec![]).await
}

async fn agent_with(
    h: &Harness,
    s: &Server,
    name: &str,
    running: Vec<String>,
    finished: Vec<Outcome>,
) -> SimAgent {
    let mut msg = hello(name, &[("site", "fra")], &["pre-firewall", "egress"]);
    if let AgentMsg::Hello {
        running: r,
        finished: f,
        ..
    } = &mut msg
    {
        *r = running;
        *f = finished;
    }
    let (a, first) = SimAgent::connect(&s.base, &h.agent_token, &msg)
        .await
        .unwrap();
    assert_eq!(
        first,
        ServerMsg::Welcome {
            heartbeat_secs: 2.0
        }
    );
    a
}

async fn expect(a: &mut SimAgent) -> ServerMsg {
    a.recv_within(Duration::from_secs(2))
        .await
        .unwrap()
        .expect("a message within 2 s")
}

async fn expect_assign(a: &mut SimAgent) -> String {
    match expect(a).await {
        ServerMsg::Assign { assignment } => assignment.capture_id,
        other => panic!("expected assign, got {other:?}"),
    }
}

/// Waits until the named node is connected to `state`'s hub (a hello is being handled).
async fn until_connected(state: &AppState, name: &str) {
    for _ in 0..100 {
        if state.hub.live_nodes().iter().any(|n| n.info.name == name) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{name} never connected");
}

async fn create(h: &Harness, state: &AppState, extra: Value) -> String {
    let body = h.create_body("fra", extra);
    let (s, v) = call(state, Some(&h.token), "POST", &h.acc("pcaps"), Some(&body)).await;
    assert!(s.is_success(), "{v}");
    v["result"]["id"].as_str().unwrap().to_owned()
}

async fn get(h: &Harness, state: &AppState, id: &str) -> Value {
    state.hub.barrier().await;
    let (_, v) = call(
        state,
        Some(&h.token),
        "GET",
        &h.acc(&format!("pcaps/{id}")),
        None,
    )
    .await;
    v["result"].clone()
}

async fn wait(
    h: &Harness,
    state: &AppState,
    id: &str,
    secs: u64,
    f: impl Fn(&Value) -> bool,
) -> Value {
    let until = Instant::now() + Duration::from_secs(secs);
    loop {
        let c = get(h, state, id).await;
        if f(&c) || Instant::now() > until {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn done(id: &str, packets: u64, reason: &str) -> AgentMsg {
    AgentMsg::Done {
        outcome: outcome(id, packets, reason),
    }
}

fn outcome(id: &str, packets: u64, reason: &str) -> Outcome {
    Outcome {
        capture_id: id.to_owned(),
        ok: true,
        error: None,
        packets,
        bytes: packets * 64,
        lost: 0,
        stop_reason: Some(reason.into()),
        file: Some(format!("{id}/edge.pcapng")),
    }
}

async fn dispatch_ack_progress_and_done(b: Backend) {
    let Some((h, s)) = setup(b).await else { return };
    let mut a0 = agent(&h, &s, "edge0").await;
    let mut a1 = agent(&h, &s, "edge1").await;
    let id = create(&h, &s.state, json!({"packet_limit": 100})).await;
    for a in [&mut a0, &mut a1] {
        match expect(a).await {
            ServerMsg::Assign { assignment } => {
                assert_eq!(assignment.capture_id, id);
                assert_eq!(assignment.packet_limit, Some(50));
                assert_eq!(
                    assignment.filter_v1,
                    json!({"protocol": 17, "destination_port": 53})
                );
            }
            other => panic!("{other:?}"),
        }
        a.send(&AgentMsg::Ack {
            capture_id: id.clone(),
        })
        .await
        .unwrap();
    }
    // Both acks may sit in the writer's batch a while: wait for what the assertion needs,
    // every node running, not just the last one acked.
    let c = wait(&h, &s.state, &id, 5, |c| c["status"] == "running").await;
    assert_eq!(c["status"], "running", "{c}");
    a0.send(&AgentMsg::Progress {
        capture_id: id.clone(),
        packets: 7,
        bytes: 448,
        lost: 0,
    })
    .await
    .unwrap();
    let c = wait(&h, &s.state, &id, 2, |c| c["packets_captured"] == 7).await;
    assert_eq!(c["packets_captured"], 7);
    // The flush timer writes progress to the database (every 200 ms in tests): wait for it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while stored_packets(&h, &s.state, &id).await != 7 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(stored_packets(&h, &s.state, &id).await, 7);
    a0.send(&done(&id, 50, "packet-limit")).await.unwrap();
    a1.send(&done(&id, 50, "packet-limit")).await.unwrap();
    let c = wait(&h, &s.state, &id, 2, |c| c["status"] == "success").await;
    assert_eq!(c["status"], "success", "{c}");
    assert_eq!(c["packets_captured"], 100);
    s.stop().await;
}

/// Packets as the database holds them (no live overlay).
async fn stored_packets(h: &Harness, state: &AppState, id: &str) -> u64 {
    let c = edgecap_server::db::captures::get(&state.db, &h.account.id, id)
        .await
        .unwrap()
        .unwrap();
    c.node_results.iter().map(|r| r.packets).sum()
}

/// How fast a stop arrives is measured by `edgecap bench dispatch` (stop -> every agent
/// stopped); this test shows that it arrives, and what the capture records.
async fn stop_reaches_the_agent(b: Backend) {
    let Some((h, s)) = setup(b).await else { return };
    let mut a0 = agent(&h, &s, "edge0").await;
    let id = create(&h, &s.state, json!({})).await;
    assert_eq!(expect_assign(&mut a0).await, id);
    a0.send(&AgentMsg::Ack {
        capture_id: id.clone(),
    })
    .await
    .unwrap();
    let (st, v) = call(
        &s.state,
        Some(&h.token),
        "PUT",
        &h.acc(&format!("pcaps/{id}/stop")),
        None,
    )
    .await;
    assert!(st.is_success(), "{v}");
    assert_eq!(
        expect(&mut a0).await,
        ServerMsg::Stop {
            capture_id: id.clone()
        }
    );
    a0.send(&done(&id, 3, "stopped")).await.unwrap();
    let c = wait(&h, &s.state, &id, 2, |c| c["status"] == "success").await;
    assert_eq!(c["status"], "success");
    assert!(c["stop_requested"].is_string());
    assert_eq!(c["node_results"][0]["stop_reason"], "stopped");
    s.stop().await;
}

/// Regression: a node that connected just before a create was assigned the part by the create
/// and again by the reconciliation of its hello (seen as a second `assign` where a test expected
/// `stop`). Replayed here in a fixed order: the create's assign, then the hello's reconciliation.
async fn a_part_is_assigned_once_when_a_create_races_a_hello(b: Backend) {
    let Some(h) = Harness::new(b).await else {
        return;
    };
    let mut e0 = h.node("edge0", &[("site", "fra")], &["pre-firewall"]);
    let id = h.create("fra", json!({})).await;
    match e0.next().await {
        ServerMsg::Assign { assignment } => assert_eq!(assignment.capture_id, id),
        other => panic!("expected assign, got {other:?}"),
    }
    e0.session.reconcile(vec![], vec![]).await.unwrap();
    e0.assert_idle();
    // A new connection of the same node is a new agent session: it is assigned again.
    drop(e0);
    let mut e0 = h.node("edge0", &[("site", "fra")], &["pre-firewall"]);
    e0.session.reconcile(vec![], vec![]).await.unwrap();
    match e0.next().await {
        ServerMsg::Assign { assignment } => assert_eq!(assignment.capture_id, id),
        other => panic!("expected assign, got {other:?}"),
    }
    e0.assert_idle();
}

async fn a_lost_node_fails_after_the_grace_period(b: Backend) {
    let Some((h, s)) = setup(b).await else { return };
    let mut a0 = agent(&h, &s, "edge0").await;
    let mut a1 = agent(&h, &s, "edge1").await;
    let id = create(&h, &s.state, json!({})).await;
    for a in [&mut a0, &mut a1] {
        expect_assign(a).await;
        a.send(&AgentMsg::Ack {
            capture_id: id.clone(),
        })
        .await
        .unwrap();
    }
    wait(&h, &s.state, &id, 2, |c| {
        c["node_results"][1]["status"] == "running"
    })
    .await;
    let t = Instant::now();
    a1.abort();
    // Within the grace period (1 s) the part still runs.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        get(&h, &s.state, &id).await["node_results"][1]["status"],
        "running"
    );
    let c = wait(&h, &s.state, &id, 4, |c| {
        c["node_results"][1]["status"] == "failed"
    })
    .await;
    assert!(t.elapsed() >= Duration::from_secs(1));
    assert_eq!(
        c["node_results"][1]["error_message"],
        "node edge1 disconnected and did not return within 1s"
    );
    assert_eq!(c["status"], "running");
    a0.send(&done(&id, 5, "time-limit")).await.unwrap();
    let c = wait(&h, &s.state, &id, 2, |c| c["status"] == "failed").await;
    assert_eq!(
        c["error_message"],
        "failed on 1 of 2 nodes: edge1: node edge1 disconnected and did not return within 1s"
    );
    s.stop().await;
}

async fn a_node_back_within_grace_keeps_its_capture(b: Backend) {
    let Some((h, s)) = setup(b).await else { return };
    let mut a0 = agent(&h, &s, "edge0").await;
    let id = create(&h, &s.state, json!({})).await;
    expect_assign(&mut a0).await;
    a0.send(&AgentMsg::Ack {
        capture_id: id.clone(),
    })
    .await
    .unwrap();
    wait(&h, &s.state, &id, 2, |c| c["status"] == "running").await;
    a0.abort();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut a0 = agent_with(&h, &s, "edge0", vec![id.clone()], vec![]).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let c = get(&h, &s.state, &id).await;
    assert_eq!(c["node_results"][0]["status"], "running", "{c}");
    a0.send(&done(&id, 9, "time-limit")).await.unwrap();
    let c = wait(&h, &s.state, &id, 2, |c| c["status"] == "success").await;
    assert_eq!(c["packets_captured"], 9);
    s.stop().await;
}

async fn a_node_back_without_its_capture_fails_it(b: Backend) {
    let Some((h, s)) = setup(b).await else { return };
    let mut a0 = agent(&h, &s, "edge0").await;
    let id = create(&h, &s.state, json!({})).await;
    expect_assign(&mut a0).await;
    a0.send(&AgentMsg::Ack {
        capture_id: id.clone(),
    })
    .await
    .unwrap();
    wait(&h, &s.state, &id, 2, |c| c["status"] == "running").await;
    a0.abort();
    let _a0 = agent(&h, &s, "edge0").await;
    let c = wait(&h, &s.state, &id, 2, |c| c["status"] == "failed").await;
    assert_eq!(
        c["node_results"][0]["error_message"],
        "node restarted and lost the capture"
    );
    s.stop().await;
}

async fn outcomes_delivered_in_hello_are_recorded(b: Backend) {
    let Some((h, s)) = setup(b).await else { return };
    let mut a0 = agent(&h, &s, "edge0").await;
    let id = create(&h, &s.state, json!({})).await;
    expect_assign(&mut a0).await;
    a0.send(&AgentMsg::Ack {
        capture_id: id.clone(),
    })
    .await
    .unwrap();
    a0.abort();
    let _a0 = agent_with(
        &h,
        &s,
        "edge0",
        vec![],
        vec![outcome(&id, 11, "packet-limit")],
    )
    .await;
    let c = wait(&h, &s.state, &id, 2, |c| c["status"] == "success").await;
    assert_eq!(c["status"], "success", "{c}");
    assert_eq!(c["packets_captured"], 11);
    s.stop().await;
}

async fn duplicate_names_are_refused(b: Backend) {
    let Some((h, s)) = setup(b).await else { return };
    let _a0 = agent(&h, &s, "edge0").await;
    let (mut dup, first) = SimAgent::connect(&s.base, &h.agent_token, &hello("edge0", &[], &[]))
        .await
        .unwrap();
    match first {
        ServerMsg::Refused { reason } => assert!(reason.contains("already connected"), "{reason}"),
        other => panic!("expected refused, got {other:?}"),
    }
    assert_eq!(
        dup.recv_within(Duration::from_secs(2)).await.unwrap(),
        None,
        "closed"
    );
    // The first connection is untouched.
    assert_eq!(s.state.hub.live_nodes().len(), 1);
    s.stop().await;
}

async fn unacknowledged_parts_are_assigned_again(b: Backend) {
    let Some((h, s)) = setup(b).await else { return };
    let mut a0 = agent(&h, &s, "edge0").await;
    let id = create(&h, &s.state, json!({})).await;
    assert_eq!(expect_assign(&mut a0).await, id);
    a0.abort();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut a0 = agent(&h, &s, "edge0").await;
    assert_eq!(expect_assign(&mut a0).await, id);
    a0.send(&AgentMsg::Ack {
        capture_id: id.clone(),
    })
    .await
    .unwrap();
    let c = wait(&h, &s.state, &id, 2, |c| c["status"] == "running").await;
    assert_eq!(c["status"], "running");
    s.stop().await;
}

async fn silent_agents_are_disconnected(b: Backend) {
    let config = Config {
        heartbeat_timeout: Duration::from_millis(800),
        ..test_config()
    };
    let Some(h) = Harness::with_config(b, config).await else {
        return;
    };
    let s = Server::start(h.state.clone()).await;
    let mut a0 = agent(&h, &s, "edge0").await;
    // Heartbeats keep it.
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        a0.send(&AgentMsg::Heartbeat { health: None })
            .await
            .unwrap();
    }
    assert_eq!(s.state.hub.live_nodes().len(), 1);
    // Silence loses it.
    assert_eq!(a0.recv_within(Duration::from_secs(3)).await.unwrap(), None);
    assert!(s.state.hub.live_nodes().is_empty());
    s.stop().await;
}

async fn hello_comes_first_and_tokens_are_checked(b: Backend) {
    let Some((h, s)) = setup(b).await else { return };
    let (_, first) = SimAgent::connect(
        &s.base,
        &h.agent_token,
        &AgentMsg::Heartbeat { health: None },
    )
    .await
    .unwrap();
    assert!(
        matches!(first, ServerMsg::Refused { ref reason } if reason.contains("hello")),
        "{first:?}"
    );
    // The name is checked with the credential, before the upgrade.
    let e = SimAgent::connect(&s.base, &h.agent_token, &hello("bad name", &[], &[]))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("401"), "{e}");
    for token in [h.token.as_str(), "eca_wrong"] {
        let e = SimAgent::connect(&s.base, token, &hello("edge0", &[], &[]))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("401"), "{e}");
    }
    assert!(s.state.hub.live_nodes().is_empty());
    s.stop().await;
}

async fn captures_survive_a_server_restart(b: Backend) {
    let Some((h, s)) = setup(b).await else { return };
    let mut a0 = agent(&h, &s, "edge0").await;
    let mut a1 = agent(&h, &s, "edge1").await;
    let id = create(&h, &s.state, json!({})).await;
    for a in [&mut a0, &mut a1] {
        expect_assign(a).await;
        a.send(&AgentMsg::Ack {
            capture_id: id.clone(),
        })
        .await
        .unwrap();
    }
    wait(&h, &s.state, &id, 2, |c| {
        c["node_results"][1]["status"] == "running"
    })
    .await;
    s.stop().await;
    // The agents see the server go away.
    assert_eq!(
        a0.recv_within(Duration::from_secs(2)).await.ok().flatten(),
        None
    );
    drop(a1);
    // A new server process on the same database.
    let state = AppState::open(&h.db_url, hub_config()).await.unwrap();
    let s2 = Server::start(state).await;
    let c = get(&h, &s2.state, &id).await;
    assert_eq!(c["status"], "running");
    let mut a0 = agent_with(&h, &s2, "edge0", vec![id.clone()], vec![]).await;
    until_connected(&s2.state, "edge0").await;
    a0.send(&done(&id, 4, "time-limit")).await.unwrap();
    let c = wait(&h, &s2.state, &id, 2, |c| {
        c["node_results"][0]["status"] == "success"
    })
    .await;
    assert_eq!(c["node_results"][0]["status"], "success");
    // edge1 never comes back: it fails after the grace period, counted from the restart.
    let c = wait(&h, &s2.state, &id, 4, |c| c["status"] == "failed").await;
    assert_eq!(
        c["node_results"][1]["error_message"],
        "node edge1 did not reconnect within 1s after the server restarted"
    );
    assert_eq!(c["packets_captured"], 4);
    s2.stop().await;
}

/// The next message about a capture (the observer's account lists, `ServerMsg::Accounts`,
/// which the hub sends every node when it connects, are passed over).
async fn next_of_capture(a: &mut SimAgent) -> ServerMsg {
    loop {
        match expect(a).await {
            ServerMsg::Accounts { .. } => continue,
            other => return other,
        }
    }
}

/// Replicas (PostgreSQL only): two server processes' hubs on one database. A capture created
/// through one reaches the other's node (NOTIFY), a stop through the other reaches both, a
/// third replica that starts meanwhile fails nothing of nodes connected to the live ones, and
/// each holds its lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_on_postgresql_share_nodes_dispatch_and_spare_each_others_nodes() {
    let Some((h, s1)) = setup(Backend::Postgres).await else {
        return;
    };
    let mut a0 = agent(&h, &s1, "edge0").await;
    until_connected(&s1.state, "edge0").await;
    let s2 = Server::start(AppState::open(&h.db_url, hub_config()).await.unwrap()).await;
    let mut a1 = agent(&h, &s2, "edge1").await;
    until_connected(&s2.state, "edge1").await;
    assert!(s1.state.hub.lease_held() && s2.state.hub.lease_held());
    assert_ne!(s1.state.hub.replica_id(), s2.state.hub.replica_id());
    // The writer records the sessions; then either replica sees both nodes.
    s1.state.hub.barrier().await;
    s2.state.hub.barrier().await;
    for s in [&s1, &s2] {
        let names: Vec<String> = s
            .state
            .hub
            .fleet_nodes()
            .await
            .unwrap()
            .into_iter()
            .map(|n| n.info.name)
            .collect();
        assert_eq!(names, ["edge0", "edge1"]);
    }
    let id = create(&h, &s2.state, json!({})).await;
    for a in [&mut a0, &mut a1] {
        match next_of_capture(a).await {
            ServerMsg::Assign { assignment } => assert_eq!(assignment.capture_id, id),
            other => panic!("expected assign, got {other:?}"),
        }
        a.send(&AgentMsg::Ack {
            capture_id: id.clone(),
        })
        .await
        .unwrap();
    }
    let c = wait(&h, &s1.state, &id, 3, |c| {
        c["node_results"]
            .as_array()
            .is_some_and(|r| r.iter().all(|p| p["status"] == "running"))
    })
    .await;
    assert_eq!(c["node_results"].as_array().unwrap().len(), 2, "{c:#}");
    // A third replica starts: after several grace periods both parts still run.
    let s3 = Server::start(AppState::open(&h.db_url, hub_config()).await.unwrap()).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let c = get(&h, &s3.state, &id).await;
    assert_eq!(c["status"], "running", "{c:#}");
    // Stopped through the first: both agents hear it.
    let (s, v) = call(
        &s1.state,
        Some(&h.token),
        "PUT",
        &h.acc(&format!("pcaps/{id}/stop")),
        None,
    )
    .await;
    assert!(s.is_success(), "{v}");
    for a in [&mut a0, &mut a1] {
        match next_of_capture(a).await {
            ServerMsg::Stop { capture_id } => assert_eq!(capture_id, id),
            other => panic!("expected stop, got {other:?}"),
        }
    }
    s3.stop().await;
    s2.stop().await;
    s1.stop().await;
}

/// A replica that cannot renew its lease (here: its table is out of reach) closes its agents'
/// sessions and refuses new ones, saying why, until a renewal succeeds again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_loses_its_lease_lets_its_agents_go() {
    let Some((h, s1)) = setup(Backend::Postgres).await else {
        return;
    };
    let _a0 = agent(&h, &s1, "edge0").await;
    until_connected(&s1.state, "edge0").await;
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&h.db_url).await.unwrap();
    sqlx::raw_sql("ALTER TABLE replicas RENAME TO replicas_away")
        .execute(&pool)
        .await
        .unwrap();
    let until = Instant::now() + Duration::from_secs(10);
    while !s1.state.hub.live_nodes().is_empty() && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        s1.state.hub.live_nodes().is_empty(),
        "edge0 kept its session"
    );
    assert!(!s1.state.hub.lease_held());
    let (status, body) = call(&s1.state, None, "GET", "/readyz", None).await;
    assert_eq!(status.as_u16(), 503, "{body}");
    assert!(body.to_string().contains("lease"), "{body}");
    let msg = hello("edge0", &[("site", "fra")], &["pre-firewall"]);
    let (_, first) = SimAgent::connect(&s1.base, &h.agent_token, &msg)
        .await
        .unwrap();
    match first {
        ServerMsg::Refused { reason } => assert!(reason.contains("lease lost"), "{reason}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    sqlx::raw_sql("ALTER TABLE replicas_away RENAME TO replicas")
        .execute(&pool)
        .await
        .unwrap();
    let until = Instant::now() + Duration::from_secs(5);
    while !s1.state.hub.lease_held() && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_a0, first) = SimAgent::connect(&s1.base, &h.agent_token, &msg)
        .await
        .unwrap();
    assert!(matches!(first, ServerMsg::Welcome { .. }), "{first:?}");
    pool.close().await;
    s1.stop().await;
}

/// A replica whose database pool is taken by slow work (here: API queries waiting on a locked
/// rollup table, more of them than the pool has connections) still renews its lease: the
/// renewal has a connection of its own, so a busy database never makes a replica drop its
/// agents as "lease lost".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_keeps_its_lease_while_its_pool_is_busy() {
    let Some((h, s1)) = setup(Backend::Postgres).await else {
        return;
    };
    let until = Instant::now() + Duration::from_secs(5);
    while !s1.state.hub.lease_held() && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(s1.state.hub.lease_held());
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&h.db_url).await.unwrap();
    let mut lock = pool.begin().await.unwrap();
    sqlx::raw_sql("LOCK TABLE rollup_seconds IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .unwrap();
    // More queries than the pool's 8 connections, each holding one while it waits.
    let path = h.acc("traffic?since=-5m&step=1s");
    let waiting: Vec<_> = (0..12)
        .map(|_| {
            let (state, token, path) = (h.state.clone(), h.token.clone(), path.clone());
            tokio::spawn(async move { call(&state, Some(&token), "GET", &path, None).await })
        })
        .collect();
    // Past a whole lease (5 s) and then some: the lease holds all along.
    let until = Instant::now() + Duration::from_secs(8);
    while Instant::now() < until {
        assert!(
            s1.state.hub.lease_held(),
            "the lease lapsed while the pool was busy"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    lock.rollback().await.unwrap();
    for w in waiting {
        let (status, body) = w.await.unwrap();
        assert!(status.is_success(), "{body}");
    }
    assert!(s1.state.hub.lease_held());
    pool.close().await;
    s1.stop().await;
}
