//! [`FileSpool`]: the capture file, written by a thread of its own, with `O_DIRECT` where the file
//! system allows it.
//!
//! Why: at hundreds of thousands of packets per second, writing through the page cache costs the
//! capture thread more than reading the packets does (a copy into the page cache plus block
//! allocation per page), and a write that stalls (writeback, a slow disk) stalls the reader while
//! the kernel drops packets. The spool fills fixed, page-aligned blocks in memory and hands full
//! ones over a bounded queue to a writer thread, which writes each with one positional
//! `O_DIRECT` write: the disk reads the block by DMA, no page-cache copy (Stenographer's approach).
//!
//! Memory is bounded: at most [`MAX_BLOCKS`] blocks of [`BLOCK`] bytes exist, allocated as the
//! writer falls behind. When all are queued the capture thread waits for one, and the kernel
//! counts what it drops meanwhile (NFLOG sequence gaps), so nothing is lost unseen.
//!
//! `flush` writes the partial block padded to the alignment and truncates the file to the real
//! length; the block stays in memory and is written again, whole, once full. A reader of the
//! file after `flush` or [`FileSpool::finish`] sees exactly the bytes written.

use std::fs::{File, OpenOptions};
use std::io::{self, IoSlice, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::thread::JoinHandle;

/// Bytes per block: one `O_DIRECT` write. 1 MiB blocks cost the capture thread less than 4 MiB
/// ones (fewer cache misses filling them) and still write at disk speed.
pub const BLOCK: usize = 1 << 20;
/// Most blocks in memory at once (64 MiB): with the kernel socket buffer, about 100 ms of
/// 1400-byte packets at 700 kpps.
pub const MAX_BLOCKS: usize = 64;
/// `O_DIRECT` alignment of buffers, offsets and lengths (the page size covers every logical
/// block size in use).
const ALIGN: usize = 4096;

/// A page-aligned buffer of [`BLOCK`] bytes inside an over-allocated `Vec` (a heap allocation
/// never moves, so the alignment survives moving the `Block` between threads).
struct Block {
    buf: Vec<u8>,
    start: usize,
}

impl Block {
    fn new() -> Self {
        let buf = vec![0u8; BLOCK + ALIGN];
        let start = buf.as_ptr().align_offset(ALIGN);
        Block { buf, start }
    }

    fn bytes(&self) -> &[u8] {
        &self.buf[self.start..self.start + BLOCK]
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..self.start + BLOCK]
    }
}

enum Job {
    /// A full block: write it at the current offset and advance.
    Full(Block),
    /// The partial last block (`len` bytes): write it without advancing, then hand it back.
    Tail(Block, usize, SyncSender<(Block, io::Result<()>)>),
}

/// The output file as the capture thread sees it: an `io::Write` that never makes a system call
/// on the packet path. Call [`FileSpool::finish`] at the end to learn whether every byte reached
/// the file.
pub struct FileSpool {
    /// The block being filled; `None` until the first write and while it is with the writer.
    cur: Option<Block>,
    /// Bytes of `cur` in use.
    len: usize,
    jobs: Option<SyncSender<Job>>,
    /// Blocks the writer has finished with.
    free: Receiver<Block>,
    /// Blocks allocated so far (at most [`MAX_BLOCKS`]).
    blocks: usize,
    worker: Option<JoinHandle<io::Result<()>>>,
    /// The writer's error, once it has failed: every later call repeats it.
    failed: Option<(io::ErrorKind, String)>,
    direct: bool,
    path: PathBuf,
}

impl std::fmt::Debug for FileSpool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileSpool")
            .field("path", &self.path)
            .field("direct", &self.direct)
            .field("blocks", &self.blocks)
            .field("buffered", &self.len)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

impl FileSpool {
    /// Creates (or truncates) `path`. Returns `Ok(None)` when `path` is not a regular file (a
    /// FIFO, a character device such as `/dev/null`): those take plain sequential writes.
    pub fn create(path: &Path) -> io::Result<Option<(FileSpool, File)>> {
        let (file, direct) = match open(path, true) {
            Ok(f) => (f, true),
            // File systems without O_DIRECT (tmpfs, some FUSE) refuse it at open.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => (open(path, false)?, false),
            Err(e) => return Err(e),
        };
        if !file.metadata()?.file_type().is_file() {
            drop(file);
            return Ok(None);
        }
        // A second handle for the caller (e.g. to remove the file on error or stat it).
        let probe = file.try_clone()?;
        Ok(Some((FileSpool::start(file, path, direct)?, probe)))
    }

