//! Triggers at work on the server (issue 14): agents announcing `triggers` are sent the
//! triggers whose scope selects them, with their share of the budget, and again after every
//! change (on any replica); what they report when a trigger fires, ends or yields a signature
//! becomes captures and events, within the budget, per account.

use std::time::Duration;

use edgecap_model::ServerMsg;
use edgecap_model::firing::{AgentTrigger, FEATURE_TRIGGERS};
use edgecap_model::protocol::FEATURE_BOUNDARY;
use edgecap_server::AppState;
use serde_json::{Value, json};

use crate::both_databases;
use crate::common::{Backend, FakeNode, Harness, node_info, node_on};

both_databases!(nodes_in_scope_get_their_triggers_and_every_change,);

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
/// within 5 s.
pub async fn triggers_until(
    n: &mut FakeNode,
    f: impl Fn(&[AgentTrigger]) -> bool,
) -> Vec<AgentTrigger> {
    let until = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut last = None;
    loop {
        let left = until.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, n.rx.recv()).await {
            Ok(Some(ServerMsg::Triggers { triggers })) => {
                if f(&triggers) {
                    return triggers;
                }
                last = Some(triggers);
            }
            Ok(Some(_)) => continue,
            Ok(None) => panic!("{} closed", n.session.name()),
            Err(_) => panic!(
                "{}: no such trigger list within 5 s; the last was {last:?}",
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
            Ok(Some(ServerMsg::Triggers { triggers })) => {
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
        assert_eq!(t.budget.captures_per_hour, 4);
        assert!(t.credentials.is_none() && t.prefixes.is_none(), "{t:?}");
        shares.push(t.budget.bytes_per_day);
    }
    // The two nodes in scope share the day's bytes: together exactly the budget.
    shares.sort_unstable();
    assert_eq!(shares, [500, 501]);
    no_triggers_for(&mut far, Duration::from_millis(500)).await;
    no_triggers_for(&mut old, Duration::from_millis(100)).await;
    // A node leaving hands its share to the one left.
    drop(e1);
    let list = triggers_until(&mut e0, |l| {
        l.len() == 1 && l[0].budget.bytes_per_day == 1001
    })
    .await;
    assert_eq!(list[0].id, id);
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
    // Each sees the other replica's node: a share of at most half.
    let la = triggers_until(&mut a, |l| l.len() == 1 && l[0].budget.bytes_per_day <= 501).await;
    let lb = triggers_until(&mut b, |l| l.len() == 1 && l[0].budget.bytes_per_day <= 501).await;
    assert_eq!(
        (la[0].id.as_str(), lb[0].id.as_str()),
        (id.as_str(), id.as_str())
    );
    assert_eq!(
        la[0].budget.bytes_per_day + lb[0].budget.bytes_per_day,
        1001
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
