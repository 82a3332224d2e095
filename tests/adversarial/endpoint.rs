//! The status endpoint under attack (issue 12, items 11, 12 and 15): a web
//! page reading `/status` through DNS rebinding, idle clients holding every
//! slot, and a client hammering `/metrics` to hold the shared lock.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::util::{Block, Node, connect_from, largest_gap_between, times_of};

const WAIT: Duration = Duration::from_secs(15);

/// Sends `request` from `from` to `to` and reads the whole answer.
fn ask(from: &str, to: &str, request: &[u8]) -> String {
    let mut stream = connect_from(from, to);
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let _ = stream.write_all(request);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

/// A GET of `path` with `host` as the Host header (none if `None`).
fn get(from: &str, to: &str, path: &str, host: Option<&str>) -> String {
    let host = host.map(|h| format!("Host: {h}\r\n")).unwrap_or_default();
    ask(
        from,
        to,
        format!("GET {path} HTTP/1.1\r\n{host}Connection: close\r\n\r\n").as_bytes(),
    )
}

fn code(answer: &str) -> u16 {
    answer
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// Waits until the endpoint at `to` answers /healthz.
fn wait_healthz(from: &str, to: &str, node: &Node) {
    let deadline = Instant::now() + WAIT;
    loop {
        // Not `connect_from`, which panics while the node is still starting.
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("socket");
        let source: std::net::SocketAddr = format!("{from}:0").parse().expect("source");
        let target: std::net::SocketAddr = to.parse().expect("target");
        socket.bind(&source.into()).expect("bind source");
        if socket.connect(&target.into()).is_ok() {
            let mut stream: TcpStream = socket.into();
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .expect("timeout");
            let request = format!("GET /healthz HTTP/1.1\r\nHost: {to}\r\n\r\n");
            let mut answer = String::new();
            if stream.write_all(request.as_bytes()).is_ok()
                && stream.read_to_string(&mut answer).is_ok()
                && code(&answer) == 200
            {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the endpoint never answered:\n{}",
            node.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn rejected(metrics: &str, reason: &str) -> u64 {
    let prefix = format!("p2pmon_rejected_total{{reason=\"{reason}\"}} ");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .and_then(|value| value.parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_rebinding_host_gets_421_and_every_answer_is_no_store_nosniff() {
    let net = Block::take();
    let to: &str = &net.http(1);
    let from: &str = &net.ip(2);
    let node = Node::on(&net.ip(1), &[], &["--http", to, "--name", "secret-name"]);
    wait_healthz(from, to, &node);

    // A page at http://evil.example:5080/ whose name now resolves to us.
    for host in [
        "evil.example".to_string(),
        "evil.example:5080".to_string(),
        format!("{}.evil.example:5080", net.ip(1)),
        "localhost.evil.example".to_string(),
        net.http(2),
        format!("{}:", net.ip(1)),
        "[::2]:5080".to_string(),
        String::new(),
    ] {
        let answer = get(from, to, "/status", Some(&host));
        assert_eq!(code(&answer), 421, "Host {host:?}: {answer}");
        assert!(!answer.contains("secret-name"), "Host {host:?}: {answer}");
    }
    // The bound address, and for a loopback bind the loopback names.
    for host in [
        net.http(1),
        net.ip(1),
        "localhost".to_string(),
        "LocalHost:5080".to_string(),
        "127.0.0.1:5080".to_string(),
        "127.0.0.1".to_string(),
        "[::1]:5080".to_string(),
        "[::1]".to_string(),
        // Through a tunnel (ssh -L 8080:127.N.0.1:5080): the port differs.
        "127.0.0.1:8080".to_string(),
    ] {
        let answer = get(from, to, "/status", Some(&host));
        assert_eq!(code(&answer), 200, "Host {host:?}: {answer}");
        assert!(answer.contains("secret-name"), "Host {host:?}: {answer}");
    }
    // HTTP/1.1 requires exactly one Host; HTTP/1.0 (no browser) may omit it.
    assert_eq!(code(&get(from, to, "/status", None)), 400);
    let two = format!("GET /status HTTP/1.1\r\nHost: {to}\r\nHost: evil.example\r\n\r\n");
    assert_eq!(code(&ask(from, to, two.as_bytes())), 400);
    let old = ask(from, to, b"GET /healthz HTTP/1.0\r\n\r\n");
    assert_eq!(code(&old), 200, "{old}");
    let old_foreign = ask(
        from,
        to,
        b"GET /status HTTP/1.0\r\nHost: evil.example\r\n\r\n",
    );
    assert_eq!(code(&old_foreign), 421, "{old_foreign}");

    // Every answer, errors included, is neither cached nor sniffed.
    let host = Some(to);
    let mut answers = vec![
        (200, get(from, to, "/", host)),
        (200, get(from, to, "/status", host)),
        (200, get(from, to, "/metrics", host)),
        (200, get(from, to, "/history", host)),
        (200, get(from, to, "/healthz", host)),
        (404, get(from, to, "/nowhere", host)),
        (421, get(from, to, "/", Some("evil.example"))),
        (400, get(from, to, "/", None)),
        (400, ask(from, to, b"\x16\x03\x01\x02\x00\x01\r\n\r\n")),
    ];
    answers.push((
        405,
        ask(
            from,
            to,
            format!("POST /status HTTP/1.1\r\nHost: {to}\r\n\r\n").as_bytes(),
        ),
    ));
    let huge = format!("GET / HTTP/1.1\r\nX: {}\r\n", "a".repeat(20_000));
    answers.push((431, ask(from, to, huge.as_bytes())));
    for (expected, answer) in &answers {
        assert_eq!(code(answer), *expected, "{answer}");
        let head = answer.split("\r\n\r\n").next().unwrap_or_default();
        for line in ["Cache-Control: no-store", "X-Content-Type-Options: nosniff"] {
            assert!(
                head.lines().any(|l| l == line),
                "{expected} lacks {line}:\n{head}"
            );
        }
    }
    let metrics = get(from, to, "/metrics", host);
    assert_eq!(rejected(&metrics, "http_misdirected"), 10, "{metrics}");
}

/// A port for block `n`'s wildcard bind, outside the kernel's ephemeral
/// range (where outgoing connections take their source ports): just above
/// it, or just below it if it reaches too high.
fn wildcard_port(n: u8) -> u16 {
    let range =
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap_or_default();
    let mut bounds = range
        .split_whitespace()
        .filter_map(|b| b.parse::<u16>().ok());
    let low = bounds.next().unwrap_or(32768);
    let high = bounds.next().unwrap_or(60999);
    match high.checked_add(1 + u16::from(n)) {
        Some(port) if high < u16::MAX - 256 => port,
        _ => low.saturating_sub(256) + u16::from(n),
    }
}

/// A wildcard bind: the Host must name the address the client reached (the
/// connection's local address), not some other address of the host.
#[test]
fn behind_a_wildcard_bind_the_host_must_name_the_address_reached() {
    let net = Block::take();
    // A wildcard bind takes its port on every address, so it must collide
    // neither with the others' :5080, nor with this test in another process
    // (a port per block), nor with a source port the kernel picked for some
    // test's outgoing connection (a port outside the ephemeral range).
    let port = wildcard_port(net.n());
    let node = Node::on(&net.ip(10), &[], &["--http", &format!("0.0.0.0:{port}")]);
    let from: &str = &net.ip(11);
    let to: &str = &format!("{}:{port}", net.ip(12));
    wait_healthz(from, to, &node);
    for (host, expected) in [
        (format!("{}:{port}", net.ip(12)), 200),
        (net.ip(12), 200),
        (format!("localhost:{port}"), 200),
        (format!("{}:{port}", net.ip(10)), 421),
        (format!("0.0.0.0:{port}"), 421),
        (format!("evil.example:{port}"), 421),
    ] {
        let answer = get(from, to, "/status", Some(&host));
        assert_eq!(code(&answer), expected, "Host {host:?}: {answer}");
    }
}

/// 32 idle connections from one address used to hold every slot.
#[test]
fn idle_clients_from_one_address_cannot_lock_others_out_of_healthz() {
    let net = Block::take();
    let to: &str = &net.http(1);
    let node = Node::on(&net.ip(1), &[], &["--http", to]);
    wait_healthz(&net.ip(3), to, &node);
    let idle: Vec<TcpStream> = (0..32).map(|_| connect_from(&net.ip(2), to)).collect();
    let answer = get(&net.ip(3), to, "/healthz", Some(to));
    assert_eq!(code(&answer), 200, "{answer}");
    assert!(answer.ends_with("\r\n\r\nok\n"), "{answer}");
    let metrics = get(&net.ip(3), to, "/metrics", Some(to));
    assert_eq!(
        rejected(&metrics, "http_too_many_from_address"),
        24,
        "{metrics}"
    );
    // The refused ones are closed at once, the first eight wait for a request.
    let mut last = &idle[31];
    last.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    assert!(matches!(last.read(&mut [0u8; 16]), Ok(0) | Err(_)));
    drop(idle);
}

/// 32 idle connections from 32 addresses: the oldest gives way.
#[test]
fn idle_clients_from_many_addresses_give_way_oldest_first() {
    let net = Block::take();
    let to: &str = &format!("{}:5080", net.ip_at(1, 1));
    let node = Node::on(&net.ip_at(1, 1), &[], &["--http", to]);
    let asker: &str = &net.ip_at(1, 250);
    wait_healthz(asker, to, &node);
    let idle: Vec<TcpStream> = (1..=32)
        .map(|n| connect_from(&net.ip_at(2, n), to))
        .collect();
    // The node accepts in order: let it take all 32 before the newcomer.
    std::thread::sleep(Duration::from_millis(300));
    let answer = get(asker, to, "/healthz", Some(to));
    assert_eq!(code(&answer), 200, "{answer}");
    let metrics = get(asker, to, "/metrics", Some(to));
    assert!(rejected(&metrics, "http_evicted") >= 1, "{metrics}");
    assert_eq!(rejected(&metrics, "http_too_many_connections"), 0);
    // The first idle client was closed, the last still waits.
    let mut first = &idle[0];
    first
        .set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    assert!(matches!(first.read(&mut [0u8; 16]), Ok(0)));
    let mut newest = &idle[31];
    newest
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    assert!(newest.read(&mut [0u8; 16]).is_err(), "still open");
}

/// At 1,024 peers, rendering /metrics takes tens of milliseconds; rendered
/// under the shared lock, a client asking for it in a loop stalled the
/// listener (every status waits for the lock).
#[test]
fn a_client_hammering_metrics_delays_no_status() {
    let net = Block::take();
    let to: &str = &net.http(1);
    let target: &str = &net.addr(1);
    // The fast peer alone in 127.N.3; loadgen gives the crowd's peer i the
    // source + i: 1,023 addresses from 127.N.4.1 end at 127.N.7.255.
    let fast_ip: &str = &net.ip_at(3, 1);
    let crowd_from: &str = &net.ip_at(4, 1);
    let node = Node::on(&net.ip(1), &[], &["--http", to, "--interval", "1s"]);
    crate::util::wait_listening(&node);
    let fast = Node::start(&[
        "loadgen",
        "send",
        "--target",
        target,
        "--peers",
        "1",
        "--source",
        fast_ip,
        "--interval",
        "10ms",
        "--duration",
        "40s",
    ]);
    let crowd = Node::start(&[
        "loadgen",
        "send",
        "--target",
        target,
        "--peers",
        "1023",
        "--source",
        crowd_from,
        "--interval",
        "1s",
        "--duration",
        "40s",
    ]);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = get(&net.ip(2), to, "/status", Some(to));
        if status.matches("\"peer\":").count() >= 1024 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "1,024 peers never arrived\n{}\n{}",
            fast.stderr(),
            crowd.stderr()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let is_fast = crate::util::status_from(fast_ip);
    let quiet_from = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    let quiet_to = Instant::now();
    let stop = quiet_to + Duration::from_secs(3);
    let hammers: Vec<_> = (0..2)
        .map(|n| {
            let from = net.ip(10 + n);
            let to = to.to_string();
            std::thread::spawn(move || {
                let mut served = 0u32;
                while Instant::now() < stop {
                    let answer = get(&from, &to, "/metrics", Some(&to));
                    served += u32::from(code(&answer) == 200);
                }
                served
            })
        })
        .collect();
    let served: u32 = hammers.into_iter().map(|h| h.join().unwrap_or(0)).sum();
    let times = times_of(&node, &is_fast);
    let quiet = largest_gap_between(&times, quiet_from, quiet_to);
    let hammered = largest_gap_between(&times, quiet_to, stop);
    eprintln!(
        "largest gap between the fast peer's statuses: {quiet:?} quiet, {hammered:?} while \
         {served} /metrics were served"
    );
    assert!(served >= 10, "the hammer got {served} answers");
    assert!(
        hammered < Duration::from_millis(250).max(quiet * 3),
        "statuses waited for /metrics: {hammered:?} (quiet: {quiet:?})"
    );
}

/// --max-connections 8000 needs more descriptors than the default cap's 3,136.
#[test]
fn the_open_file_limit_follows_max_connections() {
    let net = Block::take();
    let mut command = std::process::Command::new("sh");
    command.args([
        "-c",
        "ulimit -Sn 1024 && exec \"$0\" \"$@\"",
        crate::util::binary(),
    ]);
    let node = Node::spawn_command(
        command,
        &[
            "--listen",
            &net.ip(1),
            "--http",
            &net.http(1),
            "--max-connections",
            "8000",
        ],
    );
    crate::util::wait_listening(&node);
    let hard: u64 = std::fs::read_to_string(format!("/proc/{}/limits", node.pid()))
        .ok()
        .and_then(|limits| {
            let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
            line.split_whitespace().nth(4)?.parse().ok()
        })
        .unwrap_or(0);
    assert!(
        hard >= 9100,
        "the hard limit here ({hard}) is too low for this test"
    );
    let deadline = Instant::now() + WAIT;
    loop {
        let soft: u64 = std::fs::read_to_string(format!("/proc/{}/limits", node.pid()))
            .ok()
            .and_then(|limits| {
                let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
                line.split_whitespace().nth(3)?.parse().ok()
            })
            .unwrap_or(0);
        // Inbound connections, one outbound link per peer, the HTTP clients.
        if soft >= 8000 + 1024 + 32 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "open-file limit {soft}:\n{}",
            node.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
