//! Which node runs the hooks for an event (`--hooks-on`): every node sees a
//! peer's crash, so without a rule every node's hooks would page someone
//! for the same event. By default ([`HooksOn::Duty`]) the node on duty runs
//! them: the lowest (IP, port) among this node and the peers it sees online
//! that can witness the event. This node's own events (cut off, restored)
//! run here always; [`HooksOn::Every`] keeps every node running every hook.
//!
//! Pure: the caller passes this node's identity and the table's view of the
//! peers at the moment the event is published (after the table applied it:
//! a dead duty node is already offline, so the next lowest takes over).
//!
//! Who can witness an event about peer P: any node but P itself (a node
//! never sees its own offline, or its own return: a restarted node hears its
//! peers as first statuses, not as "back online"). For a return, only a node
//! that has been online here since before P went away: one that came back
//! (or restarted) since then has no memory of P's absence and sees no event.
//!
//! Never zero runs for an event every live node sees. Suppose none ran it,
//! and let m be the lowest node that saw it (each node ranks itself by the
//! lowest of its addresses, see `State`, so m's own rank is at most what any
//! peer knows it by). m stood down, so m saw a witness Q lower than m
//! online. Q saw the event too (every node did), and Q is lower than m: a
//! contradiction. So a miss needs a node that looks online to m but does not
//! see the event: one that died at the same moment, not yet noticed by m
//! (two failures within one detection window), or one that cannot reach P
//! (a one-way partition). Twice, on the other hand, is possible while views
//! differ: two nodes that do not see each other both think they are lowest,
//! and the "online since before P went away" test makes a node stand in for
//! a witness it is unsure of rather than trust it.

use std::time::Instant;

use clap::ValueEnum;
use serde::Deserialize;

use crate::peers::{Event, PeerId, PeerState};

/// `--hooks-on`: which nodes run the hooks for events about peers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum HooksOn {
    /// One node per event: the lowest (IP, port) among itself and the peers
    /// it sees online.
    #[default]
    Duty,
    /// Every node runs every hook.
    Every,
}

/// Why this node runs a hook, the value of `P2PMON_HOOK_RULE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookRule {
    /// An event about this node itself (cut off, restored).
    Local,
    /// This node is on duty for the event.
    Duty,
    /// `--hooks-on every`.
    Every,
}

impl HookRule {
    pub fn as_str(self) -> &'static str {
        match self {
            HookRule::Local => "local",
            HookRule::Duty => "duty",
            HookRule::Every => "every",
        }
    }
}

/// One peer of the table, as the rule sees it.
#[derive(Debug, Clone, Copy)]
pub struct Candidate {
    pub id: PeerId,
    pub state: PeerState,
    /// When its state last changed (for an online peer: online here since).
    pub since: Instant,
}

/// Whether this node runs the hooks for `event`, and why; or the lower
/// node on duty for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turn {
    Run(HookRule),
    StandDown { on_duty: PeerId },
}

