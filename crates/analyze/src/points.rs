//! Capture points: which node and point an interface is, and the order of a node's points
//! along its packet pipeline.
//!
//! edgecap names each interface `<node>/<point>` (split at the last `/`). Points are ordered by
//! their place in the pipeline, a (hook stage, priority) pair:
//! 1. from the interface description when it carries edgecap's `<hook> [device] priority <n>`
//!    text (edgecap writes it for every point, built-in or operator-defined; the first hook
//!    listed counts), stages being ingress < prerouting < input = forward < output <
//!    postrouting;
//! 2. else, for the built-in names, their default place: ingress (ingress, -500), pre-firewall
//!    (prerouting, -310), post-firewall (input, 10), post-mitigation (input, 11: after the
//!    firewall, as in DESIGN.md §4), egress (postrouting, 110);
//! 3. else (an operator point in a file whose descriptions were lost) right after the point
//!    that precedes it in the file, keeping file order among such points.
//!
//! Interfaces not named that way (a tcpdump file, `eth0`, `if0`) are all points of one unnamed
//! node, in file order: nothing better is known about them, and the report says so.

/// Pipeline place: (hook stage, priority).
pub(crate) type Position = (u8, i64);

/// Splits `edge0/pre-firewall` into node and point; `None` when the name has no such form.
pub(crate) fn split(name: &str) -> Option<(&str, &str)> {
    let (node, point) = name.rsplit_once('/')?;
    (!node.is_empty() && !point.is_empty()).then_some((node, point))
}

fn builtin(point: &str) -> Option<Position> {
    Some(match point {
        "ingress" => (0, -500),
        "pre-firewall" => (1, -310),
        "post-firewall" => (2, 10),
        "post-mitigation" => (2, 11),
        "egress" => (4, 110),
        _ => return None,
    })
}

fn stage(hook: &str) -> Option<u8> {
    Some(match hook {
        "ingress" => 0,
        "prerouting" => 1,
        "input" | "forward" => 2,
        "output" => 3,
        "postrouting" => 4,
        _ => return None,
    })
}

/// The first `<hook> [device] priority <n>` in an interface description.
fn from_description(description: &str) -> Option<Position> {
    let words: Vec<&str> = description
        .split(|c: char| c.is_whitespace() || matches!(c, ',' | ';' | '(' | ')'))
        .filter(|w| !w.is_empty())
        .collect();
    let at = words.iter().position(|w| *w == "priority")?;
    let priority: i64 = words.get(at + 1)?.parse().ok()?;
    // The hook is the word before "priority", or the one before that when a device sits
    // between them (ingress eth0 priority -500).
    let before = at.checked_sub(1).and_then(|i| words.get(i));
    let hook = before.and_then(|w| stage(w)).or_else(|| {
        at.checked_sub(2)
            .and_then(|i| words.get(i))
            .and_then(|w| stage(w))
    })?;
    Some((hook, priority))
}

/// Where a point sits, when known (rules 1 and 2 of the module documentation).
pub(crate) fn position(point: &str, description: Option<&str>) -> Option<Position> {
    description
        .and_then(from_description)
        .or_else(|| builtin(point))
}

/// The pipeline order of points given in file order with their known positions: a permutation
/// of indices into `known`. Points without a position follow the point before them in the file.
pub(crate) fn order(known: &[Option<Position>]) -> Vec<usize> {
    let mut keys = Vec::with_capacity(known.len());
    let mut last: (u8, i64, bool) = (0, i64::MIN, false);
    for (i, k) in known.iter().enumerate() {
        let key = match k {
            Some((s, p)) => {
                last = (*s, *p, true);
                (*s, *p, false, i)
            }
            // Sorts after every known point at the same place, in file order.
            None => (last.0, last.1, true, i),
        };
        keys.push(key);
    }
    let mut idx: Vec<usize> = (0..known.len()).collect();
    idx.sort_by_key(|&i| keys.get(i).copied());
    idx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_split_at_the_last_slash() {
        assert_eq!(split("edge0/pre-firewall"), Some(("edge0", "pre-firewall")));
        assert_eq!(split("dc/edge0/egress"), Some(("dc/edge0", "egress")));
        assert_eq!(split("eth0"), None);
        assert_eq!(split("/x"), None);
        assert_eq!(split("x/"), None);
    }

    #[test]
    fn edgecap_descriptions_give_the_place() {
        let d = "edgecap capture ab at post-firewall on e (NFLOG group 60416; input priority \
                 10, forward priority 10)";
        assert_eq!(position("post-firewall", Some(d)), Some((2, 10)));
        let d = "edgecap capture ab at in on e (NFLOG group 1; ingress eth0 priority -500)";
        assert_eq!(position("in", Some(d)), Some((0, -500)));
        let d = "(NFLOG group 1; prerouting priority -149)";
        assert_eq!(position("post-mitigation", Some(d)), Some((1, -149)));
        assert_eq!(
            position("egress", Some("a tcpdump capture")),
            Some((4, 110))
        );
        assert_eq!(position("after-ddos", Some("priority x")), None);
        assert_eq!(position("after-ddos", None), None);
    }

    #[test]
    fn pipeline_order_with_unknown_points_after_their_predecessor() {
        // File order: egress, custom, pre-firewall, other, post-firewall.
        let known = [Some((4, 110)), None, Some((1, -310)), None, Some((2, 10))];
        assert_eq!(order(&known), vec![2, 3, 4, 0, 1]);
        assert_eq!(order(&[None, None]), vec![0, 1]);
        assert_eq!(order(&[]), Vec::<usize>::new());
    }
}
