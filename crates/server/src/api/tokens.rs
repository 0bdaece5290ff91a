//! edgecap's own resources for who may call: `GET /client/v4/accounts` (the account a token
//! acts for, Cloudflare's list-accounts shape) and `/client/v4/accounts/{account_id}/tokens`
//! (list, create, revoke the account's API tokens). A new token's secret is in the create
//! answer only (`value`, as Cloudflare's token API names it); the database keeps its SHA-256.
//! Agent tokens belong to no account and are made with `edgecap admin`.

use axum::extract::State;
use axum::response::Response;
use serde_json::json;

use super::body::{JsonBody, PathId, ok, path_id};
use crate::AppState;
use crate::auth::{Caller, TokenCaller};
use crate::db::tokens::{self, Kind};
use crate::error::HttpError;

/// `GET /client/v4/accounts`: the accounts this token may act on (one: its own).
pub async fn accounts(caller: TokenCaller) -> Response {
    let a = caller.account;
    ok(json!([{
        "id": a.id, "name": a.name, "created_on": a.created,
        "settings": {
            "max_time_limit": a.max_time_limit, "max_packet_limit": a.max_packet_limit,
            "max_byte_limit": a.max_byte_limit,
        },
    }]))
}

/// `GET /tokens`: the account's API tokens, never their secrets.
pub async fn list(caller: Caller, State(state): State<AppState>) -> Result<Response, HttpError> {
    Ok(ok(
        tokens::list_for_account(&state.db, &caller.account.id).await?
    ))
}

/// `POST /tokens` `{name}`: a new API token for the account.
pub async fn create(
    caller: Caller,
    State(state): State<AppState>,
    body: JsonBody,
) -> Result<Response, HttpError> {
    let mut errs = body.unknown_fields(&["name"]);
    let name = body.string("name", &mut errs);
    if let Some(n) = &name
        && (n.len() > 64 || n.chars().any(char::is_control))
    {
        errs.push(edgecap_model::ApiError::field(
            "name",
            "must be at most 64 printable characters",
        ));
    }
    let Some(name) = name.filter(|_| errs.is_empty()) else {
        return Err(HttpError::bad_request(errs));
    };
    let (token, secret) =
        tokens::create(&state.db, Kind::Api, Some(&caller.account.id), &name).await?;
    let mut v = serde_json::to_value(&token).unwrap_or_default();
    v["value"] = json!(secret);
    Ok(ok(v))
}

/// `DELETE /tokens/{token_id}`: revokes one of the account's API tokens (the caller's own
/// included: it stops working at once).
pub async fn delete(
    caller: Caller,
    State(state): State<AppState>,
    PathId(id): PathId,
) -> Result<Response, HttpError> {
    let id = path_id(&id, "token_id", "a token id")?;
    if !tokens::delete(&state.db, &caller.account.id, &id).await? {
        return Err(HttpError::not_found(format!(
            "token_id: no API token {id} in this account"
        )));
    }
    Ok(ok(json!({"id": id})))
}
