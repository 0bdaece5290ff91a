//! Compilation of a structured filter into nftables match rules (disjunctive normal form).
//!
//! Fields AND, values within a field OR, so the rules are the cross product of the fields'
//! values, minus the combinations whose IP versions contradict each other (an IPv4 source with an
//! IPv6 destination can never match, so it gets no rule).

use std::collections::HashSet;
use std::hash::Hash;

use crate::address::Prefix;
use crate::error::{Field, FilterError, MAX_RULES};
use crate::ir::{Conjunction, Dir, Family, Match};
use crate::port::PortRange;
use crate::protocol::Protocol;
use crate::structured::StructuredFilter;

impl StructuredFilter {
    /// The rules that capture what this filter describes, in a deterministic order and without
    /// duplicates. An empty filter gives one empty rule, which matches every packet.
    ///
    /// Ports without a protocol mean tcp, udp or sctp, as tcpdump's `port`. `icmp` implies IPv4
    /// and `icmpv6` IPv6. Fails when a listed protocol has no ports but ports are asked for, when
    /// no combination of values shares an IP version, or past [`MAX_RULES`] rules.
    pub fn compile(&self) -> Result<Vec<Conjunction>, FilterError> {
        let src = unique(&self.source_address);
        let dst = unique(&self.destination_address);
        let sport = unique(&self.source_port);
        let dport = unique(&self.destination_port);
        let given_protocols = unique(&self.protocol);

        let port_field = match (sport.is_empty(), dport.is_empty()) {
            (false, _) => Some(Field::SourcePort),
            (true, false) => Some(Field::DestinationPort),
            (true, true) => None,
        };
        let implied_protocols = port_field.is_some() && given_protocols.is_empty();
        let protocols = match implied_protocols {
            true => Protocol::IMPLIED_BY_PORTS.to_vec(),
            false => given_protocols.clone(),
        };
        if let Some(field) = port_field
            && let Some(&protocol) = protocols.iter().find(|p| !p.has_ports())
        {
            return Err(FilterError::ProtocolWithoutPorts { field, protocol });
        }

        let src_families: Vec<Option<Family>> = src.iter().map(|p| Some(p.family())).collect();
        let dst_families: Vec<Option<Family>> = dst.iter().map(|p| Some(p.family())).collect();
        let proto_families: Vec<Option<Family>> = protocols.iter().map(|p| p.family()).collect();
        check_common_family(&[
            (Field::SourceAddress, &src_families),
            (Field::DestinationAddress, &dst_families),
            (Field::Protocol, &proto_families),
        ])?;

        let count = rule_count(&[
            &src_families,
            &dst_families,
            &proto_families,
            &vec![None; sport.len()],
            &vec![None; dport.len()],
        ]);
        if count > MAX_RULES as u128 {
            let lengths = [
                src.len(),
                dst.len(),
                sport.len(),
                dport.len(),
                given_protocols.len(),
            ];
            let fields = Field::ALL.into_iter().zip(lengths).filter(|&(_, n)| n > 1);
            return Err(FilterError::TooManyRules {
                fields: fields.map(|(f, _)| f).collect(),
                count,
                implied_protocols,
            });
        }

        let mut seen = HashSet::new();
        let mut rules = Vec::new();
        for &s in &choices(&src) {
            for &d in &choices(&dst) {
                for &p in &choices(&protocols) {
                    for &sp in &choices(&sport) {
                        for &dp in &choices(&dport) {
                            if let Some(rule) = conjunction(s, d, p, sp, dp)
                                && seen.insert(rule.clone())
                            {
                                rules.push(rule);
                            }
                        }
                    }
                }
            }
        }
        Ok(rules)
    }
}

/// One rule, in the order the netfilter encoder expects (family, protocol, addresses, ports);
/// `None` when the values ask for two IP versions at once.
fn conjunction(
    src: Option<Prefix>,
    dst: Option<Prefix>,
    proto: Option<Protocol>,
    sport: Option<PortRange>,
    dport: Option<PortRange>,
) -> Option<Conjunction> {
    let wanted = [
        src.map(|p| p.family()),
        dst.map(|p| p.family()),
        proto.and_then(|p| p.family()),
    ];
    let mut family = None;
    for f in wanted.into_iter().flatten() {
        match family {
            Some(existing) if existing != f => return None,
            _ => family = Some(f),
        }
    }
    let addr = |dir, p: Prefix| Match::Addr {
        dir,
        addr: p.addr(),
        prefix_len: p.prefix_len(),
        negate: false,
    };
    let port = |dir, r: PortRange| Match::Port {
        dir,
        lo: r.lo(),
        hi: r.hi(),
        negate: false,
    };
    let matches = [
        family.map(Match::Family),
        proto.map(|p| Match::L4Proto {
            proto: p.0,
            negate: false,
        }),
        src.map(|p| addr(Dir::Src, p)),
        dst.map(|p| addr(Dir::Dst, p)),
        sport.map(|r| port(Dir::Src, r)),
        dport.map(|r| port(Dir::Dst, r)),
    ];
    Some(Conjunction {
        matches: matches.into_iter().flatten().collect(),
    })
}

/// Fails naming the first pair of fields whose values share no IP version. Pairs suffice: each
/// field allows IPv4, IPv6 or both, and with two versions, sets that meet pairwise all meet.
fn check_common_family(fields: &[(Field, &Vec<Option<Family>>)]) -> Result<(), FilterError> {
    let allows = |families: &[Option<Family>], f: Family| {
        families.is_empty() || families.iter().any(|x| x.is_none_or(|x| x == f))
    };
    for (i, &(first, a)) in fields.iter().enumerate() {
        for &(second, b) in &fields[i + 1..] {
            let meet = [Family::V4, Family::V6]
                .iter()
                .any(|&f| allows(a, f) && allows(b, f));
            if !meet {
                return Err(FilterError::NoCommonFamily { first, second });
            }
        }
    }
    Ok(())
}

/// How many rules the cross product keeps, computed without building it (a filter of two
/// 10,000-entry lists must be refused, not expanded): rules for IPv4 plus rules for IPv6, minus
/// the version-free ones counted in both. `u128::MAX` when that does not fit.
fn rule_count(fields: &[&Vec<Option<Family>>]) -> u128 {
    let product = |keep: &dyn Fn(Option<Family>) -> bool| {
        fields.iter().try_fold(1u128, |acc, values| {
            let n = match values.is_empty() {
                true => 1,
                false => values.iter().filter(|&&f| keep(f)).count() as u128,
            };
            acc.checked_mul(n)
        })
    };
    let v4 = product(&|f| f != Some(Family::V6));
    let v6 = product(&|f| f != Some(Family::V4));
    let neither = product(&|f| f.is_none());
    match (v4, v6, neither) {
        (Some(v4), Some(v6), Some(neither)) => v4
            .checked_add(v6)
            .map_or(u128::MAX, |sum| sum.saturating_sub(neither)),
        _ => u128::MAX,
    }
}

fn unique<T: Eq + Hash + Copy>(values: &[T]) -> Vec<T> {
    let mut seen = HashSet::new();
    values.iter().copied().filter(|v| seen.insert(*v)).collect()
}

/// The values to iterate over; an empty field is one "no constraint" choice.
fn choices<T: Copy>(values: &[T]) -> Vec<Option<T>> {
    match values.is_empty() {
        true => vec![None],
        false => values.iter().copied().map(Some).collect(),
    }
}

#[cfg(test)]
#[path = "compile_tests.rs"]
mod tests;
