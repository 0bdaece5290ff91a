//! `GET /ui/accounts/{account_id}/pcaps/{pcap_id}/packets`: the packet view's data. A page of
//! a capture's packets (time, interface `<node>/<point>`, addresses, ports, protocol, length,
//! a one-line summary, a payload preview), optionally narrowed by a tcpdump-style display
//! filter; or, with `packet=N`, one packet's decoded header tree and hex dump.
//!
//! Which file: a look-back (`type: simple`) capture's own file, kept sealed by the server; or
//! a file in a `file://` destination (a full capture's per-node files and its merged file, a
//! simple capture written to a directory), read by the server itself, so only where that
//! directory is on the server's host: under one of its `--file-root`s (the same policy as
//! every `file://` destination), else a 400 saying so. Bucket destinations are not read here
//! (download the files).
//!
//! Bounded: a page holds at most [`MAX_PAGE`] packets; a request reads at most
//! [`MAX_SCANNED_PACKETS`] packets or [`MAX_SCANNED_BYTES`] of a file (the answer says when it
//! stopped there); the hex dump shows at most [`MAX_HEX_BYTES`]. The filter is the API's
//! `filter` (`edgecap_model::request::display_filter`, the same bounds and message), applied
//! by `edgecap_filter::matches` to each packet's IP bytes.

use std::io::{BufReader, Read};

use axum::extract::State;
use axum::response::Response;
use edgecap_filter::ir::Conjunction;
use edgecap_model::Capture;
use edgecap_pcap::dissect::{Dissection, dissect, hex_dump};
use edgecap_pcap::read::{Packet, Reader};
use edgecap_store::{Destination, ObjectReader, Store};
use serde_json::{Value, json};

use crate::AppState;
use crate::api::body::{PathId, QueryPairs, known_once, ok, whole_number};
use crate::auth::Caller;
use crate::clock;
use crate::credentials::samples_context;
use crate::db::samples as files;
use crate::destination;
use crate::error::HttpError;

/// The default page size.
pub const PAGE: u64 = 100;
/// The largest page.
pub const MAX_PAGE: u64 = 500;
/// Most packets one request reads from a file.
pub const MAX_SCANNED_PACKETS: u64 = 100_000;
/// Most bytes one request reads from a file.
pub const MAX_SCANNED_BYTES: u64 = 64 << 20;
/// Most bytes of a packet in its hex dump.
pub const MAX_HEX_BYTES: usize = 4096;

const KNOWN: &[&str] = &["filter", "offset", "limit", "file", "packet"];

/// What the query asked for.
#[derive(Debug, Default, PartialEq)]
struct Ask {
    filter: Option<String>,
    offset: u64,
    limit: u64,
    file: Option<String>,
    packet: Option<u64>,
}

fn ask(q: &[(String, String)]) -> Result<Ask, HttpError> {
    let mut a = Ask {
        limit: PAGE,
        ..Ask::default()
    };
    let text = |v: &str| Some(v.trim().to_owned()).filter(|f| !f.is_empty());
    known_once(q, KNOWN, |name, v| {
        match name {
            "filter" => a.filter = text(v),
            "file" => a.file = text(v),
            "offset" => a.offset = whole_number(name, v, 0, MAX_SCANNED_PACKETS)?,
            "limit" => a.limit = whole_number(name, v, 1, MAX_PAGE)?,
            _ => a.packet = Some(whole_number(name, v, 0, MAX_SCANNED_PACKETS - 1)?),
        }
        Ok(())
    })?;
    Ok(a)
}

/// One file the view can read.
#[derive(Debug, Clone, PartialEq)]
struct FileChoice {
    /// `samples` (a simple capture's kept file), a node's name, or `merged`.
    name: String,
    /// The key under the destination (empty for `samples`).
    key: String,
}

