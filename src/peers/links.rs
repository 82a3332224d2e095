//! Link signals: what our connections to a peer (connected, delivered,
//! disconnected, failed) and its inbound v1 connections (opened, closed)
//! say about it. A hard signal takes a peer offline at once: a v1 inbound
//! connection closed without a leave and not reopened within `CLOSE_GRACE`,
//! our connect refused or reset, a kept-open connection failed by keepalive
//! or user timeout; a failure of ours counts only if its attempt began no
//! earlier than the peer's last sign of life. A late peer's inbound
//! connection failing its probe is silence proved sooner: its verdict goes
//! where silence verdicts go (held while everyone is quiet, so a node cut
//! off says so once), as does our connection's user timeout. Everything else
//! leaves the verdict to silence.

use std::time::Instant;

use super::peer::{come_alive, go_offline};
use super::timing::offline_threshold;
use super::{Event, PeerId, PeerState, PeerTable, Signals};
use crate::limits::{CLOSE_GRACE, TCP_USER_TIMEOUT};

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

impl Signals {
    /// Whether the close grace of an inbound v1 connection that closed
    /// without a leave has run out at `now`: then it was a crash, and the
    /// close is spent (one verdict per close). The table's tick asks.
    pub(super) fn close_grace_over(&mut self, now: Instant) -> bool {
        match self.closed_at {
            Some(closed) if now.duration_since(closed) >= CLOSE_GRACE => {
                self.closed_at = None;
                true
            }
            _ => false,
        }
    }

    /// When a pending close grace runs out (for the table's next deadline).
    pub(super) fn close_deadline(&self) -> Option<Instant> {
        self.closed_at.map(|closed| closed + CLOSE_GRACE)
    }
}

impl PeerTable {
    /// An inbound v1 connection was identified as coming from `id`.
    pub fn on_inbound_open(&mut self, id: PeerId) {
        if let Some(peer) = self.peers.get_mut(&id) {
            peer.signals.inbound_open = peer.signals.inbound_open.saturating_add(1);
            peer.signals.closed_at = None;
        }
    }

    /// An inbound v1 connection of `id` ended. `graceful` is false when it
    /// ended without a leave (crash, reset, keepalive timeout).
    pub fn on_inbound_closed(&mut self, id: PeerId, graceful: bool, now: Instant) {
        self.generation += 1;
        if let Some(peer) = self.peers.get_mut(&id) {
            peer.signals.inbound_open = peer.signals.inbound_open.saturating_sub(1);
            if peer.signals.inbound_open == 0 && !graceful && peer.state != PeerState::Left {
                peer.signals.closed_at = Some(now);
            }
        }
    }

    /// The listener probed an inbound v1 connection of `id` whose status was
    /// late (last accepted message at `last_heard`) and the probe went
    /// unanswered: the connection failed, and a peer that has not spoken to
    /// us since is offline now rather than at T. Its verdict is a silence
    /// verdict (see `settle_silence`): a node cut off from everyone still
    /// says so in one line.
    pub fn on_probe_unanswered(
        &mut self,
        id: PeerId,
        last_heard: Instant,
        now: Instant,
        events: &mut Vec<Event>,
    ) {
        self.generation += 1;
        let rule = self.flap;
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        peer.signals.inbound_open = peer.signals.inbound_open.saturating_sub(1);
        let spoke_since = peer
            .last_sign_of_life(now)
            .is_some_and(|seen| seen > last_heard);
        if peer.state != PeerState::Online || spoke_since {
            return;
        }
        let silent_for = now.duration_since(last_heard).as_secs_f64();
        let reason = format!(
            "connection timed out (status late, probe unanswered; no status for {silent_for:.1} s)"
        );
        let mut silenced = Vec::new();
        go_offline(peer, reason, now, rule, &mut silenced);
        self.settle_silence(silenced, now, events);
    }

    /// One of our connections to `id` was accepted (a sign of life for a
    /// send-only peer).
    pub fn on_connected(&mut self, id: PeerId, now: Instant, events: &mut Vec<Event>) {
        self.generation += 1;
        if let Some(peer) = self.peers.get_mut(&id) {
            peer.signals.outbound_up = true;
            peer.signals.last_contact = Some(now);
            peer.signals.last_error = None;
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
            peer.signals.last_contact = Some(now);
        }
    }

