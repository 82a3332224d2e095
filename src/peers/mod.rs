//! The peer table and its state machine: who is online, offline, back or gone,
//! and why. Pure logic: every method takes the current time (`now`) and
//! appends the events it causes to a caller's vector, so the rules of
//! docs/PROTOCOL.md ("Peers and their states") are unit-tested without sleeping
//! and the threads around it stay a thin shell.
//!
//! The rules in one place:
//! - signs of life: a status; for a peer that has never sent us one (send-only),
//!   also an accepted connection of ours that has not failed;
//! - offline at once on a hard signal (v1 connection closed without a leave and
//!   not reopened within [`CLOSE_GRACE`], our connect refused or reset, a
//!   kept-open connection failed by keepalive/user timeout; a failure of ours
//!   only if its attempt began no earlier than the last sign of life), otherwise after T
//!   without a sign of life, where T = max(offline-after, 3 × the peer's interval);
//! - a peer we have never heard from is not declared offline before T has passed
//!   since our start (no burst of offline lines when a cluster starts at once);
//! - back online on the first sign of life after offline or left;
//! - left on a leave frame; a left peer stays silent until it comes back;
//! - flapping: a peer that changes state more than N times within M is
//!   reported once as flapping, then muted until stable for M (see [`FlapRule`]);
//! - membership: peers learned from other members' statuses (hearsay) only
//!   add links; every verdict about a peer still comes from our own contact
//!   with it. A learned peer that leaves is dropped (and tombstoned, so
//!   hearsay of the same incarnation cannot bring it back); one offline for
//!   longer than forget-after is forgotten. Configured peers are never dropped;
//! - admission: the table holds at most `MAX_PEERS` entries and at most
//!   `MAX_PEERS_PER_IP` of them (configured ones aside) on one IP; a
//!   configured peer is never refused: at a full table the unconfigured entry
//!   offline the longest makes room. Hearsay names only routable addresses,
//!   and one source adds at most `MAX_LEARNED_PER_SOURCE` per `LEARN_WINDOW`;
//! - cut off: when every peer (two or more) falls silent within one window,
//!   one "Lost contact with all N peers" line replaces N offline lines, and
//!   one "Contact restored" line replaces the back-online lines that follow;
//!   a peer still offline when contact is restored gets its own offline line
//!   then, so no verdict is ever dropped without a line;
//! - timing: a peer's declared interval counts for at most
//!   [`PEER_INTERVAL_CAP`] (or our own interval if longer) in every timing
//!   derived from it (see [`PeerTable::timing_interval`]).

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

pub use crate::proto::PeerId;
use crate::proto::wire::Member;

use crate::limits::{
    CLOSE_GRACE, DEFAULT_FLAP_CHANGES, DEFAULT_FLAP_WINDOW, DEFAULT_FORGET_AFTER, DEFAULT_PORT,
    LEARN_WINDOW, MAX_LEARNED_PER_SOURCE, MAX_MEMBERS_PER_MESSAGE, MAX_PEERS, MAX_PEERS_PER_IP,
    OFFLINE_FACTOR, PEER_INTERVAL_CAP, PYTHON_INTERVAL, TCP_USER_TIMEOUT,
};

/// Where a peer stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerState {
    /// Configured but not heard from yet.
    Unknown,
    Online,
    Offline,
    /// Sent a leave: shut down on purpose.
    Left,
}

impl PeerState {
    /// Lower-case name used in JSON and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            PeerState::Unknown => "unknown",
            PeerState::Online => "online",
            PeerState::Offline => "offline",
            PeerState::Left => "left",
        }
    }
}

/// What a received status says, whatever its wire format.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusReport {
    pub name: Option<String>,
    /// `None` for the Python original, which has no incarnations.
    pub boot: Option<u64>,
    pub seq: Option<u64>,
    pub interval: Duration,
    pub cpu: f64,
    pub memory: f64,
}

/// Something worth telling the user, in the order it happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Status {
        peer: PeerId,
        name: Option<String>,
        cpu: f64,
        memory: f64,
        /// First status ever from this peer (printed even with --changes-only).
        first: bool,
    },
    Offline {
        peer: PeerId,
        name: Option<String>,
        reason: String,
        /// Time since the last sign of life, if there was one.
        last_seen: Option<Duration>,
    },
    Online {
        peer: PeerId,
        name: Option<String>,
        /// How long it was offline or gone.
        away: Duration,
    },
    Left {
        peer: PeerId,
        name: Option<String>,
    },
    /// Changed state too often: further changes are muted until it is stable.
    Flapping {
        peer: PeerId,
        name: Option<String>,
        reason: String,
    },
    /// Every peer fell silent at once: this node is probably the one cut off.
    CutOff {
        peers: usize,
    },
    /// Contact came back after a cut-off.
    Restored {
        peers: usize,
        after: Duration,
    },
    /// A learned member offline longer than forget-after, dropped from the table.
    Forgotten {
        peer: PeerId,
        name: Option<String>,
    },
}

/// Flap damping: more than `changes` state changes within `window` make a
/// peer flapping; it is muted until it has not changed state for `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlapRule {
    pub changes: usize,
    pub window: Duration,
}

impl Default for FlapRule {
    fn default() -> FlapRule {
        FlapRule {
            changes: DEFAULT_FLAP_CHANGES,
            window: DEFAULT_FLAP_WINDOW,
        }
    }
}

/// How a peer became known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Listed in --peers or the config file.
    Configured,
    /// Named in the membership data of this member's status.
    Learned { from: PeerId },
    /// It sent us a status first.
    Contacted,
}

/// The state of a cut-off episode.
#[derive(Debug, Clone)]
struct CutOff {
    /// Last sign of life from any peer before the silence.
    last_contact: Instant,
    /// The offline verdicts the "lost contact" line stands for: held back at
    /// its start, or swallowed since (a peer back, then silent again).
    covered: Vec<Event>,
    /// Peers heard again since, whose back-online lines the coming
    /// "Contact restored" line stands for (no longer in `covered`).
    back: Vec<PeerId>,
    /// When the first of them came back (`None` while `back` is empty).
    restoring_since: Option<Instant>,
}

impl CutOff {
    /// The peer that `event` is an offline verdict about, if it is one.
    fn peer_of(event: &Event) -> Option<PeerId> {
        match event {
            Event::Offline { peer, .. } => Some(*peer),
            _ => None,
        }
    }

    fn covers(&self, id: PeerId) -> bool {
        self.covered.iter().any(|e| CutOff::peer_of(e) == Some(id))
    }
}

/// Why a status or leave was not applied.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// The table already holds [`MAX_PEERS`] peers.
    TableFull,
    /// The table already holds [`MAX_PEERS_PER_IP`] peers on this IP.
    IpShareFull(IpAddr),
    /// The message belongs to an older incarnation than one already seen.
    StaleBoot,
    /// A member named in hearsay that no node can be: an unspecified,
    /// multicast or broadcast address, or port 0.
    BadMember(SocketAddr),
    /// The source already added [`MAX_LEARNED_PER_SOURCE`] members within
    /// [`LEARN_WINDOW`].
    LearnBudget(IpAddr),
}

impl Refusal {
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::TableFull => "table_full",
            Refusal::IpShareFull(_) => "ip_share_full",
            Refusal::StaleBoot => "stale_boot",
            Refusal::BadMember(_) => "bad_member",
            Refusal::LearnBudget(_) => "learn_budget",
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::TableFull => write!(f, "peer table full ({MAX_PEERS} peers)"),
            Refusal::IpShareFull(ip) => write!(
                f,
                "{MAX_PEERS_PER_IP} peers on {ip} already (the most one address may hold)"
            ),
            Refusal::StaleBoot => write!(f, "message from an older incarnation of the peer"),
            Refusal::BadMember(addr) => write!(
                f,
                "member {addr} is not a node's address (unspecified, multicast, broadcast or port 0)"
            ),
            Refusal::LearnBudget(ip) => write!(
                f,
                "{ip} named {MAX_LEARNED_PER_SOURCE} new members within {} s already; \
                 the rest wait for its next statuses",
                LEARN_WINDOW.as_secs()
            ),
        }
    }
}

/// Whether hearsay may name `addr`: only an address a node can listen on
/// and be dialed at (never unspecified, "this network", multicast or
/// broadcast, never port 0).
pub fn learnable(addr: SocketAddr) -> bool {
    let ip = addr.ip().to_canonical();
    let routable = match ip {
        IpAddr::V4(v4) => {
            !(v4.is_unspecified() || v4.octets()[0] == 0 || v4.is_multicast() || v4.is_broadcast())
        }
        IpAddr::V6(v6) => !(v6.is_unspecified() || v6.is_multicast()),
    };
    routable && addr.port() != 0
}

/// A failure of one of our connections to a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkFailure {
    /// Connect refused or connection reset: nothing listens there (hard signal).
    Refused,
    /// A kept-open connection failed by keepalive or TCP user timeout (hard signal).
    TimedOut,
    /// The handshake did not complete in time: only silence decides (soft).
    ConnectTimeout,
    /// Anything else (unreachable, resolution failed...): soft.
    Other,
}

impl LinkFailure {
    fn is_hard(self) -> bool {
        matches!(self, LinkFailure::Refused | LinkFailure::TimedOut)
    }
}

/// Everything known about one peer.
#[derive(Debug, Clone)]
pub struct Peer {
    pub id: PeerId,
    pub name: Option<String>,
    /// Listed in --peers (never dropped from the table).
    pub configured: bool,
    pub state: PeerState,
    /// When `state` last changed.
    pub since: Instant,
    /// Last status received.
    pub last_status: Option<Instant>,
    /// Last time one of our connections to it was accepted or delivered a status.
    pub last_contact: Option<Instant>,
    /// One of our connections to it is established right now.
    pub outbound_up: bool,
    /// Latest incarnation seen, and the highest seq in it.
    pub boot: Option<u64>,
    pub seq: Option<u64>,
    /// The peer's own send period (5 s for Python peers).
    pub interval: Duration,
    /// It speaks the Python original's format.
    pub legacy: bool,
    /// Open inbound v1 connections identified as this peer.
    pub inbound_open: u32,
    /// When its last inbound v1 connection closed without a leave.
    pub closed_at: Option<Instant>,
    pub cpu: Option<f64>,
    pub memory: Option<f64>,
    pub last_error: Option<String>,
    /// Times it went offline (used to refresh our connection to it).
    pub offline_count: u64,
    /// Recent state changes, for flap damping (at most `FlapRule::changes` + 1).
    changes: VecDeque<Instant>,
    /// Muted for flapping.
    pub flapping: bool,
    /// State changes so far (online, offline, left), muted ones included.
    pub changes_total: u64,
    /// Times it was reported flapping.
    pub flaps: u64,
    /// The state last announced on stdout (differs from `state` while muted).
    announced: PeerState,
    /// How and when it became known.
    pub origin: Origin,
    pub known_at: Instant,
    /// We send to it (configured, learned, or pushed back to).
    pub linked: bool,
    /// A sealed message of its was admitted and accepted: it holds the key,
    /// so it is never sent plaintext (see the sender).
    pub authenticated: bool,
}

