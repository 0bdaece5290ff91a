//! `/client/v4/accounts/{account_id}/events` (edgecap extension, issue 14): the anomalies the
//! account's triggers saw, newest first, each with its nodes, start, peak, end, the captures
//! it started (their status and files) or why none (a budget), and its attack signature.
//! Recorded by the hub from the agents' reports (`hub/firings.rs`); an account sees only its
//! own.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use edgecap_model::Envelope;
use serde_json::json;

use super::body::{PathId, ok, path_id};
use crate::AppState;
use crate::auth::Caller;
use crate::db::events::{self, Filter};
use crate::error::HttpError;
use crate::rollups::query::parse_time;

/// Most events a page holds.
pub const MAX_PER_PAGE: u64 = 1000;

/// `GET /events?since=&until=&trigger_id=&page=&per_page=`: events that started in
/// `[since, until)` (RFC 3339, unix seconds, `now` or `-<duration>`), of one trigger if given,
/// newest first, 50 a page.
pub async fn list(
    caller: Caller,
    State(state): State<AppState>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, HttpError> {
    let Query(query) = query.map_err(|e| HttpError::field("query", e.body_text()))?;
    let p = crate::rollups::query::params(
        &query,
        &["since", "until", "trigger_id", "page", "per_page"],
    )?;
    let now = crate::clock::unix_now().max(0.0) as i64;
    let mut errs = Vec::new();
    let mut time = |field: &str| match p.get(field).map(|v| parse_time(field, v, now)) {
        Some(Ok(t)) => Some(t.max(0) as u64),
        Some(Err(e)) => {
            errs.extend(e.errors);
            None
        }
        None => None,
    };
    let (since, until) = (time("since"), time("until"));
    if let (Some(s), Some(u)) = (since, until)
        && s >= u
    {
        errs.push(edgecap_model::ApiError::field(
            "since",
            format!("must be before until ({s} is not before {u})"),
        ));
    }
    let trigger_id = match p.get("trigger_id") {
        Some(t) if edgecap_model::ids::is_id(t) => Some(t.to_ascii_lowercase()),
        Some(t) => {
            errs.push(edgecap_model::ApiError::field(
                "trigger_id",
                format!("{t:?} is not a trigger id (32 hex digits)"),
            ));
            None
        }
        None => None,
    };
    let pages: Vec<(String, String)> = p
        .iter()
        .filter(|(k, _)| *k == "page" || *k == "per_page")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let numbers = super::body::numbers(
        &pages,
        &[("page", 1, 1_000_000), ("per_page", 50, MAX_PER_PAGE)],
    );
    let numbers = match numbers {
        Ok(n) => Some(n),
        Err(e) => {
            errs.extend(e.errors);
            None
        }
    };
    if !errs.is_empty() {
        return Err(HttpError::bad_request(errs));
    }
    let Some(v) = numbers else {
        return Err(HttpError::field("page", "unreadable"));
    };
    let (page, per_page) = (v[0], v[1]);
    let filter = Filter {
        since,
        until,
        trigger_id,
    };
    let (list, total) = events::list(
        &state.db,
        &caller.account.id,
        &filter,
        (page - 1) * per_page,
        per_page,
    )
    .await?;
    let mut envelope = serde_json::to_value(Envelope::ok(&list)).unwrap_or_default();
    envelope["result_info"] = json!({
        "page": page, "per_page": per_page, "count": list.len(), "total_count": total,
    });
    Ok(axum::Json(envelope).into_response())
}

/// `GET /events/{event_id}`.
pub async fn get(
    caller: Caller,
    State(state): State<AppState>,
    PathId(id): PathId,
) -> Result<Response, HttpError> {
    let id = path_id(&id, "event_id", "an event id")?;
    let e = events::get(&state.db, &caller.account.id, &id)
        .await?
        .ok_or_else(|| HttpError::not_found(format!("event_id: no event {id} in this account")))?;
    Ok(ok(e))
}
