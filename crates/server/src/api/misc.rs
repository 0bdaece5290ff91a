//! The edgecap resources beside the PCAP API: the node list, the OpenAPI document and the
//! health and metrics endpoints.

use axum::extract::{RawPathParams, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::body::ok;
use crate::AppState;
use crate::auth::Caller;
use crate::error::HttpError;

/// The OpenAPI 3.1 document, checked in beside the code and tested against the router.
pub const OPENAPI: &str = include_str!("../../openapi.json");

/// `GET /client/v4/accounts/{account_id}/nodes`: every node that ever connected; the
/// connected ones with what they said in their current hello.
pub async fn nodes(caller: Caller, State(state): State<AppState>) -> Result<Response, HttpError> {
    let _ = caller;
    let mut nodes = crate::db::nodes::list(&state.db).await?;
    let live = state.hub.fleet_nodes().await?;
    // By name (the first session of a name, as before): a thousand nodes are a thousand
    // look-ups, not a million comparisons.
    let mut by_name = std::collections::HashMap::with_capacity(live.len());
    for l in &live {
        by_name.entry(l.info.name.as_str()).or_insert(l);
    }
    let live = by_name;
    for n in &mut nodes {
        match live.get(n.name.as_str()) {
            Some(l) => {
                n.connected = true;
                n.labels = l.info.labels.clone();
                n.points = l.info.points.clone();
                n.version = l.info.version.clone();
                n.last_seen = edgecap_model::ids::rfc3339(l.last_seen);
                n.health = l.health.clone();
            }
            None => n.connected = false,
        }
    }
    Ok(ok(nodes))
}

/// `POST /client/v4/accounts/{account_id}/nodes/{node_name}/revoke` (scope `nodes`): the
/// node's credential stops working at once: it is disconnected, refused from then on, and its
/// unfinished parts fail with "node revoked". Nodes serve every account, so only a token the
/// operator gave the `nodes` scope may do this.
pub async fn revoke_node(
    caller: Caller,
    State(state): State<AppState>,
    params: RawPathParams,
) -> Result<Response, HttpError> {
    let name = params
        .iter()
        .find(|(k, _)| *k == "node_name")
        .map(|(_, v)| v.to_owned())
        .unwrap_or_default();
    if let Err(e) = edgecap_model::check_hello(&name, &Default::default(), &[], "") {
        return Err(HttpError::field(
            "node_name",
            e.strip_prefix("hello.name: ").unwrap_or(&e),
        ));
    }
    if crate::db::identities::revoke(&state.db, &name)
        .await?
        .is_none()
    {
        return Err(HttpError::not_found(format!(
            "node_name: no enrolled node {name:?}"
        )));
    }
    state.hub.revoked(&name);
    tracing::warn!(node = %name, account = %caller.account.id, "node revoked through the API");
    let identity = crate::db::identities::get(&state.db, &name).await?;
    Ok(ok(identity))
}

/// `GET /openapi.json`.
pub async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

/// `GET /healthz`: 200 while the process serves requests (liveness; the database is
/// `/readyz`'s business).
pub async fn healthz() -> Response {
    edgecap_metrics::alive_response()
}

/// `GET /readyz`: 200 when the database answers, its migrations are applied and every added
/// check passes; else 503 with the checks, each failed one saying why.
pub async fn readyz(State(state): State<AppState>) -> Response {
    let r = crate::metrics::readiness(&state).await;
    if !r.ready {
        tracing::warn!(failed = %r.failed(), "not ready");
    }
    r.response()
}

/// `GET /metrics`: the process's metrics as OpenMetrics text (unauthenticated, like every
/// Prometheus endpoint; with `--metrics-listen` it moves to that address and is 404 here).
pub async fn metrics(State(state): State<AppState>) -> Result<Response, HttpError> {
    if !state.config.metrics_on_api {
        return Err(HttpError::not_found(
            "metrics are served on the server's --metrics-listen address",
        ));
    }
    Ok(edgecap_metrics::metrics_response(
        crate::metrics::render(&state).await,
    ))
}
