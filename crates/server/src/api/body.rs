//! Request bodies and query strings, read defensively: a size limit (413), nesting within
//! `edgecap_model::json::MAX_JSON_DEPTH` (400 naming the top-level field), JSON that must
//! parse and be an object (400), and unknown fields or parameters named in the error.

use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use edgecap_model::Envelope;
use edgecap_model::json;
use edgecap_model::request::kind;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::AppState;
use crate::error::HttpError;

/// A JSON object body (anything else is refused before the handler runs).
#[derive(Debug)]
pub struct JsonBody(pub Map<String, Value>);

impl FromRequest<AppState> for JsonBody {
    type Rejection = HttpError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, HttpError> {
        let limit = state.config.body_limit;
        let too_large = || {
            HttpError::body(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body: larger than the limit of {limit} bytes"),
            )
        };
        let declared = req
            .headers()
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            return Err(too_large());
        }
        let bytes = match axum::body::to_bytes(req.into_body(), limit).await {
            Ok(b) => b,
            Err(e) => {
                let over = std::error::Error::source(&e)
                    .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
                return Err(if over {
                    too_large()
                } else {
                    HttpError::body(StatusCode::BAD_REQUEST, format!("request body: {e}"))
                });
            }
        };
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(HttpError::body(
                StatusCode::BAD_REQUEST,
                "request body: is empty; send a JSON object",
            ));
        }
        // Nesting is bounded before the parser runs (one rule with the agent protocol's).
        if let Err(e) = json::check_depth(&bytes, json::MAX_JSON_DEPTH) {
            return Err(match &e.field {
                Some(field) => HttpError::field(field, &e),
                None => HttpError::body(StatusCode::BAD_REQUEST, format!("request body: {e}")),
            });
        }
        let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
            HttpError::body(
                StatusCode::BAD_REQUEST,
                format!("request body: not valid JSON: {e}"),
            )
        })?;
        match value {
            Value::Object(map) => Ok(JsonBody(map)),
            other => Err(HttpError::body(
                StatusCode::BAD_REQUEST,
                format!("request body: must be a JSON object, not {}", kind(&other)),
            )),
        }
    }
}

impl JsonBody {
    pub fn object(&self) -> &Map<String, Value> {
        &self.0
    }

    /// Errors for fields outside `known`.
    pub fn unknown_fields(&self, known: &[&str]) -> Vec<edgecap_model::ApiError> {
        self.object()
            .keys()
            .filter(|k| !known.contains(&k.as_str()))
            .map(|k| {
                edgecap_model::ApiError::field(
                    k,
                    format!("unknown field (known: {})", known.join(", ")),
                )
            })
            .collect()
    }

    /// A required non-empty string field; errors are pushed to `errs`.
    pub fn string(&self, field: &str, errs: &mut Vec<edgecap_model::ApiError>) -> Option<String> {
        match self.object().get(field) {
            Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_owned()),
            None | Some(Value::Null) => {
                errs.push(edgecap_model::ApiError::field(field, "is required"));
                None
            }
            Some(v) => {
                errs.push(edgecap_model::ApiError::field(
                    field,
                    format!("must be a non-empty string, not {}", kind(v)),
                ));
                None
            }
        }
    }
}

