//! The rules of a capture request that every path applies alike: `edgecap capture`, the
//! server's create validation and the agent's plan of an assignment. They live here because
//! this is the one pure crate all three reach: `edgecap-model` must not depend on the engine
//! (`edgecap-capture` pulls netlink), and the engine's spec builder
//! (`edgecap_capture::request`) applies these same functions.
//!
//! - [`compose`]: the structured fields ANDed with the expression, and the text shown for it;
//! - [`check_points`]: what a filter cannot do exactly at some capture points;
//! - [`snaplen`]: its default and its bound.

use crate::ir::{Conjunction, Match};
use crate::{ExprError, Expression, FilterError, StructuredFilter};

/// The most bytes NFLOG copies of a packet: its attribute length is 16 bits and includes the
/// 4-byte attribute header. `edgecap_netfilter::nflog::MAX_SNAPLEN` is the same number (the
/// capture crate asserts it at compile time).
pub const MAX_SNAPLEN: u32 = 65_531;

/// The snaplen when none is asked for: whole packets, as far as NFLOG copies them.
pub const DEFAULT_SNAPLEN: u32 = MAX_SNAPLEN;

/// The name of the built-in point at the netdev ingress hook, the one point where length
/// tests are not exact.
pub const INGRESS_POINT: &str = "ingress";

/// A filter composed from its two halves: the rules the kernel gets and the text people see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Composed {
    pub rules: Vec<Conjunction>,
    /// The structured fields' summary, the expression, or `(<fields>) and (<expression>)`.
    pub text: String,
}

/// Why a filter cannot be composed; each variant says which half is at fault.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ComposeError {
    /// A structured field (`source_port`, ...) or the fields together (the rule limit).
    #[error(transparent)]
    Structured(#[from] FilterError),
    /// The expression, alone or ANDed with the fields.
    #[error(transparent)]
    Expression(#[from] ExprError),
}

/// The structured fields' rules ANDed with the expression's, if there is one. The structured
/// filter is validated already; this compiles it, so a filter that cannot become rules (the
/// rule limit) is refused here on every path.
pub fn compose(
    structured: &StructuredFilter,
    expression: Option<&str>,
) -> Result<Composed, ComposeError> {
    let rules = structured.compile()?;
    let Some(text) = expression else {
        return Ok(Composed {
            rules,
            text: structured.to_string(),
        });
    };
    let expr = Expression::parse(text)?;
    let rules = expr.compile_and(&rules)?;
    let text = match structured.is_empty() {
        true => expr.to_string(),
        false => format!("({structured}) and ({expr})"),
    };
    Ok(Composed { rules, text })
}

/// A filter that a capture point cannot apply exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PointRuleError {
    // Measured: at netdev ingress a 36-byte packet in a padded 60-byte Ethernet frame has
    // `meta length` 46; the IP layer trims the padding only later.
    #[error(
        "len, less and greater are not exact at the ingress point, where the length still \
         includes link-layer padding; capture at pre-firewall or later, or leave the length \
         test out"
    )]
    LengthAtIngress,
    #[error(
        "payload fields (past the minimal headers, such as udp[8:4]) are not exact at the \
         ingress point, where a short packet still carries link-layer padding the field could \
         read; capture at pre-firewall or later"
    )]
    PayloadAtIngress,
}

/// Refuses `rules` that would not mean what they say at the points chosen: length tests and
/// payload fields at the netdev ingress hook (`at_ingress`: some point hooks there). The error is the filter's
/// (`--filter`, `filter`).
pub fn check_points(rules: &[Conjunction], at_ingress: bool) -> Result<(), PointRuleError> {
    let length = |m: &Match| matches!(m, Match::Length { .. });
    if at_ingress && rules.iter().any(|c| c.matches.iter().any(length)) {
        return Err(PointRuleError::LengthAtIngress);
    }
    if at_ingress && rules.iter().any(Conjunction::reads_payload) {
        return Err(PointRuleError::PayloadAtIngress);
    }
    Ok(())
}

