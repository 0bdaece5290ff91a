//! The hourly budget stays strict while the nodes in a trigger's scope change (issue 14,
//! hub/splits.rs): when the split of the nodes' local captures changes, shares that fall
//! apply at once and shares that grow (a new node's from 0) wait until the split settles, an
//! hour after every node holding a share heard it. An hour is not waited for: the split's
//! recorded times are moved back (`db::splits::backdate`), as if it had passed.

use std::collections::BTreeMap;
use std::time::Duration;

use edgecap_model::firing::{AgentTrigger, Ask, FEATURE_TRIGGERS, FEATURE_TRIGGERS_HEARD};
use edgecap_model::protocol::FEATURE_BOUNDARY;
use edgecap_model::{AgentMsg, ServerMsg};
use edgecap_server::AppState;
use edgecap_server::db::{identities, splits};
use edgecap_server::hub::triggers::POLL;

use crate::both_databases;
use crate::common::{Backend, FakeNode, Harness, node_info, node_on};
use crate::firings::{add_trigger, trigger_body, trigger_node, triggers_until};

both_databases!(
    a_node_joining_mid_hour_takes_no_share_until_the_split_settles,
    a_node_leaving_the_scope_grows_nobody_until_the_split_settles,
    a_disconnected_node_holds_the_split_unsettled_until_it_reconnects,
    a_forgotten_node_leaves_the_split_an_hour_after_it_was_forgotten,
    a_reconnecting_agent_is_told_the_captures_of_its_share_it_started_this_hour,
    concurrent_byte_asks_never_grant_more_than_the_pool,
    a_node_joining_mid_day_takes_no_local_bytes_and_captures_with_pool_bytes,
    over_a_day_of_nodes_joining_and_leaving_the_bytes_stay_within_the_budget,
    a_split_is_heard_when_the_agent_acknowledges_it_not_when_it_is_written,
);

/// 8 captures an hour: 4 are the nodes' own shares, 4 the pool.
const PER_HOUR: u64 = 8;
const LOCAL: u64 = 4;
const HOUR: u64 = 3600;
const DAY: u64 = 24 * HOUR;

/// The node's share of `captures_per_hour` in a list of one trigger.
fn share(l: &[AgentTrigger]) -> Option<u64> {
    (l.len() == 1).then(|| l[0].budget.captures_per_hour)
}

/// The next list of one trigger whose share is `want`.
async fn told(n: &mut FakeNode, want: u64) -> Vec<AgentTrigger> {
    triggers_until(n, |l| share(l) == Some(want)).await
}

/// For `d`, every list `n` is sent (its share of `bytes_per_day` may change, as that split
/// takes effect at once) keeps its share of `captures_per_hour` at `want`.
async fn keeps(n: &mut FakeNode, want: u64, d: Duration) {
    let until = tokio::time::Instant::now() + d;
    loop {
        let left = until.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, n.rx.recv()).await {
            Ok(Some(ServerMsg::Triggers { triggers, .. })) => assert_eq!(
                share(&triggers),
                Some(want),
                "{} was told {triggers:?}",
                n.session.name()
            ),
            Ok(Some(_)) => continue,
            Ok(None) | Err(_) => return,
        }
    }
}

/// Nodes `names` of site fra, connected, each told it has no trigger yet.
async fn nodes(state: &AppState, names: &[&str]) -> Vec<FakeNode> {
    let mut out = Vec::new();
    for name in names {
        let mut n = trigger_node(state, name, "fra");
        triggers_until(&mut n, <[_]>::is_empty).await;
        out.push(n);
    }
    out
}

/// The split's latest epoch: its number and whether it settled.
async fn latest(h: &Harness, tid: &str) -> (u64, bool) {
    let (epochs, _) = splits::load(&h.state.db).await.unwrap();
    let e = epochs[tid].last().unwrap();
    (e.seq, e.settled.is_some())
}

