//! Adversarial tests: see `mod.rs` for the item list.
//!
//! The listener (issue 12, items 4-6): one connection flooding frames must
//! not starve the others or the timers; connections squatting the cap from
//! one address must not lock out a real peer; a stranger's declared interval
//! must not stretch the cut-off windows and mute verdicts.

use std::io::Write;
use std::net::TcpStream;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::util::{Block, Node, connect_from, largest_gap, offline, status_from, times_of};

const WAIT: Duration = Duration::from_secs(15);

/// A valid plaintext v1 status (no key: anyone may send one).
fn status(port: u16, seq: u64, interval_ms: u64) -> String {
    format!(
        "{{\"v\":1,\"type\":\"status\",\"node\":\"x\",\"port\":{port},\"boot\":1,\"seq\":{seq},\
         \"ts\":1,\"interval_ms\":{interval_ms},\"cpu\":1,\"memory\":2}}\n"
    )
}

/// Waits until every node has heard each of `peers` (its own address skipped).
fn wait_heard(nodes: &[(&Node, &str)], peers: &[&str]) {
    for (node, me) in nodes {
        for peer in peers.iter().filter(|peer| *peer != me) {
            assert!(
                node.wait_line_from(0, WAIT, status_from(peer)).is_some(),
                "{me} never heard {peer}:\n{}\n{}",
                node.lines().join("\n"),
                node.stderr()
            );
        }
    }
}

/// From `from`, sends `first`, then writes `filler` as fast as the node takes
/// it for `duration` (or until the node closes). Returns the bytes written.
fn flood(
    from: String,
    to: String,
    first: String,
    filler: &'static [u8],
    duration: Duration,
) -> JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut stream: TcpStream = connect_from(&from, &to);
        stream
            .set_write_timeout(Some(Duration::from_millis(200)))
            .expect("write timeout");
        if stream.write_all(first.as_bytes()).is_err() {
            return 0;
        }
        // Whole fillers only: a frame cut at a chunk's end would be invalid.
        let whole = (64 * 1024 / filler.len()) * filler.len();
        let chunk: Vec<u8> = filler.iter().copied().cycle().take(whole).collect();
        let deadline = Instant::now() + duration;
        let mut written = 0u64;
        while Instant::now() < deadline {
            match stream.write(&chunk) {
                Ok(n) => written += n as u64,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(_) => break,
            }
        }
        written
    })
}

#[test]
fn a_flood_on_one_connection_starves_neither_the_real_peers_nor_the_timers() {
    let net = Block::take();
    let ips = net.ips([1, 2, 3]);
    let ips = [ips[0].as_str(), ips[1].as_str(), ips[2].as_str()];
    let a = Node::on(ips[0], &ips, &[]);
    let b = Node::on(ips[1], &ips, &[]);
    let c = Node::on(ips[2], &ips, &[]);
    wait_heard(&[(&a, ips[0]), (&b, ips[1]), (&c, ips[2])], &ips);
    let started = Instant::now();
    let flood_for = Duration::from_secs(6);
    // One valid status each, then: empty lines; `{}` lines; valid statuses
    // back to back (never invalid, so never closed: only the budget helps).
    let flooders = [
        flood(
            net.ip(9),
            net.addr(1),
            status(5009, 0, 1000),
            b"\n",
            flood_for,
        ),
        flood(
            net.ip(10),
            net.addr(1),
            status(5010, 0, 1000),
            b"{}\n",
            flood_for,
        ),
        flood(
            net.ip(11),
            net.addr(1),
            status(5011, 0, 1000),
            status(5011, 1, 1000).leak().as_bytes(),
            flood_for,
        ),
    ];
    let written: Vec<u64> = flooders
        .into_iter()
        .map(|f| f.join().unwrap_or(0))
        .collect();
    let ended = Instant::now();
    println!("flood: {written:?} bytes written in {:?}", ended - started);
    for peer in [ips[1], ips[2]] {
        let gap = largest_gap(&times_of(&a, status_from(peer)), started, ended);
        println!("largest gap between statuses from {peer} during the flood: {gap:?}");
        assert!(
            gap <= Duration::from_millis(1800),
            "{peer}: {gap:?}\n{}",
            a.stderr()
        );
    }
    // (The flooders themselves go silent or close at the end: their verdicts
    // are theirs.)
    let verdicts = |node: &Node| -> Vec<String> {
        node.lines()
            .into_iter()
            .filter(|l| {
                let real = ips.iter().any(|ip| l.starts_with(&format!("Peer {ip} ")));
                (real && l.contains("offline")) || l.contains("Lost contact")
            })
            .collect()
    };
    assert!(verdicts(&a).is_empty(), "{:?}", verdicts(&a));
    assert!(verdicts(&b).is_empty(), "{:?}", verdicts(&b));
    assert!(verdicts(&c).is_empty(), "{:?}", verdicts(&c));
    // The invalid floods were cut short and counted.
    a.expect_stderr(&format!("rejected message from {}:", net.ip(9)), WAIT);
    a.expect_stderr(&format!("rejected message from {}:", net.ip(10)), WAIT);
    a.expect_stderr("[too_many_invalid;", WAIT);
}

