//! The reader's error type. Every error after the first bytes names the file offset where the
//! problem was found and what was expected there, so "the file is corrupt" is never the whole
//! story.

use std::fmt::Write as _;
use std::io;

/// Why a capture file could not be read (further).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// The first bytes are neither a pcap nor a pcapng magic number.
    #[error("not a pcap or pcapng file ({})", describe_start(.start))]
    NotCapture {
        /// Up to the first 4 bytes of the input.
        start: Vec<u8>,
    },

    /// The source failed (an `io::Error` other than a clean end of input).
    #[error("read error at offset {offset}: {source}")]
    Io {
        /// Bytes successfully read before the failure.
        offset: u64,
        /// The source's error.
        #[source]
        source: io::Error,
    },

    /// The input ended inside a header, block or record.
    #[error(
        "file ends early at offset {offset}: {what} needs {expected} bytes, only {got} remain \
         (was the capture cut short?)"
    )]
    Truncated {
        /// Offset where the incomplete item starts.
        offset: u64,
        /// What was being read, e.g. "an enhanced packet block".
        what: &'static str,
        /// Bytes the item needs.
        expected: u64,
        /// Bytes that were there.
        got: u64,
    },

    /// A structure whose fields contradict the format.
    #[error("malformed file at offset {offset}: {what}")]
    Malformed {
        /// Offset of the header, block or record at fault.
        offset: u64,
        /// What is wrong, in words.
        what: String,
    },
}

impl ReadError {
    /// The file offset the error refers to (none for [`ReadError::NotCapture`], at offset 0).
    pub fn offset(&self) -> Option<u64> {
        match self {
            ReadError::NotCapture { .. } => None,
            ReadError::Io { offset, .. }
            | ReadError::Truncated { offset, .. }
            | ReadError::Malformed { offset, .. } => Some(*offset),
        }
    }

    /// True when the source itself failed, as opposed to the bytes being wrong.
    pub fn is_io(&self) -> bool {
        matches!(self, ReadError::Io { .. })
    }

    pub(crate) fn malformed(offset: u64, what: impl Into<String>) -> Self {
        ReadError::Malformed {
            offset,
            what: what.into(),
        }
    }
}

fn describe_start(start: &[u8]) -> String {
    if start.is_empty() {
        return "it is empty".to_owned();
    }
    let mut hex = String::with_capacity(2 + 2 * start.len());
    hex.push_str("starts with 0x");
    for b in start {
        // Writing to a String cannot fail.
        let _ = write!(hex, "{b:02x}");
    }
    if start.len() < 4 {
        let _ = write!(hex, " and has only {} bytes", start.len());
    }
    hex
}