/// A node joins the scope in the middle of an hour in which the others may have spent the
/// shares of the old split: their shares fall at once, its own stays 0 (it asks the pool,
/// which grants) until the split settles. Over that hour, the most each node was told adds
/// up to the local half, so with the pool no hour holds more than the budget.
async fn a_node_joining_mid_hour_takes_no_share_until_the_split_settles(b: Backend) {
    let Some(h) = Harness::new(b).await else {
        return;
    };
    let _timers = h.state.hub.start().await.unwrap();
    let mut n = nodes(&h.state, &["edge0", "edge1"]).await;
    let tid = add_trigger(&h, &h.state, &trigger_body(&h, 1_000_000, PER_HOUR)).await;
    // The most each node was told in this hour.
    let mut most: BTreeMap<&str, u64> = BTreeMap::new();
    for (name, node) in ["edge0", "edge1"].into_iter().zip(n.iter_mut()) {
        told(node, 2).await;
        most.insert(name, 2);
    }
    assert_eq!(
        latest(&h, &tid).await,
        (1, true),
        "a new trigger's first split holds at once"
    );
    // edge2 joins: the split is now 2, 1, 1 (the first by name gets the remainder).
    let mut e2 = trigger_node(&h.state, "edge2", "fra");
    let l2 = triggers_until(&mut e2, |l| l.len() == 1).await;
    most.insert("edge2", share(&l2).unwrap());
    told(&mut n[1], 1).await;
    assert_eq!(latest(&h, &tid).await, (2, false));
    keeps(&mut n[0], 2, POLL * 2).await;
    assert_eq!(
        most["edge2"], 0,
        "a new node takes nothing before the split settles"
    );
    assert!(
        most.values().sum::<u64>() <= LOCAL,
        "shares told within one hour add up to more than the local half: {most:?}"
    );
    // Beyond its share of 0, edge2 asks: the pool grants.
    e2.session.handle(AgentMsg::Ask {
        ask: Ask {
            trigger_id: tid.clone(),
            capture_id: crate::firings::new_id(),
            key: crate::firings::victim(),
            at: crate::firings::now(),
            bytes: None,
            capture: true,
        },
    });
    let grant = loop {
        match tokio::time::timeout(Duration::from_secs(10), e2.rx.recv()).await {
            Ok(Some(ServerMsg::Grant { grant })) => break grant,
            Ok(Some(_)) => continue,
            other => panic!("no grant: {other:?}"),
        }
    };
    assert!(grant.granted, "{grant:?}");
    // Within the hour nothing grows, whatever refreshes run.
    splits::backdate(&h.state.db, &tid, HOUR - 60)
        .await
        .unwrap();
    keeps(&mut e2, 0, POLL * 2).await;
    assert_eq!(latest(&h, &tid).await, (2, false));
    // An hour after every node heard it: settled, edge2 takes its share; the others keep
    // theirs, which add up to the local half again.
    splits::backdate(&h.state.db, &tid, 60).await.unwrap();
    told(&mut e2, 1).await;
    assert_eq!(latest(&h, &tid).await, (2, true));
    keeps(&mut n[0], 2, POLL).await;
    keeps(&mut n[1], 1, POLL).await;
    assert_eq!(
        h.count("trigger_epochs").await,
        2,
        "the split before stays while the bytes wait for their day"
    );
    // The bytes (half of 1 MB split 166 667, 166 667, 166 666) wait for a day, not an hour,
    // after every node last heard its shares (edge2 heard its new captures share just now):
    // edge2's share was 0 until then.
    assert_eq!(l2[0].budget.bytes_per_day, 0);
    splits::backdate(&h.state.db, &tid, DAY - 60).await.unwrap();
    keeps(&mut e2, 1, POLL * 2).await;
    assert_eq!(h.count("trigger_epochs").await, 2);
    splits::backdate(&h.state.db, &tid, 60).await.unwrap();
    let l = triggers_until(&mut e2, |l| l.len() == 1 && l[0].budget.bytes_per_day > 0).await;
    assert_eq!(l[0].budget.bytes_per_day, 166_666);
    assert_eq!(
        h.count("trigger_epochs").await,
        1,
        "epochs before the settled one go"
    );
}

