//! The always-on observer runs whenever the agent runs, in its own owned table in the edge's
//! namespace, and leaves nothing behind however the agent ends.

use std::time::{Duration, Instant};

use edgecap_lab::packet::Packet;
use edgecap_model::{AgentMsg, ServerMsg};

use edgecap_lab::Lab;

use crate::capture_common::{Scratch, nft_tables, root_or_skip, wait_for};
use crate::fake_hub::FakeHub;
use crate::harness::{Fleet, PORT, ServerOpts};

/// A lab of one edge and a real agent for it dialled into a hub of the test's own, sampling
/// every packet; once its observer's table is in place.
fn watching(tag: &str, heartbeat_secs: f64) -> (Lab, Scratch, FakeHub) {
    let lab = Lab::new(&edgecap_lab::LabSpec::with_edges(1)).unwrap();
    let tmp = Scratch::new(tag);
    let config = tmp.path("agent.toml");
    std::fs::write(&config, "[observer]\nsample_one_in = 1\n").unwrap();
    let config_arg = config.display().to_string();
    let (mut hub, _hello) = FakeHub::start(&lab, &tmp.0, &["--config", &config_arg]);
    hub.send(ServerMsg::Welcome { heartbeat_secs });
    let ns = lab.edge_ns(0).to_owned();
    assert!(
        wait_for(Duration::from_secs(10), || observing(&ns)),
        "no observer table\n{}",
        hub.log()
    );
    (lab, tmp, hub)
}

/// Whether the observer's table is in `ns`.
fn observing(ns: &str) -> bool {
    nft_tables(ns).iter().any(|t| t == "edgecap_observer")
}

/// `count` UDP datagrams to [`PORT`] from the source to the origin through edge 0 (IPv6 when
/// `v6`), markers from `first`, `total_len` bytes each when given.
fn datagrams(
    lab: &Lab,
    v6: bool,
    first: u32,
    count: u32,
    total_len: Option<usize>,
) -> Vec<Vec<u8>> {
    (first..first + count)
        .map(|m| {
            let p = Packet::udp(lab.src_addr(0, v6), lab.origin_addr(0, v6), 40000, PORT).marker(m);
            match total_len {
                Some(n) => p.total_len(n),
                None => p,
            }
            .build()
            .unwrap()
        })
        .collect()
}

#[test]
fn the_observer_runs_with_the_agent_and_goes_with_it() {
    if !root_or_skip() {
        return;
    }
    let mut fleet = Fleet::new(2, ServerOpts::default());
    for i in 0..2 {
        let ns = fleet.lab.edge_ns(i).to_owned();
        assert!(
            wait_for(Duration::from_secs(10), || observing(&ns)),
            "no observer table in {ns}\n{}",
            fleet.logs()
        );
    }
    // A clean stop removes it; so does a kill (the table is owned by the agent's socket).
    let ns0 = fleet.lab.edge_ns(0).to_owned();
    let status = fleet.agents[0].terminate(Duration::from_secs(10));
    assert!(
        status.is_some_and(|s| s.success()),
        "{status:?}\n{}",
        fleet.logs()
    );
    assert!(!observing(&ns0), "the observer stayed after a clean stop");
    let ns1 = fleet.lab.edge_ns(1).to_owned();
    fleet.agents[1].kill();
    assert!(
        wait_for(Duration::from_secs(5), || !observing(&ns1)),
        "the observer stayed after the agent was killed"
    );
    assert!(
        fleet.logs().contains("observer installed"),
        "{}",
        fleet.logs()
    );
}

