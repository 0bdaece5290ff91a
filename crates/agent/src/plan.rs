//! An assignment, checked on this node and turned into what the engine runs. The server has
//! validated the request already; this side checks what only the node knows (its points and
//! devices) and refuses anything it cannot honour exactly, naming the field.

use std::time::Duration;

use edgecap_capture::{CaptureSpec, Config, Limits, Request};
use edgecap_model::Assignment;

use crate::error::PlanError;

/// The engine's spec for `a` on node `node`, whose configuration is `config` and whose
/// network devices are `devices` (in the namespace the capture runs in). The request rules
/// (filter composition, refusals per point, snaplen, format) are `edgecap_capture::Request`'s,
/// the builder `edgecap capture` uses too.
pub fn spec(
    a: &Assignment,
    node: &str,
    config: &Config,
    devices: &[String],
) -> Result<CaptureSpec, PlanError> {
    if !edgecap_model::ids::is_id(&a.capture_id) {
        return Err(PlanError::CaptureId(a.capture_id.clone()));
    }
    let raw: edgecap_filter::RawFilter =
        serde_json::from_value(a.filter_v1.clone()).map_err(PlanError::FilterShape)?;
    let structured = raw.validate().map_err(PlanError::Filter)?;
    let points =
        edgecap_capture::points::resolve(&a.points, config, devices).map_err(PlanError::Points)?;
    if !(a.time_limit.is_finite() && a.time_limit > 0.0) {
        return Err(PlanError::TimeLimit(a.time_limit));
    }
    // Fail closed: prefixes that do not parse refuse the capture rather than drop the bound.
    let boundary = a
        .prefixes
        .as_deref()
        .map(edgecap_filter::Boundary::parse)
        .transpose()
        .map_err(PlanError::Prefixes)?;
    Request {
        id: a.capture_id.to_ascii_lowercase(),
        node: node.to_owned(),
        structured: &structured,
        expression: a.filter.as_deref(),
        points,
        limits: Limits {
            time: Some(Duration::from_secs_f64(a.time_limit)),
            packets: a.packet_limit,
            bytes: a.byte_limit,
        },
        snaplen: a.snaplen.map(u64::from),
        sample_one_in: a.sample_one_in(),
        format: &a.format,
        boundary: boundary.as_ref(),
    }
    .build()
    .map_err(PlanError::Request)
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgecap_pcap::Format;
    use serde_json::json;

    fn assignment() -> Assignment {
        Assignment {
            capture_id: "0123456789abcdef0123456789ABCDEF".into(),
            filter_v1: json!({"protocol": 17, "destination_port": [53, "5000-5010"]}),
            filter: None,
            points: vec!["pre-firewall".into(), "egress".into()],
            time_limit: 2.5,
            packet_limit: Some(10),
            byte_limit: None,
            snaplen: Some(128),
            sample_rate: Some(0.25),
            format: "pcap".into(),
            destination_conf: "file:///tmp".into(),
            credentials: None,
            prefixes: None,
        }
    }

    #[test]
    fn an_assignment_becomes_the_engine_spec() {
        let s = spec(&assignment(), "edge0", &Config::default(), &[]).unwrap();
        assert_eq!(s.id, "0123456789abcdef0123456789abcdef");
        assert_eq!(s.node, "edge0");
        assert_eq!(s.points.len(), 2);
        assert_eq!(s.points[1].name, "egress");
        assert_eq!(s.limits.time, Some(Duration::from_millis(2500)));
        assert_eq!(s.limits.packets, Some(10));
        assert_eq!(s.snaplen, 128);
        assert_eq!(s.sample_one_in, Some(4));
        assert_eq!(s.format, Format::Pcap);
        assert!(!s.filter.is_empty());
        let mut a = assignment();
        a.snaplen = None;
        assert_eq!(
            spec(&a, "edge0", &Config::default(), &[]).unwrap().snaplen,
            65_531
        );
    }

    #[test]
    fn an_expression_is_anded_with_filter_v1() {
        let mut a = assignment();
        a.filter = Some("src net 198.18.0.0/15".into());
        let s = spec(&a, "edge0", &Config::default(), &[]).unwrap();
        assert!(s.filter_text.contains(") and ("), "{}", s.filter_text);
        assert!(edgecap_filter::matches(
            &s.filter,
            &udp([198, 18, 0, 2], 53)
        ));
        assert!(!edgecap_filter::matches(&s.filter, &udp([10, 0, 0, 1], 53)));
        assert!(!edgecap_filter::matches(
            &s.filter,
            &udp([198, 18, 0, 2], 54)
        ));
    }

    /// What a faulty server might send: a restricted account's assignment whose filter is
    /// wider than the account's prefixes. The node's rule still holds only the account's
    /// traffic, and prefixes it cannot read refuse the capture instead of dropping the bound.
    #[test]
    fn the_accounts_prefixes_bound_the_rule_whatever_the_filter() {
        let mut a = assignment();
        a.filter_v1 = json!({});
        a.filter = Some("udp".into());
        a.prefixes = Some(vec!["198.18.7.0/24".into()]);
        let s = spec(&a, "edge0", &Config::default(), &[]).unwrap();
        assert!(s.filter_text.contains("198.18.7.0/24"), "{}", s.filter_text);
        // To 198.18.1.2: inside only when the source is the account's.
        assert!(edgecap_filter::matches(
            &s.filter,
            &udp([198, 18, 7, 9], 53)
        ));
        assert!(!edgecap_filter::matches(
            &s.filter,
            &udp([198, 18, 8, 9], 53)
        ));
        // The same assignment unrestricted takes both.
        a.prefixes = None;
        let open = spec(&a, "edge0", &Config::default(), &[]).unwrap();
        assert!(edgecap_filter::matches(
            &open.filter,
            &udp([198, 18, 8, 9], 53)
        ));

        let err = |prefixes: Vec<&str>, filter: &str| {
            let mut a = assignment();
            a.filter_v1 = json!({});
            a.filter = Some(filter.into());
            a.prefixes = Some(prefixes.into_iter().map(String::from).collect());
            spec(&a, "edge0", &Config::default(), &[])
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            err(vec![], "udp"),
            "prefixes: at least one prefix is needed"
        );
        assert!(err(vec!["198.18.7.1/24"], "udp").starts_with("prefixes: item 0: "));
        assert_eq!(
            err(
                vec!["198.18.7.0/24"],
                "src net 198.18.8.0/24 and dst net 198.18.8.0/24"
            ),
            "filter: can never match a packet whose source or destination is in the \
             account's prefixes (198.18.7.0/24)"
        );
    }

    /// A minimal IPv4 UDP packet to 198.18.1.2 (the matcher checks no checksum).
    fn udp(src: [u8; 4], dport: u16) -> Vec<u8> {
        let mut p = vec![0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0];
        p.extend_from_slice(&src);
        p.extend_from_slice(&[198, 18, 1, 2]);
        p.extend_from_slice(&40000u16.to_be_bytes());
        p.extend_from_slice(&dport.to_be_bytes());
        p.extend_from_slice(&[0, 8, 0, 0]);
        p
    }

    #[test]
    fn what_the_node_cannot_honour_is_refused_by_field() {
        let cfg = Config::default();
        let err = |f: &dyn Fn(&mut Assignment)| {
            let mut a = assignment();
            f(&mut a);
            spec(&a, "edge0", &cfg, &[]).unwrap_err().to_string()
        };
        assert!(err(&|a| a.points = vec!["post-mitigation".into()]).starts_with("points: "));
        assert!(err(&|a| a.points = vec!["ingress".into()]).contains("no network device"));
        assert!(
            err(&|a| a.filter_v1 = json!({"source_port": 70000}))
                .starts_with("filter_v1.source_port")
        );
        assert!(err(&|a| a.filter = Some("tcp port".into())).starts_with("filter: "));
        assert!(err(&|a| a.capture_id = "../x".into()).starts_with("capture_id: "));
        assert!(err(&|a| a.format = "erf".into()).starts_with("format: "));
    }

    #[test]
    fn length_tests_at_ingress_are_refused_as_edgecap_capture_refuses_them() {
        let devices = ["eth0".to_owned()];
        let mut a = assignment();
        a.points = vec!["ingress".into()];
        a.filter = Some("udp and greater 100".into());
        let e = spec(&a, "edge0", &Config::default(), &devices).unwrap_err();
        assert!(matches!(e, PlanError::Request(_)), "{e:?}");
        let e = e.to_string();
        assert!(
            e.starts_with("filter: len, less and greater are not exact at the ingress point"),
            "{e}"
        );
        a.points = vec!["pre-firewall".into()];
        assert!(spec(&a, "edge0", &Config::default(), &devices).is_ok());
    }

    #[test]
    fn a_snaplen_above_what_nflog_copies_is_refused_not_clamped() {
        let mut a = assignment();
        a.snaplen = Some(65_532);
        let e = spec(&a, "edge0", &Config::default(), &[]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "snaplen: 65532 is above 65531, the most NFLOG copies of a packet"
        );
        // The cause is kept for logs and callers that look.
        assert!(std::error::Error::source(&e).is_some());
    }
}
