//! Alert rules (`--alert "cpu > 90 for 30s"`, DESIGN.md "Alerts") and their
//! evaluation with hysteresis. Pure: the duration parser comes in from the
//! config (one set of duration rules and caps for every flag), the clock
//! comes in with every reading, and the events go to a caller's vector, so
//! every rule below is a unit test without a sleep.
//!
//! The grammar: `METRIC > VALUE [for DURATION]` or `METRIC < VALUE [...]`;
//! METRIC is one of [`Metric::ALL`]. Percent metrics take a percent, 0 to
//! 100, with or without a `%` sign; load metrics take a load, ≥ 0.
//!
//! The rules of evaluation, per subject (a peer, or this node) and rule:
//! - it fires when the value has been past the threshold at every reading
//!   for the whole DURATION (from the first reading past it; with no
//!   DURATION, at the first reading past it);
//! - it clears when the value has been back past the threshold by
//!   [`ALERT_CLEAR_MARGIN`] of it (`cpu > 90` clears at 85.5 or below,
//!   `memory < 10` at 10.5 or above) at every reading for the same DURATION:
//!   a value hovering at the threshold fires once and clears once;
//! - silence changes nothing: a peer that goes offline or leaves keeps its
//!   alerts as they were until it speaks again; a peer that comes back
//!   starts its pending durations afresh ([`Alerts::interrupt`]); a peer
//!   dropped from the table takes its alerts with it ([`Alerts::forget`]);
//! - a metric the reading does not carry (no swap, no filesystem, the
//!   Python original's statuses) changes nothing either: it never fires, and
//!   an alert already firing stays until the metric says otherwise.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::{Duration, Instant};

use super::{Event, PeerId};
use crate::limits::{ALERT_CLEAR_MARGIN, MAX_LOAD};
use crate::proto::health::Health;
use crate::units::round1;

/// What a rule watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    Cpu,
    Memory,
    Swap,
    /// The fullest filesystem's used percent.
    Disk,
    Load1,
    Load5,
    Load15,
    /// The 1-minute load divided by the logical CPU count.
    Load1PerCpu,
}

impl Metric {
    pub const ALL: [Metric; 8] = [
        Metric::Cpu,
        Metric::Memory,
        Metric::Swap,
        Metric::Disk,
        Metric::Load1,
        Metric::Load5,
        Metric::Load15,
        Metric::Load1PerCpu,
    ];

    /// The name in rules, json events and metrics labels.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Cpu => "cpu",
            Metric::Memory => "memory",
            Metric::Swap => "swap",
            Metric::Disk => "disk",
            Metric::Load1 => "load1",
            Metric::Load5 => "load5",
            Metric::Load15 => "load15",
            Metric::Load1PerCpu => "load1_per_cpu",
        }
    }

    /// Whether its values are percents (0 to 100).
    pub fn is_percent(self) -> bool {
        matches!(
            self,
            Metric::Cpu | Metric::Memory | Metric::Swap | Metric::Disk
        )
    }

    /// Its value in a reading, if the reading carries it.
    pub fn value(self, reading: &Reading<'_>) -> Option<f64> {
        let load = |index: usize| reading.health.load.map(|load| load[index]);
        let value = match self {
            Metric::Cpu => Some(reading.cpu),
            Metric::Memory => Some(reading.memory),
            Metric::Swap => reading.health.swap,
            Metric::Disk => reading.health.fullest().map(|fs| fs.used),
            Metric::Load1 => load(0),
            Metric::Load5 => load(1),
            Metric::Load15 => load(2),
            Metric::Load1PerCpu => match (load(0), reading.health.cpus) {
                (Some(load), Some(cpus)) if cpus > 0 => Some(load / f64::from(cpus)),
                _ => None,
            },
        };
        value.filter(|value| value.is_finite())
    }

    /// A value as the text lines show it: `97.3%`, `3.42`.
    pub fn show(self, value: f64) -> String {
        if self.is_percent() {
            format!("{:.1}%", round1(value))
        } else {
            format!("{value:.2}")
        }
    }
}

/// Which side of the threshold is trouble.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    /// `>`: fires above the threshold.
    Above,
    /// `<`: fires below it.
    Below,
}

