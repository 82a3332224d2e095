//! Event hooks (`--on-event CMD`), like serf's event handlers: on offline,
//! back online, left, flapping, cut off, restored, alert and alert cleared,
//! run `sh -c CMD` with the event in `P2PMON_*` environment variables and
//! its JSON line on stdin. Which events reach this node's hooks at all is
//! [`duty`](super::duty)'s call, made when the event is published; the rule
//! that let it through is `P2PMON_HOOK_RULE`.
//!
//! They run on the HTTP thread, never on the sender's or listener's. Events
//! wait in a [`HookQueue`], fair between sources: each source address keeps
//! its latest [`MAX_HOOK_EVENTS_PER_SOURCE`] events, all together at most
//! [`MAX_HOOK_QUEUE`], and sources take turns, so one peer (or one address
//! posing as many) flapping cannot push out another peer's offline; drops are
//! counted and summarised in one line per [`HOOK_DROP_LOG_WINDOW`]. The
//! commands of an event start one by one as slots free up: at most
//! [`MAX_HOOKS_RUNNING`] hooks at once, whatever the number of commands. Each
//! hook is a process group of its own, killed whole (children included) at
//! [`HOOK_TIMEOUT`] and when the node stops. A failing or hanging hook is
//! logged and costs the monitoring nothing.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process_group, test_kill_process_group};
use serde_json::Value;

use crate::limits::{
    HOOK_DROP_LOG_WINDOW, HOOK_TIMEOUT, MAX_HOOK_EVENTS_PER_SOURCE, MAX_HOOK_QUEUE,
    MAX_HOOKS_RUNNING,
};
use crate::names;
use crate::peers::Event;
use crate::report::duty::HookRule;
use crate::report::output::event_fields;

/// Whose event it is: a peer's address, or `None` for this node's own
/// events (cut off, restored, its own alerts).
type Source = Option<IpAddr>;

fn source_of(event: &Event) -> Source {
    match event {
        Event::Status { peer, .. }
        | Event::Offline { peer, .. }
        | Event::Online { peer, .. }
        | Event::Left { peer, .. }
        | Event::Flapping { peer, .. }
        | Event::Forgotten { peer, .. } => Some(peer.0.ip()),
        Event::CutOff { .. } | Event::Restored { .. } => None,
        // A peer's alert is that peer's; this node's own is this node's.
        Event::Alert(note) | Event::AlertCleared(note) => note.peer.map(|peer| peer.0.ip()),
    }
}

fn describe(source: &Source) -> String {
    source.map_or_else(|| "this node".to_string(), |ip| ip.to_string())
}

/// Sources named in one drop summary; the others are counted together.
const SUMMARY_SOURCES: usize = 8;

/// Events waiting for the hooks: a bounded queue per source address, taken
/// in turns (round-robin), and a rate-limited account of what was dropped.
/// Pure: the clock is passed in.
#[derive(Debug, Default)]
pub struct HookQueue {
    by_source: HashMap<Source, VecDeque<(Event, HookRule)>>,
    /// Sources with queued events, in the order they take their turn.
    turns: VecDeque<Source>,
    len: usize,
    /// Start of the current drop-log window; `None` while nothing was dropped lately.
    window_start: Option<Instant>,
    /// Drops in the current window, by source (at most [`SUMMARY_SOURCES`]).
    window_drops: BTreeMap<Source, u64>,
    /// Drops of sources beyond those, in the current window.
    window_other: u64,
}

impl HookQueue {
    /// Queues `event`. If its source already holds its share, or the queue
    /// is full, one older event is dropped (the source's own oldest, or the
    /// oldest of the source holding the most): returns how many were
    /// dropped (0 or 1) and, for the first drop after a quiet spell, the
    /// line to log. Later drops wait for [`HookQueue::take_summary`].
    pub fn push(&mut self, event: Event, rule: HookRule, now: Instant) -> (u64, Option<String>) {
        let source = source_of(&event);
        let own = self.by_source.get(&source).map_or(0, VecDeque::len);
        let victim = if own >= MAX_HOOK_EVENTS_PER_SOURCE {
            Some(source)
        } else if self.len >= MAX_HOOK_QUEUE {
            let longest = self
                .turns
                .iter()
                .max_by_key(|s| self.by_source.get(*s).map_or(0, VecDeque::len))
                .copied();
            let longest_len = longest
                .and_then(|s| self.by_source.get(&s))
                .map_or(0, VecDeque::len);
            if longest_len > own {
                longest
            } else {
                Some(source)
            }
        } else {
            None
        };
        let mut line = None;
        let mut dropped = 0;
        if let Some(victim) = victim
            && let Some((gone, _)) = self.pop_from(victim)
        {
            dropped = 1;
            line = self.note_drop(victim, &gone, now);
        }
        let queue = self.by_source.entry(source).or_default();
        if queue.is_empty() {
            self.turns.push_back(source);
        }
        queue.push_back((event, rule));
        self.len += 1;
        (dropped, line)
    }

