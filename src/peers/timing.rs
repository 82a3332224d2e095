//! The durations derived from a peer's interval: the offline threshold T
//! ([`offline_threshold`], the one copy of the formula: the listener's idle
//! deadline, the config's default --offline-after and the demo ask it), when
//! a status is late and its connection probed ([`probe_after`], and the
//! verdict's bound, [`probe_verdict_within`]), and the cap on what a
//! declared interval counts for.

use std::time::Duration;

use super::{Peer, PeerTable};
use crate::limits::{OFFLINE_FACTOR, PEER_INTERVAL_CAP, PROBE_GRACE};

/// T, the silence after which a peer that sends every `interval` is
/// offline: `OFFLINE_FACTOR` of its intervals (two lost updates are
/// tolerated, the third is not), never sooner than `offline_after`.
/// With `offline_after` zero it is the default --offline-after for a node
/// sending every `interval`.
pub fn offline_threshold(offline_after: Duration, interval: Duration) -> Duration {
    offline_after.max(interval * OFFLINE_FACTOR)
}

/// How long after a peer's last status its kept-open connection is probed:
/// its interval plus [`PROBE_GRACE`]. Before that the status is not late
/// and the connection carries nothing but statuses and their ACKs.
pub fn probe_after(interval: Duration) -> Duration {
    interval.saturating_add(PROBE_GRACE)
}

/// The longest a dead host or a cut path whose peer sends on a kept-open
/// connection goes unreported after its last status: the probe (never
/// sooner than the kernel's floor of [`PROBE_WAIT`] of idle) and
/// [`PROBE_COUNT`] waits for its answer. 6.5 s at the default 5 s
/// interval, 2.5 s at 1 s (plus the listener's scheduling). The bound the
/// constants are checked against (tests, PROTOCOL.md).
#[cfg(test)]
pub fn probe_verdict_within(interval: Duration) -> Duration {
    use crate::limits::{PROBE_COUNT, PROBE_WAIT};
    probe_after(interval)
        .max(PROBE_WAIT)
        .saturating_add(PROBE_WAIT * PROBE_COUNT)
}

impl PeerTable {
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
        offline_threshold(self.offline_after, peer.interval)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::PROBE_WAIT;
    use crate::peers::testing::*;

    #[test]
    fn the_threshold_is_three_intervals_never_less_than_offline_after() {
        assert_eq!(offline_threshold(3 * SEC, SEC), 3 * SEC);
        assert_eq!(offline_threshold(10 * SEC, SEC), 10 * SEC);
        assert_eq!(offline_threshold(3 * SEC, 5 * SEC), 15 * SEC);
        assert_eq!(offline_threshold(Duration::ZERO, 2 * SEC), 6 * SEC);
        // The table's threshold of a peer is the same formula.
        let t0 = Instant::now();
        let mut peers = PeerTable::new(t0, 4 * SEC, SEC);
        let mut slow = report(1, 0);
        slow.interval = 2 * SEC;
        peers.on_status(id(2), slow, t0, &mut Vec::new()).ok();
        assert_eq!(
            peers.get(&id(2)).map(|p| peers.threshold(p)),
            Some(offline_threshold(4 * SEC, 2 * SEC))
        );
    }

    #[test]
    fn a_status_is_late_after_its_interval_and_the_grace() {
        assert_eq!(probe_after(5 * SEC), 5 * SEC + PROBE_GRACE);
        assert_eq!(probe_after(SEC), SEC + PROBE_GRACE);
        assert_eq!(probe_after(Duration::MAX), Duration::MAX);
    }

    #[test]
    fn a_probed_peer_is_judged_within_the_detection_bounds() {
        // Issue 15: within 7 s of the last status at the default interval,
        // within 3 s at 1 s, each with room for the listener's scheduling.
        assert_eq!(probe_verdict_within(5 * SEC), Duration::from_millis(6500));
        assert_eq!(probe_verdict_within(SEC), Duration::from_millis(2500));
        assert!(probe_verdict_within(crate::limits::DEFAULT_INTERVAL) < 7 * SEC);
        // A faster peer: the kernel probes after at least PROBE_WAIT of idle.
        assert_eq!(
            probe_verdict_within(Duration::from_millis(20)),
            2 * PROBE_WAIT
        );
        // Never before the status is late, never a whole interval after it.
        for ms in [20, 300, 1000, 5000, 60_000] {
            let interval = Duration::from_millis(ms);
            let within = probe_verdict_within(interval);
            assert!(within > probe_after(interval), "{ms} ms");
            assert!(within <= probe_after(interval) + 2 * PROBE_WAIT, "{ms} ms");
        }
    }

    #[test]
    fn a_declared_interval_counts_for_at_most_the_cap() {
        let t0 = Instant::now();
        let mut peers = table(t0);
        let mut events = Vec::new();
        let mut hour = report(1, 0);
        hour.interval = 3600 * SEC;
        peers.on_status(id(2), hour, t0, &mut events).ok();
        assert_eq!(
            peers.get(&id(2)).map(|p| peers.threshold(p)),
            Some(3 * PEER_INTERVAL_CAP)
        );
        events.clear();
        peers.tick(t0 + 3 * PEER_INTERVAL_CAP + SEC, &mut events);
        assert_eq!(kinds(&events), ["offline"]);
        // Our own longer interval lifts the cap: a cluster run at 5 min works.
        let slow = PeerTable::new(t0, 3 * SEC, 300 * SEC);
        assert_eq!(slow.timing_interval(3600 * SEC), 300 * SEC);
        assert_eq!(slow.timing_interval(2 * SEC), 2 * SEC);
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
}
