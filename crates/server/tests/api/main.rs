//! edgecap-server integration tests, one binary. The API tests run in process on `app(state)`
//! and the hub tests against a real listening server with simulated agents; each runs once on
//! SQLite and once on a PostgreSQL this binary starts.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;
// The object-store tests' moto helpers, shared rather than copied.
#[allow(dead_code)]
#[path = "../../../store/tests/stores/http.rs"]
mod moto_http;
#[allow(dead_code)]
#[path = "../../../store/tests/stores/pcapfile.rs"]
mod pcapfile;
#[allow(dead_code)]
#[path = "../../../store/tests/stores/servers.rs"]
mod stores;

mod auth;
mod bad_input;
mod buckets;
mod hub;
mod merge;
mod openapi;
mod ownership;
mod pcaps;
mod sdk;
mod tokens;
