//! `/client/v4/accounts/{account_id}/pcaps/ownership`: proving that the account controls a
//! destination before captures are written there (Cloudflare's flow, §6 of the reference).
//! Adding a destination writes `ownership-challenge-<id>.txt` holding a random token into it;
//! validating compares the token the user copied from that file, in constant time.

use axum::extract::State;
use axum::response::Response;

use super::body::{JsonBody, PathId, ok, path_id};
use crate::AppState;
use crate::auth::Caller;
use crate::clock;
use crate::db::ownership::{self, Ownership};
use crate::destination::{self, Destination};
use crate::error::HttpError;
use crate::secret;

/// `POST /pcaps/ownership` `{destination_conf}`. Adding a destination again (say, after the
/// challenge file was lost) writes a new token under the same id; a validated one is a 409.
pub async fn add(
    caller: Caller,
    State(state): State<AppState>,
    body: JsonBody,
) -> Result<Response, HttpError> {
    let mut errs = body.unknown_fields(&["destination_conf"]);
    let conf = body.string("destination_conf", &mut errs);
    let Some(conf) = conf.filter(|_| errs.is_empty()) else {
        return Err(HttpError::bad_request(errs));
    };
    let dest = destination::open(&conf, "destination_conf")?;
    let existing = ownership::by_destination(&state.db, &caller.account.id, &conf).await?;
    if let Some(e) = &existing
        && e.ownership.status == "success"
    {
        return Err(HttpError::conflict(format!(
            "destination_conf: already validated (ownership {}); delete it to start over",
            e.ownership.id
        )));
    }
    let id = existing
        .map(|e| e.ownership.id)
        .unwrap_or_else(secret::new_id);
    let token = secret::new_secret("");
    let record = Ownership {
        filename: format!("ownership-challenge-{id}.txt"),
        id,
        destination_conf: conf,
        status: "pending".into(),
        submitted: clock::now(),
        validated: String::new(),
    };
    dest.put(&record.filename, token.clone().into_bytes())
        .await
        .map_err(|e| {
            HttpError::field(
                "destination_conf",
                format!("cannot write the challenge file {}: {e}", record.filename),
            )
        })?;
    ownership::upsert_pending(
        &state.db,
        &caller.account.id,
        &record,
        &secret::digest(&token),
    )
    .await?;
    tracing::info!(ownership = %record.id, account = %caller.account.id, "ownership challenge written");
    Ok(ok(record))
}

/// `GET /pcaps/ownership`.
pub async fn list(caller: Caller, State(state): State<AppState>) -> Result<Response, HttpError> {
    Ok(ok(ownership::list(&state.db, &caller.account.id).await?))
}

/// `DELETE /pcaps/ownership/{ownership_id}`.
pub async fn delete(
    caller: Caller,
    State(state): State<AppState>,
    PathId(id): PathId,
) -> Result<Response, HttpError> {
    let id = path_id(&id, "ownership_id", "an ownership id")?;
    if !ownership::delete(&state.db, &caller.account.id, &id).await? {
        return Err(HttpError::not_found(format!(
            "ownership_id: no ownership {id} in this account"
        )));
    }
    Ok(ok(()))
}

/// `POST /pcaps/ownership/validate` `{destination_conf, ownership_challenge}`: the token from
/// the challenge file. A wrong token marks the record `failed` (it can be retried).
pub async fn validate(
    caller: Caller,
    State(state): State<AppState>,
    body: JsonBody,
) -> Result<Response, HttpError> {
    let mut errs = body.unknown_fields(&["destination_conf", "ownership_challenge"]);
    let conf = body.string("destination_conf", &mut errs);
    let challenge = body.string("ownership_challenge", &mut errs);
    let (Some(conf), Some(challenge)) = (conf, challenge) else {
        return Err(HttpError::bad_request(errs));
    };
    if !errs.is_empty() {
        return Err(HttpError::bad_request(errs));
    }
    let Some(stored) = ownership::by_destination(&state.db, &caller.account.id, &conf).await?
    else {
        return Err(HttpError::not_found(
            "destination_conf: no ownership challenge for this destination; add it with \
             POST /pcaps/ownership first",
        ));
    };
    let given = secret::digest(&challenge);
    let mut record = stored.ownership;
    if !secret::ct_eq(given.as_bytes(), stored.token_hash.as_bytes()) {
        ownership::set_status(&state.db, &record.id, "failed", None).await?;
        return Err(HttpError::field(
            "ownership_challenge",
            format!(
                "does not match the token in {} (copy that file's contents)",
                record.filename
            ),
        ));
    }
    let at = clock::now();
    ownership::set_status(&state.db, &record.id, "success", Some(&at)).await?;
    record.status = "success".into();
    record.validated = at;
    Ok(ok(record))
}