/// The agent sends its observer's closed seconds over its connection: exact totals from the
/// counters, and (sampling every packet here) the lab traffic's destination and port as the
/// heavy hitters.
#[test]
fn the_agent_sends_per_second_rollups_of_what_crossed_its_points() {
    if !root_or_skip() {
        return;
    }
    let (lab, _tmp, mut hub) = watching("rollups", 0.5);
    let packets = datagrams(&lab, false, 0, 300, Some(200));
    lab.send(0, &packets).unwrap();
    // Collect seconds until those that hold the traffic have closed.
    let mut seconds = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(8);
    while Instant::now() < deadline {
        if let AgentMsg::Rollups { seconds: s } = hub.next() {
            seconds.extend(s);
        }
        let ours: u64 = seconds
            .iter()
            .flat_map(|s| &s.top_dport)
            .filter(|h| h.key == PORT)
            .map(|h| h.count)
            .sum();
        if ours >= 300 {
            break;
        }
    }
    assert!(seconds.iter().all(|s| s.point == "pre-firewall"));
    assert!(
        seconds.iter().all(|s| s.exact),
        "node totals come from the counters"
    );
    // Exactly our 300 datagrams on the port (the only port-bearing traffic in the lab).
    let on_port: u64 = seconds
        .iter()
        .flat_map(|s| &s.top_dport)
        .filter(|h| h.key == PORT)
        .map(|h| h.count)
        .sum();
    assert_eq!(on_port, 300, "{seconds:#?}\n{}", hub.log());
    let to_origin: u64 = seconds
        .iter()
        .flat_map(|s| &s.top_dst)
        .filter(|h| h.key == lab.origin_addr(0, false))
        .map(|h| h.count)
        .sum();
    assert_eq!(to_origin, 300);
    // The counters saw at least as much, in bytes too (200 bytes each).
    let packets: u64 = seconds.iter().map(|s| s.packets).sum();
    let bytes: u64 = seconds.iter().map(|s| s.bytes).sum();
    assert!(
        packets >= 300 && bytes >= 300 * 200,
        "{packets} packets, {bytes} bytes"
    );
    assert!(seconds.iter().map(|s| s.udp).sum::<u64>() >= 300);
}

/// Accounts the server names get rollups of their own, holding only traffic inside their
/// prefixes, next to the node's.
#[test]
fn each_named_account_gets_rollups_of_only_its_own_traffic() {
    if !root_or_skip() {
        return;
    }
    let (lab, _tmp, mut hub) = watching("account-rollups", 0.5);
    let scope = |id: &str, prefixes: &[String]| edgecap_model::protocol::AccountScope {
        id: id.into(),
        prefixes: prefixes.to_vec(),
    };
    let v4 = lab.src_addr(0, false);
    hub.send(ServerMsg::Accounts {
        accounts: vec![
            scope("ours", &[format!("{v4}/32")]),
            scope("theirs", &["198.19.99.0/24".into()]),
            scope("broken", &["not a prefix".into()]),
        ],
    });
    // 200 datagrams over IPv4 (ours), 100 over IPv6 (nobody's).
    let mut packets = datagrams(&lab, false, 0, 200, None);
    packets.extend(datagrams(&lab, true, 0, 100, None));
    lab.send(0, &packets).unwrap();
    let on_port = |seconds: &[edgecap_model::protocol::Second], account: Option<&str>| -> u64 {
        seconds
            .iter()
            .filter(|s| s.account.as_deref() == account)
            .flat_map(|s| &s.top_dport)
            .filter(|h| h.key == PORT)
            .map(|h| h.count)
            .sum()
    };
    let mut seconds = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(8);
    while Instant::now() < deadline && on_port(&seconds, None) < 300 {
        if let AgentMsg::Rollups { seconds: s } = hub.next() {
            seconds.extend(s);
        }
    }
    // Let the accounts' seconds of the same time arrive too.
    for _ in 0..3 {
        if let AgentMsg::Rollups { seconds: s } = hub.next() {
            seconds.extend(s);
        }
    }
    assert_eq!(on_port(&seconds, None), 300, "{}", hub.log());
    assert_eq!(on_port(&seconds, Some("ours")), 200);
    assert_eq!(on_port(&seconds, Some("theirs")), 0);
    let theirs: u64 = seconds
        .iter()
        .filter(|s| s.account.as_deref() == Some("theirs"))
        .map(|s| s.packets)
        .sum();
    assert_eq!(theirs, 0);
    assert!(
        seconds
            .iter()
            .all(|s| s.account.as_deref() != Some("broken"))
    );
    // An account's seconds are estimates from its samples, never the node's counters.
    assert!(
        seconds
            .iter()
            .filter(|s| s.account.is_some())
            .all(|s| !s.exact)
    );
    assert!(
        hub.log().contains("account's prefixes skipped"),
        "{}",
        hub.log()
    );
}

