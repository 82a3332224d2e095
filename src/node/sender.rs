//! The sender thread: samples CPU and memory every interval and pushes the
//! status to every peer, on one `mio` event loop. It is the shell around the
//! links (`link.rs`, where every rule of our connections lives: dialect,
//! one status per connection, backoff, probes, leaves): it owns the loop, the
//! sockets, name resolution, sealing and sampling, turns socket events into
//! link calls and link answers into socket operations and table updates.
//!
//! Connects are non-blocking with a deadline and a v1 peer's connection is
//! kept open (with a TCP user timeout: our statuses going unacknowledged
//! reveal a dead receiver, see `probe.rs`), so a dead, slow or black-holed
//! peer costs the others nothing. A listener writes us the hello and nothing
//! else, so each connection reads at most the link's allowance, from a
//! buffer on the stack: one that keeps writing costs one bounded read.
//!
//! With a cluster key, each frame is sealed when it starts on the wire, for
//! the address that link dialed (`to`) and from the connection's local
//! address (`from`), so it is useless at any other node and from any other
//! sender; plaintext goes only where `Link::takes_plaintext` allows it.

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token, Waker};
use socket2::{Domain, Socket, Type};

use crate::config::{Config, Host, PeerAddr};
use crate::limits::{LEAVE_DEADLINE, MAX_FIRST_FRAME, MAX_LISTENER_REPLY};
use crate::node::State;
use crate::node::link::{self, Digest, Dropped, Due, Failed, Link, Links, PeerFacts, Wrote};
use crate::node::probe;
use crate::node::sample::Sampler;
use crate::node::shutdown::Shutdown;
use crate::peers::{LinkFailure, PeerId, PeerState, PeerTable};
use crate::proto::keyring::{self, SharedKeyring};
use crate::proto::wire::{self, Header, Member, Message};
use crate::sys::describe_io_error;
use crate::time::unix_ms;

const WAKE: Token = Token(usize::MAX);

/// A change to the set of peers we send to, asked for at run time by another
/// thread (config reload, membership) through `State::change_links`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkChange {
    /// A configured peer (--peers, the config file).
    Add(PeerAddr),
    /// A member learned from another's status, or one that contacted us
    /// first: sent to like any peer, but not marked configured.
    Learn(PeerAddr),
    Remove(PeerAddr),
    /// Taken out of the config while membership is on: still a member, so
    /// the link stays, as a learned one (forgotten like any learned member).
    Unconfigure(PeerAddr),
}

/// The sender's event loop and links.
#[derive(Debug)]
pub struct Sender {
    poll: Poll,
    links: Links,
    /// Each link's socket, by the link's slot (its token): present exactly
    /// while the link is open.
    streams: Vec<Option<TcpStream>>,
    state: State,
    shutdown: Shutdown,
    sampler: Sampler,
    name: String,
    port: u16,
    /// Specific listen address: also the source of our connections.
    source: Option<IpAddr>,
    interval: Duration,
    boot: u64,
    /// When `boot` was taken: `ts` is boot + monotonic time since, so it
    /// never jumps with this host's clock (peers judge lateness by it).
    started: Instant,
    seq: u64,
    /// The cluster keys; `None` sends plaintext.
    keyring: Option<SharedKeyring>,
    /// With a key, a peer found to be the Python original still gets plaintext.
    allow_plaintext: bool,
}

