//! Fleet tests with real processes: a lab of edge namespaces, a real `edgecap server` on
//! 127.0.0.1 with SQLite (or a PostgreSQL the test starts), and a real `edgecap agent --netns
//! <edge>` per edge; traffic with markers through each edge, files read back with tshark,
//! from local directories or from buckets on a `moto_server` (S3) and an Azurite the tests
//! start. They need root; under CI=true they fail rather than skip without it.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

// The capture tests' helpers (the edgecap binary, lab traffic, nft tables, markers, scratch
// directories): this crate's own test code. Servers, the root check and tshark come from
// edgecap-testkit.
#[path = "../capture/common.rs"]
#[allow(dead_code)]
mod capture_common;
mod fake_hub;
mod flows;
mod harness;

mod bucket;
mod buckets_azure;
mod buckets_bad_input;
mod buckets_failures;
mod buckets_s3;
mod control_plane;

mod across;
mod bad_input;
mod boundary;
mod cli;
mod dashboard;
mod estimate;
mod events;
mod limits;
mod lookback;
mod metrics;
mod node_loss;
mod observer;
mod privileges;
mod quotas;
mod replicas;
mod restart;
mod stop;
mod tenancy;
mod traffic;
mod triggers;
mod up;