impl Peer {
    fn new(id: PeerId, configured: bool, interval: Duration, now: Instant) -> Peer {
        Peer {
            id,
            name: None,
            configured,
            state: PeerState::Unknown,
            since: now,
            last_status: None,
            last_contact: None,
            outbound_up: false,
            boot: None,
            seq: None,
            interval,
            legacy: false,
            inbound_open: 0,
            closed_at: None,
            cpu: None,
            memory: None,
            last_error: None,
            offline_count: 0,
            changes: VecDeque::new(),
            flapping: false,
            changes_total: 0,
            flaps: 0,
            announced: PeerState::Unknown,
            origin: if configured {
                Origin::Configured
            } else {
                Origin::Contacted
            },
            known_at: now,
            linked: configured,
            authenticated: false,
        }
    }

    /// Has never sent us a status: our connections are its only signs of life.
    fn send_only(&self) -> bool {
        self.last_status.is_none()
    }

    /// The last sign of life, counting an open outbound connection as "now"
    /// for a send-only peer.
    fn last_sign_of_life(&self, now: Instant) -> Option<Instant> {
        if self.send_only() && self.outbound_up {
            Some(now)
        } else if self.send_only() {
            self.last_contact
        } else {
            self.last_status
        }
    }
}

/// All peers, keyed by identity, with the node's own timing settings.
#[derive(Debug)]
pub struct PeerTable {
    peers: HashMap<PeerId, Peer>,
    started: Instant,
    offline_after: Duration,
    own_interval: Duration,
    flap: FlapRule,
    /// Learned members offline this long are forgotten (`None`: never).
    forget_after: Option<Duration>,
    /// Incarnations of members that left or were forgotten: hearsay of them
    /// (same or older boot) is ignored. Bounded by `MAX_PEERS`.
    tombstones: HashMap<PeerId, (u64, Instant)>,
    /// Peers dropped from the table since the last `take_removed`.
    removed: Vec<PeerId>,
    /// Where the next membership digest starts (round-robin).
    digest_cursor: usize,
    /// Grows whenever a peer is added or removed or something that moves a
    /// deadline earlier happens (the listener then recomputes its wake-up).
    generation: u64,
    /// Silence verdicts held back while every peer seems to be going quiet.
    held: Vec<(Event, Instant)>,
    cut_off: Option<CutOff>,
    /// Members learned per source IP in its current window (start, count);
    /// only peers in the table teach, so bounded by `MAX_PEERS`.
    learned_by: HashMap<IpAddr, (Instant, usize)>,
}

impl PeerTable {
    /// `offline_after` is the node's --offline-after; `own_interval` its --interval
    /// (assumed for configured peers until they announce theirs).
    pub fn new(started: Instant, offline_after: Duration, own_interval: Duration) -> PeerTable {
        PeerTable {
            peers: HashMap::new(),
            started,
            offline_after,
            own_interval,
            flap: FlapRule::default(),
            forget_after: Some(DEFAULT_FORGET_AFTER),
            tombstones: HashMap::new(),
            removed: Vec::new(),
            digest_cursor: 0,
            generation: 0,
            held: Vec::new(),
            cut_off: None,
            learned_by: HashMap::new(),
        }
    }

    /// See the field: compare before and after an update.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Replaces the forget-after setting (`None`: never forget).
    pub fn with_forget_after(mut self, forget_after: Option<Duration>) -> PeerTable {
        self.forget_after = forget_after;
        self
    }

    /// Adds a member named in `from`'s status, unless it is known already,
    /// tombstoned at that incarnation, or stale hearsay (not heard by `from`
    /// within T). Refused: an address no node can have, a source past its
    /// budget, a full table or a full share of the member's IP. Returns
    /// whether it was added (the caller starts a link).
    pub fn learn(&mut self, member: &Member, from: PeerId, now: Instant) -> Result<bool, Refusal> {
        self.generation += 1;
        if !learnable(member.addr) {
            return Err(Refusal::BadMember(member.addr));
        }
        let id = PeerId::new(member.addr.ip(), member.addr.port());
        if self.peers.contains_key(&id) {
            return Ok(false);
        }
        if self
            .tombstones
            .get(&id)
            .is_some_and(|(boot, _)| member.boot <= *boot)
        {
            return Ok(false);
        }
        if Duration::from_millis(member.heard_ms)
            > self.offline_after.max(self.own_interval * OFFLINE_FACTOR)
        {
            return Ok(false);
        }
        let teacher = from.0.ip();
        let used = self.learn_budget(teacher, now)?;
        self.room_for_stranger(id)?;
        self.learned_by.insert(teacher, (used.0, used.1 + 1));
        let mut peer = Peer::new(id, false, self.own_interval, now);
        peer.origin = Origin::Learned { from };
        peer.name = member.name.clone();
        peer.linked = true;
        self.peers.insert(id, peer);
        Ok(true)
    }

    /// The learn window of `teacher` as it stands at `now` (start, members
    /// added in it), or a refusal when it is spent.
    fn learn_budget(&mut self, teacher: IpAddr, now: Instant) -> Result<(Instant, usize), Refusal> {
        let current = self
            .learned_by
            .get(&teacher)
            .copied()
            .filter(|(start, _)| now.duration_since(*start) < LEARN_WINDOW);
        if current.is_none() && self.learned_by.len() >= MAX_PEERS {
            self.learned_by
                .retain(|_, (start, _)| now.duration_since(*start) < LEARN_WINDOW);
            if self.learned_by.len() >= MAX_PEERS {
                return Err(Refusal::LearnBudget(teacher));
            }
        }
        let (start, used) = current.unwrap_or((now, 0));
        if used >= MAX_LEARNED_PER_SOURCE {
            return Err(Refusal::LearnBudget(teacher));
        }
        Ok((start, used))
    }

    /// Whether a new unconfigured entry `id` fits: the table is not full and
    /// its IP holds less than its share.
    fn room_for_stranger(&self, id: PeerId) -> Result<(), Refusal> {
        if self.peers.len() >= MAX_PEERS {
            return Err(Refusal::TableFull);
        }
        let ip = id.0.ip();
        let same_ip = self
            .peers
            .values()
            .filter(|peer| !peer.configured && peer.id.0.ip() == ip)
            .count();
        if same_ip >= MAX_PEERS_PER_IP {
            return Err(Refusal::IpShareFull(ip));
        }
        Ok(())
    }

    /// Drops the unconfigured entry offline the longest (or, if every one is
    /// online, the one heard from least recently) so a configured peer fits.
    /// Returns false if every entry is configured.
    fn make_room(&mut self, now: Instant) -> bool {
        let victim = self
            .peers
            .values()
            .filter(|peer| !peer.configured)
            .min_by_key(|peer| {
                let online = peer.state == PeerState::Online;
                let since = if online {
                    peer.last_sign_of_life(now).unwrap_or(peer.since)
                } else {
                    peer.since
                };
                (online, since)
            })
            .map(|peer| (peer.id, peer.state));
        let Some((victim, state)) = victim else {
            return false;
        };
        log::warn!(
            "peer table full ({MAX_PEERS}): dropped {victim} ({}, unconfigured) to make room for a configured peer",
            state.as_str()
        );
        self.drop_member(victim, false, now);
        true
    }

    /// What this node tells its v1 peers about the members it hears from
    /// directly: online v1 peers, up to `MAX_MEMBERS_PER_MESSAGE`, walking
    /// the table round-robin so every member is announced within a few rounds.
    pub fn digest(&mut self, now: Instant) -> Vec<Member> {
        let mut ids: Vec<PeerId> = self
            .peers
            .values()
            .filter(|peer| peer.state == PeerState::Online && !peer.legacy && peer.boot.is_some())
            .map(|peer| peer.id)
            .collect();
        if ids.is_empty() {
            return Vec::new();
        }
        ids.sort();
        let start = self.digest_cursor % ids.len();
        let take = ids.len().min(MAX_MEMBERS_PER_MESSAGE);
        self.digest_cursor = start + take;
        (0..take)
            .filter_map(|k| self.peers.get(&ids[(start + k) % ids.len()]))
            .map(|peer| Member {
                addr: peer.id.0,
                name: peer.name.clone(),
                boot: peer.boot.unwrap_or(0),
                heard_ms: peer
                    .last_status
                    .map_or(u64::MAX, |seen| now.duration_since(seen).as_millis() as u64),
            })
            .collect()
    }

    /// Marks `id` as sent to; true if it was not (the caller adds a link).
    pub fn mark_linked(&mut self, id: PeerId) -> bool {
        match self.peers.get_mut(&id) {
            Some(peer) if !peer.linked => {
                peer.linked = true;
                true
            }
            _ => false,
        }
    }

    /// Peers dropped from the table (left or forgotten members) since the
    /// last call: the caller stops sending to them.
    pub fn take_removed(&mut self) -> Vec<PeerId> {
        std::mem::take(&mut self.removed)
    }

    /// Drops a non-configured peer. One that left is tombstoned at its
    /// incarnation; a forgotten one is not (it may only have been cut off,
    /// and fresh hearsay or its own statuses may bring it back).
    fn drop_member(&mut self, id: PeerId, left: bool, now: Instant) {
        self.generation += 1;
        if let Some(peer) = self.peers.remove(&id) {
            if left {
                self.tombstone(id, peer.boot.unwrap_or(0), now);
            }
            self.removed.push(id);
        }
    }

    /// Replaces the flap damping rule.
    pub fn with_flap_rule(mut self, flap: FlapRule) -> PeerTable {
        self.flap = flap;
        self
    }

    /// Whether this node currently believes it is cut off.
    pub fn is_cut_off(&self) -> bool {
        self.cut_off.is_some()
    }

    pub fn get(&self, id: &PeerId) -> Option<&Peer> {
        self.peers.get(id)
    }

    pub fn len(&self) -> usize {
        self.peers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    /// All peers, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Peer> {
        self.peers.values()
    }

    /// The interval that a peer's declared one counts for in every timing
    /// (threshold, idle deadline, cut-off windows): at most
    /// [`PEER_INTERVAL_CAP`], or our own interval if that is longer. A
    /// stranger's `interval_ms` of an hour thus stretches nothing; a peer
    /// slower than the cap needs --offline-after (or the same --interval here).
    pub fn timing_interval(&self, declared: Duration) -> Duration {
        declared.min(PEER_INTERVAL_CAP.max(self.own_interval))
    }

    /// The silence after which this peer is offline.
    pub fn threshold(&self, peer: &Peer) -> Duration {
        self.offline_after.max(peer.interval * OFFLINE_FACTOR)
    }

    /// Adds a peer from --peers (idempotent).
    pub fn add_configured(&mut self, id: PeerId, now: Instant) -> Result<(), Refusal> {
        self.generation += 1;
        if let Some(peer) = self.peers.get_mut(&id) {
            peer.configured = true;
            peer.origin = Origin::Configured;
            peer.linked = true;
            return Ok(());
        }
        if self.peers.len() >= MAX_PEERS && !self.make_room(now) {
            return Err(Refusal::TableFull);
        }
        self.peers
            .insert(id, Peer::new(id, true, self.own_interval, now));
        Ok(())
    }

