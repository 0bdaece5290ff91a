//! Building and removing labs (needs root; fails instead of skipping under CI=true).
// Test helpers may unwrap like the tests themselves (clippy.toml allows it in tests).
#![allow(clippy::unwrap_used)]

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;

use common::{lab, netns_exists};
use edgecap_lab::plan::mac_string;
use edgecap_lab::{Lab, LabError, LabSpec, cleanup_stale, state};

fn ip_j(lab: &Lab, ns: &str, args: &[&str]) -> String {
    let mut all = vec!["-j"];
    all.extend_from_slice(args);
    lab.run_in(ns, "ip", all).unwrap()
}

/// Addresses, routes, neighbours and forwarding of every namespace of a lab.
fn check_setup(lab: &Lab) {
    let ns_all = lab.namespaces();
    assert_eq!(ns_all.len(), lab.edges() + 2);
    for ns in &ns_all {
        assert!(netns_exists(ns), "{ns} exists");
        // No default route, and nothing outside the lab is routable.
        for fam in ["-4", "-6"] {
            let routes = ip_j(lab, ns, &[fam, "route", "show", "table", "all"]);
            assert!(!routes.contains("\"default\""), "{ns} {fam}: {routes}");
        }
        for far in ["8.8.8.8", "2606:4700::1111", "10.0.0.1", "198.20.0.1"] {
            let r = lab.run_in(ns, "ip", ["route", "get", far]);
            assert!(r.is_err(), "{ns} can route to {far}: {r:?}");
        }
        let lo = ip_j(lab, ns, &["link", "show", "lo"]);
        assert!(lo.contains("\"UP\""), "lo up in {ns}: {lo}");
    }
    let src = lab.src_ns();
    let addrs = ip_j(lab, src, &["addr"]);
    let routes4 = ip_j(lab, src, &["route"]);
    let routes6 = ip_j(lab, src, &["-6", "route"]);
    for i in 0..lab.edges() {
        let (s4, s6) = (lab.src_addr(i, false), lab.src_addr(i, true));
        assert!(
            addrs.contains(&format!("\"local\":\"{s4}\",\"prefixlen\":24")),
            "{addrs}"
        );
        assert!(
            addrs.contains(&format!("\"local\":\"{s6}\",\"prefixlen\":64")),
            "{addrs}"
        );
        assert!(addrs.contains(&mac_string(&lab.src_mac(i))), "{addrs}");
        assert!(routes4.contains(&format!(
            "\"dst\":\"198.18.{}.0/24\",\"gateway\":\"{}\",\"dev\":\"to-edge{i}\"",
            2 * i + 1,
            lab.edge_addr_src_side(i, false)
        )));
        assert!(routes6.contains(&format!(
            "\"dst\":\"2001:db8:{:x}::/64\",\"gateway\":\"{}\",\"dev\":\"to-edge{i}\"",
            2 * i + 1,
            lab.edge_addr_src_side(i, true)
        )));
        let neigh = ip_j(lab, src, &["neigh"]);
        let mac = mac_string(&lab.edge_mac_src_side(i));
        assert!(neigh.contains(&format!(
            "\"dst\":\"{}\",\"dev\":\"to-edge{i}\",\"lladdr\":\"{mac}\",\"state\":[\"PERMANENT\"]",
            lab.edge_addr_src_side(i, true)
        )));

        let edge = lab.edge_ns(i);
        let eaddrs = ip_j(lab, edge, &["addr"]);
        for a in [
            lab.edge_addr_src_side(i, false),
            lab.edge_addr_origin_side(i, true),
        ] {
            assert!(eaddrs.contains(&format!("\"local\":\"{a}\"")), "{eaddrs}");
        }
        for (key, want) in [
            ("net.ipv4.ip_forward", "1"),
            ("net.ipv6.conf.all.forwarding", "1"),
        ] {
            let v = lab.run_in(edge, "sysctl", ["-n", key]).unwrap();
            assert_eq!(v.trim(), want, "{key} in {edge}");
        }
        let eneigh = ip_j(lab, edge, &["neigh"]);
        assert!(eneigh.contains(&mac_string(&lab.origin_mac(i))), "{eneigh}");
        assert!(eneigh.contains(&mac_string(&lab.src_mac(i))), "{eneigh}");

        let origin = lab.origin_ns();
        let oroutes = ip_j(lab, origin, &["route"]);
        assert!(oroutes.contains(&format!(
            "\"dst\":\"198.18.{}.0/24\",\"gateway\":\"{}\",\"dev\":\"from-edge{i}\"",
            2 * i,
            lab.edge_addr_origin_side(i, false)
        )));
        let oaddrs = ip_j(lab, origin, &["addr"]);
        assert!(oaddrs.contains(&format!("\"local\":\"{}\"", lab.origin_addr(i, true))));
    }
    // The veth ends were created inside the namespaces: none is in the root namespace.
    let root = std::process::Command::new("ip")
        .args(["-j", "link"])
        .output()
        .unwrap();
    let root = String::from_utf8_lossy(&root.stdout);
    for name in ["\"to-edge", "\"from-src\"", "\"to-origin\"", "\"from-edge"] {
        assert!(!root.contains(name), "{name} in the root namespace");
    }
}

