//! The node's shared state, as one cloneable handle (mini-redis's `Db`):
//! what never changes (the name, the listening addresses, the keyring's
//! handle) is read without a lock; what must change together (the peer
//! table, its pending events, the output buffer, history, counters, this
//! node's own sample, the hook queue and the addresses the duty rule ranks
//! this node by, the sender's mailbox) sits behind one
//! mutex that only this file's methods take; the health flags are atomics
//! and a set-once cell.
//!
//! The rule the handle keeps: a change to the table and the events it caused
//! are published in the same call ([`State::change`]: log lines, stdout,
//! history and hooks in event order), and the threads that must react (the
//! sender for link changes, the hooks runner, the stdout writer) are woken
//! after the lock is released. Readers copy what they need under the lock
//! ([`State::view`]) and render outside it. Each lock is held for
//! microseconds; a thread that panicked while holding it left the data
//! consistent enough to keep monitoring (each update is small), so a poisoned
//! lock is used anyway rather than taking the node down.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Instant;

use mio::Waker;

use crate::config::{Host, PeerAddr};
use crate::node::sample::Sample;
use crate::node::sender::LinkChange;
use crate::peers::alerts::Reading;
use crate::peers::{AlertNote, Event, PeerId, PeerState, PeerTable};
use crate::proto::SharedKeyring;
use crate::report::duty::{self, Candidate, HookRule, HooksOn, Turn};
use crate::report::history::{History, Levels, StatusPoint};
use crate::report::hooks::HookQueue;
use crate::report::output::Output;
use crate::report::stats::Stats;

/// The handle every thread holds.
#[derive(Debug, Clone)]
pub struct State {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// This node's display name and listening addresses (for /status).
    name: String,
    listening: Vec<String>,
    /// The cluster keys, `None` without --key-file. Behind their own lock:
    /// SIGHUP swaps the keys while the threads run.
    keyring: Option<SharedKeyring>,
    /// Events are queued for the hooks only when hooks are configured.
    hooks: Option<HookSetup>,
    locked: Mutex<Locked>,
    wakers: Wakers,
    /// The listener's loop is running (GET /healthz).
    listener_running: AtomicBool,
    /// Why a thread stopped on an unrecoverable error (the first reason wins).
    fatal: OnceLock<String>,
}

/// Who to wake when something changed, each set once at thread start.
#[derive(Debug, Default)]
struct Wakers {
    /// The listener, which writes stdout.
    writer: OnceLock<Arc<Waker>>,
    /// The sender, which applies link changes.
    sender: OnceLock<Arc<Waker>>,
    /// The HTTP thread, which runs the hooks.
    hooks: OnceLock<Arc<Waker>>,
}

/// What must change together.
#[derive(Debug)]
struct Locked {
    table: PeerTable,
    /// Events caused by the change in progress, not yet published.
    events: Vec<Event>,
    output: Output,
    stats: Stats,
    /// The last 15 minutes of every peer and of this node (GET /history).
    history: History,
    /// The sender's last sample of this node.
    own: Option<Sample>,
    /// Events waiting for the hooks, fair between sources.
    hook_queue: HookQueue,
    /// Peers to add or remove, for the sender to apply.
    link_changes: Vec<LinkChange>,
    /// The local IP of our latest connection to each peer: the address it
    /// knows us by (with a wildcard listen, what the duty rule ranks us by).
    local_ips: HashMap<PeerId, IpAddr>,
}

/// Who runs this node's hooks (`--hooks-on`), and what it knows of its own
/// (IP, port) as its peers see it.
#[derive(Debug, Clone, Copy)]
pub struct HookSetup {
    pub hooks_on: HooksOn,
    /// The listening port (peers know us by it, whatever our source port).
    pub port: u16,
    /// `--listen`'s IP, which is also the source of our connections; `None`
    /// for a wildcard listen.
    pub listen: Option<IpAddr>,
}

/// A change in progress, under the lock: the table, the events it causes
/// (pass `events` to the table's methods) and the counters. Whatever it
/// does is published when [`State::change`] returns.
#[derive(Debug)]
pub struct Change<'a> {
    pub table: &'a mut PeerTable,
    pub events: &'a mut Vec<Event>,
    pub stats: &'a mut Stats,
    links: &'a mut Vec<LinkChange>,
    local_ips: &'a mut HashMap<PeerId, IpAddr>,
}

