//! The status endpoint, `p2pmon members` and event hooks, on the real binary.

use std::time::{Duration, Instant};

use crate::util::{
    Block, Node, back_online, http, left, offline, received, run, status_from, times_of,
};

const WAIT: Duration = Duration::from_secs(15);

/// Runs `promtool check metrics` on `text`.
fn promtool(text: &str) -> (bool, String) {
    use std::io::Write;
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool is needed (Debian package prometheus; .ci/run installs it)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    let output = child.wait_with_output().expect("promtool runs");
    let mut report = String::from_utf8_lossy(&output.stdout).into_owned();
    report.push_str(&String::from_utf8_lossy(&output.stderr));
    (output.status.success(), report)
}

fn metric(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|line| line.starts_with(prefix))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

#[test]
#[ignore = "needs promtool (Debian package prometheus)"]
fn metrics_status_and_members_follow_a_killed_peer() {
    let net = Block::take();
    let owned = net.ips([1, 2, 3]);
    let ips = owned.each_ref().map(String::as_str);
    let addr = net.http(1);
    let addr = addr.as_str();
    let a = Node::on(ips[0], &ips, &["--http", addr, "--name", "alpha"]);
    let _b = Node::on(ips[1], &ips, &["--name", "bravo"]);
    let c = Node::on(ips[2], &ips, &["--name", "charlie"]);
    for other in [ips[1], ips[2]] {
        assert!(a.wait_line_from(0, WAIT, status_from(other)).is_some());
    }
    let (code, text) = http(addr, "GET", "/metrics");
    assert_eq!(code, 200);
    let (ok, report) = promtool(&text);
    assert!(ok, "promtool: {report}\n{text}");
    let up_c = format!(r#"p2pmon_peer_up{{peer="{}",name="charlie"}}"#, ips[2]);
    let up_c = up_c.as_str();
    assert_eq!(metric(&text, up_c), Some(1.0), "{text}");
    let cpu = metric(
        &text,
        &format!(r#"p2pmon_peer_cpu_ratio{{peer="{}",name="bravo"}}"#, ips[1]),
    );
    assert!(cpu.is_some_and(|r| (0.0..=1.0).contains(&r)), "{text}");
    assert!(metric(&text, "p2pmon_messages_received_total").is_some_and(|n| n >= 2.0));
    assert!(text.contains("p2pmon_build_info{version=\""));
    assert!(metric(&text, "p2pmon_process_start_time_seconds").is_some_and(|t| t > 1.7e9));

    c.signal("KILL");
    a.expect_line(&offline(ips[2]), WAIT);
    let (_, text) = http(addr, "GET", "/metrics");
    assert_eq!(metric(&text, up_c), Some(0.0), "{text}");
    assert!(
        metric(
            &text,
            &format!(r#"p2pmon_peer_state_changes_total{{peer="{}""#, ips[2])
        )
        .is_some_and(|n| n >= 2.0)
    );

    let (code, body) = http(addr, "GET", "/status");
    assert_eq!(code, 200);
    let status: serde_json::Value = serde_json::from_str(&body).expect("status json");
    assert_eq!(status["node"]["name"], "alpha");
    assert!(status["node"]["cpu"].as_f64().is_some());
    let peers = status["peers"].as_array().expect("peers");
    let find = |ip: &str| {
        peers
            .iter()
            .find(|p| p["peer"] == ip)
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(find(ips[1])["state"], "online");
    assert_eq!(find(ips[1])["name"], "bravo");
    assert_eq!(find(ips[2])["state"], "offline");
    assert!(
        find(ips[2])["reason"]
            .as_str()
            .is_some_and(|r| r.contains("connection"))
    );
    assert!(find(ips[2])["last_seen_s"].as_f64().is_some());

    let (code, out, err) = run(&["members", "--http", addr]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("PEER"), "{out}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(ips[1]) && l.contains("bravo") && l.contains("online")),
        "{out}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(ips[2]) && l.contains("charlie") && l.contains("offline")),
        "{out}"
    );
    assert!(
        !out.contains('\x1b'),
        "no colour when stdout is not a terminal"
    );
    let (code, out, _) = run(&["members", "--http", addr, "--json"]);
    assert_eq!(code, 0);
    assert!(serde_json::from_str::<serde_json::Value>(&out).is_ok());

    let nobody = format!("{}:5080", net.ip_at(9, 9));
    let (code, _, err) = run(&["members", "--http", &nobody]);
    assert_eq!(code, 1);
    assert!(
        err.starts_with(&format!("error: no p2pmon node answers at {nobody}")),
        "{err}"
    );
}

#[test]
fn the_endpoint_answers_bad_requests_without_harm() {
    use std::io::{Read, Write};
    let net = Block::take();
    let addr = net.http(1);
    let addr = addr.as_str();
    let a = Node::on(&net.ip(1), &[], &["--http", addr]);
    crate::util::wait_listening(&a);
    assert_eq!(http(addr, "GET", "/healthz"), (200, "ok\n".to_string()));
    assert_eq!(http(addr, "GET", "/nope").0, 404);
    assert_eq!(http(addr, "POST", "/status").0, 405);
    assert_eq!(http(addr, "DELETE", "/metrics").0, 405);
    // Garbage, and a request larger than the limit.
    let mut garbage = std::net::TcpStream::connect(addr).expect("connect");
    garbage
        .write_all(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\r\n\r\n")
        .expect("write");
    let mut answer = String::new();
    let _ = garbage.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer:?}");
    let mut huge = std::net::TcpStream::connect(addr).expect("connect");
    let _ = huge.write_all(format!("GET / HTTP/1.1\r\nX: {}\r\n", "a".repeat(20_000)).as_bytes());
    let mut answer = String::new();
    let _ = huge.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:?}");
    // Many idle clients: the endpoint caps them and keeps answering once they go.
    let idle: Vec<_> = (0..40)
        .filter_map(|_| std::net::TcpStream::connect(addr).ok())
        .collect();
    drop(idle);
    let deadline = Instant::now() + WAIT;
    while http(addr, "GET", "/healthz").0 != 200 {
        assert!(Instant::now() < deadline, "the endpoint never recovered");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The node itself is unaffected.
    crate::util::send_once(&net.ip(5), &net.addr(1), br#"{"cpu": 1, "memory": 2}"#);
    a.expect_line(&received(&net.ip(5), "1.0", "2.0"), WAIT);
}

#[test]
fn a_busy_http_address_is_fatal_only_when_chosen() {
    let net = Block::take();
    let _holder = std::net::TcpListener::bind(net.http(1)).expect("bind");
    let (code, _, err) = run(&["--listen", &net.ip(1), "--http", &net.http(1)]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!(
            "error: cannot serve HTTP on {}: address already in use",
            net.http(1)
        )),
        "{err}"
    );
}

#[test]
fn hooks_see_events_and_a_hanging_hook_delays_nothing() {
    let dir = std::env::temp_dir().join(format!("p2pmon-hooks-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let log = dir.join("events.log");
    let record = format!(
        "echo \"$P2PMON_EVENT $P2PMON_PEER $(cat | tr -d '\\n')\" >> {}",
        log.display()
    );
    let net = Block::take();
    let owned = net.ips([1, 2]);
    let ips = owned.each_ref().map(String::as_str);
    let a = Node::on(
        ips[0],
        &ips,
        &[
            "--on-event",
            &record,
            "--on-event",
            "sleep 1000",
            "--interval",
            "300ms",
        ],
    );
    let mut b = Node::on(ips[1], &ips, &["--interval", "300ms"]);
    assert!(a.wait_line_from(0, WAIT, status_from(ips[1])).is_some());
    b.signal("KILL");
    b.wait_exit(WAIT);
    a.expect_line(&offline(ips[1]), WAIT);
    let mut b = Node::on(ips[1], &ips, &["--interval", "300ms"]);
    a.expect_line(&back_online(ips[1]), WAIT);
    b.signal("INT");
    b.wait_exit(WAIT);
    a.expect_line(&left(ips[1]), WAIT);
    let deadline = Instant::now() + WAIT;
    let contents = loop {
        let contents = std::fs::read_to_string(&log).unwrap_or_default();
        if contents.lines().count() >= 3 || Instant::now() >= deadline {
            break contents;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let lines: Vec<&str> = contents.lines().collect();
    assert!(lines.len() >= 3, "{contents}");
    for (line, event) in lines.iter().zip(["offline", "online", "left"]) {
        let expected = format!("{event} {} {{", ips[1]);
        assert!(line.starts_with(&expected), "{contents}");
    }
    let json: serde_json::Value =
        serde_json::from_str(lines[0].splitn(3, ' ').nth(2).unwrap_or("")).expect("json on stdin");
    assert_eq!(json["event"], "offline");
    assert!(json["reason"].as_str().is_some());
    // The sleeping hooks never held up the node: statuses kept coming on time.
    let start = Instant::now();
    let c = Node::on(ips[1], &ips, &["--interval", "300ms"]);
    assert!(
        a.wait_line_from(0, WAIT, |l| l == back_online(ips[1]))
            .is_some()
    );
    std::thread::sleep(Duration::from_secs(2));
    let times: Vec<Instant> = times_of(&a, status_from(ips[1]))
        .into_iter()
        .filter(|t| *t > start + Duration::from_millis(500))
        .collect();
    let gap = times
        .windows(2)
        .map(|w| w[1].duration_since(w[0]))
        .max()
        .unwrap_or_default();
    assert!(
        times.len() >= 3 && gap <= Duration::from_millis(700),
        "{} statuses, gap {gap:?}",
        times.len()
    );
    drop(c);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A plaintext v1 status with every health field (DESIGN.md "Host health"),
/// as a fake peer listening on `port` sends it; the mount point has the
/// characters a Prometheus label must escape.
fn health_status(port: u16, seq: u64) -> String {
    format!(
        "{{\"v\":1,\"type\":\"status\",\"node\":\"fake \\\"one\\\"\",\"port\":{port},\"boot\":1,\
         \"seq\":{seq},\"ts\":1,\"interval_ms\":1000,\"cpu\":1,\"memory\":2,\
         \"load\":[0.5,1.25,2],\"cpus\":4,\"swap\":12.5,\
         \"fs\":[{{\"mount\":\"/srv \\\"x\\\"\\\\y\",\"used\":90,\"size\":1099511627776}},\
         {{\"mount\":\"/\",\"used\":71.3,\"size\":1073741824}}],\
         \"net_rx\":10000000000,\"net_tx\":{tx},\"uptime_s\":{uptime}}}\n",
        // 5 s of uptime and 5 × 2 KiB sent per status: TX 2.0K/s, RX 0B/s.
        uptime = 3600 + seq * 5,
        tx = 1000 + seq * 5 * 2048,
    )
}

#[test]
#[ignore = "needs promtool (Debian package prometheus)"]
fn a_peers_health_reaches_metrics_status_and_members() {
    let net = Block::take();
    let addr = net.http(1);
    let addr = addr.as_str();
    let a = Node::on(&net.ip(1), &[], &["--http", addr, "--name", "alpha"]);
    crate::util::wait_listening(&a);
    let fake = net.ip(5);
    crate::util::send_once(&fake, &net.addr(1), health_status(5000, 0).as_bytes());
    a.expect_line(&received(&fake, "1.0", "2.0"), WAIT);

    let (code, text) = http(addr, "GET", "/metrics");
    assert_eq!(code, 200);
    let (ok, report) = promtool(&text);
    assert!(ok, "promtool: {report}\n{text}");
    let labels = format!(r#"peer="{fake}",name="fake \"one\"""#);
    for (name, value) in [
        ("p2pmon_peer_load1", 0.5),
        ("p2pmon_peer_load5", 1.25),
        ("p2pmon_peer_load15", 2.0),
        ("p2pmon_peer_cpus", 4.0),
        ("p2pmon_peer_swap_ratio", 0.125),
        ("p2pmon_peer_network_receive_bytes_total", 1e10),
        ("p2pmon_peer_network_transmit_bytes_total", 1000.0),
    ] {
        let series = format!("{name}{{{labels}}} ");
        assert_eq!(metric(&text, &series), Some(value), "{series}\n{text}");
    }
    let mount = |name: &str, mountpoint: &str| {
        metric(
            &text,
            &format!(r#"{name}{{{labels},mountpoint="{mountpoint}"}} "#),
        )
    };
    let odd = r#"/srv \"x\"\\y"#;
    assert_eq!(mount("p2pmon_peer_filesystem_used_ratio", odd), Some(0.9));
    assert_eq!(mount("p2pmon_peer_filesystem_used_ratio", "/"), Some(0.713));
    assert_eq!(
        mount("p2pmon_peer_filesystem_size_bytes", odd),
        Some(1_099_511_627_776.0)
    );
    let boot = metric(
        &text,
        &format!("p2pmon_peer_boot_time_seconds{{{labels}}} "),
    );
    let unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    assert!(
        boot.is_some_and(|b| (unix - 3600.0 - b).abs() < 10.0),
        "{boot:?}\n{text}"
    );
    assert!(text.contains("# TYPE p2pmon_peer_network_receive_bytes_total counter"));

    let (code, body) = http(addr, "GET", "/status");
    assert_eq!(code, 200);
    let status: serde_json::Value = serde_json::from_str(&body).expect("status json");
    let peer = status["peers"]
        .as_array()
        .and_then(|peers| peers.iter().find(|p| p["peer"] == fake.as_str()))
        .cloned()
        .unwrap_or_default();
    assert_eq!(peer["load"], serde_json::json!([0.5, 1.25, 2.0]), "{body}");
    assert_eq!(peer["cpus"], 4);
    assert_eq!(peer["swap"], 12.5);
    assert_eq!(peer["fs"][0]["mount"], "/srv \"x\"\\y");
    assert_eq!(peer["fs"][1]["used"], 71.3);
    assert_eq!(peer["net_rx"], 10_000_000_000_u64);
    assert_eq!(peer["uptime_s"], 3600);

    // A one-shot members table: health columns after the old ones, no rates.
    let (code, out, err) = run(&["members", "--http", addr]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("PEER")
            && lines[0].ends_with("SINCE  LOAD  DISK              RX/s  TX/s"),
        "{out}"
    );
    assert!(
        lines[1].starts_with(&fake) && lines[1].ends_with(r#"0.50  90.0% /srv "x"\y  -     -"#),
        "{out}"
    );
}

#[test]
fn top_takes_network_rates_from_successive_statuses() {
    let net = Block::take();
    let addr = net.http(1);
    let addr = addr.as_str();
    let a = Node::on(&net.ip(1), &[], &["--http", addr]);
    crate::util::wait_listening(&a);
    let fake = net.ip(5);
    crate::util::send_once(&fake, &net.addr(1), health_status(5000, 0).as_bytes());
    a.expect_line(&received(&fake, "1.0", "2.0"), WAIT);
    let top = Node::start(&["top", "--http", addr, "--count", "3"]);
    // The first table has one reading: no rate yet.
    top.expect_line_matching(|l| l.starts_with(&fake), WAIT);
    assert!(
        top.lines()
            .iter()
            .any(|l| l.starts_with(&fake) && l.ends_with("-     -")),
        "{:?}",
        top.lines()
    );
    crate::util::send_once(&fake, &net.addr(1), health_status(5000, 1).as_bytes());
    let rated = |l: &str| l.starts_with(&fake) && l.ends_with("0B/s  2.0K/s");
    top.expect_line_matching(rated, WAIT);
}
