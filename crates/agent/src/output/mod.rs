//! Where a node's file goes. The capture loop writes into a [`NodeFile`], an `io::Write` that
//! is only real once [`NodeFile::finish`] succeeds; dropping it unfinished discards what was
//! written, so a failed capture never leaves a file that looks whole.
//!
//! [`Sink`] is opened once per capture from the assignment's `destination_conf` (and its
//! credentials, if the server handed any):
//!
//! - `dir`: a local directory (`file:///dir`): `<key>.partial` written through the engine's
//!   spool and renamed when whole, so even an agent killed mid-capture leaves nothing at the
//!   key itself;
//! - `bucket`: an object store (S3, R2, GCS, Azure): an `edgecap_store::UploadSink` started
//!   (and checked: the store reachable, the bucket there, writes allowed) before the capture
//!   installs anything, fed while the capture runs, completed only when the capture ended
//!   well. Nothing of it touches the agent's disk.
//!
//! Either way the layout is `edgecap_store::layout`'s: `<dir>/<capture_id>/<node>.pcapng` and,
//! written after it, `<node>.json`, the manifest ([`Sink::put_manifest`]).

mod bucket;
mod dir;

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use edgecap_model::SecretJson;
use edgecap_store::manifest::Manifest;
use edgecap_store::{Credentials, Destination, Scheme, Store, StoreOptions, UploadOptions};

use crate::error::OutputError;

/// One node's file of one capture, being written.
pub trait NodeFile: Write + Send {
    /// True when the file buffers whole blocks itself, so the engine keeps only a small buffer.
    fn buffers(&self) -> bool;
    /// For an upload: a handle that sees it fail between writes (a quiet capture writes
    /// nothing for a long time), so the capture can stop at once.
    fn watch(&self) -> Option<edgecap_store::UploadWatch> {
        None
    }
    /// Completes the file; only after `Ok` does it exist, whole, at its key. An error says
    /// what reached the destination and that the file is not there.
    fn finish(self: Box<Self>) -> Result<Delivered, OutputError>;
}

/// What a completed file is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delivered {
    /// Bytes of the file at its key.
    pub bytes: u64,
    /// Multipart parts (0 for a directory).
    pub parts: u64,
    /// Size of every part but the last (0 for a directory).
    pub chunk_size: u64,
}

/// How uploads ride out a slow or failing store (flags of `edgecap agent`).
#[derive(Debug, Clone)]
pub struct UploadSettings {
    /// Retries and timeouts of each request; `retry_timeout` is the longest outage one part
    /// rides out.
    pub store: StoreOptions,
    /// Parts buffered while the store is slow (each `chunk_size`, 5 MiB unless a byte limit
    /// asks for more): the memory an outage may fill.
    pub buffer_chunks: usize,
    /// Longest the capture waits for room in a full buffer before the upload fails.
    pub stall_timeout: Duration,
}

impl Default for UploadSettings {
    fn default() -> Self {
        let up = UploadOptions::default();
        UploadSettings {
            store: StoreOptions::default(),
            buffer_chunks: up.buffer_chunks,
            stall_timeout: up.stall_timeout,
        }
    }
}

impl UploadSettings {
    /// The upload options of one file of at most `bound` bytes.
    fn options(&self, bound: Option<u64>) -> UploadOptions {
        let mut o = UploadOptions::for_size(bound);
        o.buffer_chunks = self.buffer_chunks.max(1);
        o.concurrency = o.concurrency.min(o.buffer_chunks);
        o.stall_timeout = self.stall_timeout;
        o
    }
}

/// Where this capture's files go.
#[derive(Debug)]
pub enum Sink {
    /// A directory on this node, and the store over it (for the manifest).
    Dir(std::path::PathBuf, Store),
    /// A bucket.
    Bucket(Store),
}

