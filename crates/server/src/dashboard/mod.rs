//! The dashboard (issue 15): server-rendered pages at `/`, `/captures`, `/captures/{id}`,
//! `/captures/{id}/packets`, `/traffic`, `/triggers`, `/buckets` and `/events`, one hand-written script and one style sheet embedded in the binary
//! (`assets/`), no build step and no third-party browser code. The pages carry no data: the
//! script reads the same JSON API the CLI and the SDKs use (`/client/v4/accounts/...`), so
//! every account rule (scoping, tenancy, scopes, validation) is the API's own.
//!
//! Auth: `POST /login` with an API token opens a session (`db::sessions`, migration 0013:
//! only the session secret's SHA-256 is stored, bound to the token), answered as an HttpOnly,
//! SameSite=Strict cookie; `auth` takes that cookie where there is no `Authorization` header.
//! Writes with the cookie must come from the same origin ([`same_origin`]: `Sec-Fetch-Site`,
//! else `Origin` against `Host`). Every dashboard answer carries [`CSP`] (no inline script).
//! A page without a live session is a redirect to `/login`; an API call without one is the
//! API's 401, which the script turns into the same redirect.
//!
//! - [`events`]: a capture's status and per-node progress as server-sent events, at most
//!   [`events::MAX_STREAMS`] at once per session on each replica;
//! - [`packets`]: the packet view's data (a page of a capture's packets under a display
//!   filter, one packet's header tree and hex), bounded per request.

pub mod events;
pub mod packets;
mod pages;

use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::AppState;
use crate::auth::Need;
use crate::db::sessions;
use crate::db::tokens::ApiLookup;
use crate::error::HttpError;

/// The session cookie's name.
pub const COOKIE: &str = "edgecap_session";

/// How long a dashboard session lasts at most (never past its token's expiry).
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);

/// Every dashboard answer's Content-Security-Policy: scripts and styles only from this
/// server's own files (no inline script or style), data only from this origin, no framing.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; \
     base-uri 'none'";

/// The largest login form body read.
const MAX_LOGIN_BODY: usize = 4096;

const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");

/// The dashboard's routes (merged into `api::router`, under its guard and request log).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(pages::fleet))
        .route("/captures", get(pages::captures))
        .route("/captures/{pcap_id}", get(pages::capture))
        .route("/captures/{pcap_id}/packets", get(pages::packets))
        .route("/triggers", get(pages::triggers))
        .route("/buckets", get(pages::buckets))
        .route("/traffic", get(pages::traffic))
        .route("/events", get(pages::events))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/assets/app.js", get(js))
        .route("/assets/app.css", get(css))
        .route(
            "/ui/accounts/{account_id}/pcaps/{pcap_id}/events",
            get(events::capture).layer(axum::Extension(Need::Read)),
        )
        .route(
            "/ui/accounts/{account_id}/pcaps/{pcap_id}/packets",
            get(packets::packets).layer(axum::Extension(Need::Read)),
        )
        .layer(axum::middleware::map_response(secure_headers))
}

async fn secure_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// The session secret of the request's cookie, if it has one of the right shape.
pub fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().strip_prefix(COOKIE)?.strip_prefix('='))
        .find(|v| v.starts_with(sessions::SESSION_PREFIX) && v.len() < 200)
}

/// A write (any method but GET, HEAD, OPTIONS) made with the session cookie must come from
/// the dashboard's own pages: `Sec-Fetch-Site: same-origin` where the browser sends it, else
/// an `Origin` whose host is this request's `Host`. SameSite=Strict already keeps the cookie
/// off cross-site requests; this is the second lock.
pub fn same_origin(method: &Method, headers: &HeaderMap) -> Result<(), HttpError> {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let refused = |why: &str| {
        Err(HttpError::forbidden(&format!(
            "cross-site write refused: {why} (a dashboard session writes only from the \
             dashboard's own pages)"
        )))
    };
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return if site == "same-origin" {
            Ok(())
        } else {
            refused(&format!("Sec-Fetch-Site is {site:?}"))
        };
    }
    let (Some(origin), Some(host)) = (text(header::ORIGIN), text(header::HOST)) else {
        return refused("no Sec-Fetch-Site and no Origin header");
    };
    let origin_host = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
        .unwrap_or("");
    if origin_host.eq_ignore_ascii_case(host) {
        Ok(())
    } else {
        refused(&format!("Origin {origin:?} is not this server ({host})"))
    }
}

/// The account of a live session on this request, for pages.
async fn session_account(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<crate::db::accounts::Account>, HttpError> {
    let Some(session) = session_cookie(headers) else {
        return Ok(None);
    };
    Ok(match sessions::lookup(&state.db, session).await? {
        ApiLookup::Valid { account, .. } => Some(account),
        _ => None,
    })
}

fn cookie(value: &str, max_age: u64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("edgecap_session=; Max-Age=0"))
}

