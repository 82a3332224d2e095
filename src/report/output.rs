//! stdout: the event lines and nothing else. Text lines keep the Python
//! original's words; `--format json` prints one object per line with the
//! field names of docs/PROTOCOL.md.
//!
//! Formatting and writing are apart on purpose. [`Output`] formats lines into
//! a bounded in-memory buffer under the shared lock (cheap, never blocks);
//! [`Stdout`] writes that buffer out, outside the lock, on the listener thread
//! right before it blocks. So a pipe sees every event at once, a flood costs
//! one write per batch rather than per line, and a stalled reader of stdout
//! (`p2pmon | less`, paused) can never freeze the sender: past
//! [`MAX_OUTPUT_BUFFER`] lines are dropped and counted instead.

use clap::ValueEnum;
use serde::Deserialize;
use std::io::{self, Write};

use serde_json::{Map, Value, json};

use crate::limits::{DEFAULT_PORT, MAX_OUTPUT_BUFFER};
use crate::peers::{AlertNote, Event, PeerId};
use crate::proto::health::{Health, HealthOut, rounded_fs};
use crate::units::{round1, round2};
use std::net::IpAddr;

/// Event line format on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// The Python original's sentences.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Formats event lines into a bounded buffer.
#[derive(Debug)]
pub struct Output {
    pending: Vec<u8>,
    format: Format,
    timestamps: bool,
    changes_only: bool,
    /// Text statuses go on with the rest of the host's health (--details).
    details: bool,
    /// Discard everything (the demo's other nodes).
    silent: bool,
    /// Lines dropped because stdout did not keep up.
    pub dropped: u64,
}

impl Output {
    pub fn new(format: Format, timestamps: bool, changes_only: bool) -> Output {
        Output {
            pending: Vec::new(),
            format,
            timestamps,
            changes_only,
            details: false,
            silent: false,
            dropped: 0,
        }
    }

    /// With `details`, each text status line goes on with the rest of the
    /// host's health (--details; json events always carry it).
    pub fn with_details(self, details: bool) -> Output {
        Output { details, ..self }
    }

    /// Discards everything (the demo's other nodes).
    pub fn silent() -> Output {
        Output {
            silent: true,
            ..Output::new(Format::Text, false, true)
        }
    }

    /// Takes the formatted lines out (to be written outside the lock).
    pub fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.pending)
    }

    /// Whether lines wait to be written.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// The first line, before the node binds its port.
    pub fn started(&mut self, node: &str) {
        match self.format {
            Format::Text => self.text("Starting P2P Network Monitoring System..."),
            Format::Json => self.json("started", json!({ "name": node })),
        }
    }

    /// Once the listener is bound.
    pub fn listening(&mut self, addresses: &[String]) {
        match self.format {
            Format::Text => self.text("Listening for peer updates..."),
            Format::Json => self.json("listening", json!({ "listen": addresses })),
        }
    }

    /// On shutdown (json only: the text format has no such line).
    pub fn stopping(&mut self) {
        if self.format == Format::Json {
            self.json("stopping", json!({}));
        }
    }

    /// One peer event; statuses are skipped with --changes-only, except the
    /// first one of each peer (so every peer shows up once).
    pub fn event(&mut self, event: &Event) {
        if let Event::Status { first, .. } = event
            && self.changes_only
            && !first
        {
            return;
        }
        match self.format {
            Format::Text => self.text_event(event),
            Format::Json => {
                let (name, fields) = event_fields(event);
                self.json(name, fields);
            }
        }
    }

    /// A text event line, formatted straight into the buffer: statuses are
    /// the hot path (hundreds of thousands a second at full ingest), so no
    /// intermediate String and no slow exact float formatting.
    fn text_event(&mut self, event: &Event) {
        let Event::Status {
            peer,
            cpu,
            memory,
            health,
            ..
        } = event
        else {
            return self.text(&text_line(event));
        };
        if self.silent || !self.room() {
            return;
        }
        if self.timestamps {
            self.pending.extend_from_slice(now_rfc3339().as_bytes());
            self.pending.push(b' ');
        }
        StatusSentence(peer, *cpu, *memory).write_to(&mut self.pending);
        if self.details {
            // Writing into a Vec cannot fail.
            let _ = write!(self.pending, "{}", Details(health));
        }
        self.pending.push(b'\n');
    }

    fn text(&mut self, line: &str) {
        if self.silent || !self.room() {
            return;
        }
        if self.timestamps {
            self.pending.extend_from_slice(now_rfc3339().as_bytes());
            self.pending.push(b' ');
        }
        self.pending.extend_from_slice(line.as_bytes());
        self.pending.push(b'\n');
    }

    fn json(&mut self, event: &str, fields: Value) {
        if self.silent || !self.room() {
            return;
        }
        let mut object = Map::new();
        object.insert("ts".into(), Value::String(now_rfc3339()));
        object.insert("event".into(), Value::String(event.into()));
        if let Value::Object(fields) = fields {
            object.extend(fields.into_iter().filter(|(_, v)| !v.is_null()));
        }
        // Writing a Map of plain values into a Vec cannot fail.
        if serde_json::to_writer(&mut self.pending, &object).is_ok() {
            self.pending.push(b'\n');
        }
    }

    /// Whether one more line fits; counts it as dropped if not.
    fn room(&mut self) -> bool {
        if self.pending.len() < MAX_OUTPUT_BUFFER {
            return true;
        }
        if self.dropped == 0 {
            log::warn!("stdout is not keeping up: event lines are being dropped");
        }
        self.dropped += 1;
        false
    }
}