    /// Our connection to `id` ended without failing (the Python original closes
    /// after each status; a v1 peer closing is decided by its own inbound signals).
    pub fn on_disconnected(&mut self, id: PeerId, now: Instant) {
        self.generation += 1;
        if let Some(peer) = self.peers.get_mut(&id) {
            if peer.signals.outbound_up {
                // It held until now: that was a sign of life.
                peer.signals.last_contact = Some(now);
            }
            peer.signals.outbound_up = false;
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
        peer.signals.outbound_up = false;
        peer.signals.last_error = Some(detail.to_string());
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
                .signals
                .last_status
                .is_some_and(|seen| now.duration_since(seen) < TCP_USER_TIMEOUT)
        {
            // Our data went unacknowledged for the whole user timeout, yet the
            // peer spoke to us since: it is alive and does not read (or the
            // path is one-way). Not offline; the sender warns.
            return;
        }
        let threshold = offline_threshold(self.offline_after, peer.interval);
        let may_report = match peer.state {
            PeerState::Online => true,
            // Never heard from: not before T since our start (or since it became known).
            PeerState::Unknown => past_startup && now.duration_since(peer.since) >= threshold,
            PeerState::Offline | PeerState::Left => false,
        };
        if !may_report {
            return;
        }
        if failure == LinkFailure::TimedOut {
            // Unacknowledged data is silence proved sooner, like an
            // unanswered probe: a node cut off from everyone says so once.
            let mut silenced = Vec::new();
            go_offline(peer, detail.to_string(), now, rule, &mut silenced);
            self.settle_silence(silenced, now, events);
        } else {
            go_offline(peer, detail.to_string(), now, rule, events);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peers::testing::*;

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
            peers.get(&id(2)).and_then(|p| p.signals.last_error.clone()),
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
    fn an_unanswered_probe_is_offline_at_once_unless_the_peer_spoke_since() {
        let t0 = Instant::now();
        let mut peers = table(t0);
        let mut events = Vec::new();
        peers.on_status(id(2), report(1, 0), t0, &mut events).ok();
        peers.on_status(id(3), report(1, 0), t0, &mut events).ok();
        peers.on_inbound_open(id(2));
        peers.on_inbound_open(id(3));
        // 3 is on time, 2 is late: its probe fails 2.5 s after its status,
        // before T (3 s), and without the close grace.
        let late = t0 + SEC * 5 / 2;
        peers
            .on_status(id(3), report(2, 0), t0 + 2 * SEC, &mut events)
            .ok();
        events.clear();
        peers.on_probe_unanswered(id(2), t0, late, &mut events);
        assert_eq!(kinds(&events), ["offline"]);
        if let Event::Offline { reason, .. } = &events[0] {
            assert!(reason.starts_with("connection timed out"), "{reason}");
            assert!(reason.contains("probe unanswered"), "{reason}");
        }
        peers.tick(late + SEC, &mut events);
        assert_eq!(kinds(&events), ["offline"], "one verdict");

        // A status on another connection since the probed one's last: stale.
        let mut peers = table(t0);
        let mut events = Vec::new();
        peers.on_status(id(2), report(1, 0), t0, &mut events).ok();
        peers.on_inbound_open(id(2));
        peers.on_inbound_open(id(2));
        peers
            .on_status(id(2), report(2, 0), t0 + 2 * SEC, &mut events)
            .ok();
        events.clear();
        peers.on_probe_unanswered(id(2), t0, t0 + SEC * 5 / 2, &mut events);
        assert!(events.is_empty(), "{events:?}");
    }

    #[test]
    fn unanswered_probes_of_every_peer_are_one_cut_off_line() {
        let t0 = Instant::now();
        let mut peers = table(t0);
        let mut events = Vec::new();
        for n in [2, 3] {
            peers.on_status(id(n), report(1, 0), t0, &mut events).ok();
            peers.on_inbound_open(id(n));
        }
        events.clear();
        let late = t0 + SEC * 5 / 2;
        peers.on_probe_unanswered(id(2), t0, late, &mut events);
        assert!(events.is_empty(), "held while 3 is quiet too: {events:?}");
        peers.on_probe_unanswered(id(3), t0, late + SEC / 10, &mut events);
        assert_eq!(kinds(&events), ["cut_off"]);
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
}
