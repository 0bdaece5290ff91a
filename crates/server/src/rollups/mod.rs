//! Traffic rollups on the server (issue 12): what agents measure every second, stored,
//! downsampled and queried.
//!
//! - [`store`]: the bounded path from agent sessions to the database: a session hands its
//!   seconds to [`Rollups::offer`], which never waits (a full queue drops the batch and
//!   counts it, [`Rollups::dropped`]); one writer task inserts them in batches;
//! - [`jobs`]: downsampling (seconds into minutes: sums, heavy hitters merged) and retention
//!   (`Config::rollup_fine_retention`, `Config::rollup_retention`), every
//!   `Config::rollup_job_every`;
//! - [`query`]: the analytics API's parameters, its one tenancy rule ([`query::scope_for`])
//!   and the series and heavy hitters it answers;
//! - [`hitters`]: heavy-hitter lists as stored and their bounded, bound-keeping merge (pure).
//!
//! The SQL lives in `crate::db::rollups` (migration `0008_rollups.sql`; `rollup_fresh`, the
//! fresh seconds' sums per minute that minute-step series read, `0018_fresh_minutes.sql`).

pub mod hitters;
pub mod jobs;
pub mod query;
pub mod store;

pub use store::Rollups;
