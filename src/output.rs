//! stdout: the event lines and nothing else. Text lines keep the Python
//! original's words; `--format json` prints one object per line with the
//! field names of docs/PROTOCOL.md. Lines are buffered and flushed by the
//! threads right before they block, so a pipe sees every event at once while a
//! flood of statuses costs no syscall per line.

use std::io::{self, Write};

use serde_json::{Map, Value, json};

use crate::cli::Format;
use crate::peers::Event;

/// Where and how event lines are written.
pub struct Output {
    writer: Box<dyn Write + Send>,
    format: Format,
    timestamps: bool,
    changes_only: bool,
    /// stdout went away (closed pipe): stop writing, keep monitoring.
    broken: bool,
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Output")
            .field("format", &self.format)
            .field("timestamps", &self.timestamps)
            .field("changes_only", &self.changes_only)
            .finish_non_exhaustive()
    }
}

impl Output {
    pub fn new(
        writer: Box<dyn Write + Send>,
        format: Format,
        timestamps: bool,
        changes_only: bool,
    ) -> Output {
        Output {
            writer,
            format,
            timestamps,
            changes_only,
            broken: false,
        }
    }

    /// Buffered stdout.
    pub fn stdout(format: Format, timestamps: bool, changes_only: bool) -> Output {
        let writer = io::BufWriter::with_capacity(64 * 1024, io::stdout());
        Output::new(Box::new(writer), format, timestamps, changes_only)
    }

    /// Discards everything (the demo's other nodes).
    pub fn sink() -> Output {
        Output::new(Box::new(io::sink()), Format::Text, false, true)
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
        match event {
            Event::Status {
                peer,
                name,
                cpu,
                memory,
                first,
            } => {
                if self.changes_only && !first {
                    return;
                }
                match self.format {
                    Format::Text => self.text(&format!(
                        "Received status from {peer}: CPU={cpu:.1}%, Memory={memory:.1}%, Status=online"
                    )),
                    Format::Json => self.json(
                        "status",
                        json!({ "peer": peer.to_string(), "name": name, "cpu": cpu, "memory": memory }),
                    ),
                }
            }
            Event::Offline {
                peer,
                name,
                reason,
                last_seen,
            } => match self.format {
                Format::Text => self.text(&format!("Peer {peer} is offline.")),
                Format::Json => self.json(
                    "offline",
                    json!({
                        "peer": peer.to_string(),
                        "name": name,
                        "reason": reason,
                        "last_seen_s": last_seen.map(|d| round1(d.as_secs_f64())),
                    }),
                ),
            },
            Event::Online { peer, name, away } => match self.format {
                Format::Text => self.text(&format!("Peer {peer} is back online.")),
                Format::Json => self.json(
                    "online",
                    json!({ "peer": peer.to_string(), "name": name, "away_s": round1(away.as_secs_f64()) }),
                ),
            },
            Event::Left { peer, name } => match self.format {
                Format::Text => self.text(&format!("Peer {peer} left.")),
                Format::Json => {
                    self.json("left", json!({ "peer": peer.to_string(), "name": name }))
                }
            },
        }
    }

    /// Hands buffered lines to the OS. Call before blocking.
    pub fn flush(&mut self) {
        if self.broken {
            return;
        }
        if let Err(e) = self.writer.flush() {
            self.fail(&e);
        }
    }

    fn text(&mut self, line: &str) {
        if self.broken {
            return;
        }
        let result = if self.timestamps {
            writeln!(self.writer, "{} {line}", now_rfc3339())
        } else {
            writeln!(self.writer, "{line}")
        };
        if let Err(e) = result {
            self.fail(&e);
        }
    }

    fn json(&mut self, event: &str, fields: Value) {
        if self.broken {
            return;
        }
        let mut object = Map::new();
        object.insert("ts".into(), Value::String(now_rfc3339()));
        object.insert("event".into(), Value::String(event.into()));
        if let Value::Object(fields) = fields {
            object.extend(fields.into_iter().filter(|(_, v)| !v.is_null()));
        }
        let result = serde_json::to_writer(&mut self.writer, &object)
            .map_err(io::Error::from)
            .and_then(|()| self.writer.write_all(b"\n"));
        if let Err(e) = result {
            self.fail(&e);
        }
    }

    fn fail(&mut self, error: &io::Error) {
        self.broken = true;
        log::warn!("stdout is gone ({error}); events are no longer printed");
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
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
            first,
        }
    }

    fn output(format: Format, timestamps: bool, changes_only: bool) -> (Output, Captured) {
        let captured = Captured::default();
        let output = Output::new(Box::new(captured.clone()), format, timestamps, changes_only);
        (output, captured)
    }

    #[test]
    fn text_lines_keep_the_python_words() {
        let (mut out, captured) = output(Format::Text, false, false);
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
        out.stopping();
        assert_eq!(
            captured.text(),
            "Starting P2P Network Monitoring System...\n\
             Listening for peer updates...\n\
             Received status from 127.0.0.2: CPU=3.2%, Memory=41.7%, Status=online\n\
             Peer 127.0.0.2 is offline.\n\
             Peer 127.0.0.2 is back online.\n\
             Peer 127.0.0.2:5001 left.\n"
        );
    }

    #[test]
    fn changes_only_skips_repeated_statuses() {
        let (mut out, captured) = output(Format::Text, false, true);
        out.event(&status(true));
        out.event(&status(false));
        out.event(&Event::Left {
            peer: peer(),
            name: None,
        });
        assert_eq!(captured.text().lines().count(), 2);
    }

    #[test]
    fn timestamps_prefix_text_lines() {
        let (mut out, captured) = output(Format::Text, true, false);
        out.event(&status(false));
        let text = captured.text();
        let (stamp, rest) = text.split_once(' ').unwrap_or_default();
        assert!(
            chrono::DateTime::parse_from_rfc3339(stamp).is_ok(),
            "{stamp}"
        );
        assert!(rest.starts_with("Received status from 127.0.0.2"));
    }

    #[test]
    fn json_lines_use_the_documented_fields() {
        let (mut out, captured) = output(Format::Json, false, false);
        out.started("a");
        out.event(&status(false));
        out.event(&Event::Offline {
            peer: peer(),
            name: Some("b".into()),
            reason: "connection refused".into(),
            last_seen: Some(Duration::from_millis(7240)),
        });
        out.stopping();
        let lines: Vec<Value> = captured
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
}
