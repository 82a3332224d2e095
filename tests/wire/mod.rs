//! What a healthy cluster puts on the wire: statuses and their ACKs, and
//! nothing else while every status is on time (DESIGN.md, "Probing only when
//! a status is late"). Counted per socket from the kernel's own TCP counters
//! (`ss -tin`: `segs_out`), on the test's own loopback block.

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::util::{Block, Node, status_from, times_of};

const WAIT: Duration = Duration::from_secs(15);

/// Segments sent so far by every established TCP socket between two of
/// `ips`, by (local, peer) address.
fn segments_out(ips: &[&str]) -> HashMap<(String, String), u64> {
    let output = Command::new("ss")
        .args(["-H", "-t", "-i", "-n", "state", "established"])
        .output()
        .expect("ss runs (iproute2)");
    assert!(output.status.success(), "ss failed: {output:?}");
    let text = String::from_utf8_lossy(&output.stdout);
    let ours = |addr: &str| {
        addr.rsplit_once(':')
            .is_some_and(|(ip, _)| ips.contains(&ip))
    };
    let mut sockets = HashMap::new();
    let mut current: Option<(String, String)> = None;
    for line in text.lines() {
        if !line.starts_with(char::is_whitespace) {
            // "Recv-Q Send-Q Local:Port Peer:Port" (the state is filtered out).
            let fields: Vec<&str> = line.split_whitespace().collect();
            current = match fields.as_slice() {
                [_, _, local, peer, ..] if ours(local) && ours(peer) => {
                    Some((local.to_string(), peer.to_string()))
                }
                _ => None,
            };
            continue;
        }
        let Some(key) = current.take() else { continue };
        let segs = line
            .split_whitespace()
            .find_map(|field| field.strip_prefix("segs_out:"))
            .and_then(|n| n.parse().ok())
            .expect("ss -i shows segs_out");
        sockets.insert(key, segs);
    }
    sockets
}

#[test]
#[ignore = "needs ss (iproute2) to read each socket's TCP segment counters"]
fn a_healthy_kept_open_connection_carries_statuses_and_acks_only() {
    let net = Block::take();
    let owned = net.ips([1, 2]);
    let ips = owned.each_ref().map(String::as_str);
    // 2 s: long enough that a connection idle for a second between two
    // statuses is probed under the old rules (keepalive after 1 s idle).
    let slow = ["--interval", "2s"];
    let a = Node::on(ips[0], &ips, &slow);
    let b = Node::on(ips[1], &ips, &slow);
    for (node, other) in [(&a, ips[1]), (&b, ips[0])] {
        assert!(
            node.wait_line_from(0, WAIT, status_from(other)).is_some(),
            "never heard {other}:\n{}",
            node.stderr()
        );
    }
    // Past the handshakes and hellos: only the steady state is counted.
    std::thread::sleep(Duration::from_millis(2500));
    let from = Instant::now();
    let before = segments_out(&ips);
    // Four intervals.
    std::thread::sleep(Duration::from_millis(8000));
    let after = segments_out(&ips);
    let until = Instant::now();
    // Two kept-open connections (one each way), both ends on this host.
    assert_eq!(before.len(), 4, "{before:?}");
    let sockets = |counts: &HashMap<(String, String), u64>| {
        counts
            .keys()
            .cloned()
            .collect::<std::collections::BTreeSet<_>>()
    };
    assert_eq!(
        sockets(&before),
        sockets(&after),
        "a healthy connection stays open"
    );
    let segments: u64 = after
        .iter()
        .map(|(key, segs)| segs - before.get(key).copied().unwrap_or(0))
        .sum();
    let received = |node: &Node, other: &str| {
        times_of(node, status_from(other))
            .into_iter()
            .filter(|t| *t >= from && *t <= until)
            .count()
    };
    let statuses = received(&a, ips[1]) + received(&b, ips[0]);
    assert!(statuses >= 6, "{statuses} statuses in 8 s");
    let per_status = segments as f64 / statuses as f64;
    println!("healthy wire: {segments} segments for {statuses} statuses ({per_status:.2} each)");
    assert!(
        per_status <= 2.5,
        "{segments} segments for {statuses} statuses ({per_status:.2} each): more than statuses and their ACKs"
    );
}
