//! A create request body as the server reads it: the nesting bound on the raw bytes, then the
//! JSON parser, then `validate_create`; never a panic, and every error names a field or the
//! body.
#![no_main]

use edgecap_model::json::{MAX_JSON_DEPTH, check_depth};
use edgecap_model::{AccountLimits, validate_create};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if check_depth(data, MAX_JSON_DEPTH).is_err() {
        return;
    }
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    if let Err(errors) = validate_create(&body, &AccountLimits::default()) {
        for e in errors {
            match e.source {
                Some(src) => {
                    let path = src.pointer.trim_start_matches('/').replace('/', ".");
                    assert!(e.message.starts_with(&format!("{path}: ")), "{}", e.message);
                }
                None => assert!(e.message.starts_with("request body"), "{}", e.message),
            }
        }
    }
});
