//! Interop with the Python original: its receiver (accept, one recv(1024),
//! close) and a busy listener of it get one status per connection; the real
//! script (tests/fixtures/seed_p2p.py) and p2pmon hear each other.

use std::io::Read;
use std::process::Child;
use std::time::{Duration, Instant};

use crate::util::{Block, Node, accept_within, fake_peer, status_from};

const WAIT: Duration = Duration::from_secs(10);

/// Plays the Python original's receiver: accept, one recv(1024), close.
#[test]
fn a_python_receiver_gets_one_valid_status_per_connection() {
    let net = Block::take();
    let peer = fake_peer(&net.addr(2));
    let mut node = Node::on(&net.ip(1), &[&net.ip(2)], &["--interval", "500ms"]);
    for round in 0..4 {
        let mut conn = accept_within(&peer, WAIT, &node);
        let from = conn.peer_addr().expect("peer addr");
        assert_eq!(
            from.ip().to_string(),
            net.ip(1),
            "source is the --listen address"
        );
        conn.set_read_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
        let mut buffer = [0u8; 1024];
        // Never an idle connection: the status is there at once.
        let n = conn
            .read(&mut buffer)
            .expect("status written at once after connect");
        assert!(n > 0 && n < 1000, "round {round}: {n} bytes");
        let text = std::str::from_utf8(&buffer[..n]).expect("utf-8");
        let status: serde_json::Value =
            serde_json::from_str(text).unwrap_or_else(|e| panic!("round {round}: {e}: {text:?}"));
        for field in ["cpu", "memory"] {
            let value = status[field].as_f64().expect("number");
            assert!((0.0..=100.0).contains(&value));
        }
        drop(conn);
    }
    node.expect_stderr("sending to it as the Python original does", WAIT);
    // No offline: a Python peer's closes are normal.
    assert!(
        !node.lines().iter().any(|l| l.contains("offline")),
        "{:?}",
        node.lines()
    );
    // Shutdown sends no leave to a Python peer: no new connection carries one.
    peer.set_nonblocking(true).expect("nonblocking");
    while peer.accept().is_ok() {}
    node.signal("INT");
    assert_eq!(
        node.wait_exit(Duration::from_secs(5))
            .and_then(|s| s.code()),
        Some(0)
    );
    if let Ok((mut conn, _)) = peer.accept() {
        let mut text = String::new();
        conn.set_nonblocking(false).expect("blocking");
        conn.set_read_timeout(Some(Duration::from_secs(1)))
            .expect("timeout");
        let _ = conn.read_to_string(&mut text);
        assert!(!text.contains("leave"), "{text}");
    }
}

/// A receiver that neither greets nor closes (a Python listener busy with
/// someone else) gets exactly one status per connection, never a second frame
/// that would break its single recv(1024).
#[test]
fn an_unconfirmed_peer_never_gets_two_frames_on_one_connection() {
    let net = Block::take();
    let peer = fake_peer(&net.addr(2));
    let node = Node::on(&net.ip(1), &[&net.ip(2)], &["--interval", "200ms"]);
    let mut conn = accept_within(&peer, WAIT, &node);
    // Several intervals pass.
    std::thread::sleep(Duration::from_millis(1000));
    conn.set_nonblocking(true).expect("nonblocking");
    let mut buffer = vec![0u8; 64 * 1024];
    let n = conn.read(&mut buffer).expect("one status waiting");
    let text = std::str::from_utf8(&buffer[..n]).expect("utf-8");
    assert_eq!(text.matches('\n').count(), 1, "{text}");
    assert!(
        serde_json::from_str::<serde_json::Value>(text).is_ok(),
        "{text}"
    );
    assert!(n < 1000);
}

/// A child process killed when the test ends, passed or failed, so it never
/// outlives the block it is bound to.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The real Python original, both directions.
#[test]
#[ignore = "needs python3 with psutil (python3 -m pip install psutil)"]
fn interop_with_the_python_original() {
    let net = Block::take();
    let (ours, theirs) = (net.ip(1), net.ip(2));
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let has_psutil = std::process::Command::new(&python)
        .args(["-c", "import psutil"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        has_psutil,
        "{python} with psutil is needed (python3 -m pip install psutil; .ci/run does it)"
    );
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/seed_p2p.py");
    let mut child = KillOnDrop(
        std::process::Command::new(&python)
            .args(["-u", script, "--bind", &theirs, "--peers", &ours])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python starts"),
    );
    let stdout = child.0.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)).map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let node = Node::on(&ours, &[&theirs], &[]);
    // p2pmon prints the Python node's statuses (it sends every 5 s).
    node.expect_line_matching(status_from(&theirs), Duration::from_secs(15));
    // The Python node prints p2pmon's statuses, and no errors.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut python_lines = Vec::new();
    let mut received = 0;
    let from_us = format!("Received status from {ours}: CPU=");
    while received < 2 && Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            if line.starts_with(&from_us) && line.ends_with("Status=online") {
                received += 1;
            }
            python_lines.push(line);
        }
    }
    drop(child);
    assert!(received >= 2, "python saw: {python_lines:?}");
    assert!(
        !python_lines.iter().any(|l| l.starts_with("Error")),
        "{python_lines:?}"
    );
    assert!(
        !node.lines().iter().any(|l| l.contains("offline")),
        "{:?}",
        node.lines()
    );
}
