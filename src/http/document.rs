//! The `/status` document, typed: the node serializes it, its clients
//! (`p2pmon members`, `p2pmon top`) deserialize it, so both sides read one
//! definition of every field. Field names are DESIGN.md's (`peer`, `name`,
//! `state`, `cpu`, `memory`, `last_seen_s`, ...); ages are seconds rounded to
//! one decimal by [`round1`]; a value the node does not have is `null`,
//! never left out.
//!
//! Two traps, each kept by a test below. The JSON is byte for byte what the
//! node served when it built the document as a `serde_json::Value`, whose map
//! sorts keys: so the fields are declared in alphabetical order. And a
//! client may talk to an older or newer node: a field that is missing, or of
//! a type it does not expect, reads as its default (unknown) instead of
//! failing the whole table, and only text that is not JSON at all is an
//! error ([`StatusDocument::parse`]). The fields a client shows as unknown
//! (`?`, `-`) and those older nodes did not send are `Option`s even where
//! this node always fills them.

use std::collections::BTreeMap;
use std::time::Instant;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};

use crate::http::snapshot::{PeerSnapshot, Snapshot};
use crate::peers::alerts::Firing;
use crate::peers::{Origin, Subject};
use crate::units::{round1, round2};

/// `GET /status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StatusDocument {
    #[serde(deserialize_with = "lenient")]
    pub node: NodeStatus,
    /// By address.
    #[serde(deserialize_with = "lenient_list")]
    pub peers: Vec<PeerStatus>,
}

/// This node: who it is, how it is, what it has counted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NodeStatus {
    /// Its own `--alert` rules firing now (since issue 14).
    #[serde(deserialize_with = "lenient_list")]
    pub alerts: Vec<AlertStatus>,
    #[serde(deserialize_with = "lenient")]
    pub connections_open: u64,
    /// Percent, one decimal; null before the first sample.
    #[serde(deserialize_with = "lenient")]
    pub cpu: Option<f64>,
    #[serde(deserialize_with = "lenient")]
    pub cut_off: bool,
    /// The addresses it listens on.
    #[serde(deserialize_with = "lenient")]
    pub listen: Vec<String>,
    #[serde(deserialize_with = "lenient")]
    pub memory: Option<f64>,
    #[serde(deserialize_with = "lenient")]
    pub messages_received: u64,
    #[serde(deserialize_with = "lenient")]
    pub messages_sent: u64,
    #[serde(deserialize_with = "lenient")]
    pub name: Option<String>,
    /// Rejections by reason label.
    #[serde(deserialize_with = "lenient")]
    pub rejected: BTreeMap<String, u64>,
    #[serde(deserialize_with = "lenient")]
    pub uptime_s: f64,
    #[serde(deserialize_with = "lenient")]
    pub version: String,
}

/// One peer, as the node's table has it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PeerStatus {
    /// Its `--alert` rules firing now, kept while it is silent (since issue 14).
    #[serde(deserialize_with = "lenient_list")]
    pub alerts: Vec<AlertStatus>,
    /// State changes so far.
    #[serde(deserialize_with = "lenient")]
    pub changes: u64,
    #[serde(deserialize_with = "lenient")]
    pub configured: bool,
    /// Percent as last reported; null while it has sent none.
    #[serde(deserialize_with = "lenient")]
    pub cpu: Option<f64>,
    #[serde(deserialize_with = "lenient")]
    pub flapping: bool,
    #[serde(deserialize_with = "lenient")]
    pub flaps: u64,
    /// The interval the peer announced, unrounded.
    #[serde(deserialize_with = "lenient")]
    pub interval_s: f64,
    /// `configured`, `learned from <peer>` or `contacted us` (since issue 8).
    #[serde(deserialize_with = "lenient")]
    pub known_from: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub known_since_s: Option<f64>,
    /// Null if never heard from.
    #[serde(deserialize_with = "lenient")]
    pub last_seen_s: Option<f64>,
    #[serde(deserialize_with = "lenient")]
    pub legacy: bool,
    #[serde(deserialize_with = "lenient")]
    pub memory: Option<f64>,
    /// The display name it sent, if any (text from the network: escape it).
    #[serde(deserialize_with = "lenient")]
    pub name: Option<String>,
    /// Its address (`IP`, or `IP:PORT` off the default port).
    #[serde(deserialize_with = "lenient")]
    pub peer: Option<String>,
    /// Why it was last marked offline.
    #[serde(deserialize_with = "lenient")]
    pub reason: Option<String>,
    /// Time in its current state.
    #[serde(deserialize_with = "lenient")]
    pub since_s: Option<f64>,
    /// `unknown`, `online`, `offline` or `left` (text: a newer node may add one).
    #[serde(deserialize_with = "lenient")]
    pub state: Option<String>,
}

