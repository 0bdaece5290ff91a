//! Kernel packet plumbing for edgecap: nftables over netlink and the NFLOG reader.
//!
//! The wire format is kept apart from the socket: every message is built and parsed by pure
//! functions that need no socket and no root, tested byte for byte against bytes recorded
//! once from the kernel path (`tests/golden.rs`, recorded by `examples/record_golden.rs`).
//!
//! - [`codec`]: netlink messages and nested attributes, nfnetlink batch framing, in-place
//!   parsers of messages, attributes and error answers. No syscalls.
//! - [`expr`]: nf_tables expressions for filter matches and the capture tail
//!   (counter, sampling, `log`, `return`).
//! - [`rules`]: what a capture installs, as data: points, hooks, the rule spec, chain names.
//! - [`batch`]: the nf_tables messages of a capture table (install, detach and remove
//!   batches, the counter read) as pure functions of their inputs and sequence numbers.
//! - [`nflog_msg`]: NFLOG config requests from typed attributes, and the packet parser.
//! - [`socket`]: the `NETLINK_NETFILTER` socket, the one receive loop; the only file with
//!   `unsafe`, allowed function by function.
//! - [`table`]: the per-capture table, owned by our socket so the kernel removes it when the
//!   process ends in any way: sends the batches and collects the answers; counter reads.
//! - [`nflog`]: binding an NFLOG group on a tuned socket and receiving batches without copying.
//! - [`error`]: operator-facing errors (not root, group taken, kernel feature missing); socket
//!   errors keep their `io::Error` as the source.

pub mod batch;
pub mod codec;
pub mod error;
pub mod expr;
pub mod nflog;
pub mod nflog_msg;
pub mod rules;
pub mod socket;
pub mod table;

pub use error::Error;
pub use nflog::{NflogConfig, NflogReader, Packet, ReaderStats};
pub use table::{CaptureTable, Counters, Counting, Hook, HookNum, PointRules, RuleSpec};