impl Change<'_> {
    /// Asks the sender to start or stop sending to peers.
    pub fn change_links(&mut self, changes: impl IntoIterator<Item = LinkChange>) {
        self.links.extend(changes);
    }

    /// Our connection to `peer` is up from the local address `ip`: the
    /// address `peer` knows us by.
    pub fn note_local_address(&mut self, peer: PeerId, ip: IpAddr) {
        self.local_ips.insert(peer, ip.to_canonical());
    }
}

/// A read-only look at the state, under the lock: copy what you need, render
/// after [`State::view`] returns.
#[derive(Debug)]
pub struct View<'a> {
    pub name: &'a str,
    pub listening: &'a [String],
    pub table: &'a PeerTable,
    pub stats: &'a Stats,
    pub history: &'a History,
    pub own: Option<Sample>,
    /// Lines dropped because stdout did not keep up.
    pub output_dropped: u64,
}

/// Which threads to wake once the lock is released. (Not the writer: the
/// listener writes stdout after every turn of its loop, so only the sender
/// wakes it, with [`State::wake_writer`].)
#[derive(Debug, Default, Clone, Copy)]
struct Wake {
    sender: bool,
    hooks: bool,
    /// The table's structure changed (a link connected, failed or closed, a
    /// member was added or removed) or a peer's state did: its deadlines may
    /// now fall sooner than the listener, asleep until the last one it
    /// computed, expects.
    listener: bool,
}

