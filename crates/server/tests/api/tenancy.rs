//! Tenancy through the API: the operator API and its scope, the account as its own token sees
//! it, and what a restricted account's create may do (prefixes, node set, filters, agents
//! without the boundary).

use axum::http::StatusCode;
use edgecap_model::ServerMsg;
use edgecap_server::auth::Scope;
use serde_json::{Value, json};

use crate::both_databases;
use crate::common::{
    Backend, Harness, assert_error, assert_field_error, restricted_account, token_with_scopes,
};

both_databases!(
    the_operator_api_sets_and_shows_an_accounts_tenancy,
    hostile_tenancy_bodies_change_nothing,
    only_the_operator_scope_reaches_the_operator_api,
    a_restricted_account_captures_only_inside_its_prefixes_and_node_set,
    a_pending_part_goes_again_only_to_an_agent_that_bounds_it,
);

const OUTSIDE_TENANCY: u64 = edgecap_model::codes::OUTSIDE_TENANCY as u64;

fn operator_path(account: &str) -> String {
    format!("/client/v4/operator/accounts/{account}/tenancy")
}

async fn operator(h: &Harness) -> String {
    token_with_scopes(&h.state, &h.account.id, &[Scope::Operator]).await
}

async fn the_operator_api_sets_and_shows_an_accounts_tenancy(b: Backend) {
    let Some(h) = Harness::new(b).await else {
        return;
    };
    let op = operator(&h).await;
    // Accounts of the harness are unrestricted, as accounts from before tenancy are.
    let (s, v) = h
        .call_as(Some(&op), "GET", &operator_path(&h.other.id), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        v["result"],
        json!({"account_id": h.other.id, "unrestricted": true, "prefixes": [], "nodes": []})
    );
    let body = json!({
        "prefixes": ["2001:db8:7::/64", "198.18.7.0/24", "198.18.7.9"],
        "nodes": ["site=fra", "edge0"],
        "unrestricted": false,
    });
    let (s, v) = h
        .call_as(
            Some(&op),
            "PUT",
            &operator_path(&h.other.id),
            Some(&body.to_string()),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // Normalised: the host inside the /24 is covered, selectors sorted.
    let want = json!({
        "account_id": h.other.id, "unrestricted": false,
        "prefixes": ["198.18.7.0/24", "2001:db8:7::/64"], "nodes": ["edge0", "site=fra"],
    });
    assert_eq!(v["result"], want);
    let (_, v) = h
        .call_as(Some(&op), "GET", &operator_path(&h.other.id), None)
        .await;
    assert_eq!(v["result"], want);
    // The account sees it with its own token, with its limits and a place for quotas.
    let (s, v) = h
        .call_as(
            Some(&h.other_token),
            "GET",
            &format!("/client/v4/accounts/{}", h.other.id),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let a = &v["result"];
    assert_eq!(a["id"], h.other.id.as_str());
    assert_eq!(a["unrestricted"], false);
    assert_eq!(a["prefixes"], want["prefixes"]);
    assert_eq!(a["nodes"], want["nodes"]);
    assert_eq!(a["settings"]["max_packet_limit"], 10000);
    // Its quotas with their use, as GET .../quotas shows them.
    assert_eq!(a["quotas"]["running_captures"]["limit"], 5, "{a}");
    assert_eq!(a["quotas"]["running_captures"]["used"], 0, "{a}");
    assert_eq!(a["quotas"]["bytes_per_day"]["source"], "default", "{a}");
    // ... and not another account's.
    let (s, _) = h
        .call("GET", &format!("/client/v4/accounts/{}", h.other.id), None)
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

async fn hostile_tenancy_bodies_change_nothing(b: Backend) {
    let Some(h) = Harness::new(b).await else {
        return;
    };
    let op = operator(&h).await;
    let path = operator_path(&h.other.id);
    let good = json!({"prefixes": ["198.18.7.0/24"], "nodes": [], "unrestricted": false});
    let (s, _) = h
        .call_as(Some(&op), "PUT", &path, Some(&good.to_string()))
        .await;
    assert_eq!(s, StatusCode::OK);
    let many: Vec<String> = (0..65).map(|i| format!("198.18.{i}.0/24")).collect();
    for (body, pointer) in [
        (
            json!({"prefixes": ["198.18.7.1/24"], "nodes": [], "unrestricted": false}),
            "/prefixes",
        ),
        (
            json!({"prefixes": ["not-an-ip"], "nodes": [], "unrestricted": false}),
            "/prefixes",
        ),
        (
            json!({"prefixes": ["198.18.0.0/33"], "nodes": [], "unrestricted": false}),
            "/prefixes",
        ),
        (
            json!({"prefixes": many, "nodes": [], "unrestricted": false}),
            "/prefixes",
        ),
        (
            json!({"prefixes": "198.18.7.0/24", "nodes": [], "unrestricted": false}),
            "/prefixes",
        ),
        (
            json!({"prefixes": [7], "nodes": [], "unrestricted": false}),
            "/prefixes",
        ),
        (json!({"nodes": [], "unrestricted": false}), "/prefixes"),
        (
            json!({"prefixes": [], "nodes": ["a b"], "unrestricted": false}),
            "/nodes",
        ),
        (
            json!({"prefixes": [], "nodes": ["site="], "unrestricted": false}),
            "/nodes",
        ),
        (
            json!({"prefixes": [], "nodes": [{"x": 1}], "unrestricted": false}),
            "/nodes",
        ),
        (
            json!({"prefixes": [], "nodes": [], "unrestricted": "yes"}),
            "/unrestricted",
        ),
        (json!({"prefixes": [], "nodes": []}), "/unrestricted"),
        (
            json!({"prefixes": [], "nodes": [], "unrestricted": true, "admin": true}),
            "/admin",
        ),
    ] {
        let (s, v) = h
            .call_as(Some(&op), "PUT", &path, Some(&body.to_string()))
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}: {v}");
        assert_field_error(s, &v, 1001, pointer);
    }
    let (s, v) = h.call_as(Some(&op), "PUT", &path, Some("[1]")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (_, v) = h.call_as(Some(&op), "GET", &path, None).await;
    assert_eq!(
        v["result"]["prefixes"],
        json!(["198.18.7.0/24"]),
        "a refused body changed the tenancy: {v}"
    );
    assert_eq!(v["result"]["unrestricted"], false);
    // Accounts that do not exist, or are not ids.
    let (s, v) = h
        .call_as(
            Some(&op),
            "PUT",
            &operator_path("0123456789abcdef0123456789abcdef"),
            Some(&good.to_string()),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    let (s, v) = h
        .call_as(Some(&op), "GET", &operator_path("nope"), None)
        .await;
    assert_field_error(s, &v, 1001, "/account_id");
}

async fn only_the_operator_scope_reaches_the_operator_api(b: Backend) {
    let Some(h) = Harness::new(b).await else {
        return;
    };
    let path = operator_path(&h.other.id);
    let body = json!({"prefixes": [], "nodes": [], "unrestricted": false}).to_string();
    // An account's full default token, and one with every scope but operator.
    let all_but = token_with_scopes(
        &h.state,
        &h.account.id,
        &[Scope::Read, Scope::Write, Scope::Tokens, Scope::Nodes],
    )
    .await;
    for token in [&h.token, &all_but] {
        for (method, body) in [("GET", None), ("PUT", Some(body.as_str()))] {
            let (s, v) = h.call_as(Some(token), method, &path, body).await;
            assert_error(s, StatusCode::FORBIDDEN, &v, 10001, "`operator` scope");
        }
    }
    let (s, _) = h.call_as(None, "GET", &path, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // The account's own token API never mints it, not even for an operator token.
    let op = token_with_scopes(&h.state, &h.account.id, &[Scope::Operator, Scope::Tokens]).await;
    for token in [&h.token, &op] {
        let (s, v) = h
            .call_as(
                Some(token),
                "POST",
                &h.acc("tokens"),
                Some(r#"{"name": "x", "scopes": ["read", "operator"]}"#),
            )
            .await;
        assert_field_error(s, &v, 1001, "/scopes");
        assert!(v.to_string().contains("edgecap admin token create"), "{v}");
    }
    // Nothing was changed by the refusals.
    let (_, v) = h.call_as(Some(&op), "GET", &path, None).await;
    assert_eq!(v["result"]["unrestricted"], true, "{v}");
}

fn assigned(msg: ServerMsg) -> edgecap_model::Assignment {
    match msg {
        ServerMsg::Assign { assignment } => assignment,
        other => panic!("expected assign, got {other:?}"),
    }
}

async fn a_restricted_account_captures_only_inside_its_prefixes_and_node_set(b: Backend) {
    let Some(h) = Harness::new(b).await else {
        return;
    };
    let mut e0 = h.node("edge0", &[("site", "ord")], &["pre-firewall"]);
    let mut e1 = h.node("edge1", &[("site", "fra")], &["pre-firewall"]);
    let mut e2 = h.node("edge2", &[("site", "ord")], &["pre-firewall"]);
    // An agent from before tenancy: no tenant-boundary in its hello.
    let mut e3 = h.node_with_features("edge3", &[("site", "fra")], &["pre-firewall"], &[]);
    let (acc, token) = restricted_account(
        &h.state,
        "tenant",
        &["198.18.7.0/24", "2001:db8:7::/64"],
        &["edge0", "site=fra"],
    )
    .await;
    let (bare, bare_token) = restricted_account(&h.state, "bare", &[], &[]).await;
    let pcaps = |a: &str| format!("/client/v4/accounts/{a}/pcaps");
    let post = |token: String, account: String, extra: Value| {
        let h = &h;
        let pcaps = &pcaps;
        async move {
            let mut body: Value = serde_json::from_str(&h.create_body("fra", json!({}))).unwrap();
            body.as_object_mut().unwrap().remove("colo_name");
            for (k, v) in extra.as_object().unwrap() {
                body[k] = v.clone();
            }
            h.call_as(
                Some(&token),
                "POST",
                &pcaps(&account),
                Some(&body.to_string()),
            )
            .await
        }
    };
    // Restricted without prefixes: 403 saying what the operator must do.
    let (s, v) = post(
        bare_token.clone(),
        bare.id.clone(),
        json!({"colo_name": "fra"}),
    )
    .await;
    assert_error(
        s,
        StatusCode::FORBIDDEN,
        &v,
        OUTSIDE_TENANCY,
        "edgecap admin account prefixes add",
    );
    // Nodes outside the set, named: 403 naming them.
    let (s, v) = post(
        token.clone(),
        acc.id.clone(),
        json!({"nodes": ["edge0", "edge2"]}),
    )
    .await;
    assert_error(
        s,
        StatusCode::FORBIDDEN,
        &v,
        OUTSIDE_TENANCY,
        "node edge2 outside",
    );
    let (s, v) = post(token.clone(), acc.id.clone(), json!({"colo_name": "edge2"})).await;
    assert_error(
        s,
        StatusCode::FORBIDDEN,
        &v,
        OUTSIDE_TENANCY,
        "node edge2 outside",
    );
    // An agent that would not bound the rule, named: 403 saying so.
    let (s, v) = post(token.clone(), acc.id.clone(), json!({"nodes": ["edge3"]})).await;
    assert_error(
        s,
        StatusCode::FORBIDDEN,
        &v,
        OUTSIDE_TENANCY,
        "tenant boundary",
    );
    // Filters that can never match inside the prefixes: 400 naming the field.
    let (s, v) = post(
        token.clone(),
        acc.id.clone(),
        json!({"colo_name": "fra", "filter_v1": {},
               "filter": "src net 198.18.8.0/24 and dst net 198.18.8.0/24"}),
    )
    .await;
    assert_field_error(s, &v, 1001, "/filter");
    assert!(v.to_string().contains("can never match"), "{v}");
    let (s, v) = post(
        token.clone(),
        acc.id.clone(),
        json!({"colo_name": "fra",
               "filter_v1": {"source_address": "198.18.8.1", "destination_address": "198.18.8.2"}}),
    )
    .await;
    assert_field_error(s, &v, 1001, "/filter_v1");
    assert_eq!(
        h.count("captures").await,
        0,
        "a refused create stored something"
    );
    for n in [&mut e0, &mut e1, &mut e2, &mut e3] {
        n.assert_idle();
    }
    // A site with nodes inside and outside: only the account's nodes that enforce the
    // boundary; the assignment carries the prefixes.
    let (s, v) = post(
        token.clone(),
        acc.id.clone(),
        json!({"colo_name": "fra", "filter_v1": {}, "filter": "net 198.18.0.0/15"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let parts = v["result"]["node_results"].as_array().unwrap();
    assert_eq!(parts.len(), 1, "{v}");
    assert_eq!(parts[0]["node"], "edge1");
    let a = assigned(e1.next().await);
    assert_eq!(
        a.prefixes,
        Some(vec!["198.18.7.0/24".into(), "2001:db8:7::/64".into()])
    );
    e3.assert_idle();
    // The prefixes are stored with the capture: what a reconnect would send again.
    let open = edgecap_server::db::parts::open_for_node(&h.state.db, "edge1")
        .await
        .unwrap();
    assert_eq!(open[0].assignment.prefixes, a.prefixes);
    // An unrestricted account is as before: any node, no prefixes.
    let (s, v) = h
        .call(
            "POST",
            &h.acc("pcaps"),
            Some(&h.create_body("ord", json!({}))),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(assigned(e2.next().await).prefixes, None);
}

/// A node that reconnects before acknowledging gets a restricted account's part again with
/// the same prefixes; the same node back with an agent that does not announce the boundary
/// (downgraded) is never sent it, and the part fails saying why.
async fn a_pending_part_goes_again_only_to_an_agent_that_bounds_it(b: Backend) {
    let Some(h) = Harness::new(b).await else {
        return;
    };
    let (acc, token) = restricted_account(&h.state, "tenant", &["198.18.7.0/24"], &[]).await;
    let mut e0 = h.node("edge0", &[("site", "fra")], &["pre-firewall"]);
    let body = h.create_body("fra", json!({}));
    let (s, v) = h
        .call_as(
            Some(&token),
            "POST",
            &format!("/client/v4/accounts/{}/pcaps", acc.id),
            Some(&body),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let id = v["result"]["id"].as_str().unwrap().to_owned();
    let first = assigned(e0.next().await);
    assert_eq!(first.prefixes, Some(vec!["198.18.7.0/24".to_owned()]));
    drop(e0);
    let mut e0 = h.node("edge0", &[("site", "fra")], &["pre-firewall"]);
    e0.session.reconcile(vec![], vec![]).await.unwrap();
    let again = assigned(e0.next().await);
    assert_eq!(
        (again.capture_id.as_str(), &again.prefixes),
        (id.as_str(), &first.prefixes)
    );
    drop(e0);
    let mut old = h.node_with_features("edge0", &[("site", "fra")], &["pre-firewall"], &[]);
    old.session.reconcile(vec![], vec![]).await.unwrap();
    old.assert_idle();
    h.state.hub.barrier().await;
    let (_, v) = h
        .call_as(
            Some(&token),
            "GET",
            &format!("/client/v4/accounts/{}/pcaps/{id}", acc.id),
            None,
        )
        .await;
    let part = &v["result"]["node_results"][0];
    assert_eq!(part["status"], "failed", "{v}");
    assert!(
        part["error_message"]
            .as_str()
            .unwrap_or("")
            .contains("does not enforce the tenant boundary"),
        "{v}"
    );
}
