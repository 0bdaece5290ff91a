//! The proof against libpcap: for many random expressions, the packets edgecap captures through
//! the kernel are exactly the packets `tcpdump -r corpus.pcap EXPR` selects.
//!
//! A corpus of a few thousand crafted packets ([`corpus`]) is written once as a RAW pcap for
//! tcpdump, and sent through the lab's edge node once per batch of expressions; each
//! expression of the batch is captured at `pre-firewall` by its own `edgecap capture
//! --filter EXPR` process (its own table and NFLOG group), and the markers of the captured
//! packets are compared with the markers tcpdump selects. The userspace matcher is compared
//! too. The edge namespace has no conntrack, so nothing reassembles fragments before
//! prerouting -310; the first expression, `ip or ip6`, checks that every corpus packet,
//! fragments included, reaches the capture as sent.
//!
//! Sizes and reproduction (see docs/filters.md):
//! - `cargo test -p edgecap --test capture differential` runs [`DEFAULT_EXPRESSIONS`].
//! - `EDGECAP_DIFF_EXPRESSIONS=500` runs more; `EDGECAP_DIFF_SEED=N` (or `random`) picks the
//!   master seed the corpus and every expression derive from.
//! - `EDGECAP_DIFF_EXPR_SEED=S` reruns one generated expression; `EDGECAP_DIFF_EXPR='...'` one
//!   written by hand (both with the corpus of `EDGECAP_DIFF_SEED`).
//!
//! Expressions edgecap refuses for needing more than MAX_RULES rules are counted and listed,
//! never silently skipped, and must stay rare.

mod capture;
mod corpus;
mod exprgen;
mod oracle;
mod rng;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use edgecap_filter::{ExprError, Expression};

use crate::common::*;
use corpus::Corpus;
use oracle::Oracle;

const CORPUS_SIZE: usize = 3000;
/// What `cargo test` runs: about ten seconds on two cores (500 take about a minute).
const DEFAULT_EXPRESSIONS: usize = 60;
const DEFAULT_SEED: u64 = 0x0edc_a9f1_17e5_0001;
/// Captures running at once, per replay of the corpus.
const PARALLEL: usize = 8;
/// Selects the whole corpus: the check that every packet arrives as sent.
const EVERYTHING: &str = "ip or ip6";
/// Written by hand, checked in every run beside the generated ones: expressions that compile
/// to many rules (160 for the first), which the generator rarely reaches.
const LARGE: &[&str] = &[
    "(host 198.18.0.3 or 198.18.0.77 or 198.18.1.2 or 198.18.100.5) and (port 53 or 80 or 443 \
     or 1023 or 1024) and not (tcp[tcpflags] & tcp-syn != 0)",
    "(src net 198.18.0.0/17 or 2001:db8::/33) and (dst net 198.18.128.0/17 or 198.19.0.0/16 or \
     2001:db8:8000::/33) and (portrange 0-1023 or 5000-6000 or 65534-65535) and greater 100",
    "not (tcp and (port 80 or 443 or 8080) or udp and (port 53 or 5353) or icmp or icmp6) and \
     (ip6 or ip[8] > 32)",
];
/// Written by hand, checked in every run: payload fields (past the minimal headers), which
/// edgecap accepts only in one-rule expressions. Corpus payloads start with the marker
/// `EDGECAP-MARK-<n>` ("EDGE" is 0x45444745) and are padded with zeros; many packets are too
/// short for the farther fields, where libpcap rejects the packet from the whole filter and
/// nftables fails the one rule.
const PAYLOAD: &[&str] = &[
    "udp[8:4] == 0x45444745",
    "udp[21] == 0x31",
    "udp[40] == 0",
    "tcp[20:4] == 0x45444745 and tcp[tcpflags] & tcp-syn != 0",
    "tcp dst portrange 0-1023 and tcp[33] >= 0x35",
    "icmp[8:4] == 0x45444745",
    "ip[60:2] == 0 and src net 198.18.0.0/16",
    "udp[100] == 0 and len > 200",
    "ip6[6] == 17 and ip6[48:4] == 0x45444745",
    "icmp6[8:2] == 0x4544",
];
/// Generated payload fields ANDed with random primitives (see `exprgen::payload_and`), run
/// beside the generated expressions; those edgecap refuses (more than one rule) are counted.
const PAYLOAD_GENERATED: u64 = 24;
/// Where the seeds of the payload expressions start (`derive(seed, PAYLOAD_SEEDS + i)`), far
/// from the generated expressions' `derive(seed, i)`.
const PAYLOAD_SEEDS: u64 = 1 << 40;
/// At most this share (in percent) of generated expressions may exceed MAX_RULES.
const MAX_OVER_LIMIT_PERCENT: usize = 10;

