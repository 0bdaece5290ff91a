//! The PCAP API of the `edgecap server` a benchmark started, as one account: the one HTTP
//! client of the benchmarks. It is async because the dispatch benchmark polls it beside
//! thousands of simulated agents on one runtime; the agent-memory benchmark, otherwise
//! synchronous, waits on each call with [`Api::blocking`].

use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

use crate::exit::Failure;

/// The account's API at one server, with its token.
#[derive(Debug)]
pub struct Api {
    http: reqwest::Client,
    /// `<server>`, its `http://` URL.
    server: String,
    /// `<server>/client/v4/accounts/<account>`.
    base: String,
    token: String,
    /// The runtime [`Api::blocking`] waits on; None for callers already inside one.
    runtime: Option<tokio::runtime::Runtime>,
}

impl Api {
    /// A client for `account` at `server` (its `http://` URL), for async callers.
    pub fn new(server: &str, account: &str, token: String) -> Result<Api, Failure> {
        // reqwest is built without a TLS provider where the store crate is linked; ring is
        // the store's choice. Err: the process chose one already, which serves as well.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| Failure::runtime(format!("HTTP client: {e}")))?;
        Ok(Api {
            http,
            server: server.trim_end_matches('/').to_owned(),
            base: format!("{server}/client/v4/accounts/{account}"),
            token,
            runtime: None,
        })
    }

    /// [`Api::new`] for synchronous callers: the client gets a runtime of its own, whose
    /// worker keeps its connections served between calls.
    pub fn new_blocking(server: &str, account: &str, token: String) -> Result<Api, Failure> {
        let runtime = runtime(Some(1))?;
        let mut api = {
            let _inside = runtime.enter();
            Api::new(server, account, token)?
        };
        api.runtime = Some(runtime);
        Ok(api)
    }

    /// `method <base>/<rest>` with an optional JSON body: the envelope's `result`, or a
    /// failure naming the HTTP status and the envelope's `errors`.
    pub async fn call(
        &self,
        method: Method,
        rest: &str,
        body: Option<Value>,
    ) -> Result<Value, Failure> {
        let mut req = self
            .http
            .request(method, format!("{}/{rest}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| Failure::runtime(format!("API: {e}")))?;
        let status = resp.status();
        let v: Value = resp
            .json()
            .await
            .map_err(|e| Failure::runtime(format!("API answer: {e}")))?;
        if !status.is_success() {
            return Err(Failure::runtime(format!("API {status}: {}", v["errors"])));
        }
        Ok(v["result"].clone())
    }

    /// The server's `/metrics` text (no token needed).
    pub async fn metrics(&self) -> Result<String, Failure> {
        let resp = self
            .http
            .get(format!("{}/metrics", self.server))
            .send()
            .await
            .map_err(|e| Failure::runtime(format!("/metrics: {e}")))?;
        let status = resp.status();
        let text = resp
            .text()
            .await
            .map_err(|e| Failure::runtime(format!("/metrics: {e}")))?;
        if !status.is_success() {
            return Err(Failure::runtime(format!("/metrics: {status}: {text}")));
        }
        Ok(text)
    }

    /// `GET <base>/<rest>` with `Accept: accept`: the body's bytes (a capture's file), or a
    /// failure naming the HTTP status and the answer.
    pub async fn download(&self, rest: &str, accept: &str) -> Result<Vec<u8>, Failure> {
        let resp = self
            .http
            .get(format!("{}/{rest}", self.base))
            .bearer_auth(&self.token)
            .header(reqwest::header::ACCEPT, accept)
            .send()
            .await
            .map_err(|e| Failure::runtime(format!("API: {e}")))?;
        let status = resp.status();
        let body = resp
            .bytes()
            .await
            .map_err(|e| Failure::runtime(format!("API answer: {e}")))?;
        if !status.is_success() {
            return Err(Failure::runtime(format!(
                "API {status}: {}",
                String::from_utf8_lossy(&body)
            )));
        }
        Ok(body.to_vec())
    }

    /// [`Api::call`], waited for on the client's own runtime ([`Api::new_blocking`]).
    pub fn blocking(
        &self,
        method: Method,
        rest: &str,
        body: Option<Value>,
    ) -> Result<Value, Failure> {
        let rt = self.runtime.as_ref().ok_or_else(|| {
            Failure::runtime("API: a blocking call on a client made for async callers")
        })?;
        rt.block_on(self.call(method, rest, body))
    }
}

/// A multi-threaded runtime: `threads` workers, or one per CPU.
pub fn runtime(threads: Option<usize>) -> Result<tokio::runtime::Runtime, Failure> {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = threads {
        b.worker_threads(n);
    }
    b.enable_all()
        .build()
        .map_err(|e| Failure::runtime(format!("starting the async runtime: {e}")))
}
