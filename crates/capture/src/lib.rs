//! The single-node capture engine: filter -> nftables rule -> NFLOG -> pcapng.
//!
//! - [`spec`]: the validated request (filter, points, limits, snaplen, sampling, group, format).
//! - [`request`]: the one builder of a spec, shared by `edgecap capture` and the agent: the
//!   request rules of `edgecap_filter::request` applied to resolved points.
//! - [`observe`]: the observer's engine: exact per-point counters and a random sample of
//!   every packet's headers to a sink, from an owned table, until stopped.
//! - [`prelude`]: what a trigger's capture adds: sampled packets from before it, on
//!   interfaces of their own, and a bounded tap on the first packets written.
//! - [`points`]: named capture points and the nftables hooks behind them.
//! - [`config`]: the agent configuration file (node name, configured and custom points).
//! - [`run`](mod@run): the loop: bind the NFLOG group, write the header, install the owned table,
//!   read batches, enforce limits exactly, detach, drain, count loss, write statistics.
//! - `stamp`: per-packet times where the kernel gives none (egress, ingress), in log order.
//! - [`spool`]: the output file written by a thread of its own, with `O_DIRECT`, so disk writes
//!   never stall the packet reader.
//! - [`summary`]: what a finished capture reports and why it stopped.
//! - [`error`]: what can fail.

mod batch;
pub mod config;
pub mod error;
pub mod observe;
pub mod points;
pub mod prelude;
pub mod request;
pub mod run;
pub mod spec;
pub mod spool;
mod stamp;
pub mod summary;

pub use config::Config;
pub use error::CaptureError;
pub use points::PointDef;
pub use request::{Request, RequestError, RequestField};
pub use run::{Progress, run};
pub use spec::{AUTO_GROUPS, CaptureSpec, DEFAULT_SNAPLEN, GroupChoice, Limits, MAX_SNAPLEN};
pub use spool::FileSpool;
pub use summary::{PointSummary, StopReason, Summary};
