//! The filter expression parser and compiler on any text: never a panic or a stack overflow;
//! text over the limits is refused naming them.
#![no_main]

use edgecap_filter::{ExprError, Expression, MAX_EXPR_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Expression::parse(text) {
        Ok(e) => {
            let _ = e.compile();
            let shown = e.to_string();
            if shown.len() <= MAX_EXPR_LEN {
                assert!(Expression::parse(&shown).is_ok(), "{text:?} -> {shown:?}");
            }
        }
        Err(ExprError::TooLong { len }) => assert!(len > MAX_EXPR_LEN),
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
