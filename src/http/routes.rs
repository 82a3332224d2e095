//! What each request gets: method and path to a response, and the headers
//! every answer carries. Five paths, GET only: the dashboard `/` (one page
//! embedded in the binary, under a Content-Security-Policy), `/status` (the
//! typed [`StatusDocument`]), `/metrics`, `/history` and `/healthz`. The
//! answers are rendered from a snapshot taken in one call ([`super::snapshot`]),
//! outside the shared lock.

use std::time::Instant;

use crate::http::document::StatusDocument;
use crate::http::history::history_json;
use crate::http::metrics::{metrics_text, prometheus_text};
use crate::http::snapshot::{HistorySnapshot, Snapshot};
use crate::node::State;

/// The dashboard: HTML, CSS and JS in one file, no network but this node's
/// own /status and /history.
const DASHBOARD: &str = include_str!("../../assets/dashboard.html");

/// The dashboard may run its own inline script and styles and talk to this
/// node only: a peer's name (from the wire) can never load or send anything.
const DASHBOARD_POLICY: &str = "Content-Security-Policy: default-src 'none'; \
    script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; \
    img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'\r\n";

/// Sent with every answer: nothing the node says is worth caching (it is
/// live state), and no answer is ever to be read as another type than it says.
const NO_STORE_NOSNIFF: &str = "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n";

/// The answer to one request.
/// `openmetrics`: the client asked for OpenMetrics (Prometheus servers do);
/// everyone else gets the classic text format.
/// The shared lock is held only to copy what the answer needs; rendering
/// (tens of milliseconds at 1,024 peers) happens after it is released.
pub(crate) fn route(state: &State, method: &str, path: &str, openmetrics: bool) -> Vec<u8> {
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    let known = matches!(path, "/" | "/history" | "/metrics" | "/status" | "/healthz");
    if !known {
        return response(
            404,
            "text/plain",
            b"not found: try / (dashboard), /history, /metrics, /status or /healthz\n",
        );
    }
    if method != "GET" {
        return response(405, "text/plain", b"method not allowed: GET only\n");
    }
    if path == "/" {
        return response_with(
            200,
            "text/html; charset=utf-8",
            DASHBOARD_POLICY,
            DASHBOARD.as_bytes(),
        );
    }
    let now = Instant::now();
    match path {
        "/metrics" => {
            let snapshot = state.view(Snapshot::take);
            if openmetrics {
                response(
                    200,
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    metrics_text(&snapshot, now).as_bytes(),
                )
            } else {
                response(
                    200,
                    "text/plain; version=0.0.4; charset=utf-8",
                    prometheus_text(&metrics_text(&snapshot, now)).as_bytes(),
                )
            }
        }
        "/history" => {
            // A bad or missing `since` means the whole window.
            let since = query
                .split('&')
                .find_map(|pair| pair.strip_prefix("since="))
                .and_then(|value| value.parse().ok())
                .unwrap_or(0);
            let snapshot = state.view(|view| HistorySnapshot::take(view, since));
            let body = serde_json::to_vec(&history_json(&snapshot)).unwrap_or_default();
            response(200, "application/json", &body)
        }
        "/status" => {
            let document = StatusDocument::of(&state.view(Snapshot::take), now);
            let body = serde_json::to_vec_pretty(&document).unwrap_or_default();
            response(200, "application/json", &body)
        }
        _ if state.listener_running() => response(200, "text/plain", b"ok\n"),
        _ => response(503, "text/plain", b"listener not running\n"),
    }
}

pub(crate) fn response(code: u16, content_type: &str, body: &[u8]) -> Vec<u8> {
    response_with(code, content_type, "", body)
}

/// A response with `extra` header lines (each ending in CRLF).
fn response_with(code: u16, content_type: &str, extra: &str, body: &[u8]) -> Vec<u8> {
    let reason = match code {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        421 => "Misdirected Request",
        431 => "Request Header Fields Too Large",
        _ => "Service Unavailable",
    };
    let allow = if code == 405 { "Allow: GET\r\n" } else { "" };
    let mut out = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{allow}{NO_STORE_NOSNIFF}{extra}Connection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dashboard_is_one_page_that_loads_nothing_from_elsewhere() {
        assert!(DASHBOARD.starts_with("<!doctype html>"));
        for outside in ["src=", "href=\"http", "@import", "url("] {
            assert!(!DASHBOARD.contains(outside), "{outside}");
        }
        let answer = route_page();
        assert!(answer.contains("Content-Security-Policy: default-src 'none';"));
        assert!(answer.contains("connect-src 'self'"));
    }

    fn route_page() -> String {
        String::from_utf8(response_with(200, "text/html", DASHBOARD_POLICY, b""))
            .unwrap_or_default()
    }

    #[test]
    fn every_response_is_no_store_and_nosniff() {
        for code in [200, 400, 404, 405, 421, 431, 503] {
            let answer = String::from_utf8(response(code, "text/plain", b"")).unwrap_or_default();
            assert!(
                answer.contains("\r\nCache-Control: no-store\r\n"),
                "{answer}"
            );
            assert!(
                answer.contains("\r\nX-Content-Type-Options: nosniff\r\n"),
                "{answer}"
            );
        }
    }

    #[test]
    fn responses_carry_length_and_allow() {
        let answer = String::from_utf8(response(405, "text/plain", b"no\n")).unwrap_or_default();
        assert!(answer.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"));
        assert!(answer.contains("Content-Length: 3\r\n"));
        assert!(answer.contains("Allow: GET\r\n"));
        assert!(answer.ends_with("\r\n\r\nno\n"));
    }
}