/// A node relabelled out of the scope: the others' shares do not grow until the split
/// settles (the node may still be spending its old share until it hears).
async fn a_node_leaving_the_scope_grows_nobody_until_the_split_settles(b: Backend) {
    let Some(h) = Harness::new(b).await else {
        return;
    };
    let _timers = h.state.hub.start().await.unwrap();
    let mut n = nodes(&h.state, &["edge0", "edge1", "edge2"]).await;
    let tid = add_trigger(&h, &h.state, &trigger_body(&h, 1_000_000, PER_HOUR)).await;
    for (node, want) in n.iter_mut().zip([2, 1, 1]) {
        told(node, want).await;
    }
    // edge2 comes back as a node of site ams: out of scope, told it has no trigger.
    let gone = n.pop().unwrap();
    drop(gone);
    h.state.hub.barrier().await;
    let mut ams = trigger_node(&h.state, "edge2", "ams");
    triggers_until(&mut ams, <[_]>::is_empty).await;
    // The split is 2, 2 now, but edge1 keeps 1 until it settles.
    let until = tokio::time::Instant::now() + Duration::from_secs(15);
    while latest(&h, &tid).await.0 < 2 {
        assert!(tokio::time::Instant::now() < until, "no new epoch");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    keeps(&mut n[1], 1, POLL * 2).await;
    splits::backdate(&h.state.db, &tid, HOUR).await.unwrap();
    told(&mut n[1], 2).await;
    assert_eq!(latest(&h, &tid).await, (2, true));
    keeps(&mut n[0], 2, POLL).await;
}

/// A node that was away when the split changed has not heard its smaller share: the split
/// stays unsettled (the new node at 0) however long it is away, and settles an hour after
/// it reconnects and is told.
async fn a_disconnected_node_holds_the_split_unsettled_until_it_reconnects(b: Backend) {
    let Some(h) = Harness::new(b).await else {
        return;
    };
    let _timers = h.state.hub.start().await.unwrap();
    let mut n = nodes(&h.state, &["edge0", "edge1"]).await;
    let tid = add_trigger(&h, &h.state, &trigger_body(&h, 1_000_000, PER_HOUR)).await;
    for node in &mut n {
        told(node, 2).await;
    }
    let away = n.pop().unwrap();
    drop(away);
    h.state.hub.barrier().await;
    let mut e2 = trigger_node(&h.state, "edge2", "fra");
    told(&mut e2, 0).await;
    assert_eq!(latest(&h, &tid).await, (2, false));
    // Two hours on, edge1 still has not heard: nothing settles.
    splits::backdate(&h.state.db, &tid, 2 * HOUR).await.unwrap();
    keeps(&mut e2, 0, POLL * 2).await;
    assert_eq!(latest(&h, &tid).await, (2, false));
    // edge1 comes back and is told its smaller share; an hour later the split settles.
    let mut e1 = trigger_node(&h.state, "edge1", "fra");
    told(&mut e1, 1).await;
    keeps(&mut e2, 0, POLL * 2).await;
    splits::backdate(&h.state.db, &tid, HOUR).await.unwrap();
    told(&mut e2, 1).await;
    assert_eq!(latest(&h, &tid).await, (2, true));
    keeps(&mut e1, 1, POLL).await;
    keeps(&mut n[0], 2, POLL).await;
}

/// A revoked node keeps its share (it may still be running); forgotten, it leaves the split,
/// and the others' shares grow an hour after it was forgotten.
async fn a_forgotten_node_leaves_the_split_an_hour_after_it_was_forgotten(b: Backend) {
    let Some(h) = Harness::new(b).await else {
        return;
    };
    let _timers = h.state.hub.start().await.unwrap();
    let db = &h.state.db;
    let admitted = identities::admit(db, "edge2", "ecn_edge2-credential", Some(&h.agent_token))
        .await
        .unwrap();
    assert!(admitted.is_ok(), "{admitted:?}");
    let mut n = nodes(&h.state, &["edge0", "edge1", "edge2"]).await;
    let tid = add_trigger(&h, &h.state, &trigger_body(&h, 1_000_000, PER_HOUR)).await;
    for (node, want) in n.iter_mut().zip([2, 1, 1]) {
        told(node, want).await;
    }
    identities::revoke(db, "edge2").await.unwrap().unwrap();
    h.state.hub.revoked("edge2");
    drop(n.pop());
    h.state.hub.barrier().await;
    keeps(&mut n[1], 1, POLL * 2).await;
    assert_eq!(
        latest(&h, &tid).await,
        (1, true),
        "a revoked node keeps its share"
    );
    assert_eq!(
        identities::forget(db, "edge2").await.unwrap(),
        identities::Forgot::Done
    );
    let until = tokio::time::Instant::now() + Duration::from_secs(15);
    while latest(&h, &tid).await.0 < 2 {
        assert!(tokio::time::Instant::now() < until, "no new epoch");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    keeps(&mut n[1], 1, POLL * 2).await;
    assert_eq!(latest(&h, &tid).await, (2, false));
    splits::backdate(db, &tid, HOUR).await.unwrap();
    told(&mut n[1], 2).await;
    assert_eq!(latest(&h, &tid).await, (2, true));
}

/// Replicas (PostgreSQL): nodes on two replicas, one joining through one of them; both
/// record one split, tell shares of it (the others' fall at once, the new node's waits), and
/// settle it once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_agree_on_the_split_and_settle_it_once() {
    let Some(h) = Harness::new(Backend::Postgres).await else {
        return;
    };
    let _t1 = h.state.hub.start().await.unwrap();
    let s2 = AppState::open(&h.db_url, crate::common::test_config())
        .await
        .unwrap();
    let _t2 = s2.hub.start().await.unwrap();
    let mut a = nodes(&h.state, &["edge0"]).await.pop().unwrap();
    let mut b = nodes(&s2, &["edge1"]).await.pop().unwrap();
    h.state.hub.barrier().await;
    s2.hub.barrier().await;
    let tid = add_trigger(&h, &h.state, &trigger_body(&h, 1_000_000, PER_HOUR)).await;
    told(&mut a, 2).await;
    told(&mut b, 2).await;
    // edge2 joins through the second replica: edge1 (there) falls to 1, edge0 (on the
    // first) keeps 2, edge2 gets 0.
    let mut c = trigger_node(&s2, "edge2", "fra");
    told(&mut c, 0).await;
    told(&mut b, 1).await;
    keeps(&mut a, 2, POLL * 2).await;
    assert_eq!(latest(&h, &tid).await, (2, false));
    splits::backdate(&h.state.db, &tid, HOUR).await.unwrap();
    told(&mut c, 1).await;
    keeps(&mut a, 2, POLL * 2).await;
    keeps(&mut b, 1, POLL).await;
    // The bytes settle a day after: then the split before goes.
    splits::backdate(&h.state.db, &tid, DAY).await.unwrap();
    triggers_until(&mut c, |l| l.len() == 1 && l[0].budget.bytes_per_day > 0).await;
    let (epochs, _) = splits::load(&h.state.db).await.unwrap();
    let only = &epochs[&tid];
    assert_eq!(only.len(), 1, "{only:?}");
    assert_eq!(only[0].seq, 2);
    assert_eq!(
        only[0].shares,
        BTreeMap::from([
            ("edge0".to_owned(), 2),
            ("edge1".to_owned(), 1),
            ("edge2".to_owned(), 1)
        ])
    );
}

/// The next grant `n` is sent, within 10 s.
async fn grant(n: &mut FakeNode) -> edgecap_model::firing::Grant {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), n.rx.recv()).await {
            Ok(Some(ServerMsg::Grant { grant })) => return grant,
            Ok(Some(_)) => continue,
            other => panic!("no grant: {other:?}"),
        }
    }
}

