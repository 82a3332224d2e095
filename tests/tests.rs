//! Integration tests: the real binary on loopback. Each test owns a block of
//! addresses 127.N.0.x (N unique per test, listed below) so tests run in
//! parallel without fighting over port 5000.
//!
//! Blocks: 10 cluster, 11 raw input, 12 python receiver, 13 exit codes,
//! 14 json format, 15 v1 receiver, 16 python interop, 17 changes-only,
//! 18 send-only peer, 19 config file, 20 pipe, 21 unconfirmed peer; the
//! modules `adversarial`, `faults`, `observe`, `ops`, `seal`, `top` and `web` list their own blocks.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod adversarial;
mod faults;
mod membership;
mod observe;
mod ops;
mod seal;
mod top;
mod util;
mod web;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use util::{
    Node, accept_within, connect_from, fake_peer, run, send_once, status_from, wait_listening,
};

const WAIT: Duration = Duration::from_secs(10);

#[test]
fn three_nodes_see_each_other_then_crash_restart_and_leave() {
    let ips = ["127.10.0.2", "127.10.0.3", "127.10.0.4"];
    let a = Node::on(ips[0], &ips, &[]);
    let b = Node::on(ips[1], &ips, &[]);
    let c = Node::on(ips[2], &ips, &[]);
    for (node, me, others) in [
        (&a, ips[0], [ips[1], ips[2]]),
        (&b, ips[1], [ips[0], ips[2]]),
        (&c, ips[2], [ips[0], ips[1]]),
    ] {
        for other in others {
            assert!(
                node.wait_line_from(0, WAIT, status_from(other)).is_some(),
                "no status from {other}: {:?}\n{}",
                node.lines(),
                node.stderr()
            );
        }
        // Every node has its own address in --peers and skips it.
        let own = format!("Received status from {me}:");
        assert!(
            node.lines().iter().all(|l| !l.starts_with(&own)),
            "{me} heard itself"
        );
    }
    assert!(a.lines()[0] == "Starting P2P Network Monitoring System...");
    assert!(a.lines()[1] == "Listening for peer updates...");
    // Nobody was reported offline while the cluster started.
    for node in [&a, &b, &c] {
        assert!(
            !node.lines().iter().any(|l| l.contains("is offline")),
            "{:?}",
            node.lines()
        );
    }

    // kill -9: a crash. The others report it offline once, fast.
    let killed_at = Instant::now();
    c.signal("KILL");
    let offline = "Peer 127.10.0.4 is offline.";
    let seen_a = a.expect_line(offline, WAIT);
    let seen_b = b.expect_line(offline, WAIT);
    let crash_to_offline = seen_a.max(seen_b).duration_since(killed_at);
    println!("crash -> offline: {crash_to_offline:?}");
    // The silence rule would take T = 3 s; a hard signal is well under that.
    assert!(
        crash_to_offline < Duration::from_millis(2500),
        "{crash_to_offline:?}"
    );
    drop(c);

    // Restart: back online.
    let restarted_at = Instant::now();
    let c = Node::on(ips[2], &ips, &[]);
    let back = "Peer 127.10.0.4 is back online.";
    let back_a = a.expect_line(back, WAIT);
    let back_b = b.expect_line(back, WAIT);
    println!(
        "restart -> back online: {:?}",
        back_a.max(back_b).duration_since(restarted_at)
    );
    // The restarted node must know both others before one of them leaves:
    // a leave goes only to peers on an open, greeted connection.
    assert!(c.wait_line_from(0, WAIT, status_from(ips[0])).is_some());
    assert!(c.wait_line_from(0, WAIT, status_from(ips[1])).is_some());
    assert_eq!(a.count(offline), 1, "{:?}", a.lines());
    assert_eq!(b.count(offline), 1, "{:?}", b.lines());

    // Ctrl+C: a leave, exit 0, quickly.
    let mut b = b;
    let stopped_at = Instant::now();
    b.signal("INT");
    let status = b.wait_exit(Duration::from_secs(5)).expect("b exits");
    let exit_time = stopped_at.elapsed();
    println!("SIGINT -> exit: {exit_time:?}");
    assert_eq!(status.code(), Some(0));
    assert!(exit_time < Duration::from_secs(1), "{exit_time:?}");
    let left = "Peer 127.10.0.3 left.";
    let left_a = a.expect_line(left, WAIT);
    println!("SIGINT -> left: {:?}", left_a.duration_since(stopped_at));
    c.expect_line(left, WAIT);
    // A left peer stays silent: no offline for it, even after T.
    let after = a.lines().len();
    let quiet = a.wait_line_from(after, Duration::from_secs(4), |l| {
        l.contains("127.10.0.3 is offline")
    });
    assert!(quiet.is_none(), "{:?}", a.lines());
    // And the others keep hearing each other.
    assert!(a.wait_line_from(after, WAIT, status_from(ips[2])).is_some());
}

