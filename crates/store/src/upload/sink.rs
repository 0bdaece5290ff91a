//! [`UploadSink`]: the writer side. It copies bytes into one chunk; a full chunk takes a slot
//! (waiting at most `stall_timeout`) and goes to the upload task. No network call, and no
//! wait unless the buffer is full, ever happens on the writing thread.

use std::io::{self, Write};
use std::sync::Arc;
use std::thread::JoinHandle;

use bytes::Bytes;
use object_store::{Attribute, Attributes, PutMultipartOptions, WriteMultipart};
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};

use super::slots::Slots;
use super::task::{self, Ended, Msg};
use super::{MAX_PARTS, UploadOptions, UploadReport};
use crate::destination::Scheme;
use crate::error::StoreError;
use crate::store::{Store, explain};

/// A streaming multipart upload as an [`io::Write`]. See the module documentation for the
/// memory bound and failure behaviour. Call [`UploadSink::finish`]; dropping it aborts.
///
/// `flush` uploads nothing: parts but the last must be full, so bytes reach the store a
/// chunk at a time and at `finish`.
pub struct UploadSink {
    /// The chunk being filled; capacity 0 until the first byte after a hand-over.
    cur: Vec<u8>,
    tx: Option<UnboundedSender<Msg>>,
    slots: Arc<Slots>,
    thread: Option<JoinHandle<Ended>>,
    opts: UploadOptions,
    accepted: u64,
    /// Full chunks handed over.
    sent: u64,
    destination: String,
    key: String,
}

impl std::fmt::Debug for UploadSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UploadSink")
            .field("destination", &self.destination)
            .field("key", &self.key)
            .field("accepted", &self.accepted)
            .field("chunks_sent", &self.sent)
            .finish_non_exhaustive()
    }
}

impl UploadSink {
    /// Checks that `rel` can be written ([`Store::preflight`]), starts the multipart upload
    /// and the upload thread. Fails before any byte is accepted when the store is unreachable,
    /// the bucket missing or writing denied. Blocks the calling thread for those requests;
    /// call it from a plain thread (or `spawn_blocking`), not from async code.
    pub fn start(store: &Store, rel: &str, opts: &UploadOptions) -> Result<UploadSink, StoreError> {
        opts.check()?;
        let path = store.path(rel)?;
        let slots = Arc::new(Slots::new(opts.buffer_chunks));
        let (tx, rx) = unbounded_channel();
        let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel::<Result<(), StoreError>>(1);
        let (store2, rel2, slots2, opts2) = (
            store.clone(),
            rel.to_owned(),
            Arc::clone(&slots),
            opts.clone(),
        );
        let thread = std::thread::Builder::new()
            .name("edgecap-upload".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let why = format!("cannot start the upload runtime: {e}");
                        let _ = ready_tx.send(Err(StoreError::Seal(why.clone())));
                        return Ended::Failed { why, abort: Ok(()) };
                    }
                };
                rt.block_on(async move {
                    if let Err(e) = store2.preflight(&rel2).await {
                        let why = e.to_string();
                        let _ = ready_tx.send(Err(e));
                        return Ended::Failed { why, abort: Ok(()) };
                    }
                    let popts = put_options(store2.destination().scheme);
                    let upload = match store2.object_store().put_multipart_opts(&path, popts).await
                    {
                        Ok(u) => u,
                        Err(e) => {
                            let err = StoreError::Unwritable {
                                destination: store2.destination().to_string(),
                                key: rel2.clone(),
                                reason: explain(&e),
                            };
                            let why = err.to_string();
                            let _ = ready_tx.send(Err(err));
                            return Ended::Failed { why, abort: Ok(()) };
                        }
                    };
                    let _ = ready_tx.send(Ok(()));
                    let wm = WriteMultipart::new_with_chunk_size(upload, opts2.chunk_size);
                    task::run(wm, rx, slots2, opts2).await
                })
            })
            .map_err(|e| StoreError::Seal(format!("cannot start the upload thread: {e}")))?;
        let ready = ready_rx.recv();
        match ready {
            Ok(Ok(())) => Ok(UploadSink {
                cur: Vec::new(),
                tx: Some(tx),
                slots,
                thread: Some(thread),
                opts: opts.clone(),
                accepted: 0,
                sent: 0,
                destination: store.destination().to_string(),
                key: rel.to_owned(),
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => {
                let _ = thread.join();
                Err(StoreError::Seal(
                    "the upload thread ended before the upload started".to_owned(),
                ))
            }
        }
    }

    /// What has happened so far (the final report comes from [`UploadSink::finish`]).
    pub fn report(&self) -> UploadReport {
        let st = self.slots.lock();
        UploadReport {
            accepted: self.accepted,
            uploaded: st.uploaded,
            parts: st.parts,
            chunk_size: self.opts.chunk_size as u64,
            peak_buffered: st.peak,
            memory_bound: self.opts.memory_bound() as u64,
            completed: false,
            aborted: false,
            abort_error: None,
            e_tag: None,
        }
    }

    /// Why the upload failed, if it has.
    pub fn failure(&self) -> Option<String> {
        self.slots.failure()
    }

    /// A handle that sees the upload fail without writing to it: a writer with nothing to
    /// write (a quiet capture) learns of a failed part only through this.
    pub fn watch(&self) -> UploadWatch {
        UploadWatch {
            slots: Arc::clone(&self.slots),
        }
    }

    /// Uploads the last chunk, waits for every part and completes the object. On any failure
    /// the incomplete upload is aborted and the error carries the [`UploadReport`].
    pub fn finish(mut self) -> Result<UploadReport, StoreError> {
        let tail = Bytes::from(std::mem::take(&mut self.cur));
        let msg = if self.slots.failure().is_some() {
            Msg::Abort
        } else {
            Msg::Finish(tail)
        };
        self.end(msg)
    }

    /// Abandons the upload: aborts it and returns what had been done.
    pub fn abort(mut self) -> UploadReport {
        self.slots
            .fail("the upload was aborted by the caller".to_owned());
        match self.end(Msg::Abort) {
            Ok(r) => r,
            Err(StoreError::Upload { report, .. }) => *report,
            Err(_) => self.report(),
        }
    }

    fn end(&mut self, msg: Msg) -> Result<UploadReport, StoreError> {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(msg);
        }
        let ended = match self.thread.take().map(JoinHandle::join) {
            Some(Ok(e)) => e,
            Some(Err(_)) => Ended::Failed {
                why: "the upload thread panicked".to_owned(),
                abort: Err("not attempted".to_owned()),
            },
            None => Ended::Failed {
                why: "the upload already ended".to_owned(),
                abort: Ok(()),
            },
        };
        let mut report = self.report();
        match ended {
            Ended::Completed(put) => {
                report.completed = true;
                report.e_tag = put.e_tag;
                Ok(report)
            }
            Ended::Failed { why, abort } => {
                match abort {
                    Ok(()) => report.aborted = true,
                    Err(e) => report.abort_error = Some(e),
                }
                Err(StoreError::Upload {
                    destination: self.destination.clone(),
                    key: self.key.clone(),
                    reason: why,
                    report: Box::new(report),
                })
            }
        }
    }

    fn hand_over(&mut self) -> io::Result<()> {
        // The tail will be one more part: full chunks may use all but one.
        if self.sent + 1 >= MAX_PARTS {
            let why = format!(
                "the object would exceed {MAX_PARTS} parts of {} bytes; use a byte limit so \
                 larger parts are chosen",
                self.opts.chunk_size
            );
            self.slots.fail(why.clone());
            return Err(io::Error::other(why));
        }
        self.slots
            .acquire(self.opts.stall_timeout)
            .map_err(|why| io::Error::other(format!("upload to {}: {why}", self.key)))?;
        let chunk = Bytes::from(std::mem::take(&mut self.cur));
        let sent = self
            .tx
            .as_ref()
            .is_some_and(|tx| tx.send(Msg::Chunk(chunk)).is_ok());
        if !sent {
            let why = self
                .slots
                .failure()
                .unwrap_or_else(|| "the upload task has stopped".to_owned());
            return Err(io::Error::other(format!("upload to {}: {why}", self.key)));
        }
        self.sent += 1;
        Ok(())
    }
}

