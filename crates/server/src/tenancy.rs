//! Tenancy: which traffic and which nodes an account may capture on a shared fleet. The one
//! owner of these rules; `db::accounts` stores what they produce, and the admin CLI, the
//! operator API and the create path all call here.
//!
//! - An **unrestricted** account captures anything on every node (the single-tenant case,
//!   `edgecap up`, and every account made before tenancy existed).
//! - A **restricted** account captures only packets whose source or destination is under one
//!   of its prefixes (`edgecap_filter::Boundary`, ANDed into the kernel rule by the agent from
//!   the assignment's `prefixes`), and only on nodes of its node set (names or `key=value`
//!   label selectors, ORed; empty: every node). Without prefixes it may not capture at all.
//! - A restricted account's capture goes only to agents that announced
//!   [`FEATURE_BOUNDARY`](edgecap_model::protocol::FEATURE_BOUNDARY); other nodes are treated
//!   like nodes outside the set.

use std::fmt;

use axum::http::StatusCode;
use edgecap_filter::Boundary;
use edgecap_model::{ApiError, CreateRequest, codes};
use serde::Serialize;

use crate::api::select::matches_entry;
use crate::error::HttpError;
use crate::hub::LiveNode;

/// The most node selectors one account's node set may hold.
pub const MAX_NODE_SELECTORS: usize = 64;

/// An account's tenancy, validated and normalised: prefixes as
/// [`Boundary::to_strings`] writes them, selectors trimmed, sorted, without repeats.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Tenancy {
    pub unrestricted: bool,
    pub prefixes: Vec<String>,
    pub nodes: Vec<String>,
}

/// Input that is not a tenancy: the field (API) or argument (CLI) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub field: String,
    pub reason: String,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

impl Invalid {
    fn new(field: &str, reason: impl Into<String>) -> Invalid {
        Invalid {
            field: field.to_owned(),
            reason: reason.into(),
        }
    }

    pub fn api_error(&self) -> ApiError {
        ApiError::field(&self.field, &self.reason)
    }
}

/// Prefixes through the one parser ([`Boundary::parse`]); empty is allowed (no prefixes).
pub fn parse_prefixes<S: AsRef<str>>(items: &[S], field: &str) -> Result<Vec<String>, Invalid> {
    if items.is_empty() {
        return Ok(Vec::new());
    }
    Boundary::parse(items)
        .map(|b| b.to_strings())
        .map_err(|e| Invalid::new(field, e.to_string()))
}

