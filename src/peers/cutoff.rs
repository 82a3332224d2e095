//! Cut off: when every peer (two or more) falls silent within one window,
//! this node is probably the one cut off, so one "Lost contact with all N
//! peers" line replaces N offline lines, and one "Contact restored" line
//! replaces the back-online lines that follow. The silence verdicts of a
//! tick are held here ([`PeerTable::settle_silence`]) until it is clear
//! whether they are one peer's or everyone's; [`PeerTable::settle_restore`]
//! ends the episode, giving each peer still offline its own line then, so no
//! verdict is ever dropped without a line.

use std::time::Instant;

use super::{Event, Peer, PeerId, PeerState, PeerTable};

/// The state of a cut-off episode.
#[derive(Debug, Clone)]
pub(super) struct CutOff {
    /// Last sign of life from any peer before the silence.
    pub(super) last_contact: Instant,
    /// The offline verdicts the "lost contact" line stands for: held back at
    /// its start, or swallowed since (a peer back, then silent again).
    pub(super) covered: Vec<Event>,
    /// Peers heard again since, whose back-online lines the coming
    /// "Contact restored" line stands for (no longer in `covered`).
    pub(super) back: Vec<PeerId>,
    /// When the first of them came back (`None` while `back` is empty).
    pub(super) restoring_since: Option<Instant>,
}

impl CutOff {
    /// The peer that `event` is an offline verdict about, if it is one.
    pub(super) fn peer_of(event: &Event) -> Option<PeerId> {
        match event {
            Event::Offline { peer, .. } => Some(*peer),
            _ => None,
        }
    }

    pub(super) fn covers(&self, id: PeerId) -> bool {
        self.covered.iter().any(|e| CutOff::peer_of(e) == Some(id))
    }
}

impl PeerTable {
    /// Whether this node currently believes it is cut off.
    pub fn is_cut_off(&self) -> bool {
        self.cut_off.is_some()
    }

    /// During a cut-off, back-online lines become one "Contact restored" line.
    pub(super) fn absorb_restore(&mut self, from: usize, now: Instant, events: &mut Vec<Event>) {
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

    /// Peers that count for "all peers": heard from at least once, not left.
    fn contacts(&self) -> impl Iterator<Item = &Peer> {
        self.peers.values().filter(|peer| {
            peer.state != PeerState::Left
                && (peer.signals.last_status.is_some() || peer.signals.last_contact.is_some())
        })
    }

    /// Decides what silence verdicts print: each its own offline line, or,
    /// when every peer went quiet together, one "lost contact" line.
    pub(super) fn settle_silence(
        &mut self,
        silenced: Vec<Event>,
        now: Instant,
        events: &mut Vec<Event>,
    ) {
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
    pub(super) fn settle_restore(&mut self, now: Instant, events: &mut Vec<Event>) {
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
                        .and_then(|p| p.signals.last_status.or(p.signals.last_contact))
                        .map(|seen| now.duration_since(seen));
                }
                events.push(event);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peers::testing::*;

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
}
