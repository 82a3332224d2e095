//! Items 13 and 14 of issue 12: key files (keygen over a symlink, a key file
//! owned by another user, oversized and special key files) and durations
//! (past their caps, and the longest accepted forget-after with a learned
//! member going offline).

use std::os::unix::fs::MetadataExt;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::util::{
    Block, Node, TempDir, key, offline, run, send_once, status_from, wait_listening,
};

const WAIT: Duration = Duration::from_secs(10);

fn key_line() -> String {
    format!("{}\n", key(7))
}

/// Starts a node with `args` and waits for it to exit: (code, stderr), or
/// panics naming what it printed if it is still running after `WAIT`.
fn exits(args: &[&str]) -> (i32, String) {
    let mut node = Node::start(args);
    let Some(status) = node.wait_exit(WAIT) else {
        panic!(
            "the node did not stop with {args:?}; it runs:\n{}\n{}",
            node.lines().join("\n"),
            node.stderr()
        );
    };
    (status.code().unwrap_or(-1), node.stderr())
}

#[test]
fn keygen_force_over_a_symlink_replaces_the_link_and_never_writes_into_its_target() {
    let dir = TempDir::new("adv-keygen-link");
    // An attacker (or an accident) points the key path at another file.
    let victim = dir.file("victim", "precious\n", 0o644);
    let link = dir.path("key");
    std::os::unix::fs::symlink(&victim, &link).expect("symlink");

    let (code, _, stderr) = run(&["keygen", "--out", &link, "--force"]);
    assert_eq!(code, 0, "{stderr}");
    // The target is untouched: same bytes, same mode.
    assert_eq!(
        std::fs::read_to_string(&victim).expect("victim"),
        "precious\n"
    );
    let victim_mode = std::fs::metadata(&victim).expect("victim").mode() & 0o777;
    assert_eq!(victim_mode, 0o644, "keygen changed the target's mode");
    // The link itself was replaced by a private regular file holding a key.
    let meta = std::fs::symlink_metadata(&link).expect("key");
    assert!(meta.file_type().is_file(), "still a symlink: {meta:?}");
    assert_eq!(meta.mode() & 0o777, 0o600);
    let written = std::fs::read_to_string(&link).expect("key");
    assert_eq!(BASE64.decode(written.trim()).map(|k| k.len()), Ok(32));
    // No temporary file is left behind.
    let names: Vec<String> = std::fs::read_dir(dir.root())
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");

    // Without --force any existing path is refused, a dangling symlink too,
    // and nothing is created where it points.
    let dangling = dir.path("dangling");
    let nowhere = dir.path("nowhere");
    std::os::unix::fs::symlink(&nowhere, &dangling).expect("symlink");
    let (code, _, stderr) = run(&["keygen", "--out", &dangling]);
    assert_ne!(code, 0);
    assert!(stderr.contains("--force"), "{stderr}");
    assert!(
        !std::path::Path::new(&nowhere).exists(),
        "keygen created the symlink's target"
    );
    let (code, _, stderr) = run(&["keygen", "--out", &link]);
    assert_ne!(code, 0);
    assert!(stderr.contains("--force"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&link).expect("key"), written);
}

#[test]
#[ignore = "needs root (gives a key file to nobody, uid 65534, then back to root)"]
fn a_key_file_owned_by_another_user_is_refused_with_exit_2() {
    let euid = String::from_utf8_lossy(
        &Command::new("id")
            .arg("-u")
            .output()
            .expect("id runs")
            .stdout,
    )
    .trim()
    .to_string();
    assert_eq!(
        euid, "0",
        "this test needs root (it gives a key file to another user); run the suite as root"
    );
    let net = Block::take();
    let dir = TempDir::new("adv-key-owner");
    let key = dir.file("key", &key_line(), 0o600);
    // 65534 is `nobody`: a private file, but someone else's.
    std::os::unix::fs::chown(&key, Some(65534), Some(65534)).expect("chown");
    let (code, stderr) = exits(&["--listen", &net.ip(1), "--http", "off", "--key-file", &key]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains(&key), "names the file: {stderr}");
    assert!(stderr.contains("owned by uid 65534"), "{stderr}");
    assert!(stderr.contains("chown"), "says how to fix it: {stderr}");
    // A root node accepts root's own file: the same file given back works.
    std::os::unix::fs::chown(&key, Some(0), Some(0)).expect("chown");
    let node = Node::start(&["--listen", &net.ip(1), "--http", "off", "--key-file", &key]);
    wait_listening(&node);
}

