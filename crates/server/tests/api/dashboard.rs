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
use crate::common::{Backend, Harness};

both_databases!(
    dashboard_sessions_act_for_their_account_and_end,
    a_token_holds_a_bounded_number_of_sessions,
);

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

/// The browser venv's python, or None (a note) outside CI.
fn browser_python() -> Option<String> {
    let python = std::env::var("EDGECAP_BROWSER_PYTHON")
        .unwrap_or_else(|_| "/opt/edgecap-browser/bin/python".into());
    let ready = Path::new("/usr/bin/chromium").exists()
        && std::process::Command::new(&python)
            .args(["-c", "import playwright.sync_api"])
            .output()
            .is_ok_and(|o| o.status.success());
    if ready {
        return Some(python);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "/usr/bin/chromium or Playwright in {python} is missing (scripts/test installs them)"
    );
    eprintln!("note: chromium or Playwright is not installed; skipping the browser test");
    None
}

async fn the_dashboard_works_in_a_real_browser() {
    let Some(python) = browser_python() else {
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
    // Each node reports the last 2 minutes of traffic (rollups as agents send them): a
    // steady rate to one destination each.
    let now = edgecap_server::clock::unix_now() as i64;
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
        let seconds: Vec<_> = (now - 121..now - 1)
            .map(|t| crate::traffic::second(t, "pre-firewall", pps, dst))
            .collect();
        for chunk in seconds.chunks(edgecap_model::protocol::MAX_ROLLUP_SECONDS) {
            agent.send_rollups(chunk).await.unwrap();
        }
        let (seen, _seen_rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(sim::respond(agent, Duration::from_secs(1), seen));
    }
    let capture = h.create("ORD", serde_json::json!({})).await;
    // The rollups are written before the browser looks.
    tokio::time::sleep(Duration::from_millis(500)).await;
    h.state.hub.rollups().barrier().await;
    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/api/dashboard_browser.py");
    let env = [
        ("EDGECAP_BASE", base.clone()),
        ("EDGECAP_TOKEN", h.token.clone()),
        ("EDGECAP_OTHER_TOKEN", h.other_token.clone()),
        ("EDGECAP_CAPTURE", capture.clone()),
        ("EDGECAP_SCREENSHOTS", shots.display().to_string()),
    ];
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python)
            .arg(script)
            .envs(env)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the browser script failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value =
        serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap();
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
    assert!(
        s("lookback_url").starts_with(&format!("{base}/captures/")),
        "{v}"
    );
    assert_eq!(s("lookback_type"), "simple", "{v}");
    assert_eq!(s("lookback_filter"), "dst host 198.18.1.1", "{v}");
    assert_eq!(s("live_filter"), "dst host 198.18.1.1", "{v}");
    assert!(s("live_estimate").starts_with("Estimate:"), "{v}");
    assert!(s("live_url").contains("/captures?"), "nothing started: {v}");
    // The other account sees none of it.
    assert_eq!(v["other_sees_capture"], false, "{v}");
    assert_eq!(v["other_rows"], 0, "{v}");
    assert!(
        s("other_detail").contains("not found") || s("other_detail").contains("no capture"),
        "{v}"
    );
    // Logged out: back to the login.
    assert_eq!(s("after_logout_url"), format!("{base}/login"), "{v}");
    assert_eq!(v["console_errors"], serde_json::json!([]), "{v}");
    for view in ["login", "fleet", "captures", "capture", "traffic"] {
        assert!(shots.join(format!("{view}.png")).exists(), "{view}.png");
    }
    let _ = stop.send(());
    server.await.unwrap().unwrap();
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
