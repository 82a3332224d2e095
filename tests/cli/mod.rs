//! The command line's contract: exit codes and `error:` lines for misuse and
//! a busy port, and the config file (errors name the key; flags win).

use std::time::Duration;

use crate::util::{Block, Node, fake_peer, received, run, send_once, wait_listening};

const WAIT: Duration = Duration::from_secs(10);

#[test]
fn exit_codes_and_error_lines() {
    let net = Block::take();
    let other_port = format!("{}:6000", net.ip(1));
    for args in [
        vec!["--interval", "0"],
        vec!["--interval", "1s", "--offline-after", "1s"],
        vec!["--listen", &other_port, "--port", "5000"],
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
    let _holder = fake_peer(&net.addr(1));
    let (code, _, stderr) = run(&["--listen", &net.ip(1)]);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(
        stderr.trim(),
        format!(
            "error: cannot listen on {}: address already in use",
            net.addr(1)
        )
    );
    // --help goes to stdout, exit 0.
    let (code, stdout, _) = run(&["--help"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("--peers"));
}

#[test]
fn config_file_errors_name_the_key_and_flags_win() {
    let net = Block::take();
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
        format!(
            "listen = \"{}\"\ninterval = \"1s\"\nformat = \"json\"\npeers = [\"{}\"]\n",
            net.ip(1),
            net.ip(2)
        ),
    )
    .expect("write");
    // The flag (--format text) wins over the file's json.
    let node = Node::start(&["--config", good.to_str().expect("path"), "--format", "text"]);
    wait_listening(&node);
    send_once(&net.ip(2), &net.addr(1), br#"{"cpu": 3, "memory": 4}"#);
    node.expect_line(&received(&net.ip(2), "3.0", "4.0"), WAIT);
    let (code, _, stderr) = run(&["--config", "/nonexistent/p2pmon.toml"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("cannot read config"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