/// One firing alert: `{"rule": "cpu > 90", "since_s": 12.3, "value": 97.3}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AlertStatus {
    /// The rule as the node shows it (`cpu > 90 for 30s`).
    #[serde(deserialize_with = "lenient")]
    pub rule: Option<String>,
    /// How long it has been firing.
    #[serde(deserialize_with = "lenient")]
    pub since_s: Option<f64>,
    /// The latest value of its metric.
    #[serde(deserialize_with = "lenient")]
    pub value: Option<f64>,
}

impl AlertStatus {
    fn list(firing: &[Firing], age: impl Fn(Instant) -> f64) -> Vec<AlertStatus> {
        firing
            .iter()
            .map(|alert| AlertStatus {
                rule: Some(alert.rule.clone()),
                since_s: Some(age(alert.since)),
                value: Some(round2(alert.value)),
            })
            .collect()
    }
}

impl StatusDocument {
    /// The document for `snapshot`, its ages measured at `now`.
    pub fn of(snapshot: &Snapshot, now: Instant) -> StatusDocument {
        let age = |at: Instant| round1(now.duration_since(at).as_secs_f64());
        StatusDocument {
            node: NodeStatus {
                alerts: AlertStatus::list(snapshot.alerts_of(Subject::Node), age),
                connections_open: snapshot.stats.open_connections,
                cpu: snapshot.own.as_ref().map(|s| round1(s.cpu)),
                cut_off: snapshot.cut_off,
                listen: snapshot.listening.clone(),
                memory: snapshot.own.as_ref().map(|s| round1(s.memory)),
                messages_received: snapshot.stats.received,
                messages_sent: snapshot.stats.sent,
                name: Some(snapshot.name.clone()),
                rejected: snapshot
                    .stats
                    .rejected
                    .iter()
                    .map(|(reason, count)| ((*reason).to_string(), *count))
                    .collect(),
                uptime_s: age(snapshot.started),
                version: env!("CARGO_PKG_VERSION").to_string(),
            },
            peers: snapshot
                .peers_by_address()
                .into_iter()
                .map(|peer| {
                    let alerts = snapshot.alerts_of(Subject::Peer(peer.id));
                    PeerStatus::of(peer, alerts, age)
                })
                .collect(),
        }
    }

    /// Reads a document from any p2pmon node: only text that is not JSON is
    /// an error; whatever is missing or unexpected in it reads as unknown.
    pub fn parse(text: &str) -> Result<StatusDocument, serde_json::Error> {
        let value: serde_json::Value = serde_json::from_str(text)?;
        Ok(StatusDocument::deserialize(value).unwrap_or_default())
    }
}

impl PeerStatus {
    fn of(peer: &PeerSnapshot, alerts: &[Firing], age: impl Fn(Instant) -> f64) -> PeerStatus {
        PeerStatus {
            alerts: AlertStatus::list(alerts, &age),
            changes: peer.changes_total,
            configured: peer.configured,
            cpu: peer.cpu,
            flapping: peer.flapping,
            flaps: peer.flaps,
            interval_s: peer.interval.as_secs_f64(),
            known_from: Some(match peer.origin {
                Origin::Configured => "configured".to_string(),
                Origin::Learned { from } => format!("learned from {from}"),
                Origin::Contacted => "contacted us".to_string(),
            }),
            known_since_s: Some(age(peer.known_at)),
            last_seen_s: peer.last_seen().map(&age),
            legacy: peer.legacy,
            memory: peer.memory,
            name: peer.name.clone(),
            peer: Some(peer.id.to_string()),
            reason: peer.last_error.clone(),
            since_s: Some(age(peer.since)),
            state: Some(peer.state.as_str().to_string()),
        }
    }
}

/// A field as `T`, or `T`'s default when it holds something else (a string
/// where a number belongs, say): one odd field costs that field, not the table.
fn lenient<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned + Default,
{
    let value = serde_json::Value::deserialize(deserializer)?;
    Ok(T::deserialize(value).unwrap_or_default())
}