/// A look-back question: the ring's samples of a past window that match a filter, with the
/// packets' first bytes and original lengths; estimates alone with limit 0; a bad filter is
/// refused naming the field.
#[test]
fn the_ring_answers_a_look_back_query_for_a_past_window() {
    if !root_or_skip() {
        return;
    }
    let (lab, _tmp, mut hub) = watching("lookback", 5.0);
    let now_ns = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
    };
    // Markers 1-50 in a first window, then 51-100 after it.
    let send = |first: u32| {
        let packets = datagrams(&lab, false, first, 50, Some(1000));
        lab.send(0, &packets).unwrap();
    };
    let from = now_ns();
    send(1);
    std::thread::sleep(Duration::from_millis(300));
    let to = now_ns();
    std::thread::sleep(Duration::from_millis(300));
    send(51);
    std::thread::sleep(Duration::from_millis(300));

    let query = |id: &str, filter: &str, limit: u64| edgecap_model::lookback::RingQuery {
        query_id: id.into(),
        filter_v1: serde_json::json!({}),
        filter: Some(filter.into()),
        prefixes: None,
        points: vec![],
        from_ns: from,
        to_ns: to,
        limit,
    };
    let answer = |hub: &mut FakeHub, q| {
        hub.send(ServerMsg::Query { query: q });
        let mut parts = Vec::new();
        loop {
            if let AgentMsg::Answer { answer } = hub.next() {
                let last = answer.last;
                parts.push(answer);
                if last {
                    break parts;
                }
            }
        }
    };
    let id = "0123456789abcdef0123456789abcdef";
    let parts = answer(&mut hub, query(id, &format!("udp dst port {PORT}"), 1000));
    assert_eq!(parts[0].error, None, "{:?}\n{}", parts[0], hub.log());
    let samples: Vec<_> = parts.iter().flat_map(|p| &p.samples).collect();
    let markers: Vec<u32> = samples
        .iter()
        .map(|s| {
            let data = edgecap_model::lookback::unhex(&s.data).unwrap();
            assert_eq!(
                (data.len(), s.orig_len),
                (160, 1000),
                "headers only, true length"
            );
            edgecap_lab::packet::find_marker(&data).unwrap()
        })
        .collect();
    assert_eq!(
        markers,
        (1..=50).collect::<Vec<_>>(),
        "only the window's packets"
    );
    assert!(
        samples
            .iter()
            .all(|s| s.point == "pre-firewall" && s.one_in == 1)
    );
    assert_eq!((parts[0].matched, parts[0].est_bytes), (50, 50_000));

    // The estimate alone.
    let parts = answer(&mut hub, query(id, "udp", 0));
    assert!(parts[0].samples.is_empty() && parts[0].last);
    assert_eq!(parts[0].est_packets, 50);

    // Hostile: a filter that does not parse, a point the node does not observe.
    let parts = answer(&mut hub, query(id, "udp port", 10));
    assert!(
        parts[0].error.as_deref().unwrap().starts_with("filter: "),
        "{:?}",
        parts[0]
    );
    let mut q = query(id, "udp", 10);
    q.points = vec!["egress".into()];
    let parts = answer(&mut hub, q);
    assert!(
        parts[0].error.as_deref().unwrap().starts_with("points: "),
        "{:?}",
        parts[0]
    );
}