    /// A peer taken out of the configured list (config reload). One that never
    /// sent us a status was known only through our connections, which are now
    /// gone: it is dropped, so the silence we caused is never reported as
    /// offline. One that sends to us stays, like any other sender (and with
    /// membership on, it is pushed back to, as any sender we do not link).
    /// Only a configured peer is touched: a member the table dropped may be
    /// learned again before the sender drops its link, and that newer entry
    /// stays.
    pub fn unconfigure(&mut self, id: PeerId) {
        let Some(peer) = self.peers.get_mut(&id).filter(|peer| peer.configured) else {
            return;
        };
        peer.configured = false;
        peer.outbound_up = false;
        peer.linked = false;
        if peer.origin == Origin::Configured {
            peer.origin = Origin::Contacted;
        }
        if peer.send_only() {
            self.peers.remove(&id);
            self.held
                .retain(|(event, _)| !matches!(event, Event::Offline { peer, .. } if *peer == id));
        }
    }

    /// A peer taken out of the configured list while membership is on: it
    /// stays a member we send to, and is forgotten or dropped like a learned one.
    pub fn demote(&mut self, id: PeerId) {
        if let Some(peer) = self.peers.get_mut(&id) {
            peer.configured = false;
            if peer.origin == Origin::Configured {
                peer.origin = Origin::Contacted;
            }
        }
    }

    /// The peer `id` sending a status of incarnation `boot`, created if new.
    /// A status of an incarnation that already left (tombstoned) is stale; a
    /// newer one of a member that left comes back as "left", so that its
    /// return prints back online like any left peer's.
    fn entry(&mut self, id: PeerId, boot: Option<u64>, now: Instant) -> Result<&mut Peer, Refusal> {
        if let (Some((gone, at)), Some(boot)) = (self.tombstones.get(&id).copied(), boot) {
            if boot <= gone {
                return Err(Refusal::StaleBoot);
            }
            if !self.peers.contains_key(&id) && self.room_for_stranger(id).is_ok() {
                let mut peer = Peer::new(id, false, self.own_interval, now);
                peer.state = PeerState::Left;
                peer.announced = PeerState::Left;
                peer.since = at;
                peer.boot = Some(gone);
                self.peers.insert(id, peer);
            }
            self.tombstones.remove(&id);
        }
        if !self.peers.contains_key(&id) {
            self.room_for_stranger(id)?;
        }
        let interval = self.own_interval;
        Ok(self
            .peers
            .entry(id)
            .or_insert_with(|| Peer::new(id, false, interval, now)))
    }

    fn tombstone(&mut self, id: PeerId, boot: u64, now: Instant) {
        if self.tombstones.len() >= MAX_PEERS
            && !self.tombstones.contains_key(&id)
            && let Some(oldest) = self
                .tombstones
                .iter()
                .min_by_key(|(_, (_, at))| *at)
                .map(|(id, _)| *id)
        {
            self.tombstones.remove(&oldest);
        }
        let boot = self
            .tombstones
            .get(&id)
            .map_or(boot, |(known, _)| boot.max(*known));
        self.tombstones.insert(id, (boot, now));
    }

    /// A status arrived from `id`.
    pub fn on_status(
        &mut self,
        id: PeerId,
        report: StatusReport,
        now: Instant,
        events: &mut Vec<Event>,
    ) -> Result<(), Refusal> {
        let rule = self.flap;
        let before = events.len();
        let known = self.peers.get(&id).map(|peer| peer.state);
        let interval = self.timing_interval(report.interval);
        let peer = self.entry(id, report.boot, now)?;
        if let (Some(known), Some(boot)) = (peer.boot, report.boot) {
            if boot < known || (boot == known && peer.state == PeerState::Left) {
                // Older incarnation, or the same one after its own leave.
                return Err(Refusal::StaleBoot);
            }
            if boot > known && peer.state == PeerState::Online {
                // Restarted faster than the close grace: still one offline /
                // back online pair, so a restart is never invisible.
                go_offline(peer, "restarted".to_string(), now, rule, events);
            }
        }
        if let Some(boot) = report.boot {
            if peer.boot != Some(boot) {
                peer.seq = None;
            }
            peer.boot = Some(boot);
            peer.seq = report.seq.max(peer.seq);
        }
        peer.legacy = report.boot.is_none();
        let first = peer.last_status.is_none();
        peer.last_status = Some(now);
        peer.closed_at = None;
        peer.interval = interval;
        if report.name.is_some() {
            peer.name = report.name;
        }
        peer.cpu = Some(report.cpu);
        peer.memory = Some(report.memory);
        come_alive(peer, now, rule, events);
        let status = Event::Status {
            peer: id,
            name: peer.name.clone(),
            cpu: report.cpu,
            memory: report.memory,
            first,
        };
        if known != self.peers.get(&id).map(|peer| peer.state) {
            self.generation += 1;
        }
        self.absorb_restore(before, now, events);
        events.push(status);
        Ok(())
    }

    /// During a cut-off, back-online lines become one "Contact restored" line.
    fn absorb_restore(&mut self, from: usize, now: Instant, events: &mut Vec<Event>) {
        let Some(cut) = &mut self.cut_off else {
            return;
        };
        let mut index = from;
        while index < events.len() {
            if let Event::Online { peer, .. } = events[index] {
                events.remove(index);
                if !cut.back.contains(&peer) {
                    cut.back.push(peer);
                }
                cut.covered
                    .retain(|event| CutOff::peer_of(event) != Some(peer));
                cut.restoring_since.get_or_insert(now);
            } else {
                index += 1;
            }
        }
    }

    /// A leave arrived from `id`.
    pub fn on_leave(
        &mut self,
        id: PeerId,
        boot: u64,
        now: Instant,
        events: &mut Vec<Event>,
    ) -> Result<(), Refusal> {
        let Some(peer) = self.peers.get_mut(&id) else {
            // A leave from a peer we never knew prints nothing, but its
            // incarnation is over: later hearsay of it is ignored.
            self.tombstone(id, boot, now);
            return Ok(());
        };
        if peer.boot.is_some_and(|known| boot < known) {
            self.generation += 1;
            return Err(Refusal::StaleBoot);
        }
        peer.closed_at = None;
        if peer.state != PeerState::Left {
            peer.state = PeerState::Left;
            peer.changes_total += 1;
            peer.since = now;
            peer.boot = Some(boot.max(peer.boot.unwrap_or(0)));
            events.push(Event::Left {
                peer: id,
                name: peer.name.clone(),
            });
            if !peer.configured {
                // A member that left on purpose is gone from the list.
                self.drop_member(id, true, now);
                return Ok(());
            }
        }
        Ok(())
    }

    /// An inbound v1 connection was identified as coming from `id`.
    pub fn on_inbound_open(&mut self, id: PeerId) {
        if let Some(peer) = self.peers.get_mut(&id) {
            peer.inbound_open = peer.inbound_open.saturating_add(1);
            peer.closed_at = None;
        }
    }

    /// An inbound v1 connection of `id` ended. `graceful` is false when it
    /// ended without a leave (crash, reset, keepalive timeout).
    pub fn on_inbound_closed(&mut self, id: PeerId, graceful: bool, now: Instant) {
        self.generation += 1;
        if let Some(peer) = self.peers.get_mut(&id) {
            peer.inbound_open = peer.inbound_open.saturating_sub(1);
            if peer.inbound_open == 0 && !graceful && peer.state != PeerState::Left {
                peer.closed_at = Some(now);
            }
        }
    }

    /// One of our connections to `id` was accepted (a sign of life for a
    /// send-only peer).
    pub fn on_connected(&mut self, id: PeerId, now: Instant, events: &mut Vec<Event>) {
        self.generation += 1;
        if let Some(peer) = self.peers.get_mut(&id) {
            peer.outbound_up = true;
            peer.last_contact = Some(now);
            peer.last_error = None;
            if peer.send_only() {
                let before = events.len();
                come_alive(peer, now, self.flap, events);
                self.absorb_restore(before, now, events);
            }
        }
    }

    /// A status was handed to the kernel on an established connection to `id`.
    pub fn on_delivered(&mut self, id: PeerId, now: Instant) {
        if let Some(peer) = self.peers.get_mut(&id) {
            peer.last_contact = Some(now);
        }
    }

    /// Our connection to `id` ended without failing (the Python original closes
    /// after each status; a v1 peer closing is decided by its own inbound signals).
    pub fn on_disconnected(&mut self, id: PeerId, now: Instant) {
        self.generation += 1;
        if let Some(peer) = self.peers.get_mut(&id) {
            if peer.outbound_up {
                // It held until now: that was a sign of life.
                peer.last_contact = Some(now);
            }
            peer.outbound_up = false;
        }
    }

    /// One of our connections to `id` failed. `attempt_began` is when the
    /// failed attempt began (the connect, or the last moment the connection was
    /// known good): a hard failure counts only if it began no earlier than the
    /// peer's last sign of life. Otherwise it may be older news than that sign
    /// (a connect refused before the peer's listener was up, processed after
    /// its first status arrived) and is soft: silence decides.
    pub fn on_link_failed(
        &mut self,
        id: PeerId,
        failure: LinkFailure,
        attempt_began: Instant,
        detail: &str,
        now: Instant,
        events: &mut Vec<Event>,
    ) {
        self.generation += 1;
        let past_startup = now.duration_since(self.started) >= self.offline_after;
        let rule = self.flap;
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        peer.outbound_up = false;
        peer.last_error = Some(detail.to_string());
        if !failure.is_hard() {
            return;
        }
        if peer
            .last_sign_of_life(now)
            .is_some_and(|seen| attempt_began < seen)
        {
            // Stale: the peer spoke to us after this attempt began.
            return;
        }
        if failure == LinkFailure::TimedOut
            && peer
                .last_status
                .is_some_and(|seen| now.duration_since(seen) < TCP_USER_TIMEOUT)
        {
            // Our data went unacknowledged for the whole user timeout, yet the
            // peer spoke to us since: it is alive and does not read (or the
            // path is one-way). Not offline; the sender warns.
            return;
        }
        let threshold = self.offline_after.max(peer.interval * OFFLINE_FACTOR);
        let may_report = match peer.state {
            PeerState::Online => true,
            // Never heard from: not before T since our start (or since it became known).
            PeerState::Unknown => past_startup && now.duration_since(peer.since) >= threshold,
            PeerState::Offline | PeerState::Left => false,
        };
        if may_report {
            go_offline(peer, detail.to_string(), now, rule, events);
        }
    }

    /// Applies the timers: close grace, silence, flap muting, cut-off. Call it
    /// at [`PeerTable::next_deadline`] (and at least every
    /// [`crate::limits::MAX_TICK`]); it costs one pass over the table.
    pub fn tick(&mut self, now: Instant, events: &mut Vec<Event>) {
        let since_start = now.duration_since(self.started);
        let offline_after = self.offline_after;
        let rule = self.flap;
        let mut silenced = Vec::new();
        for peer in self.peers.values_mut() {
            unmute_if_stable(peer, now, rule, events);
            let threshold = offline_after.max(peer.interval * OFFLINE_FACTOR);
            match peer.state {
                PeerState::Online => {
                    if let Some(closed) = peer.closed_at
                        && now.duration_since(closed) >= CLOSE_GRACE
                    {
                        peer.closed_at = None;
                        go_offline(
                            peer,
                            "connection closed without leave".to_string(),
                            now,
                            rule,
                            events,
                        );
                        continue;
                    }
                    let silent_for = peer
                        .last_sign_of_life(now)
                        .map_or(since_start, |seen| now.duration_since(seen));
                    if silent_for > threshold {
                        let reason = match &peer.last_error {
                            Some(error) => format!(
                                "no sign of life for {:.1} s ({error})",
                                silent_for.as_secs_f64()
                            ),
                            None => format!("no status for {:.1} s", silent_for.as_secs_f64()),
                        };
                        go_offline(peer, reason, now, rule, &mut silenced);
                    }
                }
                PeerState::Unknown => {
                    if now.duration_since(peer.since.max(self.started)) > threshold {
                        let reason = match &peer.last_error {
                            Some(error) => format!("never heard from ({error})"),
                            None => "never heard from".to_string(),
                        };
                        go_offline(peer, reason, now, rule, events);
                    }
                }
                PeerState::Offline | PeerState::Left => {}
            }
        }
        self.settle_silence(silenced, now, events);
        self.settle_restore(now, events);
        self.forget(now, events);
    }

