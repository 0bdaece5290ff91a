//! Reading one JSON field of a request body: present or not, of the right kind, in range.
//! Problems are pushed to the caller's list, named by the field.

use serde_json::{Map, Value};

use crate::envelope::ApiError;

/// What a JSON value is, for messages (`must be a number, not a string`).
pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A number in `lo..=hi`.
pub(crate) fn number_in(
    v: &Value,
    field: &str,
    lo: f64,
    hi: f64,
    errs: &mut Vec<ApiError>,
) -> Option<f64> {
    match v.as_f64() {
        Some(n) if n >= lo && n <= hi => Some(n),
        Some(n) => {
            errs.push(ApiError::field(field, format!("{n} is outside {lo}-{hi}")));
            None
        }
        None => {
            errs.push(ApiError::field(
                field,
                format!("must be a number ({lo}-{hi}), not {}", kind(v)),
            ));
            None
        }
    }
}

/// An optional whole number in 1..=max (JSON numbers such as 100.0 count as whole).
pub(crate) fn opt_int(
    obj: &Map<String, Value>,
    field: &str,
    max: u64,
    errs: &mut Vec<ApiError>,
) -> Option<u64> {
    let v = obj.get(field)?;
    if v.is_null() {
        return None;
    }
    match v.as_f64() {
        Some(n) if n.fract() == 0.0 && n >= 1.0 && n <= max as f64 => Some(n as u64),
        Some(n) if n.fract() != 0.0 => {
            errs.push(ApiError::field(field, format!("{n} is not a whole number")));
            None
        }
        Some(n) => {
            errs.push(ApiError::field(field, format!("{n} is outside 1-{max}")));
            None
        }
        None => {
            errs.push(ApiError::field(
                field,
                format!("must be a whole number (1-{max}), not {}", kind(v)),
            ));
            None
        }
    }
}

/// An optional non-empty string, trimmed.
pub(crate) fn opt_string(
    obj: &Map<String, Value>,
    field: &str,
    errs: &mut Vec<ApiError>,
) -> Option<String> {
    match obj.get(field)? {
        Value::Null => None,
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        v => {
            errs.push(ApiError::field(
                field,
                format!("must be a non-empty string, not {}", kind(v)),
            ));
            None
        }
    }
}

/// An optional non-empty array of non-empty strings; a bad item is named by its index.
pub(crate) fn opt_string_list(
    obj: &Map<String, Value>,
    field: &str,
    errs: &mut Vec<ApiError>,
) -> Option<Vec<String>> {
    match obj.get(field)? {
        Value::Null => None,
        Value::Array(items) if !items.is_empty() => {
            let mut out = Vec::new();
            for (i, it) in items.iter().enumerate() {
                match it.as_str().map(str::trim) {
                    Some(s) if !s.is_empty() => out.push(s.to_owned()),
                    _ => errs.push(ApiError::field(
                        &format!("{field}.{i}"),
                        "must be a non-empty string",
                    )),
                }
            }
            Some(out)
        }
        v => {
            errs.push(ApiError::field(
                field,
                format!("must be a non-empty array of strings, not {}", kind(v)),
            ));
            None
        }
    }
}

/// The filter crate's messages start with the field name; avoid saying it twice.
pub(crate) fn strip_field(msg: &str, field: &str) -> String {
    msg.strip_prefix(field)
        .and_then(|m| m.strip_prefix(": "))
        .unwrap_or(msg)
        .to_owned()
}