/// The files of `c` the view can show, or why none (a 400 naming `file`).
fn choices(c: &Capture) -> Result<Vec<FileChoice>, HttpError> {
    if c.kind == "simple" && c.destination_conf.is_empty() {
        return Ok(vec![FileChoice {
            name: "samples".into(),
            key: String::new(),
        }]);
    }
    if !c.destination_conf.starts_with("file://") {
        return Err(HttpError::field(
            "file",
            format!(
                "the packet view reads look-back captures and files in a file:// directory on \
                 the server's host; capture {} wrote to {}: download its files from there",
                c.id, c.destination_conf
            ),
        ));
    }
    // Only keys in the capture's own directory (`<id>/...`, the layout every writer uses):
    // a key a node reported elsewhere is not read, whatever it names.
    let own = format!("{}/", c.id.to_ascii_lowercase());
    let mut out = Vec::new();
    if let Some(m) = c.merged_file.as_ref().filter(|k| k.starts_with(&own)) {
        out.push(FileChoice {
            name: "merged".into(),
            key: m.clone(),
        });
    }
    for r in &c.node_results {
        if let Some(f) = r.file.as_ref().filter(|k| k.starts_with(&own)) {
            out.push(FileChoice {
                name: r.node.clone(),
                key: f.clone(),
            });
        }
    }
    if out.is_empty() {
        return Err(HttpError::field(
            "file",
            format!(
                "capture {} has no file yet (status {}); its nodes name their files when they \
                 finish",
                c.id,
                c.status.as_str()
            ),
        ));
    }
    Ok(out)
}

/// Where the bytes come from.
enum Source {
    Bytes(Vec<u8>),
    Object(Box<ObjectReader>),
}

async fn open(state: &AppState, c: &Capture, choice: &FileChoice) -> Result<Source, HttpError> {
    if choice.key.is_empty() {
        let Some(f) = files::get(&state.db, &c.id, &clock::now()).await? else {
            return Err(HttpError::not_found(format!(
                "pcap_id: the file of capture {} is no longer kept (look-back files are kept \
                 {} after their capture)",
                c.id,
                clock::human(state.config.sample_retention)
            )));
        };
        let bytes = state
            .hub
            .vault()
            .open_bytes(&f.pcapng, &samples_context(&c.id))
            .map_err(HttpError::from)?;
        return Ok(Source::Bytes(bytes));
    }
    // The same parser and endpoint policy as every file:// destination: only directories
    // under the server's own --file-root are read.
    let dest = Destination::parse(&c.destination_conf, "destination_conf")
        .map_err(|e| destination::bad(e, "file"))?;
    let opts = destination::store_options(&state.config.endpoints);
    let key = choice.key.clone();
    let reader = tokio::task::spawn_blocking(move || -> Result<ObjectReader, HttpError> {
        let store = Store::open(&dest, &opts, "file").map_err(|e| {
            HttpError::field(
                "file",
                format!(
                    "the server cannot read this capture's directory on its own host ({e}); \
                     a file:// destination is read only where it is local to the server"
                ),
            )
        })?;
        ObjectReader::open(&store, &key).map_err(|e| {
            HttpError::field(
                "file",
                format!(
                    "{} cannot be read on the server's host ({e}); the agents wrote it on \
                     their own hosts, which the server reads only when the directory is \
                     shared with it",
                    store.describe_key(&key)
                ),
            )
        })
    })
    .await
    .map_err(|e| HttpError::field("file", format!("the read did not start: {e}")))??;
    Ok(Source::Object(Box::new(reader)))
}

/// What a scan found.
#[derive(Debug, Default)]
struct Scan {
    rows: Vec<Value>,
    detail: Option<Value>,
    /// Matching packets beyond the page exist.
    more: bool,
    scanned: u64,
    /// The scan stopped at [`MAX_SCANNED_PACKETS`] or [`MAX_SCANNED_BYTES`] before the end.
    capped: bool,
}

fn row(index: u64, p: &Packet<'_>, d: &Dissection) -> Value {
    json!({
        "index": index,
        "time": edgecap_model::ids::rfc3339(p.ts_ns as f64 / 1e9),
        "interface": p.interface_name,
        "src": d.src, "dst": d.dst,
        "src_port": d.src_port, "dst_port": d.dst_port,
        "protocol": d.protocol,
        "length": p.orig_len,
        "captured": p.caplen,
        "info": d.info,
        "payload": d.payload_preview,
    })
}

/// Reads `input` (a pcap or pcapng file) for `ask`, within the bounds.
fn scan(input: impl Read, rules: Option<&[Conjunction]>, a: &Ask) -> Result<Scan, String> {
    let mut r = Reader::new(BufReader::with_capacity(1 << 16, input)).map_err(|e| e.to_string())?;
    let mut s = Scan::default();
    let mut matched = 0u64;
    let mut index = 0u64;
    loop {
        if index >= MAX_SCANNED_PACKETS || r.offset() >= MAX_SCANNED_BYTES {
            s.capped = true;
            break;
        }
        let Some(p) = r.next_packet().map_err(|e| e.to_string())? else {
            break;
        };
        let this = index;
        index += 1;
        s.scanned = index;
        // Filtered and shown while borrowed: nothing is copied out of the reader.
        if let Some(rules) = rules
            && !p.ip.is_some_and(|ip| edgecap_filter::matches(rules, ip))
        {
            continue;
        }
        let shown = match a.packet {
            Some(want) => this == want,
            None if matched >= a.offset.saturating_add(a.limit) => {
                s.more = true;
                break;
            }
            None => matched >= a.offset,
        };
        matched += 1;
        if !shown {
            continue;
        }
        let d = dissect(p.linktype, p.data, p.byte_order);
        if a.packet.is_some() {
            s.detail = Some(detail(this, &p, &d));
            break;
        }
        s.rows.push(row(this, &p, &d));
    }
    Ok(s)
}