/// An agent that restarts forgets the captures it started; the server tells it, with each
/// trigger, when it started those of its own share in the last hour (not those the pool
/// granted), so it counts them against its share again.
async fn a_reconnecting_agent_is_told_the_captures_of_its_share_it_started_this_hour(b: Backend) {
    use crate::firings::{fired_capture, new_id, now, recorded, victim};
    use edgecap_server::sim::firing;
    let Some(h) = Harness::new(b).await else {
        return;
    };
    let _timers = h.state.hub.start().await.unwrap();
    let mut e0 = nodes(&h.state, &["edge0"]).await.pop().unwrap();
    let tid = add_trigger(&h, &h.state, &trigger_body(&h, 1_000_000, PER_HOUR)).await;
    let first = told(&mut e0, LOCAL).await;
    assert!(first[0].spent.is_empty(), "{first:?}");
    // One capture of its own share, one granted from the pool.
    let before = now();
    let own = new_id();
    e0.session.handle(AgentMsg::Fired {
        firing: firing(
            &tid,
            victim(),
            (before - 5, before),
            80000.0,
            Some((&own, fired_capture())),
            None,
        ),
    });
    recorded(&h, &own).await;
    let pooled = new_id();
    e0.session.handle(AgentMsg::Ask {
        ask: Ask {
            trigger_id: tid.clone(),
            capture_id: pooled.clone(),
            key: victim(),
            at: now(),
            bytes: None,
            capture: true,
        },
    });
    assert!(grant(&mut e0).await.granted);
    e0.session.handle(AgentMsg::Fired {
        firing: firing(
            &tid,
            victim(),
            (now() - 1, now()),
            80000.0,
            Some((&pooled, fired_capture())),
            None,
        ),
    });
    recorded(&h, &pooled).await;
    // A third, of its own captures share, with 600 of its 1000 bytes from the bytes pool.
    let topped = Ask {
        capture_id: new_id(),
        bytes: Some(600),
        capture: false,
        ..Ask {
            trigger_id: tid.clone(),
            capture_id: String::new(),
            key: victim(),
            at: now(),
            bytes: None,
            capture: true,
        }
    };
    e0.session.handle(AgentMsg::Ask {
        ask: topped.clone(),
    });
    let g = grant(&mut e0).await;
    assert_eq!((g.granted, g.bytes), (true, Some(600)), "{g:?}");
    e0.session.handle(AgentMsg::Fired {
        firing: firing(
            &tid,
            victim(),
            (now() - 1, now()),
            80000.0,
            Some((&topped.capture_id, fired_capture())),
            None,
        ),
    });
    recorded(&h, &topped.capture_id).await;
    assert!(first[0].spent_bytes.is_empty(), "{first:?}");
    // The agent restarts: its new connection's list says when its own captures started, and
    // the bytes of its own share each held (the captures' 1000 less the pool's grants).
    drop(e0);
    h.state.hub.barrier().await;
    let mut again = trigger_node(&h.state, "edge0", "fra");
    let list = told(&mut again, LOCAL).await;
    assert_eq!(list[0].spent.len(), 2, "{list:?}");
    assert!(
        list[0].spent.iter().all(|t| (before..=now()).contains(t)),
        "{:?} not within {before}..now",
        list[0].spent
    );
    let mut held: Vec<u64> = list[0].spent_bytes.iter().map(|e| e[1]).collect();
    held.sort_unstable();
    assert_eq!(held, [400, 1000, 1000], "{list:?}");
    assert!(
        list[0]
            .spent_bytes
            .iter()
            .all(|e| (before..=now()).contains(&e[0]))
    );
}

