//! Look-back questions answered from the observer's ring: the query's filter composed and
//! bounded exactly as a capture's (`edgecap_filter::request::compose`, the account's
//! `Boundary`), matched by the userspace matcher (nftables semantics) against the samples of
//! the window, and sent back in bounded messages.

use edgecap_model::AgentMsg;
use edgecap_model::lookback::{
    AnswerHead, MAX_QUERY_SAMPLES, RingAnswer, RingQuery, WireSample, hex,
};

use crate::observer::{ObserverView, Status};
use crate::worker::NodeContext;

/// Queries a node answers at once; more are refused until one ends.
pub const MAX_CONCURRENT: usize = 2;

/// The messages answering `q` (at least one; the last has `last: true`).
pub fn answer(q: &RingQuery, observer: &ObserverView, node: &NodeContext) -> Vec<AgentMsg> {
    match plan(q, observer, node) {
        Err(error) => vec![refusal(&q.query_id, error)],
        Ok((rules, points)) => {
            let limit = usize::try_from(q.limit).unwrap_or(usize::MAX);
            let (sel, reach_start) = observer.with_ring(|ring| {
                let sel = edgecap_observe::select(
                    ring,
                    q.from_ns,
                    q.to_ns,
                    &points,
                    |data| edgecap_filter::matches(&rules, data),
                    limit,
                );
                (sel, ring.reach_start())
            });
            let names = &node.config.observer.points;
            let samples: Vec<WireSample> = sel
                .samples
                .iter()
                .map(|t| WireSample {
                    ts_ns: t.meta.ts_ns,
                    orig_len: t.meta.orig_len,
                    point: names
                        .get(usize::from(t.meta.point))
                        .cloned()
                        .unwrap_or_default(),
                    ifindex: u32::from(t.meta.iface),
                    one_in: t.one_in,
                    data: hex(&t.data),
                })
                .collect();
            let head = AnswerHead {
                matched: sel.matched,
                est_packets: sel.est_packets,
                est_bytes: sel.est_bytes,
                thinned_by: sel.thinned_by,
                periods: sel.periods.clone(),
                reach_start,
            };
            RingAnswer::chunked(&q.query_id, head, samples)
                .into_iter()
                .map(|answer| AgentMsg::Answer { answer })
                .collect()
        }
    }
}

/// An answer that only says why the node cannot answer.
pub fn refusal(query_id: &str, error: String) -> AgentMsg {
    AgentMsg::Answer {
        answer: RingAnswer {
            query_id: query_id.to_owned(),
            seq: 0,
            last: true,
            error: Some(error),
            matched: 0,
            est_packets: 0,
            est_bytes: 0,
            thinned_by: 1.0,
            periods: Vec::new(),
            reach_start: None,
            samples: Vec::new(),
        },
    }
}

/// The query's rules (filter within the prefixes) and the ring's point indexes; or why not,
/// naming the field.
fn plan(
    q: &RingQuery,
    observer: &ObserverView,
    node: &NodeContext,
) -> Result<(Vec<edgecap_filter::ir::Conjunction>, Vec<u16>), String> {
    match observer.status() {
        Status::Running { .. } => {}
        other => return Err(format!("observer: {}", other.text())),
    }
    if q.to_ns <= q.from_ns {
        return Err("to_ns: the window must end after it starts".into());
    }
    if q.limit > MAX_QUERY_SAMPLES {
        return Err(format!(
            "limit: {} is more than {MAX_QUERY_SAMPLES} samples",
            q.limit
        ));
    }
    let filter_v1 = match &q.filter_v1 {
        serde_json::Value::Null => serde_json::json!({}),
        v => v.clone(),
    };
    let raw: edgecap_filter::RawFilter =
        serde_json::from_value(filter_v1).map_err(|e| format!("filter_v1: {e}"))?;
    let structured = raw.validate().map_err(|e| format!("filter_v1.{e}"))?;
    let composed = edgecap_filter::request::compose(&structured, q.filter.as_deref())
        .map_err(|e| format!("filter: {e}"))?;
    let rules = match &q.prefixes {
        None => composed.rules,
        Some(p) => {
            let boundary =
                edgecap_filter::Boundary::parse(p).map_err(|e| format!("prefixes: {e}"))?;
            boundary
                .apply(&composed.rules)
                .map_err(|e| format!("filter: {e}"))?
        }
    };
    let names = &node.config.observer.points;
    let points = q
        .points
        .iter()
        .map(|p| {
            names
                .iter()
                .position(|n| n == p)
                .and_then(|i| u16::try_from(i).ok())
                .ok_or_else(|| {
                    format!(
                        "points: {p:?} is not observed on this node (observed: {})",
                        names.join(", ")
                    )
                })
        })
        .collect::<Result<Vec<u16>, String>>()?;
    Ok((rules, points))
}
