//! The HTTP API: Cloudflare's PCAP API under `/client/v4/accounts/{account_id}/`, edgecap's
//! own resources in the same style, the agent WebSocket, the OpenAPI document and a health
//! check. Every answer, errors included, is the `{result, success, errors, messages}`
//! envelope (the WebSocket upgrade and the OpenAPI document aside).
//!
//! - [`body`]: reading bodies, query strings and path ids defensively;
//! - [`pcaps`]: captures; [`select`]: which nodes a capture selects; [`target`]: where it
//!   writes (destination, ownership, credentials);
//! - [`ownership`]: bucket ownership challenges;
//! - [`misc`]: nodes, `/openapi.json`, `/healthz`;
//! - [`tokens`]: the token's accounts and the account's API tokens.

pub mod body;
mod misc;
mod ownership;
mod pcaps;
mod select;
mod target;
mod tokens;

use std::time::Instant;

use axum::Router;
use axum::extract::Request;
use axum::http::{Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use edgecap_model::{ApiError, codes};

pub use misc::OPENAPI;

use crate::AppState;
use crate::auth::Need;
use crate::error::HttpError;

/// Declares the routes once, each with what it needs of its caller (`[Read]`, `[Write]`,
/// `[Tokens]`, `[Nodes]`: that scope; `[AnyToken]`: any live API token; `[Public]`: no API
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
    post "/client/v4/accounts/{account_id}/pcaps/ownership" [Write] => ownership::add,
    get "/client/v4/accounts/{account_id}/pcaps/ownership" [Read] => ownership::list,
    delete "/client/v4/accounts/{account_id}/pcaps/ownership/{ownership_id}" [Write] => ownership::delete,
    post "/client/v4/accounts/{account_id}/pcaps/ownership/validate" [Write] => ownership::validate,
    get "/client/v4/accounts/{account_id}/nodes" [Read] => misc::nodes,
    post "/client/v4/accounts/{account_id}/nodes/{node_name}/revoke" [Nodes] => misc::revoke_node,
    get "/client/v4/accounts" [AnyToken] => tokens::accounts,
    get "/client/v4/accounts/{account_id}/tokens" [Tokens] => tokens::list,
    post "/client/v4/accounts/{account_id}/tokens" [Tokens] => tokens::create,
    delete "/client/v4/accounts/{account_id}/tokens/{token_id}" [Tokens] => tokens::delete,
    get "/agent/v1/connect" [Public] => crate::hub::socket::connect,
    get "/openapi.json" [Public] => misc::openapi,
    get "/healthz" [Public] => misc::healthz,
}

/// The whole API on `state`.
pub fn router(state: AppState) -> Router {
    routes()
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .layer(middleware::from_fn(log_request))
        .with_state(state)
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

/// One debug line per request with its status and duration.
async fn log_request(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    let response = next.run(req).await;
    tracing::debug!(%method, %path, status = response.status().as_u16(),
        ms = start.elapsed().as_secs_f64() * 1e3, "request");
    response
}
