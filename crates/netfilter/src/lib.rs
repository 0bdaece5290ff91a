//! netfilter.
