//! Operations: SIGHUP reloads the config file's peer list (added peers get
//! statuses, removed ones a leave, other connections stay), survives a bad
//! file, and leaves command-line peers alone; the man page, completions and
//! the systemd unit.

use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::util::{
    Block, Node, accept_within, fake_peer, left, offline, run, status_from, wait_listening,
};

const WAIT: Duration = Duration::from_secs(10);

/// A config file of the test's own, removed on drop.
struct ConfigFile(PathBuf);

impl ConfigFile {
    fn new(test: &str, text: &str) -> ConfigFile {
        let path =
            std::env::temp_dir().join(format!("p2pmon-ops-{test}-{}.toml", std::process::id()));
        let file = ConfigFile(path);
        file.write(text);
        file
    }

    fn write(&self, text: &str) {
        std::fs::write(&self.0, text).expect("write config");
    }

    fn path(&self) -> &str {
        self.0.to_str().expect("utf-8 path")
    }
}

impl Drop for ConfigFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Rewrites the file, sends SIGHUP and waits for the reload's summary line
/// (the n-th one), which it returns.
fn reload(node: &Node, file: &ConfigFile, text: &str, n: usize) -> String {
    file.write(text);
    node.signal("HUP");
    let deadline = Instant::now() + WAIT;
    loop {
        let stderr = node.stderr();
        if let Some(line) = stderr.lines().filter(|l| l.contains("reload: ")).nth(n - 1) {
            return line.to_string();
        }
        assert!(Instant::now() < deadline, "no reload line {n}:\n{stderr}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Reads one frame (a line) from a fake peer's connection; `None` on EOF.
fn frame(reader: &mut BufReader<TcpStream>) -> Option<String> {
    let mut line = String::new();
    match reader.read_line(&mut line) {
        Ok(0) => None,
        Ok(_) => Some(line),
        Err(e) => panic!("reading from the node: {e}"),
    }
}

/// No connection waits on the fake peer's listener.
fn no_new_connection(listener: &TcpListener) -> bool {
    listener.set_nonblocking(true).expect("nonblocking");
    matches!(listener.accept(), Err(e) if e.kind() == ErrorKind::WouldBlock)
}

#[test]
fn sighup_applies_the_peer_list_as_a_diff_and_survives_a_bad_file() {
    let net = Block::take();
    let (node_ip, a_ip, b_ip) = (net.ip(1), net.ip(2), net.ip(3));
    let (a_ip, b_ip) = (a_ip.as_str(), b_ip.as_str());
    let (a_addr, b_addr) = (net.addr(2), net.addr(3));
    // The file's peer lists.
    let only_a = format!("peers = [\"{a_ip}\"]\n");
    let a_and_b = format!("peers = [\"{a_ip}\", \"{b_ip}\"]\n");
    let only_b = format!("peers = [\"{b_ip}\"]\n");
    // A: a fake v1 peer, so we can see which connection gets what.
    let a = fake_peer(&a_addr);
    // B: a real node that only listens.
    let b = Node::on(b_ip, &[], &[]);
    wait_listening(&b);
    let file = ConfigFile::new("reload", &only_a);
    let node = Node::on(&node_ip, &[], &["--config", file.path()]);

    let mut stream = accept_within(&a, WAIT, &node);
    stream.write_all(p2pmon::proto::wire::HELLO).expect("greet");
    stream.set_read_timeout(Some(WAIT)).expect("timeout");
    let mut from_node = BufReader::new(stream);
    for _ in 0..2 {
        let status = frame(&mut from_node).expect("a status");
        assert!(status.contains("\"type\":\"status\""), "{status}");
    }

    // Add B: it starts getting statuses; A keeps its connection.
    let line = reload(&node, &file, &a_and_b, 1);
    assert!(
        line.ends_with(&format!(
            "reload: peers added: {b_addr}; removed: none; no key file"
        )),
        "{line}"
    );
    assert!(
        b.wait_line_from(0, WAIT, status_from(&node_ip)).is_some(),
        "B got nothing:\n{}\n{}",
        b.lines().join("\n"),
        node.stderr()
    );
    for _ in 0..2 {
        let status = frame(&mut from_node).expect("A's connection was dropped");
        assert!(status.contains("\"type\":\"status\""), "{status}");
    }
    assert!(no_new_connection(&a), "A was reconnected");

    // Remove A: it gets a leave, then the close, and no new connection.
    let line = reload(&node, &file, &only_b, 2);
    assert!(
        line.ends_with(&format!(
            "reload: peers added: none; removed: {a_addr}; no key file"
        )),
        "{line}"
    );
    let mut frames = Vec::new();
    while let Some(frame) = frame(&mut from_node) {
        frames.push(frame);
        assert!(frames.len() < 10, "A still gets statuses: {frames:?}");
    }
    assert!(
        frames
            .last()
            .is_some_and(|f| f.contains("\"type\":\"leave\"")),
        "A's connection closed without a leave: {frames:?}"
    );
    let quiet_until = Instant::now() + Duration::from_millis(2500);
    while Instant::now() < quiet_until {
        assert!(no_new_connection(&a), "A is still dialed after its removal");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !node.lines().iter().any(|l| l.contains(a_ip)),
        "a removed send-only peer is forgotten, not reported:\n{}",
        node.lines().join("\n")
    );

    // A broken file changes nothing: logged, and the node runs on.
    let b_before = b.lines().len();
    let line = reload(&node, &file, &format!("peers = [\"{b_ip}\"\n"), 3);
    assert!(
        line.ends_with("reload: peers unchanged; no key file"),
        "{line}"
    );
    node.expect_stderr("error: cannot reload the config: config ", WAIT);
    assert!(
        b.wait_line_from(b_before, WAIT, status_from(&node_ip))
            .is_some(),
        "B no longer gets statuses after a bad file"
    );

    // A setting fixed at start is named, not applied (--http is on the
    // command line, where it wins; the name is not).
    reload(&node, &file, &format!("{only_b}name = \"renamed\"\n"), 4);
    node.expect_stderr("name changed but need(s) a restart", WAIT);

    // Remove B, a real node: it says the node left, never that it crashed.
    let line = reload(&node, &file, "peers = []\n", 5);
    assert!(line.contains(&format!("removed: {b_addr}")), "{line}");
    b.expect_line(&left(&node_ip), WAIT);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        !b.lines().iter().any(|l| *l == offline(&node_ip)),
        "{}",
        b.lines().join("\n")
    );
    let mut node = node;
    node.signal("TERM");
    let status = node.wait_exit(WAIT).expect("node stops");
    assert!(status.success(), "{status:?}\n{}", node.stderr());
}

#[test]
fn sighup_keeps_peers_given_on_the_command_line() {
    let net = Block::take();
    let file = ConfigFile::new("cli-wins", &format!("peers = [\"{}\"]\n", net.ip(8)));
    let mut node = Node::on(&net.ip(1), &[&net.ip(9)], &["--config", file.path()]);
    wait_listening(&node);
    let line = reload(&node, &file, &format!("peers = [\"{}\"]\n", net.ip(7)), 1);
    assert!(
        line.ends_with("reload: peers unchanged; no key file"),
        "{line}"
    );
    node.expect_stderr(
        "--peers on the command line wins; the file's peer list is not applied",
        WAIT,
    );
    // SIGHUP never stops a node (its default action would).
    assert!(node.wait_exit(Duration::from_millis(300)).is_none());
    node.signal("TERM");
    assert!(node.wait_exit(WAIT).is_some_and(|s| s.success()));
}

#[test]
fn man_page_and_completions_come_from_the_command_line() {
    let (code, page, _) = run(&["man"]);
    assert_eq!(code, 0);
    for option in ["\\-\\-peers", "\\-\\-config", "\\-\\-key\\-file", "SIGHUP"] {
        assert!(page.contains(option), "man page lacks {option}");
    }
    let dir = std::env::temp_dir().join(format!("p2pmon-ops-man-{}", std::process::id()));
    let (code, _, stderr) = run(&["man", "--out", dir.to_str().expect("path")]);
    assert_eq!(code, 0, "{stderr}");
    for page in ["p2pmon.1", "p2pmon-keygen.1", "p2pmon-completions.1"] {
        assert!(dir.join(page).is_file(), "no {page}: {stderr}");
    }
    let _ = std::fs::remove_dir_all(&dir);

    let (code, bash, _) = run(&["completions", "bash"]);
    assert_eq!(code, 0);
    assert!(
        bash.contains("--peers") && bash.contains("complete"),
        "{bash}"
    );
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let (code, script, _) = run(&["completions", shell]);
        assert!(code == 0 && script.contains("peers"), "{shell}");
    }
    let (code, _, _) = run(&["completions", "tcsh"]);
    assert_eq!(code, 2, "an unknown shell is a usage error");
}

/// The unit file as shipped.
fn unit() -> String {
    let unit_path = concat!(env!("CARGO_MANIFEST_DIR"), "/contrib/p2pmon.service");
    std::fs::read_to_string(unit_path).expect("contrib/p2pmon.service")
}

/// The unit file keeps the properties the README promises.
#[test]
fn systemd_unit_is_hardened_and_reloads_with_sighup() {
    let unit = unit();
    for line in [
        "User=p2pmon",
        "Group=p2pmon",
        "ExecStart=/usr/local/bin/p2pmon --config /etc/p2pmon/config.toml",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "Restart=on-failure",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "PrivateDevices=yes",
        "ProtectKernelTunables=yes",
        "ProtectKernelModules=yes",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "LimitNOFILE=8192",
    ] {
        assert!(unit.lines().any(|l| l == line), "unit lacks {line:?}");
    }
}

/// systemd's own checker accepts the unit.
#[test]
#[ignore = "needs systemd-analyze (Debian package systemd)"]
fn systemd_analyze_accepts_the_unit() {
    let unit = unit();
    let runs = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success());
    assert!(
        runs,
        "systemd-analyze is needed (apt-get install systemd; scripts/test.sh does it)"
    );
    // Verify a copy whose ExecStart points at the binary under test.
    let dir = std::env::temp_dir().join(format!("p2pmon-ops-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let copy = dir.join("p2pmon.service");
    std::fs::write(
        &copy,
        unit.replace("/usr/local/bin/p2pmon", crate::util::binary()),
    )
    .expect("write unit");
    let verify = Command::new("systemd-analyze")
        .args(["verify", "--man=no", copy.to_str().expect("path")])
        .output()
        .expect("systemd-analyze runs");
    let _ = std::fs::remove_dir_all(&dir);
    let stderr = String::from_utf8_lossy(&verify.stderr);
    assert!(verify.status.success(), "systemd-analyze verify: {stderr}");
}
