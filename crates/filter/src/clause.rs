//! One conjunction under construction: the value sets its matches allow, field by field, so
//! contradictions (`ip[9] == 6` with `ip[9] == 17`, IPv4 with IPv6) drop the conjunction,
//! matches implied by others (`ip[9] != 44` next to `ip[9] == 6`) are dropped, and a
//! conjunction implied by another (`port 80 over tcp` next to `port 80 over tcp, udp or sctp`)
//! is absorbed. Every step is sound: what is dropped can never change which packets match.
//!
//! A field is what one match loads (the family, an address, a masked payload slice, the
//! length); its allowed values are a union of intervals over `u128`, an over-approximation for
//! masked fields (a masked value only takes values within its mask), which keeps pruning sound.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::address::mask;
use crate::ir::{Base, CmpOp, Conjunction, Dir, Family, Match, Payload, Test};

/// The value a match loads, as a comparable key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    Family,
    L4Proto,
    Addr(u8, u8),
    Length,
    /// base (0 network, 1 transport), offset, size, mask.
    Field(u8, u16, u8, u32),
}

/// Sorted, disjoint, inclusive intervals.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Ranges(Vec<(u128, u128)>);

impl Ranges {
    fn one(lo: u128, hi: u128) -> Self {
        Ranges(if lo <= hi { vec![(lo, hi)] } else { vec![] })
    }

    fn points(values: &[u32]) -> Self {
        let mut r = Ranges(Vec::new());
        for v in values {
            r = r.union(&Ranges::one(u128::from(*v), u128::from(*v)));
        }
        r
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn intersect(&self, other: &Ranges) -> Ranges {
        let mut out = Vec::new();
        for &(a, b) in &self.0 {
            for &(c, d) in &other.0 {
                let (lo, hi) = (a.max(c), b.min(d));
                if lo <= hi {
                    out.push((lo, hi));
                }
            }
        }
        out.sort_unstable();
        Ranges(out)
    }

    fn union(&self, other: &Ranges) -> Ranges {
        let mut all: Vec<(u128, u128)> = self.0.iter().chain(&other.0).copied().collect();
        all.sort_unstable();
        let mut out: Vec<(u128, u128)> = Vec::new();
        for (lo, hi) in all {
            match out.last_mut() {
                Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
                _ => out.push((lo, hi)),
            }
        }
        Ranges(out)
    }

    /// Within `[0, max]`.
    fn complement(&self, max: u128) -> Ranges {
        let mut out = Vec::new();
        let mut next = 0u128;
        let mut done = false;
        for &(lo, hi) in &self.0 {
            if lo > next {
                out.push((next, lo - 1));
            }
            match hi.checked_add(1) {
                Some(n) => next = n,
                None => done = true,
            }
        }
        if !done && next <= max {
            out.push((next, max));
        }
        Ranges(out)
    }

    /// Both lists are canonical (sorted, disjoint, never adjacent: every constructor merges),
    /// so each of our intervals must lie inside one of theirs.
    fn subset_of(&self, other: &Ranges) -> bool {
        let mut theirs = other.0.iter().peekable();
        self.0.iter().all(|&(lo, hi)| {
            while theirs.next_if(|&&(_, d)| d < lo).is_some() {}
            theirs.peek().is_some_and(|&&(c, d)| c <= lo && hi <= d)
        })
    }
}

fn cmp_ranges(op: CmpOp, v: u128, max: u128) -> Ranges {
    match op {
        CmpOp::Eq => Ranges::one(v, v),
        CmpOp::Ne => Ranges::one(v, v).complement(max),
        CmpOp::Lt if v == 0 => Ranges(vec![]),
        CmpOp::Lt => Ranges::one(0, v - 1),
        CmpOp::Le => Ranges::one(0, v),
        CmpOp::Gt => Ranges::one(v + 1, max),
        CmpOp::Ge => Ranges::one(v, max),
    }
}

fn payload_key(p: &Payload) -> (Key, u128) {
    let full = u32::MAX >> (32 - 8 * u32::from(p.size.clamp(1, 4)));
    let m = p.mask.unwrap_or(full) & full;
    let base = match p.base {
        Base::Network => 0,
        Base::Transport => 1,
    };
    (Key::Field(base, p.offset, p.size, m), u128::from(m))
}

/// The field a match loads and the values it allows there.
fn field(m: &Match) -> (Key, Ranges) {
    let neg = |r: Ranges, negate: bool, max: u128| if negate { r.complement(max) } else { r };
    match m {
        Match::Family(Family::V4) => (Key::Family, Ranges::one(4, 4)),
        Match::Family(Family::V6) => (Key::Family, Ranges::one(6, 6)),
        Match::L4Proto { proto, negate } => {
            let p = u128::from(*proto);
            (Key::L4Proto, neg(Ranges::one(p, p), *negate, 255))
        }
        Match::Addr {
            dir,
            addr,
            prefix_len,
            negate,
        } => {
            let (fam, bits) = match addr {
                IpAddr::V4(_) => (4, 32),
                IpAddr::V6(_) => (6, 128),
            };
            let max = u128::MAX >> (128 - bits);
            let host = max.checked_shr(u32::from(*prefix_len)).unwrap_or(0);
            let net = match mask(*addr, *prefix_len) {
                IpAddr::V4(a) => u128::from(u32::from(a)),
                IpAddr::V6(a) => u128::from(a),
            };
            let d = if *dir == Dir::Src { 0 } else { 1 };
            (
                Key::Addr(fam, d),
                neg(Ranges::one(net, net | host), *negate, max),
            )
        }
        Match::Port {
            dir,
            lo,
            hi,
            negate,
        } => {
            let off = if *dir == Dir::Src { 0 } else { 2 };
            let r = Ranges::one(u128::from(*lo), u128::from(*hi));
            (Key::Field(1, off, 2, 0xffff), neg(r, *negate, 0xffff))
        }
        Match::TcpFlags {
            mask,
            value,
            negate,
        } => {
            let v = u128::from(*value);
            let max = u128::from(*mask);
            (
                Key::Field(1, 13, 1, u32::from(*mask)),
                neg(Ranges::one(v, v), *negate, max),
            )
        }
        Match::Length { op, value } => (
            Key::Length,
            cmp_ranges(*op, u128::from(*value), u128::from(u32::MAX)),
        ),
        Match::Payload(p) => {
            let (key, max) = payload_key(p);
            let r = match &p.test {
                Test::Cmp { op, value } => cmp_ranges(*op, u128::from(*value), max),
                Test::Range { lo, hi, negate } => {
                    neg(Ranges::one(u128::from(*lo), u128::from(*hi)), *negate, max)
                }
                Test::Set { values, negate } => neg(Ranges::points(values), *negate, max),
            };
            // Values above the mask never occur.
            (key, r.intersect(&Ranges::one(0, max)))
        }
    }
}

/// A conjunction that is satisfiable as far as field-by-field reasoning can tell, with the
/// values each field is left with.
#[derive(Debug, Clone)]
pub(crate) struct Clause {
    matches: Vec<Match>,
    fields: BTreeMap<Key, Ranges>,
}

impl Clause {
    /// `None` when the matches contradict each other. Drops repeats and implied matches, keeping
    /// the first occurrence's position so guards stay ahead of what they guard.
    pub(crate) fn new(matches: Vec<Match>) -> Option<Clause> {
        let mut kept: Vec<(Match, Key, Ranges)> = Vec::with_capacity(matches.len());
        for m in matches {
            if kept.iter().any(|(k, _, _)| *k == m) {
                continue;
            }
            let (key, r) = field(&m);
            kept.push((m, key, r));
        }
        let mut fields: BTreeMap<Key, Ranges> = BTreeMap::new();
        for (_, key, r) in &kept {
            let merged = match fields.get(key) {
                Some(existing) => existing.intersect(r),
                None => r.clone(),
            };
            if merged.is_empty() {
                return None;
            }
            fields.insert(*key, merged);
        }
        // An address of the other IP version than the conjunction's family never loads.
        let family = fields.get(&Key::Family).cloned();
        if let Some(f) = family {
            for key in fields.keys() {
                if let Key::Addr(fam, _) = key
                    && !Ranges::one(u128::from(*fam), u128::from(*fam)).subset_of(&f)
                {
                    return None;
                }
            }
        }
        // A match is implied when the others on its field already allow no more than it does.
        let mut i = 0;
        while i < kept.len() {
            let key = kept[i].1;
            let others = kept
                .iter()
                .enumerate()
                .filter(|(j, (_, k, _))| *j != i && *k == key)
                .fold(None::<Ranges>, |acc, (_, (_, _, r))| {
                    Some(acc.map_or_else(|| r.clone(), |a| a.intersect(r)))
                });
            match others {
                Some(o) if o.subset_of(&kept[i].2) => {
                    kept.remove(i);
                }
                _ => i += 1,
            }
        }
        Some(Clause {
            matches: kept.into_iter().map(|(m, _, _)| m).collect(),
            fields,
        })
    }

