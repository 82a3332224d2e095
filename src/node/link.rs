//! Our side of each peer, as a state machine: connect, greet, send, fail,
//! back off. A [`Link`] holds no socket and reads no clock: the sender (its
//! shell, in `sender.rs`) hands it the time and what the socket did
//! (connected, wrote n bytes, read n bytes, closed, failed) and does what it
//! answers (dial now, write these bytes, close, tell the table). [`Links`]
//! is the set of them, configured and learned. So every rule of our
//! connections is here, tested on an injected clock without sockets or sleeps.
//!
//! The rules. Connects have a deadline ([`connect_timeout`]); a failed link
//! retries after a backoff doubling from [`BACKOFF_MIN`] up to the interval,
//! and a delivered frame resets it. At most one status waits per link: a
//! newer one replaces an unsent older one (latest wins), and a round that
//! comes late is skipped, never caught up in a burst ([`next_round`]). So a
//! dead, slow or black-holed peer costs the others nothing.
//!
//! Until a peer proves it speaks v1 (its listener greets every connection
//! with the hello, or the table heard v1 messages from it) its [`Dialect`] is
//! `Unknown` and it gets what the Python original expects: one status per
//! connection, written at once after connect, no probes, no leave. A peer
//! that closes after that status without greeting is `Python` and keeps
//! getting one status per connection, then our close. So a Python listener
//! never sees an idle connection or two frames in one `recv(1024)`. A `V1`
//! peer keeps one connection open with several statuses on it; when it closes
//! on us we probe it again soon (a refused connect then reports it at once),
//! and it gets a leave when we stop or stop sending to it.
//!
//! A `V1` peer gets what we know of the members (the [`Digest`]) on its first
//! status of a connection, whenever the digest changes, and otherwise once
//! every [`MEMBERS_REFRESH`]; the statuses between are bare. So a settled
//! cluster's statuses stay small, while a join, a restart or a member that a
//! peer missed or forgot still reaches it at once or within the refresh.
//!
//! A listener writes us the hello and nothing else, so a link takes at most
//! [`MAX_LISTENER_REPLY`] bytes per connection: one that keeps writing (a
//! fake peer streaming at us) is closed, counted and dialed again after the
//! backoff, so it cannot keep the sender busy at the other peers' expense.
//!
//! With a cluster key, a peer that greeted us or authenticated to us (a sealed
//! frame the listener admitted) is `sealed_only`: never sent plaintext and
//! never taken for the Python original again, whatever closes on us later.
//! Only a peer that has done neither may be, and only with --allow-plaintext.

use std::net::{IpAddr, SocketAddr};
use std::ops::{Index, IndexMut};
use std::time::{Duration, Instant};

use crate::config::PeerAddr;
use crate::limits::later;
use crate::limits::{
    BACKOFF_MIN, CONNECT_TIMEOUT, MAX_LISTENER_REPLY, MAX_PEERS, MEMBERS_REFRESH,
    REJECT_LOG_WINDOW, TCP_USER_TIMEOUT,
};
use crate::peers::{LinkFailure, PeerId};
use crate::proto::Dialect;

/// A round's status with what we know of the members, encoded once for every
/// link, and `key`, which changes when the entries do (not when only their
/// `heard_ms` ages): a link sends it again only when the key changes or the
/// refresh is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Digest<'a> {
    pub(crate) frame: &'a [u8],
    pub(crate) key: u64,
}

/// What the peer table knows of a link's peer: read by the shell under the
/// table's lock and handed in, so the link never reaches into the table.
/// `None` where a link takes `Option<PeerFacts>`: the peer is not resolved yet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct PeerFacts {
    /// It has sent us a v1 message.
    pub speaks_v1: bool,
    /// Its last status was the Python original's bare one.
    pub speaks_python: bool,
    /// A sealed frame from it was admitted: it holds the key.
    pub authenticated: bool,
    /// How many times the table declared it offline.
    pub offline_count: u64,
}

/// What is due on a link now ([`Link::due`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Due {
    Nothing,
    /// Resolve the peer and dial it ([`Link::begin_connect`], then
    /// [`Link::dialing`] and [`Link::connecting`], or [`Link::fail`]).
    Connect,
    /// The connect outlived its deadline: fail it (a soft
    /// [`LinkFailure::ConnectTimeout`]) with this detail.
    ConnectTimedOut(String),
    /// Connected: write what can be written ([`Link::next_frame`]).
    Write,
}

/// The link let go of its connection without a failure: the shell closes
/// the socket and, for a resolved peer, tells the table (`on_disconnected`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub(crate) struct Dropped {
    pub peer: Option<PeerId>,
}

/// A failure the table must hear (`on_link_failed`), with when the failed
/// attempt began: a hard failure older than the peer's last sign of life is
/// stale news, and the table ignores it as such.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub(crate) struct Failed {
    pub peer: PeerId,
    pub attempt_began: Instant,
}

/// What writing `n` more bytes of the frame in progress came to ([`Link::wrote`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub(crate) enum Wrote {
    /// Some of it is still to go.
    Partial,
    /// The frame is out: the table hears `on_delivered` for `delivered_to`;
    /// `dropped` when the link closes after it (the Python original's one
    /// status per connection).
    Frame {
        delivered_to: Option<PeerId>,
        dropped: Option<Dropped>,
    },
}

/// Where a link's connection stands. The shell holds a socket exactly while
/// it is not `Idle`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Idle,
    Connecting { deadline: Instant },
    Connected,
}

/// Our side of one peer.
#[derive(Debug)]
pub(crate) struct Link {
    addr: PeerAddr,
    /// The send interval: the backoff's cap and the connect deadline's measure.
    interval: Duration,
    /// The resolved identity (after the first successful resolution).
    id: Option<PeerId>,
    /// Added by membership, not configuration.
    learned: bool,
    /// The node's own address: never sent to.
    is_self: bool,
    /// Removed at run time (config reload, a forgotten member): never used
    /// again; its slot (and token) is reused by the next peer added.
    retired: bool,
    phase: Phase,
    /// The address the current connection dialed: the `to` of sealed frames.
    dialed: Option<SocketAddr>,
    /// Our IP on the current connection: with our port, the `from` of sealed frames.
    local: Option<IpAddr>,
    /// What the peer speaks, as far as this link has seen (the table may know
    /// more: see [`PeerFacts`]).
    dialect: Dialect,
    /// With a key: the peer greeted us (a v1 listener) or authenticated to us
    /// (it holds the key), so it is never sent plaintext and never taken for
    /// the Python original again, whatever closes on us later.
    sealed_only: bool,
    /// The latest status not yet started on the wire (latest wins).
    pending: Option<Vec<u8>>,
    /// `pending` carries the members: a newer status replacing it must too.
    pending_members: bool,
    /// The digest's key and when it was last queued on this connection
    /// (`None` on a new connection: its first v1 status carries the members).
    members_sent: Option<(u64, Instant)>,
    /// A frame being written, and how much of it is out.
    writing: Option<(Vec<u8>, usize)>,
    /// Frames completely written on the current connection.
    frames_written: u32,
    /// Bytes the listener wrote on the current connection (the hello, at most
    /// [`MAX_LISTENER_REPLY`]).
    received: usize,
    /// When the current attempt began: the connect, then the moment the
    /// connection was established and each frame handed to the kernel on
    /// it. A failure tells nothing about the peer before this moment (the
    /// table ignores it as a hard signal if the peer spoke to us since).
    attempt_began: Instant,
    backoff: Duration,
    next_attempt: Instant,
    /// Reconnect soon even without a pending status (a v1 peer closed on us).
    probe: bool,
    /// The table's offline count when this connection was made: when it grows,
    /// the peer was declared offline and gets a fresh connection.
    offline_count: u64,
    /// The leave at shutdown is written, or will never be.
    leave_done: bool,
    /// Last "does not read" warning, to log it once a minute at most.
    slow_warned: Option<Instant>,
}

