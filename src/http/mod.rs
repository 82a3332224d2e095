//! The status endpoint: `GET /metrics` (Prometheus text), `GET /status`
//! (JSON), `GET /healthz`, and the web dashboard: `GET /`, one page embedded
//! in the binary that polls `/status` and `GET /history` (JSON), on one thread of its own running a small `mio`
//! loop with `httparse`, so no request can slow the sender or the listener.
//! The same thread runs the event hooks (see `hooks`), off the hot path.
//!
//! Bounded like everything else: at most [`MAX_HTTP_CONNECTIONS`] clients, a
//! request of at most [`MAX_HTTP_REQUEST`] bytes, [`HTTP_DEADLINE`] to send
//! it; one request per connection (`Connection: close`).

pub mod status;

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};

use crate::http::status::{history_json, metrics_text, prometheus_text, status_json};
use crate::limits::{HTTP_DEADLINE, MAX_HTTP_CONNECTIONS, MAX_HTTP_REQUEST};
use crate::node::shutdown::Shutdown;
use crate::node::{SharedState, lock};
use crate::report::hooks::Hooks;

const WAKE: Token = Token(0);
const LISTENER: Token = Token(1);
const FIRST_CLIENT: usize = 2;

/// The dashboard: HTML, CSS and JS in one file, no network but this node's
/// own /status and /history.
const DASHBOARD: &str = include_str!("../../assets/dashboard.html");

/// The dashboard may run its own inline script and styles and talk to this
/// node only: a peer's name (from the wire) can never load or send anything.
const DASHBOARD_POLICY: &str = "Content-Security-Policy: default-src 'none'; \
    script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; \
    img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'\r\n";

#[derive(Debug)]
struct Client {
    stream: TcpStream,
    request: Vec<u8>,
    response: Vec<u8>,
    written: usize,
    deadline: Instant,
}

/// The HTTP thread's loop (and the hooks' home).
#[derive(Debug)]
pub struct HttpServer {
    poll: Poll,
    listener: Option<TcpListener>,
    clients: Vec<Option<Client>>,
    shared: SharedState,
    shutdown: Shutdown,
    hooks: Hooks,
}

/// Binds the endpoint. `explicit` says the user chose the address: then a
/// busy address is fatal (exit 1); the default one only warns.
pub fn bind(addr: SocketAddr, explicit: bool) -> Result<Option<TcpListener>, String> {
    match TcpListener::bind(addr) {
        Ok(listener) => {
            log::info!(
                "status endpoint on http://{addr}/ (dashboard, /history, /metrics, /status, /healthz)"
            );
            Ok(Some(listener))
        }
        Err(e) if explicit => Err(format!(
            "cannot serve HTTP on {addr}: {}",
            crate::sys::describe_io_error(&e)
        )),
        Err(e) => {
            log::warn!(
                "status endpoint not started: {addr}: {} (choose another with --http ADDR, or --http off)",
                crate::sys::describe_io_error(&e)
            );
            Ok(None)
        }
    }
}

impl HttpServer {
    pub fn new(
        listener: Option<TcpListener>,
        shared: SharedState,
        shutdown: &Shutdown,
        hooks: Hooks,
    ) -> io::Result<HttpServer> {
        let poll = Poll::new()?;
        let mut listener = listener;
        if let Some(listener) = &mut listener {
            poll.registry()
                .register(listener, LISTENER, Interest::READABLE)?;
        }
        let waker = Arc::new(Waker::new(poll.registry(), WAKE)?);
        shutdown.add_waker(waker.clone());
        lock(&shared).hook_waker = Some(waker);
        Ok(HttpServer {
            poll,
            listener,
            clients: Vec::new(),
            shared,
            shutdown: shutdown.clone(),
            hooks,
        })
    }

