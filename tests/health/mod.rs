//! The host's health in real statuses: a three-node cluster's json `status`
//! events carry every field with the values this machine has (`nproc`, `df`,
//! /proc/uptime, /proc/swaps); `--details` (flag or config key) extends the
//! text line while the default line stays the Python original's; the first
//! frame on a connection stays under the Python original's single read.

use std::io::{BufRead, BufReader, Read};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::util::{Block, Node, TempDir, accept_within, fake_peer, key, status_from};

const WAIT: Duration = Duration::from_secs(10);

/// What `cmd args` prints, trimmed.
fn output_of(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"));
    assert!(out.status.success(), "{cmd} {args:?} failed");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `df`'s Use% for `/`, as a number.
fn df_root_percent() -> f64 {
    let text = output_of("df", &["--output=target,pcent", "/"]);
    let line = text.lines().nth(1).unwrap_or_default();
    line.split_whitespace()
        .nth(1)
        .and_then(|p| p.trim_end_matches('%').parse().ok())
        .unwrap_or_else(|| panic!("df printed {text:?}"))
}

fn proc_uptime() -> f64 {
    let text = std::fs::read_to_string("/proc/uptime").expect("/proc/uptime");
    text.split_whitespace()
        .next()
        .and_then(|s| s.parse().ok())
        .expect("uptime")
}

/// Whether the host has swap (a line past /proc/swaps' header).
fn host_has_swap() -> bool {
    std::fs::read_to_string("/proc/swaps").is_ok_and(|t| t.lines().count() > 1)
}

/// The json status events a node printed from `peer`.
fn statuses_from(node: &Node, peer: &str) -> Vec<Value> {
    node.lines()
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["event"] == "status" && e["peer"] == peer)
        .collect()
}

#[test]
fn json_statuses_carry_the_hosts_health_as_the_machine_reports_it() {
    let net = Block::take();
    let owned = net.ips([2, 3, 4]);
    let ips = owned.each_ref().map(String::as_str);
    let extra = ["--interval", "300ms", "--format", "json"];
    let nodes: Vec<Node> = ips.iter().map(|ip| Node::on(ip, &ips, &extra)).collect();
    // Two statuses from each peer on every node.
    for (me, node) in ips.iter().zip(&nodes) {
        for peer in ips.iter().filter(|p| *p != me) {
            let from_peer = |l: &str| {
                l.contains("\"event\":\"status\"") && l.contains(&format!("\"peer\":\"{peer}\""))
            };
            let first = node.wait_line_from(0, WAIT, from_peer);
            let second = first.and_then(|(at, _)| node.wait_line_from(at + 1, WAIT, from_peer));
            assert!(
                second.is_some(),
                "{me}: no two statuses from {peer}\n{}\nstderr:\n{}",
                node.lines().join("\n"),
                node.stderr()
            );
        }
    }
    let cpus: u64 = output_of("nproc", &["--all"]).parse().expect("nproc");
    let df = df_root_percent();
    let uptime = proc_uptime();
    let swap = host_has_swap();
    for (me, node) in ips.iter().zip(&nodes) {
        for peer in ips.iter().filter(|p| *p != me) {
            let statuses = statuses_from(node, peer);
            let [first, second] = [&statuses[0], &statuses[statuses.len() - 1]];
            for status in [first, second] {
                let context = format!("{me} from {peer}: {status}");
                assert_eq!(status["cpus"].as_u64(), Some(cpus), "{context}");
                let load: Vec<f64> = status["load"]
                    .as_array()
                    .unwrap_or_else(|| panic!("no load: {context}"))
                    .iter()
                    .filter_map(Value::as_f64)
                    .collect();
                assert_eq!(load.len(), 3, "{context}");
                assert!(load.iter().all(|x| x.is_finite() && *x >= 0.0), "{context}");
                match status["swap"].as_f64() {
                    Some(used) => assert!(swap && (0.0..=100.0).contains(&used), "{context}"),
                    None => assert!(!swap, "the host has swap: {context}"),
                }
                let fs = status["fs"]
                    .as_array()
                    .unwrap_or_else(|| panic!("no fs: {context}"));
                assert!(!fs.is_empty() && fs.len() <= 8, "{context}");
                let used: Vec<f64> = fs.iter().filter_map(|f| f["used"].as_f64()).collect();
                assert_eq!(used.len(), fs.len(), "{context}");
                assert!(
                    used.windows(2).all(|w| w[0] >= w[1]),
                    "fullest first: {context}"
                );
                assert!(fs.iter().all(|f| f["size"].as_u64().is_some_and(|s| s > 0)));
                let mounts: Vec<&str> = fs.iter().filter_map(|f| f["mount"].as_str()).collect();
                for pseudo in ["/proc", "/sys", "/dev", "/dev/shm", "/sys/fs/cgroup"] {
                    assert!(!mounts.contains(&pseudo), "{pseudo} listed: {context}");
                }
                let root = fs
                    .iter()
                    .find(|f| f["mount"] == "/")
                    .unwrap_or_else(|| panic!("no / in fs: {context}"));
                let root_used = root["used"].as_f64().unwrap_or(-1.0);
                assert!((root_used - df).abs() <= 1.0, "df says {df}%: {context}");
                let up = status["uptime_s"].as_f64().unwrap_or(-1.0);
                assert!(
                    (up - uptime).abs() <= 5.0,
                    "/proc/uptime {uptime}: {context}"
                );
                assert!(status["net_rx"].as_u64().is_some(), "{context}");
                assert!(status["net_tx"].as_u64().is_some(), "{context}");
            }
            for counter in ["net_rx", "net_tx"] {
                assert!(
                    second[counter].as_u64() >= first[counter].as_u64(),
                    "{counter} went back: {first} then {second}"
                );
            }
        }
    }
}

