//! Flap damping: a peer that changes state more than N times within M is
//! reported once as flapping, then muted until it has been stable for M
//! ([`FlapRule`]). Every state change goes through [`announce`], which keeps
//! the recent changes of the peer and decides whether the change prints;
//! [`unmute_if_stable`], run by the table's tick, lifts the mute and prints
//! the state the last line did not tell.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::{Event, Peer, PeerState};
use crate::limits::{DEFAULT_FLAP_CHANGES, DEFAULT_FLAP_WINDOW};

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

/// A peer's state changes as flap damping sees them.
#[derive(Debug, Clone)]
pub struct FlapState {
    /// Muted for flapping.
    pub flapping: bool,
    /// State changes so far (online, offline, left), muted ones included.
    pub changes_total: u64,
    /// Times it was reported flapping.
    pub flaps: u64,
    /// Recent state changes (at most `FlapRule::changes` + 1).
    pub(super) changes: VecDeque<Instant>,
    /// The state last announced on stdout (differs from the peer's state
    /// while muted).
    pub(super) announced: PeerState,
}

impl Default for FlapState {
    fn default() -> FlapState {
        FlapState {
            flapping: false,
            changes_total: 0,
            flaps: 0,
            changes: VecDeque::new(),
            announced: PeerState::Unknown,
        }
    }
}

/// Prints a state change unless the peer flaps: the change that crosses the
/// limit prints "flapping" instead, and later ones are muted.
pub(super) fn announce(
    peer: &mut Peer,
    event: Event,
    now: Instant,
    rule: FlapRule,
    events: &mut Vec<Event>,
) {
    peer.flap.changes.push_back(now);
    while peer
        .flap
        .changes
        .front()
        .is_some_and(|at| now.duration_since(*at) > rule.window)
        || peer.flap.changes.len() > rule.changes + 1
    {
        peer.flap.changes.pop_front();
    }
    if peer.flap.flapping {
        return;
    }
    if peer.flap.changes.len() > rule.changes {
        peer.flap.flapping = true;
        peer.flap.flaps += 1;
        let reason = format!(
            "{} state changes within {} s; muted until stable for {} s",
            peer.flap.changes.len(),
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
    peer.flap.announced = peer.state;
    events.push(event);
}

/// A flapping peer that has not changed state for a whole window is unmuted;
/// if its state differs from the last one printed, that change is printed now.
pub(super) fn unmute_if_stable(
    peer: &mut Peer,
    now: Instant,
    rule: FlapRule,
    events: &mut Vec<Event>,
) {
    if !peer.flap.flapping || now.duration_since(peer.since) < rule.window {
        return;
    }
    peer.flap.flapping = false;
    peer.flap.changes.clear();
    log::info!("peer {} is stable again", peer.id);
    if peer.state == peer.flap.announced {
        return;
    }
    peer.flap.announced = peer.state;
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
                .signals
                .last_error
                .clone()
                .unwrap_or_else(|| "offline".to_string()),
            last_seen: peer
                .signals
                .last_status
                .map(|seen| now.duration_since(seen)),
        }),
        PeerState::Unknown | PeerState::Left => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peers::testing::*;

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
        assert_eq!(peers.get(&id(2)).map(|p| p.flap.flaps), Some(1));
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
        assert!(!peers.get(&id(2)).is_some_and(|p| p.flap.flapping));
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
}