    /// Forgets learned members offline for longer than forget-after.
    fn forget(&mut self, now: Instant, events: &mut Vec<Event>) {
        let Some(forget_after) = self.forget_after else {
            return;
        };
        let gone: Vec<(PeerId, Option<String>)> = self
            .peers
            .values()
            .filter(|peer| {
                !peer.configured
                    && peer.state == PeerState::Offline
                    && now.duration_since(peer.since) >= forget_after
            })
            .map(|peer| (peer.id, peer.name.clone()))
            .collect();
        for (peer, name) in gone {
            self.drop_member(peer, false, now);
            events.push(Event::Forgotten { peer, name });
        }
    }

    /// Peers that count for "all peers": heard from at least once, not left.
    fn contacts(&self) -> impl Iterator<Item = &Peer> {
        self.peers.values().filter(|peer| {
            peer.state != PeerState::Left
                && (peer.last_status.is_some() || peer.last_contact.is_some())
        })
    }

    /// Decides what silence verdicts print: each its own offline line, or,
    /// when every peer went quiet together, one "lost contact" line.
    fn settle_silence(&mut self, silenced: Vec<Event>, now: Instant, events: &mut Vec<Event>) {
        for event in silenced {
            let (Some(id), Some(cut)) = (CutOff::peer_of(&event), &mut self.cut_off) else {
                match event {
                    Event::Offline { .. } => self.held.push((event, now)),
                    other => events.push(other),
                }
                continue;
            };
            // While cut off, a peer back since (its back-online line not yet
            // printed) falling silent again is still lost, as the last line
            // said; its verdict waits for "Contact restored" with the others.
            if let Some(at) = cut.back.iter().position(|peer| *peer == id) {
                cut.back.swap_remove(at);
                cut.covered.push(event);
                if cut.back.is_empty() {
                    cut.restoring_since = None;
                }
            } else if !cut.covers(id) {
                // First heard during the cut-off: not part of it, its own line.
                events.push(event);
            }
        }
        if self.held.is_empty() {
            return;
        }
        let contacts = self.contacts().count();
        let all_offline = self.contacts().all(|peer| peer.state == PeerState::Offline);
        if contacts >= 2 && all_offline {
            let last_contact = self
                .contacts()
                .filter_map(|peer| peer.last_sign_of_life(now))
                .max()
                .unwrap_or(now);
            self.cut_off = Some(CutOff {
                last_contact,
                covered: self.held.drain(..).map(|(event, _)| event).collect(),
                back: Vec::new(),
                restoring_since: None,
            });
            events.push(Event::CutOff { peers: contacts });
            return;
        }
        // Hold while every other peer is overdue too (a cut-off in progress);
        // release as soon as one of them is heard, or after one interval.
        let everyone_quiet = self
            .contacts()
            .filter(|peer| peer.state == PeerState::Online)
            .all(|peer| {
                peer.last_sign_of_life(now)
                    .is_none_or(|seen| now.duration_since(seen) * 2 > peer.interval * 3)
            });
        let oldest = self.held.iter().map(|(_, at)| *at).min().unwrap_or(now);
        let longest_interval = self
            .contacts()
            .map(|peer| peer.interval)
            .max()
            .unwrap_or_default();
        if contacts < 2 || !everyone_quiet || now.duration_since(oldest) > longest_interval {
            events.extend(self.held.drain(..).map(|(event, _)| event));
        }
    }

    /// Ends a cut-off one interval after the first peer came back (or at once
    /// when every peer it covered is back) with one "Contact restored" line,
    /// followed by the offline line of each covered peer still offline: the
    /// cut-off line stood for their verdicts only while it lasted.
    fn settle_restore(&mut self, now: Instant, events: &mut Vec<Event>) {
        let Some(first_back) = self.cut_off.as_ref().and_then(|cut| cut.restoring_since) else {
            return;
        };
        let longest_interval = self
            .contacts()
            .map(|peer| peer.interval)
            .max()
            .unwrap_or_default();
        let Some(cut) = &mut self.cut_off else {
            return;
        };
        let state = |id: &PeerId| self.peers.get(id).map(|peer| peer.state);
        // Back and still online (a hard signal may have taken one away,
        // with its own line).
        cut.back.retain(|id| state(id) == Some(PeerState::Online));
        // (A covered peer may be back without a line to absorb, muted for
        // flapping; one that left printed its own line.)
        let still_lost = |event: &Event| {
            CutOff::peer_of(event).is_some_and(|id| state(&id) == Some(PeerState::Offline))
        };
        if cut.back.is_empty() {
            cut.restoring_since = None;
            return;
        }
        let all_back = !cut.covered.iter().any(still_lost);
        if all_back || now.duration_since(first_back) >= longest_interval {
            let after = now.duration_since(cut.last_contact);
            let peers = cut.back.len();
            let lost: Vec<Event> = cut.covered.drain(..).filter(still_lost).collect();
            self.cut_off = None;
            events.push(Event::Restored { peers, after });
            for mut event in lost {
                if let Event::Offline {
                    peer, last_seen, ..
                } = &mut event
                {
                    *last_seen = self
                        .peers
                        .get(peer)
                        .and_then(|p| p.last_status.or(p.last_contact))
                        .map(|seen| now.duration_since(seen));
                }
                events.push(event);
            }
        }
    }

    /// When the table started (the node's start).
    pub fn started(&self) -> Instant {
        self.started
    }

    /// The threshold T for a peer, by identity.
    pub fn threshold_of(&self, id: &PeerId) -> Option<Duration> {
        self.peers.get(id).map(|peer| self.threshold(peer))
    }

    /// The earliest moment `tick` could change something (a close grace, a
    /// silence threshold, a flap mute, a held verdict, a forget), so the
    /// listener can sleep until then instead of waking ten times a second.
    /// Anything that arrives in between only moves these moments later,
    /// except new peers and closes, after which the caller asks again.
    pub fn next_deadline(&self, now: Instant) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut consider = |at: Instant| next = Some(next.map_or(at, |n: Instant| n.min(at)));
        let just_after = Duration::from_millis(1);
        for peer in self.peers.values() {
            let threshold = self.threshold(peer);
            if let Some(closed) = peer.closed_at {
                consider(closed + CLOSE_GRACE);
            }
            match peer.state {
                PeerState::Online => {
                    if !(peer.send_only() && peer.outbound_up) {
                        let seen = peer.last_sign_of_life(now).unwrap_or(self.started);
                        consider(seen + threshold + just_after);
                    }
                }
                PeerState::Unknown => {
                    consider(peer.since.max(self.started) + threshold + just_after)
                }
                PeerState::Offline => {
                    if let (false, Some(forget_after)) = (peer.configured, self.forget_after) {
                        consider(peer.since + forget_after);
                    }
                }
                PeerState::Left => {}
            }
            if peer.flapping {
                consider(peer.since + self.flap.window);
            }
        }
        let longest_interval = self
            .peers
            .values()
            .map(|peer| peer.interval)
            .max()
            .unwrap_or_default();
        if let Some(oldest) = self.held.iter().map(|(_, at)| *at).min() {
            consider(oldest + longest_interval + just_after);
        }
        if let Some(first_back) = self.cut_off.as_ref().and_then(|cut| cut.restoring_since) {
            consider(first_back + longest_interval);
        }
        next
    }

    /// Peers that went offline `count` times so far: the sender gives a peer a
    /// fresh connection when this number changes.
    pub fn offline_count(&self, id: &PeerId) -> u64 {
        self.peers.get(id).map_or(0, |peer| peer.offline_count)
    }

    /// Whether `id` is known to speak v1 (has sent a v1 message).
    pub fn speaks_v1(&self, id: &PeerId) -> bool {
        self.peers.get(id).is_some_and(|peer| peer.boot.is_some())
    }

    /// A sealed message from `id` was admitted and the table accepted it.
    pub fn on_authenticated(&mut self, id: PeerId) {
        if let Some(peer) = self.peers.get_mut(&id) {
            peer.authenticated = true;
        }
    }

    /// Whether `id` has authenticated to us (see [`Peer::authenticated`]).
    pub fn authenticated(&self, id: &PeerId) -> bool {
        self.peers.get(id).is_some_and(|peer| peer.authenticated)
    }

    /// Whether `id` has sent the Python original's bare statuses.
    pub fn speaks_legacy(&self, id: &PeerId) -> bool {
        self.peers.get(id).is_some_and(|peer| peer.legacy)
    }

    /// The identity of a Python sender at `ip`: the configured peer with that IP
    /// if there is exactly one, else the IP on the default port.
    pub fn legacy_id(&self, ip: IpAddr) -> PeerId {
        let ip = ip.to_canonical();
        let mut configured = self
            .peers
            .values()
            .filter(|peer| peer.configured && peer.id.0.ip() == ip);
        match (configured.next(), configured.next()) {
            (Some(peer), None) => peer.id,
            _ => PeerId::new(ip, DEFAULT_PORT),
        }
    }
}

/// Python peers do not announce an interval; theirs is 5 s.
pub fn legacy_report(cpu: f64, memory: f64) -> StatusReport {
    StatusReport {
        name: None,
        boot: None,
        seq: None,
        interval: PYTHON_INTERVAL,
        cpu,
        memory,
    }
}

fn go_offline(
    peer: &mut Peer,
    reason: String,
    now: Instant,
    rule: FlapRule,
    events: &mut Vec<Event>,
) {
    // The same source of "last heard" as the silence rule uses.
    let last_seen = if peer.send_only() {
        peer.last_contact
    } else {
        peer.last_status
    }
    .map(|seen| now.duration_since(seen));
    peer.state = PeerState::Offline;
    peer.since = now;
    peer.offline_count += 1;
    peer.changes_total += 1;
    peer.outbound_up = false;
    peer.last_error = Some(reason.clone());
    let event = Event::Offline {
        peer: peer.id,
        name: peer.name.clone(),
        reason,
        last_seen,
    };
    announce(peer, event, now, rule, events);
}

fn come_alive(peer: &mut Peer, now: Instant, rule: FlapRule, events: &mut Vec<Event>) {
    match peer.state {
        PeerState::Online => {}
        PeerState::Unknown => {
            peer.changes_total += 1;
            peer.state = PeerState::Online;
            peer.announced = PeerState::Online;
            peer.since = now;
        }
        PeerState::Offline | PeerState::Left => {
            let away = now.duration_since(peer.since);
            peer.changes_total += 1;
            peer.state = PeerState::Online;
            peer.since = now;
            peer.last_error = None;
            let event = Event::Online {
                peer: peer.id,
                name: peer.name.clone(),
                away,
            };
            announce(peer, event, now, rule, events);
        }
    }
}

