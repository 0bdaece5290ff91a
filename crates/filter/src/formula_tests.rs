use super::*;
use crate::ir::{Base, CmpOp, Family, Payload, Test};
use crate::matches;

fn nh(offset: u16, value: u32) -> Match {
    Match::Payload(Payload {
        base: Base::Network,
        offset,
        size: 1,
        mask: None,
        test: Test::Cmp {
            op: CmpOp::Eq,
            value,
        },
    })
}

const V4: Match = Match::Family(Family::V4);
const V6: Match = Match::Family(Family::V6);

/// IPv4 header (20 bytes) with protocol `proto`, or IPv6 (40 bytes) with next header `next`.
fn packet(v6: bool, proto: u8) -> Vec<u8> {
    match v6 {
        false => {
            let mut p = vec![0x45, 0, 0, 28, 0, 0, 0, 0, 64, proto];
            p.resize(28, 0);
            p
        }
        true => {
            let mut p = vec![0x60, 0, 0, 0, 0, 8, proto, 64];
            p.resize(48, 0);
            p
        }
    }
}

#[test]
fn negation_keeps_guards() {
    // not (IPv4 and ip[9] == 6): IPv6, or IPv4 with another protocol. Never a bare
    // `@nh,72,8 != 6`, which on IPv6 would read a byte of the source address.
    let f = Formula::Not(Box::new(Formula::Chain(vec![V4, nh(9, 6)])));
    let rules = compile(&f).unwrap();
    assert_eq!(
        rules,
        [
            Conjunction { matches: vec![V6] },
            Conjunction {
                matches: vec![V4, nh(9, 6).negated()]
            },
        ]
    );
    let v6_tcp = packet(true, 6);
    let mut v6_with_9_eq_6 = packet(true, 17);
    v6_with_9_eq_6[9] = 6;
    assert!(matches(&rules, &v6_tcp));
    assert!(matches(&rules, &v6_with_9_eq_6));
    assert!(!matches(&rules, &packet(false, 6)));
    assert!(matches(&rules, &packet(false, 17)));
}

#[test]
fn negated_guarded_bodies_keep_their_guard() {
    // not (IPv6 and (ip6[6] == 6 or ip6[6] == 17)) = IPv4 or (IPv6 and neither).
    let f = Formula::Not(Box::new(Formula::Guarded(
        vec![V6],
        Box::new(Formula::Or(vec![
            Formula::Chain(vec![nh(6, 6)]),
            Formula::Chain(vec![nh(6, 17)]),
        ])),
    )));
    let rules = compile(&f).unwrap();
    assert_eq!(
        rules,
        [
            Conjunction { matches: vec![V4] },
            Conjunction {
                matches: vec![V6, nh(6, 6).negated(), nh(6, 17).negated()]
            },
        ]
    );
}

#[test]
fn contradictions_are_pruned_during_expansion() {
    // (IPv4 or IPv6) and (ip[9] == 6 under IPv4): the IPv6 branch dies.
    let f = Formula::And(vec![
        Formula::Or(vec![Formula::Chain(vec![V4]), Formula::Chain(vec![V6])]),
        Formula::Chain(vec![V4, nh(9, 6)]),
    ]);
    assert_eq!(
        compile(&f).unwrap(),
        [Conjunction {
            matches: vec![V4, nh(9, 6)]
        }]
    );
    // Nothing survives: no rule at all (matches nothing), which is not an error.
    let f = Formula::And(vec![Formula::Chain(vec![V4]), Formula::Chain(vec![V6])]);
    assert_eq!(compile(&f).unwrap(), []);
    // True: one empty rule.
    let f = Formula::Or(vec![
        Formula::Chain(vec![V4]),
        Formula::Not(Box::new(Formula::Chain(vec![V4]))),
    ]);
    assert_eq!(
        compile(&f).unwrap(),
        [
            Conjunction { matches: vec![V4] },
            Conjunction { matches: vec![V6] }
        ]
    );
    assert_eq!(
        compile(&Formula::Chain(vec![])).unwrap(),
        [Conjunction::default()]
    );
}

/// `(a1 or b1) and (a2 or b2) and ...` over independent fields doubles with every factor.
fn doubling(factors: u16) -> Formula {
    Formula::And(
        (0..factors)
            .map(|i| {
                Formula::Or(vec![
                    Formula::Chain(vec![nh(i, 1)]),
                    Formula::Chain(vec![nh(i, 2)]),
                ])
            })
            .collect(),
    )
}

#[test]
fn the_rule_limit_is_enforced_exactly_and_expansion_stops_early() {
    assert_eq!(compile(&doubling(8)).unwrap().len(), 256);
    assert_eq!(
        compile(&doubling(9)).unwrap_err(),
        Overflow {
            count: 512,
            at_least: false
        }
    );
    let err = compile(&doubling(40)).unwrap_err();
    assert!(err.at_least && err.count > WORK_LIMIT, "{err:?}");
}

#[test]
fn conjoin_prunes_across_both_lists() {
    let a = [
        Conjunction { matches: vec![V4] },
        Conjunction { matches: vec![V6] },
    ];
    let b = [Conjunction {
        matches: vec![V6, nh(6, 17)],
    }];
    assert_eq!(
        conjoin(&a, &b).unwrap(),
        [Conjunction {
            matches: vec![V6, nh(6, 17)]
        }]
    );
}
