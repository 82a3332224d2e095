//! The listener thread: one `mio` event loop that accepts on the listening
//! sockets and reads framed messages from every peer at once, without a thread
//! per connection. It decodes each frame, applies it to the peer table and
//! prints the result; it also runs the table's timers (close grace, silence)
//! when the next deadline falls (woken sooner when another thread changes the
//! table's links or members; at least every [`MAX_TICK`]) and
//! closes connections idle for longer than [`IDLE_FACTOR`] × T (at most
//! [`MAX_IDLE_DEADLINE`]). A v1 connection whose status is late (its
//! interval plus a grace, [`probe_after`]) is probed (`probe.rs`); one whose
//! probe goes unanswered fails, and its peer is offline then, not at T.
//!
//! Fairness: a readable connection joins a ready queue; each turn of the loop
//! serves every queued connection once, for at most [`FRAME_BUDGET`] frames
//! and [`READ_BUDGET`] bytes, then runs the timers. A connection left with
//! data (the poll is edge-triggered and will not report it again) goes back
//! in the queue, so one flooding connection delays the others by one budget
//! at most. An identified connection sending more than [`MAX_INVALID_FRAMES`]
//! invalid frames within [`INVALID_FRAME_WINDOW`] is closed.
//!
//! Everything it holds is bounded: at most `--max-connections` connections
//! (default [`crate::limits::MAX_CONNECTIONS`]), each with at most one
//! unfinished frame of [`crate::limits::MAX_FRAME`] bytes plus one read.
//!
//! Connection policy (slowloris, squatting): a connection is identified once
//! the peer table accepted a message from it; one that has not within
//! [`UNIDENTIFIED_DEADLINE`] is closed, however slowly it dribbles bytes. Idle
//! deadlines count from the last accepted message, not from any bytes. One
//! source IP holds at most [`MAX_CONNECTIONS_PER_ADDRESS`] connections: a
//! newcomer past it replaces that address's least useful one. At the cap, the
//! oldest stranger is evicted; failing that, the longest-idle connection of
//! the address holding the most, if it holds at least two more than the
//! newcomer's (so an eviction never just moves the imbalance).

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};

use crate::config::{Config, Host, PeerAddr};
use crate::limits::{
    ACCEPT_BUDGET, ACCEPT_RETRY, FRAME_BUDGET, IDLE_FACTOR, INVALID_FRAME_WINDOW,
    MAX_CONNECTIONS_PER_ADDRESS, MAX_IDLE_DEADLINE, MAX_INVALID_FRAMES, MAX_TICK, READ_BUDGET,
    READ_CHUNK, TICK, UNIDENTIFIED_DEADLINE,
};
use crate::node::probe;
use crate::node::sender::{LinkChange, is_own_address};
use crate::node::shutdown::Shutdown;
use crate::node::{Change, SharedStdout, State};
use crate::peers::{
    PeerId, PeerTable, StatusReport, legacy_report, offline_threshold, probe_after,
};
use crate::proto::Dialect;
use crate::proto::wire::{self, Message};
use crate::proto::{Admitted, FrameBuffer, Freshness, Gate};
use crate::sys::describe_io_error;

const WAKE: Token = Token(0);
/// Tokens below this are listening sockets; connection tokens start here.
const FIRST_CONNECTION: usize = 16;

/// What the listener knows about one inbound connection.
#[derive(Debug)]
struct ConnInfo {
    source: IpAddr,
    /// Our end of it: a sealed frame must be addressed to exactly this.
    local: Option<SocketAddr>,
    /// What it turned out to carry, known once the table accepted a message:
    /// `Unknown` until then, `V1` frames from one peer, or the `Python`
    /// original's one bare status before its close.
    dialect: Dialect,
    peer: Option<PeerId>,
    /// The peer's announced interval as the table counts it (capped), for
    /// the idle deadline.
    interval: Duration,
    /// A leave arrived: its close is not a crash.
    left: bool,
    /// We wrote our hello on it.
    greeted: bool,
    accepted_at: Instant,
    /// The last message the table accepted: idle deadlines count from it
    /// (bytes that are not an accepted message never keep a slot).
    last_accepted: Instant,
    /// When its status was found late and a probe armed on its socket
    /// (`None`: quiet, as a connection with statuses on time is).
    probed_at: Option<Instant>,
    /// Invalid frames in the window that began at `invalid_since`.
    invalid: u32,
    invalid_since: Instant,
}