impl Link {
    fn new(addr: PeerAddr, learned: bool, interval: Duration, now: Instant) -> Link {
        Link {
            addr,
            interval,
            id: None,
            learned,
            is_self: false,
            retired: false,
            phase: Phase::Idle,
            dialed: None,
            local: None,
            dialect: Dialect::Unknown,
            sealed_only: false,
            pending: None,
            pending_members: false,
            members_sent: None,
            writing: None,
            frames_written: 0,
            received: 0,
            attempt_began: now,
            backoff: Duration::ZERO,
            next_attempt: now,
            probe: false,
            offline_count: 0,
            leave_done: false,
            slow_warned: None,
        }
    }

    pub(crate) fn addr(&self) -> &PeerAddr {
        &self.addr
    }

    /// The peer's identity, once resolved.
    pub(crate) fn peer(&self) -> Option<PeerId> {
        self.id
    }

    /// The address the current connection dialed (the `to` of sealed frames).
    pub(crate) fn dialed(&self) -> Option<SocketAddr> {
        self.dialed
    }

    /// Our IP on the current connection (the `from` of sealed frames).
    pub(crate) fn local(&self) -> Option<IpAddr> {
        self.local
    }

    /// Sent to at all: neither this node itself nor removed.
    pub(crate) fn is_active(&self) -> bool {
        !self.is_self && !self.retired
    }

    /// A connect is under way and not yet established.
    pub(crate) fn is_connecting(&self) -> bool {
        matches!(self.phase, Phase::Connecting { .. })
    }

    pub(crate) fn is_connected(&self) -> bool {
        self.phase == Phase::Connected
    }

    /// Drops the connection, keeping the pending status.
    fn reset(&mut self) {
        self.phase = Phase::Idle;
        self.members_sent = None;
        self.writing = None;
        self.frames_written = 0;
        self.received = 0;
    }

    /// One more failed (or refused-to-work) connection: wait longer.
    fn back_off(&mut self, now: Instant) {
        self.backoff = next_backoff(self.backoff, self.interval);
        self.next_attempt = later(now, self.backoff);
    }

    /// The peer greeted us or authenticated to us: it speaks v1. With a key
    /// (`keyed`) that holds for good: no close without hello (even an
    /// injected one) and no bare status from its IP downgrades it again.
    fn prove_v1(&mut self, keyed: bool) {
        self.sealed_only |= keyed;
        self.dialect = Dialect::V1;
    }

    /// Whether a "does not read" warning may be logged now (once a minute).
    fn slow_warning_due(&self, now: Instant) -> bool {
        self.slow_warned
            .is_none_or(|at| now.duration_since(at) >= REJECT_LOG_WINDOW)
    }

    /// Starts connects that are due, expires connects that are late, and
    /// writes what can be written.
    pub(crate) fn due(&self, now: Instant) -> Due {
        if !self.is_active() {
            return Due::Nothing;
        }
        match self.phase {
            Phase::Idle => {
                let wanted = self.pending.is_some() || self.probe;
                if wanted && now >= self.next_attempt {
                    Due::Connect
                } else {
                    Due::Nothing
                }
            }
            Phase::Connecting { deadline } if now >= deadline => Due::ConnectTimedOut(format!(
                "connect timed out after {:.1} s",
                connect_timeout(self.interval).as_secs_f64()
            )),
            Phase::Connecting { .. } => Due::Nothing,
            Phase::Connected => Due::Write,
        }
    }

