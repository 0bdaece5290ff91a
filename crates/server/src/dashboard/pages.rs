//! The dashboard's HTML: one layout, the views' empty frames filled by `assets/app.js` from
//! the JSON API, and the login form. No inline script or style (the CSP forbids them).

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::session_account;
use crate::AppState;
use crate::db::accounts::Account;

/// Text for HTML (element content and quoted attribute values).
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn html(status: StatusCode, title: &str, body: &str) -> Response {
    let page = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · edgecap</title><link rel=\"stylesheet\" href=\"/assets/app.css\">\
         <script src=\"/assets/app.js\" defer></script></head>\n<body>{body}</body></html>\n",
        escape(title)
    );
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        page,
    )
        .into_response()
}

/// The login page, with why the last attempt failed.
pub(super) fn login(status: StatusCode, error: Option<&str>) -> Response {
    let error = error.map_or(String::new(), |e| {
        format!(
            "<p class=\"error\" id=\"token-error\" role=\"alert\">{}</p>",
            escape(e)
        )
    });
    html(
        status,
        "Log in",
        &format!(
            "<main class=\"login\"><h1>edgecap</h1>\
             <form method=\"post\" action=\"/login\" id=\"login\">\
             <label for=\"token\">API token</label>\
             <input type=\"password\" id=\"token\" name=\"token\" autocomplete=\"off\" \
             required placeholder=\"ecp_...\">{error}\
             <button type=\"submit\">Log in</button></form>\
             <p class=\"hint\">Use an API token of your account (<code>edgecap up</code> prints \
             one; <code>edgecap admin token create</code> makes more). The token is sent once; \
             the browser keeps only a session cookie.</p></main>"
        ),
    )
}

/// A view's frame: the navigation, the account and the element the script fills.
fn view(account: &Account, view: &str, title: &str, extra: &str) -> Response {
    let nav = [
        ("fleet", "/", "Fleet"),
        ("traffic", "/traffic", "Traffic"),
        ("captures", "/captures", "Captures"),
        ("triggers", "/triggers", "Triggers"),
        ("buckets", "/buckets", "Buckets"),
        ("events", "/events", "Events"),
    ]
    .iter()
    .map(|(v, href, label)| {
        let current = if *v == view {
            " aria-current=\"page\""
        } else {
            ""
        };
        format!("<a href=\"{href}\"{current}>{label}</a>")
    })
    .collect::<String>();
    html(
        StatusCode::OK,
        title,
        &format!(
            "<header><span class=\"brand\">edgecap</span><nav>{nav}</nav>\
             <span class=\"account\" title=\"account id {id}\">{name}</span>\
             <form method=\"post\" action=\"/logout\"><button type=\"submit\" id=\"logout\">\
             Log out</button></form></header>\
             <main id=\"view\" data-view=\"{view}\" data-account=\"{id}\"{extra}>\
             <h1>{title}</h1><p class=\"loading\">Loading…</p></main>",
            id = escape(&account.id),
            name = escape(&account.name),
            title = escape(title),
        ),
    )
}

async fn page(
    state: &AppState,
    headers: &HeaderMap,
    render: impl FnOnce(&Account) -> Response,
) -> Response {
    match session_account(state, headers).await {
        Ok(Some(account)) => render(&account),
        Ok(None) => super::to_login(state.config.tls.is_some()),
        Err(e) => e.into_response(),
    }
}

pub(super) async fn fleet(State(state): State<AppState>, headers: HeaderMap) -> Response {
    page(&state, &headers, |a| view(a, "fleet", "Fleet", "")).await
}

pub(super) async fn traffic(State(state): State<AppState>, headers: HeaderMap) -> Response {
    page(&state, &headers, |a| view(a, "traffic", "Traffic", "")).await
}

pub(super) async fn captures(State(state): State<AppState>, headers: HeaderMap) -> Response {
    page(&state, &headers, |a| view(a, "captures", "Captures", "")).await
}

pub(super) async fn capture(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let extra = format!(" data-capture=\"{}\"", escape(&id));
    page(&state, &headers, |a| view(a, "capture", "Capture", &extra)).await
}

pub(super) async fn packets(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let extra = format!(" data-capture=\"{}\"", escape(&id));
    page(&state, &headers, |a| view(a, "packets", "Packets", &extra)).await
}

pub(super) async fn triggers(State(state): State<AppState>, headers: HeaderMap) -> Response {
    page(&state, &headers, |a| view(a, "triggers", "Triggers", "")).await
}

pub(super) async fn buckets(State(state): State<AppState>, headers: HeaderMap) -> Response {
    page(&state, &headers, |a| view(a, "buckets", "Buckets", "")).await
}

pub(super) async fn events(State(state): State<AppState>, headers: HeaderMap) -> Response {
    page(&state, &headers, |a| view(a, "events", "Events", "")).await
}

#[cfg(test)]
mod tests {
    #[test]
    fn html_is_escaped() {
        assert_eq!(
            super::escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
