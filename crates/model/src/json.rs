//! Bounds on JSON read from the network, checked on the raw bytes before any parser runs, so
//! the server's request bodies and both ends of the agent protocol refuse deep nesting with
//! one rule and one message. The scan is a loop over the bytes (no recursion, no allocation
//! beyond the field name), so it is safe on any input; `serde_json` then parses a document
//! whose depth is known to be small (its own recursion limit, 128, is never reached).

/// The deepest nesting of objects and arrays in a request body or an agent message. The
/// deepest legitimate document is an assignment's `filter_v1` inside a message: 4 levels.
pub const MAX_JSON_DEPTH: usize = 32;

/// A document nested deeper than the limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooDeep {
    /// The top-level field under which the limit was passed (`filter_v1`), when the
    /// document is an object and the key could be read; otherwise the document itself.
    pub field: Option<String>,
    pub limit: usize,
}

impl std::fmt::Display for TooDeep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "nested deeper than the limit of {} levels of objects and arrays",
            self.limit
        )
    }
}

/// Refuses `bytes` when its objects and arrays nest deeper than `limit` (counting the
/// outermost as 1). Brackets inside strings do not count. The bytes need not be valid JSON:
/// whatever the verdict, a parser still reads them afterwards.
pub fn check_depth(bytes: &[u8], limit: usize) -> Result<(), TooDeep> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    // The top-level key being read or last read, as raw bytes.
    let mut key: Option<(usize, usize)> = None;
    let mut key_start: Option<usize> = None;
    let mut expect_key = false;
    for (i, &b) in bytes.iter().enumerate() {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
                if let Some(s) = key_start.take() {
                    key = Some((s, i));
                }
            }
            continue;
        }
        match b {
            b'"' => {
                in_string = true;
                if depth == 1 && expect_key {
                    key_start = Some(i + 1);
                    expect_key = false;
                }
            }
            b'{' | b'[' => {
                depth += 1;
                if depth > limit {
                    let field = key
                        .map(|(s, e)| String::from_utf8_lossy(&bytes[s..e]).into_owned())
                        .filter(|_| bytes.iter().find(|c| !c.is_ascii_whitespace()) == Some(&b'{'));
                    return Err(TooDeep { field, limit });
                }
                expect_key = depth == 1 && b == b'{';
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            b',' if depth == 1 => expect_key = true,
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(depth: usize) -> String {
        format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
    }

    #[test]
    fn depth_counts_objects_and_arrays_not_strings() {
        assert_eq!(check_depth(nested(32).as_bytes(), 32), Ok(()));
        assert_eq!(
            check_depth(nested(33).as_bytes(), 32),
            Err(TooDeep {
                field: None,
                limit: 32
            })
        );
        assert_eq!(
            check_depth(br#"{"a": "[[[[[[[[[[", "b": "\"[[[["}"#, 2),
            Ok(())
        );
        assert_eq!(check_depth(br#"{"a": {"b": [1]}}"#, 3), Ok(()));
        assert!(check_depth(br#"{"a": {"b": [[1]]}}"#, 3).is_err());
        // Not JSON at all: the scan still ends; the parser will say what is wrong.
        assert_eq!(check_depth(b"\"unterminated [[[[", 1), Ok(()));
        assert_eq!(check_depth(b"]]]]}}}}[", 1), Ok(()));
    }

    #[test]
    fn the_error_names_the_top_level_field() {
        let body = format!(
            r#"{{"colo_name": "a", "x": [1, {{"y": 2}}], "filter_v1": {}}}"#,
            nested(40)
        );
        let e = check_depth(body.as_bytes(), 32).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("filter_v1"));
        assert_eq!(
            e.to_string(),
            "nested deeper than the limit of 32 levels of objects and arrays"
        );
        // Keys of nested objects are not top-level fields.
        let body = format!(r#"{{"a": {{"b": {}}}}}"#, nested(40));
        assert_eq!(
            check_depth(body.as_bytes(), 32)
                .unwrap_err()
                .field
                .as_deref(),
            Some("a")
        );
        // An escaped quote in a key ends nothing.
        let body = format!(r#"{{"a\"b": {}}}"#, nested(40));
        assert_eq!(
            check_depth(body.as_bytes(), 32)
                .unwrap_err()
                .field
                .as_deref(),
            Some(r#"a\"b"#)
        );
    }
}
