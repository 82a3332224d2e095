//! Adversarial tests: see `mod.rs` for the item list.
//!
//! Item 9, names: a peer name is display text chosen by the
//! sender. One with `"}`, a newline, a backslash or terminal escapes used to
//! reach /metrics label values, `p2pmon members` and the hooks' environment
//! raw. Now it is refused at decode (`bad_name`) and every printer escapes.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use crate::util::{Block, Node, http, run_within, send_once, status_from, wait_listening};

const WAIT: Duration = Duration::from_secs(10);

/// A v1 status from `port` named `name` (a JSON string literal, escapes included).
fn status_named(name_json: &str, port: u16) -> String {
    format!(
        r#"{{"v":1,"type":"status","node":{name_json},"port":{port},"boot":1,"seq":0,"ts":1,"interval_ms":1000,"cpu":1,"memory":2}}"#
    ) + "\n"
}

/// Polls `path` on `addr` until `done` holds for its body (or the deadline).
fn http_until(addr: &str, path: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let (_, body) = http(addr, "GET", path);
        if done(&body) || Instant::now() >= deadline {
            return body;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_peer_name_with_quotes_newlines_and_escapes_is_rejected_at_decode_and_never_reaches_metrics() {
    let net = Block::take();
    let web: &str = &net.http(1);
    let node = Node::on(&net.ip(1), &[], &["--http", web]);
    wait_listening(&node);
    // `"}`, a newline and a backslash forge a series; ESC drives terminals.
    let forged = r#""evil\"} 1\np2pmon_peer_up{peer=\"10.9.9.9:5000\",name=\"forged\\\u001b[2J""#;
    send_once(
        &net.ip(2),
        &net.addr(1),
        status_named(forged, 5000).as_bytes(),
    );
    // A good peer afterwards shows the listener went on and gives a sync point.
    send_once(
        &net.ip(3),
        &net.addr(1),
        status_named("\"good\"", 5000).as_bytes(),
    );
    node.wait_line_from(0, WAIT, status_from(&net.ip(3)))
        .unwrap_or_else(|| panic!("good peer not heard:\n{}", node.stderr()));
    let status = http_until(web, "/status", |body| body.contains("bad_name"));
    let status: serde_json::Value = serde_json::from_str(&status).expect("status json");
    assert_eq!(
        status["node"]["rejected"]["bad_name"],
        1,
        "{status:#}\n{}",
        node.stderr()
    );
    let peers: Vec<&str> = status["peers"]
        .as_array()
        .expect("peers")
        .iter()
        .filter_map(|p| p["peer"].as_str())
        .collect();
    assert_eq!(peers, [net.ip(3)], "{status:#}");
    assert!(
        !node
            .lines()
            .iter()
            .any(|line| line.contains(&net.ip(2)) || line.contains('\x1b')),
        "{:?}",
        node.lines()
    );
    let (code, metrics) = http(web, "GET", "/metrics");
    assert_eq!(code, 200);
    assert!(
        !metrics.contains("forged") && !metrics.contains('\x1b'),
        "{metrics}"
    );
    assert!(
        metrics.contains("p2pmon_rejected_total{reason=\"bad_name\"} 1"),
        "{metrics}"
    );
    // The log line names the problem without printing the raw name.
    let log = node.stderr();
    assert!(log.contains("bad_name") && !log.contains('\x1b'), "{log}");
}

#[test]
fn names_with_bidi_nul_or_other_control_characters_are_each_rejected() {
    let net = Block::take();
    let node = Node::on(&net.ip(1), &[], &["--http", &net.http(1)]);
    wait_listening(&node);
    let names = [
        r#""a\u0000b""#, // NUL: made every hook spawn fail
        r#""a\u0007b""#, // BEL
        r#""a\rb""#,     // CR: overwrites the line on a terminal
        r#""a\tb""#,     // TAB
        r#""a\u007fb""#, // DEL
        r#""a\u009bb""#, // C1 CSI
        r#""a\u202eb""#, // right-to-left override
        r#""a\u2066b""#, // left-to-right isolate
        r#""a\u200fb""#, // right-to-left mark
        r#""a\u061cb""#, // Arabic letter mark
        r#""a\u2028b""#, // line separator
    ];
    for (n, name) in names.iter().enumerate() {
        let from = net.ip(u8::try_from(n).expect("few names") + 10);
        send_once(&from, &net.addr(1), status_named(name, 5000).as_bytes());
    }
    // Plain Unicode stays welcome.
    send_once(
        &net.ip(2),
        &net.addr(1),
        status_named("\"nœud-é ü 東京\"", 5000).as_bytes(),
    );
    node.wait_line_from(0, WAIT, status_from(&net.ip(2)))
        .unwrap_or_else(|| panic!("unicode name refused:\n{}", node.stderr()));
    let body = http_until(&net.http(1), "/status", |body| {
        body.contains(&format!("\"bad_name\":{}", names.len()))
    });
    let status: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(
        status["node"]["rejected"]["bad_name"],
        names.len(),
        "{status:#}\n{}",
        node.stderr()
    );
    assert_eq!(
        status["peers"].as_array().map(Vec::len),
        Some(1),
        "{status:#}"
    );
    assert_eq!(status["peers"][0]["name"], "nœud-é ü 東京");
}

#[test]
fn an_own_name_with_control_characters_exits_2_naming_the_problem() {
    let net = Block::take();
    let listen = net.ip(1);
    for name in ["evil\x1b[2J", "a\"}\nb", "x\u{202e}y", "tab\there"] {
        let args = ["--listen", &listen, "--http", "off", "--name", name];
        let (code, _, err) = run_within(&args, Duration::from_secs(5));
        assert_eq!(code, 2, "{name:?}: {err}");
        assert!(err.contains("--name"), "{name:?}: {err}");
        assert!(!err.contains('\x1b') && !err.contains('\u{202e}'), "{err}");
    }
}

/// Serves one canned `/status` to whoever asks (an older or hostile node).
fn serve_status_once(listener: TcpListener, body: String) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        listener.set_nonblocking(true).expect("nonblocking");
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            match listener.accept() {
                Ok((mut stream, _)) => {
                    stream.set_nonblocking(false).expect("blocking");
                    stream
                        .set_read_timeout(Some(Duration::from_secs(2)))
                        .expect("timeout");
                    let mut request = [0u8; 4096];
                    let _ = stream.read(&mut request);
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(answer.as_bytes());
                    return;
                }
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    })
}

