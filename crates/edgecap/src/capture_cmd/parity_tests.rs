//! The same flags, captured locally (`-w`) or through a server (`--colo`), become the same
//! rules: the local spec from `validate`, the fleet one from the create body the client sends,
//! the server's validation and stored request, the assignment and the agent's plan.

use clap::Parser;
use edgecap_capture::{CaptureSpec, Config};
use edgecap_filter::render_nft;

use super::{CaptureArgs, validate};
use crate::cli::{Cli, Command};

fn args(flags: &[&str]) -> CaptureArgs {
    let argv = ["edgecap", "capture"].iter().chain(flags);
    match Cli::try_parse_from(argv).unwrap().command {
        Command::Capture(a) => *a,
        other => panic!("not a capture: {other:?}"),
    }
}

/// The agent's spec for a fleet capture of `flags` with id `id` on node `node`.
fn through_the_fleet(flags: &[&str], id: &str, node: &str, config: &Config) -> CaptureSpec {
    let fleet = [flags, &["--colo", "fra", "--destination", "file:///tmp"]].concat();
    let a = args(&fleet);
    let body = crate::client::request_body(&a, &a.fleet, None).unwrap();
    let req = edgecap_model::validate_create(&body, &Default::default()).unwrap();
    let stored = edgecap_server::db::captures::StoredRequest::from(&req);
    let assignment =
        edgecap_server::db::parts::assignment(id, &stored, req.packet_limit, req.byte_limit);
    edgecap_agent::plan::spec(&assignment, node, config, &[]).unwrap()
}

#[test]
fn a_local_capture_and_a_fleet_assignment_install_the_same_rules() {
    let dir = std::env::temp_dir().join(format!("edgecap-parity-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("agent.toml");
    let text =
        "node = \"edge0\"\n[points.post-mitigation]\nhook = \"prerouting\"\npriority = -149\n";
    std::fs::write(&conf, text).unwrap();
    let config = Config::load(&conf).unwrap().unwrap();
    let conf = conf.to_str().unwrap();
    let cases: &[&[&str]] = &[
        &[
            "--src",
            "198.18.0.0/15",
            "--dport",
            "53,5000-5010",
            "--proto",
            "udp",
            "--filter",
            "not net 198.19.0.0/16 and greater 60",
            "--point",
            "pre-firewall,post-mitigation,egress",
            "--snaplen",
            "128",
            "--sample",
            "4",
            "--format",
            "pcap",
            "--packets",
            "100",
            "--time",
            "30s",
            "--config",
            conf,
        ],
        &["--filter", "tcp[13] & 2 != 0 or icmp6", "--config", conf],
        &[
            "--dst",
            "2001:db8::/32",
            "--proto",
            "tcp,udp",
            "--config",
            conf,
        ],
        &["--config", conf],
    ];
    for flags in cases {
        let local = validate(&args(&[flags, &["-w", "/dev/null"][..]].concat())).unwrap();
        let fleet = through_the_fleet(flags, &local.id, "edge0", &config);
        assert_eq!(
            render_nft(&fleet.filter),
            render_nft(&local.filter),
            "{flags:?}"
        );
        assert_eq!(fleet.filter, local.filter, "{flags:?}");
        assert_eq!(fleet.filter_text, local.filter_text, "{flags:?}");
        assert_eq!(fleet.points, local.points, "{flags:?}");
        assert_eq!(fleet.snaplen, local.snaplen, "{flags:?}");
        assert_eq!(fleet.sample_one_in, local.sample_one_in, "{flags:?}");
        assert_eq!(fleet.format, local.format, "{flags:?}");
        assert_eq!(fleet.limits.packets, local.limits.packets, "{flags:?}");
        assert_eq!(fleet.node, local.node, "{flags:?}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The create request the server validates from `flags`, `now` being the client's clock.
fn look_back_request(flags: &[&str], now: f64) -> edgecap_model::CreateRequest {
    let a = args(&[flags, &["-w", "-"]].concat());
    let lb = super::validate::look_back(&a, now).unwrap().unwrap();
    let body = crate::client::simple_body(&a, &lb).unwrap();
    edgecap_model::validate_create(&body, &Default::default()).unwrap()
}

#[test]
fn a_look_back_capture_asks_for_the_window_and_filter_the_flags_say() {
    let filter = [
        "--src",
        "198.18.0.0/15",
        "--dport",
        "53,5000-5010",
        "--proto",
        "udp",
        "--filter",
        "not net 198.19.0.0/16",
    ];
    let now = 1_795_000_000.5;
    let req = look_back_request(
        &[
            &["--look-back", "2m", "--at", "2026-11-25T07:30:00Z"],
            &filter[..],
            &[
                "--packets",
                "50",
                "--nodes",
                "edge0,site=fra",
                "--format",
                "pcap",
            ],
        ]
        .concat(),
        now,
    );
    assert!(req.simple);
    assert_eq!(req.time_limit, 120.0);
    assert_eq!(
        req.offset_time,
        edgecap_model::ids::parse_rfc3339("2026-11-25T07:30:00Z")
    );
    assert_eq!(req.packet_limit, Some(50));
    assert_eq!(req.nodes, Some(vec!["edge0".into(), "site=fra".into()]));
    assert_eq!(req.format, "pcap");
    assert_eq!(req.destination_conf, "");
    // The same filter flags on a full capture become the same filter.
    let full = args(
        &[
            &filter[..],
            &["--colo", "fra", "--destination", "file:///tmp"],
        ]
        .concat(),
    );
    let body = crate::client::request_body(&full, &full.fleet, None).unwrap();
    let full = edgecap_model::validate_create(&body, &Default::default()).unwrap();
    assert_eq!(req.filter_v1_parsed, full.filter_v1_parsed);
    assert_eq!(req.filter, full.filter);
    assert_eq!(req.points, full.points);

    // A relative --at is that long before the client's now; without --at, the server's now;
    // without --packets, the default account maximum.
    let req = look_back_request(&["--look-back", "30s", "--at", "10m"], now);
    assert_eq!(req.offset_time, Some(now - 600.0));
    assert_eq!(req.colo_name, None);
    assert_eq!(req.nodes, None);
    let req = look_back_request(&["--look-back", "90s"], now);
    assert_eq!((req.time_limit, req.offset_time), (90.0, None));
    assert_eq!(
        req.packet_limit,
        Some(edgecap_model::AccountLimits::default().max_packet_limit)
    );
}
