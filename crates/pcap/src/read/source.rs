//! The byte source under the reader: an `io::Read` with a running offset, exact reads that tell
//! a clean end of input from a truncated item, and skipping without buffering.

use std::io::{self, Read};

use super::ReadError;

/// Largest block or record the reader buffers. libpcap accepts at most 256 KiB per packet and
/// 16 MiB per pcapng block; anything bigger in a capture file is corruption, and refusing it
/// keeps memory bounded whatever the input says.
pub const MAX_BLOCK_LEN: u32 = 16 * 1024 * 1024;

#[derive(Debug)]
pub(crate) struct Source<R> {
    inner: R,
    offset: u64,
}

/// Outcome of reading an item that may legitimately be absent at the end of the input.
pub(crate) enum Fill {
    /// The whole item was read.
    Full,
    /// The input ended before the item's first byte.
    End,
}

impl<R: Read> Source<R> {
    pub(crate) fn new(inner: R) -> Self {
        Source { inner, offset: 0 }
    }

    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }

    /// Reads until `buf` is full or the input ends; returns how many bytes were read.
    fn read_up_to(&mut self, buf: &mut [u8]) -> Result<usize, ReadError> {
        let mut filled = 0;
        while filled < buf.len() {
            let Some(rest) = buf.get_mut(filled..) else {
                break;
            };
            match self.inner.read(rest) {
                Ok(0) => break,
                Ok(n) => {
                    filled += n.min(rest.len());
                    self.offset += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(ReadError::Io {
                        offset: self.offset,
                        source,
                    });
                }
            }
        }
        Ok(filled)
    }

    /// Reads the first bytes of the input; fewer than `buf.len()` only at end of input.
    pub(crate) fn read_start(&mut self, buf: &mut [u8]) -> Result<usize, ReadError> {
        self.read_up_to(buf)
    }

    /// Fills `buf` exactly, or reports `End` when the input ended before its first byte.
    /// `start` is the offset of the item `buf` belongs to, for the error message.
    pub(crate) fn fill_or_end(
        &mut self,
        buf: &mut [u8],
        start: u64,
        what: &'static str,
        expected: u64,
    ) -> Result<Fill, ReadError> {
        let before = self.offset;
        let n = self.read_up_to(buf)?;
        if n == buf.len() {
            Ok(Fill::Full)
        } else if n == 0 && before == start {
            Ok(Fill::End)
        } else {
            Err(ReadError::Truncated {
                offset: start,
                what,
                expected,
                got: self.offset - start,
            })
        }
    }

    /// Fills `buf` exactly; the end of input is a truncation of the item starting at `start`.
    pub(crate) fn fill(
        &mut self,
        buf: &mut [u8],
        start: u64,
        what: &'static str,
        expected: u64,
    ) -> Result<(), ReadError> {
        let n = self.read_up_to(buf)?;
        if n == buf.len() {
            Ok(())
        } else {
            Err(ReadError::Truncated {
                offset: start,
                what,
                expected,
                got: self.offset - start,
            })
        }
    }

    /// Reads `len` bytes into `buf` (resized, reusing its allocation).
    pub(crate) fn fill_vec(
        &mut self,
        buf: &mut Vec<u8>,
        len: usize,
        start: u64,
        what: &'static str,
        expected: u64,
    ) -> Result<(), ReadError> {
        buf.clear();
        buf.resize(len, 0);
        self.fill(buf, start, what, expected)
    }

    /// Discards `len` bytes without buffering them.
    pub(crate) fn skip(
        &mut self,
        len: u64,
        start: u64,
        what: &'static str,
        expected: u64,
    ) -> Result<(), ReadError> {
        let mut scratch = [0u8; 4096];
        let mut left = len;
        while left > 0 {
            let chunk = left.min(scratch.len() as u64) as usize;
            let Some(part) = scratch.get_mut(..chunk) else {
                break;
            };
            let n = self.read_up_to(part)?;
            if n < chunk {
                return Err(ReadError::Truncated {
                    offset: start,
                    what,
                    expected,
                    got: self.offset - start,
                });
            }
            left -= chunk as u64;
        }
        Ok(())
    }
}
