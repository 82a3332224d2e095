//! Wire protocol v1: the messages nodes send each other, as JSON objects (see
//! docs/PROTOCOL.md), and the legacy format of the Python original
//! (`{"cpu":x,"memory":y}` with no newline, one per connection). This module
//! owns the messages and their encoding and decoding; cutting a byte stream
//! into frames is [`super::frame`]'s. Decoding is strict and total: any input
//! gives either a [`Message`] or a [`DecodeError`] naming why it was rejected,
//! never a panic, so the listener can count and log each rejection.
use std::borrow::Cow;
use std::fmt;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::limits::{MAX_FRAME, MAX_MEMBERS_PER_MESSAGE, MAX_NAME_LEN, MAX_PEER_INTERVAL};
use crate::names::{self, NameError};
use crate::proto::health::{Filesystem, Health, HealthOut, RawHealth, rounded_fs};

/// Written once by a v1 listener on a connection it accepted, after the first
/// valid v1 message arrived on it. The Python original never writes on an
/// accepted connection, so a sender that reads these bytes knows its peer
/// speaks v1: it may keep the connection open, send more than one status on
/// it, and send a leave. Senders ignore its content.
pub const HELLO: &[u8] = b"{\"v\":1,\"type\":\"hello\"}\n";

/// The fields every v1 message carries.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    /// Display name of the sender (not an identity: names may collide).
    pub node: String,
    /// The port the sender listens on; with the source IP, the peer's identity.
    pub port: u16,
    /// Sender's start time in unix ms: orders its incarnations.
    pub boot: u64,
    /// Message number within this boot.
    pub seq: u64,
    /// Sender's wall clock at send time, unix ms.
    pub ts: u64,
    /// Sender's send period in milliseconds.
    pub interval_ms: u64,
    /// What the sender knows of other members (membership; sent only to
    /// peers that speak v1). Empty on the wire means absent.
    pub members: Vec<Member>,
}

/// One member as another node knows it: the hearsay a status may carry.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    /// The member's identity (IP and listening port).
    pub addr: SocketAddr,
    pub name: Option<String>,
    /// The member's incarnation as last heard by the sender.
    pub boot: u64,
    /// How long ago the sender last heard from it directly, in ms.
    pub heard_ms: u64,
}

/// A decoded, validated message.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// A v1 status.
    Status {
        header: Header,
        cpu: f64,
        memory: f64,
        /// The rest of the host's health, each part where the sender has it.
        health: Health,
    },
    /// A v1 leave: the sender is shutting down on purpose.
    Leave { header: Header },
    /// A bare `{"cpu":x,"memory":y}` from the Python original.
    Legacy { cpu: f64, memory: f64 },
}

