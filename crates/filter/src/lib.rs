//! Capture filters: what a user asks to capture, checked, and compiled to nftables match rules.
//! Pure: no I/O.
//!
//! The path of a filter: JSON ([`RawFilter`]) or CLI options ([`StructuredFilter::from_cli`])
//! → [`StructuredFilter`] (validated) → [`StructuredFilter::compile`] →
//! `Vec<`[`ir::Conjunction`]`>`, which the netfilter crate encodes as one nftables rule per
//! conjunction, [`render_nft`] shows to people, and [`matches()`] evaluates in user space.
//! A tcpdump-style expression takes the other road to the same rules:
//! [`Expression::parse`] → [`Expression::compile`] (or [`Expression::compile_and`] to AND it
//! with a structured filter's rules).
//!
//! - [`structured`]: the structured filter (Cloudflare's `filter_v1` plus prefixes, IPv6, port
//!   ranges and lists), its CLI constructor and its one-line summary.
//! - [`raw`]: the JSON shape as received (scalars or arrays), before validation.
//! - [`address`], [`port`], [`protocol`]: one value of a field (prefix, port range, protocol
//!   number and its names).
//! - [`error`]: [`FilterError`], whose every message names the field at fault.
//! - `compile`: the structured filter's cross product, with the rule limit [`MAX_RULES`].
//! - [`expr`]: tcpdump-style expressions (lexer, parser, tree, lowering to a formula).
//! - `formula`: guarded boolean formulas over matches, negation that keeps guards, and
//!   expansion into disjunctive normal form; `clause`: one conjunction's pruning
//!   (contradictions, implied matches, absorption).
//! - [`ir`]: the compiled form.
//! - [`render`]: nft syntax for each compiled rule.
//! - [`matcher`]: evaluates compiled rules on a raw IP packet, with nf_tables semantics.
//! - [`request`]: the rules every capture request obeys, on every path (CLI, server, agent):
//!   composing the fields with the expression, refusals per capture point, the snaplen.

pub mod address;
pub mod boundary;
mod clause;
mod compile;
pub mod error;
pub mod expr;
mod formula;
pub mod ir;
pub mod matcher;
pub mod port;
pub mod protocol;
pub mod raw;
pub mod render;
pub mod request;
pub mod structured;

pub use address::Prefix;
pub use boundary::{Boundary, BoundaryError};
pub use error::{Field, FilterError, MAX_RULES};
pub use expr::{
    ExprError, Expression, MAX_EXPR_DEPTH, MAX_EXPR_LEN, MAX_EXPR_OPERATORS, SyntaxError,
};
pub use matcher::matches;
pub use port::PortRange;
pub use protocol::Protocol;
pub use raw::{RawFilter, RawValue};
pub use render::render_nft;
pub use structured::StructuredFilter;
