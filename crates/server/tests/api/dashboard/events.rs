//! The dashboard's events page and the events on the traffic chart (issue 15), in process on
//! both databases: a simulated agent fires a trigger, its capture ends and is signed; the
//! page's session reads the event (capture link, file, signature) through the events API the
//! page's script calls, as the traffic chart does for its range; another account's session
//! sees none of it.

use axum::http::StatusCode;
use edgecap_model::firing::{Ending, Signed};
use edgecap_model::{AgentMsg, Outcome};
use edgecap_server::sim::firing;
use serde_json::{Value, json};

use super::{log_in, send};
use crate::both_databases;
use crate::common::{Backend, run_python};
use crate::firings::{
    add_trigger, capture_and_run_end, fired_capture, new_id, now, recorded, setup, sim,
    trigger_body, victim,
};

both_databases!(the_events_page_shows_the_accounts_events_and_no_other);

/// What the page's script reads with the session `cookie`: `GET <path>` under the account.
async fn read(
    h: &crate::common::Harness,
    cookie: &str,
    account: &str,
    rest: &str,
) -> (StatusCode, Value) {
    h.state.hub.barrier().await;
    let a = send(
        h,
        "GET",
        &format!("/client/v4/accounts/{account}/{rest}"),
        &[("cookie", cookie)],
        "",
    )
    .await;
    (
        a.status,
        serde_json::from_str(&a.body).unwrap_or(Value::Null),
    )
}

async fn the_events_page_shows_the_accounts_events_and_no_other(b: Backend) {
    let Some((h, s)) = setup(b).await else { return };
    let tid = add_trigger(&h, &h.state, &trigger_body(&h, 1_000_000, 4)).await;
    let mut a = sim(&h, &s, "edge0", 1).await;
    let c = new_id();
    let t = now();
    a.fired(firing(
        &tid,
        victim(),
        (t - 5, t - 2),
        70000.0,
        Some((&c, fired_capture())),
        None,
    ))
    .await
    .unwrap();
    recorded(&h, &c).await;
    capture_and_run_end(&mut a, &tid, &c, t).await;
    let rule = "meta nfproto ipv4 ip daddr 198.18.0.9 @nh,72,8 == 17 counter drop";
    let signature = serde_json::from_value(json!({
        "attack_packets": 20, "attack_skipped": 0, "baseline_packets": null,
        "fields": [{"field": "destination", "address": "198.18.0.9", "value": "198.18.0.9",
                    "expression": "dst host 198.18.0.9", "coverage": 1.0,
                    "baseline_hit_rate": null, "chosen": true}],
        "mitigation": {"expression": "dst host 198.18.0.9 and udp", "nft": [rule],
                       "coverage": 1.0, "baseline_hit_rate": null, "dropped": []},
        "note": null
    }))
    .unwrap();
    a.signed(Signed {
        trigger_id: tid.clone(),
        capture_id: c.clone(),
        signature,
    })
    .await
    .unwrap();

    let ours = log_in(&h, &h.token).await;
    let theirs = log_in(&h, &h.other_token).await;
    // The page: its frame, linked from the navigation as the current view.
    let page = send(&h, "GET", "/events", &[("cookie", &ours)], "").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("data-view=\"events\""), "{}", page.body);
    assert!(
        page.body
            .contains("<a href=\"/events\" aria-current=\"page\">Events</a>"),
        "{}",
        page.body
    );
    let fleet = send(&h, "GET", "/", &[("cookie", &ours)], "").await;
    assert!(
        fleet.body.contains("<a href=\"/events\">Events</a>"),
        "{}",
        fleet.body
    );
    // Without a session: the login.
    let anon = send(&h, "GET", "/events", &[], "").await;
    assert_eq!(anon.status, StatusCode::SEE_OTHER);

    // The page's list (as app.js asks for it): the event, its capture and file, its signature.
    let mut e = Value::Null;
    for _ in 0..60 {
        let (st, v) = read(&h, &ours, &h.account.id, "events?page=1&per_page=20").await;
        assert_eq!(st, StatusCode::OK, "{v}");
        e = v["result"][0].clone();
        if !e["signature"].is_null() && e["captures"][0]["status"] == "success" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(e["trigger_id"], tid.as_str(), "{e:#}");
    assert_eq!(e["key"], "198.18.0.9");
    assert_eq!(e["captures"][0]["id"], c.as_str());
    assert_eq!(e["captures"][0]["file"], format!("{c}/edge0.pcapng"));
    assert_eq!(e["signature"]["mitigation"]["nft"][0], rule);
    assert_eq!(e["signature"]["fields"][0]["coverage"], 1.0);
    assert_eq!(e["ended"], edgecap_model::ids::rfc3339(t as f64));
    // The capture it links to opens for this session.
    let (st, v) = read(&h, &ours, &h.account.id, &format!("pcaps/{c}")).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let detail = send(
        &h,
        "GET",
        &format!("/captures/{c}"),
        &[("cookie", &ours)],
        "",
    )
    .await;
    assert_eq!(detail.status, StatusCode::OK);
    // The traffic chart's question for a range that holds the event: it is among them; for a
    // range that ends before it started: not.
    let timeline = format!("events?until={}&per_page=50", t + 60);
    let (st, v) = read(&h, &ours, &h.account.id, &timeline).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["result"][0]["id"], e["id"], "{v}");
    let before = format!("events?until={}&per_page=50", t - 60);
    let (_, v) = read(&h, &ours, &h.account.id, &before).await;
    assert_eq!(v["result"], json!([]), "{v}");

    // Another account's session: none of it, on the page's list, the chart's, the event, the
    // capture; and not the first account's list at all.
    for rest in ["events?page=1&per_page=20", timeline.as_str()] {
        let (st, v) = read(&h, &theirs, &h.other.id, rest).await;
        assert_eq!(st, StatusCode::OK, "{rest}: {v}");
        assert_eq!(v["result"], json!([]), "{rest}: {v}");
        assert_eq!(v["result_info"]["total_count"], 0, "{rest}: {v}");
        let (st, _) = read(&h, &theirs, &h.account.id, rest).await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{rest}");
    }
    let id = e["id"].as_str().unwrap();
    let (st, _) = read(&h, &theirs, &h.other.id, &format!("events/{id}")).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = read(&h, &theirs, &h.other.id, &format!("pcaps/{c}")).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    a.close().await;
    s.stop().await;
}

