//! Test harness: a fresh database (SQLite file or PostgreSQL database) per test, an account
//! with tokens, the API in process, fake nodes attached straight to the hub, and a real
//! listening server for the WebSocket tests.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use edgecap_model::{AccountLimits, ServerMsg};
use edgecap_server::db::accounts::{self, Account};
use edgecap_server::db::nodes::NodeInfo;
use edgecap_server::db::tokens::{self, Kind};
use edgecap_server::hub::Session;
use edgecap_server::{AppState, Config};
use edgecap_testkit::pg;
use http_body_util::BodyExt;
use serde_json::Value;
use tokio::sync::mpsc::Receiver;
use tower::ServiceExt;

/// Runs each listed test function once per database.
#[macro_export]
macro_rules! both_databases {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Backend::Postgres).await
                }
            )*
        }
    };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A directory removed at drop.
#[derive(Debug)]
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(what: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "edgecap-{what}-{}-{}",
            std::process::id(),
            edgecap_server::secret::new_id()
        ));
        std::fs::create_dir_all(&p).expect("temp dir");
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A fresh database URL; None when the backend is not available (PostgreSQL outside CI).
pub async fn database(b: Backend, tmp: &TempDir) -> Option<String> {
    match b {
        Backend::Sqlite => Some(format!("sqlite://{}/edgecap.db", tmp.0.display())),
        Backend::Postgres => Some(pg::server()?.database().await),
    }
}

/// The tests' `file://` destinations live in temporary directories: the operator's root is
/// the temporary directory (`--file-root`).
pub fn test_file_roots() -> edgecap_store::FileRoots {
    edgecap_store::FileRoots::from_flags(
        &[std::env::temp_dir().display().to_string()],
        "--file-root",
    )
    .unwrap()
}

/// Timings short enough for tests.
pub fn test_config() -> Config {
    Config {
        grace: Duration::from_secs(1),
        result_margin: Duration::from_secs(2),
        progress_flush: Duration::from_millis(200),
        sweep: Duration::from_millis(200),
        // The tests' stores (moto, Azurite) speak plain http on loopback.
        endpoints: edgecap_store::EndpointPolicy::from_flags(&["127.0.0.1".into()], "test")
            .unwrap()
            .with_file_roots(test_file_roots()),
        ..Config::default()
    }
}

#[derive(Debug)]
pub struct Harness {
    pub state: AppState,
    pub backend: Backend,
    pub db_url: String,
    pub account: Account,
    pub token: String,
    pub other: Account,
    pub other_token: String,
    pub agent_token: String,
    /// A directory for `file://` destinations.
    pub dest: PathBuf,
    pub _tmp: TempDir,
}

impl Harness {
    pub async fn new(b: Backend) -> Option<Harness> {
        Harness::with_config(b, test_config()).await
    }