impl Sink {
    /// The sink of `conf` with the credentials handed for this capture; errors name
    /// `destination_conf` (or `credentials`). No network traffic yet.
    pub fn open(
        conf: &str,
        credentials: Option<&SecretJson>,
        node: &str,
        settings: &UploadSettings,
    ) -> Result<Sink, OutputError> {
        const FIELD: &str = "destination_conf";
        let mut dest = Destination::parse(conf, FIELD)?;
        if let Some(c) = credentials {
            let creds = Credentials::from_json(c.expose(), "credentials")?;
            dest = dest.with_credentials(creds, "credentials")?;
        }
        if dest.scheme == Scheme::File {
            // The operator's roots first (`--file-root`): outside them, nothing about the
            // directory is looked at.
            settings.store.endpoints.check_endpoint(&dest, FIELD)?;
            let dir = dest.dir.clone().unwrap_or_default();
            // The base directory must exist on the node: creating it would turn a typo into
            // files somewhere unexpected.
            if !dir.is_dir() {
                return Err(OutputError::NotADirectory {
                    dir,
                    node: node.to_owned(),
                });
            }
            // Symlinks resolved and checked against the roots: the file goes where the store
            // checked, not where the written path may lead later.
            let store = Store::open(&dest, &settings.store, FIELD)?;
            let dir = store.local_dir().map(|d| d.to_owned()).unwrap_or(dir);
            return Ok(Sink::Dir(dir, store));
        }
        let store = Store::open(&dest, &settings.store, FIELD)?;
        Ok(Sink::Bucket(store))
    }

    /// Creates the file at `key` (`<capture_id>/<node>.<format>`, see
    /// [`edgecap_store::layout::node_file`]). For a bucket this starts the upload, after a
    /// check that makes the same requests: an unreachable store, a missing bucket or denied
    /// writes fail here, before the capture installs anything. `bound` is the most bytes the
    /// file can reach (it sizes the parts); `stop` is set if the upload fails mid-capture.
    pub fn create(
        &self,
        key: &str,
        node: &str,
        bound: Option<u64>,
        stop: Arc<AtomicBool>,
        settings: &UploadSettings,
    ) -> Result<Box<dyn NodeFile>, OutputError> {
        match self {
            Sink::Dir(dir, _) => Ok(Box::new(dir::DirFile::create(dir, key, node)?)),
            Sink::Bucket(store) => Ok(Box::new(bucket::UploadFile::start(
                store,
                key,
                &settings.options(bound),
                stop,
            )?)),
        }
    }

    /// Writes the manifest beside the file (`<capture_id>/<node>.json`).
    pub fn put_manifest(&self, key: &str, m: &Manifest) -> Result<(), OutputError> {
        let store = match self {
            Sink::Dir(_, s) | Sink::Bucket(s) => s,
        };
        // Capture threads are plain threads: one small request on a runtime of its own.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(OutputError::Runtime)?;
        Ok(rt.block_on(store.put_small(key, m.to_json()))?)
    }

