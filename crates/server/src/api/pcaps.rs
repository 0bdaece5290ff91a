//! `/client/v4/accounts/{account_id}/pcaps`: create, list, get, stop, download.

use axum::extract::State;
use axum::response::Response;
use edgecap_model::{Capture, SecretJson, Status, split_limit, validate_create};

use super::body::{JsonBody, Paging, PathId, QueryPairs, ok};
use super::select::select;
use crate::AppState;
use crate::auth::Caller;
use crate::clock;
use crate::credentials::capture_context;
use crate::db::captures::{self, NewPart, StoredRequest};
use crate::db::parts::assignment;
use crate::error::HttpError;
use crate::hub::Hub;

/// `POST /pcaps`: validate, select nodes, store the capture with its parts, assign each node
/// its share. Nothing is stored or sent unless every check passes.
pub async fn create(
    caller: Caller,
    State(state): State<AppState>,
    body: JsonBody,
) -> Result<Response, HttpError> {
    let received = std::time::Instant::now();
    let colo_field = if body.0.contains_key("colo_name") {
        "colo_name"
    } else {
        "colo"
    };
    let req = validate_create(
        &serde_json::Value::Object(body.0.clone()),
        &caller.account.limits(),
    )
    .map_err(HttpError::bad_request)?;
    // Tenancy (crate::tenancy): may this account capture, and is its filter inside?
    let access = crate::db::accounts::tenancy(&state.db, &caller.account.id)
        .await?
        .access()?;
    access.check_filter(&req)?;
    if req.simple {
        // A look-back capture (api/simple.rs): the selection, or the whole fleet.
        let chosen = super::simple::select_nodes(&state, &req, colo_field, &access).await?;
        return super::simple::create(&state, &caller, &req, &access, chosen).await;
    }
    let target = super::target::resolve(&state, &caller.account.id, &req.destination_conf).await?;
    let live = state.hub.fleet_nodes().await?;
    let chosen = access.admit_nodes(&req, select(&req, colo_field, &live)?)?;
    let n = chosen.len();
    let mut errs = Vec::new();
    for (field, limit) in [
        ("packet_limit", req.packet_limit),
        ("byte_limit", req.byte_limit),
    ] {
        if let Some(l) = limit
            && l < n as u64
        {
            errs.push(edgecap_model::ApiError::field(
                field,
                format!(
                    "{l} is less than the {n} selected nodes: each node needs a share of at least 1"
                ),
            ));
        }
    }
    if !errs.is_empty() {
        return Err(HttpError::bad_request(errs));
    }
    let replica_of: std::collections::HashMap<String, Option<String>> = chosen
        .iter()
        .map(|n| (n.info.name.clone(), n.replica.clone()))
        .collect();
    let parts: Vec<NewPart> = chosen
        .iter()
        .enumerate()
        .map(|(i, node)| NewPart {
            node: node.info.name.clone(),
            packet_limit: req.packet_limit.map(|l| split_limit(l, n, i)),
            byte_limit: req.byte_limit.map(|l| split_limit(l, n, i)),
        })
        .collect();
    let id = crate::secret::new_id();
    let submitted = clock::now();
    let deadline = clock::after(
        std::time::Duration::from_secs_f64(req.time_limit) + state.config.result_margin,
    );
    let mut stored = StoredRequest::from(&req);
    stored.destination_conf = target.canonical.clone();
    stored.prefixes = access.prefixes();
    let sealed = target
        .credentials
        .as_ref()
        .map(|c| state.hub.vault().seal(c, &capture_context(&id)))
        .transpose()?;
    let new = crate::quota::NewCapture {
        id: &id,
        account_id: &caller.account.id,
        max_byte_limit: caller.account.max_byte_limit,
        request: &stored,
        parts: &parts,
        submitted: &submitted,
        deadline: &deadline,
        credentials: sealed.as_deref(),
    };
    crate::quota::create(&state.db, &req, state.config.max_captures_per_node, new).await?;
    let handed = target
        .credentials
        .as_ref()
        .map(|c| SecretJson::new(c.expose_json()));
    // Dispatch latency is timed here for the nodes this replica sends to; a node held by
    // another replica acknowledges there.
    for p in &parts {
        state.hub.metrics().dispatched(&id, &p.node, received);
    }
    let assignments: Vec<_> = parts
        .iter()
        .map(|p| {
            let mut a = assignment(&id, &stored, p.packet_limit, p.byte_limit);
            a.credentials = handed.clone();
            let replica = replica_of.get(&p.node).cloned().flatten();
            (p.node.clone(), replica, a)
        })
        .collect();
    let (sent, not_here) = state.hub.assign_all(&id, assignments).await;
    for node in &not_here {
        state.hub.metrics().forget_dispatch(&id, node);
    }
    tracing::info!(capture = %id, account = %caller.account.id, nodes = n, sent, "capture created");
    let capture = captures::get(&state.db, &caller.account.id, &id)
        .await?
        .ok_or_else(|| HttpError::not_found(format!("capture {id} vanished")))?;
    Ok(ok(capture))
}

