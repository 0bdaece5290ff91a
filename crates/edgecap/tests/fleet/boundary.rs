//! The tenant boundary holds at the edge even when the server is wrong: a real agent, dialled
//! into a hub of the test's own that sends what a faulty server could (an assignment whose
//! filter is wider than the account's prefixes), installs a kernel rule that still lets only
//! the account's packets into the file.

use std::time::Duration;

use edgecap_lab::packet::Packet;
use edgecap_lab::{Lab, LabSpec};
use edgecap_model::protocol::FEATURE_BOUNDARY;
use edgecap_model::{AgentMsg, Assignment, ServerMsg};

use crate::capture_common::{Scratch, edgecap_tables, markers, root_or_skip, wait_for};
use crate::fake_hub::FakeHub;
use crate::harness::PORT;

const ID: &str = "0123456789abcdef0123456789abcdef";

#[test]
fn an_assignment_wider_than_the_accounts_prefixes_yields_only_its_packets() {
    if !root_or_skip() {
        return;
    }
    let lab = Lab::new(&LabSpec::with_edges(1)).expect("building the lab");
    let tmp = Scratch::new("boundary");
    let dest = tmp.path("captures");
    std::fs::create_dir_all(&dest).unwrap();
    let dest_arg = dest.display().to_string();
    let (mut hub, hello) = FakeHub::start(&lab, &tmp.0, &["--file-root", &dest_arg]);
    // The account owns the source's IPv4 address only; the filter asks for everything.
    let v4 = lab.src_addr(0, false);
    let assignment = Assignment {
        capture_id: ID.into(),
        filter_v1: serde_json::json!({}),
        filter: None,
        points: vec!["pre-firewall".into()],
        time_limit: 4.0,
        packet_limit: None,
        byte_limit: None,
        snaplen: None,
        sample_rate: None,
        format: "pcapng".into(),
        destination_conf: format!("file://{}", dest.display()),
        credentials: None,
        prefixes: Some(vec![format!("{v4}/32")]),
    };

    match hello {
        AgentMsg::Hello { features, .. } => assert!(
            features.iter().any(|f| f == FEATURE_BOUNDARY),
            "the agent does not announce {FEATURE_BOUNDARY}: {features:?}"
        ),
        other => panic!("expected hello, got {other:?}"),
    }
    hub.send(ServerMsg::Welcome {
        heartbeat_secs: 1.0,
    });
    hub.send(ServerMsg::Assign { assignment });
    loop {
        match hub.next() {
            AgentMsg::Ack { capture_id } if capture_id == ID => break,
            AgentMsg::Done { outcome } => panic!("refused: {outcome:?}\n{}", hub.log()),
            _ => {}
        }
    }
    let table = format!("edgecap_{ID}");
    assert!(
        wait_for(Duration::from_secs(10), || edgecap_tables(lab.edge_ns(0))
            .contains(&table)),
        "no rule installed\n{}",
        hub.log()
    );

    // Markers 1-5 over IPv4 (the account's), 101-105 over IPv6 (not the account's).
    let mut packets = Vec::new();
    for (v6, first) in [(false, 1u32), (true, 101)] {
        for m in first..first + 5 {
            let p = Packet::udp(lab.src_addr(0, v6), lab.origin_addr(0, v6), 40000, PORT);
            packets.push(p.marker(m).build().unwrap());
        }
    }
    lab.send(0, &packets).expect("send through the lab");

    let outcome = loop {
        match hub.next() {
            AgentMsg::Done { outcome } if outcome.capture_id == ID => break outcome,
            _ => {}
        }
    };
    assert!(outcome.ok, "{outcome:?}\n{}", hub.log());
    assert_eq!(outcome.packets, 5, "{outcome:?}");
    let file = dest.join(ID).join("edge0.pcapng");
    assert_eq!(markers(&file), (1..=5).collect::<Vec<_>>());
    assert!(edgecap_tables(lab.edge_ns(0)).is_empty());
}