mod browser {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_events_page_works_in_a_real_browser() {
        super::the_events_page_works_in_a_real_browser().await
    }
}

/// The signature an agent reports for the simulated flood: the rule `rule`.
fn flood_signature<T: serde::de::DeserializeOwned>(rule: &str) -> T {
    serde_json::from_value(json!({
        "attack_packets": 20, "attack_skipped": 0, "baseline_packets": 40,
        "fields": [{"field": "destination", "address": "198.18.0.9", "value": "198.18.0.9",
                    "expression": "dst host 198.18.0.9", "coverage": 1.0,
                    "baseline_hit_rate": 0.0, "chosen": true}],
        "mitigation": {"expression": "dst host 198.18.0.9 and udp", "nft": [rule],
                       "coverage": 1.0, "baseline_hit_rate": 0.0, "dropped": []},
        "note": null
    }))
    .unwrap()
}

/// In Chromium: the events page lists the fired event with its capture link and its
/// signature's rule; the traffic chart marks it and the marker leads to it; another account
/// sees neither.
async fn the_events_page_works_in_a_real_browser() {
    let Some(python) = edgecap_testkit::browser::python() else {
        return;
    };
    let Some((h, s)) = setup(Backend::Sqlite).await else {
        return;
    };
    let tid = add_trigger(&h, &h.state, &trigger_body(&h, 1_000_000, 4)).await;
    let mut a = sim(&h, &s, "edge0", 1).await;
    // Two minutes of traffic on the chart, and a flood in them that fired the trigger.
    let t = now();
    let seconds: Vec<_> = (t - 121..t - 1)
        .map(|x| crate::traffic::second(x as i64, "pre-firewall", 30, "198.18.0.9"))
        .collect();
    for chunk in seconds.chunks(edgecap_model::protocol::MAX_ROLLUP_SECONDS) {
        a.send_rollups(chunk).await.unwrap();
    }
    let c = new_id();
    a.fired(firing(
        &tid,
        victim(),
        (t - 90, t - 88),
        70000.0,
        Some((&c, fired_capture())),
        None,
    ))
    .await
    .unwrap();
    recorded(&h, &c).await;
    a.send(&AgentMsg::Done {
        outcome: Outcome {
            capture_id: c.clone(),
            ok: true,
            error: None,
            packets: 20,
            bytes: 900,
            lost: 0,
            stop_reason: Some("byte-limit".into()),
            file: Some(format!("{c}/edge0.pcapng")),
        },
    })
    .await
    .unwrap();
    a.ended(Ending {
        trigger_id: tid.clone(),
        key: victim(),
        started: t - 90,
        ended: t - 40,
        peak: 80000.0,
    })
    .await
    .unwrap();
    let rule = "meta nfproto ipv4 ip daddr 198.18.0.9 @nh,72,8 == 17 counter drop";
    a.signed(Signed {
        trigger_id: tid.clone(),
        capture_id: c.clone(),
        signature: flood_signature(rule),
    })
    .await
    .unwrap();
    // A second flood, to another destination, still holding: the agent refused its capture
    // (cooldown).
    let other_victim: std::net::IpAddr = "198.18.0.10".parse().unwrap();
    a.fired(firing(
        &tid,
        Some(other_victim),
        (t - 20, t - 18),
        60000.0,
        None,
        Some("cooldown: the trigger fired 70 s ago"),
    ))
    .await
    .unwrap();
    let mut signed = false;
    for _ in 0..60 {
        h.state.hub.barrier().await;
        let (_, v) = h.call("GET", &h.acc("events"), None).await;
        if v["result"].as_array().is_some_and(|l| l.len() == 2)
            && !v["result"][1]["signature"].is_null()
        {
            signed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(signed, "the event never got its signature");
    h.state.hub.rollups().barrier().await;
    let (_, v) = h.call("GET", &h.acc("events"), None).await;
    let ongoing = v["result"][0]["id"].as_str().unwrap().to_owned();
    let event = v["result"][1]["id"].as_str().unwrap().to_owned();

    let shots = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let env = vec![
        ("EDGECAP_BASE", s.base.clone()),
        ("EDGECAP_TOKEN", h.token.clone()),
        ("EDGECAP_OTHER_TOKEN", h.other_token.clone()),
        ("EDGECAP_SCREENSHOTS", shots.display().to_string()),
    ];
    let v = run_python(
        python,
        "dashboard_events_browser.py",
        env,
        "the browser script",
    )
    .await;
    let text = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
    let base = &s.base;
    // The page: the event, its trigger and key, its capture linked, its rule.
    assert_eq!(text("events_url"), format!("{base}/events"), "{v}");
    assert_eq!(v["events"], json!([ongoing, event]), "newest first: {v}");
    assert!(text("ongoing_text").contains("ongoing"), "{v}");
    assert!(text("ongoing_text").contains("198.18.0.10"), "{v}");
    assert!(
        text("ongoing_text").contains("cooldown: the trigger fired"),
        "{v}"
    );
    assert!(text("ongoing_text").contains("None started."), "{v}");
    assert!(text("event_text").contains("udp flood"), "{v}");
    assert!(text("event_text").contains("198.18.0.9"), "{v}");
    assert!(
        text("event_text").contains(&format!("{c}/edge0.pcapng")),
        "{v}"
    );
    assert_eq!(v["capture_links"], json!([format!("/captures/{c}")]), "{v}");
    assert_eq!(v["nft"], json!([rule]), "{v}");
    assert_eq!(text("expression"), "dst host 198.18.0.9 and udp", "{v}");
    assert_eq!(text("capture_url"), format!("{base}/captures/{c}"), "{v}");
    // The chart: both marked; the ended one over its 50 s, its tooltip, the link to it; the
    // ongoing one to now.
    assert_eq!(v["markers"], json!([ongoing, event]), "{v}");
    assert_eq!(v["ongoing_markers"], json!([ongoing]), "{v}");
    assert!(
        text("marker_title").contains("udp flood · 198.18.0.9"),
        "{v}"
    );
    assert!(v["marker_width"].as_f64().unwrap_or(0.0) > 10.0, "{v}");
    assert!(text("chart_events").starts_with("2 event(s) marked"), "{v}");
    assert_eq!(
        text("marker_url"),
        format!("{base}/events#event-{event}"),
        "{v}"
    );
    assert_eq!(v["console_errors"], json!([]), "{v}");
    assert_eq!(v["failed_responses"], json!([]), "{v}");
    // The other account: nothing.
    assert_eq!(v["other_events"], 0, "{v}");
    assert!(text("other_text").contains("No events yet"), "{v}");
    assert_eq!(v["other_markers"], 0, "{v}");
    assert_eq!(text("other_chart_events"), "no events in this range", "{v}");
    assert!(shots.join("events.png").exists());
    a.close().await;
    s.stop().await;
}