    /// This conjunction and `other`: `other`'s matches after this one's.
    pub(crate) fn and(&self, other: &Clause) -> Option<Clause> {
        let mut all = self.matches.clone();
        all.extend(other.matches.iter().cloned());
        Clause::new(all)
    }

    /// Whether every packet this clause matches is also matched by `other` (so `other`
    /// absorbs it in a disjunction).
    fn implies(&self, other: &Clause) -> bool {
        other.fields.iter().all(|(key, theirs)| {
            self.fields
                .get(key)
                .is_some_and(|ours| ours.subset_of(theirs))
        })
    }

    pub(crate) fn len(&self) -> usize {
        self.matches.len()
    }

    pub(crate) fn into_conjunction(self) -> Conjunction {
        Conjunction {
            matches: self.matches,
        }
    }
}

/// Lists longer than this only lose exact repeats: comparing every pair would take longer than
/// refusing the expression, which such a list is on its way to anyway.
const ABSORB_LIMIT: usize = 1024;

/// Drops every clause that another one absorbs (keeping the first of equal ones).
pub(crate) fn absorb(clauses: Vec<Clause>) -> Vec<Clause> {
    if clauses.len() > ABSORB_LIMIT {
        let mut seen = std::collections::HashSet::new();
        return clauses
            .into_iter()
            .filter(|c| seen.insert(c.matches.clone()))
            .collect();
    }
    let mut order: Vec<usize> = (0..clauses.len()).collect();
    // Shorter clauses tend to be the more general ones; try them first.
    order.sort_by_key(|&i| (clauses[i].fields.len(), i));
    let mut keep = vec![true; clauses.len()];
    for (n, &i) in order.iter().enumerate() {
        if !keep[i] {
            continue;
        }
        for &j in &order[n + 1..] {
            if keep[j] && clauses[j].implies(&clauses[i]) {
                keep[j] = false;
            }
        }
        // A later, more general clause may absorb this one too.
        if order[n + 1..]
            .iter()
            .any(|&j| keep[j] && clauses[i].implies(&clauses[j]))
        {
            keep[i] = false;
        }
    }
    clauses
        .into_iter()
        .zip(keep)
        .filter_map(|(c, k)| k.then_some(c))
        .collect()
}

#[cfg(test)]
#[path = "clause_tests.rs"]
mod tests;
