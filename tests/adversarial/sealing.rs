//! Adversarial tests: see `mod.rs` for the item list.
//!
//! Sealing and membership (issue 12, items 1-3): a frame
//! replayed from another address, a configured peer against a table full of
//! strangers, plaintext hearsay with a key, and the sticky downgrade to
//! plaintext. Frames are crafted here with the cluster key (the attacker of
//! item 1 has none; the key holder of items 2-3 does), sealed the way
//! docs/PROTOCOL.md, "Security", describes.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use p2pmon::proto::wire::{self, Header, Member, Message};

use crate::util::{
    Block, Node, TempDir, accept_within, connect_from, fake_peer, http, key, received, send_once,
    status_from,
};

const WAIT: Duration = Duration::from_secs(10);
const KEY: [u8; 32] = [7; 32];
const SEALED: &[u8] = b"{\"v\":1,\"sealed\":\"";

/// A private directory holding the cluster key file; returns it and the
/// key file's path.
fn key_dir(test: &str) -> (TempDir, String) {
    let dir = TempDir::new(&format!("adv-{test}"));
    let key_file = dir.file("key", &format!("{}\n", key(KEY[0])), 0o600);
    (dir, key_file)
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A v1 status as `from` would send it (its listening port is `from`'s).
fn status(from: SocketAddr, boot: u64, seq: u64, members: Vec<Member>) -> Vec<u8> {
    wire::encode(&Message::Status {
        header: Header {
            node: format!("n{}", from.ip()),
            port: from.port(),
            boot,
            seq,
            ts: unix_ms(),
            interval_ms: 1000,
            members,
        },
        cpu: 1.0,
        memory: 2.0,
        health: Default::default(),
    })
}

/// Seals `line` with the cluster key as a node at `from` does for `to`
/// (plaintext fields `from` and `to`); `nonce` must differ per frame.
fn seal(line: &[u8], from: SocketAddr, to: SocketAddr, nonce: u64) -> Vec<u8> {
    let mut object: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(line).expect("a JSON object");
    object.insert("to".into(), to.to_string().into());
    object.insert("from".into(), from.to_string().into());
    let plaintext = serde_json::to_vec(&object).expect("JSON");
    let mut nonce_bytes = [0u8; 24];
    nonce_bytes[..8].copy_from_slice(&nonce.to_le_bytes());
    nonce_bytes[8..16].copy_from_slice(&unix_ms().to_le_bytes());
    let ciphertext = XChaCha20Poly1305::new(&KEY.into())
        .encrypt(
            XNonce::from_slice(&nonce_bytes),
            Payload {
                msg: &plaintext,
                aad: b"p2pmon-v1",
            },
        )
        .expect("encrypt");
    let payload = BASE64.encode([&nonce_bytes[..], &ciphertext].concat());
    format!("{{\"v\":1,\"sealed\":\"{payload}\"}}\n").into_bytes()
}

fn addr(text: &str) -> SocketAddr {
    text.parse().expect("socket address")
}

/// Whether a connection arrives on `listener` within `within`.
fn connection_within(listener: &TcpListener, within: Duration) -> bool {
    listener.set_nonblocking(true).expect("nonblocking");
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if listener.accept().is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

/// Reads one newline-terminated frame (None at EOF or timeout).
fn read_frame(reader: &mut BufReader<TcpStream>) -> Option<Vec<u8>> {
    let mut frame = Vec::new();
    match reader.read_until(b'\n', &mut frame) {
        Ok(n) if n > 0 && frame.ends_with(b"\n") => Some(frame),
        _ => None,
    }
}

/// Item 1: a sealed status recorded on its way to a node, replayed to that
/// node from another source address within the freshness window, is refused
/// (`wrong_sender`) and never becomes a peer.
#[test]
fn a_sealed_frame_replayed_from_another_address_is_refused_as_wrong_sender() {
    let (_keys, key_file) = key_dir("replay-elsewhere");
    let keyed = ["--key-file", key_file.as_str()];
    // The attacker stands where the receiver will be and records.
    let net = Block::take();
    let [receiver_ip, victim_ip, attacker_ip] = net.ips([2, 3, 77]);
    let recorder = fake_peer(&net.addr(2));
    let victim = Node::on(&victim_ip, &[&receiver_ip], &keyed);
    let mut stream = accept_within(&recorder, WAIT, &victim);
    stream.write_all(wire::HELLO).expect("greet");
    stream.set_read_timeout(Some(WAIT)).expect("timeout");
    let mut reader = BufReader::new(stream);
    let recorded = read_frame(&mut reader).expect("a frame from the victim");
    assert!(recorded.starts_with(SEALED), "{recorded:?}");
    drop(reader);
    drop(recorder);
    drop(victim);

    let receiver = Node::on(&receiver_ip, &[], &keyed);
    receiver.expect_line("Listening for peer updates...", WAIT);
    // Well inside the 30 s window, from an address the attacker owns.
    let mut replay = connect_from(&attacker_ip, &net.addr(2));
    replay.write_all(&recorded).expect("replay");
    receiver.expect_stderr("[wrong_sender;", WAIT);
    receiver.expect_stderr(
        &format!("sealed by {}, arrived from {attacker_ip}", net.addr(3)),
        WAIT,
    );
    let accepted = receiver.wait_line_from(0, Duration::from_secs(2), |l| {
        status_from(&attacker_ip)(l) || l.contains(&attacker_ip)
    });
    assert!(
        accepted.is_none(),
        "{}\n{}",
        receiver.lines().join("\n"),
        receiver.stderr()
    );
}

/// Item 1: strangers (authentic, one per address) fill the peer table; a
/// peer configured afterwards (SIGHUP) still joins: the entry offline the
/// longest makes room for it, and a stranger refused by the table left no
/// freshness state behind.
#[test]
fn a_configured_peer_joins_even_when_strangers_fill_the_table() {
    let (keys, key_file) = key_dir("table-full");
    let config = keys.file("config.toml", "peers = []\n", 0o600);
    let net = Block::take();
    let receiver_ip = net.ip_at(1, 1);
    let receiver_at = format!("{receiver_ip}:5000");
    let receiver_web = format!("{receiver_ip}:5080");
    let member_ip = net.ip_at(1, 9);
    let receiver = Node::on(
        &receiver_ip,
        &[],
        &[
            "--key-file",
            key_file.as_str(),
            "--config",
            config.as_str(),
            "--http",
            &receiver_web,
        ],
    );
    receiver.expect_line("Listening for peer updates...", WAIT);
    let to = addr(&receiver_at);
    let boot = unix_ms();
    let strangers = p2pmon::limits::MAX_PEERS + 8;
    for n in 0..strangers {
        // 127.N.10.2 to 127.N.15.33, clear of the receiver's and member's 127.N.1.
        let third = u8::try_from(10 + n / 200).expect("a few hundreds");
        let ip = net.ip_at(third, u8::try_from(n % 200 + 2).expect("below 202"));
        let from = addr(&format!("{ip}:5000"));
        let frame = seal(&status(from, boot, 1, Vec::new()), from, to, n as u64);
        send_once(&ip, &receiver_at, &frame);
    }
    let table_full = || {
        let (_, body) = http(&receiver_web, "GET", "/status");
        let status: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        status["node"]["rejected"]["table_full"]
            .as_u64()
            .unwrap_or(0)
    };
    let deadline = Instant::now() + WAIT;
    while table_full() == 0 {
        assert!(
            Instant::now() < deadline,
            "the table never filled:\n{}",
            receiver.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // A real member, then configured: it must be heard.
    let member = Node::on(&member_ip, &[&receiver_ip], &["--key-file", &key_file]);
    member.expect_line("Listening for peer updates...", WAIT);
    keys.file(
        "config.toml",
        &format!("peers = [\"{member_ip}\"]\n"),
        0o600,
    );
    receiver.signal("HUP");
    assert!(
        receiver
            .wait_line_from(0, Duration::from_secs(15), status_from(&member_ip))
            .is_some(),
        "the configured peer was never heard:\n{}",
        receiver
            .stderr()
            .lines()
            .filter(|l| l.contains(&member_ip) || l.contains("table"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// Item 2: with a key and --allow-plaintext, a plaintext status naming a
/// member is admitted (it prints) but teaches nothing: neither the member
/// it names nor its unauthenticated sender is dialed.
#[test]
fn plaintext_hearsay_with_a_key_dials_nobody() {
    let (_keys, key_file) = key_dir("plaintext-hearsay");
    let net = Block::take();
    let named = fake_peer(&net.addr(50));
    let sender_listener = fake_peer(&net.addr(2));
    let receiver = Node::on(
        &net.ip(1),
        &[],
        &["--key-file", key_file.as_str(), "--allow-plaintext"],
    );
    receiver.expect_line("Listening for peer updates...", WAIT);
    let member = Member {
        addr: addr(&net.addr(50)),
        name: Some("bait".into()),
        boot: 1,
        heard_ms: 0,
    };
    let line = status(addr(&net.addr(2)), unix_ms(), 1, vec![member]);
    let mut plain = connect_from(&net.ip(2), &net.addr(1));
    plain.write_all(&line).expect("send");
    assert!(
        receiver
            .wait_line_from(0, WAIT, status_from(&net.ip(2)))
            .is_some(),
        "the plaintext status was not admitted:\n{}",
        receiver.stderr()
    );
    assert!(
        !connection_within(&named, Duration::from_secs(3)),
        "a member named in plaintext was dialed:\n{}",
        receiver.stderr()
    );
    assert!(
        !connection_within(&sender_listener, Duration::from_millis(500)),
        "an unauthenticated sender was pushed back to:\n{}",
        receiver.stderr()
    );
}

/// Item 3: a keyed v1 peer whose first connection closes without a hello
/// (one injected FIN) is taken for the Python original; once it has
/// authenticated to us (a sealed status), every later frame to it is sealed,
/// even with --allow-plaintext.
#[test]
fn a_peer_downgraded_by_one_close_gets_only_sealed_frames_once_it_authenticates() {
    let (_keys, key_file) = key_dir("downgrade");
    let net = Block::take();
    let peer = fake_peer(&net.addr(2));
    let node = Node::on(
        &net.ip(1),
        &[&net.ip(2)],
        &[
            "--key-file",
            key_file.as_str(),
            "--allow-plaintext",
            "--interval",
            "300ms",
        ],
    );
    // First connection: take the status, close without greeting.
    let first = accept_within(&peer, WAIT, &node);
    first.set_read_timeout(Some(WAIT)).expect("timeout");
    let mut reader = BufReader::new(first.try_clone().expect("clone"));
    let frame = read_frame(&mut reader).expect("a first frame");
    assert!(frame.starts_with(SEALED), "{frame:?}");
    drop(reader);
    drop(first);
    drop(peer);
    node.expect_stderr("closes the connection after each status", WAIT);

    // The peer authenticates: a sealed status from its own address.
    let from = addr(&net.addr(2));
    let sealed = seal(
        &status(from, unix_ms(), 1, Vec::new()),
        from,
        addr(&net.addr(1)),
        1,
    );
    let mut talk = connect_from(&net.ip(2), &net.addr(1));
    talk.write_all(&sealed).expect("send");
    node.expect_line(&received(&net.ip(2), "1.0", "2.0"), WAIT);

    // From now on, greeted connections: only sealed frames.
    let peer = fake_peer(&net.addr(2));
    let mut frames = Vec::new();
    let deadline = Instant::now() + WAIT;
    while frames.len() < 4 && Instant::now() < deadline {
        let mut stream = accept_within(&peer, WAIT, &node);
        let _ = stream.write_all(wire::HELLO);
        stream
            .set_read_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
        let mut reader = BufReader::new(stream);
        while frames.len() < 4 {
            match read_frame(&mut reader) {
                Some(frame) => frames.push(frame),
                None => break,
            }
        }
    }
    assert_eq!(frames.len(), 4, "{}", node.stderr());
    for frame in &frames {
        assert!(
            frame.starts_with(SEALED),
            "plaintext to a peer that authenticated: {}",
            String::from_utf8_lossy(frame)
        );
    }
}

/// Item 3's boundary (kept behaviour): a receiver that never greets and
/// never authenticates (the Python original) is still sent plaintext, one
/// status per connection, with a key and --allow-plaintext.
#[test]
fn a_python_receiver_that_never_greets_still_gets_plaintext_with_allow_plaintext() {
    let (_keys, key_file) = key_dir("python-receiver");
    let net = Block::take();
    let peer = fake_peer(&net.addr(2));
    let node = Node::on(
        &net.ip(1),
        &[&net.ip(2)],
        &[
            "--key-file",
            key_file.as_str(),
            "--allow-plaintext",
            "--interval",
            "300ms",
        ],
    );
    let mut frames = Vec::new();
    for _ in 0..3 {
        let stream = accept_within(&peer, WAIT, &node);
        stream.set_read_timeout(Some(WAIT)).expect("timeout");
        let mut reader = BufReader::new(stream);
        frames.push(read_frame(&mut reader).expect("a status"));
    }
    assert!(frames[0].starts_with(SEALED), "{:?}", frames[0]);
    for frame in &frames[1..] {
        let text = String::from_utf8_lossy(frame);
        assert!(text.starts_with("{\"v\":1,\"type\":\"status\""), "{text}");
    }
    node.expect_stderr("sending to it as the Python original does", WAIT);
}