    /// Runs until shutdown.
    pub fn run(mut self) {
        let mut events = Events::with_capacity(64);
        while !self.shutdown.is_triggered() {
            let now = Instant::now();
            self.expire(now);
            self.hooks.run_pending(&self.shared, now);
            let timeout = self.next_wake(now);
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                log::error!("status endpoint stopped: {e}");
                return;
            }
            for event in events.iter() {
                match event.token() {
                    WAKE => {}
                    LISTENER => self.accept(),
                    Token(index) => self.serve(index - FIRST_CLIENT),
                }
            }
        }
        self.hooks.stop();
    }

    fn next_wake(&self, now: Instant) -> Option<Duration> {
        let clients = self
            .clients
            .iter()
            .flatten()
            .map(|client| client.deadline)
            .min();
        let hooks = self.hooks.next_deadline();
        [clients, hooks]
            .into_iter()
            .flatten()
            .min()
            .map(|at| at.saturating_duration_since(now))
    }

    fn accept(&mut self) {
        let Some(listener) = &self.listener else {
            return;
        };
        loop {
            let (mut stream, _) = match listener.accept() {
                Ok(accepted) => accepted,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::debug!("status endpoint: accept failed: {e}");
                    return;
                }
            };
            if self.clients.iter().flatten().count() >= MAX_HTTP_CONNECTIONS {
                lock(&self.shared).stats.reject(
                    "http_too_many_connections",
                    std::net::IpAddr::from([0, 0, 0, 0]),
                    &"status endpoint busy",
                    Instant::now(),
                );
                continue;
            }
            let index = match self.clients.iter().position(Option::is_none) {
                Some(index) => index,
                None => {
                    self.clients.push(None);
                    self.clients.len() - 1
                }
            };
            let token = Token(FIRST_CLIENT + index);
            if self
                .poll
                .registry()
                .register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)
                .is_err()
            {
                continue;
            }
            self.clients[index] = Some(Client {
                stream,
                request: Vec::new(),
                response: Vec::new(),
                written: 0,
                deadline: Instant::now() + HTTP_DEADLINE,
            });
        }
    }

    /// Reads the request, answers it, writes the answer.
    fn serve(&mut self, index: usize) {
        let Some(Some(client)) = self.clients.get_mut(index) else {
            return;
        };
        if client.response.is_empty() {
            let mut buffer = [0u8; 2048];
            loop {
                match client.stream.read(&mut buffer) {
                    Ok(0) => {
                        self.close(index);
                        return;
                    }
                    Ok(n) => {
                        client.request.extend_from_slice(&buffer[..n]);
                        if client.request.len() > MAX_HTTP_REQUEST {
                            client.response = response(431, "text/plain", b"request too large\n");
                            break;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => {
                        self.close(index);
                        return;
                    }
                }
            }
            if client.response.is_empty() {
                let mut headers = [httparse::EMPTY_HEADER; 32];
                let mut request = httparse::Request::new(&mut headers);
                match request.parse(&client.request) {
                    Ok(httparse::Status::Complete(_)) => {
                        let method = request.method.unwrap_or("");
                        let path = request.path.unwrap_or("");
                        let openmetrics = request.headers.iter().any(|header| {
                            header.name.eq_ignore_ascii_case("accept")
                                && String::from_utf8_lossy(header.value)
                                    .contains("application/openmetrics-text")
                        });
                        client.response = route(&self.shared, method, path, openmetrics);
                    }
                    Ok(httparse::Status::Partial) => return,
                    Err(_) => client.response = response(400, "text/plain", b"bad request\n"),
                }
            }
        }
        loop {
            let Some(Some(client)) = self.clients.get_mut(index) else {
                return;
            };
            if client.written >= client.response.len() {
                self.close(index);
                return;
            }
            match client.stream.write(&client.response[client.written..]) {
                Ok(n) => client.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.close(index);
                    return;
                }
            }
        }
    }

    fn expire(&mut self, now: Instant) {
        let late: Vec<usize> = self
            .clients
            .iter()
            .enumerate()
            .filter_map(|(index, client)| (client.as_ref()?.deadline <= now).then_some(index))
            .collect();
        for index in late {
            self.close(index);
        }
    }

    fn close(&mut self, index: usize) {
        if let Some(mut client) = self.clients.get_mut(index).and_then(Option::take) {
            let _ = self.poll.registry().deregister(&mut client.stream);
        }
    }
}

/// The answer to one request.
/// `openmetrics`: the client asked for OpenMetrics (Prometheus servers do);
/// everyone else gets the classic text format.
fn route(shared: &SharedState, method: &str, path: &str, openmetrics: bool) -> Vec<u8> {
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
    let shared = lock(shared);
    match path {
        "/metrics" if openmetrics => response(
            200,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            metrics_text(&shared, now).as_bytes(),
        ),
        "/metrics" => response(
            200,
            "text/plain; version=0.0.4; charset=utf-8",
            prometheus_text(&metrics_text(&shared, now)).as_bytes(),
        ),
        "/history" => {
            // A bad or missing `since` means the whole window.
            let since = query
                .split('&')
                .find_map(|pair| pair.strip_prefix("since="))
                .and_then(|value| value.parse().ok())
                .unwrap_or(0);
            let body = serde_json::to_vec(&history_json(&shared, since)).unwrap_or_default();
            response(200, "application/json", &body)
        }
        "/status" => {
            let body = serde_json::to_vec_pretty(&status_json(&shared, now)).unwrap_or_default();
            response(200, "application/json", &body)
        }
        _ if shared.listener_running => response(200, "text/plain", b"ok\n"),
        _ => response(503, "text/plain", b"listener not running\n"),
    }
}

fn response(code: u16, content_type: &str, body: &[u8]) -> Vec<u8> {
    response_with(code, content_type, "", body)
}

/// A response with `extra` header lines (each ending in CRLF).
fn response_with(code: u16, content_type: &str, extra: &str, body: &[u8]) -> Vec<u8> {
    let reason = match code {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        _ => "Service Unavailable",
    };
    let allow = if code == 405 { "Allow: GET\r\n" } else { "" };
    let mut out = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{allow}{extra}Connection: close\r\n\r\n",
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
    fn a_busy_default_address_warns_a_busy_chosen_one_fails() {
        let holder = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = holder.local_addr().expect("addr");
        assert!(matches!(bind(addr, false), Ok(None)));
        let error = bind(addr, true).err().unwrap_or_default();
        assert!(error.contains("address already in use"), "{error}");
        drop(holder);
        assert!(matches!(bind(addr, true), Ok(Some(_))));
    }

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
    fn responses_carry_length_and_allow() {
        let answer = String::from_utf8(response(405, "text/plain", b"no\n")).unwrap_or_default();
        assert!(answer.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"));
        assert!(answer.contains("Content-Length: 3\r\n"));
        assert!(answer.contains("Allow: GET\r\n"));
        assert!(answer.ends_with("\r\n\r\nno\n"));
    }
}
