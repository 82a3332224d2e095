//! One peer as the table knows it ([`Peer`]), and the two transitions every
//! rule ends in: [`go_offline`] and [`come_alive`]. Both pass the change
//! through flap damping before it becomes an event.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::flap::announce;
use super::{Event, FlapRule, Origin, PeerId, PeerState};

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
    pub(super) changes: VecDeque<Instant>,
    /// Muted for flapping.
    pub flapping: bool,
    /// State changes so far (online, offline, left), muted ones included.
    pub changes_total: u64,
    /// Times it was reported flapping.
    pub flaps: u64,
    /// The state last announced on stdout (differs from `state` while muted).
    pub(super) announced: PeerState,
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
    pub(super) fn new(id: PeerId, configured: bool, interval: Duration, now: Instant) -> Peer {
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
    pub(super) fn send_only(&self) -> bool {
        self.last_status.is_none()
    }

    /// The last sign of life, counting an open outbound connection as "now"
    /// for a send-only peer.
    pub(super) fn last_sign_of_life(&self, now: Instant) -> Option<Instant> {
        if self.send_only() && self.outbound_up {
            Some(now)
        } else if self.send_only() {
            self.last_contact
        } else {
            self.last_status
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

pub(super) fn come_alive(peer: &mut Peer, now: Instant, rule: FlapRule, events: &mut Vec<Event>) {
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
