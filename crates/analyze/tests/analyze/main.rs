//! The analyses on captures built with edgecap's own writer, with exact expected counts.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;
mod diff;
mod fate;
mod flow;
mod fuzz;