    /// The next event and the rule it runs under, taking sources in turns.
    pub fn pop(&mut self) -> Option<(Event, HookRule)> {
        let source = self.turns.pop_front()?;
        let queue = self.by_source.get_mut(&source)?;
        let event = queue.pop_front();
        if queue.is_empty() {
            self.by_source.remove(&source);
        } else {
            self.turns.push_back(source);
        }
        if event.is_some() {
            self.len -= 1;
        }
        event
    }

    /// Events queued, all sources together.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.len
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Once a window after a drop is over: the line saying how many events
    /// were dropped in it, for which sources (`None` if none were). A window
    /// without drops closes it: the next drop is logged at once.
    pub fn take_summary(&mut self, now: Instant) -> Option<String> {
        let start = self.window_start?;
        if now.duration_since(start) < HOOK_DROP_LOG_WINDOW {
            return None;
        }
        let total: u64 = self.window_drops.values().sum::<u64>() + self.window_other;
        if total == 0 {
            self.window_start = None;
            return None;
        }
        let mut sources: Vec<String> = self
            .window_drops
            .iter()
            .map(|(source, count)| format!("{} ({count})", describe(source)))
            .collect();
        if self.window_other > 0 {
            sources.push(format!("other sources ({})", self.window_other));
        }
        self.window_start = Some(now);
        self.window_drops.clear();
        self.window_other = 0;
        Some(format!(
            "event hooks are not keeping up: {total} queued event(s) dropped in the last {} s: {}",
            HOOK_DROP_LOG_WINDOW.as_secs(),
            sources.join(", ")
        ))
    }

    fn pop_from(&mut self, source: Source) -> Option<(Event, HookRule)> {
        let queue = self.by_source.get_mut(&source)?;
        let event = queue.pop_front()?;
        self.len -= 1;
        if queue.is_empty() {
            self.by_source.remove(&source);
            self.turns.retain(|s| *s != source);
        }
        Some(event)
    }

    fn note_drop(&mut self, source: Source, gone: &Event, now: Instant) -> Option<String> {
        if self.window_start.is_none() {
            self.window_start = Some(now);
            return Some(format!(
                "event hooks are not keeping up: dropped a queued {} event of {}; \
                 further drops are counted (p2pmon_rejected_total{{reason=\"hook_queue_full\"}}) \
                 and summarised every {} s",
                event_fields(gone).0,
                describe(&source),
                HOOK_DROP_LOG_WINDOW.as_secs()
            ));
        }
        if let Some(count) = self.window_drops.get_mut(&source) {
            *count += 1;
        } else if self.window_drops.len() < SUMMARY_SOURCES {
            self.window_drops.insert(source, 1);
        } else {
            self.window_other += 1;
        }
        None
    }
}

#[derive(Debug)]
struct Running {
    child: Child,
    /// The hook's process group (its `sh` leads it).
    group: Pid,
    /// `sh` exited and was reaped; the group may still hold its children.
    exited: bool,
    command: String,
    event: &'static str,
    deadline: Instant,
}

/// The configured hook commands and the ones running now.
#[derive(Debug, Default)]
pub struct Hooks {
    commands: Vec<String>,
    /// Hooks whose process group is alive (counted against [`MAX_HOOKS_RUNNING`]).
    running: Vec<Running>,
    /// The event whose commands are being started, its rule, and the next
    /// command's index.
    starting: Option<(Event, HookRule, usize)>,
}

/// How often to look for finished hooks while some run.
const REAP_EVERY: Duration = Duration::from_millis(100);

impl Hooks {
    pub fn new(commands: Vec<String>) -> Hooks {
        Hooks {
            commands,
            running: Vec::new(),
            starting: None,
        }
    }

    /// Reaps finished hooks, kills late ones, starts queued events' commands
    /// while fewer than [`MAX_HOOKS_RUNNING`] run.
    /// `next` hands out the next queued event and, now and then, the summary
    /// line of what the queue dropped (the queue lives in the node's shared
    /// state; the hooks never reach into it).
    pub fn run_pending(
        &mut self,
        mut next: impl FnMut(Instant) -> (Option<(Event, HookRule)>, Option<String>),
        now: Instant,
    ) {
        self.reap(now);
        if self.commands.is_empty() {
            return;
        }
        while self.running.len() < MAX_HOOKS_RUNNING {
            if self.starting.is_none() {
                let (event, summary) = next(now);
                if let Some(summary) = summary {
                    log::warn!("{summary}");
                }
                match event {
                    Some((event, rule)) => self.starting = Some((event, rule, 0)),
                    None => break,
                }
            }
            let Some((event, rule, index)) = self.starting.take() else {
                break;
            };
            if let Some(command) = self.commands.get(index).cloned() {
                self.start(&command, &event, rule, now);
            }
            if index + 1 < self.commands.len() {
                self.starting = Some((event, rule, index + 1));
            }
        }
    }