    /// The destination's canonical URL, for messages.
    pub fn describe(&self, key: &str) -> String {
        match self {
            Sink::Dir(_, s) | Sink::Bucket(s) => s.describe_key(key),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roots(dirs: &[&std::path::Path]) -> UploadSettings {
        let v: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
        let mut settings = UploadSettings::default();
        settings.store.endpoints = settings
            .store
            .endpoints
            .with_file_roots(edgecap_store::FileRoots::from_flags(&v, "--file-root").unwrap());
        settings
    }

    fn open(conf: &str, creds: Option<serde_json::Value>) -> Result<Sink, String> {
        let creds = creds.map(SecretJson::new);
        let settings = roots(&[&std::env::temp_dir(), std::path::Path::new("/nonexistent")]);
        Sink::open(conf, creds.as_ref(), "edge0", &settings).map_err(|e| e.to_string())
    }

    #[test]
    fn file_destinations_stay_under_the_operators_roots() {
        let base = std::env::temp_dir().join(format!("edgecap-roots-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let root = base.join("root");
        let outside = base.join("outside");
        std::fs::create_dir_all(root.join("inside")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("link")).unwrap();
        let settings = roots(&[&root]);
        let open = |dir: &std::path::Path| {
            Sink::open(
                &format!("file://{}", dir.display()),
                None,
                "edge0",
                &settings,
            )
            .map_err(|e| e.to_string())
        };
        // Inside the root: the sink writes there.
        match open(&root.join("inside")).unwrap() {
            Sink::Dir(d, _) => assert_eq!(d, root.join("inside").canonicalize().unwrap()),
            s => panic!("{s:?}"),
        }
        // Outside it: refused before anything is looked at, naming the field and the roots.
        let e = open(&outside).unwrap_err();
        assert!(
            e.starts_with("destination_conf: ")
                && e.contains("is outside the directories the operator allows")
                && e.contains(&root.display().to_string()),
            "{e}"
        );
        // A link inside the root that leads outside it.
        let e = open(&root.join("link")).unwrap_err();
        assert!(e.contains("resolves to"), "{e}");
        // No root configured: every file destination is refused.
        let e = Sink::open(
            &format!("file://{}", root.display()),
            None,
            "edge0",
            &UploadSettings::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("no --file-root is configured"), "{e}");
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn what_cannot_be_written_is_refused_naming_the_field() {
        let e = open("file:///nonexistent/edgecap-test-dir", None).unwrap_err();
        assert_eq!(
            e,
            "destination_conf: /nonexistent/edgecap-test-dir is not a directory on node edge0"
        );
        let e = open("s3://bucket", None).unwrap_err();
        assert!(
            e.starts_with("destination_conf: s3:// needs ?region="),
            "{e}"
        );
        let azure = serde_json::json!({"azure_sas": "sv=1"});
        let e = open("s3://bucket?region=us-east-1", Some(azure)).unwrap_err();
        assert!(
            e.starts_with("credentials: Azure SAS credentials do not fit"),
            "{e}"
        );
        let keys = serde_json::json!({"access_key_id": "a", "secret_access_key": "b"});
        assert!(matches!(
            open("s3://bucket?region=us-east-1", Some(keys)),
            Ok(Sink::Bucket(_))
        ));
        let dir = std::env::temp_dir();
        let sink = open(&format!("file://{}", dir.display()), None).unwrap();
        assert!(matches!(sink, Sink::Dir(..)));
    }

    #[test]
    fn the_agent_applies_the_endpoint_policy() {
        let keys = serde_json::json!({"access_key_id": "a", "secret_access_key": "b"});
        // The default settings: only https to public addresses, with credentials given.
        let e = open(
            "s3://bucket?endpoint=http://169.254.169.254",
            Some(keys.clone()),
        )
        .unwrap_err();
        assert!(
            e.starts_with("destination_conf: endpoint \"http://169.254.169.254\" is refused")
                && e.contains("cloud metadata address"),
            "{e}"
        );
        let e = open(
            "s3://bucket?endpoint=http://127.0.0.1:9000",
            Some(keys.clone()),
        )
        .unwrap_err();
        assert!(e.contains("127.0.0.1 is a loopback address"), "{e}");
        let e = open("s3://bucket?endpoint=https://s3.example.com", None).unwrap_err();
        assert!(e.contains("needs credentials with the request"), "{e}");
        // What the operator allows (`--allow-endpoint 127.0.0.1:9000`).
        let mut settings = UploadSettings::default();
        settings.store.endpoints =
            edgecap_store::EndpointPolicy::from_flags(&["127.0.0.1:9000".into()], "f").unwrap();
        let creds = SecretJson::new(keys);
        let sink = Sink::open(
            "s3://bucket?endpoint=http://127.0.0.1:9000",
            Some(&creds),
            "edge0",
            &settings,
        );
        assert!(matches!(sink, Ok(Sink::Bucket(_))), "{sink:?}");
    }
}
