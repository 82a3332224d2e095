//! What goes over port 5000 between real nodes and hand-made peers: a v1
//! peer's kept-open connection and its leave, a peer that only listens, and
//! input of every bad kind, which is refused without harm.

use std::io::{Read, Write};
use std::time::Duration;

use crate::util::{
    Block, Node, accept_within, back_online, connect_from, fake_peer, offline, received, send_once,
    wait_listening,
};

const WAIT: Duration = Duration::from_secs(10);

#[test]
fn legacy_messages_print_and_bad_input_is_rejected_without_harm() {
    let net = Block::take();
    let node = Node::on(&net.ip(1), &[], &[]);
    wait_listening(&node);
    let target = net.addr(1);
    let target = target.as_str();

    // The Python original: a bare object, no newline, then close.
    send_once(&net.ip(5), target, br#"{"cpu": 12.5, "memory": 40.3}"#);
    node.expect_line(&received(&net.ip(5), "12.5", "40.3"), WAIT);

    // Garbage of every kind, each from its own source address.
    let bad: Vec<(String, Vec<u8>, &str)> = vec![
        (net.ip(10), b"hello world\n".to_vec(), "invalid_json"),
        (net.ip(11), b"\xff\xfe\xfd\n".to_vec(), "not_utf8"),
        (
            net.ip(12),
            br#"{"cpu": NaN, "memory": 1}"#.to_vec(),
            "invalid_json",
        ),
        (
            net.ip(13),
            br#"{"cpu": 101, "memory": 1}"#.to_vec(),
            "out_of_range",
        ),
        (
            net.ip(14),
            br#"{"cpu": "5", "memory": 1}"#.to_vec(),
            "bad_field",
        ),
        (net.ip(15), br#"{"memory": 1}"#.to_vec(), "missing_field"),
        (net.ip(16), vec![b'x'; 70 * 1024], "too_large"),
        (
            net.ip(17),
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            "invalid_json",
        ),
        (
            net.ip(18),
            br#"{"v":2,"type":"status"}"#.to_vec(),
            "unsupported_version",
        ),
    ];
    for (from, bytes, _) in &bad {
        let mut stream = connect_from(from, target);
        // The node may close on us mid-way (too_large): that is fine.
        let _ = stream.write_all(bytes);
    }
    for (from, _, reason) in &bad {
        node.expect_stderr(&format!("rejected message from {from}:"), WAIT);
        node.expect_stderr(&format!("[{reason};"), WAIT);
    }
    // Still alive and still printing good statuses; nothing bad was printed.
    send_once(&net.ip(6), target, br#"{"cpu": 1.0, "memory": 2.0}"#);
    node.expect_line(&received(&net.ip(6), "1.0", "2.0"), WAIT);
    for (from, _, _) in &bad {
        assert!(
            !node.lines().iter().any(|l| l.contains(from.as_str())),
            "bad input from {from} printed: {:?}",
            node.lines()
        );
    }
}

/// A v1 receiver (it greets each connection) keeps one connection, sees seq
/// grow, and gets a leave.
#[test]
fn a_v1_peer_gets_statuses_on_one_kept_open_connection_and_a_leave() {
    let net = Block::take();
    let peer = fake_peer(&net.addr(2));
    let mut node = Node::on(
        &net.ip(1),
        &[&net.ip(2)],
        &["--interval", "200ms", "--name", "node-a"],
    );
    let mut conn = accept_within(&peer, WAIT, &node);
    conn.write_all(b"{\"v\":1,\"type\":\"hello\"}\n")
        .expect("hello");
    conn.set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    let mut reader = std::io::BufReader::new(conn);
    let mut seqs = Vec::new();
    let mut line = String::new();
    while seqs.len() < 4 {
        line.clear();
        std::io::BufRead::read_line(&mut reader, &mut line).expect("status line");
        assert!(line.ends_with('\n'));
        let message: serde_json::Value = serde_json::from_str(&line).expect("json");
        assert_eq!(message["v"], 1);
        assert_eq!(message["type"], "status");
        assert_eq!(message["node"], "node-a");
        assert_eq!(message["port"], 5000);
        assert_eq!(message["interval_ms"], 200);
        seqs.push(message["seq"].as_u64().expect("seq"));
    }
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
    node.signal("TERM");
    assert_eq!(
        node.wait_exit(Duration::from_secs(5))
            .and_then(|s| s.code()),
        Some(0)
    );
    let mut rest = String::new();
    let _ = reader.read_to_string(&mut rest);
    let last = rest.lines().last().unwrap_or_default();
    let message: serde_json::Value = serde_json::from_str(last).expect("leave json");
    assert_eq!(message["type"], "leave", "{rest}");
    assert!(message["seq"].as_u64() > seqs.last().copied());
}

#[test]
fn a_send_only_peer_is_online_while_it_accepts_and_offline_when_it_refuses() {
    let net = Block::take();
    let peer_ip = net.ip(2);
    // A listen-only peer: it never sends to us. Our accepted connection is its sign of life.
    let peer = fake_peer(&net.addr(2));
    let node = Node::on(&net.ip(1), &[&peer_ip], &["--interval", "300ms"]);
    let mut conn = accept_within(&peer, WAIT, &node);
    conn.write_all(b"{\"v\":1,\"type\":\"hello\"}\n")
        .expect("hello");
    // Longer than T (0.9 s): still no offline.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        !node.lines().iter().any(|l| l.contains("offline")),
        "{:?}",
        node.lines()
    );
    // It goes away: connection closed, reconnect refused -> offline at once.
    drop(peer);
    drop(conn);
    node.expect_line(&offline(&peer_ip), WAIT);
    // Refused (the reconnect) or reset (our unread status), both hard signals.
    node.expect_stderr(&format!("peer {peer_ip} offline: connection re"), WAIT);
    // Back: accepted again.
    let peer = fake_peer(&net.addr(2));
    let _conn = accept_within(&peer, WAIT, &node);
    node.expect_line(&back_online(&peer_ip), WAIT);
}