/// Node selectors: a node name (as a hello names it) or `key=value` (a label key as a hello
/// may carry it, a value of at most 256 printable characters).
pub fn parse_nodes<S: AsRef<str>>(items: &[S], field: &str) -> Result<Vec<String>, Invalid> {
    if items.len() > MAX_NODE_SELECTORS {
        return Err(Invalid::new(
            field,
            format!(
                "{} selectors is more than {MAX_NODE_SELECTORS}, the most a node set may hold",
                items.len()
            ),
        ));
    }
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let item = item.as_ref().trim();
        let shown: String = item.chars().take(64).collect();
        let ok = match item.split_once('=') {
            Some((k, v)) => {
                let (k, v) = (k.trim(), v.trim());
                let labels = [(k.to_owned(), v.to_owned())].into_iter().collect();
                !v.is_empty() && edgecap_model::check_hello("n", &labels, &[], "").is_ok()
            }
            None => edgecap_model::check_hello(item, &Default::default(), &[], "").is_ok(),
        };
        if !ok {
            return Err(Invalid::new(
                field,
                format!(
                    "item {i}: {shown:?} is neither a node name (1-63 letters, digits, '.', \
                     '_', '-') nor a key=value label selector"
                ),
            ));
        }
        out.push(match item.split_once('=') {
            Some((k, v)) => format!("{}={}", k.trim(), v.trim()),
            None => item.to_owned(),
        });
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Which list an edit changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum List {
    Prefixes,
    Nodes,
}

impl Tenancy {
    /// A tenancy from raw lists; errors name `prefixes` or `nodes`.
    pub fn new<S: AsRef<str>>(
        unrestricted: bool,
        prefixes: &[S],
        nodes: &[S],
    ) -> Result<Tenancy, Invalid> {
        Ok(Tenancy {
            unrestricted,
            prefixes: parse_prefixes(prefixes, "prefixes")?,
            nodes: parse_nodes(nodes, "nodes")?,
        })
    }

    /// The tenancy with `items` added to (or removed from) one list; `field` names the
    /// argument in errors. Removing an item that is not there is an error naming it.
    pub fn edit<S: AsRef<str>>(
        &self,
        list: List,
        add: bool,
        items: &[S],
        field: &str,
    ) -> Result<Tenancy, Invalid> {
        if items.is_empty() {
            return Err(Invalid::new(field, "give at least one"));
        }
        let parsed = match list {
            List::Prefixes => items
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    parse_prefixes(&[s.as_ref()], field)
                        .map(|mut v| v.remove(0))
                        .map_err(|e| Invalid {
                            reason: e.reason.replacen("item 0", &format!("item {i}"), 1),
                            ..e
                        })
                })
                .collect::<Result<Vec<_>, _>>()?,
            List::Nodes => parse_nodes(items, field)?,
        };
        let current = match list {
            List::Prefixes => &self.prefixes,
            List::Nodes => &self.nodes,
        };
        let mut next: Vec<String> = current.clone();
        if add {
            next.extend(parsed);
        } else {
            for p in &parsed {
                let Some(at) = next.iter().position(|c| c == p) else {
                    return Err(Invalid::new(
                        field,
                        format!(
                            "{p} is not one of the account's {} ({})",
                            match list {
                                List::Prefixes => "prefixes",
                                List::Nodes => "node selectors",
                            },
                            if current.is_empty() {
                                "it has none".to_owned()
                            } else {
                                current.join(", ")
                            }
                        ),
                    ));
                };
                next.remove(at);
            }
        }
        let mut out = self.clone();
        match list {
            List::Prefixes => out.prefixes = parse_prefixes(&next, field)?,
            List::Nodes => out.nodes = parse_nodes(&next, field)?,
        }
        Ok(out)
    }

    /// What the create path enforces, or 403 when the account may not capture at all.
    pub fn access(&self) -> Result<Access, HttpError> {
        if self.unrestricted {
            return Ok(Access::Unrestricted);
        }
        if self.prefixes.is_empty() {
            return Err(forbidden(
                "this account is restricted and owns no prefixes, so it may not capture: an \
                 operator must give it prefixes (`edgecap admin account prefixes add <account> \
                 <CIDR>...` or PUT /client/v4/operator/accounts/{account_id}/tenancy) or mark \
                 it unrestricted (`edgecap admin account unrestrict <account>`)"
                    .into(),
            ));
        }
        // Stored prefixes were parsed when they were stored; a failure here is a corrupt row,
        // and refusing is failing closed.
        let boundary =
            Boundary::parse(&self.prefixes).map_err(|e| crate::error::Error::Corrupt {
                what: "account prefixes".into(),
                reason: e.to_string(),
            })?;
        Ok(Access::Restricted {
            boundary,
            nodes: self.nodes.clone(),
        })
    }
}

/// What a create request of the account may do.
#[derive(Debug, Clone)]
pub enum Access {
    Unrestricted,
    Restricted {
        boundary: Boundary,
        /// Empty: every node.
        nodes: Vec<String>,
    },
}

fn forbidden(message: String) -> HttpError {
    HttpError::new(
        StatusCode::FORBIDDEN,
        vec![ApiError::new(codes::OUTSIDE_TENANCY, message)],
    )
}

/// Why a node's part of a restricted account's capture is not sent to it.
pub fn no_boundary_reason(node: &str) -> String {
    format!(
        "node {node}'s agent does not enforce the tenant boundary (its hello lacks `{}`); \
         upgrade the agent",
        edgecap_model::protocol::FEATURE_BOUNDARY
    )
}

