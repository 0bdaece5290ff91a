//! `diff` of two captures with known timestamps: exact matches, losses in both directions,
//! duplicates, and delay percentiles.

use edgecap_analyze::{DiffReport, Options, diff_text, run_diff};
use edgecap_pcap::read::Reader;

use crate::common::{T0, diff, diff_with, hop, pcap, pcapng, udp, v6};

/// A: 100 packets of flow 1 (1 ms apart) and 10 of flow 2; B: the same after one hop, with
/// delays 1..=100 µs for flow 1 except ids 10, 20, 30 missing, and one packet only in B.
fn pair() -> (Vec<u8>, Vec<u8>) {
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for i in 0..100u16 {
        let t = T0 + u64::from(i) * 1_000_000;
        let p = udp(40000, 53, i);
        a.push((t, p.clone()));
        if ![10, 20, 30].contains(&i) {
            let mut q = p;
            hop(&mut q, 60);
            b.push((t + u64::from(i + 1) * 1000, q));
        }
    }
    for i in 0..10u16 {
        let t = T0 + 500_000 + u64::from(i) * 1_000_000;
        a.push((t, v6(17, 1, 2, (7, 8), &[i as u8])));
        b.push((t + 2_000_000, v6(17, 1, 2, (7, 8), &[i as u8])));
    }
    b.push((T0 + 50_000_000, udp(40000, 53, 999)));
    a.sort_by_key(|x| x.0);
    b.sort_by_key(|x| x.0);
    (
        pcap(&a),
        pcapng(
            &["origin/ingress"],
            &b.into_iter().map(|(t, p)| (0, t, p)).collect::<Vec<_>>(),
        ),
    )
}

#[test]
fn missing_extra_and_exact_delay_percentiles() {
    let (a, b) = pair();
    let r = diff(&a, &b);
    assert_eq!(
        (r.a.packets, r.b.packets, r.a.flows, r.b.flows),
        (110, 108, 2, 2)
    );
    assert_eq!((r.matched, r.missing_from_b, r.only_in_b), (107, 3, 1));
    let f = &r.flows[0];
    assert_eq!(f.name, "udp 198.18.0.2:40000 > 198.18.1.2:53");
    assert_eq!(
        (f.in_a, f.in_b, f.matched, f.missing_from_b, f.only_in_b),
        (100, 98, 97, 3, 1)
    );
    // Delays (i + 1) µs for i in 0..100 without 10, 20, 30: 97 values.
    let mut want: Vec<i64> = (0..100)
        .filter(|i| ![10, 20, 30].contains(i))
        .map(|i| (i + 1) * 1000)
        .collect();
    want.sort();
    let rank = |p: usize| want[(97 * p).div_ceil(100) - 1];
    let d = f.delay.as_ref().unwrap();
    assert_eq!(
        (
            d.count, d.min_ns, d.p50_ns, d.p90_ns, d.p99_ns, d.max_ns, d.exact
        ),
        (97, 1000, rank(50), rank(90), rank(99), 100_000, true)
    );
    // 1..=100 µs without 11, 21, 31: the 49th value is 52 µs.
    assert_eq!(d.p50_ns, 52_000);
    let g = &r.flows[1];
    assert_eq!((g.in_a, g.matched, g.missing_from_b), (10, 10, 0));
    assert_eq!(g.delay.as_ref().unwrap().p99_ns, 2_000_000);
    let all = r.delay.as_ref().unwrap();
    assert_eq!((all.count, all.min_ns, all.max_ns), (107, 1000, 2_000_000));
}

#[test]
fn duplicates_match_in_time_order_and_negative_delays_are_kept() {
    let p = udp(1, 2, 3);
    let a = pcap(&[(T0, p.clone()), (T0 + 1000, p.clone())]);
    // B's clock is 500 ns behind: both copies arrive "earlier".
    let b = pcap(&[(T0 - 500, p.clone()), (T0 + 500, p.clone())]);
    let r = diff(&a, &b);
    assert_eq!((r.matched, r.missing_from_b, r.only_in_b), (2, 0, 0));
    let d = r.delay.unwrap();
    assert_eq!((d.min_ns, d.max_ns), (-500, -500));
    let b = pcap(&[(T0 + 10, p.clone())]);
    let r = diff(&a, &b);
    assert_eq!((r.matched, r.missing_from_b), (1, 1));
    assert_eq!(
        r.delay.unwrap().max_ns,
        10,
        "the first copy of A matched the first of B"
    );
}

#[test]
fn window_and_pending_limit() {
    let p = udp(1, 2, 3);
    let a = pcap(&[(T0, p.clone())]);
    let b = pcap(&[(T0 + 11_000_000_000, p.clone())]);
    let r = diff(&a, &b);
    assert_eq!((r.matched, r.missing_from_b, r.only_in_b), (0, 1, 1));
    let wide = Options {
        window_ns: 12_000_000_000,
        ..Options::default()
    };
    assert_eq!(diff_with(&a, &b, wide).matched, 1);
    let many: Vec<_> = (0..8u16)
        .map(|i| (T0 + u64::from(i), udp(1, 2, i)))
        .collect();
    let later: Vec<_> = (0..8u16)
        .map(|i| (T0 + 1000 + u64::from(i), udp(1, 2, i)))
        .collect();
    let tight = Options {
        max_pending: 3,
        ..Options::default()
    };
    let r = diff_with(&pcap(&many), &pcap(&later), tight);
    assert!(r.warnings[0].contains("more than 3 were waiting"));
    assert_eq!(r.matched + r.missing_from_b, 8);
}

#[test]
fn a_truncated_b_is_an_error_beside_a_partial_report() {
    let (a, b) = pair();
    let cut = &b[..b.len() - 10];
    let mut ra = Reader::new(&a[..]).unwrap();
    let mut rb = Reader::new(cut).unwrap();
    let (r, err) = run_diff(
        &mut ra,
        &mut rb,
        ("edge.pcap", "origin.pcapng"),
        Options::default(),
    );
    let (side, e) = err.unwrap();
    assert_eq!(side, edgecap_analyze::Side::B);
    assert!(e.to_string().contains("file ends early"));
    assert!(
        r.error
            .unwrap()
            .starts_with("origin.pcapng: reading stopped: file ends early at offset")
    );
}

#[test]
fn text_form() {
    let (a, b) = pair();
    let mut r: DiffReport = diff(&a, &b);
    r.limit(1);
    let text = diff_text(&r);
    let want = "\
A a: 110 packets, 2 flows
B b: 108 packets, 2 flows
matched 107, missing from B 3, only in B 1 (window 10.000s)
delay B-A over 107 packets: min 1.0µs, p50 57.0µs, p90 100.0µs, p99 2.00ms, max 2.00ms

FLOW                                  IN A  IN B  MISSING FROM B  ONLY IN B    MIN     P50     P90      P99      MAX
udp 198.18.0.2:40000 > 198.18.1.2:53   100    98               3          1  1.0µs  52.0µs  91.0µs  100.0µs  100.0µs
  (1 more flows not shown; --top 0 shows all)
";
    assert_eq!(text, want, "\n{text}");
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["flows"][0]["delay"]["p50_ns"], 52_000);
    assert_eq!(json["a"]["file"], "a");
}
