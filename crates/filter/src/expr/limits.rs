//! The bounds on an expression, so that no text can exhaust the stack or the CPU of whoever
//! parses it (the CLI, the server's create validation, the agent's plan all call
//! [`Expression::parse`](crate::Expression::parse), which applies them):
//!
//! - [`MAX_EXPR_LEN`] bytes of text, checked before the lexer runs;
//! - [`MAX_EXPR_DEPTH`] levels of parentheses and `not`, checked by the parser before each
//!   recursive step;
//! - [`MAX_EXPR_OPERATORS`] `and`/`or` operators, checked as the parser joins operands.
//!
//! The last two bound every walk over the tree (lowering, expansion, display, comparison,
//! drop): a chain `a or b or c` nests to the left, so the tree's depth is at most the nesting
//! plus the number of operators. `limits_tests.rs` runs the worst case on a stack half the size
//! of the smallest thread that parses filters (tokio's 2 MiB workers).

/// The longest expression accepted, in bytes. A filter of 256 rules' worth of hosts
/// (`host 2001:db8::1 or ...`) fits; the 18 KB attack of nested parentheses does not.
pub const MAX_EXPR_LEN: usize = 8 * 1024;

/// The deepest nesting of parentheses and `not` accepted (tcpdump users rarely pass 5).
pub const MAX_EXPR_DEPTH: usize = 64;

/// The most `and`/`or` operators in one expression. More could never compile: a list of
/// alternatives needs at least one rule each, and [`MAX_RULES`](crate::MAX_RULES) is 256.
pub const MAX_EXPR_OPERATORS: usize = 1024;