    pub async fn with_config(b: Backend, config: Config) -> Option<Harness> {
        // EDGECAP_TEST_LOG=debug shows the server's logs for a failing test.
        if let Ok(filter) = std::env::var("EDGECAP_TEST_LOG") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
                .with_test_writer()
                .try_init();
        }
        let tmp = TempDir::new("server-test");
        let db_url = database(b, &tmp).await?;
        let mut config = config;
        if config.secrets_key.is_none() {
            config.secrets_key = Some(tmp.0.join("secrets.key"));
        }
        let state = AppState::open(&db_url, config).await.expect("open state");
        let (acme, token) = account(&state, "acme", AccountLimits::default()).await;
        let (other, other_token) = account(&state, "other", AccountLimits::default()).await;
        let (_, agent_token) = tokens::create(&state.db, Kind::Agent, None, "agents")
            .await
            .expect("agent token");
        let dest = tmp.0.join("captures");
        std::fs::create_dir_all(&dest).expect("dest dir");
        Some(Harness {
            state,
            backend: b,
            db_url,
            account: acme,
            token,
            other,
            other_token,
            agent_token,
            dest,
            _tmp: tmp,
        })
    }

    /// `/client/v4/accounts/<our account>/<rest>`.
    pub fn acc(&self, rest: &str) -> String {
        format!("/client/v4/accounts/{}/{rest}", self.account.id)
    }

    pub fn file_dest(&self) -> String {
        format!("file://{}", self.dest.display())
    }

    /// One request through the router, with our API token.
    pub async fn call(&self, method: &str, path: &str, body: Option<&str>) -> (StatusCode, Value) {
        self.call_as(Some(&self.token.clone()), method, path, body)
            .await
    }

    pub async fn call_as(
        &self,
        token: Option<&str>,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> (StatusCode, Value) {
        call(&self.state, token, method, path, body).await
    }

    /// A node attached to the hub without a socket (its messages arrive on `rx`); its agent
    /// announces the tenant boundary, as current agents do.
    pub fn node(&self, name: &str, labels: &[(&str, &str)], points: &[&str]) -> FakeNode {
        self.node_with_features(
            name,
            labels,
            points,
            &[edgecap_model::protocol::FEATURE_BOUNDARY],
        )
    }

    /// [`Harness::node`] announcing `features` (none: an agent from before tenancy).
    pub fn node_with_features(
        &self,
        name: &str,
        labels: &[(&str, &str)],
        points: &[&str],
        features: &[&str],
    ) -> FakeNode {
        let info = NodeInfo {
            name: name.to_owned(),
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>(),
            points: points.iter().map(|p| (*p).to_owned()).collect(),
            version: "test".into(),
            features: features.iter().map(|f| (*f).to_owned()).collect(),
        };
        node_on(&self.state, info)
    }

    /// A valid create body for `colo`, writing to our destination.
    pub fn create_body(&self, colo: &str, extra: Value) -> String {
        let mut b = serde_json::json!({
            "type": "full", "system": "magic-transit", "time_limit": 60,
            "colo_name": colo, "destination_conf": self.file_dest(),
            "filter_v1": {"protocol": 17, "destination_port": 53}
        });
        if let (Some(b), Some(extra)) = (b.as_object_mut(), extra.as_object()) {
            for (k, v) in extra {
                if v.is_null() {
                    b.remove(k);
                } else {
                    b.insert(k.clone(), v.clone());
                }
            }
        }
        b.to_string()
    }

    /// Creates a capture; its id.
    pub async fn create(&self, colo: &str, extra: Value) -> String {
        let (s, v) = self
            .call(
                "POST",
                &self.acc("pcaps"),
                Some(&self.create_body(colo, extra)),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v["result"]["id"].as_str().expect("id").to_owned()
    }

    /// The capture as GET shows it, after queued state changes are written.
    pub async fn capture(&self, id: &str) -> Value {
        self.state.hub.barrier().await;
        let (s, v) = self
            .call("GET", &self.acc(&format!("pcaps/{id}")), None)
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v["result"].clone()
    }

    /// Polls the capture until `done` says so, for at most `within`.
    pub async fn wait_for(
        &self,
        id: &str,
        within: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let until = tokio::time::Instant::now() + within;
        loop {
            let c = self.capture(id).await;
            if done(&c) || tokio::time::Instant::now() > until {
                return c;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn count(&self, table: &str) -> i64 {
        count(&self.state, table).await
    }

    /// Every byte the database keeps: the SQLite file with its WAL and shared memory, or
    /// PostgreSQL's `pg_dump`, after queued state changes are written.
    pub async fn database_bytes(&self) -> Vec<u8> {
        self.state.hub.barrier().await;
        match self.backend {
            Backend::Sqlite => {
                let mut all = Vec::new();
                for f in ["edgecap.db", "edgecap.db-wal", "edgecap.db-shm"] {
                    if let Ok(b) = std::fs::read(self._tmp.0.join(f)) {
                        all.extend_from_slice(&b);
                    }
                }
                assert!(
                    !all.is_empty(),
                    "no SQLite files in {}",
                    self._tmp.0.display()
                );
                all
            }
            Backend::Postgres => pg::server().expect("PostgreSQL").dump(&self.db_url),
        }
    }
}

/// An account with an API token (default scopes). Unrestricted, as every account of these
/// tests is unless it says otherwise ([`restricted_account`]).
pub async fn account(state: &AppState, name: &str, limits: AccountLimits) -> (Account, String) {
    let a = accounts::create(&state.db, name, &limits)
        .await
        .expect("account");
    let (_, secret) = tokens::create(&state.db, Kind::Api, Some(&a.id), "test")
        .await
        .expect("token");
    (a, secret)
}

pub async fn count(state: &AppState, table: &str) -> i64 {
    let db = state.db.clone();
    edgecap_server::db::count_rows(&db, table)
        .await
        .expect("count")
}

pub async fn call(
    state: &AppState,
    token: Option<&str>,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    if body.is_some() {
        req = req.header("content-type", "application/json");
    }
    let mut req = req
        .body(Body::from(body.unwrap_or_default().to_owned()))
        .expect("request");
    // In process, as a plain-HTTP client on loopback would arrive through `run`'s listener.
    let peer = std::net::SocketAddr::from(([127, 0, 0, 1], 40000));
    req.extensions_mut()
        .insert(axum::extract::ConnectInfo(peer));
    req.extensions_mut()
        .insert(edgecap_server::serve::Link { peer, tls: false });
    let resp = edgecap_server::app(state.clone())
        .oneshot(req)
        .await
        .expect("infallible");
    let status = resp.status();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    let v = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, v)
}

/// A node attached in process to `state`'s hub (a replica of the harness's on PostgreSQL).
pub fn node_on(state: &AppState, info: NodeInfo) -> FakeNode {
    let (session, rx) = state.hub.connect(info).expect("connect fake node");
    FakeNode { session, rx }
}

/// What a test node says in its hello: `name`, `labels`, `points`, the tenant boundary.
pub fn node_info(name: &str, labels: &[(&str, &str)], points: &[&str]) -> NodeInfo {
    NodeInfo {
        name: name.to_owned(),
        labels: labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<BTreeMap<_, _>>(),
        points: points.iter().map(|p| (*p).to_owned()).collect(),
        version: "test".into(),
        features: vec![edgecap_model::protocol::FEATURE_BOUNDARY.into()],
    }
}

/// A node attached to the hub in process.
#[derive(Debug)]
pub struct FakeNode {
    pub session: Session,
    pub rx: Receiver<ServerMsg>,
}

impl FakeNode {
    /// The next message sent to this node, within a second.
    pub async fn next(&mut self) -> ServerMsg {
        tokio::time::timeout(Duration::from_secs(1), self.rx.recv())
            .await
            .expect("a message within a second")
            .expect("hub open")
    }

    /// Nothing was sent to this node.
    pub fn assert_idle(&mut self) {
        if let Ok(m) = self.rx.try_recv() {
            panic!("{} was sent {m:?}", self.session.name());
        }
    }
}

/// Asserts a 4xx envelope whose errors name `field` (pointer `/field`) with `code`.
pub fn assert_field_error(status: StatusCode, v: &Value, code: u64, pointer: &str) {
    assert!(status.is_client_error(), "{status} {v}");
    assert_eq!(v["success"], false, "{v}");
    assert!(v["result"].is_null(), "{v}");
    let errs = v["errors"].as_array().expect("errors");
    assert!(
        errs.iter()
            .any(|e| e["code"] == code && e["source"]["pointer"] == pointer),
        "no error {code} at {pointer}: {v}"
    );
}

/// Asserts a 4xx envelope with an error of `code` whose message contains `text`.
pub fn assert_error(status: StatusCode, expect: StatusCode, v: &Value, code: u64, text: &str) {
    assert_eq!(status, expect, "{v}");
    assert_eq!(v["success"], false, "{v}");
    assert!(v["result"].is_null(), "{v}");
    assert!(v["messages"].is_array(), "{v}");
    let errs = v["errors"].as_array().expect("errors");
    assert!(
        errs.iter()
            .any(|e| e["code"] == code && e["message"].as_str().unwrap_or("").contains(text)),
        "no error {code} containing {text:?}: {v}"
    );
}

/// A restricted account (`edgecap_server::tenancy`) with `prefixes` and node set `nodes`,
/// and an API token with the default scopes.
pub async fn restricted_account(
    state: &AppState,
    name: &str,
    prefixes: &[&str],
    nodes: &[&str],
) -> (Account, String) {
    let tenancy = edgecap_server::tenancy::Tenancy::new(false, prefixes, nodes).expect("tenancy");
    let a = accounts::create_with_tenancy(&state.db, name, &AccountLimits::default(), &tenancy)
        .await
        .expect("account");
    let (_, secret) = tokens::create(&state.db, Kind::Api, Some(&a.id), "test")
        .await
        .expect("token");
    (a, secret)
}

/// An API token of `account` with exactly `scopes` (the operator's `edgecap admin token
/// create --scopes`).
pub async fn token_with_scopes(
    state: &AppState,
    account: &str,
    scopes: &[edgecap_server::auth::Scope],
) -> String {
    let limits = tokens::Limits {
        scopes: Some(scopes.to_vec()),
        expires_on: None,
        max_uses: None,
    };
    tokens::create_limited(&state.db, Kind::Api, Some(account), "test", &limits)
        .await
        .expect("token")
        .1
}

/// Runs `tests/api/<script>` with `python` and `env` off the runtime's threads, asserts that
/// it succeeded (else its output in the failure, `what` naming it), and returns the JSON of
/// its last line of output: what the script saw, for the test to check.
pub async fn run_python(
    python: String,
    script: &str,
    env: Vec<(&'static str, String)>,
    what: &str,
) -> Value {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/api")
        .join(script);
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python)
            .arg(script)
            .envs(env)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{what} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap()
}