#[test]
fn one_edge_lab_is_set_up_and_removed_by_drop() {
    let Some(lab) = lab(&LabSpec::default(), "one_edge_lab") else {
        return;
    };
    assert!(
        lab.name().starts_with("ec") && lab.name().len() == 10,
        "{}",
        lab.name()
    );
    assert_eq!(lab.src_ns(), format!("{}-src", lab.name()));
    check_setup(&lab);
    let tables = lab
        .run_in(lab.origin_ns(), "nft", ["list", "tables"])
        .unwrap();
    assert!(tables.contains("lab_origin"), "{tables}");
    assert!(state::state_file(lab.name()).exists());
    let (names, state_file) = (lab.namespaces(), state::state_file(lab.name()));
    drop(lab);
    for ns in names {
        assert!(!netns_exists(&ns), "{ns} left behind");
    }
    assert!(!state_file.exists());
}

#[test]
fn three_edge_lab_with_answering_origin() {
    let spec = LabSpec {
        edges: 3,
        silent_origin: false,
        ..LabSpec::default()
    };
    let Some(lab) = lab(&spec, "three_edge_lab") else {
        return;
    };
    assert_eq!(lab.edges(), 3);
    assert_eq!(lab.edge_ns(2), format!("{}-edge2", lab.name()));
    check_setup(&lab);
    let tables = lab
        .run_in(lab.origin_ns(), "nft", ["list", "tables"])
        .unwrap();
    assert!(!tables.contains("lab_origin"), "{tables}");
    lab.down().unwrap();
}

#[test]
fn two_labs_at_once_have_distinct_names() {
    let Some(a) = lab(&LabSpec::default(), "two_labs") else {
        return;
    };
    let b = Lab::new(&LabSpec::default()).unwrap();
    assert_ne!(a.name(), b.name());
    for ns in a.namespaces().iter().chain(b.namespaces().iter()) {
        assert!(netns_exists(ns));
    }
    b.down().unwrap();
    assert!(
        netns_exists(a.src_ns()),
        "removing one lab leaves the other"
    );
}

#[test]
fn drop_removes_the_lab_when_a_test_panics() {
    if lab(&LabSpec::default(), "drop_on_panic").is_none() {
        return;
    }
    let names = Mutex::new(Vec::new());
    let result = catch_unwind(AssertUnwindSafe(|| {
        let lab = Lab::new(&LabSpec::with_edges(2)).unwrap();
        *names.lock().unwrap() = lab.namespaces();
        assert!(netns_exists(lab.edge_ns(1)));
        panic!("a failing test");
    }));
    assert!(result.is_err());
    let names = names.into_inner().unwrap();
    assert_eq!(names.len(), 4);
    for ns in names {
        assert!(!netns_exists(&ns), "{ns} left behind after a panic");
    }
}