#[test]
fn details_extend_the_text_line_and_the_default_line_is_unchanged() {
    let net = Block::take();
    let owned = net.ips([2, 3, 4]);
    let ips = owned.each_ref().map(String::as_str);
    let dir = TempDir::new("details");
    let config = dir.file("p2pmon.toml", "details = true\n", 0o644);
    let plain = Node::on(ips[0], &ips, &["--interval", "300ms"]);
    let detailed = Node::on(ips[1], &ips, &["--interval", "300ms", "-c", &config]);
    let flagged = Node::on(ips[2], &ips, &["--interval", "300ms", "--details"]);
    for (node, from) in [(&plain, ips[1]), (&detailed, ips[0]), (&flagged, ips[0])] {
        assert!(
            node.wait_line_from(0, WAIT, status_from(from)).is_some(),
            "no status from {from}\n{}\nstderr:\n{}",
            node.lines().join("\n"),
            node.stderr()
        );
    }
    let sentence = |line: &str| {
        let rest = line.strip_prefix(&format!("Received status from {}: CPU=", ips[0]))?;
        let (numbers, details) = rest.split_once(", Status=online")?;
        let (cpu, memory) = numbers.split_once("%, Memory=")?;
        let memory = memory.strip_suffix('%')?;
        let one_decimal = |x: &str| x.split_once('.').is_some_and(|(_, d)| d.len() == 1);
        (one_decimal(cpu) && one_decimal(memory)).then(|| details.to_string())
    };
    for node in [&detailed, &flagged] {
        let line = node
            .lines()
            .into_iter()
            .find(|l| status_from(ips[0])(l))
            .unwrap_or_default();
        let details = sentence(&line).unwrap_or_else(|| panic!("not the sentence: {line}"));
        let cpus = output_of("nproc", &["--all"]);
        assert!(details.starts_with(" load="), "{line}");
        for part in [
            format!(" cpus={cpus} "),
            " disk=/:".into(),
            " rx=".into(),
            " tx=".into(),
            " up=".into(),
        ] {
            assert!(details.contains(&part), "{part:?} missing: {line}");
        }
        assert_eq!(details.contains(" swap="), host_has_swap(), "{line}");
    }
    // Without --details: the Python original's line, nothing after it.
    let line = plain
        .lines()
        .into_iter()
        .find(|l| status_from(ips[1])(l))
        .unwrap_or_default();
    let rest = line.replace(ips[1], ips[0]);
    assert_eq!(sentence(&rest).as_deref(), Some(""), "{line}");
}

/// A node's first frame to a peer that has not greeted: the bare status,
/// every part of the health in it, under the first-frame bound. With a key:
/// the sealed status a greeting peer gets. Both sizes are printed (the
/// status size the issue asks for).
#[test]
fn the_first_frame_carries_the_health_and_fits_one_python_recv() {
    let net = Block::take();
    let recorder = fake_peer(&net.addr(9));
    let sender = Node::on(&net.ip(2), &[&net.addr(9)], &["--interval", "300ms"]);
    let stream = accept_within(&recorder, WAIT, &sender);
    stream.set_read_timeout(Some(WAIT)).expect("timeout");
    // The Python original's read: one recv of 1024 bytes.
    let mut buffer = [0u8; 1024];
    let mut reader = BufReader::new(stream);
    let n = reader.get_mut().read(&mut buffer).expect("read");
    let frame = &buffer[..n];
    println!(
        "bare status: {n} bytes: {}",
        String::from_utf8_lossy(frame).trim_end()
    );
    assert!(frame.ends_with(b"\n"), "{frame:?}");
    assert!(n < p2pmon::limits::MAX_FIRST_FRAME);
    let status: Value = serde_json::from_slice(frame).expect("json");
    for field in [
        "cpu", "memory", "load", "cpus", "fs", "net_rx", "net_tx", "uptime_s",
    ] {
        assert!(!status[field].is_null(), "{field} missing: {status}");
    }
    drop(reader);
    drop(sender);

    let dir = TempDir::new("health-sealed");
    let key_file = dir.file("key", &key(5), 0o600);
    let recorder = fake_peer(&net.addr(8));
    let sender = Node::on(
        &net.ip(3),
        &[&net.addr(8)],
        &["--interval", "300ms", "--key-file", &key_file],
    );
    let mut stream = accept_within(&recorder, WAIT, &sender);
    std::io::Write::write_all(&mut stream, p2pmon::proto::wire::HELLO).expect("greet");
    stream.set_read_timeout(Some(WAIT)).expect("timeout");
    let mut reader = BufReader::new(stream);
    let mut sealed = Vec::new();
    reader.read_until(b'\n', &mut sealed).expect("read");
    println!("sealed status: {} bytes", sealed.len());
    assert!(sealed.starts_with(b"{\"v\":1,\"sealed\":\""), "{sealed:?}");
    assert!(sealed.len() < p2pmon::limits::MAX_FRAME);
}