/// `GET /quotas`: each of the account's quotas with its limit and current use.
pub async fn quotas(caller: Caller, State(state): State<AppState>) -> Result<Response, HttpError> {
    Ok(ok(crate::quota::view(&state.db, &caller.account.id).await?))
}

/// `GET /pcaps`: newest first, 50 a page (Cloudflare's single page), `?page=&per_page=`.
pub async fn list(
    caller: Caller,
    State(state): State<AppState>,
    QueryPairs(query): QueryPairs,
) -> Result<Response, HttpError> {
    let paging = Paging::from_query(&query)?;
    let (mut list, total) = captures::list(
        &state.db,
        &caller.account.id,
        paging.offset(),
        paging.per_page,
    )
    .await?;
    for c in &mut list {
        overlay(&state.hub, c);
    }
    Ok(paging.answer(&list, total))
}

/// `GET /pcaps/{pcap_id}`.
pub async fn get(
    caller: Caller,
    State(state): State<AppState>,
    PathId(id): PathId,
) -> Result<Response, HttpError> {
    let mut c = find(&state, &caller, &id).await?;
    overlay(&state.hub, &mut c);
    Ok(ok(c))
}

/// `PUT /pcaps/{pcap_id}/stop`: records `stop_requested` and tells every node with an
/// unfinished part to stop. Answers the envelope with a null result (Cloudflare's SDKs read no
/// body). Stopping a finished capture is a 409.
pub async fn stop(
    caller: Caller,
    State(state): State<AppState>,
    PathId(id): PathId,
) -> Result<Response, HttpError> {
    let id = capture_id(&id)?;
    let at = clock::now();
    let deadline = clock::after(state.config.result_margin);
    let status = captures::request_stop(&state.db, &caller.account.id, &id, &at, &deadline)
        .await?
        .ok_or_else(|| not_found(&id))?;
    if status.is_terminal() {
        return Err(HttpError::conflict(format!(
            "capture {id} has already finished ({}); there is nothing to stop",
            status.as_str()
        )));
    }
    let nodes = captures::open_nodes(&state.db, &id).await?;
    let sent = state.hub.stop_all(&id, &nodes).await;
    tracing::info!(capture = %id, nodes = nodes.len(), sent, "stop requested");
    Ok(ok(()))
}

/// `GET /pcaps/{pcap_id}/download`: the file of a simple capture (`api/simple.rs`); full
/// captures are files in the destination.
pub async fn download(
    caller: Caller,
    State(state): State<AppState>,
    PathId(id): PathId,
    headers: axum::http::HeaderMap,
) -> Result<Response, HttpError> {
    let c = find(&state, &caller, &id).await?;
    if c.kind != "simple" {
        return Err(super::simple::not_simple(&c));
    }
    super::simple::download(&state, &c, &headers).await
}

pub(crate) async fn find(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<Capture, HttpError> {
    let id = capture_id(id)?;
    captures::get(&state.db, &caller.account.id, &id)
        .await?
        .ok_or_else(|| not_found(&id))
}

fn capture_id(id: &str) -> Result<String, HttpError> {
    super::body::path_id(id, "pcap_id", "a capture id")
}

fn not_found(id: &str) -> HttpError {
    HttpError::not_found(format!("pcap_id: no capture {id} in this account"))
}

/// Running parts show the progress their nodes reported since the last database write.
fn overlay(hub: &Hub, c: &mut Capture) {
    if c.status.is_terminal() {
        return;
    }
    let live = hub.progress(&c.id);
    if live.is_empty() {
        return;
    }
    for r in &mut c.node_results {
        if r.status == Status::Running
            && let Some(l) = live.get(&r.node)
        {
            r.packets = r.packets.max(l.packets);
            r.bytes = r.bytes.max(l.bytes);
            r.lost = r.lost.max(l.lost);
        }
    }
    c.packets_captured = c.node_results.iter().map(|r| r.packets).sum();
    c.bytes_captured = c.node_results.iter().map(|r| r.bytes).sum();
    c.packets_lost = c.node_results.iter().map(|r| r.lost).sum();
}