/// One parsed `--alert` rule.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRule {
    /// The rule as shown everywhere: `cpu > 90 for 30s` (spacing normalised,
    /// the duration as written).
    pub text: String,
    pub metric: Metric,
    pub comparison: Comparison,
    pub threshold: f64,
    /// How long the value must stay past the threshold (and back) first.
    pub hold: Duration,
}

impl fmt::Display for AlertRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl AlertRule {
    /// Parses `METRIC > VALUE [for DURATION]` (or `<`). `duration` parses
    /// the DURATION with the config's rules and caps. The error says what
    /// is wrong; the caller names the rule and the flag.
    pub fn parse(
        text: &str,
        duration: impl Fn(&str) -> Result<Duration, String>,
    ) -> Result<AlertRule, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("empty rule: expected METRIC > VALUE [for DURATION]".to_string());
        }
        let Some(at) = text.find(['>', '<']) else {
            return Err("no comparison: expected METRIC > VALUE or METRIC < VALUE".to_string());
        };
        let (comparison, op) = if text[at..].starts_with('>') {
            (Comparison::Above, '>')
        } else {
            (Comparison::Below, '<')
        };
        let left = text[..at].trim();
        let right = &text[at + 1..];
        if right.starts_with('=') {
            return Err(format!("{op}= is not supported: use {op}"));
        }
        if right.contains(['>', '<']) {
            return Err("more than one comparison".to_string());
        }
        let metric = Metric::ALL
            .into_iter()
            .find(|metric| metric.name().eq_ignore_ascii_case(left))
            .ok_or_else(|| {
                let names: Vec<&str> = Metric::ALL.iter().map(|m| m.name()).collect();
                if left.is_empty() {
                    format!("no metric before {op} (one of {})", names.join(", "))
                } else {
                    format!("unknown metric {left:?} (one of {})", names.join(", "))
                }
            })?;
        let mut words = right.split_whitespace();
        let Some(value_text) = words.next() else {
            return Err(format!("no value after {op}"));
        };
        let threshold = threshold(metric, value_text)?;
        let rest: Vec<&str> = words.collect();
        let hold = match rest.as_slice() {
            [] => None,
            [word, hold] if word.eq_ignore_ascii_case("for") => {
                Some((*hold, duration(hold).map_err(|e| format!("DURATION: {e}"))?))
            }
            [word] if word.eq_ignore_ascii_case("for") => {
                return Err("no DURATION after `for`".to_string());
            }
            [word, _, extra, ..] if word.eq_ignore_ascii_case("for") => {
                return Err(format!("unexpected {extra:?} after the DURATION"));
            }
            [word, ..] => {
                return Err(format!(
                    "unexpected {word:?} after the value: expected `for DURATION` or nothing"
                ));
            }
        };
        let mut canonical = format!("{} {op} {threshold}", metric.name());
        if let Some((written, _)) = hold {
            canonical.push_str(&format!(" for {written}"));
        }
        Ok(AlertRule {
            text: canonical,
            metric,
            comparison,
            threshold,
            hold: hold.map_or(Duration::ZERO, |(_, hold)| hold),
        })
    }

    /// Whether `value` is past the threshold (the firing side).
    fn past(&self, value: f64) -> bool {
        match self.comparison {
            Comparison::Above => value > self.threshold,
            Comparison::Below => value < self.threshold,
        }
    }

    /// Whether `value` is back past the threshold by the clearing margin.
    fn back(&self, value: f64) -> bool {
        let margin = self.threshold.abs() * ALERT_CLEAR_MARGIN;
        match self.comparison {
            Comparison::Above => value <= self.threshold - margin,
            Comparison::Below => value >= self.threshold + margin,
        }
    }
}

/// The VALUE of a rule: a percent (0 to 100, `%` optional) for percent
/// metrics, a load (≥ 0) for the others.
fn threshold(metric: Metric, text: &str) -> Result<f64, String> {
    let (number, percent_sign) = match text.strip_suffix('%') {
        Some(number) => (number, true),
        None => (text, false),
    };
    if percent_sign && !metric.is_percent() {
        return Err(format!(
            "{} is not a percent: give VALUE without %",
            metric.name()
        ));
    }
    let value: f64 = number
        .parse()
        .ok()
        .filter(|value: &f64| value.is_finite())
        .ok_or_else(|| format!("VALUE {text:?} is not a number"))?;
    if metric.is_percent() && !(0.0..=100.0).contains(&value) {
        return Err(format!(
            "VALUE {text:?}: {} is a percent, 0 to 100",
            metric.name()
        ));
    }
    if !metric.is_percent() && !(0.0..=MAX_LOAD).contains(&value) {
        return Err(format!(
            "VALUE {text:?}: {} is a load, 0 or more",
            metric.name()
        ));
    }
    Ok(value)
}

