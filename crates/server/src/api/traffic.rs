//! `/client/v4/accounts/{account_id}/traffic` and `/traffic/top` (edgecap extension): traffic
//! rates and heavy hitters from the agents' rollups (`crate::rollups::query`).

use axum::extract::State;
use axum::response::Response;

use super::body::{QueryPairs, ok};
use crate::AppState;
use crate::auth::Caller;
use crate::error::HttpError;
use crate::rollups::query;

/// `GET /traffic?since=&until=&step=&nodes=&points=&group_by=`.
pub async fn traffic(
    caller: Caller,
    State(state): State<AppState>,
    QueryPairs(q): QueryPairs,
) -> Result<Response, HttpError> {
    let now = crate::clock::unix_now() as i64;
    let t = query::traffic(&state.db, &state.config, &caller.account, &q, now).await?;
    Ok(ok(t))
}

/// `GET /traffic/top?since=&until=&by=&limit=&nodes=&points=`.
pub async fn top(
    caller: Caller,
    State(state): State<AppState>,
    QueryPairs(q): QueryPairs,
) -> Result<Response, HttpError> {
    let now = crate::clock::unix_now() as i64;
    let t = query::top(&state.db, &caller.account, &q, now).await?;
    Ok(ok(t))
}