#[test]
fn squatters_from_one_address_cannot_fill_the_connection_cap() {
    let net = Block::take();
    let ips = net.ips([1, 2]);
    let ips = [ips[0].as_str(), ips[1].as_str()];
    let squatter = net.ip(9);
    let a = Node::on(ips[0], &ips, &["--max-connections", "16"]);
    crate::util::wait_listening(&a);
    // 16 connections from one address, each sending one valid status
    // claiming a 1 h interval, then idle. (The table takes only
    // MAX_PEERS_PER_IP = 8 peers from one IP; the rest are refused, so their
    // connections stay strangers: both limits stand in the squatters' way.)
    let mut squatters = Vec::new();
    for n in 0..16u16 {
        let mut stream = connect_from(&squatter, &net.addr(1));
        stream
            .write_all(status(6000 + n, 0, 3_600_000).as_bytes())
            .expect("write");
        if n < 8 {
            let line = format!("Received status from {squatter}:{}: CPU=", 6000 + n);
            assert!(
                a.wait_line_from(0, WAIT, |l| l.starts_with(&line))
                    .is_some(),
                "{line}\n{}",
                a.stderr()
            );
        }
        squatters.push(stream);
    }
    // A real peer starts now: it is heard, and keeps being heard.
    let b = Node::on(ips[1], &ips, &[]);
    let first = a.wait_line_from(0, WAIT, status_from(ips[1]));
    assert!(first.is_some(), "{:?}\n{}", a.lines(), a.stderr());
    let seen = a.lines().len();
    assert!(
        a.wait_line_from(seen, WAIT, status_from(ips[1])).is_some(),
        "{}",
        a.stderr()
    );
    assert!(!b.lines().iter().any(|l| l.contains("offline")));
    a.expect_stderr("[address_limit;", WAIT);
    drop(squatters);
}

#[test]
fn a_connection_kept_busy_with_garbage_still_reaches_its_idle_deadline() {
    let net = Block::take();
    let a = Node::on(&net.ip(5), &[], &[]);
    crate::util::wait_listening(&a);
    let mut stream = connect_from(&net.ip(6), &net.addr(5));
    stream
        .write_all(status(5000, 0, 1000).as_bytes())
        .expect("write");
    // Then one invalid frame every 500 ms (fewer than too_many_invalid):
    // bytes, but never an accepted message. T = 3 s, idle deadline 6 s.
    let deadline = Instant::now() + Duration::from_secs(12);
    while Instant::now() < deadline && !a.stderr().contains("[idle_timeout;") {
        if stream.write_all(b"{}\n").is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    a.expect_stderr("[idle_timeout;", Duration::from_secs(1));
    assert!(!a.stderr().contains("[too_many_invalid;"), "{}", a.stderr());
}

#[test]
fn a_strangers_long_interval_does_not_mute_contact_restored_or_later_verdicts() {
    let net = Block::take();
    let ips = net.ips([1, 2, 3]);
    let ips = [ips[0].as_str(), ips[1].as_str(), ips[2].as_str()];
    let stranger_ip = net.ip(9);
    let a = Node::on(ips[0], &ips, &[]);
    let b = Node::on(ips[1], &ips, &[]);
    let c = Node::on(ips[2], &ips, &[]);
    wait_heard(&[(&a, ips[0]), (&b, ips[1]), (&c, ips[2])], &ips);
    // A stranger announces a 1 h interval, then goes away (a crash: offline).
    {
        let mut stranger = connect_from(&stranger_ip, &net.addr(1));
        stranger
            .write_all(status(5000, 0, 3_600_000).as_bytes())
            .expect("write");
        let heard = a.wait_line_from(0, WAIT, status_from(&stranger_ip));
        assert!(heard.is_some(), "{}", a.stderr());
    }
    a.expect_line(&offline(&stranger_ip), WAIT);
    // Both real peers freeze together: this node looks cut off.
    b.signal("STOP");
    c.signal("STOP");
    a.expect_line(
        "Lost contact with all 3 peers; this node may be cut off.",
        WAIT,
    );
    b.signal("CONT");
    c.signal("CONT");
    let restored = a.wait_line_from(0, WAIT, |l| {
        l.starts_with("Contact restored with 2 peers after ")
    });
    assert!(restored.is_some(), "{:?}\n{}", a.lines(), a.stderr());
    // A real peer that freezes later is reported, not muted.
    let from = a.lines().len();
    b.signal("STOP");
    let b_offline = offline(ips[1]);
    let offline = a.wait_line_from(from, WAIT, |l| l == b_offline);
    b.signal("CONT");
    assert!(offline.is_some(), "{:?}\n{}", a.lines(), a.stderr());
}
