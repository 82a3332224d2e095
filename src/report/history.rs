//! The last quarter of an hour of every peer, and of this node, for the web
//! dashboard's charts (`GET /history`).
//!
//! Each peer has a fixed-size ring of [`HISTORY_POINTS`] points, one per
//! [`HISTORY_STEP`] at most: statuses arriving faster than that are merged
//! into the current point, so memory does not depend on anyone's interval and
//! the whole history is bounded by [`MAX_PEERS`] rings. A ring is allocated
//! once, on a peer's first record; recording into it never allocates, so the
//! listener's hot path (one status) stays a hash lookup and a few stores.
//!
//! Besides CPU and memory, a point keeps the 1 minute load and the fullest
//! filesystem's percent (issue 14) in the padding a point had anyway: a
//! point stays 16 bytes ([`Levels`]).
//!
//! Time is passed in as unix seconds: tests need no clock, and the page can
//! put points on a wall-clock axis without knowing the node's monotonic time.

use std::collections::HashMap;

use crate::limits::{HISTORY_POINTS, HISTORY_STEP, HISTORY_WINDOW, MAX_PEERS};
use crate::peers::{PeerId, PeerState};
use crate::proto::health::Health;

/// One point of a chart: the state at `at` and, while there were statuses,
/// the latest CPU and memory reported (percent, in tenths, to keep points
/// small), the 1 minute load (hundredths, [`NO_LOAD`] when unknown) and the
/// fullest filesystem (whole percent, [`NO_DISK`] when unknown): sentinels
/// rather than `Option`s, which would make a point 24 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Point {
    /// Unix seconds of the last record merged into this point.
    pub at: u32,
    pub cpu_tenths: Option<u16>,
    pub memory_tenths: Option<u16>,
    pub load1_hundredths: u16,
    pub disk_percent: u8,
    pub state: PeerState,
}

/// `load1_hundredths` when the load is unknown; loads above 655.34 are
/// drawn at 655.34.
pub const NO_LOAD: u16 = u16::MAX;
/// `disk_percent` when no filesystem was reported.
pub const NO_DISK: u8 = u8::MAX;

/// The health a chart shows besides CPU and memory, as a status reports it.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Levels {
    pub load1: Option<f64>,
    /// The fullest filesystem's percent used.
    pub disk: Option<f64>,
}

/// What a status adds to its peer's newest point: CPU and memory (percent)
/// and the levels; the latest status in a step wins.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StatusPoint {
    pub cpu: f64,
    pub memory: f64,
    pub levels: Levels,
}

impl Levels {
    pub fn of(health: &Health) -> Levels {
        Levels {
            load1: health.load.map(|[one, _, _]| one),
            disk: health.fullest().map(|fs| fs.used),
        }
    }

    fn encoded(self) -> (u16, u8) {
        let load = self
            .load1
            .filter(|l| l.is_finite())
            .map_or(NO_LOAD, |load| {
                (load.clamp(0.0, f64::from(NO_LOAD - 1) / 100.0) * 100.0).round() as u16
            });
        let disk = self
            .disk
            .filter(|d| d.is_finite())
            .map_or(NO_DISK, |disk| disk.clamp(0.0, 100.0).round() as u8);
        (load, disk)
    }
}

impl Point {
    pub fn load1(&self) -> Option<f64> {
        (self.load1_hundredths != NO_LOAD).then(|| f64::from(self.load1_hundredths) / 100.0)
    }

    pub fn disk(&self) -> Option<f64> {
        (self.disk_percent != NO_DISK).then(|| f64::from(self.disk_percent))
    }

    pub fn cpu(&self) -> Option<f64> {
        self.cpu_tenths.map(|t| f64::from(t) / 10.0)
    }

    pub fn memory(&self) -> Option<f64> {
        self.memory_tenths.map(|t| f64::from(t) / 10.0)
    }
}

/// Percent (0..=100, validated on the wire) in tenths.
fn tenths(percent: f64) -> u16 {
    (percent.clamp(0.0, 100.0) * 10.0).round() as u16
}

/// How bad a state is for a chart: within one step the worst state seen is
/// kept, so an outage shorter than a step still shows.
fn severity(state: PeerState) -> u8 {
    match state {
        PeerState::Online => 0,
        PeerState::Unknown => 1,
        PeerState::Left => 2,
        PeerState::Offline => 3,
    }
}