/// Decides who runs the hooks for `event`, published `now`. `own` is this
/// node's (IP, port) as its peers know it (`None` while it cannot tell: it
/// then runs them, a duplicate being better than a miss); `peers` is the
/// table after it applied the event.
pub fn turn(
    hooks_on: HooksOn,
    own: Option<PeerId>,
    event: &Event,
    now: Instant,
    peers: impl IntoIterator<Item = Candidate>,
) -> Turn {
    let (about, away) = match event {
        Event::CutOff { .. } | Event::Restored { .. } => return Turn::Run(HookRule::Local),
        // This node's own alerts are about this node, like a cut-off; a
        // peer's are seen by every node that hears it, so one runs them.
        Event::Alert(note) | Event::AlertCleared(note) => match note.peer {
            None => return Turn::Run(HookRule::Local),
            Some(peer) => (peer, None),
        },
        Event::Online { peer, away, .. } => (*peer, Some(*away)),
        Event::Status { peer, .. }
        | Event::Offline { peer, .. }
        | Event::Left { peer, .. }
        | Event::Flapping { peer, .. }
        | Event::Forgotten { peer, .. } => (*peer, None),
    };
    if hooks_on == HooksOn::Every {
        return Turn::Run(HookRule::Every);
    }
    let Some(own) = own else {
        return Turn::Run(HookRule::Duty);
    };
    // For a return: when the peer went away (None: before our clock began,
    // so no witness is sure to remember it).
    let went_away = away.map(|away| now.checked_sub(away));
    let witnesses = peers.into_iter().filter(|peer| {
        peer.id != about
            && peer.state == PeerState::Online
            && match went_away {
                None => true,
                Some(Some(went_away)) => peer.since <= went_away,
                Some(None) => false,
            }
    });
    match witnesses.map(|peer| peer.id).min() {
        Some(lowest) if lowest < own => Turn::StandDown { on_duty: lowest },
        _ => Turn::Run(HookRule::Duty),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;
    use std::time::Duration;

    fn id(last: u8) -> PeerId {
        PeerId::new(IpAddr::from([10, 0, 0, last]), 5000)
    }

    fn online(last: u8, since: Instant) -> Candidate {
        Candidate {
            id: id(last),
            state: PeerState::Online,
            since,
        }
    }

    fn offline_of(last: u8) -> Event {
        Event::Offline {
            peer: id(last),
            name: None,
            reason: "test".into(),
            last_seen: None,
        }
    }

    fn online_of(last: u8, away: Duration) -> Event {
        Event::Online {
            peer: id(last),
            name: None,
            away,
        }
    }

    fn with_state(mut candidate: Candidate, state: PeerState) -> Candidate {
        candidate.state = state;
        candidate
    }

    /// Which of the live `nodes` (of .1 < .2 < .3) run the hooks for
    /// `event`, each with its own view of the table.
    fn runs(
        nodes: &[u8],
        event: &Event,
        now: Instant,
        table: impl Fn(u8) -> Vec<Candidate>,
    ) -> Vec<u8> {
        nodes
            .iter()
            .copied()
            .filter(|&node| {
                matches!(
                    turn(HooksOn::Duty, Some(id(node)), event, now, table(node)),
                    Turn::Run(_)
                )
            })
            .collect()
    }

    #[test]
    fn the_lowest_node_that_sees_a_peer_go_offline_runs_its_hooks() {
        let t0 = Instant::now();
        let now = t0 + Duration::from_secs(60);
        // .3 died: .1 and .2 see it offline, and each other online.
        let seen = |node: u8| {
            [1, 2]
                .into_iter()
                .filter(|&other| other != node)
                .map(|other| online(other, t0))
                .chain([with_state(online(3, t0), PeerState::Offline)])
                .collect()
        };
        assert_eq!(runs(&[1, 2], &offline_of(3), now, seen), [1]);
        assert_eq!(
            turn(HooksOn::Duty, Some(id(2)), &offline_of(3), now, seen(2)),
            Turn::StandDown { on_duty: id(1) }
        );
    }

    #[test]
    fn when_the_duty_node_dies_the_next_lowest_runs_the_hooks_for_its_offline() {
        let t0 = Instant::now();
        let now = t0 + Duration::from_secs(60);
        // .1 (on duty) died; the table already says so on .2 and .3.
        let seen = |node: u8| {
            [2, 3]
                .into_iter()
                .filter(|&other| other != node)
                .map(|other| online(other, t0))
                .chain([with_state(online(1, t0), PeerState::Offline)])
                .collect()
        };
        assert_eq!(runs(&[2, 3], &offline_of(1), now, seen), [2]);
    }

    #[test]
    fn a_peer_is_never_on_duty_for_its_own_return() {
        let t0 = Instant::now();
        let now = t0 + Duration::from_secs(60);
        // .1 is back after 10 s away: .2 and .3 see it online again, but .1
        // itself sees no event (its peers are first statuses to it).
        let event = online_of(1, Duration::from_secs(10));
        let seen = |node: u8| {
            [1, 2, 3]
                .into_iter()
                .filter(|&other| other != node)
                .map(|other| {
                    let since = if other == 1 { now } else { t0 };
                    online(other, since)
                })
                .collect()
        };
        assert_eq!(runs(&[2, 3], &event, now, seen), [2]);
    }

    #[test]
    fn a_witness_back_since_the_peer_went_away_is_not_trusted_to_remember_it() {
        let t0 = Instant::now();
        let now = t0 + Duration::from_secs(60);
        // .3 was away 30 s; .1 restarted 5 s ago (online here since then):
        // to .1, .3 is a first status, not a return. .2 runs the hook.
        let event = online_of(3, Duration::from_secs(30));
        let table = [online(1, now - Duration::from_secs(5)), online(3, now)];
        assert_eq!(
            turn(HooksOn::Duty, Some(id(2)), &event, now, table),
            Turn::Run(HookRule::Duty)
        );
        // Had .1 been online here all along, it would be on duty.
        let table = [online(1, t0), online(3, now)];
        assert_eq!(
            turn(HooksOn::Duty, Some(id(2)), &event, now, table),
            Turn::StandDown { on_duty: id(1) }
        );
    }

    #[test]
    fn offline_and_left_peers_are_not_on_duty() {
        let t0 = Instant::now();
        let table = [
            with_state(online(1, t0), PeerState::Offline),
            with_state(online(2, t0), PeerState::Left),
            with_state(online(4, t0), PeerState::Unknown),
        ];
        assert_eq!(
            turn(HooksOn::Duty, Some(id(3)), &offline_of(5), t0, table),
            Turn::Run(HookRule::Duty)
        );
    }

    #[test]
    fn the_port_breaks_a_tie_between_nodes_on_one_address() {
        let t0 = Instant::now();
        let ip = IpAddr::from([10, 0, 0, 1]);
        let low = PeerId::new(ip, 5000);
        let high = PeerId::new(ip, 5001);
        let table = |other| {
            [Candidate {
                id: other,
                state: PeerState::Online,
                since: t0,
            }]
        };
        let event = offline_of(9);
        assert_eq!(
            turn(HooksOn::Duty, Some(low), &event, t0, table(high)),
            Turn::Run(HookRule::Duty)
        );
        assert_eq!(
            turn(HooksOn::Duty, Some(high), &event, t0, table(low)),
            Turn::StandDown { on_duty: low }
        );
    }

    #[test]
    fn own_events_run_locally_and_every_runs_everything() {
        let t0 = Instant::now();
        let table = || [online(1, t0)];
        let own = Some(id(2));
        for event in [
            Event::CutOff { peers: 2 },
            Event::Restored {
                peers: 2,
                after: Duration::from_secs(3),
            },
        ] {
            for hooks_on in [HooksOn::Duty, HooksOn::Every] {
                assert_eq!(
                    turn(hooks_on, own, &event, t0, table()),
                    Turn::Run(HookRule::Local)
                );
            }
        }
        assert_eq!(
            turn(HooksOn::Every, own, &offline_of(3), t0, table()),
            Turn::Run(HookRule::Every)
        );
    }

    #[test]
    fn a_node_that_does_not_know_its_address_runs_the_hooks() {
        let t0 = Instant::now();
        assert_eq!(
            turn(HooksOn::Duty, None, &offline_of(3), t0, [online(1, t0)]),
            Turn::Run(HookRule::Duty)
        );
    }
}
