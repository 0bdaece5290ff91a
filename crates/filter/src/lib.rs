//! Capture filters.
//!
//! - [`ir`]: the compiled form (disjunction of conjunctions of primitive matches) that the
//!   netfilter crate encodes as nftables expressions.
pub mod ir;