impl Sender {
    pub fn new(config: &Config, state: State, shutdown: &Shutdown) -> io::Result<Sender> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKE)?);
        shutdown.add_waker(waker.clone());
        state.set_sender_waker(waker);
        let now = Instant::now();
        let keyring = state.keyring().cloned();
        let links = Links::new(&config.peers, config.interval, now);
        Ok(Sender {
            poll,
            streams: (0..links.len()).map(|_| None).collect(),
            links,
            state,
            shutdown: shutdown.clone(),
            sampler: Sampler::new()?,
            name: config.name.clone(),
            port: config.port,
            source: config.listen.filter(|ip| !ip.is_unspecified()),
            interval: config.interval,
            boot: unix_ms(),
            started: now,
            seq: 0,
            keyring,
            allow_plaintext: config.allow_plaintext,
        })
    }

    /// Runs until shutdown, then sends the leaves.
    pub fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        let mut next_round = Instant::now();
        while !self.shutdown.is_triggered() {
            let now = Instant::now();
            self.apply_link_changes(now);
            if now >= next_round {
                self.round(now);
                next_round = link::next_round(next_round, now, self.interval);
            }
            for index in 0..self.links.len() {
                self.drive(index, now);
            }
            let wake_at = self.links.next_deadline(next_round);
            self.state.wake_writer();
            let timeout = wake_at.saturating_duration_since(Instant::now());
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                self.state.fail(format!("sender poll failed: {e}"));
                self.shutdown.trigger();
                break;
            }
            let now = Instant::now();
            for event in events.iter() {
                if event.token() != WAKE {
                    self.on_ready(event.token().0, now);
                }
            }
        }
        self.leave();
    }

    /// Adds and removes peers asked for at run time (see [`LinkChange`]).
    fn apply_link_changes(&mut self, now: Instant) {
        let changes = self.state.take_link_changes();
        for change in changes {
            match change {
                LinkChange::Add(addr) => self.add_link(addr, false, now),
                LinkChange::Learn(addr) => self.add_link(addr, true, now),
                LinkChange::Remove(addr) => self.remove_link(&addr, now),
                LinkChange::Unconfigure(addr) => {
                    if let Some(id) = self.links.unconfigure(&addr) {
                        self.state.change(|change| change.table.demote(id));
                    }
                }
            }
        }
    }

    fn add_link(&mut self, addr: PeerAddr, learned: bool, now: Instant) {
        if self.links.add(addr, learned, now).is_some() {
            self.streams.resize_with(self.links.len(), || None);
        }
    }

    /// Stops sending to `addr`: a config reload removed it, or the table
    /// dropped the member. A v1 peer gets a leave first; a configured peer
    /// stops being one.
    fn remove_link(&mut self, addr: &PeerAddr, now: Instant) {
        let Some(index) = self.links.find(addr) else {
            return;
        };
        log::info!("no longer sending to {addr}");
        self.say_leave(index, now);
        let id = self.links[index].retire();
        self.close_socket(index);
        if let Some(id) = id {
            self.state.change(|change| change.table.unconfigure(id));
        }
    }

    /// Samples and queues a fresh status on every link.
    fn round(&mut self, now: Instant) {
        let mut sample = self.sampler.sample();
        let mut message = Message::Status {
            header: self.header(),
            cpu: sample.cpu,
            memory: sample.memory,
            health: sample.health.clone(),
        };
        // The bare status is a connection's first frame: the least full
        // filesystems go if it would not fit, and everyone (this node's own
        // view included) gets the same list.
        let frame = wire::encode_within(&mut message, MAX_FIRST_FRAME);
        if let Message::Status { health, .. } = &message {
            sample.health.fs.truncate(health.fs.len());
        }
        debug_assert!(frame.len() < MAX_FIRST_FRAME);
        self.state.set_own(sample.clone());
        // Peers that speak v1 also get what we know of the members; a peer
        // not known to speak v1 (maybe the Python original) gets the bare status.
        let digest = self.state.change(|change| change.table.digest(now));
        let key = digest_key(&digest);
        let with_members = (!digest.is_empty()).then(|| {
            let mut header = self.header();
            header.members = digest;
            wire::encode(&Message::Status {
                header,
                cpu: sample.cpu,
                memory: sample.memory,
                health: sample.health.clone(),
            })
        });
        self.seq += 1;
        for index in 0..self.links.len() {
            if !self.links[index].is_active() {
                continue;
            }
            let facts = self.facts(self.links[index].peer());
            let link = &mut self.links[index];
            let digest = with_members.as_deref().map(|frame| Digest { frame, key });
            if let Some(dropped) = link.queue_status(&frame, digest, facts, now) {
                self.dropped(index, dropped, now);
            }
        }
    }

    fn header(&self) -> Header {
        Header {
            node: self.name.clone(),
            port: self.port,
            boot: self.boot,
            seq: self.seq,
            ts: self.boot + self.started.elapsed().as_millis() as u64,
            interval_ms: self.interval.as_millis() as u64,
            members: Vec::new(),
        }
    }

    /// What the table knows of `peer` (nothing before it is resolved).
    fn facts(&self, peer: Option<PeerId>) -> Option<PeerFacts> {
        let id = peer?;
        Some(self.state.read(|table| facts_of(table, id)))
    }

    /// Does what is due on a link: a connect, a connect's expiry, writing.
    fn drive(&mut self, index: usize, now: Instant) {
        match self.links[index].due(now) {
            Due::Nothing => {}
            Due::Connect => self.connect(index, now),
            Due::ConnectTimedOut(detail) => {
                self.fail(index, LinkFailure::ConnectTimeout, &detail, now);
            }
            Due::Write => self.write(index, now),
        }
    }

    /// Resolves the peer (again, for host names) and starts a non-blocking connect.
    fn connect(&mut self, index: usize, now: Instant) {
        self.links[index].begin_connect(now);
        let target = match self.resolve(index) {
            Ok(Some(target)) => target,
            Ok(None) => return,
            Err(detail) => {
                self.fail(index, LinkFailure::Other, &detail, now);
                return;
            }
        };
        self.links[index].dialing(target);
        match self.open_socket(target) {
            Ok(mut stream) => {
                let token = Token(index);
                if let Err(e) = self.poll.registry().register(
                    &mut stream,
                    token,
                    Interest::READABLE | Interest::WRITABLE,
                ) {
                    let detail = format!("cannot watch the connection: {e}");
                    self.fail(index, LinkFailure::Other, &detail, now);
                    return;
                }
                self.links[index].connecting(now);
                self.streams[index] = Some(stream);
            }
            Err(e) => {
                let (failure, detail) = classify(&e);
                self.fail(index, failure, &detail, now);
            }
        }
    }

    /// The address to dial; `Ok(None)` when the peer is this node itself.
    fn resolve(&mut self, index: usize) -> Result<Option<SocketAddr>, String> {
        let addr = self.links[index].addr();
        let target = match &addr.host {
            Host::Ip(ip) => SocketAddr::new(*ip, addr.port),
            Host::Name(name) => {
                // Resolved on every (re)connect so a moved host is followed.
                let mut candidates = (name.as_str(), addr.port)
                    .to_socket_addrs()
                    .map_err(|e| format!("cannot resolve {name}: {e}"))?;
                let wanted_v6 = self.source.is_some_and(|ip| ip.is_ipv6());
                let all: Vec<SocketAddr> = candidates.by_ref().collect();
                all.iter()
                    .find(|addr| addr.is_ipv6() == wanted_v6)
                    .or(all.first())
                    .copied()
                    .ok_or_else(|| format!("{name} has no address"))?
            }
        };
        let id = PeerId::new(target.ip(), target.port());
        if is_own_address(target, self.source, self.port) {
            self.links[index].resolved_to_self();
            return Ok(None);
        }
        if self.links[index].resolved(id)
            && let Err(refusal) = self
                .state
                .change(|change| change.table.add_configured(id, Instant::now()))
        {
            log::warn!("cannot track peer {id}: {refusal}");
        }
        Ok(Some(target))
    }

    fn open_socket(&self, target: SocketAddr) -> io::Result<TcpStream> {
        let socket = Socket::new(Domain::for_address(target), Type::STREAM, None)?;
        socket.set_nonblocking(true)?;
        if let Some(source) = self.source
            && source.is_ipv6() == target.is_ipv6()
        {
            socket.bind(&SocketAddr::new(source, 0).into())?;
        }
        match socket.connect(&target.into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) => return Err(e),
        }
        let stream = TcpStream::from_std(socket.into());
        probe::kept_open(&stream);
        Ok(stream)
    }

    /// Readiness on a link's socket.
    fn on_ready(&mut self, index: usize, now: Instant) {
        let Some(link) = self.links.get(index) else {
            return;
        };
        if link.is_connecting()
            && let Some(stream) = &self.streams[index]
        {
            match stream.take_error() {
                Ok(Some(e)) | Err(e) => {
                    let (failure, detail) = classify(&e);
                    self.fail(index, failure, &detail, now);
                    return;
                }
                Ok(None) => {}
            }
            match stream.peer_addr() {
                Ok(_) => self.connected(index, now),
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return,
                Err(e) => {
                    let (failure, detail) = classify(&e);
                    self.fail(index, failure, &detail, now);
                    return;
                }
            }
        }
        self.read(index, now);
        if self.links[index].is_connected() {
            self.write(index, now);
        }
    }

    fn connected(&mut self, index: usize, now: Instant) {
        let local = self.streams[index]
            .as_ref()
            .and_then(|stream| stream.local_addr().ok())
            .map(|local| local.ip().to_canonical());
        let facts = self.links[index].peer().map(|id| {
            self.state.change(|change| {
                if let Some(local) = local {
                    change.note_local_address(id, local);
                }
                change.table.on_connected(id, now, change.events);
                // Read after: connecting may itself bring a send-only peer back
                // online, with a new offline count.
                facts_of(change.table, id)
            })
        });
        self.links[index].connected(local, facts, now);
    }

    /// A listener writes nothing but the hello on our connections: reading
    /// detects the greeting and the close. Never more than
    /// [`MAX_LISTENER_REPLY`] + 1 bytes per connection are read: past the
    /// limit the link closes, so a listener streaming at us costs one
    /// bounded read per connection, not a busy loop.
    fn read(&mut self, index: usize, now: Instant) {
        let mut buffer = [0u8; MAX_LISTENER_REPLY + 1];
        loop {
            let room = self.links[index].read_room();
            let Some(stream) = &mut self.streams[index] else {
                return;
            };
            match stream.read(&mut buffer[..room]) {
                Ok(0) => {
                    let facts = self.facts(self.links[index].peer());
                    let dropped = self.links[index].peer_closed(facts, now);
                    self.dropped(index, dropped, now);
                    return;
                }
                Ok(n) => {
                    let keyed = self.keyring.is_some();
                    if let Some(dropped) = self.links[index].received(n, keyed, now) {
                        self.talked_back(index, dropped, now);
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let (failure, detail) = classify(&e);
                    self.fail(index, failure, &detail, now);
                    return;
                }
            }
        }
    }

    /// The listener wrote more than a hello on our connection and the link
    /// closed it: close the socket, count it (one rate-limited log line),
    /// tell the table.
    fn talked_back(&mut self, index: usize, dropped: Dropped, now: Instant) {
        self.close_socket(index);
        let link = &self.links[index];
        let source = link.dialed().map(|addr| addr.ip());
        let addr = link.addr().clone();
        self.state.change(|change| {
            if let Some(source) = source {
                change.stats.reject(
                "peer_talks_back",
                source,
                &format_args!(
                    "{addr} wrote more than the {MAX_LISTENER_REPLY} bytes a hello may take on our connection; closed"
                ),
                now,
            );
            }
            if let Some(id) = dropped.peer {
                change.table.on_disconnected(id, now);
            }
        });
    }

    /// Writes the frame in progress, then the pending one.
    fn write(&mut self, index: usize, now: Instant) {
        loop {
            let link = &mut self.links[index];
            if !link.is_writing() {
                let Some(frame) = link.next_frame() else {
                    return;
                };
                match seal_for(
                    self.keyring.as_ref(),
                    self.allow_plaintext,
                    self.port,
                    link,
                    frame,
                ) {
                    Some(bytes) => link.start_writing(bytes),
                    None => continue,
                }
            }
            if !link.is_connected() {
                return;
            }
            let (Some(stream), Some(bytes)) = (&mut self.streams[index], link.unwritten()) else {
                return;
            };
            match stream.write(bytes) {
                Ok(n) => match link.wrote(n, now) {
                    Wrote::Partial => {}
                    Wrote::Frame {
                        delivered_to,
                        dropped,
                    } => {
                        if let Some(id) = delivered_to {
                            self.state.change(|change| {
                                change.stats.sent += 1;
                                change.table.on_delivered(id, now);
                            });
                        }
                        if let Some(dropped) = dropped {
                            self.dropped(index, dropped, now);
                            return;
                        }
                    }
                },
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    link.write_blocked();
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let (failure, detail) = classify(&e);
                    self.fail(index, failure, &detail, now);
                    return;
                }
            }
        }
    }

    /// Closes a link's socket, if it has one.
    fn close_socket(&mut self, index: usize) {
        if let Some(mut stream) = self.streams[index].take()
            && let Err(e) = self.poll.registry().deregister(&mut stream)
        {
            log::debug!("deregister failed: {e}");
        }
    }

    /// The link let go of its connection without a failure: close the
    /// socket, tell the table.
    fn dropped(&mut self, index: usize, dropped: Dropped, now: Instant) {
        self.close_socket(index);
        if let Some(id) = dropped.peer {
            self.state
                .change(|change| change.table.on_disconnected(id, now));
        }
    }

    /// A connect or a connection failed: close, tell the link (it backs off)
    /// and the table.
    fn fail(&mut self, index: usize, failure: LinkFailure, detail: &str, now: Instant) {
        self.close_socket(index);
        let Some(Failed {
            peer,
            attempt_began,
        }) = self.links[index].fail(detail, now)
        else {
            return;
        };
        let still_online = self.state.change(|change| {
            change
                .table
                .on_link_failed(peer, failure, attempt_began, detail, now, change.events);
            change
                .table
                .get(&peer)
                .is_some_and(|p| p.state == PeerState::Online)
        });
        self.links[index].warn_if_unread(failure, still_online, now);
    }

    /// Whether the link's peer gets a leave (see [`Link::takes_leave`]).
    fn takes_leave(&self, index: usize) -> bool {
        let facts = self.facts(self.links[index].peer());
        self.links[index].takes_leave(facts)
    }

    /// A peer removed at run time gets a leave before the close, so it reports
    /// `left` rather than a crash (a v1 connection closed without a leave).
    /// One non-blocking attempt: a few hundred bytes into an idle socket's
    /// buffer; a peer that does not read sees the close alone.
    fn say_leave(&mut self, index: usize, now: Instant) {
        if !self.takes_leave(index) {
            return;
        }
        let leave = wire::encode(&Message::Leave {
            header: self.header(),
        });
        // Its own seq: should the peer be added again, our next status to it
        // must not look like a replay of this leave.
        self.seq += 1;
        self.links[index].queue_leave(leave);
        self.write(index, now);
        let link = &self.links[index];
        if !link.all_sent() {
            log::info!("{} did not take our leave: closing anyway", link.addr());
        }
    }

    /// Sends a leave on every open v1 connection and waits, briefly, for them
    /// to drain. Python peers get nothing: a leave would break their parser.
    fn leave(&mut self) {
        let leave = wire::encode(&Message::Leave {
            header: self.header(),
        });
        let mut waiting = 0;
        for index in 0..self.links.len() {
            let eligible = self.takes_leave(index);
            self.links[index].offer_leave(eligible.then(|| leave.clone()));
            if eligible {
                waiting += 1;
            }
        }
        let deadline = Instant::now() + LEAVE_DEADLINE;
        let mut events = Events::with_capacity(64);
        while waiting > 0 && Instant::now() < deadline {
            let now = Instant::now();
            for index in 0..self.links.len() {
                if self.links[index].awaits_leave() {
                    self.write(index, now);
                    if self.links[index].settle_leave() {
                        waiting -= 1;
                    }
                }
            }
            if waiting > 0 {
                let timeout = deadline.saturating_duration_since(Instant::now());
                if self.poll.poll(&mut events, Some(timeout)).is_err() {
                    break;
                }
            }
        }
        if waiting > 0 {
            log::info!("{waiting} peer(s) did not take our leave in time");
        }
        for index in 0..self.links.len() {
            self.links[index].close();
            self.close_socket(index);
        }
        self.state.wake_writer();
    }
}

