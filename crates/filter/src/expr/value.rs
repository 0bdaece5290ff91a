//! The values after qualifiers: addresses, networks (prefix, partial dotted, `mask`), ports,
//! port ranges and protocols, checked against their qualifiers as tcpdump checks them, and
//! refused where tcpdump's reading would surprise (`host 10.1` means a /16 there; `port 010`
//! is octal).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::address::Prefix;
use crate::expr::ast::{DirQual, Primitive};
use crate::expr::error::SyntaxError;
use crate::expr::lexer::{Tok, Token};
use crate::expr::names;
use crate::expr::parser::Parser;
use crate::ir::Family;

/// The value token as text, and whether it was escaped (`\name`).
fn word(t: &Token) -> (&str, bool) {
    match &t.tok {
        Tok::Word(w) => (w, false),
        Tok::Escaped(w) => (w, true),
        _ => ("", false),
    }
}

/// A dotted IPv4 address of 1 to 4 decimal parts: its value shifted to the top (`10.1` is
/// 10.1.0.0) and the number of parts. `None` when it is not one.
fn dotted(text: &str) -> Option<Result<(u32, u32), &'static str>> {
    if text.is_empty() || !text.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return None;
    }
    let parts: Vec<&str> = text.split('.').collect();
    if parts.len() > 4 || parts.iter().any(|p| p.is_empty()) {
        return Some(Err("not a dotted IPv4 address"));
    }
    let mut v = 0u32;
    for p in &parts {
        if p.len() > 1 && p.starts_with('0') {
            return Some(Err(
                "a part with a leading zero (tcpdump and inet_aton differ on it)",
            ));
        }
        match p.parse::<u8>() {
            Ok(n) => v = (v << 8) | u32::from(n),
            Err(_) => return Some(Err("a part above 255")),
        }
    }
    let n = parts.len() as u32;
    Some(Ok((v.checked_shl(32 - 8 * n).unwrap_or(0), n)))
}

fn is_name(text: &str) -> bool {
    text.starts_with(|c: char| c.is_ascii_alphabetic())
}

/// `ip` or `ip6` (or nothing) before `host`/`net`, checked against the address family.
fn family_qual(
    p: &Parser,
    t: &Token,
    pname: Option<&'static str>,
    family: Family,
) -> Result<(), SyntaxError> {
    match (pname, family) {
        (None, _) | (Some("ip"), Family::V4) | (Some("ip6"), Family::V6) => Ok(()),
        (Some("ip"), Family::V6) => Err(p.err(t, "ip applies to IPv4 addresses; this is IPv6")),
        (Some("ip6"), Family::V4) => Err(p.err(t, "ip6 applies to IPv6 addresses; this is IPv4")),
        (Some(other), _) => Err(p
            .err(t, format!("{other} cannot qualify an address"))
            .hint(format!("write {other} and host ADDRESS"))),
    }
}

pub(crate) fn host(
    p: &mut Parser,
    pname: Option<&'static str>,
    dir: DirQual,
) -> Result<Primitive, SyntaxError> {
    let t = p.bump();
    let (text, escaped) = word(&t);
    if escaped || is_name(text) {
        return Err(p
            .err(&t, "host names are not resolved")
            .hint("give an IPv4 or IPv6 address"));
    }
    let addr = if text.contains(':') {
        IpAddr::V6(
            text.parse::<Ipv6Addr>()
                .map_err(|_| p.err(&t, "not an IPv6 address"))?,
        )
    } else {
        match dotted(text) {
            Some(Ok((v, 4))) => IpAddr::V4(Ipv4Addr::from(v)),
            Some(Ok((_, 1))) => {
                return Err(p.err(&t, "a number is not an address").hint(
                    "tcpdump reads it as an IPv4 address (host 5 is 0.0.0.5); write a dotted \
                     address, or port N for a port",
                ));
            }
            Some(Ok(_)) => {
                return Err(p.err(&t, "a partial address is not a host").hint(format!(
                    "tcpdump reads host {text} as a network; write net {text}, or a full address"
                )));
            }
            Some(Err(why)) => return Err(p.err(&t, format!("{text} is {why}"))),
            None => return Err(p.err(&t, "not an IPv4 or IPv6 address")),
        }
    };
    let next = p.peek().clone();
    if next.tok == Tok::Slash || next.keyword().as_deref() == Some("mask") {
        return Err(p
            .err(&next, "a prefix length or mask needs net, not host")
            .hint(format!("write net {text}/LEN")));
    }
    family_qual(p, &t, pname, crate::address::family_of(addr))?;
    Ok(Primitive::Host { dir, addr })
}

