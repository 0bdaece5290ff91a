//! How a capture's status follows from its parts. Pure, so the rules are tested directly:
//!
//! - `pending` until any part has run (been acknowledged);
//! - `running` while any part is not finished;
//! - then `success` if every part succeeded, else `failed`, with an `error_message` naming
//!   each failed node and its reason.

use edgecap_model::Status;

/// One part, as far as the rules care.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartState<'a> {
    pub node: &'a str,
    pub status: Status,
    pub error: Option<&'a str>,
}

/// At most this many failed nodes are spelled out in a capture's `error_message`.
const NAMED_FAILURES: usize = 10;

/// The capture's status and error message.
pub fn aggregate(parts: &[PartState<'_>]) -> (Status, Option<String>) {
    if parts.is_empty() {
        return (Status::Failed, Some("no node was selected".into()));
    }
    if parts.iter().all(|p| p.status == Status::Pending) {
        return (Status::Pending, None);
    }
    if parts.iter().any(|p| !p.status.is_terminal()) {
        return (Status::Running, None);
    }
    let failed: Vec<&PartState<'_>> = parts
        .iter()
        .filter(|p| p.status == Status::Failed)
        .collect();
    if failed.is_empty() {
        return (Status::Success, None);
    }
    let mut named: Vec<String> = failed
        .iter()
        .take(NAMED_FAILURES)
        .map(|p| format!("{}: {}", p.node, p.error.unwrap_or("failed")))
        .collect();
    if failed.len() > NAMED_FAILURES {
        named.push(format!("and {} more", failed.len() - NAMED_FAILURES));
    }
    let msg = format!(
        "failed on {} of {} node{}: {}",
        failed.len(),
        parts.len(),
        if parts.len() == 1 { "" } else { "s" },
        named.join("; ")
    );
    (Status::Failed, Some(msg))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(node: &str, status: Status, error: Option<&'static str>) -> PartState<'static> {
        PartState {
            node: Box::leak(node.to_owned().into_boxed_str()),
            status,
            error,
        }
    }

    #[test]
    fn pending_until_a_part_runs_then_running_until_all_end() {
        use Status::*;
        let p = |s: &[Status]| {
            let parts: Vec<_> = s.iter().map(|&st| part("n", st, None)).collect();
            aggregate(&parts).0
        };
        assert_eq!(p(&[Pending, Pending]), Pending);
        assert_eq!(p(&[Running, Pending]), Running);
        assert_eq!(p(&[Success, Pending]), Running);
        assert_eq!(p(&[Success, Running]), Running);
        assert_eq!(p(&[Success, Success]), Success);
        assert_eq!(p(&[Success, Failed]), Failed);
    }

    #[test]
    fn failures_name_the_nodes_and_reasons() {
        let parts = [
            part("edge0", Status::Success, None),
            part("edge1", Status::Failed, Some("node edge1 disconnected")),
            part("edge2", Status::Failed, Some("no result from node edge2")),
        ];
        let (s, msg) = aggregate(&parts);
        assert_eq!(s, Status::Failed);
        assert_eq!(
            msg.unwrap(),
            "failed on 2 of 3 nodes: edge1: node edge1 disconnected; \
             edge2: no result from node edge2"
        );
    }

    #[test]
    fn many_failures_are_summarised() {
        let parts: Vec<_> = (0..25)
            .map(|i| part(&format!("n{i}"), Status::Failed, Some("x")))
            .collect();
        let msg = aggregate(&parts).1.unwrap();
        assert!(msg.starts_with("failed on 25 of 25 nodes: n0: x;"), "{msg}");
        assert!(msg.ends_with("; and 15 more"), "{msg}");
    }
}