/// A fixed-size ring of points, oldest first when read.
#[derive(Debug, Clone)]
pub struct Ring {
    points: Box<[Option<Point>; HISTORY_POINTS]>,
    /// Index of the newest point.
    newest: usize,
}

impl Ring {
    fn new() -> Ring {
        Ring {
            points: Box::new([None; HISTORY_POINTS]),
            newest: HISTORY_POINTS - 1,
        }
    }

    /// Adds a record: merged into the newest point when it falls in the same
    /// step (or earlier: a wall clock stepped back), else a new point that
    /// replaces the oldest.
    pub fn record(&mut self, at: u64, values: Option<(f64, f64)>, state: PeerState) {
        let at = u32::try_from(at).unwrap_or(u32::MAX);
        let step = HISTORY_STEP.as_secs() as u32;
        let (cpu_tenths, memory_tenths) = match values {
            Some((cpu, memory)) => (Some(tenths(cpu)), Some(tenths(memory))),
            None => (None, None),
        };
        if let Some(last) = &mut self.points[self.newest]
            && at / step <= last.at / step
        {
            last.at = last.at.max(at);
            if values.is_some() {
                last.cpu_tenths = cpu_tenths;
                last.memory_tenths = memory_tenths;
            }
            if severity(state) > severity(last.state) {
                last.state = state;
            }
            return;
        }
        self.newest = (self.newest + 1) % HISTORY_POINTS;
        self.points[self.newest] = Some(Point {
            at,
            cpu_tenths,
            memory_tenths,
            load1_hundredths: NO_LOAD,
            disk_percent: NO_DISK,
            state,
        });
    }

    /// Sets the newest point's load and disk: called after the `record` of
    /// the status that reported them, so the latest status's levels win, as
    /// its CPU and memory do.
    pub fn set_levels(&mut self, levels: Levels) {
        if let Some(last) = &mut self.points[self.newest] {
            (last.load1_hundredths, last.disk_percent) = levels.encoded();
        }
    }

    /// The points not older than `since` (unix seconds), oldest first.
    pub fn points_since(&self, since: u64) -> impl Iterator<Item = Point> + '_ {
        (1..=HISTORY_POINTS)
            .filter_map(move |offset| self.points[(self.newest + offset) % HISTORY_POINTS])
            .filter(move |point| u64::from(point.at) >= since)
    }
}

/// Every peer's ring and this node's.
#[derive(Debug, Default)]
pub struct History {
    peers: HashMap<PeerId, Ring>,
    own: Option<Ring>,
}

impl History {
    /// Records a peer's status (its `status`) or state change, in one lookup
    /// of its ring (this runs for every status). A peer seen for the first
    /// time gets a ring; when [`MAX_PEERS`] rings exist, the rings of peers
    /// `known` no longer holds are dropped first (the peer table is bounded by
    /// the same constant, so there is then room).
    pub fn record(
        &mut self,
        peer: PeerId,
        at: u64,
        status: Option<StatusPoint>,
        state: PeerState,
        known: impl Fn(&PeerId) -> bool,
    ) {
        let apply = |ring: &mut Ring| {
            ring.record(at, status.map(|s| (s.cpu, s.memory)), state);
            if let Some(status) = status {
                ring.set_levels(status.levels);
            }
        };
        if let Some(ring) = self.peers.get_mut(&peer) {
            apply(ring);
            return;
        }
        if self.peers.len() >= MAX_PEERS {
            self.peers.retain(|id, _| known(id));
            if self.peers.len() >= MAX_PEERS {
                return;
            }
        }
        let mut ring = Ring::new();
        apply(&mut ring);
        self.peers.insert(peer, ring);
    }

    /// The same for this node's newest point (after [`History::record_own`]).
    pub fn set_own_levels(&mut self, levels: Levels) {
        if let Some(ring) = &mut self.own {
            ring.set_levels(levels);
        }
    }

    /// Drops a peer's ring (the table forgot it).
    pub fn forget(&mut self, peer: &PeerId) {
        self.peers.remove(peer);
    }

    /// Records this node's own sample.
    pub fn record_own(&mut self, at: u64, cpu: f64, memory: f64) {
        self.own
            .get_or_insert_with(Ring::new)
            .record(at, Some((cpu, memory)), PeerState::Online);
    }

    /// A peer's ring.
    pub fn peer(&self, peer: &PeerId) -> Option<&Ring> {
        self.peers.get(peer)
    }

    /// This node's ring.
    pub fn own(&self) -> Option<&Ring> {
        self.own.as_ref()
    }