/// The real stdout (or any writer, in tests), written outside the shared lock.
pub struct Stdout {
    writer: Box<dyn Write + Send>,
    /// stdout went away (closed pipe): stop writing, keep monitoring.
    broken: bool,
}

impl std::fmt::Debug for Stdout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stdout")
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

impl Stdout {
    pub fn new(writer: Box<dyn Write + Send>) -> Stdout {
        Stdout {
            writer,
            broken: false,
        }
    }

    /// The process's stdout.
    pub fn process() -> Stdout {
        Stdout::new(Box::new(io::stdout()))
    }

    /// Writes a batch of lines and flushes them.
    pub fn write(&mut self, bytes: &[u8]) {
        if self.broken || bytes.is_empty() {
            return;
        }
        if let Err(e) = self
            .writer
            .write_all(bytes)
            .and_then(|()| self.writer.flush())
        {
            self.broken = true;
            log::warn!("stdout is gone ({e}); events are no longer printed");
        }
    }
}

/// The Python original's sentence for a status, in one place:
/// `Received status from <IP>: CPU=<cpu>%, Memory=<memory>%, Status=online`,
/// one decimal each.
struct StatusSentence<'a>(&'a PeerId, f64, f64);

impl StatusSentence<'_> {
    /// Appends the sentence to `out` byte by byte: one is written per status
    /// received (a thousand a second at 1,000 peers), and `core::fmt` spent
    /// ~2,500 instructions on it, most of them on the IP's four octets.
    fn write_to(&self, out: &mut Vec<u8>) {
        let StatusSentence(peer, cpu, memory) = self;
        out.extend_from_slice(b"Received status from ");
        write_peer(out, peer);
        out.extend_from_slice(b": CPU=");
        OneDecimal(*cpu).write_to(out);
        out.extend_from_slice(b"%, Memory=");
        OneDecimal(*memory).write_to(out);
        out.extend_from_slice(b"%, Status=online");
    }
}

impl std::fmt::Display for StatusSentence<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut line = Vec::with_capacity(80);
        self.write_to(&mut line);
        f.write_str(std::str::from_utf8(&line).map_err(|_| std::fmt::Error)?)
    }
}

/// A peer as [`PeerId`]'s `Display` writes it (the IP, plus `:PORT` when it
/// is not 5000), IPv4 without `core::fmt`.
fn write_peer(out: &mut Vec<u8>, peer: &PeerId) {
    let IpAddr::V4(ip) = peer.0.ip() else {
        // Writing into a Vec cannot fail.
        let _ = write!(out, "{peer}");
        return;
    };
    let mut digits = itoa::Buffer::new();
    for (i, octet) in ip.octets().into_iter().enumerate() {
        if i > 0 {
            out.push(b'.');
        }
        out.extend_from_slice(digits.format(octet).as_bytes());
    }
    if peer.0.port() != DEFAULT_PORT {
        out.push(b':');
        out.extend_from_slice(digits.format(peer.0.port()).as_bytes());
    }
}