/// The one check of a query string's names: each parameter must be one of `known` and appear
/// at most once. `each` reads the value of every accepted one (its name as in `known`), in
/// query order; an unknown or repeated parameter, or a value `each` refuses, is an error
/// naming it, and all of them come back together in one 400, in query order.
pub fn known_once<'k>(
    query: &[(String, String)],
    known: &[&'k str],
    mut each: impl FnMut(&'k str, &str) -> Result<(), HttpError>,
) -> Result<(), HttpError> {
    let mut errs = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for (k, v) in query {
        let Some(&name) = known.iter().find(|n| **n == k) else {
            errs.push(edgecap_model::ApiError::field(
                k,
                format!("unknown query parameter (known: {})", known.join(", ")),
            ));
            continue;
        };
        if seen.contains(&name) {
            errs.push(edgecap_model::ApiError::field(name, "given more than once"));
            continue;
        }
        seen.push(name);
        if let Err(e) = each(name, v) {
            errs.extend(e.errors);
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(HttpError::bad_request(errs))
    }
}

/// A query value that must be a whole number in `lo..=hi`; else a 400 naming `name`.
pub fn whole_number(name: &str, v: &str, lo: u64, hi: u64) -> Result<u64, HttpError> {
    match v.parse::<u64>() {
        Ok(n) if (lo..=hi).contains(&n) => Ok(n),
        _ => Err(HttpError::field(
            name,
            format!("{v:?} is not a whole number in {lo}-{hi}"),
        )),
    }
}

/// Most pages a list answers (`page`).
pub const MAX_PAGE: u64 = 1_000_000;
/// Items a page holds unless `per_page` says otherwise (Cloudflare's page).
pub const PER_PAGE: u64 = 50;
/// The largest `per_page` of every list (`/pcaps`, `/events`).
pub const MAX_PER_PAGE: u64 = 1000;

/// `?page=&per_page=` of a list: their defaults and bounds, and the `result_info` of the
/// answer, for every list the API pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paging {
    /// From 1.
    pub page: u64,
    pub per_page: u64,
}

impl Default for Paging {
    fn default() -> Self {
        Paging {
            page: 1,
            per_page: PER_PAGE,
        }
    }
}

impl Paging {
    /// The names [`Paging::read`] takes, for [`known_once`].
    pub const PARAMS: [&'static str; 2] = ["page", "per_page"];

    /// Reads `page` (1 to [`MAX_PAGE`]) or `per_page` (1 to [`MAX_PER_PAGE`]); a bad value
    /// is a 400 naming it. Any other name is not paging: false.
    pub fn read(&mut self, name: &str, v: &str) -> Result<bool, HttpError> {
        match name {
            "page" => self.page = whole_number(name, v, 1, MAX_PAGE)?,
            "per_page" => self.per_page = whole_number(name, v, 1, MAX_PER_PAGE)?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// A query of paging parameters only.
    pub fn from_query(query: &[(String, String)]) -> Result<Paging, HttpError> {
        let mut p = Paging::default();
        known_once(query, &Self::PARAMS, |name, v| p.read(name, v).map(|_| ()))?;
        Ok(p)
    }

    /// Items before this page.
    pub fn offset(&self) -> u64 {
        (self.page - 1).saturating_mul(self.per_page)
    }

    /// The envelope of a page `list` of `total` items, with its `result_info`.
    pub fn answer<T: Serialize>(&self, list: &[T], total: u64) -> Response {
        let mut envelope = serde_json::to_value(Envelope::ok(list)).unwrap_or_default();
        envelope["result_info"] = serde_json::json!({
            "page": self.page, "per_page": self.per_page, "count": list.len(),
            "total_count": total,
        });
        axum::Json(envelope).into_response()
    }
}

/// `{result, success, errors, messages}` with a result.
pub fn ok<T: Serialize>(result: T) -> Response {
    axum::Json(Envelope::ok(result)).into_response()
}

/// A 32-hex-digit id from the path, lower-cased; else a 400 naming `field` (`pcap_id`, ...)
/// and saying what it should have been (`a capture id`).
pub fn path_id(id: &str, field: &str, what: &str) -> Result<String, HttpError> {
    if edgecap_model::ids::is_id(id) {
        Ok(id.to_ascii_lowercase())
    } else {
        Err(HttpError::field(
            field,
            format!("{id:?} is not {what} (32 hex digits)"),
        ))
    }
}

/// The id at the end of the path (`pcap_id` or `ownership_id`), as typed.
#[derive(Debug)]
pub struct PathId(pub String);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for PathId {
    type Rejection = HttpError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, HttpError> {
        let params = axum::extract::RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|e| HttpError::field("path", e.body_text()))?;
        params
            .iter()
            .find(|(k, _)| k.ends_with("_id") && *k != "account_id")
            .map(|(_, v)| PathId(v.to_owned()))
            .ok_or_else(|| HttpError::field("path", "no id in the path"))
    }
}

/// The query string as name-value pairs, in order (read them with [`known_once`]); one that
/// does not parse is a 400 naming `query`.
#[derive(Debug)]
pub struct QueryPairs(pub Vec<(String, String)>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for QueryPairs {
    type Rejection = HttpError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, HttpError> {
        let axum::extract::Query(q) =
            axum::extract::Query::<Vec<(String, String)>>::from_request_parts(parts, state)
                .await
                .map_err(|e| HttpError::field("query", e.body_text()))?;
        Ok(QueryPairs(q))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A query string's pairs.
    pub(crate) fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn messages(e: HttpError) -> Vec<String> {
        e.errors.into_iter().map(|e| e.message).collect()
    }

    #[test]
    fn unknown_and_repeated_parameters_are_named_together_in_query_order() {
        let mut got = Vec::new();
        let e = known_once(
            &q(&[("b", "1"), ("x", "2"), ("b", "3"), ("a", "bad"), ("a", "4")]),
            &["a", "b"],
            |name, v| {
                got.push((name, v.to_owned()));
                match v {
                    "bad" => Err(HttpError::field(name, "not good")),
                    _ => Ok(()),
                }
            },
        )
        .unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert_eq!(
            messages(e),
            [
                "x: unknown query parameter (known: a, b)",
                "b: given more than once",
                "a: not good",
                "a: given more than once",
            ]
        );
        assert_eq!(got, [("b", "1".to_owned()), ("a", "bad".to_owned())]);
        assert!(known_once(&q(&[("a", "1"), ("b", "1")]), &["a", "b"], |_, _| Ok(())).is_ok());
        assert!(known_once(&[], &["a"], |_, _| Ok(())).is_ok());
    }

    #[tokio::test]
    async fn the_query_string_is_read_as_pairs_in_order() {
        use axum::extract::FromRequestParts;
        let req = axum::http::Request::get("/x?page=2&filter=udp%20port%2053&page=3")
            .body(())
            .unwrap();
        let (mut parts, ()) = req.into_parts();
        let QueryPairs(got) = QueryPairs::from_request_parts(&mut parts, &())
            .await
            .unwrap();
        assert_eq!(
            got,
            q(&[("page", "2"), ("filter", "udp port 53"), ("page", "3")])
        );
    }

    #[test]
    fn paging_has_defaults_and_bounds() {
        assert_eq!(Paging::from_query(&[]).unwrap(), Paging::default());
        assert_eq!(Paging::default().offset(), 0);
        let p = Paging::from_query(&q(&[("per_page", "1000"), ("page", "3")])).unwrap();
        assert_eq!((p.page, p.per_page, p.offset()), (3, 1000, 2000));
        let e = Paging::from_query(&q(&[("per_page", "1001"), ("page", "0"), ("page", "2")]));
        assert_eq!(
            messages(e.unwrap_err()),
            [
                "per_page: \"1001\" is not a whole number in 1-1000",
                "page: \"0\" is not a whole number in 1-1000000",
                "page: given more than once",
            ]
        );
        let mut p = Paging::default();
        assert!(!p.read("since", "1").unwrap(), "not a paging parameter");
        assert_eq!(p, Paging::default());
    }
}
