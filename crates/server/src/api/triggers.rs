//! `/client/v4/accounts/{account_id}/pcaps/triggers` (edgecap extension, issue 14): anomaly
//! triggers, created, listed, read and deleted per account.
//!
//! A trigger is checked as the full capture it would start: `edgecap_model::trigger`
//! validates every field (the capture with `validate_create`'s rules), the account's
//! tenancy must take its filter (`tenancy.rs`), and its `destination_conf` must be a directory
//! or a validated bucket of the account (`target.rs`), whose credentials are sealed with the
//! trigger. Nothing is stored unless every check passes.

use axum::response::Response;
use edgecap_model::trigger::{MAX_TRIGGERS_PER_ACCOUNT, in_group, validate_trigger};

use super::body::{JsonBody, PathId, ok, path_id};
use crate::AppState;
use crate::auth::Caller;
use crate::clock;
use crate::credentials::trigger_context;
use crate::db::triggers::{self, Stored};
use crate::error::HttpError;
use axum::extract::State;

/// `POST /pcaps/triggers`.
pub async fn create(
    caller: Caller,
    State(state): State<AppState>,
    body: JsonBody,
) -> Result<Response, HttpError> {
    let (mut trigger, req) =
        validate_trigger(&serde_json::Value::Object(body.0), &caller.account.limits())
            .map_err(HttpError::bad_request)?;
    // Tenancy: the scope's filter must match inside the account's prefixes.
    let access = crate::db::accounts::tenancy(&state.db, &caller.account.id)
        .await?
        .access()?;
    access.check_filter(&req).map_err(|mut e| {
        e.errors = e.errors.into_iter().map(|e| in_group(e, "scope")).collect();
        e
    })?;
    let target = super::target::resolve_field(
        &state,
        &caller.account.id,
        &req.destination_conf,
        "capture.destination_conf",
    )
    .await?;
    trigger.capture.destination_conf = target.canonical;
    let id = crate::secret::new_id();
    let credentials = target
        .credentials
        .as_ref()
        .map(|c| state.hub.vault().seal(c, &trigger_context(&id)))
        .transpose()?;
    let stored = Stored {
        id,
        account_id: caller.account.id.clone(),
        trigger,
        credentials,
        created: clock::now(),
    };
    if !triggers::insert(&state.db, &stored, MAX_TRIGGERS_PER_ACCOUNT).await? {
        return Err(HttpError::conflict(format!(
            "this account already has {MAX_TRIGGERS_PER_ACCOUNT} triggers, the most it may \
             hold: delete one first"
        )));
    }
    tracing::info!(trigger = %stored.id, account = %caller.account.id, "trigger created");
    state.hub.triggers_changed(&stored.id).await;
    Ok(ok(stored.view()))
}

/// `GET /pcaps/triggers`: the account's triggers, oldest first.
pub async fn list(caller: Caller, State(state): State<AppState>) -> Result<Response, HttpError> {
    let list = triggers::list(&state.db, &caller.account.id).await?;
    Ok(ok(list.iter().map(Stored::view).collect::<Vec<_>>()))
}

/// `GET /pcaps/triggers/{trigger_id}`.
pub async fn get(
    caller: Caller,
    State(state): State<AppState>,
    PathId(id): PathId,
) -> Result<Response, HttpError> {
    let id = trigger_id(&id)?;
    let t = triggers::get(&state.db, &caller.account.id, &id)
        .await?
        .ok_or_else(|| not_found(&id))?;
    Ok(ok(t.view()))
}

/// `DELETE /pcaps/triggers/{trigger_id}`: the trigger fires no more; captures it started
/// are the account's like any other and stay.
pub async fn delete(
    caller: Caller,
    State(state): State<AppState>,
    PathId(id): PathId,
) -> Result<Response, HttpError> {
    let id = trigger_id(&id)?;
    if !triggers::delete(&state.db, &caller.account.id, &id).await? {
        return Err(not_found(&id));
    }
    tracing::info!(trigger = %id, account = %caller.account.id, "trigger deleted");
    state.hub.triggers_changed(&id).await;
    Ok(ok(()))
}

fn trigger_id(id: &str) -> Result<String, HttpError> {
    path_id(id, "trigger_id", "a trigger id")
}

fn not_found(id: &str) -> HttpError {
    HttpError::not_found(format!("trigger_id: no trigger {id} in this account"))
}
