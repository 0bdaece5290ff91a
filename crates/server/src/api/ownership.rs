//! `/client/v4/accounts/{account_id}/pcaps/ownership`: proving that the account controls a
//! destination before captures are written there (Cloudflare's flow, §6 of the reference).
//! Adding a destination writes `ownership-challenge-<id>.txt` holding a random token into it
//! (the only object the server ever writes to a bucket besides a merged file); validating
//! compares the token the user copied from that object, in constant time.
//!
//! Records are keyed on the destination's canonical form (`Destination`'s `Display`: no
//! secrets, sorted options), so `r2://b?account-id=..&access-key-id=..` names the same bucket
//! as `r2://b?account-id=..`. An edgecap extension, `credentials` (the JSON shape of
//! `edgecap_store::Credentials`), gives the bucket's credentials on add; they are sealed at
//! rest and used for the challenge and for every capture to the bucket, and never returned.

use axum::extract::State;
use axum::response::Response;
use edgecap_store::{Credentials, Destination, layout};
use serde_json::Value;

use super::body::{JsonBody, PathId, ok, path_id};
use crate::AppState;
use crate::auth::Caller;
use crate::clock;
use crate::credentials::ownership_context;
use crate::db::ownership::{self, Ownership};
use crate::destination;
use crate::error::HttpError;
use crate::secret;

/// The destination with the credentials of the `credentials` field, if given. Credentials in
/// the URL and in the field at once are refused: which one was meant is not ours to guess.
pub fn with_api_credentials(
    dest: Destination,
    given: Option<&Value>,
) -> Result<Destination, HttpError> {
    let Some(v) = given.filter(|v| !v.is_null()) else {
        return Ok(dest);
    };
    let creds =
        Credentials::from_json(v, "credentials").map_err(|e| destination::bad(e, "credentials"))?;
    if dest.explicit_credentials().is_some() {
        return Err(HttpError::field(
            "credentials",
            "destination_conf carries access keys already; give the credentials once",
        ));
    }
    dest.with_credentials(creds, "credentials")
        .map_err(|e| destination::bad(e, "credentials"))
}

/// `POST /pcaps/ownership` `{destination_conf, credentials?}`. Adding a destination again
/// (say, after the challenge object was lost) writes a new token under the same id and
/// replaces the stored credentials; a validated one is a 409.
pub async fn add(
    caller: Caller,
    State(state): State<AppState>,
    body: JsonBody,
) -> Result<Response, HttpError> {
    let mut errs = body.unknown_fields(&["destination_conf", "credentials"]);
    let conf = body.string("destination_conf", &mut errs);
    let Some(conf) = conf.filter(|_| errs.is_empty()) else {
        return Err(HttpError::bad_request(errs));
    };
    let dest = destination::parse(&conf, "destination_conf")?;
    let dest = with_api_credentials(dest, body.object().get("credentials"))?;
    let canonical = dest.to_string();
    let store = destination::open(&state.config.endpoints, &dest, "destination_conf").await?;
    let existing = ownership::by_destination(&state.db, &caller.account.id, &canonical).await?;
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
    let key = layout::ownership_challenge(&id).map_err(|e| destination::bad(e, "ownership_id"))?;
    let token = secret::new_secret("");
    let record = Ownership {
        filename: key.clone(),
        id,
        destination_conf: canonical,
        status: "pending".into(),
        submitted: clock::now(),
        validated: String::new(),
    };
    // Sealed before anything is written, so a server without a usable key writes nothing.
    let sealed = dest
        .explicit_credentials()
        .map(|c| state.hub.vault().seal(c, &ownership_context(&record.id)))
        .transpose()?;
    store
        .put_small(&key, token.clone().into_bytes())
        .await
        .map_err(|e| {
            HttpError::field(
                "destination_conf",
                format!("cannot write the challenge object: {e}"),
            )
        })?;
    ownership::upsert_pending(
        &state.db,
        &caller.account.id,
        &record,
        &secret::digest(&token),
        sealed.as_deref(),
    )
    .await?;
    tracing::info!(ownership = %record.id, account = %caller.account.id,
        destination = %record.destination_conf, credentials = sealed.is_some(),
        "ownership challenge written");
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
/// the challenge object. A wrong token marks the record `failed` (it can be retried).
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
    let canonical = destination::parse(&conf, "destination_conf")?.to_string();
    let Some(stored) = ownership::by_destination(&state.db, &caller.account.id, &canonical).await?
    else {
        return Err(HttpError::not_found(format!(
            "destination_conf: no ownership challenge for {canonical}; add it with \
             POST /pcaps/ownership first"
        )));
    };
    let given = secret::digest(&challenge);
    let mut record = stored.ownership;
    if !secret::ct_eq(given.as_bytes(), stored.token_hash.as_bytes()) {
        ownership::set_status(&state.db, &record.id, "failed", None).await?;
        return Err(HttpError::field(
            "ownership_challenge",
            format!(
                "does not match the token in {} (copy that object's contents)",
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
