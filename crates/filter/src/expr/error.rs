//! Why an expression was refused: where, at which token, what is wrong, and what to write
//! instead.

use std::fmt;

use crate::error::MAX_RULES;
use crate::expr::limits::MAX_EXPR_LEN;

/// A refused expression. Every message can be shown as is; the CLI prefixes `--filter: `.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExprError {
    /// The text does not parse, or asks for something edgecap cannot match exactly.
    #[error("{0}")]
    Syntax(SyntaxError),
    /// The text is longer than [`MAX_EXPR_LEN`] bytes (checked before it is read).
    #[error(
        "the expression is {len} bytes long, more than the limit of {MAX_EXPR_LEN} bytes \
         (use prefixes and port ranges instead of long lists)"
    )]
    TooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// The expression parses but needs more nftables rules than [`MAX_RULES`].
    #[error(
        "the expression {expression:?}{} expands to {} rules, more than the limit of \
         {MAX_RULES} (simplify it: fewer alternatives under `not`, or port ranges and prefixes \
         instead of lists of ports and hosts)",
        if *combined { " ANDed with the structured filter (addresses, ports, protocols)" } else { "" },
        if *at_least { format!("at least {count}") } else { count.to_string() }
    )]
    TooManyRules {
        expression: String,
        /// How many rules it needs (a lower bound when `at_least`: expansion stopped there).
        count: usize,
        at_least: bool,
        /// The limit was passed only together with a structured filter.
        combined: bool,
    },
    /// A payload field (past the headers every packet has) where a packet too short for it
    /// could be selected differently by libpcap and nftables.
    #[error(
        "the expression {expression:?} reads {field}, past the headers every such packet has, \
         and compiles to {rules} nftables rule(s) not all holding it: a packet too short for \
         the field is dropped from the whole filter by tcpdump but only from one rule by \
         nftables, so edgecap would not capture exactly what tcpdump selects (a payload field \
         is exact when the whole filter is one rule: AND it with the rest, not under `not` or \
         beside `or`)"
    )]
    PayloadNotExact {
        expression: String,
        /// The field, in canonical syntax (`udp[8:4] == 3735928559`).
        field: String,
        /// How many rules the expression compiles to.
        rules: usize,
    },
}

/// A parse error, pointing at one token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// 1-based position of the token's first character (in characters, not bytes); one past
    /// the end for "the expression ended too early".
    pub position: usize,
    /// The token as written; empty at the end of the expression.
    pub token: String,
    /// What is wrong.
    pub message: String,
    /// What to write instead, when there is something to suggest.
    pub hint: Option<String>,
}

impl SyntaxError {
    pub(crate) fn new(position: usize, token: &str, message: impl Into<String>) -> Self {
        SyntaxError {
            position,
            token: token.to_owned(),
            message: message.into(),
            hint: None,
        }
    }

    pub(crate) fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.token.is_empty() {
            true => write!(f, "at character {} (end of expression)", self.position)?,
            false => write!(f, "at character {} ({:?})", self.position, self.token)?,
        }
        write!(f, ": {}", self.message)?;
        if let Some(h) = &self.hint {
            write!(f, "; hint: {h}")?;
        }
        Ok(())
    }
}

impl From<SyntaxError> for ExprError {
    fn from(e: SyntaxError) -> Self {
        ExprError::Syntax(e)
    }
}

impl ExprError {
    /// The parse error, if this is one.
    pub fn syntax(&self) -> Option<&SyntaxError> {
        match self {
            ExprError::Syntax(s) => Some(s),
            ExprError::TooManyRules { .. }
            | ExprError::TooLong { .. }
            | ExprError::PayloadNotExact { .. } => None,
        }
    }
}
