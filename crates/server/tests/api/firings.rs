//! Triggers at work on the server (issue 14): agents announcing `triggers` are sent the
//! triggers whose scope selects them, with their local share of the budget (among every node
//! the server knows in scope, connected or not), and again after every change (on any
//! replica); beyond its share an agent asks, and the server grants from the trigger's pool,
//! never more than it holds however many nodes ask at once (on any replica); what agents
//! report when a trigger fires, ends or yields a signature becomes captures and events,
//! within the budget, per account.

use std::net::IpAddr;
use std::time::Duration;

use axum::http::StatusCode;
use edgecap_model::firing::{
    AgentTrigger, Ask, Ending, FEATURE_TRIGGERS, FiredCapture, Grant, Signed,
};
use edgecap_model::protocol::FEATURE_BOUNDARY;
use edgecap_model::{AgentMsg, Outcome, ServerMsg};
use edgecap_server::AppState;
use edgecap_server::sim::{SimAgent, firing, hello_with_triggers};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::both_databases;
use crate::common::{
    Backend, FakeNode, Harness, assert_error, assert_field_error, node_info, node_on,
    restricted_account, test_config,
};

both_databases!(
    nodes_in_scope_get_their_triggers_and_every_change,
    a_firing_becomes_a_capture_and_an_event,
    nodes_firing_for_one_key_are_one_event,
    a_capture_no_grant_covers_beyond_the_shares_is_stopped_and_the_event_says_so,
    concurrent_asks_never_grant_more_than_the_pool,
    hostile_reports_change_nothing,
    a_capture_whose_fired_report_was_dropped_is_logged_and_counted_not_recorded,
    bad_event_queries_name_the_field,
    a_restricted_accounts_trigger_goes_only_to_its_nodes_with_its_prefixes,
    a_node_is_sent_at_most_max_agent_triggers_the_oldest,
);

/// A trigger body watching site `fra` with `bytes_per_day`.
pub fn trigger_body(h: &Harness, bytes_per_day: u64, captures_per_hour: u64) -> Value {
    json!({
        "name": "udp flood",
        "scope": {"filter_v1": {"protocol": 17}, "colo_name": "fra"},
        "condition": {"metric": "packets_per_second", "per": "destination", "above": 50000},
        "capture": {"time_limit": 30, "packet_limit": 5000, "byte_limit": 1000,
                    "destination_conf": h.file_dest()},
        "budget": {"captures_per_hour": captures_per_hour, "bytes_per_day": bytes_per_day},
    })
}

/// Creates a trigger through `state`'s API; its id.
pub async fn add_trigger(h: &Harness, state: &AppState, body: &Value) -> String {
    let (s, v) = crate::common::call(
        state,
        Some(&h.token),
        "POST",
        &h.acc("pcaps/triggers"),
        Some(&body.to_string()),
    )
    .await;
    assert!(s.is_success(), "{v}");
    v["result"]["id"].as_str().unwrap().to_owned()
}

/// A node of site `site` whose agent evaluates triggers.
pub fn trigger_node(state: &AppState, name: &str, site: &str) -> FakeNode {
    let mut info = node_info(name, &[("site", site)], &["pre-firewall", "egress"]);
    info.features = vec![FEATURE_BOUNDARY.into(), FEATURE_TRIGGERS.into()];
    node_on(state, info)
}

/// The next trigger list sent to `n` that satisfies `f` (earlier lists are passed over),
/// within 15 s.
pub async fn triggers_until(
    n: &mut FakeNode,
    f: impl Fn(&[AgentTrigger]) -> bool,
) -> Vec<AgentTrigger> {
    let until = tokio::time::Instant::now() + Duration::from_secs(15);
    let mut last = None;
    loop {
        let left = until.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, n.rx.recv()).await {
            Ok(Some(ServerMsg::Triggers { triggers, .. })) => {
                if f(&triggers) {
                    return triggers;
                }
                last = Some(triggers);
            }
            Ok(Some(_)) => continue,
            Ok(None) => panic!("{} closed", n.session.name()),
            Err(_) => panic!(
                "{}: no such trigger list within 15 s; the last was {last:?}",
                n.session.name()
            ),
        }
    }
}

/// No trigger list reaches `n` for `d`.
pub async fn no_triggers_for(n: &mut FakeNode, d: Duration) {
    let until = tokio::time::Instant::now() + d;
    loop {
        let left = until.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, n.rx.recv()).await {
            Ok(Some(ServerMsg::Triggers { triggers, .. })) => {
                panic!("{} was sent triggers: {triggers:?}", n.session.name())
            }
            Ok(Some(_)) => continue,
            Ok(None) | Err(_) => return,
        }
    }
}

async fn nodes_in_scope_get_their_triggers_and_every_change(b: Backend) {
    let Some(h) = Harness::new(b).await else {
        return;
    };
    let _timers = h.state.hub.start().await.unwrap();
    let mut e0 = trigger_node(&h.state, "edge0", "fra");
    let mut e1 = trigger_node(&h.state, "edge1", "fra");
    let mut far = trigger_node(&h.state, "edge9", "ams");
    // An agent from before triggers is never sent any.
    let mut old = h.node("edge2", &[("site", "fra")], &["pre-firewall", "egress"]);
    // A new connection is told its list, even empty (an agent keeps its triggers while the
    // server is away).
    for n in [&mut e0, &mut e1, &mut far] {
        triggers_until(n, <[_]>::is_empty).await;
    }
    let id = add_trigger(&h, &h.state, &trigger_body(&h, 1001, 4)).await;
    let mut shares = Vec::new();
    for n in [&mut e0, &mut e1] {
        let list = triggers_until(n, |l| l.len() == 1).await;
        let t = &list[0];
        assert_eq!(t.id, id);
        assert_eq!(t.account_id, h.account.id);
        assert_eq!(t.trigger.scope.colo_name.as_deref(), Some("fra"));
        assert_eq!(t.trigger.capture.destination_conf, h.file_dest());
        assert_eq!(t.trigger.budget.captures_per_hour, 4);
        assert!(t.credentials.is_none() && t.prefixes.is_none(), "{t:?}");
        shares.push((t.budget.captures_per_hour, t.budget.bytes_per_day));
    }
    // Three nodes of site fra may evaluate it: edge0 and edge1, and edge2, whose agent does
    // not evaluate triggers now (it gets none) but keeps a share, as the server cannot know
    // what it ran before. Half the day's bytes (500 of 1001) and half the hourly captures (2
    // of 4; the rest of each is granted on request) are split among the three: edge0 and
    // edge1 get 167 bytes and 1 capture each, edge2's 166 and 0 go unused.
    assert_eq!(shares, [(1, 167), (1, 167)]);
    no_triggers_for(&mut far, Duration::from_millis(500)).await;
    no_triggers_for(&mut old, Duration::from_millis(100)).await;
    // A node leaving keeps its share (its agent may still spend it while away): the other's
    // does not grow, however long it is gone.
    drop(e1);
    h.state.hub.barrier().await;
    no_triggers_for(&mut e0, edgecap_server::hub::triggers::POLL * 2).await;
    // A node seen for the first time in scope takes its share from the others': four nodes
    // now, 500 bytes as 125 x 4, the 2 captures to the first two by name. The others' fall
    // at once; the new node's wait until the split settles (hub/splits.rs): 0 for now.
    let mut e3 = trigger_node(&h.state, "edge3", "fra");
    let l0 = triggers_until(&mut e0, |l| {
        l.len() == 1 && l[0].budget.bytes_per_day == 125
    })
    .await;
    assert_eq!(l0[0].budget.captures_per_hour, 1);
    let l3 = triggers_until(&mut e3, |l| l.len() == 1).await;
    assert_eq!(
        (l3[0].budget.captures_per_hour, l3[0].budget.bytes_per_day),
        (0, 0)
    );
    // Deleted: the node is told it has none.
    let (s, v) = h
        .call("DELETE", &h.acc(&format!("pcaps/triggers/{id}")), None)
        .await;
    assert!(s.is_success(), "{v}");
    triggers_until(&mut e0, <[_]>::is_empty).await;
    no_triggers_for(&mut far, Duration::from_millis(300)).await;
}

