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
use crate::proto::health::Health;
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
    if let Some(sample) = &snapshot.own {
        register_own_health(&mut registry, &sample.health, unix);
    }

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
    let health = HealthFamilies::default();
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
        // The health is as of the last status: its uptime counts from then.
        let reported = peer
            .last_status
            .map_or(unix, |at| unix - now.duration_since(at).as_secs_f64());
        health.add(&labels, &peer.health, reported);
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
    health.register(&mut registry);

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

/// The peers' health metrics (DESIGN.md "Host health"), in base units: a
/// series only for what the peer reported, so an older peer or a host
/// without swap has none rather than a false zero. Filesystems add a
/// `mountpoint` label: at most `MAX_FILESYSTEMS` per peer.
#[derive(Default)]
struct HealthFamilies {
    load1: Family<Labels, FloatGauge>,
    load5: Family<Labels, FloatGauge>,
    load15: Family<Labels, FloatGauge>,
    cpus: Family<Labels, Gauge<i64>>,
    swap: Family<Labels, FloatGauge>,
    fs_used: Family<Labels, FloatGauge>,
    fs_size: Family<Labels, Gauge<i64>>,
    receive: Family<Labels, Counter<u64>>,
    transmit: Family<Labels, Counter<u64>>,
    boot: Family<Labels, FloatGauge>,
}

impl HealthFamilies {
    /// One peer's series; `reported` is when its status was sent (unix s).
    fn add(&self, labels: &Labels, health: &Health, reported: f64) {
        if let Some([one, five, fifteen]) = health.load {
            self.load1.get_or_create(labels).set(one);
            self.load5.get_or_create(labels).set(five);
            self.load15.get_or_create(labels).set(fifteen);
        }
        if let Some(cpus) = health.cpus {
            self.cpus.get_or_create(labels).set(i64::from(cpus));
        }
        if let Some(swap) = health.swap {
            self.swap.get_or_create(labels).set(swap / 100.0);
        }
        for fs in &health.fs {
            let mut labels = labels.clone();
            labels.push(("mountpoint".to_string(), label(&fs.mount)));
            self.fs_used.get_or_create(&labels).set(fs.used / 100.0);
            self.fs_size.get_or_create(&labels).set(bytes(fs.size));
        }
        if let Some(rx) = health.net_rx {
            self.receive.get_or_create(labels).inc_by(rx);
        }
        if let Some(tx) = health.net_tx {
            self.transmit.get_or_create(labels).inc_by(tx);
        }
        if let Some(uptime) = health.uptime_s {
            self.boot
                .get_or_create(labels)
                .set(reported - uptime as f64);
        }
    }

    fn register(self, registry: &mut Registry) {
        let of = "last reported by the peer";
        registry.register(
            "peer_load1",
            format!("1 minute load average {of}"),
            self.load1,
        );
        registry.register(
            "peer_load5",
            format!("5 minute load average {of}"),
            self.load5,
        );
        registry.register(
            "peer_load15",
            format!("15 minute load average {of}"),
            self.load15,
        );
        registry.register("peer_cpus", format!("Logical CPUs {of}"), self.cpus);
        registry.register(
            "peer_swap_ratio",
            format!("Swap in use {of}, 0 to 1 (absent without swap)"),
            self.swap,
        );
        registry.register(
            "peer_filesystem_used_ratio",
            format!("Space used on a local filesystem {of}, 0 to 1"),
            self.fs_used,
        );
        registry.register_with_unit(
            "peer_filesystem_size",
            format!("Size of a local filesystem {of}"),
            Unit::Bytes,
            self.fs_size,
        );
        registry.register_with_unit(
            "peer_network_receive",
            format!("Bytes received since boot on non-loopback interfaces, {of}"),
            Unit::Bytes,
            self.receive,
        );
        registry.register_with_unit(
            "peer_network_transmit",
            format!("Bytes sent since boot on non-loopback interfaces, {of}"),
            Unit::Bytes,
            self.transmit,
        );
        registry.register_with_unit(
            "peer_boot_time",
            "Boot time of the peer's host since the unix epoch, from its uptime",
            Unit::Seconds,
            self.boot,
        );
    }
}

