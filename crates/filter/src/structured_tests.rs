use serde_json::{Value, json};

use super::*;

fn from_json(value: Value) -> Result<StructuredFilter, String> {
    serde_json::from_value(value).map_err(|e| e.to_string())
}

/// Validates through `RawFilter`, as an API that wants the typed error does.
fn raw_error(value: Value) -> FilterError {
    let raw: RawFilter = serde_json::from_value(value).unwrap();
    raw.validate().unwrap_err()
}

fn cli(
    src: &[&str],
    dst: &[&str],
    sport: &[&str],
    dport: &[&str],
    proto: &[&str],
) -> StructuredFilter {
    StructuredFilter::from_cli(src, dst, sport, dport, proto).unwrap()
}

fn cli_err(src: &[&str], dst: &[&str], sport: &[&str], dport: &[&str], proto: &[&str]) -> String {
    StructuredFilter::from_cli(src, dst, sport, dport, proto)
        .unwrap_err()
        .to_string()
}

#[test]
fn cloudflare_json_round_trips_unchanged() {
    let cf = json!({"source_address": "1.2.3.4", "protocol": 6, "destination_port": 443});
    let filter = from_json(cf.clone()).unwrap();
    assert_eq!(
        filter.source_address,
        [Prefix::host("1.2.3.4".parse().unwrap())]
    );
    assert_eq!(filter.destination_port, [PortRange::single(443)]);
    assert_eq!(filter.protocol, [Protocol::TCP]);
    assert_eq!(serde_json::to_value(&filter).unwrap(), cf);

    let all = json!({
        "source_address": "1.2.3.4",
        "destination_address": "5.6.7.8",
        "source_port": 123,
        "destination_port": 80,
        "protocol": 17
    });
    assert_eq!(
        serde_json::to_value(from_json(all.clone()).unwrap()).unwrap(),
        all
    );
}

#[test]
fn empty_and_null_fields_capture_everything() {
    for value in [json!({}), json!({"source_address": null, "protocol": []})] {
        let filter = from_json(value).unwrap();
        assert!(filter.is_empty());
        assert_eq!(serde_json::to_value(&filter).unwrap(), json!({}));
        assert_eq!(filter.to_string(), "all packets");
    }
}

#[test]
fn extended_json_round_trips() {
    let input = json!({
        "source_address": ["198.18.0.0/15", "2001:db8::/32", "2001:db8::/32"],
        "destination_address": "2001:db8::1/128",
        "destination_port": ["53", "1000-2000", 8080, 53.0],
        "protocol": ["tcp", 17, "6"]
    });
    let filter = from_json(input).unwrap();
    let out = serde_json::to_value(&filter).unwrap();
    assert_eq!(
        out,
        json!({
            "source_address": ["198.18.0.0/15", "2001:db8::/32"],
            "destination_address": "2001:db8::1",
            "destination_port": [53, "1000-2000", 8080],
            "protocol": [6, 17]
        })
    );
    assert_eq!(from_json(out).unwrap(), filter);
}

#[test]
fn json_rejects_unknown_fields_and_wrong_types() {
    let err = from_json(json!({"src": "1.2.3.4"})).unwrap_err();
    assert!(err.contains("unknown field `src`"), "{err}");
    let err = from_json(json!({"source_port": true})).unwrap_err();
    assert!(
        err.contains("expected source_port: a string or number, or an array of them"),
        "{err}"
    );
    let err = from_json(json!({"protocol": [[6]]})).unwrap_err();
    assert!(err.contains("expected a string or number"), "{err}");
    let err = from_json(json!({"destination_port": {"lo": 1}})).unwrap_err();
    assert!(err.contains("destination_port"), "{err}");
}

