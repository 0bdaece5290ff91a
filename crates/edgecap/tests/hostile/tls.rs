//! Hostile input: the links. A real `edgecap server` with a certificate from a test CA
//! (`edgecap_testkit::TestPki`) and real agents: an agent given the wrong CA refuses the
//! server (a clear error in its log, no connection) and connects with the right one; the API
//! answers over HTTPS to a client with the CA and to no client without it; and a plain-HTTP
//! agent on another host (a lab namespace dialling the server over a veth address) is
//! refused by the agent itself, and by the server even when the agent insists.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use edgecap_lab::{Lab, LabSpec};
use edgecap_testkit::TestPki;
use serde_json::Value;

use crate::capture_common::{BIN, Scratch, root_or_skip, wait_for};
use crate::harness::{Proc, ServerOpts, admin_on, db_args};

/// Tokens of a fresh data directory: (account, API token, agent token).
fn provision(data: &Path) -> (String, String, String) {
    let admin = |args: &[&str]| admin_on(data, &ServerOpts::default(), args);
    let account = admin(&["account", "create", "--name", "tls", "--unrestricted"]);
    let token = admin(&["token", "create", "--account", &account]);
    let agent = admin(&["agent-token", "create"]);
    (account, token, agent)
}

/// `edgecap <args>` as a command, in namespace `ns` when given.
fn command(ns: Option<&str>, args: &[&str]) -> Command {
    let mut c = match ns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, BIN]);
            c
        }
        None => Command::new(BIN),
    };
    c.args(args).env("EDGECAP_LOG", "info").stdin(Stdio::null());
    c
}

/// Starts `edgecap server` (in `ns` when given) and returns it with the URL it printed.
fn server(
    tmp: &Scratch,
    data: &Path,
    ns: Option<&str>,
    listen: &str,
    extra: &[&str],
) -> (Proc, String) {
    let log = tmp.path(&format!("server-{}.log", rand::random::<u32>()));
    let mut args = vec!["server".to_owned()];
    args.extend(db_args(data, &ServerOpts::default()));
    args.extend(["--listen".to_owned(), listen.to_owned()]);
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut child = command(ns, &args)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("spawn edgecap server");
    let stdout = child.stdout.take().unwrap();
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
        .unwrap_or_else(|_| panic!("no 'listening' line; log: {}", read(&proc.log)));
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://") || w.starts_with("https://"))
        .unwrap_or_else(|| panic!("no URL in {line:?}; log: {}", read(&proc.log)))
        .to_owned();
    (proc, url)
}

