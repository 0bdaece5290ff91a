//! The dashboard (`crate::dashboard`): sessions, the cookie, CSRF and the CSP in process on
//! both databases; and the whole thing in a real headless Chromium (Debian's `chromium`,
//! driven by Playwright from PyPI in /opt/edgecap-browser, installed by scripts/test; or set
//! EDGECAP_BROWSER_PYTHON) against a listening server with simulated agents
//! (`dashboard_browser.py`). Under CI=true a missing browser is a failure. The browser test
//! writes the screenshots in docs/screenshots/.

use std::path::Path;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use edgecap_server::sim::{self, SimAgent};
use http_body_util::BodyExt;
use tower::ServiceExt;

use crate::both_databases;
use crate::common::{Backend, Harness, run_python};

both_databases!(
    dashboard_sessions_act_for_their_account_and_end,
    a_token_holds_a_bounded_number_of_sessions,
    the_packet_view_pages_filters_and_decodes_a_capture,
    the_packet_view_reads_each_nodes_file_of_a_local_directory,
);

mod events;

mod browser {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_dashboard_works_in_a_real_browser() {
        super::the_dashboard_works_in_a_real_browser().await
    }
}

const HOST: &str = "127.0.0.1:8080";
const ORIGIN: &str = "http://127.0.0.1:8080";

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