/// Replicas (PostgreSQL): a trigger created through one replica reaches the nodes of the
/// other, its budget split across both replicas' nodes; a delete through the other reaches
/// both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn triggers_reach_the_nodes_of_every_replica() {
    let Some(h) = Harness::new(Backend::Postgres).await else {
        return;
    };
    let _t1 = h.state.hub.start().await.unwrap();
    let s2 = AppState::open(&h.db_url, crate::common::test_config())
        .await
        .unwrap();
    let _t2 = s2.hub.start().await.unwrap();
    let mut a = trigger_node(&h.state, "edge0", "fra");
    let mut b = trigger_node(&s2, "edge1", "fra");
    for n in [&mut a, &mut b] {
        triggers_until(n, <[_]>::is_empty).await;
    }
    h.state.hub.barrier().await;
    s2.hub.barrier().await;
    let id = add_trigger(&h, &h.state, &trigger_body(&h, 1001, 4)).await;
    // Each sees the other replica's node: a share of at most half the local half.
    let la = triggers_until(&mut a, |l| l.len() == 1 && l[0].budget.bytes_per_day <= 250).await;
    let lb = triggers_until(&mut b, |l| l.len() == 1 && l[0].budget.bytes_per_day <= 250).await;
    assert_eq!(
        (la[0].id.as_str(), lb[0].id.as_str()),
        (id.as_str(), id.as_str())
    );
    assert_eq!(
        la[0].budget.bytes_per_day + lb[0].budget.bytes_per_day,
        500,
        "the local half of 1001"
    );
    let (s, v) = crate::common::call(
        &s2,
        Some(&h.token),
        "DELETE",
        &h.acc(&format!("pcaps/triggers/{id}")),
        None,
    )
    .await;
    assert!(s.is_success(), "{v}");
    triggers_until(&mut a, <[_]>::is_empty).await;
    triggers_until(&mut b, <[_]>::is_empty).await;
}

/// A server listening on 127.0.0.1 until stopped.
pub(crate) struct Server {
    pub(crate) base: String,
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

    pub(crate) async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
    }
}

pub(crate) async fn setup(b: Backend) -> Option<(Harness, Server)> {
    let config = edgecap_server::Config {
        heartbeat_timeout: Duration::from_secs(60),
        ..test_config()
    };
    let h = Harness::with_config(b, config).await?;
    let server = Server::start(h.state.clone()).await;
    Some((h, server))
}

/// A simulated agent of site `fra` evaluating triggers, once it has its list of `n`.
pub(crate) async fn sim(h: &Harness, s: &Server, name: &str, n: usize) -> SimAgent {
    let hello = hello_with_triggers(name, &[("site", "fra")], &["pre-firewall", "egress"]);
    let (mut a, first) = SimAgent::connect(&s.base, &h.agent_token, &hello)
        .await
        .unwrap();
    assert!(matches!(first, ServerMsg::Welcome { .. }), "{first:?}");
    sim_triggers(&mut a, |l| l.len() == n).await;
    a
}

/// The next trigger list a simulated agent is sent that satisfies `f`, within 15 s.
async fn sim_triggers(a: &mut SimAgent, f: impl Fn(&[AgentTrigger]) -> bool) -> Vec<AgentTrigger> {
    let until = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let left = until.saturating_duration_since(tokio::time::Instant::now());
        match a.recv_within(left).await.unwrap() {
            Some(ServerMsg::Triggers { triggers, .. }) if f(&triggers) => return triggers,
            Some(_) => continue,
            None => panic!("no such trigger list within 15 s"),
        }
    }
}

/// The next `stop` a simulated agent is sent, within 15 s.
async fn sim_stop(a: &mut SimAgent) -> Option<String> {
    let until = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let left = until.saturating_duration_since(tokio::time::Instant::now());
        match a.recv_within(left).await.unwrap() {
            Some(ServerMsg::Stop { capture_id }) => return Some(capture_id),
            Some(_) => continue,
            None => return None,
        }
    }
}

/// edge0's capture `c` of trigger `tid` ends (20 packets, 900 bytes, its file) and so does
/// its run, fired at `t - 5`, at `t` with a peak of 80,000.
pub(crate) async fn capture_and_run_end(a: &mut SimAgent, tid: &str, c: &str, t: u64) {
    a.send(&AgentMsg::Done {
        outcome: Outcome {
            capture_id: c.to_owned(),
            ok: true,
            error: None,
            packets: 20,
            bytes: 900,
            lost: 0,
            stop_reason: Some("byte-limit".into()),
            file: Some(format!("{c}/edge0.pcapng")),
        },
    })
    .await
    .unwrap();
    a.ended(Ending {
        trigger_id: tid.to_owned(),
        key: victim(),
        started: t - 5,
        ended: t,
        peak: 80000.0,
    })
    .await
    .unwrap();
}

