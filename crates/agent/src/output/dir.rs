//! A node's file in a local directory (`file:///dir`), written through the engine's spool
//! (its own writer thread, `O_DIRECT` where the file system allows) as `<key>.partial` and
//! renamed when whole: a file at the key is always complete, and an agent killed mid-capture
//! (no destructor runs) leaves only the `.partial`.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use edgecap_capture::FileSpool;

use super::{Delivered, NodeFile};
use crate::error::OutputError;

/// A file in a local directory.
pub(super) struct DirFile {
    /// None once finished.
    spool: Option<FileSpool>,
    /// Where it is written: `<key>.partial`.
    partial: PathBuf,
    /// Where it goes when whole.
    path: PathBuf,
}

impl DirFile {
    pub(super) fn create(dir: &Path, key: &str, node: &str) -> Result<DirFile, OutputError> {
        if !dir.is_dir() {
            return Err(OutputError::NotADirectory {
                dir: dir.to_owned(),
                node: node.to_owned(),
            });
        }
        let path = dir.join(key);
        let cannot = |what: &'static str, p: &Path, source: io::Error| OutputError::Open {
            what,
            path: p.to_owned(),
            source,
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
            None => Err(OutputError::NotARegularFile(partial)),
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

    fn finish(mut self: Box<Self>) -> Result<Delivered, OutputError> {
        let spool = self
            .spool
            .take()
            .ok_or(OutputError::AlreadyFinished("file"))?;
        let done = spool
            .finish()
            .and_then(|()| std::fs::rename(&self.partial, &self.path))
            .and_then(|()| std::fs::metadata(&self.path));
        match done {
            Ok(meta) => Ok(Delivered {
                bytes: meta.len(),
                ..Delivered::default()
            }),
            Err(source) => {
                // Some bytes never reached the disk: the file is not whole, so it goes.
                let _ = std::fs::remove_file(&self.partial);
                Err(OutputError::Write {
                    path: self.path.clone(),
                    source,
                })
            }
        }
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
        let mut f: Box<dyn NodeFile> =
            Box::new(DirFile::create(&dir, "abc/edge0.pcapng", "edge0").unwrap());
        assert!(f.buffers());
        f.write_all(b"hello").unwrap();
        f.flush().unwrap();
        assert!(
            !dir.join("abc/edge0.pcapng").exists(),
            "not at its key until whole"
        );
        assert!(dir.join("abc/edge0.pcapng.partial").exists());
        assert_eq!(f.finish().unwrap().bytes, 5);
        assert!(!dir.join("abc/edge0.pcapng.partial").exists());
        assert_eq!(
            std::fs::read(dir.join("abc/edge0.pcapng")).unwrap(),
            b"hello"
        );
        let mut g = DirFile::create(&dir, "abc/edge1.pcapng", "edge1").unwrap();
        g.write_all(b"half").unwrap();
        drop(g);
        assert!(!dir.join("abc/edge1.pcapng").exists());
        assert!(!dir.join("abc/edge1.pcapng.partial").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
