//! What the node knows, as the status API's JSON and as Prometheus metrics.
//! Both are rendered from one consistent snapshot: [`Snapshot::take`] (and
//! [`HistorySnapshot::take`]) copy the plain data under the shared lock, in
//! microseconds; the rendering, which takes milliseconds at 1,024 peers,
//! runs after the lock is released, so no request holds up the listener or
//! the sender. Both use DESIGN.md's field names (`peer`, `name`, `state`,
//! `cpu`, `memory`, `last_seen_s`, ...), and cost nothing until someone asks.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};
use serde_json::{Value, json};
use std::sync::atomic::AtomicU64;

use crate::limits::{HISTORY_STEP, HISTORY_WINDOW};
use crate::names;
use crate::node::View;
use crate::node::sample::Sample;
use crate::peers::{Origin, Peer, PeerId, PeerState};
use crate::report::history::{History, Point, Ring};
use crate::time::unix_seconds;
use crate::time::unix_seconds_f64;

type Labels = Vec<(String, String)>;
type FloatGauge = Gauge<f64, AtomicU64>;

/// What `/status` and `/metrics` say, copied out of the shared state.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub name: String,
    pub listening: Vec<String>,
    pub started: Instant,
    pub cut_off: bool,
    pub own: Option<Sample>,
    pub stats: StatsSnapshot,
    pub output_dropped: u64,
    /// In table order; the renderers sort them.
    pub peers: Vec<PeerSnapshot>,
}

/// The node's counters.
#[derive(Debug, Clone)]
pub struct StatsSnapshot {
    pub received: u64,
    pub sent: u64,
    pub open_connections: u64,
    pub rejected: BTreeMap<&'static str, u64>,
}

/// One peer's fields that `/status` and `/metrics` show (named as in [`Peer`]).
#[derive(Debug, Clone)]
pub struct PeerSnapshot {
    pub id: PeerId,
    pub name: Option<String>,
    pub configured: bool,
    pub state: PeerState,
    pub since: Instant,
    pub last_status: Option<Instant>,
    pub last_contact: Option<Instant>,
    pub interval: Duration,
    pub legacy: bool,
    pub cpu: Option<f64>,
    pub memory: Option<f64>,
    pub last_error: Option<String>,
    pub flapping: bool,
    pub changes_total: u64,
    pub flaps: u64,
    pub origin: Origin,
    pub known_at: Instant,
}

impl Snapshot {
    /// Copies what the answers need; call it with the lock held, render after.
    pub fn take(shared: &View<'_>) -> Snapshot {
        Snapshot {
            name: shared.name.to_string(),
            listening: shared.listening.to_vec(),
            started: shared.table.started(),
            cut_off: shared.table.is_cut_off(),
            own: shared.own,
            stats: StatsSnapshot {
                received: shared.stats.received,
                sent: shared.stats.sent,
                open_connections: shared.stats.open_connections,
                rejected: shared.stats.rejected.clone(),
            },
            output_dropped: shared.output_dropped,
            peers: shared.table.iter().map(PeerSnapshot::of).collect(),
        }
    }
}

impl PeerSnapshot {
    fn of(peer: &Peer) -> PeerSnapshot {
        PeerSnapshot {
            id: peer.id,
            name: peer.name.clone(),
            configured: peer.membership.configured,
            state: peer.state,
            since: peer.since,
            last_status: peer.signals.last_status,
            last_contact: peer.signals.last_contact,
            interval: peer.interval,
            legacy: peer.incarnation.legacy,
            cpu: peer.cpu,
            memory: peer.memory,
            last_error: peer.signals.last_error.clone(),
            flapping: peer.flap.flapping,
            changes_total: peer.flap.changes_total,
            flaps: peer.flap.flaps,
            origin: peer.membership.origin,
            known_at: peer.membership.known_at,
        }
    }
}

/// What `/history?since=` says, copied out of the shared state: only the
/// points asked for.
#[derive(Debug, Clone)]
pub struct HistorySnapshot {
    pub now: u64,
    pub since: u64,
    pub name: String,
    pub own: Vec<Point>,
    /// In table order; the renderer sorts them.
    pub peers: Vec<(PeerId, Vec<Point>)>,
}

