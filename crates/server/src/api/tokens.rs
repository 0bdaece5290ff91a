//! edgecap's own resources for who may call: `GET /client/v4/accounts` (the account a token
//! acts for, Cloudflare's list-accounts shape) and `/client/v4/accounts/{account_id}/tokens`
//! (list, create, revoke the account's API tokens). A new token's secret is in the create
//! answer only (`value`, as Cloudflare's token API names it); the database keeps its SHA-256.
//! Tokens carry scopes and may expire (`auth::Scope`). Agent tokens belong to no account and
//! are made with `edgecap admin`.

use axum::extract::State;
use axum::response::Response;
use edgecap_model::ApiError;
use serde_json::{Value, json};

use super::body::{JsonBody, PathId, ok, path_id};
use crate::AppState;
use crate::auth::{Caller, Scope, TokenCaller};
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

/// `GET /client/v4/accounts/{account_id}`: the account, its limits, its tenancy and its
/// quotas with their use (`crate::tenancy::account_view`).
pub async fn account(caller: Caller, State(state): State<AppState>) -> Result<Response, HttpError> {
    let tenancy = crate::db::accounts::tenancy(&state.db, &caller.account.id).await?;
    let quotas = crate::quota::view(&state.db, &caller.account.id).await?;
    Ok(ok(crate::tenancy::account_view(
        &caller.account,
        &tenancy,
        quotas,
    )))
}

/// `GET /tokens`: the account's API tokens, never their secrets.
pub async fn list(caller: Caller, State(state): State<AppState>) -> Result<Response, HttpError> {
    Ok(ok(
        tokens::list_for_account(&state.db, &caller.account.id).await?
    ))
}

/// `POST /tokens` `{name, scopes?, expires_on?}`: a new API token for the account. `scopes`
/// is a list of `read`, `write`, `tokens`, `nodes` (default: read, write, tokens), never more
/// than the calling token holds; `expires_on` an RFC 3339 UTC time in the future.
pub async fn create(
    caller: Caller,
    State(state): State<AppState>,
    body: JsonBody,
) -> Result<Response, HttpError> {
    let mut errs = body.unknown_fields(&["name", "scopes", "expires_on"]);
    let name = body.string("name", &mut errs);
    if let Some(n) = &name
        && (n.len() > 64 || n.chars().any(char::is_control))
    {
        errs.push(ApiError::field(
            "name",
            "must be at most 64 printable characters",
        ));
    }
    let scopes = match body.object().get("scopes") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) if items.len() <= Scope::ALL.len() * 2 => {
            let names: Option<Vec<&str>> = items.iter().map(Value::as_str).collect();
            match names.map(Scope::parse_list) {
                Some(Ok(list)) => Some(list),
                Some(Err(e)) => {
                    errs.push(ApiError::field("scopes", e));
                    None
                }
                None => {
                    errs.push(ApiError::field("scopes", "must be a list of scope names"));
                    None
                }
            }
        }
        Some(_) => {
            errs.push(ApiError::field(
                "scopes",
                "must be a list of at most 8 scope names (read, write, tokens, nodes)",
            ));
            None
        }
    };
    // The operator scope is the operator's to grant, from the command line only.
    if scopes
        .as_ref()
        .is_some_and(|s| s.contains(&Scope::Operator))
    {
        errs.push(ApiError::field(
            "scopes",
            "operator is granted only by the operator (`edgecap admin token create --scopes \
             operator`), never through an account's token API",
        ));
    }
    // A token cannot make a token that may do more than itself.
    let asked = scopes.clone().unwrap_or_else(|| Scope::DEFAULT.to_vec());
    let beyond: Vec<Scope> = asked
        .iter()
        .copied()
        .filter(|s| !caller.scopes.contains(s))
        .collect();
    if !beyond.is_empty() && scopes.is_some() {
        errs.push(ApiError::field(
            "scopes",
            format!(
                "{} beyond this token's own scopes ({})",
                Scope::join(&beyond).replace(',', ", "),
                Scope::join(&caller.scopes).replace(',', ", ")
            ),
        ));
    }
    let expires_on = match body.object().get("expires_on") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => match edgecap_model::ids::parse_rfc3339(s.trim()) {
            Some(t) if t > crate::clock::unix_now() => Some(edgecap_model::ids::rfc3339(t)),
            Some(_) => {
                errs.push(ApiError::field("expires_on", "is in the past"));
                None
            }
            None => {
                errs.push(ApiError::field(
                    "expires_on",
                    format!("{s:?} is not an RFC 3339 UTC time such as 2030-01-01T00:00:00Z"),
                ));
                None
            }
        },
        Some(_) => {
            errs.push(ApiError::field(
                "expires_on",
                "must be an RFC 3339 UTC time such as 2030-01-01T00:00:00Z",
            ));
            None
        }
    };
    let Some(name) = name.filter(|_| errs.is_empty()) else {
        return Err(HttpError::bad_request(errs));
    };
    // Without `scopes`, a token gets the defaults it holds itself.
    let scopes = scopes.unwrap_or_else(|| {
        asked
            .into_iter()
            .filter(|s| caller.scopes.contains(s))
            .collect()
    });
    let limits = tokens::Limits {
        scopes: Some(scopes),
        expires_on,
        max_uses: None,
    };
    let (token, secret) = tokens::create_limited(
        &state.db,
        Kind::Api,
        Some(&caller.account.id),
        &name,
        &limits,
    )
    .await?;
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