    /// When the loop must look again (a deadline, or reaping while hooks run).
    pub fn next_deadline(&self) -> Option<Instant> {
        let now = Instant::now();
        self.running
            .iter()
            .map(|running| running.deadline.min(now + REAP_EVERY))
            .min()
    }

    /// Kills the hooks still running when the node stops, each with its
    /// whole process group: no hook process outlives the node.
    pub fn stop(&mut self) {
        self.reap(Instant::now());
        if self.running.is_empty() {
            return;
        }
        log::info!(
            "{} event hook(s) still running at exit: killed",
            self.running.len()
        );
        for mut running in self.running.drain(..) {
            let _ = kill_process_group(running.group, Signal::Kill);
            if !running.exited {
                let _ = running.child.wait();
            }
        }
    }

    fn start(&mut self, command: &str, event: &Event, rule: HookRule, now: Instant) {
        let (name, fields) = event_fields(event);
        let mut process = Command::new("sh");
        process
            .args(["-c", command])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            // Its own process group, so the timeout can kill what it started too
            // (and a Ctrl+C at the terminal reaches the node, not the hooks).
            .process_group(0)
            .env("P2PMON_EVENT", name)
            .env("P2PMON_HOOK_RULE", rule.as_str());
        if let Value::Object(map) = &fields {
            for (key, value) in map {
                let text = match value {
                    Value::String(text) => text.clone(),
                    Value::Null => continue,
                    other => other.to_string(),
                };
                // Names are checked at decode; escape anyway (no NUL may reach execve).
                process.env(
                    format!("P2PMON_{}", key.to_ascii_uppercase()),
                    names::for_environment(&text).as_ref(),
                );
            }
        }
        match process.spawn() {
            Ok(mut child) => {
                if let Some(mut stdin) = child.stdin.take() {
                    let mut line = serde_json::to_vec(&fields).unwrap_or_default();
                    line.push(b'\n');
                    // Under 1 KiB into an empty pipe: never blocks.
                    if let Err(e) = stdin.write_all(&line) {
                        log::debug!("hook {command:?} did not take its stdin: {e}");
                    }
                }
                self.running.push(Running {
                    group: Pid::from_child(&child),
                    child,
                    exited: false,
                    command: command.to_string(),
                    event: name,
                    deadline: now + HOOK_TIMEOUT,
                });
            }
            Err(e) => log::warn!("cannot run event hook {command:?}: {e}"),
        }
    }

