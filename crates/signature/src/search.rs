//! The search: candidates from value counts, measured with the filter crate's matcher, chosen,
//! and turned into one expression.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;

use edgecap_filter::expr::ast::MAX_FIELD_REACH;
use edgecap_filter::ir::Conjunction;
use edgecap_filter::{Expression, Prefix, render_nft};

use crate::decode::{Decoded, Family, decode};
use crate::field::Field;
use crate::{FieldReport, Limits, MAX_DISTINCT, Mitigation, Signature};

/// Counts of values, at most [`MAX_DISTINCT`] of them.
struct Counter<K> {
    counts: HashMap<K, usize>,
}

impl<K: Hash + Eq + Ord + Clone> Counter<K> {
    fn new() -> Self {
        Counter {
            counts: HashMap::new(),
        }
    }

    fn add(&mut self, k: K) {
        if let Some(c) = self.counts.get_mut(&k) {
            *c += 1;
        } else if self.counts.len() < MAX_DISTINCT {
            self.counts.insert(k, 1);
        }
    }

    /// The most frequent value (the smallest of equals, so the answer does not depend on
    /// hashing) and its count.
    fn top(&self) -> Option<(K, usize)> {
        self.counts
            .iter()
            .max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))
            .map(|(k, c)| (k.clone(), *c))
    }
}

/// The IP packets among the first `max` (decoded), and how many were skipped.
fn take<'a, P: AsRef<[u8]>>(packets: &'a [P], max: usize) -> (Vec<(&'a [u8], Decoded<'a>)>, usize) {
    let mut out = Vec::new();
    for p in packets.iter().take(max) {
        if let Some(d) = decode(p.as_ref()) {
            out.push((p.as_ref(), d));
        }
    }
    let skipped = packets.len() - out.len();
    (out, skipped)
}

fn prefix_of(a: IpAddr, len: u8) -> Option<(IpAddr, u8)> {
    Prefix::new(a, len)
        .or_else(|| {
            // Host bits set: clear them.
            let masked = match a {
                IpAddr::V4(v) => {
                    let m = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
                    IpAddr::V4((u32::from(v) & m).into())
                }
                IpAddr::V6(v) => {
                    let m = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
                    IpAddr::V6((u128::from(v) & m).into())
                }
            };
            Prefix::new(masked, len)
        })
        .map(|p| (p.addr(), p.prefix_len()))
}

