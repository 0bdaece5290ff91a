//! The tenant boundary holds at the edge even when the server is wrong: a real agent, dialled
//! into a hub of the test's own that sends what a faulty server could (an assignment whose
//! filter is wider than the account's prefixes), installs a kernel rule that still lets only
//! the account's packets into the file.

use std::time::Duration;

use edgecap_lab::packet::Packet;
use edgecap_lab::{Lab, LabSpec};
use edgecap_model::protocol::FEATURE_BOUNDARY;
use edgecap_model::{AgentMsg, Assignment, ServerMsg};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

use crate::capture_common::{BIN, Scratch, edgecap_tables, markers, root_or_skip, wait_for};
use crate::harness::{PORT, Proc};

const ID: &str = "0123456789abcdef0123456789abcdef";

type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

#[test]
fn an_assignment_wider_than_the_accounts_prefixes_yields_only_its_packets() {
    if !root_or_skip() {
        return;
    }
    let lab = Lab::new(&LabSpec::with_edges(1)).expect("building the lab");
    let tmp = Scratch::new("boundary");
    let dest = tmp.path("captures");
    std::fs::create_dir_all(&dest).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());

    let log = tmp.path("agent.log");
    let child = std::process::Command::new(BIN)
        .args([
            "agent",
            "--server",
            &url,
            "--token",
            "ect_unused",
            "--name",
            "edge0",
        ])
        .arg("--state-dir")
        .arg(tmp.path("agent-state"))
        .args(["--netns", lab.edge_ns(0), "--file-root"])
        .arg(&dest)
        .env("EDGECAP_LOG", "info")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("spawn edgecap agent");
    let _agent = Proc {
        child: Some(child),
        log: log.clone(),
    };
    let agent_log = || std::fs::read_to_string(&log).unwrap_or_default();

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

    let mut ws = rt.block_on(async {
        let accept = tokio::time::timeout(Duration::from_secs(20), listener.accept());
        let (stream, _) = accept.await.expect("the agent dials").unwrap();
        tokio_tungstenite::accept_async(stream).await.unwrap()
    });
    let next = |ws: &mut Ws| -> AgentMsg { rt.block_on(next_msg(ws)) };
    match next(&mut ws) {
        AgentMsg::Hello { features, .. } => assert!(
            features.iter().any(|f| f == FEATURE_BOUNDARY),
            "the agent does not announce {FEATURE_BOUNDARY}: {features:?}"
        ),
        other => panic!("expected hello, got {other:?}"),
    }
    let send = |ws: &mut Ws, msg: ServerMsg| rt.block_on(send_msg(ws, msg));
    send(
        &mut ws,
        ServerMsg::Welcome {
            heartbeat_secs: 1.0,
        },
    );
    send(&mut ws, ServerMsg::Assign { assignment });
    loop {
        match next(&mut ws) {
            AgentMsg::Ack { capture_id } if capture_id == ID => break,
            AgentMsg::Done { outcome } => panic!("refused: {outcome:?}\n{}", agent_log()),
            _ => {}
        }
    }
    let table = format!("edgecap_{ID}");
    assert!(
        wait_for(Duration::from_secs(10), || edgecap_tables(lab.edge_ns(0))
            .contains(&table)),
        "no rule installed\n{}",
        agent_log()
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
        match next(&mut ws) {
            AgentMsg::Done { outcome } if outcome.capture_id == ID => break outcome,
            _ => {}
        }
    };
    assert!(outcome.ok, "{outcome:?}\n{}", agent_log());
    assert_eq!(outcome.packets, 5, "{outcome:?}");
    let file = dest.join(ID).join("edge0.pcapng");
    assert_eq!(markers(&file), (1..=5).collect::<Vec<_>>());
    assert!(edgecap_tables(lab.edge_ns(0)).is_empty());
}

async fn next_msg<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>) -> AgentMsg
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let deadline = Duration::from_secs(20);
    loop {
        let msg = tokio::time::timeout(deadline, ws.next())
            .await
            .expect("a message from the agent within 20 s")
            .expect("the agent closed the connection")
            .unwrap();
        match msg {
            Message::Text(t) => return AgentMsg::decode(&t).unwrap(),
            Message::Close(_) => panic!("the agent closed the connection"),
            _ => continue,
        }
    }
}

async fn send_msg<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>, msg: ServerMsg)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let text = serde_json::to_string(&msg).unwrap();
    ws.send(Message::text(text)).await.unwrap();
}