    fn reap(&mut self, now: Instant) {
        self.running.retain_mut(|running| {
            if !running.exited {
                match running.child.try_wait() {
                    Ok(Some(status)) => {
                        running.exited = true;
                        if !status.success() {
                            log::warn!(
                                "event hook {:?} for {} failed: {status}",
                                running.command,
                                running.event
                            );
                        }
                    }
                    Ok(None) if now >= running.deadline => {
                        log::warn!(
                            "event hook {:?} for {} still running after {} s: killed with its process group",
                            running.command,
                            running.event,
                            HOOK_TIMEOUT.as_secs()
                        );
                        let _ = kill_process_group(running.group, Signal::Kill);
                        let _ = running.child.kill();
                        let _ = running.child.wait();
                        return false;
                    }
                    Ok(None) => return true,
                    Err(e) => {
                        log::warn!("cannot watch event hook {:?}: {e}", running.command);
                        let _ = kill_process_group(running.group, Signal::Kill);
                        return false;
                    }
                }
            }
            // `sh` is gone; what it left in its group dies at the deadline.
            // The group's number cannot be reused while any member lives, and
            // it is looked at every REAP_EVERY, so the kill never hits a stranger.
            if test_kill_process_group(running.group).is_err() {
                return false;
            }
            if now >= running.deadline {
                if kill_process_group(running.group, Signal::Kill).is_ok() {
                    log::warn!(
                        "event hook {:?} for {} left processes running after {} s: killed",
                        running.command,
                        running.event,
                        HOOK_TIMEOUT.as_secs()
                    );
                }
                return false;
            }
            true
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peers::PeerId;
    use std::net::SocketAddr;

    fn offline(ip: [u8; 4], port: u16) -> Event {
        Event::Offline {
            peer: PeerId(SocketAddr::from((ip, port))),
            name: None,
            reason: "test".into(),
            last_seen: None,
        }
    }

    fn ports(queue: &mut HookQueue) -> Vec<(IpAddr, u16)> {
        std::iter::from_fn(|| queue.pop().map(|(event, _)| event))
            .filter_map(|event| match event {
                Event::Offline { peer, .. } => Some((peer.0.ip(), peer.0.port())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn one_flooding_source_keeps_only_its_latest_and_cannot_push_out_another() {
        let mut queue = HookQueue::default();
        let t0 = Instant::now();
        let mut dropped = 0;
        for port in 1..=300 {
            dropped += queue
                .push(offline([10, 0, 0, 9], port), HookRule::Duty, t0)
                .0;
        }
        assert_eq!(dropped, 300 - MAX_HOOK_EVENTS_PER_SOURCE as u64);
        assert_eq!(
            queue
                .push(offline([10, 0, 0, 2], 5000), HookRule::Duty, t0)
                .0,
            0
        );
        assert_eq!(queue.len(), MAX_HOOK_EVENTS_PER_SOURCE + 1);
        let order = ports(&mut queue);
        // Turns alternate: the other peer's event comes second, not last.
        assert_eq!(order[1], (IpAddr::from([10, 0, 0, 2]), 5000));
        let flood: Vec<u16> = order
            .iter()
            .filter(|(ip, _)| *ip == IpAddr::from([10, 0, 0, 9]))
            .map(|(_, port)| *port)
            .collect();
        assert_eq!(flood, [297, 298, 299, 300]);
        assert!(queue.is_empty());
    }

    #[test]
    fn a_full_queue_takes_from_the_source_holding_the_most() {
        let mut queue = HookQueue::default();
        let t0 = Instant::now();
        // Fill the queue: many sources with one event, one with its share.
        for port in 0..MAX_HOOK_EVENTS_PER_SOURCE as u16 {
            queue.push(offline([10, 1, 0, 1], port), HookRule::Duty, t0);
        }
        let mut n = 0u32;
        while queue.len() < MAX_HOOK_QUEUE {
            n += 1;
            let [_, _, c, d] = n.to_be_bytes();
            queue.push(offline([10, 2, c, d], 5000), HookRule::Duty, t0);
        }
        // A new source still gets in: the biggest holder gives up its oldest.
        assert_eq!(
            queue
                .push(offline([10, 3, 0, 1], 5000), HookRule::Duty, t0)
                .0,
            1
        );
        assert_eq!(queue.len(), MAX_HOOK_QUEUE);
        let order = ports(&mut queue);
        assert!(order.contains(&(IpAddr::from([10, 3, 0, 1]), 5000)));
        assert!(!order.contains(&(IpAddr::from([10, 1, 0, 1]), 0)));
        assert_eq!(order.len(), MAX_HOOK_QUEUE);
    }

    #[test]
    fn drops_log_one_line_then_one_summary_per_window() {
        let mut queue = HookQueue::default();
        let t0 = Instant::now();
        let mut lines = Vec::new();
        for port in 0..100 {
            if let (_, Some(line)) = queue.push(offline([10, 0, 0, 9], port), HookRule::Duty, t0) {
                lines.push(line);
            }
        }
        for port in 0..10 {
            queue.push(offline([10, 0, 0, 8], port), HookRule::Duty, t0);
        }
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].contains("10.0.0.9"), "{}", lines[0]);
        assert_eq!(queue.take_summary(t0 + Duration::from_secs(59)), None);
        let summary = queue.take_summary(t0 + HOOK_DROP_LOG_WINDOW);
        let expected = 100 - MAX_HOOK_EVENTS_PER_SOURCE - 1 + 10 - MAX_HOOK_EVENTS_PER_SOURCE;
        assert_eq!(
            summary.as_deref(),
            Some(
                format!(
                    "event hooks are not keeping up: {expected} queued event(s) dropped in the last 60 s: \
                     10.0.0.8 ({}), 10.0.0.9 ({})",
                    10 - MAX_HOOK_EVENTS_PER_SOURCE,
                    100 - MAX_HOOK_EVENTS_PER_SOURCE - 1
                )
                .as_str()
            )
        );
        // A quiet window closes the account; the next drop is logged at once.
        let t1 = t0 + HOOK_DROP_LOG_WINDOW * 2;
        assert_eq!(queue.take_summary(t1), None);
        assert!(
            queue
                .push(offline([10, 0, 0, 9], 999), HookRule::Duty, t1)
                .1
                .is_some()
        );
    }

    #[test]
    fn many_dropping_sources_are_summarised_in_bounded_space() {
        let mut queue = HookQueue::default();
        let t0 = Instant::now();
        for n in 0..50u8 {
            for port in 0..=MAX_HOOK_EVENTS_PER_SOURCE as u16 {
                queue.push(offline([10, 0, 1, n], port), HookRule::Duty, t0);
            }
        }
        assert!(queue.window_drops.len() <= SUMMARY_SOURCES);
        let summary = queue
            .take_summary(t0 + HOOK_DROP_LOG_WINDOW)
            .unwrap_or_default();
        assert!(summary.contains("other sources (41)"), "{summary}");
    }
}