/// Identifies a digest by its entries (address, incarnation, name), not by
/// how long ago each was heard, which changes every round: links send the
/// members again when it changes (see [`Link::queue_status`]).
fn digest_key(members: &[Member]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    for member in members {
        (member.addr, member.boot, &member.name).hash(&mut hasher);
    }
    hasher.finish()
}

/// What the table knows of `id` that decides how its link behaves.
fn facts_of(table: &PeerTable, id: PeerId) -> PeerFacts {
    PeerFacts {
        speaks_v1: table.speaks_v1(&id),
        speaks_python: table.speaks_python(&id),
        authenticated: table.authenticated(&id),
        offline_count: table.offline_count(&id),
    }
}

/// The bytes to put on the wire for `frame`: sealed for the address the link
/// dialed, from our address on the connection and our listening `port`, when
/// there is a key (plaintext only where [`Link::takes_plaintext`]). `None`
/// drops the frame (it cannot be sealed).
fn seal_for(
    keyring: Option<&SharedKeyring>,
    allow_plaintext: bool,
    port: u16,
    link: &Link,
    frame: Vec<u8>,
) -> Option<Vec<u8>> {
    let Some(keyring) = keyring else {
        return Some(frame);
    };
    if link.takes_plaintext(allow_plaintext) {
        return Some(frame);
    }
    let (Some(to), Some(local)) = (link.dialed(), link.local()) else {
        log::debug!("{}: no connection addresses to seal for", link.addr());
        return None;
    };
    match keyring::read(keyring).seal(&frame, SocketAddr::new(local, port), to) {
        Ok(sealed) => Some(sealed),
        Err(e) => {
            log::error!("{}: cannot seal a message: {e}", link.addr());
            None
        }
    }
}

