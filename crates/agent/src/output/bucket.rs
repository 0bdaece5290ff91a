//! A node's file streamed into a bucket while the capture runs: an
//! [`edgecap_store::UploadSink`] (bounded chunks handed to a multipart upload on its own
//! thread) behind the engine's writer. Nothing is written to the agent's disk.
//!
//! **Failing mid-capture.** When the upload fails (a part failed after its retries, or the
//! store took nothing for the stall timeout while the buffer was full), the capture cannot
//! deliver its file any more. The capture's stop flag is set (by the first failed write, or
//! by the worker's progress tick, which watches the upload between writes) and later writes
//! are counted and dropped, so the engine ends normally, with its exact counts, within a
//! batch or a tick; [`NodeFile::finish`] then aborts the upload and says what the store had
//! confirmed. The incomplete upload is never completed: no truncated object appears.

use std::io::{self, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use edgecap_store::{Store, StoreError, UploadOptions, UploadSink};

use super::{Delivered, NodeFile};
use crate::error::OutputError;

pub(super) struct UploadFile {
    /// None once finished.
    sink: Option<UploadSink>,
    /// Why the upload failed: the first write that failed.
    failed: Option<io::Error>,
    /// Bytes written after the failure (never uploaded).
    dropped: u64,
    /// The capture's stop flag, set when the upload fails.
    stop: Arc<AtomicBool>,
    /// `<destination>/<key>`, for messages.
    name: String,
}

impl UploadFile {
    /// Starts the upload of `key` (its check included; blocks for those requests).
    pub(super) fn start(
        store: &Store,
        key: &str,
        opts: &UploadOptions,
        stop: Arc<AtomicBool>,
    ) -> Result<UploadFile, OutputError> {
        let sink = UploadSink::start(store, key, opts)?;
        Ok(UploadFile {
            sink: Some(sink),
            failed: None,
            dropped: 0,
            stop,
            name: store.describe_key(key),
        })
    }
}

impl Write for UploadFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.failed.is_none() {
            let Some(sink) = self.sink.as_mut() else {
                return Err(io::Error::other("the upload is already finished"));
            };
            match sink.write(buf) {
                Ok(n) => return Ok(n),
                Err(e) => {
                    tracing::warn!(object = %self.name, error = %e,
                        "upload failed mid-capture; stopping the capture");
                    self.failed = Some(e);
                    self.stop.store(true, Ordering::Relaxed);
                }
            }
        }
        self.dropped += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        // Parts go out when full (every part but the last has one size); nothing to push.
        Ok(())
    }
}

impl NodeFile for UploadFile {
    fn buffers(&self) -> bool {
        false
    }

    fn watch(&self) -> Option<edgecap_store::UploadWatch> {
        self.sink.as_ref().map(UploadSink::watch)
    }

    fn finish(mut self: Box<Self>) -> Result<Delivered, OutputError> {
        let sink = self
            .sink
            .take()
            .ok_or(OutputError::AlreadyFinished("upload"))?;
        if let Some(source) = self.failed.take() {
            return Err(OutputError::FailedMidCapture {
                name: std::mem::take(&mut self.name),
                source,
                report: Box::new(sink.abort()),
                dropped: self.dropped,
            });
        }
        match sink.finish() {
            Ok(r) => Ok(Delivered {
                bytes: r.uploaded,
                parts: r.parts,
                chunk_size: r.chunk_size,
            }),
            // The error names the object and carries what the store confirmed.
            Err(e @ StoreError::Upload { .. }) => Err(e.into()),
            Err(source) => Err(OutputError::Complete {
                name: std::mem::take(&mut self.name),
                source,
            }),
        }
    }
}

impl Drop for UploadFile {
    fn drop(&mut self) {
        // An unfinished upload (the engine failed) is aborted, never completed.
        if let Some(sink) = self.sink.take() {
            let report = sink.abort();
            tracing::info!(object = %self.name, %report, "unfinished upload aborted");
        }
    }
}