#[test]
fn oversized_and_special_key_files_are_refused_without_reading_them() {
    let net = Block::take();
    let dir = TempDir::new("adv-key-size");
    let listen = ["--listen", &net.ip(1), "--http", "off"];
    // A 1 GiB sparse file, private: refused by its size, at once.
    let huge = dir.file("huge", "", 0o600);
    std::fs::File::options()
        .write(true)
        .open(&huge)
        .and_then(|f| f.set_len(1 << 30))
        .expect("sparse file");
    let (code, stderr) = exits(&[&listen[..], &["--key-file", &huge]].concat());
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains(&huge), "{stderr}");
    assert!(stderr.contains("larger than 4096 bytes"), "{stderr}");

    // A FIFO (nobody writes to it): refused, not waited on forever.
    let fifo = dir.path("fifo");
    let made = Command::new("mkfifo")
        .args(["-m", "600", &fifo])
        .status()
        .expect("mkfifo runs");
    assert!(made.success());
    let (code, stderr) = exits(&[&listen[..], &["--key-file", &fifo]].concat());
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("not a regular file"), "{stderr}");

    // A symlink to a good key file is followed (config tools manage keys so),
    // and the file it points to is the one checked.
    let good = dir.file("good", &key_line(), 0o600);
    let link = dir.path("link");
    std::os::unix::fs::symlink(&good, &link).expect("symlink");
    let node = Node::start(&[&listen[..], &["--key-file", &link]].concat());
    wait_listening(&node);
    // SIGHUP with the link now pointing at the huge file: logged, keys kept.
    std::fs::remove_file(&link).expect("unlink");
    std::os::unix::fs::symlink(&huge, &link).expect("symlink");
    node.signal("HUP");
    node.expect_stderr("cannot reload the key file", WAIT);
    node.expect_stderr("larger than 4096 bytes", WAIT);
    node.expect_stderr("keeping the keys in use", WAIT);
}

#[test]
fn durations_past_their_caps_exit_2_naming_the_flag_and_the_limit() {
    let net = Block::take();
    let listen = ["--listen", &net.ip(1), "--http", "off"];
    for (flag, value, limit) in [
        ("--forget-after", "4000000000000000h", "8760h"),
        ("--forget-after", "8761h", "8760h"),
        ("--flap-window", "4000000000000000h", "24h"),
        ("--flap-window", "25h", "24h"),
        ("--interval", "4000000000000000h", "1h"),
        ("--offline-after", "4000000000000000h", "24h"),
    ] {
        let (code, stderr) = exits(&[&listen[..], &[flag, value]].concat());
        assert_eq!(code, 2, "{flag} {value}: {stderr}");
        assert!(stderr.starts_with("error: "), "{stderr}");
        assert!(stderr.contains(flag), "{flag} {value}: {stderr}");
        assert!(stderr.contains(limit), "{flag} {value}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    // The demo's interval too (it multiplied it unchecked).
    let (code, _, stderr) = run(&["demo", "--interval", "4000000000000000h"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--interval"), "{stderr}");
}

/// A v1 status from `node` (port 5000) naming `member` in its members list.
fn status_naming(member: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis();
    format!(
        "{{\"v\":1,\"type\":\"status\",\"node\":\"x\",\"port\":5000,\"boot\":{now},\"seq\":0,\
         \"ts\":{now},\"interval_ms\":500,\"cpu\":1,\"memory\":1,\
         \"members\":[{{\"addr\":\"{member}:5000\",\"boot\":1,\"heard_ms\":0}}]}}\n"
    )
}

#[test]
fn the_longest_forget_after_with_a_learned_member_going_offline_does_not_abort_the_node() {
    let net = Block::take();
    let node = Node::on(
        &net.ip(1),
        &[],
        &[
            "--interval",
            "500ms",
            "--learn-peers",
            "--forget-after",
            "8760h",
        ],
    );
    wait_listening(&node);
    // .2 names .3, which nobody runs: learned, then offline, and its forget
    // deadline is a year away.
    send_once(
        &net.ip(2),
        &net.addr(1),
        status_naming(&net.ip(3)).as_bytes(),
    );
    node.expect_line(&offline(&net.ip(3)), WAIT);
    // Still alive: it keeps printing what arrives, and nothing panicked.
    let after = node.lines().len();
    send_once(&net.ip(4), &net.addr(1), br#"{"cpu": 2.0, "memory": 3.0}"#);
    assert!(
        node.wait_line_from(after, WAIT, status_from(&net.ip(4)))
            .is_some(),
        "{:?}\n{}",
        node.lines(),
        node.stderr()
    );
    assert!(!node.stderr().contains("panicked"), "{}", node.stderr());
}