/// Why a frame was rejected. [`DecodeError::reason`] gives the stable label
/// used for counters and logs.
#[derive(Debug, Clone, PartialEq)]
pub enum DecodeError {
    /// Frame longer than [`MAX_FRAME`].
    TooLarge,
    /// Not valid UTF-8.
    NotUtf8,
    /// Not parseable JSON (syntax error, nesting too deep, number too big...).
    InvalidJson(String),
    /// JSON, but a field has the wrong type, a duplicate, or it is not an object.
    BadField(String),
    /// `v` is present but not 1.
    UnsupportedVersion(u64),
    /// `type` is not `status` or `leave`.
    UnknownType(String),
    /// A required field is absent.
    MissingField(&'static str),
    /// A field is present with a value outside its range (cpu not in 0..=100, port 0...).
    OutOfRange(&'static str, String),
    /// A sealed frame arrived but this node has no key.
    SealedWithoutKey,
    /// The `node` name holds a control or text-direction character (see
    /// [`names::is_forbidden`]); the reason never shows the name raw.
    BadName(NameError),
}

impl DecodeError {
    /// Stable label for counters and rate-limited logs.
    pub fn reason(&self) -> &'static str {
        match self {
            DecodeError::TooLarge => "too_large",
            DecodeError::NotUtf8 => "not_utf8",
            DecodeError::InvalidJson(_) => "invalid_json",
            DecodeError::BadField(_) => "bad_field",
            DecodeError::UnsupportedVersion(_) => "unsupported_version",
            DecodeError::UnknownType(_) => "unknown_type",
            DecodeError::MissingField(_) => "missing_field",
            DecodeError::OutOfRange(..) => "out_of_range",
            DecodeError::SealedWithoutKey => "sealed_without_key",
            DecodeError::BadName(_) => "bad_name",
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::TooLarge => write!(f, "frame larger than {MAX_FRAME} bytes"),
            DecodeError::NotUtf8 => write!(f, "frame is not valid UTF-8"),
            DecodeError::InvalidJson(e) => write!(f, "invalid JSON: {e}"),
            DecodeError::BadField(e) => write!(f, "bad field: {e}"),
            DecodeError::UnsupportedVersion(v) => write!(f, "unsupported protocol version {v}"),
            DecodeError::UnknownType(t) => write!(f, "unknown message type {t:?}"),
            DecodeError::MissingField(name) => write!(f, "missing field `{name}`"),
            DecodeError::OutOfRange(name, value) => {
                write!(f, "field `{name}` out of range: {value}")
            }
            DecodeError::SealedWithoutKey => {
                write!(f, "sealed frame received but this node has no key")
            }
            DecodeError::BadName(why) => write!(f, "bad `node` name: {why}"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Every field any message may carry; unknown fields are ignored, a duplicate
/// field or a wrong type is an error (serde's derive rejects both).
#[derive(Deserialize)]
struct RawMessage<'a> {
    v: Option<u64>,
    /// Borrowed from the frame when it has no escapes (the usual case): no
    /// allocation per message for the type.
    #[serde(rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
    node: Option<String>,
    port: Option<u64>,
    boot: Option<u64>,
    seq: Option<u64>,
    ts: Option<u64>,
    interval_ms: Option<u64>,
    cpu: Option<f64>,
    memory: Option<f64>,
    sealed: Option<serde::de::IgnoredAny>,
    members: Option<Vec<RawMember>>,
    // The host's health (see `health`), inline rather than flattened: serde's
    // flatten would buffer every frame before decoding it.
    load: Option<Vec<f64>>,
    cpus: Option<u64>,
    swap: Option<f64>,
    fs: Option<Vec<Filesystem>>,
    net_rx: Option<u64>,
    net_tx: Option<u64>,
    uptime_s: Option<u64>,
}

/// A member entry as written; an entry with a bad address is skipped, not
/// fatal (one stale or odd entry must not cost the whole status).
#[derive(Deserialize, Serialize)]
struct RawMember {
    addr: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    boot: u64,
    heard_ms: u64,
}

/// Decodes one frame (without its trailing newline; a `\r` before it is tolerated).
pub fn decode(frame: &[u8]) -> Result<Message, DecodeError> {
    if frame.len() > MAX_FRAME {
        return Err(DecodeError::TooLarge);
    }
    let frame = frame.strip_suffix(b"\r").unwrap_or(frame);
    let text = std::str::from_utf8(frame).map_err(|_| DecodeError::NotUtf8)?;
    let raw: RawMessage = serde_json::from_str(text).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => DecodeError::BadField(e.to_string()),
        _ => DecodeError::InvalidJson(e.to_string()),
    })?;
    if raw.sealed.is_some() {
        return Err(DecodeError::SealedWithoutKey);
    }
    match raw.v {
        None => decode_legacy(&raw),
        Some(1) => decode_v1(raw),
        Some(v) => Err(DecodeError::UnsupportedVersion(v)),
    }
}

fn decode_legacy(raw: &RawMessage<'_>) -> Result<Message, DecodeError> {
    // Without `v`, only the Python original's exact shape is accepted.
    if raw.kind.is_some() {
        return Err(DecodeError::MissingField("v"));
    }
    let cpu = percent("cpu", raw.cpu)?;
    let memory = percent("memory", raw.memory)?;
    Ok(Message::Legacy { cpu, memory })
}

fn decode_v1(raw: RawMessage<'_>) -> Result<Message, DecodeError> {
    let kind = raw.kind.ok_or(DecodeError::MissingField("type"))?;
    if kind != "status" && kind != "leave" {
        return Err(DecodeError::UnknownType(truncate(&kind, 32)));
    }
    let node = raw.node.ok_or(DecodeError::MissingField("node"))?;
    match names::check(&node) {
        Ok(()) => {}
        Err(NameError::TooLong(len)) => {
            return Err(DecodeError::OutOfRange(
                "node",
                format!("{len} bytes, at most {MAX_NAME_LEN}"),
            ));
        }
        Err(e) => return Err(DecodeError::BadName(e)),
    }
    let port = raw.port.ok_or(DecodeError::MissingField("port"))?;
    let port = u16::try_from(port)
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| DecodeError::OutOfRange("port", port.to_string()))?;
    let interval_ms = raw
        .interval_ms
        .ok_or(DecodeError::MissingField("interval_ms"))?;
    if interval_ms == 0 || interval_ms > MAX_PEER_INTERVAL.as_millis() as u64 {
        return Err(DecodeError::OutOfRange(
            "interval_ms",
            interval_ms.to_string(),
        ));
    }
    let members = raw
        .members
        .unwrap_or_default()
        .into_iter()
        .take(MAX_MEMBERS_PER_MESSAGE)
        .filter_map(|member| {
            let addr = member.addr.parse().ok()?;
            // A name that breaks the rules is dropped, the member kept: it is
            // hearsay, perhaps relayed by an older node that took it in.
            let name = member.name.filter(|n| names::check(n).is_ok());
            Some(Member {
                addr,
                name,
                boot: member.boot,
                heard_ms: member.heard_ms,
            })
        })
        .collect();
    let header = Header {
        node,
        port,
        boot: raw.boot.ok_or(DecodeError::MissingField("boot"))?,
        seq: raw.seq.ok_or(DecodeError::MissingField("seq"))?,
        ts: raw.ts.ok_or(DecodeError::MissingField("ts"))?,
        interval_ms,
        members,
    };
    if kind == "leave" {
        return Ok(Message::Leave { header });
    }
    let cpu = percent("cpu", raw.cpu)?;
    let memory = percent("memory", raw.memory)?;
    let health = RawHealth {
        load: raw.load,
        cpus: raw.cpus,
        swap: raw.swap,
        fs: raw.fs,
        net_rx: raw.net_rx,
        net_tx: raw.net_tx,
        uptime_s: raw.uptime_s,
    }
    .check()
    .map_err(|(field, value)| DecodeError::OutOfRange(field, value))?;
    Ok(Message::Status {
        header,
        cpu,
        memory,
        health,
    })
}

fn percent(name: &'static str, value: Option<f64>) -> Result<f64, DecodeError> {
    let value = value.ok_or(DecodeError::MissingField(name))?;
    if value.is_finite() && (0.0..=100.0).contains(&value) {
        Ok(value)
    } else {
        Err(DecodeError::OutOfRange(name, value.to_string()))
    }
}

fn truncate(text: &str, max_chars: usize) -> String {
    text.chars().take(max_chars).collect()
}

#[derive(Serialize)]
struct RawOut<'a> {
    v: u8,
    #[serde(rename = "type")]
    kind: &'a str,
    node: &'a str,
    port: u16,
    boot: u64,
    seq: u64,
    ts: u64,
    interval_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    cpu: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    memory: Option<f64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    members: Vec<RawMember>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    health: Option<HealthOut<'a>>,
}