/// One request through the router with the given headers.
async fn send(
    h: &Harness,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Answer {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, HOST);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let response = edgecap_server::app(h.state.clone())
        .oneshot(req.body(Body::from(body.to_owned())).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

fn header(a: &Answer, name: header::HeaderName) -> &str {
    a.headers.get(name).map_or("", |v| v.to_str().unwrap_or(""))
}

fn header_of(r: &axum::response::Response, name: header::HeaderName) -> &str {
    r.headers()
        .get(name)
        .map_or("", |v| v.to_str().unwrap_or(""))
}

const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");

/// Logs in with `token`; the cookie header to send afterwards.
async fn log_in(h: &Harness, token: &str) -> String {
    let a = send(
        h,
        "POST",
        "/login",
        &[FORM, ("origin", ORIGIN)],
        &format!("token={token}"),
    )
    .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    assert_eq!(header(&a, header::LOCATION), "/");
    let set = header(&a, header::SET_COOKIE).to_owned();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    assert!(!set.contains(token), "the token is never the cookie: {set}");
    set.split(';').next().unwrap().to_owned()
}

async fn dashboard_sessions_act_for_their_account_and_end(b: Backend) {
    let Some(h) = Harness::new(b).await else {
        return;
    };
    // No session: the pages send to the login, which carries the CSP.
    let a = send(&h, "GET", "/", &[], "").await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert_eq!(header(&a, header::LOCATION), "/login");
    let a = send(&h, "GET", "/login", &[], "").await;
    assert_eq!(a.status, StatusCode::OK);
    let csp = header(&a, header::CONTENT_SECURITY_POLICY);
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert!(!a.body.contains("<script>"), "no inline script: {}", a.body);

    // A wrong token: 401 with the reason on the page, no cookie.
    let a = send(
        &h,
        "POST",
        "/login",
        &[FORM, ("origin", ORIGIN)],
        "token=ecp_nope",
    )
    .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert!(a.body.contains("not a valid API token"), "{}", a.body);
    assert!(a.headers.get(header::SET_COOKIE).is_none());
    // A login posted from another site is refused before the token is looked at.
    let a = send(
        &h,
        "POST",
        "/login",
        &[FORM, ("origin", "http://evil.example")],
        &format!("token={}", h.token),
    )
    .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.body);
    assert!(a.headers.get(header::SET_COOKIE).is_none());

    let cookie = log_in(&h, &h.token).await;
    let page = send(&h, "GET", "/", &[("cookie", &cookie)], "").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body
            .contains(&format!("data-account=\"{}\"", h.account.id))
    );
    assert!(
        !page.body.contains(&h.token),
        "the token is never in a page"
    );

    // The API with the cookie: the session's account only.
    let a = send(&h, "GET", &h.acc("pcaps"), &[("cookie", &cookie)], "").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let theirs = format!("/client/v4/accounts/{}/pcaps", h.other.id);
    let a = send(&h, "GET", &theirs, &[("cookie", &cookie)], "").await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.body);

    // Writes with the cookie: only from the same origin; then the API's own validation.
    let json = ("content-type", "application/json");
    let body = h.create_body("ORD", serde_json::json!({"time_limit": -5}));
    let a = send(
        &h,
        "POST",
        &h.acc("pcaps"),
        &[("cookie", &cookie), json],
        &body,
    )
    .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "no Origin: {}", a.body);
    let cross = [
        ("cookie", cookie.as_str()),
        json,
        ("sec-fetch-site", "cross-site"),
    ];
    let a = send(&h, "POST", &h.acc("pcaps"), &cross, &body).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.body);
    assert!(a.body.contains("cross-site"), "{}", a.body);
    let same = [
        ("cookie", cookie.as_str()),
        json,
        ("sec-fetch-site", "same-origin"),
    ];
    let a = send(&h, "POST", &h.acc("pcaps"), &same, &body).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.body);
    assert!(
        a.body.contains("/time_limit"),
        "the field is named: {}",
        a.body
    );

    // A capture's events: a stream per page, at most MAX_STREAMS per session at once.
    let _node = h.node("ord01", &[("site", "ORD")], &["pre-firewall"]);
    let id = h.create("ORD", serde_json::json!({})).await;
    let events = format!("/ui/accounts/{}/pcaps/{id}/events", h.account.id);
    let open = |cookie: String, path: String| {
        let state = h.state.clone();
        async move {
            let req = Request::builder()
                .uri(path)
                .header(header::HOST, HOST)
                .header("cookie", cookie)
                .body(Body::empty())
                .unwrap();
            edgecap_server::app(state).oneshot(req).await.unwrap()
        }
    };
    let mut streams = Vec::new();
    for _ in 0..edgecap_server::dashboard::events::MAX_STREAMS {
        let r = open(cookie.clone(), events.clone()).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(header_of(&r, header::CONTENT_TYPE), "text/event-stream");
        streams.push(r);
    }
    let r = open(cookie.clone(), events.clone()).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    // The first event is the capture as GET answers it.
    let mut first = streams.pop().unwrap().into_body();
    let frame = first.frame().await.unwrap().unwrap().into_data().unwrap();
    let text = String::from_utf8_lossy(&frame).into_owned();
    assert!(
        text.starts_with("event: capture\n") && text.contains(&id),
        "{text}"
    );
    drop(first);
    let r = open(cookie.clone(), events.clone()).await;
    assert_eq!(r.status(), StatusCode::OK, "a closed stream frees its slot");
    drop((r, streams));
    // Another account's session gets the API's answers: no such capture.
    let theirs = log_in(&h, &h.other_token).await;
    let path = format!("/ui/accounts/{}/pcaps/{id}/events", h.other.id);
    assert_eq!(open(theirs, path).await.status(), StatusCode::NOT_FOUND);

    // Logout ends the session everywhere (it is in the database, not in this process).
    let a = send(
        &h,
        "POST",
        "/logout",
        &[("cookie", &cookie), ("origin", ORIGIN)],
        "",
    )
    .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert!(header(&a, header::SET_COOKIE).contains("Max-Age=0"));
    let a = send(&h, "GET", &h.acc("pcaps"), &[("cookie", &cookie)], "").await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{}", a.body);
    let a = send(&h, "GET", "/traffic", &[("cookie", &cookie)], "").await;
    assert_eq!(header(&a, header::LOCATION), "/login");

    // A session ends with its token.
    let cookie = log_in(&h, &h.token).await;
    let tokens = edgecap_server::db::tokens::list_for_account(&h.state.db, &h.account.id)
        .await
        .unwrap();
    for t in tokens {
        edgecap_server::db::tokens::delete(&h.state.db, &h.account.id, &t.id)
            .await
            .unwrap();
    }
    let a = send(&h, "GET", &h.acc("pcaps"), &[("cookie", &cookie)], "").await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{}", a.body);
    let a = send(&h, "GET", "/", &[("cookie", &cookie)], "").await;
    assert_eq!(header(&a, header::LOCATION), "/login");
}