/// What `--details` adds to a text status line: for each part of the host's
/// health the status carries, a space and `key=value`, in this order:
/// `load=0.52/0.61/0.70 cpus=2 swap=3.1% disk=/:71.3%,/home:12.0%
/// rx=12.3MB tx=4.5MB up=3d4h` (load with two decimals; percents with one;
/// every filesystem, fullest first; bytes received and sent since boot in
/// decimal units; uptime in its two largest units). Absent parts are left
/// out, so a status without health (an older node, the Python original)
/// prints the bare sentence.
struct Details<'a>(&'a Health);

impl std::fmt::Display for Details<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let health = self.0;
        if let Some([one, five, fifteen]) = health.load {
            write!(f, " load={one:.2}/{five:.2}/{fifteen:.2}")?;
        }
        if let Some(cpus) = health.cpus {
            write!(f, " cpus={cpus}")?;
        }
        if let Some(swap) = health.swap {
            write!(f, " swap={}%", OneDecimal(swap))?;
        }
        for (i, fs) in health.fs.iter().enumerate() {
            let sep = if i == 0 { " disk=" } else { "," };
            write!(f, "{sep}{}:{}%", fs.mount, OneDecimal(fs.used))?;
        }
        if let Some(rx) = health.net_rx {
            write!(f, " rx={}", Bytes(rx))?;
        }
        if let Some(tx) = health.net_tx {
            write!(f, " tx={}", Bytes(tx))?;
        }
        if let Some(up) = health.uptime_s {
            write!(f, " up={}", Uptime(up))?;
        }
        Ok(())
    }
}

/// A byte count in decimal units with one decimal: `512B`, `12.3MB`, `1.5TB`.
struct Bytes(u64);

impl std::fmt::Display for Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const UNITS: [&str; 6] = ["kB", "MB", "GB", "TB", "PB", "EB"];
        if self.0 < 1000 {
            return write!(f, "{}B", self.0);
        }
        let mut value = self.0 as f64 / 1000.0;
        let mut unit = 0;
        // Move up while the rounded figure would read 1000.0 or more.
        while value >= 999.95 && unit + 1 < UNITS.len() {
            value /= 1000.0;
            unit += 1;
        }
        write!(f, "{value:.1}{}", UNITS[unit])
    }
}

/// Seconds as their two largest units: `42s`, `7m3s`, `5h12m`, `3d4h`.
struct Uptime(u64);

impl std::fmt::Display for Uptime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.0;
        let (days, hours, minutes, seconds) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
        if days > 0 {
            write!(f, "{days}d{hours}h")
        } else if hours > 0 {
            write!(f, "{hours}h{minutes}m")
        } else if minutes > 0 {
            write!(f, "{minutes}m{seconds}s")
        } else {
            write!(f, "{seconds}s")
        }
    }
}

/// An event in the Python original's words (and a few of ours).
fn text_line(event: &Event) -> String {
    match event {
        Event::Status {
            peer, cpu, memory, ..
        } => StatusSentence(peer, *cpu, *memory).to_string(),
        Event::Offline { peer, .. } => format!("Peer {peer} is offline."),
        Event::Online { peer, .. } => format!("Peer {peer} is back online."),
        Event::Left { peer, .. } => format!("Peer {peer} left."),
        Event::Forgotten { peer, .. } => format!("Peer {peer} forgotten."),
        Event::Flapping { peer, .. } => format!("Peer {peer} is flapping."),
        Event::CutOff { peers } => {
            format!("Lost contact with all {peers} peers; this node may be cut off.")
        }
        Event::Restored { peers, after } => format!(
            "Contact restored with {peers} peers after {:.0} s.",
            after.as_secs_f64()
        ),
        Event::Alert(note) => alert_line("Alert on", note),
        Event::AlertCleared(note) => alert_line("Alert cleared on", note),
    }
}

/// `Alert on 127.0.0.2: cpu > 90 for 30s (cpu=97.3%).`, and on `this node`.
fn alert_line(words: &str, note: &AlertNote) -> String {
    let on = note
        .peer
        .map_or_else(|| "this node".to_string(), |peer| peer.to_string());
    format!(
        "{words} {on}: {} ({}={}).",
        note.rule,
        note.metric.name(),
        note.metric.show(note.value)
    )
}

/// The json fields of an `alert` or `alert_cleared` event: `peer` for a
/// peer's, `local: true` for this node's own.
fn alert_fields(note: &AlertNote) -> Value {
    json!({
        "peer": note.peer.map(|peer| peer.to_string()),
        "local": note.peer.is_none().then_some(true),
        "name": note.name,
        "rule": note.rule,
        "metric": note.metric.name(),
        "value": round2(note.value),
        "threshold": note.threshold,
        "for_s": note.hold.as_secs_f64(),
    })
}

