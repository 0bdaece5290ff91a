//! The people's commands against a real server (no lab, no agents): whose account a token
//! acts on, a reader that closes standard output early, and `up` on a taken port.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::capture_common::{BIN, Scratch};
use crate::harness::{ServerOpts, db_args, edgecap, start_server};

/// `edgecap <args>` with none of the user's EDGECAP_* settings, plus `env`.
fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    for k in ["EDGECAP_SERVER", "EDGECAP_TOKEN", "EDGECAP_ACCOUNT"] {
        cmd.env_remove(k);
    }
    cmd.args(args).envs(env.iter().copied()).output().unwrap()
}

/// An account and an API token for it, in the database under `data`.
fn account_and_token(data: &Path, name: &str) -> (String, String) {
    let db = db_args(data, &ServerOpts::default());
    let db: Vec<&str> = db.iter().map(String::as_str).collect();
    let account = edgecap(
        &[
            &["admin"],
            &db[..],
            &["account", "create", "--name", name, "--unrestricted"],
        ]
        .concat(),
    );
    let token = edgecap(
        &[
            &["admin"],
            &db[..],
            &["token", "create", "--account", &account],
        ]
        .concat(),
    );
    (account, token)
}

#[test]
fn a_token_from_the_environment_acts_on_its_own_account_and_a_closed_stdout_is_quiet() {
    let tmp = Scratch::new("cli");
    let data = tmp.path("data");
    let (account_a, token_a) = account_and_token(&data, "a");
    let (_account_b, token_b) = account_and_token(&data, "b");
    let (_server, url) = start_server(&tmp.0, &data, "127.0.0.1:0", &ServerOpts::default(), 0);
    // The client config of account a, as `edgecap up` writes it.
    let cfg = tmp.path("client.toml");
    std::fs::write(
        &cfg,
        format!("server = {url:?}\naccount = {account_a:?}\ntoken = {token_a:?}\n"),
    )
    .unwrap();
    let cfg = cfg.to_str().unwrap();
    let ls = |env: &[(&str, &str)], more: &[&str]| {
        run(
            &[&["ls", "--json", "--client-config", cfg], more].concat(),
            env,
        )
    };
    let out = ls(&[], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // b's token from the environment lists b's captures, not a refusal for a's account.
    let out = ls(&[("EDGECAP_TOKEN", &token_b)], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(list.is_array(), "{list}");
    // The same from --token; --account still says otherwise (and b's token may not act on a).
    let out = ls(&[], &["--token", &token_b]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = ls(&[("EDGECAP_TOKEN", &token_b)], &["--account", &account_a]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A reader that is gone before anything is written (`| head -c 0`): no panic, exit 0.
    for args in [
        vec!["ls", "--json", "--client-config", cfg],
        vec!["ls", "--client-config", cfg],
        vec![
            "admin",
            "--data-dir",
            data.to_str().unwrap(),
            "account",
            "list",
            "--json",
        ],
    ] {
        let mut child = Command::new(BIN)
            .args(&args)
            .env_remove("EDGECAP_TOKEN")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        let st = child.wait().unwrap();
        assert!(st.success(), "{args:?}: {st}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

#[test]
fn up_on_a_taken_port_writes_nothing_and_suggests_listen() {
    let tmp = Scratch::new("up-taken");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let data = tmp.path("data");
    let client = tmp.path("c.toml");
    let out = run(
        &[
            "up",
            "--data-dir",
            data.to_str().unwrap(),
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--client-config",
            client.to_str().unwrap(),
        ],
        &[],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("--listen: cannot listen on 127.0.0.1:{port}")),
        "{err}"
    );
    assert!(err.contains("--listen 127.0.0.1:PORT"), "{err}");
    assert!(err.contains("--listen 127.0.0.1:0"), "{err}");
    assert!(!data.exists(), "the data directory was created");
    assert!(!client.exists(), "the client config was written");
}
