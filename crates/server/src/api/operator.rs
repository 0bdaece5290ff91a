//! The operator API, `/client/v4/operator/...`: what an operator manages across accounts,
//! for tokens with the `operator` scope (made only by `edgecap admin token create --scopes
//! operator`). Today: an account's tenancy (`crate::tenancy`).

use axum::extract::{FromRequestParts, RawPathParams, State};
use axum::http::request::Parts;
use axum::response::Response;
use edgecap_model::ApiError;
use edgecap_model::request::kind;
use serde_json::Value;

use super::body::{JsonBody, ok, path_id};
use crate::AppState;
use crate::auth::TokenCaller;
use crate::db::accounts;
use crate::error::{Error, HttpError};
use crate::tenancy::{self, Tenancy};

/// The `{account_id}` of an operator route: any account, checked to exist.
pub struct TargetAccount(String);

impl FromRequestParts<AppState> for TargetAccount {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, HttpError> {
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|e| HttpError::field("path", e.body_text()))?;
        let raw = params
            .iter()
            .find(|(k, _)| *k == "account_id")
            .map(|(_, v)| v.to_owned())
            .unwrap_or_default();
        Ok(TargetAccount(path_id(&raw, "account_id", "an account id")?))
    }
}

async fn current(state: &AppState, id: &str) -> Result<Tenancy, HttpError> {
    match accounts::tenancy(&state.db, id).await {
        Err(Error::NoAccount(_)) => {
            Err(HttpError::not_found(format!("account_id: no account {id}")))
        }
        other => Ok(other?),
    }
}

/// `GET /operator/accounts/{account_id}/tenancy`.
pub async fn get(
    _caller: TokenCaller,
    TargetAccount(id): TargetAccount,
    State(state): State<AppState>,
) -> Result<Response, HttpError> {
    let t = current(&state, &id).await?;
    Ok(ok(tenancy::tenancy_view(&id, &t)))
}

/// `PUT /operator/accounts/{account_id}/tenancy` `{prefixes, nodes, unrestricted}`: replaces
/// the account's tenancy (all three fields required). Any bad field: 400 naming it, nothing
/// changed. Captures already running keep the boundary they were created with.
pub async fn put(
    caller: TokenCaller,
    TargetAccount(id): TargetAccount,
    State(state): State<AppState>,
    body: JsonBody,
) -> Result<Response, HttpError> {
    current(&state, &id).await?;
    let mut errs = body.unknown_fields(&["prefixes", "nodes", "unrestricted"]);
    let unrestricted = match body.object().get("unrestricted") {
        Some(Value::Bool(b)) => Some(*b),
        None => {
            errs.push(ApiError::field(
                "unrestricted",
                "is required (true or false)",
            ));
            None
        }
        Some(v) => {
            errs.push(ApiError::field(
                "unrestricted",
                format!("must be true or false, not {}", kind(v)),
            ));
            None
        }
    };
    let mut list =
        |field: &str, parse: fn(&[&str], &str) -> Result<Vec<String>, tenancy::Invalid>| match body
            .object()
            .get(field)
        {
            Some(Value::Array(items)) => {
                let strings: Option<Vec<&str>> = items.iter().map(Value::as_str).collect();
                match strings {
                    Some(s) => match parse(&s, field) {
                        Ok(v) => Some(v),
                        Err(e) => {
                            errs.push(e.api_error());
                            None
                        }
                    },
                    None => {
                        errs.push(ApiError::field(field, "must be a list of strings"));
                        None
                    }
                }
            }
            None => {
                errs.push(ApiError::field(field, "is required (a list; [] for none)"));
                None
            }
            Some(v) => {
                errs.push(ApiError::field(
                    field,
                    format!("must be a list of strings, not {}", kind(v)),
                ));
                None
            }
        };
    let prefixes = list("prefixes", |s, f| tenancy::parse_prefixes(s, f));
    let nodes = list("nodes", |s, f| tenancy::parse_nodes(s, f));
    let (Some(unrestricted), Some(prefixes), Some(nodes)) = (unrestricted, prefixes, nodes) else {
        return Err(HttpError::bad_request(errs));
    };
    if !errs.is_empty() {
        return Err(HttpError::bad_request(errs));
    }
    let t = Tenancy {
        unrestricted,
        prefixes,
        nodes,
    };
    if !accounts::set_tenancy(&state.db, &id, &t).await? {
        return Err(HttpError::not_found(format!("account_id: no account {id}")));
    }
    tracing::info!(account = %id, by = %caller.account.id, unrestricted, prefixes = ?t.prefixes,
        nodes = ?t.nodes, "tenancy set through the operator API");
    Ok(ok(tenancy::tenancy_view(&id, &t)))
}
