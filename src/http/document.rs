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
//!
//! The host's health (issue 14) uses the wire's names (`load`, `cpus`,
//! `swap`, `fs`, `net_rx`, `net_tx`, `uptime_s`) and, as on the wire, a part
//! the host did not report is left out rather than null: a document about
//! peers without health is the one older nodes served. The node's own host
//! uptime is `host_uptime_s`, since its `uptime_s` is the process's.

use std::collections::BTreeMap;
use std::time::Instant;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};

use crate::http::snapshot::{PeerSnapshot, Snapshot};
use crate::peers::alerts::Firing;
use crate::peers::{Origin, Subject};
use crate::proto::health::{Health, rounded_fs};
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
    #[serde(deserialize_with = "lenient", skip_serializing_if = "Option::is_none")]
    pub cpus: Option<u32>,
    #[serde(deserialize_with = "lenient")]
    pub cut_off: bool,
    #[serde(
        deserialize_with = "lenient_list",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub fs: Vec<FilesystemStatus>,
    /// Seconds since the host booted (`uptime_s` is the process's).
    #[serde(deserialize_with = "lenient", skip_serializing_if = "Option::is_none")]
    pub host_uptime_s: Option<u64>,
    /// The addresses it listens on.
    #[serde(deserialize_with = "lenient")]
    pub listen: Vec<String>,
    #[serde(deserialize_with = "lenient", skip_serializing_if = "Option::is_none")]
    pub load: Option<[f64; 3]>,
    #[serde(deserialize_with = "lenient")]
    pub memory: Option<f64>,
    #[serde(deserialize_with = "lenient")]
    pub messages_received: u64,
    #[serde(deserialize_with = "lenient")]
    pub messages_sent: u64,
    #[serde(deserialize_with = "lenient")]
    pub name: Option<String>,
    #[serde(deserialize_with = "lenient", skip_serializing_if = "Option::is_none")]
    pub net_rx: Option<u64>,
    #[serde(deserialize_with = "lenient", skip_serializing_if = "Option::is_none")]
    pub net_tx: Option<u64>,
    /// Rejections by reason label.
    #[serde(deserialize_with = "lenient")]
    pub rejected: BTreeMap<String, u64>,
    #[serde(deserialize_with = "lenient", skip_serializing_if = "Option::is_none")]
    pub swap: Option<f64>,
    /// Seconds since the process started.
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
    /// Logical CPUs, as last reported (the health fields are left out when
    /// the peer did not report them).
    #[serde(deserialize_with = "lenient", skip_serializing_if = "Option::is_none")]
    pub cpus: Option<u32>,
    #[serde(deserialize_with = "lenient")]
    pub flapping: bool,
    #[serde(deserialize_with = "lenient")]
    pub flaps: u64,
    /// Local filesystems, fullest first.
    #[serde(
        deserialize_with = "lenient_list",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub fs: Vec<FilesystemStatus>,
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
    /// 1, 5 and 15 minute load averages.
    #[serde(deserialize_with = "lenient", skip_serializing_if = "Option::is_none")]
    pub load: Option<[f64; 3]>,
    #[serde(deserialize_with = "lenient")]
    pub memory: Option<f64>,
    /// The display name it sent, if any (text from the network: escape it).
    #[serde(deserialize_with = "lenient")]
    pub name: Option<String>,
    /// Bytes received since boot, non-loopback interfaces.
    #[serde(deserialize_with = "lenient", skip_serializing_if = "Option::is_none")]
    pub net_rx: Option<u64>,
    #[serde(deserialize_with = "lenient", skip_serializing_if = "Option::is_none")]
    pub net_tx: Option<u64>,
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
    /// Percent of swap in use (absent without swap).
    #[serde(deserialize_with = "lenient", skip_serializing_if = "Option::is_none")]
    pub swap: Option<f64>,
    /// Seconds since its host booted.
    #[serde(deserialize_with = "lenient", skip_serializing_if = "Option::is_none")]
    pub uptime_s: Option<u64>,
}