/// Starts `edgecap agent` (in `ns` when given) logging into `tmp`.
fn agent(
    tmp: &Scratch,
    ns: Option<&str>,
    name: &str,
    url: &str,
    token: &str,
    extra: &[&str],
) -> Proc {
    let log = tmp.path(&format!("agent-{name}-{}.log", rand::random::<u32>()));
    let mut args = vec!["agent", "--server", url, "--token", token, "--name", name];
    args.extend_from_slice(extra);
    // Each agent keeps its node credential in the test's scratch directory, never in the
    // machine's /var/lib/edgecap.
    let child = command(ns, &args)
        .env("EDGECAP_STATE_DIR", tmp.path(&format!("state-{name}")))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("spawn edgecap agent");
    Proc {
        child: Some(child),
        log,
    }
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

/// An HTTPS client trusting only `ca`.
fn https_client(ca: &Path) -> reqwest::blocking::Client {
    let tls = edgecap_tls::client_config(Some(ca)).unwrap();
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .tls_backend_preconfigured((*tls).clone())
        .build()
        .unwrap()
}

fn nodes(http: &reqwest::blocking::Client, url: &str, account: &str, token: &str) -> Vec<Value> {
    let resp = http
        .get(format!("{url}/client/v4/accounts/{account}/nodes"))
        .bearer_auth(token)
        .send()
        .expect("GET nodes over HTTPS");
    assert_eq!(resp.status().as_u16(), 200);
    let v: Value = resp.json().unwrap();
    v["result"].as_array().cloned().unwrap_or_default()
}

fn connected(nodes: &[Value], name: &str) -> bool {
    nodes
        .iter()
        .any(|n| n["name"] == name && n["connected"] == true)
}

#[test]
fn agents_verify_the_server_certificate() {
    let tmp = Scratch::new("hostile-tls");
    let pki = TestPki::write(&tmp.path("pki"));
    let data = tmp.path("data");
    let (account, token, agent_token) = provision(&data);
    let cert = pki.cert.display().to_string();
    let key = pki.key.display().to_string();
    let (mut srv, url) = server(
        &tmp,
        &data,
        None,
        "127.0.0.1:0",
        &[
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
            "--heartbeat",
            "500ms",
        ],
    );
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");

    // The API over HTTPS, to a client that trusts the test CA.
    let http = https_client(&pki.ca);
    assert!(nodes(&http, &url, &account, &token).is_empty());
    // A client trusting another CA gets no answer at all; nor does plain HTTP on the port.
    let err = https_client(&pki.other_ca)
        .get(format!("{url}/client/v4/accounts"))
        .bearer_auth(&token)
        .send()
        .unwrap_err();
    assert!(err.is_connect() || err.is_request(), "{err:?}");
    let plain = url.replacen("https://", "http://", 1);
    // reqwest is built without a default TLS provider (see the client module).
    let _ = edgecap_tls::rustls::crypto::ring::default_provider().install_default();
    let answer = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
        .get(format!("{plain}/client/v4/accounts"))
        .bearer_auth(&token)
        .send();
    assert!(
        answer.as_ref().map(|r| r.status().is_success()).is_err(),
        "plain HTTP answered on the TLS port: {answer:?}"
    );
    // The CLI with --ca.
    let other = pki.other_ca.display().to_string();
    let ca = pki.ca.display().to_string();
    let ls = command(
        None,
        &["ls", "--server", &url, "--token", &token, "--ca", &ca],
    )
    .output()
    .unwrap();
    assert!(
        ls.status.success(),
        "edgecap ls --ca: {}",
        String::from_utf8_lossy(&ls.stderr)
    );
    let ls = command(
        None,
        &["ls", "--server", &url, "--token", &token, "--ca", &other],
    )
    .output()
    .unwrap();
    assert!(
        !ls.status.success(),
        "edgecap ls trusted a server the CA did not sign"
    );

    // An agent trusting another CA: no connection, and its log says why.
    let mut wrong = agent(
        &tmp,
        None,
        "tls-wrong",
        &url,
        &agent_token,
        &["--ca", &other],
    );
    let said = wait_for(Duration::from_secs(20), || {
        read(&wrong.log).contains("certificate is not trusted")
    });
    assert!(said, "agent log: {}", read(&wrong.log));
    assert!(read(&wrong.log).contains("--ca"), "{}", read(&wrong.log));
    assert!(
        wrong.child.as_mut().unwrap().try_wait().unwrap().is_none(),
        "the agent should keep retrying (a certificate can be fixed on the server)"
    );
    assert!(!connected(
        &nodes(&http, &url, &account, &token),
        "tls-wrong"
    ));
    assert!(
        !read(&srv.log).contains("tls-wrong"),
        "the server heard of the agent: {}",
        read(&srv.log)
    );

    // The same agent with the right CA connects over wss://.
    let _right = agent(&tmp, None, "tls-right", &url, &agent_token, &["--ca", &ca]);
    let ok = wait_for(Duration::from_secs(20), || {
        connected(&nodes(&http, &url, &account, &token), "tls-right")
    });
    assert!(ok, "server log: {}", read(&srv.log));
    assert!(!connected(
        &nodes(&http, &url, &account, &token),
        "tls-wrong"
    ));
    drop(wrong);

    // A clean stop still works with TLS connections open.
    let st = srv.terminate(Duration::from_secs(20));
    assert!(
        st.is_some_and(|s| s.success()),
        "server did not stop cleanly: {st:?}; log: {}",
        read(&srv.log)
    );
}

#[test]
fn server_config_errors_name_the_flag() {
    let tmp = Scratch::new("hostile-tls-flags");
    let pki = TestPki::write(&tmp.path("pki"));
    let data = tmp.path("data");
    let run = |cert: &Path, key: &Path| {
        let mut args = vec!["server".to_owned()];
        args.extend(db_args(&data, &ServerOpts::default()));
        args.extend(["--listen".into(), "127.0.0.1:0".into()]);
        args.extend(["--tls-cert".into(), cert.display().to_string()]);
        args.extend(["--tls-key".into(), key.display().to_string()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = command(None, &args).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let missing: PathBuf = tmp.path("missing.pem");
    let (code, err) = run(&missing, &pki.key);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("--tls-cert") && err.contains("missing.pem"),
        "{err}"
    );
    let (code, err) = run(&pki.cert, &pki.other_key);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("--tls-key") && err.contains("does not match"),
        "{err}"
    );
    // Nothing was created: the flags are checked before the data directory is touched.
    assert!(!data.join("edgecap.db").exists());
}

/// The agent runs in a lab edge namespace and the server in the lab's source namespace,
/// listening on the source's veth address: a peer that is not loopback on either side.
#[test]
fn plain_remote_agents_are_refused_on_both_sides() {
    if !root_or_skip() {
        return;
    }
    let lab = Lab::new(&LabSpec::with_edges(1)).expect("building the lab");
    let tmp = Scratch::new("hostile-plain");
    let data = tmp.path("data");
    let (_account, _token, agent_token) = provision(&data);
    let listen = format!("{}:0", lab.src_addr(0, false));
    let (mut srv, url) = server(&tmp, &data, Some(lab.src_ns()), &listen, &[]);
    assert!(url.starts_with("http://198.18."), "{url}");
    let edge = Some(lab.edge_ns(0));
    // The operator is told at start what a plain listener on a non-loopback address means.
    assert!(
        read(&srv.log).contains("plain HTTP on") && read(&srv.log).contains("--insecure-plaintext"),
        "{}",
        read(&srv.log)
    );

    // The agent refuses by itself: nothing is dialled, the token stays home.
    let out = command(
        edge,
        &[
            "agent",
            "--server",
            &url,
            "--token",
            &agent_token,
            "--name",
            "far0",
        ],
    )
    .env("EDGECAP_STATE_DIR", tmp.path("state-far0"))
    .output()
    .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--server")
            && err.contains("non-loopback")
            && err.contains("--insecure-plaintext"),
        "{err}"
    );

    // An agent that insists is refused by the server (403 naming the reason) and stops.
    let mut insists = agent(
        &tmp,
        edge,
        "far1",
        &url,
        &agent_token,
        &["--insecure-plaintext"],
    );
    let ended = wait_for(Duration::from_secs(20), || {
        insists
            .child
            .as_mut()
            .unwrap()
            .try_wait()
            .unwrap()
            .is_some()
    });
    let log = read(&insists.log);
    assert!(ended, "the refused agent kept running: {log}");
    assert!(log.contains("INSECURE"), "no warning at connect: {log}");
    assert!(
        log.contains("403") && log.contains("plain (unencrypted) link with non-loopback peer"),
        "{log}"
    );
    assert!(
        read(&srv.log).contains("plain agent connection refused"),
        "{}",
        read(&srv.log)
    );

    // A server started with --insecure-plaintext takes it, warning at the connect.
    srv.kill();
    let (srv, url) = server(
        &tmp,
        &data,
        Some(lab.src_ns()),
        &listen,
        &["--insecure-plaintext"],
    );
    let far = agent(
        &tmp,
        edge,
        "far2",
        &url,
        &agent_token,
        &["--insecure-plaintext"],
    );
    let ok = wait_for(Duration::from_secs(20), || {
        read(&far.log).contains("connected") && read(&srv.log).contains("INSECURE")
    });
    assert!(
        ok,
        "agent log: {}\nserver log: {}",
        read(&far.log),
        read(&srv.log)
    );
    assert!(!read(&far.log).contains("refused"), "{}", read(&far.log));
}

/// `edgecap up` with a certificate: the API is HTTPS, its own agent dials `wss://` trusting
/// `--ca`, and the client config it writes (with `ca`) makes `ls` work without flags.
#[test]
fn up_serves_tls_to_its_agent_and_client() {
    let tmp = Scratch::new("hostile-up-tls");
    let pki = TestPki::write(&tmp.path("pki"));
    let data = tmp.path("data");
    let client = tmp.path("client.toml");
    let mut child = Command::new(BIN)
        .args(["up", "--listen", "127.0.0.1:0", "--name", "up-tls"])
        .arg("--data-dir")
        .arg(&data)
        .arg("--client-config")
        .arg(&client)
        .arg("--tls-cert")
        .arg(&pki.cert)
        .arg("--tls-key")
        .arg(&pki.key)
        .arg("--ca")
        .arg(&pki.ca)
        .env("EDGECAP_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(tmp.path("up.log")).unwrap())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let up = Proc {
        child: Some(child),
        log: tmp.path("up.log"),
    };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut url = None;
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(20)) {
        if let Some(u) = line.split_whitespace().find(|w| w.starts_with("https://")) {
            url = Some(u.to_owned());
        }
        if line.starts_with("  edgecap ls") {
            break;
        }
    }
    let url = url.unwrap_or_else(|| panic!("no https URL; log: {}", read(&up.log)));
    let config: toml::Table = toml::from_str(&read(&client)).unwrap();
    assert_eq!(config["server"].as_str(), Some(url.as_str()));
    assert_eq!(
        config["ca"].as_str().map(PathBuf::from),
        Some(std::path::absolute(&pki.ca).unwrap())
    );
    let (account, token) = (
        config["account"].as_str().unwrap().to_owned(),
        config["token"].as_str().unwrap().to_owned(),
    );
    let http = https_client(&pki.ca);
    let ok = wait_for(Duration::from_secs(20), || {
        connected(&nodes(&http, &url, &account, &token), "up-tls")
    });
    assert!(
        ok,
        "up's agent never connected over wss://: {}",
        read(&up.log)
    );
    let cfg = client.display().to_string();
    let ls = command(None, &["ls", "--client-config", &cfg])
        .output()
        .unwrap();
    assert!(
        ls.status.success(),
        "ls through the client config: {}",
        String::from_utf8_lossy(&ls.stderr)
    );
}