/// Encodes a v1 status or leave as one line, newline included. cpu and memory
/// are rounded to one decimal (what is printed) to keep frames short.
pub fn encode(message: &Message) -> Vec<u8> {
    let round = crate::units::round1;
    let (kind, header, cpu, memory, health) = match message {
        Message::Status {
            header,
            cpu,
            memory,
            health,
        } => (
            "status",
            header,
            Some(round(*cpu)),
            Some(round(*memory)),
            Some(health),
        ),
        Message::Leave { header } => ("leave", header, None, None, None),
        Message::Legacy { cpu, memory } => {
            // The Python original's own format: no newline, one per connection.
            return format!(
                "{{\"cpu\": {}, \"memory\": {}}}",
                round(*cpu),
                round(*memory)
            )
            .into_bytes();
        }
    };
    let fs = health.map(rounded_fs).unwrap_or_default();
    let raw = RawOut {
        v: 1,
        kind,
        node: &header.node,
        port: header.port,
        boot: header.boot,
        seq: header.seq,
        ts: header.ts,
        interval_ms: header.interval_ms,
        cpu,
        memory,
        members: header
            .members
            .iter()
            .map(|member| RawMember {
                addr: member.addr.to_string(),
                name: member.name.clone(),
                boot: member.boot,
                heard_ms: member.heard_ms,
            })
            .collect(),
        health: health.map(|health| HealthOut::of(health, &fs)),
    };
    // Serializing a struct of plain fields into a Vec cannot fail.
    let mut line = serde_json::to_vec(&raw).unwrap_or_default();
    line.push(b'\n');
    line
}

