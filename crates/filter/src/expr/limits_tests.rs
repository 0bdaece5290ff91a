//! The expression bounds: deep nesting and long text are refused naming the limit, before any
//! recursion could exhaust the stack, and the worst input within the limits is handled on a
//! small stack. Property tests feed arbitrary and deeply nested text.

use proptest::prelude::*;

use super::{ExprError, Expression, MAX_EXPR_DEPTH, MAX_EXPR_LEN, MAX_EXPR_OPERATORS};

/// `open` `depth` times, then `inner`, then `close` `depth` times.
fn nested(open: &str, inner: &str, close: &str, depth: usize) -> String {
    format!("{}{inner}{}", open.repeat(depth), close.repeat(depth))
}

fn refused_for_depth(text: &str) -> String {
    let e = Expression::parse(text).expect_err(text);
    let msg = e.to_string();
    assert!(
        msg.contains(&format!("limit of {MAX_EXPR_DEPTH} levels")),
        "{msg}"
    );
    msg
}

#[test]
fn the_reported_attack_is_refused_by_length() {
    // 9,000 nested parentheses: 18 KB, which used to overflow the parser's stack.
    let text = nested("(", "port 80", ")", 9_000);
    let e = Expression::parse(&text).unwrap_err();
    assert_eq!(e, ExprError::TooLong { len: text.len() });
    assert_eq!(
        e.to_string(),
        format!(
            "the expression is {} bytes long, more than the limit of {MAX_EXPR_LEN} bytes (use \
             prefixes and port ranges instead of long lists)",
            text.len()
        )
    );
    // Exactly at the limit is read (and here refused for its nesting instead).
    let at = format!("{}port 80", "(".repeat(MAX_EXPR_LEN - 7));
    assert_eq!(at.len(), MAX_EXPR_LEN);
    refused_for_depth(&at);
}

