//! The peer table: all peers keyed by identity, with the node's own timing
//! settings. Here are admission (at most `MAX_PEERS` entries and
//! `MAX_PEERS_PER_IP` strangers per IP; a configured peer is never refused),
//! statuses and leaves, the configured list, and the tick that applies the
//! timers (close grace, silence, flap muting, cut-off, forgetting) with the
//! deadline it should next run at. Links, membership, flap damping and the
//! cut-off add their own `impl PeerTable` blocks in their files.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::alerts::{Alerts, Reading};
use super::cutoff::CutOff;
use super::flap::unmute_if_stable;
use super::peer::{come_alive, go_offline};
use super::timing::offline_threshold;
use super::{
    AlertRule, Event, FlapRule, Origin, Peer, PeerId, PeerState, Refusal, StatusReport, Subject,
};
use crate::limits::{DEFAULT_FORGET_AFTER, DEFAULT_PORT, MAX_PEERS, MAX_PEERS_PER_IP};
use crate::proto::Dialect;

/// All peers, keyed by identity, with the node's own timing settings.
///
/// The fields are `pub(super)`: the table's rules live in sibling files
/// (links, membership, flap, cut-off), each an `impl PeerTable` block, and
/// Rust's privacy is per module, so a private field here would be out of
/// their reach. Nothing outside peers/ sees them; callers use the methods.
#[derive(Debug)]
pub struct PeerTable {
    pub(super) peers: HashMap<PeerId, Peer>,
    pub(super) started: Instant,
    pub(super) offline_after: Duration,
    pub(super) own_interval: Duration,
    pub(super) flap: FlapRule,
    /// Learned members offline this long are forgotten (`None`: never).
    pub(super) forget_after: Option<Duration>,
    /// Incarnations of members that left or were forgotten: hearsay of them
    /// (same or older boot) is ignored. Bounded by `MAX_PEERS`.
    pub(super) tombstones: HashMap<PeerId, (u64, Instant)>,
    /// Peers dropped from the table since the last `take_removed`.
    pub(super) removed: Vec<PeerId>,
    /// Where the next membership digest starts (round-robin).
    pub(super) digest_cursor: usize,
    /// Grows whenever a peer is added or removed or something that moves a
    /// deadline earlier happens (the listener then recomputes its wake-up).
    pub(super) generation: u64,
    /// Silence verdicts held back while every peer seems to be going quiet.
    pub(super) held: Vec<(Event, Instant)>,
    pub(super) cut_off: Option<CutOff>,
    /// Members learned per source IP in its current window (start, count);
    /// only peers in the table teach, so bounded by `MAX_PEERS`.
    pub(super) learned_by: HashMap<IpAddr, (Instant, usize)>,
    /// The `--alert` rules and their state for every peer and this node.
    pub(super) alerts: Alerts,
}

impl PeerTable {
    /// `offline_after` is the node's --offline-after; `own_interval` its --interval
    /// (assumed for configured peers until they announce theirs).
    pub fn new(started: Instant, offline_after: Duration, own_interval: Duration) -> PeerTable {
        PeerTable {
            peers: HashMap::new(),
            started,
            offline_after,
            own_interval,
            flap: FlapRule::default(),
            forget_after: Some(DEFAULT_FORGET_AFTER),
            tombstones: HashMap::new(),
            removed: Vec::new(),
            digest_cursor: 0,
            generation: 0,
            held: Vec::new(),
            cut_off: None,
            learned_by: HashMap::new(),
            alerts: Alerts::default(),
        }
    }

    /// Evaluates these `--alert` rules on every status (and own sample).
    pub fn with_alerts(mut self, rules: Vec<AlertRule>) -> PeerTable {
        self.alerts = Alerts::new(rules);
        self
    }

    /// The alert rules' state: what fires for whom.
    pub fn alerts(&self) -> &Alerts {
        &self.alerts
    }

    /// This node's own sample: the alert rules are evaluated on it as on a
    /// peer's status (`name` is this node's).
    pub fn on_own_sample(
        &mut self,
        name: &str,
        reading: &Reading<'_>,
        now: Instant,
        events: &mut Vec<Event>,
    ) {
        self.alerts
            .observe(Subject::Node, Some(name), reading, now, events);
    }

