//! The address plan: addresses, prefixes, MAC addresses and interface names of edge `i`.
//!
//! Everything here is a pure function of the edge index, so a sender can compute the next
//! hop's MAC address without asking the kernel. See the table in the crate documentation.
//!
//! MAC addresses are locally administered (`02:` first octet) and read
//! `02:ec:LL:II:00:HH`: `LL` is the link (`00` = source<->edge, `01` = edge<->origin), `II`
//! the edge index and `HH` the host part of the IPv4 address on that link (`01` = the edge,
//! `02` = the source or the origin). Every lab uses the same MACs; labs never share a link.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The most edges a lab can have (links use 198.18.0.0/24 .. 198.18.255.0/24).
pub const MAX_EDGES: usize = 128;

/// A MAC address.
pub type Mac = [u8; 6];

/// Which link of edge `i`: between the source and the edge, or between the edge and the origin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    /// source <-> edge `i`: 198.18.(2i).0/24, 2001:db8:(2i)::/64.
    SrcEdge,
    /// edge `i` <-> origin: 198.18.(2i+1).0/24, 2001:db8:(2i+1)::/64.
    EdgeOrigin,
}

impl Link {
    /// Link number used in the third IPv4 octet and the third IPv6 group: 2i or 2i+1.
    pub fn number(self, edge: usize) -> u8 {
        let base = (edge % MAX_EDGES) * 2;
        let n = match self {
            Link::SrcEdge => base,
            Link::EdgeOrigin => base + 1,
        };
        // MAX_EDGES * 2 == 256, so n fits.
        u8::try_from(n).unwrap_or(u8::MAX)
    }

    fn mac_octet(self) -> u8 {
        match self {
            Link::SrcEdge => 0,
            Link::EdgeOrigin => 1,
        }
    }
}

/// The address of host `host` (1 = the edge, 2 = source or origin) on a link.
pub fn link_addr(link: Link, edge: usize, host: u8, v6: bool) -> IpAddr {
    let n = link.number(edge);
    if v6 {
        IpAddr::V6(Ipv6Addr::new(
            0x2001,
            0xdb8,
            u16::from(n),
            0,
            0,
            0,
            0,
            u16::from(host),
        ))
    } else {
        IpAddr::V4(Ipv4Addr::new(198, 18, n, host))
    }
}

/// The prefix of a link: (network address, prefix length).
pub fn link_prefix(link: Link, edge: usize, v6: bool) -> (IpAddr, u8) {
    (link_addr(link, edge, 0, v6), if v6 { 64 } else { 24 })
}

/// The MAC address of host `host` (1 = edge, 2 = source/origin) on a link.
pub fn link_mac(link: Link, edge: usize, host: u8) -> Mac {
    let idx = u8::try_from(edge % MAX_EDGES).unwrap_or(u8::MAX);
    [0x02, 0xec, link.mac_octet(), idx, 0x00, host]
}

/// Interface index of host `host` on a link: 100 + 4i + 2·link + (host - 1), so `to-edge0`
/// is 101, `from-src` of edge 0 is 100, its `to-origin` 102 and the origin's `from-edge0`
/// 103. Unique within a lab, and the two ends of a veth pair always differ.
pub fn ifindex(link: Link, edge: usize, host: u8) -> u32 {
    let edge = u32::try_from(edge % MAX_EDGES).unwrap_or(0);
    100 + 4 * edge + 2 * u32::from(link.mac_octet()) + u32::from(host.saturating_sub(1))
}

/// Host part of the edge on both of its links.
pub const EDGE_HOST: u8 = 1;
/// Host part of the source (on source<->edge links) and of the origin (on edge<->origin links).
pub const END_HOST: u8 = 2;

/// Interface of the source namespace toward edge `i`: `to-edge<i>`.
pub fn src_ifname(edge: usize) -> String {
    format!("to-edge{edge}")
}

/// Interface of an edge namespace toward the source.
pub const EDGE_IF_SRC_SIDE: &str = "from-src";
/// Interface of an edge namespace toward the origin.
pub const EDGE_IF_ORIGIN_SIDE: &str = "to-origin";

/// Interface of the origin namespace toward edge `i`: `from-edge<i>`.
pub fn origin_ifname(edge: usize) -> String {
    format!("from-edge{edge}")
}

/// Formats a MAC address as `aa:bb:cc:dd:ee:ff`.
pub fn mac_string(mac: &Mac) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// `address/len` as `ip` expects it.
pub fn cidr(prefix: (IpAddr, u8)) -> String {
    format!("{}/{}", prefix.0, prefix.1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_matches_the_documented_table() {
        assert_eq!(
            link_addr(Link::SrcEdge, 0, END_HOST, false).to_string(),
            "198.18.0.2"
        );
        assert_eq!(
            link_addr(Link::EdgeOrigin, 2, END_HOST, false).to_string(),
            "198.18.5.2"
        );
        assert_eq!(
            link_addr(Link::SrcEdge, 5, EDGE_HOST, true).to_string(),
            "2001:db8:a::1"
        );
        assert_eq!(
            cidr(link_prefix(Link::EdgeOrigin, 1, true)),
            "2001:db8:3::/64"
        );
        assert_eq!(cidr(link_prefix(Link::SrcEdge, 1, false)), "198.18.2.0/24");
        assert_eq!(
            mac_string(&link_mac(Link::EdgeOrigin, 3, EDGE_HOST)),
            "02:ec:01:03:00:01"
        );
        assert_eq!(Link::EdgeOrigin.number(MAX_EDGES - 1), 255);
    }
}
