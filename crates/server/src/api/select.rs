//! Which connected nodes a create request selects, and whether they can do what it asks.
//!
//! - `colo_name` (or `colo`) matches a node's name, or its `site` or `colo` label, ignoring
//!   case (Cloudflare's `ORD` vs `ord02`: either names a set of nodes);
//! - `nodes` entries are node names or `key=value` label selectors, ORed; each entry must
//!   match some connected node (a typo is an error, not a silently smaller capture);
//! - given both, a node must match both;
//! - every requested point must exist on every selected node.

use edgecap_model::{ApiError, CreateRequest, codes};

use crate::error::HttpError;
use crate::hub::LiveNode;

/// Names and sites listed in an error, at most.
const LISTED: usize = 10;
/// Point errors reported, at most.
const MAX_POINT_ERRORS: usize = 20;

fn no_nodes(field: &str, reason: String) -> ApiError {
    ApiError {
        code: codes::NO_NODES,
        ..ApiError::field(field, reason)
    }
}

pub(crate) fn matches_colo(n: &LiveNode, colo: &str) -> bool {
    n.info.name.eq_ignore_ascii_case(colo)
        || ["site", "colo"].iter().any(|k| {
            n.info
                .labels
                .get(*k)
                .is_some_and(|v| v.eq_ignore_ascii_case(colo))
        })
}

pub(crate) fn matches_entry(n: &LiveNode, entry: &str) -> bool {
    match entry.split_once('=') {
        Some((k, v)) => n.info.labels.get(k.trim()).is_some_and(|l| l == v.trim()),
        None => n.info.name == entry,
    }
}

fn listing(live: &[LiveNode]) -> String {
    if live.is_empty() {
        return "no node is connected".into();
    }
    let mut sites: Vec<&str> = live
        .iter()
        .filter_map(|n| n.info.labels.get("site").or(n.info.labels.get("colo")))
        .map(String::as_str)
        .collect();
    sites.sort_unstable();
    sites.dedup();
    let names: Vec<&str> = live
        .iter()
        .take(LISTED)
        .map(|n| n.info.name.as_str())
        .collect();
    let more = live.len().saturating_sub(LISTED);
    format!(
        "connected: {}{}; sites: {}",
        names.join(", "),
        if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        },
        if sites.is_empty() {
            "none".into()
        } else {
            sites
                .iter()
                .take(LISTED)
                .copied()
                .collect::<Vec<_>>()
                .join(", ")
        }
    )
}

/// The selected nodes, sorted by name. `colo_field` is the name the request used.
pub fn select<'a>(
    req: &CreateRequest,
    colo_field: &str,
    live: &'a [LiveNode],
) -> Result<Vec<&'a LiveNode>, HttpError> {
    let mut errs = Vec::new();
    let mut chosen: Vec<&LiveNode> = live.iter().collect();
    if let Some(colo) = &req.colo_name {
        chosen.retain(|n| matches_colo(n, colo));
        if chosen.is_empty() {
            errs.push(no_nodes(
                colo_field,
                format!(
                    "no connected node is named {colo:?} or has site/colo {colo:?} ({})",
                    listing(live)
                ),
            ));
        }
    }
    if let Some(entries) = &req.nodes {
        for (i, e) in entries.iter().enumerate() {
            if !live.iter().any(|n| matches_entry(n, e)) {
                let what = match e.split_once('=') {
                    Some(_) => format!("has the label {e}"),
                    None => format!("is named {e:?}"),
                };
                errs.push(no_nodes(
                    &format!("nodes.{i}"),
                    format!("no connected node {what} ({})", listing(live)),
                ));
            }
        }
        chosen.retain(|n| entries.iter().any(|e| matches_entry(n, e)));
        if errs.is_empty() && chosen.is_empty() {
            errs.push(no_nodes(
                "nodes",
                "no connected node matches both colo_name and nodes".into(),
            ));
        }
    }
    if !errs.is_empty() {
        return Err(HttpError::bad_request(errs));
    }
    for (i, point) in req.points.iter().enumerate() {
        for n in &chosen {
            if !n.info.points.contains(point) {
                errs.push(no_nodes(
                    &format!("points.{i}"),
                    format!(
                        "node {} has no capture point {point:?} (it offers: {})",
                        n.info.name,
                        n.info.points.join(", ")
                    ),
                ));
            }
        }
    }
    if !errs.is_empty() {
        errs.truncate(MAX_POINT_ERRORS);
        return Err(HttpError::bad_request(errs));
    }
    chosen.sort_by(|a, b| a.info.name.cmp(&b.info.name));
    Ok(chosen)
}