impl Access {
    /// The prefixes an assignment carries (None: unrestricted).
    pub fn prefixes(&self) -> Option<Vec<String>> {
        match self {
            Access::Unrestricted => None,
            Access::Restricted { boundary, .. } => Some(boundary.to_strings()),
        }
    }

    /// The request's filter (`filter_v1` and `filter` composed as agents compose them)
    /// limited to the boundary: 400 naming the field when it can never match inside, or
    /// when the bounded filter needs too many rules.
    pub fn check_filter(&self, req: &CreateRequest) -> Result<(), HttpError> {
        let Access::Restricted { boundary, .. } = self else {
            return Ok(());
        };
        let field = if req.filter.is_some() {
            "filter"
        } else {
            "filter_v1"
        };
        let structured = serde_json::from_value::<edgecap_filter::RawFilter>(req.filter_v1.clone())
            .map_err(|e| e.to_string())
            .and_then(|raw| raw.validate().map_err(|e| e.to_string()))
            .map_err(|e| HttpError::field("filter_v1", e))?;
        let composed = edgecap_filter::request::compose(&structured, req.filter.as_deref())
            .map_err(|e| HttpError::field(field, e))?;
        boundary
            .apply(&composed.rules)
            .map(drop)
            .map_err(|e| HttpError::field(field, e))
    }

    /// The selected nodes the account may use. Nodes outside its node set, or whose agent
    /// does not enforce the boundary, are left out of a group selection (a site, a label);
    /// a node the request names, or a selection left empty, is 403 naming the nodes and why.
    pub fn admit_nodes<'a>(
        &self,
        req: &CreateRequest,
        chosen: Vec<&'a LiveNode>,
    ) -> Result<Vec<&'a LiveNode>, HttpError> {
        let Access::Restricted { nodes: set, .. } = self else {
            return Ok(chosen);
        };
        let in_set = |n: &LiveNode| set.is_empty() || set.iter().any(|e| matches_entry(n, e));
        let named = |n: &LiveNode| {
            req.nodes
                .iter()
                .flatten()
                .any(|e| !e.contains('=') && *e == n.info.name)
                || req
                    .colo_name
                    .as_ref()
                    .is_some_and(|c| c.eq_ignore_ascii_case(&n.info.name))
        };
        let (kept, out): (Vec<&LiveNode>, Vec<&LiveNode>) = chosen
            .into_iter()
            .partition(|n| in_set(n) && n.info.enforces_boundary());
        let refused: Vec<&LiveNode> = if kept.is_empty() {
            out
        } else {
            out.into_iter().filter(|n| named(n)).collect()
        };
        if refused.is_empty() {
            return Ok(kept);
        }
        let outside: Vec<&str> = refused
            .iter()
            .filter(|n| !in_set(n))
            .map(|n| n.info.name.as_str())
            .collect();
        let old: Vec<&str> = refused
            .iter()
            .filter(|n| in_set(n))
            .map(|n| n.info.name.as_str())
            .collect();
        let mut reasons = Vec::new();
        if !outside.is_empty() {
            reasons.push(format!(
                "{} outside this account's node set ({})",
                listed(&outside),
                set.join(", ")
            ));
        }
        if !old.is_empty() {
            reasons.push(format!(
                "{} without an agent that enforces the tenant boundary (no `{}` in its \
                 hello; the operator must upgrade it)",
                listed(&old),
                edgecap_model::protocol::FEATURE_BOUNDARY
            ));
        }
        let field = if req.nodes.is_some() {
            "nodes"
        } else {
            "colo_name"
        };
        Err(forbidden(format!(
            "{field}: this account may not capture on {}",
            reasons.join("; nor on ")
        )))
    }
}

/// The account as `GET /client/v4/accounts/{account_id}` and `edgecap admin account show
/// --json` show it: its limits, its tenancy and its quotas (`crate::quota::view`).
pub fn account_view(
    a: &crate::db::accounts::Account,
    t: &Tenancy,
    quotas: serde_json::Value,
) -> serde_json::Value {
    serde_json::json!({
        "id": a.id, "name": a.name, "created_on": a.created,
        "settings": {
            "max_time_limit": a.max_time_limit, "max_packet_limit": a.max_packet_limit,
            "max_byte_limit": a.max_byte_limit,
        },
        "unrestricted": t.unrestricted,
        "prefixes": t.prefixes,
        "nodes": t.nodes,
        "quotas": quotas,
    })
}