pub(crate) fn net(
    p: &mut Parser,
    pname: Option<&'static str>,
    dir: DirQual,
) -> Result<Primitive, SyntaxError> {
    let t = p.bump();
    let (text, escaped) = word(&t);
    if escaped || is_name(text) {
        return Err(p
            .err(&t, "network names are not resolved")
            .hint("give a network such as 198.18.0.0/15 or 2001:db8::/32"));
    }
    let (addr, len) = if text.contains(':') {
        let a: Ipv6Addr = text.parse().map_err(|_| p.err(&t, "not an IPv6 address"))?;
        let len = match p.peek().tok {
            Tok::Slash => prefix_len(p, 128)?,
            _ if p.peek().keyword().as_deref() == Some("mask") => {
                let m = p.peek().clone();
                return Err(p
                    .err(&m, "mask is for IPv4 networks")
                    .hint(format!("write net {text}/LEN")));
            }
            _ => 128,
        };
        (IpAddr::V6(a), len)
    } else {
        let (v, parts) = match dotted(text) {
            Some(Ok(x)) => x,
            Some(Err(why)) => return Err(p.err(&t, format!("{text} is {why}"))),
            None => return Err(p.err(&t, "not a network address")),
        };
        let next = p.peek().clone();
        let explicit = next.tok == Tok::Slash || next.keyword().as_deref() == Some("mask");
        if parts == 1 {
            // tcpdump reads a lone number its own way: `net 10` is 10.0.0.0/8, but `net 0` is
            // 0.0.0.0/32, `net 256` is 1.0.0.0/16, and `net 10/8` does not parse.
            let n = v >> 24;
            if explicit || text.len() > 3 || n == 0 || names::number(text) != Ok(n) {
                return Err(p
                    .err(&t, "a network written as one number is ambiguous")
                    .hint("write it dotted, e.g. net 10.0.0.0/8"));
            }
        }
        let len = match next.tok {
            Tok::Slash => prefix_len(p, 32)?,
            _ if explicit => {
                p.bump();
                netmask(p)?
            }
            _ => 8 * parts as u8,
        };
        (IpAddr::V4(Ipv4Addr::from(v)), len)
    };
    let prefix = Prefix::new(addr, len).ok_or_else(|| {
        let network = crate::address::mask(addr, len);
        p.err(&t, format!("{addr}/{len} has host bits set"))
            .hint(format!("did you mean net {network}/{len}?"))
    })?;
    family_qual(p, &t, pname, prefix.family())?;
    Ok(Primitive::Net { dir, prefix })
}

/// `/LEN`, at most `max`.
fn prefix_len(p: &mut Parser, max: u8) -> Result<u8, SyntaxError> {
    p.bump();
    let t = p.peek().clone();
    let n = p.number_token("a prefix length")?;
    u8::try_from(n)
        .ok()
        .filter(|n| *n <= max)
        .ok_or_else(|| p.err(&t, format!("prefix length {n} is longer than {max}")))
}

/// The dotted mask after `mask` (partial masks are promoted as tcpdump does: `255.254` is
/// 255.254.0.0); only contiguous masks, which are prefixes.
fn netmask(p: &mut Parser) -> Result<u8, SyntaxError> {
    let t = p.bump();
    let (text, _) = word(&t);
    let m = match dotted(text) {
        Some(Ok((m, _))) => m,
        _ => return Err(p.err(&t, "expected a dotted mask such as 255.254.0.0")),
    };
    if m.leading_ones() + m.trailing_zeros() != 32 {
        return Err(p
            .err(&t, "a mask with holes is not supported")
            .hint("use a contiguous mask (a prefix length), e.g. 255.255.0.0"));
    }
    Ok(m.leading_ones() as u8)
}

/// `port N` and `portrange LO-HI`, of `tcp`/`udp`/`sctp` or (without one) all three.
pub(crate) fn port(
    p: &mut Parser,
    pname: Option<&'static str>,
    dir: DirQual,
    range: bool,
) -> Result<Primitive, SyntaxError> {
    let t = p.bump();
    let (text, escaped) = word(&t);
    let proto = match pname {
        None => None,
        Some("tcp") => Some(6),
        Some("udp") => Some(17),
        Some("sctp") => Some(132),
        Some(other) => {
            return Err(p
                .err(&t, format!("{other} has no ports"))
                .hint("port and portrange apply to tcp, udp and sctp (or all three)"));
        }
    };
    let one = |s: &str| -> Result<u16, SyntaxError> {
        if escaped || is_name(s) {
            return Err(p
                .err(&t, "port names are not looked up")
                .hint("give the number, e.g. port 443 (names differ between hosts)"));
        }
        let n = names::number(s).map_err(|why| p.err(&t, format!("{s} is {why}")))?;
        u16::try_from(n).map_err(|_| p.err(&t, format!("port {n} is outside 0-65535")))
    };
    let (lo, hi) = match (range, text.split_once('-')) {
        (false, _) => {
            let n = one(text)?;
            (n, n)
        }
        (true, Some((a, b))) => (one(a)?, one(b)?),
        (true, None) => {
            return Err(p
                .err(&t, "a port range needs a low and a high port")
                .hint("write portrange 1024-65535"));
        }
    };
    if lo > hi {
        return Err(p
            .err(&t, format!("range {lo}-{hi} starts above its end"))
            .hint(format!("write portrange {hi}-{lo}")));
    }
    Ok(Primitive::Port {
        proto,
        dir,
        lo,
        hi,
        range,
    })
}

/// `proto N` / `ip proto N` / `ip6 proto N`, N a number or name (`\tcp` or `tcp`).
pub(crate) fn proto(p: &mut Parser, pname: Option<&'static str>) -> Result<Primitive, SyntaxError> {
    let t = p.bump();
    let (text, _) = word(&t);
    let family = match pname {
        None => None,
        Some("ip") => Some(Family::V4),
        Some("ip6") => Some(Family::V6),
        Some(other) => {
            return Err(p
                .err(&t, format!("{other} proto is not valid"))
                .hint("write proto N, ip proto N or ip6 proto N"));
        }
    };
    let proto = match names::number(text) {
        Ok(n) => {
            u8::try_from(n).map_err(|_| p.err(&t, format!("protocol {n} is outside 0-255")))?
        }
        Err(_) if is_name(text) => names::protocol(text).ok_or_else(|| {
            p.err(&t, format!("unknown protocol {text}")).hint(
                "give the number (e.g. proto 47), or tcp, udp, icmp, icmp6, gre, esp, ah, sctp",
            )
        })?,
        Err(why) => return Err(p.err(&t, format!("{text} is {why}"))),
    };
    Ok(Primitive::Proto { family, proto })
}
