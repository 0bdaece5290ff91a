//! Two `edgecap server` replicas on one PostgreSQL behave as one: agents split between them,
//! a capture created through either runs on every selected node, a stop through the other
//! reaches them, a merge runs exactly once, a look-back capture through one asks the other's
//! nodes too, and when one replica is killed mid-capture its
//! agents move to the other and their captures finish whole, nothing failed.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::capture_common::{BIN, markers, root_or_skip, wait_for};
use crate::harness::{Fleet, Proc, ServerOpts, allow_args, start_server};

/// The second replica; its log is printed if the test fails.
struct Second {
    proc: Proc,
    url: String,
}

impl Drop for Second {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- second replica {} ---\n{}",
                self.proc.log.display(),
                read(&self.proc.log)
            );
        }
    }
}

/// A log without its colour escapes (`ESC [ ... m`), so fields read `node=edge0`.
fn read(p: &Path) -> String {
    let text = std::fs::read_to_string(p).unwrap_or_default();
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Starts edge `i`'s agent with the given `--server` list (the fleet's own agents dial one).
fn agent_on(fleet: &Fleet, i: usize, servers: &[&str], opts: &ServerOpts) -> Proc {
    let log = fleet.tmp.path(&format!("agent{i}-replicas.log"));
    let [cwd, tmpdir] = fleet.agent_dirs(i);
    let mut cmd = Command::new(BIN);
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        if k.starts_with("AWS_") || k.starts_with("AZURE_") || k.starts_with("GOOGLE_") {
            cmd.env_remove(&k);
        }
    }
    let mut child = cmd.current_dir(&cwd).env("TMPDIR", &tmpdir).arg("agent");
    for s in servers {
        child = child.args(["--server", s]);
    }
    let child = child
        .arg("--state-dir")
        .arg(fleet.agent_state_dir(i))
        .args(["--name", &format!("edge{i}"), "--label", "site=lab"])
        .args(["--netns", fleet.lab.edge_ns(i)])
        .args(allow_args(opts))
        .arg("--file-root")
        .arg(&fleet.dest)
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

/// `edgeN` has a session on the replica whose log this is (its last connect was there).
fn connected_in(log: &Path, node: &str) -> bool {
    read(log)
        .lines()
        .filter(|l| l.contains(&format!("node={node}")))
        .rfind(|l| l.contains("agent connected") || l.contains("agent disconnected"))
        .is_some_and(|l| l.contains("agent connected"))
}

fn connected(fleet: &Fleet) -> usize {
    fleet
        .nodes()
        .iter()
        .filter(|n| n["connected"] == true)
        .count()
}

/// Runs `f` with the fleet's API calls going to `url`.
fn via<T>(fleet: &mut Fleet, url: &str, f: impl FnOnce(&Fleet) -> T) -> T {
    let own = std::mem::replace(&mut fleet.url, url.to_owned());
    let out = f(fleet);
    fleet.url = own;
    out
}

/// Every one of the four nodes' parts succeeded.
fn assert_all_succeeded(c: &Value) {
    assert_eq!(c["status"], "success", "{c:#}");
    let results = c["node_results"].as_array().unwrap();
    assert_eq!(results.len(), 4, "{c:#}");
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r["node"], format!("edge{i}"));
        assert_eq!(r["status"], "success", "{r}");
    }
}

