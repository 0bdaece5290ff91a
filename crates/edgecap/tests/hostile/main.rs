//! Hostile input against real processes: each attack of docs/security.md's threat model tried
//! against a real `edgecap server` on 127.0.0.1 and real `edgecap agent`s in lab namespaces,
//! showing it fails safely (a clear refusal, nothing changed, every process still serving).
//! They need root; under CI=true they fail rather than skip without it.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

// The fleet tests' harness (server and agent processes, the API) and the capture tests'
// helpers: this crate's own test code.
#[path = "../capture/common.rs"]
#[allow(dead_code, unused_imports)]
mod capture_common;
#[path = "../fleet/harness.rs"]
#[allow(dead_code, unused_imports)]
mod harness;

mod endpoints;
mod identity;
mod limits;
mod parsers;
mod roots;
mod scopes;
mod tls;
