//! Capture tests through the real kernel: nftables + NFLOG in lab namespaces, files read back
//! with tshark / tcpdump. They need root; under CI=true they fail rather than skip without it.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod bad_input;
mod common;
mod differential;
mod fate;
mod filters;
mod lab_cli;
mod limits;
mod observe;
mod output;
mod points;
mod safety;
mod signature;