struct Config {
    seed: u64,
    count: usize,
    only_seed: Option<u64>,
    only_expr: Option<String>,
}

fn parse_u64(s: &str) -> Option<u64> {
    match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

impl Config {
    fn from_env() -> Config {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let seed = match var("EDGECAP_DIFF_SEED").as_deref() {
            None => DEFAULT_SEED,
            Some("random") => rand::random(),
            Some(s) => parse_u64(s).unwrap_or_else(|| panic!("EDGECAP_DIFF_SEED: {s:?}")),
        };
        let count = var("EDGECAP_DIFF_EXPRESSIONS").map_or(DEFAULT_EXPRESSIONS, |s| {
            s.parse()
                .unwrap_or_else(|_| panic!("EDGECAP_DIFF_EXPRESSIONS: {s:?}"))
        });
        Config {
            seed,
            count,
            only_seed: var("EDGECAP_DIFF_EXPR_SEED")
                .map(|s| parse_u64(&s).unwrap_or_else(|| panic!("EDGECAP_DIFF_EXPR_SEED: {s:?}"))),
            only_expr: var("EDGECAP_DIFF_EXPR"),
        }
    }
}

/// One expression to check.
struct Case {
    /// The generator seed, or `None` for a fixed expression.
    seed: Option<u64>,
    text: String,
    /// What edgecap parsed it as (canonical syntax).
    understood: String,
    /// What tcpdump selects: the one answer of libpcap with and without its optimizer, or,
    /// where the optimizer changed the meaning, the unoptimized answer.
    tcpdump: BTreeSet<u32>,
    oracle: Oracle,
    /// How many nftables rules edgecap compiled it to.
    rules: usize,
    matcher: BTreeSet<u32>,
    captured: BTreeSet<u32>,
}

impl Case {
    fn label(&self) -> String {
        match self.seed {
            Some(s) => format!("EDGECAP_DIFF_EXPR_SEED={s:#x}"),
            None => format!("EDGECAP_DIFF_EXPR='{}'", self.text),
        }
    }
}

fn describe(corpus: &Corpus, set: &BTreeSet<u32>) -> String {
    let mut s = String::new();
    for m in set.iter().take(12) {
        s.push_str(&format!("\n      #{m}: {}", corpus.describe(*m)));
    }
    if set.len() > 12 {
        s.push_str(&format!("\n      ... and {} more", set.len() - 12));
    }
    s
}

fn mismatch(
    corpus: &Corpus,
    c: &Case,
    what: &str,
    got: &BTreeSet<u32>,
    master: u64,
) -> Option<String> {
    if *got == c.tcpdump {
        return None;
    }
    let only_tcpdump: BTreeSet<u32> = c.tcpdump.difference(got).copied().collect();
    let only_ours: BTreeSet<u32> = got.difference(&c.tcpdump).copied().collect();
    Some(format!(
        "{what} differs from tcpdump for {:?}\n    reproduce: EDGECAP_DIFF_SEED={master:#x} {} \
         cargo test -p edgecap --test capture differential -- --nocapture\n    edgecap \
         understood: {}\n    selected only by tcpdump ({}):{}\n    selected only by {what} \
         ({}):{}",
        c.text,
        c.label(),
        c.understood,
        only_tcpdump.len(),
        describe(corpus, &only_tcpdump),
        only_ours.len(),
        describe(corpus, &only_ours),
    ))
}

#[test]
fn expressions_select_what_tcpdump_selects() {
    if !root_or_skip() {
        return;
    }
    let cfg = Config::from_env();
    let corpus = corpus::generate(rng::derive(cfg.seed, u64::MAX), CORPUS_SIZE);
    let mut texts: Vec<(Option<u64>, String)> = vec![(None, EVERYTHING.to_owned())];
    let fixed = match (&cfg.only_expr, cfg.only_seed) {
        (None, None) => LARGE.len() + PAYLOAD.len(),
        _ => 0,
    };
    texts.extend(
        LARGE
            .iter()
            .chain(PAYLOAD)
            .take(fixed)
            .map(|e| (None, (*e).to_owned())),
    );
    match (&cfg.only_expr, cfg.only_seed) {
        (Some(e), _) => texts.push((None, e.clone())),
        (None, Some(s)) => texts.push((Some(s), exprgen::expression(&mut rng::Rng::new(s)))),
        (None, None) => {
            texts.extend((0..cfg.count as u64).map(|i| {
                let s = rng::derive(cfg.seed, i);
                (Some(s), exprgen::expression(&mut rng::Rng::new(s)))
            }));
            texts.extend((0..PAYLOAD_GENERATED).map(|i| {
                let s = rng::derive(cfg.seed, PAYLOAD_SEEDS + i);
                // Reproduced by their text (EDGECAP_DIFF_EXPR), not by a seed.
                (None, exprgen::payload_and(&mut rng::Rng::new(s)))
            }));
        }
    }
    let payload_generated = match (&cfg.only_expr, cfg.only_seed) {
        (None, None) => PAYLOAD_GENERATED as usize,
        _ => 0,
    };
    let generated = texts.len() - 1 - fixed - payload_generated;
    eprintln!(
        "differential: EDGECAP_DIFF_SEED={:#x}, {generated} expressions (and {fixed} written ones: \
         large, payload fields), {CORPUS_SIZE} packets",
        cfg.seed
    );

    let scratch = Scratch::new("differential");
    let pcap = scratch.path("corpus.pcap");
    corpus.write_pcap(&pcap);

    let mut failures = Vec::new();
    let mut over_limit = Vec::new();
    let mut payload_refused: Vec<String> = Vec::new();
    let mut cases = Vec::new();
    for (seed, text) in texts {
        let expr = match Expression::parse(&text) {
            Ok(e) => e,
            Err(e) => {
                failures.push(format!("edgecap refused {text:?} (seed {seed:?}): {e}"));
                continue;
            }
        };
        let oracle = match Oracle::run(&pcap, &text) {
            Ok(o) => o,
            Err(e) => {
                failures.push(format!("tcpdump refused {text:?} (seed {seed:?}): {e}"));
                continue;
            }
        };
        let tcpdump = oracle.unoptimized.clone();
        match expr.compile() {
            Ok(rules) => {
                let matcher = corpus
                    .packets
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| edgecap_filter::matches(&rules, p))
                    .map(|(i, _)| i as u32 + 1)
                    .collect();
                cases.push(Case {
                    seed,
                    understood: expr.to_string(),
                    text,
                    tcpdump,
                    oracle,
                    rules: rules.len(),
                    matcher,
                    captured: BTreeSet::new(),
                });
            }
            Err(e @ ExprError::TooManyRules { .. }) => over_limit.push(format!("{text:?}: {e}")),
            Err(ExprError::PayloadNotExact { rules, .. }) if !PAYLOAD.contains(&text.as_str()) => {
                payload_refused.push(format!("{text:?} ({rules} rules)"))
            }
            Err(e) => failures.push(format!("edgecap cannot compile {text:?}: {e}")),
        }
    }

    let lab = lab();
    let ns = lab.edge_ns(0).to_owned();
    let started = Instant::now();
    for (b, batch) in cases.chunks_mut(PARALLEL).enumerate() {
        let batch_texts: Vec<&str> = batch.iter().map(|c| c.text.as_str()).collect();
        let caps = capture::start_all(&ns, &batch_texts, &scratch, b);
        lab.send(0, &corpus.packets).expect("send the corpus");
        // The kernel flushes NFLOG batches every 10 ms; give it ample time, then stop.
        std::thread::sleep(Duration::from_millis(300));
        for (c, case) in caps.into_iter().zip(batch.iter_mut()) {
            case.captured = capture::finish(c, &case.text, &corpus);
        }
    }

    let all: BTreeSet<u32> = (1..=CORPUS_SIZE as u32).collect();
    assert_eq!(
        cases.first().map(|c| &c.captured),
        Some(&all),
        "`{EVERYTHING}` must capture every corpus packet as sent (fragments not reassembled)"
    );
    for c in &cases {
        failures.extend(mismatch(
            &corpus,
            c,
            "the kernel capture",
            &c.captured,
            cfg.seed,
        ));
        failures.extend(mismatch(
            &corpus,
            c,
            "the userspace matcher",
            &c.matcher,
            cfg.seed,
        ));
    }
    // Where libpcap's optimizer changes a filter's meaning, tcpdump contradicts itself; edgecap
    // is compared with the unoptimized program (above) and the cases are listed.
    let optimizer_bugs: Vec<String> = cases
        .iter()
        .filter(|c| c.oracle.optimizer_disagrees())
        .map(|c| {
            let opt = c.oracle.optimized.clone().unwrap_or_default();
            let only_unopt: BTreeSet<u32> = c.tcpdump.difference(&opt).copied().collect();
            let only_opt: BTreeSet<u32> = opt.difference(&c.tcpdump).copied().collect();
            format!(
                "{:?} ({}): tcpdump -O selects {} packets, tcpdump {}; only without the \
                 optimizer:{}\n    only with it:{}",
                c.text,
                c.label(),
                c.tcpdump.len(),
                c.oracle.optimized.as_ref().map_or(
                    "refuses it (\"rejects all packets\")".to_owned(),
                    |o| format!("selects {}", o.len())
                ),
                describe(&corpus, &only_unopt),
                describe(&corpus, &only_opt),
            )
        })
        .collect();
    let nontrivial = cases[1..]
        .iter()
        .filter(|c| !c.tcpdump.is_empty() && c.tcpdump.len() < CORPUS_SIZE)
        .count();
    let mut sizes: Vec<usize> = cases[1..].iter().map(|c| c.rules).collect();
    sizes.sort_unstable();
    eprintln!(
        "differential: {} expressions compared through the kernel in {:.1}s ({nontrivial} \
         selecting some but not all packets; rules per expression: median {}, max {}), {} over \
         the rule limit, {} where libpcap's optimizer changes the meaning, {} failures",
        cases.len() - 1,
        started.elapsed().as_secs_f64(),
        sizes.get(sizes.len() / 2).copied().unwrap_or(0),
        sizes.last().copied().unwrap_or(0),
        over_limit.len(),
        optimizer_bugs.len(),
        failures.len()
    );
    for o in &optimizer_bugs {
        eprintln!("  libpcap's optimizer disagrees with itself: {o}");
    }
    for o in &over_limit {
        eprintln!("  over the rule limit: {o}");
    }
    eprintln!(
        "differential: {} of {payload_generated} generated payload-field expressions accepted \
         and compared, {} refused (more than one rule)",
        payload_generated - payload_refused.len(),
        payload_refused.len()
    );
    for o in &payload_refused {
        eprintln!("  payload field refused: {o}");
    }
    assert!(
        failures.is_empty(),
        "{} of {generated} expressions differ (EDGECAP_DIFF_SEED={:#x}):\n\n{}",
        failures.len(),
        cfg.seed,
        failures.join("\n\n")
    );
    if cfg.only_expr.is_none() && cfg.only_seed.is_none() {
        assert!(
            over_limit.len() * 100 <= generated * MAX_OVER_LIMIT_PERCENT,
            "{} of {generated} generated expressions exceed the rule limit: the generator should \
             stay mostly within it",
            over_limit.len()
        );
        assert!(
            payload_refused.len() * 2 <= payload_generated,
            "{} of {payload_generated} generated payload-field expressions refused: too few \
             compared",
            payload_refused.len()
        );
        assert!(
            nontrivial * 2 >= generated,
            "only {nontrivial} of {generated} expressions select some but not all packets: the \
             comparison would prove little"
        );
    }
}
