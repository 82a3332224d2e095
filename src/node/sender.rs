//! The sender thread: samples CPU and memory every interval and pushes the
//! status to every configured peer, on one `mio` event loop.
//!
//! Each peer has a [`Link`]: connects are non-blocking with a deadline, a v1
//! peer keeps one connection open (TCP keepalive + user timeout), at most one
//! status waits per link (a newer one replaces an unsent older one), and a
//! failed link retries with a backoff capped at the interval. So a dead, slow
//! or black-holed peer costs the others nothing.
//!
//! Until a peer proves it speaks v1 (its listener greets every connection
//! with [`wire::HELLO`], or it sent us v1 messages) it gets what the Python
//! original expects: one status per connection, written at once after
//! connect, no probes, no leave. A peer that closes after that status without
//! greeting is a Python node and keeps getting one status per connection,
//! then a close. So a Python listener never sees an idle connection or two
//! frames in one `recv(1024)`.
//!
//! A listener writes us the hello and nothing else, so the sender reads at
//! most [`MAX_LISTENER_REPLY`] bytes per connection: one that keeps writing
//! (a fake peer streaming at us) is closed, counted and dialed again after
//! the backoff, so it cannot keep the loop busy at the other peers' expense.
//!
//! With a cluster key, each frame is sealed when it starts on the wire, for
//! the address that link dialed (`to`) and from the connection's local
//! address (`from`), so it is useless at any other node and from any other
//! sender. A peer that greeted us or authenticated to us (a sealed frame the
//! listener admitted) is never sent plaintext, whatever closed on us before:
//! only a peer that has done neither may be taken for the Python original.

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token, Waker};
use socket2::{Domain, Socket, Type};

use crate::config::{Config, Host, PeerAddr};
use crate::limits::MAX_PEERS;
use crate::limits::{
    BACKOFF_MIN, CONNECT_TIMEOUT, LEAVE_DEADLINE, MAX_FIRST_FRAME, MAX_LISTENER_REPLY,
    REJECT_LOG_WINDOW, TCP_USER_TIMEOUT,
};
use crate::node::listener::set_keepalive;
use crate::node::sample::Sampler;
use crate::node::shutdown::Shutdown;
use crate::node::{Shared, SharedState, lock};
use crate::peers::{LinkFailure, PeerId, PeerState};
use crate::proto::seal::{self, SharedKeyring};
use crate::proto::wire::{self, Header, Message};
use crate::sys::describe_io_error;

const WAKE: Token = Token(usize::MAX);

/// A change to the set of peers we send to, asked for at run time by another
/// thread (config reload, membership) through `Shared::change_links`.
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

/// Where a link's connection stands.
#[derive(Debug)]
enum Conn {
    Idle,
    Connecting {
        stream: TcpStream,
        deadline: Instant,
    },
    Connected {
        stream: TcpStream,
    },
}

/// Our side of one configured peer.
#[derive(Debug)]
struct Link {
    addr: PeerAddr,
    /// The address the current connection dialed: the `to` of sealed frames.
    dialed: Option<SocketAddr>,
    /// Our IP on the current connection: with our port, the `from` of sealed frames.
    local: Option<IpAddr>,
    /// The resolved identity (after the first successful resolution).
    id: Option<PeerId>,
    /// The node's own address: never sent to.
    is_self: bool,
    conn: Conn,
    /// The latest status not yet started on the wire (latest wins).
    pending: Option<Vec<u8>>,
    /// A frame being written, and how much of it is out.
    writing: Option<(Vec<u8>, usize)>,
    /// Frames completely written on the current connection.
    frames_written: u32,
    /// Bytes the listener wrote on the current connection (the hello, at most
    /// [`MAX_LISTENER_REPLY`]).
    received: usize,
    /// When the current attempt began: the connect, then the moment the
    /// connection was established and each status handed to the kernel on
    /// it. A failure tells nothing about the peer before this moment (the
    /// table ignores it as a hard signal if the peer spoke to us since).
    attempt_began: Instant,
    /// Peer closes our connection after each status: the Python original.
    legacy: bool,
    /// With a key: the peer greeted us (a v1 listener) or authenticated to us
    /// (it holds the key), so it is never sent plaintext and never taken for
    /// the Python original again, whatever closes on us later.
    sealed_only: bool,
    /// Peer greeted us with the v1 hello (or sent us v1 messages): it gets a
    /// kept-open connection, several statuses on it, probes and a leave.
    v1: bool,
    backoff: Duration,
    next_attempt: Instant,
    /// Reconnect soon even without a pending status (a v1 peer closed on us).
    probe: bool,
    /// The table's offline count when this connection was made: when it grows,
    /// the peer was declared offline and gets a fresh connection.
    offline_count: u64,
    /// The leave was fully written (shutdown).
    leave_done: bool,
    /// Last "does not read" warning, to log it once a minute at most.
    slow_warned: Option<Instant>,
    /// Removed at run time (config reload, a forgotten member): never used
    /// again; its slot (and token) is reused by the next peer added.
    retired: bool,
    /// Added by membership, not configuration.
    learned: bool,
}