fn see_other(to: &'static str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response()
}

/// To the login page, clearing a dead cookie.
fn to_login(secure: bool) -> Response {
    let mut r = see_other("/login");
    r.headers_mut()
        .insert(header::SET_COOKIE, cookie("", 0, secure));
    r
}

async fn login_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Ok(Some(_)) = session_account(&state, &headers).await {
        return see_other("/");
    }
    pages::login(StatusCode::OK, None)
}

/// `token=<API token>` from a form body (`application/x-www-form-urlencoded`).
fn form_token(body: &[u8]) -> Option<String> {
    let body = std::str::from_utf8(body).ok()?;
    let raw = body.split('&').find_map(|kv| kv.strip_prefix("token="))?;
    let raw = raw.replace('+', " ");
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok().map(|s| s.trim().to_owned())
}

/// `POST /login` (form: `token`): a session for a live API token, or the login page again
/// saying why not (a failure costs the peer as a failed API login does).
async fn login(State(state): State<AppState>, req: Request) -> Response {
    let secure = state.config.tls.is_some();
    if let Err(e) = same_origin(req.method(), req.headers()) {
        return e.into_response();
    }
    let peer = crate::rate::peer_of(req.extensions());
    let body = match axum::body::to_bytes(req.into_body(), MAX_LOGIN_BODY).await {
        Ok(b) => b,
        Err(_) => {
            return pages::login(
                StatusCode::PAYLOAD_TOO_LARGE,
                Some(&format!(
                    "token: the form is larger than {MAX_LOGIN_BODY} bytes"
                )),
            );
        }
    };
    let token = form_token(&body).unwrap_or_default();
    if token.is_empty() {
        return pages::login(StatusCode::BAD_REQUEST, Some("token: give an API token"));
    }
    match sessions::open(&state.db, &token, SESSION_TTL).await {
        Ok(Ok(session)) => {
            tracing::info!(?peer, "dashboard login");
            let mut r = see_other("/");
            r.headers_mut().insert(
                header::SET_COOKIE,
                cookie(&session, SESSION_TTL.as_secs(), secure),
            );
            r
        }
        Ok(Err(why)) => {
            state.limits.auth_failed(peer);
            pages::login(StatusCode::UNAUTHORIZED, Some(&format!("token: {why}")))
        }
        Err(e) => HttpError::from(e).into_response(),
    }
}

/// `POST /logout`: ends the session and clears the cookie.
async fn logout(State(state): State<AppState>, method: Method, headers: HeaderMap) -> Response {
    if let Err(e) = same_origin(&method, &headers) {
        return e.into_response();
    }
    if let Some(session) = session_cookie(&headers)
        && let Err(e) = sessions::close(&state.db, session).await
    {
        return HttpError::from(e).into_response();
    }
    to_login(state.config.tls.is_some())
}

fn asset(body: &'static str, kind: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

async fn js() -> Response {
    asset(APP_JS, "text/javascript; charset=utf-8")
}

async fn css() -> Response {
    asset(APP_CSS, "text/css; charset=utf-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        assert_eq!(session_cookie(&h), None);
        h.insert(
            header::COOKIE,
            "a=b; edgecap_session=ecs_abc; c=d".parse().unwrap(),
        );
        assert_eq!(session_cookie(&h), Some("ecs_abc"));
        h.insert(header::COOKIE, "edgecap_session=ecp_token".parse().unwrap());
        assert_eq!(session_cookie(&h), None, "an API token is no session");
    }

    #[test]
    fn writes_need_the_same_origin() {
        let mut h = HeaderMap::new();
        assert!(same_origin(&Method::GET, &h).is_ok());
        assert!(same_origin(&Method::POST, &h).is_err(), "no header at all");
        h.insert(header::HOST, "127.0.0.1:8080".parse().unwrap());
        h.insert(header::ORIGIN, "http://127.0.0.1:8080".parse().unwrap());
        assert!(same_origin(&Method::POST, &h).is_ok());
        h.insert(header::ORIGIN, "http://evil.example".parse().unwrap());
        assert!(same_origin(&Method::PUT, &h).is_err());
        h.insert("sec-fetch-site", "cross-site".parse().unwrap());
        assert!(same_origin(&Method::DELETE, &h).is_err());
        h.insert("sec-fetch-site", "same-origin".parse().unwrap());
        assert!(same_origin(&Method::POST, &h).is_ok());
    }

    #[test]
    fn the_login_form_is_decoded() {
        assert_eq!(form_token(b"token=ecp_ab%63d"), Some("ecp_abcd".into()));
        assert_eq!(form_token(b"x=1&token=+ecp_x+"), Some("ecp_x".into()));
        assert_eq!(form_token(b"x=1"), None);
        assert_eq!(form_token(b"token=%zz"), None);
        assert_eq!(form_token(b"token=%4"), Some("%4".into()));
    }
}
