//! Integration tests of sealing (docs/PROTOCOL.md, "Security"): the real
//! binary on loopback with key files.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::util::{
    Block, Node, TempDir, accept_within, connect_from, fake_peer, key, offline, run, send_once,
    status_from, wait_listening,
};

const WAIT: Duration = Duration::from_secs(10);

/// Waits until `node` prints a status from each of `peers` after line `from`.
fn expect_statuses_from(node: &Node, from: usize, peers: &[&str]) {
    for peer in peers {
        assert!(
            node.wait_line_from(from, WAIT, status_from(peer)).is_some(),
            "no status from {peer} after line {from}:\n{}\nstderr:\n{}",
            node.lines().join("\n"),
            node.stderr()
        );
    }
}

/// Accepts the node's connection on a fake peer, greets it as a v1 listener
/// does (so it keeps the connection and sends one frame per interval), and
/// records `count` frames, newlines included.
fn record(listener: &TcpListener, node: &Node, count: usize) -> Vec<Vec<u8>> {
    let mut stream = accept_within(listener, WAIT, node);
    stream.write_all(p2pmon::proto::wire::HELLO).expect("greet");
    stream.set_read_timeout(Some(WAIT)).expect("timeout");
    let mut reader = BufReader::new(stream);
    (0..count)
        .map(|_| {
            let mut frame = Vec::new();
            reader.read_until(b'\n', &mut frame).expect("read frame");
            assert!(frame.ends_with(b"\n"), "partial frame {frame:?}");
            frame
        })
        .collect()
}

fn no_offline(nodes: &[&Node]) {
    for node in nodes {
        assert!(
            !node.lines().iter().any(|l| l.contains("is offline")),
            "{}\nstderr:\n{}",
            node.lines().join("\n"),
            node.stderr()
        );
    }
}

#[test]
fn three_keyed_nodes_see_each_other() {
    let dir = TempDir::new("keyed-cluster");
    let key_file = dir.file("key", &format!("{}\n", key(1)), 0o600);
    let net = Block::take();
    let owned = net.ips([2, 3, 4]);
    let ips = owned.each_ref().map(String::as_str);
    // A long silence threshold: on a loaded 2-core machine the last node may
    // start more than 3 s after the first; a refusal would still show at once
    // (as a rejection, and as a hard offline when it closes a connection).
    let keyed = ["--key-file", key_file.as_str(), "--offline-after", "10s"];
    let nodes: Vec<Node> = ips.iter().map(|ip| Node::on(ip, &ips, &keyed)).collect();
    for (me, node) in nodes.iter().enumerate() {
        let others: Vec<&str> = ips.iter().copied().filter(|ip| *ip != ips[me]).collect();
        expect_statuses_from(node, 0, &others);
    }
    no_offline(&nodes.iter().collect::<Vec<_>>());
    for node in &nodes {
        let stderr = node.stderr();
        assert!(!stderr.contains("neither authenticated"), "{stderr}");
        assert!(!stderr.contains("rejected message"), "{stderr}");
    }
}

