//! The listener thread: one `mio` event loop that accepts on the listening
//! sockets and reads framed messages from every peer at once, without a thread
//! per connection. It decodes each frame, applies it to the peer table and
//! prints the result; it also runs the table's timers (close grace, silence)
//! when the next deadline falls (at least once a second, see [`MAX_TICK`]) and
//! closes connections idle for longer than [`IDLE_FACTOR`] × T.
//!
//! Everything it holds is bounded: at most `--max-connections` connections
//! (default [`crate::limits::MAX_CONNECTIONS`]), each with at most one
//! unfinished frame of [`crate::limits::MAX_FRAME`] bytes.
//!
//! Policy against strangers holding connections (slowloris): a connection
//! that has not sent one valid message within [`UNIDENTIFIED_DEADLINE`] is
//! closed, however slowly it dribbles bytes; at the cap, the oldest such
//! connection is evicted to admit a new one, so identified peers are never
//! starved; identified peers' connections close only after 2 × T of silence.

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};

use crate::config::{Config, Host, PeerAddr};
use crate::limits::{
    IDLE_FACTOR, KEEPALIVE_IDLE, KEEPALIVE_INTERVAL, KEEPALIVE_PROBES, MAX_TICK, OFFLINE_FACTOR,
    READ_CHUNK, TCP_USER_TIMEOUT, TICK, UNIDENTIFIED_DEADLINE,
};
use crate::node::sender::{LinkChange, is_own_address};
use crate::node::shutdown::Shutdown;
use crate::node::{Shared, SharedState, SharedStdout, lock};
use crate::peers::{PeerId, StatusReport, legacy_report};
use crate::proto::seal::{self, Gate};
use crate::proto::wire::{self, FrameBuffer, Message};
use crate::sys::describe_io_error;

const WAKE: Token = Token(0);
/// Tokens below this are listening sockets; connection tokens start here.
const FIRST_CONNECTION: usize = 16;

/// What a connection turned out to carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Nothing valid yet.
    Unknown,
    /// v1 frames from one peer.
    V1,
    /// The Python original: one bare status, then close.
    Legacy,
}

/// What the listener knows about one inbound connection.
#[derive(Debug)]
struct ConnInfo {
    source: IpAddr,
    /// Our end of it: a sealed frame must be addressed to exactly this.
    local: Option<SocketAddr>,
    kind: Kind,
    peer: Option<PeerId>,
    /// The peer's announced interval, for the idle deadline.
    interval: Duration,
    /// A leave arrived: its close is not a crash.
    left: bool,
    /// We wrote our hello on it.
    greeted: bool,
    accepted_at: Instant,
    last_activity: Instant,
}

#[derive(Debug)]
struct Connection {
    stream: TcpStream,
    frames: FrameBuffer,
    info: ConnInfo,
}

/// How a connection ended.
enum Closed {
    /// The peer closed (EOF) or the socket failed.
    ByPeer(Option<io::Error>),
    /// We closed it (bad frames, idle).
    ByUs,
}

/// The listener's event loop and its connections.
#[derive(Debug)]
pub struct Listener {
    poll: Poll,
    listeners: Vec<TcpListener>,
    connections: Vec<Option<Connection>>,
    free: Vec<usize>,
    open: usize,
    shared: SharedState,
    stdout: SharedStdout,
    shutdown: Shutdown,
    offline_after: Duration,
    default_interval: Duration,
    max_connections: usize,
    scratch: Vec<u8>,
    /// Lets through only what the key (if any) allows; keeps per-peer freshness.
    gate: Gate,
    membership: Membership,
    /// accept() failed (out of file descriptors): retry on every tick, since
    /// the edge-triggered poll will not report the waiting connections again.
    accept_stalled: bool,
}

impl Listener {
    /// Registers the listening sockets and a waker for shutdown.
    pub fn new(
        mut listeners: Vec<TcpListener>,
        shared: SharedState,
        stdout: SharedStdout,
        shutdown: &Shutdown,
        config: &Config,
    ) -> io::Result<Listener> {
        let poll = Poll::new()?;
        for (index, listener) in listeners.iter_mut().enumerate() {
            poll.registry()
                .register(listener, Token(1 + index), Interest::READABLE)?;
        }
        let waker = std::sync::Arc::new(Waker::new(poll.registry(), WAKE)?);
        shutdown.add_waker(waker.clone());
        let keyring = {
            let mut shared = lock(&shared);
            shared.writer_waker = Some(waker);
            shared.keyring.clone()
        };
        Ok(Listener {
            poll,
            listeners,
            connections: Vec::new(),
            free: Vec::new(),
            open: 0,
            shared,
            stdout,
            shutdown: shutdown.clone(),
            offline_after: config.offline_after,
            default_interval: config.interval,
            max_connections: config.max_connections,
            scratch: vec![0; READ_CHUNK],
            gate: Gate::new(keyring, config.allow_plaintext, Instant::now()),
            membership: Membership {
                learn: config.learn_peers,
                source: config.listen.filter(|ip| !ip.is_unspecified()),
                port: config.port,
            },
            accept_stalled: false,
        })
    }

