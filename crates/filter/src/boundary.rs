//! The tenant boundary: the traffic an account may see on a shared fleet.
//!
//! An account that owns prefixes sees a packet only when its source or its destination is
//! under one of them. Everything that reads traffic for an account goes through one
//! [`Boundary`]: the server checks a capture's filter against it ([`Boundary::apply`] refusing a
//! filter that can never match inside), the agent ANDs it into the kernel rule it builds from
//! the prefixes in the assignment (so a wider filter sent by a faulty server still yields only
//! the account's packets), and readers of packets already in user space (samples, rollups)
//! ask [`Boundary::admits`], which evaluates the very rules the kernel gets.
//!
//! An account without prefixes has no boundary; whether it may capture at all (the operator
//! marks it unrestricted) is the server's decision, not this module's.

use std::fmt;
use std::net::IpAddr;

use crate::Prefix;
use crate::address::{CidrError, family_of};
use crate::error::MAX_RULES;
use crate::formula;
use crate::ir::{Conjunction, Dir, Family, Match};

/// The most prefixes one account may own. Each prefix costs two rules per conjunction of a
/// capture's filter (source and destination), and the kernel rule must stay within
/// [`MAX_RULES`]; with the most prefixes an empty filter needs `2 * MAX_PREFIXES` rules.
pub const MAX_PREFIXES: usize = 64;

const _: () = assert!(2 * MAX_PREFIXES <= MAX_RULES);

/// Why prefixes cannot form a boundary, or a filter cannot be bounded by one. Messages name
/// the item at fault but not the field; callers prefix it (`prefixes[2]`, `filter`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BoundaryError {
    #[error("at least one prefix is needed")]
    Empty,
    #[error("{count} prefixes is more than {MAX_PREFIXES}, the most an account may own")]
    TooMany { count: usize },
    #[error("item {index}: {value:?} is not an IPv4 or IPv6 address or prefix")]
    BadPrefix { index: usize, value: String },
    #[error("item {index}: {value} has bits set past /{len}; did you mean {suggestion}?")]
    HostBitsSet {
        index: usize,
        value: String,
        len: u8,
        suggestion: String,
    },
    #[error("item {index}: /{len} is longer than an {family} address")]
    TooLong {
        index: usize,
        len: u32,
        family: &'static str,
    },
    #[error(
        "can never match a packet whose source or destination is in the account's prefixes \
         ({prefixes})"
    )]
    NeverMatches { prefixes: String },
    #[error(
        "needs {count} rules once limited to the account's prefixes, more than {MAX_RULES}; \
         narrow the filter"
    )]
    TooManyRules { count: usize },
}

/// The prefixes an account owns, normalised: sorted, without repeats and without prefixes
/// that another one covers. Never empty.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Boundary {
    prefixes: Vec<Prefix>,
}

impl Boundary {
    /// A boundary of `prefixes`; refused when empty or longer than [`MAX_PREFIXES`].
    pub fn new(prefixes: Vec<Prefix>) -> Result<Boundary, BoundaryError> {
        if prefixes.is_empty() {
            return Err(BoundaryError::Empty);
        }
        if prefixes.len() > MAX_PREFIXES {
            return Err(BoundaryError::TooMany {
                count: prefixes.len(),
            });
        }
        let mut sorted = prefixes;
        // Wider prefixes first, so a covered one always comes after the one covering it.
        sorted.sort_by_key(|p| (p.prefix_len(), p.addr()));
        let mut kept: Vec<Prefix> = Vec::with_capacity(sorted.len());
        for p in sorted {
            if !kept.iter().any(|k| k.contains(p.addr())) {
                kept.push(p);
            }
        }
        kept.sort_by_key(|p| (family_of(p.addr()) as u8, p.addr(), p.prefix_len()));
        Ok(Boundary { prefixes: kept })
    }

    /// Parses prefixes as an operator or the wire writes them (`198.18.0.0/24`,
    /// `2001:db8:1::/48`, `198.18.0.1`); the error names the item's index.
    pub fn parse<S: AsRef<str>>(items: &[S]) -> Result<Boundary, BoundaryError> {
        if items.len() > MAX_PREFIXES {
            return Err(BoundaryError::TooMany { count: items.len() });
        }
        let prefixes = items
            .iter()
            .enumerate()
            .map(|(i, s)| parse_prefix(i, s.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        Boundary::new(prefixes)
    }

    pub fn prefixes(&self) -> &[Prefix] {
        &self.prefixes
    }

    /// The prefixes as text, in order, as stored and sent to agents.
    pub fn to_strings(&self) -> Vec<String> {
        self.prefixes.iter().map(cidr).collect()
    }

    /// The boundary as rules: for each prefix, "source under it" and "destination under it".
    pub fn rules(&self) -> Vec<Conjunction> {
        let mut out = Vec::with_capacity(2 * self.prefixes.len());
        for p in &self.prefixes {
            for dir in [Dir::Src, Dir::Dst] {
                out.push(Conjunction {
                    matches: vec![
                        Match::Family(p.family()),
                        Match::Addr {
                            dir,
                            addr: p.addr(),
                            prefix_len: p.prefix_len(),
                            negate: false,
                        },
                    ],
                });
            }
        }
        out
    }

    /// `rules` (a compiled filter) limited to the boundary: every conjunction ANDed with
    /// "source or destination under a prefix", contradictions pruned. Refused when nothing
    /// is left (the filter can never match inside) or when the result has too many rules.
    pub fn apply(&self, rules: &[Conjunction]) -> Result<Vec<Conjunction>, BoundaryError> {
        let bounded = formula::conjoin(rules, &self.rules())
            .map_err(|o| BoundaryError::TooManyRules { count: o.count })?;
        if bounded.is_empty() {
            return Err(BoundaryError::NeverMatches {
                prefixes: self.to_string(),
            });
        }
        Ok(bounded)
    }

    /// Whether a raw IP packet (no link-layer header) is inside the boundary, by the same
    /// rules the kernel applies.
    pub fn admits(&self, ip_packet: &[u8]) -> bool {
        crate::matcher::matches(&self.rules(), ip_packet)
    }

    /// Whether a packet between `src` and `dst` is inside the boundary.
    pub fn admits_addrs(&self, src: IpAddr, dst: IpAddr) -> bool {
        self.prefixes
            .iter()
            .any(|p| p.contains(src) || p.contains(dst))
    }
}

/// Comma-separated prefixes, always with their length (`198.18.0.1/32`).
impl fmt::Display for Boundary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.prefixes.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(&cidr(p))?;
        }
        Ok(())
    }
}

fn cidr(p: &Prefix) -> String {
    format!("{}/{}", p.addr(), p.prefix_len())
}

fn parse_prefix(index: usize, text: &str) -> Result<Prefix, BoundaryError> {
    Prefix::parse_cidr(text).map_err(|e| match e {
        CidrError::Bad => BoundaryError::BadPrefix {
            index,
            value: text.chars().take(64).collect(),
        },
        CidrError::TooLong { len, family } => BoundaryError::TooLong {
            index,
            len,
            family: match family {
                Family::V4 => "IPv4",
                Family::V6 => "IPv6",
            },
        },
        CidrError::HostBitsSet { value, suggestion } => BoundaryError::HostBitsSet {
            index,
            len: value
                .rsplit_once('/')
                .and_then(|(_, l)| l.parse().ok())
                .unwrap_or(0),
            value,
            suggestion,
        },
    })
}

#[cfg(test)]
#[path = "boundary_tests.rs"]
mod tests;
