//! Clusters of real nodes on loopback: they see each other, report a crash,
//! a restart and a leave; the json and changes-only outputs; stdout through a
//! pipe; the demo.

use std::time::{Duration, Instant};

use crate::util::{Block, Node, back_online, left, offline, status_from};

const WAIT: Duration = Duration::from_secs(10);

#[test]
fn three_nodes_see_each_other_then_crash_restart_and_leave() {
    let net = Block::take();
    let owned = net.ips([2, 3, 4]);
    let ips = owned.each_ref().map(String::as_str);
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
    let offline = offline(ips[2]);
    let seen_a = a.expect_line(&offline, WAIT);
    let seen_b = b.expect_line(&offline, WAIT);
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
    let back = back_online(ips[2]);
    let back_a = a.expect_line(&back, WAIT);
    let back_b = b.expect_line(&back, WAIT);
    println!(
        "restart -> back online: {:?}",
        back_a.max(back_b).duration_since(restarted_at)
    );
    // The restarted node must know both others before one of them leaves:
    // a leave goes only to peers on an open, greeted connection.
    assert!(c.wait_line_from(0, WAIT, status_from(ips[0])).is_some());
    assert!(c.wait_line_from(0, WAIT, status_from(ips[1])).is_some());
    assert_eq!(a.count(&offline), 1, "{:?}", a.lines());
    assert_eq!(b.count(&offline), 1, "{:?}", b.lines());

    // Ctrl+C: a leave, exit 0, quickly.
    let mut b = b;
    let stopped_at = Instant::now();
    b.signal("INT");
    let status = b.wait_exit(Duration::from_secs(5)).expect("b exits");
    let exit_time = stopped_at.elapsed();
    println!("SIGINT -> exit: {exit_time:?}");
    assert_eq!(status.code(), Some(0));
    assert!(exit_time < Duration::from_secs(1), "{exit_time:?}");
    let left = left(ips[1]);
    let left_a = a.expect_line(&left, WAIT);
    println!("SIGINT -> left: {:?}", left_a.duration_since(stopped_at));
    c.expect_line(&left, WAIT);
    // A left peer stays silent: no offline for it, even after T.
    let after = a.lines().len();
    let b_offline = format!("{} is offline", ips[1]);
    let quiet = a.wait_line_from(after, Duration::from_secs(4), |l| l.contains(&b_offline));
    assert!(quiet.is_none(), "{:?}", a.lines());
    // And the others keep hearing each other.
    assert!(a.wait_line_from(after, WAIT, status_from(ips[2])).is_some());
}

#[test]
fn json_format_prints_one_object_per_line() {
    let net = Block::take();
    let owned = net.ips([1, 2]);
    let ips = owned.each_ref().map(String::as_str);
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
    assert_eq!(status["peer"], ips[1]);
    assert!(status["cpu"].as_f64().is_some() && status["memory"].as_f64().is_some());
    assert!(status["ts"].as_str().is_some());
    let left = events.iter().find(|e| e["event"] == "left").expect("left");
    assert_eq!(left["peer"], ips[1]);
}

#[test]
fn changes_only_and_timestamps() {
    let net = Block::take();
    let owned = net.ips([1, 2]);
    let ips = owned.each_ref().map(String::as_str);
    let a = Node::on(
        ips[0],
        &ips,
        &["--changes-only", "--timestamps", "--interval", "300ms"],
    );
    let mut b = Node::on(ips[1], &ips, &["--interval", "300ms"]);
    let from_b = format!("Received status from {}", ips[1]);
    assert!(a.wait_line_from(0, WAIT, |l| l.contains(&from_b)).is_some());
    b.signal("INT");
    b.wait_exit(Duration::from_secs(5));
    let b_left = left(ips[1]);
    assert!(
        a.wait_line_from(0, WAIT, |l| l.ends_with(&b_left))
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
fn stdout_reaches_a_pipe_line_by_line() {
    // The harness reads through a pipe: the first status must arrive while the
    // node is still running (not at exit), within about one interval.
    let net = Block::take();
    let owned = net.ips([1, 2]);
    let ips = owned.each_ref().map(String::as_str);
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

/// The demo picks free ports on 127.0.0.1 itself: it needs no block.
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