/// Half of 2 000 000 bytes a day is the nodes' own, half the pool; captures of 300 000.
const PER_DAY: u64 = 2_000_000;
const POOL_BYTES: u64 = 1_000_000;
const CAPTURE_BYTES: u64 = 300_000;

/// A trigger of `bytes_per_day` whose captures write at most [`CAPTURE_BYTES`], 60 an hour
/// (the captures pool of 30 is not what runs out here).
fn bytes_body(h: &Harness, bytes_per_day: u64) -> serde_json::Value {
    let mut b = trigger_body(h, bytes_per_day, 60);
    b["capture"]["byte_limit"] = CAPTURE_BYTES.into();
    b
}

/// An ask for `bytes` of the bytes pool (and a capture of the pool too, if `capture`).
fn bytes_ask(tid: &str, bytes: u64, capture: bool) -> Ask {
    Ask {
        trigger_id: tid.to_owned(),
        capture_id: crate::firings::new_id(),
        key: crate::firings::victim(),
        at: crate::firings::now(),
        bytes: Some(bytes),
        capture,
    }
}

/// The node's share of `bytes_per_day` in a list of one trigger.
fn bytes_share(l: &[AgentTrigger]) -> Option<u64> {
    (l.len() == 1).then(|| l[0].budget.bytes_per_day)
}

/// For `d`, the most `n` is told of its bytes share goes into `most`.
async fn watch(n: &mut FakeNode, most: &mut BTreeMap<String, u64>, d: Duration) {
    let until = tokio::time::Instant::now() + d;
    loop {
        let left = until.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, n.rx.recv()).await {
            Ok(Some(ServerMsg::Triggers { triggers, .. })) => {
                if let Some(b) = bytes_share(&triggers) {
                    let m = most.entry(n.session.name().to_owned()).or_default();
                    *m = (*m).max(b);
                }
            }
            Ok(Some(_)) => continue,
            Ok(None) | Err(_) => return,
        }
    }
}

/// Asks `n` makes one after the other for [`CAPTURE_BYTES`] until one is refused: the
/// bytes granted, each.
async fn ask_until_refused(n: &mut FakeNode, tid: &str, capture: bool) -> Vec<u64> {
    let mut got = Vec::new();
    for _ in 0..10 {
        n.session.handle(AgentMsg::Ask {
            ask: bytes_ask(tid, CAPTURE_BYTES, capture),
        });
        let g = grant(n).await;
        if !g.granted {
            let why = g.reason.unwrap_or_default();
            assert!(why.starts_with("budget.bytes_per_day: "), "{why}");
            return got;
        }
        got.push(g.bytes.expect("a grant of bytes says how many"));
    }
    panic!("the pool never ran out: {got:?}");
}

/// Four nodes ask the bytes pool at once, five asks each of 300 000 bytes (their own shares
/// covering the captures): the pool of 1 000 001 grants 300 000 three times, then the
/// 100 001 left (worth a capture), then nothing; the other asks are refused naming
/// `budget.bytes_per_day`. A repeated ask gets the same bytes without taking more.
async fn concurrent_byte_asks_never_grant_more_than_the_pool(b: Backend) {
    let Some(h) = Harness::new(b).await else {
        return;
    };
    let _timers = h.state.hub.start().await.unwrap();
    let mut n = nodes(&h.state, &["edge0", "edge1", "edge2", "edge3"]).await;
    let tid = add_trigger(&h, &h.state, &bytes_body(&h, 2 * POOL_BYTES + 1)).await;
    let pool = edgecap_model::trigger::pooled_bytes(2 * POOL_BYTES + 1);
    assert_eq!(pool, POOL_BYTES + 1);
    let mut asked = Vec::new();
    for node in n.iter_mut() {
        for _ in 0..5 {
            let a = bytes_ask(&tid, CAPTURE_BYTES, false);
            asked.push((node.session.name().to_owned(), a.clone()));
            node.session.handle(AgentMsg::Ask { ask: a });
        }
    }
    let mut granted: Vec<(usize, String, u64)> = Vec::new();
    let mut refused = Vec::new();
    for (i, node) in n.iter_mut().enumerate() {
        for _ in 0..5 {
            let g = grant(node).await;
            if g.granted {
                granted.push((i, g.capture_id, g.bytes.unwrap()));
            } else {
                refused.push(g.reason.unwrap_or_default());
            }
        }
    }
    let total: u64 = granted.iter().map(|g| g.2).sum();
    assert_eq!(total, pool, "{granted:?}");
    let mut sizes: Vec<u64> = granted.iter().map(|g| g.2).collect();
    sizes.sort_unstable();
    assert_eq!(
        sizes,
        [
            pool - 3 * CAPTURE_BYTES,
            CAPTURE_BYTES,
            CAPTURE_BYTES,
            CAPTURE_BYTES
        ]
    );
    assert_eq!(refused.len(), 16);
    for r in &refused {
        assert!(r.starts_with("budget.bytes_per_day: "), "{r}");
    }
    assert_eq!(h.count("trigger_byte_grants").await, 4);
    assert_eq!(h.count("trigger_grants").await, 0, "no capture was asked");
    // The same ask again: the same bytes, not counted twice.
    let (gi, gid, gb) = granted[0].clone();
    let again = Ask {
        capture_id: gid,
        ..asked[0].1.clone()
    };
    n[gi].session.handle(AgentMsg::Ask { ask: again });
    let g = grant(&mut n[gi]).await;
    assert_eq!((g.granted, g.bytes), (true, Some(gb)));
    assert_eq!(h.count("trigger_byte_grants").await, 4);
    // An ask for more than a capture of this trigger may write is refused as such.
    n[0].session.handle(AgentMsg::Ask {
        ask: bytes_ask(&tid, CAPTURE_BYTES + 1, false),
    });
    let g = grant(&mut n[0]).await;
    assert!(
        !g.granted && g.reason.as_deref().unwrap().contains("bytes: "),
        "{g:?}"
    );
}

