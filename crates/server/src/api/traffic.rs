//! `/client/v4/accounts/{account_id}/traffic` and `/traffic/top` (edgecap extension): traffic
//! rates and heavy hitters from the agents' rollups (`crate::rollups::query`).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::Response;

use super::body::ok;
use crate::AppState;
use crate::auth::Caller;
use crate::error::HttpError;
use crate::rollups::query;

type Params = Result<Query<Vec<(String, String)>>, QueryRejection>;

fn read(q: Params) -> Result<Vec<(String, String)>, HttpError> {
    let Query(q) = q.map_err(|e| HttpError::field("query", e.body_text()))?;
    Ok(q)
}

/// `GET /traffic?since=&until=&step=&nodes=&points=&group_by=`.
pub async fn traffic(
    caller: Caller,
    State(state): State<AppState>,
    q: Params,
) -> Result<Response, HttpError> {
    let q = read(q)?;
    let now = crate::clock::unix_now() as i64;
    let t = query::traffic(&state.db, &state.config, &caller.account, &q, now).await?;
    Ok(ok(t))
}

/// `GET /traffic/top?since=&until=&by=&limit=&nodes=&points=`.
pub async fn top(
    caller: Caller,
    State(state): State<AppState>,
    q: Params,
) -> Result<Response, HttpError> {
    let q = read(q)?;
    let now = crate::clock::unix_now() as i64;
    let t = query::top(&state.db, &caller.account, &q, now).await?;
    Ok(ok(t))
}
