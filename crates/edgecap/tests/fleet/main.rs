//! Fleet tests with real processes: a lab of edge namespaces, a real `edgecap server` on
//! 127.0.0.1 with SQLite (or a PostgreSQL the test starts), and a real `edgecap agent --netns
//! <edge>` per edge; traffic with markers through each edge, files read back with tshark,
//! from local directories or from buckets on a `moto_server` (S3) and an Azurite the tests
//! start. They need root; under CI=true they fail rather than skip without it.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

// The capture tests' helpers (root check, tshark readers, nft tables, scratch directories).
#[path = "../capture/common.rs"]
#[allow(dead_code)]
mod capture_common;
mod harness;
// The object-store and server tests' helpers (moto, Azurite, PostgreSQL), shared rather than
// copied; the module names are the ones those files refer to each other by.
#[allow(dead_code)]
#[path = "../../../store/tests/stores/azurite.rs"]
mod azurite;
#[allow(dead_code)]
#[path = "../../../store/tests/stores/http.rs"]
mod http;
#[allow(dead_code)]
#[path = "../../../server/tests/api/common/pg.rs"]
mod pg;
#[allow(dead_code)]
#[path = "../../../store/tests/stores/servers.rs"]
mod servers;

mod bucket;
mod buckets_azure;
mod buckets_bad_input;
mod buckets_failures;
mod buckets_s3;
mod control_plane;

mod across;
mod bad_input;
mod cli;
mod limits;
mod node_loss;
mod restart;
mod stop;
mod up;