#[test]
fn nesting_is_bounded_at_every_recursive_step() {
    let d = MAX_EXPR_DEPTH;
    // Within the limit: accepted.
    for text in [
        nested("(", "port 80", ")", d),
        format!("{}port 80", "not ".repeat(d)),
        format!("{}port 80", "!".repeat(d)),
        format!("host {}", nested("(", "198.18.0.1", ")", d)),
        format!("host {}", nested("(not ", "198.18.0.1", ")", d / 2)),
        format!("tcp[13] & {} != 0", nested("(", "2", ")", d)),
    ] {
        Expression::parse(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
    }
    // One more: refused, at the token that goes too deep.
    let msg = refused_for_depth(&nested("(", "port 80", ")", d + 1));
    assert!(
        msg.starts_with(&format!("at character {} (\"(\")", d + 1)),
        "{msg}"
    );
    refused_for_depth(&format!("{}port 80", "not ".repeat(d + 1)));
    refused_for_depth(&format!("{}port 80", "!".repeat(d + 1)));
    refused_for_depth(&format!("host {}", nested("(", "198.18.0.1", ")", d + 1)));
    refused_for_depth(&format!(
        "host {}",
        nested("(not ", "198.18.0.1", ")", d / 2 + 1)
    ));
    refused_for_depth(&format!("tcp[13] & {} != 0", nested("(", "2", ")", d + 1)));
    // Parentheses and not count together.
    refused_for_depth(&format!("{}port 80", "not (".repeat(d / 2 + 1)));
    // Unbalanced input is refused the same way (the limit comes first).
    refused_for_depth(&"(".repeat(10 * d));
}

/// A chain of `n` operators: `port 1 or 1 or ...` / `host .. and 1 and ...`.
fn chain(first: &str, op: &str, n: usize) -> String {
    format!("{first}{}", op.repeat(n))
}

#[test]
fn operators_are_bounded() {
    let n = MAX_EXPR_OPERATORS;
    Expression::parse(&chain("port 1", " or 1", n)).unwrap();
    for text in [
        chain("port 1", " or 1", n + 1),
        chain("port 1", "||1", n + 1),
        chain("tcp", "&&tcp", n + 1),
        format!("port ({})", chain("1", " or 1", n + 1)),
    ] {
        let msg = Expression::parse(&text).unwrap_err().to_string();
        assert!(
            msg.contains(&format!("limit of {MAX_EXPR_OPERATORS} in one expression")),
            "{msg}"
        );
    }
}

/// The longest chain of operators and the deepest nesting the limits allow, on a stack half
/// the size of the smallest thread that parses filters (tokio's 2 MiB workers; the CLI's main
/// thread has 8 MiB): parse, compile, display, clone, compare and drop all return.
#[test]
fn the_worst_input_within_the_limits_fits_a_small_stack() {
    let n = MAX_EXPR_OPERATORS;
    let inner = chain("port 80", " or 81", n - 2 * MAX_EXPR_DEPTH);
    let inputs = [
        chain("port 1", "||1", n),
        chain("host 198.18.0.1", "&&tcp", n),
        chain("tcp", "&&!tcp", n),
        format!(
            "{}{inner}{}",
            "not (tcp or ".repeat(MAX_EXPR_DEPTH / 2),
            ")".repeat(MAX_EXPR_DEPTH / 2)
        ),
    ];
    std::thread::Builder::new()
        .stack_size(1024 * 1024)
        .spawn(move || {
            for text in &inputs {
                assert!(text.len() <= MAX_EXPR_LEN, "{}", text.len());
                let e = Expression::parse(text).unwrap_or_else(|e| panic!("{e}"));
                let _ = e.compile();
                let _ = e.compile_and(&[]);
                let shown = e.to_string();
                let again = e.clone();
                assert_eq!(again, e);
                // The canonical text of a flat list stays flat, so it parses back.
                if shown.len() <= MAX_EXPR_LEN {
                    Expression::parse(&shown).unwrap_or_else(|e| panic!("{e}"));
                }
            }
        })
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn a_long_list_displays_flat_and_parses_back() {
    let e = Expression::parse("host 198.18.0.1 or 198.18.0.2 or 198.18.0.3 and tcp").unwrap();
    assert_eq!(
        e.to_string(),
        "(host 198.18.0.1 or host 198.18.0.2 or host 198.18.0.3) and tcp"
    );
    let e = Expression::parse("tcp and (port 1 or 2)").unwrap();
    assert_eq!(e.to_string(), "tcp and (port 1 or port 2)");
    let list: Vec<String> = (1..=200).map(|i| format!("198.18.0.{i}")).collect();
    let text = format!("host {}", list.join(" or "));
    let e = Expression::parse(&text).unwrap();
    assert_eq!(Expression::parse(&e.to_string()).unwrap().root(), e.root());
}

/// Text of the language's nesting tokens and a few primitives: reaches every recursive step.
fn nesting_soup() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop::sample::select(vec![
            "(",
            ")",
            "not ",
            "!",
            " and ",
            " or ",
            "&&",
            "||",
            "port 80",
            "host ",
            "198.18.0.1",
            "tcp[13] & ",
            " != 0",
            "2",
            "|",
            "&",
        ]),
        0..400,
    )
    .prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Any text, any length up to twice the limit: parse returns (never panics), and text
    /// over the limit is refused for its length.
    #[test]
    fn parse_is_total_and_bounded(text in "\\PC{0,200}", pad in 0usize..2 * MAX_EXPR_LEN) {
        let long = format!("{text}{}", " ".repeat(pad));
        match Expression::parse(&long) {
            Err(ExprError::TooLong { len }) => prop_assert!(len > MAX_EXPR_LEN),
            Err(_) => prop_assert!(long.len() <= MAX_EXPR_LEN),
            Ok(e) => {
                prop_assert!(long.len() <= MAX_EXPR_LEN);
                let _ = e.compile();
            }
        }
    }

    /// Nesting deeper than the limit, of any mix of `(`, `not` and `!` around any inner
    /// text, is refused naming the limit, and the same mix within the limit never is.
    #[test]
    fn deep_nesting_is_refused_naming_the_limit(
        levels in proptest::collection::vec(0u8..3, 0..(2 * MAX_EXPR_DEPTH)),
        inner in prop::sample::select(vec!["port 80", "tcp or udp", "host 198.18.0.1"]),
    ) {
        let open: String = levels.iter().map(|l| ["(", "not ", "!"][*l as usize]).collect();
        let close = ")".repeat(levels.iter().filter(|l| **l == 0).count());
        let text = format!("{open}{inner}{close}");
        let r = Expression::parse(&text);
        if levels.len() > MAX_EXPR_DEPTH {
            let msg = r.expect_err("too deep").to_string();
            prop_assert!(msg.contains(&format!("limit of {MAX_EXPR_DEPTH} levels")), "{}", msg);
        } else {
            let e = r.map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
            let _ = e.compile();
            let back = Expression::parse(&e.to_string()).map_err(|x| TestCaseError::fail(x.to_string()))?;
            prop_assert_eq!(back.root(), e.root());
        }
    }

    /// Token soup rich in nesting: never panics; any refusal for depth names the limit.
    #[test]
    fn nesting_soup_is_total(text in nesting_soup()) {
        match Expression::parse(&text) {
            Ok(e) => { let _ = e.compile(); let _ = e.to_string(); }
            Err(e) => { let _ = e.to_string(); }
        }
    }
}