/// This node's host health as `p2pmon_node_*`, unlabelled (filesystems by
/// `mountpoint`), each metric only where the sample has it.
fn register_own_health(registry: &mut Registry, health: &Health, unix: f64) {
    let float = |value: f64| {
        let gauge = FloatGauge::default();
        gauge.set(value);
        gauge
    };
    let counter = |value: u64| {
        let counter = Counter::<u64>::default();
        counter.inc_by(value);
        counter
    };
    let of = "of this node's host";
    if let Some([one, five, fifteen]) = health.load {
        registry.register(
            "node_load1",
            format!("1 minute load average {of}"),
            float(one),
        );
        registry.register(
            "node_load5",
            format!("5 minute load average {of}"),
            float(five),
        );
        registry.register(
            "node_load15",
            format!("15 minute load average {of}"),
            float(fifteen),
        );
    }
    if let Some(cpus) = health.cpus {
        let gauge = Gauge::<i64>::default();
        gauge.set(i64::from(cpus));
        registry.register("node_cpus", format!("Logical CPUs {of}"), gauge);
    }
    if let Some(swap) = health.swap {
        registry.register(
            "node_swap_ratio",
            format!("Swap in use {of}, 0 to 1"),
            float(swap / 100.0),
        );
    }
    if !health.fs.is_empty() {
        let used = Family::<Labels, FloatGauge>::default();
        let size = Family::<Labels, Gauge<i64>>::default();
        for fs in &health.fs {
            let labels = vec![("mountpoint".to_string(), label(&fs.mount))];
            used.get_or_create(&labels).set(fs.used / 100.0);
            size.get_or_create(&labels).set(bytes(fs.size));
        }
        registry.register(
            "node_filesystem_used_ratio",
            format!("Space used on a local filesystem {of}, 0 to 1"),
            used,
        );
        registry.register_with_unit(
            "node_filesystem_size",
            format!("Size of a local filesystem {of}"),
            Unit::Bytes,
            size,
        );
    }
    if let Some(rx) = health.net_rx {
        registry.register_with_unit(
            "node_network_receive",
            format!("Bytes received since boot on non-loopback interfaces {of}"),
            Unit::Bytes,
            counter(rx),
        );
    }
    if let Some(tx) = health.net_tx {
        registry.register_with_unit(
            "node_network_transmit",
            format!("Bytes sent since boot on non-loopback interfaces {of}"),
            Unit::Bytes,
            counter(tx),
        );
    }
    if let Some(uptime) = health.uptime_s {
        registry.register_with_unit(
            "node_boot_time",
            format!("Boot time {of} since the unix epoch, from its uptime"),
            Unit::Seconds,
            float(unix - uptime as f64),
        );
    }
}

