//! Membership: peers learned from other members' statuses (hearsay) and the
//! digest of members this node tells its v1 peers. Hearsay only adds links;
//! every verdict about a peer still comes from our own contact with it. A
//! learned member that leaves is dropped and tombstoned, so hearsay of the
//! same incarnation cannot bring it back; one offline longer than
//! forget-after is forgotten. Hearsay is bounded: it names only addresses a
//! node can have ([`learnable`]), and one source adds at most
//! `MAX_LEARNED_PER_SOURCE` members per `LEARN_WINDOW`.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use super::timing::offline_threshold;
use super::{Event, Origin, Peer, PeerId, PeerState, PeerTable, Refusal};
use crate::limits::{LEARN_WINDOW, MAX_LEARNED_PER_SOURCE, MAX_MEMBERS_PER_MESSAGE, MAX_PEERS};
use crate::proto::Dialect;
use crate::proto::wire::Member;

/// How a peer became known, and what that makes us do.
#[derive(Debug, Clone)]
pub struct Membership {
    /// Listed in --peers (never dropped from the table).
    pub configured: bool,
    /// How and when it became known.
    pub origin: Origin,
    pub known_at: Instant,
    /// We send to it (configured, learned, or pushed back to).
    pub linked: bool,
    /// A sealed message of its was admitted and accepted: it holds the key,
    /// so it is never sent plaintext (see the sender).
    pub authenticated: bool,
}

impl Membership {
    /// A configured peer is linked from the start; any other is known because
    /// it contacted us until `learn` says otherwise.
    pub(super) fn new(configured: bool, now: Instant) -> Membership {
        Membership {
            configured,
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

impl PeerTable {
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
            > offline_threshold(self.offline_after, self.own_interval)
        {
            return Ok(false);
        }
        let teacher = from.0.ip();
        let used = self.learn_budget(teacher, now)?;
        self.room_for_stranger(id)?;
        self.learned_by.insert(teacher, (used.0, used.1 + 1));
        let mut peer = Peer::new(id, false, self.own_interval, now);
        peer.membership.origin = Origin::Learned { from };
        peer.name = member.name.clone();
        peer.membership.linked = true;
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

    /// What this node tells its v1 peers about the members it hears from
    /// directly: online v1 peers, up to `MAX_MEMBERS_PER_MESSAGE`, walking
    /// the table round-robin so every member is announced within a few rounds.
    pub fn digest(&mut self, now: Instant) -> Vec<Member> {
        let mut ids: Vec<PeerId> = self
            .peers
            .values()
            .filter(|peer| {
                peer.state == PeerState::Online
                    && peer.incarnation.dialect != Dialect::Python
                    && peer.incarnation.boot.is_some()
            })
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
                boot: peer.incarnation.boot.unwrap_or(0),
                heard_ms: peer
                    .signals
                    .last_status
                    .map_or(u64::MAX, |seen| now.duration_since(seen).as_millis() as u64),
            })
            .collect()
    }

    /// Marks `id` as sent to; true if it was not (the caller adds a link).
    pub fn mark_linked(&mut self, id: PeerId) -> bool {
        match self.peers.get_mut(&id) {
            Some(peer) if !peer.membership.linked => {
                peer.membership.linked = true;
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
    pub(super) fn drop_member(&mut self, id: PeerId, left: bool, now: Instant) {
        self.generation += 1;
        if let Some(peer) = self.peers.remove(&id) {
            self.alerts.forget(super::Subject::Peer(id));
            if left {
                self.tombstone(id, peer.incarnation.boot.unwrap_or(0), now);
            }
            self.removed.push(id);
        }
    }

    /// A peer taken out of the configured list while membership is on: it
    /// stays a member we send to, and is forgotten or dropped like a learned one.
    pub fn demote(&mut self, id: PeerId) {
        if let Some(peer) = self.peers.get_mut(&id) {
            peer.membership.configured = false;
            if peer.membership.origin == Origin::Configured {
                peer.membership.origin = Origin::Contacted;
            }
        }
    }

    pub(super) fn tombstone(&mut self, id: PeerId, boot: u64, now: Instant) {
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

    /// Forgets learned members offline for longer than forget-after.
    pub(super) fn forget(&mut self, now: Instant, events: &mut Vec<Event>) {
        let Some(forget_after) = self.forget_after else {
            return;
        };
        let gone: Vec<(PeerId, Option<String>)> = self
            .peers
            .values()
            .filter(|peer| {
                !peer.membership.configured
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peers::testing::*;

    #[test]
    fn learning_adds_fresh_unknown_members_only() {
        let t0 = Instant::now();
        let mut peers = table(t0);
        let mut events = Vec::new();
        peers.on_status(id(2), report(1, 0), t0, &mut events).ok();
        assert_eq!(peers.learn(&member(3, 7, 500), id(2), t0), Ok(true));
        assert_eq!(
            peers.get(&id(3)).map(|p| p.membership.origin),
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
        assert_eq!(peers.len(), 0);
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
