//! The HTTP thread's event loop: one `mio` poll for the listening socket,
//! its clients and the hooks' deadlines, with `httparse` reading requests.
//! It owns the clients and keeps every bound on them: at most
//! [`MAX_HTTP_CONNECTIONS`] (at most [`MAX_HTTP_CONNECTIONS_PER_ADDRESS`]
//! from one address; when all slots are taken, the oldest client still
//! sending its request is evicted to make room), a request of at most
//! [`MAX_HTTP_REQUEST`] bytes, [`HTTP_DEADLINE`] to send it and read the
//! answer, one request per connection. Every refusal costs one counter
//! (a reason label) and at most one rate-limited log line.
//!
//! The Host check lives here too, before any route: a request whose `Host`
//! does not name the address the client reached gets 421, so a web page
//! whose name an attacker re-points at us (DNS rebinding) cannot read it.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};

use crate::http::routes::{response, route};
use crate::limits::{
    HTTP_DEADLINE, MAX_HTTP_CONNECTIONS, MAX_HTTP_CONNECTIONS_PER_ADDRESS, MAX_HTTP_REQUEST,
};
use crate::node::State;
use crate::node::shutdown::Shutdown;
use crate::report::hooks::Hooks;

const WAKE: Token = Token(0);
const LISTENER: Token = Token(1);
const FIRST_CLIENT: usize = 2;

#[derive(Debug)]
struct Client {
    stream: TcpStream,
    /// Who connected, and the address they reached (for a wildcard bind,
    /// the one address of this host the client chose).
    remote: IpAddr,
    local: SocketAddr,
    /// Accept order: the oldest idle client is the first to make room.
    accepted: u64,
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
    state: State,
    shutdown: Shutdown,
    hooks: Hooks,
    /// Clients accepted so far (the next one's `accepted`).
    accepted: u64,
}

impl HttpServer {
    pub fn new(
        listener: Option<TcpListener>,
        state: State,
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
        state.set_hook_waker(waker);
        Ok(HttpServer {
            poll,
            listener,
            clients: Vec::new(),
            state,
            shutdown: shutdown.clone(),
            hooks,
            accepted: 0,
        })
    }