#[test]
fn json_value_errors_carry_the_field() {
    let err = from_json(json!({"source_address": "198.18.0.300"})).unwrap_err();
    assert_eq!(
        err,
        "source_address: \"198.18.0.300\" is not an IPv4 or IPv6 address or prefix"
    );
    let cases = [
        (
            json!({"source_address": 16909060}),
            "source_address",
            "source_address: \"16909060\" is not an IPv4 or IPv6 address or prefix",
        ),
        (
            json!({"destination_port": 70000}),
            "destination_port",
            "destination_port: 70000 is outside 0-65535",
        ),
        (
            json!({"source_port": -1}),
            "source_port",
            "source_port: -1 is outside 0-65535",
        ),
        (
            json!({"source_port": 5.5}),
            "source_port",
            "source_port: \"5.5\" is not a port number or range (use a number 0-65535 or a range such as 1024-65535)",
        ),
        (
            json!({"source_port": "2000-1000"}),
            "source_port",
            "source_port: range 2000-1000 is empty (start above end)",
        ),
        (
            json!({"protocol": "tcpp"}),
            "protocol",
            "protocol: unknown protocol \"tcpp\" (use a number 0-255 or a name such as tcp, udp, icmp, icmpv6)",
        ),
        (
            json!({"protocol": 256}),
            "protocol",
            "protocol: 256 is outside 0-255",
        ),
        (
            json!({"protocol": 6.5}),
            "protocol",
            "protocol: unknown protocol \"6.5\" (use a number 0-255 or a name such as tcp, udp, icmp, icmpv6)",
        ),
        (
            json!({"source_address": "198.18.0.0/33"}),
            "source_address",
            "source_address: prefix length 33 is longer than 32 for IPv4",
        ),
        (
            json!({"source_address": "198.18.0.1/24"}),
            "source_address",
            "source_address: 198.18.0.1/24 has host bits set (did you mean 198.18.0.0/24?)",
        ),
        (
            json!({"destination_port": 53, "protocol": "icmp"}),
            "destination_port",
            "destination_port: protocol icmp has no ports",
        ),
        (
            json!({"source_address": "1.2.3.4", "destination_address": "::1"}),
            "source_address",
            "source_address and destination_address have no IP version in common",
        ),
    ];
    for (input, field, message) in cases {
        let err = raw_error(input.clone());
        assert_eq!(err.to_string(), message, "{input}");
        assert_eq!(err.field(), field, "{input}");
        assert_eq!(from_json(input).unwrap_err(), message);
    }
}

#[test]
fn cli_options_split_on_commas_and_drop_repeats() {
    let filter = cli(
        &["198.18.0.0/24,2001:db8::1", " 10.0.0.0/8"],
        &[],
        &[],
        &["53, 853", "53"],
        &[],
    );
    assert_eq!(filter.source_address.len(), 3);
    assert_eq!(
        filter.destination_port,
        [PortRange::single(53), PortRange::single(853)]
    );
    let filter = cli(&[], &[], &["1024-65535"], &[], &["tcp,udp", "6"]);
    assert_eq!(filter.protocol, [Protocol::TCP, Protocol::UDP]);
    assert_eq!(filter.source_port, [PortRange::new(1024, 65535).unwrap()]);
    assert!(cli(&[], &[], &[], &[], &[]).is_empty());
}

#[test]
fn cli_errors_name_the_field() {
    assert_eq!(
        cli_err(&["1.2.3.4,"], &[], &[], &[], &[]),
        "source_address: \"\" is not an IPv4 or IPv6 address or prefix"
    );
    assert_eq!(
        cli_err(&[], &["1.2.3.4", "2001:db8::/33x"], &[], &[], &[]),
        "destination_address: \"2001:db8::/33x\" is not an IPv4 or IPv6 address or prefix"
    );
    assert_eq!(
        cli_err(&[], &[], &[], &["70000"], &[]),
        "destination_port: 70000 is outside 0-65535"
    );
    assert_eq!(
        cli_err(&[], &[], &["22"], &["80"], &["tcp,gre"]),
        "source_port: protocol gre has no ports"
    );
    assert_eq!(
        cli_err(&["2001:db8::/32"], &[], &[], &[], &["icmp"]),
        "source_address and protocol have no IP version in common"
    );
    assert_eq!(
        cli_err(&[], &["10.0.0.0/8"], &[], &[], &["icmpv6"]),
        "destination_address and protocol have no IP version in common"
    );
}

#[test]
fn errors_list_their_fields() {
    let err = FilterError::NoCommonFamily {
        first: Field::SourceAddress,
        second: Field::DestinationAddress,
    };
    assert_eq!(
        err.fields(),
        [Field::SourceAddress, Field::DestinationAddress]
    );
    assert_eq!(err.field(), "source_address");
    let err = FilterError::UnknownProtocol { value: "x".into() };
    assert_eq!(
        (err.field(), err.fields()),
        ("protocol", vec![Field::Protocol])
    );
    let names: Vec<&str> = Field::ALL.iter().map(|f| f.name()).collect();
    assert_eq!(
        names,
        [
            "source_address",
            "destination_address",
            "source_port",
            "destination_port",
            "protocol"
        ]
    );
}

#[test]
fn summary_reads_like_tcpdump() {
    assert_eq!(
        cli(&["198.18.0.0/24"], &[], &[], &["53"], &["udp"]).to_string(),
        "src 198.18.0.0/24 and udp and dst port 53"
    );
    assert_eq!(
        cli(
            &["1.2.3.4", "10.0.0.0/8"],
            &["2001:db8::1", "192.0.2.1"],
            &["1024-65535"],
            &["53", "853"],
            &["tcp", "sctp"]
        )
        .to_string(),
        "src (1.2.3.4 or 10.0.0.0/8) and dst (2001:db8::1 or 192.0.2.1) and (tcp or sctp) \
         and src port 1024-65535 and dst port (53 or 853)"
    );
    assert_eq!(
        cli(&[], &[], &[], &[], &["253", "icmp"]).to_string(),
        "(proto 253 or icmp)"
    );
}
