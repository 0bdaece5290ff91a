//! nft syntax for compiled rules, for people: display, logs and the pcapng `if_filter` option.
//!
//! The kernel never sees this text (the netfilter crate encodes [`Match`]es as expressions), but
//! it is valid `nft` rule syntax, so an operator can paste it into `nft add rule`.

use crate::ir::{Base, Conjunction, Dir, Family, Match, Payload, Test};

/// One line per rule, e.g. `meta nfproto ipv4 meta l4proto 17 ip saddr 198.18.0.0/24 th dport 53`.
/// An empty rule (match everything) renders as an empty string: it has no match expressions,
/// only the statements the caller appends.
pub fn render_nft(conjunctions: &[Conjunction]) -> Vec<String> {
    conjunctions.iter().map(render_rule).collect()
}

fn render_rule(conj: &Conjunction) -> String {
    // The family of the latest `Family` match picks `ip` or `ip6` for addresses; the encoder's
    // invariant puts it before any address.
    let mut family = None;
    let parts: Vec<String> = conj
        .matches
        .iter()
        .map(|m| {
            if let Match::Family(f) = m {
                family = Some(*f);
            }
            render_match(m, family)
        })
        .collect();
    parts.join(" ")
}

fn render_match(m: &Match, family: Option<Family>) -> String {
    match *m {
        Match::Family(Family::V4) => "meta nfproto ipv4".to_owned(),
        Match::Family(Family::V6) => "meta nfproto ipv6".to_owned(),
        Match::L4Proto { proto, negate } => format!("meta l4proto {}{proto}", op(negate)),
        Match::Addr {
            dir,
            addr,
            prefix_len,
            negate,
        } => {
            let base = match (family, addr.is_ipv4()) {
                (Some(Family::V6), _) | (None, false) => "ip6",
                _ => "ip",
            };
            let field = match dir {
                Dir::Src => "saddr",
                Dir::Dst => "daddr",
            };
            let host_len = if addr.is_ipv4() { 32 } else { 128 };
            match prefix_len == host_len {
                true => format!("{base} {field} {}{addr}", op(negate)),
                false => format!("{base} {field} {}{addr}/{prefix_len}", op(negate)),
            }
        }
        Match::Port {
            dir,
            lo,
            hi,
            negate,
        } => {
            let field = match dir {
                Dir::Src => "sport",
                Dir::Dst => "dport",
            };
            match lo == hi {
                true => format!("th {field} {}{lo}", op(negate)),
                false => format!("th {field} {}{lo}-{hi}", op(negate)),
            }
        }
        Match::TcpFlags {
            mask,
            value,
            negate,
        } => {
            format!("tcp flags & {mask:#04x} {}{value:#04x}", op(negate))
        }
        Match::Length { op, value } => format!("meta length {} {value}", op.symbol()),
        Match::Payload(ref p) => render_payload(p),
    }
}

/// nft's raw payload syntax, `@nh,OFFSET_BITS,LEN_BITS [& MASK] TEST`.
fn render_payload(p: &Payload) -> String {
    let base = match p.base {
        Base::Network => "nh",
        Base::Transport => "th",
    };
    let mut s = format!(
        "@{base},{},{}",
        u32::from(p.offset) * 8,
        u32::from(p.size) * 8
    );
    if let Some(m) = p.mask {
        s.push_str(&format!(" & {m:#x}"));
    }
    let test = match &p.test {
        // After a mask nft needs the operator spelled out; `==` reads well everywhere.
        Test::Cmp { op, value } => format!("{} {value}", op.symbol()),
        Test::Range { lo, hi, negate } => format!("{}{lo}-{hi}", op(*negate)),
        Test::Set { values, negate } => {
            let items: Vec<String> = values.iter().map(u32::to_string).collect();
            format!("{}{{ {} }}", op(*negate), items.join(", "))
        }
    };
    format!("{s} {test}")
}

fn op(negate: bool) -> &'static str {
    if negate { "!= " } else { "" }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StructuredFilter;

    fn rules(
        src: &[&str],
        dst: &[&str],
        sport: &[&str],
        dport: &[&str],
        proto: &[&str],
    ) -> Vec<String> {
        let filter = StructuredFilter::from_cli(src, dst, sport, dport, proto).unwrap();
        render_nft(&filter.compile().unwrap())
    }

    #[test]
    fn renders_the_documented_example() {
        assert_eq!(
            rules(&["198.18.0.0/24"], &[], &[], &["53"], &["udp"]),
            ["meta nfproto ipv4 meta l4proto 17 ip saddr 198.18.0.0/24 th dport 53"]
        );
    }

    #[test]
    fn renders_ipv6_hosts_ranges_and_the_empty_rule() {
        assert_eq!(
            rules(&[], &["2001:db8::1"], &["1024-65535"], &[], &["tcp"]),
            ["meta nfproto ipv6 meta l4proto 6 ip6 daddr 2001:db8::1 th sport 1024-65535"]
        );
        assert_eq!(rules(&[], &[], &[], &[], &[]), [""]);
        assert_eq!(
            rules(&[], &[], &[], &[], &["icmpv6"]),
            ["meta nfproto ipv6 meta l4proto 58"]
        );
    }

    #[test]
    fn renders_negations() {
        let conj = Conjunction {
            matches: vec![
                Match::Family(Family::V4),
                Match::L4Proto {
                    proto: 6,
                    negate: false,
                },
                Match::Addr {
                    dir: Dir::Dst,
                    addr: "10.0.0.0".parse().unwrap(),
                    prefix_len: 8,
                    negate: true,
                },
                Match::Port {
                    dir: Dir::Dst,
                    lo: 22,
                    hi: 22,
                    negate: true,
                },
            ],
        };
        assert_eq!(
            render_nft(&[conj]),
            ["meta nfproto ipv4 meta l4proto 6 ip daddr != 10.0.0.0/8 th dport != 22"]
        );
        let conj = Conjunction {
            matches: vec![Match::L4Proto {
                proto: 1,
                negate: true,
            }],
        };
        assert_eq!(render_nft(&[conj]), ["meta l4proto != 1"]);
    }
}