/// Prints a state change unless the peer flaps: the change that crosses the
/// limit prints "flapping" instead, and later ones are muted.
fn announce(peer: &mut Peer, event: Event, now: Instant, rule: FlapRule, events: &mut Vec<Event>) {
    peer.changes.push_back(now);
    while peer
        .changes
        .front()
        .is_some_and(|at| now.duration_since(*at) > rule.window)
        || peer.changes.len() > rule.changes + 1
    {
        peer.changes.pop_front();
    }
    if peer.flapping {
        return;
    }
    if peer.changes.len() > rule.changes {
        peer.flapping = true;
        peer.flaps += 1;
        let reason = format!(
            "{} state changes within {} s; muted until stable for {} s",
            peer.changes.len(),
            rule.window.as_secs(),
            rule.window.as_secs()
        );
        events.push(Event::Flapping {
            peer: peer.id,
            name: peer.name.clone(),
            reason,
        });
        return;
    }
    peer.announced = peer.state;
    events.push(event);
}

/// A flapping peer that has not changed state for a whole window is unmuted;
/// if its state differs from the last one printed, that change is printed now.
fn unmute_if_stable(peer: &mut Peer, now: Instant, rule: FlapRule, events: &mut Vec<Event>) {
    if !peer.flapping || now.duration_since(peer.since) < rule.window {
        return;
    }
    peer.flapping = false;
    peer.changes.clear();
    log::info!("peer {} is stable again", peer.id);
    if peer.state == peer.announced {
        return;
    }
    peer.announced = peer.state;
    match peer.state {
        PeerState::Online => events.push(Event::Online {
            peer: peer.id,
            name: peer.name.clone(),
            away: Duration::ZERO,
        }),
        PeerState::Offline => events.push(Event::Offline {
            peer: peer.id,
            name: peer.name.clone(),
            reason: peer
                .last_error
                .clone()
                .unwrap_or_else(|| "offline".to_string()),
            last_seen: peer.last_status.map(|seen| now.duration_since(seen)),
        }),
        PeerState::Unknown | PeerState::Left => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const SEC: Duration = Duration::from_secs(1);

    fn id(last: u8) -> PeerId {
        PeerId::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)), 5000)
    }

    fn report(boot: u64, seq: u64) -> StatusReport {
        StatusReport {
            name: Some("b".into()),
            boot: Some(boot),
            seq: Some(seq),
            interval: SEC,
            cpu: 1.0,
            memory: 2.0,
        }
    }

    /// A table with offline-after 3 s and interval 1 s (T = 3 s), started at `t0`.
    fn table(t0: Instant) -> PeerTable {
        PeerTable::new(t0, 3 * SEC, SEC)
    }

    fn kinds(events: &[Event]) -> Vec<&'static str> {
        events
            .iter()
            .map(|e| match e {
                Event::Status { .. } => "status",
                Event::Offline { .. } => "offline",
                Event::Online { .. } => "online",
                Event::Left { .. } => "left",
                Event::Flapping { .. } => "flapping",
                Event::CutOff { .. } => "cut_off",
                Event::Restored { .. } => "restored",
                Event::Forgotten { .. } => "forgotten",
            })
            .collect()
    }

    fn member(last: u8, boot: u64, heard_ms: u64) -> Member {
        Member {
            addr: id(last).0,
            name: Some(format!("m{last}")),
            boot,
            heard_ms,
        }
    }

    #[test]
    fn learning_adds_fresh_unknown_members_only() {
        let t0 = Instant::now();
        let mut peers = table(t0);
        let mut events = Vec::new();
        peers.on_status(id(2), report(1, 0), t0, &mut events).ok();
        assert_eq!(peers.learn(&member(3, 7, 500), id(2), t0), Ok(true));
        assert_eq!(
            peers.get(&id(3)).map(|p| p.origin),
            Some(Origin::Learned { from: id(2) })
        );
        assert_eq!(
            peers.learn(&member(3, 7, 500), id(2), t0),
            Ok(false),
            "known already"
        );
        assert_eq!(
            peers.learn(&member(2, 1, 0), id(4), t0),
            Ok(false),
            "known directly"
        );
        assert_eq!(
            peers.learn(&member(5, 1, 60_000), id(2), t0),
            Ok(false),
            "stale hearsay"
        );
        // A learned member never heard from directly goes offline after T from
        // when it was learned, not from our start.
        let later = t0 + 100 * SEC;
        assert_eq!(peers.learn(&member(6, 1, 0), id(2), later), Ok(true));
        events.clear();
        peers.tick(later + 2 * SEC, &mut events);
        assert!(
            !events
                .iter()
                .any(|e| matches!(e, Event::Offline { peer, .. } if *peer == id(6)))
        );
        peers.tick(later + 4 * SEC, &mut events);
        assert!(
            events
                .iter()
                .any(|e| matches!(e, Event::Offline { peer, .. } if *peer == id(6)))
        );
    }

    #[test]
    fn hearsay_never_resurrects_a_member_that_left() {
        let t0 = Instant::now();
        let mut peers = table(t0);
        let mut events = Vec::new();
        peers.learn(&member(3, 7, 0), id(2), t0).ok();
        peers.on_status(id(3), report(7, 0), t0, &mut events).ok();
        peers.on_leave(id(3), 7, t0 + SEC, &mut events).ok();
        assert!(
            peers.get(&id(3)).is_none(),
            "a learned member that left is dropped"
        );
        assert_eq!(peers.take_removed(), vec![id(3)]);
        // Other members still gossip about the old incarnation: ignored.
        assert_eq!(
            peers.learn(&member(3, 7, 0), id(4), t0 + 2 * SEC),
            Ok(false)
        );
        assert_eq!(
            peers.learn(&member(3, 6, 0), id(4), t0 + 2 * SEC),
            Ok(false)
        );
        // It restarted (new boot): learned again.
        assert_eq!(peers.learn(&member(3, 8, 0), id(4), t0 + 3 * SEC), Ok(true));
        // A configured peer that leaves stays listed.
        peers.add_configured(id(9), t0).ok();
        peers.on_status(id(9), report(1, 0), t0, &mut events).ok();
        peers.on_leave(id(9), 1, t0 + SEC, &mut events).ok();
        assert_eq!(peers.get(&id(9)).map(|p| p.state), Some(PeerState::Left));
    }

    #[test]
    fn any_order_of_the_same_updates_ends_in_the_same_table() {
        let t0 = Instant::now();
        // (who learns what from whom, or hears whom directly, at which second)
        #[derive(Clone, Copy)]
        enum Update {
            Hearsay(u8, u64),
            Status(u8, u64),
            Leave(u8, u64),
        }
        let updates = [
            Update::Hearsay(3, 1),
            Update::Status(3, 1),
            Update::Hearsay(4, 2),
            Update::Leave(3, 1),
            Update::Hearsay(3, 1),
            Update::Status(4, 2),
            Update::Hearsay(5, 1),
        ];
        let summary = |order: &[usize]| {
            let mut peers = table(t0);
            let mut events = Vec::new();
            for (step, index) in order.iter().enumerate() {
                let at = t0 + Duration::from_millis(10 * step as u64);
                match updates[*index] {
                    Update::Hearsay(m, boot) => {
                        peers.learn(&member(m, boot, 0), id(2), at).ok();
                    }
                    Update::Status(m, boot) => {
                        peers
                            .on_status(id(m), report(boot, 0), at, &mut events)
                            .ok();
                    }
                    Update::Leave(m, boot) => {
                        peers.on_leave(id(m), boot, at, &mut events).ok();
                    }
                }
            }
            let mut rows: Vec<(PeerId, PeerState)> =
                peers.iter().map(|p| (p.id, p.state)).collect();
            rows.sort_by_key(|row| row.0);
            rows
        };
        let reference = summary(&[0, 1, 2, 3, 4, 5, 6]);
        // Every rotation and the reverse of the updates (a leave before or
        // after the hearsay and the status of the same incarnation).
        let n = updates.len();
        for shift in 0..n {
            let order: Vec<usize> = (0..n).map(|k| (k + shift) % n).collect();
            assert_eq!(summary(&order), reference, "rotation {shift}");
        }
        let reversed: Vec<usize> = (0..n).rev().collect();
        assert_eq!(summary(&reversed), reference, "reversed");
        // 3 left (gone), 4 and 5 known.
        assert!(
            reference.iter().all(|(peer, _)| *peer != id(3)),
            "{reference:?}"
        );
        assert!(reference.iter().any(|(peer, _)| *peer == id(4)));
    }

    #[test]
    fn offline_learned_members_are_forgotten_configured_ones_never() {
        let t0 = Instant::now();
        let mut peers = table(t0).with_forget_after(Some(10 * SEC));
        let mut events = Vec::new();
        peers.add_configured(id(2), t0).ok();
        peers.learn(&member(3, 1, 0), id(2), t0).ok();
        peers.on_status(id(2), report(1, 0), t0, &mut events).ok();
        peers.on_status(id(3), report(1, 0), t0, &mut events).ok();
        events.clear();
        for second in 1..=20 {
            peers.tick(t0 + SEC * second, &mut events);
        }
        assert_eq!(kinds(&events), ["cut_off", "forgotten"]);
        assert!(peers.get(&id(3)).is_none());
        assert!(peers.get(&id(2)).is_some());
        assert_eq!(peers.take_removed(), vec![id(3)]);
        // Forgotten is not left: the same incarnation is welcome back.
        events.clear();
        assert!(
            peers
                .on_status(id(3), report(1, 5), t0 + 30 * SEC, &mut events)
                .is_ok()
        );
        let mut never = table(t0).with_forget_after(None);
        never.learn(&member(3, 1, 0), id(2), t0).ok();
        never.tick(t0 + 10_000 * SEC, &mut events);
        assert!(never.get(&id(3)).is_some());
    }

    #[test]
    fn the_digest_walks_the_table_round_robin() {
        let t0 = Instant::now();
        let mut peers = table(t0);
        let mut events = Vec::new();
        for n in 0..40u8 {
            peers
                .on_status(id(10 + n), report(1, 0), t0, &mut events)
                .ok();
        }
        let first = peers.digest(t0 + SEC);
        let second = peers.digest(t0 + SEC);
        assert_eq!(first.len(), MAX_MEMBERS_PER_MESSAGE);
        let all: std::collections::BTreeSet<_> =
            first.iter().chain(&second).map(|m| m.addr).collect();
        assert_eq!(all.len(), 40, "two digests cover all 40 members");
        assert!(first.iter().all(|m| m.heard_ms == 1000 && m.boot == 1));
        // Python peers and silent ones are not announced.
        peers
            .on_status(id(99), legacy_report(1.0, 1.0), t0, &mut events)
            .ok();
        assert!(
            !peers
                .digest(t0)
                .iter()
                .chain(&peers.digest(t0))
                .any(|m| m.addr == id(99).0)
        );
    }

    /// Brings `peers` online with statuses every second up to `until`.
    fn chatter(table: &mut PeerTable, peers: &[PeerId], from: Instant, until: Instant) {
        let mut at = from;
        let mut seq = 0;
        let mut ignored = Vec::new();
        while at <= until {
            for peer in peers {
                table
                    .on_status(*peer, report(1, seq), at, &mut ignored)
                    .ok();
            }
            table.tick(at, &mut ignored);
            seq += 1;
            at += SEC;
        }
    }

    #[test]
    fn a_peer_restarting_in_a_loop_is_reported_flapping_once_then_muted() {
        let t0 = Instant::now();
        let mut peers = table(t0);
        let mut events = Vec::new();
        peers.on_status(id(2), report(1, 0), t0, &mut events).ok();
        events.clear();
        // Each restart: a new boot seen at once = offline + back online.
        for boot in 2..=6 {
            let at = t0 + SEC * boot as u32;
            peers
                .on_status(id(2), report(boot, 0), at, &mut events)
                .ok();
        }
        let printed: Vec<_> = kinds(&events)
            .into_iter()
            .filter(|k| *k != "status")
            .collect();
        // Two restarts print their pairs, the third one's second change crosses
        // the limit (5 changes), then silence.
        assert_eq!(
            printed,
            [
                "offline", "online", "offline", "online", "offline", "flapping"
            ]
        );
        assert_eq!(peers.get(&id(2)).map(|p| p.flaps), Some(1));
        // Stable for the window: unmuted; it is online, the last line said offline.
        events.clear();
        let stable = t0 + 6 * SEC + DEFAULT_FLAP_WINDOW;
        peers
            .on_status(id(2), report(6, 1), stable, &mut events)
            .ok();
        peers.tick(stable, &mut events);
        let printed: Vec<_> = kinds(&events)
            .into_iter()
            .filter(|k| *k != "status")
            .collect();
        assert_eq!(printed, ["online"]);
        assert!(!peers.get(&id(2)).is_some_and(|p| p.flapping));
    }

    #[test]
    fn flap_rule_is_configurable() {
        let t0 = Instant::now();
        let rule = FlapRule {
            changes: 1,
            window: 10 * SEC,
        };
        let mut peers = table(t0).with_flap_rule(rule);
        let mut events = Vec::new();
        peers.on_status(id(2), report(1, 0), t0, &mut events).ok();
        peers
            .on_status(id(2), report(2, 0), t0 + SEC, &mut events)
            .ok();
        let printed: Vec<_> = kinds(&events)
            .into_iter()
            .filter(|k| *k != "status")
            .collect();
        assert_eq!(printed, ["offline", "flapping"]);
    }

    #[test]
    fn everyone_silent_at_once_is_one_cut_off_line_then_one_restored_line() {
        let t0 = Instant::now();
        let mut peers = table(t0);
        let all = [id(2), id(3), id(4)];
        chatter(&mut peers, &all, t0, t0 + 10 * SEC);
        let mut events = Vec::new();
        // Silence from everyone: their thresholds expire within one interval.
        for step in 1..=60 {
            peers.tick(
                t0 + 10 * SEC + Duration::from_millis(100 * step),
                &mut events,
            );
        }
        assert_eq!(kinds(&events), ["cut_off"], "{events:?}");
        assert_eq!(events[0], Event::CutOff { peers: 3 });
        assert!(peers.is_cut_off());
        assert!(peers.iter().all(|p| p.state == PeerState::Offline));
        // Contact returns: no back-online lines, one restored line.
        events.clear();
        let back = t0 + 30 * SEC;
        for (n, peer) in all.iter().enumerate() {
            peers
                .on_status(
                    *peer,
                    report(1, 100),
                    back + Duration::from_millis(100 * n as u64),
                    &mut events,
                )
                .ok();
        }
        peers.tick(back + SEC, &mut events);
        let printed: Vec<_> = kinds(&events)
            .into_iter()
            .filter(|k| *k != "status")
            .collect();
        assert_eq!(printed, ["restored"]);
        if let Some(Event::Restored { peers: n, after }) =
            events.iter().find(|e| matches!(e, Event::Restored { .. }))
        {
            assert_eq!(*n, 3);
            assert!(*after >= 20 * SEC && *after <= 21 * SEC, "{after:?}");
        }
        assert!(!peers.is_cut_off());
    }

    #[test]
    fn one_peer_silent_while_others_talk_is_an_ordinary_offline() {
        let t0 = Instant::now();
        let mut peers = table(t0);
        chatter(&mut peers, &[id(2), id(3), id(4)], t0, t0 + 5 * SEC);
        // 3 and 4 keep talking, 2 goes quiet.
        let mut events = Vec::new();
        let mut at = t0 + 6 * SEC;
        let mut seq = 100;
        while at <= t0 + 12 * SEC {
            for peer in [id(3), id(4)] {
                peers.on_status(peer, report(1, seq), at, &mut events).ok();
            }
            peers.tick(at, &mut events);
            peers.tick(at + Duration::from_millis(500), &mut events);
            seq += 1;
            at += SEC;
        }
        let printed: Vec<_> = kinds(&events)
            .into_iter()
            .filter(|k| *k != "status")
            .collect();
        assert_eq!(printed, ["offline"]);
        assert!(!peers.is_cut_off());
    }

    #[test]
    fn a_single_peer_is_never_a_cut_off() {
        let t0 = Instant::now();
        let mut peers = table(t0);
        chatter(&mut peers, &[id(2)], t0, t0 + 5 * SEC);
        let mut events = Vec::new();
        peers.tick(t0 + 9 * SEC, &mut events);
        assert_eq!(kinds(&events), ["offline"]);
    }

    #[test]
    fn a_declared_interval_counts_for_at_most_the_cap() {
        let t0 = Instant::now();
        let mut peers = table(t0);
        let mut events = Vec::new();
        let mut hour = report(1, 0);
        hour.interval = 3600 * SEC;
        peers.on_status(id(2), hour, t0, &mut events).ok();
        assert_eq!(peers.threshold_of(&id(2)), Some(3 * PEER_INTERVAL_CAP));
        events.clear();
        peers.tick(t0 + 3 * PEER_INTERVAL_CAP + SEC, &mut events);
        assert_eq!(kinds(&events), ["offline"]);
        // Our own longer interval lifts the cap: a cluster run at 5 min works.
        let slow = PeerTable::new(t0, 3 * SEC, 300 * SEC);
        assert_eq!(slow.timing_interval(3600 * SEC), 300 * SEC);
        assert_eq!(slow.timing_interval(2 * SEC), 2 * SEC);
    }

    /// Peers 2 and 3 (1 s) talk; a stranger (9) announced a 1 h interval and
    /// crashed (printed offline); then 2 and 3 fall silent together: cut off.
    fn cut_off_after_a_strangers_long_interval(t0: Instant) -> PeerTable {
        let mut peers = table(t0);
        let mut ignored = Vec::new();
        let mut hour = report(1, 0);
        hour.interval = 3600 * SEC;
        peers.on_status(id(9), hour, t0, &mut ignored).ok();
        peers.on_inbound_open(id(9));
        peers.on_inbound_closed(id(9), false, t0 + SEC);
        chatter(&mut peers, &[id(2), id(3)], t0, t0 + 5 * SEC);
        assert_eq!(peers.get(&id(9)).map(|p| p.state), Some(PeerState::Offline));
        let mut events = Vec::new();
        for step in 1..=70 {
            peers.tick(
                t0 + 5 * SEC + Duration::from_millis(100 * step),
                &mut events,
            );
        }
        assert_eq!(events, [Event::CutOff { peers: 3 }]);
        peers
    }

    #[test]
    fn a_strangers_long_interval_does_not_hold_contact_restored() {
        let t0 = Instant::now();
        let mut peers = cut_off_after_a_strangers_long_interval(t0);
        let mut events = Vec::new();
        let back = t0 + 20 * SEC;
        peers
            .on_status(id(2), report(1, 100), back, &mut events)
            .ok();
        peers
            .on_status(id(3), report(1, 100), back, &mut events)
            .ok();
        peers.tick(back + Duration::from_millis(10), &mut events);
        let printed: Vec<_> = kinds(&events)
            .into_iter()
            .filter(|k| *k != "status")
            .collect();
        assert_eq!(printed, ["restored"]);
        assert!(!peers.is_cut_off());
    }

    #[test]
    fn a_peer_silent_again_during_a_cut_off_is_never_dropped_without_a_line() {
        let t0 = Instant::now();
        let mut peers = cut_off_after_a_strangers_long_interval(t0);
        let mut events = Vec::new();
        // 2 comes back, then freezes before contact is declared restored.
        let back = t0 + 20 * SEC;
        peers
            .on_status(id(2), report(1, 100), back, &mut events)
            .ok();
        for step in 1..=50 {
            peers.tick(back + Duration::from_millis(100 * step), &mut events);
        }
        assert_eq!(peers.get(&id(2)).map(|p| p.state), Some(PeerState::Offline));
        assert!(peers.is_cut_off(), "still no contact with anyone");
        // 2 comes back for good; 3 never does.
        let again = t0 + 30 * SEC;
        let mut at = again;
        let mut seq = 200;
        while at <= again + 2 * PEER_INTERVAL_CAP {
            peers.on_status(id(2), report(1, seq), at, &mut events).ok();
            peers.tick(at, &mut events);
            seq += 1;
            at += SEC;
        }
        let printed: Vec<&Event> = events
            .iter()
            .filter(|e| !matches!(e, Event::Status { .. }))
            .collect();
        assert!(
            matches!(
                printed.as_slice(),
                [Event::Restored { peers: 1, .. }, Event::Offline { peer, .. }] if *peer == id(3)
            ),
            "{printed:?}"
        );
        // Every peer's state is what its last line said: 2 back (restored),
        // 3 offline, the stranger offline. A later freeze has its line too
        // (2 was the last one in contact: cut off again).
        assert_eq!(peers.get(&id(3)).map(|p| p.state), Some(PeerState::Offline));
        events.clear();
        peers.tick(at + 5 * SEC, &mut events);
        assert_eq!(kinds(&events), ["cut_off"]);
    }

    #[test]
    fn display_adds_the_port_only_when_not_5000() {
        assert_eq!(id(2).to_string(), "127.0.0.2");
        let other = PeerId::new(
            "127.0.0.2"
                .parse()
                .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            5001,
        );
        assert_eq!(other.to_string(), "127.0.0.2:5001");
        let mapped: IpAddr = "::ffff:10.1.2.3"
            .parse()
            .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(PeerId::new(mapped, 5000).to_string(), "10.1.2.3");
        let v6: IpAddr = "::1".parse().unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(PeerId::new(v6, 5000).to_string(), "::1");
        assert_eq!(PeerId::new(v6, 6000).to_string(), "[::1]:6000");
    }

    #[test]
    fn first_status_brings_a_peer_online_without_a_back_online_line() {
        let t0 = Instant::now();
        let mut peers = table(t0);
        let mut events = Vec::new();
        peers.on_status(id(2), report(1, 0), t0, &mut events).ok();
        assert_eq!(kinds(&events), ["status"]);
        assert!(matches!(events[0], Event::Status { first: true, .. }));
        assert_eq!(peers.get(&id(2)).map(|p| p.state), Some(PeerState::Online));
        events.clear();
        peers
            .on_status(id(2), report(1, 1), t0 + SEC, &mut events)
            .ok();
        assert!(matches!(events[0], Event::Status { first: false, .. }));
    }

    #[test]
    fn silence_longer_than_t_is_offline_once_then_back_online() {
        let t0 = Instant::now();
        let mut peers = table(t0);
        let mut events = Vec::new();
        peers.on_status(id(2), report(1, 0), t0, &mut events).ok();
        events.clear();
        peers.tick(t0 + 3 * SEC, &mut events);
        assert!(events.is_empty(), "exactly T is not yet offline");
        peers.tick(t0 + 3 * SEC + Duration::from_millis(100), &mut events);
        assert_eq!(kinds(&events), ["offline"]);
        if let Event::Offline {
            reason, last_seen, ..
        } = &events[0]
        {
            assert!(reason.starts_with("no status for 3.1 s"), "{reason}");
            assert_eq!(*last_seen, Some(3 * SEC + Duration::from_millis(100)));
        }
        events.clear();
        peers.tick(t0 + 10 * SEC, &mut events);
        assert!(events.is_empty(), "offline is printed once");
        peers
            .on_status(id(2), report(1, 1), t0 + 12 * SEC, &mut events)
            .ok();
        assert_eq!(kinds(&events), ["online", "status"]);
        if let Event::Online { away, .. } = &events[0] {
            assert!(*away > 8 * SEC);
        }
    }

    #[test]
    fn threshold_is_three_of_the_peers_own_intervals_when_longer() {
        let t0 = Instant::now();
        let mut peers = table(t0);
        let mut events = Vec::new();
        let mut slow = report(1, 0);
        slow.interval = 5 * SEC;
        peers.on_status(id(2), slow, t0, &mut events).ok();
        events.clear();
        peers.tick(t0 + 14 * SEC, &mut events);
        assert!(events.is_empty());
        peers.tick(t0 + 16 * SEC, &mut events);
        assert_eq!(kinds(&events), ["offline"]);
    }

    #[test]
    fn crash_is_offline_after_the_close_grace_unless_reopened() {
        let t0 = Instant::now();
        let mut peers = table(t0);
        let mut events = Vec::new();
        peers.on_status(id(2), report(1, 0), t0, &mut events).ok();
        peers.on_inbound_open(id(2));
        events.clear();
        peers.on_inbound_closed(id(2), false, t0 + SEC);
        peers.tick(t0 + SEC + Duration::from_millis(400), &mut events);
        assert!(events.is_empty());
        peers.tick(t0 + SEC + Duration::from_millis(500), &mut events);
        assert_eq!(kinds(&events), ["offline"]);

        // Reopened within the grace: nothing.
        let mut peers = table(t0);
        let mut events = Vec::new();
        peers.on_status(id(3), report(1, 0), t0, &mut events).ok();
        peers.on_inbound_open(id(3));
        peers.on_inbound_closed(id(3), false, t0 + SEC);
        peers.on_inbound_open(id(3));
        events.clear();
        peers.tick(t0 + 2 * SEC, &mut events);
        assert!(events.is_empty());
    }

    #[test]
    fn a_fast_restart_still_prints_offline_and_back_online() {
        let t0 = Instant::now();
        let mut peers = table(t0);
        let mut events = Vec::new();
        peers.on_status(id(2), report(1, 5), t0, &mut events).ok();
        events.clear();
        peers
            .on_status(id(2), report(2, 0), t0 + SEC, &mut events)
            .ok();
        assert_eq!(kinds(&events), ["offline", "online", "status"]);
        // An older boot afterwards is refused.
        events.clear();
        assert_eq!(
            peers.on_status(id(2), report(1, 6), t0 + SEC, &mut events),
            Err(Refusal::StaleBoot)
        );
        assert!(events.is_empty());
    }

    #[test]
    fn crash_then_restart_prints_one_pair() {
        let t0 = Instant::now();
        let mut peers = table(t0);
        let mut events = Vec::new();
        peers.on_status(id(2), report(1, 0), t0, &mut events).ok();
        peers.on_inbound_open(id(2));
        peers.on_inbound_closed(id(2), false, t0 + SEC);
        peers.tick(t0 + 2 * SEC, &mut events);
        peers.on_link_failed(
            id(2),
            LinkFailure::Refused,
            t0 + 2 * SEC,
            "connection refused",
            t0 + 2 * SEC,
            &mut events,
        );
        peers
            .on_status(id(2), report(2, 0), t0 + 3 * SEC, &mut events)
            .ok();
        assert_eq!(kinds(&events), ["status", "offline", "online", "status"]);
    }

    #[test]
    fn leave_is_left_and_silent_until_it_comes_back() {
        let t0 = Instant::now();
        let mut peers = table(t0);
        let mut events = Vec::new();
        peers.on_status(id(2), report(1, 0), t0, &mut events).ok();
        peers.on_inbound_open(id(2));
        events.clear();
        peers.on_leave(id(2), 1, t0 + SEC, &mut events).ok();
        peers.on_inbound_closed(id(2), true, t0 + SEC);
        peers.on_link_failed(
            id(2),
            LinkFailure::Refused,
            t0 + 2 * SEC,
            "connection refused",
            t0 + 2 * SEC,
            &mut events,
        );
        peers.tick(t0 + 60 * SEC, &mut events);
        assert_eq!(kinds(&events), ["left"]);
        events.clear();
        peers
            .on_status(id(2), report(2, 0), t0 + 61 * SEC, &mut events)
            .ok();
        assert_eq!(kinds(&events), ["online", "status"]);
    }

    #[test]
    fn an_unconfigured_peer_is_dropped_unless_it_sends_to_us() {
        let t0 = Instant::now();
        let mut peers = table(t0);
        let mut events = Vec::new();
        // Send-only: known through our connection alone.
        peers.add_configured(id(2), t0).ok();
        peers.on_connected(id(2), t0, &mut events);
        peers.unconfigure(id(2));
        assert!(peers.get(&id(2)).is_none());
        peers.tick(t0 + 60 * SEC, &mut events);
        assert!(!kinds(&events).contains(&"offline"), "{events:?}");
        // A peer that sends to us stays, as an unconfigured sender.
        peers.add_configured(id(3), t0).ok();
        peers.on_status(id(3), report(1, 0), t0, &mut events).ok();
        peers.unconfigure(id(3));
        assert_eq!(peers.get(&id(3)).map(|p| p.configured), Some(false));
        // Unknown and unconfigured ids are ignored; configuring again
        // restores the flag.
        peers.unconfigure(id(4));
        peers.on_status(id(6), report(1, 0), t0, &mut events).ok();
        peers.unconfigure(id(6));
        assert!(peers.get(&id(6)).is_some());
        peers.add_configured(id(3), t0).ok();
        assert_eq!(peers.get(&id(3)).map(|p| p.configured), Some(true));
        // With membership, a demoted peer stays, linked, no longer configured.
        peers.add_configured(id(5), t0).ok();
        peers.demote(id(5));
        let peer = peers
            .get(&id(5))
            .map(|p| (p.configured, p.linked, p.origin));
        assert_eq!(peer, Some((false, true, Origin::Contacted)));
    }

    #[test]
    fn refused_connect_is_offline_at_once_for_a_known_peer() {
        let t0 = Instant::now();
        let mut peers = table(t0);
        let mut events = Vec::new();
        peers.add_configured(id(2), t0).ok();
        peers.on_connected(id(2), t0, &mut events);
        assert_eq!(peers.get(&id(2)).map(|p| p.state), Some(PeerState::Online));
        peers.on_link_failed(
            id(2),
            LinkFailure::Refused,
            t0 + SEC,
            "connection refused",
            t0 + SEC,
            &mut events,
        );
        assert_eq!(kinds(&events), ["offline"]);
        // Refused again: printed once per change.
        peers.on_link_failed(
            id(2),
            LinkFailure::Refused,
            t0 + 2 * SEC,
            "connection refused",
            t0 + 2 * SEC,
            &mut events,
        );
        assert_eq!(kinds(&events), ["offline"]);
        // Accepted again: a send-only peer is back.
        peers.on_connected(id(2), t0 + 3 * SEC, &mut events);
        assert_eq!(kinds(&events), ["offline", "online"]);
    }

    #[test]
    fn a_refusal_of_an_attempt_older_than_the_last_status_is_stale() {
        let t0 = Instant::now();
        let mut peers = table(t0);
        let mut events = Vec::new();
        peers.add_configured(id(2), t0).ok();
        // Our connect began at t0 + 1 s, the peer's first status came at
        // t0 + 2 s, the refusal is processed at t0 + 3 s: older news.
        peers
            .on_status(id(2), report(1, 0), t0 + 2 * SEC, &mut events)
            .ok();
        events.clear();
        peers.on_link_failed(
            id(2),
            LinkFailure::Refused,
            t0 + SEC,
            "connection refused",
            t0 + 3 * SEC,
            &mut events,
        );
        assert!(events.is_empty(), "{events:?}");
        assert_eq!(peers.get(&id(2)).map(|p| p.state), Some(PeerState::Online));
        // Still a soft failure: the reason is kept for the silence verdict.
        assert_eq!(
            peers.get(&id(2)).and_then(|p| p.last_error.clone()),
            Some("connection refused".to_string())
        );
        // An attempt begun after that status and refused: offline at once.
        peers.on_link_failed(
            id(2),
            LinkFailure::Refused,
            t0 + 3 * SEC,
            "connection refused",
            t0 + 3 * SEC,
            &mut events,
        );
        assert_eq!(kinds(&events), ["offline"]);
    }

    #[test]
    fn a_failure_that_began_when_the_connection_was_accepted_is_hard() {
        let t0 = Instant::now();
        let mut peers = table(t0);
        let mut events = Vec::new();
        // A send-only peer: our accepted connection is its sign of life.
        peers.add_configured(id(2), t0).ok();
        peers.on_connected(id(2), t0 + SEC, &mut events);
        events.clear();
        // The connect began before it was accepted; the reset is judged from
        // the moment the connection was established, not from the connect.
        peers.on_link_failed(
            id(2),
            LinkFailure::Refused,
            t0 + SEC,
            "connection reset",
            t0 + 2 * SEC,
            &mut events,
        );
        assert_eq!(kinds(&events), ["offline"]);
    }

    #[test]
    fn a_timed_out_link_to_a_peer_that_still_talks_is_not_offline() {
        let t0 = Instant::now();
        let mut peers = table(t0);
        let mut events = Vec::new();
        peers
            .on_status(id(2), report(1, 0), t0 + 10 * SEC, &mut events)
            .ok();
        events.clear();
        let failure = LinkFailure::TimedOut;
        peers.on_link_failed(
            id(2),
            failure,
            t0 + 11 * SEC,
            "connection timed out",
            t0 + 11 * SEC,
            &mut events,
        );
        assert!(events.is_empty(), "it spoke to us 1 s ago");
        // Silent longer than the user timeout: the timeout is believed.
        peers.on_link_failed(
            id(2),
            failure,
            t0 + 14 * SEC + SEC / 2,
            "connection timed out",
            t0 + 14 * SEC + SEC / 2,
            &mut events,
        );
        assert_eq!(kinds(&events), ["offline"]);
    }

    #[test]
    fn no_offline_burst_at_startup() {
        let t0 = Instant::now();
        let mut peers = table(t0);
        let mut events = Vec::new();
        peers.add_configured(id(2), t0).ok();
        peers.on_link_failed(
            id(2),
            LinkFailure::Refused,
            t0 + SEC,
            "connection refused",
            t0 + SEC,
            &mut events,
        );
        peers.tick(t0 + 2 * SEC, &mut events);
        peers.tick(t0 + 3 * SEC, &mut events);
        assert!(events.is_empty(), "{events:?}");
        peers.tick(t0 + 3 * SEC + Duration::from_millis(100), &mut events);
        assert_eq!(kinds(&events), ["offline"]);
        if let Event::Offline {
            reason, last_seen, ..
        } = &events[0]
        {
            assert_eq!(reason, "never heard from (connection refused)");
            assert_eq!(*last_seen, None);
        }
    }

    #[test]
    fn soft_failures_wait_for_silence() {
        let t0 = Instant::now();
        let mut peers = table(t0);
        let mut events = Vec::new();
        peers.on_status(id(2), report(1, 0), t0, &mut events).ok();
        events.clear();
        peers.on_link_failed(
            id(2),
            LinkFailure::ConnectTimeout,
            t0 + SEC,
            "connect timed out",
            t0 + SEC,
            &mut events,
        );
        assert!(events.is_empty());
        peers.tick(t0 + 4 * SEC, &mut events);
        assert_eq!(kinds(&events), ["offline"]);
        if let Event::Offline { reason, .. } = &events[0] {
            assert!(reason.contains("connect timed out"), "{reason}");
        }
    }

    #[test]
    fn a_send_only_peer_stays_online_while_our_connection_holds() {
        let t0 = Instant::now();
        let mut peers = table(t0);
        let mut events = Vec::new();
        peers.add_configured(id(2), t0).ok();
        peers.on_connected(id(2), t0, &mut events);
        peers.tick(t0 + 60 * SEC, &mut events);
        assert!(events.is_empty());
        peers.on_disconnected(id(2), t0 + 60 * SEC);
        peers.tick(t0 + 63 * SEC, &mut events);
        assert!(
            events.is_empty(),
            "the end of the connection counts as a sign of life"
        );
        peers.tick(t0 + 63 * SEC + Duration::from_millis(100), &mut events);
        assert_eq!(kinds(&events), ["offline"]);
    }

    #[test]
    fn a_peer_that_sends_is_judged_by_its_statuses_not_our_connection() {
        let t0 = Instant::now();
        let mut peers = table(t0);
        let mut events = Vec::new();
        peers.add_configured(id(2), t0).ok();
        peers.on_status(id(2), report(1, 0), t0, &mut events).ok();
        peers.on_connected(id(2), t0, &mut events);
        events.clear();
        peers.tick(t0 + 4 * SEC, &mut events);
        assert_eq!(kinds(&events), ["offline"]);
    }

    #[test]
    fn legacy_senders_map_to_their_configured_port() {
        let t0 = Instant::now();
        let mut peers = table(t0);
        let other = PeerId::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)), 6000);
        peers.add_configured(other, t0).ok();
        assert_eq!(peers.legacy_id(other.0.ip()), other);
        assert_eq!(peers.legacy_id(id(3).0.ip()), id(3));
        let mut events = Vec::new();
        peers
            .on_status(other, legacy_report(1.0, 2.0), t0, &mut events)
            .ok();
        assert_eq!(peers.get(&other).map(|p| p.interval), Some(PYTHON_INTERVAL));
        assert!(!peers.speaks_v1(&other));
    }

    #[test]
    fn the_next_deadline_is_when_tick_would_act() {
        let t0 = Instant::now();
        let mut peers = table(t0);
        let mut events = Vec::new();
        assert_eq!(peers.next_deadline(t0), None);
        peers.on_status(id(2), report(1, 0), t0, &mut events).ok();
        let silence = peers.next_deadline(t0).unwrap_or(t0);
        assert!(silence > t0 + 3 * SEC && silence <= t0 + 3 * SEC + Duration::from_millis(2));
        // Nothing happens before it, the offline verdict right at it.
        events.clear();
        peers.tick(silence - Duration::from_millis(2), &mut events);
        assert!(events.is_empty());
        peers.tick(silence, &mut events);
        assert_eq!(kinds(&events), ["offline"]);
        // A close pulls it in to the close grace.
        let mut peers = table(t0);
        peers.on_status(id(3), report(1, 0), t0, &mut events).ok();
        peers.on_inbound_open(id(3));
        peers.on_inbound_closed(id(3), false, t0 + SEC);
        assert_eq!(peers.next_deadline(t0 + SEC), Some(t0 + SEC + CLOSE_GRACE));
    }

    /// A peer on 127.1.x.y (one per IP), for filling the table.
    fn nth(n: usize) -> PeerId {
        PeerId::new(
            IpAddr::V4(Ipv4Addr::new(127, 1, (n / 256) as u8, (n % 256) as u8)),
            5000,
        )
    }

    #[test]
    fn the_table_is_capped() {
        let t0 = Instant::now();
        let mut peers = table(t0);
        let mut events = Vec::new();
        for n in 0..MAX_PEERS {
            assert!(
                peers
                    .on_status(nth(n), report(1, 0), t0, &mut events)
                    .is_ok()
            );
        }
        let extra = PeerId::new(IpAddr::V4(Ipv4Addr::new(127, 2, 0, 1)), 5000);
        assert_eq!(
            peers.on_status(extra, report(1, 0), t0, &mut events),
            Err(Refusal::TableFull)
        );
        assert_eq!(peers.len(), MAX_PEERS);
        // Full of configured peers only: nothing can make room.
        let mut configured = table(t0);
        for n in 0..MAX_PEERS {
            assert_eq!(configured.add_configured(nth(n), t0), Ok(()));
        }
        assert_eq!(
            configured.add_configured(extra, t0),
            Err(Refusal::TableFull)
        );
    }

    #[test]
    fn a_full_table_makes_room_for_a_configured_peer() {
        let t0 = Instant::now();
        let mut peers = table(t0);
        let mut events = Vec::new();
        for n in 0..MAX_PEERS {
            assert!(
                peers
                    .on_status(nth(n), report(1, 0), t0, &mut events)
                    .is_ok()
            );
        }
        // All but nth(7) keep talking; nth(7) goes offline (T = 3 s).
        for n in (0..MAX_PEERS).filter(|n| *n != 7) {
            assert!(
                peers
                    .on_status(nth(n), report(1, 1), t0 + 2 * SEC, &mut events)
                    .is_ok()
            );
        }
        peers.tick(t0 + 4 * SEC, &mut events);
        assert_eq!(
            peers.get(&nth(7)).map(|p| p.state),
            Some(PeerState::Offline)
        );
        let _ = peers.take_removed();
        // A configured peer is never refused: the one offline the longest goes.
        let configured = PeerId::new(IpAddr::V4(Ipv4Addr::new(127, 2, 0, 1)), 5000);
        assert_eq!(peers.add_configured(configured, t0 + 4 * SEC), Ok(()));
        assert_eq!(peers.len(), MAX_PEERS);
        assert!(peers.get(&nth(7)).is_none());
        assert_eq!(peers.take_removed(), vec![nth(7)]);
        // Every stranger online: the one heard from least recently goes.
        assert!(
            peers
                .on_status(nth(8), report(1, 2), t0 + 3 * SEC, &mut events)
                .is_ok()
        );
        let _ = (0..MAX_PEERS)
            .filter(|n| *n != 7 && *n != 9)
            .map(|n| peers.on_status(nth(n), report(1, 3), t0 + 5 * SEC, &mut events))
            .count();
        let second = PeerId::new(IpAddr::V4(Ipv4Addr::new(127, 2, 0, 2)), 5000);
        assert_eq!(peers.add_configured(second, t0 + 5 * SEC), Ok(()));
        assert!(peers.get(&nth(9)).is_none(), "nth(9) was heard last at 2 s");
        assert!(peers.get(&configured).is_some_and(|p| p.configured));
        // A stranger still cannot push in.
        let stranger = PeerId::new(IpAddr::V4(Ipv4Addr::new(127, 2, 0, 3)), 5000);
        assert_eq!(
            peers.on_status(stranger, report(1, 0), t0 + 5 * SEC, &mut events),
            Err(Refusal::TableFull)
        );
    }

    #[test]
    fn one_address_holds_a_bounded_share_of_the_table() {
        let t0 = Instant::now();
        let mut peers = table(t0);
        let mut events = Vec::new();
        let ip = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 9));
        let port = |p: usize| PeerId::new(ip, 6000 + p as u16);
        for p in 0..MAX_PEERS_PER_IP {
            assert!(
                peers
                    .on_status(port(p), report(1, 0), t0, &mut events)
                    .is_ok()
            );
        }
        let over = port(MAX_PEERS_PER_IP);
        let refused = peers.on_status(over, report(1, 0), t0, &mut events);
        assert_eq!(refused, Err(Refusal::IpShareFull(ip)));
        assert_eq!(refused.map_err(|r| r.reason()), Err("ip_share_full"));
        // Known entries keep talking; hearsay cannot add more on that IP.
        assert!(
            peers
                .on_status(port(0), report(1, 1), t0, &mut events)
                .is_ok()
        );
        let hearsay = Member {
            addr: over.0,
            name: None,
            boot: 1,
            heard_ms: 0,
        };
        assert_eq!(
            peers.learn(&hearsay, id(2), t0),
            Err(Refusal::IpShareFull(ip))
        );
        // A configured peer on that IP is never refused; other IPs are free.
        assert_eq!(peers.add_configured(over, t0), Ok(()));
        assert!(
            peers
                .on_status(id(3), report(1, 0), t0, &mut events)
                .is_ok()
        );
    }

    #[test]
    fn hearsay_never_names_an_address_no_node_can_have() {
        let t0 = Instant::now();
        let mut peers = table(t0);
        for bad in [
            "0.0.0.0:5000",
            "0.1.2.3:5000",
            "224.0.0.1:5000",
            "239.255.255.250:5000",
            "255.255.255.255:5000",
            "[::]:5000",
            "[ff02::1]:5000",
            "[::ffff:0.0.0.0]:5000",
            "127.0.0.5:0",
        ] {
            let addr: SocketAddr = bad.parse().unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
            let member = Member {
                addr,
                name: None,
                boot: 1,
                heard_ms: 0,
            };
            let refused = peers.learn(&member, id(2), t0);
            assert_eq!(refused, Err(Refusal::BadMember(addr)), "{bad}");
        }
        assert!(peers.is_empty());
        assert_eq!(peers.learn(&member(5, 1, 0), id(2), t0), Ok(true));
    }

    #[test]
    fn one_source_learns_a_bounded_number_of_members_per_window() {
        let t0 = Instant::now();
        let mut peers = table(t0);
        let named = |n: usize| Member {
            addr: SocketAddr::new(
                IpAddr::V4(Ipv4Addr::new(127, 3, (n / 256) as u8, (n % 256) as u8)),
                5000,
            ),
            name: None,
            boot: 1,
            heard_ms: 0,
        };
        let teacher = id(2);
        for n in 0..MAX_LEARNED_PER_SOURCE {
            assert_eq!(peers.learn(&named(n), teacher, t0), Ok(true), "{n}");
        }
        let over = peers.learn(&named(100), teacher, t0 + SEC);
        assert_eq!(over, Err(Refusal::LearnBudget(teacher.0.ip())));
        assert_eq!(over.map_err(|r| r.reason()), Err("learn_budget"));
        // Known members cost nothing; another source has its own budget.
        assert_eq!(peers.learn(&named(0), teacher, t0 + SEC), Ok(false));
        assert_eq!(peers.learn(&named(100), id(3), t0 + SEC), Ok(true));
        // The next window, the source may add again.
        let later = t0 + LEARN_WINDOW;
        assert_eq!(peers.learn(&named(101), teacher, later), Ok(true));
        assert_eq!(peers.len(), MAX_LEARNED_PER_SOURCE + 2);
    }
}
