//! Who is calling, and what they may do. API routes take `Authorization: Bearer <api token>`;
//! a token acts for one account only and carries scopes. No token, one that is not a live API
//! token (agent tokens included), a revoked or an expired one is 401; a valid token on another
//! account's path, or without the scope the route declares (`api::routes!`), is 403 naming
//! what is missing. The dashboard's session cookie stands in for the token when there is no
//! `Authorization` header (`crate::dashboard`: same account and scopes, writes only from the
//! same origin).

use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use serde::Serialize;

use crate::AppState;
use crate::db::accounts::Account;
use crate::db::tokens::{self, ApiLookup};
use crate::error::HttpError;

/// What an API token may do. The one list of scopes: the API's token body, `edgecap admin
/// token create --scopes` and the route declarations all use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// List, get and download captures; list ownerships and nodes.
    Read,
    /// Create and stop captures; add, validate and delete bucket ownerships.
    Write,
    /// List, create and revoke the account's API tokens.
    Tokens,
    /// Node administration (revoke a node). Never a default: the operator grants it.
    Nodes,
    /// The operator API (`/client/v4/operator/...`: any account's tenancy). Only `edgecap
    /// admin token create --scopes operator` grants it; the accounts' own token API refuses.
    Operator,
}

impl Scope {
    pub const ALL: [Scope; 5] = [
        Scope::Read,
        Scope::Write,
        Scope::Tokens,
        Scope::Nodes,
        Scope::Operator,
    ];
    /// What a token gets when no scopes are given, and what tokens made before scopes
    /// existed can do.
    pub const DEFAULT: [Scope; 3] = [Scope::Read, Scope::Write, Scope::Tokens];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Tokens => "tokens",
            Scope::Nodes => "nodes",
            Scope::Operator => "operator",
        }
    }

    pub fn parse(s: &str) -> Result<Scope, String> {
        Scope::ALL
            .into_iter()
            .find(|x| x.as_str() == s.trim())
            .ok_or_else(|| {
                format!(
                    "{s:?} is not a scope (one of {})",
                    Scope::join(&Scope::ALL).replace(',', ", ")
                )
            })
    }

    /// A list of names (`read,write` or several items): sorted, without repeats; at least
    /// one.
    pub fn parse_list<'a>(items: impl IntoIterator<Item = &'a str>) -> Result<Vec<Scope>, String> {
        let mut out = Vec::new();
        for item in items {
            for s in item.split(',').filter(|s| !s.trim().is_empty()) {
                out.push(Scope::parse(s)?);
            }
        }
        out.sort();
        out.dedup();
        if out.is_empty() {
            return Err("give at least one scope (read, write, tokens, nodes, operator)".into());
        }
        Ok(out)
    }

    /// As stored: `read,write`.
    pub fn join(scopes: &[Scope]) -> String {
        scopes
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The stored column: unknown names are dropped (a newer server's scope grants nothing
    /// here); NULL is the default set.
    pub fn parse_stored(s: Option<&str>) -> Vec<Scope> {
        match s {
            None => Scope::DEFAULT.to_vec(),
            Some(s) => s.split(',').filter_map(|x| Scope::parse(x).ok()).collect(),
        }
    }
}

/// What a route asks of its caller, declared beside the route in `api::routes!` and carried
/// to the extractors below as a request extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// No API token (the route authenticates otherwise, or not at all).
    Public,
    /// Any live API token (`GET /accounts`: which account is this token's).
    AnyToken,
    Read,
    Write,
    Tokens,
    Nodes,
    /// The operator API: a token with the `operator` scope, on any account.
    Operator,
}

impl Need {
    /// The scope a token must hold, if any.
    pub fn scope(self) -> Option<Scope> {
        match self {
            Need::Public | Need::AnyToken => None,
            Need::Read => Some(Scope::Read),
            Need::Write => Some(Scope::Write),
            Need::Tokens => Some(Scope::Tokens),
            Need::Nodes => Some(Scope::Nodes),
            Need::Operator => Some(Scope::Operator),
        }
    }

    /// 403 naming the scope unless `scopes` holds it.
    fn check(self, scopes: &[Scope]) -> Result<(), HttpError> {
        match self.scope() {
            Some(s) if !scopes.contains(&s) => Err(HttpError::forbidden(&format!(
                "this token lacks the `{}` scope that this route needs (it has: {})",
                s.as_str(),
                if scopes.is_empty() {
                    "none".to_owned()
                } else {
                    Scope::join(scopes).replace(',', ", ")
                }
            ))),
            _ => Ok(()),
        }
    }
}

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
    pub scopes: Vec<Scope>,
}

impl FromRequestParts<AppState> for TokenCaller {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, HttpError> {
        let (account, scopes) = token_account(parts, state).await?;
        route_need(parts).check(&scopes)?;
        Ok(TokenCaller { account, scopes })
    }
}

