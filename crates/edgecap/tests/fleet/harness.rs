//! A fleet of real processes: a lab of edge namespaces, one `edgecap server` on a free
//! 127.0.0.1 port with SQLite in a temporary directory, and one `edgecap agent --netns <edge>`
//! per edge, all in the root namespace (so they reach the server) while their captures run in
//! the edges. Everything is removed when the [`Fleet`] is dropped, also while a failing test
//! unwinds: processes are killed first, then the lab's namespaces go, then the directory.
//! A failing test prints every process's log.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use edgecap_lab::packet::Packet;
use edgecap_lab::{Lab, LabSpec};
use serde_json::Value;

use crate::capture_common::{BIN, Scratch, edgecap_tables, wait_for};

/// The UDP port fleet test traffic goes to (the lab's pipeline leaves it alone).
pub const PORT: u16 = 5000;

/// A child process killed (SIGKILL) and reaped when dropped.
pub struct Proc {
    pub child: Option<Child>,
    pub log: PathBuf,
}

impl Proc {
    /// SIGTERM, then waits (up to `within`) for a clean exit; its exit status.
    pub fn terminate(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let mut c = self.child.take()?;
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        let start = Instant::now();
        while start.elapsed() < within {
            if let Ok(Some(st)) = c.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
        None
    }

    /// SIGKILL and reap now (a crash, as far as the rest of the fleet can tell).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// How the fleet is started (tests that lose nodes want a short grace period).
#[derive(Debug, Clone)]
pub struct ServerOpts {
    pub grace: &'static str,
    /// The server's database: None is SQLite in its data directory; else a URL
    /// (PostgreSQL).
    pub database: Option<String>,
    /// More flags for every agent (e.g. upload timeouts).
    pub agent_args: Vec<String>,
    /// `--allow-endpoint` of the server and every agent: by default 127.0.0.1, where the
    /// tests' stores (moto, Azurite) listen on plain http.
    pub allow_endpoints: Vec<String>,
    /// More flags for the server (e.g. `--max-captures-per-node`).
    pub server_args: Vec<String>,
}

impl Default for ServerOpts {
    fn default() -> Self {
        ServerOpts {
            grace: "8s",
            database: None,
            agent_args: Vec::new(),
            allow_endpoints: vec!["127.0.0.1".to_owned()],
            server_args: Vec::new(),
        }
    }
}

/// Fleet processes never look for cloud credentials or instance metadata beyond loopback:
/// a test's credentials come through the API, and a lookup that slips through goes to a
/// closed port on 127.0.0.1, never to 169.254.169.254.
fn isolate(cmd: &mut Command) {
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        if k.starts_with("AWS_") || k.starts_with("AZURE_") || k.starts_with("GOOGLE_") {
            cmd.env_remove(&k);
        }
    }
    cmd.env("AWS_METADATA_ENDPOINT", "http://127.0.0.1:9")
        .env("AWS_EC2_METADATA_DISABLED", "true");
}

/// Field order is drop order: processes, then the lab, then the files.
pub struct Fleet {
    pub agents: Vec<Proc>,
    pub server: Proc,
    pub lab: Lab,
    pub url: String,
    pub token: String,
    pub agent_token: String,
    pub account: String,
    /// `file://` destination directory.
    pub dest: PathBuf,
    /// The server's data directory (its SQLite database, WAL and secrets key).
    pub data: PathBuf,
    opts: ServerOpts,
    http: reqwest::blocking::Client,
    pub tmp: Scratch,
}

/// Runs `edgecap <args>` to completion and returns its stdout; panics (with stderr) if it fails.
pub fn edgecap(args: &[&str]) -> String {
    let out = Command::new(BIN).args(args).output().expect("run edgecap");
    assert!(
        out.status.success(),
        "edgecap {args:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// `--data-dir DIR` and, for PostgreSQL, `--database URL`: where server and admin find the
/// state.
pub fn db_args(data: &Path, opts: &ServerOpts) -> Vec<String> {
    let mut a = vec!["--data-dir".to_owned(), data.display().to_string()];
    if let Some(url) = &opts.database {
        a.extend(["--database".to_owned(), url.clone()]);
    }
    a
}

/// `edgecap admin <args>` on the database in `data` (PostgreSQL when `opts` says so); its
/// stdout.
pub fn admin_on(data: &Path, opts: &ServerOpts, args: &[&str]) -> String {
    let db = db_args(data, opts);
    let all: Vec<&str> = ["admin"]
        .into_iter()
        .chain(db.iter().map(String::as_str))
        .chain(args.iter().copied())
        .collect();
    edgecap(&all)
}

/// Starts `edgecap server` and returns it with the URL it printed.
pub fn start_server(
    tmp: &Path,
    data: &Path,
    listen: &str,
    opts: &ServerOpts,
    n: usize,
) -> (Proc, String) {
    let log = tmp.join(format!("server-{n}.log"));
    // Its temporary directory lies inside its data directory, so a search of one covers both.
    let tmpdir = data.join("tmp");
    std::fs::create_dir_all(&tmpdir).unwrap();
    let mut cmd = Command::new(BIN);
    isolate(&mut cmd);
    let mut child = cmd
        .env("TMPDIR", &tmpdir)
        .arg("server")
        .args(db_args(data, opts))
        .args(["--listen", listen, "--grace", opts.grace])
        .args(["--result-margin", "10s", "--heartbeat", "500ms"])
        .args(allow_args(opts))
        .args(&opts.server_args)
        // The fleet's `file://` destination directory is the operator's file root.
        .arg("--file-root")
        .arg(tmp.join("captures"))
        .env("EDGECAP_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).expect("server log"))
        .spawn()
        .expect("spawn edgecap server");
    let stdout = child.stdout.take().expect("server stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let proc = Proc {
        child: Some(child),
        log,
    };
    let line = rx
        .recv_timeout(Duration::from_secs(20))
        .unwrap_or_else(|_| {
            panic!(
                "no 'listening' line from the server; log: {}",
                read(&proc.log)
            )
        });
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no URL in {line:?}; log: {}", read(&proc.log)))
        .to_owned();
    (proc, url)
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

impl Fleet {
    /// A lab of `edges` edges, a server and an agent per edge, all connected.
    pub fn new(edges: usize, opts: ServerOpts) -> Fleet {
        let lab = Lab::new(&LabSpec::with_edges(edges)).expect("building the lab");
        let tmp = Scratch::new("fleet");
        let dest = tmp.path("captures");
        std::fs::create_dir_all(&dest).unwrap();
        let data = tmp.path("server-data");
        let admin = |args: &[&str]| admin_on(&data, &opts, args);
        // Unrestricted, as the accounts of the tests before tenancy (tenancy.rs makes its own).
        let account = admin(&["account", "create", "--name", "t", "--unrestricted"]);
        let token = admin(&["token", "create", "--account", &account]);
        let agent_token = admin(&["agent-token", "create"]);
        let (server, url) = start_server(&tmp.0, &data, "127.0.0.1:0", &opts, 0);
        let mut fleet = Fleet {
            agents: Vec::new(),
            server,
            lab,
            url,
            token,
            agent_token,
            account,
            dest,
            data,
            opts,
            http: {
                // reqwest may be built without a default TLS provider (see the client module).
                let _ = rustls::crypto::ring::default_provider().install_default();
                reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(30))
                    .build()
                    .unwrap()
            },
            tmp,
        };
        for i in 0..edges {
            let agent = fleet.start_agent(i);
            fleet.agents.push(agent);
        }
        fleet.wait_connected(edges);
        fleet
    }

    /// The agent of edge `i`'s own directories: its working directory and its TMPDIR (both
    /// empty at start; an agent that uploads must leave them so).
    pub fn agent_dirs(&self, i: usize) -> [PathBuf; 2] {
        [
            self.tmp.path(&format!("agent{i}-cwd")),
            self.tmp.path(&format!("agent{i}-tmp")),
        ]
    }

    pub fn start_agent(&self, i: usize) -> Proc {
        let log = self.tmp.path(&format!("agent{i}.log"));
        let [cwd, tmpdir] = self.agent_dirs(i);
        std::fs::create_dir_all(&cwd).unwrap();
        std::fs::create_dir_all(&tmpdir).unwrap();
        let mut cmd = Command::new(BIN);
        isolate(&mut cmd);
        let child = cmd
            .current_dir(&cwd)
            .env("TMPDIR", &tmpdir)
            .args(["agent", "--server", &self.url, "--token", &self.agent_token])
            .arg("--state-dir")
            .arg(self.agent_state_dir(i))
            .args(["--name", &format!("edge{i}"), "--label", "site=lab"])
            .args([
                "--label",
                &format!("rack=r{i}"),
                "--netns",
                self.lab.edge_ns(i),
            ])
            .args(&self.opts.agent_args)
            .args(allow_args(&self.opts))
            .arg("--file-root")
            .arg(&self.dest)
            .env("EDGECAP_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("agent log"))
            .spawn()
            .expect("spawn edgecap agent");
        Proc {
            child: Some(child),
            log,
        }
    }

    /// Kills the server (SIGKILL) and starts a new one on the same port and database.
    pub fn restart_server(&mut self, down_for: Duration) {
        self.server.kill();
        std::thread::sleep(down_for);
        let listen = self.url.trim_start_matches("http://").to_owned();
        let (server, url) = start_server(&self.tmp.0, &self.data, &listen, &self.opts, 1);
        assert_eq!(url, self.url);
        self.server = server;
    }

    /// Waits until `n` nodes are connected.
    pub fn wait_connected(&self, n: usize) {
        let ok = wait_for(Duration::from_secs(20), || {
            self.nodes()
                .iter()
                .filter(|n| n["connected"] == true)
                .count()
                == n
        });
        assert!(
            ok,
            "{n} nodes never connected: {:?}\n{}",
            self.nodes(),
            self.logs()
        );
    }

    fn acc(&self, rest: &str) -> String {
        format!("{}/client/v4/accounts/{}/{rest}", self.url, self.account)
    }

    /// One API call; the envelope.
    pub fn api(&self, method: reqwest::Method, rest: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, self.acc(rest))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().expect("API call");
        let status = resp.status().as_u16();
        (status, resp.json().expect("JSON envelope"))
    }

    pub fn nodes(&self) -> Vec<Value> {
        match self.api(reqwest::Method::GET, "nodes", None) {
            (200, v) => v["result"].as_array().cloned().unwrap_or_default(),
            _ => Vec::new(),
        }
    }

    /// Creates a capture of UDP to [`PORT`] on every lab node; its id.
    pub fn create(&self, extra: Value) -> String {
        let (s, v) = self.try_create(extra);
        assert_eq!(s, 200, "{v}");
        v["result"]["id"].as_str().unwrap().to_owned()
    }

    /// [`Fleet::create`] without the assertion: (status, envelope).
    pub fn try_create(&self, extra: Value) -> (u16, Value) {
        let mut body = serde_json::json!({
            "type": "full", "system": "magic-transit", "time_limit": 30,
            "nodes": ["site=lab"], "destination_conf": format!("file://{}", self.dest.display()),
            "filter_v1": {"protocol": 17, "destination_port": PORT},
        });
        for (k, v) in extra.as_object().cloned().unwrap_or_default() {
            body[k] = v;
        }
        self.api(reqwest::Method::POST, "pcaps", Some(body))
    }

    /// Every file left in the agent of edge `i`'s own directories.
    pub fn agent_local_files(&self, i: usize) -> Vec<PathBuf> {
        fn walk(d: &Path, out: &mut Vec<PathBuf>) {
            for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, out);
                } else {
                    out.push(p);
                }
            }
        }
        let mut out = Vec::new();
        for d in self.agent_dirs(i) {
            walk(&d, &mut out);
        }
        out
    }

    /// Files the agent of edge `i` has open now, other than its log, devices, sockets,
    /// pipes and namespaces: where it could be writing packets to disk.
    pub fn agent_open_files(&self, i: usize) -> Vec<String> {
        let Some(pid) = self.agents[i].child.as_ref().map(Child::id) else {
            return Vec::new();
        };
        let log = self.agents[i].log.display().to_string();
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| std::fs::read_link(e.path()).ok())
            .map(|p| p.display().to_string())
            .filter(|p| p.starts_with('/'))
            .filter(|p| *p != log && !p.starts_with("/dev/") && !p.starts_with("/run/netns/"))
            .filter(|p| !p.starts_with("/proc/"))
            .collect()
    }

