//! The agent's `--netns`: device lookups and offered points follow the namespace the capture
//! thread entered, not the agent's own. Needs root (it builds a lab); under CI=true it fails
//! rather than skips without it.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeMap;

use edgecap_agent::Settings;
use edgecap_lab::{Lab, LabSpec};
use edgecap_testkit::root_or_skip;

#[test]
fn devices_and_points_are_those_of_the_capture_namespace() {
    if !root_or_skip() {
        return;
    }
    let lab = Lab::new(&LabSpec::default()).unwrap();
    let ns = lab.edge_ns(0).to_owned();
    let inside = edgecap_netns::run(&ns, edgecap_capture::points::local_devices).unwrap();
    assert_eq!(inside, ["from-src", "lo", "to-origin"]);
    let outside = edgecap_capture::points::local_devices();
    assert!(
        !outside.iter().any(|d| d == "from-src"),
        "this thread is still in the root namespace: {outside:?}"
    );
    let settings = Settings {
        server: "http://127.0.0.1:1".into(),
        token: "eca_x".into(),
        state_dir: std::env::temp_dir().join("edgecap-netns-test-state"),
        name: "edge0".into(),
        labels: BTreeMap::new(),
        config: edgecap_capture::Config::parse(
            "[points.edge-in]\nhook = \"ingress\"\ndevices = [\"from-src\"]\n",
        )
        .unwrap(),
        netns: Some(ns),
        version: "test".into(),
        upload: Default::default(),
        ca: None,
        insecure_plaintext: false,
        max_captures: edgecap_model::protocol::DEFAULT_MAX_CAPTURES_PER_NODE,
    };
    settings.check().unwrap();
    // `from-src` exists only in the edge: a lookup in the agent's namespace would drop the
    // configured point.
    let points = settings.offered_points();
    for p in [
        "ingress",
        "pre-firewall",
        "post-firewall",
        "egress",
        "edge-in",
    ] {
        assert!(points.iter().any(|x| x == p), "{p} missing from {points:?}");
    }
}