#[test]
fn two_replicas_on_postgresql_behave_as_one() {
    if !root_or_skip() {
        return;
    }
    let Some(pg) = edgecap_testkit::pg::server() else {
        return;
    };
    let opts = ServerOpts {
        database: Some(pg.create_database()),
        ..ServerOpts::default()
    };
    let mut fleet = Fleet::new(4, opts.clone());
    let a = fleet.url.clone();
    let (proc, b) = start_server(&fleet.tmp.0, &fleet.data, "127.0.0.1:0", &opts, 1);
    let second = Second { proc, url: b };
    let b = second.url.clone();
    // edge0 and edge1 on A (B if A fails), edge2 and edge3 on B (A if B fails).
    for i in 0..4 {
        fleet.agents[i].kill();
        let servers = if i < 2 { [&a, &b] } else { [&b, &a] };
        fleet.agents[i] = agent_on(&fleet, i, &[servers[0], servers[1]], &opts);
    }
    let split = wait_for(Duration::from_secs(30), || {
        (0..4).all(|i| {
            let log = if i < 2 {
                &fleet.server.log
            } else {
                &second.proc.log
            };
            connected_in(log, &format!("edge{i}"))
        }) && connected(&fleet) == 4
    });
    assert!(
        split,
        "agents never split between the replicas\n{}",
        fleet.logs()
    );
    // Each replica sees the whole fleet.
    assert_eq!(via(&mut fleet, &b, connected), 4);

    // 1. Created through A, on every node (two of them on B), merged exactly once.
    let id = fleet.create(json!({"time_limit": 4, "merge": true}));
    fleet.wait_rules(&id, &[0, 1, 2, 3]);
    for i in 0..4 {
        fleet.send(i, 1000 + 100 * i as u32, 3 + i as u32);
    }
    let c = fleet.wait(&id, Duration::from_secs(40), |c| {
        !matches!(
            c["status"].as_str(),
            Some("pending" | "running" | "conversion_running")
        )
    });
    assert_all_succeeded(&c);
    assert_eq!(c["merged_file"], format!("{id}/merged.pcapng"));
    for i in 0..4u32 {
        let first = 1000 + 100 * i;
        assert_eq!(
            markers(&fleet.file(&id, i as usize)),
            (first..first + 3 + i).collect::<Vec<_>>()
        );
    }
    let mut all = markers(&fleet.dest.join(&id).join("merged.pcapng"));
    all.sort_unstable();
    assert_eq!(all.len(), 3 + 4 + 5 + 6);
    let merges = |log: &Path| {
        read(log)
            .lines()
            .filter(|l| l.contains(&id) && l.contains(" merged"))
            .count()
    };
    assert_eq!(
        merges(&fleet.server.log) + merges(&second.proc.log),
        1,
        "the merge ran other than once"
    );
    let merged_files = std::fs::read_dir(fleet.dest.join(&id))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("merged"))
        .count();
    assert_eq!(merged_files, 1);

    // 2. Created through B, stopped through A.
    let id = via(&mut fleet, &b, |f| f.create(json!({"time_limit": 120})));
    fleet.wait_rules(&id, &[0, 1, 2, 3]);
    for i in 0..4 {
        fleet.send(i, 2000 + 100 * i as u32, 2);
    }
    // The packets are in before the stop.
    let seen = wait_for(Duration::from_secs(10), || {
        via(&mut fleet, &b, |f| f.get(&id))["packets_captured"] == 8
    });
    assert!(seen, "{:#}", fleet.get(&id));
    fleet.stop(&id);
    let c = via(&mut fleet, &b, |f| {
        f.wait(&id, Duration::from_secs(30), |c| c["status"] != "running")
    });
    assert_all_succeeded(&c);
    for r in c["node_results"].as_array().unwrap() {
        assert_eq!(r["stop_reason"], "stopped", "{r}");
        assert_eq!(r["packets"], 2, "{r}");
    }

    // 2b. A look-back (simple) capture through A asks every node's ring, edge2 and edge3
    // through B: all four answer.
    let (s, v) = fleet.api(
        reqwest::Method::POST,
        "pcaps",
        Some(json!({
            "type": "simple", "system": "magic-transit", "time_limit": 60, "packet_limit": 100,
            "filter_v1": {"protocol": 17},
        })),
    );
    assert_eq!(s, 200, "{v:#}");
    assert_all_succeeded(&v["result"]);

    // 3. Created through B; A is killed mid-capture: edge0 and edge1 move to B, and every
    // part finishes with every packet, before and after the kill.
    let id = via(&mut fleet, &b, |f| f.create(json!({"time_limit": 10})));
    fleet.wait_rules(&id, &[0, 1, 2, 3]);
    for i in 0..4 {
        fleet.send(i, 3000 + 100 * i as u32, 2);
    }
    fleet.server.kill();
    let moved = wait_for(Duration::from_secs(15), || {
        connected_in(&second.proc.log, "edge0") && connected_in(&second.proc.log, "edge1")
    });
    assert!(moved, "edge0/edge1 never reached B\n{}", fleet.logs());
    for i in 0..4 {
        fleet.send(i, 3050 + 100 * i as u32, 3);
    }
    let c = via(&mut fleet, &b, |f| {
        f.wait(&id, Duration::from_secs(40), |c| {
            !matches!(c["status"].as_str(), Some("pending" | "running"))
        })
    });
    assert_all_succeeded(&c);
    for i in 0..4u32 {
        let mut want: Vec<u32> = (3000 + 100 * i..3002 + 100 * i).collect();
        want.extend(3050 + 100 * i..3053 + 100 * i);
        assert_eq!(markers(&fleet.file(&id, i as usize)), want, "edge{i}");
        assert_eq!(c["node_results"][i as usize]["packets"], 5);
    }
    // Nothing failed on B's watch.
    assert!(
        !read(&second.proc.log).contains("grace period over"),
        "{}",
        read(&second.proc.log)
    );
}