impl ConnInfo {
    /// Counts an invalid frame; true once the connection sent too many.
    fn count_invalid(&mut self, now: Instant) -> bool {
        if now.duration_since(self.invalid_since) > INVALID_FRAME_WINDOW {
            self.invalid = 0;
            self.invalid_since = now;
        }
        self.invalid += 1;
        self.invalid > MAX_INVALID_FRAMES
    }

    /// When to give up on it: a stranger at the handshake deadline, an
    /// identified connection after `IDLE_FACTOR` × T without an accepted
    /// message, never later than `MAX_IDLE_DEADLINE` (or `IDLE_FACTOR` × our
    /// own interval if longer: a peer at our pace is never idle).
    fn deadline(&self, offline_after: Duration, own_interval: Duration) -> (Instant, &'static str) {
        if self.dialect == Dialect::Unknown {
            return (
                self.accepted_at + UNIDENTIFIED_DEADLINE,
                "handshake_timeout",
            );
        }
        let threshold = offline_threshold(offline_after, self.interval);
        let cap = MAX_IDLE_DEADLINE.max(own_interval * IDLE_FACTOR);
        let idle = (threshold * IDLE_FACTOR).min(cap);
        (
            crate::limits::later(self.last_accepted, idle),
            "idle_timeout",
        )
    }

    /// When to probe it: a v1 connection (the only kind kept open) whose
    /// status is late, unless it is probed already or said it leaves.
    fn probe_deadline(&self) -> Option<Instant> {
        let quiet = self.dialect == Dialect::V1 && !self.left && self.probed_at.is_none();
        quiet.then(|| crate::limits::later(self.last_accepted, probe_after(self.interval)))
    }

    /// A probe is armed and a message was accepted since: disarm it.
    fn answered_since_probe(&self) -> bool {
        self.probed_at.is_some_and(|at| self.last_accepted >= at)
    }

    /// Eviction order within a group: strangers first (oldest first), then
    /// the identified connection idle longest.
    fn eviction_key(&self) -> (bool, Instant) {
        match self.dialect {
            Dialect::Unknown => (false, self.accepted_at),
            Dialect::V1 | Dialect::Python => (true, self.last_accepted),
        }
    }
}

#[derive(Debug)]
struct Connection {
    stream: TcpStream,
    frames: FrameBuffer,
    info: ConnInfo,
    /// In the ready queue.
    queued: bool,
    /// Whole frames are buffered from a turn that ran out of budget.
    backlog: bool,
}

/// Where a turn on one connection stopped.
enum Turn {
    /// No whole frame left in the buffer.
    Drained,
    /// The frame budget ran out with frames possibly left.
    Budget,
    /// The connection must be closed (bad stream, too many invalid frames).
    Close,
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
    /// Open connections per source IP (entries removed at zero).
    per_address: HashMap<IpAddr, usize>,
    /// Connections to serve on the next turn, each once (see `Connection::queued`).
    ready: Vec<usize>,
    state: State,
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
    /// The soonest deadline of the connections served since the loop last
    /// planned its wake-up.
    soonest: Option<Instant>,
    /// Listening sockets left with connections waiting after a turn's
    /// [`ACCEPT_BUDGET`]: accepted again on the next turn.
    accept_more: Vec<usize>,
}