async fn the_dashboard_works_in_a_real_browser() {
    let Some(python) = edgecap_testkit::browser::python() else {
        return;
    };
    let Some(h) = Harness::new(Backend::Sqlite).await else {
        return;
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(edgecap_server::run(listener, h.state.clone(), async {
        let _ = stopped.await;
    }));
    // Each node reports 2 minutes of traffic (rollups as agents send them): a steady rate to
    // one destination each. They end on a boundary of the fleet page's 30 s steps (3 nodes),
    // so its newest whole step with traffic is full whenever the browser looks, and the rate
    // it shows is the node's own (a step half past the end would average in quiet seconds).
    let now = edgecap_server::clock::unix_now() as i64;
    let end = (now - 1) - (now - 1).rem_euclid(30);
    let nodes = [
        ("ord01", "ORD", 50, "198.18.1.1"),
        ("ord02", "ORD", 20, "198.18.2.2"),
        ("lhr01", "LHR", 5, "198.18.3.3"),
    ];
    for (name, site, pps, dst) in nodes {
        let hello = sim::hello(name, &[("site", site)], &["pre-firewall"]);
        let (mut agent, _) = SimAgent::connect(&base, &h.agent_token, &hello)
            .await
            .unwrap();
        let seconds: Vec<_> = (end - 120..end)
            .map(|t| crate::traffic::second(t, "pre-firewall", pps, dst))
            .collect();
        for chunk in seconds.chunks(edgecap_model::protocol::MAX_ROLLUP_SECONDS) {
            agent.send_rollups(chunk).await.unwrap();
        }
        // Its look-back ring: one sampled packet a second of that traffic, carrying a
        // marker, answered for the query's window and filter (as an agent's ring does).
        let ring = move |q: &edgecap_model::lookback::RingQuery| {
            let rules = q
                .filter
                .as_deref()
                .map(|f| edgecap_model::request::display_filter(f).unwrap());
            (end - 120..end)
                .map(|t| ring_sample(name, t, dst))
                .filter(|s| (q.from_ns..q.to_ns).contains(&s.ts_ns))
                .filter(|s| {
                    let ip = edgecap_model::lookback::unhex(&s.data).unwrap();
                    rules
                        .as_ref()
                        .is_none_or(|r| edgecap_filter::matches(r, &ip))
                })
                .collect()
        };
        let script = sim::Script {
            ring: Some(std::sync::Arc::new(ring)),
            ..sim::Script::default()
        };
        let (seen, _seen_rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(sim::respond_with(
            agent,
            Duration::from_secs(1),
            seen,
            script,
        ));
    }
    let capture = h.create("ORD", serde_json::json!({})).await;
    // The rollups are written before the browser looks.
    tokio::time::sleep(Duration::from_millis(500)).await;
    h.state.hub.rollups().barrier().await;
    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let env = vec![
        ("EDGECAP_DEST", h.file_dest()),
        ("EDGECAP_BASE", base.clone()),
        ("EDGECAP_TOKEN", h.token.clone()),
        ("EDGECAP_OTHER_TOKEN", h.other_token.clone()),
        ("EDGECAP_CAPTURE", capture.clone()),
        ("EDGECAP_SCREENSHOTS", shots.display().to_string()),
    ];
    let v = run_python(python, "dashboard_browser.py", env, "the browser script").await;
    let s = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
    // Without a session: the login page, under the CSP.
    assert_eq!(s("no_session_url"), format!("{base}/login"), "{v}");
    assert!(s("csp").contains("script-src 'self'"), "{v}");
    assert!(s("bad_login").contains("not a valid API token"), "{v}");
    assert_eq!(v["cookies_after_bad_login"], 0, "{v}");
    // Logged in: the fleet's nodes; the cookie is HttpOnly and Strict, and not the token.
    assert_eq!(s("fleet_url"), format!("{base}/"), "{v}");
    let mut nodes: Vec<String> = serde_json::from_value(v["fleet_nodes"].clone()).unwrap();
    nodes.sort();
    assert_eq!(nodes, ["lhr01", "ord01", "ord02"], "{v}");
    assert!(s("fleet_text").contains("site=ORD"), "{v}");
    assert_eq!(v["cookie"]["httpOnly"], true, "{v}");
    assert_eq!(v["cookie"]["sameSite"], "Strict", "{v}");
    assert_eq!(v["cookie"]["looks_like_token"], false, "{v}");
    assert_eq!(s("cookie_visible_to_script"), "", "{v}");
    // Captures: listed with its status; bad input shows the server's error by the field.
    assert_eq!(s("listed_status"), "running", "{v}");
    assert!(s("field_error").starts_with("time_limit:"), "{v}");
    assert!(
        !s("field_error").contains("string"),
        "sent as a number: {v}"
    );
    assert_eq!(s("url_after_bad_input"), format!("{base}/captures"), "{v}");
    // Detail: per-node rows; the stop's outcome arrives pushed, without a reload.
    assert_eq!(s("detail_status"), "running", "{v}");
    let mut detail: Vec<String> = serde_json::from_value(v["detail_nodes"].clone()).unwrap();
    detail.sort();
    assert_eq!(detail, ["ord01", "ord02"], "{v}");
    assert_eq!(s("pushed_status"), "success", "{v}");
    assert_eq!(v["reloads"], 1, "{v}");
    // Traffic: a line per node, the heavy hitters; from the top one, a look-back capture in
    // one click, and a live capture form pre-filled, its estimate shown before it starts.
    let mut lines: Vec<String> = serde_json::from_value(v["traffic_series"].clone()).unwrap();
    lines.sort();
    assert_eq!(lines, ["lhr01", "ord01", "ord02"], "{v}");
    assert_eq!(
        v["hitters"][0], "198.18.1.1",
        "the busiest destination first: {v}"
    );
    assert!(
        s("fleet_rate_ord01").starts_with("50 pps"),
        "ord01 sends 50/s: {v}"
    );
    assert!(s("zoomed_url").contains("since="), "the brush zooms: {v}");
    // The chart's numbers, as its table writes them: ord01's 50 packets a second (a step only
    // partly inside its 2 minutes shows less, none more).
    let rates: Vec<f64> = v["chart_rates_ord01"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let t = t.as_str().unwrap();
            t.strip_suffix(" pps").unwrap_or(t).parse().unwrap()
        })
        .collect();
    assert!(
        rates.contains(&50.0) && rates.iter().all(|r| *r <= 50.0),
        "{v}"
    );
    assert!(
        s("lookback_url").starts_with(&format!("{base}/captures/")),
        "{v}"
    );
    assert_eq!(s("lookback_type"), "simple", "{v}");
    assert_eq!(s("lookback_filter"), "dst host 198.18.1.1", "{v}");
    assert_eq!(s("live_filter"), "dst host 198.18.1.1", "{v}");
    assert!(s("live_estimate").starts_with("Estimate:"), "{v}");
    assert!(s("live_url").contains("/captures?"), "nothing started: {v}");
    // The look-back capture's packets: the sampled packets of ord01's traffic to the hitter,
    // each with its marker, 100 a page; a display filter narrows them on the server; a row
    // opens its headers; a bad filter shows the server's message under the field.
    let marks: Vec<String> = serde_json::from_value(v["packet_payloads"].clone()).unwrap();
    assert_eq!(marks.len(), 100, "a full first page: {v}");
    assert!(
        marks.iter().all(|m| m.starts_with("MARK-ord01-")),
        "only ord01 sends to 198.18.1.1: {v}"
    );
    assert!(s("packet_note").contains("more follow"), "{v}");
    let narrowed: Vec<String> = serde_json::from_value(v["filtered_payloads"].clone()).unwrap();
    assert!(
        !narrowed.is_empty() && narrowed.len() < marks.len(),
        "the filter narrows: {v}"
    );
    let ports: Vec<String> = serde_json::from_value(v["filtered_sources"].clone()).unwrap();
    assert!(ports.iter().all(|p| p.ends_with(":40000")), "{v}");
    assert_eq!(
        v["packet_layers"],
        serde_json::json!(["IPv4", "TCP"]),
        "the header tree: {v}"
    );
    assert!(s("packet_hex").starts_with("0000  45 00"), "{v}");
    assert!(s("bad_filter_error").starts_with("filter: "), "{v}");
    // Triggers: a bad field's error under it, nothing created; a good one listed.
    assert!(
        s("trigger_field_error").starts_with("condition.above:"),
        "{v}"
    );
    assert_eq!(v["triggers_after_bad"], 0, "{v}");
    assert_eq!(v["trigger_names"], serde_json::json!(["udp flood"]), "{v}");
    // Buckets: the bad destination's error under the field.
    assert!(
        s("bucket_field_error").starts_with("destination_conf:"),
        "{v}"
    );
    // A directory's ownership: the challenge file named, written where the page says; a wrong
    // token refused by its field; the file's token validates.
    let file = s("challenge_file");
    assert!(
        file.starts_with("ownership-challenge-") && file.ends_with(".txt"),
        "{v}"
    );
    assert_eq!(
        s("challenge_place"),
        format!("{}/{file}", h.file_dest()),
        "{v}"
    );
    assert!(
        s("challenge_error").starts_with("ownership_challenge:"),
        "{v}"
    );
    assert_eq!(s("ownership_status"), "success", "{v}");
    assert_eq!(v["triggers_after_delete"], 0, "{v}");
    // The other account sees none of it.
    assert_eq!(v["other_triggers"], 0, "{v}");
    assert!(s("other_packets").contains("no capture"), "{v}");
    assert_eq!(v["other_sees_capture"], false, "{v}");
    assert_eq!(v["other_rows"], 0, "{v}");
    assert!(
        s("other_detail").contains("not found") || s("other_detail").contains("no capture"),
        "{v}"
    );
    // Logged out: back to the login.
    assert_eq!(s("after_logout_url"), format!("{base}/login"), "{v}");
    assert_eq!(v["console_errors"], serde_json::json!([]), "{v}");
    for view in [
        "login", "fleet", "captures", "capture", "traffic", "packets", "packet", "triggers",
        "buckets",
    ] {
        assert!(shots.join(format!("{view}.png")).exists(), "{view}.png");
    }
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

/// One sampled packet of `node`'s traffic at second `t`: TCP from 198.18.0.1 (source ports
/// 40000-40004 in turn) to `dst` port 443, carrying `MARK-<node>-<t % 1000>`.
fn ring_sample(node: &str, t: i64, dst: &str) -> edgecap_model::lookback::WireSample {
    let marker = format!("MARK-{node}-{:03}", t % 1000);
    let total = 40 + marker.len();
    let d: std::net::Ipv4Addr = dst.parse().unwrap();
    let mut ip = vec![
        0x45,
        0,
        0,
        total as u8,
        0,
        0,
        0x40,
        0,
        64,
        6,
        0,
        0,
        198,
        18,
        0,
        1,
    ];
    ip.extend_from_slice(&d.octets());
    let sport = 40000 + (t % 5) as u16;
    ip.extend_from_slice(&sport.to_be_bytes());
    ip.extend_from_slice(&[
        1, 0xbb, 0, 0, 0, 1, 0, 0, 0, 1, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0,
    ]);
    ip.extend_from_slice(marker.as_bytes());
    edgecap_model::lookback::WireSample {
        ts_ns: t as u64 * 1_000_000_000 + 500_000_000,
        orig_len: total as u32,
        point: "pre-firewall".into(),
        ifindex: 2,
        one_in: 1,
        data: edgecap_model::lookback::hex(&ip),
    }
}

/// Logging in again and again with one token never grows the table past the per-token cap;
/// the newest sessions stay open.
async fn a_token_holds_a_bounded_number_of_sessions(b: Backend) {
    use edgecap_server::db::sessions::{self, MAX_SESSIONS_PER_TOKEN};
    let Some(h) = Harness::new(b).await else {
        return;
    };
    let mut opened = Vec::new();
    for _ in 0..MAX_SESSIONS_PER_TOKEN + 8 {
        let s = sessions::open(&h.state.db, &h.token, Duration::from_secs(600))
            .await
            .unwrap()
            .unwrap();
        opened.push(s);
    }
    assert_eq!(h.count("dashboard_sessions").await, MAX_SESSIONS_PER_TOKEN);
    let newest = opened.last().unwrap();
    assert!(
        sessions::close(&h.state.db, newest).await.unwrap(),
        "the newest session is open"
    );
}

/// An IPv4/UDP sample to `dport` carrying `marker`: what a ring keeps of a packet.
fn marked_sample(ts_ns: u64, dport: u16, marker: &str) -> edgecap_model::lookback::WireSample {
    let ip = edgecap_lab::packet::Packet::udp([198, 18, 0, 1], [198, 19, 0, 1], 40000, dport)
        .payload(marker.as_bytes())
        .build()
        .unwrap();
    let total = ip.len();
    edgecap_model::lookback::WireSample {
        ts_ns,
        orig_len: total as u32,
        point: "pre-firewall".into(),
        ifindex: 2,
        one_in: 1,
        data: edgecap_model::lookback::hex(&ip),
    }
}

/// A simple capture of `n` marked samples from `node`, a new node (`extra` goes into the
/// body); its id.
async fn simple_capture(h: &Harness, node: &str, n: u64, extra: serde_json::Value) -> String {
    let mut node = h.node(node, &[("site", "fra")], &["pre-firewall"]);
    let mut body = serde_json::json!({"type": "simple", "system": "magic-transit",
        "time_limit": 60, "packet_limit": 1000});
    for (k, v) in extra.as_object().cloned().unwrap_or_default() {
        body[k] = v;
    }
    let body = body.to_string();
    let path = h.acc("pcaps");
    let create = h.call("POST", &path, Some(&body));
    let answer = async {
        // No query at all: the create's answer says why.
        let q = match tokio::time::timeout(Duration::from_secs(3), node.rx.recv()).await {
            Ok(Some(edgecap_model::ServerMsg::Query { query })) => query,
            _ => return,
        };
        let samples = (0..n)
            .map(|i| {
                let dport = if i % 2 == 0 { 53 } else { 443 };
                marked_sample(q.from_ns + i * 1000, dport, &format!("MARK-{i:04}"))
            })
            .collect::<Vec<_>>();
        let head = edgecap_model::lookback::AnswerHead {
            matched: n,
            est_packets: n,
            est_bytes: n * 40,
            thinned_by: 1.0,
            periods: vec![],
            reach_start: Some(0),
        };
        for answer in edgecap_model::lookback::RingAnswer::chunked(&q.query_id, head, samples) {
            node.session
                .handle(edgecap_model::AgentMsg::Answer { answer });
        }
    };
    let ((s, v), ()) = tokio::join!(create, answer);
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["result"]["status"], "success", "{v}");
    v["result"]["id"].as_str().unwrap().to_owned()
}

fn payloads(v: &serde_json::Value) -> Vec<String> {
    v["result"]["packets"]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|p| p["payload"].as_str().unwrap_or_default().to_owned())
        .collect()
}

