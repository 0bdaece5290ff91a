//! Cloudflare's official Python SDK, unchanged, against a listening edgecap server: create a
//! capture on a colo, list, get, stop, a simple (look-back) capture downloaded, the ownership
//! flow, and errors as the SDK's exceptions
//! (`cloudflare_sdk.py`). The SDK is installed by .ci/run into /opt/edgecap-cf-sdk (or set
//! EDGECAP_CF_SDK_PYTHON to a python that has it); under CI=true a missing SDK is a failure.

use std::time::Duration;

use edgecap_server::sim::{self, SimAgent};

use crate::both_databases;
use crate::common::{Backend, Harness, run_python};

both_databases!(the_cloudflare_python_sdk_works_unchanged);

fn sdk_python() -> Option<String> {
    let python = std::env::var("EDGECAP_CF_SDK_PYTHON")
        .unwrap_or_else(|_| "/opt/edgecap-cf-sdk/bin/python".into());
    let has_sdk = std::process::Command::new(&python)
        .args(["-c", "import cloudflare"])
        .output()
        .is_ok_and(|o| o.status.success());
    if has_sdk {
        return Some(python);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{python} cannot import Cloudflare's SDK (.ci/run installs it)"
    );
    eprintln!("note: Cloudflare's Python SDK is not installed; skipping");
    None
}

async fn the_cloudflare_python_sdk_works_unchanged(b: Backend) {
    let Some(python) = sdk_python() else { return };
    let Some(h) = Harness::new(b).await else {
        return;
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(edgecap_server::run(listener, h.state.clone(), async {
        let _ = stopped.await;
    }));
    let hello = sim::hello("ord02", &[("site", "ORD")], &["pre-firewall"]);
    let (agent, _) = SimAgent::connect(&base, &h.agent_token, &hello)
        .await
        .unwrap();
    let (seen, _seen_rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(sim::respond(agent, Duration::from_secs(1), seen));
    let env = vec![
        ("EDGECAP_BASE", format!("{base}/client/v4")),
        ("EDGECAP_TOKEN", h.token.clone()),
        ("EDGECAP_ACCOUNT", h.account.id.clone()),
        ("EDGECAP_DEST", h.file_dest()),
    ];
    let summary = run_python(python, "cloudflare_sdk.py", env, "the SDK script").await;
    assert!(edgecap_model::ids::is_id(summary["id"].as_str().unwrap()));
    assert!(
        summary["bad"].to_string().contains("colo_name"),
        "the SDK's error carries the field: {summary}"
    );
    assert_eq!(summary["unauthenticated"], 401);
    // A simple capture created, listed, read and downloaded through the SDK.
    assert!(edgecap_model::ids::is_id(
        summary["simple"].as_str().unwrap()
    ));
    assert_eq!(summary["simple_bytes"], 24, "a pcap header: {summary}");
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