/// A node joining in the middle of a day: its bytes share is 0 until the split settles a day
/// after everyone heard it (the others' fall at once), and it captures with bytes of the
/// pool; the capture is recorded with the granted byte limit.
async fn a_node_joining_mid_day_takes_no_local_bytes_and_captures_with_pool_bytes(b: Backend) {
    let Some(h) = Harness::new(b).await else {
        return;
    };
    let _timers = h.state.hub.start().await.unwrap();
    let mut n = nodes(&h.state, &["edge0", "edge1"]).await;
    let tid = add_trigger(&h, &h.state, &bytes_body(&h, PER_DAY)).await;
    for node in n.iter_mut() {
        triggers_until(node, |l| bytes_share(l) == Some(PER_DAY / 4)).await;
    }
    let mut e2 = trigger_node(&h.state, "edge2", "fra");
    let l2 = triggers_until(&mut e2, |l| l.len() == 1).await;
    assert_eq!(bytes_share(&l2), Some(0), "{l2:?}");
    // The others fall at once: 1 000 000 over three is 333 334, 333 333, 333 333.
    triggers_until(&mut n[1], |l| bytes_share(l) == Some(333_333)).await;
    // edge2 has no share of either: it asks the pools for the capture and its bytes.
    e2.session.handle(AgentMsg::Ask {
        ask: bytes_ask(&tid, CAPTURE_BYTES, true),
    });
    let g = grant(&mut e2).await;
    assert_eq!((g.granted, g.bytes), (true, Some(CAPTURE_BYTES)), "{g:?}");
    let t = crate::firings::now();
    e2.session.handle(AgentMsg::Fired {
        firing: edgecap_server::sim::firing(
            &tid,
            crate::firings::victim(),
            (t - 3, t),
            80000.0,
            Some((
                &g.capture_id,
                edgecap_model::firing::FiredCapture {
                    byte_limit: CAPTURE_BYTES,
                    ..crate::firings::fired_capture()
                },
            )),
            None,
        ),
    });
    crate::firings::recorded(&h, &g.capture_id).await;
    // An hour after: its captures share (10 of the local 30) holds, its bytes share not.
    splits::backdate(&h.state.db, &tid, HOUR).await.unwrap();
    let l = triggers_until(&mut e2, |l| {
        l.len() == 1 && l[0].budget.captures_per_hour > 0
    })
    .await;
    assert_eq!(bytes_share(&l), Some(0));
    // (Once the hub recorded that it heard that.) A day less a minute after: still 0; a
    // day after: its share.
    let mut most = BTreeMap::new();
    watch(&mut e2, &mut most, POLL * 2).await;
    splits::backdate(&h.state.db, &tid, DAY - 60).await.unwrap();
    watch(&mut e2, &mut most, POLL * 2).await;
    assert!(
        most.get("edge2").is_none_or(|m| *m == 0),
        "edge2 was told {most:?}"
    );
    splits::backdate(&h.state.db, &tid, 60).await.unwrap();
    triggers_until(&mut e2, |l| bytes_share(l) == Some(333_333)).await;
}