/// Adds the present health fields of a status, with the wire's names.
fn add_health(fields: &mut Value, health: &Health) {
    // The wire's own writer, so the event shows exactly what a status says.
    let fs = rounded_fs(health);
    let (Value::Object(map), Ok(Value::Object(parts))) =
        (fields, serde_json::to_value(HealthOut::of(health, &fs)))
    else {
        return;
    };
    map.extend(parts);
}

/// An event's name and fields, as in json event lines (without `ts`), for
/// hooks. Statuses have one too, though hooks never get them.
pub fn event_fields(event: &Event) -> (&'static str, Value) {
    let mut fields = match event {
        Event::Status {
            peer,
            name,
            cpu,
            memory,
            health,
            ..
        } => {
            let mut fields =
                json!({ "peer": peer.to_string(), "name": name, "cpu": cpu, "memory": memory });
            add_health(&mut fields, health);
            ("status", fields)
        }
        Event::Offline {
            peer,
            name,
            reason,
            last_seen,
        } => (
            "offline",
            json!({
                "peer": peer.to_string(),
                "name": name,
                "reason": reason,
                "last_seen_s": last_seen.map(|d| round1(d.as_secs_f64())),
            }),
        ),
        Event::Online { peer, name, away } => (
            "online",
            json!({ "peer": peer.to_string(), "name": name, "away_s": round1(away.as_secs_f64()) }),
        ),
        Event::Left { peer, name } => ("left", json!({ "peer": peer.to_string(), "name": name })),
        Event::Forgotten { peer, name } => (
            "forgotten",
            json!({ "peer": peer.to_string(), "name": name }),
        ),
        Event::Flapping { peer, name, reason } => (
            "flapping",
            json!({ "peer": peer.to_string(), "name": name, "reason": reason }),
        ),
        Event::CutOff { peers } => ("cut_off", json!({ "peers": peers })),
        Event::Restored { peers, after } => (
            "restored",
            json!({ "peers": peers, "away_s": round1(after.as_secs_f64()) }),
        ),
        Event::Alert(note) => ("alert", alert_fields(note)),
        Event::AlertCleared(note) => ("alert_cleared", alert_fields(note)),
    };
    if let Value::Object(map) = &mut fields.1 {
        map.insert("event".into(), Value::String(fields.0.into()));
        map.retain(|_, value| !value.is_null());
    }
    fields
}

/// A percentage (0..=100, as the wire guarantees) with one decimal, rounded
/// half away from zero like the wire encoding. Integer arithmetic: `{:.1}`'s
/// exact float formatting was the top cost in the ingest profile.
struct OneDecimal(f64);

impl OneDecimal {
    /// The value in tenths, rounded, when it is in 0..=1000 (a percent, a
    /// load): written as integers, not through the slow exact float
    /// formatting, which the rest falls back to.
    fn tenths(&self) -> Option<u32> {
        let tenths = (self.0 * 10.0).round();
        (0.0..=10_000.0).contains(&tenths).then_some(tenths as u32)
    }

    /// Appends it to `out` (the hot path's way: see [`StatusSentence`]).
    fn write_to(&self, out: &mut Vec<u8>) {
        let Some(tenths) = self.tenths() else {
            // Writing into a Vec cannot fail.
            let _ = write!(out, "{self}");
            return;
        };
        out.extend_from_slice(itoa::Buffer::new().format(tenths / 10).as_bytes());
        out.push(b'.');
        out.push(b'0' + (tenths % 10) as u8);
    }
}

impl std::fmt::Display for OneDecimal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.tenths() {
            Some(tenths) => write!(f, "{}.{}", tenths / 10, tenths % 10),
            None => write!(f, "{:.1}", self.0),
        }
    }
}

