//! Test scaffolding shared by edgecap's test binaries (and the benchmarks' moto server), so
//! each helper has one copy: a test crate lists this one under `[dev-dependencies]` only; the
//! product never links it.
//!
//! | module | what |
//! | --- | --- |
//! | [`servers`] | `moto_server` and Azurite on 127.0.0.1 at free ports, killed on drop; temporary directories |
//! | [`http`] | plain HTTP/1.1 to moto: buckets, IAM users and keys, objects, open multipart uploads |
//! | [`azurite`] | Azurite containers (shared-key signed) |
//! | [`pg`] | a throw-away PostgreSQL (`initdb`/`pg_ctl` on loopback) per test binary |
//! | [`root`] | [`root_or_skip`]: root-only tests skip outside CI and fail under `CI=true` |
//! | [`readers`] | files read back with tshark and tcpdump: packets, fields |
//! | [`pcapfile`] | capture files for uploads, written by edgecap's pcapng writer, and their check |
//! | [`browser`] | the dashboard's browser tests: chromium and Playwright found, or skip (fail under `CI=true`) |
//! | [`pki`] | [`TestPki`]: a CA, a server certificate for 127.0.0.1/localhost and an untrusted second CA, as PEM files (`rcgen`) |
//!
//! Failures panic with what went wrong: that is a failed test. A missing server program is a
//! failure, not a skip (CI installs them, `.ci/run`).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test scaffolding: a panic is a failed test

pub mod azurite;
pub mod browser;
pub mod http;
pub mod pcapfile;
pub mod pg;
pub mod pki;
pub mod readers;
pub mod root;
pub mod servers;

pub use pki::TestPki;
pub use root::root_or_skip;
