//! Streaming, bounded multipart uploads: [`UploadSink`] is the `io::Write` a capture (or a
//! merge) writes into; full chunks go over a bounded hand-off to a task on the sink's own
//! current-thread tokio runtime, which drives `object_store`'s `WriteMultipart`.
//!
//! ```text
//!  capture thread                    upload thread (current-thread runtime)
//!  Writer -> UploadSink.write        WriteMultipart: wait_for_capacity -> put(chunk)
//!            fills one chunk  --->   at most `concurrency` parts in flight, each retried
//!            takes a slot            with backoff by object_store; a joined part frees
//!            (waits <= stall_timeout) its slot
//! ```
//!
//! **Memory bound.** The sink owns one chunk being filled plus at most `buffer_chunks` chunks
//! handed over and not yet uploaded (queued or in flight): at most
//! `chunk_size * (1 + buffer_chunks)` bytes ([`UploadOptions::memory_bound`]), whatever the
//! object's size. The sink counts this itself ([`UploadReport::peak_buffered`]).
//!
//! **Failure.** A part that fails after its retries, or a store that takes no chunk for
//! `stall_timeout` while the buffer is full, fails the sink: the next write returns an error,
//! the incomplete upload is aborted, and [`UploadSink::finish`] returns
//! [`crate::StoreError::Upload`] with what was accepted and uploaded. It never completes a
//! partial object. Dropping an unfinished sink aborts too.
//!
//! Modules: `sink` (the writer side), `task` (the upload task), `slots` (the shared budget).

mod sink;
mod slots;
mod task;

use std::fmt;
use std::time::Duration;

pub use sink::{UploadSink, UploadWatch};

/// S3's (and GCS's, and R2's) smallest part but the last.
pub const MIN_PART: usize = 5 * 1024 * 1024;
/// S3's, GCS's and R2's most parts per upload.
pub const MAX_PARTS: u64 = 10_000;

/// The part size for an object of at most `max_object_bytes`: `max(5 MiB, ceil(max /
/// 10000))`, rounded up to a MiB; every part but the last has this size (R2 requires equal
/// parts). With no bound, 5 MiB parts allow objects up to 48.8 GiB.
pub fn chunk_size_for(max_object_bytes: Option<u64>) -> usize {
    let need = max_object_bytes.map_or(0, |m| m.div_ceil(MAX_PARTS));
    let mib = 1u64 << 20;
    let size = need.div_ceil(mib).saturating_mul(mib).max(MIN_PART as u64);
    usize::try_from(size).unwrap_or(usize::MAX)
}

/// A safe upper bound of a capture file's size for a byte limit (captured packet bytes) and
/// an optional packet limit: each record adds at most 96 bytes of framing (an EPB's 59 and,
/// in files with several points, a 20-byte SLL2 header) and a packet holds at least 20 bytes
/// (an IPv4 header), plus 64 KiB for headers and statistics.
pub fn capture_file_bound(byte_limit: u64, packet_limit: Option<u64>) -> u64 {
    let records = packet_limit.map_or(byte_limit.div_ceil(20), |p| p.min(byte_limit.div_ceil(20)));
    byte_limit
        .saturating_add(records.saturating_mul(96))
        .saturating_add(64 << 10)
}

/// How an upload runs.
#[derive(Debug, Clone)]
pub struct UploadOptions {
    /// Bytes per part; see [`chunk_size_for`]. At least [`MIN_PART`] for cloud stores.
    pub chunk_size: usize,
    /// Chunks handed over and not yet uploaded, at most (the buffer an outage fills).
    pub buffer_chunks: usize,
    /// Parts uploaded at once (at most `buffer_chunks`).
    pub concurrency: usize,
    /// Longest a write waits for room in a full buffer before the upload fails.
    pub stall_timeout: Duration,
    /// Longest the abort of a failed upload may take (the store may be down).
    pub abort_timeout: Duration,
}