/// Waits (15 s at most) until capture `id` of our account is recorded.
pub(crate) async fn recorded(h: &Harness, id: &str) {
    for _ in 0..300 {
        h.state.hub.barrier().await;
        let (s, _) = h.call("GET", &h.acc(&format!("pcaps/{id}")), None).await;
        if s == StatusCode::OK {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("capture {id} was never recorded");
}

pub(crate) fn now() -> u64 {
    edgecap_server::clock::unix_now() as u64
}

pub(crate) fn victim() -> Option<IpAddr> {
    Some("198.18.0.9".parse().unwrap())
}

/// The capture an agent starts for [`trigger_body`]'s trigger.
pub(crate) fn fired_capture() -> FiredCapture {
    FiredCapture {
        filter: "(udp) and dst host 198.18.0.9".into(),
        points: vec!["pre-firewall".into()],
        time_limit: 30.0,
        packet_limit: Some(5000),
        byte_limit: 1000,
        format: "pcapng".into(),
        pre_trigger_packets: 12,
    }
}

pub(crate) fn new_id() -> String {
    edgecap_server::secret::new_id()
}

/// The account's events (after the writer caught up), as `GET /events` answers.
async fn events(h: &Harness, token: &str, account: &str, query: &str) -> (StatusCode, Value) {
    h.state.hub.barrier().await;
    h.call_as(
        Some(token),
        "GET",
        &format!("/client/v4/accounts/{account}/events{query}"),
        None,
    )
    .await
}

async fn our_events(h: &Harness) -> Vec<Value> {
    let (s, v) = events(h, &h.token, &h.account.id, "").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["result"].as_array().unwrap().clone()
}

/// Polls our events until `f` holds (15 s at most); the last list.
async fn events_until(h: &Harness, f: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let until = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let list = our_events(h).await;
        if f(&list) || tokio::time::Instant::now() > until {
            return list;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn a_firing_becomes_a_capture_and_an_event(b: Backend) {
    let Some((h, s)) = setup(b).await else { return };
    let tid = add_trigger(&h, &h.state, &trigger_body(&h, 1_000_000, 4)).await;
    let mut a = sim(&h, &s, "edge0", 1).await;
    let c = new_id();
    let t = now();
    a.fired(firing(
        &tid,
        victim(),
        (t - 5, t - 2),
        70000.0,
        Some((&c, fired_capture())),
        None,
    ))
    .await
    .unwrap();
    a.send(&AgentMsg::Progress {
        capture_id: c.clone(),
        packets: 10,
        bytes: 640,
        lost: 0,
    })
    .await
    .unwrap();
    // The capture is the account's like any other: running on its node, with its progress.
    recorded(&h, &c).await;
    let cap = h
        .wait_for(&c, Duration::from_secs(15), |v| {
            v["node_results"][0]["packets"] == 10
        })
        .await;
    assert_eq!(cap["status"], "running", "{cap:#}");
    assert_eq!(cap["type"], "full");
    assert_eq!(cap["filter"], "(udp) and dst host 198.18.0.9");
    assert_eq!(cap["destination_conf"], h.file_dest());
    assert_eq!(cap["node_results"][0]["node"], "edge0");
    assert_eq!(cap["node_results"][0]["packets"], 10, "{cap:#}");
    assert_eq!(cap["byte_limit"], 1000);
    let (st, v) = h.call("GET", &h.acc("pcaps"), None).await;
    assert_eq!(st, StatusCode::OK);
    assert!(
        v["result"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["id"] == c.as_str()),
        "{v}"
    );
    // Its event: trigger, key, start, peak, the node, the capture.
    let list = events_until(&h, |l| l.len() == 1).await;
    assert_eq!(list.len(), 1, "{list:?}");
    let e = &list[0];
    assert_eq!(e["trigger_id"], tid.as_str());
    assert_eq!(e["trigger_name"], "udp flood");
    assert_eq!(e["key"], "198.18.0.9");
    assert_eq!(e["started"], edgecap_model::ids::rfc3339((t - 5) as f64));
    assert_eq!(e["peak"], 70000.0);
    assert!(e["ended"].is_null(), "{e}");
    assert_eq!(e["nodes"][0]["node"], "edge0");
    assert_eq!(e["captures"][0]["id"], c.as_str());
    assert_eq!(e["captures"][0]["status"], "running");
    assert_eq!(e["refused"], false);
    // Done, ended, signed: the event has its end, peak, file and signature.
    capture_and_run_end(&mut a, &tid, &c, t).await;
    let signature = serde_json::from_value(json!({
        "attack_packets": 20, "attack_skipped": 0, "baseline_packets": null,
        "fields": [], "mitigation": null, "note": "simulated"
    }))
    .unwrap();
    a.signed(Signed {
        trigger_id: tid.clone(),
        capture_id: c.clone(),
        signature,
    })
    .await
    .unwrap();
    let list = events_until(&h, |l| !l[0]["signature"].is_null()).await;
    let e = &list[0];
    assert_eq!(e["ended"], edgecap_model::ids::rfc3339(t as f64), "{e:#}");
    assert_eq!(e["peak"], 80000.0);
    assert_eq!(e["nodes"][0]["ended"], e["ended"]);
    assert_eq!(e["captures"][0]["status"], "success");
    assert_eq!(e["captures"][0]["file"], format!("{c}/edge0.pcapng"));
    assert_eq!(e["signature"]["note"], "simulated");
    let cap = h.capture(&c).await;
    assert_eq!(cap["status"], "success", "{cap:#}");
    assert_eq!(cap["packets_captured"], 20);
    // One event, by id; another account sees none of it.
    let id = e["id"].as_str().unwrap();
    let (st, v) = h.call("GET", &h.acc(&format!("events/{id}")), None).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["result"], *e);
    let (st, v) = events(&h, &h.other_token, &h.other.id, "").await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["result"], json!([]));
    assert_eq!(v["result_info"]["total_count"], 0);
    let (st, v) = events(&h, &h.other_token, &h.other.id, &format!("/{id}")).await;
    assert_error(st, StatusCode::NOT_FOUND, &v, 1003, "no event");
    let (st, _) = events(&h, &h.other_token, &h.account.id, "").await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    // Filters: by trigger, by time.
    for (query, n) in [
        (format!("?trigger_id={tid}"), 1),
        (format!("?trigger_id={}", new_id()), 0),
        (format!("?since={}", t - 5), 1),
        (format!("?since={}", t - 4), 0),
        (format!("?until={}", t - 5), 0),
        ("?since=-1h&until=now&page=1&per_page=10".to_owned(), 1),
        ("?page=2".to_owned(), 0),
    ] {
        let (st, v) = events(&h, &h.token, &h.account.id, &query).await;
        assert_eq!(st, StatusCode::OK, "{query}: {v}");
        assert_eq!(v["result"].as_array().unwrap().len(), n, "{query}: {v}");
        assert_eq!(
            v["result_info"]["total_count"],
            if query == "?page=2" { 1 } else { n }
        );
    }
    a.close().await;
    s.stop().await;
}

async fn nodes_firing_for_one_key_are_one_event(b: Backend) {
    let Some((h, s)) = setup(b).await else { return };
    let tid = add_trigger(&h, &h.state, &trigger_body(&h, 1_000_000, 10)).await;
    let mut a0 = sim(&h, &s, "edge0", 1).await;
    let mut a1 = sim(&h, &s, "edge1", 1).await;
    let (c0, c1, c2) = (new_id(), new_id(), new_id());
    let t = now();
    a0.fired(firing(
        &tid,
        victim(),
        (t - 8, t - 5),
        60000.0,
        Some((&c0, fired_capture())),
        None,
    ))
    .await
    .unwrap();
    // The other node saw the same attack a little later, with a higher peak.
    a1.fired(firing(
        &tid,
        victim(),
        (t - 6, t - 3),
        90000.0,
        Some((&c1, fired_capture())),
        None,
    ))
    .await
    .unwrap();
    // Another destination is another event.
    let other: Option<IpAddr> = Some("198.18.0.10".parse().unwrap());
    a0.fired(firing(
        &tid,
        other,
        (t - 4, t - 1),
        55000.0,
        Some((&c2, fired_capture())),
        None,
    ))
    .await
    .unwrap();
    let list = events_until(&h, |l| {
        l.len() == 2
            && l.iter()
                .map(|e| e["captures"].as_array().unwrap().len())
                .sum::<usize>()
                == 3
    })
    .await;
    assert_eq!(list.len(), 2, "{list:#?}");
    let one = list.iter().find(|e| e["key"] == "198.18.0.9").unwrap();
    let nodes: Vec<&str> = one["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["node"].as_str().unwrap())
        .collect();
    assert_eq!(nodes, ["edge0", "edge1"]);
    let mut caps: Vec<&str> = one["captures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    caps.sort_unstable();
    let mut want = [c0.as_str(), c1.as_str()];
    want.sort_unstable();
    assert_eq!(caps, want);
    assert_eq!(one["started"], edgecap_model::ids::rfc3339((t - 8) as f64));
    assert_eq!(one["peak"], 90000.0);
    // Ends when both nodes' runs ended, at the last.
    a0.ended(Ending {
        trigger_id: tid.clone(),
        key: victim(),
        started: t - 8,
        ended: t - 2,
        peak: 60000.0,
    })
    .await
    .unwrap();
    let list = events_until(&h, |l| {
        l.iter()
            .any(|e| e["key"] == "198.18.0.9" && !e["nodes"][0]["ended"].is_null())
    })
    .await;
    let one = list.iter().find(|e| e["key"] == "198.18.0.9").unwrap();
    assert!(one["ended"].is_null(), "edge1 still holds: {one:#}");
    a1.ended(Ending {
        trigger_id: tid.clone(),
        key: victim(),
        started: t - 6,
        ended: t - 1,
        peak: 90000.0,
    })
    .await
    .unwrap();
    let list = events_until(&h, |l| {
        l.iter()
            .any(|e| e["key"] == "198.18.0.9" && !e["ended"].is_null())
    })
    .await;
    let one = list.iter().find(|e| e["key"] == "198.18.0.9").unwrap();
    assert_eq!(
        one["ended"],
        edgecap_model::ids::rfc3339((t - 1) as f64),
        "{one:#}"
    );
    assert_eq!(h.count("events").await, 2);
    s.stop().await;
}

/// An ask for trigger `tid` at second `at`, for a capture of a new id.
fn ask(tid: &str, at: u64) -> Ask {
    Ask {
        trigger_id: tid.to_owned(),
        capture_id: new_id(),
        key: victim(),
        at,
        bytes: None,
        capture: true,
    }
}

/// The next grant a simulated agent is sent, within 15 s.
async fn sim_grant(a: &mut SimAgent) -> Grant {
    let until = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let left = until.saturating_duration_since(tokio::time::Instant::now());
        match a.recv_within(left).await.unwrap() {
            Some(ServerMsg::Grant { grant }) => return grant,
            Some(_) => continue,
            None => panic!("no grant within 15 s"),
        }
    }
}

/// A budget of 1 an hour is no local share and a pool of 1: the node that asks first gets
/// it, its capture is recorded. A capture no grant covers (an agent spending a share it does
/// not have) meets the last guard: stopped, not recorded, and the event says why; the agent's
/// own refusals (an ask refused, the cooldown) are in the event too.
async fn a_capture_no_grant_covers_beyond_the_shares_is_stopped_and_the_event_says_so(b: Backend) {
    let Some((h, s)) = setup(b).await else { return };
    let tid = add_trigger(&h, &h.state, &trigger_body(&h, 1_000_000, 1)).await;
    let mut a0 = sim(&h, &s, "edge0", 1).await;
    let mut a1 = sim(&h, &s, "edge1", 1).await;
    let t = now();
    let asked = ask(&tid, t - 5);
    a0.ask(asked.clone()).await.unwrap();
    let g = sim_grant(&mut a0).await;
    assert!(g.granted, "{g:?}");
    assert_eq!(
        (g.trigger_id.as_str(), g.capture_id.as_str()),
        (tid.as_str(), asked.capture_id.as_str())
    );
    let c0 = asked.capture_id;
    a0.fired(firing(
        &tid,
        victim(),
        (t - 8, t - 5),
        60000.0,
        Some((&c0, fired_capture())),
        None,
    ))
    .await
    .unwrap();
    recorded(&h, &c0).await;
    // edge1 asks too: the pool is spent; its agent reports the refusal.
    a1.ask(ask(&tid, t - 4)).await.unwrap();
    let g = sim_grant(&mut a1).await;
    assert!(!g.granted);
    let why = g.reason.unwrap();
    assert!(why.starts_with("budget.captures_per_hour"), "{why}");
    a1.fired(firing(
        &tid,
        victim(),
        (t - 6, t - 4),
        62000.0,
        None,
        Some(&why),
    ))
    .await
    .unwrap();
    // A second capture within the hour, from edge1, without a grant: over the budget of one.
    let c1 = new_id();
    a1.fired(firing(
        &tid,
        victim(),
        (t - 6, t - 3),
        65000.0,
        Some((&c1, fired_capture())),
        None,
    ))
    .await
    .unwrap();
    assert_eq!(sim_stop(&mut a1).await.as_deref(), Some(c1.as_str()));
    // The agent's own refusals are recorded too: the event keeps coming.
    a0.fired(firing(
        &tid,
        victim(),
        (t - 4, t - 2),
        70000.0,
        None,
        Some("cooldown"),
    ))
    .await
    .unwrap();
    // The list reads an event's row and its firings in separate statements, so a poll may
    // see the last refusal before its peak: wait for both.
    let list = events_until(&h, |l| {
        l.len() == 1 && l[0]["refusals"].as_array().unwrap().len() == 3 && l[0]["peak"] == 70000.0
    })
    .await;
    assert_eq!(list.len(), 1, "{list:#?}");
    let e = &list[0];
    assert_eq!(e["refused"], true);
    assert_eq!(e["captures"].as_array().unwrap().len(), 1, "{e:#}");
    assert_eq!(e["captures"][0]["id"], c0.as_str());
    let reasons: Vec<&str> = e["refusals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["reason"].as_str().unwrap())
        .collect();
    assert!(reasons.contains(&why.as_str()), "{reasons:?}");
    let stopped = reasons
        .iter()
        .find(|r| r.contains(&c1))
        .unwrap_or_else(|| panic!("{reasons:?}"));
    assert!(stopped.starts_with("budget.captures_per_hour"), "{stopped}");
    assert!(reasons.contains(&"cooldown"), "{reasons:?}");
    assert_eq!(e["peak"], 70000.0);
    assert_eq!(e["nodes"].as_array().unwrap().len(), 2);
    // The refused capture was never recorded.
    let (st, v) = h.call("GET", &h.acc(&format!("pcaps/{c1}")), None).await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{v}");
    assert_eq!(h.count("captures").await, 1);
    s.stop().await;
}

/// Four nodes ask at once, three asks each, beyond their shares: a budget of 5 an hour is
/// 2 for the nodes' own shares and a pool of 3, and exactly 3 asks are granted, the other 9
/// refused naming the budget. A repeated ask gets the same answer without taking more; a
/// granted capture's id is no one else's; asks for a trigger that does not take the node, an
/// unknown trigger or a malformed id are refused. The granted captures are recorded and none
/// is stopped.
async fn concurrent_asks_never_grant_more_than_the_pool(b: Backend) {
    let Some((h, s)) = setup(b).await else { return };
    let tid = add_trigger(&h, &h.state, &trigger_body(&h, 1_000_000, 5)).await;
    let mut agents = Vec::new();
    for i in 0..4 {
        agents.push(sim(&h, &s, &format!("edge{i}"), 1).await);
    }
    let t = now();
    let mut asked: Vec<Vec<String>> = Vec::new();
    for a in &mut agents {
        let asks: Vec<Ask> = (0..3).map(|_| ask(&tid, t)).collect();
        for x in &asks {
            a.ask(x.clone()).await.unwrap();
        }
        asked.push(asks.into_iter().map(|x| x.capture_id).collect());
    }
    let mut granted: Vec<(usize, String)> = Vec::new();
    let mut refused = Vec::new();
    for (i, a) in agents.iter_mut().enumerate() {
        for _ in 0..3 {
            let g = sim_grant(a).await;
            assert!(asked[i].contains(&g.capture_id), "edge{i}: {g:?}");
            if g.granted {
                granted.push((i, g.capture_id));
            } else {
                refused.push(g.reason.unwrap_or_default());
            }
        }
    }
    assert_eq!(granted.len(), 3, "{granted:?} {refused:?}");
    assert_eq!(refused.len(), 9);
    for r in &refused {
        assert!(r.starts_with("budget.captures_per_hour: "), "{r}");
        assert!(r.contains("3 captures an hour"), "{r}");
    }
    assert_eq!(h.count("trigger_grants").await, 3);
    // The same ask again: granted again, not counted twice; a new one is still refused.
    let (gi, gid) = granted[0].clone();
    let again = Ask {
        capture_id: gid.clone(),
        ..ask(&tid, t)
    };
    agents[gi].ask(again.clone()).await.unwrap();
    assert!(sim_grant(&mut agents[gi]).await.granted);
    agents[gi].ask(ask(&tid, t)).await.unwrap();
    assert!(!sim_grant(&mut agents[gi]).await.granted);
    // Another node cannot take a granted capture's id.
    let other = (gi + 1) % agents.len();
    agents[other].ask(again).await.unwrap();
    let g = sim_grant(&mut agents[other]).await;
    assert!(
        !g.granted && g.reason.as_deref().unwrap().contains("taken"),
        "{g:?}"
    );
    assert_eq!(h.count("trigger_grants").await, 3);
    // Asks the trigger does not take, for no trigger, or malformed.
    let hello = hello_with_triggers("edge9", &[("site", "ams")], &["pre-firewall", "egress"]);
    let (mut far, _) = SimAgent::connect(&s.base, &h.agent_token, &hello)
        .await
        .unwrap();
    far.ask(ask(&tid, t)).await.unwrap();
    let g = sim_grant(&mut far).await;
    assert!(
        !g.granted && g.reason.as_deref().unwrap().contains("does not take"),
        "{g:?}"
    );
    let a = &mut agents[0];
    for bad in [
        ask(&new_id(), t),
        Ask {
            capture_id: "not an id".into(),
            ..ask(&tid, t)
        },
        ask(&tid, t + 3600),
    ] {
        a.ask(bad.clone()).await.unwrap();
        let g = sim_grant(a).await;
        assert!(!g.granted, "{bad:?}: {g:?}");
        assert!(
            g.reason
                .as_deref()
                .unwrap()
                .starts_with("budget.captures_per_hour"),
            "{g:?}"
        );
    }
    assert_eq!(h.count("trigger_grants").await, 3);
    // The granted captures start and are recorded; the server stops none.
    for (i, id) in &granted {
        agents[*i]
            .fired(firing(
                &tid,
                victim(),
                (t - 3, t),
                60000.0,
                Some((id, fired_capture())),
                None,
            ))
            .await
            .unwrap();
    }
    for (_, id) in &granted {
        recorded(&h, id).await;
    }
    for a in &mut agents {
        while let Some(m) = a.recv_within(Duration::from_millis(300)).await.unwrap() {
            assert!(!matches!(m, ServerMsg::Stop { .. }), "{m:?}");
        }
    }
    assert_eq!(h.count("captures").await, 3);
    // A deleted trigger takes its grants with it.
    let (st, v) = h
        .call("DELETE", &h.acc(&format!("pcaps/triggers/{tid}")), None)
        .await;
    assert!(st.is_success(), "{v}");
    assert_eq!(h.count("trigger_grants").await, 0);
    s.stop().await;
}

/// `edgecap_unrecorded_captures_total` in the server's `/metrics`.
async fn unrecorded_captures(h: &Harness) -> f64 {
    h.state.hub.barrier().await;
    let (s, v) = h.call_as(None, "GET", "/metrics", None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let text = v.as_str().expect("text");
    text.lines()
        .find_map(|l| {
            l.strip_prefix("edgecap_unrecorded_captures_total ")?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no edgecap_unrecorded_captures_total in {text}"))
}

/// Polls [`unrecorded_captures`] until it is `n` (15 s at most); the last count.
async fn unrecorded_captures_until(h: &Harness, n: f64) -> f64 {
    let until = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let got = unrecorded_captures(h).await;
        if got == n || tokio::time::Instant::now() > until {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// edge0's outcome of capture `c`: 20 packets into its file.
fn finished(c: &str) -> Outcome {
    Outcome {
        capture_id: c.to_owned(),
        ok: true,
        error: None,
        packets: 20,
        bytes: 900,
        lost: 0,
        stop_reason: Some("time-limit".into()),
        file: Some(format!("{c}/edge0.pcapng")),
    }
}

/// An agent's queue of reports is bounded while the server is away: the oldest, a `fired`,
/// may be dropped while its capture runs on and later reaches the server (running in a
/// hello, progress, done, its outcome repeated in the next hello). The server records none
/// of it (it cannot tell whose capture it is), stops the capture, stays up for the node's
/// next reports, and counts the capture once in `/metrics` (and logs its node and file);
/// a capture it did record is never counted there, however often its outcome is repeated.
async fn a_capture_whose_fired_report_was_dropped_is_logged_and_counted_not_recorded(b: Backend) {
    let Some((h, s)) = setup(b).await else { return };
    let tid = add_trigger(&h, &h.state, &trigger_body(&h, 1_000_000, 10)).await;
    assert_eq!(unrecorded_captures(&h).await, 0.0);
    let lost = new_id();
    // Back after an outage: the capture runs, its fired report was dropped.
    let mut hello = hello_with_triggers("edge0", &[("site", "fra")], &["pre-firewall", "egress"]);
    if let AgentMsg::Hello { running, .. } = &mut hello {
        running.push(lost.clone());
    }
    let (mut a, first) = SimAgent::connect(&s.base, &h.agent_token, &hello)
        .await
        .unwrap();
    assert!(matches!(first, ServerMsg::Welcome { .. }), "{first:?}");
    assert_eq!(sim_stop(&mut a).await.as_deref(), Some(lost.as_str()));
    a.send(&AgentMsg::Progress {
        capture_id: lost.clone(),
        packets: 10,
        bytes: 640,
        lost: 0,
    })
    .await
    .unwrap();
    a.send(&AgentMsg::Done {
        outcome: finished(&lost),
    })
    .await
    .unwrap();
    assert_eq!(unrecorded_captures_until(&h, 1.0).await, 1.0);
    // Nothing recorded: no capture, no event.
    let (st, v) = h.call("GET", &h.acc(&format!("pcaps/{lost}")), None).await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{v}");
    let (st, v) = h.call("GET", &h.acc("pcaps"), None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["result"], json!([]), "{v}");
    assert_eq!(our_events(&h).await, Vec::<Value>::new());
    // The session goes on: the next firing is recorded as usual, and finishes.
    let c = new_id();
    let t = now();
    a.fired(firing(
        &tid,
        victim(),
        (t - 5, t - 2),
        70000.0,
        Some((&c, fired_capture())),
        None,
    ))
    .await
    .unwrap();
    recorded(&h, &c).await;
    a.send(&AgentMsg::Done {
        outcome: finished(&c),
    })
    .await
    .unwrap();
    h.wait_for(&c, Duration::from_secs(15), |v| v["status"] == "success")
        .await;
    a.close().await;
    // The agent repeats both outcomes in its next hello: neither is counted again, the
    // recorded one never.
    let mut hello = hello_with_triggers("edge0", &[("site", "fra")], &["pre-firewall", "egress"]);
    if let AgentMsg::Hello { finished: f, .. } = &mut hello {
        *f = vec![finished(&lost), finished(&c)];
    }
    let (a, first) = SimAgent::connect(&s.base, &h.agent_token, &hello)
        .await
        .unwrap();
    assert!(matches!(first, ServerMsg::Welcome { .. }), "{first:?}");
    assert_eq!(unrecorded_captures(&h).await, 1.0);
    let (st, v) = h.call("GET", &h.acc(&format!("pcaps/{lost}")), None).await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{v}");
    assert_eq!(h.capture(&c).await["status"], "success");
    a.close().await;
    s.stop().await;
}

async fn hostile_reports_change_nothing(b: Backend) {
    let Some((h, s)) = setup(b).await else { return };
    let tid = add_trigger(&h, &h.state, &trigger_body(&h, 1_000_000, 10)).await;
    // Another account's trigger whose node set does not take edge0.
    let (acc, token) = restricted_account(&h.state, "tenant", &["198.18.0.0/24"], &["edge7"]).await;
    let mut foreign = trigger_body(&h, 1_000_000, 10);
    foreign["scope"]["filter_v1"] = json!({"destination_address": "198.18.0.9"});
    let (st, v) = h
        .call_as(
            Some(&token),
            "POST",
            &format!("/client/v4/accounts/{}/pcaps/triggers", acc.id),
            Some(&foreign.to_string()),
        )
        .await;
    assert!(st.is_success(), "{v}");
    let other_tid = v["result"]["id"].as_str().unwrap().to_owned();
    // A capture of the other account whose id a hostile agent reuses.
    let _n = h.node("edge5", &[("site", "ams")], &["pre-firewall"]);
    let theirs = {
        let (st, v) = h
            .call_as(
                Some(&h.other_token),
                "POST",
                &format!("/client/v4/accounts/{}/pcaps", h.other.id),
                Some(&h.create_body("ams", json!({}))),
            )
            .await;
        assert!(st.is_success(), "{v}");
        v["result"]["id"].as_str().unwrap().to_owned()
    };
    let mut a = sim(&h, &s, "edge0", 1).await;
    let captures = h.count("captures").await;
    let t = now();
    let ok = |c: &str| {
        firing(
            &tid,
            victim(),
            (t - 5, t - 2),
            70000.0,
            Some((c, fired_capture())),
            None,
        )
    };
    let mut hostile = vec![
        // Unknown trigger, the other account's, malformed ids.
        firing(
            &new_id(),
            victim(),
            (t - 5, t - 2),
            1.0,
            Some((&new_id(), fired_capture())),
            None,
        ),
        firing(
            &other_tid,
            victim(),
            (t - 5, t - 2),
            1.0,
            Some((&new_id(), fired_capture())),
            None,
        ),
        firing(
            "nothex",
            victim(),
            (t - 5, t - 2),
            1.0,
            Some((&new_id(), fired_capture())),
            None,
        ),
        ok("zz"),
        // Someone else's capture id.
        ok(&theirs),
    ];
    // Huge or impossible values.
    let mut f = ok(&new_id());
    f.at = u64::MAX;
    hostile.push(f);
    let mut f = ok(&new_id());
    f.started = t + 10;
    hostile.push(f);
    let mut f = ok(&new_id());
    f.peak = 1e300;
    hostile.push(f);
    for change in [
        (|c: &mut FiredCapture| c.byte_limit = u64::MAX) as fn(&mut FiredCapture),
        |c| c.time_limit = 1e12,
        |c| c.packet_limit = Some(u64::MAX),
        |c| c.points = vec!["egress".into()],
        |c| c.filter = "(".repeat(100_000),
        |c| c.format = "pcap".into(),
    ] {
        let mut f = ok(&new_id());
        change(f.capture.as_mut().unwrap());
        hostile.push(f);
    }
    // A firing with neither a capture nor a refusal.
    hostile.push(firing(&tid, victim(), (t - 5, t - 2), 1.0, None, None));
    for f in hostile {
        a.fired(f).await.unwrap();
    }
    // Ends and signatures of nothing.
    a.ended(Ending {
        trigger_id: tid.clone(),
        key: victim(),
        started: t - 5,
        ended: t,
        peak: 1.0,
    })
    .await
    .unwrap();
    a.ended(Ending {
        trigger_id: "x".into(),
        key: None,
        started: 0,
        ended: u64::MAX,
        peak: -1.0,
    })
    .await
    .unwrap();
    a.send_counted(&AgentMsg::Signed {
        signed: Box::new(Signed {
            trigger_id: tid.clone(),
            capture_id: theirs.clone(),
            signature: serde_json::from_value(json!({
                "attack_packets": 1, "attack_skipped": 0, "baseline_packets": null,
                "fields": [], "mitigation": null, "note": null
            }))
            .unwrap(),
        }),
    })
    .await
    .unwrap();
    // Raw junk of the right type.
    a.send_text(r#"{"type":"fired","firing":{"trigger_id":"ab","started":1e400,"at":1,"value":1,"peak":1}}"#)
        .await
        .unwrap();
    // A sound report after them: once it is recorded, every one before it was handled (one
    // connection's messages are taken in order) and the session is still up.
    let good = new_id();
    a.fired(ok(&good)).await.unwrap();
    recorded(&h, &good).await;
    assert_eq!(h.count("events").await, 1);
    assert_eq!(h.count("event_firings").await, 1);
    assert_eq!(h.count("captures").await, captures + 1);
    let list = our_events(&h).await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["captures"][0]["id"], good.as_str());
    assert_eq!(list[0]["signature"], Value::Null);
    assert!(list[0]["ended"].is_null(), "{list:#?}");
    let (_, c) = h
        .call_as(
            Some(&h.other_token),
            "GET",
            &format!("/client/v4/accounts/{}/pcaps/{theirs}", h.other.id),
            None,
        )
        .await;
    assert_eq!(
        c["result"]["status"], "pending",
        "the other account's capture is untouched: {c:#}"
    );
    let (_, v) = h
        .call_as(
            Some(&token),
            "GET",
            &format!("/client/v4/accounts/{}/events", acc.id),
            None,
        )
        .await;
    assert_eq!(v["result"], json!([]), "{v}");
    s.stop().await;
}

async fn bad_event_queries_name_the_field(b: Backend) {
    let Some(h) = Harness::new(b).await else {
        return;
    };
    for (query, field) in [
        ("since=yesterday", "/since"),
        ("until=2026-13-01T00:00:00Z", "/until"),
        ("since=100&until=50", "/since"),
        ("trigger_id=nothex", "/trigger_id"),
        ("page=0", "/page"),
        ("per_page=100000", "/per_page"),
        ("colour=red", "/colour"),
        ("page=1&page=2", "/page"),
    ] {
        let (st, v) = h
            .call("GET", &h.acc(&format!("events?{query}")), None)
            .await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{query}: {v}");
        assert_field_error(st, &v, 1001, field);
    }
    let (st, v) = h.call("GET", &h.acc("events/nothex"), None).await;
    assert_field_error(st, &v, 1001, "/event_id");
    let (st, v) = h
        .call("GET", &h.acc(&format!("events/{}", new_id())), None)
        .await;
    assert_error(st, StatusCode::NOT_FOUND, &v, 1003, "no event");
}

/// Replicas (PostgreSQL): nodes on two replicas ask at once for more than the trigger's pool
/// (budget 3: a pool of 2, 1 for the nodes' shares): one decision across the replicas grants
/// exactly 2; the granted captures, fired for one key, are one event, and none is stopped;
/// a capture no grant covers beyond the shares is stopped wherever its node is connected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asks_on_two_replicas_share_one_pool_and_firings_one_event() {
    let Some(h) = Harness::new(Backend::Postgres).await else {
        return;
    };
    let s2 = AppState::open(&h.db_url, test_config()).await.unwrap();
    let tid = add_trigger(&h, &h.state, &trigger_body(&h, 1_000_000, 3)).await;
    let mut a = trigger_node(&h.state, "edge0", "fra");
    let mut b = trigger_node(&s2, "edge1", "fra");
    let t = now();
    let mut asked = Vec::new();
    for _ in 0..3 {
        for n in [&mut a, &mut b] {
            let x = ask(&tid, t);
            asked.push(x.capture_id.clone());
            n.session.handle(AgentMsg::Ask { ask: x });
        }
    }
    let mut granted: Vec<(usize, String)> = Vec::new();
    for (i, n) in [&mut a, &mut b].into_iter().enumerate() {
        let mut answers = 0;
        while answers < 3 {
            let m = tokio::time::timeout(Duration::from_secs(15), n.rx.recv())
                .await
                .expect("an answer within 15 s")
                .expect("hub open");
            if let ServerMsg::Grant { grant } = m {
                assert!(asked.contains(&grant.capture_id), "{grant:?}");
                answers += 1;
                if grant.granted {
                    granted.push((i, grant.capture_id));
                } else {
                    let why = grant.reason.unwrap_or_default();
                    assert!(why.starts_with("budget.captures_per_hour"), "{why}");
                }
            }
        }
    }
    assert_eq!(granted.len(), 2, "{granted:?}");
    for (i, id) in &granted {
        let n = if *i == 0 { &a } else { &b };
        n.session.handle(AgentMsg::Fired {
            firing: firing(
                &tid,
                victim(),
                (t - 8, t - 5),
                60000.0 + *i as f64,
                Some((id, fired_capture())),
                None,
            ),
        });
    }
    h.state.hub.barrier().await;
    s2.hub.barrier().await;
    // The node shares: 1 in all, edge0's (the first by name). A second capture of edge0's
    // own, without a grant, is one too many.
    let extra = new_id();
    a.session.handle(AgentMsg::Fired {
        firing: firing(
            &tid,
            victim(),
            (t - 6, t - 3),
            61000.0,
            Some((&new_id(), fired_capture())),
            None,
        ),
    });
    h.state.hub.barrier().await;
    a.session.handle(AgentMsg::Fired {
        firing: firing(
            &tid,
            victim(),
            (t - 6, t - 2),
            61000.0,
            Some((&extra, fired_capture())),
            None,
        ),
    });
    h.state.hub.barrier().await;
    let mut stops = Vec::new();
    while let Ok(m) = a.rx.try_recv() {
        if let ServerMsg::Stop { capture_id } = m {
            stops.push(capture_id);
        }
    }
    assert_eq!(stops, [extra]);
    while let Ok(m) = b.rx.try_recv() {
        assert!(!matches!(m, ServerMsg::Stop { .. }), "edge1 was told {m:?}");
    }
    let list = our_events(&h).await;
    assert_eq!(list.len(), 1, "{list:#?}");
    let nodes: Vec<&str> = list[0]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["node"].as_str().unwrap())
        .collect();
    // edge0 fired (its own share), and so did every node granted a capture.
    let mut fired: Vec<&str> = granted
        .iter()
        .map(|(i, _)| if *i == 0 { "edge0" } else { "edge1" })
        .chain(["edge0"])
        .collect();
    fired.sort_unstable();
    fired.dedup();
    assert_eq!(nodes, fired);
    assert_eq!(
        list[0]["captures"].as_array().unwrap().len(),
        3,
        "{list:#?}"
    );
    assert_eq!(list[0]["refused"], true);
}

/// A restricted account's trigger goes only to the nodes of its node set, with its prefixes;
/// a node is sent at most `MAX_AGENT_TRIGGERS`, the oldest.
async fn a_restricted_accounts_trigger_goes_only_to_its_nodes_with_its_prefixes(b: Backend) {
    let Some(h) = Harness::new(b).await else {
        return;
    };
    let _timers = h.state.hub.start().await.unwrap();
    let mut e0 = trigger_node(&h.state, "edge0", "fra");
    let mut e1 = trigger_node(&h.state, "edge1", "fra");
    for n in [&mut e0, &mut e1] {
        triggers_until(n, <[_]>::is_empty).await;
    }
    let (acc, token) = restricted_account(&h.state, "tenant", &["198.18.0.0/24"], &["edge0"]).await;
    let (s, v) = h
        .call_as(
            Some(&token),
            "POST",
            &format!("/client/v4/accounts/{}/pcaps/triggers", acc.id),
            Some(&trigger_body(&h, 1000, 4).to_string()),
        )
        .await;
    assert!(s.is_success(), "{v}");
    let list = triggers_until(&mut e0, |l| l.len() == 1).await;
    assert_eq!(list[0].account_id, acc.id);
    assert_eq!(list[0].prefixes, Some(vec!["198.18.0.0/24".to_owned()]));
    // The whole local half of the day's bytes: edge0 is the only node evaluating it.
    assert_eq!(list[0].budget.bytes_per_day, 500);
    no_triggers_for(&mut e1, Duration::from_millis(500)).await;
}

async fn a_node_is_sent_at_most_max_agent_triggers_the_oldest(b: Backend) {
    use edgecap_model::firing::MAX_AGENT_TRIGGERS;
    use edgecap_server::db::triggers::{self, Stored};
    let Some(h) = Harness::new(b).await else {
        return;
    };
    let (trigger, _) =
        edgecap_model::trigger::validate_trigger(&trigger_body(&h, 1000, 4), &Default::default())
            .unwrap();
    // More than a node evaluates, over three accounts (each holds at most 100).
    let mut ids = Vec::new();
    for a in 0..3 {
        let (acc, _) = crate::common::account(&h.state, &format!("a{a}"), Default::default()).await;
        for i in 0..90 {
            let id = new_id();
            let stored = Stored {
                id: id.clone(),
                account_id: acc.id.clone(),
                trigger: trigger.clone(),
                credentials: None,
                created: format!("2026-01-01T00:{a:02}:{i:02}.000000Z"),
            };
            assert!(triggers::insert(&h.state.db, &stored, 100).await.unwrap());
            ids.push(id);
        }
    }
    let _timers = h.state.hub.start().await.unwrap();
    let mut e0 = trigger_node(&h.state, "edge0", "fra");
    let list = triggers_until(&mut e0, |l| !l.is_empty()).await;
    assert_eq!(list.len(), MAX_AGENT_TRIGGERS);
    let sent: Vec<&str> = list.iter().map(|t| t.id.as_str()).collect();
    let oldest: Vec<&str> = ids
        .iter()
        .take(MAX_AGENT_TRIGGERS)
        .map(String::as_str)
        .collect();
    assert_eq!(sent, oldest);
}
