//! Quotas: each account quota refuses with 429 in the envelope, its own code and a message
//! naming the limit, its value and the use (with `Retry-After` for the rolling windows), and
//! stores nothing; the per-node cap refuses whatever the account; a burst of creates from
//! many clients at once never passes a quota; `GET /quotas` shows limits and use. Simple
//! (look-back) requests per minute likewise, also through two replicas on PostgreSQL.

use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Request, StatusCode};
use edgecap_model::{AgentMsg, Outcome, codes};
use edgecap_server::{AppState, quota};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::both_databases;
use crate::common::{Backend, FakeNode, Harness, assert_error, test_config};

both_databases!(
    running_captures_are_capped_and_free_again_when_one_ends,
    captures_per_hour_are_capped_with_retry_after,
    rules_per_node_count_conjunctions_times_hooks,
    bytes_per_day_refuse_a_budget_over_what_remains,
    the_per_node_cap_holds_whatever_the_account,
    a_burst_of_creates_never_passes_the_running_quota,
    the_quotas_endpoint_shows_limits_and_use,
    a_second_simple_request_within_the_minute_is_refused_naming_the_limit,
    an_account_allowed_n_simple_requests_per_minute_gets_n,
    a_burst_of_simple_requests_gets_exactly_the_limit,
);

/// One create through the router; status, headers and body.
async fn post(
    state: &AppState,
    token: &str,
    path: &str,
    body: &str,
) -> (StatusCode, HeaderMap, Value) {
    let mut req = Request::builder()
        .method("POST")
        .uri(path)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap();
    let peer = std::net::SocketAddr::from(([127, 0, 0, 1], 40000));
    req.extensions_mut().insert(ConnectInfo(peer));
    req.extensions_mut()
        .insert(edgecap_server::serve::Link { peer, tls: false });
    let resp = edgecap_server::app(state.clone())
        .oneshot(req)
        .await
        .unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, headers, serde_json::from_slice(&bytes).unwrap())
}

async fn create(h: &Harness, extra: Value) -> (StatusCode, HeaderMap, Value) {
    post(
        &h.state,
        &h.token,
        &h.acc("pcaps"),
        &h.create_body("fra", extra),
    )
    .await
}

async fn set(
    h: &Harness,
    running: Option<u64>,
    per_hour: Option<u64>,
    rules: Option<u64>,
    bytes: Option<u64>,
) {
    let changes = quota::Changes {
        running: running.map(Some),
        per_hour: per_hour.map(Some),
        rules_per_node: rules.map(Some),
        bytes_per_day: bytes.map(Some),
        simple_per_minute: None,
    };
    quota::set(&h.state.db, &h.account.id, changes)
        .await
        .unwrap();
}

fn node(h: &Harness, name: &str) -> FakeNode {
    h.node(name, &[("site", "fra")], &["pre-firewall", "post-firewall"])
}

