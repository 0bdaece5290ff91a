//! Who is calling. API routes take `Authorization: Bearer <api token>`; a token acts for one
//! account only. No token, or one that is not a live API token (agent tokens included), is
//! 401; a valid token on another account's path is 403.

use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::HeaderMap;
use axum::http::request::Parts;

use crate::AppState;
use crate::db::accounts::Account;
use crate::db::tokens;
use crate::error::HttpError;

/// The token of an `Authorization: Bearer <token>` header.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// A caller with a live API token, on a route that names no account (`GET /accounts`).
#[derive(Debug, Clone)]
pub struct TokenCaller {
    pub account: Account,
}

impl FromRequestParts<AppState> for TokenCaller {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, HttpError> {
        Ok(TokenCaller {
            account: token_account(parts, state).await?,
        })
    }
}

async fn token_account(parts: &Parts, state: &AppState) -> Result<Account, HttpError> {
    let result = match bearer(&parts.headers) {
        None => Err(HttpError::unauthenticated(
            "missing Authorization: Bearer <API token> header",
        )),
        Some(secret) => tokens::api_account(&state.db, secret)
            .await?
            .ok_or_else(|| HttpError::unauthenticated("not a valid API token")),
    };
    // Each failed authentication costs the peer (crate::rate).
    if result.is_err() {
        state
            .limits
            .auth_failed(crate::rate::peer_of(&parts.extensions));
    }
    result
}

/// The authenticated caller of an account-scoped route: the account named in the path.
#[derive(Debug, Clone)]
pub struct Caller {
    pub account: Account,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, HttpError> {
        let account = token_account(parts, state).await?;
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| HttpError::forbidden("this route is not scoped to an account"))?;
        let in_path = params
            .iter()
            .find(|(k, _)| *k == "account_id")
            .map(|(_, v)| v.to_owned())
            .unwrap_or_default();
        if !in_path.eq_ignore_ascii_case(&account.id) {
            return Err(HttpError::forbidden(
                "this token may not act on that account",
            ));
        }
        Ok(Caller { account })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_are_read() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert("authorization", "Bearer ecp_abc".parse().unwrap());
        assert_eq!(bearer(&h), Some("ecp_abc"));
        h.insert("authorization", "bearer   ecp_abc ".parse().unwrap());
        assert_eq!(bearer(&h), Some("ecp_abc"));
        h.insert("authorization", "Basic eDp5".parse().unwrap());
        assert_eq!(bearer(&h), None);
        h.insert("authorization", "Bearer ".parse().unwrap());
        assert_eq!(bearer(&h), None);
    }
}