/// One local filesystem of a host, as the wire's `fs` has it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FilesystemStatus {
    /// Where it is mounted (text from the network: escape it).
    #[serde(deserialize_with = "lenient")]
    pub mount: String,
    /// Bytes.
    #[serde(deserialize_with = "lenient")]
    pub size: u64,
    /// Percent used.
    #[serde(deserialize_with = "lenient")]
    pub used: f64,
}

impl FilesystemStatus {
    fn list(health: &Health) -> Vec<FilesystemStatus> {
        rounded_fs(health)
            .into_iter()
            .map(|fs| FilesystemStatus {
                mount: fs.mount,
                size: fs.size,
                used: fs.used,
            })
            .collect()
    }

    /// The fullest of `fs`, whatever order a node sent them in.
    pub fn fullest(fs: &[FilesystemStatus]) -> Option<&FilesystemStatus> {
        fs.iter().max_by(|a, b| a.used.total_cmp(&b.used))
    }
}

/// Load rounded as the wire sends it (two decimals).
fn rounded_load(health: &Health) -> Option<[f64; 3]> {
    let two = |x: f64| (x * 100.0).round() / 100.0;
    health.load.map(|[a, b, c]| [two(a), two(b), two(c)])
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
        let no_health = Health::default();
        let health = snapshot.own.as_ref().map_or(&no_health, |s| &s.health);
        StatusDocument {
            node: NodeStatus {
                alerts: AlertStatus::list(snapshot.alerts_of(Subject::Node), age),
                connections_open: snapshot.stats.open_connections,
                cpu: snapshot.own.as_ref().map(|s| round1(s.cpu)),
                cpus: health.cpus,
                cut_off: snapshot.cut_off,
                fs: FilesystemStatus::list(health),
                host_uptime_s: health.uptime_s,
                listen: snapshot.listening.clone(),
                load: rounded_load(health),
                memory: snapshot.own.as_ref().map(|s| round1(s.memory)),
                messages_received: snapshot.stats.received,
                messages_sent: snapshot.stats.sent,
                name: Some(snapshot.name.clone()),
                net_rx: health.net_rx,
                net_tx: health.net_tx,
                rejected: snapshot
                    .stats
                    .rejected
                    .iter()
                    .map(|(reason, count)| ((*reason).to_string(), *count))
                    .collect(),
                swap: health.swap.map(round1),
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
            cpus: peer.health.cpus,
            flapping: peer.flapping,
            flaps: peer.flaps,
            fs: FilesystemStatus::list(&peer.health),
            interval_s: peer.interval.as_secs_f64(),
            known_from: Some(match peer.origin {
                Origin::Configured => "configured".to_string(),
                Origin::Learned { from } => format!("learned from {from}"),
                Origin::Contacted => "contacted us".to_string(),
            }),
            known_since_s: Some(age(peer.known_at)),
            last_seen_s: peer.last_seen().map(&age),
            legacy: peer.legacy,
            load: rounded_load(&peer.health),
            memory: peer.memory,
            name: peer.name.clone(),
            net_rx: peer.health.net_rx,
            net_tx: peer.health.net_tx,
            peer: Some(peer.id.to_string()),
            reason: peer.last_error.clone(),
            since_s: Some(age(peer.since)),
            state: Some(peer.state.as_str().to_string()),
            swap: peer.health.swap.map(round1),
            uptime_s: peer.health.uptime_s,
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
    use crate::proto::health::Filesystem;
    use serde_json::{Value, json};
    use std::net::IpAddr;
    use std::time::Duration;

    /// `/status` as the node built it before the document was typed (a
    /// `serde_json::Value`), kept as the reference the typed one must match;
    /// the health fields (issue 14) are added to it as the json `status`
    /// event writes them.
    fn untyped(snapshot: &Snapshot, now: Instant) -> Value {
        let age = |at: Instant| round1(now.duration_since(at).as_secs_f64());
        let peers: Vec<Value> = snapshot
            .peers_by_address()
            .into_iter()
            .map(|peer| {
                let mut fields = json!({
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
                });
                with_health(&mut fields, &peer.health, "uptime_s");
                fields
            })
            .collect();
        let mut node = json!({
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
        });
        if let Some(own) = &snapshot.own {
            with_health(&mut node, &own.health, "host_uptime_s");
        }
        json!({ "node": node, "peers": peers })
    }

    /// The health fields as the json `status` event and the wire write
    /// them: each only when present, load to two decimals, percents to one.
    fn with_health(fields: &mut Value, health: &Health, uptime: &str) {
        let Value::Object(map) = fields else {
            return;
        };
        let two = |x: f64| (x * 100.0).round() / 100.0;
        if let Some(load) = health.load {
            map.insert("load".into(), json!(load.map(two)));
        }
        if let Some(cpus) = health.cpus {
            map.insert("cpus".into(), json!(cpus));
        }
        if let Some(swap) = health.swap {
            map.insert("swap".into(), json!(round1(swap)));
        }
        if !health.fs.is_empty() {
            let fs: Vec<Value> = health
                .fs
                .iter()
                .map(|fs| json!({"mount": fs.mount, "used": round1(fs.used), "size": fs.size}))
                .collect();
            map.insert("fs".into(), Value::Array(fs));
        }
        for (key, value) in [
            ("net_rx", health.net_rx),
            ("net_tx", health.net_tx),
            (uptime, health.uptime_s),
        ] {
            if let Some(value) = value {
                map.insert(key.into(), json!(value));
            }
        }
    }

    /// A host that reports every health field.
    fn every_health() -> Health {
        Health {
            load: Some([0.5, 1.25, 2.0]),
            cpus: Some(2),
            swap: Some(12.53),
            fs: vec![Filesystem {
                mount: "/".into(),
                used: 71.3,
                size: 1 << 30,
            }],
            net_rx: Some(10_000_000_000),
            net_tx: Some(20),
            uptime_s: Some(86_400),
        }
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
            health: Health::default(),
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
            health: every_health(),
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
            // Some parts only, and filesystems not fullest first.
            health: Health {
                load: Some([0.0, 1.0 / 3.0, 12.345]),
                fs: vec![
                    Filesystem {
                        mount: "/".into(),
                        used: 12.04,
                        size: 0,
                    },
                    Filesystem {
                        mount: "/srv \"x\"".into(),
                        used: 99.96,
                        size: u64::MAX,
                    },
                ],
                ..Health::default()
            },
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
                health: every_health(),
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
            // The health fields are there only where reported.
            let has_health = snapshot.own.is_some();
            for field in ["\"load\"", "\"fs\"", "\"host_uptime_s\"", "\"net_rx\""] {
                assert_eq!(typed.contains(field), has_health, "{field}: {typed}");
            }
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
             "future_field": [1, 2], "load": [1, 2], "cpus": -2, "swap": "none",
             "net_rx": 1.5, "uptime_s": "long",
             "fs": [{"mount": "/", "used": 50.5, "size": 10}, 3, {"used": "full"}]},
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
        // Health fields of the wrong shape read as unknown, one by one; an
        // odd filesystem entry as an empty one.
        assert_eq!(
            (odd.load, odd.cpus, odd.swap, odd.net_rx, odd.uptime_s),
            (None, None, None, None, None)
        );
        assert_eq!(odd.fs.len(), 3);
        assert_eq!((odd.fs[0].mount.as_str(), odd.fs[0].used), ("/", 50.5));
        assert_eq!(odd.fs[2], FilesystemStatus::default());
        // An older node sends no health: none reads back.
        assert_eq!(
            (bravo.load, bravo.fs.len(), document.node.load),
            (None, 0, None)
        );
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
