use super::*;
use crate::ir::{Base, Payload};

fn nh(offset: u16, size: u8, mask: Option<u32>, test: Test) -> Match {
    Match::Payload(Payload {
        base: Base::Network,
        offset,
        size,
        mask,
        test,
    })
}

fn eq(v: u32) -> Test {
    Test::Cmp {
        op: CmpOp::Eq,
        value: v,
    }
}

fn ne(v: u32) -> Test {
    Test::Cmp {
        op: CmpOp::Ne,
        value: v,
    }
}

fn set(values: &[u32], negate: bool) -> Test {
    Test::Set {
        values: values.to_vec(),
        negate,
    }
}

const V4: Match = Match::Family(Family::V4);
const V6: Match = Match::Family(Family::V6);

fn kept(ms: Vec<Match>) -> Option<Vec<Match>> {
    Clause::new(ms).map(|c| c.into_conjunction().matches)
}

#[test]
fn contradictions_drop_the_conjunction() {
    assert_eq!(kept(vec![V4, V6]), None);
    assert_eq!(
        kept(vec![V4, nh(9, 1, None, eq(6)), nh(9, 1, None, eq(17))]),
        None
    );
    assert_eq!(
        kept(vec![V4, nh(9, 1, None, eq(6)), nh(9, 1, None, ne(6))]),
        None
    );
    assert_eq!(
        kept(vec![
            V4,
            nh(9, 1, None, set(&[6, 17, 132], true)),
            nh(9, 1, None, eq(17))
        ]),
        None
    );
    // Masked: (x & 0x1fff) == 0 and != 0.
    assert_eq!(
        kept(vec![
            nh(6, 2, Some(0x1fff), eq(0)),
            nh(6, 2, Some(0x1fff), ne(0))
        ]),
        None
    );
    // A value outside the mask never occurs.
    assert_eq!(kept(vec![nh(6, 2, Some(0x1fff), eq(0x2000))]), None);
    let len = |op, value| Match::Length { op, value };
    assert_eq!(kept(vec![len(CmpOp::Le, 100), len(CmpOp::Gt, 100)]), None);
    assert_eq!(kept(vec![len(CmpOp::Lt, 0)]), None);
    let addr = |a: &str, l, negate| Match::Addr {
        dir: Dir::Src,
        addr: a.parse().unwrap(),
        prefix_len: l,
        negate,
    };
    assert_eq!(
        kept(vec![
            V4,
            addr("198.18.0.0", 16, false),
            addr("198.19.0.0", 16, false)
        ]),
        None
    );
    assert_eq!(
        kept(vec![
            V4,
            addr("198.18.1.0", 24, false),
            addr("198.18.0.0", 15, true)
        ]),
        None
    );
    // An IPv6 address in an IPv4 rule never loads.
    assert_eq!(kept(vec![V4, addr("2001:db8::", 32, false)]), None);
}

#[test]
fn satisfiable_conjunctions_stay_whole() {
    let ms = vec![V4, nh(9, 1, None, eq(6)), nh(6, 2, Some(0x1fff), eq(0))];
    assert_eq!(kept(ms.clone()), Some(ms));
    let ms = vec![V6, nh(6, 1, None, ne(6)), nh(6, 1, None, ne(44))];
    assert_eq!(kept(ms.clone()), Some(ms));
    // Different masks are different fields: no reasoning across them.
    let ms = vec![nh(6, 2, Some(0x1fff), eq(0)), nh(6, 2, Some(0x2000), ne(0))];
    assert_eq!(kept(ms.clone()), Some(ms));
}

#[test]
fn implied_matches_and_repeats_are_dropped() {
    assert_eq!(
        kept(vec![
            V6,
            nh(6, 1, None, ne(6)),
            nh(6, 1, None, eq(44)),
            nh(40, 1, None, ne(6))
        ]),
        Some(vec![V6, nh(6, 1, None, eq(44)), nh(40, 1, None, ne(6))])
    );
    assert_eq!(
        kept(vec![
            V4,
            nh(9, 1, None, set(&[6, 17, 132], false)),
            V4,
            nh(9, 1, None, eq(6))
        ]),
        Some(vec![V4, nh(9, 1, None, eq(6))])
    );
    let len = |op, value| Match::Length { op, value };
    assert_eq!(
        kept(vec![len(CmpOp::Le, 100), len(CmpOp::Lt, 50)]),
        Some(vec![len(CmpOp::Lt, 50)])
    );
}

#[test]
fn absorption_keeps_the_general_clause() {
    let general = Clause::new(vec![V4, nh(9, 1, None, set(&[6, 17], false))]).unwrap();
    let special = Clause::new(vec![
        V4,
        nh(9, 1, None, eq(6)),
        Match::Length {
            op: CmpOp::Le,
            value: 10,
        },
    ])
    .unwrap();
    let other = Clause::new(vec![V6]).unwrap();
    let out: Vec<Vec<Match>> = absorb(vec![special.clone(), general.clone(), other.clone()])
        .into_iter()
        .map(|c| c.into_conjunction().matches)
        .collect();
    assert_eq!(
        out,
        [
            general.into_conjunction().matches,
            other.into_conjunction().matches
        ]
    );
    // Equal clauses: the first stays.
    let a = Clause::new(vec![V4]).unwrap();
    assert_eq!(absorb(vec![a.clone(), a]).len(), 1);
}

#[test]
fn ranges_algebra() {
    let r = Ranges::one(10, 20).union(&Ranges::one(21, 30));
    assert_eq!(r, Ranges::one(10, 30));
    assert_eq!(r.complement(40), Ranges(vec![(0, 9), (31, 40)]));
    assert_eq!(Ranges::one(0, 40).complement(40), Ranges(vec![]));
    assert_eq!(
        Ranges(vec![]).complement(u128::MAX),
        Ranges::one(0, u128::MAX)
    );
    assert_eq!(
        Ranges::one(5, u128::MAX).complement(u128::MAX),
        Ranges::one(0, 4)
    );
    assert!(Ranges::one(12, 14).subset_of(&r));
    assert!(!Ranges::one(5, 14).subset_of(&r));
    assert_eq!(
        Ranges::points(&[6, 17, 132]).intersect(&Ranges::one(10, 200)),
        Ranges(vec![(17, 17), (132, 132)])
    );
}