/// The tenancy as the operator API shows it.
pub fn tenancy_view(account_id: &str, t: &Tenancy) -> serde_json::Value {
    serde_json::json!({
        "account_id": account_id,
        "unrestricted": t.unrestricted,
        "prefixes": t.prefixes,
        "nodes": t.nodes,
    })
}

/// Node names for a message: at most 10, then how many more.
fn listed(names: &[&str]) -> String {
    let shown = names
        .iter()
        .take(10)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    let noun = if names.len() > 1 { "nodes" } else { "node" };
    match names.len().saturating_sub(10) {
        0 => format!("{noun} {shown}"),
        more => format!("{noun} {shown} and {more} more"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_go_through_the_boundary_and_errors_name_the_item() {
        let t = Tenancy::new(false, &["198.18.1.0/24", "198.18.1.7"], &[]).unwrap();
        assert_eq!(t.prefixes, vec!["198.18.1.0/24"]);
        let e = Tenancy::new(false, &["198.18.1.0/24", "198.18.1.1/24"], &[]).unwrap_err();
        assert_eq!(e.field, "prefixes");
        assert!(e.reason.starts_with("item 1: "), "{e}");
        assert!(e.reason.contains("198.18.1.0/24"), "{e}");
        let many: Vec<String> = (0..65).map(|i| format!("198.18.{i}.0/24")).collect();
        assert!(
            Tenancy::new(false, &many, &[])
                .unwrap_err()
                .reason
                .contains("64")
        );
    }

    #[test]
    fn node_selectors_are_names_or_labels() {
        let t = Tenancy::new(true, &[], &["site=fra", "edge0", " edge0 ", "site = ord"]).unwrap();
        assert_eq!(t.nodes, vec!["edge0", "site=fra", "site=ord"]);
        for bad in ["", "a b", "site=", "=x", ".hidden", "x\u{7}=y"] {
            let e = Tenancy::new(true, &[], &[bad]).unwrap_err();
            assert_eq!(e.field, "nodes", "{bad:?}");
            assert!(e.reason.starts_with("item 0: "), "{e}");
        }
    }

    #[test]
    fn edits_add_remove_and_name_what_is_missing() {
        let t = Tenancy::default();
        let t = t
            .edit(
                List::Prefixes,
                true,
                &["198.18.2.0/24", "2001:db8:2::/64"],
                "CIDR",
            )
            .unwrap();
        assert_eq!(t.prefixes, vec!["198.18.2.0/24", "2001:db8:2::/64"]);
        let e = t
            .edit(List::Prefixes, true, &["198.18.3.0/24", "nope"], "CIDR")
            .unwrap_err();
        assert_eq!(e.to_string().split(": item 1:").count(), 2, "{e}");
        let e = t
            .edit(List::Prefixes, false, &["198.18.9.0/24"], "CIDR")
            .unwrap_err();
        assert!(e.reason.contains("198.18.9.0/24 is not one of"), "{e}");
        let t = t
            .edit(List::Prefixes, false, &["198.18.2.0/24"], "CIDR")
            .unwrap();
        assert_eq!(t.prefixes, vec!["2001:db8:2::/64"]);
        let t = t.edit(List::Nodes, true, &["edge1"], "SELECTOR").unwrap();
        assert_eq!(t.nodes, vec!["edge1"]);
    }

    #[test]
    fn a_restricted_account_without_prefixes_may_not_capture() {
        let e = Tenancy::default().access().unwrap_err();
        let text = format!("{e:?}");
        assert!(
            text.contains("edgecap admin account prefixes add"),
            "{text}"
        );
        assert!(matches!(
            Tenancy {
                unrestricted: true,
                ..Default::default()
            }
            .access(),
            Ok(Access::Unrestricted)
        ));
    }
}
