//! `POST /client/v4/accounts/{account_id}/pcaps/estimate`: how big a capture would be, before
//! it starts. The body is a create body, checked exactly as `POST /pcaps` checks it
//! (`validate_create`, tenancy, node selection); nothing is stored and nothing is installed.
//! Each selected node connected to this replica is asked for the estimate alone (`limit: 0`)
//! over the last `Config::estimate_window`; the arithmetic is `crate::estimate`'s.

use axum::extract::State;
use axum::response::Response;
use edgecap_model::lookback::RingQuery;
use edgecap_model::{split_limit, validate_create};
use serde_json::{Value, json};

use super::body::{JsonBody, ok};
use super::select::select;
use crate::AppState;
use crate::auth::Caller;
use crate::error::HttpError;
use crate::estimate::{self, Limits, Observed};
use crate::hub::lookback::{Ask, Reply};

/// How the range is computed, said in every answer.
pub const CONFIDENCE: &str = "95% range from the number of matching samples n (Poisson: \
    rates times 1 ± 1.96/sqrt(n); with n = 0, from 0 to 3 samples' worth); it does not \
    cover changes of the traffic after the window";

pub async fn estimate(
    caller: Caller,
    State(state): State<AppState>,
    body: JsonBody,
) -> Result<Response, HttpError> {
    let colo_field = if body.0.contains_key("colo_name") {
        "colo_name"
    } else {
        "colo"
    };
    // The destination is not used: it may be left out (a placeholder stands in for the
    // check), and when given it is only checked as create checks its form.
    let mut fields = body.0.clone();
    fields
        .entry("destination_conf")
        .or_insert_with(|| Value::String("file:///estimate".into()));
    let req = validate_create(&Value::Object(fields), &caller.account.limits())
        .map_err(HttpError::bad_request)?;
    let access = crate::db::accounts::tenancy(&state.db, &caller.account.id)
        .await?
        .access()?;
    access.check_filter(&req)?;
    let live = state.hub.fleet_nodes().await?;
    let chosen: Vec<crate::hub::LiveNode> = access
        .admit_nodes(&req, select(&req, colo_field, &live)?)?
        .into_iter()
        .cloned()
        .collect();
    let now = crate::clock::unix_now();
    let to_ns = (now * 1e9) as u64;
    let window = state.config.estimate_window;
    let from_ns = to_ns.saturating_sub(window.as_nanos() as u64);
    let ask = Ask {
        query: RingQuery::of_request(&req, access.prefixes(), from_ns, to_ns, 0),
        deadline: state.config.lookback_deadline,
        total_limit: 0,
    };
    let replies = state.hub.ask(&chosen, &ask).await;
    let n = chosen.len();
    let snaplen = u64::from(
        req.snaplen
            .unwrap_or(edgecap_filter::request::DEFAULT_SNAPLEN),
    );
    let rate = req.sample_rate.unwrap_or(1.0);
    let mut estimates = Vec::new();
    let mut nodes = Vec::new();
    for (i, r) in replies.iter().enumerate() {
        let limits = Limits {
            time_limit: req.time_limit,
            packet_limit: req.packet_limit.map(|l| split_limit(l, n, i)),
            byte_limit: req.byte_limit.map(|l| split_limit(l, n, i)),
            snaplen,
        };
        let Reply::Answered(a) = &r.reply else {
            nodes.push(json!({
                "node": r.node,
                "status": r.reply.status(),
                "error": r.reply.reason(&r.node),
            }));
            continue;
        };
        // The window the ring covers: from its reach on, when that is later.
        let from_s = (from_ns as f64 / 1e9).max(a.reach_start.map_or(0.0, |s| s as f64));
        let seconds = (now - from_s).max(0.0);
        let observed = Observed {
            matched: a.matched,
            est_packets: (a.est_packets as f64 * rate).round() as u64,
            est_bytes: (a.est_bytes as f64 * rate).round() as u64,
            periods: a.periods.clone(),
            seconds,
        };
        let e = estimate::node(&observed, &limits);
        let mut v = serde_json::to_value(&e).unwrap_or_default();
        v["node"] = json!(r.node);
        v["status"] = json!("answered");
        v["window_seconds"] = json!(seconds);
        v["sampling"] = json!(a.periods);
        nodes.push(v);
        estimates.push(e);
    }
    let total = estimate::total(&estimates.iter().collect::<Vec<_>>());
    tracing::info!(account = %caller.account.id, nodes = n, answered = estimates.len(),
        "size estimate");
    Ok(ok(json!({
        "window": {
            "from": edgecap_model::ids::rfc3339(from_ns as f64 / 1e9),
            "to": edgecap_model::ids::rfc3339(now),
            "seconds": window.as_secs_f64(),
        },
        "time_limit": req.time_limit,
        "packet_limit": req.packet_limit,
        "byte_limit": req.byte_limit,
        "snaplen": snaplen,
        "record_overhead_bytes": estimate::RECORD_OVERHEAD,
        "confidence": CONFIDENCE,
        "nodes_answered": estimates.len(),
        "nodes_selected": n,
        "total": total,
        "nodes": nodes,
    })))
}
