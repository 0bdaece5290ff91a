//! When a link may stay unencrypted. An agent link carries the agent token one way and
//! bucket credentials the other, so plain HTTP is allowed only to or from a loopback
//! address (as `edgecap up` uses, or a TLS proxy on the same host), or where the operator
//! said `--insecure-plaintext`. The agent asks before it dials (about the host of
//! `--server`), the server asks before it accepts an agent (about the peer's address):
//! one rule, both sides.

use std::net::IpAddr;

/// The other end of a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer<'a> {
    /// The address a connection came from (the server's view).
    Addr(IpAddr),
    /// The host of a URL (the agent's view): a name or an IP literal, IPv6 in brackets or not.
    Host(&'a str),
}

impl Peer<'_> {
    /// True for loopback addresses (also IPv4-mapped ones) and the name `localhost`. Other
    /// names count as remote: what they resolve to may change.
    pub fn is_loopback(&self) -> bool {
        match *self {
            Peer::Addr(ip) => ip.to_canonical().is_loopback(),
            Peer::Host(host) => {
                let host = host
                    .strip_prefix('[')
                    .and_then(|h| h.strip_suffix(']'))
                    .unwrap_or(host);
                match host.parse::<IpAddr>() {
                    Ok(ip) => Peer::Addr(ip).is_loopback(),
                    Err(_) => host.trim_end_matches('.').eq_ignore_ascii_case("localhost"),
                }
            }
        }
    }
}

impl std::fmt::Display for Peer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Peer::Addr(ip) => write!(f, "{}", ip.to_canonical()),
            Peer::Host(h) => f.write_str(h),
        }
    }
}

/// Whether a link without TLS may carry credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlainLink {
    /// A loopback peer: nothing leaves the host.
    Loopback,
    /// A remote peer, allowed by `--insecure-plaintext`: log it loudly at every connect.
    Insecure,
    /// A remote peer: refuse the link.
    Refused,
}

/// The rule: plain links only to or from loopback, unless `insecure_plaintext`.
pub fn plain_link(peer: Peer<'_>, insecure_plaintext: bool) -> PlainLink {
    if peer.is_loopback() {
        PlainLink::Loopback
    } else if insecure_plaintext {
        PlainLink::Insecure
    } else {
        PlainLink::Refused
    }
}

/// Why a plain link to or from `peer` is refused: what it would expose and the way out.
pub fn refused_reason(peer: Peer<'_>) -> String {
    format!(
        "plain (unencrypted) link with non-loopback peer {peer}: tokens and bucket credentials \
         would cross the network readable; use TLS (server: --tls-cert/--tls-key, agent and \
         client: --server https://...), or --insecure-plaintext on a network you trust"
    )
}

/// What to log (as a warning) at every connect of an allowed insecure link.
pub fn insecure_warning(peer: Peer<'_>) -> String {
    format!(
        "INSECURE: plain (unencrypted) link with non-loopback peer {peer} allowed by \
         --insecure-plaintext; tokens and bucket credentials cross the network readable"
    )
}
