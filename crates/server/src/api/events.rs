//! `/client/v4/accounts/{account_id}/events` (edgecap extension, issue 14): the anomalies the
//! account's triggers saw, newest first, each with its nodes, start, peak, end, the captures
//! it started (their status and files) or why none (a budget), and its attack signature.
//! Recorded by the hub from the agents' reports (`hub/firings.rs`); an account sees only its
//! own.

use axum::extract::State;
use axum::response::Response;

use super::body::{Paging, PathId, QueryPairs, known_once, ok, path_id};
use crate::AppState;
use crate::auth::Caller;
use crate::db::events::{self, Filter};
use crate::error::HttpError;
use crate::rollups::query::parse_time;

/// `GET /events?since=&until=&trigger_id=&page=&per_page=`: events that started in
/// `[since, until)` (RFC 3339, unix seconds, `now` or `-<duration>`), of one trigger if given,
/// newest first, 50 a page.
pub async fn list(
    caller: Caller,
    State(state): State<AppState>,
    QueryPairs(query): QueryPairs,
) -> Result<Response, HttpError> {
    let now = crate::clock::unix_now().max(0.0) as i64;
    let (mut since, mut until, mut trigger_id) = (None, None, None);
    let mut paging = Paging::default();
    let time = |field: &str, v: &str| parse_time(field, v, now).map(|t| Some(t.max(0) as u64));
    let read = known_once(
        &query,
        &["since", "until", "trigger_id", "page", "per_page"],
        |name, v| {
            match name {
                "since" => since = time(name, v)?,
                "until" => until = time(name, v)?,
                "trigger_id" if edgecap_model::ids::is_id(v) => {
                    trigger_id = Some(v.to_ascii_lowercase());
                }
                "trigger_id" => {
                    return Err(HttpError::field(
                        name,
                        format!("{v:?} is not a trigger id (32 hex digits)"),
                    ));
                }
                _ => {
                    paging.read(name, v)?;
                }
            }
            Ok(())
        },
    );
    let mut errs = read.err().map(|e| e.errors).unwrap_or_default();
    if let (Some(s), Some(u)) = (since, until)
        && s >= u
    {
        errs.push(edgecap_model::ApiError::field(
            "since",
            format!("must be before until ({s} is not before {u})"),
        ));
    }
    if !errs.is_empty() {
        return Err(HttpError::bad_request(errs));
    }
    let filter = Filter {
        since,
        until,
        trigger_id,
    };
    let (list, total) = events::list(
        &state.db,
        &caller.account.id,
        &filter,
        paging.offset(),
        paging.per_page,
    )
    .await?;
    Ok(paging.answer(&list, total))
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
