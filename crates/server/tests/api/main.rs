//! edgecap-server integration tests, one binary. The API tests run in process on `app(state)`
//! and the hub tests against a real listening server with simulated agents; each runs once on
//! SQLite and once on a PostgreSQL this binary starts.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

mod auth;
mod bad_input;
mod buckets;
mod dashboard;
mod endpoints;
mod firings;
mod hub;
mod identities;
mod limits;
mod listener;
mod lookback;
mod merge;
mod metrics;
mod openapi;
mod ownership;
mod pcaps;
mod quotas;
mod reads;
mod scopes;
mod sdk;
mod simple;
mod splits;
mod tenancy;
mod tokens;
mod traffic;
mod triggers;