    /// When the link needs the sender next on its own: a backoff ending (only
    /// with something to send or a probe), a connect deadline.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        match self.phase {
            Phase::Idle if (self.pending.is_some() || self.probe) && self.is_active() => {
                Some(self.next_attempt)
            }
            Phase::Connecting { deadline } => Some(deadline),
            _ => None,
        }
    }

    /// A round's fresh status: `with_members` (what we know of the members)
    /// for a peer that speaks v1 when [`Link::members_due`], `bare` otherwise
    /// and for any other peer (maybe the Python original). It replaces an
    /// unsent older one. `Some` when the peer was declared offline since this
    /// connection was made: the link dropped it to dial a fresh one at once.
    pub(crate) fn queue_status(
        &mut self,
        bare: &[u8],
        with_members: Option<Digest>,
        facts: Option<PeerFacts>,
        now: Instant,
    ) -> Option<Dropped> {
        if !self.is_active() {
            return None;
        }
        let stuck = self.writing.is_some() && self.phase == Phase::Connected;
        if stuck && self.slow_warning_due(now) {
            log::warn!(
                "{} does not read what we send: one status waits, older ones are dropped",
                self.addr
            );
            self.slow_warned = Some(now);
        } else if self.pending.is_some() {
            log::debug!("{}: previous status not sent yet, replaced", self.addr);
        }
        let known = facts.unwrap_or_default();
        if known.authenticated && !self.sealed_only {
            self.prove_v1(true);
        }
        let speaks_v1 = self.dialect == Dialect::V1 || known.speaks_v1;
        let members = with_members.filter(|digest| speaks_v1 && self.members_due(digest.key, now));
        self.pending_members = members.is_some();
        self.pending = Some(match members {
            Some(digest) => {
                self.members_sent = Some((digest.key, now));
                digest.frame.to_vec()
            }
            None => bare.to_vec(),
        });
        // A peer declared offline since we connected gets a fresh connection.
        let (Some(id), Some(facts), Phase::Connected) = (self.id, facts, self.phase) else {
            return None;
        };
        if facts.offline_count == self.offline_count {
            return None;
        }
        log::debug!("{} was declared offline: reconnecting", self.addr);
        self.reset();
        self.next_attempt = now;
        Some(Dropped { peer: Some(id) })
    }

    /// A connect attempt begins (before resolution, which may fail it).
    /// Whether a status to this v1 peer should carry the digest `key`: the
    /// first on this connection, a changed digest, the refresh due, or an
    /// unsent status with the members that the new one replaces.
    fn members_due(&self, key: u64, now: Instant) -> bool {
        self.pending_members
            || self
                .members_sent
                .is_none_or(|(sent, at)| sent != key || now.duration_since(at) >= MEMBERS_REFRESH)
    }

    pub(crate) fn begin_connect(&mut self, now: Instant) {
        self.attempt_began = now;
    }

    /// The peer's address is this node's own: it is never sent to.
    pub(crate) fn resolved_to_self(&mut self) {
        self.is_self = true;
        self.pending = None;
        log::info!("skipping {}: it is this node's own address", self.addr);
    }

    /// The peer resolved to `id` (host names resolve again on every connect,
    /// so a moved host is followed). True when the table should track the new
    /// identity as a configured peer (a learned one is the table's already).
    pub(crate) fn resolved(&mut self, id: PeerId) -> bool {
        if self.id == Some(id) {
            return false;
        }
        if let Some(old) = self.id {
            log::info!("{} now resolves to {id} (was {old})", self.addr);
        }
        self.id = Some(id);
        !self.learned
    }

    /// The connect goes to `to` (sealed frames on it are addressed to it).
    pub(crate) fn dialing(&mut self, to: SocketAddr) {
        self.dialed = Some(to);
    }

    /// The non-blocking connect is started: it has until the connect
    /// deadline.
    pub(crate) fn connecting(&mut self, now: Instant) {
        self.probe = false;
        self.phase = Phase::Connecting {
            deadline: later(now, connect_timeout(self.interval)),
        };
    }

    /// The connect completed, from our `local` IP. `facts` as the table has
    /// them once it heard of the connection (a send-only peer may be back
    /// online, with a new offline count).
    pub(crate) fn connected(
        &mut self,
        local: Option<IpAddr>,
        facts: Option<PeerFacts>,
        now: Instant,
    ) {
        self.local = local;
        self.phase = Phase::Connected;
        self.frames_written = 0;
        self.attempt_began = now;
        let Some(facts) = facts else {
            return;
        };
        if facts.authenticated {
            self.prove_v1(true);
        }
        if facts.speaks_v1 {
            // A peer taken for the Python original stays one until it greets
            // us: the v1 messages may come from a listener that does not take
            // several statuses on our connection yet (whatever it is, it gets
            // the members: see `queue_status`).
            if self.dialect == Dialect::Unknown {
                self.dialect = Dialect::V1;
            }
        } else if facts.speaks_python && !self.sealed_only {
            self.dialect = Dialect::Python;
        }
        self.offline_count = facts.offline_count;
    }

    /// A connect or a connection failed: back off. `Some` for the table,
    /// which the shell then tells [`Link::warn_if_unread`] whether the peer
    /// is still online.
    pub(crate) fn fail(&mut self, detail: &str, now: Instant) -> Option<Failed> {
        let was_up = self.phase == Phase::Connected;
        self.reset();
        let first_failure = self.backoff.is_zero();
        self.back_off(now);
        self.probe = false;
        if was_up || first_failure {
            // A working link breaking is news; its retries are not.
            log::info!("connection to {} failed: {detail}", self.addr);
        } else {
            log::debug!("{}: {detail}; retry in {:?}", self.addr, self.backoff);
        }
        self.id.map(|peer| Failed {
            peer,
            attempt_began: self.attempt_began,
        })
    }

    /// After the table heard a failure: our data went unacknowledged for the
    /// whole user timeout, yet the peer is `still_online` (it keeps sending
    /// to us): it does not read. Warned once a minute at most.
    pub(crate) fn warn_if_unread(
        &mut self,
        failure: LinkFailure,
        still_online: bool,
        now: Instant,
    ) {
        if failure == LinkFailure::TimedOut && still_online && self.slow_warning_due(now) {
            log::warn!(
                "{} does not read what we send (our data went unacknowledged for {} s while it keeps sending to us); reconnecting",
                self.addr,
                TCP_USER_TIMEOUT.as_secs()
            );
            self.slow_warned = Some(now);
        }
    }

    /// How many bytes the next read on the connection may take (see [`reply_room`]).
    pub(crate) fn read_room(&self) -> usize {
        reply_room(self.received)
    }

    /// The listener wrote us `n` bytes. Only a v1 listener writes on a
    /// connection it accepted: it greeted us (for good with a key: `keyed`).
    /// `Some` when it wrote more than a hello may take: the link closed and
    /// backs off (a delivered status resets it, so at most one connection
    /// per round); the shell counts it (`peer_talks_back`). Not a verdict
    /// on the peer: whatever it is, it is up.
    pub(crate) fn received(&mut self, n: usize, keyed: bool, now: Instant) -> Option<Dropped> {
        self.received += n;
        if self.received > MAX_LISTENER_REPLY {
            self.reset();
            self.back_off(now);
            self.probe = false;
            return Some(Dropped { peer: self.id });
        }
        if self.dialect != Dialect::V1 || (keyed && !self.sealed_only) {
            log::debug!("{} greeted us: it speaks v1", self.addr);
            self.prove_v1(keyed);
        }
        None
    }

    /// The peer closed our connection without an error. An unknown peer
    /// that took a status and closed without greeting is the Python
    /// original; a v1 peer closing on us is restarting or dying, so it is
    /// probed again soon (a refused connect then reports it at once); a close
    /// before anything was taken (a full or dying listener) backs off as
    /// after a failure, never spins.
    pub(crate) fn peer_closed(&mut self, facts: Option<PeerFacts>, now: Instant) -> Dropped {
        let facts = facts.unwrap_or_default();
        if facts.authenticated {
            self.prove_v1(true);
        }
        let delivered = self.frames_written >= 1;
        if self.dialect == Dialect::Unknown && !self.sealed_only && !facts.speaks_v1 && delivered {
            self.dialect = Dialect::Python;
            log::info!(
                "{} closes the connection after each status: sending to it as the Python original does",
                self.addr
            );
        }
        let python = self.dialect == Dialect::Python;
        let v1 = self.dialect == Dialect::V1 || facts.speaks_v1;
        self.reset();
        if !delivered {
            self.back_off(now);
        } else if v1 && !python {
            self.probe = true;
            self.next_attempt = later(now, BACKOFF_MIN);
        }
        Dropped { peer: self.id }
    }

    /// A frame is being written.
    pub(crate) fn is_writing(&self) -> bool {
        self.writing.is_some()
    }

    /// The next frame to start on the wire, if one may go now: the pending
    /// one, unless the peer is not known to speak v1 and already got one on
    /// this connection (one status per connection).
    pub(crate) fn next_frame(&mut self) -> Option<Vec<u8>> {
        if self.writing.is_some() || (self.dialect != Dialect::V1 && self.frames_written >= 1) {
            return None;
        }
        self.pending_members = false;
        self.pending.take()
    }

    /// Whether a frame may go to this peer in plaintext despite a key: only
    /// to the Python original, only with --allow-plaintext, and never to a
    /// peer that greeted us or authenticated to us.
    pub(crate) fn takes_plaintext(&self, allow_plaintext: bool) -> bool {
        self.dialect == Dialect::Python && allow_plaintext && !self.sealed_only
    }

    /// The bytes of [`Link::next_frame`] as they go on the wire (sealed or not).
    pub(crate) fn start_writing(&mut self, bytes: Vec<u8>) {
        self.writing = Some((bytes, 0));
    }

    /// What is left of the frame in progress.
    pub(crate) fn unwritten(&self) -> Option<&[u8]> {
        let (frame, offset) = self.writing.as_ref()?;
        frame.get(*offset..)
    }

    /// The kernel took `n` more bytes of the frame in progress. A complete
    /// frame resets the backoff and begins a new attempt (a later failure
    /// says nothing of the peer before this); to the Python original it is
    /// the connection's last.
    pub(crate) fn wrote(&mut self, n: usize, now: Instant) -> Wrote {
        let Some((frame, offset)) = &mut self.writing else {
            return Wrote::Partial;
        };
        *offset += n;
        if *offset < frame.len() {
            return Wrote::Partial;
        }
        self.writing = None;
        self.frames_written += 1;
        self.backoff = Duration::ZERO;
        self.attempt_began = now;
        let dropped = (self.dialect == Dialect::Python).then(|| {
            // One status per connection, then close, like the original.
            self.reset();
            Dropped { peer: self.id }
        });
        Wrote::Frame {
            delivered_to: self.id,
            dropped,
        }
    }

    /// The socket takes no more for now.
    pub(crate) fn write_blocked(&self) {
        if self.pending.is_some() {
            log::debug!("{} reads slowly: one status waits", self.addr);
        }
    }

    /// Whether the peer gets a leave: a v1 peer on an open connection (never
    /// the Python original, which expects nothing but statuses).
    pub(crate) fn takes_leave(&self, facts: Option<PeerFacts>) -> bool {
        let speaks_v1 = facts.is_some_and(|facts| facts.speaks_v1);
        self.phase == Phase::Connected
            && self.dialect != Dialect::Python
            && (self.dialect == Dialect::V1 || speaks_v1)
    }

    /// A leave to send now, in place of any pending status.
    pub(crate) fn queue_leave(&mut self, leave: Vec<u8>) {
        self.pending = Some(leave);
        self.pending_members = false;
    }

    /// Nothing waits and nothing is half written.
    pub(crate) fn all_sent(&self) -> bool {
        self.pending.is_none() && self.writing.is_none()
    }

    /// Shutdown: `Some(leave)` for a peer that [takes one](Link::takes_leave),
    /// `None` drops the pending status (nothing more goes to the others).
    pub(crate) fn offer_leave(&mut self, leave: Option<Vec<u8>>) {
        match leave {
            Some(leave) => {
                self.pending = Some(leave);
                self.pending_members = false;
            }
            None => {
                self.pending = None;
                self.leave_done = true;
            }
        }
    }

    /// Shutdown: the leave is still to be written.
    pub(crate) fn awaits_leave(&self) -> bool {
        !self.leave_done
    }

    /// Shutdown, after a write: true once the leave is out or the connection
    /// is gone (it never will be), counted once.
    pub(crate) fn settle_leave(&mut self) -> bool {
        if self.leave_done || !(self.all_sent() || self.phase == Phase::Idle) {
            return false;
        }
        self.leave_done = true;
        true
    }

    /// Drops the connection (shutdown).
    pub(crate) fn close(&mut self) {
        self.reset();
    }

    /// Removed at run time (after its leave): closed and never used again.
    /// Returns the peer the table should stop counting as configured.
    pub(crate) fn retire(&mut self) -> Option<PeerId> {
        self.reset();
        self.retired = true;
        self.pending = None;
        self.writing = None;
        self.id
    }
}

