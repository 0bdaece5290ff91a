//! Where a node's file goes. The capture loop writes into a [`NodeFile`], an `io::Write` that
//! is only real once [`NodeFile::finish`] succeeds; dropping it unfinished discards what was
//! written, so a failed capture never leaves a file that looks whole. In a directory the file
//! is written as `<key>.partial` and renamed at the end, so even an agent killed mid-capture
//! (no destructor runs) leaves nothing at the key itself.
//!
//! [`Sink`] opens one per capture from the assignment's `destination_conf`. Today that is a
//! local directory (`file:///dir`, laid out `<dir>/<capture_id>/<node>.pcapng`); a bucket sink
//! (an upload behind `io::Write`) is another `Sink` variant returning its own `NodeFile`, and
//! the capture loop does not change.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use edgecap_capture::FileSpool;
use edgecap_store::{Destination, Scheme};

/// One node's file of one capture, being written.
pub trait NodeFile: Write + Send {
    /// True when the file buffers whole blocks itself, so the engine keeps only a small buffer.
    fn buffers(&self) -> bool;
    /// Completes the file; only after `Ok` does it exist, whole, at its key.
    fn finish(self: Box<Self>) -> io::Result<()>;
}

/// A place files are created in, from a `destination_conf`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sink {
    /// A directory on this node.
    Dir(PathBuf),
}

impl Sink {
    /// The sink of `conf`; errors name `destination_conf`.
    pub fn from_conf(conf: &str) -> Result<Sink, String> {
        let dest = Destination::parse(conf, "destination_conf").map_err(|e| e.to_string())?;
        match (dest.scheme, dest.dir) {
            (Scheme::File, Some(dir)) => Ok(Sink::Dir(dir)),
            (scheme, _) => Err(format!(
                "destination_conf: this agent does not upload to {}:// buckets yet",
                scheme.as_str()
            )),
        }
    }

    /// Creates the file at `key` (`<capture_id>/<node>.<format>`, see
    /// [`edgecap_store::layout::node_file`]).
    pub fn create(&self, key: &str, node: &str) -> Result<Box<dyn NodeFile>, String> {
        match self {
            Sink::Dir(dir) => Ok(Box::new(DirFile::create(dir, key, node)?)),
        }
    }
}

/// A file in a local directory, written through the engine's spool (its own writer thread,
/// `O_DIRECT` where the file system allows).
struct DirFile {
    /// None once finished.
    spool: Option<FileSpool>,
    /// Where it is written: `<key>.partial`.
    partial: PathBuf,
    /// Where it goes when whole.
    path: PathBuf,
}

impl DirFile {
    fn create(dir: &Path, key: &str, node: &str) -> Result<DirFile, String> {
        // The base directory must exist on the node: creating it would turn a typo into
        // files somewhere unexpected.
        if !dir.is_dir() {
            return Err(format!(
                "destination_conf: {} is not a directory on node {node}",
                dir.display()
            ));
        }
        let path = dir.join(key);
        let cannot = |what: &str, p: &Path, e: io::Error| {
            format!("destination_conf: cannot {what} {}: {e}", p.display())
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| cannot("create", parent, e))?;
        }
        let mut partial = path.clone().into_os_string();
        partial.push(".partial");
        let partial = PathBuf::from(partial);
        match FileSpool::create(&partial).map_err(|e| cannot("write", &partial, e))? {
            Some((spool, _)) => Ok(DirFile {
                spool: Some(spool),
                partial,
                path,
            }),
            None => Err(format!(
                "destination_conf: {} exists and is not a regular file",
                partial.display()
            )),
        }
    }

    fn spool(&mut self) -> io::Result<&mut FileSpool> {
        self.spool
            .as_mut()
            .ok_or_else(|| io::Error::other("the file is already finished"))
    }
}

impl Write for DirFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.spool()?.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.spool()?.flush()
    }
}

impl NodeFile for DirFile {
    fn buffers(&self) -> bool {
        true
    }

    fn finish(mut self: Box<Self>) -> io::Result<()> {
        let spool = self
            .spool
            .take()
            .ok_or_else(|| io::Error::other("the file is already finished"))?;
        let done = spool
            .finish()
            .and_then(|()| std::fs::rename(&self.partial, &self.path));
        if done.is_err() {
            // Some bytes never reached the disk: the file is not whole, so it goes.
            let _ = std::fs::remove_file(&self.partial);
        }
        done
    }
}

impl Drop for DirFile {
    fn drop(&mut self) {
        if let Some(spool) = self.spool.take() {
            drop(spool);
            let _ = std::fs::remove_file(&self.partial);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("edgecap-agent-output-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn finished_files_stay_and_unfinished_ones_go() {
        let dir = scratch("finish");
        let sink = Sink::from_conf(&format!("file://{}", dir.display())).unwrap();
        let mut f = sink.create("abc/edge0.pcapng", "edge0").unwrap();
        assert!(f.buffers());
        f.write_all(b"hello").unwrap();
        f.flush().unwrap();
        assert!(
            !dir.join("abc/edge0.pcapng").exists(),
            "not at its key until whole"
        );
        assert!(dir.join("abc/edge0.pcapng.partial").exists());
        f.finish().unwrap();
        assert!(!dir.join("abc/edge0.pcapng.partial").exists());
        assert_eq!(
            std::fs::read(dir.join("abc/edge0.pcapng")).unwrap(),
            b"hello"
        );
        let mut g = sink.create("abc/edge1.pcapng", "edge1").unwrap();
        g.write_all(b"half").unwrap();
        drop(g);
        assert!(!dir.join("abc/edge1.pcapng").exists());
        assert!(!dir.join("abc/edge1.pcapng.partial").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_missing_base_directory_is_refused() {
        let sink = Sink::from_conf("file:///nonexistent/edgecap-test-dir").unwrap();
        let e = sink.create("abc/edge0.pcapng", "edge0").err().unwrap();
        assert_eq!(
            e,
            "destination_conf: /nonexistent/edgecap-test-dir is not a directory on node edge0"
        );
        assert!(
            Sink::from_conf("s3://bucket")
                .unwrap_err()
                .starts_with("destination_conf: s3:// needs ?region=")
        );
    }
}
