//! The HTTP API: Cloudflare's PCAP API under `/client/v4/accounts/{account_id}/`, edgecap's
//! own resources in the same style, the agent WebSocket, the OpenAPI document and a health
//! check. Every answer, errors included, is the `{result, success, errors, messages}`
//! envelope (the WebSocket upgrade and the OpenAPI document aside).
//!
//! - [`body`]: reading bodies, query strings and path ids defensively;
//! - [`pcaps`]: captures; [`estimate`]: size estimates before a capture; [`simple`]: look-back captures; [`select`]: which nodes a capture selects; [`target`]: where it
//!   writes (destination, ownership, credentials);
//! - [`ownership`]: bucket ownership challenges;
//! - [`misc`]: nodes, `/openapi.json`, `/healthz`, `/readyz`, `/metrics`;
//! - [`tokens`]: the token's accounts, the account itself and its API tokens;
//! - [`operator`]: the operator API (an account's tenancy), `operator` scope only;
//! - [`traffic`]: traffic rates and heavy hitters from the rollups (edgecap extension);
//! - [`triggers`]: anomaly triggers (edgecap extension);
//! - [`events`]: the anomalies they saw (edgecap extension).

pub mod body;
mod estimate;
mod events;
mod misc;
mod operator;
mod ownership;
pub(crate) mod pcaps;
pub(crate) mod select;
mod simple;
mod target;
mod tokens;
mod traffic;
mod triggers;

use std::time::Instant;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use edgecap_model::{ApiError, codes};

pub use misc::OPENAPI;

use crate::AppState;
use crate::auth::Need;
use crate::error::HttpError;

/// Declares the routes once, each with what it needs of its caller (`[Read]`, `[Write]`,
/// `[Tokens]`, `[Nodes]`, `[Operator]`: that scope; `[AnyToken]`: any live API token; `[Public]`: no API
/// token): the router is built from this list, each handler with its [`Need`] as a request
/// extension that `auth::Caller` checks; [`ROUTES`] lets the tests compare it with the
/// OpenAPI document, and [`ROUTE_NEEDS`] with docs/api.md.
macro_rules! routes {
    ($($method:ident $path:literal [$need:ident] => $handler:path),* $(,)?) => {
        /// Every route as (lower-case method, path template).
        pub const ROUTES: &[(&str, &str)] = &[$((stringify!($method), $path)),*];

        /// Every route with what it needs of its caller.
        pub const ROUTE_NEEDS: &[(&str, &str, Need)] =
            &[$((stringify!($method), $path, Need::$need)),*];

        fn routes() -> Router<AppState> {
            Router::new()$(.route(
                $path,
                axum::routing::$method($handler).layer(axum::Extension(Need::$need)),
            ))*
        }
    };
}