impl Write for UploadSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(why) = self.slots.failure() {
            return Err(io::Error::other(format!("upload to {}: {why}", self.key)));
        }
        let chunk = self.opts.chunk_size;
        let mut rest = buf;
        while !rest.is_empty() {
            if self.cur.capacity() == 0 {
                self.cur = Vec::with_capacity(chunk);
                self.slots.hold(self.cur.capacity() as u64);
            }
            let n = (chunk - self.cur.len()).min(rest.len());
            let (now, later) = rest.split_at(n);
            self.cur.extend_from_slice(now);
            rest = later;
            if self.cur.len() == chunk {
                self.hand_over()?;
            }
        }
        self.accepted += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.slots.failure() {
            Some(why) => Err(io::Error::other(format!("upload to {}: {why}", self.key))),
            None => Ok(()),
        }
    }
}

impl Drop for UploadSink {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.slots
                .fail("the upload was dropped before finish()".to_owned());
            let _ = self.end(Msg::Abort);
        }
    }
}

/// See [`UploadSink::watch`]. Cheap to clone; holds no upload state of its own.
#[derive(Clone)]
pub struct UploadWatch {
    slots: Arc<Slots>,
}

impl std::fmt::Debug for UploadWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UploadWatch")
            .field("failed", &self.failure().is_some())
            .finish()
    }
}

impl UploadWatch {
    /// Why the upload failed, if it has (a part failed after its retries, the buffer stayed
    /// full, or the sink was aborted).
    pub fn failure(&self) -> Option<String> {
        self.slots.failure()
    }
}

/// Capture files are labelled for browsers and tools that download them; the local file
/// system keeps no attributes (and refuses them).
fn put_options(scheme: Scheme) -> PutMultipartOptions {
    let mut opts = PutMultipartOptions::default();
    if scheme != Scheme::File {
        opts.attributes =
            Attributes::from_iter([(Attribute::ContentType, "application/vnd.tcpdump.pcap")]);
    }
    opts
}