/// Over a simulated day of nodes joining and leaving the scope, the most each node was told
/// of its bytes share (what it may have spent in the day) and the pool's grants add up to
/// no more than `bytes_per_day`; a day later the shares grow and the pool is full again.
async fn over_a_day_of_nodes_joining_and_leaving_the_bytes_stay_within_the_budget(b: Backend) {
    let Some(h) = Harness::new(b).await else {
        return;
    };
    let _timers = h.state.hub.start().await.unwrap();
    let db = &h.state.db;
    let mut n = nodes(&h.state, &["edge0", "edge1"]).await;
    let tid = add_trigger(&h, &h.state, &bytes_body(&h, PER_DAY)).await;
    let mut most: BTreeMap<String, u64> = BTreeMap::new();
    for node in n.iter_mut() {
        triggers_until(node, |l| bytes_share(l) == Some(PER_DAY / 4)).await;
        most.insert(node.session.name().to_owned(), PER_DAY / 4);
    }
    // Morning: edge2 joins; edge0 and edge1 fall, edge2 holds 0 and lives on the pool.
    let mut e2 = trigger_node(&h.state, "edge2", "fra");
    watch(&mut e2, &mut most, POLL * 2).await;
    let mut granted: u64 = ask_until_refused(&mut e2, &tid, true).await.iter().sum();
    assert_eq!(granted, POOL_BYTES, "the pool is spent to its last byte");
    // Noon: edge1 leaves the scope (comes back as a node of site ams); nobody grows.
    drop(n.pop());
    h.state.hub.barrier().await;
    let mut ams = trigger_node(&h.state, "edge1", "ams");
    triggers_until(&mut ams, <[_]>::is_empty).await;
    for node in [&mut n[0], &mut e2] {
        watch(node, &mut most, POLL * 2).await;
    }
    // Evening (a day less a minute after): still nothing grows, the pool is still spent.
    splits::backdate(db, &tid, DAY - 60).await.unwrap();
    edgecap_server::db::events::backdate_grants(db, &tid, DAY - 60)
        .await
        .unwrap();
    for node in [&mut n[0], &mut e2] {
        watch(node, &mut most, POLL * 2).await;
    }
    granted += ask_until_refused(&mut e2, &tid, true)
        .await
        .iter()
        .sum::<u64>();
    let told: u64 = most.values().sum();
    assert!(
        told + granted <= PER_DAY,
        "in one day the nodes were told {most:?} and the pool granted {granted}: more than \
         {PER_DAY}"
    );
    assert_eq!(most.get("edge2").copied().unwrap_or(0), 0, "{most:?}");
    // The next day (a day after every node last heard its shares, which the hourly split
    // settling in the evening told them anew): the bytes split settles (edge0 and edge2
    // 500 000 each), the pool is full again.
    splits::backdate(db, &tid, DAY).await.unwrap();
    edgecap_server::db::events::backdate_grants(db, &tid, DAY)
        .await
        .unwrap();
    triggers_until(&mut e2, |l| bytes_share(l) == Some(PER_DAY / 4)).await;
    triggers_until(&mut n[0], |l| bytes_share(l) == Some(PER_DAY / 4)).await;
    let next: u64 = ask_until_refused(&mut e2, &tid, true).await.iter().sum();
    assert_eq!(next, POOL_BYTES);
}

/// Replicas (PostgreSQL): nodes on two replicas ask the bytes pool at once; the row lock
/// makes one decision across both, so the grants add up to the pool and no more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn byte_asks_on_two_replicas_share_one_pool() {
    let Some(h) = Harness::new(Backend::Postgres).await else {
        return;
    };
    let _t1 = h.state.hub.start().await.unwrap();
    let s2 = AppState::open(&h.db_url, crate::common::test_config())
        .await
        .unwrap();
    let _t2 = s2.hub.start().await.unwrap();
    let mut a = nodes(&h.state, &["edge0"]).await.pop().unwrap();
    let mut b = nodes(&s2, &["edge1"]).await.pop().unwrap();
    h.state.hub.barrier().await;
    s2.hub.barrier().await;
    let tid = add_trigger(&h, &h.state, &bytes_body(&h, PER_DAY)).await;
    for n in [&mut a, &mut b] {
        triggers_until(n, |l| l.len() == 1).await;
    }
    for _ in 0..4 {
        for n in [&mut a, &mut b] {
            n.session.handle(AgentMsg::Ask {
                ask: bytes_ask(&tid, CAPTURE_BYTES, false),
            });
        }
    }
    let mut total = 0;
    let mut granted = 0;
    for n in [&mut a, &mut b] {
        for _ in 0..4 {
            let g = grant(n).await;
            if g.granted {
                granted += 1;
                total += g.bytes.unwrap();
            } else {
                let why = g.reason.unwrap_or_default();
                assert!(why.starts_with("budget.bytes_per_day: "), "{why}");
            }
        }
    }
    // 1 000 000: three of 300 000 and the 100 000 left.
    assert_eq!((total, granted), (POOL_BYTES, 4));
}