    /// Runs until shutdown.
    pub fn run(mut self) {
        let mut events = Events::with_capacity(64);
        while !self.shutdown.is_triggered() {
            let now = Instant::now();
            self.expire(now);
            let state = &self.state;
            self.hooks
                .run_pending(|now| state.next_hook_event(now), now);
            let timeout = self.next_wake(now);
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                // Like the listener's and the sender's: the node stops and
                // says why (exit 1), rather than run without its endpoint
                // and its hooks.
                self.state.fail(format!("status endpoint poll failed: {e}"));
                self.shutdown.trigger();
                break;
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
        loop {
            let Some(listener) = &self.listener else {
                return;
            };
            let (mut stream, remote) = match listener.accept() {
                Ok(accepted) => accepted,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::debug!("status endpoint: accept failed: {e}");
                    return;
                }
            };
            let remote = remote.ip().to_canonical();
            let Ok(local) = stream.local_addr() else {
                continue;
            };
            let from_there = self
                .clients
                .iter()
                .flatten()
                .filter(|client| client.remote == remote)
                .count();
            if from_there >= MAX_HTTP_CONNECTIONS_PER_ADDRESS {
                self.state.reject(
                    "http_too_many_from_address",
                    remote,
                    &format_args!(
                        "{MAX_HTTP_CONNECTIONS_PER_ADDRESS} status endpoint clients open from this address"
                    ),
                    Instant::now(),
                );
                continue;
            }
            if self.clients.iter().flatten().count() >= MAX_HTTP_CONNECTIONS
                && !self.evict_oldest_idle()
            {
                self.state.reject(
                    "http_too_many_connections",
                    remote,
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
            self.accepted += 1;
            self.clients[index] = Some(Client {
                stream,
                remote,
                local,
                accepted: self.accepted,
                request: Vec::new(),
                response: Vec::new(),
                written: 0,
                deadline: Instant::now() + HTTP_DEADLINE,
            });
        }
    }

    /// Closes the client that has waited longest without sending a whole
    /// request, so that idle connections can never lock a new client out.
    /// False if every client is being answered (those finish on their own).
    fn evict_oldest_idle(&mut self) -> bool {
        let oldest = self
            .clients
            .iter()
            .enumerate()
            .filter_map(|(index, client)| Some((index, client.as_ref()?)))
            .filter(|(_, client)| client.response.is_empty())
            .min_by_key(|(_, client)| client.accepted)
            .map(|(index, client)| (index, client.remote));
        let Some((index, remote)) = oldest else {
            return false;
        };
        self.close(index);
        self.state.reject(
            "http_evicted",
            remote,
            &"status endpoint full: the oldest idle client was closed for a new one",
            Instant::now(),
        );
        true
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
                            self.state.reject(
                                "http_too_large",
                                client.remote,
                                &format_args!(
                                    "status endpoint request over {MAX_HTTP_REQUEST} bytes"
                                ),
                                Instant::now(),
                            );
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
                        client.response = match check_host(&request, client.local) {
                            Ok(()) => {
                                let method = request.method.unwrap_or("");
                                let path = request.path.unwrap_or("");
                                let openmetrics = request.headers.iter().any(|header| {
                                    header.name.eq_ignore_ascii_case("accept")
                                        && String::from_utf8_lossy(header.value)
                                            .contains("application/openmetrics-text")
                                });
                                route(&self.state, method, path, openmetrics)
                            }
                            Err(refusal) => {
                                self.state.reject(
                                    refusal.reason(),
                                    client.remote,
                                    &refusal,
                                    Instant::now(),
                                );
                                refusal.response()
                            }
                        };
                    }
                    Ok(httparse::Status::Partial) => return,
                    Err(_) => {
                        self.state.reject(
                            "http_bad_request",
                            client.remote,
                            &"status endpoint: not an HTTP request",
                            Instant::now(),
                        );
                        client.response = response(400, "text/plain", b"bad request\n");
                    }
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

/// Why a request's `Host` was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HostRefusal {
    /// HTTP/1.1 without a Host, or more than one (RFC 9112: 400).
    Bad,
    /// A Host that does not name this endpoint (421).
    Foreign,
}

impl HostRefusal {
    fn reason(self) -> &'static str {
        match self {
            HostRefusal::Bad => "http_bad_request",
            HostRefusal::Foreign => "http_misdirected",
        }
    }

    fn response(self) -> Vec<u8> {
        match self {
            HostRefusal::Bad => response(400, "text/plain", b"bad request: one Host header\n"),
            HostRefusal::Foreign => response(
                421,
                "text/plain",
                b"misdirected request: the Host header does not name this node's address\n",
            ),
        }
    }
}

impl std::fmt::Display for HostRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            HostRefusal::Bad => "status endpoint request without exactly one Host header",
            HostRefusal::Foreign => {
                "status endpoint request for another Host (a web page re-pointing its name at us?)"
            }
        })
    }
}

/// Accepts a request whose one `Host` names this endpoint (see
/// [`names_endpoint`]). HTTP/1.1 must send one (400 otherwise); HTTP/1.0 may
/// send none: every browser sends a Host, so a request without one is a
/// script or an old tool, never a page re-pointed at us.
fn check_host(request: &httparse::Request<'_, '_>, local: SocketAddr) -> Result<(), HostRefusal> {
    let mut hosts = request
        .headers
        .iter()
        .filter(|header| header.name.eq_ignore_ascii_case("host"));
    match (hosts.next(), hosts.next()) {
        (None, _) if request.version == Some(0) => Ok(()),
        (None, _) | (Some(_), Some(_)) => Err(HostRefusal::Bad),
        (Some(host), None) => match std::str::from_utf8(host.value) {
            Ok(host) if names_endpoint(host.trim(), local) => Ok(()),
            _ => Err(HostRefusal::Foreign),
        },
    }
}

