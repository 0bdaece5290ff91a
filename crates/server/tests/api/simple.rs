//! Look-back captures (`type: simple`): created at once from the nodes' ring answers (nodes
//! attached in process answer the query they are sent), stored sealed, downloaded in the
//! format asked for; on PostgreSQL, through one replica with the samples of another's nodes.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use edgecap_model::lookback::{RingAnswer, RingQuery, WireSample, hex};
use edgecap_model::{AgentMsg, ServerMsg};
use edgecap_pcap::read::Reader;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::both_databases;
use crate::common::{
    Backend, FakeNode, Harness, assert_field_error, node_info, node_on, test_config,
};

both_databases!(
    a_simple_capture_is_answered_at_once_and_downloaded,
    a_simple_capture_whose_every_node_failed_is_failed,
    simple_bodies_are_refused_with_the_field_named,
    a_file_past_its_retention_is_gone,
    a_key_rotation_keeps_the_files_readable,
    a_node_gone_before_the_request_is_named_as_missing,
    a_simple_capture_with_a_destination_writes_its_file_there_and_keeps_none,
);

const MARKER: &[u8] = b"LOOKBACK-MARKER-7";

fn config() -> edgecap_server::Config {
    edgecap_server::Config {
        lookback_deadline: Duration::from_millis(500),
        ..test_config()
    }
}

async fn query(n: &mut FakeNode) -> RingQuery {
    match n.next().await {
        ServerMsg::Query { query } => query,
        other => panic!("expected a query, got {other:?}"),
    }
}

/// An IPv4/UDP header and the marker: what a ring keeps of a 1,000-byte packet.
fn sample(ts_ns: u64, marker: u8) -> WireSample {
    let mut ip = vec![
        0x45, 0, 0x03, 0xe8, 0, 0, 0, 0, 64, 17, 0, 0, 198, 18, 0, 1, 198, 19, 0, 1,
    ];
    ip.extend_from_slice(&[0x9c, 0x40, 0x00, 0x35, 0x03, 0xd4, 0, 0]);
    ip.extend_from_slice(MARKER);
    ip.push(marker);
    WireSample {
        ts_ns,
        orig_len: 1000,
        point: "pre-firewall".into(),
        ifindex: 2,
        one_in: 64,
        data: hex(&ip),
    }
}

fn answer(id: &str, samples: Vec<WireSample>) -> AgentMsg {
    AgentMsg::Answer {
        answer: RingAnswer {
            query_id: id.into(),
            seq: 0,
            last: true,
            error: None,
            matched: samples.len() as u64,
            est_packets: samples.len() as u64 * 64,
            est_bytes: samples.len() as u64 * 64_000,
            thinned_by: 1.0,
            periods: vec![],
            reach_start: Some(0),
            samples,
        },
    }
}

fn refusal(id: &str, error: &str) -> AgentMsg {
    let mut a = answer(id, vec![]);
    if let AgentMsg::Answer { answer } = &mut a {
        answer.error = Some(error.into());
    }
    a
}

fn simple_body(extra: Value) -> String {
    let mut b = json!({
        "type": "simple", "system": "magic-transit", "time_limit": 60, "packet_limit": 100,
        "filter_v1": {"protocol": 17, "destination_port": 53}
    });
    for (k, v) in extra.as_object().cloned().unwrap_or_default() {
        b[k] = v;
    }
    b.to_string()
}

