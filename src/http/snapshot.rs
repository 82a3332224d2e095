//! The snapshot every answer is rendered from: [`Snapshot::take`] (and
//! [`HistorySnapshot::take`]) copy the plain data the answers need out of
//! the shared state while the lock is held, in microseconds; the rendering
//! (`/status`, `/metrics`, `/history`), which takes milliseconds at 1,024
//! peers, runs after the lock is released, so no request holds up the
//! listener or the sender. The renderers read nothing else. These are node
//! data kept here for now: the one call that takes them is `routes::snapshot`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::node::View;
use crate::node::sample::Sample;
use crate::peers::alerts::Firing;
use crate::peers::{Origin, Peer, PeerId, PeerState, Subject};
use crate::proto::Dialect;
use crate::proto::health::Health;
use crate::report::history::{History, Point, Ring};
use crate::time::unix_seconds;

/// What `/status` and `/metrics` say, copied out of the shared state.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub name: String,
    pub listening: Vec<String>,
    pub started: Instant,
    pub cut_off: bool,
    /// This node's last sample, its host's health included.
    pub own: Option<Sample>,
    pub stats: StatsSnapshot,
    pub output_dropped: u64,
    /// In table order; the renderers sort them.
    pub peers: Vec<PeerSnapshot>,
    /// The `--alert` rules firing now, for this node and by peer.
    pub alerts: BTreeMap<Subject, Vec<Firing>>,
}

/// The node's counters.
#[derive(Debug, Clone)]
pub struct StatsSnapshot {
    pub received: u64,
    pub sent: u64,
    pub open_connections: u64,
    pub rejected: BTreeMap<&'static str, u64>,
}

/// One peer's fields that `/status` and `/metrics` show (named as in [`Peer`]).
#[derive(Debug, Clone)]
pub struct PeerSnapshot {
    pub id: PeerId,
    pub name: Option<String>,
    pub configured: bool,
    pub state: PeerState,
    pub since: Instant,
    pub last_status: Option<Instant>,
    pub last_contact: Option<Instant>,
    pub interval: Duration,
    pub legacy: bool,
    pub cpu: Option<f64>,
    pub memory: Option<f64>,
    /// The rest of its last reported health (empty while it sent none).
    pub health: Health,
    pub last_error: Option<String>,
    pub flapping: bool,
    pub changes_total: u64,
    pub flaps: u64,
    pub origin: Origin,
    pub known_at: Instant,
}

impl Snapshot {
    /// Copies what the answers need; call it with the lock held, render after.
    pub fn take(shared: &View<'_>) -> Snapshot {
        Snapshot {
            name: shared.name.to_string(),
            listening: shared.listening.to_vec(),
            started: shared.table.started(),
            cut_off: shared.table.is_cut_off(),
            own: shared.own.clone(),
            stats: StatsSnapshot {
                received: shared.stats.received,
                sent: shared.stats.sent,
                open_connections: shared.stats.open_connections,
                rejected: shared.stats.rejected.clone(),
            },
            output_dropped: shared.output_dropped,
            peers: shared.table.iter().map(PeerSnapshot::of).collect(),
            alerts: shared.table.alerts().firing_by_subject(),
        }
    }

    /// The alerts firing for `subject`, in rule order.
    pub fn alerts_of(&self, subject: Subject) -> &[Firing] {
        self.alerts.get(&subject).map_or(&[], Vec::as_slice)
    }

    /// The peers in a stable order (by address), as every renderer lists them.
    pub fn peers_by_address(&self) -> Vec<&PeerSnapshot> {
        let mut peers: Vec<&PeerSnapshot> = self.peers.iter().collect();
        peers.sort_by_key(|peer| peer.id);
        peers
    }
}

impl PeerSnapshot {
    fn of(peer: &Peer) -> PeerSnapshot {
        PeerSnapshot {
            id: peer.id,
            name: peer.name.clone(),
            configured: peer.membership.configured,
            state: peer.state,
            since: peer.since,
            last_status: peer.signals.last_status,
            last_contact: peer.signals.last_contact,
            interval: peer.interval,
            legacy: peer.incarnation.dialect == Dialect::Python,
            cpu: peer.cpu,
            memory: peer.memory,
            health: peer.health.clone(),
            last_error: peer.signals.last_error.clone(),
            flapping: peer.flap.flapping,
            changes_total: peer.flap.changes_total,
            flaps: peer.flap.flaps,
            origin: peer.membership.origin,
            known_at: peer.membership.known_at,
        }
    }

    /// The last sign of life: a status, or any other contact, whichever is newer.
    pub fn last_seen(&self) -> Option<Instant> {
        match (self.last_status, self.last_contact) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }
}

/// What `/history?since=` says, copied out of the shared state: only the
/// points asked for.
#[derive(Debug, Clone)]
pub struct HistorySnapshot {
    pub now: u64,
    pub since: u64,
    pub name: String,
    pub own: Vec<Point>,
    /// In table order; the renderer sorts them.
    pub peers: Vec<(PeerId, Vec<Point>)>,
}

impl HistorySnapshot {
    /// Copies the points of the last [`HISTORY_WINDOW`](crate::limits::HISTORY_WINDOW) not older than
    /// `since` (unix seconds); call it with the lock held, render after.
    pub fn take(shared: &View<'_>, since: u64) -> HistorySnapshot {
        let now = unix_seconds();
        let since = since.max(History::window_start(now));
        let points = |ring: Option<&Ring>| -> Vec<Point> {
            ring.into_iter()
                .flat_map(|ring| ring.points_since(since))
                .collect()
        };
        HistorySnapshot {
            now,
            since,
            name: shared.name.to_string(),
            own: points(shared.history.own()),
            peers: shared
                .table
                .iter()
                .map(|peer| (peer.id, points(shared.history.peer(&peer.id))))
                .collect(),
        }
    }
}
