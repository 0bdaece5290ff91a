//! The single-node capture engine: filter -> nftables rule -> NFLOG -> pcapng.
//!
//! - [`spec`]: the validated request (filter, point, limits, snaplen, sampling, group, format).
//! - [`run`](mod@run): the loop: bind the NFLOG group, write the header, install the owned table,
//!   read batches, enforce limits exactly, detach, drain, count loss, write statistics.
//! - [`summary`]: what a finished capture reports and why it stopped.
//! - [`error`]: what can fail.

pub mod error;
pub mod run;
pub mod spec;
pub mod summary;

pub use error::CaptureError;
pub use run::{Progress, run};
pub use spec::{AUTO_GROUPS, CaptureSpec, DEFAULT_SNAPLEN, GroupChoice, Limits, Point};
pub use summary::{StopReason, Summary};