/// GET with an `Accept` header; the status, content type and raw body.
async fn download(h: &Harness, id: &str, accept: Option<&str>) -> (StatusCode, String, Vec<u8>) {
    let mut req = Request::builder()
        .method("GET")
        .uri(h.acc(&format!("pcaps/{id}/download")))
        .header("authorization", format!("Bearer {}", h.token));
    if let Some(a) = accept {
        req = req.header("accept", a);
    }
    let mut req = req.body(Body::empty()).unwrap();
    let peer = std::net::SocketAddr::from(([127, 0, 0, 1], 40000));
    req.extensions_mut()
        .insert(axum::extract::ConnectInfo(peer));
    req.extensions_mut()
        .insert(edgecap_server::serve::Link { peer, tls: false });
    let resp = edgecap_server::app(h.state.clone())
        .oneshot(req)
        .await
        .unwrap();
    let status = resp.status();
    let ctype = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    (status, ctype, bytes)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

async fn a_simple_capture_is_answered_at_once_and_downloaded(b: Backend) {
    let Some(h) = Harness::with_config(b, config()).await else {
        return;
    };
    let mut a = h.node("edge-a", &[("site", "fra")], &["pre-firewall"]);
    let mut bad = h.node("edge-b", &[("site", "fra")], &["pre-firewall"]);
    let mut slow = h.node("edge-c", &[("site", "fra")], &["pre-firewall"]);
    let mut d = h.node("edge-d", &[("site", "fra")], &["pre-firewall"]);
    let offset = edgecap_server::clock::unix_now().floor() - 30.0;
    let body = simple_body(json!({
        "packet_limit": 4,
        "offset_time": edgecap_model::ids::rfc3339(offset),
    }));
    let path = h.acc("pcaps");
    let create = h.call("POST", &path, Some(&body));
    let nodes = async {
        let qa = query(&mut a).await;
        let qb = query(&mut bad).await;
        let _qc = query(&mut slow).await;
        let qd = query(&mut d).await;
        // The window is the time_limit before offset_time; each node is asked for the limit.
        assert_eq!(qa.to_ns, (offset * 1e9) as u64);
        assert_eq!(qa.to_ns - qa.from_ns, 60_000_000_000);
        assert_eq!(qa.limit, 4);
        assert_eq!(qa.filter_v1["destination_port"], 53);
        // Six samples from two nodes, one each second: four are kept, evenly over the window.
        let at = |i: u64| sample(qa.from_ns + i * 1_000_000_000, i as u8);
        a.session
            .handle(answer(&qa.query_id, vec![at(0), at(2), at(4)]));
        d.session
            .handle(answer(&qd.query_id, vec![at(1), at(3), at(5)]));
        bad.session
            .handle(refusal(&qb.query_id, "observer: not running"));
    };
    let ((s, v), ()) = tokio::join!(create, nodes);
    assert_eq!(s, StatusCode::OK, "{v}");
    let c = &v["result"];
    assert_eq!(c["type"], "simple");
    assert_eq!(c["status"], "success", "{c:#}");
    assert_eq!(c["packets_captured"], 4, "{c:#}");
    let result = |node: &str| -> Value {
        c["node_results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["node"] == node)
            .cloned()
            .unwrap_or_else(|| panic!("{node} missing: {c:#}"))
    };
    assert_eq!(result("edge-a")["status"], "success");
    assert_eq!(result("edge-a")["packets"], 2);
    assert_eq!(result("edge-d")["packets"], 2);
    let rb = result("edge-b");
    assert_eq!(rb["status"], "failed");
    assert!(
        rb["error_message"]
            .as_str()
            .unwrap()
            .contains("observer: not running"),
        "{rb}"
    );
    let rc = result("edge-c");
    assert_eq!(rc["status"], "failed");
    assert!(
        rc["error_message"]
            .as_str()
            .unwrap()
            .contains("did not answer"),
        "{rc}"
    );
    let id = c["id"].as_str().unwrap().to_owned();
    // The same through GET and the list.
    assert_eq!(h.capture(&id).await["status"], "success");

    // Classic pcap for Cloudflare's SDKs, pcapng otherwise (the request's format).
    let (s, ctype, pcap) = download(&h, &id, Some("application/vnd.tcpdump.pcap")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(ctype, "application/vnd.tcpdump.pcap");
    let mut r = Reader::new(&pcap[..]).unwrap();
    assert_eq!(r.format(), edgecap_pcap::Format::Pcap);
    let mut markers = Vec::new();
    while let Some(p) = r.next_packet().unwrap() {
        assert_eq!(p.orig_len, 1000, "the true length");
        markers.push(*p.data.last().unwrap());
    }
    // 6 matched, 4 kept: the 0th, 1st, 3rd and 4th (i·6/4), across the window.
    assert_eq!(markers, vec![0, 1, 3, 4]);
    let (s, ctype, ng) = download(&h, &id, None).await;
    assert_eq!(
        (s, ctype.as_str()),
        (StatusCode::OK, "application/x-pcapng")
    );
    let mut r = Reader::new(&ng[..]).unwrap();
    assert_eq!(r.format(), edgecap_pcap::Format::Pcapng);
    let mut n = 0;
    while r.next_packet().unwrap().is_some() {
        n += 1;
    }
    assert_eq!(n, 4);
    let names: Vec<&str> = r.interfaces().iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, vec!["edge-a/pre-firewall", "edge-d/pre-firewall"]);
    let iface = &r.interfaces()[0];
    assert!(
        iface.description.as_deref().unwrap().contains("1 in 96"),
        "64 × 6/4: {:?}",
        iface.description
    );
    // The database holds the file sealed: no marker, in bytes or in hex.
    let db = h.database_bytes().await;
    assert!(!contains(&db, MARKER));
    assert!(!contains(&db, hex(MARKER).as_bytes()));
    assert_eq!(h.count("sample_files").await, 1);
}

async fn a_simple_capture_whose_every_node_failed_is_failed(b: Backend) {
    let Some(h) = Harness::with_config(b, config()).await else {
        return;
    };
    let mut a = h.node("edge-a", &[("site", "fra")], &["pre-firewall"]);
    let path = h.acc("pcaps");
    let body = simple_body(json!({"colo_name": "edge-a"}));
    let create = h.call("POST", &path, Some(&body));
    let node = async {
        let q = query(&mut a).await;
        a.session
            .handle(refusal(&q.query_id, "filter: too many rules"));
    };
    let ((s, v), ()) = tokio::join!(create, node);
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["result"]["status"], "failed", "{v:#}");
    assert!(
        v["result"]["error_message"]
            .as_str()
            .unwrap_or_default()
            .contains("filter: too many rules"),
        "{v:#}"
    );
}

async fn simple_bodies_are_refused_with_the_field_named(b: Backend) {
    let Some(h) = Harness::with_config(b, config()).await else {
        return;
    };
    let mut a = h.node("edge-a", &[("site", "fra")], &["pre-firewall"]);
    let path = h.acc("pcaps");
    let old = edgecap_model::ids::rfc3339(edgecap_server::clock::unix_now() - 25.0 * 3600.0);
    let future = edgecap_model::ids::rfc3339(edgecap_server::clock::unix_now() + 3600.0);
    for (extra, pointer) in [
        (json!({"offset_time": old}), "/offset_time"),
        (json!({"offset_time": future}), "/offset_time"),
        (json!({"offset_time": "monday"}), "/offset_time"),
        (json!({"byte_limit": 1000}), "/byte_limit"),
        (json!({"packet_limit": 10_001}), "/packet_limit"),
        (json!({"packet_limit": null}), "/packet_limit"),
        // A bucket this account has not validated.
        (
            json!({"destination_conf": "s3://not-validated/dir"}),
            "/destination_conf",
        ),
        (json!({"destination_conf": ""}), "/destination_conf"),
    ] {
        let (s, v) = h
            .call("POST", &path, Some(&simple_body(extra.clone())))
            .await;
        assert_field_error(s, &v, 1001, pointer);
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    a.assert_idle();
    assert_eq!(h.count("captures").await, 0);
}

/// `edgecap admin secrets-key rotate` re-seals the look-back files with the credentials: the
/// new key opens them (holding the samples), the old one no longer does.
async fn a_key_rotation_keeps_the_files_readable(b: Backend) {
    let Some(h) = Harness::with_config(b, config()).await else {
        return;
    };
    let mut a = h.node("edge-a", &[("site", "fra")], &["pre-firewall"]);
    let path = h.acc("pcaps");
    let body = simple_body(json!({}));
    let create = h.call("POST", &path, Some(&body));
    let node = async {
        let q = query(&mut a).await;
        a.session
            .handle(answer(&q.query_id, vec![sample(q.from_ns + 1, 1)]));
    };
    let ((s, v), ()) = tokio::join!(create, node);
    assert_eq!(s, StatusCode::OK, "{v}");
    let id = v["result"]["id"].as_str().unwrap().to_owned();
    let key = h._tmp.0.join("secrets.key");
    let read = || async {
        edgecap_server::db::samples::get(&h.state.db, &id, "0")
            .await
            .unwrap()
            .unwrap()
    };
    let before = read().await;
    let ctx = edgecap_server::credentials::samples_context(&id);
    let old = edgecap_server::credentials::Vault::new(Some(key.clone()));
    assert!(contains(
        &old.open_bytes(&before.pcapng, &ctx).unwrap(),
        MARKER
    ));

    let done = edgecap_server::credentials::rotate(&h.state.db, &key)
        .await
        .unwrap();
    assert!(done.contains("re-sealed 1 secret(s)"), "{done}");
    let after = read().await;
    assert_ne!(after.pcapng, before.pcapng);
    let new = edgecap_server::credentials::Vault::new(Some(key.clone()));
    for file in [&after.pcapng, &after.pcap] {
        assert!(contains(&new.open_bytes(file, &ctx).unwrap(), MARKER));
        assert!(old.open_bytes(file, &ctx).is_err());
    }
}

async fn a_file_past_its_retention_is_gone(b: Backend) {
    let config = edgecap_server::Config {
        sample_retention: Duration::from_secs(1),
        ..config()
    };
    let Some(h) = Harness::with_config(b, config).await else {
        return;
    };
    let mut a = h.node("edge-a", &[("site", "fra")], &["pre-firewall"]);
    let path = h.acc("pcaps");
    let body = simple_body(json!({}));
    let create = h.call("POST", &path, Some(&body));
    let node = async {
        let q = query(&mut a).await;
        a.session
            .handle(answer(&q.query_id, vec![sample(q.from_ns + 1, 1)]));
    };
    let ((s, v), ()) = tokio::join!(create, node);
    assert_eq!(s, StatusCode::OK, "{v}");
    let id = v["result"]["id"].as_str().unwrap();
    assert_eq!(download(&h, id, None).await.0, StatusCode::OK);
    assert_eq!(h.count("sample_files").await, 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (s, _, body) = download(&h, id, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert!(v.to_string().contains("no longer kept"), "{v}");
    // And the sweep deletes it.
    let _timers = h.state.hub.start().await.unwrap();
    let gone = async {
        while h.count("sample_files").await > 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), gone)
        .await
        .expect("the expired file is deleted");
}

async fn a_node_gone_before_the_request_is_named_as_missing(b: Backend) {
    let Some(h) = Harness::with_config(b, config()).await else {
        return;
    };
    let mut a = h.node("edge-a", &[("site", "fra")], &["pre-firewall"]);
    let gone = h.node("edge-x", &[("site", "fra")], &["pre-firewall"]);
    h.state.hub.barrier().await;
    drop(gone);
    h.state.hub.barrier().await;
    let path = h.acc("pcaps");
    // The whole fleet: no colo_name, no nodes.
    let body = simple_body(json!({}));
    let create = h.call("POST", &path, Some(&body));
    let node = async {
        let q = query(&mut a).await;
        a.session
            .handle(answer(&q.query_id, vec![sample(q.from_ns + 1, 1)]));
    };
    let ((s, v), ()) = tokio::join!(create, node);
    assert_eq!(s, StatusCode::OK, "{v}");
    let c = &v["result"];
    assert_eq!(c["status"], "success", "{c:#}");
    let x = c["node_results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["node"] == "edge-x")
        .cloned()
        .unwrap_or_else(|| panic!("edge-x not named: {c:#}"));
    assert_eq!(x["status"], "failed");
    assert!(
        x["error_message"]
            .as_str()
            .unwrap()
            .contains("not connected"),
        "{x}"
    );
}

/// Replicas (PostgreSQL only): a simple capture created through replica A holds the samples
/// of a node whose session replica B holds (asked through B: a sealed row and NOTIFY both
/// ways), beside A's own node's, and so does a size estimate; a node of replica C, which stopped answering with its lease
/// still live, is named as not answering; nothing of the relay stays in the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simple_capture_through_one_replica_holds_the_samples_of_another_s_nodes() {
    let Some(h) = Harness::with_config(Backend::Postgres, config()).await else {
        return;
    };
    let _a = h.state.hub.start().await.unwrap();
    let b = edgecap_server::AppState::open(&h.db_url, (*h.state.config).clone())
        .await
        .unwrap();
    let _b = b.hub.start().await.unwrap();
    let c = edgecap_server::AppState::open(&h.db_url, (*h.state.config).clone())
        .await
        .unwrap();
    let c_tasks = c.hub.start().await.unwrap();
    let mut here = h.node("edge-a", &[("site", "fra")], &["pre-firewall"]);
    let mut there = node_on(
        &b,
        node_info("edge-b", &[("site", "fra")], &["pre-firewall"]),
    );
    let mut dead = node_on(
        &c,
        node_info("edge-c", &[("site", "fra")], &["pre-firewall"]),
    );
    b.hub.barrier().await;
    c.hub.barrier().await;
    let names: Vec<String> = h
        .state
        .hub
        .fleet_nodes()
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.info.name)
        .collect();
    assert_eq!(names, ["edge-a", "edge-b", "edge-c"]);
    // A size estimate through A of B's node: asked through B, answered before the deadline.
    let body = h.create_body("fra", json!({"colo_name": null, "nodes": ["edge-b"]}));
    let estimate_path = h.acc("pcaps/estimate");
    let estimate = h.call("POST", &estimate_path, Some(&body));
    let node = async {
        let q = query(&mut there).await;
        assert_eq!(q.limit, 0, "an estimate asks for no sample");
        there.session.handle(answer(&q.query_id, vec![]));
    };
    let ((s, v), ()) = tokio::join!(estimate, node);
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["result"]["nodes"][0]["node"], "edge-b", "{v:#}");
    assert_eq!(v["result"]["nodes"][0]["status"], "answered", "{v:#}");
    // Replica C stops (its listener and renewals end); its lease lives a few seconds more.
    drop(c_tasks);
    let offset = edgecap_server::clock::unix_now().floor() - 30.0;
    let body = simple_body(json!({
        "packet_limit": 10,
        "offset_time": edgecap_model::ids::rfc3339(offset),
    }));
    let path = h.acc("pcaps");
    let started = std::time::Instant::now();
    let create = h.call("POST", &path, Some(&body));
    let nodes = async {
        let (qa, qb) = tokio::join!(query(&mut here), query(&mut there));
        // B's node gets the same question: window, filter and limit.
        assert_eq!((qb.from_ns, qb.to_ns, qb.limit), (qa.from_ns, qa.to_ns, 10));
        assert_eq!(qb.filter_v1, qa.filter_v1);
        here.session
            .handle(answer(&qa.query_id, vec![sample(qa.from_ns + 1_000, 1)]));
        there.session.handle(answer(
            &qb.query_id,
            vec![sample(qb.from_ns + 2_000, 2), sample(qb.from_ns + 3_000, 3)],
        ));
    };
    let ((s, v), ()) = tokio::join!(create, nodes);
    assert_eq!(s, StatusCode::OK, "{v}");
    let r = &v["result"];
    assert_eq!(r["status"], "success", "{r:#}");
    assert_eq!(r["packets_captured"], 3, "{r:#}");
    let result = |node: &str| -> Value {
        r["node_results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["node"] == node)
            .cloned()
            .unwrap_or_else(|| panic!("{node} missing: {r:#}"))
    };
    assert_eq!(result("edge-a")["packets"], 1, "{r:#}");
    assert_eq!(result("edge-b")["status"], "success", "{r:#}");
    assert_eq!(result("edge-b")["packets"], 2, "{r:#}");
    let rc = result("edge-c");
    assert_eq!(rc["status"], "failed", "{r:#}");
    let why = rc["error_message"].as_str().unwrap();
    assert!(
        why.contains(c.hub.replica_id()) && why.contains("did not answer"),
        "{why}"
    );
    // Answered within the deadline and the relay's slack, not later.
    assert!(started.elapsed() < Duration::from_secs(10));
    dead.assert_idle();
    // The file holds both replicas' samples, in time order, one interface per node.
    let id = r["id"].as_str().unwrap().to_owned();
    let (s, _, ng) = download(&h, &id, None).await;
    assert_eq!(s, StatusCode::OK);
    let mut reader = Reader::new(&ng[..]).unwrap();
    let mut markers = Vec::new();
    while let Some(p) = reader.next_packet().unwrap() {
        markers.push(*p.data.last().unwrap());
    }
    assert_eq!(markers, vec![1, 2, 3]);
    let names: Vec<&str> = reader
        .interfaces()
        .iter()
        .map(|i| i.name.as_str())
        .collect();
    assert_eq!(names, vec!["edge-a/pre-firewall", "edge-b/pre-firewall"]);
    // The relay's rows are gone, and the markers are nowhere in the clear.
    assert_eq!(h.count("lookback_relays").await, 0);
    let db = h.database_bytes().await;
    assert!(!contains(&db, MARKER));
    assert!(!contains(&db, hex(MARKER).as_bytes()));
}

/// With a `destination_conf` the file goes there (the request's format, at the merged file's
/// key) and the server keeps nothing: no sample file, and a download says where it is.
async fn a_simple_capture_with_a_destination_writes_its_file_there_and_keeps_none(b: Backend) {
    let Some(h) = Harness::with_config(b, config()).await else {
        return;
    };
    let mut a = h.node("edge-a", &[("site", "fra")], &["pre-firewall"]);
    let path = h.acc("pcaps");
    let body = simple_body(json!({"destination_conf": h.file_dest(), "format": "pcap"}));
    let create = h.call("POST", &path, Some(&body));
    let node = async {
        let q = query(&mut a).await;
        a.session.handle(answer(
            &q.query_id,
            vec![sample(q.from_ns + 1, 1), sample(q.from_ns + 2, 2)],
        ));
    };
    let ((s, v), ()) = tokio::join!(create, node);
    assert_eq!(s, StatusCode::OK, "{v}");
    let c = &v["result"];
    assert_eq!(c["status"], "success", "{c:#}");
    let id = c["id"].as_str().unwrap().to_owned();
    assert_eq!(c["merged_file"], format!("{id}/merged.pcap"), "{c:#}");
    assert_eq!(c["destination_conf"], h.file_dest(), "{c:#}");
    let bytes = std::fs::read(h.dest.join(&id).join("merged.pcap")).unwrap();
    let mut r = Reader::new(&bytes[..]).unwrap();
    assert_eq!(r.format(), edgecap_pcap::Format::Pcap);
    let mut markers = Vec::new();
    while let Some(p) = r.next_packet().unwrap() {
        assert_eq!(p.orig_len, 1000);
        markers.push(*p.data.last().unwrap());
    }
    assert_eq!(markers, vec![1, 2]);
    assert_eq!(h.count("sample_files").await, 0);
    let db = h.database_bytes().await;
    assert!(!contains(&db, MARKER));
    let (s, _, body) = download(&h, &id, None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert!(
        v.to_string().contains(&format!("{id}/merged.pcap")),
        "the download names where the file is: {v}"
    );
}