    #[cfg(test)]
    pub fn peers(&self) -> impl Iterator<Item = (&PeerId, &Ring)> {
        self.peers.iter()
    }

    /// Oldest unix second a chart shows at `now`.
    pub fn window_start(now: u64) -> u64 {
        now.saturating_sub(HISTORY_WINDOW.as_secs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    const T0: u64 = 1_764_412_800;

    fn peer(last: u8) -> PeerId {
        PeerId::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)), 5000)
    }

    fn all(ring: &Ring) -> Vec<Point> {
        ring.points_since(0).collect()
    }

    fn status(percent: f64) -> StatusPoint {
        StatusPoint {
            cpu: percent,
            memory: percent,
            levels: Levels::default(),
        }
    }

    #[test]
    fn a_status_records_its_values_and_levels_and_the_latest_in_a_step_wins() {
        let mut history = History::default();
        let levels = Levels {
            load1: Some(1.5),
            disk: Some(71.3),
        };
        let reported = StatusPoint {
            cpu: 12.3,
            memory: 45.6,
            levels,
        };
        history.record(peer(1), T0, Some(reported), PeerState::Online, |_| true);
        let first = all(history.peer(&peer(1)).expect("a ring"));
        assert_eq!(first.len(), 1);
        assert_eq!(
            (first[0].cpu(), first[0].memory()),
            (Some(12.3), Some(45.6))
        );
        assert_eq!((first[0].load1(), first[0].disk()), (Some(1.5), Some(71.0)));
        // A state change in the same step keeps the status's values; the
        // next status in it replaces values and levels alike.
        history.record(peer(1), T0 + 1, None, PeerState::Offline, |_| true);
        history.record(
            peer(1),
            T0 + 2,
            Some(status(5.0)),
            PeerState::Online,
            |_| true,
        );
        let point = all(history.peer(&peer(1)).expect("a ring"))[0];
        assert_eq!(point.cpu(), Some(5.0));
        assert_eq!((point.load1(), point.disk()), (None, None));
        assert_eq!(
            point.state,
            PeerState::Offline,
            "the worst state in the step"
        );
    }

    #[test]
    fn statuses_within_one_step_merge_into_one_point() {
        let mut ring = Ring::new();
        ring.record(T0, Some((10.0, 20.0)), PeerState::Online);
        ring.record(T0 + 1, Some((11.0, 21.0)), PeerState::Online);
        ring.record(T0 + 4, Some((12.34, 22.0)), PeerState::Online);
        let points = all(&ring);
        assert_eq!(points.len(), 1);
        assert_eq!(points[0].at, (T0 + 4) as u32);
        assert_eq!(points[0].cpu(), Some(12.3));
        assert_eq!(points[0].memory(), Some(22.0));
        ring.record(T0 + 5, Some((1.0, 2.0)), PeerState::Online);
        assert_eq!(all(&ring).len(), 2);
    }

    #[test]
    fn an_outage_shorter_than_a_step_still_shows() {
        let mut ring = Ring::new();
        ring.record(T0, Some((10.0, 20.0)), PeerState::Online);
        ring.record(T0 + 1, None, PeerState::Offline);
        ring.record(T0 + 2, Some((11.0, 21.0)), PeerState::Online);
        let points = all(&ring);
        assert_eq!(points.len(), 1);
        assert_eq!(points[0].state, PeerState::Offline);
        assert_eq!(points[0].cpu(), Some(11.0), "the latest values are kept");
    }

    #[test]
    fn the_ring_keeps_the_newest_points_whatever_the_interval() {
        let mut ring = Ring::new();
        // A status every 100 ms for an hour: 36,000 records.
        for tenth in 0..36_000u64 {
            ring.record(T0 + tenth / 10, Some((5.0, 5.0)), PeerState::Online);
        }
        let points = all(&ring);
        assert_eq!(points.len(), HISTORY_POINTS);
        assert_eq!(u64::from(points[HISTORY_POINTS - 1].at), T0 + 3599);
        assert!(points.windows(2).all(|w| w[0].at < w[1].at), "oldest first");
        let step = HISTORY_STEP.as_secs();
        assert_eq!(
            u64::from(points[0].at) / step,
            (T0 + 3600) / step - HISTORY_POINTS as u64,
            "the ring covers exactly the last {HISTORY_POINTS} steps"
        );
    }

    #[test]
    fn a_clock_stepping_back_merges_instead_of_disordering() {
        let mut ring = Ring::new();
        ring.record(T0 + 100, Some((1.0, 1.0)), PeerState::Online);
        ring.record(T0, Some((2.0, 2.0)), PeerState::Online);
        let points = all(&ring);
        assert_eq!(points.len(), 1);
        assert_eq!(u64::from(points[0].at), T0 + 100);
        assert_eq!(points[0].cpu(), Some(2.0));
    }

    #[test]
    fn points_since_filters_by_time() {
        let mut ring = Ring::new();
        for step in 0..10u64 {
            ring.record(T0 + step * 5, Some((1.0, 1.0)), PeerState::Online);
        }
        assert_eq!(ring.points_since(T0 + 25).count(), 5);
        assert_eq!(ring.points_since(T0 + 1000).count(), 0);
    }

    #[test]
    fn rings_are_bounded_by_max_peers_and_forgotten_peers_make_room() {
        let mut history = History::default();
        let ids: Vec<PeerId> = (0..MAX_PEERS as u32 + 1)
            .map(|n| PeerId::new(IpAddr::V4(Ipv4Addr::from(0x7f00_0000 + n)), 5000))
            .collect();
        for id in &ids[..MAX_PEERS] {
            history.record(*id, T0, Some(status(1.0)), PeerState::Online, |_| true);
        }
        let newcomer = ids[MAX_PEERS];
        history.record(newcomer, T0, None, PeerState::Online, |_| true);
        assert!(history.peer(&newcomer).is_none(), "no room while all known");
        let gone = ids[0];
        history.record(newcomer, T0, None, PeerState::Online, |id| *id != gone);
        assert!(history.peer(&newcomer).is_some());
        assert!(history.peer(&gone).is_none());
        assert_eq!(history.peers().count(), MAX_PEERS);
        history.forget(&newcomer);
        assert!(history.peer(&newcomer).is_none());
    }

    #[test]
    fn load_and_disk_ride_along_and_the_latest_status_wins() {
        let mut ring = Ring::new();
        ring.record(T0, Some((10.0, 20.0)), PeerState::Online);
        assert_eq!((all(&ring)[0].load1(), all(&ring)[0].disk()), (None, None));
        ring.set_levels(Levels {
            load1: Some(1.234),
            disk: Some(71.6),
        });
        let point = all(&ring)[0];
        assert_eq!((point.load1(), point.disk()), (Some(1.23), Some(72.0)));
        // A state change in the same step keeps them; a status sets them.
        ring.record(T0 + 1, None, PeerState::Offline);
        assert_eq!(all(&ring)[0].load1(), Some(1.23));
        ring.record(T0 + 2, Some((1.0, 1.0)), PeerState::Online);
        ring.set_levels(Levels::default());
        assert_eq!((all(&ring)[0].load1(), all(&ring)[0].disk()), (None, None));
        // A new step starts unknown; extremes are clamped, not wrapped.
        ring.record(T0 + 5, Some((1.0, 1.0)), PeerState::Online);
        assert_eq!(all(&ring)[1].load1(), None);
        ring.set_levels(Levels {
            load1: Some(1e6),
            disk: Some(f64::NAN),
        });
        assert_eq!(
            (all(&ring)[1].load1(), all(&ring)[1].disk()),
            (Some(655.34), None)
        );
        let health = Health {
            load: Some([0.5, 1.0, 2.0]),
            fs: vec![
                crate::proto::health::Filesystem {
                    mount: "/".into(),
                    used: 10.0,
                    size: 1,
                },
                crate::proto::health::Filesystem {
                    mount: "/var".into(),
                    used: 90.0,
                    size: 1,
                },
            ],
            ..Health::default()
        };
        assert_eq!(
            Levels::of(&health),
            Levels {
                load1: Some(0.5),
                disk: Some(90.0)
            }
        );
    }

    #[test]
    fn a_ring_is_about_3_kib() {
        // The load and disk fit in what was padding: a point is still 16 bytes.
        assert!(std::mem::size_of::<Option<Point>>() <= 16);
        assert_eq!(HISTORY_POINTS, 180);
    }

    #[test]
    fn this_node_has_its_own_ring() {
        let mut history = History::default();
        assert!(history.own().is_none());
        history.record_own(T0, 3.2, 41.7);
        let own: Vec<Point> = history.own().map(all).unwrap_or_default();
        assert_eq!(own.len(), 1);
        assert_eq!(own[0].memory(), Some(41.7));
        assert!(history.peer(&peer(2)).is_none());
    }
}
