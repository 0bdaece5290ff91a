//! Fleet tests with real processes: a lab of edge namespaces, a real `edgecap server` on
//! 127.0.0.1 with SQLite, and a real `edgecap agent --netns <edge>` per edge; traffic with
//! markers through each edge, files read back with tshark. They need root; under CI=true they
//! fail rather than skip without it.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

// The capture tests' helpers (root check, tshark readers, nft tables, scratch directories).
#[path = "../capture/common.rs"]
#[allow(dead_code)]
mod capture_common;
mod harness;

mod across;
mod bad_input;
mod limits;
mod node_loss;
mod restart;
mod stop;
mod up;
