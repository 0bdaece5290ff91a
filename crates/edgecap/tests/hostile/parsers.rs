//! Hostile input to the parsers: a filter of thousands of nested parentheses, deeply nested
//! JSON and corrupt capture files get a clear refusal naming the field and the limit, and no
//! process crashes (the server keeps serving; the CLI exits with its usage code).

use std::process::Command;

use serde_json::{Value, json};

use crate::capture_common::{BIN, Scratch, root_or_skip};
use crate::harness::{Fleet, ServerOpts};

/// The attack of issue 9: 9,000 nested parentheses around a primitive (18 KB).
fn parens(depth: usize, inner: &str) -> String {
    format!("{}{inner}{}", "(".repeat(depth), ")".repeat(depth))
}

/// `POST /pcaps` with `body` as raw bytes (deep JSON cannot be built as a `Value`).
fn post_raw(fleet: &Fleet, body: String) -> (u16, Value) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let resp = reqwest::blocking::Client::new()
        .post(format!(
            "{}/client/v4/accounts/{}/pcaps",
            fleet.url, fleet.account
        ))
        .bearer_auth(&fleet.token)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .expect("API call");
    let status = resp.status().as_u16();
    (status, resp.json().expect("JSON envelope"))
}

/// A create body whose `field` is `raw` JSON text.
fn body_with(fleet: &Fleet, field: &str, raw: &str) -> String {
    let base = json!({
        "type": "full", "system": "magic-transit", "time_limit": 5, "nodes": ["site=lab"],
        "destination_conf": format!("file://{}", fleet.dest.display()),
    });
    let base = base.to_string();
    format!("{},\"{field}\":{raw}}}", &base[..base.len() - 1])
}

fn first_error(v: &Value) -> (String, String) {
    let e = &v["errors"][0];
    (
        e["message"].as_str().unwrap_or_default().to_owned(),
        e["source"]["pointer"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

/// The server process is alive, answers, and stored nothing.
fn still_serving_and_unchanged(fleet: &mut Fleet) {
    let child = fleet.server.child.as_mut().unwrap();
    assert!(
        child.try_wait().unwrap().is_none(),
        "the server exited\n{}",
        fleet.logs()
    );
    let (s, v) = fleet.api(reqwest::Method::GET, "pcaps", None);
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["result"], json!([]), "nothing was created");
}

#[test]
fn deep_filters_and_deep_json_get_400_naming_the_field_and_the_server_keeps_serving() {
    if !root_or_skip() {
        return;
    }
    let mut fleet = Fleet::new(1, ServerOpts::default());

    // The reported attack: 9,000 nested parentheses (18 KB, inside the 64 KiB body limit).
    let deep = parens(9_000, "udp");
    let (s, v) = fleet.try_create(json!({ "filter": deep }));
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["success"], false);
    let (msg, pointer) = first_error(&v);
    assert_eq!(pointer, "/filter", "{v}");
    assert!(
        msg.starts_with(
            "filter: the expression is 18003 bytes long, more than the limit of 8192 bytes"
        ),
        "{msg}"
    );
    still_serving_and_unchanged(&mut fleet);

    // Short but deep: refused at the 65th level, naming the limit.
    let (s, v) = fleet.try_create(json!({ "filter": parens(65, "udp") }));
    assert_eq!(s, 400, "{v}");
    let (msg, pointer) = first_error(&v);
    assert_eq!(pointer, "/filter");
    assert!(
        msg.starts_with("filter: at character 65 (\"(\"): parentheses and not nest deeper than the limit of 64 levels"),
        "{msg}"
    );
    still_serving_and_unchanged(&mut fleet);

    // Deeply nested JSON in a field, far beyond any parser's recursion: the field is named.
    let json_deep = parens(10_000, "1").replace('(', "[").replace(')', "]");
    let (s, v) = post_raw(&fleet, body_with(&fleet, "filter_v1", &json_deep));
    assert_eq!(s, 400, "{v}");
    let (msg, pointer) = first_error(&v);
    assert_eq!(pointer, "/filter_v1");
    assert_eq!(
        msg,
        "filter_v1: nested deeper than the limit of 32 levels of objects and arrays"
    );
    still_serving_and_unchanged(&mut fleet);

    // Objects nested in an unknown field, below serde_json's own limit but above ours.
    let objects = format!("{}1{}", "{\"a\":".repeat(100), "}".repeat(100));
    let (s, v) = post_raw(&fleet, body_with(&fleet, "extra", &objects));
    assert_eq!(s, 400, "{v}");
    assert_eq!(
        first_error(&v).0,
        "extra: nested deeper than the limit of 32 levels of objects and arrays"
    );

    // A body that is only nesting: the body is named.
    let (s, v) = post_raw(&fleet, json_deep);
    assert_eq!(s, 400, "{v}");
    assert_eq!(
        first_error(&v).0,
        "request body: nested deeper than the limit of 32 levels of objects and arrays"
    );
    still_serving_and_unchanged(&mut fleet);

    // The CLI of a fleet capture refuses the same filter before it asks the server.
    let dest = format!("file://{}", fleet.dest.display());
    let out = Command::new(BIN)
        .args(["capture", "--server", &fleet.url, "--token", &fleet.token])
        .args(["--nodes", "edge0", "--destination", &dest, "--time", "5s"])
        .args(["--filter", &parens(10_000, "udp")])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("filter") && err.contains("more than the limit of 8192 bytes"),
        "{err}"
    );
    still_serving_and_unchanged(&mut fleet);

    // And a good request right after is served: created, assigned, captured.
    let id = fleet.create(json!({ "filter": "udp and port 5000", "packet_limit": 1 }));
    fleet.wait_rules(&id, &[0]);
    fleet.send(0, 0, 3);
    let done = fleet.wait(&id, std::time::Duration::from_secs(20), |c| {
        c["status"] == "success"
    });
    assert_eq!(done["status"], "success", "{done}");
}