impl State {
    pub fn new(
        name: String,
        listening: Vec<String>,
        keyring: Option<SharedKeyring>,
        hooks: Option<HookSetup>,
        table: PeerTable,
        output: Output,
    ) -> State {
        State {
            inner: Arc::new(Inner {
                name,
                listening,
                keyring,
                hooks,
                locked: Mutex::new(Locked {
                    table,
                    events: Vec::new(),
                    output,
                    stats: Stats::default(),
                    history: History::default(),
                    own: None,
                    hook_queue: HookQueue::default(),
                    link_changes: Vec::new(),
                    local_ips: HashMap::new(),
                }),
                wakers: Wakers::default(),
                listener_running: AtomicBool::new(false),
                fatal: OnceLock::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Locked> {
        self.inner
            .locked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The cluster keys' handle, `None` without a key.
    pub fn keyring(&self) -> Option<&SharedKeyring> {
        self.inner.keyring.as_ref()
    }

    /// Applies a change and publishes the events it caused in the same call:
    /// the reasons on stderr, the lines on stdout, history, the hook queue;
    /// members the table dropped stop being sent to. The threads that must
    /// react are woken after the lock is released.
    pub fn change<R>(&self, f: impl FnOnce(&mut Change<'_>) -> R) -> R {
        self.apply(f, false)
    }

    /// [`State::change`] for the listener's own changes. It compares the
    /// table's generation around them and recomputes its deadlines after its
    /// timers (`Listener::run`), so a change of structure does not wake it:
    /// when 1,000 peers closed together, each close woke it once more for
    /// nothing. A state change it published still does.
    pub fn change_from_listener<R>(&self, f: impl FnOnce(&mut Change<'_>) -> R) -> R {
        self.apply(f, true)
    }

    fn apply<R>(&self, f: impl FnOnce(&mut Change<'_>) -> R, from_listener: bool) -> R {
        let (result, wake) = {
            let mut locked = self.lock();
            let Locked {
                table,
                events,
                stats,
                link_changes,
                local_ips,
                ..
            } = &mut *locked;
            let links_before = link_changes.len();
            let generation = table.generation();
            let result = f(&mut Change {
                table,
                events,
                stats,
                links: link_changes,
                local_ips,
            });
            // A state change may set a deadline (flap muting, close grace)
            // the listener has not planned for, as may a change of links.
            let moved = locked.table.generation() != generation;
            let published = locked
                .events
                .iter()
                .any(|event| !matches!(event, Event::Status { .. }));
            let mut wake = locked.publish(self.inner.hooks);
            wake.sender |= locked.link_changes.len() > links_before;
            wake.listener = published || (moved && !from_listener);
            (result, wake)
        };
        self.wake(wake);
        result
    }

    /// Reads the table without changing it.
    pub fn read<R>(&self, f: impl FnOnce(&PeerTable) -> R) -> R {
        f(&self.lock().table)
    }

    /// Copies what a reader needs under the lock.
    pub fn view<R>(&self, f: impl FnOnce(&View<'_>) -> R) -> R {
        let locked = self.lock();
        f(&View {
            name: &self.inner.name,
            listening: &self.inner.listening,
            table: &locked.table,
            stats: &locked.stats,
            history: &locked.history,
            own: locked.own.clone(),
            output_dropped: locked.output.dropped,
        })
    }

    /// Updates counters only (nothing to publish).
    pub fn count<R>(&self, f: impl FnOnce(&mut Stats) -> R) -> R {
        f(&mut self.lock().stats)
    }

    /// Counts a rejection and logs it (rate-limited).
    pub fn reject(
        &self,
        reason: &'static str,
        source: IpAddr,
        detail: &dyn std::fmt::Display,
        now: Instant,
    ) {
        self.lock().stats.reject(reason, source, detail, now);
    }

    /// Keeps the sender's latest sample of this node, and its history, and
    /// publishes the alerts it fires or clears (the sender then wakes the
    /// writer, as after every turn of its loop).
    pub fn set_own(&self, sample: Sample) {
        let wake = {
            let mut locked = self.lock();
            locked
                .history
                .record_own(crate::time::unix_seconds(), sample.cpu, sample.memory);
            let Locked { table, events, .. } = &mut *locked;
            let reading = Reading {
                cpu: sample.cpu,
                memory: sample.memory,
                health: &sample.health,
            };
            table.on_own_sample(&self.inner.name, &reading, Instant::now(), events);
            locked.history.set_own_levels(Levels::of(&sample.health));
            locked.own = Some(sample);
            locked.publish(self.inner.hooks)
        };
        self.wake(wake);
    }

    /// Asks the sender to start or stop sending to peers (SIGHUP).
    pub fn change_links(&self, changes: impl IntoIterator<Item = LinkChange>) {
        self.change(|change| change.change_links(changes));
    }

    /// The link changes asked for since the last call (the sender's mailbox).
    pub fn take_link_changes(&self) -> Vec<LinkChange> {
        std::mem::take(&mut self.lock().link_changes)
    }

    /// The next event for the hooks and, now and then, the summary line of
    /// what the queue dropped.
    pub fn next_hook_event(&self, now: Instant) -> (Option<(Event, HookRule)>, Option<String>) {
        let mut locked = self.lock();
        let summary = locked.hook_queue.take_summary(now);
        (locked.hook_queue.pop(), summary)
    }

    /// The formatted stdout lines waiting to be written (outside the lock).
    pub fn take_output(&self) -> Vec<u8> {
        self.lock().output.take()
    }

    /// Formats the last line ("stopping") and takes what is left to write.
    pub fn take_last_output(&self) -> Vec<u8> {
        let mut locked = self.lock();
        locked.output.stopping();
        locked.output.take()
    }

    /// Asks the listener thread to write pending lines now: the sender never
    /// writes stdout itself, so a stalled stdout cannot stop it sending.
    pub fn wake_writer(&self) {
        let pending = self.lock().output.has_pending();
        if pending
            && let Some(waker) = self.inner.wakers.writer.get()
            && let Err(e) = waker.wake()
        {
            log::debug!("cannot wake the listener: {e}");
        }
    }

    /// The listener's loop started or stopped.
    pub fn set_listener_running(&self, running: bool) {
        self.inner
            .listener_running
            .store(running, Ordering::Release);
    }

    /// Whether the listener's loop runs (GET /healthz).
    pub fn listener_running(&self) -> bool {
        self.inner.listener_running.load(Ordering::Acquire)
    }

    /// A thread stopped on an unrecoverable error: the node exits 1 with
    /// this reason (the first one reported wins).
    pub fn fail(&self, reason: String) {
        let _ = self.inner.fatal.set(reason);
    }

    /// Why the node failed, if it did.
    pub fn fatal(&self) -> Option<&str> {
        self.inner.fatal.get().map(String::as_str)
    }

    /// Set once by the listener, which writes stdout.
    pub fn set_writer_waker(&self, waker: Arc<Waker>) {
        let _ = self.inner.wakers.writer.set(waker);
    }

    /// Set once by the sender, which applies link changes.
    pub fn set_sender_waker(&self, waker: Arc<Waker>) {
        let _ = self.inner.wakers.sender.set(waker);
    }

    /// Set once by the HTTP thread, which runs the hooks.
    pub fn set_hook_waker(&self, waker: Arc<Waker>) {
        let _ = self.inner.wakers.hooks.set(waker);
    }

    fn wake(&self, wake: Wake) {
        let wakers = &self.inner.wakers;
        for (wanted, waker, what) in [
            (wake.sender, &wakers.sender, "the sender"),
            (wake.hooks, &wakers.hooks, "the hook runner"),
            (wake.listener, &wakers.writer, "the listener"),
        ] {
            if wanted
                && let Some(waker) = waker.get()
                && let Err(e) = waker.wake()
            {
                log::debug!("cannot wake {what}: {e}");
            }
        }
    }
}

impl Locked {
    /// Logs the reasons and prints the lines of the pending events, queues
    /// for the hooks those this node is to run (see [`duty`]), and stops
    /// sending to members dropped from the table. Says whom to wake.
    fn publish(&mut self, hooks: Option<HookSetup>) -> Wake {
        let mut wake = Wake::default();
        let removed = self.table.take_removed();
        if !removed.is_empty() {
            for id in &removed {
                self.local_ips.remove(id);
            }
            self.link_changes.extend(removed.into_iter().map(|id| {
                LinkChange::Remove(PeerAddr {
                    host: Host::Ip(id.0.ip()),
                    port: id.0.port(),
                })
            }));
            wake.sender = true;
        }
        let at = crate::time::unix_seconds();
        let now = Instant::now();
        for event in std::mem::take(&mut self.events) {
            record_history(&mut self.history, &self.table, &event, at);
            log_reason(&event);
            self.output.event(&event);
            let Some(setup) = hooks else { continue };
            if matches!(event, Event::Status { .. }) {
                continue;
            }
            // Decided now, on the table that applied the event: a dead duty
            // node is already offline here, so the next lowest takes over.
            let candidates = self.table.iter().map(|peer| Candidate {
                id: peer.id,
                state: peer.state,
                since: peer.since,
            });
            let own = self.own_id(setup);
            let rule = match duty::turn(setup.hooks_on, own, &event, now, candidates) {
                Turn::Run(rule) => rule,
                Turn::StandDown { on_duty } => {
                    log::info!(
                        "hooks for the {} of {}: {on_duty} is on duty, not this node",
                        crate::report::output::event_fields(&event).0,
                        source_name(&event),
                    );
                    continue;
                }
            };
            let (dropped, line) = self.hook_queue.push(event, rule, now);
            if dropped > 0 {
                *self.stats.rejected.entry("hook_queue_full").or_insert(0) += dropped;
            }
            if let Some(line) = line {
                log::warn!("{line}");
            }
            wake.hooks = true;
        }
        wake
    }

    /// This node's (IP, port) as its peers know it: `--listen`'s IP, or
    /// with a wildcard listen the lowest local address of our connections
    /// to the peers online now (a host with several addresses may show
    /// each peer another; ranking ourselves by the lowest errs toward
    /// running a hook twice, never toward nobody running it). `None` before
    /// any such connection.
    fn own_id(&self, setup: HookSetup) -> Option<PeerId> {
        let ip = setup.listen.filter(|ip| !ip.is_unspecified()).or_else(|| {
            self.local_ips
                .iter()
                .filter(|(peer, _)| {
                    self.table
                        .get(peer)
                        .is_some_and(|peer| peer.state == PeerState::Online)
                })
                .map(|(_, ip)| *ip)
                .min()
        })?;
        Some(PeerId::new(ip, setup.port))
    }
}

/// The peer an event is about, for a log line.
fn source_name(event: &Event) -> String {
    match event {
        Event::Status { peer, .. }
        | Event::Offline { peer, .. }
        | Event::Online { peer, .. }
        | Event::Left { peer, .. }
        | Event::Flapping { peer, .. }
        | Event::Forgotten { peer, .. } => peer.to_string(),
        Event::Alert(note) | Event::AlertCleared(note) => note
            .peer
            .map_or_else(|| "this node".to_string(), |peer| peer.to_string()),
        Event::CutOff { .. } | Event::Restored { .. } => "this node".to_string(),
    }
}

/// The reason behind an event, on stderr.
fn log_reason(event: &Event) {
    match event {
        Event::Offline {
            peer,
            reason,
            last_seen,
            ..
        } => match last_seen {
            Some(seen) => log::warn!(
                "peer {peer} offline: {reason}, last heard {:.1} s ago",
                seen.as_secs_f64()
            ),
            None => log::warn!("peer {peer} offline: {reason}"),
        },
        Event::Online { peer, away, .. } => {
            log::info!("peer {peer} back online after {:.1} s", away.as_secs_f64());
        }
        Event::Left { peer, .. } => log::info!("peer {peer} left"),
        Event::Forgotten { peer, .. } => {
            log::info!(
                "peer {peer} forgotten: a learned member offline for longer than --forget-after"
            );
        }
        Event::Flapping { peer, reason, .. } => {
            log::warn!("peer {peer} is flapping: {reason}");
        }
        Event::CutOff { peers } => log::warn!(
            "all {peers} peers went silent within one threshold: this node's network is the likely cause"
        ),
        Event::Restored { peers, after } => log::info!(
            "contact restored with {peers} peers after {:.1} s",
            after.as_secs_f64()
        ),
        Event::Alert(note) => log::warn!(
            "alert on {}: {}: {} is {}, past {}{}",
            alert_subject(note),
            note.rule,
            note.metric.name(),
            note.metric.show(note.value),
            note.threshold,
            held(note)
        ),
        Event::AlertCleared(note) => log::info!(
            "alert on {} cleared: {}: {} is {}, back past {} by the clearing margin ({} %){}",
            alert_subject(note),
            note.rule,
            note.metric.name(),
            note.metric.show(note.value),
            note.threshold,
            crate::limits::ALERT_CLEAR_MARGIN * 100.0,
            held(note)
        ),
        Event::Status { .. } => {}
    }
}

/// ` at every status for 30.0 s`, or nothing for a rule without a DURATION.
fn held(note: &AlertNote) -> String {
    if note.hold.is_zero() {
        String::new()
    } else {
        format!(" at every status for {:.1} s", note.hold.as_secs_f64())
    }
}

/// `peer 127.0.0.2`, or `this node`.
fn alert_subject(note: &AlertNote) -> String {
    note.peer
        .map_or_else(|| "this node".to_string(), |peer| format!("peer {peer}"))
}

/// Adds a status or a state change to the peer's history; the state of a
/// status is the table's (a flapping peer's changes print nothing, but its
/// state in the table is current).
fn record_history(history: &mut History, table: &PeerTable, event: &Event, at: u64) {
    let known = |id: &_| table.get(id).is_some();
    let state_of = |id| table.get(id).map_or(PeerState::Online, |peer| peer.state);
    match event {
        Event::Status {
            peer,
            cpu,
            memory,
            health,
            ..
        } => {
            let point = StatusPoint {
                cpu: *cpu,
                memory: *memory,
                levels: Levels::of(health),
            };
            history.record(*peer, at, Some(point), state_of(peer), known);
        }
        Event::Offline { peer, .. } => history.record(*peer, at, None, PeerState::Offline, known),
        Event::Online { peer, .. } => history.record(*peer, at, None, PeerState::Online, known),
        Event::Left { peer, .. } => history.record(*peer, at, None, PeerState::Left, known),
        Event::Flapping { peer, .. } => history.record(*peer, at, None, state_of(peer), known),
        Event::Forgotten { peer, .. } => history.forget(peer),
        Event::CutOff { .. }
        | Event::Restored { .. }
        | Event::Alert(_)
        | Event::AlertCleared(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peers::{PeerId, StatusReport};
    use std::time::Duration;

    fn state() -> (State, Instant) {
        let t0 = Instant::now();
        let table = PeerTable::new(t0, Duration::from_secs(3), Duration::from_secs(1));
        let output = Output::new(crate::report::output::Format::Text, false, false);
        let hooks = HookSetup {
            hooks_on: HooksOn::Duty,
            port: 5000,
            listen: None,
        };
        let state = State::new("me".into(), vec![], None, Some(hooks), table, output);
        (state, t0)
    }

    fn report() -> StatusReport {
        StatusReport {
            name: Some("b".into()),
            boot: Some(1),
            seq: Some(0),
            interval: Duration::from_secs(1),
            cpu: 1.0,
            memory: 2.0,
            health: Default::default(),
        }
    }

    /// Whether the listener's waker fired since the last call.
    fn woken(poll: &mut mio::Poll) -> bool {
        let mut events = mio::Events::with_capacity(4);
        poll.poll(&mut events, Some(Duration::ZERO)).is_ok() && !events.is_empty()
    }

    #[test]
    fn a_change_that_moves_the_tables_deadlines_wakes_the_listener() {
        let (state, t0) = state();
        let Ok(mut poll) = mio::Poll::new() else {
            panic!("no poll");
        };
        let Ok(waker) = Waker::new(poll.registry(), mio::Token(0)) else {
            panic!("no waker");
        };
        state.set_writer_waker(Arc::new(waker));
        let peer = PeerId::new(IpAddr::from([127, 0, 0, 2]), 5000);
        // A new peer (a deadline of its own) wakes the listener.
        state.change(|c| c.table.add_configured(peer, t0)).ok();
        assert!(woken(&mut poll), "a new peer");
        // A first status prints (the writer wakes), so drain that wake first;
        // a later plain status changes no deadline the listener does not
        // plan itself, and neither does a digest.
        state.change(|c| c.table.on_status(peer, report(), t0, c.events).ok());
        let _ = woken(&mut poll);
        let later = StatusReport {
            seq: Some(1),
            ..report()
        };
        state.change(|c| {
            c.table
                .on_status(peer, later, t0 + Duration::from_secs(1), c.events)
                .ok()
        });
        state.change(|c| c.table.digest(t0 + Duration::from_secs(1)));
        assert!(!woken(&mut poll), "a status and a digest");
        // The peer goes offline (a state change, flap and close deadlines).
        state.change(|c| c.table.tick(t0 + Duration::from_secs(10), c.events));
        assert!(woken(&mut poll), "an offline verdict");
        // The listener's own change of structure does not wake it (it
        // rechecks by the generation itself); a verdict it publishes does.
        let other = PeerId::new(IpAddr::from([127, 0, 0, 3]), 5000);
        state
            .change_from_listener(|c| c.table.add_configured(other, t0))
            .ok();
        assert!(!woken(&mut poll), "the listener's own new peer");
        state.change_from_listener(|c| c.table.tick(t0 + Duration::from_secs(20), c.events));
        assert!(woken(&mut poll), "the listener's own verdict");
    }

    #[test]
    fn a_change_and_its_events_are_published_in_the_same_call() {
        let (state, t0) = state();
        let peer = PeerId::new(IpAddr::from([127, 0, 0, 2]), 5000);
        state.change(|c| c.table.add_configured(peer, t0)).ok();
        let accepted = state.change(|c| c.table.on_status(peer, report(), t0, c.events).is_ok());
        assert!(accepted);
        // Printed and queued for the hooks? A first status prints, hooks skip statuses.
        let out = String::from_utf8(state.take_output()).unwrap_or_default();
        assert!(out.contains("Received status from 127.0.0.2"), "{out}");
        assert_eq!(state.next_hook_event(t0).0, None);
        // Nothing is left pending for a later change to publish by accident.
        assert!(state.lock().events.is_empty());
        // Silence past T: the offline is published by the change that caused it.
        state.change(|c| c.table.tick(t0 + Duration::from_secs(10), c.events));
        let out = String::from_utf8(state.take_output()).unwrap_or_default();
        assert!(out.contains("Peer 127.0.0.2 is offline."), "{out}");
        assert!(matches!(
            state.next_hook_event(t0).0,
            Some((Event::Offline { .. }, HookRule::Duty))
        ));
    }

    /// A node with hooks on duty, listening on `listen` (None: wildcard),
    /// with peers .2 and .4 online.
    fn on_duty(listen: Option<IpAddr>) -> (State, Instant, PeerId, PeerId) {
        let t0 = Instant::now();
        let table = PeerTable::new(t0, Duration::from_secs(3), Duration::from_secs(1));
        let output = Output::new(crate::report::output::Format::Text, false, false);
        let hooks = HookSetup {
            hooks_on: HooksOn::Duty,
            port: 5000,
            listen,
        };
        let state = State::new("me".into(), vec![], None, Some(hooks), table, output);
        let low = PeerId::new(IpAddr::from([127, 0, 0, 2]), 5000);
        let high = PeerId::new(IpAddr::from([127, 0, 0, 4]), 5000);
        for peer in [low, high] {
            state.change(|c| {
                c.table.add_configured(peer, t0).ok();
                c.table.on_status(peer, report(), t0, c.events).ok();
            });
        }
        (state, t0, low, high)
    }

    #[test]
    fn hooks_are_queued_only_on_duty_as_the_table_stands_after_the_event() {
        let (state, t0, low, high) = on_duty(Some(IpAddr::from([127, 0, 0, 3])));
        // .4 leaves: .2 is online and lower than us (.3), so it is on duty.
        state
            .change(|c| c.table.on_leave(high, 1, t0, c.events))
            .ok();
        assert_eq!(state.next_hook_event(t0).0, None);
        // .2 leaves: nobody lower is online any more, we take over.
        state
            .change(|c| c.table.on_leave(low, 1, t0, c.events))
            .ok();
        assert!(matches!(
            state.next_hook_event(t0).0,
            Some((Event::Left { peer, .. }, HookRule::Duty)) if peer == low
        ));
    }

    #[test]
    fn with_a_wildcard_listen_the_node_ranks_itself_by_its_connections_local_address() {
        // Unknown address: run (a duplicate rather than a miss).
        let (state, t0, low, high) = on_duty(None);
        state
            .change(|c| c.table.on_leave(high, 1, t0, c.events))
            .ok();
        assert!(state.next_hook_event(t0).0.is_some());
        // Our connections leave from .1, lower than .2: on duty.
        let (state, t0, _, high) = on_duty(None);
        state
            .change(|c| {
                c.note_local_address(low, IpAddr::from([127, 0, 0, 1]));
                c.table.on_leave(high, 1, t0, c.events)
            })
            .ok();
        assert!(state.next_hook_event(t0).0.is_some());
        // From .3, higher than .2: .2 is on duty.
        let (state, t0, _, high) = on_duty(None);
        state
            .change(|c| {
                c.note_local_address(low, IpAddr::from([127, 0, 0, 3]));
                c.table.on_leave(high, 1, t0, c.events)
            })
            .ok();
        assert_eq!(state.next_hook_event(t0).0, None);
    }

    #[test]
    fn this_nodes_alerts_are_published_with_its_sample() {
        let t0 = Instant::now();
        let rule = crate::peers::AlertRule::parse("memory > 50", crate::config::parse_duration);
        let table = PeerTable::new(t0, Duration::from_secs(3), Duration::from_secs(1))
            .with_alerts(rule.into_iter().collect());
        let output = Output::new(crate::report::output::Format::Text, false, false);
        let hooks = HookSetup {
            hooks_on: HooksOn::Duty,
            port: 5000,
            listen: None,
        };
        let state = State::new("me".into(), vec![], None, Some(hooks), table, output);
        let sample = |memory| Sample {
            cpu: 1.0,
            memory,
            health: Default::default(),
        };
        state.set_own(sample(60.0));
        state.set_own(sample(70.0));
        let out = String::from_utf8(state.take_output()).unwrap_or_default();
        assert_eq!(out, "Alert on this node: memory > 50 (memory=60.0%).\n");
        assert!(matches!(
            state.next_hook_event(t0).0,
            Some((Event::Alert(note), HookRule::Local))
                if note.peer.is_none() && note.name.as_deref() == Some("me")
        ));
        assert_eq!(state.next_hook_event(t0).0, None);
        state.set_own(sample(10.0));
        let out = String::from_utf8(state.take_output()).unwrap_or_default();
        assert_eq!(
            out,
            "Alert cleared on this node: memory > 50 (memory=10.0%).\n"
        );
    }

    #[test]
    fn link_changes_reach_the_senders_mailbox_once() {
        let (state, _) = state();
        let addr = PeerAddr {
            host: Host::Ip(IpAddr::from([127, 0, 0, 3])),
            port: 5000,
        };
        state.change_links([LinkChange::Add(addr.clone())]);
        assert_eq!(state.take_link_changes(), vec![LinkChange::Add(addr)]);
        assert!(state.take_link_changes().is_empty());
    }

    #[test]
    fn the_first_fatal_reason_wins() {
        let (state, _) = state();
        assert_eq!(state.fatal(), None);
        state.fail("listener poll failed: x".into());
        state.fail("a thread panicked".into());
        assert_eq!(state.fatal(), Some("listener poll failed: x"));
    }
}