/// A snaplen that cannot be honoured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SnaplenError {
    #[error("0 must be greater than zero")]
    Zero,
    #[error("{0} is above {MAX_SNAPLEN}, the most NFLOG copies of a packet")]
    TooLarge(u64),
}

/// The snaplen a capture runs with: [`DEFAULT_SNAPLEN`] when none is asked for, else the one
/// asked for if NFLOG can copy that much. Never clamped: a larger request is refused, so a
/// capture never keeps less than was asked.
pub fn snaplen(asked: Option<u64>) -> Result<u32, SnaplenError> {
    match asked {
        None => Ok(DEFAULT_SNAPLEN),
        Some(0) => Err(SnaplenError::Zero),
        Some(n) => u32::try_from(n)
            .ok()
            .filter(|n| *n <= MAX_SNAPLEN)
            .ok_or(SnaplenError::TooLarge(n)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(proto: &str, dport: &str) -> StructuredFilter {
        let s = |v: &str| vec![v.to_owned()];
        StructuredFilter::from_cli(&[], &[], &[], &s(dport), &s(proto)).unwrap()
    }

    #[test]
    fn the_expression_is_anded_with_the_fields() {
        let c = compose(&fields("udp", "53"), Some("src net 198.18.0.0/15")).unwrap();
        assert!(
            c.text.starts_with('(') && c.text.contains(") and ("),
            "{}",
            c.text
        );
        let alone = compose(&StructuredFilter::default(), Some("udp")).unwrap();
        assert_eq!(alone.text, "udp");
        let none = compose(&fields("udp", "53"), None).unwrap();
        assert_eq!(none.rules, fields("udp", "53").compile().unwrap());
        assert!(matches!(
            compose(&fields("udp", "53"), Some("tcp port")),
            Err(ComposeError::Expression(_))
        ));
    }

    #[test]
    fn length_tests_are_refused_at_ingress_only() {
        let rules = compose(&StructuredFilter::default(), Some("udp and less 100"))
            .unwrap()
            .rules;
        assert_eq!(
            check_points(&rules, true),
            Err(PointRuleError::LengthAtIngress)
        );
        assert_eq!(check_points(&rules, false), Ok(()));
        let udp = compose(&StructuredFilter::default(), Some("udp")).unwrap();
        assert_eq!(check_points(&udp.rules, true), Ok(()));
    }

    #[test]
    fn payload_fields_are_refused_at_ingress_only() {
        let none = StructuredFilter::default();
        for text in [
            "udp[8:4] == 0xdeadbeef",
            "tcp[20:2] == 5",
            "ip[20] == 1",
            "ip6[40:4] == 1",
        ] {
            let rules = compose(&none, Some(text)).unwrap().rules;
            assert_eq!(
                check_points(&rules, true),
                Err(PointRuleError::PayloadAtIngress),
                "{text}"
            );
            assert_eq!(check_points(&rules, false), Ok(()), "{text}");
        }
        // Header fields and the guards of ports and protocols read only promised bytes.
        for text in [
            "udp[6:2] == 0",
            "tcp[19] == 0",
            "port 53",
            "icmp6[icmp6type] == icmp6-echo",
            "ip6 proto 17",
            "ip[19] == 1",
            "tcp[tcpflags] & tcp-syn != 0",
        ] {
            let rules = compose(&none, Some(text)).unwrap().rules;
            assert_eq!(check_points(&rules, true), Ok(()), "{text}");
        }
    }

    #[test]
    fn snaplen_defaults_to_the_most_nflog_copies_and_is_never_clamped() {
        assert_eq!(snaplen(None), Ok(65_531));
        assert_eq!(snaplen(Some(128)), Ok(128));
        assert_eq!(snaplen(Some(65_531)), Ok(65_531));
        assert_eq!(snaplen(Some(65_532)), Err(SnaplenError::TooLarge(65_532)));
        assert_eq!(snaplen(Some(1 << 40)), Err(SnaplenError::TooLarge(1 << 40)));
        assert_eq!(snaplen(Some(0)), Err(SnaplenError::Zero));
    }
}