#[test]
fn members_and_plain_top_print_a_hostile_name_escaped_not_raw() {
    // The node answering could be an older one holding such a name: the
    // client must not hand ESC, BEL or CR to the terminal.
    let hostile = "\u{1b}]0;pwned\u{7}\u{1b}[2J\rx\u{202e}y";
    let body = serde_json::json!({
        "node": {"name": hostile, "cut_off": false},
        "peers": [{"peer": "10.0.0.2:5000", "name": hostile, "state": "online",
                   "cpu": 1.0, "memory": 2.0, "last_seen_s": 0.5, "since_s": 3.0,
                   "flapping": false}],
    })
    .to_string();
    let net = Block::take();
    let (members_at, top_at) = (net.http(1), net.http(2));
    for (addr, args) in [
        (&members_at, vec!["members", "--http", &members_at]),
        (&top_at, vec!["top", "--http", &top_at, "--count", "1"]),
    ] {
        let server = serve_status_once(TcpListener::bind(addr).expect("bind"), body.clone());
        let (code, out, err) = run_within(&args, WAIT);
        let _ = server.join();
        assert_eq!(code, 0, "{args:?}: {err}");
        assert!(out.contains("10.0.0.2:5000"), "{out}");
        for raw in ['\x1b', '\x07', '\r', '\u{202e}'] {
            assert!(!out.contains(raw), "{args:?} printed {raw:?} raw: {out:?}");
        }
        assert!(out.contains(r"\x1b]0;pwned\x07"), "{out:?}");
    }
}
