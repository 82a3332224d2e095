//! One peer as the table knows it ([`Peer`]), and the two transitions every
//! rule ends in: [`go_offline`] and [`come_alive`]. Both pass the change
//! through flap damping before it becomes an event.

use crate::proto::Dialect;
use crate::proto::health::Health;
use std::time::{Duration, Instant};

use super::flap::{FlapState, announce};
use super::membership::Membership;
use super::{Event, FlapRule, PeerId, PeerState};

/// Everything known about one peer, grouped by what each part is for: the
/// fields at the top are what every line and view shows; the groups are the
/// bookkeeping of one rule each. Callers outside peers/ get a `&Peer` from
/// the table and only read; what only the rules need is `pub(super)`.
#[derive(Debug, Clone)]
pub struct Peer {
    pub id: PeerId,
    pub name: Option<String>,
    pub state: PeerState,
    /// When `state` last changed.
    pub since: Instant,
    /// The peer's own send period (5 s for Python peers), as it counts for
    /// timing (see [`PeerTable::timing_interval`](super::PeerTable::timing_interval)).
    pub interval: Duration,
    /// Its last reported load, in percent.
    pub cpu: Option<f64>,
    pub memory: Option<f64>,
    /// The rest of its last reported health (load, disks, network...).
    pub health: Health,
    /// Which run of the peer we hear.
    pub incarnation: Incarnation,
    /// Its signs of life and the state of our connections with it.
    pub signals: Signals,
    /// Its state changes, for flap damping.
    pub flap: FlapState,
    /// How it became known and what we owe it.
    pub membership: Membership,
    /// Times it went offline (the sender refreshes its connection when this
    /// changes; see [`PeerTable::offline_count`](super::PeerTable::offline_count)).
    pub(super) offline_count: u64,
}

/// Which run of a peer we hear: a v1 peer announces a boot (new at every
/// start) and a seq within it; the Python original has neither.
#[derive(Debug, Clone, Default)]
pub struct Incarnation {
    /// Latest incarnation seen, and the highest seq in it.
    pub boot: Option<u64>,
    pub seq: Option<u64>,
    /// What its last status spoke: `Python` for the original's bare status,
    /// `V1` for a v1 status; `Unknown` before the first. (Whether it has
    /// ever spoken v1 is `boot.is_some()`: a peer may do both.)
    pub dialect: Dialect,
}

/// What says the peer is alive, or is not: its statuses, our connections to
/// it, its inbound v1 connections.
#[derive(Debug, Clone, Default)]
pub struct Signals {
    /// Last status received.
    pub last_status: Option<Instant>,
    /// Last time one of our connections to it was accepted or delivered a status.
    pub last_contact: Option<Instant>,
    /// Why it went offline, or the last failure of our connection to it.
    pub last_error: Option<String>,
    /// One of our connections to it is established right now.
    pub(super) outbound_up: bool,
    /// Open inbound v1 connections identified as this peer.
    pub(super) inbound_open: u32,
    /// When its last inbound v1 connection closed without a leave (the close
    /// grace runs from here).
    pub(super) closed_at: Option<Instant>,
}

impl Peer {
    pub(super) fn new(id: PeerId, configured: bool, interval: Duration, now: Instant) -> Peer {
        Peer {
            id,
            name: None,
            state: PeerState::Unknown,
            since: now,
            interval,
            cpu: None,
            memory: None,
            health: Health::default(),
            incarnation: Incarnation::default(),
            signals: Signals::default(),
            flap: FlapState::default(),
            membership: Membership::new(configured, now),
            offline_count: 0,
        }
    }

    /// Has never sent us a status: our connections are its only signs of life.
    pub(super) fn send_only(&self) -> bool {
        self.signals.last_status.is_none()
    }

    /// The last sign of life, counting an open outbound connection as "now"
    /// for a send-only peer.
    pub(super) fn last_sign_of_life(&self, now: Instant) -> Option<Instant> {
        if self.send_only() && self.signals.outbound_up {
            Some(now)
        } else if self.send_only() {
            self.signals.last_contact
        } else {
            self.signals.last_status
        }
    }
}

pub(super) fn go_offline(
    peer: &mut Peer,
    reason: String,
    now: Instant,
    rule: FlapRule,
    events: &mut Vec<Event>,
) {
    // The same source of "last heard" as the silence rule uses.
    let last_seen = if peer.send_only() {
        peer.signals.last_contact
    } else {
        peer.signals.last_status
    }
    .map(|seen| now.duration_since(seen));
    peer.state = PeerState::Offline;
    peer.since = now;
    peer.offline_count += 1;
    peer.flap.changes_total += 1;
    peer.signals.outbound_up = false;
    peer.signals.last_error = Some(reason.clone());
    let event = Event::Offline {
        peer: peer.id,
        name: peer.name.clone(),
        reason,
        last_seen,
    };
    announce(peer, event, now, rule, events);
}

pub(super) fn come_alive(peer: &mut Peer, now: Instant, rule: FlapRule, events: &mut Vec<Event>) {
    match peer.state {
        PeerState::Online => {}
        PeerState::Unknown => {
            peer.flap.changes_total += 1;
            peer.state = PeerState::Online;
            peer.flap.announced = PeerState::Online;
            peer.since = now;
        }
        PeerState::Offline | PeerState::Left => {
            let away = now.duration_since(peer.since);
            peer.flap.changes_total += 1;
            peer.state = PeerState::Online;
            peer.since = now;
            peer.signals.last_error = None;
            let event = Event::Online {
                peer: peer.id,
                name: peer.name.clone(),
                away,
            };
            announce(peer, event, now, rule, events);
        }
    }
}