impl HistorySnapshot {
    /// Copies the points of the last [`HISTORY_WINDOW`] not older than
    /// `since` (unix seconds); call it with the lock held, render after.
    pub fn take(shared: &View<'_>, since: u64) -> HistorySnapshot {
        let now = unix_seconds();
        let since = since.max(History::window_start(now));
        let points = |ring: Option<&Ring>| -> Vec<Point> {
            ring.into_iter()
                .flat_map(|ring| ring.points_since(since))
                .collect()
        };
        HistorySnapshot {
            now,
            since,
            name: shared.name.to_string(),
            own: points(shared.history.own()),
            peers: shared
                .table
                .iter()
                .map(|peer| (peer.id, points(shared.history.peer(&peer.id))))
                .collect(),
        }
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// Peers in a stable order (by address).
fn sorted_peers(snapshot: &Snapshot) -> Vec<&PeerSnapshot> {
    let mut peers: Vec<&PeerSnapshot> = snapshot.peers.iter().collect();
    peers.sort_by_key(|peer| peer.id);
    peers
}

fn last_seen(peer: &PeerSnapshot) -> Option<Instant> {
    match (peer.last_status, peer.last_contact) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// The JSON of `GET /status`.
pub fn status_json(snapshot: &Snapshot, now: Instant) -> Value {
    let age = |at: Instant| round1(now.duration_since(at).as_secs_f64());
    let peers: Vec<Value> = sorted_peers(snapshot)
        .into_iter()
        .map(|peer| {
            json!({
                "peer": peer.id.to_string(),
                "name": peer.name,
                "state": peer.state.as_str(),
                "since_s": age(peer.since),
                "last_seen_s": last_seen(peer).map(age),
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
            "name": snapshot.name,
            "listen": snapshot.listening,
            "version": env!("CARGO_PKG_VERSION"),
            "uptime_s": age(snapshot.started),
            "cpu": snapshot.own.map(|s| round1(s.cpu)),
            "memory": snapshot.own.map(|s| round1(s.memory)),
            "cut_off": snapshot.cut_off,
            "messages_received": snapshot.stats.received,
            "messages_sent": snapshot.stats.sent,
            "connections_open": snapshot.stats.open_connections,
            "rejected": snapshot.stats.rejected,
        },
        "peers": peers,
    })
}

/// The JSON of `GET /history`: this node's and every peer's points of the
/// last [`HISTORY_WINDOW`], each `[unix_s, cpu, memory, state]` (cpu and
/// memory null while there were no statuses), oldest first. `since` (unix
/// seconds, in the snapshot) leaves out older points, so a page polling it
/// only fetches what changed: the point of the current step, which may still
/// change, and newer.
pub fn history_json(snapshot: &HistorySnapshot) -> Value {
    let points = |points: &[Point]| -> Vec<Value> {
        points
            .iter()
            .map(|point| json!([point.at, point.cpu(), point.memory(), point.state.as_str()]))
            .collect()
    };
    let mut sorted: Vec<&(PeerId, Vec<Point>)> = snapshot.peers.iter().collect();
    sorted.sort_by_key(|(id, _)| *id);
    let peers: Vec<Value> = sorted
        .into_iter()
        .map(|(id, ring)| {
            json!({
                "peer": id.to_string(),
                "points": points(ring),
            })
        })
        .collect();
    json!({
        "now": snapshot.now,
        "since": snapshot.since,
        "window_s": HISTORY_WINDOW.as_secs(),
        "step_s": HISTORY_STEP.as_secs(),
        "node": { "name": snapshot.name, "points": points(&snapshot.own) },
        "peers": peers,
    })
}

/// A label value as the exposition format wants it: prometheus-client 0.24
/// writes label values raw, so text from peers is escaped here.
fn label(text: &str) -> String {
    names::for_prometheus_label(text).into_owned()
}

/// The Prometheus text of `GET /metrics`.
pub fn metrics_text(snapshot: &Snapshot, now: Instant) -> String {
    let mut registry = Registry::with_prefix("p2pmon");
    let unix = unix_seconds_f64();

    let info = Info::new(vec![(
        "version".to_string(),
        env!("CARGO_PKG_VERSION").to_string(),
    )]);
    registry.register("build", "Version of this p2pmon build", info);
    let start = FloatGauge::default();
    start.set(unix - now.duration_since(snapshot.started).as_secs_f64());
    registry.register_with_unit(
        "process_start_time",
        "Start time of the process since the unix epoch",
        Unit::Seconds,
        start,
    );

    let own_cpu = FloatGauge::default();
    let own_memory = FloatGauge::default();
    if let Some(sample) = snapshot.own {
        own_cpu.set(sample.cpu / 100.0);
        own_memory.set(sample.memory / 100.0);
    }
    registry.register("node_cpu_ratio", "CPU in use on this node, 0 to 1", own_cpu);
    registry.register(
        "node_memory_ratio",
        "Memory in use on this node, 0 to 1",
        own_memory,
    );

    let received = Counter::<u64>::default();
    received.inc_by(snapshot.stats.received);
    registry.register(
        "messages_received",
        "Valid messages received from peers",
        received,
    );
    let sent = Counter::<u64>::default();
    sent.inc_by(snapshot.stats.sent);
    registry.register(
        "messages_sent",
        "Statuses handed to the kernel for peers",
        sent,
    );
    let open = Gauge::<i64>::default();
    open.set(snapshot.stats.open_connections as i64);
    registry.register("connections_open", "Inbound connections open now", open);
    let cut_off = Gauge::<i64>::default();
    cut_off.set(i64::from(snapshot.cut_off));
    registry.register(
        "cut_off",
        "1 while this node has lost contact with all its peers",
        cut_off,
    );

    let rejected = Family::<Labels, Counter<u64>>::default();
    for (reason, count) in &snapshot.stats.rejected {
        rejected
            .get_or_create(&vec![("reason".to_string(), (*reason).to_string())])
            .inc_by(*count);
    }
    registry.register(
        "rejected",
        "Messages and connections rejected, by reason",
        rejected,
    );
    let dropped = Counter::<u64>::default();
    dropped.inc_by(snapshot.output_dropped);
    registry.register(
        "output_lines_dropped",
        "Event lines dropped because stdout did not keep up",
        dropped,
    );

    let up = Family::<Labels, Gauge<i64>>::default();
    let cpu = Family::<Labels, FloatGauge>::default();
    let memory = Family::<Labels, FloatGauge>::default();
    let seen = Family::<Labels, FloatGauge>::default();
    let changes = Family::<Labels, Counter<u64>>::default();
    let flapping = Family::<Labels, Gauge<i64>>::default();
    // One label set per peer: cardinality is bounded by MAX_PEERS.
    for peer in sorted_peers(snapshot) {
        let labels = vec![
            ("peer".to_string(), label(&peer.id.to_string())),
            (
                "name".to_string(),
                label(peer.name.as_deref().unwrap_or_default()),
            ),
        ];
        up.get_or_create(&labels)
            .set(i64::from(peer.state == PeerState::Online));
        if let Some(value) = peer.cpu {
            cpu.get_or_create(&labels).set(value / 100.0);
        }
        if let Some(value) = peer.memory {
            memory.get_or_create(&labels).set(value / 100.0);
        }
        if let Some(at) = last_seen(peer) {
            seen.get_or_create(&labels)
                .set(unix - now.duration_since(at).as_secs_f64());
        }
        changes.get_or_create(&labels).inc_by(peer.changes_total);
        flapping
            .get_or_create(&labels)
            .set(i64::from(peer.flapping));
    }
    registry.register("peer_up", "1 if the peer is online, 0 otherwise", up);
    registry.register(
        "peer_cpu_ratio",
        "CPU in use last reported by the peer, 0 to 1",
        cpu,
    );
    registry.register(
        "peer_memory_ratio",
        "Memory in use last reported by the peer, 0 to 1",
        memory,
    );
    registry.register_with_unit(
        "peer_last_seen_timestamp",
        "Last sign of life from the peer, since the unix epoch",
        Unit::Seconds,
        seen,
    );
    registry.register(
        "peer_state_changes",
        "State changes of the peer (online, offline, left)",
        changes,
    );
    registry.register(
        "peer_flapping",
        "1 while the peer is muted for flapping",
        flapping,
    );

    let mut text = String::new();
    if encode(&mut text, &registry).is_err() {
        text.clear();
    }
    text
}

/// Converts prometheus-client's OpenMetrics text to the classic Prometheus
/// text format (0.0.4) that `promtool check metrics`, curl users and older
/// scrapers expect: counter and info families are named like their samples
/// (`x_total`, `x_info`, info becomes a gauge), `# UNIT` and `# EOF` go.
pub fn prometheus_text(openmetrics: &str) -> String {
    let mut renamed = std::collections::HashMap::new();
    for line in openmetrics.lines() {
        let mut words = line.split(' ');
        if let (Some("#"), Some("TYPE"), Some(name), Some(kind)) =
            (words.next(), words.next(), words.next(), words.next())
        {
            match kind {
                "counter" => renamed.insert(name.to_string(), (format!("{name}_total"), "counter")),
                "info" => renamed.insert(name.to_string(), (format!("{name}_info"), "gauge")),
                _ => None,
            };
        }
    }
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let mut parts = line.splitn(4, ' ');
        if let (Some("#"), Some(keyword @ ("HELP" | "TYPE")), Some(name), rest) =
            (parts.next(), parts.next(), parts.next(), parts.next())
            && let Some((new_name, kind)) = renamed.get(name)
        {
            let rest = if keyword == "TYPE" {
                *kind
            } else {
                rest.unwrap_or("")
            };
            out.push_str(&format!("# {keyword} {new_name} {rest}\n"));
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openmetrics_becomes_classic_prometheus_text() {
        let input = "# HELP p_build Version.\n# TYPE p_build info\np_build_info{version=\"1\"} 1\n\
                     # HELP p_sent Sent.\n# TYPE p_sent counter\np_sent_total 4\n\
                     # HELP p_t Time.\n# TYPE p_t gauge\n# UNIT p_t seconds\np_t 1.5\n# EOF\n";
        assert_eq!(
            prometheus_text(input),
            "# HELP p_build_info Version.\n# TYPE p_build_info gauge\np_build_info{version=\"1\"} 1\n\
             # HELP p_sent_total Sent.\n# TYPE p_sent_total counter\np_sent_total 4\n\
             # HELP p_t Time.\n# TYPE p_t gauge\np_t 1.5\n"
        );
    }
}