/// Whose values a reading is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Subject {
    /// This node's own sample.
    Node,
    Peer(PeerId),
}

impl Subject {
    /// The peer, `None` for this node (as in [`AlertNote::peer`]).
    pub fn peer(self) -> Option<PeerId> {
        match self {
            Subject::Node => None,
            Subject::Peer(id) => Some(id),
        }
    }
}

/// One status's values, as the rules read them.
#[derive(Debug, Clone, Copy)]
pub struct Reading<'a> {
    pub cpu: f64,
    pub memory: f64,
    pub health: &'a Health,
}

/// What an `alert` or `alert_cleared` event says.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertNote {
    /// The peer, `None` for this node.
    pub peer: Option<PeerId>,
    /// The peer's display name (this node's own for its alerts).
    pub name: Option<String>,
    /// The rule as shown: `cpu > 90 for 30s`.
    pub rule: String,
    pub metric: Metric,
    /// The value that fired or cleared it.
    pub value: f64,
    pub threshold: f64,
    /// The rule's DURATION.
    pub hold: Duration,
}

/// A firing alert, for the views.
#[derive(Debug, Clone, PartialEq)]
pub struct Firing {
    pub rule: String,
    /// When it fired.
    pub since: Instant,
    /// The latest value of its metric.
    pub value: f64,
}

/// One rule's state for one subject.
#[derive(Debug, Clone, Default)]
struct Track {
    /// Firing since then, with the latest value.
    firing: Option<(Instant, f64)>,
    /// Since when every reading was on the other side (past the threshold
    /// while quiet, back past it by the margin while firing).
    crossing: Option<Instant>,
}

/// The rules and their state for every subject. Bounded: one entry per
/// subject the caller observes (the node, and peers in the table: the table
/// forgets the ones it drops), each at most `MAX_ALERT_RULES` tracks.
#[derive(Debug, Clone, Default)]
pub struct Alerts {
    rules: Vec<AlertRule>,
    tracks: HashMap<Subject, Vec<Track>>,
}

impl Alerts {
    pub fn new(rules: Vec<AlertRule>) -> Alerts {
        Alerts {
            rules,
            tracks: HashMap::new(),
        }
    }

    /// Whether any rule is set (without one, nothing is observed).
    pub fn has_rules(&self) -> bool {
        !self.rules.is_empty()
    }

    /// Evaluates every rule on one reading of `subject` at `now`, and
    /// appends an [`Event::Alert`] or [`Event::AlertCleared`] per rule that
    /// changed.
    pub fn observe(
        &mut self,
        subject: Subject,
        name: Option<&str>,
        reading: &Reading<'_>,
        now: Instant,
        events: &mut Vec<Event>,
    ) {
        if self.rules.is_empty() {
            return;
        }
        let tracks = self
            .tracks
            .entry(subject)
            .or_insert_with(|| vec![Track::default(); self.rules.len()]);
        for (rule, track) in self.rules.iter().zip(tracks.iter_mut()) {
            let Some(value) = rule.metric.value(reading) else {
                // Not reported: no evidence either way, and no run of
                // readings continues across the gap.
                track.crossing = None;
                continue;
            };
            let crossing = match track.firing {
                None => rule.past(value),
                Some(_) => rule.back(value),
            };
            if let Some((_, latest)) = &mut track.firing {
                *latest = value;
            }
            if !crossing {
                track.crossing = None;
                continue;
            }
            let since = *track.crossing.get_or_insert(now);
            if now.saturating_duration_since(since) < rule.hold {
                continue;
            }
            track.crossing = None;
            let note = AlertNote {
                peer: subject.peer(),
                name: name.map(str::to_string),
                rule: rule.text.clone(),
                metric: rule.metric,
                value,
                threshold: rule.threshold,
                hold: rule.hold,
            };
            if track.firing.is_none() {
                track.firing = Some((now, value));
                events.push(Event::Alert(note));
            } else {
                track.firing = None;
                events.push(Event::AlertCleared(note));
            }
        }
    }