fn now_rfc3339() -> String {
    chrono::Local::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peers::PeerId;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    /// A writer the test can read back.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if let Ok(mut bytes) = self.0.lock() {
                bytes.extend_from_slice(buf);
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        fn text(&self) -> String {
            self.0
                .lock()
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default()
        }
    }

    fn peer() -> PeerId {
        PeerId::new(std::net::IpAddr::from([127, 0, 0, 2]), 5000)
    }

    fn status(first: bool) -> Event {
        Event::Status {
            peer: peer(),
            name: Some("b".into()),
            cpu: 3.25,
            memory: 41.66,
            health: Default::default(),
            first,
        }
    }

    /// An output whose lines the test reads back through a [`Stdout`].
    struct Harness {
        output: Output,
        stdout: Stdout,
        captured: Captured,
    }

    impl std::ops::Deref for Harness {
        type Target = Output;
        fn deref(&self) -> &Output {
            &self.output
        }
    }

    impl std::ops::DerefMut for Harness {
        fn deref_mut(&mut self) -> &mut Output {
            &mut self.output
        }
    }

    impl Harness {
        fn text(&mut self) -> String {
            let bytes = self.output.take();
            self.stdout.write(&bytes);
            self.captured.text()
        }
    }

    fn output(format: Format, timestamps: bool, changes_only: bool) -> (Harness, ()) {
        let captured = Captured::default();
        let harness = Harness {
            output: Output::new(format, timestamps, changes_only),
            stdout: Stdout::new(Box::new(captured.clone())),
            captured,
        };
        (harness, ())
    }

    #[test]
    fn text_lines_keep_the_python_words() {
        let (mut out, ()) = output(Format::Text, false, false);
        out.started("a");
        out.listening(&["0.0.0.0:5000".into()]);
        out.event(&status(true));
        out.event(&Event::Offline {
            peer: peer(),
            name: None,
            reason: "x".into(),
            last_seen: None,
        });
        out.event(&Event::Online {
            peer: peer(),
            name: None,
            away: Duration::from_secs(3),
        });
        out.event(&Event::Left {
            peer: PeerId::new(std::net::IpAddr::from([127, 0, 0, 2]), 5001),
            name: None,
        });
        out.event(&Event::Flapping {
            peer: peer(),
            name: None,
            reason: "x".into(),
        });
        out.event(&Event::CutOff { peers: 3 });
        out.event(&Event::Restored {
            peers: 3,
            after: Duration::from_millis(12_400),
        });
        out.stopping();
        assert_eq!(
            out.text(),
            "Starting P2P Network Monitoring System...\n\
             Listening for peer updates...\n\
             Received status from 127.0.0.2: CPU=3.3%, Memory=41.7%, Status=online\n\
             Peer 127.0.0.2 is offline.\n\
             Peer 127.0.0.2 is back online.\n\
             Peer 127.0.0.2:5001 left.\n\
             Peer 127.0.0.2 is flapping.\n\
             Lost contact with all 3 peers; this node may be cut off.\n\
             Contact restored with 3 peers after 12 s.\n"
        );
    }

    fn healthy_status() -> Event {
        use crate::proto::health::Filesystem;
        Event::Status {
            peer: peer(),
            name: Some("b".into()),
            cpu: 3.25,
            memory: 41.66,
            health: Health {
                load: Some([0.524, 0.61, 10.0]),
                cpus: Some(2),
                swap: Some(3.06),
                fs: vec![
                    Filesystem {
                        mount: "/".into(),
                        used: 71.26,
                        size: 1 << 30,
                    },
                    Filesystem {
                        mount: "/srv/my data".into(),
                        used: 9.0,
                        size: 1,
                    },
                ],
                net_rx: Some(12_345_678),
                net_tx: Some(4_500_000),
                uptime_s: Some(3 * 86_400 + 4 * 3600 + 59 * 60),
            },
            first: false,
        }
    }

    #[test]
    fn details_follow_the_unchanged_sentence_only_when_asked() {
        let (mut out, ()) = output(Format::Text, false, false);
        out.event(&healthy_status());
        assert_eq!(
            out.text(),
            "Received status from 127.0.0.2: CPU=3.3%, Memory=41.7%, Status=online\n"
        );
        let captured = Captured::default();
        let mut out = Harness {
            output: Output::new(Format::Text, false, false).with_details(true),
            stdout: Stdout::new(Box::new(captured.clone())),
            captured,
        };
        out.event(&healthy_status());
        // Without health (an older node, the Python original): the bare line.
        out.event(&status(false));
        assert_eq!(
            out.text(),
            "Received status from 127.0.0.2: CPU=3.3%, Memory=41.7%, Status=online \
             load=0.52/0.61/10.00 cpus=2 swap=3.1% disk=/:71.3%,/srv/my data:9.0% \
             rx=12.3MB tx=4.5MB up=3d4h\n\
             Received status from 127.0.0.2: CPU=3.3%, Memory=41.7%, Status=online\n"
        );
        // Only the parts present.
        let Event::Status { peer, .. } = status(false) else {
            return;
        };
        let partial = Event::Status {
            peer,
            name: None,
            cpu: 1.0,
            memory: 2.0,
            health: Health {
                cpus: Some(4),
                uptime_s: Some(42),
                ..Health::default()
            },
            first: false,
        };
        out.event(&partial);
        assert!(out.text().ends_with("Status=online cpus=4 up=42s\n"));
        // json is not changed by --details: it always carries every field.
        let captured = Captured::default();
        let mut json = Harness {
            output: Output::new(Format::Json, false, false).with_details(true),
            stdout: Stdout::new(Box::new(captured.clone())),
            captured,
        };
        json.event(&healthy_status());
        let line: Value = serde_json::from_str(json.text().trim_end()).unwrap_or(Value::Null);
        assert_eq!(line["cpus"], 2);
        assert_eq!(line["fs"][0]["mount"], "/");
    }

    #[test]
    fn changes_only_skips_repeated_statuses() {
        let (mut out, ()) = output(Format::Text, false, true);
        out.event(&status(true));
        out.event(&status(false));
        out.event(&Event::Left {
            peer: peer(),
            name: None,
        });
        assert_eq!(out.text().lines().count(), 2);
    }

    #[test]
    fn timestamps_prefix_text_lines() {
        let (mut out, ()) = output(Format::Text, true, false);
        out.event(&status(false));
        let text = out.text();
        let (stamp, rest) = text.split_once(' ').unwrap_or_default();
        assert!(
            chrono::DateTime::parse_from_rfc3339(stamp).is_ok(),
            "{stamp}"
        );
        assert!(rest.starts_with("Received status from 127.0.0.2"));
    }

    #[test]
    fn json_lines_use_the_documented_fields() {
        let (mut out, ()) = output(Format::Json, false, false);
        out.started("a");
        out.event(&status(false));
        out.event(&Event::Offline {
            peer: peer(),
            name: Some("b".into()),
            reason: "connection refused".into(),
            last_seen: Some(Duration::from_millis(7240)),
        });
        out.stopping();
        let lines: Vec<Value> = out
            .text()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or(Value::Null))
            .collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0]["event"], "started");
        assert_eq!(lines[1]["event"], "status");
        assert_eq!(lines[1]["peer"], "127.0.0.2");
        assert_eq!(lines[1]["cpu"], 3.25);
        assert!(
            lines[1]["ts"]
                .as_str()
                .is_some_and(|ts| chrono::DateTime::parse_from_rfc3339(ts).is_ok())
        );
        assert_eq!(lines[2]["event"], "offline");
        assert_eq!(lines[2]["reason"], "connection refused");
        assert_eq!(lines[2]["last_seen_s"], 7.2);
        assert_eq!(lines[3]["event"], "stopping");
    }

    #[test]
    fn alert_lines_name_the_rule_the_value_and_whose_it_is() {
        use crate::peers::alerts::Metric;
        let note = |peer: Option<PeerId>, value| AlertNote {
            peer,
            name: Some("b".into()),
            rule: "cpu > 90 for 30s".into(),
            metric: Metric::Cpu,
            value,
            threshold: 90.0,
            hold: Duration::from_secs(30),
        };
        let (mut out, ()) = output(Format::Text, false, false);
        out.event(&Event::Alert(note(Some(peer()), 97.25)));
        out.event(&Event::AlertCleared(note(Some(peer()), 80.1)));
        out.event(&Event::Alert(AlertNote {
            rule: "load1 > 4".into(),
            metric: Metric::Load1,
            ..note(None, 4.5)
        }));
        assert_eq!(
            out.text(),
            "Alert on 127.0.0.2: cpu > 90 for 30s (cpu=97.3%).\n\
             Alert cleared on 127.0.0.2: cpu > 90 for 30s (cpu=80.1%).\n\
             Alert on this node: load1 > 4 (load1=4.50).\n"
        );
        let (name, fields) = event_fields(&Event::Alert(note(Some(peer()), 97.3)));
        assert_eq!(name, "alert");
        assert_eq!(
            fields,
            json!({"event": "alert", "peer": "127.0.0.2", "name": "b", "rule": "cpu > 90 for 30s",
                   "metric": "cpu", "value": 97.3, "threshold": 90.0, "for_s": 30.0})
        );
        let (name, fields) = event_fields(&Event::AlertCleared(note(None, 1.0)));
        assert_eq!(name, "alert_cleared");
        assert_eq!((fields.get("peer"), &fields["local"]), (None, &json!(true)));
    }
}