    pub fn get(&self, id: &str) -> Value {
        let (s, v) = self.api(reqwest::Method::GET, &format!("pcaps/{id}"), None);
        assert_eq!(s, 200, "{v}");
        v["result"].clone()
    }

    pub fn stop(&self, id: &str) {
        let (s, v) = self.api(reqwest::Method::PUT, &format!("pcaps/{id}/stop"), None);
        assert_eq!(s, 200, "{v}");
    }

    /// Polls the capture until `done` holds (at most `within`); the last state seen.
    pub fn wait(&self, id: &str, within: Duration, done: impl Fn(&Value) -> bool) -> Value {
        let start = Instant::now();
        loop {
            let c = self.get(id);
            if done(&c) {
                return c;
            }
            assert!(
                start.elapsed() < within,
                "capture never reached the expected state within {within:?}: {c:#}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until the capture's rule is installed in every listed edge.
    pub fn wait_rules(&self, id: &str, edges: &[usize]) {
        let table = format!("edgecap_{id}");
        for &i in edges {
            let ns = self.lab.edge_ns(i);
            let ok = wait_for(Duration::from_secs(10), || {
                edgecap_tables(ns).contains(&table)
            });
            assert!(ok, "no rule in {ns} for {id}\n{}", self.logs());
        }
    }

    /// `count` UDP packets to [`PORT`] through edge `i`, markers `first..first+count`; and as
    /// many to another port, which no capture here asks for.
    pub fn send(&self, i: usize, first: u32, count: u32) {
        let mk = |marker: u32, port: u16| {
            Packet::udp(
                self.lab.src_addr(i, false),
                self.lab.origin_addr(i, false),
                40000,
                port,
            )
            .marker(marker)
            .build()
            .unwrap()
        };
        let mut packets = Vec::new();
        for m in first..first + count {
            packets.push(mk(m, PORT));
            packets.push(mk(m, PORT + 1));
        }
        self.lab.send(i, &packets).expect("send through the lab");
    }

    /// The file a node wrote for a capture.
    pub fn file(&self, id: &str, node: usize) -> PathBuf {
        self.dest.join(id).join(format!("edge{node}.pcapng"))
    }

    /// Every process's log, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for p in std::iter::once(&self.server).chain(&self.agents) {
            out.push_str(&format!("--- {} ---\n{}\n", p.log.display(), read(&p.log)));
        }
        out
    }

    /// The agent of edge `i`'s state directory (its node credential), kept across its
    /// restarts, outside the directories [`Fleet::agent_dirs`] checks.
    pub fn agent_state_dir(&self, i: usize) -> PathBuf {
        self.tmp.path(&format!("agent{i}-state"))
    }

    /// `edgecap admin <args>` on this fleet's database; its stdout.
    #[allow(dead_code)] // used by the hostile tests, which share this file
    pub fn admin(&self, args: &[&str]) -> String {
        admin_on(&self.data, &self.opts, args)
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
    }
}

/// `--allow-endpoint HOST[:PORT]` for each of `opts.allow_endpoints`.
pub fn allow_args(opts: &ServerOpts) -> Vec<String> {
    opts.allow_endpoints
        .iter()
        .flat_map(|a| ["--allow-endpoint".to_owned(), a.clone()])
        .collect()
}