    /// Runs until shutdown.
    pub fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        let mut next_tick = Instant::now() + TICK;
        // Recompute the next deadline at least this often when something
        // structural happened (a close, an accept, a wake from the sender).
        let mut recheck = false;
        lock(&self.shared).listener_running = true;
        while !self.shutdown.is_triggered() {
            self.write_out();
            let timeout = next_tick.saturating_duration_since(Instant::now());
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                let mut shared = lock(&self.shared);
                shared.fatal = Some(format!("listener poll failed: {e}"));
                drop(shared);
                self.shutdown.trigger();
                break;
            }
            let open_before = self.open;
            let generation = lock(&self.shared).table.generation();
            for event in events.iter() {
                match event.token() {
                    WAKE => recheck = true,
                    Token(index) if index < FIRST_CONNECTION => self.accept(index - 1),
                    Token(index) => self.read(index - FIRST_CONNECTION),
                }
            }
            if self.open != open_before || lock(&self.shared).table.generation() != generation {
                recheck = true;
            }
            let now = Instant::now();
            if now >= next_tick || recheck {
                if now >= next_tick {
                    self.tick(now);
                }
                next_tick = self.next_wake(now);
                recheck = false;
            }
        }
        lock(&self.shared).listener_running = false;
        self.write_out();
    }

    /// Writes pending event lines to stdout, outside the shared lock.
    fn write_out(&self) {
        let bytes = lock(&self.shared).output.take();
        if !bytes.is_empty() {
            self.stdout
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .write(&bytes);
        }
    }

    fn accept(&mut self, listener_index: usize) {
        loop {
            let Some(listener) = self.listeners.get(listener_index) else {
                return;
            };
            let (mut stream, source) = match listener.accept() {
                Ok(accepted) => accepted,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // EMFILE and friends: count, log (rate-limited), retry on the next tick.
                    self.accept_stalled = true;
                    let unspecified = IpAddr::from([0, 0, 0, 0]);
                    lock(&self.shared).stats.reject(
                        "accept_failed",
                        unspecified,
                        &format_args!("cannot accept a connection: {}", describe_io_error(&e)),
                        Instant::now(),
                    );
                    return;
                }
            };
            let now = Instant::now();
            if self.open >= self.max_connections && !self.evict_a_stranger(now) {
                lock(&self.shared).stats.reject(
                    "too_many_connections",
                    source.ip(),
                    &format_args!(
                        "{} connections open, all from identified peers",
                        self.max_connections
                    ),
                    now,
                );
                continue;
            }
            set_keepalive(&stream);
            let local = stream.local_addr().ok();
            let index = self.free.pop().unwrap_or_else(|| {
                self.connections.push(None);
                self.connections.len() - 1
            });
            if let Err(e) = self.poll.registry().register(
                &mut stream,
                Token(FIRST_CONNECTION + index),
                Interest::READABLE,
            ) {
                log::warn!("cannot watch a connection from {source}: {e}");
                self.free.push(index);
                continue;
            }
            self.connections[index] = Some(Connection {
                stream,
                frames: FrameBuffer::default(),
                info: ConnInfo {
                    source: source.ip().to_canonical(),
                    local,
                    kind: Kind::Unknown,
                    peer: None,
                    interval: self.default_interval,
                    left: false,
                    greeted: false,
                    accepted_at: now,
                    last_activity: now,
                },
            });
            self.open += 1;
            let mut shared = lock(&self.shared);
            shared.stats.accepted += 1;
            shared.stats.open_connections = self.open as u64;
        }
    }

    /// At the connection cap, makes room by closing the oldest connection that
    /// has not sent one valid message: strangers holding connections open
    /// never starve identified peers. Returns false if there is none.
    fn evict_a_stranger(&mut self, now: Instant) -> bool {
        let oldest = self
            .connections
            .iter()
            .enumerate()
            .filter_map(|(index, slot)| {
                let info = &slot.as_ref()?.info;
                (info.kind == Kind::Unknown).then_some((info.accepted_at, index, info.source))
            })
            .min();
        let Some((_, index, source)) = oldest else {
            return false;
        };
        lock(&self.shared).stats.reject(
            "evicted",
            source,
            &"connection cap reached: closed a connection that never sent a valid message",
            now,
        );
        self.close(index, Closed::ByUs, now);
        true
    }

    /// Reads everything available on one connection.
    fn read(&mut self, index: usize) {
        let Some(Some(connection)) = self.connections.get_mut(index) else {
            return;
        };
        let now = Instant::now();
        let mut closed = None;
        loop {
            match connection.stream.read(&mut self.scratch) {
                Ok(0) => {
                    closed = Some(Closed::ByPeer(None));
                    break;
                }
                Ok(n) => {
                    connection.info.last_activity = now;
                    let mut shared = lock(&self.shared);
                    let info = &mut connection.info;
                    let gate = &mut self.gate;
                    let membership = self.membership;
                    let mut reject_stream = false;
                    let result = connection.frames.push(&self.scratch[..n], |frame| {
                        if !reject_stream
                            && !handle_frame(info, gate, membership, &mut shared, frame, now)
                        {
                            reject_stream = true;
                        }
                    });
                    if let Err(e) = result {
                        shared.stats.reject(e.reason(), info.source, &e, now);
                        reject_stream = true;
                    }
                    shared.publish();
                    drop(shared);
                    // Greet a v1 sender once, after its first valid message:
                    // a Python sender never gets bytes it would not read (its
                    // close would then reset the connection). Plaintext even
                    // with a key: it carries nothing but "v1 here".
                    if connection.info.kind == Kind::V1 && !connection.info.greeted {
                        connection.info.greeted = true;
                        if let Err(e) = connection.stream.write(wire::HELLO) {
                            log::debug!("cannot greet {}: {e}", connection.info.source);
                        }
                    }
                    if reject_stream {
                        closed = Some(Closed::ByUs);
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    closed = Some(Closed::ByPeer(Some(e)));
                    break;
                }
            }
        }
        if let Some(how) = closed {
            self.close(index, how, now);
        }
    }

    /// Ends a connection and tells the table how.
    fn close(&mut self, index: usize, how: Closed, now: Instant) {
        let Some(mut connection) = self.connections.get_mut(index).and_then(Option::take) else {
            return;
        };
        if let Err(e) = self.poll.registry().deregister(&mut connection.stream) {
            log::debug!("deregister failed: {e}");
        }
        self.free.push(index);
        self.open = self.open.saturating_sub(1);
        let mut shared = lock(&self.shared);
        shared.stats.open_connections = self.open as u64;
        let info = &mut connection.info;
        if let Closed::ByPeer(error) = &how {
            // The Python original sends its status without a newline and closes.
            if let Some(rest) = connection.frames.take_rest() {
                handle_frame(
                    info,
                    &mut self.gate,
                    self.membership,
                    &mut shared,
                    &rest,
                    now,
                );
            }
            if let Some(error) = error {
                log::debug!(
                    "connection from {} failed: {}",
                    info.source,
                    describe_io_error(error)
                );
            }
        }
        if let (Some(peer), Kind::V1) = (info.peer, info.kind) {
            let graceful = info.left || matches!(how, Closed::ByUs);
            shared.table.on_inbound_closed(peer, graceful, now);
        }
        shared.publish();
    }

    /// When the loop must run the timers next: the table's next deadline or a
    /// connection's, never sooner than [`TICK`] (a burst of deadlines is
    /// handled in one pass) and never later than [`MAX_TICK`].
    fn next_wake(&self, now: Instant) -> Instant {
        let table = lock(&self.shared).table.next_deadline(now);
        let connections = self
            .connections
            .iter()
            .flatten()
            .map(|connection| {
                let info = &connection.info;
                if info.kind == Kind::Unknown {
                    info.accepted_at + UNIDENTIFIED_DEADLINE
                } else {
                    let threshold = self.offline_after.max(info.interval * OFFLINE_FACTOR);
                    info.last_activity + threshold * IDLE_FACTOR
                }
            })
            .min();
        let deadline = [table, connections].into_iter().flatten().min();
        let earliest = now + TICK;
        let latest = now + MAX_TICK;
        deadline.map_or(latest, |at| at.clamp(earliest, latest))
    }

    /// Runs the table's timers and closes idle connections.
    fn tick(&mut self, now: Instant) {
        if self.accept_stalled {
            self.accept_stalled = false;
            for index in 0..self.listeners.len() {
                self.accept(index);
            }
        }
        {
            let mut shared = lock(&self.shared);
            let Shared { table, events, .. } = &mut *shared;
            table.tick(now, events);
            shared.publish();
        }
        let expired: Vec<(usize, &'static str)> = self
            .connections
            .iter()
            .enumerate()
            .filter_map(|(index, slot)| {
                let info = &slot.as_ref()?.info;
                if info.kind == Kind::Unknown
                    && now.duration_since(info.accepted_at) > UNIDENTIFIED_DEADLINE
                {
                    // Slowloris: silent or dribbling strangers get a fixed deadline.
                    return Some((index, "handshake_timeout"));
                }
                let threshold = self.offline_after.max(info.interval * OFFLINE_FACTOR);
                (now.duration_since(info.last_activity) > threshold * IDLE_FACTOR)
                    .then_some((index, "idle_timeout"))
            })
            .collect();
        for (index, reason) in expired {
            if let Some(Some(connection)) = self.connections.get(index) {
                let source = connection.info.source;
                let detail = match reason {
                    "handshake_timeout" => "no valid message in time, connection closed",
                    _ => "connection idle too long, closed",
                };
                lock(&self.shared)
                    .stats
                    .reject(reason, source, &detail, now);
            }
            self.close(index, Closed::ByUs, now);
        }
    }
}

/// Applies one frame. Returns false when the connection should be dropped: a
/// stream that has not sent one valid frame and sends garbage is not a peer.
/// What the listener needs to take part in membership.
#[derive(Debug, Clone, Copy)]
pub struct Membership {
    /// Learn members from statuses (and push back to senders we do not know).
    pub learn: bool,
    /// This node's specific address and port, to skip itself in hearsay.
    pub source: Option<IpAddr>,
    pub port: u16,
}

fn handle_frame(
    info: &mut ConnInfo,
    gate: &mut Gate,
    membership: Membership,
    shared: &mut Shared,
    frame: &[u8],
    now: Instant,
) -> bool {
    let message = match gate.admit(frame, info.source, info.local, now, seal::unix_ms()) {
        Ok(message) => message,
        Err(e) => {
            shared.stats.reject(e.reason(), info.source, &e, now);
            return info.kind != Kind::Unknown;
        }
    };
    let mut learned: Vec<PeerId> = Vec::new();
    let Shared {
        table,
        events,
        stats,
        ..
    } = shared;
    let result = match message {
        Message::Legacy { cpu, memory } => {
            info.kind = Kind::Legacy;
            let peer = table.legacy_id(info.source);
            table.on_status(peer, legacy_report(cpu, memory), now, events)
        }
        Message::Status {
            mut header,
            cpu,
            memory,
        } => {
            let peer = PeerId::new(info.source, header.port);
            let members = std::mem::take(&mut header.members);
            info.kind = Kind::V1;
            info.interval = Duration::from_millis(header.interval_ms);
            let report = StatusReport {
                name: Some(header.node),
                boot: Some(header.boot),
                seq: Some(header.seq),
                interval: info.interval,
                cpu,
                memory,
            };
            let result = table.on_status(peer, report, now, events);
            if result.is_ok() && info.peer != Some(peer) {
                if let Some(previous) = info.peer {
                    table.on_inbound_closed(previous, true, now);
                }
                table.on_inbound_open(peer);
                info.peer = Some(peer);
            }
            if result.is_ok() && membership.learn {
                // Push back to a sender we do not send to yet, and learn the
                // members it names (bounded per message by the decoder).
                if table.mark_linked(peer) {
                    learned.push(peer);
                }
                for member in &members {
                    if is_own_address(member.addr, membership.source, membership.port) {
                        continue;
                    }
                    match table.learn(member, peer, now) {
                        Ok(true) => learned.push(PeerId::new(member.addr.ip(), member.addr.port())),
                        Ok(false) => {}
                        Err(refusal) => stats.reject(refusal.reason(), info.source, &refusal, now),
                    }
                }
            }
            result
        }
        Message::Leave { header } => {
            let peer = PeerId::new(info.source, header.port);
            info.kind = Kind::V1;
            info.left = true;
            table.on_leave(peer, header.boot, now, events)
        }
    };
    match result {
        Ok(()) => stats.received += 1,
        Err(refusal) => stats.reject(refusal.reason(), info.source, &refusal, now),
    }
    if !learned.is_empty() {
        shared.change_links(learned.into_iter().map(|id| {
            LinkChange::Learn(PeerAddr {
                host: Host::Ip(id.0.ip()),
                port: id.0.port(),
            })
        }));
    }
    true
}

/// TCP keepalive and user timeout on a kept-open connection, so a dead host or
/// a cut path fails it in about 4 s (constants in `limits`).
pub fn set_keepalive(stream: &TcpStream) {
    let socket = socket2::SockRef::from(stream);
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(KEEPALIVE_IDLE)
        .with_interval(KEEPALIVE_INTERVAL)
        .with_retries(KEEPALIVE_PROBES);
    if let Err(e) = socket.set_tcp_keepalive(&keepalive) {
        log::debug!("cannot set TCP keepalive: {e}");
    }
    if let Err(e) = socket.set_tcp_user_timeout(Some(TCP_USER_TIMEOUT)) {
        log::debug!("cannot set TCP_USER_TIMEOUT: {e}");
    }
}