    /// `subject` was away (offline, left): its alerts stay as they were,
    /// but a pending DURATION starts afresh with its next reading.
    pub fn interrupt(&mut self, subject: Subject) {
        if let Some(tracks) = self.tracks.get_mut(&subject) {
            for track in tracks {
                track.crossing = None;
            }
        }
    }

    /// `subject` is gone from the table: its alerts go with it, silently.
    pub fn forget(&mut self, subject: Subject) {
        self.tracks.remove(&subject);
    }

    /// The alerts firing now, by subject (only subjects with one), each
    /// subject's in rule order: what the views show.
    pub fn firing_by_subject(&self) -> BTreeMap<Subject, Vec<Firing>> {
        let mut firing = BTreeMap::new();
        for (subject, tracks) in &self.tracks {
            let list: Vec<Firing> = self
                .rules
                .iter()
                .zip(tracks)
                .filter_map(|(rule, track)| {
                    track.firing.map(|(since, value)| Firing {
                        rule: rule.text.clone(),
                        since,
                        value,
                    })
                })
                .collect();
            if !list.is_empty() {
                firing.insert(*subject, list);
            }
        }
        firing
    }

    /// The alerts firing for `subject`, in rule order.
    #[cfg(test)]
    pub fn firing(&self, subject: Subject) -> Vec<Firing> {
        self.firing_by_subject()
            .remove(&subject)
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_duration_within;
    use crate::limits::MAX_ALERT_FOR;
    use crate::proto::health::Filesystem;
    use std::net::IpAddr;

    const SEC: Duration = Duration::from_secs(1);

    fn parse(text: &str) -> Result<AlertRule, String> {
        AlertRule::parse(text, |d| parse_duration_within(d, MAX_ALERT_FOR))
    }

    fn rule(text: &str) -> AlertRule {
        parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn peer() -> Subject {
        Subject::Peer(PeerId::new(IpAddr::from([127, 0, 0, 2]), 5000))
    }

    /// Feeds `cpu` readings one second apart from `t0`; the events by kind
    /// and the second they came at.
    fn run(alerts: &mut Alerts, t0: Instant, values: &[f64]) -> Vec<(&'static str, usize)> {
        let health = Health::default();
        let mut out = Vec::new();
        for (second, cpu) in values.iter().enumerate() {
            let mut events = Vec::new();
            let reading = Reading {
                cpu: *cpu,
                memory: 50.0,
                health: &health,
            };
            alerts.observe(
                peer(),
                Some("b"),
                &reading,
                t0 + SEC * second as u32,
                &mut events,
            );
            for event in events {
                out.push(match event {
                    Event::Alert(_) => ("alert", second),
                    Event::AlertCleared(_) => ("cleared", second),
                    _ => ("other", second),
                });
            }
        }
        out
    }

    #[test]
    fn good_rules_parse_into_their_parts() {
        let r = rule("cpu > 90");
        assert_eq!(
            (r.metric, r.comparison, r.threshold, r.hold),
            (Metric::Cpu, Comparison::Above, 90.0, Duration::ZERO)
        );
        assert_eq!(r.text, "cpu > 90");
        let r = rule("  memory<10.5   for   2m ");
        assert_eq!(
            (r.metric, r.comparison, r.threshold, r.hold),
            (Metric::Memory, Comparison::Below, 10.5, 120 * SEC)
        );
        assert_eq!(r.text, "memory < 10.5 for 2m");
        assert_eq!(rule("disk > 90%").text, "disk > 90");
        assert_eq!(rule("swap > 0").threshold, 0.0);
        assert_eq!(rule("load1_per_cpu > 1.5 for 500ms").hold, SEC / 2);
        assert_eq!(rule("LOAD15 > 4 FOR 30").hold, 30 * SEC);
        for metric in Metric::ALL {
            assert_eq!(rule(&format!("{} > 1", metric.name())).metric, metric);
        }
    }

    #[test]
    fn every_kind_of_bad_rule_says_what_is_wrong() {
        for (text, wrong) in [
            ("", "empty rule"),
            ("cpu 90", "no comparison"),
            ("cpu >= 90", ">= is not supported"),
            ("cpu <= 90", "<= is not supported"),
            ("cpu > 90 < 95", "more than one comparison"),
            ("> 90", "no metric before >"),
            ("cpus > 90", "unknown metric \"cpus\""),
            ("cpu >", "no value after >"),
            ("cpu > high", "\"high\" is not a number"),
            ("cpu > NaN", "is not a number"),
            ("cpu > inf", "is not a number"),
            ("cpu > 120", "cpu is a percent, 0 to 100"),
            ("memory < -1", "memory is a percent"),
            ("load1 > 2%", "load1 is not a percent"),
            ("load5 > -0.5", "load5 is a load"),
            ("cpu > 90 for", "no DURATION after `for`"),
            ("cpu > 90 during 5s", "unexpected \"during\""),
            (
                "cpu > 90 for 5s now",
                "unexpected \"now\" after the DURATION",
            ),
            ("cpu > 90 for soon", "DURATION:"),
            ("cpu > 90 for 0s", "DURATION:"),
            ("cpu > 90 for 25h", "DURATION:"),
        ] {
            match parse(text) {
                Ok(rule) => panic!("{text:?} parsed as {rule:?}"),
                Err(e) => assert!(e.contains(wrong), "{text:?}: {e}"),
            }
        }
    }

    #[test]
    fn fires_at_the_first_reading_past_the_threshold_without_a_duration() {
        let t0 = Instant::now();
        let mut alerts = Alerts::new(vec![rule("cpu > 90")]);
        assert_eq!(
            run(&mut alerts, t0, &[50.0, 90.0, 90.1, 99.0]),
            [("alert", 2)]
        );
        let firing = alerts.firing(peer());
        assert_eq!(firing.len(), 1);
        assert_eq!(
            (firing[0].rule.as_str(), firing[0].since, firing[0].value),
            ("cpu > 90", t0 + 2 * SEC, 99.0)
        );
        assert!(alerts.firing(Subject::Node).is_empty());
    }

    #[test]
    fn fires_only_once_the_value_stayed_past_it_for_the_duration() {
        let t0 = Instant::now();
        let mut alerts = Alerts::new(vec![rule("cpu > 90 for 3s")]);
        // Past at 1, 2, 3, dips at 4 (restart), past from 5: fires at 8.
        let events = run(
            &mut alerts,
            t0,
            &[10.0, 95.0, 95.0, 95.0, 80.0, 95.0, 95.0, 95.0, 95.0],
        );
        assert_eq!(events, [("alert", 8)]);
    }

    #[test]
    fn clears_only_past_the_margin_for_the_duration() {
        let t0 = Instant::now();
        let mut alerts = Alerts::new(vec![rule("cpu > 90 for 2s")]);
        // Fires at 2; 86 is under 90 but not under 85.5: no clear; 85.5
        // from 5 on is back by the margin: clears at 7.
        let events = run(
            &mut alerts,
            t0,
            &[95.0, 95.0, 95.0, 86.0, 86.0, 85.5, 80.0, 70.0, 70.0],
        );
        assert_eq!(events, [("alert", 2), ("cleared", 7)]);
        assert!(alerts.firing(peer()).is_empty());

        // `<` rules mirror it: memory < 10 clears at 10.5 or above.
        let mut below = Alerts::new(vec![rule("memory < 10")]);
        let health = Health::default();
        let mut events = Vec::new();
        for (second, memory) in [20.0, 9.0, 10.4, 10.5].into_iter().enumerate() {
            let reading = Reading {
                cpu: 0.0,
                memory,
                health: &health,
            };
            below.observe(
                peer(),
                None,
                &reading,
                t0 + SEC * second as u32,
                &mut events,
            );
        }
        let kinds: Vec<bool> = events
            .iter()
            .map(|e| matches!(e, Event::Alert(_)))
            .collect();
        assert_eq!(kinds, [true, false]);
    }

    #[test]
    fn a_value_oscillating_around_the_threshold_fires_once_and_clears_once() {
        let t0 = Instant::now();
        let mut alerts = Alerts::new(vec![rule("cpu > 90")]);
        let mut values: Vec<f64> = (0..50)
            .map(|i| if i % 2 == 0 { 89.0 } else { 91.0 })
            .collect();
        values.extend([50.0, 50.0]);
        assert_eq!(
            run(&mut alerts, t0, &values),
            [("alert", 1), ("cleared", 50)]
        );
    }

    #[test]
    fn the_events_say_who_what_and_by_how_much() {
        let t0 = Instant::now();
        let mut alerts = Alerts::new(vec![rule("load1_per_cpu > 1.5"), rule("disk > 90%")]);
        let health = Health {
            load: Some([4.0, 1.0, 1.0]),
            cpus: Some(2),
            fs: vec![
                Filesystem {
                    mount: "/".into(),
                    used: 40.0,
                    size: 1,
                },
                Filesystem {
                    mount: "/var".into(),
                    used: 95.5,
                    size: 1,
                },
            ],
            ..Health::default()
        };
        let reading = Reading {
            cpu: 1.0,
            memory: 1.0,
            health: &health,
        };
        let mut events = Vec::new();
        alerts.observe(Subject::Node, Some("me"), &reading, t0, &mut events);
        assert_eq!(
            events,
            [
                Event::Alert(AlertNote {
                    peer: None,
                    name: Some("me".into()),
                    rule: "load1_per_cpu > 1.5".into(),
                    metric: Metric::Load1PerCpu,
                    value: 2.0,
                    threshold: 1.5,
                    hold: Duration::ZERO,
                }),
                Event::Alert(AlertNote {
                    peer: None,
                    name: Some("me".into()),
                    rule: "disk > 90".into(),
                    metric: Metric::Disk,
                    value: 95.5,
                    threshold: 90.0,
                    hold: Duration::ZERO,
                }),
            ]
        );
        // The node's alerts are its own, not a peer's.
        assert_eq!(alerts.firing(Subject::Node).len(), 2);
        assert!(alerts.firing(peer()).is_empty());
    }

    #[test]
    fn a_metric_the_status_does_not_carry_never_fires_and_clears_nothing() {
        let t0 = Instant::now();
        let mut alerts = Alerts::new(vec![
            rule("swap > 0"),
            rule("disk > 1"),
            rule("load1 > 0"),
            rule("load1_per_cpu > 0"),
        ]);
        // Every value would fire, were it reported: a bare status has none.
        assert_eq!(run(&mut alerts, t0, &[99.0, 99.0]), []);
        // load without cpus: no load1_per_cpu.
        let health = Health {
            load: Some([5.0, 5.0, 5.0]),
            swap: Some(50.0),
            ..Health::default()
        };
        let reading = Reading {
            cpu: 0.0,
            memory: 0.0,
            health: &health,
        };
        let mut events = Vec::new();
        alerts.observe(peer(), None, &reading, t0, &mut events);
        let rules: Vec<String> = alerts.firing(peer()).into_iter().map(|f| f.rule).collect();
        assert_eq!(rules, ["swap > 0", "load1 > 0"]);
        // Swap gone (turned off): the alert stays as it was.
        events.clear();
        run(&mut alerts, t0 + SEC, &[0.0]);
        assert_eq!(alerts.firing(peer()).len(), 2);
    }

    #[test]
    fn silence_keeps_an_alert_and_a_return_restarts_the_duration() {
        let t0 = Instant::now();
        let mut alerts = Alerts::new(vec![rule("cpu > 90 for 2s")]);
        assert_eq!(run(&mut alerts, t0, &[95.0, 95.0, 95.0]), [("alert", 2)]);
        // Offline for an hour: no reading, nothing changes.
        let later = t0 + 3600 * SEC;
        assert_eq!(alerts.firing(peer()).len(), 1);
        // Back, idle: the clearing duration counts from its return, not
        // from a reading before it went away.
        alerts.interrupt(peer());
        assert_eq!(run(&mut alerts, later, &[10.0]), []);
        alerts.interrupt(peer());
        assert_eq!(
            run(&mut alerts, later + 10 * SEC, &[10.0, 10.0, 10.0]),
            [("cleared", 2)]
        );
        // Forgotten: gone without an event.
        run(&mut alerts, later + 20 * SEC, &[95.0, 95.0, 95.0]);
        assert_eq!(alerts.firing(peer()).len(), 1);
        alerts.forget(peer());
        assert!(alerts.firing(peer()).is_empty());
    }

    #[test]
    fn no_rules_no_state() {
        let t0 = Instant::now();
        let mut alerts = Alerts::default();
        assert_eq!(run(&mut alerts, t0, &[100.0]), []);
        assert!(alerts.tracks.is_empty());
    }
}
