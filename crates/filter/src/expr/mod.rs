//! tcpdump-style filter expressions: `tcp port 443 and not net 198.18.0.0/24`.
//!
//! [`Expression::parse`] reads the text (never panics, whatever the input), and
//! [`Expression::compile`] turns it into the same rules a structured filter compiles to, with
//! libpcap's meaning on IPv4 and IPv6 packets. Anything edgecap cannot match exactly is
//! refused with the position, the token and a hint: the capture never silently gets more or
//! fewer packets than tcpdump would select.
//!
//! - `lexer`: tokens with 1-based character positions.
//! - `parser`: precedence, qualifier inheritance, keyword handling; `value`: addresses,
//!   networks, ports, protocols after their qualifiers; `names`: numbers, named constants,
//!   protocol names and the refused keywords with their hints.
//! - [`ast`]: the parsed tree, displayed as canonical tcpdump syntax.
//! - `lower`: the tree as a guarded formula over nftables matches (libpcap's semantics).
//! - [`error`]: [`ExprError`], [`SyntaxError`].
//! - `limits`: [`MAX_EXPR_LEN`], [`MAX_EXPR_DEPTH`] and [`MAX_EXPR_OPERATORS`], which bound every recursion over an
//!   expression.

use std::fmt;

use crate::formula;
use crate::ir::Conjunction;

pub mod ast;
pub mod error;
mod lexer;
mod limits;
mod lower;
mod names;
mod parser;
mod value;

pub use ast::Node;
pub use error::{ExprError, SyntaxError};
pub use limits::{MAX_EXPR_DEPTH, MAX_EXPR_LEN, MAX_EXPR_OPERATORS};

/// A parsed filter expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expression {
    text: String,
    root: Node,
}

impl Expression {
    /// Parses `text`. Errors carry the 1-based character position of the offending token.
    /// Text longer than [`MAX_EXPR_LEN`] bytes, nested deeper than [`MAX_EXPR_DEPTH`] or with
    /// more than [`MAX_EXPR_OPERATORS`] `and`/`or` is refused, naming the limit.
    pub fn parse(text: &str) -> Result<Self, ExprError> {
        if text.len() > MAX_EXPR_LEN {
            return Err(ExprError::TooLong { len: text.len() });
        }
        let root = parser::parse(text)?;
        Ok(Expression {
            text: text.trim().to_owned(),
            root,
        })
    }

    /// The expression as the user wrote it (trimmed).
    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn root(&self) -> &Node {
        &self.root
    }

    /// The nftables rules that capture exactly the packets the expression selects (at most
    /// [`MAX_RULES`](crate::MAX_RULES)); none when it can match no packet (`ip and ip6`).
    ///
    /// A payload field (`udp[8:4]`, reading past the bytes every packet of its layer has) is
    /// exact only when the whole expression is one rule holding that field's load: libpcap
    /// drops a packet too short for a load from the whole filter, nftables fails only the rule
    /// doing the load, so the two agree exactly when no other rule could take the packet.
    /// Anything else (the field beside `or`, under `not`) is refused naming the field.
    pub fn compile(&self) -> Result<Vec<Conjunction>, ExprError> {
        let rules =
            formula::compile(&lower::lower(&self.root)).map_err(|o| self.too_many(o, false))?;
        for field in lower::payload_fields(&self.root) {
            let in_every_rule = lower::payload_load(field)
                .is_some_and(|load| rules.iter().all(|r| reads_as_far(&r.matches, &load)));
            if rules.len() > 1 || (!in_every_rule && !rules.is_empty()) {
                return Err(ExprError::PayloadNotExact {
                    expression: self.text.clone(),
                    field: field.to_string(),
                    rules: rules.len(),
                });
            }
        }
        Ok(rules)
    }

    /// The rules for this expression AND `other` (the compiled structured filter given with
    /// it, such as the CLI's `--src`/`--dport`).
    pub fn compile_and(&self, other: &[Conjunction]) -> Result<Vec<Conjunction>, ExprError> {
        let own = self.compile()?;
        formula::conjoin(other, &own).map_err(|o| self.too_many(o, true))
    }

    fn too_many(&self, o: formula::Overflow, combined: bool) -> ExprError {
        ExprError::TooManyRules {
            expression: self.text.clone(),
            count: o.count,
            at_least: o.at_least,
            combined,
        }
    }
}

/// Whether a rule of `matches` fails every packet too short for `load`: it holds a load from
/// the same base reaching at least as far. The load itself may be gone from the rule when
/// another test implies it (`tcp[20:2] == 1 and tcp[20:2] > 0` keeps only the first).
fn reads_as_far(matches: &[crate::ir::Match], load: &crate::ir::Match) -> bool {
    use crate::ir::Match;
    let Match::Payload(want) = load else {
        return matches.contains(load);
    };
    let end = |p: &crate::ir::Payload| u32::from(p.offset) + u32::from(p.size);
    matches.iter().any(|m| match m {
        Match::Payload(have) => have.base == want.base && end(have) >= end(want),
        _ => false,
    })
}

/// Canonical syntax: every qualifier explicit, parenthesized where `and`/`or` mix.
impl fmt::Display for Expression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.root)
    }
}

#[cfg(test)]
mod limits_tests;
#[cfg(test)]
mod tests;