    fn start(file: File, path: &Path, direct: bool) -> io::Result<FileSpool> {
        let (jobs_tx, jobs_rx) = mpsc::sync_channel::<Job>(MAX_BLOCKS);
        let (free_tx, free_rx) = mpsc::channel::<Block>();
        let out = FileOut {
            file,
            path: path.to_owned(),
            direct,
            offset: 0,
        };
        let worker = std::thread::Builder::new()
            .name("edgecap-writer".into())
            .spawn(move || write_blocks(out, &jobs_rx, &free_tx))?;
        Ok(FileSpool {
            cur: None,
            len: 0,
            jobs: Some(jobs_tx),
            free: free_rx,
            blocks: 0,
            worker: Some(worker),
            failed: None,
            direct,
            path: path.to_owned(),
        })
    }

    /// Whether blocks go to the disk with `O_DIRECT` (false: through the page cache).
    pub fn is_direct(&self) -> bool {
        self.direct
    }

    /// Writes what is buffered, stops the writer thread and reports the first error it met.
    pub fn finish(mut self) -> io::Result<()> {
        self.flush()?;
        self.shutdown()
    }

    fn shutdown(&mut self) -> io::Result<()> {
        self.jobs = None;
        match self.worker.take().map(JoinHandle::join) {
            None | Some(Ok(Ok(()))) => Ok(()),
            Some(Ok(Err(e))) => Err(e),
            Some(Err(_)) => Err(io::Error::other("the file writer thread panicked")),
        }
    }

    fn check(&self) -> io::Result<()> {
        match &self.failed {
            Some((kind, msg)) => Err(io::Error::new(*kind, msg.clone())),
            None => Ok(()),
        }
    }

    /// The writer thread has gone: collect its error and refuse everything from now on.
    fn writer_gone(&mut self) -> io::Error {
        let e = match self.shutdown() {
            Err(e) => e,
            Ok(()) => io::Error::other("the file writer thread stopped"),
        };
        self.failed = Some((e.kind(), format!("writing {}: {e}", self.path.display())));
        self.check().err().unwrap_or(e)
    }

    /// The block to fill: the current one, a returned one, a new one while under the bound, or
    /// (the writer is [`MAX_BLOCKS`] behind) the next one it returns.
    fn block(&mut self) -> io::Result<&mut Block> {
        if self.cur.is_none() {
            let b = match self.free.try_recv() {
                Ok(b) => b,
                Err(_) if self.blocks < MAX_BLOCKS => {
                    self.blocks += 1;
                    Block::new()
                }
                Err(_) => match self.free.recv() {
                    Ok(b) => b,
                    Err(_) => return Err(self.writer_gone()),
                },
            };
            self.cur = Some(b);
            self.len = 0;
        }
        match self.cur.as_mut() {
            Some(b) => Ok(b),
            None => Err(io::Error::other("internal: no block")),
        }
    }

    fn put(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let len = self.len;
            let block = self.block()?;
            let n = (BLOCK - len).min(data.len());
            block.bytes_mut()[len..len + n].copy_from_slice(&data[..n]);
            self.len += n;
            data = &data[n..];
            if self.len == BLOCK {
                self.send_full()?;
            }
        }
        Ok(())
    }

    fn send_full(&mut self) -> io::Result<()> {
        let Some(b) = self.cur.take() else {
            return Ok(());
        };
        self.len = 0;
        let sent = self.jobs.as_ref().map(|j| j.send(Job::Full(b)));
        match sent {
            Some(Ok(())) => Ok(()),
            _ => Err(self.writer_gone()),
        }
    }
}

impl Write for FileSpool {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.check()?;
        self.put(buf)?;
        Ok(buf.len())
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.check()?;
        let mut n = 0;
        for b in bufs {
            self.put(b)?;
            n += b.len();
        }
        Ok(n)
    }

    /// Waits until every byte so far is in the file (the partial block padded, then the file
    /// truncated to the real length).
    fn flush(&mut self) -> io::Result<()> {
        self.check()?;
        if self.worker.is_none() {
            return Ok(());
        }
        let len = self.len;
        self.block()?;
        let Some(b) = self.cur.take() else {
            return Ok(());
        };
        let (ack_tx, ack_rx) = mpsc::sync_channel(1);
        let sent = self
            .jobs
            .as_ref()
            .map(|j| j.send(Job::Tail(b, len, ack_tx)));
        if !matches!(sent, Some(Ok(()))) {
            return Err(self.writer_gone());
        }
        match ack_rx.recv() {
            Ok((b, result)) => {
                self.cur = Some(b);
                self.len = len;
                result
            }
            Err(_) => Err(self.writer_gone()),
        }
    }
}

