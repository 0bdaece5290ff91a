//! `edgecap merge` end to end: files written by edgecap, tcpdump and editcap (wiretap) merged
//! by the real binary and opened with tshark; the same packets in the same order as
//! `mergecap -w`; bucket URLs (file:// and S3 on moto_server) in and out; bad input.
#![allow(clippy::unwrap_used)]

// The object-store tests' server helpers, shared rather than copied.
#[allow(dead_code)]
#[path = "../../../store/tests/stores/http.rs"]
mod http;
#[allow(dead_code)]
#[path = "../../../store/tests/stores/servers.rs"]
mod servers;

mod files;
mod merge;