impl Listener {
    /// Registers the listening sockets and a waker for shutdown.
    pub fn new(
        mut listeners: Vec<TcpListener>,
        state: State,
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
        state.set_writer_waker(waker);
        let keyring = state.keyring().cloned();
        Ok(Listener {
            poll,
            listeners,
            connections: Vec::new(),
            free: Vec::new(),
            open: 0,
            per_address: HashMap::new(),
            ready: Vec::new(),
            state,
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
            soonest: None,
            accept_more: Vec::new(),
        })
    }

    /// Runs until shutdown.
    pub fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        let mut next_tick = Instant::now() + TICK;
        // Recompute the next deadline at least this often when something
        // structural happened (a close, an accept, a wake from the sender).
        let mut recheck = false;
        self.state.set_listener_running(true);
        while !self.shutdown.is_triggered() {
            self.write_out();
            // Connections left with data are served again without waiting.
            let timeout = if self.ready.is_empty() && self.accept_more.is_empty() {
                next_tick.saturating_duration_since(Instant::now())
            } else {
                Duration::ZERO
            };
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                self.state.fail(format!("listener poll failed: {e}"));
                self.shutdown.trigger();
                break;
            }
            let open_before = self.open;
            let generation = self.state.read(PeerTable::generation);
            for listener_index in std::mem::take(&mut self.accept_more) {
                self.accept(listener_index);
            }
            for event in events.iter() {
                match event.token() {
                    WAKE => recheck = true,
                    Token(index) if index < FIRST_CONNECTION => self.accept(index - 1),
                    Token(index) => self.enqueue(index - FIRST_CONNECTION),
                }
            }
            self.serve_ready();
            if self.open != open_before || self.state.read(PeerTable::generation) != generation {
                recheck = true;
            }
            let now = Instant::now();
            if now >= next_tick || recheck {
                // On a recheck the timers run early only if what changed (a
                // peer gone from the table) made something due now: a burst
                // of closes at 1,000 peers would otherwise pass over the
                // table and the connections twice per loop turn.
                let timer = now >= next_tick;
                let mut deadline = if timer { None } else { self.deadline(now) };
                if timer || deadline.is_some_and(|at| at <= now) {
                    self.tick(now);
                    deadline = self.deadline(now);
                }
                next_tick = self.wake_at(now, deadline);
                recheck = false;
            } else if let Some(soonest) = self.soonest {
                next_tick = next_tick.min(soonest.max(now + TICK));
            }
            if self.accept_stalled {
                // Descriptors freed by another thread (the HTTP server, the
                // sender) move nothing the listener sees: retry on time.
                next_tick = next_tick.min(now + ACCEPT_RETRY);
            }
            self.soonest = None;
        }
        self.state.set_listener_running(false);
        self.write_out();
    }

    /// Writes pending event lines to stdout, outside the shared lock.
    fn write_out(&self) {
        crate::node::write_bytes(&self.state.take_output(), &self.stdout);
    }

    /// Accepts up to [`ACCEPT_BUDGET`] waiting connections on one listening
    /// socket (a connect storm does not hold the loop either).
    fn accept(&mut self, listener_index: usize) {
        for _ in 0..ACCEPT_BUDGET {
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
                    self.state.reject(
                        "accept_failed",
                        unspecified,
                        &format_args!("cannot accept a connection: {}", describe_io_error(&e)),
                        Instant::now(),
                    );
                    return;
                }
            };
            let now = Instant::now();
            let ip = source.ip().to_canonical();
            let from_ip = self.per_address.get(&ip).copied().unwrap_or(0);
            if from_ip >= MAX_CONNECTIONS_PER_ADDRESS {
                self.evict_from_address(ip, now);
            } else if self.open >= self.max_connections && !self.make_room(from_ip, now) {
                self.state.reject(
                    "too_many_connections",
                    ip,
                    &format_args!(
                        "{} connections open, all identified and no address holds more than this one",
                        self.max_connections
                    ),
                    now,
                );
                continue;
            }
            probe::kept_open(&stream);
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
                    source: ip,
                    local,
                    dialect: Dialect::Unknown,
                    peer: None,
                    interval: self.default_interval,
                    left: false,
                    greeted: false,
                    accepted_at: now,
                    last_accepted: now,
                    probed_at: None,
                    invalid: 0,
                    invalid_since: now,
                },
                queued: false,
                backlog: false,
            });
            self.open += 1;
            *self.per_address.entry(ip).or_insert(0) += 1;
            let open = self.open as u64;
            self.state.count(|stats| stats.open_connections = open);
        }
        // The budget ran out before WouldBlock: the edge-triggered poll will
        // not report the rest again.
        if !self.accept_more.contains(&listener_index) {
            self.accept_more.push(listener_index);
        }
    }

    /// The connection of `group` to close first (see `ConnInfo::eviction_key`).
    fn victim(&self, group: impl Fn(&ConnInfo) -> bool) -> Option<usize> {
        self.connections
            .iter()
            .enumerate()
            .filter_map(|(index, slot)| {
                let info = &slot.as_ref()?.info;
                group(info).then_some((info.eviction_key(), index))
            })
            .min()
            .map(|(_, index)| index)
    }

    /// `ip` holds `MAX_CONNECTIONS_PER_ADDRESS` connections: its own least
    /// useful one makes room, so a reconnecting peer always gets in and an
    /// address can crowd out nobody but itself.
    fn evict_from_address(&mut self, ip: IpAddr, now: Instant) {
        let Some(index) = self.victim(|info| info.source == ip) else {
            return;
        };
        self.state.reject(
            "address_limit",
            ip,
            &format_args!(
                "{MAX_CONNECTIONS_PER_ADDRESS} connections from this address: closed its longest-idle one"
            ),
            now,
        );
        self.close(index, Closed::ByUs, now);
    }

    /// At the connection cap, makes room for a newcomer whose address holds
    /// `from_newcomer` connections: the oldest stranger goes first, so
    /// strangers never starve identified peers; failing that, the
    /// longest-idle connection of the address holding the most, if that is
    /// at least two more than the newcomer's (squatters from few addresses
    /// cannot keep the cap). Returns false if nothing may be evicted.
    fn make_room(&mut self, from_newcomer: usize, now: Instant) -> bool {
        let (index, reason) = match self.victim(|info| info.dialect == Dialect::Unknown) {
            Some(index) => (
                index,
                "connection cap reached: closed a connection that never sent an accepted message",
            ),
            None => {
                let crowded = self
                    .per_address
                    .iter()
                    .map(|(ip, count)| (*count, *ip))
                    .max()
                    .filter(|(count, _)| *count > from_newcomer + 1);
                let Some((_, ip)) = crowded else {
                    return false;
                };
                let Some(index) = self.victim(|info| info.source == ip) else {
                    return false;
                };
                (
                    index,
                    "connection cap reached: closed the longest-idle connection of the address holding the most",
                )
            }
        };
        let source = self
            .connections
            .get(index)
            .and_then(Option::as_ref)
            .map_or(IpAddr::from([0, 0, 0, 0]), |c| c.info.source);
        self.state.reject("evicted", source, &reason, now);
        self.close(index, Closed::ByUs, now);
        true
    }

    /// Puts a connection in the ready queue (once).
    fn enqueue(&mut self, index: usize) {
        if let Some(Some(connection)) = self.connections.get_mut(index)
            && !connection.queued
        {
            connection.queued = true;
            self.ready.push(index);
        }
    }

    /// Serves every queued connection once; those left with data queue again
    /// for the next turn, after the timers.
    fn serve_ready(&mut self) {
        let mut round = std::mem::take(&mut self.ready);
        for &index in &round {
            match self.connections.get_mut(index) {
                Some(Some(connection)) if connection.queued => connection.queued = false,
                // Closed meanwhile (or a reused slot queued later in the round).
                _ => continue,
            }
            self.read(index);
        }
        round.clear();
        round.append(&mut self.ready);
        self.ready = round;
    }

    /// One turn on one connection: the frames it has buffered, then reads,
    /// up to `FRAME_BUDGET` frames and `READ_BUDGET` bytes. Queues it again
    /// if it stopped on a budget.
    fn read(&mut self, index: usize) {
        let Some(Some(connection)) = self.connections.get_mut(index) else {
            return;
        };
        let now = Instant::now();
        let mut frames_left = FRAME_BUDGET;
        let mut bytes_left = READ_BUDGET;
        let mut closed = None;
        let mut again = false;
        // Buffered whole frames go first; the socket is read only when none
        // is left, so the buffer holds one unfinished frame plus one read.
        let mut buffered = connection.backlog;
        loop {
            if buffered {
                let (gate, membership) = (&mut self.gate, self.membership);
                let turn = self.state.change_from_listener(|change| {
                    take_frames(connection, gate, membership, change, &mut frames_left, now)
                });
                greet(connection);
                connection.backlog = matches!(turn, Turn::Budget);
                match turn {
                    Turn::Drained => {}
                    Turn::Budget => {
                        again = true;
                        break;
                    }
                    Turn::Close => {
                        closed = Some(Closed::ByUs);
                        break;
                    }
                }
            }
            if bytes_left == 0 {
                again = true;
                break;
            }
            let want = self.scratch.len().min(bytes_left);
            match connection.stream.read(&mut self.scratch[..want]) {
                Ok(0) => {
                    closed = Some(Closed::ByPeer(None));
                    break;
                }
                Ok(n) => {
                    bytes_left -= n;
                    connection.frames.fill(&self.scratch[..n]);
                    buffered = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    closed = Some(Closed::ByPeer(Some(e)));
                    break;
                }
            }
        }
        if connection.info.answered_since_probe() {
            connection.info.probed_at = None;
            probe::disarm(&connection.stream);
        }
        // What it sent may bring its deadlines closer (a shorter interval):
        // the loop sleeps no later than them.
        let info = &connection.info;
        let idle = info.deadline(self.offline_after, self.default_interval).0;
        let soonest = info.probe_deadline().map_or(idle, |probe| probe.min(idle));
        self.soonest = Some(self.soonest.map_or(soonest, |at| at.min(soonest)));
        if let Some(how) = closed {
            self.close(index, how, now);
        } else if again {
            self.enqueue(index);
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
        let source = connection.info.source;
        if let Some(count) = self.per_address.get_mut(&source) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.per_address.remove(&source);
            }
        }
        let open = self.open as u64;
        let (gate, membership) = (&mut self.gate, self.membership);
        self.state.change_from_listener(|change| {
            change.stats.open_connections = open;
            let info = &mut connection.info;
            if let Closed::ByPeer(error) = &how {
                // The Python original sends its status without a newline and closes.
                if let Some(rest) = connection.frames.take_rest() {
                    handle_frame(info, gate, membership, change, &rest, now);
                }
                if let Some(error) = error {
                    log::debug!(
                        "connection from {} failed: {}",
                        info.source,
                        describe_io_error(error)
                    );
                }
            }
            let probe_failed = info.probed_at.is_some()
                && matches!(&how, Closed::ByPeer(Some(e)) if e.kind() == io::ErrorKind::TimedOut);
            match (info.peer, info.dialect) {
                (Some(peer), Dialect::V1) if probe_failed && !info.left => {
                    let last_heard = info.last_accepted;
                    change
                        .table
                        .on_probe_unanswered(peer, last_heard, now, change.events);
                }
                (Some(peer), Dialect::V1) => {
                    let graceful = info.left || matches!(how, Closed::ByUs);
                    change.table.on_inbound_closed(peer, graceful, now);
                }
                _ => {}
            }
        });
    }

    /// The soonest deadline of the table and the connections (idle, probe),
    /// as they are: in the past when something is due now.
    fn deadline(&self, now: Instant) -> Option<Instant> {
        let table = self.state.read(|table| table.next_deadline(now));
        let connections = self
            .connections
            .iter()
            .flatten()
            .flat_map(|connection| {
                let info = &connection.info;
                let idle = info.deadline(self.offline_after, self.default_interval).0;
                [Some(idle), info.probe_deadline()]
            })
            .flatten()
            .min();
        [table, connections].into_iter().flatten().min()
    }

    /// When the loop must run the timers next for `deadline`: never sooner
    /// than [`TICK`] (a burst of deadlines is handled in one pass) and never
    /// later than [`MAX_TICK`] ([`ACCEPT_RETRY`] while accepting fails).
    fn wake_at(&self, now: Instant, deadline: Option<Instant>) -> Instant {
        let earliest = now + TICK;
        let latest = now
            + if self.accept_stalled {
                ACCEPT_RETRY
            } else {
                MAX_TICK
            };
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
        let gate = &mut self.gate;
        self.state.change_from_listener(|change| {
            change.table.tick(now, change.events);
            // Peers gone from the table (left, forgotten, evicted) take their
            // freshness with them.
            gate.retain(|peer| change.table.get(peer).is_some());
        });
        let expired: Vec<(usize, &'static str)> = self
            .connections
            .iter()
            .enumerate()
            .filter_map(|(index, slot)| {
                // Slowloris: silent or dribbling strangers get a fixed deadline.
                let (deadline, reason) = slot
                    .as_ref()?
                    .info
                    .deadline(self.offline_after, self.default_interval);
                (now > deadline).then_some((index, reason))
            })
            .collect();
        for connection in self.connections.iter_mut().flatten() {
            if connection.info.probe_deadline().is_some_and(|at| now >= at) {
                log::debug!("status from {} late: probing", connection.info.source);
                connection.info.probed_at = Some(now);
                probe::arm(&connection.stream);
            }
        }
        for (index, reason) in expired {
            if let Some(Some(connection)) = self.connections.get(index) {
                let source = connection.info.source;
                let detail = match reason {
                    "handshake_timeout" => "no accepted message in time, connection closed",
                    _ => "connection idle too long, closed",
                };
                self.state.reject(reason, source, &detail, now);
            }
            self.close(index, Closed::ByUs, now);
        }
    }
}