async fn the_packet_view_pages_filters_and_decodes_a_capture(b: Backend) {
    let Some(h) = Harness::new(b).await else {
        return;
    };
    // Two look-back requests in this test (the default allows 1 a minute).
    let more = edgecap_server::quota::Changes {
        simple_per_minute: Some(Some(10)),
        ..Default::default()
    };
    edgecap_server::quota::set(&h.state.db, &h.account.id, more)
        .await
        .unwrap();
    let id = simple_capture(&h, "edge-a", 250, serde_json::json!({})).await;
    let ui = |q: &str| format!("/ui/accounts/{}/pcaps/{id}/packets{q}", h.account.id);
    // The first page: the default size, in time order, with the summary and the marker.
    let (s, v) = h.call("GET", &ui(""), None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let marks = payloads(&v);
    assert_eq!(marks.len() as u64, edgecap_server::dashboard::packets::PAGE);
    assert_eq!(marks[0], "MARK-0000");
    assert_eq!(marks[99], "MARK-0099");
    assert_eq!(v["result"]["more"], true);
    let first = &v["result"]["packets"][0];
    assert_eq!(first["interface"], "edge-a/pre-firewall", "{first}");
    assert_eq!(first["src"], "198.18.0.1");
    assert_eq!(first["dst_port"], 53);
    assert_eq!(first["protocol"], "UDP");
    assert_eq!(first["info"], "UDP 40000 > 53, length 9");
    // A display filter, by the server's matcher, and the last page of what it keeps.
    let (s, v) = h
        .call(
            "GET",
            &ui("?filter=udp%20dst%20port%20443&offset=100"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let marks = payloads(&v);
    assert_eq!(marks.len(), 25, "125 of 250 go to 443: {v}");
    assert_eq!(marks[0], "MARK-0201");
    assert_eq!(v["result"]["more"], false);
    // One packet: the header tree and the hex.
    let (s, v) = h.call("GET", &ui("?packet=7"), None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let names: Vec<&str> = v["result"]["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    // One interface in the file: raw IP, no link layer.
    assert_eq!(names, ["IPv4", "UDP"], "{v}");
    assert!(
        v["result"]["hex"][0]
            .as_str()
            .unwrap()
            .starts_with("0000  45 00 00 25"),
        "{v}"
    );
    // A bad filter and an oversized one: the API's 400 naming `filter`, as POST /pcaps says.
    for bad in [
        "udp and and".to_owned(),
        "udp or ".repeat(edgecap_filter::MAX_EXPR_LEN / 7 + 2) + "udp",
    ] {
        let q = format!("?filter={}", bad.replace(' ', "%20"));
        let (s, v) = h.call("GET", &ui(&q), None).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        assert_eq!(v["errors"][0]["source"]["pointer"], "/filter", "{v}");
        let body = serde_json::json!({"type": "simple", "system": "magic-transit",
            "time_limit": 60, "packet_limit": 10, "filter": bad})
        .to_string();
        let (_, api) = h.call("POST", &h.acc("pcaps"), Some(&body)).await;
        assert_eq!(v["errors"][0]["message"], api["errors"][0]["message"]);
    }
    let (s, v) = h.call("GET", &ui("?limit=501"), None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["errors"][0]["source"]["pointer"], "/limit", "{v}");
    // Another account: the capture does not exist for it.
    let theirs = format!("/ui/accounts/{}/pcaps/{id}/packets", h.other.id);
    let (s, v) = h
        .call_as(Some(&h.other_token.clone()), "GET", &theirs, None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");

    // A look-back capture written to a file:// directory on the server's host: read there.
    let id = simple_capture(
        &h,
        "edge-b",
        3,
        serde_json::json!({"destination_conf": h.file_dest(), "nodes": ["edge-b"]}),
    )
    .await;
    let (s, v) = h
        .call(
            "GET",
            &format!("/ui/accounts/{}/pcaps/{id}/packets", h.account.id),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(payloads(&v), ["MARK-0000", "MARK-0001", "MARK-0002"]);
    assert_eq!(v["result"]["file"], "merged");
    // The file gone from the server's host: a 400 naming `file` that says where it looked.
    let key = v["result"]["files"][0]["key"].as_str().unwrap().to_owned();
    std::fs::remove_file(h.dest.join(&key)).unwrap();
    let (s, v) = h
        .call(
            "GET",
            &format!("/ui/accounts/{}/pcaps/{id}/packets", h.account.id),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["errors"][0]["source"]["pointer"], "/file", "{v}");
    assert!(
        v["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("server's host"),
        "{v}"
    );
}

/// A node's capture file as the agent writes it into a `file://` directory: raw IP packets
/// on `<node>/pre-firewall`, each carrying `MARK-<node>-<i>`.
fn node_file(node: &str, n: u64) -> Vec<u8> {
    use edgecap_pcap::{Direction, Format, Interface, Section, Writer};
    let iface = Interface::raw(format!("{node}/pre-firewall"), 65_535);
    let mut w = Writer::new(Vec::new(), Format::Pcapng, &Section::default(), &[iface]).unwrap();
    for i in 0..n {
        let s = marked_sample(1_000 + i, 53, &format!("MARK-{node}-{i}"));
        let ip = edgecap_model::lookback::unhex(&s.data).unwrap();
        w.write_packet(0, s.ts_ns, &ip, s.orig_len, Direction::Unknown, 0)
            .unwrap();
    }
    w.finish().unwrap()
}

async fn the_packet_view_reads_each_nodes_file_of_a_local_directory(b: Backend) {
    let Some(h) = Harness::new(b).await else {
        return;
    };
    let nodes: Vec<_> = ["edge0", "edge1"]
        .iter()
        .map(|n| h.node(n, &[("site", "fra")], &["pre-firewall"]))
        .collect();
    // A full capture into the test's directory (file://, on this host).
    let id = h.create("fra", serde_json::json!({})).await;
    for (i, node) in nodes.iter().enumerate() {
        let name = format!("edge{i}");
        let key = format!("{id}/{name}.pcapng");
        let path = h.dest.join(&key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, node_file(&name, 3 + i as u64)).unwrap();
        node.session.handle(edgecap_model::AgentMsg::Ack {
            capture_id: id.clone(),
        });
        node.session.handle(edgecap_model::AgentMsg::Done {
            outcome: edgecap_model::Outcome {
                capture_id: id.clone(),
                ok: true,
                error: None,
                packets: 3 + i as u64,
                bytes: 100,
                lost: 0,
                stop_reason: Some("time-limit".into()),
                file: Some(key),
            },
        });
    }
    let c = h
        .wait_for(&id, Duration::from_secs(10), |c| c["status"] == "success")
        .await;
    assert_eq!(c["status"], "success", "{c:#}");
    let ui = |q: &str| format!("/ui/accounts/{}/pcaps/{id}/packets{q}", h.account.id);
    let (s, v) = h.call("GET", &ui(""), None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let files: Vec<&str> = v["result"]["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(files, ["edge0", "edge1"], "{v}");
    assert_eq!(
        payloads(&v),
        ["MARK-edge0-0", "MARK-edge0-1", "MARK-edge0-2"]
    );
    let (s, v) = h.call("GET", &ui("?file=edge1&offset=2"), None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(payloads(&v), ["MARK-edge1-2", "MARK-edge1-3"]);
    assert_eq!(v["result"]["packets"][0]["interface"], "edge1/pre-firewall");
    let (s, v) = h.call("GET", &ui("?file=edge9"), None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let m = v["errors"][0]["message"].as_str().unwrap();
    assert!(m.starts_with("file: ") && m.contains("edge0, edge1"), "{m}");
    drop(nodes);
}