/// Whether `host` (a Host header) names the address the client reached,
/// `local`: its IP, with or without a port; for a loopback address also
/// `localhost`, `127.0.0.1` or `[::1]`. For a wildcard bind, `local` is the
/// connection's own address, the one the client chose. Any other name is one
/// the client's resolver mapped to us, which is how DNS rebinding works.
fn names_endpoint(host: &str, local: SocketAddr) -> bool {
    let (name, port) = match host.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((inside, port)) => (inside, port),
            None => return false,
        },
        None => host.split_at(host.find(':').unwrap_or(host.len())),
    };
    let port_ok = match port.strip_prefix(':') {
        // Any port: a tunnel or a port forward changes it, and it is the
        // name, not the port, that a rebinding page cannot choose.
        Some(port) => port.bytes().all(|b| b.is_ascii_digit()) && port.parse::<u16>().is_ok(),
        None => port.is_empty(),
    };
    let ip = if host.starts_with('[') {
        name.parse::<Ipv6Addr>().map(IpAddr::from).ok()
    } else {
        name.parse::<Ipv4Addr>().map(IpAddr::from).ok()
    };
    let ours = local.ip().to_canonical();
    let named = match ip {
        Some(ip) => {
            let ip = ip.to_canonical();
            ip == ours
                || (ours.is_loopback()
                    && (ip == IpAddr::from(Ipv4Addr::LOCALHOST)
                        || ip == IpAddr::from(Ipv6Addr::LOCALHOST)))
        }
        None => ours.is_loopback() && name.eq_ignore_ascii_case("localhost"),
    };
    port_ok && named
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn a_host_must_name_the_address_reached() {
        let loopback = addr("127.72.0.1:5080");
        for host in [
            "127.72.0.1:5080",
            "127.72.0.1",
            "localhost",
            "LOCALHOST:5080",
            "127.0.0.1",
            "127.0.0.1:5080",
            "[::1]",
            "[::1]:5080",
            // ssh -L 8080:127.0.0.1:5080, docker -p 8080:5080
            "127.0.0.1:8080",
            "localhost:80",
        ] {
            assert!(names_endpoint(host, loopback), "{host}");
        }
        for host in [
            "",
            "evil.example",
            "evil.example:5080",
            "localhost.evil.example",
            "127.72.0.1.evil.example",
            "127.72.0.1:",
            "127.72.0.1:+5080",
            "127.72.0.1:65536",
            "127.72.0.1:5080:5080",
            "127.72.0.2",
            "::1",
            "[::1",
            "[::1]5080",
            "[127.0.0.1]",
            "127.1",
        ] {
            assert!(!names_endpoint(host, loopback), "{host}");
        }
        // A public address: only itself, never the loopback names.
        let public = addr("192.0.2.7:80");
        assert!(names_endpoint("192.0.2.7", public));
        assert!(names_endpoint("192.0.2.7:80", public));
        for host in ["localhost", "127.0.0.1:80", "[::1]:80", "192.0.2.8"] {
            assert!(!names_endpoint(host, public), "{host}");
        }
        // IPv6, and an IPv4 client on a dual-stack [::] bind.
        let v6 = addr("[2001:db8::1]:5080");
        assert!(names_endpoint("[2001:db8::1]:5080", v6));
        assert!(names_endpoint("[2001:DB8:0::1]", v6));
        assert!(!names_endpoint("2001:db8::1", v6));
        let mapped = addr("[::ffff:192.0.2.7]:5080");
        assert!(names_endpoint("192.0.2.7:5080", mapped));
    }

    fn host_check(request: &[u8]) -> Result<(), HostRefusal> {
        let mut headers = [httparse::EMPTY_HEADER; 8];
        let mut parsed = httparse::Request::new(&mut headers);
        assert!(matches!(
            parsed.parse(request),
            Ok(httparse::Status::Complete(_))
        ));
        check_host(&parsed, addr("127.0.0.1:5080"))
    }

    #[test]
    fn http_1_1_needs_one_host_http_1_0_may_omit_it() {
        assert_eq!(
            host_check(b"GET / HTTP/1.1\r\nHost: localhost:5080\r\n\r\n"),
            Ok(())
        );
        assert_eq!(host_check(b"GET / HTTP/1.1\r\n\r\n"), Err(HostRefusal::Bad));
        assert_eq!(
            host_check(b"GET / HTTP/1.1\r\nHost: localhost\r\nhost: localhost\r\n\r\n"),
            Err(HostRefusal::Bad)
        );
        assert_eq!(host_check(b"GET / HTTP/1.0\r\n\r\n"), Ok(()));
        assert_eq!(
            host_check(b"GET / HTTP/1.0\r\nHost: evil.example\r\n\r\n"),
            Err(HostRefusal::Foreign)
        );
        assert_eq!(
            host_check(b"GET / HTTP/1.1\r\nHost: \xff\r\n\r\n"),
            Err(HostRefusal::Foreign)
        );
        let refused = String::from_utf8(HostRefusal::Foreign.response()).unwrap_or_default();
        assert!(refused.starts_with("HTTP/1.1 421 Misdirected Request\r\n"));
    }
}
