//! `GET /ui/accounts/{account_id}/pcaps/{pcap_id}/events`: a capture as `GET /pcaps/{id}`
//! answers it (status, per-node progress, files), pushed as a server-sent event `capture`
//! whenever it changes, read once per [`TICK`]; the stream ends after the capture finishes or
//! after [`MAX_LIFETIME`] (the browser's EventSource then reconnects). At most
//! [`MAX_STREAMS`] streams per session (or token) at once on each replica: more is 429.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use edgecap_model::{ApiError, codes};

use crate::AppState;
use crate::api::body::PathId;
use crate::auth::Caller;
use crate::error::HttpError;

/// Streams one session may hold open at once on one replica.
pub const MAX_STREAMS: usize = 4;
/// How often the capture is read.
pub const TICK: Duration = Duration::from_secs(1);
/// How long one stream lasts at most.
pub const MAX_LIFETIME: Duration = Duration::from_secs(600);

static OPEN: LazyLock<Mutex<HashMap<String, usize>>> = LazyLock::new(Default::default);

/// One open stream, counted against its session until dropped.
struct Slot(String);

impl Slot {
    fn take(key: String) -> Option<Slot> {
        let mut open = OPEN.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(key.clone()).or_insert(0);
        if *n >= MAX_STREAMS {
            return None;
        }
        *n += 1;
        Some(Slot(key))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = OPEN.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.0) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.0);
            }
        }
    }
}

/// The capture's `result` as `GET /pcaps/{id}` answers it, through that handler.
async fn read(state: &AppState, caller: &Caller, id: &str) -> Result<serde_json::Value, Response> {
    let response =
        crate::api::pcaps::get(caller.clone(), State(state.clone()), PathId(id.to_owned()))
            .await
            .map_err(IntoResponse::into_response)?;
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 22)
        .await
        .map_err(|_| {
            HttpError::body(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "the capture's answer is larger than 4 MiB",
            )
            .into_response()
        })?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    Ok(v["result"].clone())
}

fn finished(capture: &serde_json::Value) -> bool {
    matches!(
        capture["status"].as_str(),
        Some("success" | "complete" | "failed")
    )
}

pub async fn capture(
    caller: Caller,
    State(state): State<AppState>,
    PathId(id): PathId,
    headers: HeaderMap,
) -> Result<Response, Response> {
    let key = super::session_cookie(&headers)
        .or_else(|| crate::auth::bearer(&headers))
        .map(crate::secret::digest)
        .unwrap_or_default();
    let Some(slot) = Slot::take(key) else {
        return Err(HttpError::new(
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            vec![ApiError::new(
                codes::RATE_LIMITED,
                format!("this session already has {MAX_STREAMS} event streams open; close a page"),
            )],
        )
        .into_response());
    };
    // The first answer is the API's own: a 404 for another account's capture, before any
    // stream opens.
    let first = read(&state, &caller, &id).await?;
    let started = Instant::now();
    let stream = futures_util::stream::unfold(
        (Some(first), None::<String>, slot, false),
        move |(next, last, slot, done)| {
            let (state, caller, id) = (state.clone(), caller.clone(), id.clone());
            async move {
                if done {
                    return None;
                }
                let mut current = next;
                loop {
                    if let Some(c) = current.take() {
                        let text = c.to_string();
                        if last.as_deref() != Some(text.as_str()) {
                            let end = finished(&c) || started.elapsed() >= MAX_LIFETIME;
                            let event = Event::default().event("capture").data(text.clone());
                            return Some((
                                Ok::<_, std::convert::Infallible>(event),
                                (None, Some(text), slot, end),
                            ));
                        }
                    }
                    if started.elapsed() >= MAX_LIFETIME {
                        return None;
                    }
                    tokio::time::sleep(TICK).await;
                    current = Some(read(&state, &caller, &id).await.ok()?);
                }
            }
        },
    );
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}
