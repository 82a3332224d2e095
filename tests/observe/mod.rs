//! The status endpoint, `p2pmon members` and event hooks, on the real binary.
//! Blocks: 127.27 (metrics, status, members), 127.28 (bad requests, busy
//! addresses), 127.29 (hooks).

use std::time::{Duration, Instant};

use crate::util::{Node, http, run, status_from, times_of};

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
fn metrics_status_and_members_follow_a_killed_peer() {
    let ips = ["127.27.0.1", "127.27.0.2", "127.27.0.3"];
    let a = Node::on(
        ips[0],
        &ips,
        &["--http", "127.27.0.1:5080", "--name", "alpha"],
    );
    let _b = Node::on(ips[1], &ips, &["--name", "bravo"]);
    let c = Node::on(ips[2], &ips, &["--name", "charlie"]);
    for other in [ips[1], ips[2]] {
        assert!(a.wait_line_from(0, WAIT, status_from(other)).is_some());
    }
    let addr = "127.27.0.1:5080";
    let (code, text) = http(addr, "GET", "/metrics");
    assert_eq!(code, 200);
    let (ok, report) = promtool(&text);
    assert!(ok, "promtool: {report}\n{text}");
    let up_c = r#"p2pmon_peer_up{peer="127.27.0.3",name="charlie"}"#;
    assert_eq!(metric(&text, up_c), Some(1.0), "{text}");
    let cpu = metric(
        &text,
        r#"p2pmon_peer_cpu_ratio{peer="127.27.0.2",name="bravo"}"#,
    );
    assert!(cpu.is_some_and(|r| (0.0..=1.0).contains(&r)), "{text}");
    assert!(metric(&text, "p2pmon_messages_received_total").is_some_and(|n| n >= 2.0));
    assert!(text.contains("p2pmon_build_info{version=\""));
    assert!(metric(&text, "p2pmon_process_start_time_seconds").is_some_and(|t| t > 1.7e9));

    c.signal("KILL");
    a.expect_line("Peer 127.27.0.3 is offline.", WAIT);
    let (_, text) = http(addr, "GET", "/metrics");
    assert_eq!(metric(&text, up_c), Some(0.0), "{text}");
    assert!(
        metric(
            &text,
            r#"p2pmon_peer_state_changes_total{peer="127.27.0.3""#
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
    assert_eq!(find("127.27.0.2")["state"], "online");
    assert_eq!(find("127.27.0.2")["name"], "bravo");
    assert_eq!(find("127.27.0.3")["state"], "offline");
    assert!(
        find("127.27.0.3")["reason"]
            .as_str()
            .is_some_and(|r| r.contains("connection"))
    );
    assert!(find("127.27.0.3")["last_seen_s"].as_f64().is_some());

    let (code, out, err) = run(&["members", "--http", addr]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("PEER"), "{out}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("127.27.0.2") && l.contains("bravo") && l.contains("online")),
        "{out}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("127.27.0.3") && l.contains("charlie") && l.contains("offline")),
        "{out}"
    );
    assert!(
        !out.contains('\x1b'),
        "no colour when stdout is not a terminal"
    );
    let (code, out, _) = run(&["members", "--http", addr, "--json"]);
    assert_eq!(code, 0);
    assert!(serde_json::from_str::<serde_json::Value>(&out).is_ok());

    let (code, _, err) = run(&["members", "--http", "127.27.9.9:5080"]);
    assert_eq!(code, 1);
    assert!(
        err.starts_with("error: no p2pmon node answers at 127.27.9.9:5080"),
        "{err}"
    );
}

#[test]
fn the_endpoint_answers_bad_requests_without_harm() {
    use std::io::{Read, Write};
    let a = Node::on("127.28.0.1", &[], &["--http", "127.28.0.1:5080"]);
    crate::util::wait_listening(&a);
    let addr = "127.28.0.1:5080";
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
    crate::util::send_once(
        "127.28.0.5",
        "127.28.0.1:5000",
        br#"{"cpu": 1, "memory": 2}"#,
    );
    a.expect_line(
        "Received status from 127.28.0.5: CPU=1.0%, Memory=2.0%, Status=online",
        WAIT,
    );
}

#[test]
fn a_busy_http_address_is_fatal_only_when_chosen() {
    let _holder = std::net::TcpListener::bind("127.28.1.1:5080").expect("bind");
    let (code, _, err) = run(&["--listen", "127.28.1.1", "--http", "127.28.1.1:5080"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("error: cannot serve HTTP on 127.28.1.1:5080: address already in use"),
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
    let ips = ["127.29.0.1", "127.29.0.2"];
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
    a.expect_line("Peer 127.29.0.2 is offline.", WAIT);
    let mut b = Node::on(ips[1], &ips, &["--interval", "300ms"]);
    a.expect_line("Peer 127.29.0.2 is back online.", WAIT);
    b.signal("INT");
    b.wait_exit(WAIT);
    a.expect_line("Peer 127.29.0.2 left.", WAIT);
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
    assert!(lines[0].starts_with("offline 127.29.0.2 {"), "{contents}");
    assert!(lines[1].starts_with("online 127.29.0.2 {"), "{contents}");
    assert!(lines[2].starts_with("left 127.29.0.2 {"), "{contents}");
    let json: serde_json::Value =
        serde_json::from_str(lines[0].splitn(3, ' ').nth(2).unwrap_or("")).expect("json on stdin");
    assert_eq!(json["event"], "offline");
    assert!(json["reason"].as_str().is_some());
    // The sleeping hooks never held up the node: statuses kept coming on time.
    let start = Instant::now();
    let c = Node::on(ips[1], &ips, &["--interval", "300ms"]);
    assert!(
        a.wait_line_from(0, WAIT, |l| l == "Peer 127.29.0.2 is back online.")
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