async fn running_captures_are_capped_and_free_again_when_one_ends(b: Backend) {
    let Some(h) = Harness::new(b).await else {
        return;
    };
    let n = node(&h, "edge0");
    set(&h, Some(2), None, None, None).await;
    let first = h.create("fra", json!({})).await;
    h.create("fra", json!({})).await;
    let (s, headers, v) = create(&h, json!({})).await;
    assert_error(
        s,
        StatusCode::TOO_MANY_REQUESTS,
        &v,
        codes::QUOTA_EXCEEDED.into(),
        "running captures: 2 of 2 in use",
    );
    assert!(headers.get("retry-after").is_none(), "{headers:?}");
    assert_eq!(h.count("captures").await, 2);
    assert_eq!(h.count("capture_nodes").await, 2);
    // Another account is not limited by this one's use.
    let (s, _, v) = post(
        &h.state,
        &h.other_token,
        &format!("/client/v4/accounts/{}/pcaps", h.other.id),
        &h.create_body("fra", json!({})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // A finished capture no longer counts.
    end(&h, &n, &first).await;
    let (s, _, v) = create(&h, json!({})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

/// Ends a capture as its node would: `done`, failed, with no bytes.
async fn end(h: &Harness, node: &FakeNode, id: &str) {
    node.session.handle(AgentMsg::Done {
        outcome: Outcome {
            capture_id: id.to_owned(),
            ok: false,
            error: Some("ended by the test".into()),
            packets: 0,
            bytes: 0,
            lost: 0,
            stop_reason: None,
            file: None,
        },
    });
    h.state.hub.barrier().await;
}

async fn captures_per_hour_are_capped_with_retry_after(b: Backend) {
    let Some(h) = Harness::new(b).await else {
        return;
    };
    let n = node(&h, "edge0");
    set(&h, Some(100), Some(2), None, None).await;
    for _ in 0..2 {
        let id = h.create("fra", json!({})).await;
        end(&h, &n, &id).await;
    }
    let (s, headers, v) = create(&h, json!({})).await;
    assert_error(
        s,
        StatusCode::TOO_MANY_REQUESTS,
        &v,
        codes::QUOTA_EXCEEDED.into(),
        "captures per hour: 2 of 2 created in the last hour",
    );
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((3500..=3600).contains(&retry), "{retry}");
    assert_eq!(h.count("captures").await, 2);
}

async fn rules_per_node_count_conjunctions_times_hooks(b: Backend) {
    let Some(h) = Harness::new(b).await else {
        return;
    };
    let _n = node(&h, "edge0");
    set(&h, None, None, Some(5), None).await;
    // One conjunction at pre-firewall (1 hook) and post-firewall (input, forward): 3 rules.
    let two_points = json!({"points": ["pre-firewall", "post-firewall"]});
    h.create("fra", two_points.clone()).await;
    let (s, _, v) = create(&h, two_points).await;
    assert_error(
        s,
        StatusCode::TOO_MANY_REQUESTS,
        &v,
        codes::QUOTA_EXCEEDED.into(),
        "rules per node: 3 of 5 in use on node edge0; this capture needs 3 more",
    );
    // Two more fit.
    let (s, _, v) = create(&h, json!({"points": ["pre-firewall"]})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // "port" is source or destination, each for IPv4 and IPv6: 8 conjunctions, on three
    // hooks 24 rules.
    set(&h, None, None, Some(5), None).await;
    let (s, _, v) = create(
        &h,
        json!({"filter_v1": null, "filter": "udp port 53 or tcp port 80",
               "points": ["pre-firewall", "post-firewall"]}),
    )
    .await;
    assert_error(
        s,
        StatusCode::TOO_MANY_REQUESTS,
        &v,
        codes::QUOTA_EXCEEDED.into(),
        "rules per node: this capture alone needs 24 on each node",
    );
    assert_eq!(h.count("captures").await, 2);
}

async fn bytes_per_day_refuse_a_budget_over_what_remains(b: Backend) {
    let Some(h) = Harness::new(b).await else {
        return;
    };
    let _n = node(&h, "edge0");
    set(&h, None, None, None, Some(1000)).await;
    h.create("fra", json!({"byte_limit": 600})).await;
    let (s, headers, v) = create(&h, json!({"byte_limit": 600})).await;
    assert_error(
        s,
        StatusCode::TOO_MANY_REQUESTS,
        &v,
        codes::QUOTA_EXCEEDED.into(),
        "bytes per day: 600 of 1000 used in the last 24 hours; this capture (its byte_limit \
         of 600) needs more than the 400 that remain: set byte_limit to at most 400",
    );
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((86_000..=86_400).contains(&retry), "{retry}");
    // Without a byte limit the account's maximum is the budget.
    let (s, _, v) = create(&h, json!({})).await;
    assert_error(
        s,
        StatusCode::TOO_MANY_REQUESTS,
        &v,
        codes::QUOTA_EXCEEDED.into(),
        "without a byte_limit it may write the account's maximum, 1000000000",
    );
    // What remains is granted.
    let (s, _, v) = create(&h, json!({"byte_limit": 400})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(h.count("captures").await, 2);
}

async fn the_per_node_cap_holds_whatever_the_account(b: Backend) {
    let config = edgecap_server::Config {
        max_captures_per_node: 1,
        ..test_config()
    };
    let Some(h) = Harness::with_config(b, config).await else {
        return;
    };
    let _a = h.node("edge0", &[("site", "fra")], &["pre-firewall"]);
    let _b = h.node("edge1", &[("site", "ord")], &["pre-firewall"]);
    h.create("fra", json!({})).await;
    let (s, _, v) = post(
        &h.state,
        &h.other_token,
        &format!("/client/v4/accounts/{}/pcaps", h.other.id),
        &h.create_body("fra", json!({})),
    )
    .await;
    assert_error(
        s,
        StatusCode::TOO_MANY_REQUESTS,
        &v,
        codes::NODE_FULL.into(),
        "node edge0 runs 1 of 1 captures",
    );
    // Another node has room.
    let (s, _, v) = post(
        &h.state,
        &h.other_token,
        &format!("/client/v4/accounts/{}/pcaps", h.other.id),
        &h.create_body("ord", json!({})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(h.count("captures").await, 2);
}

async fn a_burst_of_creates_never_passes_the_running_quota(b: Backend) {
    let Some(h) = Harness::new(b).await else {
        return;
    };
    // Each request selects another node, so only the account's lock serialises them.
    let _nodes: Vec<FakeNode> = (0..4)
        .map(|i| {
            h.node(
                &format!("edge{i}"),
                &[("site", &format!("s{i}"))],
                &["pre-firewall"],
            )
        })
        .collect();
    set(&h, Some(3), None, None, None).await;
    let path = h.acc("pcaps");
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let body = h.create_body(&format!("s{}", i % 4), json!({}));
            let (state, token, path) = (h.state.clone(), h.token.clone(), path.clone());
            tokio::spawn(async move { post(&state, &token, &path, &body).await })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        let (s, _, v) = tokio::time::timeout(Duration::from_secs(60), t)
            .await
            .expect("create within a minute")
            .unwrap();
        match s {
            StatusCode::OK => ok += 1,
            _ => assert_error(
                s,
                StatusCode::TOO_MANY_REQUESTS,
                &v,
                codes::QUOTA_EXCEEDED.into(),
                "running captures: 3 of 3 in use",
            ),
        }
    }
    assert_eq!(ok, 3);
    assert_eq!(h.count("captures").await, 3);
}

async fn the_quotas_endpoint_shows_limits_and_use(b: Backend) {
    let Some(h) = Harness::new(b).await else {
        return;
    };
    let _n = node(&h, "edge0");
    set(&h, Some(4), None, None, None).await;
    h.create(
        "fra",
        json!({"byte_limit": 700, "points": ["post-firewall"]}),
    )
    .await;
    let (s, v) = h.call("GET", &h.acc("quotas"), None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let q = &v["result"];
    let d = quota::Quotas::default();
    assert_eq!(
        q["running_captures"],
        json!({"limit": 4, "used": 1, "source": "account"})
    );
    assert_eq!(q["captures_per_hour"]["limit"], d.per_hour);
    assert_eq!(q["captures_per_hour"]["used"], 1);
    assert_eq!(q["captures_per_hour"]["source"], "default");
    assert_eq!(q["rules_per_node"]["used"], 2);
    assert_eq!(q["rules_per_node"]["by_node"], json!({"edge0": 2}));
    assert_eq!(q["bytes_per_day"]["used"], 700);
    assert_eq!(q["bytes_per_day"]["limit"], d.bytes_per_day);
    // Read scope is enough; another account's token is not.
    let (s, _) = h
        .call_as(Some(&h.other_token.clone()), "GET", &h.acc("quotas"), None)
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

async fn set_simple(state: &AppState, account: &str, per_minute: u64) {
    let changes = quota::Changes {
        simple_per_minute: Some(Some(per_minute)),
        ..quota::Changes::default()
    };
    quota::set(&state.db, account, changes).await.unwrap();
}

/// A node seen a moment ago and gone: a simple capture names it as not connected at once,
/// with no wait for an answer.
async fn gone_node(h: &Harness) {
    let gone = node(h, "edge-gone");
    h.state.hub.barrier().await;
    drop(gone);
    h.state.hub.barrier().await;
}

fn simple_body() -> String {
    json!({"type": "simple", "system": "magic-transit", "time_limit": 60, "packet_limit": 10,
           "filter_v1": {"protocol": 17}})
    .to_string()
}

async fn simple(state: &AppState, h: &Harness) -> (StatusCode, HeaderMap, Value) {
    post(state, &h.token, &h.acc("pcaps"), &simple_body()).await
}

/// Cloudflare's limit is the default: one simple request per minute per account.
async fn a_second_simple_request_within_the_minute_is_refused_naming_the_limit(b: Backend) {
    let Some(h) = Harness::new(b).await else {
        return;
    };
    gone_node(&h).await;
    let (s, _, v) = simple(&h.state, &h).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["result"]["type"], "simple", "{v}");
    let (s, headers, v) = simple(&h.state, &h).await;
    assert_error(
        s,
        StatusCode::TOO_MANY_REQUESTS,
        &v,
        codes::QUOTA_EXCEEDED.into(),
        "simple requests per minute: 1 of 1 granted in the last minute",
    );
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    // Nothing stored for the refused one; the count shows in the quotas.
    assert_eq!(h.count("captures").await, 1);
    assert_eq!(h.count("simple_requests").await, 1);
    let (_, v) = h.call("GET", &h.acc("quotas"), None).await;
    assert_eq!(
        v["result"]["simple_requests_per_minute"],
        json!({"limit": 1, "used": 1, "source": "default", "window_seconds": 60})
    );
    // Another account has its own minute; a full capture is not a simple request.
    let (s, _, v) = post(
        &h.state,
        &h.other_token,
        &format!("/client/v4/accounts/{}/pcaps", h.other.id),
        &simple_body(),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let _n = node(&h, "edge0");
    let (s, _, v) = create(&h, json!({})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

async fn an_account_allowed_n_simple_requests_per_minute_gets_n(b: Backend) {
    let Some(h) = Harness::new(b).await else {
        return;
    };
    gone_node(&h).await;
    set_simple(&h.state, &h.account.id, 3).await;
    for i in 0..3 {
        let (s, _, v) = simple(&h.state, &h).await;
        assert_eq!(s, StatusCode::OK, "request {i}: {v}");
    }
    let (s, _, v) = simple(&h.state, &h).await;
    assert_error(
        s,
        StatusCode::TOO_MANY_REQUESTS,
        &v,
        codes::QUOTA_EXCEEDED.into(),
        "simple requests per minute: 3 of 3 granted in the last minute",
    );
    assert_eq!(h.count("captures").await, 3);
    let (_, v) = h.call("GET", &h.acc("quotas"), None).await;
    assert_eq!(
        v["result"]["simple_requests_per_minute"]["source"],
        "account"
    );
    assert_eq!(v["result"]["simple_requests_per_minute"]["limit"], 3);
}

/// 16 concurrent simple requests from four clients (tokens) of one account allowed 3 per
/// minute get exactly 3; on PostgreSQL half of them go through a second replica.
async fn a_burst_of_simple_requests_gets_exactly_the_limit(b: Backend) {
    let Some(h) = Harness::new(b).await else {
        return;
    };
    gone_node(&h).await;
    set_simple(&h.state, &h.account.id, 3).await;
    let second = match b {
        Backend::Postgres => AppState::open(&h.db_url, (*h.state.config).clone())
            .await
            .unwrap(),
        Backend::Sqlite => h.state.clone(),
    };
    let mut tokens = vec![h.token.clone()];
    for i in 0..3 {
        let (_, t) = edgecap_server::db::tokens::create(
            &h.state.db,
            edgecap_server::db::tokens::Kind::Api,
            Some(&h.account.id),
            &format!("client{i}"),
        )
        .await
        .unwrap();
        tokens.push(t);
    }
    let path = h.acc("pcaps");
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let state = if i % 2 == 0 {
                h.state.clone()
            } else {
                second.clone()
            };
            let (token, path) = (tokens[i % 4].clone(), path.clone());
            tokio::spawn(async move { post(&state, &token, &path, &simple_body()).await })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        let (s, _, v) = tokio::time::timeout(Duration::from_secs(60), t)
            .await
            .expect("answered within a minute")
            .unwrap();
        match s {
            StatusCode::OK => ok += 1,
            _ => assert_error(
                s,
                StatusCode::TOO_MANY_REQUESTS,
                &v,
                codes::QUOTA_EXCEEDED.into(),
                "simple requests per minute: 3 of 3",
            ),
        }
    }
    assert_eq!(ok, 3);
    assert_eq!(h.count("captures").await, 3);
    assert_eq!(h.count("simple_requests").await, 3);
}