/// `edgecap capture --filter` with 10,000 nested parentheses: exit 2 and the limit, before
/// anything is opened or installed (no root needed: it never gets that far).
#[test]
fn the_capture_cli_refuses_a_deep_filter_with_its_usage_code() {
    let dir = Scratch::new("hostile-filter");
    let out_file = dir.path("out.pcapng");
    let run = |filter: &str| {
        let out = Command::new(BIN)
            .args(["capture", "--packets", "1", "-w"])
            .arg(&out_file)
            .args(["--filter", filter])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(2), "{err}");
        err
    };
    let err = run(&parens(10_000, "udp"));
    assert_eq!(
        err.trim(),
        "edgecap: error: --filter: the expression is 20003 bytes long, more than the limit of \
         8192 bytes (use prefixes and port ranges instead of long lists)"
    );
    let err = run(&parens(65, "udp"));
    assert!(
        err.contains("--filter: at character 65 (\"(\"): parentheses and not nest deeper than the limit of 64 levels"),
        "{err}"
    );
    let err = run(&format!("port 1{}", " or 2".repeat(1025)));
    assert!(
        err.contains("more and/or operators than the limit of 1024"),
        "{err}"
    );
    assert!(!out_file.exists(), "nothing was written");
}

/// Corrupt and hostile capture files given to `edgecap merge`: an error naming the file and
/// the offset, never a panic (exit 101) or a signal, and no huge allocation.
#[test]
fn merge_refuses_hostile_capture_files_with_a_clear_error() {
    let dir = Scratch::new("hostile-merge");
    let write = |name: &str, bytes: &[u8]| {
        let p = dir.path(name);
        std::fs::write(&p, bytes).unwrap();
        p.display().to_string()
    };
    // Classic pcap, little-endian, linktype RAW, then a record claiming 2 GiB.
    let mut pcap = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0];
    pcap.extend_from_slice(&[0; 8]);
    pcap.extend_from_slice(&65_535u32.to_le_bytes());
    pcap.extend_from_slice(&101u32.to_le_bytes());
    pcap.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0]);
    pcap.extend_from_slice(&0x7fff_ffffu32.to_le_bytes());
    pcap.extend_from_slice(&0x7fff_ffffu32.to_le_bytes());
    let huge_record = write("huge-record.pcap", &pcap);
    // pcapng whose section header block claims 4 GiB.
    let mut ng = 0x0A0D_0D0Au32.to_le_bytes().to_vec();
    ng.extend_from_slice(&0xffff_fff0u32.to_le_bytes());
    ng.extend_from_slice(&0x1A2B_3C4Du32.to_le_bytes());
    ng.extend_from_slice(&[1, 0, 0, 0]);
    let huge_block = write("huge-block.pcapng", &ng);
    let junk = write("junk.pcap", b"GET / HTTP/1.1\r\n\r\n(((((((((((((((((((");
    let cut = write("cut.pcap", &pcap[..20]);
    let out_file = dir.path("merged.pcapng");
    for (input, says) in [
        (&huge_record, "more than the 16777216 this reader accepts"),
        (&huge_block, "offset 0"),
        (&junk, "not a pcap or pcapng file"),
        (&cut, "ends early"),
    ] {
        let out = Command::new(BIN)
            .args(["merge", input, "-w"])
            .arg(&out_file)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        let code = out.status.code();
        assert!(
            matches!(code, Some(1 | 2)),
            "{input}: exit {:?}: {err}",
            out.status
        );
        let name = std::path::Path::new(input)
            .file_name()
            .unwrap()
            .to_string_lossy();
        let stem = name.split('.').next().unwrap();
        assert!(
            err.starts_with("edgecap: error: ") && err.contains(stem) && err.contains(says),
            "{input}: {err}"
        );
    }
}