/// The server tells each agent which restricted accounts to keep apart, and tells it again
/// when an operator changes them.
#[test]
fn agents_learn_the_restricted_accounts_and_their_changes() {
    if !root_or_skip() {
        return;
    }
    let fleet = Fleet::new(1, ServerOpts::default());
    let id = fleet
        .admin(&[
            "account",
            "create",
            "--name",
            "r",
            "--prefix",
            "198.18.0.0/24",
        ])
        .trim()
        .to_owned();
    // The agent's last word on the accounts it keeps apart, without terminal colours.
    let last_word = || {
        let log = std::fs::read_to_string(&fleet.agents[0].log).unwrap_or_default();
        let line = log
            .lines()
            .rev()
            .find(|l| l.contains("observer keeps accounts apart"))
            .unwrap_or_default()
            .to_owned();
        let mut plain = String::new();
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            if c == '\u{1b}' {
                chars.by_ref().find(|c| *c == 'm');
            } else {
                plain.push(c);
            }
        }
        plain
    };
    assert!(
        wait_for(Duration::from_secs(10), || last_word()
            .contains(&format!("accounts=1 ids={id}"))),
        "the agent never heard of the account\n{}",
        fleet.logs()
    );
    // Restricted without prefixes: nothing to keep apart.
    fleet.admin(&["account", "prefixes", "remove", &id, "198.18.0.0/24"]);
    assert!(
        wait_for(Duration::from_secs(10), || last_word()
            .ends_with("accounts=0 ids=")),
        "the agent kept a prefix-less account\n{}",
        fleet.logs()
    );
}

/// An observer that cannot start (here: a point the node does not have) is reported in the
/// agent's readiness and log, and captures run as ever.
#[test]
fn a_failed_observer_is_reported_and_never_blocks_captures() {
    if !root_or_skip() {
        return;
    }
    let lab = Lab::new(&edgecap_lab::LabSpec::with_edges(1)).unwrap();
    let tmp = Scratch::new("observer-fails");
    let config = tmp.path("agent.toml");
    std::fs::write(&config, "[observer]\npoints = [\"post-mitigation\"]\n").unwrap();
    let dest = tmp.path("captures");
    std::fs::create_dir_all(&dest).unwrap();
    let port = edgecap_testkit::servers::free_port();
    let listen = format!("127.0.0.1:{port}");
    let (config_arg, dest_arg) = (config.display().to_string(), dest.display().to_string());
    let (mut hub, _hello) = FakeHub::start(
        &lab,
        &tmp.0,
        &[
            "--config",
            &config_arg,
            "--file-root",
            &dest_arg,
            "--metrics-listen",
            &listen,
        ],
    );
    hub.send(ServerMsg::Welcome {
        heartbeat_secs: 1.0,
    });
    // reqwest is built without a default TLS provider (see the client module).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::blocking::Client::new();
    let readyz = || {
        let r = http.get(format!("http://{listen}/readyz")).send().ok()?;
        let status = r.status().as_u16();
        Some((status, r.text().ok()?))
    };
    assert!(
        wait_for(Duration::from_secs(10), || readyz()
            .is_some_and(|(s, b)| s == 503 && b.contains("observer"))),
        "readyz: {:?}\n{}",
        readyz(),
        hub.log()
    );
    let (_, body) = readyz().unwrap();
    assert!(body.contains("post-mitigation"), "{body}");
    assert!(hub.log().contains("observer failed"), "{}", hub.log());
    assert!(
        !nft_tables(lab.edge_ns(0))
            .iter()
            .any(|t| t == "edgecap_observer")
    );

    // A capture still runs and delivers its packets.
    let id = "00112233445566778899aabbccddeeff";
    let assignment = edgecap_model::Assignment {
        capture_id: id.into(),
        filter_v1: serde_json::json!({"protocol": 17, "destination_port": PORT}),
        filter: None,
        points: vec!["pre-firewall".into()],
        time_limit: 3.0,
        packet_limit: None,
        byte_limit: None,
        snaplen: None,
        sample_rate: None,
        format: "pcapng".into(),
        destination_conf: format!("file://{}", dest.display()),
        credentials: None,
        prefixes: None,
    };
    hub.send(ServerMsg::Assign { assignment });
    let table = format!("edgecap_{id}");
    assert!(wait_for(Duration::from_secs(10), || nft_tables(
        lab.edge_ns(0)
    )
    .contains(&table)));
    let packets = datagrams(&lab, false, 1, 20, None);
    lab.send(0, &packets).unwrap();
    let outcome = loop {
        if let AgentMsg::Done { outcome } = hub.next() {
            break outcome;
        }
    };
    assert!(outcome.ok, "{outcome:?}\n{}", hub.log());
    assert_eq!(outcome.packets, 20);
}