fn detail(index: u64, p: &Packet<'_>, d: &Dissection) -> Value {
    let shown = &p.data[..p.data.len().min(MAX_HEX_BYTES)];
    json!({
        "packet": row(index, p, d),
        "layers": d.layers.iter().map(|l| json!({
            "name": l.name, "offset": l.offset, "length": l.len,
            "fields": l.fields.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "hex": hex_dump(shown),
        "hex_bytes": shown.len(),
        "hex_cut": shown.len() < p.data.len(),
    })
}

pub async fn packets(
    caller: Caller,
    State(state): State<AppState>,
    PathId(id): PathId,
    QueryPairs(q): QueryPairs,
) -> Result<Response, HttpError> {
    let a = ask(&q)?;
    let rules = a
        .filter
        .as_deref()
        .map(edgecap_model::request::display_filter)
        .transpose()
        .map_err(|e| HttpError::bad_request(vec![e]))?;
    let c = crate::api::pcaps::find(&state, &caller, &id).await?;
    let all = choices(&c)?;
    let choice = match &a.file {
        None => all[0].clone(),
        Some(name) => all
            .iter()
            .find(|f| &f.name == name)
            .cloned()
            .ok_or_else(|| {
                let names: Vec<&str> = all.iter().map(|f| f.name.as_str()).collect();
                HttpError::field(
                    "file",
                    format!(
                        "capture {} has no file {name:?} (it has: {})",
                        c.id,
                        names.join(", ")
                    ),
                )
            })?,
    };
    let source = open(&state, &c, &choice).await?;
    let ask2 = Ask {
        filter: None,
        file: None,
        ..a
    };
    let result = tokio::task::spawn_blocking(move || match source {
        Source::Bytes(b) => scan(&b[..], rules.as_deref(), &ask2).map(|s| (s, ask2)),
        Source::Object(o) => scan(o, rules.as_deref(), &ask2).map(|s| (s, ask2)),
    })
    .await
    .map_err(|e| HttpError::field("file", format!("the read failed: {e}")))?;
    let (s, a2) = result.map_err(|e| {
        HttpError::field(
            "file",
            format!("the file cannot be read as pcap or pcapng: {e}"),
        )
    })?;
    if let Some(want) = a2.packet {
        let Some(detail) = s.detail else {
            return Err(HttpError::field(
                "packet",
                format!(
                    "no packet {want} in this file{}{} (packets are numbered from 0)",
                    if a.filter.is_some() {
                        " that the display filter keeps"
                    } else {
                        ""
                    },
                    if s.capped {
                        format!(
                            " within the first {} packets the server read (it reads at most \
                             {MAX_SCANNED_PACKETS} packets or {} MiB a request)",
                            s.scanned,
                            MAX_SCANNED_BYTES >> 20
                        )
                    } else {
                        String::new()
                    }
                ),
            ));
        };
        return Ok(ok(detail));
    }
    Ok(ok(json!({
        "capture": c.id,
        "files": all.iter().map(|f| json!({"name": f.name, "key": f.key})).collect::<Vec<_>>(),
        "file": choice.name,
        "filter": a.filter,
        "offset": a2.offset,
        "limit": a2.limit,
        "packets": s.rows,
        "more": s.more,
        "scanned": s.scanned,
        "capped": s.capped,
        "max_scanned_packets": MAX_SCANNED_PACKETS,
        "max_scanned_bytes": MAX_SCANNED_BYTES,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::body::tests::q;
    use edgecap_pcap::{Format, Interface, Section, Writer};

    #[test]
    fn the_query_is_read_with_its_bounds_named() {
        let a = ask(&q(&[("filter", " udp "), ("offset", "10")])).unwrap();
        assert_eq!(
            (a.filter.as_deref(), a.offset, a.limit),
            (Some("udp"), 10, PAGE)
        );
        let e = ask(&q(&[("limit", "501"), ("nope", "1"), ("offset", "-1")])).unwrap_err();
        let m: Vec<&str> = e.errors.iter().map(|e| e.message.as_str()).collect();
        assert!(
            m.iter()
                .any(|m| m.starts_with("limit: \"501\" is not a whole number in 1-500"))
        );
        assert!(
            m.iter()
                .any(|m| m.starts_with("nope: unknown query parameter"))
        );
        assert!(m.iter().any(|m| m.starts_with("offset: ")));
        assert!(ask(&q(&[("file", "a"), ("file", "b")])).is_err());
    }

    fn capture(
        kind: &str,
        dest: &str,
        merged: Option<&str>,
        files: &[(&str, Option<&str>)],
    ) -> Capture {
        serde_json::from_value(json!({
            "id": "0123456789abcdef0123456789abcdef", "type": kind, "system": "magic-transit",
            "status": "success", "submitted": "2026-12-06T00:00:00.000000Z", "time_limit": 60,
            "filter_v1": {}, "destination_conf": dest, "packets_captured": 0, "points": [],
            "format": "pcapng", "bytes_captured": 0, "packets_lost": 0, "merged_file": merged,
            "node_results": files.iter().map(|(n, f)| json!({"node": n, "status": "success",
                "packets": 0, "bytes": 0, "lost": 0, "file": f})).collect::<Vec<_>>(),
        }))
        .unwrap()
    }

    #[test]
    fn which_files_the_view_reads() {
        // A look-back capture kept by the server: its one file.
        let c = capture("simple", "", None, &[("a", None)]);
        assert_eq!(choices(&c).unwrap()[0].name, "samples");
        // A file:// directory: the merged file first, then each node's that has one.
        let id = "0123456789abcdef0123456789abcdef";
        let key = |n: &str| format!("{id}/{n}.pcapng");
        let (m, a, c) = (key("merged"), key("a"), key("c"));
        let cap = capture(
            "full",
            "file:///srv/pcaps",
            Some(&m),
            &[("a", Some(&a)), ("b", None), ("c", Some(&c))],
        );
        let names: Vec<String> = choices(&cap).unwrap().into_iter().map(|f| f.name).collect();
        assert_eq!(names, ["merged", "a", "c"]);
        // A key outside the capture's own directory (another capture's) is never read.
        let other = "fedcba9876543210fedcba9876543210/a.pcapng";
        let cap = capture(
            "full",
            "file:///srv/pcaps",
            None,
            &[("a", Some(other)), ("c", Some(&c))],
        );
        let names: Vec<String> = choices(&cap).unwrap().into_iter().map(|f| f.name).collect();
        assert_eq!(names, ["c"]);
        // A bucket is not read here; a directory without files yet says so. Both name `file`.
        for c in [
            capture(
                "full",
                "s3://pcaps/edge?region=eu-west-1",
                None,
                &[("a", Some("k"))],
            ),
            capture("full", "file:///srv/pcaps", None, &[("a", None)]),
        ] {
            let e = choices(&c).unwrap_err();
            assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST);
            assert!(e.errors[0].message.starts_with("file: "), "{:?}", e.errors);
        }
    }

    /// A pcapng of `n` UDP packets to port 53 (odd) or 80 (even), each carrying `MARK-<i>`.
    fn file(n: u32) -> Vec<u8> {
        let mut w = Writer::new(
            Vec::new(),
            Format::Pcapng,
            &Section::default(),
            &[Interface::raw("ord01/pre-firewall", 65_535)],
        )
        .unwrap();
        for i in 0..n {
            let payload = format!("MARK-{i}");
            let dport: u16 = if i % 2 == 1 { 53 } else { 80 };
            let p =
                edgecap_lab::packet::Packet::udp([198, 18, 0, 1], [198, 19, 0, 2], 40000, dport)
                    .payload(payload)
                    .build()
                    .unwrap();
            w.write_packet(
                0,
                1_700_000_000_000_000_000 + u64::from(i),
                &p,
                p.len() as u32,
                edgecap_pcap::Direction::Unknown,
                0,
            )
            .unwrap();
        }
        w.finish().unwrap()
    }

    /// A big-endian classic pcap of NFLOG frames (linktype 239), whose TLV lengths are in the
    /// file's byte order: each frame holds `file(1)`'s UDP packet to port 80.
    fn nflog_big_endian(n: u32) -> Vec<u8> {
        let ip = &file(1)[..];
        let mut r = Reader::new(ip).unwrap();
        let ip = r.next_packet().unwrap().unwrap().data.to_vec();
        let mut f = Vec::new();
        for v in [0xA1B2_C3D4u32, 0x0002_0004, 0, 0, 65_535, 239] {
            f.extend_from_slice(&v.to_be_bytes());
        }
        let mut frame = vec![2, 0, 0, 5];
        for (kind, value) in [(10u16, &b"p0\0"[..]), (9, &ip[..])] {
            frame.extend_from_slice(&((4 + value.len()) as u16).to_be_bytes());
            frame.extend_from_slice(&kind.to_be_bytes());
            frame.extend_from_slice(value);
            frame.resize(frame.len().div_ceil(4) * 4, 0);
        }
        for i in 0..n {
            for v in [1_700_000_000, i, frame.len() as u32, frame.len() as u32] {
                f.extend_from_slice(&v.to_be_bytes());
            }
            f.extend_from_slice(&frame);
        }
        f
    }

    fn layer_names(detail: &Value) -> Vec<&str> {
        detail["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["name"].as_str().unwrap())
            .collect()
    }

    #[test]
    fn frames_are_dissected_in_their_files_byte_order() {
        let f = nflog_big_endian(2);
        let s = page(&f, Some("udp dst port 80"), 0, PAGE);
        assert_eq!(s.rows.len(), 2, "the filter sees the IP packets: {s:?}");
        assert_eq!(s.rows[0]["dst_port"], 80);
        assert_eq!(s.rows[0]["payload"], "MARK-0");
        let d = packet_detail(&f, 1);
        let layers = layer_names(&d);
        assert!(layers.ends_with(&["IPv4", "UDP"]), "{layers:?}");
        assert_eq!(d["packet"]["src"], "198.18.0.1");
    }

    /// Packet `n`'s detail (tree and hex), unfiltered.
    fn packet_detail(f: &[u8], n: u64) -> Value {
        let a = Ask {
            packet: Some(n),
            limit: PAGE,
            ..Ask::default()
        };
        scan(f, None, &a).unwrap().detail.unwrap()
    }

    fn page(f: &[u8], filter: Option<&str>, offset: u64, limit: u64) -> Scan {
        let rules = filter.map(|t| edgecap_model::request::display_filter(t).unwrap());
        let a = Ask {
            offset,
            limit,
            ..Ask::default()
        };
        scan(f, rules.as_deref(), &a).unwrap()
    }

    #[test]
    fn pages_filters_and_details() {
        let f = file(10);
        let s = page(&f, None, 0, 4);
        let marks: Vec<&str> = s
            .rows
            .iter()
            .map(|r| r["payload"].as_str().unwrap())
            .collect();
        assert_eq!(marks, ["MARK-0", "MARK-1", "MARK-2", "MARK-3"]);
        assert!(s.more && !s.capped);
        assert_eq!(s.rows[1]["interface"], "ord01/pre-firewall");
        assert_eq!(s.rows[1]["dst_port"], 53);
        assert_eq!(s.rows[1]["info"], "UDP 40000 > 53, length 6");
        // The display filter keeps the DNS packets; the second page of two.
        let s = page(&f, Some("udp dst port 53"), 2, 2);
        let idx: Vec<u64> = s
            .rows
            .iter()
            .map(|r| r["index"].as_u64().unwrap())
            .collect();
        assert_eq!(idx, [5, 7], "file indexes of the 3rd and 4th DNS packets");
        assert!(s.more);
        let s = page(&f, Some("udp dst port 53"), 4, 2);
        assert_eq!(s.rows.len(), 1);
        assert!(!s.more);
        // One packet's tree and hex.
        let d = packet_detail(&f, 3);
        let layers = layer_names(&d);
        assert_eq!(layers, ["IPv4", "UDP"]);
        assert!(
            d["hex"][0]
                .as_str()
                .unwrap()
                .starts_with("0000  45 00 00 22")
        );
        assert_eq!(d["packet"]["payload"], "MARK-3");
        // A file longer than a request reads: the scan stops there and says so.
        let big = file(MAX_SCANNED_PACKETS as u32 + 1);
        let s = page(&big, Some("tcp"), 0, PAGE);
        assert!(s.rows.is_empty() && s.capped, "{s:?}");
        assert_eq!(s.scanned, MAX_SCANNED_PACKETS);
        assert!(
            !page(&f, Some("tcp"), 0, PAGE).capped,
            "a short file is read to its end"
        );
        // Garbage is an error, not a panic.
        assert!(scan(&b"not a capture file"[..], None, &Ask::default()).is_err());
    }
}
