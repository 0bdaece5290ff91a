//! Failed HTTP attempts to object stores, counted for the agent's and the server's metrics.
//!
//! `object_store` retries a failed request on its own (with backoff, within
//! `StoreOptions::retry_timeout`) and does not report how often. Every store client goes
//! through [`Counting`], which counts each attempt that failed in a way the store retries: a
//! transport error, a 5xx or a 429. Each such attempt is followed by a retry unless the
//! request's retry budget is spent, so the count is the number of retries plus the requests
//! that finally failed (which callers count apart).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use object_store::ClientOptions;
use object_store::client::{
    HttpClient, HttpConnector, HttpError, HttpRequest, HttpResponse, HttpService,
};

static FAILED: AtomicU64 = AtomicU64::new(0);

/// Attempts that failed in a retryable way since the process started.
pub fn failed() -> u64 {
    FAILED.load(Ordering::Relaxed)
}

/// An HTTP client that counts failed attempts.
#[derive(Debug)]
struct Counting(HttpClient);

#[async_trait::async_trait]
impl HttpService for Counting {
    async fn call(&self, req: HttpRequest) -> Result<HttpResponse, HttpError> {
        let result = self.0.execute(req).await;
        let failed = match &result {
            Err(_) => true,
            Ok(r) => r.status().is_server_error() || r.status().as_u16() == 429,
        };
        if failed {
            FAILED.fetch_add(1, Ordering::Relaxed);
        }
        result
    }
}

/// Wraps the client another connector makes in [`Counting`].
#[derive(Debug)]
pub(crate) struct CountingConnector(pub Arc<dyn HttpConnector>);

impl HttpConnector for CountingConnector {
    fn connect(&self, options: &ClientOptions) -> object_store::Result<HttpClient> {
        Ok(HttpClient::new(Counting(self.0.connect(options)?)))
    }
}

/// The connector every store uses: `inner` (the endpoint policy's) or object_store's own,
/// counted.
pub(crate) fn connector(inner: Option<Arc<dyn HttpConnector>>) -> CountingConnector {
    CountingConnector(
        inner.unwrap_or_else(|| Arc::new(object_store::client::ReqwestConnector::default())),
    )
}