#[test]
fn plaintext_and_wrong_key_senders_are_refused() {
    let dir = TempDir::new("refused");
    let good = dir.file("good", &format!("{}\n", key(1)), 0o600);
    let other = dir.file("other", &format!("{}\n", key(2)), 0o600);
    let net = Block::take();
    let owned = net.ips([2, 3, 4, 5, 6]);
    let [receiver_ip, friend, plain_ip, stranger, raw] = owned.each_ref().map(String::as_str);
    let receiver = Node::on(receiver_ip, &[], &["--key-file", &good]);
    wait_listening(&receiver);
    let peer = [receiver_ip];
    let _friend = Node::on(friend, &peer, &["--key-file", &good]);
    let plain = Node::on(plain_ip, &peer, &[]);
    let _stranger = Node::on(stranger, &peer, &["--key-file", &other]);
    send_once(raw, &net.addr(2), br#"{"cpu": 12.5, "memory": 40.3}"#);

    expect_statuses_from(&receiver, 0, &[friend]);
    receiver.expect_stderr(&format!("rejected message from {plain_ip}:"), WAIT);
    receiver.expect_stderr("[plaintext_refused;", WAIT);
    receiver.expect_stderr(&format!("rejected message from {stranger}:"), WAIT);
    receiver.expect_stderr("[bad_seal;", WAIT);
    receiver.expect_stderr(&format!("rejected message from {raw}:"), WAIT);
    // And the node keeps printing its real peer.
    let mark = receiver.lines().len();
    expect_statuses_from(&receiver, mark, &[friend]);
    for refused in [plain_ip, stranger, raw] {
        assert!(
            !receiver.lines().iter().any(|l| status_from(refused)(l)),
            "{refused} got through:\n{}",
            receiver.lines().join("\n")
        );
    }
    // The node without a key says so, once.
    plain.expect_stderr("neither authenticated nor encrypted", WAIT);
    assert_eq!(
        plain.stderr().matches("neither authenticated").count(),
        1,
        "{}",
        plain.stderr()
    );
}

#[test]
fn tampered_truncated_and_oversized_frames_are_refused() {
    let dir = TempDir::new("tampered");
    let key_file = dir.file("key", &format!("{}\n", key(1)), 0o600);
    let keyed = ["--key-file", key_file.as_str()];
    let net = Block::take();
    let owned = net.ips([2, 3, 7, 8, 9, 10]);
    let [
        receiver_ip,
        sender_ip,
        tamperer,
        truncater,
        recorder_ip,
        oversizer,
    ] = owned.each_ref().map(String::as_str);
    let target = net.addr(2);
    let receiver = Node::on(receiver_ip, &[], &keyed);
    wait_listening(&receiver);
    let recorder = fake_peer(&net.addr(9));
    let sender = Node::on(sender_ip, &[receiver_ip, recorder_ip], &keyed);
    let frame = record(&recorder, &sender, 1).remove(0);
    expect_statuses_from(&receiver, 0, &[sender_ip]);

    // One character of the base64 payload changed (still valid base64).
    let mut tampered = frame.clone();
    let at = b"{\"v\":1,\"sealed\":\"".len() + 60;
    tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
    send_once(tamperer, &target, &tampered);
    receiver.expect_stderr(&format!("rejected message from {tamperer}:"), WAIT);
    // Truncated: the payload cut short, frame still well-formed.
    let text = String::from_utf8(frame.clone()).expect("ascii frame");
    let payload = text
        .trim_end()
        .trim_start_matches("{\"v\":1,\"sealed\":\"")
        .trim_end_matches("\"}");
    let bytes = BASE64.decode(payload).expect("base64 payload");
    let truncated = format!(
        "{{\"v\":1,\"sealed\":\"{}\"}}\n",
        BASE64.encode(&bytes[..bytes.len() - 8])
    );
    send_once(truncater, &target, truncated.as_bytes());
    receiver.expect_stderr(&format!("rejected message from {truncater}:"), WAIT);
    // Longer than any frame may be.
    let huge = format!("{{\"v\":1,\"sealed\":\"{}\"}}\n", "A".repeat(70_000));
    send_once(oversizer, &target, huge.as_bytes());
    receiver.expect_stderr(&format!("rejected message from {oversizer}:"), WAIT);
    receiver.expect_stderr("[too_large;", WAIT);

    let stderr = receiver.stderr();
    for source in [tamperer, truncater] {
        let line = stderr
            .lines()
            .find(|l| l.contains(&format!("from {source}:")))
            .expect("logged");
        assert!(line.contains("[bad_seal;"), "{line}");
    }
    let mark = receiver.lines().len();
    expect_statuses_from(&receiver, mark, &[sender_ip]);
    let refused = [tamperer, truncater, oversizer].map(|ip| format!("Received status from {ip}"));
    assert!(
        receiver
            .lines()
            .iter()
            .all(|l| refused.iter().all(|prefix| !l.starts_with(prefix))),
        "{:?}",
        receiver.lines()
    );
}

#[test]
fn a_replayed_stream_does_not_bring_a_dead_node_back() {
    let dir = TempDir::new("replay");
    let key_file = dir.file("key", &format!("{}\n", key(1)), 0o600);
    let keyed = ["--key-file", key_file.as_str(), "--interval", "300ms"];
    // First the attacker stands where the receiver will be and records what
    // the victim sends there: frames sealed for exactly that address.
    let net = Block::take();
    let owned = net.ips([2, 3]);
    let [receiver_ip, victim_ip] = owned.each_ref().map(String::as_str);
    let recorder = fake_peer(&net.addr(2));
    let victim = Node::on(victim_ip, &[receiver_ip], &keyed);
    let recorded = record(&recorder, &victim, 3);
    drop(recorder);

    let receiver = Node::on(receiver_ip, &[], &keyed);
    expect_statuses_from(&receiver, 0, &[victim_ip]);
    victim.signal("KILL");
    receiver.expect_line(&offline(victim_ip), WAIT);
    let mark = receiver.lines().len();

    // Replay from the victim's own address: authentic, addressed right, old.
    let mut replay = connect_from(victim_ip, &net.addr(2));
    replay.write_all(&recorded.concat()).expect("replay");
    receiver.expect_stderr("[replay;", WAIT);
    receiver.expect_stderr("is not above", WAIT);
    drop(replay);
    let back = format!("{victim_ip} is back online");
    let revived = receiver.wait_line_from(mark, Duration::from_secs(2), |l| {
        l.contains(&back) || status_from(victim_ip)(l)
    });
    assert!(
        revived.is_none(),
        "{}\n{}",
        receiver.lines().join("\n"),
        receiver.stderr()
    );
}

#[test]
fn frames_recorded_on_their_way_to_another_node_are_refused() {
    let dir = TempDir::new("elsewhere");
    let key_file = dir.file("key", &format!("{}\n", key(1)), 0o600);
    let keyed = ["--key-file", key_file.as_str()];
    let net = Block::take();
    let owned = net.ips([2, 3, 9]);
    let [receiver_ip, sender_ip, recorder_ip] = owned.each_ref().map(String::as_str);
    let receiver = Node::on(receiver_ip, &[], &keyed);
    wait_listening(&receiver);
    let recorder = fake_peer(&net.addr(9));
    let sender = Node::on(sender_ip, &[receiver_ip, recorder_ip], &keyed);
    let recorded = record(&recorder, &sender, 2);
    expect_statuses_from(&receiver, 0, &[sender_ip]);

    // Replayed from the sender's own address, in time: only `to` gives it away.
    let mut replay = connect_from(sender_ip, &net.addr(2));
    replay.write_all(&recorded.concat()).expect("replay");
    receiver.expect_stderr("[wrong_recipient;", WAIT);
    receiver.expect_stderr(
        &format!("sealed for {}, arrived at {}", net.addr(9), net.addr(2)),
        WAIT,
    );
    drop(replay);
    let mark = receiver.lines().len();
    expect_statuses_from(&receiver, mark, &[sender_ip]);
    no_offline(&[&receiver]);
}

/// Rewrites a node's key file and sends SIGHUP; waits for the reload line.
fn rotate(node: &Node, key_file: &str, keys: &[String]) {
    let before = node.stderr().matches("reloaded key file").count();
    std::fs::write(key_file, format!("{}\n", keys.join("\n"))).expect("write key file");
    node.signal("HUP");
    let deadline = std::time::Instant::now() + WAIT;
    while node.stderr().matches("reloaded key file").count() <= before {
        assert!(
            std::time::Instant::now() < deadline,
            "no reload:\n{}",
            node.stderr()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn rotating_the_key_across_a_running_cluster_with_sighup_loses_no_peer() {
    let dir = TempDir::new("rotation");
    let (old, new) = (key(1), key(2));
    let net = Block::take();
    let owned = net.ips([2, 3, 4]);
    let ips = owned.each_ref().map(String::as_str);
    let files: Vec<String> = (0..3)
        .map(|n| dir.file(&format!("key{n}"), &format!("{old}\n"), 0o600))
        .collect();
    let nodes: Vec<Node> = ips
        .iter()
        .zip(&files)
        .map(|(ip, file)| Node::on(ip, &ips, &["--key-file", file, "--offline-after", "10s"]))
        .collect();
    let all_hear_all = |nodes: &[Node]| {
        let marks: Vec<usize> = nodes.iter().map(|n| n.lines().len()).collect();
        for (me, node) in nodes.iter().enumerate() {
            let others: Vec<&str> = ips.iter().copied().filter(|ip| *ip != ips[me]).collect();
            expect_statuses_from(node, marks[me], &others);
        }
    };
    all_hear_all(&nodes);

    // The procedure of README "Keys and rotation", one node at a time.
    for keys in [
        vec![old.clone(), new.clone()],
        vec![new.clone(), old.clone()],
    ] {
        for (node, file) in nodes.iter().zip(&files) {
            rotate(node, file, &keys);
        }
        all_hear_all(&nodes);
    }
    // Everyone seals with the new key now: after one more reload to reset
    // the counters, the old key opens nothing, which is how an operator
    // knows it can go.
    let last = &nodes[2];
    rotate(last, &files[2], &[new.clone(), old.clone()]);
    all_hear_all(&nodes);
    for (node, file) in nodes.iter().zip(&files) {
        rotate(node, file, std::slice::from_ref(&new));
    }
    let final_reload = last
        .stderr()
        .lines()
        .rfind(|l| l.contains("reloaded key file"))
        .expect("reload line")
        .to_string();
    assert!(final_reload.contains(", key 2: 0"), "{final_reload}");
    assert!(!final_reload.contains("key 1: 0"), "{final_reload}");
    all_hear_all(&nodes);

    no_offline(&nodes.iter().collect::<Vec<_>>());
    for node in &nodes {
        assert!(
            !node.stderr().contains("rejected message"),
            "{}",
            node.stderr()
        );
    }
}

/// Runs the binary with extra environment variables.
fn run_env(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let output = Command::new(crate::util::binary())
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("p2pmon runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn keygen_writes_a_private_key_and_never_overwrites_by_accident() {
    let dir = TempDir::new("keygen");
    // To stdout: one line, 32 bytes of base64.
    let (code, stdout, _) = run(&["keygen"]);
    assert_eq!(code, 0);
    let printed = stdout.trim();
    assert_eq!(BASE64.decode(printed).map(|k| k.len()), Ok(32), "{stdout}");
    let (_, again, _) = run(&["keygen"]);
    assert_ne!(again.trim(), printed, "keys must be random");

    // To a file: mode 0600.
    let out = dir.root().join("key");
    let out_text = out.to_str().expect("path");
    let (code, stdout, stderr) = run(&["keygen", "--out", out_text]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.is_empty(), "the key is not printed: {stdout}");
    assert_eq!(mode(&out), 0o600);
    let written = std::fs::read_to_string(&out).expect("key file");
    assert_eq!(written.lines().count(), 1);
    assert_eq!(BASE64.decode(written.trim()).map(|k| k.len()), Ok(32));

    // Not replaced without --force.
    let (code, _, stderr) = run(&["keygen", "--out", out_text]);
    assert_ne!(code, 0);
    assert!(stderr.contains("--force"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&out).expect("key file"), written);
    // With --force: a new key, and a file made loose meanwhile is private again.
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let (code, _, stderr) = run(&["keygen", "--out", out_text, "--force"]);
    assert_eq!(code, 0, "{stderr}");
    assert_ne!(std::fs::read_to_string(&out).expect("key file"), written);
    assert_eq!(mode(&out), 0o600);
}

#[test]
fn bad_key_files_stop_the_node_with_exit_2_and_a_fix() {
    let dir = TempDir::new("bad-keys");
    let net = Block::take();
    let own_ip = net.ip(1);
    let listen = ["--listen", own_ip.as_str()];
    let loose = dir.file("loose", &format!("{}\n", key(1)), 0o644);
    let not_base64 = dir.file("garbage", "this is not a key\n", 0o600);
    let short = dir.file("short", &format!("{}\n", BASE64.encode([1u8; 16])), 0o600);
    for (file, expected) in [
        (&loose, format!("chmod 600 {loose}")),
        (&not_base64, "not valid base64".to_string()),
        (&short, "exactly 32".to_string()),
    ] {
        let (code, stdout, stderr) = run(&[&listen[..], &["--key-file", file]].concat());
        assert_eq!(code, 2, "{file}: {stderr}");
        assert!(stderr.starts_with("error: "), "{stderr}");
        assert!(stderr.contains(&expected), "{file}: {stderr}");
        assert!(stdout.is_empty(), "nothing starts: {stdout}");
    }
    // Where the key file comes from: flag, then P2PMON_KEY_FILE, then config.
    let config = dir.file(
        "config.toml",
        "key_file = \"/nonexistent/from-config\"\n",
        0o600,
    );
    let with_config = [&listen[..], &["--config", &config]].concat();
    let (code, stderr) = run_env(&with_config, &[]);
    assert_eq!(code, 2);
    assert!(stderr.contains("/nonexistent/from-config"), "{stderr}");
    let env = [("P2PMON_KEY_FILE", "/nonexistent/from-env")];
    let (code, stderr) = run_env(&with_config, &env);
    assert_eq!(code, 2);
    assert!(stderr.contains("/nonexistent/from-env"), "{stderr}");
    let flag = [&with_config[..], &["--key-file", "/nonexistent/from-flag"]].concat();
    let (code, stderr) = run_env(&flag, &env);
    assert_eq!(code, 2);
    assert!(stderr.contains("/nonexistent/from-flag"), "{stderr}");
    // --allow-plaintext without a key is a contradiction.
    let (code, _, stderr) = run(&[&listen[..], &["--allow-plaintext"]].concat());
    assert_eq!(code, 2, "{stderr}");
}

#[test]
fn allow_plaintext_admits_and_logs_plaintext_peers() {
    let dir = TempDir::new("allow-plaintext");
    let key_file = dir.file("key", &format!("{}\n", key(1)), 0o600);
    let net = Block::take();
    let owned = net.ips([2, 3, 4]);
    let [receiver_ip, plain_ip, keyed_ip] = owned.each_ref().map(String::as_str);
    let receiver = Node::on(
        receiver_ip,
        &[],
        &["--key-file", &key_file, "--allow-plaintext"],
    );
    wait_listening(&receiver);
    let _plain = Node::on(plain_ip, &[receiver_ip], &[]);
    let _keyed = Node::on(keyed_ip, &[receiver_ip], &["--key-file", &key_file]);
    expect_statuses_from(&receiver, 0, &[plain_ip, keyed_ip]);
    receiver.expect_stderr(
        &format!("accepted a plaintext message from {plain_ip}"),
        WAIT,
    );
    assert!(
        !receiver
            .stderr()
            .contains(&format!("plaintext message from {keyed_ip}")),
        "{}",
        receiver.stderr()
    );
}
