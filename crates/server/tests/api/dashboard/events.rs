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
use crate::common::Backend;
use crate::firings::{
    add_trigger, fired_capture, new_id, now, recorded, setup, sim, trigger_body, victim,
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
        started: t - 5,
        ended: t,
        peak: 80000.0,
    })
    .await
    .unwrap();
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