impl Link {
    fn new(addr: PeerAddr, now: Instant) -> Link {
        Link {
            addr,
            dialed: None,
            local: None,
            id: None,
            is_self: false,
            conn: Conn::Idle,
            pending: None,
            writing: None,
            frames_written: 0,
            received: 0,
            attempt_began: now,
            legacy: false,
            sealed_only: false,
            v1: false,
            backoff: Duration::ZERO,
            next_attempt: now,
            probe: false,
            offline_count: 0,
            leave_done: false,
            slow_warned: None,
            retired: false,
            learned: false,
        }
    }

    /// The peer greeted us or authenticated to us: it speaks v1. With a key
    /// (`keyed`) that holds for good: no close without hello (even an
    /// injected one) and no bare status from its IP downgrades it again.
    fn prove_v1(&mut self, keyed: bool) {
        self.sealed_only |= keyed;
        self.v1 = true;
        self.legacy = false;
    }

    fn stream(&mut self) -> Option<&mut TcpStream> {
        match &mut self.conn {
            Conn::Idle => None,
            Conn::Connecting { stream, .. } | Conn::Connected { stream } => Some(stream),
        }
    }
}

/// The sender's event loop and links.
#[derive(Debug)]
pub struct Sender {
    poll: Poll,
    links: Vec<Link>,
    shared: SharedState,
    shutdown: Shutdown,
    sampler: Sampler,
    name: String,
    port: u16,
    /// Specific listen address: also the source of our connections.
    source: Option<IpAddr>,
    interval: Duration,
    connect_timeout: Duration,
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
    pub fn new(config: &Config, shared: SharedState, shutdown: &Shutdown) -> io::Result<Sender> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKE)?);
        shutdown.add_waker(waker.clone());
        lock(&shared).sender_waker = Some(waker);
        let now = Instant::now();
        let keyring = lock(&shared).keyring.clone();
        Ok(Sender {
            poll,
            links: config
                .peers
                .iter()
                .map(|addr| Link::new(addr.clone(), now))
                .collect(),
            shared,
            shutdown: shutdown.clone(),
            sampler: Sampler::new()?,
            name: config.name.clone(),
            port: config.port,
            source: config.listen.filter(|ip| !ip.is_unspecified()),
            interval: config.interval,
            connect_timeout: CONNECT_TIMEOUT.min(config.interval.max(Duration::from_secs(1))),
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
                next_round = crate::limits::later(next_round, self.interval);
                if next_round <= now {
                    // We fell behind (suspended laptop, overloaded host): skip,
                    // never send a burst of catch-up rounds.
                    next_round = crate::limits::later(now, self.interval);
                }
            }
            for index in 0..self.links.len() {
                self.drive(index, now);
            }
            let wake_at = self.next_deadline(next_round);
            lock(&self.shared).wake_writer();
            let timeout = wake_at.saturating_duration_since(Instant::now());
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                lock(&self.shared).fatal = Some(format!("sender poll failed: {e}"));
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
        let changes = std::mem::take(&mut lock(&self.shared).link_changes);
        for change in changes {
            let (addr, learned) = match change {
                LinkChange::Add(addr) => (addr, false),
                LinkChange::Learn(addr) => (addr, true),
                LinkChange::Remove(addr) => {
                    self.remove_link(&addr, now);
                    continue;
                }
                LinkChange::Unconfigure(addr) => {
                    if let Some(link) = self.links.iter_mut().find(|l| !l.retired && l.addr == addr)
                    {
                        link.learned = true;
                        if let Some(id) = link.id {
                            lock(&self.shared).table.demote(id);
                        }
                    }
                    continue;
                }
            };
            if let Some(link) = self.links.iter_mut().find(|l| !l.retired && l.addr == addr) {
                // Configuring a peer we had learned makes it configured.
                link.learned &= learned;
                continue;
            }
            // Learned links are capped; configured ones are bounded by the
            // config and always taken (the table makes room for them).
            if learned && self.links.iter().filter(|l| !l.retired).count() >= MAX_PEERS {
                log::warn!("not adding {addr}: {MAX_PEERS} peers already");
                continue;
            }
            log::info!(
                "now sending to {addr}{}",
                if learned { " (learned)" } else { "" }
            );
            let mut link = Link::new(addr, now);
            link.learned = learned;
            match self.links.iter().position(|l| l.retired) {
                Some(slot) => self.links[slot] = link,
                None => self.links.push(link),
            }
        }
    }

    /// Stops sending to `addr`: a config reload removed it, or the table
    /// dropped the member. A v1 peer gets a leave first; a configured peer
    /// stops being one.
    fn remove_link(&mut self, addr: &PeerAddr, now: Instant) {
        let Some(index) = self
            .links
            .iter()
            .position(|l| !l.retired && &l.addr == addr)
        else {
            return;
        };
        log::info!("no longer sending to {addr}");
        self.say_leave(index, now);
        let id = self.links[index].id;
        self.reset(index);
        let link = &mut self.links[index];
        link.retired = true;
        link.pending = None;
        link.writing = None;
        if let Some(id) = id {
            lock(&self.shared).table.unconfigure(id);
        }
    }

    /// Samples and queues a fresh status on every link.
    fn round(&mut self, now: Instant) {
        let sample = self.sampler.sample();
        lock(&self.shared).set_own(sample);
        let message = Message::Status {
            header: self.header(),
            cpu: sample.cpu,
            memory: sample.memory,
        };
        let frame = wire::encode(&message);
        debug_assert!(frame.len() < MAX_FIRST_FRAME);
        // Peers that speak v1 also get what we know of the members; a peer
        // not known to speak v1 (maybe the Python original) gets the bare status.
        let digest = lock(&self.shared).table.digest(now);
        let with_members = (!digest.is_empty()).then(|| {
            let mut header = self.header();
            header.members = digest;
            wire::encode(&Message::Status {
                header,
                cpu: sample.cpu,
                memory: sample.memory,
            })
        });
        self.seq += 1;
        for index in 0..self.links.len() {
            let link = &mut self.links[index];
            if link.is_self || link.retired {
                continue;
            }
            let stuck = link.writing.is_some() && matches!(link.conn, Conn::Connected { .. });
            if stuck
                && link
                    .slow_warned
                    .is_none_or(|at| now.duration_since(at) >= REJECT_LOG_WINDOW)
            {
                log::warn!(
                    "{} does not read what we send: one status waits, older ones are dropped",
                    link.addr
                );
                link.slow_warned = Some(now);
            } else if link.pending.is_some() {
                log::debug!("{}: previous status not sent yet, replaced", link.addr);
            }
            let (speaks_v1, authenticated) = link.id.map_or((false, false), |id| {
                let shared = lock(&self.shared);
                (shared.table.speaks_v1(&id), shared.table.authenticated(&id))
            });
            if authenticated && !link.sealed_only {
                link.prove_v1(true);
            }
            let speaks_v1 = link.v1 || speaks_v1;
            link.pending = Some(match (&with_members, speaks_v1) {
                (Some(members), true) => members.clone(),
                _ => frame.clone(),
            });
            // A peer declared offline since we connected gets a fresh connection.
            let stale = match (link.id, &link.conn) {
                (Some(id), Conn::Connected { .. }) => {
                    lock(&self.shared).table.offline_count(&id) != link.offline_count
                }
                _ => false,
            };
            if stale {
                log::debug!("{} was declared offline: reconnecting", link.addr);
                let id = link.id;
                self.reset(index);
                self.links[index].next_attempt = now;
                if let Some(id) = id {
                    lock(&self.shared).table.on_disconnected(id, now);
                }
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

    /// Starts connects that are due, expires connects that are late, and
    /// writes what can be written.
    fn drive(&mut self, index: usize, now: Instant) {
        let link = &mut self.links[index];
        if link.is_self || link.retired {
            return;
        }
        match &link.conn {
            Conn::Idle => {
                let wanted = link.pending.is_some() || link.probe;
                if wanted && now >= link.next_attempt {
                    self.connect(index, now);
                }
            }
            Conn::Connecting { deadline, .. } => {
                if now >= *deadline {
                    let detail = format!(
                        "connect timed out after {:.1} s",
                        self.connect_timeout.as_secs_f64()
                    );
                    self.fail(index, LinkFailure::ConnectTimeout, &detail, now);
                }
            }
            Conn::Connected { .. } => self.write(index, now),
        }
    }

    /// When the loop must wake next: the round, a backoff ending, a connect deadline.
    fn next_deadline(&self, next_round: Instant) -> Instant {
        let mut wake_at = next_round;
        for link in &self.links {
            match &link.conn {
                Conn::Idle
                    if (link.pending.is_some() || link.probe) && !link.is_self && !link.retired =>
                {
                    wake_at = wake_at.min(link.next_attempt);
                }
                Conn::Connecting { deadline, .. } => wake_at = wake_at.min(*deadline),
                _ => {}
            }
        }
        wake_at
    }

    /// Resolves the peer (again, for host names) and starts a non-blocking connect.
    fn connect(&mut self, index: usize, now: Instant) {
        self.links[index].attempt_began = now;
        let target = match self.resolve(index) {
            Ok(Some(target)) => target,
            Ok(None) => return,
            Err(detail) => {
                self.fail(index, LinkFailure::Other, &detail, now);
                return;
            }
        };
        self.links[index].dialed = Some(target);
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
                let link = &mut self.links[index];
                link.probe = false;
                link.conn = Conn::Connecting {
                    stream,
                    deadline: now + self.connect_timeout,
                };
            }
            Err(e) => {
                let (failure, detail) = classify(&e);
                self.fail(index, failure, &detail, now);
            }
        }
    }

    /// The address to dial; `Ok(None)` when the peer is this node itself.
    fn resolve(&mut self, index: usize) -> Result<Option<SocketAddr>, String> {
        let link = &mut self.links[index];
        let target = match &link.addr.host {
            Host::Ip(ip) => SocketAddr::new(*ip, link.addr.port),
            Host::Name(name) => {
                // Resolved on every (re)connect so a moved host is followed.
                let mut candidates = (name.as_str(), link.addr.port)
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
            link.is_self = true;
            link.pending = None;
            log::info!("skipping {}: it is this node's own address", link.addr);
            return Ok(None);
        }
        if link.id != Some(id) {
            if let Some(old) = link.id {
                log::info!("{} now resolves to {id} (was {old})", link.addr);
            }
            link.id = Some(id);
            if !link.learned
                && let Err(refusal) = lock(&self.shared).table.add_configured(id, Instant::now())
            {
                log::warn!("cannot track peer {id}: {refusal}");
            }
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
        set_keepalive(&stream);
        Ok(stream)
    }

    /// Readiness on a link's socket.
    fn on_ready(&mut self, index: usize, now: Instant) {
        let Some(link) = self.links.get_mut(index) else {
            return;
        };
        if let Conn::Connecting { stream, .. } = &link.conn {
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
        if matches!(self.links[index].conn, Conn::Connected { .. }) {
            self.write(index, now);
        }
    }

    fn connected(&mut self, index: usize, now: Instant) {
        let link = &mut self.links[index];
        let Conn::Connecting { stream, .. } = std::mem::replace(&mut link.conn, Conn::Idle) else {
            return;
        };
        link.local = stream
            .local_addr()
            .ok()
            .map(|local| local.ip().to_canonical());
        link.conn = Conn::Connected { stream };
        link.frames_written = 0;
        link.attempt_began = now;
        if let Some(id) = link.id {
            let mut shared = lock(&self.shared);
            let Shared { table, events, .. } = &mut *shared;
            if table.authenticated(&id) {
                link.prove_v1(true);
            }
            if table.speaks_v1(&id) {
                link.v1 = true;
            } else if table.speaks_legacy(&id) && !link.sealed_only {
                link.legacy = true;
            }
            link.offline_count = table.offline_count(&id);
            table.on_connected(id, now, events);
            // Connecting may itself bring a send-only peer back online.
            link.offline_count = table.offline_count(&id);
            shared.publish();
        }
    }

    /// A listener writes nothing but the hello on our connections: reading
    /// detects the greeting and the close. Never more than
    /// [`MAX_LISTENER_REPLY`] + 1 bytes per connection are read: past the
    /// limit the connection is closed, so a listener streaming at us costs one
    /// bounded read per connection, not a busy loop.
    fn read(&mut self, index: usize, now: Instant) {
        let mut buffer = [0u8; MAX_LISTENER_REPLY + 1];
        loop {
            let link = &mut self.links[index];
            let room = reply_room(link.received);
            let Some(stream) = link.stream() else {
                return;
            };
            match stream.read(&mut buffer[..room]) {
                Ok(0) => {
                    self.peer_closed(index, now);
                    return;
                }
                Ok(n) => {
                    let link = &mut self.links[index];
                    link.received += n;
                    if link.received > MAX_LISTENER_REPLY {
                        self.close_talker(index, now);
                        return;
                    }
                    // Only a v1 listener writes on a connection it accepted.
                    let keyed = self.keyring.is_some();
                    let link = &mut self.links[index];
                    if !link.v1 || link.legacy || (keyed && !link.sealed_only) {
                        log::debug!("{} greeted us: it speaks v1", link.addr);
                        link.prove_v1(keyed);
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

    /// The peer closed our connection without an error.
    fn peer_closed(&mut self, index: usize, now: Instant) {
        let (speaks_v1, authenticated) = self.links[index].id.map_or((false, false), |id| {
            let shared = lock(&self.shared);
            (shared.table.speaks_v1(&id), shared.table.authenticated(&id))
        });
        let link = &mut self.links[index];
        if authenticated {
            link.prove_v1(true);
        }
        let delivered = link.frames_written >= 1;
        if !link.legacy && !link.v1 && !link.sealed_only && !speaks_v1 && delivered {
            link.legacy = true;
            log::info!(
                "{} closes the connection after each status: sending to it as the Python original does",
                link.addr
            );
        }
        let (legacy, v1, id) = (link.legacy, link.v1 || speaks_v1, link.id);
        self.reset(index);
        let interval = self.interval;
        let link = &mut self.links[index];
        if !delivered {
            // Accepted, then closed before taking anything (a full or dying
            // listener): back off as after a failure, never spin.
            link.backoff = next_backoff(link.backoff, interval);
            link.next_attempt = crate::limits::later(now, link.backoff);
        } else if v1 && !legacy {
            // A v1 peer closing on us is restarting or dying: look again soon,
            // a refused connect then reports it at once.
            link.probe = true;
            link.next_attempt = now + BACKOFF_MIN;
        }
        if let Some(id) = id {
            lock(&self.shared).table.on_disconnected(id, now);
        }
    }

    /// Writes the frame in progress, then the pending one.
    fn write(&mut self, index: usize, now: Instant) {
        loop {
            let link = &mut self.links[index];
            if link.writing.is_none() {
                if !link.v1 && link.frames_written >= 1 {
                    // Not known to speak v1: one status per connection.
                    return;
                }
                let Some(frame) = link.pending.take() else {
                    return;
                };
                match seal_for(
                    self.keyring.as_ref(),
                    self.allow_plaintext,
                    self.port,
                    link,
                    frame,
                ) {
                    Some(frame) => link.writing = Some((frame, 0)),
                    None => continue,
                }
            }
            let Conn::Connected { stream } = &mut link.conn else {
                return;
            };
            let Some((frame, offset)) = &mut link.writing else {
                return;
            };
            match stream.write(&frame[*offset..]) {
                Ok(n) => {
                    *offset += n;
                    if *offset < frame.len() {
                        continue;
                    }
                    link.writing = None;
                    link.frames_written += 1;
                    link.backoff = Duration::ZERO;
                    link.attempt_began = now;
                    if let Some(id) = link.id {
                        let mut shared = lock(&self.shared);
                        shared.stats.sent += 1;
                        shared.table.on_delivered(id, now);
                    }
                    if link.legacy {
                        // One status per connection, then close, like the original.
                        let id = link.id;
                        self.reset(index);
                        if let Some(id) = id {
                            lock(&self.shared).table.on_disconnected(id, now);
                        }
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if link.pending.is_some() {
                        log::debug!("{} reads slowly: one status waits", link.addr);
                    }
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

    /// Drops the link's connection (if any), keeping its pending status.
    fn reset(&mut self, index: usize) {
        let link = &mut self.links[index];
        if let Some(stream) = link.stream() {
            if let Err(e) = self.poll.registry().deregister(stream) {
                log::debug!("deregister failed: {e}");
            }
        }
        link.conn = Conn::Idle;
        link.writing = None;
        link.frames_written = 0;
        link.received = 0;
    }

    /// The listener wrote more than a hello on our connection: close it,
    /// count it (one rate-limited log line), and dial again after the backoff
    /// (a delivered status resets it, so at most one connection per round).
    /// Not a verdict on the peer: whatever it is, it is up.
    fn close_talker(&mut self, index: usize, now: Instant) {
        let id = self.links[index].id;
        let source = self.links[index].dialed.map(|addr| addr.ip());
        let addr = self.links[index].addr.clone();
        self.reset(index);
        let interval = self.interval;
        let link = &mut self.links[index];
        link.backoff = next_backoff(link.backoff, interval);
        link.next_attempt = now + link.backoff;
        link.probe = false;
        let mut shared = lock(&self.shared);
        if let Some(source) = source {
            shared.stats.reject(
                "peer_talks_back",
                source,
                &format_args!(
                    "{addr} wrote more than the {MAX_LISTENER_REPLY} bytes a hello may take on our connection; closed"
                ),
                now,
            );
        }
        if let Some(id) = id {
            shared.table.on_disconnected(id, now);
        }
    }

    /// A connect or a connection failed: tell the table, back off.
    fn fail(&mut self, index: usize, failure: LinkFailure, detail: &str, now: Instant) {
        let was_up = matches!(self.links[index].conn, Conn::Connected { .. });
        self.reset(index);
        let interval = self.interval;
        let link = &mut self.links[index];
        let first_failure = link.backoff.is_zero();
        link.backoff = next_backoff(link.backoff, interval);
        link.next_attempt = crate::limits::later(now, link.backoff);
        link.probe = false;
        if was_up || first_failure {
            // A working link breaking is news; its retries are not.
            log::info!("connection to {} failed: {detail}", link.addr);
        } else {
            log::debug!("{}: {detail}; retry in {:?}", link.addr, link.backoff);
        }
        if let Some(id) = link.id {
            let mut shared = lock(&self.shared);
            let Shared { table, events, .. } = &mut *shared;
            table.on_link_failed(id, failure, link.attempt_began, detail, now, events);
            let still_online = table.get(&id).is_some_and(|p| p.state == PeerState::Online);
            shared.publish();
            drop(shared);
            if failure == LinkFailure::TimedOut
                && still_online
                && link
                    .slow_warned
                    .is_none_or(|at| now.duration_since(at) >= REJECT_LOG_WINDOW)
            {
                log::warn!(
                    "{} does not read what we send (our data went unacknowledged for {} s while it keeps sending to us); reconnecting",
                    link.addr,
                    TCP_USER_TIMEOUT.as_secs()
                );
                link.slow_warned = Some(now);
            }
        }
    }

    /// Whether the link's peer gets a leave: a v1 peer on an open connection
    /// (never the Python original, which expects nothing but statuses).
    fn takes_leave(&self, index: usize) -> bool {
        let link = &self.links[index];
        let speaks_v1 = link
            .id
            .is_some_and(|id| lock(&self.shared).table.speaks_v1(&id));
        matches!(link.conn, Conn::Connected { .. }) && !link.legacy && (link.v1 || speaks_v1)
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
        self.links[index].pending = Some(leave);
        self.write(index, now);
        let link = &self.links[index];
        if link.pending.is_some() || link.writing.is_some() {
            log::info!("{} did not take our leave: closing anyway", link.addr);
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
            let link = &mut self.links[index];
            if eligible {
                link.pending = Some(leave.clone());
                waiting += 1;
            } else {
                link.pending = None;
                link.leave_done = true;
            }
        }
        let deadline = Instant::now() + LEAVE_DEADLINE;
        let mut events = Events::with_capacity(64);
        while waiting > 0 && Instant::now() < deadline {
            let now = Instant::now();
            for index in 0..self.links.len() {
                if !self.links[index].leave_done {
                    self.write(index, now);
                    let link = &mut self.links[index];
                    let written = link.pending.is_none() && link.writing.is_none();
                    if written || matches!(link.conn, Conn::Idle) {
                        link.leave_done = true;
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
            self.reset(index);
        }
        lock(&self.shared).wake_writer();
    }
}

/// The bytes to put on the wire for `frame`: sealed for the address the link
/// dialed, from our address on the connection and our listening `port`, when
/// there is a key (plaintext only to a Python peer, and only with
/// --allow-plaintext; never to one that greeted us or authenticated to us).
/// `None` drops the frame (it cannot be sealed).
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
    if link.legacy && allow_plaintext && !link.sealed_only {
        return Some(frame);
    }
    let (Some(to), Some(local)) = (link.dialed, link.local) else {
        log::debug!("{}: no connection addresses to seal for", link.addr);
        return None;
    };
    match seal::read(keyring).seal(&frame, SocketAddr::new(local, port), to) {
        Ok(sealed) => Some(sealed),
        Err(e) => {
            log::error!("{}: cannot seal a message: {e}", link.addr);
            None
        }
    }
}

/// The backoff after one more failed (or refused-to-work) connection:
/// doubling from [`BACKOFF_MIN`], capped at the send interval.
fn next_backoff(current: Duration, interval: Duration) -> Duration {
    (current * 2).clamp(BACKOFF_MIN, interval.max(BACKOFF_MIN))
}

/// How many bytes the next read on a connection may take, given what its
/// listener already wrote: one past [`MAX_LISTENER_REPLY`] at most in all, so
/// crossing the limit is seen without reading further. Always at least 1
/// while the limit is not crossed (a zero-length read would look like a close).
fn reply_room(received: usize) -> usize {
    (MAX_LISTENER_REPLY + 1).saturating_sub(received).max(1)
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
        LinkFailure::TimedOut => "connection timed out (keepalive / TCP user timeout)".to_string(),
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

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap_or(SocketAddr::from(([0, 0, 0, 0], 1)))
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
    fn a_listener_gets_the_hello_and_one_byte_more_then_is_closed() {
        // One read may take the whole allowance plus the byte that crosses it.
        assert_eq!(reply_room(0), MAX_LISTENER_REPLY + 1);
        // After a hello, the rest; the limit is crossed by the last byte.
        let hello = wire::HELLO.len();
        assert!(hello <= MAX_LISTENER_REPLY);
        assert_eq!(reply_room(hello), MAX_LISTENER_REPLY + 1 - hello);
        assert_eq!(reply_room(MAX_LISTENER_REPLY), 1);
        // Never an empty buffer (a zero-length read would look like a close).
        assert_eq!(reply_room(MAX_LISTENER_REPLY + 1), 1);
        assert_eq!(reply_room(usize::MAX), 1);
    }

    #[test]
    fn backoff_doubles_from_the_minimum_up_to_the_interval() {
        let interval = Duration::from_secs(2);
        let mut backoff = Duration::ZERO;
        let mut seen = Vec::new();
        for _ in 0..6 {
            backoff = next_backoff(backoff, interval);
            seen.push(backoff.as_millis());
        }
        assert_eq!(seen, [250, 500, 1000, 2000, 2000, 2000]);
        // An interval shorter than the minimum: the minimum still holds.
        let fast = Duration::from_millis(20);
        assert_eq!(next_backoff(Duration::ZERO, fast), BACKOFF_MIN);
        assert_eq!(next_backoff(BACKOFF_MIN, fast), BACKOFF_MIN);
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