#[cfg(test)]
mod bound_tests {
    use super::*;

    #[test]
    fn one_decimal_formatting() {
        for (value, text) in [
            (0.0, "0.0"),
            (3.24, "3.2"),
            (3.25, "3.3"),
            (41.66, "41.7"),
            (99.96, "100.0"),
            (100.0, "100.0"),
            (0.04, "0.0"),
            (12.5, "12.5"),
        ] {
            assert_eq!(OneDecimal(value).to_string(), text, "{value}");
        }
        // Agrees with {:.1} away from exact halves.
        for n in 0..10_000 {
            let value = f64::from(n) * 0.0137;
            if ((value * 100.0).round() as u64) % 10 != 5 {
                assert_eq!(
                    OneDecimal(value).to_string(),
                    format!("{value:.1}"),
                    "{value}"
                );
            }
        }
    }

    #[test]
    fn the_status_sentence_written_byte_by_byte_reads_as_display_would() {
        let mut peers = vec![
            PeerId::new("::1".parse().expect("an IP"), 5000),
            PeerId::new("fe80::1".parse().expect("an IP"), 5001),
            PeerId::new("::ffff:10.0.0.1".parse().expect("an IP"), 5000),
        ];
        for n in (0..=u32::MAX).step_by(16_777_259) {
            for port in [5000, 1, 5001, 65535] {
                peers.push(PeerId::new(IpAddr::from(n.to_be_bytes()), port));
            }
        }
        for (i, peer) in peers.iter().enumerate() {
            let (cpu, memory) = (i as f64 * 0.731, 100.0 - i as f64 * 0.377);
            let mut line = Vec::new();
            StatusSentence(peer, cpu, memory).write_to(&mut line);
            let expected = format!(
                "Received status from {peer}: CPU={}%, Memory={}%, Status=online",
                OneDecimal(cpu),
                OneDecimal(memory)
            );
            assert_eq!(String::from_utf8(line).expect("utf-8"), expected);
        }
        for value in [
            0.0,
            0.04,
            9.95,
            99.96,
            1000.0,
            1000.1,
            -0.5,
            f64::NAN,
            1e300,
        ] {
            let mut text = Vec::new();
            OneDecimal(value).write_to(&mut text);
            assert_eq!(
                String::from_utf8(text).expect("utf-8"),
                OneDecimal(value).to_string()
            );
        }
    }

