//! Two tenants on one fleet (issue 10, "Show it"): restricted accounts made with `edgecap
//! admin`, whose prefixes are neighbours (198.18.100.0/24 and 198.18.101.0/24, 2001:db8:100::/64
//! and 2001:db8:101::/64), each capture with an empty filter on every node while traffic of
//! both (and of neither) crosses the same edges. Each file holds exactly its own account's
//! packets, read back with tshark by their markers; filters that can only match inside the
//! other's prefixes are refused naming the field; an overlapping filter still yields only the
//! account's packets; nodes outside an account's node set are refused naming them.

use std::net::IpAddr;
use std::time::Duration;

use edgecap_lab::packet::Packet;
use serde_json::{Value, json};

use crate::capture_common::{BIN, markers, root_or_skip};
use crate::harness::{Fleet, ServerOpts};

const EDGES: usize = 2;

/// One tenant: its account, an API token, and the source addresses its packets come from.
struct Tenant {
    account: String,
    token: String,
    v4: IpAddr,
    v6: IpAddr,
}

fn tenant(fleet: &Fleet, name: &str, net: u8) -> Tenant {
    let account = fleet.admin(&[
        "account",
        "create",
        "--name",
        name,
        "--prefix",
        &format!("198.18.{net}.0/24"),
        "--prefix",
        &format!("2001:db8:{net}::/64"),
    ]);
    let token = fleet.admin(&["token", "create", "--account", &account]);
    Tenant {
        account,
        token,
        v4: format!("198.18.{net}.7").parse().unwrap(),
        v6: format!("2001:db8:{net}::7").parse().unwrap(),
    }
}

fn call(
    fleet: &Fleet,
    t: &Tenant,
    method: reqwest::Method,
    rest: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let url = match rest {
        "" => format!("{}/client/v4/accounts/{}", fleet.url, t.account),
        _ => format!("{}/client/v4/accounts/{}/{rest}", fleet.url, t.account),
    };
    let mut req = reqwest::blocking::Client::new()
        .request(method, url)
        .bearer_auth(&t.token)
        .timeout(Duration::from_secs(30));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().expect("API call");
    let status = resp.status().as_u16();
    (status, resp.json().expect("JSON envelope"))
}

/// A capture of every packet (no filter but `extra`'s) on every lab node, as tenant `t`.
fn try_create(fleet: &Fleet, t: &Tenant, extra: Value) -> (u16, Value) {
    let mut body = json!({
        "type": "full", "system": "magic-transit", "time_limit": 60,
        "nodes": ["site=lab"], "destination_conf": format!("file://{}", fleet.dest.display()),
    });
    for (k, v) in extra.as_object().cloned().unwrap_or_default() {
        body[k] = v;
    }
    call(fleet, t, reqwest::Method::POST, "pcaps", Some(body))
}

fn create(fleet: &Fleet, t: &Tenant, extra: Value) -> String {
    let (s, v) = try_create(fleet, t, extra);
    assert_eq!(s, 200, "{v}");
    v["result"]["id"].as_str().unwrap().to_owned()
}