/// Every link the sender has, by slot: a slot's index is its socket's token.
/// Configured links come from the config; learned ones from membership
/// (capped at [`MAX_PEERS`]); a removed link is retired and its slot reused.
#[derive(Debug)]
pub(crate) struct Links {
    links: Vec<Link>,
    interval: Duration,
}

impl Links {
    /// The configured peers, in order.
    pub(crate) fn new(configured: &[PeerAddr], interval: Duration, now: Instant) -> Links {
        Links {
            links: configured
                .iter()
                .map(|addr| Link::new(addr.clone(), false, interval, now))
                .collect(),
            interval,
        }
    }

    /// The number of slots (retired ones included).
    pub(crate) fn len(&self) -> usize {
        self.links.len()
    }

    pub(crate) fn get(&self, index: usize) -> Option<&Link> {
        self.links.get(index)
    }

    /// The slot of the link to `addr`, if we send to it.
    pub(crate) fn find(&self, addr: &PeerAddr) -> Option<usize> {
        self.links
            .iter()
            .position(|link| !link.retired && &link.addr == addr)
    }

    /// Starts sending to `addr`, configured or `learned`; returns the slot
    /// of a new link. Configuring a peer we had learned makes it configured.
    /// Learned links are capped; configured ones are bounded by the config
    /// and always taken (the table makes room for them).
    pub(crate) fn add(&mut self, addr: PeerAddr, learned: bool, now: Instant) -> Option<usize> {
        if let Some(index) = self.find(&addr) {
            self.links[index].learned &= learned;
            return None;
        }
        if learned && self.links.iter().filter(|l| !l.retired).count() >= MAX_PEERS {
            log::warn!("not adding {addr}: {MAX_PEERS} peers already");
            return None;
        }
        log::info!(
            "now sending to {addr}{}",
            if learned { " (learned)" } else { "" }
        );
        let link = Link::new(addr, learned, self.interval, now);
        match self.links.iter().position(|l| l.retired) {
            Some(slot) => {
                self.links[slot] = link;
                Some(slot)
            }
            None => {
                self.links.push(link);
                Some(self.links.len() - 1)
            }
        }
    }

    /// Taken out of the config while membership is on: still a member, so
    /// the link stays, as a learned one. Returns the peer the table should
    /// demote to a learned member.
    pub(crate) fn unconfigure(&mut self, addr: &PeerAddr) -> Option<PeerId> {
        let index = self.find(addr)?;
        let link = &mut self.links[index];
        link.learned = true;
        link.id
    }

    /// When the sender must wake next: the round, or earlier for a link.
    pub(crate) fn next_deadline(&self, next_round: Instant) -> Instant {
        self.links
            .iter()
            .filter_map(Link::next_deadline)
            .fold(next_round, Instant::min)
    }
}

impl Index<usize> for Links {
    type Output = Link;
    fn index(&self, index: usize) -> &Link {
        &self.links[index]
    }
}

impl IndexMut<usize> for Links {
    fn index_mut(&mut self, index: usize) -> &mut Link {
        &mut self.links[index]
    }
}

/// When the round after one due at `due` and run at `now` is due: an
/// interval later, or an interval from now if we fell behind (a suspended
/// laptop, an overloaded host): late rounds are skipped, never sent as a
/// burst of catch-up rounds.
pub(crate) fn next_round(due: Instant, now: Instant, interval: Duration) -> Instant {
    // Saturating: an interval near the cap never overflows an Instant.
    let next = later(due, interval);
    if next <= now {
        later(now, interval)
    } else {
        next
    }
}