#[test]
fn legacy_messages_print_and_bad_input_is_rejected_without_harm() {
    let node = Node::on("127.11.0.1", &[], &[]);
    wait_listening(&node);
    let target = "127.11.0.1:5000";

    // The Python original: a bare object, no newline, then close.
    send_once("127.11.0.5", target, br#"{"cpu": 12.5, "memory": 40.3}"#);
    node.expect_line(
        "Received status from 127.11.0.5: CPU=12.5%, Memory=40.3%, Status=online",
        WAIT,
    );

    // Garbage of every kind, each from its own source address.
    let bad: Vec<(&str, Vec<u8>, &str)> = vec![
        ("127.11.0.10", b"hello world\n".to_vec(), "invalid_json"),
        ("127.11.0.11", b"\xff\xfe\xfd\n".to_vec(), "not_utf8"),
        (
            "127.11.0.12",
            br#"{"cpu": NaN, "memory": 1}"#.to_vec(),
            "invalid_json",
        ),
        (
            "127.11.0.13",
            br#"{"cpu": 101, "memory": 1}"#.to_vec(),
            "out_of_range",
        ),
        (
            "127.11.0.14",
            br#"{"cpu": "5", "memory": 1}"#.to_vec(),
            "bad_field",
        ),
        ("127.11.0.15", br#"{"memory": 1}"#.to_vec(), "missing_field"),
        ("127.11.0.16", vec![b'x'; 70 * 1024], "too_large"),
        (
            "127.11.0.17",
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            "invalid_json",
        ),
        (
            "127.11.0.18",
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
    send_once("127.11.0.6", target, br#"{"cpu": 1.0, "memory": 2.0}"#);
    node.expect_line(
        "Received status from 127.11.0.6: CPU=1.0%, Memory=2.0%, Status=online",
        WAIT,
    );
    for (from, _, _) in &bad {
        assert!(
            !node.lines().iter().any(|l| l.contains(from)),
            "bad input from {from} printed: {:?}",
            node.lines()
        );
    }
}

/// Plays the Python original's receiver: accept, one recv(1024), close.
#[test]
fn a_python_receiver_gets_one_valid_status_per_connection() {
    let peer = fake_peer("127.12.0.2:5000");
    let mut node = Node::on("127.12.0.1", &["127.12.0.2"], &["--interval", "500ms"]);
    for round in 0..4 {
        let mut conn = accept_within(&peer, WAIT, &node);
        let from = conn.peer_addr().expect("peer addr");
        assert_eq!(
            from.ip().to_string(),
            "127.12.0.1",
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

/// A v1 receiver (it greets each connection) keeps one connection, sees seq
/// grow, and gets a leave.
#[test]
fn a_v1_peer_gets_statuses_on_one_kept_open_connection_and_a_leave() {
    let peer = fake_peer("127.15.0.2:5000");
    let mut node = Node::on(
        "127.15.0.1",
        &["127.15.0.2"],
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

/// A receiver that neither greets nor closes (a Python listener busy with
/// someone else) gets exactly one status per connection, never a second frame
/// that would break its single recv(1024).
#[test]
fn an_unconfirmed_peer_never_gets_two_frames_on_one_connection() {
    let peer = fake_peer("127.21.0.2:5000");
    let node = Node::on("127.21.0.1", &["127.21.0.2"], &["--interval", "200ms"]);
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

#[test]
fn exit_codes_and_error_lines() {
    for args in [
        vec!["--interval", "0"],
        vec!["--interval", "1s", "--offline-after", "1s"],
        vec!["--listen", "127.13.0.1:6000", "--port", "5000"],
        vec!["--peers", "bad_host!"],
        vec!["--no-such-flag"],
        vec!["--listen", "not-an-ip"],
    ] {
        let (code, stdout, stderr) = run(&args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(stderr.starts_with("error:"), "{args:?}: {stderr}");
        assert!(!stdout.contains("Listening"), "{args:?}");
    }
    // Busy port: exit 1, naming the address.
    let _holder = fake_peer("127.13.0.1:5000");
    let (code, _, stderr) = run(&["--listen", "127.13.0.1"]);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(
        stderr.trim(),
        "error: cannot listen on 127.13.0.1:5000: address already in use"
    );
    // --help goes to stdout, exit 0.
    let (code, stdout, _) = run(&["--help"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("--peers"));
}

#[test]
fn config_file_errors_name_the_key_and_flags_win() {
    let dir = std::env::temp_dir().join(format!("p2pmon-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "port = 5000\nintervall = \"1s\"\n").expect("write");
    let (code, _, stderr) = run(&["--config", bad.to_str().expect("path")]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("intervall") && stderr.contains("line 2"),
        "{stderr}"
    );

    let good = dir.join("good.toml");
    std::fs::write(
        &good,
        "listen = \"127.19.0.1\"\ninterval = \"1s\"\nformat = \"json\"\npeers = [\"127.19.0.2\"]\n",
    )
    .expect("write");
    // The flag (--format text) wins over the file's json.
    let node = Node::start(&["--config", good.to_str().expect("path"), "--format", "text"]);
    wait_listening(&node);
    send_once(
        "127.19.0.2",
        "127.19.0.1:5000",
        br#"{"cpu": 3, "memory": 4}"#,
    );
    node.expect_line(
        "Received status from 127.19.0.2: CPU=3.0%, Memory=4.0%, Status=online",
        WAIT,
    );
    let (code, _, stderr) = run(&["--config", "/nonexistent/p2pmon.toml"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("cannot read config"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn json_format_prints_one_object_per_line() {
    let ips = ["127.14.0.1", "127.14.0.2"];
    let a = Node::on(ips[0], &ips, &["--format", "json"]);
    let mut b = Node::on(ips[1], &ips, &[]);
    assert!(
        a.wait_line_from(0, WAIT, |l| l.contains("\"event\":\"status\""))
            .is_some()
    );
    b.signal("INT");
    b.wait_exit(Duration::from_secs(5));
    assert!(
        a.wait_line_from(0, WAIT, |l| l.contains("\"event\":\"left\""))
            .is_some()
    );
    let events: Vec<serde_json::Value> = a
        .lines()
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(events[0]["event"], "started");
    assert_eq!(events[1]["event"], "listening");
    let status = events
        .iter()
        .find(|e| e["event"] == "status")
        .expect("status");
    assert_eq!(status["peer"], "127.14.0.2");
    assert!(status["cpu"].as_f64().is_some() && status["memory"].as_f64().is_some());
    assert!(status["ts"].as_str().is_some());
    let left = events.iter().find(|e| e["event"] == "left").expect("left");
    assert_eq!(left["peer"], "127.14.0.2");
}

#[test]
fn changes_only_and_timestamps() {
    let ips = ["127.17.0.1", "127.17.0.2"];
    let a = Node::on(
        ips[0],
        &ips,
        &["--changes-only", "--timestamps", "--interval", "300ms"],
    );
    let mut b = Node::on(ips[1], &ips, &["--interval", "300ms"]);
    assert!(
        a.wait_line_from(0, WAIT, |l| l.contains("Received status from 127.17.0.2"))
            .is_some()
    );
    b.signal("INT");
    b.wait_exit(Duration::from_secs(5));
    assert!(
        a.wait_line_from(0, WAIT, |l| l.ends_with("Peer 127.17.0.2 left."))
            .is_some()
    );
    let lines = a.lines();
    let statuses = lines
        .iter()
        .filter(|l| l.contains("Received status"))
        .count();
    assert_eq!(statuses, 1, "only the first status of a peer: {lines:?}");
    for line in &lines {
        let (stamp, _) = line.split_once(' ').expect("timestamp prefix");
        assert!(
            chrono::DateTime::parse_from_rfc3339(stamp).is_ok(),
            "{line}"
        );
    }
}

#[test]
fn a_send_only_peer_is_online_while_it_accepts_and_offline_when_it_refuses() {
    // A listen-only peer: it never sends to us. Our accepted connection is its sign of life.
    let peer = fake_peer("127.18.0.2:5000");
    let node = Node::on("127.18.0.1", &["127.18.0.2"], &["--interval", "300ms"]);
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
    node.expect_line("Peer 127.18.0.2 is offline.", WAIT);
    // Refused (the reconnect) or reset (our unread status), both hard signals.
    node.expect_stderr("peer 127.18.0.2 offline: connection re", WAIT);
    // Back: accepted again.
    let peer = fake_peer("127.18.0.2:5000");
    let _conn = accept_within(&peer, WAIT, &node);
    node.expect_line("Peer 127.18.0.2 is back online.", WAIT);
}

/// The real Python original, both directions.
#[test]
fn interop_with_the_python_original() {
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
    let mut child = std::process::Command::new(&python)
        .args([
            "-u",
            script,
            "--bind",
            "127.16.0.2",
            "--peers",
            "127.16.0.1",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python starts");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)).map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let node = Node::on("127.16.0.1", &["127.16.0.2"], &[]);
    // p2pmon prints the Python node's statuses (it sends every 5 s).
    node.expect_line_matching(status_from("127.16.0.2"), Duration::from_secs(15));
    // The Python node prints p2pmon's statuses, and no errors.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut python_lines = Vec::new();
    let mut received = 0;
    while received < 2 && Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            if line.starts_with("Received status from 127.16.0.1: CPU=")
                && line.ends_with("Status=online")
            {
                received += 1;
            }
            python_lines.push(line);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
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

#[test]
fn demo_runs_three_nodes_and_stops_on_ctrl_c() {
    let mut demo = Node::start(&["demo", "--interval", "300ms"]);
    let is_demo_status = |l: &str| l.starts_with("Received status from 127.0.0.1:");
    let (first, _) = demo
        .wait_line_from(0, WAIT, is_demo_status)
        .expect("a status");
    let first_peer = demo.lines()[first].split(':').nth(1).map(str::to_owned);
    // Statuses from both other nodes.
    assert!(
        demo.wait_line_from(0, WAIT, |l| is_demo_status(l)
            && l.split(':').nth(1).map(str::to_owned) != first_peer)
            .is_some(),
        "{:?}",
        demo.lines()
    );
    demo.signal("INT");
    assert_eq!(
        demo.wait_exit(Duration::from_secs(5))
            .and_then(|s| s.code()),
        Some(0)
    );
}

#[test]
fn stdout_reaches_a_pipe_line_by_line() {
    // The harness reads through a pipe: the first status must arrive while the
    // node is still running (not at exit), within about one interval.
    let ips = ["127.20.0.1", "127.20.0.2"];
    let a = Node::on(ips[0], &ips, &[]);
    let _b = Node::on(ips[1], &ips, &[]);
    a.wait_line_from(0, WAIT, status_from(ips[1]))
        .expect("status through the pipe");
    let mut a = a;
    assert!(
        a.wait_exit(Duration::ZERO).is_none(),
        "the line arrived while the node runs"
    );
}

impl Node {
    fn expect_line_matching(&self, pred: impl Fn(&str) -> bool, timeout: Duration) {
        if self.wait_line_from(0, timeout, pred).is_none() {
            panic!(
                "no matching line:\n{}\n{}",
                self.lines().join("\n"),
                self.stderr()
            );
        }
    }
}
