//! Real servers for the tests, on 127.0.0.1 and free ports, stopped and removed on drop (also
//! when a test fails). A missing server program is a failure, not a skip: CI installs them
//! (.ci/run).

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Azurite's well-known development account and key (public, documented by Microsoft).
pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// A free TCP port on 127.0.0.1 (bound and released; the race with other tests is small and
/// a clash shows as a server that fails to start).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A server process; killed and reaped on drop.
#[derive(Debug)]
pub struct Server {
    child: Option<Child>,
    pub port: u16,
    what: &'static str,
    dir: Option<PathBuf>,
}

fn program(name: &str, candidates: &[&str]) -> Result<PathBuf, String> {
    for c in candidates {
        let p = PathBuf::from(c);
        if p.is_file() {
            return Ok(p);
        }
    }
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    match found {
        Some(p) if !p.is_empty() => Ok(PathBuf::from(p)),
        _ => Err(format!("{name} is not installed; .ci/run installs it")),
    }
}

impl Server {
    /// `moto_server` with every request allowed (no IAM checks).
    pub fn moto() -> Server {
        Self::moto_with_env(&[]).unwrap_or_else(|e| panic!("{e} (this test does not skip)"))
    }

    /// [`Server::moto`] for callers that report rather than panic (the benchmarks): Err says
    /// why it did not start.
    pub fn try_moto() -> Result<Server, String> {
        Self::moto_with_env(&[])
    }

    /// `moto_server` that checks credentials and IAM policies after the first `free`
    /// requests (which the test uses to create buckets, users and keys).
    pub fn moto_with_auth(free: u32) -> Server {
        Self::moto_with_env(&[("INITIAL_NO_AUTH_ACTION_COUNT", free.to_string())])
            .unwrap_or_else(|e| panic!("{e} (this test does not skip)"))
    }

    fn moto_with_env(env: &[(&str, String)]) -> Result<Server, String> {
        let exe = program("moto_server", &["/root/.pyenv/shims/moto_server"])?;
        let port = free_port();
        let mut cmd = Command::new(exe);
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .map_err(|e| format!("starting moto_server: {e}"))?;
        let mut s = Server {
            child: Some(child),
            port,
            what: "moto_server",
            dir: None,
        };
        s.wait_ready()?;
        Ok(s)
    }

    /// Azurite's blob service, in memory (nothing on disk), telemetry off.
    pub fn azurite() -> Server {
        let exe = program("azurite-blob", &[])
            .unwrap_or_else(|e| panic!("{e} (this test does not skip)"));
        let port = free_port();
        // Azurite writes a debug log and config next to its working directory; give it one
        // of its own.
        let dir = std::env::temp_dir().join(format!("edgecap-azurite-{port}"));
        std::fs::create_dir_all(&dir).unwrap();
        let child = Command::new(exe)
            .args([
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                &port.to_string(),
                "--skipApiVersionCheck",
                "--inMemoryPersistence",
                "--extentMemoryLimit",
                "512",
                "--disableTelemetry",
                "--silent",
            ])
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting azurite-blob");
        let mut s = Server {
            child: Some(child),
            port,
            what: "azurite-blob",
            dir: Some(dir),
        };
        s.wait_ready().unwrap_or_else(|e| panic!("{e}"));
        s
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(format!("{} exited before listening: {status}", self.what));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{} did not listen on port {} within 60 s",
                    self.what, self.port
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Kills the server now (an outage); the port stops answering.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        if let Some(d) = &self.dir {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// A temporary directory removed on drop.
#[derive(Debug)]
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "edgecap-store-{tag}-{}-{:x}",
            std::process::id(),
            rand_u64()
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    );
    h.finish()
}