fn stop_and_wait(fleet: &Fleet, t: &Tenant, id: &str) -> Value {
    let (s, v) = call(
        fleet,
        t,
        reqwest::Method::PUT,
        &format!("pcaps/{id}/stop"),
        None,
    );
    assert_eq!(s, 200, "{v}");
    let start = std::time::Instant::now();
    loop {
        let (_, v) = call(fleet, t, reqwest::Method::GET, &format!("pcaps/{id}"), None);
        if v["result"]["status"] == "success" || v["result"]["status"] == "failed" {
            return v["result"].clone();
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "capture {id} never finished: {v:#}\n{}",
            fleet.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Markers: which tenant (1 = A, 2 = B, 3 = neither), edge, family, and a sequence number.
fn marker(who: u32, edge: usize, v6: bool, n: u32) -> u32 {
    who * 100_000 + edge as u32 * 10_000 + u32::from(v6) * 1_000 + n
}

/// Per packet kind, how many go through each edge (different, so a mix-up shows).
const PER_KIND: u32 = 5;

#[test]
fn tenants_sharing_an_edge_each_capture_only_their_own_prefixes() {
    if !root_or_skip() {
        return;
    }
    let fleet = Fleet::new(EDGES, ServerOpts::default());
    let a = tenant(&fleet, "tenant-a", 100);
    let b = tenant(&fleet, "tenant-b", 101);
    // What the account sees of itself: restricted, its prefixes, every node.
    let (s, v) = call(&fleet, &a, reqwest::Method::GET, "", None);
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["result"]["unrestricted"], false);
    assert_eq!(
        v["result"]["prefixes"],
        json!(["198.18.100.0/24", "2001:db8:100::/64"])
    );
    // Bad arguments name themselves and change nothing (exit 2).
    for (args, names) in [
        (
            vec!["prefixes", "add", &a.account, "198.18.100.1/24"],
            "CIDR: item 0: ",
        ),
        (
            vec!["prefixes", "remove", &a.account, "198.18.99.0/24"],
            "is not one of",
        ),
        (
            vec!["nodes", "add", &a.account, "site="],
            "NAME|KEY=VALUE: item 0: ",
        ),
        (
            vec!["show", "0123456789abcdef0123456789abcdef"],
            "ACCOUNT: no account",
        ),
    ] {
        let mut all = vec!["admin"];
        let db = crate::harness::db_args(&fleet.data, &ServerOpts::default());
        all.extend(db.iter().map(String::as_str));
        all.push("account");
        all.extend(args.iter().copied());
        let out = std::process::Command::new(BIN).args(&all).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{all:?}: {err}");
        assert!(err.contains(names), "{all:?}: {err}");
    }
    let shown = fleet.admin(&["--json", "account", "show", &a.account]);
    let shown: Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(shown["prefixes"], v["result"]["prefixes"]);

    // Filters that can only match inside the other tenant's prefixes: 400 naming the field.
    let (s, v) = try_create(
        &fleet,
        &a,
        json!({"filter": "src net 198.18.101.0/24 and dst net 198.18.101.0/24"}),
    );
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["errors"][0]["source"]["pointer"], "/filter", "{v}");
    assert!(v.to_string().contains("can never match"), "{v}");
    let (s, v) = try_create(
        &fleet,
        &a,
        json!({"filter_v1": {"source_address": "198.18.101.1", "destination_address": "198.18.101.2"}}),
    );
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["errors"][0]["source"]["pointer"], "/filter_v1", "{v}");

    // Empty filters for both, and for A a filter wider than its prefixes (a /15 over both).
    let edges: Vec<usize> = (0..EDGES).collect();
    let id_a = create(&fleet, &a, json!({}));
    let id_b = create(&fleet, &b, json!({}));
    let id_wide = create(&fleet, &a, json!({"filter": "net 198.18.0.0/15"}));
    for id in [&id_a, &id_b, &id_wide] {
        fleet.wait_rules(id, &edges);
    }

    // Through every edge: from A's and B's addresses (both families) to the origin, to A's
    // prefix from the lab's source, and traffic of neither.
    let mut want_a: Vec<Vec<u32>> = vec![Vec::new(); EDGES];
    let mut want_b: Vec<Vec<u32>> = vec![Vec::new(); EDGES];
    let mut want_wide: Vec<Vec<u32>> = vec![Vec::new(); EDGES];
    for i in 0..EDGES {
        let mut packets = Vec::new();
        let count = PER_KIND + i as u32;
        for n in 0..count {
            for v6 in [false, true] {
                let origin = fleet.lab.origin_addr(i, v6);
                let (ta, tb) = if v6 { (a.v6, b.v6) } else { (a.v4, b.v4) };
                for (who, src, dst) in [
                    (1, ta, origin),
                    (2, tb, origin),
                    (3, fleet.lab.src_addr(i, v6), origin),
                ] {
                    let m = marker(who, i, v6, n);
                    packets.push(
                        Packet::udp(src, dst, 40000, 7000)
                            .marker(m)
                            .build()
                            .unwrap(),
                    );
                    match who {
                        1 => {
                            want_a[i].push(m);
                            if !v6 {
                                want_wide[i].push(m);
                            }
                        }
                        2 => want_b[i].push(m),
                        _ => {}
                    }
                }
            }
            // To A's prefix (its destination is A's): A's, not B's.
            let m = marker(1, i, false, 500 + n);
            let to_a: IpAddr = "198.18.100.50".parse().unwrap();
            packets.push(
                Packet::udp(fleet.lab.src_addr(i, false), to_a, 40000, 7000)
                    .marker(m)
                    .build()
                    .unwrap(),
            );
            want_a[i].push(m);
            want_wide[i].push(m);
        }
        fleet.lab.send(i, &packets).expect("send through the lab");
    }
    for w in want_a.iter_mut().chain(&mut want_b).chain(&mut want_wide) {
        w.sort_unstable();
    }

    for (t, id, want) in [
        (&a, &id_a, &want_a),
        (&b, &id_b, &want_b),
        (&a, &id_wide, &want_wide),
    ] {
        let c = stop_and_wait(&fleet, t, id);
        assert_eq!(c["status"], "success", "{c:#}\n{}", fleet.logs());
        for (i, want) in want.iter().enumerate() {
            let got = markers(&fleet.file(id, i));
            assert_eq!(&got, want, "capture {id} on edge{i}: {c:#}");
        }
    }
    // Checked both ways: nothing of B's in A's files and nothing of A's in B's.
    for i in 0..EDGES {
        assert!(
            markers(&fleet.file(&id_a, i))
                .iter()
                .all(|m| m / 100_000 == 1)
        );
        assert!(
            markers(&fleet.file(&id_b, i))
                .iter()
                .all(|m| m / 100_000 == 2)
        );
    }

    // A node set: A may now capture on edge0 only. Naming edge1 is 403 naming it; the lab's
    // site selects edge0 alone.
    fleet.admin(&["account", "nodes", "add", &a.account, "edge0"]);
    let (s, v) = try_create(&fleet, &a, json!({"nodes": ["edge0", "edge1"]}));
    assert_eq!(s, 403, "{v}");
    assert_eq!(
        v["errors"][0]["code"],
        edgecap_model::codes::OUTSIDE_TENANCY,
        "{v}"
    );
    assert!(v.to_string().contains("node edge1 outside"), "{v}");
    let (s, v) = try_create(&fleet, &a, json!({}));
    assert_eq!(s, 200, "{v}");
    let parts = v["result"]["node_results"].as_array().unwrap();
    assert_eq!(parts.len(), 1, "{v}");
    assert_eq!(parts[0]["node"], "edge0");
    let id = v["result"]["id"].as_str().unwrap().to_owned();
    let c = stop_and_wait(&fleet, &a, &id);
    assert_eq!(c["status"], "success", "{c:#}");
}