/// A list read item by item: an item that is not an object reads as an
/// entry of unknowns (a row of `?`), and a list that is not a list as empty.
fn lenient_list<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned + Default,
{
    let value = serde_json::Value::deserialize(deserializer)?;
    Ok(match value {
        serde_json::Value::Array(items) => items
            .into_iter()
            .map(|item| T::deserialize(item).unwrap_or_default())
            .collect(),
        _ => Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::snapshot::StatsSnapshot;
    use crate::node::sample::Sample;
    use crate::peers::{PeerId, PeerState};
    use serde_json::{Value, json};
    use std::net::IpAddr;
    use std::time::Duration;

    /// `/status` as the node built it before the document was typed (a
    /// `serde_json::Value`), kept as the reference the typed one must match.
    fn untyped(snapshot: &Snapshot, now: Instant) -> Value {
        let age = |at: Instant| round1(now.duration_since(at).as_secs_f64());
        let peers: Vec<Value> = snapshot
            .peers_by_address()
            .into_iter()
            .map(|peer| {
                json!({
                    "alerts": alerts(snapshot.alerts_of(Subject::Peer(peer.id)), now),
                    "peer": peer.id.to_string(),
                    "name": peer.name,
                    "state": peer.state.as_str(),
                    "since_s": age(peer.since),
                    "last_seen_s": peer.last_seen().map(age),
                    "cpu": peer.cpu,
                    "memory": peer.memory,
                    "reason": peer.last_error,
                    "flapping": peer.flapping,
                    "flaps": peer.flaps,
                    "changes": peer.changes_total,
                    "configured": peer.configured,
                    "known_from": match peer.origin {
                        Origin::Configured => "configured".to_string(),
                        Origin::Learned { from } => format!("learned from {from}"),
                        Origin::Contacted => "contacted us".to_string(),
                    },
                    "known_since_s": age(peer.known_at),
                    "legacy": peer.legacy,
                    "interval_s": peer.interval.as_secs_f64(),
                })
            })
            .collect();
        json!({
            "node": {
                "alerts": alerts(snapshot.alerts_of(Subject::Node), now),
                "name": snapshot.name,
                "listen": snapshot.listening,
                "version": env!("CARGO_PKG_VERSION"),
                "uptime_s": age(snapshot.started),
                "cpu": snapshot.own.as_ref().map(|s| round1(s.cpu)),
                "memory": snapshot.own.as_ref().map(|s| round1(s.memory)),
                "cut_off": snapshot.cut_off,
                "messages_received": snapshot.stats.received,
                "messages_sent": snapshot.stats.sent,
                "connections_open": snapshot.stats.open_connections,
                "rejected": snapshot.stats.rejected,
            },
            "peers": peers,
        })
    }

    /// Firing alerts as issue 14 added them to the document.
    fn alerts(firing: &[Firing], now: Instant) -> Value {
        firing
            .iter()
            .map(|alert| {
                let since = round1(now.duration_since(alert.since).as_secs_f64());
                json!({"rule": alert.rule, "since_s": since, "value": alert.value})
            })
            .collect()
    }

    fn id(text: &str, port: u16) -> PeerId {
        PeerId::new(text.parse::<IpAddr>().unwrap_or(IpAddr::from([0; 4])), port)
    }

    /// A node with peers of every shape: named and not, heard from and
    /// never, each origin, odd numbers; listed out of address order.
    fn snapshot(now: Instant) -> Snapshot {
        let ago = |ms: u64| now.checked_sub(Duration::from_millis(ms)).unwrap_or(now);
        let peer = |id: PeerId, state: PeerState| PeerSnapshot {
            id,
            name: None,
            configured: false,
            state,
            since: ago(125_040),
            last_status: None,
            last_contact: None,
            interval: Duration::from_millis(5000),
            legacy: false,
            cpu: None,
            memory: None,
            last_error: None,
            flapping: false,
            changes_total: 0,
            flaps: 0,
            origin: Origin::Contacted,
            known_at: ago(7_300_000),
        };
        let online = PeerSnapshot {
            name: Some("bravo \"b\" \u{e9}".to_string()),
            configured: true,
            last_status: Some(ago(449)),
            last_contact: Some(ago(1200)),
            cpu: Some(3.2),
            memory: Some(41.7),
            changes_total: 3,
            origin: Origin::Configured,
            ..peer(id("10.0.0.2", 5000), PeerState::Online)
        };
        let offline = PeerSnapshot {
            name: Some("charlie".to_string()),
            last_contact: Some(ago(9_050)),
            interval: Duration::from_millis(1500),
            legacy: true,
            cpu: Some(f64::NAN),
            memory: Some(100.0),
            last_error: Some("connection refused".to_string()),
            flapping: true,
            changes_total: 12,
            flaps: 2,
            origin: Origin::Learned {
                from: id("10.0.0.2", 5000),
            },
            ..peer(id("10.0.0.3", 5001), PeerState::Offline)
        };
        Snapshot {
            name: "alpha".to_string(),
            listening: vec!["10.0.0.1:5000".to_string(), "[::1]:5000".to_string()],
            started: ago(3_723_456),
            cut_off: false,
            own: Some(Sample {
                cpu: 12.345,
                memory: 99.95,
                health: Default::default(),
            }),
            stats: StatsSnapshot {
                received: 1234,
                sent: 99,
                open_connections: 2,
                rejected: [("bad_frame", 3), ("http_misdirected", 1)].into(),
            },
            output_dropped: 0,
            peers: vec![
                offline,
                peer(id("::1", 6000), PeerState::Unknown),
                online,
                peer(id("10.0.0.4", 5000), PeerState::Left),
            ],
            // One firing on this node; two on the offline peer (kept
            // through its silence).
            alerts: [
                (
                    Subject::Node,
                    vec![Firing {
                        rule: "memory > 90".into(),
                        since: ago(12_340),
                        value: 99.95,
                    }],
                ),
                (
                    Subject::Peer(id("10.0.0.3", 5001)),
                    vec![
                        Firing {
                            rule: "cpu > 90 for 30s".into(),
                            since: ago(60_000),
                            value: 97.3,
                        },
                        Firing {
                            rule: "load1_per_cpu > 1.5".into(),
                            since: ago(500),
                            value: 1.75,
                        },
                    ],
                ),
            ]
            .into(),
        }
    }

    #[test]
    fn the_typed_document_is_byte_for_byte_the_untyped_one() {
        let now = Instant::now();
        for snapshot in [
            snapshot(now),
            Snapshot {
                own: None,
                peers: Vec::new(),
                listening: Vec::new(),
                stats: StatsSnapshot {
                    received: 0,
                    sent: 0,
                    open_connections: 0,
                    rejected: BTreeMap::new(),
                },
                cut_off: true,
                ..snapshot(now)
            },
        ] {
            let typed = serde_json::to_string_pretty(&StatusDocument::of(&snapshot, now));
            let untyped = serde_json::to_string_pretty(&untyped(&snapshot, now));
            let typed = typed.unwrap_or_default();
            assert!(typed.contains("\"peers\""), "{typed}");
            assert_eq!(typed, untyped.unwrap_or_default());
        }
    }

    #[test]
    fn a_served_document_reads_back_as_itself() {
        let now = Instant::now();
        let mut document = StatusDocument::of(&snapshot(now), now);
        // NaN is served as null, so it reads back as unknown.
        document.peers[1].cpu = None;
        let text = serde_json::to_string_pretty(&document).unwrap_or_default();
        assert_eq!(StatusDocument::parse(&text).ok(), Some(document));
    }

    #[test]
    fn an_older_nodes_document_still_reads() {
        // /status as the first release served it (issue 6): no known_from
        // or known_since_s; plus fields of the wrong type and a non-object.
        let old = r#"{
          "node": {"name": "alpha", "listen": ["10.0.0.1:5000"], "version": "0.0.9",
                   "uptime_s": 12.5, "cpu": 3.0, "memory": null, "cut_off": "no",
                   "messages_received": 4, "messages_sent": 4, "connections_open": 1,
                   "rejected": {}},
          "peers": [
            {"peer": "10.0.0.2", "name": "bravo", "state": "online", "since_s": 125,
             "last_seen_s": 0.4, "cpu": 3.2, "memory": 41.7, "reason": null,
             "flapping": false, "flaps": 0, "changes": 1, "configured": true,
             "legacy": false, "interval_s": 5.0},
            {"peer": "10.0.0.3", "state": "suspect", "cpu": "high", "flaps": -1,
             "future_field": [1, 2]},
            7
          ]
        }"#;
        let document = StatusDocument::parse(old).unwrap_or_default();
        assert_eq!(document.node.name.as_deref(), Some("alpha"));
        assert!(!document.node.cut_off);
        assert_eq!(document.peers.len(), 3);
        let bravo = &document.peers[0];
        assert_eq!(bravo.since_s, Some(125.0));
        assert_eq!(
            (bravo.known_from.as_deref(), bravo.known_since_s),
            (None, None)
        );
        let odd = &document.peers[1];
        assert_eq!(odd.state.as_deref(), Some("suspect"));
        assert_eq!((odd.cpu, odd.flaps, odd.since_s), (None, 0, None));
        assert_eq!(document.peers[2], PeerStatus::default());
        // Not an object, or no peers: an empty table, not an error.
        for shape in ["[1]", "3", "{\"peers\": 3}", "{}", "null"] {
            assert_eq!(
                StatusDocument::parse(shape).ok(),
                Some(StatusDocument::default())
            );
        }
        assert!(StatusDocument::parse("<html>").is_err());
    }
}
