//! The packet pipeline of every lab edge node: a firewall that drops some traffic and a
//! mitigation that rate-limits a flood, at documented hooks and priorities, so capture points
//! before and after them see different things.
//!
//! | table | hook, priority | what it does |
//! | --- | --- | --- |
//! | `inet lab_mitigation` | prerouting, mangle (-150) | UDP to port [`FLOOD_PORT`] over [`FLOOD_RATE_PER_SEC`]/s (burst [`FLOOD_BURST`]) is dropped |
//! | `inet lab_firewall` | input and forward, filter (0) | UDP to [`FIREWALL_UDP_PORT`] and TCP to [`FIREWALL_TCP_PORT`] are dropped |
//!
//! So on an edge node: `pre-firewall` (prerouting -310) sees everything; `post-mitigation`
//! (configured as prerouting -149, see [`AGENT_CONFIG`]) sees the flood limited;
//! `post-firewall` (input/forward +10) also misses what the firewall dropped; `egress`
//! (postrouting +110) sees what leaves toward the origin.

/// UDP destination port the firewall drops.
pub const FIREWALL_UDP_PORT: u16 = 9999;
/// TCP destination port the firewall drops (telnet).
pub const FIREWALL_TCP_PORT: u16 = 23;
/// UDP destination port whose traffic the mitigation treats as a flood.
pub const FLOOD_PORT: u16 = 7000;
/// Packets per second of the flood the mitigation lets through.
pub const FLOOD_RATE_PER_SEC: u32 = 100;
/// Burst the mitigation allows above the rate.
pub const FLOOD_BURST: u32 = 10;
/// Priority of the mitigation chain (mangle) on prerouting.
pub const MITIGATION_PRIORITY: i32 = -150;

/// The agent configuration that places `post-mitigation` right after the lab's mitigation.
pub const AGENT_CONFIG: &str = "# edgecap agent configuration for a lab edge node\n\
[points.post-mitigation]\n\
hook = \"prerouting\"\n\
priority = -149\n\
description = \"after table inet lab_mitigation (prerouting, mangle)\"\n";

/// The nft script installed in every edge namespace.
pub(crate) fn ruleset() -> String {
    format!(
        "table inet lab_mitigation {{
    chain prerouting {{ type filter hook prerouting priority mangle; policy accept;
        udp dport {FLOOD_PORT} limit rate over {FLOOD_RATE_PER_SEC}/second burst {FLOOD_BURST} packets counter drop; }}
}}
table inet lab_firewall {{
    chain input {{ type filter hook input priority filter; policy accept;
        udp dport {FIREWALL_UDP_PORT} counter drop; tcp dport {FIREWALL_TCP_PORT} counter drop; }}
    chain forward {{ type filter hook forward priority filter; policy accept;
        udp dport {FIREWALL_UDP_PORT} counter drop; tcp dport {FIREWALL_TCP_PORT} counter drop; }}
}}
"
    )
}