/// What the route declared; a route that declared nothing gets nothing (a scope no token
/// holds), so a forgotten declaration fails closed.
fn route_need(parts: &Parts) -> Need {
    parts
        .extensions
        .get::<Need>()
        .copied()
        .unwrap_or(Need::Nodes)
}

async fn token_account(
    parts: &Parts,
    state: &AppState,
) -> Result<(Account, Vec<Scope>), HttpError> {
    let session = crate::dashboard::session_cookie(&parts.headers);
    let result = match (bearer(&parts.headers), session) {
        (None, None) => Err(HttpError::unauthenticated(
            "missing Authorization: Bearer <API token> header",
        )),
        (Some(secret), _) => match tokens::api_lookup(&state.db, secret).await? {
            ApiLookup::Valid { account, scopes } => Ok((account, scopes)),
            ApiLookup::Expired(at) => Err(HttpError::unauthenticated(&format!(
                "this API token expired at {at}"
            ))),
            ApiLookup::Unknown => Err(HttpError::unauthenticated("not a valid API token")),
        },
        // The dashboard's session cookie (crate::dashboard): the same account and scopes as
        // the token it was opened with; writes only from the dashboard's own pages.
        (None, Some(session)) => {
            crate::dashboard::same_origin(&parts.method, &parts.headers)?;
            match crate::db::sessions::lookup(&state.db, session).await? {
                ApiLookup::Valid { account, scopes } => Ok((account, scopes)),
                ApiLookup::Expired(at) => Err(HttpError::unauthenticated(&format!(
                    "this dashboard session expired at {at}; log in again"
                ))),
                ApiLookup::Unknown => Err(HttpError::unauthenticated(
                    "not a dashboard session (logged out or expired); log in again",
                )),
            }
        }
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
    pub scopes: Vec<Scope>,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, HttpError> {
        let (account, scopes) = token_account(parts, state).await?;
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
        route_need(parts).check(&scopes)?;
        Ok(Caller { account, scopes })
    }
}

/// Authenticates an agent's WebSocket upgrade: its node name (`Edgecap-Node`), its own
/// credential (`Authorization: Bearer ecn_...`) and, until its name is bound, an enrolment
/// token (`Edgecap-Enrolment-Token`). The node's name, or 401/403 saying why not.
pub async fn node(state: &AppState, headers: &HeaderMap) -> Result<String, HttpError> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let credential = node_credential(headers)?;
    let name = header(edgecap_model::NODE_HEADER).unwrap_or_default();
    if let Err(e) = edgecap_model::check_hello(name, &Default::default(), &[], "") {
        return Err(HttpError::unauthenticated(&format!(
            "Edgecap-Node header: {}",
            e.strip_prefix("hello.name: ").unwrap_or(&e)
        )));
    }
    let enrolment = header(edgecap_model::ENROLMENT_HEADER).filter(|t| !t.is_empty());
    match crate::db::identities::admit(&state.db, name, credential, enrolment).await? {
        Ok(_) => Ok(name.to_owned()),
        Err(r) if r.forbidden => Err(HttpError::forbidden(&r.message)),
        Err(r) => Err(HttpError::unauthenticated(&r.message)),
    }
}

/// The node credential of an agent's request, checked for its shape only (no database):
/// 401 if there is none.
pub fn node_credential(headers: &HeaderMap) -> Result<&str, HttpError> {
    let Some(credential) = bearer(headers) else {
        return Err(HttpError::unauthenticated(
            "missing Authorization: Bearer <node credential> (the agent makes its credential \
             in its --state-dir at its first connect)",
        ));
    };
    if !edgecap_model::is_node_credential(credential) {
        return Err(HttpError::unauthenticated(
            "Authorization: not a node credential (ecn_...): agent tokens are enrolment \
             tokens now, sent in the Edgecap-Enrolment-Token header by this version's agent",
        ));
    }
    Ok(credential)
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

    #[test]
    fn scopes_parse_and_are_checked() {
        assert_eq!(
            Scope::parse_list(["write,read", "read"]).unwrap(),
            vec![Scope::Read, Scope::Write]
        );
        assert!(
            Scope::parse_list(["admin"])
                .unwrap_err()
                .contains("\"admin\"")
        );
        assert!(Scope::parse_list([""]).is_err());
        assert_eq!(Scope::parse_stored(None), Scope::DEFAULT.to_vec());
        assert_eq!(Scope::parse_stored(Some("read,future")), vec![Scope::Read]);
        assert!(Need::Read.check(&[Scope::Read]).is_ok());
        assert!(Need::AnyToken.check(&[]).is_ok());
        let e = format!("{:?}", Need::Write.check(&[Scope::Read]).unwrap_err());
        assert!(e.contains("`write`"), "{e}");
    }
}
