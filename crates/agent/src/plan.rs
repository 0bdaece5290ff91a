//! An assignment, checked on this node and turned into what the engine runs. The server has
//! validated the request already; this side checks what only the node knows (its points and
//! devices) and refuses anything it cannot honour exactly, naming the field.

use std::time::Duration;

use edgecap_capture::{CaptureSpec, Config, DEFAULT_SNAPLEN, GroupChoice, Limits};
use edgecap_filter::Expression;
use edgecap_model::Assignment;
use edgecap_pcap::Format;

/// NFLOG copies at most this many bytes of a packet (the model's bound on `snaplen`).
const MAX_SNAPLEN: u32 = edgecap_model::request::MAX_SNAPLEN as u32;

/// The engine's spec for `a` on node `node`, whose configuration is `config` and whose
/// network devices are `devices` (in the namespace the capture runs in).
pub fn spec(
    a: &Assignment,
    node: &str,
    config: &Config,
    devices: &[String],
) -> Result<CaptureSpec, String> {
    if !edgecap_model::ids::is_id(&a.capture_id) {
        return Err(format!(
            "capture_id: {:?} is not a capture id (32 hex digits)",
            a.capture_id
        ));
    }
    let raw: edgecap_filter::RawFilter =
        serde_json::from_value(a.filter_v1.clone()).map_err(|e| format!("filter_v1: {e}"))?;
    let filter = raw.validate().map_err(|e| format!("filter_v1.{e}"))?;
    let structured = filter.compile().map_err(|e| format!("filter_v1.{e}"))?;
    // The expression, if any, ANDed with filter_v1 (as `edgecap capture --filter` does).
    let (compiled, filter_text) = match a.filter.as_deref() {
        None => (structured, filter.to_string()),
        Some(text) => {
            let expr = Expression::parse(text).map_err(|e| format!("filter: {e}"))?;
            let rules = expr
                .compile_and(&structured)
                .map_err(|e| format!("filter: {e}"))?;
            let shown = if filter.is_empty() {
                expr.to_string()
            } else {
                format!("({filter}) and ({expr})")
            };
            (rules, shown)
        }
    };
    let points = edgecap_capture::points::resolve(&a.points, config, devices)
        .map_err(|e| format!("points: {e}"))?;
    if !(a.time_limit.is_finite() && a.time_limit > 0.0) {
        return Err(format!(
            "time_limit: {} is not a positive number of seconds",
            a.time_limit
        ));
    }
    let format = match a.format.as_str() {
        "pcapng" => Format::Pcapng,
        "pcap" => Format::Pcap,
        other => return Err(format!("format: {other:?} is not pcapng or pcap")),
    };
    Ok(CaptureSpec {
        id: a.capture_id.to_ascii_lowercase(),
        node: node.to_owned(),
        filter_text,
        filter: compiled,
        points,
        limits: Limits {
            time: Some(Duration::from_secs_f64(a.time_limit)),
            packets: a.packet_limit,
            bytes: a.byte_limit,
        },
        snaplen: a.snaplen.unwrap_or(DEFAULT_SNAPLEN).min(MAX_SNAPLEN),
        sample_one_in: a.sample_one_in(),
        group: GroupChoice::Auto,
        format,
        socket_buffer: None,
        live_output: false,
        sink_buffers: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
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
            spec(&a, "edge0", &cfg, &[]).unwrap_err()
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
}