/// How long a connect may take: [`CONNECT_TIMEOUT`], but at most the send
/// interval and at least a second (docs/PROTOCOL.md).
pub(crate) fn connect_timeout(interval: Duration) -> Duration {
    CONNECT_TIMEOUT.min(interval.max(Duration::from_secs(1)))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Host;

    const MS: Duration = Duration::from_millis(1);
    const SEC: Duration = Duration::from_secs(1);
    const INTERVAL: Duration = Duration::from_secs(2);
    const BARE: &[u8] = b"{\"bare\":1}\n";
    const MEMBERS: &[u8] = b"{\"members\":1}\n";
    /// A round's status with the members, digest `key`.
    fn members(key: u64) -> Option<Digest<'static>> {
        Some(Digest {
            frame: MEMBERS,
            key,
        })
    }
    /// The v1 hello's length (see `wire::HELLO`).
    const HELLO: usize = 23;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    fn peer_addr(last: u8) -> PeerAddr {
        PeerAddr {
            host: Host::Ip(ip(last)),
            port: 5000,
        }
    }

    fn id(last: u8) -> PeerId {
        PeerId::new(ip(last), 5000)
    }

    fn facts() -> Option<PeerFacts> {
        Some(PeerFacts::default())
    }

    /// A configured link to 127.0.0.2, resolved, with a status waiting.
    fn link(t0: Instant) -> Link {
        let mut link = Link::new(peer_addr(2), false, INTERVAL, t0);
        assert!(link.resolved(id(2)));
        assert_eq!(link.queue_status(BARE, members(1), facts(), t0), None);
        link
    }

    /// What the shell does for `Due::Connect`, up to an established connection.
    fn connect(link: &mut Link, facts: Option<PeerFacts>, now: Instant) {
        assert_eq!(link.due(now), Due::Connect);
        link.begin_connect(now);
        link.dialing(SocketAddr::new(ip(2), 5000));
        link.connecting(now);
        assert!(link.is_connecting());
        link.connected(Some(ip(1)), facts, now);
        assert!(link.is_connected());
    }

    /// Writes whatever may go now, each frame whole: the frames and what
    /// each came to.
    fn flush(link: &mut Link, now: Instant) -> Vec<(Vec<u8>, Wrote)> {
        let mut out = Vec::new();
        while link.is_connected() {
            if !link.is_writing() {
                let Some(frame) = link.next_frame() else {
                    break;
                };
                link.start_writing(frame);
            }
            let bytes = link.unwritten().map(<[u8]>::to_vec).unwrap_or_default();
            let wrote = link.wrote(bytes.len(), now);
            out.push((bytes, wrote));
        }
        out
    }

    fn delivered(dropped: Option<Dropped>) -> Wrote {
        Wrote::Frame {
            delivered_to: Some(id(2)),
            dropped,
        }
    }

    fn closed() -> Option<Dropped> {
        Some(Dropped { peer: Some(id(2)) })
    }

    /// A connected link whose peer greeted us.
    fn v1_link(t0: Instant, keyed: bool) -> Link {
        let mut link = link(t0);
        connect(&mut link, facts(), t0);
        assert_eq!(link.received(HELLO, keyed, t0), None);
        assert_eq!(link.dialect, Dialect::V1);
        link
    }

    #[test]
    fn backoff_doubles_from_the_minimum_up_to_the_interval() {
        let mut backoff = Duration::ZERO;
        let mut seen = Vec::new();
        for _ in 0..6 {
            backoff = next_backoff(backoff, INTERVAL);
            seen.push(backoff.as_millis());
        }
        assert_eq!(seen, [250, 500, 1000, 2000, 2000, 2000]);
        // An interval shorter than the minimum: the minimum still holds.
        let fast = Duration::from_millis(20);
        assert_eq!(next_backoff(Duration::ZERO, fast), BACKOFF_MIN);
        assert_eq!(next_backoff(BACKOFF_MIN, fast), BACKOFF_MIN);
    }

    #[test]
    fn a_failing_link_retries_ever_later_until_a_frame_is_delivered() {
        let t0 = Instant::now();
        let mut link = link(t0);
        let mut now = t0;
        let mut waits = Vec::new();
        for _ in 0..5 {
            assert_eq!(link.due(now), Due::Connect);
            link.begin_connect(now);
            link.connecting(now);
            assert!(link.fail("connection refused", now).is_some());
            let retry = link.next_deadline().unwrap_or(now);
            assert_eq!(link.due(retry - MS), Due::Nothing);
            waits.push((retry - now).as_millis());
            now = retry;
        }
        assert_eq!(waits, [250, 500, 1000, 2000, 2000]);
        // The status still waits: it goes once a connect works, and resets
        // the backoff.
        connect(&mut link, facts(), now);
        assert_eq!(flush(&mut link, now), [(BARE.to_vec(), delivered(None))]);
        assert!(link.fail("connection reset", now).is_some());
        assert_eq!(link.next_deadline(), None, "nothing to send: no retry");
        assert_eq!(link.queue_status(BARE, None, facts(), now), None);
        assert_eq!(link.next_deadline(), Some(now + BACKOFF_MIN));
    }

    #[test]
    fn a_connect_has_a_deadline() {
        let t0 = Instant::now();
        let mut link = link(t0);
        link.begin_connect(t0);
        link.connecting(t0);
        assert_eq!(link.next_deadline(), Some(t0 + INTERVAL));
        assert_eq!(link.due(t0 + INTERVAL - MS), Due::Nothing);
        assert_eq!(
            link.due(t0 + INTERVAL),
            Due::ConnectTimedOut("connect timed out after 2.0 s".to_string())
        );
        assert_eq!(connect_timeout(Duration::from_secs(10)), CONNECT_TIMEOUT);
        assert_eq!(connect_timeout(Duration::from_millis(100)), SEC);
    }

    #[test]
    fn the_latest_status_wins() {
        let t0 = Instant::now();
        let mut link = link(t0);
        assert_eq!(link.queue_status(b"newer\n", None, facts(), t0 + SEC), None);
        connect(&mut link, facts(), t0 + SEC);
        assert_eq!(
            flush(&mut link, t0 + SEC),
            [(b"newer\n".to_vec(), delivered(None))]
        );
    }

    #[test]
    fn late_rounds_are_skipped_never_caught_up() {
        let t0 = Instant::now();
        assert_eq!(next_round(t0, t0, INTERVAL), t0 + INTERVAL);
        assert_eq!(next_round(t0, t0 + SEC, INTERVAL), t0 + INTERVAL);
        // Run exactly one interval late: the next is an interval from now.
        assert_eq!(next_round(t0, t0 + INTERVAL, INTERVAL), t0 + 2 * INTERVAL);
        // Suspended for a while: one round now, the next an interval later.
        assert_eq!(next_round(t0, t0 + 7 * SEC, INTERVAL), t0 + 9 * SEC);
    }

    #[test]
    fn an_unknown_peer_gets_one_status_per_connection_and_a_python_peer_our_close() {
        let t0 = Instant::now();
        let mut link = link(t0);
        connect(&mut link, facts(), t0);
        assert_eq!(flush(&mut link, t0), [(BARE.to_vec(), delivered(None))]);
        // The next status waits for a new connection; this one stays open
        // (the peer's close tells what it is).
        assert_eq!(
            link.queue_status(BARE, members(1), facts(), t0 + INTERVAL),
            None
        );
        assert_eq!(link.next_frame(), None);
        assert!(link.is_connected());
        // It closes without greeting: the Python original. Dialed again at
        // once for the waiting status, no backoff, no probe.
        let now = t0 + INTERVAL + MS;
        assert_eq!(
            link.peer_closed(facts(), now),
            Dropped { peer: Some(id(2)) }
        );
        assert_eq!(link.dialect, Dialect::Python);
        assert!(!link.probe);
        connect(&mut link, facts(), now);
        // From now on we close after its status, like the original.
        assert_eq!(
            flush(&mut link, now),
            [(BARE.to_vec(), delivered(closed()))]
        );
        assert!(!link.is_connected());
        assert_eq!(link.next_deadline(), None, "no probe of a Python peer");
    }

    #[test]
    fn a_close_before_any_status_backs_off_and_proves_nothing() {
        let t0 = Instant::now();
        let mut link = link(t0);
        connect(&mut link, facts(), t0);
        assert_eq!(link.peer_closed(facts(), t0), Dropped { peer: Some(id(2)) });
        assert_eq!(link.dialect, Dialect::Unknown);
        assert_eq!(link.next_deadline(), Some(t0 + BACKOFF_MIN));
        assert_eq!(link.due(t0 + BACKOFF_MIN - MS), Due::Nothing);
    }

    #[test]
    fn a_v1_peer_keeps_one_connection_for_every_status_and_gets_the_members() {
        let t0 = Instant::now();
        let mut link = v1_link(t0, false);
        assert_eq!(flush(&mut link, t0), [(BARE.to_vec(), delivered(None))]);
        // The first v1 status carries the members; the same digest again
        // waits for the refresh.
        for round in 1..4 {
            let now = t0 + round * INTERVAL;
            assert_eq!(link.queue_status(BARE, members(1), facts(), now), None);
            let expected = if round == 1 { MEMBERS } else { BARE };
            assert_eq!(
                flush(&mut link, now),
                [(expected.to_vec(), delivered(None))]
            );
        }
        assert!(link.is_connected());
        // No digest yet: the bare status.
        assert_eq!(link.queue_status(BARE, None, facts(), t0 + 9 * SEC), None);
        assert_eq!(
            flush(&mut link, t0 + 9 * SEC),
            [(BARE.to_vec(), delivered(None))]
        );
    }

    #[test]
    fn the_members_go_again_when_they_change_and_once_a_refresh_otherwise() {
        let t0 = Instant::now();
        let mut link = v1_link(t0, false);
        assert_eq!(flush(&mut link, t0).len(), 1);
        fn sent(link: &mut Link, key: u64, now: Instant) -> bool {
            assert_eq!(link.queue_status(BARE, members(key), facts(), now), None);
            let frames = flush(link, now);
            assert_eq!(frames.len(), 1);
            frames[0].0 == MEMBERS
        }
        let t1 = t0 + INTERVAL;
        assert!(sent(&mut link, 1, t1), "first v1 status of the connection");
        assert!(!sent(&mut link, 1, t1 + INTERVAL), "same digest: bare");
        assert!(sent(&mut link, 2, t1 + 2 * INTERVAL), "a member joined");
        assert!(!sent(
            &mut link,
            2,
            t1 + 2 * INTERVAL + MEMBERS_REFRESH - MS
        ));
        assert!(
            sent(&mut link, 2, t1 + 2 * INTERVAL + MEMBERS_REFRESH),
            "refresh due"
        );
        assert!(!sent(&mut link, 2, t1 + 3 * INTERVAL + MEMBERS_REFRESH));
        // No member online, so no digest: bare, though the refresh is due.
        let late = t1 + 3 * MEMBERS_REFRESH;
        assert_eq!(link.queue_status(BARE, None, facts(), late), None);
        assert_eq!(flush(&mut link, late), [(BARE.to_vec(), delivered(None))]);
    }

    #[test]
    fn members_replaced_before_they_went_out_are_not_lost() {
        let t0 = Instant::now();
        let mut link = v1_link(t0, false);
        assert_eq!(flush(&mut link, t0).len(), 1);
        // Queued with the members, but the socket is busy: the next round's
        // status (same digest) replaces it and must still carry them.
        let t1 = t0 + INTERVAL;
        assert_eq!(link.queue_status(BARE, members(1), facts(), t1), None);
        assert_eq!(
            link.queue_status(BARE, members(1), facts(), t1 + INTERVAL),
            None
        );
        assert_eq!(
            flush(&mut link, t1 + INTERVAL),
            [(MEMBERS.to_vec(), delivered(None))]
        );
        assert_eq!(
            link.queue_status(BARE, members(1), facts(), t1 + 2 * INTERVAL),
            None
        );
        assert_eq!(
            flush(&mut link, t1 + 2 * INTERVAL),
            [(BARE.to_vec(), delivered(None))]
        );
    }

    #[test]
    fn a_new_connection_gets_the_members_on_its_first_status() {
        let t0 = Instant::now();
        let mut link = v1_link(t0, false);
        assert_eq!(flush(&mut link, t0).len(), 1);
        let t1 = t0 + INTERVAL;
        assert_eq!(link.queue_status(BARE, members(1), facts(), t1), None);
        assert_eq!(flush(&mut link, t1)[0].0, MEMBERS);
        // The peer restarts: its new listener has forgotten what we told it.
        assert_eq!(
            link.peer_closed(facts(), t1 + SEC),
            Dropped { peer: Some(id(2)) }
        );
        let t2 = t1 + SEC + BACKOFF_MIN;
        connect(&mut link, facts(), t2);
        assert_eq!(link.queue_status(BARE, members(1), facts(), t2), None);
        assert_eq!(flush(&mut link, t2), [(MEMBERS.to_vec(), delivered(None))]);
    }

    #[test]
    fn the_members_go_to_a_peer_the_table_heard_v1_from() {
        let t0 = Instant::now();
        let mut link = link(t0);
        let v1 = Some(PeerFacts {
            speaks_v1: true,
            ..PeerFacts::default()
        });
        assert_eq!(link.queue_status(BARE, members(1), v1, t0), None);
        connect(&mut link, v1, t0);
        assert_eq!(link.dialect, Dialect::V1);
        assert_eq!(flush(&mut link, t0), [(MEMBERS.to_vec(), delivered(None))]);
    }

    #[test]
    fn a_v1_peer_closing_on_us_is_probed_soon() {
        let t0 = Instant::now();
        let mut link = v1_link(t0, false);
        assert_eq!(flush(&mut link, t0).len(), 1);
        let now = t0 + SEC;
        assert_eq!(
            link.peer_closed(facts(), now),
            Dropped { peer: Some(id(2)) }
        );
        // Nothing to send, yet it is dialed again after BACKOFF_MIN.
        assert_eq!(link.next_deadline(), Some(now + BACKOFF_MIN));
        assert_eq!(link.due(now + BACKOFF_MIN - MS), Due::Nothing);
        assert_eq!(link.due(now + BACKOFF_MIN), Due::Connect);
        link.begin_connect(now + BACKOFF_MIN);
        link.connecting(now + BACKOFF_MIN);
        assert!(!link.probe, "one probe per close");
    }

    #[test]
    fn a_listener_gets_the_hello_and_one_byte_more_then_is_closed() {
        // One read may take the whole allowance plus the byte that crosses it.
        assert_eq!(reply_room(0), MAX_LISTENER_REPLY + 1);
        // After a hello, the rest; the limit is crossed by the last byte.
        let hello = crate::proto::wire::HELLO.len();
        assert_eq!(hello, HELLO);
        assert!(hello <= MAX_LISTENER_REPLY);
        assert_eq!(reply_room(hello), MAX_LISTENER_REPLY + 1 - hello);
        assert_eq!(reply_room(MAX_LISTENER_REPLY), 1);
        // Never an empty buffer (a zero-length read would look like a close).
        assert_eq!(reply_room(MAX_LISTENER_REPLY + 1), 1);
        assert_eq!(reply_room(usize::MAX), 1);

        let t0 = Instant::now();
        let mut link = v1_link(t0, false);
        assert_eq!(link.read_room(), MAX_LISTENER_REPLY + 1 - HELLO);
        assert_eq!(link.received(MAX_LISTENER_REPLY - HELLO, false, t0), None);
        assert!(link.is_connected());
        let now = t0 + SEC;
        assert_eq!(link.received(1, false, now), closed());
        assert!(!link.is_connected());
        // Dialed again after the backoff, with the status that waits.
        assert_eq!(link.next_deadline(), Some(now + BACKOFF_MIN));
        connect(&mut link, facts(), now + BACKOFF_MIN);
        assert_eq!(
            link.read_room(),
            MAX_LISTENER_REPLY + 1,
            "counted per connection"
        );
    }

    #[test]
    fn with_a_key_a_greeting_is_for_good() {
        let t0 = Instant::now();
        let mut link = v1_link(t0, true);
        assert!(link.sealed_only);
        assert!(!link.takes_plaintext(true));
        assert_eq!(flush(&mut link, t0).len(), 1);
        // A close without hello (even an injected one) and a bare status
        // from its IP do not make it the Python original.
        let python = Some(PeerFacts {
            speaks_python: true,
            ..PeerFacts::default()
        });
        assert_eq!(link.peer_closed(python, t0), Dropped { peer: Some(id(2)) });
        assert_eq!(link.dialect, Dialect::V1);
        connect(&mut link, python, t0 + SEC);
        assert_eq!(link.dialect, Dialect::V1);
        assert!(!link.takes_plaintext(true));

        // Without a key the same evidence does make it one, and only then
        // may it be sent plaintext (with --allow-plaintext).
        let mut link = v1_link(t0, false);
        assert!(!link.takes_plaintext(true));
        assert_eq!(
            link.fail("connection reset", t0),
            Some(Failed {
                peer: id(2),
                attempt_began: t0
            })
        );
        connect(&mut link, python, t0 + SEC);
        assert_eq!(link.dialect, Dialect::Python);
        assert!(link.takes_plaintext(true));
        assert!(!link.takes_plaintext(false));
        // A later greeting (a key on both sides now) proves it for good.
        assert_eq!(link.received(HELLO, true, t0 + SEC), None);
        assert!(link.sealed_only);
        assert_eq!(link.dialect, Dialect::V1);
    }

    #[test]
    fn a_peer_that_authenticated_to_us_is_never_sent_plaintext() {
        let t0 = Instant::now();
        let authenticated = Some(PeerFacts {
            authenticated: true,
            speaks_python: true,
            ..PeerFacts::default()
        });
        let mut link = link(t0);
        assert_eq!(link.queue_status(BARE, None, authenticated, t0), None);
        assert!(link.sealed_only);
        assert_eq!(link.dialect, Dialect::V1);
        let mut link = Link::new(peer_addr(2), false, INTERVAL, t0);
        assert!(link.resolved(id(2)));
        link.queue_leave(BARE.to_vec());
        connect(&mut link, authenticated, t0);
        assert!(link.sealed_only);
        assert!(!link.takes_plaintext(true));
        assert_eq!(flush(&mut link, t0).len(), 1);
        assert_eq!(
            link.peer_closed(authenticated, t0),
            Dropped { peer: Some(id(2)) }
        );
        assert_eq!(link.dialect, Dialect::V1);
    }

    #[test]
    fn a_python_peer_stays_one_until_it_greets() {
        // It was taken for the Python original; the table now hears v1 from
        // it (replaced by a v1 node): members, but one status per connection
        // and our close until its hello proves the kept-open connection.
        let t0 = Instant::now();
        let mut link = link(t0);
        link.dialect = Dialect::Python;
        let v1 = Some(PeerFacts {
            speaks_v1: true,
            ..PeerFacts::default()
        });
        assert_eq!(link.queue_status(BARE, members(1), v1, t0), None);
        connect(&mut link, v1, t0);
        assert_eq!(link.dialect, Dialect::Python);
        assert!(!link.takes_leave(v1));
        assert_eq!(
            flush(&mut link, t0),
            [(MEMBERS.to_vec(), delivered(closed()))]
        );
        assert_eq!(link.queue_status(BARE, members(1), v1, t0 + INTERVAL), None);
        connect(&mut link, v1, t0 + INTERVAL);
        assert_eq!(link.received(HELLO, false, t0 + INTERVAL), None);
        assert_eq!(link.dialect, Dialect::V1);
        assert_eq!(
            flush(&mut link, t0 + INTERVAL),
            [(MEMBERS.to_vec(), delivered(None))]
        );
        assert!(link.takes_leave(v1));
    }

    #[test]
    fn a_failure_carries_when_its_attempt_began() {
        let t0 = Instant::now();
        let mut link = link(t0);
        // A connect that fails: it began at the connect.
        link.begin_connect(t0);
        link.connecting(t0);
        let began = |failed: Option<Failed>| failed.map(|f| f.attempt_began);
        assert_eq!(began(link.fail("connection refused", t0 + SEC)), Some(t0));
        // An established connection that fails: at the connection...
        let t1 = t0 + 2 * SEC;
        connect(&mut link, facts(), t1);
        assert_eq!(link.attempt_began, t1);
        // ... or at the last frame handed to the kernel on it.
        let t2 = t1 + SEC;
        assert_eq!(flush(&mut link, t2).len(), 1);
        assert_eq!(began(link.fail("connection reset", t2 + 5 * SEC)), Some(t2));
        // Before resolution, no peer to report.
        let mut unresolved = Link::new(peer_addr(3), false, INTERVAL, t0);
        unresolved.begin_connect(t0);
        assert_eq!(unresolved.fail("cannot resolve", t0), None);
    }

    #[test]
    fn a_peer_declared_offline_since_we_connected_gets_a_fresh_connection() {
        let t0 = Instant::now();
        let mut link = v1_link(t0, false);
        let count = |offline_count| {
            Some(PeerFacts {
                offline_count,
                ..PeerFacts::default()
            })
        };
        link.connected(Some(ip(1)), count(1), t0);
        assert_eq!(link.queue_status(BARE, None, count(1), t0 + INTERVAL), None);
        assert!(link.is_connected());
        let now = t0 + 2 * INTERVAL;
        assert_eq!(link.queue_status(BARE, None, count(2), now), closed());
        assert!(!link.is_connected());
        assert_eq!(link.due(now), Due::Connect, "at once, no backoff");
    }

    #[test]
    fn the_leave_goes_only_to_a_v1_peer_on_an_open_connection() {
        let t0 = Instant::now();
        let v1 = Some(PeerFacts {
            speaks_v1: true,
            ..PeerFacts::default()
        });
        let mut link = link(t0);
        assert!(!link.takes_leave(v1), "not connected");
        connect(&mut link, facts(), t0);
        assert!(!link.takes_leave(facts()), "not known to speak v1");
        assert!(!link.takes_leave(None));
        assert!(link.takes_leave(v1), "the table heard v1 from it");
        link.dialect = Dialect::Python;
        assert!(!link.takes_leave(v1), "never the Python original");
        let link = v1_link(t0, false);
        assert!(link.takes_leave(facts()));
    }

    #[test]
    fn shutdown_waits_once_for_each_leave() {
        let t0 = Instant::now();
        let mut link = v1_link(t0, false);
        link.offer_leave(Some(b"leave\n".to_vec()));
        assert!(link.awaits_leave());
        assert!(!link.settle_leave(), "not written yet");
        assert_eq!(
            flush(&mut link, t0),
            [(b"leave\n".to_vec(), delivered(None))]
        );
        assert!(link.settle_leave());
        assert!(!link.awaits_leave());
        assert!(!link.settle_leave(), "counted once");
        // A connection that fails meanwhile will never take it: settled too.
        let mut link = v1_link(t0, false);
        link.offer_leave(Some(b"leave\n".to_vec()));
        assert!(link.fail("broken pipe", t0).is_some());
        assert!(link.settle_leave());
        // The others get nothing more: their pending status is dropped.
        let mut other = v1_link(t0, false);
        other.offer_leave(None);
        assert!(!other.awaits_leave());
        assert_eq!(other.next_frame(), None);
        other.close();
        assert!(!other.is_connected());
        assert_eq!(other.next_deadline(), None);
    }

    #[test]
    fn a_removed_peer_gets_its_leave_then_its_link_is_retired() {
        let t0 = Instant::now();
        let mut link = v1_link(t0, false);
        assert_eq!(flush(&mut link, t0).len(), 1);
        link.queue_leave(b"leave\n".to_vec());
        assert_eq!(
            flush(&mut link, t0),
            [(b"leave\n".to_vec(), delivered(None))]
        );
        assert!(link.all_sent());
        assert_eq!(link.retire(), Some(id(2)));
        assert!(!link.is_active() && !link.is_connected());
        assert_eq!(link.queue_status(BARE, None, facts(), t0 + INTERVAL), None);
        assert_eq!(link.due(t0 + INTERVAL), Due::Nothing);
        assert_eq!(link.next_deadline(), None);
    }

    #[test]
    fn a_retired_slot_is_reused_by_the_next_peer() {
        let t0 = Instant::now();
        let mut links = Links::new(&[peer_addr(2), peer_addr(3)], INTERVAL, t0);
        assert_eq!(links.len(), 2);
        assert_eq!(links.find(&peer_addr(3)), Some(1));
        assert_eq!(links[1].retire(), None, "never resolved");
        assert_eq!(links.find(&peer_addr(3)), None);
        assert_eq!(links.add(peer_addr(4), false, t0), Some(1));
        assert_eq!(links.get(1).map(Link::addr), Some(&peer_addr(4)));
        assert_eq!(links.add(peer_addr(5), true, t0), Some(2));
        assert_eq!(links.add(peer_addr(5), true, t0), None, "already sent to");
        assert_eq!(links.len(), 3);
    }

    #[test]
    fn configured_and_learned_links() {
        let t0 = Instant::now();
        let mut links = Links::new(&[], INTERVAL, t0);
        // A learned member is the table's already: not tracked as configured.
        let index = links.add(peer_addr(2), true, t0).unwrap_or(usize::MAX);
        assert!(!links[index].resolved(id(2)));
        // Configured later: a moved host's new identity is tracked as such.
        assert_eq!(links.add(peer_addr(2), false, t0), None);
        assert!(links[index].resolved(id(3)));
        assert!(!links[index].resolved(id(3)), "no change, nothing to track");
        // Out of the config again (membership on): learned, demoted.
        assert_eq!(links.unconfigure(&peer_addr(2)), Some(id(3)));
        assert!(!links[index].resolved(id(2)));
        assert_eq!(links.unconfigure(&peer_addr(9)), None);
        // Learning stops at MAX_PEERS links; configuring does not.
        for n in 1..MAX_PEERS {
            let addr = PeerAddr {
                host: Host::Name(format!("peer{n}")),
                port: 5000,
            };
            assert!(links.add(addr, true, t0).is_some());
        }
        assert_eq!(links.add(peer_addr(9), true, t0), None);
        assert!(links.add(peer_addr(9), false, t0).is_some());
    }

    #[test]
    fn this_nodes_own_address_is_never_sent_to() {
        let t0 = Instant::now();
        let mut link = link(t0);
        link.begin_connect(t0);
        link.resolved_to_self();
        assert_eq!(link.due(t0), Due::Nothing);
        assert_eq!(link.next_deadline(), None);
        assert_eq!(link.queue_status(BARE, None, facts(), t0 + INTERVAL), None);
        assert!(link.all_sent());
    }

    #[test]
    fn the_links_wake_the_sender_at_the_earliest_deadline() {
        let t0 = Instant::now();
        let mut links = Links::new(&[peer_addr(2), peer_addr(3)], INTERVAL, t0);
        let round = t0 + INTERVAL;
        assert_eq!(links.next_deadline(round), round, "nothing to send yet");
        assert_eq!(links[1].queue_status(BARE, None, None, t0), None);
        assert_eq!(links.next_deadline(round), t0, "due now");
        links[1].begin_connect(t0);
        links[1].connecting(t0);
        assert_eq!(links.next_deadline(t0 + SEC), t0 + SEC);
        assert_eq!(links.next_deadline(round + SEC), t0 + INTERVAL);
    }

    #[test]
    fn a_frame_goes_out_in_pieces() {
        let t0 = Instant::now();
        let mut link = v1_link(t0, false);
        let frame = link.next_frame().unwrap_or_default();
        link.start_writing(frame);
        assert_eq!(link.wrote(4, t0), Wrote::Partial);
        assert_eq!(link.unwritten(), Some(&BARE[4..]));
        // A new status waits meanwhile; it never cuts in.
        assert_eq!(
            link.queue_status(b"next\n", None, facts(), t0 + INTERVAL),
            None
        );
        assert_eq!(link.next_frame(), None);
        assert_eq!(link.wrote(BARE.len() - 4, t0 + INTERVAL), delivered(None));
        assert_eq!(
            flush(&mut link, t0 + INTERVAL),
            [(b"next\n".to_vec(), delivered(None))]
        );
    }

    #[test]
    fn a_peer_that_does_not_read_is_warned_about_once_a_minute() {
        let t0 = Instant::now();
        let mut link = v1_link(t0, false);
        let frame = link.next_frame().unwrap_or_default();
        link.start_writing(frame);
        assert_eq!(link.wrote(1, t0), Wrote::Partial);
        let mut warned = Vec::new();
        for second in [2, 4, 30, 62, 64] {
            let now = t0 + second * SEC;
            assert_eq!(link.queue_status(BARE, None, facts(), now), None);
            warned.push(link.slow_warned.map(|at| (at - t0).as_secs()));
        }
        assert_eq!(warned, [Some(2), Some(2), Some(2), Some(62), Some(62)]);
        // A keepalive / user timeout on a peer still online: the same
        // warning, in the same rhythm; other failures say nothing of it.
        link.warn_if_unread(LinkFailure::TimedOut, true, t0 + 100 * SEC);
        assert_eq!(link.slow_warned, Some(t0 + 62 * SEC));
        link.warn_if_unread(LinkFailure::Refused, true, t0 + 200 * SEC);
        link.warn_if_unread(LinkFailure::TimedOut, false, t0 + 200 * SEC);
        assert_eq!(link.slow_warned, Some(t0 + 62 * SEC));
        link.warn_if_unread(LinkFailure::TimedOut, true, t0 + 200 * SEC);
        assert_eq!(link.slow_warned, Some(t0 + 200 * SEC));
    }
}