/// A node whose agent acknowledges its trigger lists (`FEATURE_TRIGGERS_HEARD`, as
/// `edgecap agent` does).
fn acking_node(state: &AppState, name: &str) -> FakeNode {
    let mut info = node_info(name, &[("site", "fra")], &["pre-firewall", "egress"]);
    info.features = vec![
        FEATURE_BOUNDARY.into(),
        FEATURE_TRIGGERS.into(),
        FEATURE_TRIGGERS_HEARD.into(),
    ];
    node_on(state, info)
}

/// The next list sent to `n` whose share of `captures_per_hour` is `want`, not acknowledged:
/// its `ack`.
async fn sent_unheard(n: &mut FakeNode, want: Option<u64>) -> u64 {
    let until = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let left = until.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, n.rx.recv()).await {
            Ok(Some(ServerMsg::Triggers { triggers, ack })) if share(&triggers) == want => {
                return ack.expect("a node announcing triggers-heard is sent an ack");
            }
            Ok(Some(_)) => continue,
            other => panic!(
                "{}: no list with share {want:?}: {other:?}",
                n.session.name()
            ),
        }
    }
}

/// Acknowledges like an agent: the next list with share `want`, and every list after it
/// for `d` (each must keep that share).
async fn hears(n: &mut FakeNode, want: Option<u64>, d: Duration) {
    let ack = sent_unheard(n, want).await;
    n.session.handle(AgentMsg::Heard { ack });
    acks_for(n, want, d).await;
}

/// For `d`, acknowledges every list `n` is sent, each of which must keep share `want`.
async fn acks_for(n: &mut FakeNode, want: Option<u64>, d: Duration) {
    let until = tokio::time::Instant::now() + d;
    loop {
        let left = until.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, n.rx.recv()).await {
            Ok(Some(ServerMsg::Triggers { triggers, ack })) => {
                assert_eq!(share(&triggers), want, "{}", n.session.name());
                n.session.handle(AgentMsg::Heard {
                    ack: ack.expect("an ack"),
                });
            }
            Ok(Some(_)) => continue,
            Ok(None) | Err(_) => return,
        }
    }
}

/// An agent that acknowledges has heard a split only once it says so: a list written to a
/// connection that breaks before the agent reads it is not heard (the agent may still be
/// spending its older, bigger share while away), nor is one written to a live connection
/// but not yet acknowledged. The split settles an hour after the acknowledgement.
async fn a_split_is_heard_when_the_agent_acknowledges_it_not_when_it_is_written(b: Backend) {
    let Some(h) = Harness::new(b).await else {
        return;
    };
    let _timers = h.state.hub.start().await.unwrap();
    let mut e0 = acking_node(&h.state, "edge0");
    let mut e1 = acking_node(&h.state, "edge1");
    hears(&mut e0, None, Duration::ZERO).await;
    hears(&mut e1, None, Duration::ZERO).await;
    let tid = add_trigger(&h, &h.state, &trigger_body(&h, 1_000_000, PER_HOUR)).await;
    hears(&mut e0, Some(2), Duration::ZERO).await;
    hears(&mut e1, Some(2), Duration::ZERO).await;
    assert_eq!(latest(&h, &tid).await, (1, true));
    // edge2 joins: edge1 falls to 1, but its connection breaks before it reads the list.
    let mut e2 = acking_node(&h.state, "edge2");
    hears(&mut e2, Some(0), Duration::ZERO).await;
    sent_unheard(&mut e1, Some(1)).await;
    drop(e1);
    h.state.hub.barrier().await;
    hears(&mut e0, Some(2), POLL * 2).await;
    assert_eq!(latest(&h, &tid).await, (2, false));
    // Two hours on, edge1 has not heard: nothing settles, edge2 stays at 0.
    splits::backdate(&h.state.db, &tid, 2 * HOUR).await.unwrap();
    acks_for(&mut e2, Some(0), POLL * 2).await;
    assert_eq!(latest(&h, &tid).await, (2, false));
    // edge1 comes back and is sent its share, but has not said it heard: still nothing.
    let mut e1 = acking_node(&h.state, "edge1");
    let ack = sent_unheard(&mut e1, Some(1)).await;
    splits::backdate(&h.state.db, &tid, 2 * HOUR).await.unwrap();
    acks_for(&mut e2, Some(0), POLL * 2).await;
    assert_eq!(latest(&h, &tid).await, (2, false));
    // It acknowledges; an hour later the split settles and edge2 takes its share.
    e1.session.handle(AgentMsg::Heard { ack });
    h.state.hub.barrier().await;
    acks_for(&mut e2, Some(0), POLL * 2).await;
    assert_eq!(latest(&h, &tid).await, (2, false), "within the hour");
    splits::backdate(&h.state.db, &tid, HOUR).await.unwrap();
    hears(&mut e2, Some(1), POLL).await;
    assert_eq!(latest(&h, &tid).await, (2, true));
}