/// Sorts an I/O error into the table's hard and soft failures, with a
/// user-facing description.
fn classify(error: &io::Error) -> (LinkFailure, String) {
    use io::ErrorKind;
    let failure = match error.kind() {
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionReset | ErrorKind::BrokenPipe => {
            LinkFailure::Refused
        }
        ErrorKind::TimedOut => LinkFailure::TimedOut,
        _ => LinkFailure::Other,
    };
    let detail = match failure {
        LinkFailure::TimedOut => "connection timed out (TCP user timeout)".to_string(),
        _ => describe_io_error(error),
    };
    (failure, detail)
}

/// Whether dialing `target` would reach this very node.
pub fn is_own_address(target: SocketAddr, source: Option<IpAddr>, own_port: u16) -> bool {
    if target.port() != own_port {
        return false;
    }
    let ip = target.ip().to_canonical();
    match source {
        Some(source) => source.to_canonical() == ip,
        // Listening on every address: any local address is ours. Binding a
        // socket to it succeeds exactly when it is local.
        None => ip.is_unspecified() || UdpSocket::bind(SocketAddr::new(ip, 0)).is_ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap_or(SocketAddr::from(([0, 0, 0, 0], 1)))
    }

    #[test]
    fn the_digest_key_follows_the_entries_not_their_age() {
        let member = |port: u16, boot: u64, heard_ms: u64| Member {
            addr: addr(&format!("127.0.0.3:{port}")),
            name: Some("b".to_string()),
            boot,
            heard_ms,
        };
        let key = digest_key(&[member(5000, 1, 10)]);
        assert_eq!(key, digest_key(&[member(5000, 1, 4_000)]), "only older");
        assert_ne!(key, digest_key(&[member(5000, 2, 10)]), "it restarted");
        assert_ne!(key, digest_key(&[member(5001, 1, 10)]), "another member");
        assert_ne!(
            key,
            digest_key(&[member(5000, 1, 10), member(5001, 1, 10)]),
            "one more"
        );
        assert_ne!(key, digest_key(&[]));
    }

    #[test]
    fn own_address_detection() {
        let listen = Some(IpAddr::from([127, 0, 0, 2]));
        assert!(is_own_address(addr("127.0.0.2:5000"), listen, 5000));
        assert!(!is_own_address(addr("127.0.0.3:5000"), listen, 5000));
        assert!(!is_own_address(addr("127.0.0.2:5001"), listen, 5000));
        // Listening on all addresses: any local one is ours, a foreign one is not.
        assert!(is_own_address(addr("127.0.0.1:5000"), None, 5000));
        assert!(!is_own_address(addr("127.0.0.1:5001"), None, 5000));
        assert!(!is_own_address(addr("192.0.2.1:5000"), None, 5000));
    }

    #[test]
    fn error_classification() {
        let kind = |k: io::ErrorKind| classify(&io::Error::from(k)).0;
        assert_eq!(kind(io::ErrorKind::ConnectionRefused), LinkFailure::Refused);
        assert_eq!(kind(io::ErrorKind::ConnectionReset), LinkFailure::Refused);
        assert_eq!(kind(io::ErrorKind::TimedOut), LinkFailure::TimedOut);
        assert_eq!(kind(io::ErrorKind::HostUnreachable), LinkFailure::Other);
        assert_eq!(
            classify(&io::Error::from(io::ErrorKind::ConnectionRefused)).1,
            "connection refused"
        );
    }
}