routes! {
    post "/client/v4/accounts/{account_id}/pcaps" [Write] => pcaps::create,
    get "/client/v4/accounts/{account_id}/pcaps" [Read] => pcaps::list,
    get "/client/v4/accounts/{account_id}/pcaps/{pcap_id}" [Read] => pcaps::get,
    put "/client/v4/accounts/{account_id}/pcaps/{pcap_id}/stop" [Write] => pcaps::stop,
    get "/client/v4/accounts/{account_id}/pcaps/{pcap_id}/download" [Read] => pcaps::download,
    post "/client/v4/accounts/{account_id}/pcaps/estimate" [Read] => estimate::estimate,
    post "/client/v4/accounts/{account_id}/pcaps/ownership" [Write] => ownership::add,
    get "/client/v4/accounts/{account_id}/pcaps/ownership" [Read] => ownership::list,
    delete "/client/v4/accounts/{account_id}/pcaps/ownership/{ownership_id}" [Write] => ownership::delete,
    post "/client/v4/accounts/{account_id}/pcaps/ownership/validate" [Write] => ownership::validate,
    post "/client/v4/accounts/{account_id}/pcaps/triggers" [Write] => triggers::create,
    get "/client/v4/accounts/{account_id}/pcaps/triggers" [Read] => triggers::list,
    get "/client/v4/accounts/{account_id}/pcaps/triggers/{trigger_id}" [Read] => triggers::get,
    delete "/client/v4/accounts/{account_id}/pcaps/triggers/{trigger_id}" [Write] => triggers::delete,
    get "/client/v4/accounts/{account_id}/events" [Read] => events::list,
    get "/client/v4/accounts/{account_id}/events/{event_id}" [Read] => events::get,
    get "/client/v4/accounts/{account_id}/quotas" [Read] => pcaps::quotas,
    get "/client/v4/accounts/{account_id}/nodes" [Read] => misc::nodes,
    post "/client/v4/accounts/{account_id}/nodes/{node_name}/revoke" [Nodes] => misc::revoke_node,
    get "/client/v4/accounts" [AnyToken] => tokens::accounts,
    get "/client/v4/accounts/{account_id}" [Read] => tokens::account,
    get "/client/v4/operator/accounts/{account_id}/tenancy" [Operator] => operator::get,
    put "/client/v4/operator/accounts/{account_id}/tenancy" [Operator] => operator::put,
    get "/client/v4/accounts/{account_id}/tokens" [Tokens] => tokens::list,
    post "/client/v4/accounts/{account_id}/tokens" [Tokens] => tokens::create,
    delete "/client/v4/accounts/{account_id}/tokens/{token_id}" [Tokens] => tokens::delete,
    get "/client/v4/accounts/{account_id}/traffic" [Read] => traffic::traffic,
    get "/client/v4/accounts/{account_id}/traffic/top" [Read] => traffic::top,
    get "/agent/v1/connect" [Public] => crate::hub::socket::connect,
    get "/openapi.json" [Public] => misc::openapi,
    get "/healthz" [Public] => misc::healthz,
    get "/readyz" [Public] => misc::readyz,
    get "/metrics" [Public] => misc::metrics,
}

/// The whole API on `state`.
pub fn router(state: AppState) -> Router {
    routes()
        .merge(crate::dashboard::router())
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .layer(middleware::from_fn_with_state(state.clone(), log_request))
        .with_state(state)
}

/// The agent's WebSocket: exempt from the request timeout (it lives as long as the
/// connection) and from the per-token rate (a fleet reconnecting at once shares a token).
const AGENT_PATH: &str = "/agent/v1/connect";

/// Every request: refused with 429 when its peer has used up its failed logins or its token
/// its request rate ([`crate::rate`]); answered 503 when it takes longer than the request
/// timeout.
async fn guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let agent = req.uri().path() == AGENT_PATH;
    let peer = crate::rate::peer_of(req.extensions());
    let token = if agent {
        None
    } else {
        crate::auth::bearer(req.headers())
    };
    if let Err(t) = state.limits.admit(peer, token) {
        tracing::debug!(?peer, reason = t.reason, "request throttled");
        return HttpError::throttled(&t).into_response();
    }
    if agent {
        return next.run(req).await;
    }
    let limit = state.config.request_timeout;
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => HttpError::timeout(limit).into_response(),
    }
}

async fn no_route(method: Method, uri: Uri) -> HttpError {
    HttpError::not_found(format!("no route for {method} {}", uri.path()))
}

async fn wrong_method(method: Method, uri: Uri) -> Response {
    HttpError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        vec![ApiError::new(
            codes::NOT_FOUND,
            format!("{} does not take {method}", uri.path()),
        )],
    )
    .into_response()
}

/// One debug line per request with its status and duration, and the request counted by its
/// route's template (`edgecap_api_requests_total`; `unmatched` for paths no route takes).
async fn log_request(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or("unmatched", |m| m.as_str())
        .to_owned();
    let response = next.run(req).await;
    state
        .hub
        .metrics()
        .request(method.as_str(), &route, response.status().as_u16());
    tracing::debug!(%method, %path, status = response.status().as_u16(),
        ms = start.elapsed().as_secs_f64() * 1e3, "request");
    response
}
