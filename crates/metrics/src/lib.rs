//! Metrics and health endpoints, shared by the server and the agent.
//!
//! - the Prometheus client ([`prometheus_client`], re-exported): each process owns one
//!   [`Registry`] of typed families; [`render`] writes its OpenMetrics text;
//! - [`Check`] and [`Readiness`]: what `/readyz` answers (200, or 503 naming every check that
//!   failed), the same JSON on both processes;
//! - [`router`] and [`serve`]: the small listener (`--metrics-listen`) that serves `/metrics`,
//!   `/healthz` and `/readyz` for a [`Probe`], and nothing else;
//! - [`parse_listen`]: the flag's one parser.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use edgecap_model::{ApiError, Envelope, codes};
pub use prometheus_client;
use prometheus_client::registry::Registry;
use serde::Serialize;

/// The content type of [`render`]'s text (Prometheus negotiates it).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The registry's metrics as OpenMetrics text.
pub fn render(registry: &Registry) -> String {
    let mut out = String::with_capacity(8 * 1024);
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, registry) {
        // Writing into a String only fails when a metric's encoder does; say so in the text.
        tracing::error!(error = %e, "encoding metrics");
        out.clear();
        out.push_str("# EOF\n");
    }
    out
}

/// `/metrics`' answer for `text`.
pub fn metrics_response(text: String) -> Response {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response()
}

/// One readiness condition and how it stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// What was checked (`database`, `migrations`, `server`, `nftables`, ...).
    pub name: String,
    pub ok: bool,
    /// Why it is not ready (or a short note when it is).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Check {
    pub fn ok(name: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            ok: true,
            detail: None,
        }
    }

    pub fn failed(name: impl Into<String>, detail: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            ok: false,
            detail: Some(detail.into()),
        }
    }
}

/// The checks of one `/readyz` answer: ready when every one is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Readiness {
    pub ready: bool,
    pub checks: Vec<Check>,
}

impl Readiness {
    pub fn of(checks: Vec<Check>) -> Readiness {
        Readiness {
            ready: checks.iter().all(|c| c.ok),
            checks,
        }
    }

    /// Names of the failed checks, comma separated (empty when ready).
    pub fn failed(&self) -> String {
        let names: Vec<&str> = self
            .checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| c.name.as_str())
            .collect();
        names.join(",")
    }

    /// The envelope with these checks as its result: 200 when ready, else 503 with one
    /// error per failed check (`"<name>: <why>"`).
    pub fn response(&self) -> Response {
        let code = if self.ready {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        let errors = self
            .checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| {
                let why = c.detail.as_deref().unwrap_or("not ready");
                ApiError::new(codes::INTERNAL, format!("{}: {why}", c.name))
            })
            .collect();
        let body = Envelope {
            result: Some(self),
            success: self.ready,
            errors,
            messages: vec![],
        };
        (code, axum::Json(body)).into_response()
    }
}

/// `/healthz`' answer: the process serves (the envelope, `result.status` = `ok`).
pub fn alive_response() -> Response {
    axum::Json(Envelope::ok(serde_json::json!({"status": "ok"}))).into_response()
}

/// What a process exposes on its metrics listener.
pub trait Probe: Send + Sync + 'static {
    /// The OpenMetrics text of its registry (after refreshing what is read at scrape time).
    fn metrics(&self) -> impl Future<Output = String> + Send;
    /// Its readiness checks.
    fn readiness(&self) -> impl Future<Output = Readiness> + Send;
}

/// `/metrics`, `/healthz` and `/readyz` for `probe`; every other path is 404.
pub fn router<P: Probe>(probe: Arc<P>) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(|State(p): State<Arc<P>>| async move { metrics_response(p.metrics().await) }),
        )
        .route("/healthz", get(|| async { alive_response() }))
        .route(
            "/readyz",
            get(|State(p): State<Arc<P>>| async move { p.readiness().await.response() }),
        )
        .with_state(probe)
}

/// `--metrics-listen`'s value as an address; the error names `flag`.
pub fn parse_listen(flag: &str, value: &str) -> Result<SocketAddr, String> {
    value
        .trim()
        .parse()
        .map_err(|_| format!("{flag}: {value:?} is not an address:port (e.g. 127.0.0.1:9187)"))
}

/// Binds `addr` for `flag`; the error names the flag and the address.
pub async fn bind(flag: &str, addr: SocketAddr) -> Result<tokio::net::TcpListener, String> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("{flag}: cannot listen on {addr}: {e}"))
}

/// Serves `router` on `listener` until `shutdown` resolves. Plain HTTP: keep it on loopback
/// or a monitoring network.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    if let Err(e) = axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
    {
        tracing::error!(error = %e, "metrics listener stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::counter::Counter;

    #[test]
    fn readiness_is_every_check_and_names_the_failed_ones() {
        let r = Readiness::of(vec![Check::ok("database"), Check::ok("migrations")]);
        assert!(r.ready);
        assert_eq!(r.failed(), "");
        let r = Readiness::of(vec![
            Check::ok("migrations"),
            Check::failed("database", "no answer"),
        ]);
        assert!(!r.ready);
        assert_eq!(r.failed(), "database");
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["checks"][1]["detail"], "no answer");
        let response = r.response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    }

    #[test]
    fn counters_render_with_their_total_suffix() {
        let mut reg = Registry::with_prefix("edgecap");
        let c = Counter::<u64>::default();
        reg.register("things", "Things seen", c.clone());
        c.inc_by(3);
        let text = render(&reg);
        assert!(text.contains("edgecap_things_total 3\n"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn listen_addresses_name_the_flag() {
        assert_eq!(
            parse_listen("--metrics-listen", "127.0.0.1:9187").unwrap(),
            "127.0.0.1:9187".parse::<SocketAddr>().unwrap()
        );
        let e = parse_listen("--metrics-listen", "localhost").unwrap_err();
        assert!(e.starts_with("--metrics-listen: "), "{e}");
    }
}
