//! Adversarial tests: see `mod.rs` for the item list.
//!
//! Item 10, hooks: more than eight `--on-event` commands used
//! to run none; one source's events could fill the queue so that a real
//! peer's offline never ran its hook (with a warning per dropped event); a
//! timed-out hook's children survived it.

use std::time::{Duration, Instant};

use crate::util::{
    Block, Node, TempDir, left, offline, run_within, send_once, status_from, wait_listening,
};

const WAIT: Duration = Duration::from_secs(10);

/// A v1 status then a leave from `port`: one "left" event (a hook event).
fn status_then_leave(port: u16) -> Vec<u8> {
    let header =
        format!(r#""v":1,"node":"x{port}","port":{port},"boot":1,"ts":1,"interval_ms":1000"#);
    format!(
        "{{{header},\"type\":\"status\",\"seq\":0,\"cpu\":1,\"memory\":2}}\n{{{header},\"type\":\"leave\",\"seq\":1}}\n"
    )
    .into_bytes()
}

/// Waits until `done` holds for the file's text (or the deadline); returns the text.
fn file_until(path: &str, timeout: Duration, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if done(&text) || Instant::now() >= deadline {
            return text;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether `pid` is a live process (a zombie waiting for its reaper is not).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            // "pid (comm) S ...": the state follows the last ')'.
            let state = stat.rsplit(')').next().unwrap_or("").trim_start();
            !state.starts_with('Z') && !state.starts_with('X')
        }
        Err(_) => false,
    }
}

#[test]
fn nine_hook_commands_all_run_for_one_event() {
    let dir = TempDir::new("adv-nine-hooks");
    let mut args = vec!["--http".to_string(), "off".to_string()];
    for n in 0..9 {
        args.push("--on-event".into());
        args.push(format!(
            "echo \"$P2PMON_EVENT\" > {}",
            dir.path(&format!("ran.{n}"))
        ));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let net = Block::take();
    let node = Node::on(&net.ip(1), &[], &args);
    wait_listening(&node);
    send_once(&net.ip(2), &net.addr(1), &status_then_leave(5000));
    node.expect_line(&left(&net.ip(2)), WAIT);
    let deadline = Instant::now() + WAIT;
    let ran = loop {
        let ran = (0..9)
            .filter(|n| {
                std::fs::read_to_string(dir.path(&format!("ran.{n}"))).unwrap_or_default()
                    == "left\n"
            })
            .count();
        if ran == 9 || Instant::now() >= deadline {
            break ran;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(ran, 9, "{}", node.stderr());
}

#[test]
fn more_hook_commands_than_the_cap_exit_2_naming_the_limit() {
    let net = Block::take();
    let listen = net.ip(1);
    let mut args = vec!["--listen", &listen, "--http", "off"];
    for _ in 0..33 {
        args.extend(["--on-event", "true"]);
    }
    let (code, _, err) = run_within(&args, Duration::from_secs(5));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--on-event") && err.contains("32"), "{err}");
}

#[test]
fn a_timed_out_hook_is_killed_with_its_whole_process_group() {
    let dir = TempDir::new("adv-hook-group");
    let waits = dir.path("waits.pid");
    let detaches = dir.path("detaches.pid");
    // One hook waits for its child (sh is killed at the timeout, the sleep
    // used to survive); one leaves a child behind and exits at once.
    let waiting = format!("sleep 1000 & echo $! > {waits}; wait");
    let detaching = format!("sleep 1000 & echo $! > {detaches}");
    let net = Block::take();
    let node = Node::on(
        &net.ip(1),
        &[],
        &["--on-event", &waiting, "--on-event", &detaching],
    );
    wait_listening(&node);
    send_once(&net.ip(2), &net.addr(1), &status_then_leave(5000));
    node.expect_line(&left(&net.ip(2)), WAIT);
    let pid_in = |path: &str| -> u32 {
        let text = file_until(path, WAIT, |t| t.ends_with('\n'));
        text.trim()
            .parse()
            .unwrap_or_else(|_| panic!("no pid in {path}: {text:?}\n{}", node.stderr()))
    };
    let pids = [pid_in(&waits), pid_in(&detaches)];
    let started = Instant::now();
    assert!(pids.iter().all(|pid| alive(*pid)), "children not running");
    // HOOK_TIMEOUT is 10 s; allow a little for the reaper's tick.
    let deadline = started + Duration::from_secs(14);
    while pids.iter().any(|pid| alive(*pid)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let survivors: Vec<u32> = pids.iter().copied().filter(|pid| alive(*pid)).collect();
    for pid in &survivors {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
    assert!(
        survivors.is_empty(),
        "hook children {survivors:?} outlived the timeout\n{}",
        node.stderr()
    );
    node.expect_stderr("killed", Duration::from_secs(1));
}

#[test]
fn hook_processes_do_not_outlive_the_node() {
    let dir = TempDir::new("adv-hook-exit");
    let pid_file = dir.path("child.pid");
    let hook = format!("sleep 1000 & echo $! > {pid_file}; wait");
    let net = Block::take();
    let mut node = Node::on(&net.ip(1), &[], &["--on-event", &hook]);
    wait_listening(&node);
    send_once(&net.ip(2), &net.addr(1), &status_then_leave(5000));
    let text = file_until(&pid_file, WAIT, |t| t.ends_with('\n'));
    let pid: u32 = text.trim().parse().expect("pid");
    assert!(alive(pid));
    node.signal("TERM");
    assert!(node.wait_exit(WAIT).is_some());
    let deadline = Instant::now() + Duration::from_secs(2);
    while alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let survived = alive(pid);
    if survived {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
    assert!(!survived, "hook child {pid} outlived the node");
}

#[test]
fn a_flood_of_one_sources_events_does_not_push_out_another_peers_offline_hook() {
    let dir = TempDir::new("adv-hook-flood");
    let log = dir.path("events.log");
    // Slow hooks (2 s each, 8 at once): the queue backs up.
    let hook = format!("echo \"$P2PMON_EVENT $P2PMON_PEER\" >> {log}; sleep 2");
    let net = Block::take();
    let ips = net.ips([1, 2]);
    let ips = [ips[0].as_str(), ips[1].as_str()];
    let a = Node::on(ips[0], &ips, &["--on-event", &hook]);
    let mut b = Node::on(ips[1], &ips, &[]);
    assert!(a.wait_line_from(0, WAIT, status_from(ips[1])).is_some());
    // 300 "peers" (one address, many declared ports) each join and leave.
    for port in 1000..1300u16 {
        send_once(&net.ip(9), &net.addr(1), &status_then_leave(port));
    }
    a.expect_line(&left(&format!("{}:1299", net.ip(9))), WAIT);
    b.signal("KILL");
    b.wait_exit(WAIT);
    a.expect_line(&offline(ips[1]), WAIT);
    let hook_ran = format!("offline {}", ips[1]);
    let text = file_until(&log, WAIT, |t| t.contains(&hook_ran));
    assert!(
        text.contains(&hook_ran),
        "the real peer's offline never ran its hook:\n{text}"
    );
    // Drops are counted and summarised, not logged one by one.
    let stderr = a.stderr();
    let drop_lines = stderr
        .lines()
        .filter(|line| line.contains("hook") && line.contains("dropped"))
        .count();
    assert!(drop_lines <= 2, "{drop_lines} lines:\n{stderr}");
}
