//! `GET /metrics`: what the node knows as Prometheus metrics, rendered from
//! a [`Snapshot`] with prometheus-client, which gets HELP, TYPE and number
//! formatting right but (0.24) writes label values raw: text from peers is
//! escaped here by `names`. Prometheus servers ask for OpenMetrics and get
//! prometheus-client's own output; everyone else gets it converted to the
//! classic text format ([`prometheus_text`]). One label set per peer, so the
//! cardinality is bounded by `MAX_PEERS`.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

use crate::http::snapshot::Snapshot;
use crate::names;
use crate::peers::{PeerId, PeerState, Subject};
use crate::time::unix_seconds_f64;

type Labels = Vec<(String, String)>;
type FloatGauge = Gauge<f64, AtomicU64>;

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
    if let Some(sample) = &snapshot.own {
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
    for peer in snapshot.peers_by_address() {
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
        if let Some(at) = peer.last_seen() {
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

    register_alerts(&mut registry, snapshot);

    let mut text = String::new();
    if encode(&mut text, &registry).is_err() {
        text.clear();
    }
    text
}

/// `p2pmon_peer_alert{peer,name,rule}` and `p2pmon_node_alert{rule}`: 1 per
/// alert firing now; a cleared alert's series goes (as Prometheus's own
/// `ALERTS`), so the cardinality is bounded by the firing alerts, at most
/// `MAX_ALERT_RULES` per peer.
fn register_alerts(registry: &mut Registry, snapshot: &Snapshot) {
    let peer_alert = Family::<Labels, Gauge<i64>>::default();
    let node_alert = Family::<Labels, Gauge<i64>>::default();
    let names: HashMap<PeerId, &str> = snapshot
        .peers
        .iter()
        .map(|peer| (peer.id, peer.name.as_deref().unwrap_or_default()))
        .collect();
    for (subject, firing) in &snapshot.alerts {
        for alert in firing {
            let rule = ("rule".to_string(), label(&alert.rule));
            match subject {
                Subject::Node => {
                    node_alert.get_or_create(&vec![rule]).set(1);
                }
                Subject::Peer(id) => {
                    let name = names.get(id).copied().unwrap_or_default();
                    let labels = vec![
                        ("peer".to_string(), label(&id.to_string())),
                        ("name".to_string(), label(name)),
                        rule,
                    ];
                    peer_alert.get_or_create(&labels).set(1);
                }
            }
        }
    }
    registry.register(
        "peer_alert",
        "1 while the alert rule fires for the peer",
        peer_alert,
    );
    registry.register(
        "node_alert",
        "1 while the alert rule fires for this node",
        node_alert,
    );
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