/// Applies the connection's buffered frames, at most `budget` of them.
fn take_frames(
    connection: &mut Connection,
    gate: &mut Gate,
    membership: Membership,
    change: &mut Change<'_>,
    budget: &mut usize,
    now: Instant,
) -> Turn {
    while *budget > 0 {
        let frame = match connection.frames.next_frame() {
            None => return Turn::Drained,
            Some(Err(e)) => {
                change
                    .stats
                    .reject(e.reason(), connection.info.source, &e, now);
                return Turn::Close;
            }
            Some(Ok(frame)) => frame,
        };
        *budget -= 1;
        if !handle_frame(&mut connection.info, gate, membership, change, frame, now) {
            return Turn::Close;
        }
    }
    Turn::Budget
}

/// Greets a v1 sender once, after its first accepted message: a Python
/// sender never gets bytes it would not read (its close would then reset
/// the connection). Plaintext even with a key: it carries nothing but "v1 here".
fn greet(connection: &mut Connection) {
    if connection.info.dialect == Dialect::V1 && !connection.info.greeted {
        connection.info.greeted = true;
        if let Err(e) = connection.stream.write(wire::HELLO) {
            log::debug!("cannot greet {}: {e}", connection.info.source);
        }
    }
}

/// What the listener needs to take part in membership.
#[derive(Debug, Clone, Copy)]
pub struct Membership {
    /// Learn members from statuses (and push back to senders we do not know);
    /// with a key, from authenticated (sealed) statuses only.
    pub learn: bool,
    /// This node's specific address and port, to skip itself in hearsay.
    pub source: Option<IpAddr>,
    pub port: u16,
}