/// The candidates: per field, the value most attack packets share.
fn candidates(packets: &[(&[u8], Decoded<'_>)], limits: &Limits) -> Vec<Field> {
    let n = packets.len();
    let share = |c: usize| c as f64 / n as f64;
    let mut proto = Counter::new();
    let mut dst = Counter::new();
    let mut src: [Counter<(IpAddr, u8)>; 3] = [Counter::new(), Counter::new(), Counter::new()];
    let mut dport = Counter::new();
    let mut sport = Counter::new();
    let mut ttl = Counter::new();
    let mut flags = Counter::new();
    let mut lens = Vec::with_capacity(n);
    for (_, d) in packets {
        let v6 = d.family == Family::V6;
        proto.add((d.proto, v6));
        dst.add(d.dst);
        let levels: [u8; 3] = if v6 { [128, 64, 48] } else { [32, 24, 16] };
        for (c, len) in src.iter_mut().zip(levels) {
            if let Some(p) = prefix_of(d.src, len) {
                c.add(p);
            }
        }
        if let Some((s, t)) = d.ports {
            sport.add((d.proto, s));
            dport.add((d.proto, t));
        }
        ttl.add((d.ttl, v6));
        if let Some(f) = d.tcp_flags {
            flags.add((f, v6));
        }
        lens.push(d.len);
    }
    let mut out = Vec::new();
    if let Some(((protocol, ipv6), _)) = proto.top() {
        out.push(Field::Protocol { protocol, ipv6 });
    }
    if let Some((address, _)) = dst.top() {
        out.push(Field::Destination { address });
    }
    // The longest source prefix most packets share; else the widest, for information.
    let tops: Vec<((IpAddr, u8), usize)> = src.iter().filter_map(Counter::top).collect();
    let chosen = tops
        .iter()
        .find(|(_, c)| share(*c) >= limits.min_coverage)
        .or(tops.last());
    if let Some(((address, prefix_len), _)) = chosen {
        out.push(Field::SourcePrefix {
            address: *address,
            prefix_len: *prefix_len,
        });
    }
    if let Some(((protocol, port), _)) = dport.top() {
        out.push(Field::DestinationPort { protocol, port });
    }
    if let Some(((protocol, port), _)) = sport.top() {
        out.push(Field::SourcePort { protocol, port });
    }
    if let Some(((ttl, ipv6), _)) = ttl.top() {
        out.push(Field::Ttl { ttl, ipv6 });
    }
    if let Some(((flags, ipv6), _)) = flags.top() {
        out.push(Field::TcpFlags { flags, ipv6 });
    }
    out.push(length(&mut lens, limits.min_coverage));
    if let Some(Field::Protocol {
        protocol: p @ (1 | 6 | 17),
        ipv6: false,
    }) = out.first()
    {
        out.extend(payload(packets, *p, limits));
    }
    out
}

/// One length when most packets have it, else the narrowest range holding `min_coverage`.
fn length(lens: &mut [u32], min_coverage: f64) -> Field {
    lens.sort_unstable();
    let n = lens.len();
    // The most common length.
    let (mut best, mut best_count, mut i) = (lens[0], 0usize, 0usize);
    while i < n {
        let j = i + lens[i..].iter().take_while(|l| **l == lens[i]).count();
        if j - i > best_count {
            (best, best_count) = (lens[i], j - i);
        }
        i = j;
    }
    if best_count as f64 / n as f64 >= min_coverage {
        return Field::Length { lo: best, hi: best };
    }
    let keep = ((n as f64 * min_coverage).ceil() as usize).clamp(1, n);
    let (lo, hi) = (0..=n - keep)
        .map(|s| (lens[s], lens[s + keep - 1]))
        .min_by_key(|(lo, hi)| hi - lo)
        .unwrap_or((lens[0], lens[n - 1]));
    Field::Length { lo, hi }
}

/// Fixed payload bytes of IPv4 `proto` packets: offsets past the minimal header where most
/// attack packets hold the same byte, cut into fields of 4, 2 or 1 bytes.
fn payload(packets: &[(&[u8], Decoded<'_>)], proto: u8, limits: &Limits) -> Vec<Field> {
    let header: u16 = if proto == 6 { 20 } else { 8 };
    let end = header
        .saturating_add(limits.payload_window)
        .min(MAX_FIELD_REACH);
    let width = usize::from(end - header);
    let mut counts = vec![[0u32; 256]; width];
    for (_, d) in packets {
        let Some(t) = d.transport.filter(|_| d.proto == proto) else {
            continue;
        };
        for (i, b) in t.iter().skip(usize::from(header)).take(width).enumerate() {
            counts[i][usize::from(*b)] += 1;
        }
    }
    let n = packets.len() as f64;
    let fixed: Vec<Option<u8>> = counts
        .iter()
        .map(|c| {
            let (b, k) = c.iter().enumerate().max_by_key(|(_, k)| **k)?;
            (f64::from(*k) / n >= limits.min_coverage).then_some(b as u8)
        })
        .collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < width && out.len() < limits.max_payload_fields {
        let run = fixed[i..].iter().take_while(|b| b.is_some()).count();
        if run == 0 {
            i += 1;
            continue;
        }
        let size = [4usize, 2, 1].into_iter().find(|s| *s <= run).unwrap_or(1);
        let content = fixed[i..i + size]
            .iter()
            .fold(0u32, |acc, b| (acc << 8) | u32::from(b.unwrap_or(0)));
        out.push(Field::Payload {
            protocol: proto,
            offset: header + i as u16,
            size: size as u8,
            content,
        });
        i += size;
    }
    out
}

fn compile(text: &str) -> Option<Vec<Conjunction>> {
    Expression::parse(text).ok()?.compile().ok()
}

/// Which packets the rules match.
fn hits(rules: &[Conjunction], packets: &[(&[u8], Decoded<'_>)]) -> Vec<bool> {
    packets
        .iter()
        .map(|(ip, _)| edgecap_filter::matches(rules, ip))
        .collect()
}

fn rate(hits: &[bool]) -> f64 {
    match hits.len() {
        0 => 0.0,
        n => hits.iter().filter(|h| **h).count() as f64 / n as f64,
    }
}

struct Measured {
    field: Field,
    attack: Vec<bool>,
    baseline: Option<Vec<bool>>,
}

pub(crate) fn run<P: AsRef<[u8]>>(
    attack: &[P],
    baseline: Option<&[P]>,
    limits: &Limits,
) -> Signature {
    let (packets, skipped) = take(attack, limits.max_packets);
    let base = baseline.map(|b| take(b, limits.max_packets).0);
    let mut sig = Signature {
        attack_packets: packets.len(),
        attack_skipped: skipped,
        baseline_packets: base.as_ref().map(Vec::len),
        fields: Vec::new(),
        mitigation: None,
        note: None,
    };
    if packets.is_empty() {
        sig.note = Some("the attack has no IPv4 or IPv6 packets".to_owned());
        return sig;
    }
    let mut measured: Vec<Measured> = candidates(&packets, limits)
        .into_iter()
        .filter_map(|field| {
            let rules = compile(&field.expression())?;
            Some(Measured {
                attack: hits(&rules, &packets),
                baseline: base.as_ref().map(|b| hits(&rules, b)),
                field,
            })
        })
        .collect();
    let eligible = |m: &Measured| rate(&m.attack) >= limits.min_coverage;
    let chosen = choose(&measured, limits, base.as_ref().map(Vec::len));
    // Best first: chosen, then by baseline hit rate (lower first), then coverage.
    measured.sort_by(|a, b| {
        let key = |m: &Measured| {
            (
                !chosen.contains(&m.field),
                !eligible(m),
                m.baseline.as_deref().map_or(0.0, rate),
            )
        };
        let (ka, kb) = (key(a), key(b));
        ka.0.cmp(&kb.0)
            .then(ka.1.cmp(&kb.1))
            .then(ka.2.total_cmp(&kb.2))
            .then(rate(&b.attack).total_cmp(&rate(&a.attack)))
    });
    sig.fields = measured
        .iter()
        .map(|m| FieldReport {
            value: m.field.to_string(),
            expression: m.field.expression(),
            coverage: rate(&m.attack),
            baseline_hit_rate: m.baseline.as_deref().map(rate),
            chosen: chosen.contains(&m.field),
            field: m.field.clone(),
        })
        .collect();
    if chosen.is_empty() {
        sig.note = Some(format!(
            "no field is shared by {:.0} % of the attack's packets: no rule proposed",
            limits.min_coverage * 100.0
        ));
        return sig;
    }
    sig.mitigation = mitigation(&chosen, &packets, base.as_deref());
    if let Some(m) = &mut sig.mitigation {
        for f in &mut sig.fields {
            if m.dropped.iter().any(|d| d.starts_with(&f.expression)) {
                f.chosen = false;
            }
        }
    } else {
        sig.note = Some(format!(
            "the chosen fields ({}) do not compile to a filter edgecap can install",
            chosen
                .iter()
                .map(Field::expression)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    sig
}

/// The fields of the rule: without a baseline every eligible field; with one, the
/// destination (when eligible, to scope the rule) and then, greedily, the field that most
/// lowers the baseline hit rate, while one does.
fn choose(measured: &[Measured], limits: &Limits, baseline: Option<usize>) -> Vec<Field> {
    let eligible: Vec<&Measured> = measured
        .iter()
        .filter(|m| rate(&m.attack) >= limits.min_coverage)
        .collect();
    let mut chosen: Vec<&Measured> = match baseline {
        None => eligible.clone(),
        Some(n) => {
            let mut current = vec![true; n];
            let mut chosen: Vec<&Measured> = Vec::new();
            let apply = |cur: &[bool], m: &Measured| -> Vec<bool> {
                let b = m.baseline.as_deref().unwrap_or(&[]);
                cur.iter().zip(b).map(|(c, h)| *c && *h).collect()
            };
            if let Some(d) = eligible
                .iter()
                .find(|m| matches!(m.field, Field::Destination { .. }))
            {
                current = apply(&current, d);
                chosen.push(*d);
            }
            loop {
                let count = current.iter().filter(|c| **c).count();
                if count == 0 {
                    break;
                }
                let best = eligible
                    .iter()
                    .filter(|m| !chosen.iter().any(|c| c.field == m.field))
                    .map(|m| {
                        let next = apply(&current, m);
                        let k = next.iter().filter(|c| **c).count();
                        (k, m, next)
                    })
                    .min_by_key(|(k, _, _)| *k);
                match best {
                    Some((k, m, next)) if k < count => {
                        chosen.push(*m);
                        current = next;
                    }
                    _ => break,
                }
            }
            chosen
        }
    };
    let fields: Vec<Field> = chosen.iter().map(|m| m.field.clone()).collect();
    chosen.retain(|m| !fields.iter().any(|o| m.field.implied_by(o)));
    chosen.into_iter().map(|m| m.field.clone()).collect()
}

/// The chosen fields as one expression and its rules; payload fields are dropped when the
/// rule could not hold them exactly.
fn mitigation(
    chosen: &[Field],
    attack: &[(&[u8], Decoded<'_>)],
    baseline: Option<&[(&[u8], Decoded<'_>)]>,
) -> Option<Mitigation> {
    let text = |fields: &[&Field]| -> String {
        fields
            .iter()
            .map(|f| f.expression())
            .collect::<Vec<_>>()
            .join(" and ")
    };
    let all: Vec<&Field> = chosen.iter().collect();
    let mut dropped = Vec::new();
    let (expression, rules) = match Expression::parse(&text(&all)).map(|e| e.compile()) {
        Ok(Ok(rules)) if !rules.is_empty() => (text(&all), rules),
        result => {
            let why = match result {
                Ok(Ok(_)) => "the fields together match nothing".to_owned(),
                Ok(Err(e)) | Err(e) => e.to_string(),
            };
            let kept: Vec<&Field> = all.iter().copied().filter(|f| !f.is_payload()).collect();
            for f in all.iter().filter(|f| f.is_payload()) {
                dropped.push(format!("{}: {why}", f.expression()));
            }
            let rules = compile(&text(&kept)).filter(|r| !r.is_empty() && !kept.is_empty())?;
            (text(&kept), rules)
        }
    };
    Some(Mitigation {
        nft: render_nft(&rules)
            .into_iter()
            .map(|r| format!("{r} counter drop"))
            .collect(),
        coverage: rate(&hits(&rules, attack)),
        baseline_hit_rate: baseline.map(|b| rate(&hits(&rules, b))),
        expression,
        dropped,
    })
}