#[test]
fn named_lab_attach_keep_destroy() {
    let name = format!("t{}-named", std::process::id());
    let Some(mut lab) = lab(&LabSpec::named(&name), "named_lab") else {
        return;
    };
    assert_eq!(lab.origin_ns(), format!("{name}-origin"));
    assert!(matches!(
        Lab::new(&LabSpec::named(&name)),
        Err(LabError::AlreadyExists(_))
    ));
    lab.keep().unwrap();
    drop(lab);
    assert!(
        netns_exists(&format!("{name}-src")),
        "kept lab survives its handle"
    );
    let attached = Lab::attach(&name).unwrap();
    assert_eq!(attached.edges(), 1);
    assert!(attached.silent_origin());
    drop(attached);
    assert!(
        netns_exists(&format!("{name}-edge0")),
        "dropping an attached lab keeps it"
    );
    Lab::destroy(&name).unwrap();
    assert!(!netns_exists(&format!("{name}-src")));
    assert!(matches!(Lab::attach(&name), Err(LabError::NotFound(_))));
    assert!(matches!(Lab::destroy(&name), Err(LabError::NotFound(_))));
}

#[test]
fn cleanup_stale_removes_only_labs_of_dead_creators() {
    let spec = LabSpec {
        prefix: "ecst".into(),
        ..LabSpec::default()
    };
    let Some(live) = lab(&spec, "cleanup_stale") else {
        return;
    };
    let crashed = Lab::new(&spec).unwrap();
    let crashed_names = crashed.namespaces();
    let crashed_name = crashed.name().to_string();
    // Simulate a crashed creator: a pid that has exited, and no Drop.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead_pid = child.id();
    child.wait().unwrap();
    let file = state::state_file(&crashed_name);
    let text = std::fs::read_to_string(&file).unwrap();
    let text = text
        .lines()
        .map(|l| {
            if l.starts_with("pid=") {
                format!("pid={dead_pid}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&file, text).unwrap();
    std::mem::forget(crashed);

    let removed = cleanup_stale("ecst").unwrap();
    // (Leftovers of earlier crashed runs with this prefix may be removed too.)
    assert!(removed.contains(&crashed_name), "{removed:?}");
    assert!(!removed.contains(&live.name().to_string()));
    for ns in crashed_names {
        assert!(!netns_exists(&ns));
    }
    assert!(!file.exists());
    assert!(netns_exists(live.src_ns()), "a live lab is left alone");
    assert!(cleanup_stale("ecst").unwrap().is_empty());
}

#[test]
fn bad_specs_are_refused_with_the_field_named() {
    let e = Lab::new(&LabSpec::with_edges(0)).unwrap_err();
    assert!(e.to_string().contains("edges"), "{e}");
    let e = Lab::new(&LabSpec {
        prefix: "EC!".into(),
        ..LabSpec::default()
    })
    .unwrap_err();
    assert!(e.to_string().contains("prefix"), "{e}");
    let e = Lab::new(&LabSpec::named("bad name")).unwrap_err();
    assert!(e.to_string().contains("name"), "{e}");
    assert!(
        LabError::NotRoot
            .to_string()
            .contains("CAP_SYS_ADMIN+CAP_NET_ADMIN")
    );
}

#[test]
fn rust_code_runs_inside_a_lab_namespace() {
    let Some(lab) = lab(&LabSpec::default(), "netns_run") else {
        return;
    };
    let dev = "/proc/thread-self/net/dev";
    let inside = edgecap_lab::netns::run(lab.edge_ns(0), || std::fs::read_to_string(dev))
        .unwrap()
        .unwrap();
    assert!(
        inside.contains("from-src") && inside.contains("to-origin"),
        "{inside}"
    );
    let outside = std::fs::read_to_string(dev).unwrap();
    assert!(
        !outside.contains("from-src"),
        "the caller's thread did not move"
    );
    let handle = edgecap_lab::netns::spawn(lab.origin_ns(), move || {
        std::fs::read_to_string(dev).unwrap().contains("from-edge0")
    })
    .unwrap();
    assert!(handle.join().unwrap().unwrap());
    let missing = edgecap_lab::netns::run("edgecap-no-such-namespace", || ());
    assert!(missing.is_err());
}