impl Default for UploadOptions {
    fn default() -> Self {
        UploadOptions {
            chunk_size: MIN_PART,
            buffer_chunks: 4,
            concurrency: 2,
            stall_timeout: Duration::from_secs(60),
            abort_timeout: Duration::from_secs(10),
        }
    }
}

impl UploadOptions {
    /// Options for an object of at most `max_object_bytes` (see [`chunk_size_for`]).
    pub fn for_size(max_object_bytes: Option<u64>) -> Self {
        UploadOptions {
            chunk_size: chunk_size_for(max_object_bytes),
            ..UploadOptions::default()
        }
    }

    /// The most bytes the sink holds at once.
    pub fn memory_bound(&self) -> usize {
        self.chunk_size.saturating_mul(1 + self.buffer_chunks)
    }

    pub(crate) fn check(&self) -> Result<(), crate::StoreError> {
        let bad = |why: String| crate::StoreError::invalid("upload options", why);
        if self.chunk_size == 0 || self.buffer_chunks == 0 || self.concurrency == 0 {
            return Err(bad(
                "chunk_size, buffer_chunks and concurrency must be positive".into(),
            ));
        }
        if self.concurrency > self.buffer_chunks {
            return Err(bad(format!(
                "concurrency {} exceeds buffer_chunks {}",
                self.concurrency, self.buffer_chunks
            )));
        }
        Ok(())
    }
}

/// What an upload did. On success `completed` is true and `uploaded == accepted`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UploadReport {
    /// Bytes the writer handed to the sink.
    pub accepted: u64,
    /// Bytes in parts the store confirmed.
    pub uploaded: u64,
    /// Parts the store confirmed.
    pub parts: u64,
    /// Part size.
    pub chunk_size: u64,
    /// Most bytes the sink held at once, by its own accounting.
    pub peak_buffered: u64,
    /// The bound `peak_buffered` never exceeds.
    pub memory_bound: u64,
    /// The object exists, whole.
    pub completed: bool,
    /// The incomplete upload was aborted (nothing is left in the bucket).
    pub aborted: bool,
    /// Why aborting failed, if it did (the bucket's lifecycle rule must then clean up).
    pub abort_error: Option<String>,
    /// The completed object's entity tag, when the store returns one.
    pub e_tag: Option<String>,
}

impl fmt::Display for UploadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} bytes accepted, {} bytes in {} parts confirmed by the store",
            self.accepted, self.uploaded, self.parts
        )?;
        if self.completed {
            f.write_str(", object complete")
        } else if self.aborted {
            f.write_str(", incomplete upload aborted: no object was created")
        } else if let Some(e) = &self.abort_error {
            write!(
                f,
                ", aborting the incomplete upload failed ({e}); no object was created, the \
                 bucket's lifecycle rule must remove the parts"
            )
        } else {
            f.write_str(", no object was created")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_size_follows_the_part_rule() {
        assert_eq!(chunk_size_for(None), MIN_PART);
        assert_eq!(chunk_size_for(Some(1 << 30)), MIN_PART);
        // 100 GiB / 10000 = 10.24 MiB -> 11 MiB parts.
        assert_eq!(chunk_size_for(Some(100 << 30)), 11 << 20);
        let size = 100u64 << 30;
        assert!(size.div_ceil(chunk_size_for(Some(size)) as u64) <= MAX_PARTS);
        // Tiny packets: framing dominates, the bound covers it.
        assert!(capture_file_bound(1000, None) >= 1000 + 50 * 96);
        assert_eq!(capture_file_bound(1000, Some(1)), 1000 + 96 + (64 << 10));
    }

    #[test]
    fn options_are_checked() {
        let o = UploadOptions {
            concurrency: 5,
            ..UploadOptions::default()
        };
        assert!(o.check().unwrap_err().to_string().contains("concurrency 5"));
        assert_eq!(UploadOptions::default().memory_bound(), 25 << 20);
    }
}