/// Bytes as a gauge's integer (a size past i64 is no real disk).
fn bytes(size: u64) -> i64 {
    i64::try_from(size).unwrap_or(i64::MAX)
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
    use crate::http::snapshot::{PeerSnapshot, StatsSnapshot};
    use crate::node::sample::Sample;
    use crate::peers::{Origin, PeerId};
    use crate::proto::health::Filesystem;
    use std::time::Duration;

    fn health() -> Health {
        Health {
            load: Some([0.5, 1.25, 2.0]),
            cpus: Some(4),
            swap: Some(12.5),
            fs: vec![
                Filesystem {
                    mount: "/srv \"x\"\\y".into(),
                    used: 90.0,
                    size: 1 << 40,
                },
                Filesystem {
                    mount: "/".into(),
                    used: 71.3,
                    size: 1 << 30,
                },
            ],
            net_rx: Some(10_000_000_000),
            net_tx: Some(20),
            uptime_s: Some(3600),
        }
    }

    fn snapshot(now: Instant, own: Health, peers: Vec<(u8, Health)>) -> Snapshot {
        let peer = |last: u8, health: Health| PeerSnapshot {
            id: PeerId::new(std::net::IpAddr::from([10, 0, 0, last]), 5000),
            name: Some(format!("n\"{last}")),
            configured: true,
            state: PeerState::Online,
            since: now,
            last_status: Some(now),
            last_contact: None,
            interval: Duration::from_secs(5),
            legacy: false,
            cpu: Some(1.0),
            memory: Some(2.0),
            health,
            last_error: None,
            flapping: false,
            changes_total: 0,
            flaps: 0,
            origin: Origin::Configured,
            known_at: now,
        };
        Snapshot {
            name: "alpha".into(),
            listening: Vec::new(),
            started: now,
            cut_off: false,
            own: Some(Sample {
                cpu: 1.0,
                memory: 2.0,
                health: own,
            }),
            stats: StatsSnapshot {
                received: 0,
                sent: 0,
                open_connections: 0,
                rejected: Default::default(),
            },
            output_dropped: 0,
            peers: peers.into_iter().map(|(last, h)| peer(last, h)).collect(),
            alerts: Default::default(),
        }
    }

    /// The sample lines of `text` whose name starts with `prefix`.
    fn samples<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
        text.lines()
            .filter(|line| line.starts_with(prefix))
            .collect()
    }

    #[test]
    fn health_metrics_are_in_base_units_labelled_and_escaped() {
        let now = Instant::now();
        let text = prometheus_text(&metrics_text(
            &snapshot(now, health(), vec![(2, health())]),
            now,
        ));
        let labels = r#"peer="10.0.0.2",name="n\"2""#;
        for expected in [
            format!("p2pmon_peer_load1{{{labels}}} 0.5"),
            format!("p2pmon_peer_load5{{{labels}}} 1.25"),
            format!("p2pmon_peer_load15{{{labels}}} 2.0"),
            format!("p2pmon_peer_cpus{{{labels}}} 4"),
            format!("p2pmon_peer_swap_ratio{{{labels}}} 0.125"),
            format!(
                r#"p2pmon_peer_filesystem_used_ratio{{{labels},mountpoint="/srv \"x\"\\y"}} 0.9"#
            ),
            format!(r#"p2pmon_peer_filesystem_size_bytes{{{labels},mountpoint="/"}} 1073741824"#),
            format!("p2pmon_peer_network_receive_bytes_total{{{labels}}} 10000000000"),
            format!("p2pmon_peer_network_transmit_bytes_total{{{labels}}} 20"),
            "p2pmon_node_load1 0.5".to_string(),
            "p2pmon_node_cpus 4".to_string(),
            "p2pmon_node_swap_ratio 0.125".to_string(),
            r#"p2pmon_node_filesystem_used_ratio{mountpoint="/"} 0.713"#.to_string(),
            "p2pmon_node_network_receive_bytes_total 10000000000".to_string(),
            "# TYPE p2pmon_peer_network_receive_bytes_total counter".to_string(),
            "# TYPE p2pmon_peer_boot_time_seconds gauge".to_string(),
            "# TYPE p2pmon_node_network_transmit_bytes_total counter".to_string(),
        ] {
            assert!(
                text.lines().any(|line| line == expected),
                "{expected}\n{text}"
            );
        }
        // Boot time is now less the uptime, for the peer (as of its last
        // status) and the node.
        let unix = unix_seconds_f64();
        for prefix in [
            "p2pmon_peer_boot_time_seconds{",
            "p2pmon_node_boot_time_seconds ",
        ] {
            let lines = samples(&text, prefix);
            assert_eq!(lines.len(), 1, "{prefix}\n{text}");
            let value: f64 = lines[0]
                .rsplit(' ')
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_default();
            assert!((unix - 3600.0 - value).abs() < 5.0, "{}", lines[0]);
        }
    }

    #[test]
    fn only_reported_health_is_exported() {
        let now = Instant::now();
        let partial = Health {
            load: Some([1.0, 1.0, 1.0]),
            ..Health::default()
        };
        let text = prometheus_text(&metrics_text(
            &snapshot(
                now,
                Health::default(),
                vec![(2, Health::default()), (3, partial)],
            ),
            now,
        ));
        assert_eq!(samples(&text, "p2pmon_peer_load1{").len(), 1, "{text}");
        assert!(samples(&text, "p2pmon_peer_load1{")[0].contains("10.0.0.3"));
        for absent in [
            "p2pmon_peer_cpus{",
            "p2pmon_peer_swap_ratio{",
            "p2pmon_peer_filesystem_",
            "p2pmon_peer_network_",
            "p2pmon_peer_boot_time_seconds{",
            "p2pmon_node_load",
            "p2pmon_node_filesystem",
            "p2pmon_node_boot",
        ] {
            assert!(samples(&text, absent).is_empty(), "{absent}\n{text}");
        }
    }

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
