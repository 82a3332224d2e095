//! Faults made for real: partitions and black holes with iptables inside a
//! network namespace of the test's own, crashes and restart loops with
//! signals, hostile clients on loopback, clock jumps with libfaketime.
//! Namespaced tests use 127.0.0.x inside their namespace; the others take a
//! block from `util::Block`.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::util::{
    Block, Netns, Node, accept_within, connect_from, largest_gap, offline, received, send_once,
    status_from, times_of,
};

const WAIT: Duration = Duration::from_secs(15);

/// Waits until every node has heard every other.
fn wait_mesh(nodes: &[(&Node, &str)]) {
    for (node, me) in nodes {
        for (_, other) in nodes {
            if other != me {
                assert!(
                    node.wait_line_from(0, WAIT, status_from(other)).is_some(),
                    "{me} never heard {other}:\n{}\n{}",
                    node.lines().join("\n"),
                    node.stderr()
                );
            }
        }
    }
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[test]
#[ignore = "needs root, iproute2 and iptables (a network namespace with real packet drops)"]
fn a_partition_is_seen_by_both_sides_only_and_heals_without_restart() {
    let netns = Netns::new("partition");
    let ips = ["127.0.0.2", "127.0.0.3", "127.0.0.4"];
    let a = Node::in_netns(&netns, ips[0], &ips, &[]);
    let b = Node::in_netns(&netns, ips[1], &ips, &[]);
    let c = Node::in_netns(&netns, ips[2], &ips, &[]);
    wait_mesh(&[(&a, ips[0]), (&b, ips[1]), (&c, ips[2])]);

    let cut_at = Instant::now();
    netns.partition(ips[0], ips[1]);
    let seen_by_a = a.expect_line("Peer 127.0.0.3 is offline.", WAIT);
    let seen_by_b = b.expect_line("Peer 127.0.0.2 is offline.", WAIT);
    let detection = seen_by_a.max(seen_by_b).duration_since(cut_at);
    println!("partition -> offline on both sides: {detection:?}");
    // Issue 15: within 3 s at --interval 1s. The late status is probed (1 s
    // plus the 0.5 s grace after the last one), the probe unanswered 1 s
    // later: 2.5 s after the last status at worst, before T (3 s).
    assert!(detection <= Duration::from_secs(3), "{detection:?}");

    let healed_at = Instant::now();
    netns.heal();
    let back_a = a.expect_line("Peer 127.0.0.3 is back online.", WAIT);
    let back_b = b.expect_line("Peer 127.0.0.2 is back online.", WAIT);
    println!(
        "heal -> back online: {:?}",
        back_a.max(back_b).duration_since(healed_at)
    );
    // The rest of the cluster saw nothing; nobody thought itself cut off.
    for (node, name) in [(&a, "a"), (&b, "b"), (&c, "c")] {
        let odd: Vec<String> = node
            .lines()
            .into_iter()
            .filter(|l| l.contains("127.0.0.4 is offline") || l.contains("Lost contact"))
            .collect();
        assert!(odd.is_empty(), "{name}: {odd:?}");
    }
    assert!(
        !c.lines().iter().any(|l| l.contains("offline")),
        "{:?}",
        c.lines()
    );
    assert_eq!(a.count("Peer 127.0.0.3 is offline."), 1);
}

#[test]
#[ignore = "needs root, iproute2 and iptables (a network namespace with real packet drops)"]
fn a_black_holed_peer_costs_the_others_nothing() {
    let netns = Netns::new("blackhole");
    let ips = ["127.0.0.2", "127.0.0.3", "127.0.0.4"];
    // a waits 10 s for silence, so only the TCP timeouts can tell it first.
    let a = Node::in_netns(&netns, ips[0], &ips, &["--offline-after", "10s"]);
    let b = Node::in_netns(&netns, ips[1], &ips, &[]);
    let d = Node::in_netns(&netns, ips[2], &ips, &[]);
    wait_mesh(&[(&a, ips[0]), (&b, ips[1]), (&d, ips[2])]);

    let holed_at = Instant::now();
    netns.black_hole(ips[2]);
    let seen_a = a.expect_line("Peer 127.0.0.4 is offline.", WAIT);
    let seen_b = b.expect_line("Peer 127.0.0.4 is offline.", WAIT);
    let by_silence = seen_b.duration_since(holed_at);
    let by_tcp_timeouts = seen_a.duration_since(holed_at);
    println!(
        "black hole -> offline: {by_silence:?} (T = 3 s), {by_tcp_timeouts:?} (probe / user timeout, T = 10 s)"
    );
    // Issue 15: within 3 s at --interval 1s, by silence or sooner by probe.
    assert!(by_silence <= Duration::from_secs(3), "{by_silence:?}");
    // The kept-open connections fail by an unanswered probe (2.5 s after
    // the last status at worst) or the TCP user timeout (2 s after our
    // first unacknowledged status), long before a's 10 s of silence,
    // instead of buffering for minutes.
    assert!(
        by_tcp_timeouts <= Duration::from_secs(3),
        "{by_tcp_timeouts:?}"
    );
    assert!(
        a.stderr().contains("peer 127.0.0.4 offline: connection"),
        "{}",
        a.stderr()
    );
    // Reconnects then time out (the SYNs are dropped) and back off.
    a.expect_stderr("connect timed out", WAIT);
    // Meanwhile a and b kept hearing each other on time.
    let until = Instant::now();
    let gap_at_b = largest_gap(&times_of(&b, status_from(ips[0])), holed_at, until);
    let gap_at_a = largest_gap(&times_of(&a, status_from(ips[1])), holed_at, until);
    println!("largest gap a->b during the black hole: {gap_at_b:?}, b->a: {gap_at_a:?}");
    assert!(gap_at_b <= Duration::from_millis(1500), "{gap_at_b:?}");
    assert!(gap_at_a <= Duration::from_millis(1500), "{gap_at_a:?}");

    // Healing: back online, and no burst of stale statuses.
    netns.heal();
    let back = a.expect_line("Peer 127.0.0.4 is back online.", WAIT);
    std::thread::sleep(Duration::from_millis(2000));
    let burst = times_of(&a, status_from(ips[2]))
        .into_iter()
        .filter(|t| *t >= back && t.duration_since(back) <= Duration::from_millis(1500))
        .count();
    assert!(
        burst <= 3,
        "{burst} statuses from the healed peer within 1.5 s"
    );
    assert!(!a.lines().iter().any(|l| l.contains("Lost contact")));
}

#[test]
#[ignore = "needs root, iproute2 and iptables (a network namespace with real packet drops)"]
fn a_dead_host_at_the_default_interval_is_reported_within_7_s_of_its_last_status() {
    let netns = Netns::new("dead5s");
    let ips = ["127.0.0.2", "127.0.0.3", "127.0.0.4"];
    // The default interval (5 s): T is 15 s, so only the probe of the late
    // status (or our own statuses' user timeout) can tell within 7 s.
    let five = ["--interval", "5s"];
    let a = Node::in_netns(&netns, ips[0], &ips, &five);
    let b = Node::in_netns(&netns, ips[1], &ips, &five);
    let d = Node::in_netns(&netns, ips[2], &ips, &five);
    wait_mesh(&[(&a, ips[0]), (&b, ips[1]), (&d, ips[2])]);
    // Cut at a random moment of d's interval: just after a status is the
    // worst case for the probe, and the test should not always dodge it.
    let phase = u64::from(std::process::id() % 5000);
    std::thread::sleep(Duration::from_millis(phase));
    let holed_at = Instant::now();
    netns.black_hole(ips[2]);
    let seen_a = a.expect_line("Peer 127.0.0.4 is offline.", WAIT);
    let seen_b = b.expect_line("Peer 127.0.0.4 is offline.", WAIT);
    for (node, seen, name) in [(&a, seen_a, "a"), (&b, seen_b, "b")] {
        let last_status = times_of(node, status_from(ips[2]))
            .into_iter()
            .filter(|t| *t <= holed_at)
            .max()
            .expect("heard d before the cut");
        let after_drop = seen.duration_since(holed_at);
        let after_status = seen.duration_since(last_status);
        println!(
            "dead host at 5 s -> offline at {name}: {after_drop:?} after the drop, {after_status:?} after its last status"
        );
        assert!(
            after_status <= Duration::from_secs(7),
            "{name}: {after_status:?}"
        );
        assert!(
            node.stderr()
                .contains("peer 127.0.0.4 offline: connection timed out"),
            "{name}: {}",
            node.stderr()
        );
    }
    // The others saw nothing.
    for node in [&a, &b] {
        let odd: Vec<String> = node
            .lines()
            .into_iter()
            .filter(|l| l.contains("offline") && !l.contains("127.0.0.4"))
            .collect();
        assert!(odd.is_empty(), "{odd:?}");
    }
    drop(d);
}

#[test]
#[ignore = "needs root, iproute2 and iptables (a network namespace with real packet drops)"]
fn a_node_cut_off_from_everyone_says_so_once() {
    let netns = Netns::new("cutoff");
    let ips = ["127.0.0.2", "127.0.0.3", "127.0.0.4"];
    let a = Node::in_netns(&netns, ips[0], &ips, &[]);
    let b = Node::in_netns(&netns, ips[1], &ips, &[]);
    let c = Node::in_netns(&netns, ips[2], &ips, &[]);
    wait_mesh(&[(&a, ips[0]), (&b, ips[1]), (&c, ips[2])]);
    netns.black_hole(ips[0]);
    a.expect_line(
        "Lost contact with all 2 peers; this node may be cut off.",
        WAIT,
    );
    // Instead of, not in addition to, the per-peer lines.
    assert!(
        !a.lines().iter().any(|l| l.ends_with("is offline.")),
        "{:?}",
        a.lines()
    );
    // The others see one peer go offline, not a cut-off.
    b.expect_line("Peer 127.0.0.2 is offline.", WAIT);
    assert!(!b.lines().iter().any(|l| l.contains("Lost contact")));
    netns.heal();
    assert!(
        a.wait_line_from(0, WAIT, |l| l
            .starts_with("Contact restored with 2 peers after "))
            .is_some(),
        "{:?}\n{}",
        a.lines(),
        a.stderr()
    );
    assert!(
        !a.lines().iter().any(|l| l.contains("back online")),
        "{:?}",
        a.lines()
    );
    drop(c);
}

#[test]
fn a_peer_restarting_in_a_loop_prints_pairs_then_flapping_once() {
    let net = Block::take();
    let owned = net.ips([1, 2]);
    let ips = owned.each_ref().map(String::as_str);
    let flap = [
        "--interval",
        "300ms",
        "--flap-changes",
        "3",
        "--flap-window",
        "1m",
    ];
    let a = Node::on(ips[0], &ips, &flap);
    let mut b = Node::on(ips[1], &ips, &flap);
    assert!(a.wait_line_from(0, WAIT, status_from(ips[1])).is_some());
    for round in 0..4 {
        b.signal("KILL");
        b.wait_exit(WAIT);
        if round < 2 {
            a.expect_line(&offline(ips[1]), WAIT);
        }
        b = Node::on(ips[1], &ips, &flap);
        assert!(b.wait_line_from(0, WAIT, status_from(ips[0])).is_some());
        let seen = a.lines().len();
        assert!(a.wait_line_from(seen, WAIT, status_from(ips[1])).is_some());
    }
    let lines = a.lines();
    let count = |text: &str| lines.iter().filter(|l| l.contains(text)).count();
    assert_eq!(count("is flapping."), 1, "{lines:?}");
    assert_eq!(count("is offline."), 2, "{lines:?}");
    assert_eq!(count("is back online."), 1, "{lines:?}");
    a.expect_stderr(
        &format!("peer {} is flapping: 4 state changes within 60 s", ips[1]),
        WAIT,
    );
}

#[test]
fn slowloris_strangers_never_starve_a_real_peer() {
    let net = Block::take();
    let owned = net.ips([1, 2]);
    let ips = owned.each_ref().map(String::as_str);
    let target = net.addr(1);
    let a = Node::on(ips[0], &ips, &["--max-connections", "64"]);
    let _b = Node::on(ips[1], &ips, &[]);
    assert!(a.wait_line_from(0, WAIT, status_from(ips[1])).is_some());
    let rss_before = rss_kib(a.pid());
    let started = Instant::now();
    // 300 strangers that connect and say nothing, from 300 source addresses.
    let mut idle = Vec::new();
    for n in 0..300u32 {
        let from = net.ip_at(1 + (n / 200) as u8, 1 + (n % 200) as u8);
        idle.push(connect_from(&from, &target));
    }
    // And some that dribble one byte at a time.
    for n in 0..20u32 {
        let mut slow = connect_from(&net.ip_at(9, n as u8 + 1), &target);
        let _ = slow.write_all(b"{");
        idle.push(slow);
    }
    a.expect_stderr("[evicted;", WAIT);
    // The real peer's statuses keep arriving on time, and its connection survives.
    std::thread::sleep(Duration::from_secs(4));
    let gap = largest_gap(&times_of(&a, status_from(ips[1])), started, Instant::now());
    println!("largest gap from the real peer under slowloris: {gap:?}");
    assert!(gap <= Duration::from_millis(1500), "{gap:?}");
    assert!(
        !a.lines().iter().any(|l| l.contains("offline")),
        "{:?}",
        a.lines()
    );
    let fds = open_fds(a.pid());
    let rss_after = rss_kib(a.pid());
    println!("slowloris: {fds} fds open, RSS {rss_before} -> {rss_after} KiB");
    assert!(fds <= 64 + 16, "{fds} fds");
    assert!(
        rss_after <= rss_before + 8 * 1024,
        "{rss_before} -> {rss_after} KiB"
    );
}

#[test]
fn connect_close_storms_and_half_open_connections_change_nothing() {
    let net = Block::take();
    let owned = net.ips([1, 2]);
    let ips = owned.each_ref().map(String::as_str);
    let a = Node::on(ips[0], &ips, &[]);
    let _b = Node::on(ips[1], &ips, &[]);
    assert!(a.wait_line_from(0, WAIT, status_from(ips[1])).is_some());
    let rss_before = rss_kib(a.pid());
    let started = Instant::now();
    let target: SocketAddr = net.addr(1).parse().expect("addr");
    for n in 0..3000u32 {
        let from = net.ip_at(1 + ((n / 250) % 50) as u8, 1 + (n % 250) as u8);
        let stream = connect_from(&from, &target.to_string());
        if n % 10 == 0 {
            // Half a frame, then vanish.
            let mut stream = stream;
            let _ = stream.write_all(br#"{"v":1,"type":"status","node":"x","#);
        }
    }
    std::thread::sleep(Duration::from_secs(2));
    let gap = largest_gap(&times_of(&a, status_from(ips[1])), started, Instant::now());
    let rss_after = rss_kib(a.pid());
    println!("storm of 3000: largest gap {gap:?}, RSS {rss_before} -> {rss_after} KiB");
    assert!(gap <= Duration::from_millis(1500), "{gap:?}");
    assert!(rss_after <= rss_before + 8 * 1024);
    let stormers = format!("127.{}.1.", net.n());
    assert!(
        !a.lines()
            .iter()
            .any(|l| l.contains(&stormers) || l.contains("offline"))
    );
    // Still answering.
    send_once(&net.ip(9), &net.addr(1), br#"{"cpu": 5, "memory": 6}"#);
    a.expect_line(&received(&net.ip(9), "5.0", "6.0"), WAIT);
}

#[test]
fn a_peer_that_never_reads_delays_nobody_and_stays_online_while_it_sends() {
    let net = Block::take();
    let owned = net.ips([1, 2, 3]);
    let ips = owned.each_ref().map(String::as_str);
    // The non-reader: greets (so it is v1 and gets a kept-open connection),
    // then never reads, with a tiny receive buffer.
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    socket.set_reuse_address(true).expect("reuse");
    socket.set_recv_buffer_size(1024).expect("rcvbuf");
    socket
        .bind(&net.addr(3).parse::<SocketAddr>().expect("addr").into())
        .expect("bind");
    socket.listen(8).expect("listen");
    let deaf: std::net::TcpListener = socket.into();
    let fast = ["--interval", "20ms", "--offline-after", "2s"];
    let a = Node::on(ips[0], &ips, &fast);
    let _b = Node::on(ips[1], &[ips[0]], &fast);
    let mut stuck = accept_within(&deaf, WAIT, &a);
    stuck
        .write_all(b"{\"v\":1,\"type\":\"hello\"}\n")
        .expect("hello");
    // It still sends to a: v1 statuses on its own connection.
    let mut talker = connect_from(ips[2], &net.addr(1));
    let started = Instant::now();
    let mut seq = 0;
    while started.elapsed() < Duration::from_secs(6) {
        let line = format!(
            "{{\"v\":1,\"type\":\"status\",\"node\":\"deaf\",\"port\":5000,\"boot\":1,\"seq\":{seq},\"ts\":1,\"interval_ms\":200,\"cpu\":1,\"memory\":2}}\n"
        );
        talker.write_all(line.as_bytes()).expect("talk");
        seq += 1;
        std::thread::sleep(Duration::from_millis(200));
    }
    a.expect_stderr(&format!("{} does not read what we send", net.addr(3)), WAIT);
    let gap = largest_gap(
        &times_of(&a, status_from(ips[1])),
        started + Duration::from_secs(1),
        Instant::now(),
    );
    println!("largest gap from the honest peer next to a non-reader: {gap:?}");
    assert!(gap <= Duration::from_millis(500), "{gap:?}");
    let deaf_offline = format!("{} is offline", ips[2]);
    assert!(
        !a.lines().iter().any(|l| l.contains(&deaf_offline)),
        "{:?}",
        a.lines()
    );
    let mut drain = [0u8; 16];
    let _ = stuck.read(&mut drain);
}

#[test]
#[ignore = "needs libfaketime (Debian package faketime)"]
fn clock_jumps_cause_no_false_offline() {
    let libfaketime = [
        "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
        "/usr/lib/faketime/libfaketime.so.1",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).exists())
    .expect("libfaketime is needed (apt-get install faketime; .ci/run does it)");
    let clock = std::env::temp_dir().join(format!("p2pmon-clock-{}", std::process::id()));
    std::fs::write(&clock, "+0\n").expect("clock file");
    let net = Block::take();
    let owned = net.ips([1, 2]);
    let ips = owned.each_ref().map(String::as_str);
    let mut command = std::process::Command::new("env");
    command.args([
        &format!("LD_PRELOAD={libfaketime}"),
        &format!("FAKETIME_TIMESTAMP_FILE={}", clock.display()),
        "FAKETIME_NO_CACHE=1",
        // A real clock step (NTP, date -s) moves the wall clock, never the monotonic one.
        "FAKETIME_DONT_FAKE_MONOTONIC=1",
        crate::util::binary(),
    ]);
    let a = Node::spawn_command(
        command,
        &[
            "--listen",
            ips[0],
            "--peers",
            ips[1],
            "--interval",
            "300ms",
            "--timestamps",
        ],
    );
    let b = Node::on(ips[1], &ips, &["--interval", "300ms"]);
    assert!(
        a.wait_line_from(0, WAIT, |l| l.ends_with("Listening for peer updates..."))
            .is_some()
    );
    assert!(
        a.wait_line_from(0, WAIT, |l| l
            .contains(&format!("Received status from {}", ips[1])))
            .is_some()
    );
    for jump in ["+3600\n", "-7200\n", "+0\n"] {
        std::fs::write(&clock, jump).expect("jump");
        std::thread::sleep(Duration::from_millis(1500));
    }
    let _ = std::fs::remove_file(&clock);
    // The jumps did happen (a's timestamps moved) yet nobody went offline.
    let years: std::collections::BTreeSet<String> = a
        .lines()
        .iter()
        .filter_map(|l| l.get(..13).map(str::to_owned))
        .collect();
    assert!(years.len() >= 2, "the fake clock did not jump: {years:?}");
    for node in [&a, &b] {
        assert!(
            !node.lines().iter().any(|l| l.contains("offline")),
            "{:?}",
            node.lines()
        );
    }
}