/// Applies one frame. Returns false when the connection should be dropped: a
/// stream that has no accepted message and sends garbage is not a peer, and
/// an identified one may send only `MAX_INVALID_FRAMES` per window.
fn handle_frame(
    info: &mut ConnInfo,
    gate: &mut Gate,
    membership: Membership,
    change: &mut Change<'_>,
    frame: &[u8],
    now: Instant,
) -> bool {
    let admitted = match gate.admit(frame, info.source, info.local, now, crate::time::unix_ms()) {
        Ok(admitted) => admitted,
        Err(e) => {
            change.stats.reject(e.reason(), info.source, &e, now);
            if info.dialect == Dialect::Unknown {
                return false;
            }
            if info.count_invalid(now) {
                change.stats.reject(
                    "too_many_invalid",
                    info.source,
                    &format_args!(
                        "more than {MAX_INVALID_FRAMES} invalid frames within {} s, connection closed",
                        INVALID_FRAME_WINDOW.as_secs()
                    ),
                    now,
                );
                return false;
            }
            return true;
        }
    };
    let Admitted {
        message,
        authenticated,
        freshness,
    } = admitted;
    // With a key, only an authenticated sender may teach us members or be
    // pushed back to: plaintext let in by --allow-plaintext reports, no more.
    let may_teach = membership.learn && (authenticated || !gate.keyed());
    let mut learned: Vec<PeerId> = Vec::new();
    let Change {
        table,
        events,
        stats,
        ..
    } = change;
    let result = match message {
        Message::Legacy { cpu, memory } => {
            let peer = table.legacy_id(info.source);
            let result = table.on_status(peer, legacy_report(cpu, memory), now, events);
            if result.is_ok() {
                info.dialect = Dialect::Python;
            }
            result
        }
        Message::Status {
            mut header,
            cpu,
            memory,
            health,
        } => {
            let peer = PeerId::new(info.source, header.port);
            let members = std::mem::take(&mut header.members);
            let interval = Duration::from_millis(header.interval_ms);
            let report = StatusReport {
                name: Some(header.node),
                boot: Some(header.boot),
                seq: Some(header.seq),
                interval,
                cpu,
                memory,
                health,
            };
            let result = table.on_status(peer, report, now, events);
            if result.is_ok() {
                // A status the table took leaves the peer in it.
                accepted(gate, table, peer, authenticated, freshness);
                // Identified only now that the table took it.
                info.dialect = Dialect::V1;
                info.interval = table.timing_interval(interval);
            }
            if result.is_ok() && info.peer != Some(peer) {
                if let Some(previous) = info.peer {
                    table.on_inbound_closed(previous, true, now);
                }
                table.on_inbound_open(peer);
                info.peer = Some(peer);
            }
            if result.is_ok() && may_teach {
                // Push back to a sender we do not send to yet, and learn the
                // members it names (bounded per message by the decoder, per
                // source and window by the table).
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
            let result = table.on_leave(peer, header.boot, now, events);
            // A leave may drop the member: the gate tracks no one the
            // table dropped.
            if result.is_ok() && table.get(&peer).is_some() {
                accepted(gate, table, peer, authenticated, freshness);
            }
            if result.is_ok() {
                info.dialect = Dialect::V1;
                info.left = true;
            }
            result
        }
    };
    match result {
        Ok(()) => {
            stats.received += 1;
            info.last_accepted = now;
        }
        Err(refusal) => stats.reject(refusal.reason(), info.source, &refusal, now),
    }
    if !learned.is_empty() {
        change.change_links(learned.into_iter().map(|id| {
            LinkChange::Learn(PeerAddr {
                host: Host::Ip(id.0.ip()),
                port: id.0.port(),
            })
        }));
    }
    true
}

/// The table accepted `peer`'s message and holds the peer: keep the
/// freshness it proved (call it only then: the gate tracks no one the table
/// refused or dropped) and remember that it authenticated.
fn accepted(
    gate: &mut Gate,
    table: &mut PeerTable,
    peer: PeerId,
    authenticated: bool,
    freshness: Option<Freshness>,
) {
    if let Some(freshness) = freshness {
        gate.commit(freshness);
    }
    if authenticated {
        table.on_authenticated(peer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    fn info(dialect: Dialect, interval: Duration, t0: Instant) -> ConnInfo {
        ConnInfo {
            source: IpAddr::from([127, 0, 0, 1]),
            local: None,
            dialect,
            peer: None,
            interval,
            left: false,
            greeted: false,
            accepted_at: t0,
            last_accepted: t0,
            probed_at: None,
            invalid: 0,
            invalid_since: t0,
        }
    }

    #[test]
    fn invalid_frames_are_bounded_per_window() {
        let t0 = Instant::now();
        let mut conn = info(Dialect::V1, SEC, t0);
        for _ in 0..MAX_INVALID_FRAMES {
            assert!(!conn.count_invalid(t0));
        }
        assert!(conn.count_invalid(t0), "one more closes it");
        // A later window starts afresh.
        let mut conn = info(Dialect::V1, SEC, t0);
        for _ in 0..MAX_INVALID_FRAMES {
            conn.count_invalid(t0);
        }
        assert!(!conn.count_invalid(t0 + INVALID_FRAME_WINDOW + SEC));
    }

    #[test]
    fn idle_deadlines_are_capped_whatever_the_peer_claims() {
        let t0 = Instant::now();
        let offline_after = 3 * SEC;
        let stranger = info(Dialect::Unknown, SEC, t0);
        assert_eq!(
            stranger.deadline(offline_after, SEC),
            (t0 + UNIDENTIFIED_DEADLINE, "handshake_timeout")
        );
        let peer = info(Dialect::V1, SEC, t0);
        assert_eq!(peer.deadline(offline_after, SEC).0, t0 + 6 * SEC);
        let squatter = info(Dialect::V1, 3600 * SEC, t0);
        assert_eq!(
            squatter.deadline(offline_after, SEC).0,
            t0 + MAX_IDLE_DEADLINE
        );
        // Our own long interval lifts the cap.
        let slow = info(Dialect::V1, 300 * SEC, t0);
        assert_eq!(slow.deadline(offline_after, 300 * SEC).0, t0 + 600 * SEC);
    }

    #[test]
    fn only_a_late_v1_connection_is_probed_and_once_until_it_speaks() {
        let t0 = Instant::now();
        let mut peer = info(Dialect::V1, 5 * SEC, t0);
        assert_eq!(peer.probe_deadline(), Some(t0 + probe_after(5 * SEC)));
        // A status on time moves it.
        peer.last_accepted = t0 + 5 * SEC;
        assert_eq!(
            peer.probe_deadline(),
            Some(t0 + 5 * SEC + probe_after(5 * SEC))
        );
        // Armed: no second probe; a message since disarms it.
        peer.probed_at = Some(t0 + 11 * SEC);
        assert_eq!(peer.probe_deadline(), None);
        assert!(!peer.answered_since_probe());
        peer.last_accepted = t0 + 12 * SEC;
        assert!(peer.answered_since_probe());
        // Strangers, the Python original and a peer that left: never.
        for dialect in [Dialect::Unknown, Dialect::Python] {
            assert_eq!(info(dialect, SEC, t0).probe_deadline(), None);
        }
        let mut leaving = info(Dialect::V1, SEC, t0);
        leaving.left = true;
        assert_eq!(leaving.probe_deadline(), None);
    }

    #[test]
    fn strangers_are_evicted_before_the_longest_idle_peer() {
        let t0 = Instant::now();
        let old_peer = info(Dialect::V1, SEC, t0);
        let mut busy_peer = info(Dialect::V1, SEC, t0);
        busy_peer.last_accepted = t0 + 5 * SEC;
        let stranger = info(Dialect::Unknown, SEC, t0 + 9 * SEC);
        let mut keys = [
            (busy_peer.eviction_key(), "busy"),
            (old_peer.eviction_key(), "old"),
            (stranger.eviction_key(), "stranger"),
        ];
        keys.sort();
        assert_eq!(keys.map(|(_, name)| name), ["stranger", "old", "busy"]);
    }
}