/// A WebSocket client by hand (a handshake and masked text frames over a `TcpStream`), so
/// the test can send what no real agent would.
struct RawAgent(std::net::TcpStream);

impl RawAgent {
    fn connect(fleet: &Fleet) -> RawAgent {
        use std::io::{BufRead, BufReader, Write};
        let host = fleet.url.trim_start_matches("http://").to_owned();
        let mut s = std::net::TcpStream::connect(&host).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        write!(
            s,
            "GET /agent/v1/connect HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nAuthorization: Bearer {}\r\n\
             {}: intruder\r\n{}: {}\r\n\r\n",
            edgecap_server::sim::credential_for(&fleet.agent_token, "intruder"),
            edgecap_model::NODE_HEADER,
            edgecap_model::ENROLMENT_HEADER,
            fleet.agent_token
        )
        .unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut status = String::new();
        r.read_line(&mut status).unwrap();
        assert!(status.contains(" 101 "), "{status}");
        loop {
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            if line == "\r\n" || line.is_empty() {
                break;
            }
        }
        RawAgent(s)
    }

    /// One masked text frame (mask 0: the payload goes as is).
    fn send_text(&mut self, text: &str) {
        use std::io::Write;
        let n = text.len();
        let mut frame = vec![0x81];
        match n {
            0..=125 => frame.push(0x80 | n as u8),
            126..=65_535 => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            _ => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        frame.extend_from_slice(&[0, 0, 0, 0]);
        frame.extend_from_slice(text.as_bytes());
        // The server may close before reading it all.
        let _ = self.0.write_all(&frame);
    }

    /// Reads until the server ends the connection (a close frame and EOF, or a reset);
    /// false if it is still open after the read timeout.
    fn ended(&mut self) -> bool {
        use std::io::Read;
        let mut buf = [0u8; 4096];
        loop {
            match self.0.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return false,
                Err(_) => return true,
            }
        }
    }
}

/// Agent messages nested 10,000 deep or larger than the protocol's 1 MiB: the server drops
/// the connection that sent them and goes on serving the API and its real agent.
#[test]
fn hostile_agent_messages_end_their_connection_and_nothing_else() {
    if !root_or_skip() {
        return;
    }
    let mut fleet = Fleet::new(1, ServerOpts::default());
    let deep = parens(10_000, "1").replace('(', "[").replace(')', "]");
    let hello = |labels: &str| {
        format!(
            r#"{{"type": "hello", "name": "intruder", "labels": {labels}, "points": [],
                "version": "0", "running": [], "finished": []}}"#
        )
    };
    let mut a = RawAgent::connect(&fleet);
    a.send_text(&hello(&format!(r#"{{"a": {deep}}}"#)));
    assert!(
        a.ended(),
        "the server kept a connection that sent a 10,000-deep hello"
    );

    let mut b = RawAgent::connect(&fleet);
    b.send_text(&hello(&format!(
        r#"{{"a": "{}"}}"#,
        "x".repeat(edgecap_model::MAX_MESSAGE_BYTES + 1)
    )));
    assert!(
        b.ended(),
        "the server kept a connection that sent 1 MiB + 1"
    );

    // Nothing else changed: no node named intruder, edge0 still connected and capturing.
    let nodes = fleet.nodes();
    assert_eq!(nodes.len(), 1, "{nodes:?}");
    assert_eq!(nodes[0]["connected"], true, "{nodes:?}");
    still_serving_and_unchanged(&mut fleet);
    let id = fleet.create(json!({ "packet_limit": 1 }));
    fleet.wait_rules(&id, &[0]);
    fleet.send(0, 0, 3);
    let done = fleet.wait(&id, std::time::Duration::from_secs(20), |c| {
        c["status"] == "success"
    });
    assert_eq!(done["status"], "success", "{done}");
}
