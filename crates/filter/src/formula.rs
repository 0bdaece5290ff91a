//! Boolean formulas over matches, with guards, and their expansion into the rules nftables
//! runs (disjunctive normal form).
//!
//! A match is only meaningful where its guards hold: `@th,0,16 80` reads a port only in a
//! TCP, UDP or SCTP packet that is not a later fragment; `@nh,72,8 6` is the protocol only in
//! IPv4. Negating `guard and test` therefore gives `not guard or (guard and not test)`, never
//! a bare `not test`, and [`Formula::Chain`] / [`Formula::Guarded`] carry which matches guard
//! which. Every conjunction produced contains the guards of each of its matches, so each match
//! is evaluated only where it means what it says.
//!
//! Expansion multiplies out `and` over `or`, pruning contradictions and absorbed conjunctions
//! as it goes (see [`crate::clause`]), and stops at a work limit so a pathological
//! expression is refused quickly rather than expanded for minutes.

use crate::clause::{Clause, absorb};
use crate::error::MAX_RULES;
use crate::ir::{Conjunction, Match};

/// The most conjunctions kept at any step of the expansion, before the final limit of
/// [`MAX_RULES`] applies (pruning later in the expansion may still bring the count down).
pub(crate) const WORK_LIMIT: usize = 8 * MAX_RULES;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Formula {
    /// `m1 and m2 and ...`, each match meaningful where the ones before it hold. Empty: true.
    Chain(Vec<Match>),
    /// `guard and body`, the body's matches meaningful only where the guard chain holds.
    Guarded(Vec<Match>, Box<Formula>),
    And(Vec<Formula>),
    Or(Vec<Formula>),
    Not(Box<Formula>),
}

/// Negation normal form: no `Not`, no guards (they are spelled out).
#[derive(Debug, Clone)]
enum Nnf {
    Chain(Vec<Match>),
    And(Vec<Nnf>),
    Or(Vec<Nnf>),
}

fn nnf(f: &Formula, positive: bool) -> Nnf {
    match (f, positive) {
        (Formula::Chain(ms), true) => Nnf::Chain(ms.clone()),
        // not (m1 and ... and mn) = not m1 or (m1 and not m2) or ... ; each alternative keeps
        // the guards of the match it negates.
        (Formula::Chain(ms), false) => Nnf::Or(
            (0..ms.len())
                .map(|i| {
                    let mut c = ms[..i].to_vec();
                    c.push(ms[i].negated());
                    Nnf::Chain(c)
                })
                .collect(),
        ),
        (Formula::Guarded(g, body), true) => Nnf::And(vec![Nnf::Chain(g.clone()), nnf(body, true)]),
        (Formula::Guarded(g, body), false) => Nnf::Or(vec![
            nnf(&Formula::Chain(g.clone()), false),
            Nnf::And(vec![Nnf::Chain(g.clone()), nnf(body, false)]),
        ]),
        (Formula::And(xs), true) | (Formula::Or(xs), false) => {
            Nnf::And(xs.iter().map(|x| nnf(x, positive)).collect())
        }
        (Formula::Or(xs), true) | (Formula::And(xs), false) => {
            Nnf::Or(xs.iter().map(|x| nnf(x, positive)).collect())
        }
        (Formula::Not(x), p) => nnf(x, !p),
    }
}

/// The expansion needed more than [`WORK_LIMIT`] conjunctions at some step (or more than
/// [`MAX_RULES`] at the end): how many it had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Overflow {
    pub count: usize,
    /// The count is a lower bound: expansion stopped there.
    pub at_least: bool,
}

fn check(clauses: Vec<Clause>) -> Result<Vec<Clause>, Overflow> {
    match clauses.len() > WORK_LIMIT {
        true => Err(Overflow {
            count: clauses.len(),
            at_least: true,
        }),
        false => Ok(clauses),
    }
}

/// `a and b` for lists of alternatives.
fn product(a: &[Clause], b: &[Clause]) -> Result<Vec<Clause>, Overflow> {
    if a.len().saturating_mul(b.len()) > WORK_LIMIT * 64 {
        return Err(Overflow {
            count: a.len().saturating_mul(b.len()),
            at_least: true,
        });
    }
    let mut out = Vec::new();
    for x in a {
        for y in b {
            if let Some(c) = x.and(y) {
                out.push(c);
            }
        }
    }
    check(absorb(out))
}

fn dnf(n: &Nnf) -> Result<Vec<Clause>, Overflow> {
    match n {
        Nnf::Chain(ms) => Ok(Clause::new(ms.clone()).into_iter().collect()),
        Nnf::Or(xs) => {
            let mut out = Vec::new();
            for x in xs {
                out.extend(dnf(x)?);
                out = check(out)?;
            }
            check(absorb(out))
        }
        Nnf::And(xs) => {
            let mut acc: Vec<Clause> = Clause::new(Vec::new()).into_iter().collect();
            for x in xs {
                if acc.is_empty() {
                    break;
                }
                acc = product(&acc, &dnf(x)?)?;
            }
            Ok(acc)
        }
    }
}

/// The rules that match what `f` describes, at most [`MAX_RULES`] of them. An empty list
/// matches nothing; a list holding one empty conjunction matches everything.
pub(crate) fn compile(f: &Formula) -> Result<Vec<Conjunction>, Overflow> {
    finish(dnf(&nnf(f, true))?)
}

/// Both rule lists at once: every conjunction of `a` with every one of `b`, pruned.
pub(crate) fn conjoin(a: &[Conjunction], b: &[Conjunction]) -> Result<Vec<Conjunction>, Overflow> {
    let clauses = |list: &[Conjunction]| -> Vec<Clause> {
        list.iter()
            .filter_map(|c| Clause::new(c.matches.clone()))
            .collect()
    };
    finish(product(&clauses(a), &clauses(b))?)
}

fn finish(clauses: Vec<Clause>) -> Result<Vec<Conjunction>, Overflow> {
    if clauses.len() > MAX_RULES {
        return Err(Overflow {
            count: clauses.len(),
            at_least: false,
        });
    }
    // Shorter rules first: cheaper for the packets they catch, and easier to read.
    let mut clauses = clauses;
    clauses.sort_by_key(Clause::len);
    Ok(clauses.into_iter().map(Clause::into_conjunction).collect())
}

#[cfg(test)]
#[path = "formula_tests.rs"]
mod tests;
