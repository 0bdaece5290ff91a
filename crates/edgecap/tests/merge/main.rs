//! `edgecap merge` end to end: files written by edgecap, tcpdump and editcap (wiretap) merged
//! by the real binary and opened with tshark; the same packets in the same order as
//! `mergecap -w`; bucket URLs (file:// and S3 on moto_server) in and out; bad input.
#![allow(clippy::unwrap_used)]

mod files;
mod merge;
