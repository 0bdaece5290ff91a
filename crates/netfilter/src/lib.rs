//! Kernel packet plumbing for edgecap: nftables over netlink and the NFLOG reader.
//!
//! - [`nl`]: a minimal `NETLINK_NETFILTER` socket, message builder and in-place parsers.
//! - [`expr`]: nf_tables expressions for filter matches and the capture tail
//!   (counter, sampling, `log`, `return`).
//! - [`table`]: the per-capture table, owned by our socket so the kernel removes it when the
//!   process ends in any way; atomic install / detach / remove; counter reads.
//! - [`nflog`]: binding an NFLOG group on a tuned socket and parsing batches without copying.
//! - [`error`]: operator-facing errors (not root, group taken, kernel feature missing).
//!
//! This is the only crate with `unsafe` (raw socket calls in [`nl`]); everything above it is safe.

pub mod error;
pub mod expr;
pub mod nflog;
pub mod nl;
pub mod table;

pub use error::Error;
pub use nflog::{NflogConfig, NflogReader, Packet, ReaderStats};
pub use table::{CaptureTable, Counters, Hook, HookNum, PointRules, RuleSpec};
