//! The people's commands against a real server (no lab, no agents): whose account a token
//! acts on, a reader that closes standard output early, `up` on a taken port, and `edgecap
//! events` with what a simulated node reported.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::capture_common::{BIN, Scratch};
use crate::harness::{ServerOpts, admin_on, db_args, edgecap, start_server};

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

/// `edgecap events`: a firing a (simulated) node reported for a trigger made with `edgecap
/// triggers add` is listed (table and `--json`) and shown in full (`events show`); bad ids
/// name themselves and exit 2.
#[test]
fn events_lists_and_shows_what_a_trigger_saw() {
    use edgecap_model::ServerMsg;
    use edgecap_model::firing::FiredCapture;
    use edgecap_server::sim::{SimAgent, firing, hello_with_triggers};

    let tmp = Scratch::new("cli-events");
    let data = tmp.path("data");
    let (account, token) = account_and_token(&data, "a");
    let agent_token = admin_on(&data, &ServerOpts::default(), &["agent-token", "create"]);
    let captures = tmp.0.join("captures");
    std::fs::create_dir_all(&captures).unwrap();
    let (_server, url) = start_server(&tmp.0, &data, "127.0.0.1:0", &ServerOpts::default(), 0);
    let env = [
        ("EDGECAP_SERVER", url.as_str()),
        ("EDGECAP_TOKEN", token.as_str()),
        ("EDGECAP_ACCOUNT", account.as_str()),
    ];
    let out = run(&["events"], &env);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no events"));
    let dest = format!("file://{}", captures.display());
    let out = run(
        &[
            "triggers",
            "add",
            "--name",
            "flood",
            "--colo",
            "fra",
            "--metric",
            "pps",
            "--per-destination",
            "--above",
            "50k",
            "--packets",
            "5000",
            "--destination",
            &dest,
        ],
        &env,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tid = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    // A node evaluating triggers fires, and its capture reports done.
    let capture_id = edgecap_server::secret::new_id();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let agent = rt.block_on(async {
        let hello = hello_with_triggers("edge0", &[("site", "fra")], &["pre-firewall"]);
        let (mut a, _) = SimAgent::connect(&url, &agent_token, &hello).await.unwrap();
        loop {
            match a
                .recv_within(std::time::Duration::from_secs(5))
                .await
                .unwrap()
            {
                Some(ServerMsg::Triggers { triggers, .. }) if triggers.len() == 1 => break,
                Some(_) => continue,
                None => panic!("no trigger reached the node"),
            }
        }
        let now = edgecap_server::clock::unix_now() as u64;
        let capture = FiredCapture {
            filter: "udp and dst host 198.18.0.9".into(),
            points: vec!["pre-firewall".into()],
            time_limit: 30.0,
            packet_limit: Some(5000),
            byte_limit: 1_000_000,
            format: "pcapng".into(),
            pre_trigger_packets: 4,
        };
        let key = Some("198.18.0.9".parse().unwrap());
        a.fired(firing(
            &tid,
            key,
            (now - 4, now - 1),
            72000.0,
            Some((&capture_id, capture)),
            None,
        ))
        .await
        .unwrap();
        a.send(&edgecap_model::AgentMsg::Done {
            outcome: edgecap_model::Outcome {
                capture_id: capture_id.clone(),
                ok: true,
                error: None,
                packets: 5000,
                bytes: 320_000,
                lost: 0,
                stop_reason: Some("packet-limit".into()),
                file: Some(format!("{capture_id}/edge0.pcapng")),
            },
        })
        .await
        .unwrap();
        a
    });
    // The list as JSON, once the capture's file is recorded.
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let list = loop {
        let out = run(&["events", "--json"], &env);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        if v[0]["captures"][0]["file"].is_string() || std::time::Instant::now() > until {
            break v;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let e = &list[0];
    assert_eq!(list.as_array().unwrap().len(), 1, "{list:#}");
    assert_eq!(e["trigger_id"], tid.as_str());
    assert_eq!(e["key"], "198.18.0.9");
    assert_eq!(e["peak"], 72000.0);
    assert_eq!(e["nodes"][0]["node"], "edge0");
    assert_eq!(e["captures"][0]["id"], capture_id.as_str());
    assert_eq!(
        e["captures"][0]["file"],
        format!("{capture_id}/edge0.pcapng")
    );
    let id = e["id"].as_str().unwrap();
    // The table: one line with the event, its trigger, key, node and capture.
    let out = run(&["events", "--since", "1h"], &env);
    let table = String::from_utf8_lossy(&out.stdout);
    assert_eq!(table.lines().count(), 2, "{table}");
    let line = table.lines().nth(1).unwrap();
    for want in [
        id,
        "flood",
        "198.18.0.9",
        "72000",
        "edge0",
        "1 capture",
        "ongoing",
    ] {
        assert!(line.contains(want), "{want} in {line:?}");
    }
    let out = run(
        &["events", "--trigger", &edgecap_server::secret::new_id()],
        &env,
    );
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // In full, and as JSON the same event the list has.
    let out = run(&["events", "show", id], &env);
    let shown = String::from_utf8_lossy(&out.stdout);
    for want in [
        id,
        &tid,
        "flood",
        "198.18.0.9",
        &capture_id,
        &format!("{capture_id}/edge0.pcapng"),
        "success",
    ] {
        assert!(shown.contains(want), "{want} in {shown}");
    }
    let out = run(&["events", "show", id, "--json"], &env);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v, *e);
    // Bad ids: exit 2, the argument named, nothing asked of the server.
    for (args, want) in [
        (vec!["events", "show", "nothex"], "ID:"),
        (vec!["events", "--trigger", "x"], "--trigger:"),
    ] {
        let out = run(&args, &env);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(want),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = run(&["events", "show", &edgecap_server::secret::new_id()], &env);
    // Unknown: the server's 404, exit 2 as for every refusal of the request.
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no event"));
    rt.block_on(agent.close());
}
