//! [`ObjectReader`]: a streaming GET as an [`io::Read`], for the merge and for checks. The
//! body is pulled by a task on the reader's own current-thread runtime and handed over a
//! bounded queue, so memory stays at a few network buffers whatever the object's size.

use std::io::{self, Read};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use bytes::{Buf, Bytes};
use futures_util::StreamExt;
use object_store::ObjectStoreExt;

use crate::error::StoreError;
use crate::store::{Store, explain};

/// Network buffers waiting for the reader, at most (each is what the HTTP client yields,
/// typically 8-64 KiB).
const QUEUE: usize = 16;

/// A streaming read of one object. Dropping it stops the download.
pub struct ObjectReader {
    rx: Receiver<Result<Bytes, String>>,
    cur: Bytes,
    done: bool,
    /// Bytes received so far, checked against `size` at the end.
    received: u64,
    key: String,
    size: u64,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for ObjectReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectReader")
            .field("key", &self.key)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl ObjectReader {
    /// Opens `rel` for reading; fails at once when it does not exist or cannot be read.
    /// Blocks the calling thread for the first response.
    pub fn open(store: &Store, rel: &str) -> Result<ObjectReader, StoreError> {
        let path = store.path(rel)?;
        let (tx, rx) = sync_channel::<Result<Bytes, String>>(QUEUE);
        let (ready_tx, ready_rx) = sync_channel::<Result<u64, StoreError>>(1);
        let (store2, rel2) = (store.clone(), rel.to_owned());
        let thread = std::thread::Builder::new()
            .name("edgecap-download".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(StoreError::Seal(format!(
                            "cannot start the download runtime: {e}"
                        ))));
                        return;
                    }
                };
                rt.block_on(pump(store2, rel2, path, tx, ready_tx));
            })
            .map_err(|e| StoreError::Seal(format!("cannot start the download thread: {e}")))?;
        match ready_rx.recv() {
            Ok(Ok(size)) => Ok(ObjectReader {
                rx,
                cur: Bytes::new(),
                done: false,
                received: 0,
                key: store.describe_key(rel),
                size,
                thread: Some(thread),
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => {
                let _ = thread.join();
                Err(StoreError::Seal(
                    "the download thread ended before the download started".to_owned(),
                ))
            }
        }
    }

    /// The object's size, from the response.
    pub fn size(&self) -> u64 {
        self.size
    }
}

async fn pump(
    store: Store,
    rel: String,
    path: object_store::path::Path,
    tx: SyncSender<Result<Bytes, String>>,
    ready: SyncSender<Result<u64, StoreError>>,
) {
    let got = match store.object_store().get(&path).await {
        Ok(g) => g,
        Err(e) => {
            let _ = ready.send(Err(store.request_error("read", &rel, &e)));
            return;
        }
    };
    let _ = ready.send(Ok(got.meta.size));
    let mut stream = got.into_stream();
    while let Some(item) = stream.next().await {
        let item = item.map_err(|e| explain(&e));
        let stop = item.is_err();
        // A blocking send: this thread runs nothing else, and it is what bounds memory. It
        // fails only when the reader was dropped.
        if tx.send(item).is_err() || stop {
            return;
        }
    }
}

impl Read for ObjectReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.cur.is_empty() {
            if self.done {
                return Ok(0);
            }
            match self.rx.recv() {
                Ok(Ok(b)) => {
                    self.received += b.len() as u64;
                    self.cur = b;
                }
                Ok(Err(why)) => {
                    self.done = true;
                    return Err(io::Error::other(format!("reading {}: {why}", self.key)));
                }
                Err(_) => {
                    self.done = true;
                    if self.received != self.size {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!(
                                "reading {}: the download ended after {} of {} bytes",
                                self.key, self.received, self.size
                            ),
                        ));
                    }
                }
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        self.cur.advance(n);
        Ok(n)
    }
}

impl Drop for ObjectReader {
    fn drop(&mut self) {
        // Closing the queue makes the pump's next send fail, which ends its thread.
        let (_, dead) = sync_channel(0);
        self.rx = dead;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