    /// Replaces the forget-after setting (`None`: never forget).
    pub fn with_forget_after(mut self, forget_after: Option<Duration>) -> PeerTable {
        self.forget_after = forget_after;
        self
    }

    /// Replaces the flap damping rule.
    pub fn with_flap_rule(mut self, flap: FlapRule) -> PeerTable {
        self.flap = flap;
        self
    }

    /// See the field: compare before and after an update.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn get(&self, id: &PeerId) -> Option<&Peer> {
        self.peers.get(id)
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    /// All peers, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Peer> {
        self.peers.values()
    }

    /// When the table started (the node's start).
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Whether `id` is known to speak v1 (has sent a v1 message).
    pub fn speaks_v1(&self, id: &PeerId) -> bool {
        self.peers
            .get(id)
            .is_some_and(|peer| peer.incarnation.boot.is_some())
    }

    /// Whether `id`'s last status was the Python original's bare one.
    pub fn speaks_python(&self, id: &PeerId) -> bool {
        self.peers
            .get(id)
            .is_some_and(|peer| peer.incarnation.dialect == Dialect::Python)
    }

    /// Whether `id` has authenticated to us (see `Membership::authenticated`).
    pub fn authenticated(&self, id: &PeerId) -> bool {
        self.peers
            .get(id)
            .is_some_and(|peer| peer.membership.authenticated)
    }

    /// Peers that went offline `count` times so far: the sender gives a peer a
    /// fresh connection when this number changes.
    pub fn offline_count(&self, id: &PeerId) -> u64 {
        self.peers.get(id).map_or(0, |peer| peer.offline_count)
    }

    /// The identity of a Python sender at `ip`: the configured peer with that IP
    /// if there is exactly one, else the IP on the default port.
    pub fn legacy_id(&self, ip: IpAddr) -> PeerId {
        let ip = ip.to_canonical();
        let mut configured = self
            .peers
            .values()
            .filter(|peer| peer.membership.configured && peer.id.0.ip() == ip);
        match (configured.next(), configured.next()) {
            (Some(peer), None) => peer.id,
            _ => PeerId::new(ip, DEFAULT_PORT),
        }
    }

    /// Whether a new unconfigured entry `id` fits: the table is not full and
    /// its IP holds less than its share.
    pub(super) fn room_for_stranger(&self, id: PeerId) -> Result<(), Refusal> {
        if self.peers.len() >= MAX_PEERS {
            return Err(Refusal::TableFull);
        }
        let ip = id.0.ip();
        let same_ip = self
            .peers
            .values()
            .filter(|peer| !peer.membership.configured && peer.id.0.ip() == ip)
            .count();
        if same_ip >= MAX_PEERS_PER_IP {
            return Err(Refusal::IpShareFull(ip));
        }
        Ok(())
    }

    /// Drops the unconfigured entry offline the longest (or, if every one is
    /// online, the one heard from least recently) so a configured peer fits.
    /// Returns false if every entry is configured.
    fn make_room(&mut self, now: Instant) -> bool {
        let victim = self
            .peers
            .values()
            .filter(|peer| !peer.membership.configured)
            .min_by_key(|peer| {
                let online = peer.state == PeerState::Online;
                let since = if online {
                    peer.last_sign_of_life(now).unwrap_or(peer.since)
                } else {
                    peer.since
                };
                (online, since)
            })
            .map(|peer| (peer.id, peer.state));
        let Some((victim, state)) = victim else {
            return false;
        };
        log::warn!(
            "peer table full ({MAX_PEERS}): dropped {victim} ({}, unconfigured) to make room for a configured peer",
            state.as_str()
        );
        self.drop_member(victim, false, now);
        true
    }

    /// Admits the peer `id` sending a status of incarnation `boot`: a status
    /// of an incarnation that already left (tombstoned) is stale; a newer one
    /// of a member that left comes back as "left", so that its return prints
    /// back online like any left peer's. A stranger (not in the table) must
    /// have room; the caller then creates it. Returns whether this made the
    /// entry (it then counts as not known before the status).
    fn admit(&mut self, id: PeerId, boot: Option<u64>, now: Instant) -> Result<bool, Refusal> {
        // No hashing on the hot path: an empty map answers without one.
        let Some((gone, at)) = self.tombstones.get(&id).copied() else {
            return Ok(false);
        };
        let Some(boot) = boot else {
            return Ok(false);
        };
        if boot <= gone {
            return Err(Refusal::StaleBoot);
        }
        let mut made = false;
        if !self.peers.contains_key(&id) && self.room_for_stranger(id).is_ok() {
            let mut peer = Peer::new(id, false, self.own_interval, now);
            peer.state = PeerState::Left;
            peer.flap.announced = PeerState::Left;
            peer.since = at;
            peer.incarnation.boot = Some(gone);
            self.peers.insert(id, peer);
            made = true;
        }
        self.tombstones.remove(&id);
        Ok(made)
    }

    /// Adds a peer from --peers (idempotent).
    pub fn add_configured(&mut self, id: PeerId, now: Instant) -> Result<(), Refusal> {
        self.generation += 1;
        if let Some(peer) = self.peers.get_mut(&id) {
            peer.membership.configured = true;
            peer.membership.origin = Origin::Configured;
            peer.membership.linked = true;
            return Ok(());
        }
        if self.peers.len() >= MAX_PEERS && !self.make_room(now) {
            return Err(Refusal::TableFull);
        }
        self.peers
            .insert(id, Peer::new(id, true, self.own_interval, now));
        Ok(())
    }

    /// A peer taken out of the configured list (config reload). One that never
    /// sent us a status was known only through our connections, which are now
    /// gone: it is dropped, so the silence we caused is never reported as
    /// offline. One that sends to us stays, like any other sender (and with
    /// membership on, it is pushed back to, as any sender we do not link).
    /// Only a configured peer is touched: a member the table dropped may be
    /// learned again before the sender drops its link, and that newer entry
    /// stays.
    pub fn unconfigure(&mut self, id: PeerId) {
        let Some(peer) = self
            .peers
            .get_mut(&id)
            .filter(|peer| peer.membership.configured)
        else {
            return;
        };
        peer.membership.configured = false;
        peer.signals.outbound_up = false;
        peer.membership.linked = false;
        if peer.membership.origin == Origin::Configured {
            peer.membership.origin = Origin::Contacted;
        }
        if peer.send_only() {
            self.peers.remove(&id);
            self.alerts.forget(Subject::Peer(id));
            self.held
                .retain(|(event, _)| !matches!(event, Event::Offline { peer, .. } if *peer == id));
        }
    }

    /// A status arrived from `id`.
    pub fn on_status(
        &mut self,
        id: PeerId,
        report: StatusReport,
        now: Instant,
        events: &mut Vec<Event>,
    ) -> Result<(), Refusal> {
        let rule = self.flap;
        let before = events.len();
        let interval = self.timing_interval(report.interval);
        let made = self.admit(id, report.boot, now)?;
        // One lookup for a known peer (this runs for every status): a
        // stranger's room is checked only when the entry is vacant.
        let own_interval = self.own_interval;
        let (peer, known) = match self.peers.entry(id) {
            Entry::Occupied(entry) => {
                let peer = entry.into_mut();
                let known = (!made).then_some(peer.state);
                (peer, known)
            }
            Entry::Vacant(_) => {
                self.room_for_stranger(id)?;
                let peer = self
                    .peers
                    .entry(id)
                    .or_insert_with(|| Peer::new(id, false, own_interval, now));
                (peer, None)
            }
        };
        if let (Some(known), Some(boot)) = (peer.incarnation.boot, report.boot) {
            if boot < known || (boot == known && peer.state == PeerState::Left) {
                // Older incarnation, or the same one after its own leave.
                return Err(Refusal::StaleBoot);
            }
            if boot > known && peer.state == PeerState::Online {
                // Restarted faster than the close grace: still one offline /
                // back online pair, so a restart is never invisible.
                go_offline(peer, "restarted".to_string(), now, rule, events);
            }
        }
        if let Some(boot) = report.boot {
            if peer.incarnation.boot != Some(boot) {
                peer.incarnation.seq = None;
            }
            peer.incarnation.boot = Some(boot);
            peer.incarnation.seq = report.seq.max(peer.incarnation.seq);
        }
        peer.incarnation.dialect = if report.boot.is_none() {
            Dialect::Python
        } else {
            Dialect::V1
        };
        let first = peer.signals.last_status.is_none();
        peer.signals.last_status = Some(now);
        peer.signals.closed_at = None;
        peer.interval = interval;
        if report.name.is_some() {
            peer.name = report.name;
        }
        peer.cpu = Some(report.cpu);
        peer.memory = Some(report.memory);
        come_alive(peer, now, rule, events);
        let status = Event::Status {
            peer: id,
            name: peer.name.clone(),
            cpu: report.cpu,
            memory: report.memory,
            health: report.health.clone(),
            first,
        };
        peer.health = report.health;
        if known != Some(peer.state) {
            self.generation += 1;
        }
        self.absorb_restore(before, now, events);
        events.push(status);
        // After the status, so a line of it comes before its alert's. A
        // peer back from silence starts its pending durations afresh.
        if known != Some(PeerState::Online) {
            self.alerts.interrupt(Subject::Peer(id));
        }
        if self.alerts.has_rules()
            && let Some(peer) = self.peers.get(&id)
        {
            let reading = Reading {
                cpu: report.cpu,
                memory: report.memory,
                health: &peer.health,
            };
            let name = peer.name.as_deref();
            self.alerts
                .observe(Subject::Peer(id), name, &reading, now, events);
        }
        Ok(())
    }

    /// A leave arrived from `id`.
    pub fn on_leave(
        &mut self,
        id: PeerId,
        boot: u64,
        now: Instant,
        events: &mut Vec<Event>,
    ) -> Result<(), Refusal> {
        let Some(peer) = self.peers.get_mut(&id) else {
            // A leave from a peer we never knew prints nothing, but its
            // incarnation is over: later hearsay of it is ignored.
            self.tombstone(id, boot, now);
            return Ok(());
        };
        if peer.incarnation.boot.is_some_and(|known| boot < known) {
            self.generation += 1;
            return Err(Refusal::StaleBoot);
        }
        peer.signals.closed_at = None;
        if peer.state != PeerState::Left {
            peer.state = PeerState::Left;
            peer.flap.changes_total += 1;
            peer.since = now;
            peer.incarnation.boot = Some(boot.max(peer.incarnation.boot.unwrap_or(0)));
            events.push(Event::Left {
                peer: id,
                name: peer.name.clone(),
            });
            if !peer.membership.configured {
                // A member that left on purpose is gone from the list.
                self.drop_member(id, true, now);
                return Ok(());
            }
        }
        Ok(())
    }

    /// A sealed message from `id` was admitted and the table accepted it.
    pub fn on_authenticated(&mut self, id: PeerId) {
        if let Some(peer) = self.peers.get_mut(&id) {
            peer.membership.authenticated = true;
        }
    }

    /// Applies the timers: close grace, silence, flap muting, cut-off. Call it
    /// at [`PeerTable::next_deadline`] (the listener also calls it at least
    /// every [`crate::limits::MAX_TICK`]); it costs one pass over the table.
    pub fn tick(&mut self, now: Instant, events: &mut Vec<Event>) {
        let since_start = now.duration_since(self.started);
        let offline_after = self.offline_after;
        let rule = self.flap;
        let mut silenced = Vec::new();
        for peer in self.peers.values_mut() {
            unmute_if_stable(peer, now, rule, events);
            let threshold = offline_threshold(offline_after, peer.interval);
            match peer.state {
                PeerState::Online => {
                    if peer.signals.close_grace_over(now) {
                        go_offline(
                            peer,
                            "connection closed without leave".to_string(),
                            now,
                            rule,
                            events,
                        );
                        continue;
                    }
                    let silent_for = peer
                        .last_sign_of_life(now)
                        .map_or(since_start, |seen| now.duration_since(seen));
                    if silent_for > threshold {
                        let reason = match &peer.signals.last_error {
                            Some(error) => format!(
                                "no sign of life for {:.1} s ({error})",
                                silent_for.as_secs_f64()
                            ),
                            None => format!("no status for {:.1} s", silent_for.as_secs_f64()),
                        };
                        go_offline(peer, reason, now, rule, &mut silenced);
                    }
                }
                PeerState::Unknown => {
                    if now.duration_since(peer.since.max(self.started)) > threshold {
                        let reason = match &peer.signals.last_error {
                            Some(error) => format!("never heard from ({error})"),
                            None => "never heard from".to_string(),
                        };
                        go_offline(peer, reason, now, rule, events);
                    }
                }
                PeerState::Offline | PeerState::Left => {}
            }
        }
        self.settle_silence(silenced, now, events);
        self.settle_restore(now, events);
        self.forget(now, events);
    }

    /// The earliest moment `tick` could change something (a close grace, a
    /// silence threshold, a flap mute, a held verdict, a forget), so the
    /// listener can sleep until then instead of waking ten times a second.
    /// Anything that arrives in between only moves these moments later,
    /// except new peers and closes, after which the caller asks again.
    pub fn next_deadline(&self, now: Instant) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut consider = |at: Instant| next = Some(next.map_or(at, |n: Instant| n.min(at)));
        let just_after = Duration::from_millis(1);
        for peer in self.peers.values() {
            let threshold = self.threshold(peer);
            if let Some(at) = peer.signals.close_deadline() {
                consider(at);
            }
            match peer.state {
                PeerState::Online => {
                    if !(peer.send_only() && peer.signals.outbound_up) {
                        let seen = peer.last_sign_of_life(now).unwrap_or(self.started);
                        consider(crate::limits::later(seen, threshold + just_after));
                    }
                }
                PeerState::Unknown => consider(crate::limits::later(
                    peer.since.max(self.started),
                    threshold + just_after,
                )),
                PeerState::Offline => {
                    if let (false, Some(forget_after)) =
                        (peer.membership.configured, self.forget_after)
                    {
                        consider(crate::limits::later(peer.since, forget_after));
                    }
                }
                PeerState::Left => {}
            }
            if peer.flap.flapping {
                consider(crate::limits::later(peer.since, self.flap.window));
            }
        }
        let longest_interval = self
            .peers
            .values()
            .map(|peer| peer.interval)
            .max()
            .unwrap_or_default();
        if let Some(oldest) = self.held.iter().map(|(_, at)| *at).min() {
            consider(crate::limits::later(oldest, longest_interval + just_after));
        }
        if let Some(first_back) = self.cut_off.as_ref().and_then(|cut| cut.restoring_since) {
            consider(crate::limits::later(first_back, longest_interval));
        }
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peers::testing::*;

    #[test]
    fn first_status_brings_a_peer_online_without_a_back_online_line() {
        let t0 = Instant::now();
        let mut peers = table(t0);
        let mut events = Vec::new();
        peers.on_status(id(2), report(1, 0), t0, &mut events).ok();
        assert_eq!(kinds(&events), ["status"]);
        assert!(matches!(events[0], Event::Status { first: true, .. }));
        assert_eq!(peers.get(&id(2)).map(|p| p.state), Some(PeerState::Online));
        events.clear();
        peers
            .on_status(id(2), report(1, 1), t0 + SEC, &mut events)
            .ok();
        assert!(matches!(events[0], Event::Status { first: false, .. }));
    }

    #[test]
    fn silence_longer_than_t_is_offline_once_then_back_online() {
        let t0 = Instant::now();
        let mut peers = table(t0);
        let mut events = Vec::new();
        peers.on_status(id(2), report(1, 0), t0, &mut events).ok();
        events.clear();
        peers.tick(t0 + 3 * SEC, &mut events);
        assert!(events.is_empty(), "exactly T is not yet offline");
        peers.tick(t0 + 3 * SEC + Duration::from_millis(100), &mut events);
        assert_eq!(kinds(&events), ["offline"]);
        if let Event::Offline {
            reason, last_seen, ..
        } = &events[0]
        {
            assert!(reason.starts_with("no status for 3.1 s"), "{reason}");
            assert_eq!(*last_seen, Some(3 * SEC + Duration::from_millis(100)));
        }
        events.clear();
        peers.tick(t0 + 10 * SEC, &mut events);
        assert!(events.is_empty(), "offline is printed once");
        peers
            .on_status(id(2), report(1, 1), t0 + 12 * SEC, &mut events)
            .ok();
        assert_eq!(kinds(&events), ["online", "status"]);
        if let Event::Online { away, .. } = &events[0] {
            assert!(*away > 8 * SEC);
        }
    }

    #[test]
    fn a_fast_restart_still_prints_offline_and_back_online() {
        let t0 = Instant::now();
        let mut peers = table(t0);
        let mut events = Vec::new();
        peers.on_status(id(2), report(1, 5), t0, &mut events).ok();
        events.clear();
        peers
            .on_status(id(2), report(2, 0), t0 + SEC, &mut events)
            .ok();
        assert_eq!(kinds(&events), ["offline", "online", "status"]);
        // An older boot afterwards is refused.
        events.clear();
        assert_eq!(
            peers.on_status(id(2), report(1, 6), t0 + SEC, &mut events),
            Err(Refusal::StaleBoot)
        );
        assert!(events.is_empty());
    }

    #[test]
    fn leave_is_left_and_silent_until_it_comes_back() {
        let t0 = Instant::now();
        let mut peers = table(t0);
        let mut events = Vec::new();
        peers.on_status(id(2), report(1, 0), t0, &mut events).ok();
        peers.on_inbound_open(id(2));
        events.clear();
        peers.on_leave(id(2), 1, t0 + SEC, &mut events).ok();
        peers.on_inbound_closed(id(2), true, t0 + SEC);
        peers.on_link_failed(
            id(2),
            LinkFailure::Refused,
            t0 + 2 * SEC,
            "connection refused",
            t0 + 2 * SEC,
            &mut events,
        );
        peers.tick(t0 + 60 * SEC, &mut events);
        assert_eq!(kinds(&events), ["left"]);
        events.clear();
        peers
            .on_status(id(2), report(2, 0), t0 + 61 * SEC, &mut events)
            .ok();
        assert_eq!(kinds(&events), ["online", "status"]);
    }

    #[test]
    fn an_unconfigured_peer_is_dropped_unless_it_sends_to_us() {
        let t0 = Instant::now();
        let mut peers = table(t0);
        let mut events = Vec::new();
        // Send-only: known through our connection alone.
        peers.add_configured(id(2), t0).ok();
        peers.on_connected(id(2), t0, &mut events);
        peers.unconfigure(id(2));
        assert!(peers.get(&id(2)).is_none());
        peers.tick(t0 + 60 * SEC, &mut events);
        assert!(!kinds(&events).contains(&"offline"), "{events:?}");
        // A peer that sends to us stays, as an unconfigured sender.
        peers.add_configured(id(3), t0).ok();
        peers.on_status(id(3), report(1, 0), t0, &mut events).ok();
        peers.unconfigure(id(3));
        assert_eq!(
            peers.get(&id(3)).map(|p| p.membership.configured),
            Some(false)
        );
        // Unknown and unconfigured ids are ignored; configuring again
        // restores the flag.
        peers.unconfigure(id(4));
        peers.on_status(id(6), report(1, 0), t0, &mut events).ok();
        peers.unconfigure(id(6));
        assert!(peers.get(&id(6)).is_some());
        peers.add_configured(id(3), t0).ok();
        assert_eq!(
            peers.get(&id(3)).map(|p| p.membership.configured),
            Some(true)
        );
        // With membership, a demoted peer stays, linked, no longer configured.
        peers.add_configured(id(5), t0).ok();
        peers.demote(id(5));
        let peer = peers.get(&id(5)).map(|p| {
            (
                p.membership.configured,
                p.membership.linked,
                p.membership.origin,
            )
        });
        assert_eq!(peer, Some((false, true, Origin::Contacted)));
    }

    #[test]
    fn legacy_senders_map_to_their_configured_port() {
        let t0 = Instant::now();
        let mut peers = table(t0);
        let other = PeerId::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)), 6000);
        peers.add_configured(other, t0).ok();
        assert_eq!(peers.legacy_id(other.0.ip()), other);
        assert_eq!(peers.legacy_id(id(3).0.ip()), id(3));
        let mut events = Vec::new();
        peers
            .on_status(other, legacy_report(1.0, 2.0), t0, &mut events)
            .ok();
        assert_eq!(peers.get(&other).map(|p| p.interval), Some(PYTHON_INTERVAL));
        assert!(!peers.speaks_v1(&other));
    }

    #[test]
    fn the_next_deadline_is_when_tick_would_act() {
        let t0 = Instant::now();
        let mut peers = table(t0);
        let mut events = Vec::new();
        assert_eq!(peers.next_deadline(t0), None);
        peers.on_status(id(2), report(1, 0), t0, &mut events).ok();
        let silence = peers.next_deadline(t0).unwrap_or(t0);
        assert!(silence > t0 + 3 * SEC && silence <= t0 + 3 * SEC + Duration::from_millis(2));
        // Nothing happens before it, the offline verdict right at it.
        events.clear();
        peers.tick(silence - Duration::from_millis(2), &mut events);
        assert!(events.is_empty());
        peers.tick(silence, &mut events);
        assert_eq!(kinds(&events), ["offline"]);
        // A close pulls it in to the close grace.
        let mut peers = table(t0);
        peers.on_status(id(3), report(1, 0), t0, &mut events).ok();
        peers.on_inbound_open(id(3));
        peers.on_inbound_closed(id(3), false, t0 + SEC);
        assert_eq!(peers.next_deadline(t0 + SEC), Some(t0 + SEC + CLOSE_GRACE));
    }

    #[test]
    fn the_table_is_capped() {
        let t0 = Instant::now();
        let mut peers = table(t0);
        let mut events = Vec::new();
        for n in 0..MAX_PEERS {
            assert!(
                peers
                    .on_status(nth(n), report(1, 0), t0, &mut events)
                    .is_ok()
            );
        }
        let extra = PeerId::new(IpAddr::V4(Ipv4Addr::new(127, 2, 0, 1)), 5000);
        assert_eq!(
            peers.on_status(extra, report(1, 0), t0, &mut events),
            Err(Refusal::TableFull)
        );
        assert_eq!(peers.len(), MAX_PEERS);
        // Full of configured peers only: nothing can make room.
        let mut configured = table(t0);
        for n in 0..MAX_PEERS {
            assert_eq!(configured.add_configured(nth(n), t0), Ok(()));
        }
        assert_eq!(
            configured.add_configured(extra, t0),
            Err(Refusal::TableFull)
        );
    }

    #[test]
    fn a_full_table_makes_room_for_a_configured_peer() {
        let t0 = Instant::now();
        let mut peers = table(t0);
        let mut events = Vec::new();
        for n in 0..MAX_PEERS {
            assert!(
                peers
                    .on_status(nth(n), report(1, 0), t0, &mut events)
                    .is_ok()
            );
        }
        // All but nth(7) keep talking; nth(7) goes offline (T = 3 s).
        for n in (0..MAX_PEERS).filter(|n| *n != 7) {
            assert!(
                peers
                    .on_status(nth(n), report(1, 1), t0 + 2 * SEC, &mut events)
                    .is_ok()
            );
        }
        peers.tick(t0 + 4 * SEC, &mut events);
        assert_eq!(
            peers.get(&nth(7)).map(|p| p.state),
            Some(PeerState::Offline)
        );
        let _ = peers.take_removed();
        // A configured peer is never refused: the one offline the longest goes.
        let configured = PeerId::new(IpAddr::V4(Ipv4Addr::new(127, 2, 0, 1)), 5000);
        assert_eq!(peers.add_configured(configured, t0 + 4 * SEC), Ok(()));
        assert_eq!(peers.len(), MAX_PEERS);
        assert!(peers.get(&nth(7)).is_none());
        assert_eq!(peers.take_removed(), vec![nth(7)]);
        // Every stranger online: the one heard from least recently goes.
        assert!(
            peers
                .on_status(nth(8), report(1, 2), t0 + 3 * SEC, &mut events)
                .is_ok()
        );
        let _ = (0..MAX_PEERS)
            .filter(|n| *n != 7 && *n != 9)
            .map(|n| peers.on_status(nth(n), report(1, 3), t0 + 5 * SEC, &mut events))
            .count();
        let second = PeerId::new(IpAddr::V4(Ipv4Addr::new(127, 2, 0, 2)), 5000);
        assert_eq!(peers.add_configured(second, t0 + 5 * SEC), Ok(()));
        assert!(peers.get(&nth(9)).is_none(), "nth(9) was heard last at 2 s");
        assert!(
            peers
                .get(&configured)
                .is_some_and(|p| p.membership.configured)
        );
        // A stranger still cannot push in.
        let stranger = PeerId::new(IpAddr::V4(Ipv4Addr::new(127, 2, 0, 3)), 5000);
        assert_eq!(
            peers.on_status(stranger, report(1, 0), t0 + 5 * SEC, &mut events),
            Err(Refusal::TableFull)
        );
    }

    #[test]
    fn one_address_holds_a_bounded_share_of_the_table() {
        let t0 = Instant::now();
        let mut peers = table(t0);
        let mut events = Vec::new();
        let ip = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 9));
        let port = |p: usize| PeerId::new(ip, 6000 + p as u16);
        for p in 0..MAX_PEERS_PER_IP {
            assert!(
                peers
                    .on_status(port(p), report(1, 0), t0, &mut events)
                    .is_ok()
            );
        }
        let over = port(MAX_PEERS_PER_IP);
        let refused = peers.on_status(over, report(1, 0), t0, &mut events);
        assert_eq!(refused, Err(Refusal::IpShareFull(ip)));
        assert_eq!(refused.map_err(|r| r.reason()), Err("ip_share_full"));
        // Known entries keep talking; hearsay cannot add more on that IP.
        assert!(
            peers
                .on_status(port(0), report(1, 1), t0, &mut events)
                .is_ok()
        );
        let hearsay = Member {
            addr: over.0,
            name: None,
            boot: 1,
            heard_ms: 0,
        };
        assert_eq!(
            peers.learn(&hearsay, id(2), t0),
            Err(Refusal::IpShareFull(ip))
        );
        // A configured peer on that IP is never refused; other IPs are free.
        assert_eq!(peers.add_configured(over, t0), Ok(()));
        assert!(
            peers
                .on_status(id(3), report(1, 0), t0, &mut events)
                .is_ok()
        );
    }

    #[test]
    fn a_forget_deadline_beyond_any_instant_does_not_panic() {
        // Config caps --forget-after at a year; the table copes with more.
        let t0 = Instant::now();
        let mut peers = table(t0).with_forget_after(Some(Duration::MAX));
        let mut events = Vec::new();
        peers.learn(&member(3, 1, 0), id(2), t0).ok();
        peers.on_status(id(3), report(1, 0), t0, &mut events).ok();
        let later = t0 + 20 * SEC;
        peers.tick(later, &mut events);
        assert_eq!(peers.get(&id(3)).map(|p| p.state), Some(PeerState::Offline));
        let next = peers.next_deadline(later);
        assert!(next.is_some_and(|at| at > later), "{next:?}");
    }

    #[test]
    fn alerts_follow_statuses_and_outlast_silence() {
        let t0 = Instant::now();
        let rule = AlertRule::parse("cpu > 90 for 1s", crate::config::parse_duration);
        let mut peers = table(t0).with_alerts(rule.into_iter().collect());
        peers.add_configured(id(2), t0).ok();
        let busy = |cpu| StatusReport {
            cpu,
            ..report(1, 0)
        };
        let mut events = Vec::new();
        for second in 0..3 {
            peers
                .on_status(id(2), busy(95.0), t0 + second * SEC, &mut events)
                .ok();
        }
        // The status line first, then its alert (after 1 s past 90, at 1 s).
        assert_eq!(
            kinds(&events),
            ["status", "status", "alert", "status"],
            "{events:?}"
        );
        let subject = Subject::Peer(id(2));
        assert_eq!(peers.alerts().firing(subject).len(), 1);
        // Silent long past T: offline, and the alert stays.
        events.clear();
        peers.tick(t0 + 30 * SEC, &mut events);
        assert_eq!(kinds(&events), ["offline"]);
        assert_eq!(peers.alerts().firing(subject).len(), 1);
        // Back, idle: the clearing duration counts from its return.
        events.clear();
        peers
            .on_status(id(2), busy(10.0), t0 + 31 * SEC, &mut events)
            .ok();
        peers
            .on_status(id(2), busy(10.0), t0 + 32 * SEC, &mut events)
            .ok();
        assert_eq!(
            kinds(&events),
            ["online", "status", "status", "alert_cleared"]
        );
        assert!(peers.alerts().firing(subject).is_empty());
        // This node's own sample is its own subject.
        events.clear();
        let health = crate::proto::health::Health::default();
        let reading = super::super::alerts::Reading {
            cpu: 99.0,
            memory: 1.0,
            health: &health,
        };
        peers.on_own_sample("me", &reading, t0, &mut events);
        peers.on_own_sample("me", &reading, t0 + SEC, &mut events);
        assert_eq!(kinds(&events), ["alert"]);
        assert_eq!(peers.alerts().firing(Subject::Node).len(), 1);
    }
}
