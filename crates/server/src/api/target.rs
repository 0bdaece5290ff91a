//! Where a new capture writes: its `destination_conf` parsed, the bucket's ownership checked,
//! and the credentials its agents will use resolved, before anything is stored.
//!
//! - A bucket (`s3`, `r2`, `gs`, `azure`) must have an ownership record of this account in
//!   status `success`; otherwise the create is refused naming `destination_conf`.
//! - `file:///dir` needs no ownership: it names a directory on each selected node (the
//!   operator's own machines, as in `edgecap up`), not someone's bucket.
//! - Credentials: those in the URL (Cloudflare's R2 form carries keys), else those given when
//!   the bucket was added, else none (each agent uses its cloud's standard chain).
//! - A custom `endpoint=` must pass the endpoint policy (`Config::endpoints`: https, public
//!   addresses, written and resolved, unless allowed; never metadata) and bring credentials.

use edgecap_store::{Credentials, Destination};

use crate::AppState;
use crate::credentials::ownership_context;
use crate::db::ownership;
use crate::destination;
use crate::error::HttpError;

/// A capture's destination, checked.
#[derive(Debug)]
pub struct Target {
    /// The canonical, secret-free URL: what is stored, returned and sent to agents.
    pub canonical: String,
    /// Credentials for the agents (and the merge), if any; sealed with the capture's id once
    /// it has one.
    pub credentials: Option<Credentials>,
}

/// Checks `conf` for a capture of `account`.
pub async fn resolve(state: &AppState, account: &str, conf: &str) -> Result<Target, HttpError> {
    resolve_field(state, account, conf, "destination_conf").await
}

/// [`resolve`] with errors naming `field` (a trigger's `capture.destination_conf`).
pub async fn resolve_field(
    state: &AppState,
    account: &str,
    conf: &str,
    field: &str,
) -> Result<Target, HttpError> {
    let dest = destination::parse(conf, field)?;
    // A refused endpoint is refused for what it is, before ownership is looked at.
    destination::check_endpoint(&state.config.endpoints, &dest, field).await?;
    let canonical = dest.to_string();
    if !dest.scheme.is_bucket() {
        return Ok(Target {
            canonical,
            credentials: None,
        });
    }
    let Some(owned) = ownership::by_destination(&state.db, account, &canonical).await? else {
        return Err(HttpError::field(
            field,
            format!(
                "{canonical} is not a validated bucket of this account: add it with POST \
                 /pcaps/ownership, copy the token from the challenge object it writes, and \
                 send it to POST /pcaps/ownership/validate"
            ),
        ));
    };
    if owned.ownership.status != "success" {
        return Err(HttpError::field(
            field,
            format!(
                "ownership of {canonical} is {} (ownership {}), not validated: send the token \
                 from {} to POST /pcaps/ownership/validate",
                owned.ownership.status, owned.ownership.id, owned.ownership.filename
            ),
        ));
    }
    let credentials = match (dest.explicit_credentials(), &owned.credentials) {
        (Some(c), _) => Some(c.clone()),
        (None, Some(sealed)) => Some(
            state
                .hub
                .vault()
                .open(sealed, &ownership_context(&owned.ownership.id))?,
        ),
        (None, None) => None,
    };
    // The client the agents will build, built here once: credentials of the wrong kind or
    // missing where they cannot come from a chain (R2) are refused now, not on every node.
    let with = match &credentials {
        Some(c) => Destination::parse(&canonical, field)
            .and_then(|d| d.with_credentials(c.clone(), field))
            .map_err(|e| destination::bad(e, field))?,
        None => Destination::parse(&canonical, field).map_err(|e| destination::bad(e, field))?,
    };
    destination::open(&state.config.endpoints, &with, field).await?;
    Ok(Target {
        canonical,
        credentials,
    })
}