impl Drop for FileSpool {
    fn drop(&mut self) {
        // Best effort: whoever drops without `finish` does not want an error, but the bytes
        // should still reach the file.
        if self.worker.is_some() && self.failed.is_none() {
            let _ = self.flush();
        }
        let _ = self.shutdown();
    }
}

fn open(path: &Path, direct: bool) -> io::Result<File> {
    let mut o = OpenOptions::new();
    o.write(true).create(true).truncate(true);
    if direct {
        o.custom_flags(libc::O_DIRECT);
    }
    o.open(path)
}

/// The writer thread's side.
struct FileOut {
    file: File,
    path: PathBuf,
    direct: bool,
    /// File offset of the next full block (a multiple of [`BLOCK`]).
    offset: u64,
}

impl FileOut {
    fn write_at(&mut self, data: &[u8]) -> io::Result<()> {
        match self.file.write_all_at(data, self.offset) {
            // A file system may accept O_DIRECT at open and refuse it on write: carry on
            // through the page cache.
            Err(e) if self.direct && e.raw_os_error() == Some(libc::EINVAL) => {
                self.file = OpenOptions::new().write(true).open(&self.path)?;
                self.direct = false;
                self.file.write_all_at(data, self.offset)
            }
            r => r,
        }
    }

    fn tail(&mut self, b: &mut Block, len: usize) -> io::Result<()> {
        if self.direct {
            let padded = len.next_multiple_of(ALIGN);
            b.bytes_mut()[len..padded].fill(0);
            self.write_at(&b.bytes()[..padded])?;
        } else {
            self.write_at(&b.bytes()[..len])?;
        }
        // Cut the padding (and, after a shorter rewrite, nothing else: the tail only grows).
        self.file.set_len(self.offset + len as u64)
    }
}

fn write_blocks(mut out: FileOut, jobs: &Receiver<Job>, free: &Sender<Block>) -> io::Result<()> {
    for job in jobs {
        match job {
            Job::Full(b) => {
                out.write_at(b.bytes())?;
                out.offset += BLOCK as u64;
                let _ = free.send(b);
            }
            Job::Tail(mut b, len, ack) => {
                let result = out.tail(&mut b, len);
                let failed = result
                    .as_ref()
                    .err()
                    .map(|e| io::Error::new(e.kind(), e.to_string()));
                let _ = ack.send((b, result));
                if let Some(e) = failed {
                    return Err(e);
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "edgecap-spool-{}-{name}-{:x}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("out")
    }

    /// Deterministic, position-dependent bytes, so a misplaced or repeated block shows.
    fn pattern(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + i / 4093) as u8).collect()
    }

    #[test]
    fn the_file_holds_exactly_what_was_written_across_blocks_and_flushes() {
        let path = temp("blocks");
        let data = pattern(3 * BLOCK + 12_345);
        let (mut spool, _probe) = FileSpool::create(&path).unwrap().unwrap();
        // Uneven pieces, a flush in the middle of a block, a flush right after a full block,
        // and vectored writes.
        let (a, rest) = data.split_at(1_000_003);
        spool.write_all(a).unwrap();
        spool.flush().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), a, "after a mid-block flush");
        let (b, rest) = rest.split_at(BLOCK - a.len() + BLOCK);
        spool.write_all(b).unwrap();
        spool.flush().unwrap();
        assert_eq!(std::fs::read(&path).unwrap().len(), 2 * BLOCK);
        let (c, d) = rest.split_at(rest.len() / 2);
        let n = spool
            .write_vectored(&[IoSlice::new(c), IoSlice::new(d)])
            .unwrap();
        assert_eq!(n, c.len() + d.len());
        spool.finish().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), data);
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn dropping_without_finish_still_writes_everything() {
        let path = temp("drop");
        let data = pattern(BLOCK + 77);
        {
            let (mut spool, _probe) = FileSpool::create(&path).unwrap().unwrap();
            spool.write_all(&data).unwrap();
        }
        assert_eq!(std::fs::read(&path).unwrap(), data);
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn non_regular_files_are_left_to_plain_writes() {
        assert!(FileSpool::create(Path::new("/dev/null")).unwrap().is_none());
    }

    #[test]
    fn a_full_disk_is_reported_not_swallowed() {
        // A write error in the writer thread (here: the file was opened read-only) must reach
        // the caller.
        let path = temp("ro");
        std::fs::write(&path, b"").unwrap();
        let file = OpenOptions::new().read(true).open(&path).unwrap();
        let mut spool = FileSpool::start(file, &path, false).unwrap();
        spool.write_all(&pattern(BLOCK + 1)).unwrap_or(());
        let err = spool.finish().unwrap_err();
        assert!(err.to_string().contains("Bad file descriptor"), "{err}");
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }
}