/// Encodes a status as [`encode`] does, first dropping its least full
/// filesystems (the tail of the fullest-first list) until the line is
/// shorter than `limit`: the bare status is a connection's first frame,
/// which must stay under [`crate::limits::MAX_FIRST_FRAME`] for the Python
/// original's single read, whatever the name and the mount points. `message`
/// keeps what was sent. Anything but a status is encoded as it is.
pub fn encode_within(message: &mut Message, limit: usize) -> Vec<u8> {
    loop {
        let line = encode(message);
        let Message::Status { health, .. } = message else {
            return line;
        };
        if line.len() < limit || health.fs.pop().is_none() {
            return line;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        Header {
            node: "b".into(),
            port: 5000,
            boot: 1_700_000_000_000,
            seq: 7,
            ts: 1_700_000_005_000,
            interval_ms: 5000,
            members: Vec::new(),
        }
    }

    fn status_json(cpu: &str, memory: &str) -> String {
        format!(
            r#"{{"v":1,"type":"status","node":"b","port":5000,"boot":1,"seq":0,"ts":1,"interval_ms":5000,"cpu":{cpu},"memory":{memory}}}"#
        )
    }

    #[test]
    fn status_round_trips() {
        let message = Message::Status {
            header: header(),
            cpu: 3.24,
            memory: 41.66,
            health: Health::default(),
        };
        let line = encode(&message);
        assert_eq!(line.last(), Some(&b'\n'));
        assert!(line.len() < crate::limits::MAX_FIRST_FRAME);
        let decoded = decode(&line[..line.len() - 1]);
        assert_eq!(
            decoded,
            Ok(Message::Status {
                header: header(),
                cpu: 3.2,
                memory: 41.7,
                health: Health::default(),
            })
        );
    }

    #[test]
    fn a_status_with_long_mount_points_still_fits_the_first_frame() {
        use crate::limits::{MAX_FILESYSTEMS, MAX_FIRST_FRAME, MAX_MOUNT_LEN, MAX_NAME_LEN};
        use crate::proto::health::Filesystem;
        let fs: Vec<Filesystem> = (0..MAX_FILESYSTEMS)
            .map(|i| Filesystem {
                mount: format!("/{i}{}", "m".repeat(MAX_MOUNT_LEN - 2)),
                used: 90.0 - i as f64,
                size: u64::MAX,
            })
            .collect();
        let health = Health {
            load: Some([1e5, 1e5, 1e5]),
            cpus: Some(crate::limits::MAX_CPUS),
            swap: Some(99.9),
            fs: fs.clone(),
            net_rx: Some(u64::MAX),
            net_tx: Some(u64::MAX),
            uptime_s: Some(u64::MAX),
        };
        let mut message = Message::Status {
            header: Header {
                node: "n".repeat(MAX_NAME_LEN),
                seq: u64::MAX,
                ts: u64::MAX,
                boot: u64::MAX,
                interval_ms: crate::limits::MAX_PEER_INTERVAL.as_millis() as u64,
                ..header()
            },
            cpu: 100.0,
            memory: 100.0,
            health,
        };
        let line = encode_within(&mut message, MAX_FIRST_FRAME);
        assert!(line.len() < MAX_FIRST_FRAME, "{}", line.len());
        let Message::Status { health: sent, .. } = &message else {
            panic!("not a status");
        };
        // The fullest were kept (as many as fit), in order; what is left
        // in `message` is what went out.
        assert!(!sent.fs.is_empty() && sent.fs.len() < MAX_FILESYSTEMS);
        assert_eq!(sent.fs[..], fs[..sent.fs.len()]);
        let Ok(Message::Status {
            health: decoded, ..
        }) = decode(line.trim_ascii_end())
        else {
            panic!("refused");
        };
        assert_eq!(decoded.fs, sent.fs);
        // One more filesystem would not have fitted.
        let mut one_more = message.clone();
        if let Message::Status { health, .. } = &mut one_more {
            health.fs.push(fs[sent.fs.len()].clone());
        }
        assert!(encode(&one_more).len() >= MAX_FIRST_FRAME);
        // A status that fits is left whole.
        let mut small = Message::Status {
            header: header(),
            cpu: 1.0,
            memory: 2.0,
            health: Health {
                fs: fs[..1].to_vec(),
                ..Health::default()
            },
        };
        let before = small.clone();
        assert_eq!(encode_within(&mut small, MAX_FIRST_FRAME), encode(&before));
        assert_eq!(small, before);
    }

    #[test]
    fn health_round_trips_rounded_and_is_left_out_when_absent() {
        use crate::proto::health::Filesystem;
        let health = Health {
            load: Some([0.123, 1.5, 2.0]),
            cpus: Some(2),
            swap: Some(12.34),
            fs: vec![Filesystem {
                mount: "/".into(),
                used: 71.26,
                size: 1 << 30,
            }],
            net_rx: Some(123_456),
            net_tx: Some(654_321),
            uptime_s: Some(86_400),
        };
        let message = Message::Status {
            header: header(),
            cpu: 1.0,
            memory: 2.0,
            health,
        };
        let line = encode(&message);
        let text = String::from_utf8_lossy(&line).to_string();
        assert!(text.contains(r#""load":[0.12,1.5,2.0]"#), "{text}");
        assert!(
            text.contains(r#""fs":[{"mount":"/","used":71.3,"size":1073741824}]"#),
            "{text}"
        );
        let Ok(Message::Status { health, .. }) = decode(line.trim_ascii_end()) else {
            panic!("{text}");
        };
        assert_eq!(health.swap, Some(12.3));
        assert_eq!(health.fs[0].used, 71.3);
        assert_eq!(health.uptime_s, Some(86_400));
        // Absent parts are absent on the wire, not zero.
        let bare = encode(&Message::Status {
            header: header(),
            cpu: 1.0,
            memory: 2.0,
            health: Health::default(),
        });
        let bare = String::from_utf8_lossy(&bare).to_string();
        for field in [
            "load", "cpus", "swap", "\"fs\"", "net_rx", "net_tx", "uptime_s",
        ] {
            assert!(!bare.contains(field), "{field} in {bare}");
        }
        // A bad field rejects the whole frame, by its name.
        let bad = status_json("1", "2").replace('}', r#","load":[1,2,-3]}"#);
        assert_eq!(reason(bad.as_bytes()), "out_of_range");
    }

    #[test]
    fn members_round_trip_and_bad_entries_are_skipped() {
        let mut with_members = header();
        with_members.members = vec![
            Member {
                addr: "127.0.0.3:5000"
                    .parse()
                    .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0))),
                name: Some("c".into()),
                boot: 9,
                heard_ms: 1200,
            },
            Member {
                addr: "[::1]:5001"
                    .parse()
                    .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0))),
                name: None,
                boot: 1,
                heard_ms: 0,
            },
        ];
        let message = Message::Status {
            header: with_members,
            cpu: 1.0,
            memory: 2.0,
            health: Health::default(),
        };
        let line = encode(&message);
        assert_eq!(decode(line.trim_ascii_end()), Ok(message));
        // Without members the field is absent (the Python original never sees it).
        let plain = encode(&Message::Leave { header: header() });
        assert!(!String::from_utf8_lossy(&plain).contains("members"));
        let odd = status_json("1", "1").replace(
            "\"v\":1",
            "\"v\":1,\"members\":[{\"addr\":\"nonsense\",\"boot\":1,\"heard_ms\":0},{\"addr\":\"10.0.0.9:5000\",\"boot\":2,\"heard_ms\":5}]",
        );
        match decode(odd.as_bytes()) {
            Ok(Message::Status { header, .. }) => {
                assert_eq!(header.members.len(), 1);
                assert_eq!(header.members[0].addr.to_string(), "10.0.0.9:5000");
            }
            other => panic!("{other:?}"),
        }
        let wrong = status_json("1", "1").replace("\"v\":1", "\"v\":1,\"members\":\"all\"");
        assert_eq!(reason(wrong.as_bytes()), "bad_field");
    }

    #[test]
    fn leave_round_trips() {
        let message = Message::Leave { header: header() };
        let line = encode(&message);
        assert_eq!(decode(line.trim_ascii_end()), Ok(message));
    }

    #[test]
    fn legacy_python_message_decodes() {
        assert_eq!(
            decode(br#"{"cpu": 12.5, "memory": 40.1}"#),
            Ok(Message::Legacy {
                cpu: 12.5,
                memory: 40.1
            })
        );
        // Integers are numbers too (psutil may report 0 as 0.0 or 0).
        assert_eq!(
            decode(br#"{"cpu": 0, "memory": 100}"#),
            Ok(Message::Legacy {
                cpu: 0.0,
                memory: 100.0
            })
        );
        let encoded = encode(&Message::Legacy {
            cpu: 1.0,
            memory: 2.0,
        });
        assert!(!encoded.ends_with(b"\n"));
        assert!(decode(&encoded).is_ok());
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let line = status_json("1.5", "2.5").replace("\"v\":1", "\"v\":1,\"extra\":[1,{\"a\":2}]");
        assert!(matches!(
            decode(line.as_bytes()),
            Ok(Message::Status { .. })
        ));
    }

    #[test]
    fn crlf_is_tolerated() {
        assert!(decode(b"{\"cpu\":1,\"memory\":2}\r").is_ok());
    }

    fn reason(frame: &[u8]) -> &'static str {
        match decode(frame) {
            Ok(message) => panic!("expected a rejection, got {message:?}"),
            Err(e) => e.reason(),
        }
    }

    #[test]
    fn every_rejection_has_its_reason() {
        assert_eq!(reason(&vec![b'a'; MAX_FRAME + 1]), "too_large");
        assert_eq!(reason(b"\xff\xfe{}"), "not_utf8");
        assert_eq!(reason(b"not json"), "invalid_json");
        assert_eq!(reason(b"{\"cpu\":1"), "invalid_json");
        assert_eq!(reason(b""), "invalid_json");
        assert_eq!(reason(b"[1,2]"), "bad_field");
        assert_eq!(reason(b"42"), "bad_field");
        assert_eq!(reason(br#"{"cpu":"3","memory":1}"#), "bad_field");
        assert_eq!(reason(br#"{"cpu":1,"cpu":2,"memory":1}"#), "bad_field");
        assert_eq!(reason(br#"{"v":2,"type":"status"}"#), "unsupported_version");
        assert_eq!(reason(br#"{"v":"1"}"#), "bad_field");
        assert_eq!(
            reason(br#"{"v":1,"type":"hello","node":"b"}"#),
            "unknown_type"
        );
        assert_eq!(reason(br#"{"v":1}"#), "missing_field");
        assert_eq!(reason(br#"{"cpu":1}"#), "missing_field");
        assert_eq!(
            reason(br#"{"type":"status","cpu":1,"memory":1}"#),
            "missing_field"
        );
        assert_eq!(
            reason(status_json("1", "1").replace(",\"seq\":0", "").as_bytes()),
            "missing_field"
        );
        assert_eq!(reason(br#"{"v":1,"sealed":"AAAA"}"#), "sealed_without_key");
        let bad_name =
            status_json("1", "1").replace("\"node\":\"b\"", r#""node":"b\"}\n\\\u001b""#);
        assert_eq!(reason(bad_name.as_bytes()), "bad_name");
        // The reason names the character, escaped; never the name raw.
        let why = decode(bad_name.as_bytes()).err().map(|e| e.to_string());
        assert_eq!(
            why.as_deref(),
            Some("bad `node` name: character 3 is \\x0a, a control or text-direction character")
        );
    }

    #[test]
    fn a_member_name_that_breaks_the_rules_is_dropped_not_the_status() {
        let with_members = status_json("1", "1").replace(
            "\"v\":1",
            r#""v":1,"members":[{"addr":"10.0.0.9:5000","name":"x\u202ey","boot":2,"heard_ms":5},{"addr":"10.0.0.8:5000","name":"ok","boot":2,"heard_ms":5}]"#,
        );
        match decode(with_members.as_bytes()) {
            Ok(Message::Status { header, .. }) => {
                assert_eq!(header.members.len(), 2);
                assert_eq!(header.members[0].name, None);
                assert_eq!(header.members[1].name.as_deref(), Some("ok"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn numbers_outside_0_to_100_or_not_finite_are_rejected() {
        for (cpu, expected) in [
            ("-0.1", "out_of_range"),
            ("100.1", "out_of_range"),
            ("1e400", "invalid_json"),
            ("NaN", "invalid_json"),
            ("Infinity", "invalid_json"),
            ("null", "missing_field"),
            ("true", "bad_field"),
            ("\"50\"", "bad_field"),
        ] {
            assert_eq!(
                reason(status_json(cpu, "1").as_bytes()),
                expected,
                "cpu={cpu}"
            );
            assert_eq!(
                reason(status_json("1", cpu).as_bytes()),
                expected,
                "memory={cpu}"
            );
        }
        assert!(decode(status_json("0", "100").as_bytes()).is_ok());
    }

    #[test]
    fn header_fields_are_range_checked() {
        let bad_port = status_json("1", "1").replace("\"port\":5000", "\"port\":70000");
        assert_eq!(reason(bad_port.as_bytes()), "out_of_range");
        let zero_port = status_json("1", "1").replace("\"port\":5000", "\"port\":0");
        assert_eq!(reason(zero_port.as_bytes()), "out_of_range");
        let zero_interval =
            status_json("1", "1").replace("\"interval_ms\":5000", "\"interval_ms\":0");
        assert_eq!(reason(zero_interval.as_bytes()), "out_of_range");
        let huge_interval =
            status_json("1", "1").replace("\"interval_ms\":5000", "\"interval_ms\":99999999999");
        assert_eq!(reason(huge_interval.as_bytes()), "out_of_range");
        let long_name = status_json("1", "1").replace(
            "\"node\":\"b\"",
            &format!("\"node\":\"{}\"", "x".repeat(300)),
        );
        assert_eq!(reason(long_name.as_bytes()), "out_of_range");
        let negative_seq = status_json("1", "1").replace("\"seq\":0", "\"seq\":-1");
        assert_eq!(reason(negative_seq.as_bytes()), "bad_field");
    }

    #[test]
    fn deep_nesting_is_rejected_not_a_stack_overflow() {
        let deep = format!("{{\"x\":{}{}}}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(reason(deep.as_bytes()), "too_large");
        // Within the frame limit: parsed without recursion trouble, still rejected.
        let deep = format!("{{\"x\":{}{}}}", "[".repeat(20_000), "]".repeat(20_000));
        assert_eq!(reason(deep.as_bytes()), "missing_field");
        let deep = format!("{{\"cpu\":{}{}}}", "[".repeat(20_000), "]".repeat(20_000));
        assert_eq!(reason(deep.as_bytes()), "bad_field");
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn json_like_garbage_is_rejected_or_valid_never_panics(
            text in r#"[{}\[\]",:0-9a-z.eE+\- ]{0,200}"#,
        ) {
            let _ = decode(text.as_bytes());
        }
    }
}
