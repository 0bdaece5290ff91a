//! A throw-away PostgreSQL for this test binary: `initdb` and `pg_ctl` from
//! /usr/lib/postgresql/*/bin, on 127.0.0.1 at a free port, in a temporary directory. Started
//! once and shared by every test (one database each). As root the server runs as the
//! `postgres` user (PostgreSQL refuses root), with the directory chowned to it.
//!
//! Cleanup does not rely on destructors (statics are never dropped): a small shell watchdog
//! owns the server and waits on a pipe from this process; when the test binary exits, however
//! it exits, the pipe closes and the watchdog stops the server and removes the directory.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};

use crate::servers::free_port;

#[derive(Debug)]
pub struct Pg {
    pub port: u16,
    /// initdb, pg_ctl, createdb and pg_dump live here.
    pub bin: PathBuf,
    /// The watchdog; its stdin is the pipe that keeps the server alive.
    _watchdog: Mutex<Child>,
}

const WATCHDOG: &str = r#"
set -e
dir=$1 port=$2 bin=$3
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
as_pg "$bin/initdb" -D "$dir/data" -A trust -U postgres --no-sync -E UTF8 >"$dir/initdb.log" 2>&1
as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
  -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300" \
  start >/dev/null
echo ready
read -r _ || true
as_pg "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
rm -rf "$dir"
"#;

fn bin_dir() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|d| d.join("initdb").exists() && d.join("pg_ctl").exists())
        .collect();
    dirs.sort();
    dirs.pop()
}

fn start() -> Option<Pg> {
    let Some(bin) = bin_dir() else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "PostgreSQL's initdb is missing under /usr/lib/postgresql/*/bin (install postgresql)"
        );
        eprintln!("note: PostgreSQL not installed; skipping the PostgreSQL variant of this test");
        return None;
    };
    let dir = std::env::temp_dir().join(format!(
        "edgecap-pg-{}-{:016x}",
        std::process::id(),
        rand::random::<u64>()
    ));
    std::fs::create_dir_all(&dir).expect("pg temp dir");
    let root = std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(1)
        == 0;
    if root {
        let id = |flag: &str| -> u32 {
            let out = Command::new("id")
                .args([flag, "postgres"])
                .output()
                .expect("id");
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse()
                .expect("postgres user")
        };
        std::os::unix::fs::chown(&dir, Some(id("-u")), Some(id("-g"))).expect("chown pg dir");
    }
    let port = free_port();
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(WATCHDOG)
        .arg("pg-watchdog")
        .arg(&dir)
        .arg(port.to_string())
        .arg(&bin)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the PostgreSQL watchdog");
    let mut line = String::new();
    let stdout = child.stdout.take().expect("watchdog stdout");
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("watchdog output");
    assert_eq!(
        line.trim(),
        "ready",
        "PostgreSQL did not start; see {}/initdb.log and server.log",
        dir.display()
    );
    Some(Pg {
        port,
        bin,
        _watchdog: Mutex::new(child),
    })
}

/// The shared server, started on first use; None when PostgreSQL is not installed (outside CI).
pub fn server() -> Option<&'static Pg> {
    static PG: OnceLock<Option<Pg>> = OnceLock::new();
    PG.get_or_init(start).as_ref()
}

impl Pg {
    /// A new, empty database; its URL. (`createdb` rather than a client library: this crate
    /// stays free of database drivers.)
    pub async fn database(&self) -> String {
        self.create_database()
    }

    /// [`Pg::database`] for code without an async runtime.
    pub fn create_database(&self) -> String {
        let name = format!(
            "t_{:016x}{:016x}",
            rand::random::<u64>(),
            rand::random::<u64>()
        );
        let out = Command::new(self.bin.join("createdb"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                &name,
            ])
            .output()
            .expect("run createdb");
        assert!(
            out.status.success(),
            "createdb {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Everything the database at `url` holds, as `pg_dump` writes it (schema and rows).
    pub fn dump(&self, url: &str) -> Vec<u8> {
        let out = Command::new(self.bin.join("pg_dump"))
            .args(["--dbname", url])
            .output()
            .expect("run pg_dump");
        assert!(
            out.status.success(),
            "pg_dump {url}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }
}
