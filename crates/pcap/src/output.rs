//! Delivery of whole records to the sink: one reusable buffer, and fail-stop on sink errors.
//!
//! Records are gathered in the buffer and handed to the sink a buffer at a time, so a packet
//! costs three `memcpy`s and no system call whatever the sink. A record that does not fit the
//! buffer (every record, with a zero-capacity buffer) goes to the sink as a single vectored
//! write of header, data and trailer. `tests/bench.rs` compares the two.

use std::fmt;
use std::io::{self, IoSlice, Write};

use crate::Error;

pub(crate) struct Output<W: Write> {
    /// `None` only once `finish` has taken it.
    sink: Option<W>,
    buf: Vec<u8>,
    capacity: usize,
    /// Bytes the sink has accepted: the file offset where the buffer starts.
    delivered: u64,
    /// Set by the first sink error. After it the file ends at an unknown point, and retrying
    /// could duplicate or interleave bytes, so everything later is refused.
    failed: Option<String>,
}

impl<W: Write> fmt::Debug for Output<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Output")
            .field("buffered", &self.buf.len())
            .field("capacity", &self.capacity)
            .field("delivered", &self.delivered)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

impl<W: Write> Output<W> {
    pub(crate) fn new(sink: W, capacity: usize) -> Self {
        Output {
            sink: Some(sink),
            buf: Vec::with_capacity(capacity),
            capacity,
            delivered: 0,
            failed: None,
        }
    }

    pub(crate) fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The file's length so far, buffered bytes included.
    pub(crate) fn len(&self) -> u64 {
        self.delivered + self.buf.len() as u64
    }

    /// Appends `parts` as one contiguous record; `what` names it if the sink fails.
    pub(crate) fn put(
        &mut self,
        parts: &[&[u8]],
        what: impl FnOnce() -> String,
    ) -> Result<(), Error> {
        self.check()?;
        let len: usize = parts.iter().map(|p| p.len()).sum();
        if self.buf.len() + len > self.capacity {
            self.flush_buf()?;
            if len > self.capacity {
                return self.put_direct(parts, len, what);
            }
        }
        for part in parts {
            self.buf.extend_from_slice(part);
        }
        Ok(())
    }

    /// Hands everything buffered to the sink and flushes the sink.
    pub(crate) fn flush(&mut self) -> Result<(), Error> {
        self.flush_buf()?;
        let result = match self.sink.as_mut() {
            Some(sink) => sink.flush(),
            None => return Err(returned()),
        };
        result.map_err(|e| self.fail("a flush of the sink".to_owned(), e))
    }

    pub(crate) fn finish(mut self) -> Result<W, Error> {
        self.flush()?;
        self.sink.take().ok_or_else(returned)
    }

    fn check(&self) -> Result<(), Error> {
        match (&self.failed, &self.sink) {
            (Some(reason), _) => Err(Error::SinkFailed(reason.clone())),
            (None, None) => Err(returned()),
            (None, Some(_)) => Ok(()),
        }
    }

    fn fail(&mut self, what: String, e: io::Error) -> Error {
        let err = Error::io(what, e);
        self.failed = Some(err.to_string());
        err
    }

    fn put_direct(
        &mut self,
        parts: &[&[u8]],
        len: usize,
        what: impl FnOnce() -> String,
    ) -> Result<(), Error> {
        let result = match self.sink.as_mut() {
            Some(sink) => write_all_vectored(sink, parts, len),
            None => return Err(returned()),
        };
        match result {
            Ok(()) => {
                self.delivered += len as u64;
                Ok(())
            }
            Err(e) => Err(self.fail(format!("{} at file offset {}", what(), self.delivered), e)),
        }
    }

    fn flush_buf(&mut self) -> Result<(), Error> {
        self.check()?;
        if self.buf.is_empty() {
            return Ok(());
        }
        let result = match self.sink.as_mut() {
            Some(sink) => sink.write_all(&self.buf),
            None => return Err(returned()),
        };
        match result {
            Ok(()) => {
                self.delivered += self.buf.len() as u64;
                self.buf.clear();
                Ok(())
            }
            Err(e) => {
                let what = format!(
                    "{} buffered bytes at file offset {}",
                    self.buf.len(),
                    self.delivered
                );
                Err(self.fail(what, e))
            }
        }
    }
}

impl<W: Write> Drop for Output<W> {
    fn drop(&mut self) {
        if self.failed.is_none() && self.sink.is_some() {
            // Errors cannot be reported from drop; finish() exists for callers who care.
            let _ = self.flush();
        }
    }
}

fn returned() -> Error {
    Error::SinkFailed("the sink was already returned by finish()".to_owned())
}

/// `write_all` for several slices (std's `write_all_vectored` is unstable). Checks the count
/// each write reports, because `IoSlice::advance_slices` panics on a sink that over-reports.
fn write_all_vectored<W: Write>(sink: &mut W, parts: &[&[u8]], len: usize) -> io::Result<()> {
    let mut storage = [IoSlice::new(&[]); 4];
    if parts.len() > storage.len() {
        return Err(io::Error::other("internal: too many parts for one record"));
    }
    for (slot, part) in storage.iter_mut().zip(parts) {
        *slot = IoSlice::new(part);
    }
    let mut bufs: &mut [IoSlice<'_>] = &mut storage[..parts.len()];
    let mut remaining = len;
    while remaining > 0 {
        match sink.write_vectored(bufs) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) if n > remaining => {
                return Err(io::Error::other(format!(
                    "the sink reported writing {n} bytes of {remaining}"
                )));
            }
            Ok(n) => {
                remaining -= n;
                IoSlice::advance_slices(&mut bufs, n);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
