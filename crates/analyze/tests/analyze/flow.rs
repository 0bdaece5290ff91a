//! Flow keys and identities: what is kept, what is left out, how flows are written.

use edgecap_analyze::inspect;

use crate::common::{DST, SRC, hop, udp, v4, v6};

#[test]
fn tcp_udp_and_ipv6_flows_with_ports() {
    let o = inspect(&udp(40000, 53, 1)).unwrap();
    assert_eq!(o.flow.to_string(), "udp 198.18.0.2:40000 > 198.18.1.2:53");
    assert_eq!((o.flow.version, o.flow.protocol), (4, 17));
    assert_eq!((o.flow.src_port, o.flow.dst_port), (Some(40000), Some(53)));
    let o = inspect(&v4(6, SRC, DST, (5555, 80), 9, b"GET /")).unwrap();
    assert_eq!(o.flow.to_string(), "tcp 198.18.0.2:5555 > 198.18.1.2:80");
    let o = inspect(&v6(6, 1, 2, (443, 5000), b"")).unwrap();
    assert_eq!(
        o.flow.to_string(),
        "tcp [2001:db8::1]:443 > [2001:db8::2]:5000"
    );
    let o = inspect(&v4(47, SRC, DST, (0, 0), 1, b"gre")).unwrap();
    assert_eq!(o.flow.to_string(), "gre 198.18.0.2 > 198.18.1.2");
    let o = inspect(&v4(200, SRC, DST, (0, 0), 1, b"")).unwrap();
    assert_eq!(o.flow.to_string(), "proto 200 198.18.0.2 > 198.18.1.2");
}

#[test]
fn icmp_flows_by_echo_id_or_type_and_code() {
    let echo = v4(1, SRC, DST, (0, 0), 1, &[8, 0, 0, 0, 0x12, 0x34, 0, 1]);
    let o = inspect(&echo).unwrap();
    assert_eq!(
        o.flow.to_string(),
        "icmp 198.18.0.2 > 198.18.1.2 echo-request id 4660"
    );
    let reply = v4(1, DST, SRC, (0, 0), 1, &[0, 0, 0, 0, 0x12, 0x34, 0, 1]);
    assert!(
        inspect(&reply)
            .unwrap()
            .flow
            .to_string()
            .ends_with("echo-reply id 4660")
    );
    let unreach = v4(1, DST, SRC, (0, 0), 1, &[3, 3, 0, 0, 0, 0, 0, 0]);
    assert!(
        inspect(&unreach)
            .unwrap()
            .flow
            .to_string()
            .ends_with("type 3 code 3")
    );
    let echo6 = v6(58, 1, 2, (0, 0), &[128, 0, 0, 0, 0, 7, 0, 1]);
    assert_eq!(
        inspect(&echo6).unwrap().flow.to_string(),
        "icmpv6 2001:db8::1 > 2001:db8::2 echo-request id 7"
    );
}

#[test]
fn identity_ignores_what_routers_change() {
    let p = udp(40000, 53, 7);
    let base = inspect(&p).unwrap();
    let mut q = p.clone();
    hop(&mut q, 3);
    q[1] = 0xB8; // DSCP EF + ECN
    assert_eq!(inspect(&q).unwrap(), base, "TTL, header checksum, DSCP/ECN");
    let mut q = p.clone();
    q[26..28].copy_from_slice(&[0, 0]); // UDP checksum not yet filled (offload)
    assert_eq!(inspect(&q).unwrap(), base, "transport checksum");
    let mut v = v6(17, 1, 2, (1, 2), b"data");
    let base6 = inspect(&v).unwrap();
    hop(&mut v, 1);
    v[1] = 0x0F; // flow label
    assert_eq!(inspect(&v).unwrap(), base6, "hop limit, flow label");
}

#[test]
fn identity_keeps_what_tells_packets_apart() {
    let base = inspect(&udp(40000, 53, 7)).unwrap();
    let other_id = inspect(&v4(17, SRC, DST, (40000, 53), 8, &7u16.to_be_bytes())).unwrap();
    assert_eq!(other_id.flow, base.flow);
    assert_ne!(other_id.ident, base.ident, "IP id");
    let other_payload = inspect(&v4(17, SRC, DST, (40000, 53), 7, b"zz")).unwrap();
    assert_ne!(other_payload.ident, base.ident, "payload");
}

#[test]
fn snaplen_beyond_the_hashed_prefix_does_not_matter() {
    let long = v4(17, SRC, DST, (1, 2), 5, &[0xAA; 500]);
    let full = inspect(&long).unwrap();
    assert_eq!(inspect(&long[..20 + 64]).unwrap(), full);
    assert_eq!(inspect(&long[..20 + 200]).unwrap(), full);
    assert_ne!(inspect(&long[..20 + 63]).unwrap().ident, full.ident);
}

#[test]
fn fragments_and_extension_headers() {
    // IPv4 later fragment: no ports.
    let mut frag = udp(1000, 2000, 3);
    frag[6..8].copy_from_slice(&0x0010u16.to_be_bytes());
    let o = inspect(&frag).unwrap();
    assert_eq!(o.flow.to_string(), "udp 198.18.0.2 > 198.18.1.2");
    // IPv6 with a hop-by-hop header, then UDP.
    let inner = v6(17, 1, 2, (7, 8), b"x");
    let mut p = inner[..40].to_vec();
    p[6] = 0; // next header: hop-by-hop
    p[4..6].copy_from_slice(&((inner.len() - 40 + 8) as u16).to_be_bytes());
    p.extend_from_slice(&[17, 0, 1, 4, 0, 0, 0, 0]);
    p.extend_from_slice(&inner[40..]);
    let o = inspect(&p).unwrap();
    assert_eq!(o.flow.to_string(), "udp [2001:db8::1]:7 > [2001:db8::2]:8");
    // IPv6 fragment header, offset 0 (first fragment): ports; offset 8: none.
    for (off, want) in [
        (0u16, "udp [2001:db8::1]:7 > [2001:db8::2]:8"),
        (8, "udp 2001:db8::1 > 2001:db8::2"),
    ] {
        let mut p = inner[..40].to_vec();
        p[6] = 44;
        p.extend_from_slice(&[17, 0]);
        p.extend_from_slice(&((off << 3) | 1).to_be_bytes());
        p.extend_from_slice(&[0, 0, 0, 9]);
        p.extend_from_slice(&inner[40..]);
        assert_eq!(inspect(&p).unwrap().flow.to_string(), want);
    }
}

#[test]
fn too_short_is_none_not_a_panic() {
    assert!(inspect(&[]).is_none());
    assert!(inspect(&[0x45; 19]).is_none());
    assert!(inspect(&[0x60; 39]).is_none());
    assert!(inspect(&[0x70; 60]).is_none());
    let o = inspect(&udp(1, 2, 3)[..21]).unwrap();
    assert_eq!(o.flow.src_port, None, "ports cut off");
}