    #[test]
    fn byte_counts_and_uptimes_read_short() {
        for (bytes, text) in [
            (0, "0B"),
            (999, "999B"),
            (1000, "1.0kB"),
            (12_345_678, "12.3MB"),
            (999_949, "999.9kB"),
            (999_950, "1.0MB"),
            (1_500_000_000_000, "1.5TB"),
            (u64::MAX, "18.4EB"),
        ] {
            assert_eq!(Bytes(bytes).to_string(), text, "{bytes}");
        }
        for (seconds, text) in [
            (0, "0s"),
            (59, "59s"),
            (60, "1m0s"),
            (423, "7m3s"),
            (3600, "1h0m"),
            (5 * 3600 + 12 * 60 + 30, "5h12m"),
            (86_400, "1d0h"),
            (3 * 86_400 + 4 * 3600 + 3599, "3d4h"),
        ] {
            assert_eq!(Uptime(seconds).to_string(), text, "{seconds}");
        }
    }

    #[test]
    fn a_stalled_stdout_costs_bounded_memory() {
        let mut out = Output::new(Format::Text, false, false);
        let event = Event::Left {
            peer: crate::peers::PeerId::new(std::net::IpAddr::from([127, 0, 0, 2]), 5000),
            name: None,
        };
        for _ in 0..200_000 {
            out.event(&event);
        }
        assert!(out.pending.len() <= MAX_OUTPUT_BUFFER + 100);
        assert!(out.dropped > 0);
        let taken = out.take();
        assert!(taken.starts_with(b"Peer 127.0.0.2 left.\n"));
        assert!(!out.has_pending());
    }

    #[test]
    fn silent_output_prints_nothing() {
        let mut out = Output::silent();
        out.started("x");
        assert!(!out.has_pending());
    }
}
