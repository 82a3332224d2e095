//! Test harness: starts the real `p2pmon` binary, collects its stdout and
//! stderr line by line on background threads, and waits for lines with a
//! deadline (never a fixed sleep). Every child is killed when its handle drops.
//!
//! ## Addresses
//!
//! Every node listens on port 5000, so tests run side by side only on
//! addresses of their own. A test that uses loopback starts with
//! `let net = Block::take();` and takes every address from it:
//! `net.ip(2)` is `127.N.0.2`, `net.ip_at(9, 1)` is `127.N.9.1`, where the
//! whole `127.N.0.0/16` is the test's until `net` drops (declare it first, so
//! it drops after the nodes). No test writes a loopback address of its own;
//! there is no list of blocks to keep by hand.
//!
//! Tests inside a network namespace of their own ([`Netns`]) keep fixed
//! addresses (`127.0.0.x`): the namespace's loopback is theirs alone.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The second octets handed out: every test takes its block from here, so
/// none is kept by hand. Below 10 stays free: 127.0 is the namespaced
/// tests' and the demo's.
const BLOCKS: std::ops::RangeInclusive<u8> = 10..=250;

/// Blocks in [`BLOCKS`] never handed out: scripts/ uses them with fixed
/// addresses (prometheus-scrape.sh 127.55, bench-abuse.sh and abuse.py
/// 127.60 and 127.61, bench-dashboard.sh 127.90), and one may run while the
/// suite does.
const SCRIPTS_BLOCKS: [u8; 4] = [55, 60, 61, 90];

/// How long [`Block::take`] waits for a free block (other test processes,
/// e.g. other worktrees' suites, may hold them all) before failing.
const TAKE_PATIENCE: Duration = Duration::from_secs(120);

/// A loopback block `127.N.0.0/16` held by this test until it drops.
///
/// Unique within the process (a counter picks the next candidate) and
/// across processes (cargo-nextest runs each test in a process of its own,
/// and several checkouts may run the suite at once): block N is claimed by
/// binding the abstract Unix socket `@p2pmon-test-block-N`. The kernel
/// refuses a second bind of that name and frees it when the holder closes
/// it or dies, even by `kill -9`, so there is no stale claim to detect and
/// no race between checking and claiming, as a lock file with a PID inside
/// would have. It needs nothing newer than Rust 1.70 (`File::try_lock`
/// would need 1.89, above our `rust-version`), and its scope is exactly
/// that of what it guards: abstract socket names, like loopback addresses,
/// belong to a network namespace (a lock file in /tmp could be shared by
/// two namespaces, or not shared within one). `ss -xl | grep p2pmon-test`
/// shows who holds what.
#[derive(Debug)]
pub struct Block {
    n: u8,
    _claim: UnixListener,
}

impl Block {
    /// Claims the next free block, waiting up to [`TAKE_PATIENCE`].
    pub fn take() -> Block {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let count = BLOCKS.len();
        let deadline = Instant::now() + TAKE_PATIENCE;
        loop {
            for _ in 0..count {
                let offset = NEXT.fetch_add(1, Ordering::Relaxed) % count;
                let n = BLOCKS.start() + u8::try_from(offset).expect("fewer than 256 blocks");
                if SCRIPTS_BLOCKS.contains(&n) {
                    continue;
                }
                let name = format!("p2pmon-test-block-{n}");
                let address = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
                    .expect("a short abstract name");
                match UnixListener::bind_addr(&address) {
                    Ok(claim) => return Block { n, _claim: claim },
                    Err(e) if e.kind() == ErrorKind::AddrInUse => {}
                    Err(e) => panic!("cannot claim loopback block {n} (@{name}): {e}"),
                }
            }
            assert!(
                Instant::now() < deadline,
                "every loopback block 127.{}-127.{} stayed taken for {TAKE_PATIENCE:?} \
                 (`ss -xl | grep p2pmon-test-block` lists the holders)",
                BLOCKS.start(),
                BLOCKS.end()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// N, the block's second octet.
    pub fn n(&self) -> u8 {
        self.n
    }

    /// `127.N.0.host`.
    pub fn ip(&self, host: u8) -> String {
        self.ip_at(0, host)
    }

    /// `127.N.third.host`, for tests that need more than 254 addresses.
    pub fn ip_at(&self, third: u8, host: u8) -> String {
        format!("127.{}.{third}.{host}", self.n)
    }

    /// Several addresses `127.N.0.host` at once.
    pub fn ips<const K: usize>(&self, hosts: [u8; K]) -> [String; K] {
        hosts.map(|host| self.ip(host))
    }

    /// `127.N.0.host:5000`, where a node on `ip(host)` listens for peers.
    pub fn addr(&self, host: u8) -> String {
        format!("{}:5000", self.ip(host))
    }

    /// `127.N.0.host:5080`, the status endpoint's usual port.
    pub fn http(&self, host: u8) -> String {
        format!("{}:5080", self.ip(host))
    }
}

/// The stdout line for a peer that went offline.
pub fn offline(ip: &str) -> String {
    format!("Peer {ip} is offline.")
}

/// The stdout line for a peer back online.
pub fn back_online(ip: &str) -> String {
    format!("Peer {ip} is back online.")
}

/// The stdout line for a peer that left.
pub fn left(ip: &str) -> String {
    format!("Peer {ip} left.")
}

/// The stdout line for a status from `ip`, e.g. `received(ip, "12.5", "40.3")`.
pub fn received(ip: &str, cpu: &str, memory: &str) -> String {
    format!("Received status from {ip}: CPU={cpu}%, Memory={memory}%, Status=online")
}

/// A running p2pmon process.
pub struct Node {
    child: Child,
    pub(crate) stdout: Arc<Mutex<Vec<(Instant, String)>>>,
    stderr: Arc<Mutex<Vec<(Instant, String)>>>,
}

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_p2pmon")
}

fn collect<R: Read + Send + 'static>(source: R) -> Arc<Mutex<Vec<(Instant, String)>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(source).lines() {
            let Ok(line) = line else { break };
            if let Ok(mut lines) = sink.lock() {
                lines.push((Instant::now(), line));
            }
        }
    });
    lines
}

impl Node {
    pub fn start(args: &[&str]) -> Node {
        Node::spawn(Command::new(binary()), args)
    }

    /// Starts the binary inside a network namespace.
    pub fn start_in(netns: &Netns, args: &[&str]) -> Node {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &netns.name, binary()]);
        Node::spawn(command, args)
    }

    /// A node in `netns` on `ip`:5000 with a 1 s interval, pushing to `peers`.
    pub fn in_netns(netns: &Netns, ip: &str, peers: &[&str], extra: &[&str]) -> Node {
        let peers = peers.join(",");
        let mut args = vec!["--listen", ip, "--peers", &peers];
        if !extra.contains(&"--interval") {
            args.extend(["--interval", "1s"]);
        }
        if !extra.contains(&"--http") {
            args.extend(["--http", "off"]);
        }
        args.extend_from_slice(extra);
        Node::start_in(netns, &args)
    }

    /// Starts any command (e.g. the binary under a wrapper) with `args`.
    pub fn spawn_command(command: Command, args: &[&str]) -> Node {
        Node::spawn(command, args)
    }

    fn spawn(mut command: Command, args: &[&str]) -> Node {
        let mut child = command
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start p2pmon: {e}"));
        let stdout = collect(child.stdout.take().expect("piped stdout"));
        let stderr = collect(child.stderr.take().expect("piped stderr"));
        Node {
            child,
            stdout,
            stderr,
        }
    }

    /// A node on `ip`:5000 with a short interval, pushing to `peers`.
    pub fn on(ip: &str, peers: &[&str], extra: &[&str]) -> Node {
        let peers = peers.join(",");
        let mut args = vec!["--listen", ip];
        if !extra.contains(&"--interval") {
            args.extend(["--interval", "1s"]);
        }
        // Parallel tests would fight over the default 127.0.0.1:5080.
        if !extra.contains(&"--http") {
            args.extend(["--http", "off"]);
        }
        if !peers.is_empty() {
            args.extend(["--peers", &peers]);
        }
        args.extend_from_slice(extra);
        Node::start(&args)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// stdout lines so far.
    pub fn lines(&self) -> Vec<String> {
        self.stdout
            .lock()
            .expect("lock")
            .iter()
            .map(|(_, l)| l.clone())
            .collect()
    }

    pub fn stderr(&self) -> String {
        let lines = self.stderr.lock().expect("lock");
        lines
            .iter()
            .map(|(_, l)| l.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Number of stdout lines equal to `line`.
    pub fn count(&self, line: &str) -> usize {
        self.lines().iter().filter(|l| *l == line).count()
    }

    /// Waits until stdout has a line (after index `from`) matching `pred`;
    /// returns its index and when it was read.
    pub fn wait_line_from(
        &self,
        from: usize,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Option<(usize, Instant)> {
        let deadline = Instant::now() + timeout;
        loop {
            {
                let lines = self.stdout.lock().expect("lock");
                if let Some(found) = lines
                    .iter()
                    .enumerate()
                    .skip(from)
                    .find(|(_, (_, l))| pred(l))
                {
                    return Some((found.0, found.1.0));
                }
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits for an exact stdout line, panicking with the output on timeout.
    pub fn expect_line(&self, line: &str, timeout: Duration) -> Instant {
        match self.wait_line_from(0, timeout, |l| l == line) {
            Some((_, at)) => at,
            None => panic!(
                "no line {line:?} within {timeout:?}\nstdout:\n{}\nstderr:\n{}",
                self.lines().join("\n"),
                self.stderr()
            ),
        }
    }

    /// Waits for a stdout line matching `pred`, panicking with the output on timeout.
    pub fn expect_line_matching(&self, pred: impl Fn(&str) -> bool, timeout: Duration) {
        if self.wait_line_from(0, timeout, pred).is_none() {
            panic!(
                "no matching line:\n{}\n{}",
                self.lines().join("\n"),
                self.stderr()
            );
        }
    }

    /// Waits until stderr contains `text`.
    pub fn expect_stderr(&self, text: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.stderr().contains(text) {
            if Instant::now() >= deadline {
                panic!("stderr never contained {text:?}:\n{}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends a signal by name (INT, TERM, KILL).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.pid().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                // Let the reader threads drain the pipes.
                std::thread::sleep(Duration::from_millis(50));
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs the binary to completion with `args`, returning (exit code, stdout, stderr).
pub fn run(args: &[&str]) -> (i32, String, String) {
    let output = Command::new(binary())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("p2pmon runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Runs the binary with `args` for at most `timeout` (a node that should
/// have refused its command line would run for ever): (exit code, stdout,
/// stderr), code -1 when it had to be killed.
pub fn run_within(args: &[&str], timeout: Duration) -> (i32, String, String) {
    let mut child = Command::new(binary())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("p2pmon runs");
    let deadline = Instant::now() + timeout;
    while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    if child.try_wait().ok().flatten().is_none() {
        let _ = child.kill();
    }
    let output = child.wait_with_output().expect("output");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A private directory for one test's files, `p2pmon-<tag>-<pid>` in the
/// temporary directory, removed on drop. Tags are unique per test.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("p2pmon-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.0
    }

    /// The path of `name` inside it (not created), as a string.
    pub fn path(&self, name: &str) -> String {
        self.0.join(name).to_str().expect("utf-8 path").to_string()
    }

    /// Writes `text` to `name` with `mode`; returns its path as a string.
    pub fn file(&self, name: &str, text: &str, mode: u32) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, text).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        path.to_str().expect("utf-8 path").to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The fixed key `[byte; 32]` as a key file holds it (base64, no newline).
pub fn key(byte: u8) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode([byte; 32])
}

/// Largest gap between consecutive times within [from, to], the ends
/// counted as times: a silence at the start or the end of the window counts.
pub fn largest_gap(times: &[Instant], from: Instant, to: Instant) -> Duration {
    let mut inside: Vec<Instant> = times
        .iter()
        .copied()
        .filter(|t| *t >= from && *t <= to)
        .collect();
    inside.insert(0, from);
    inside.push(to);
    inside
        .windows(2)
        .map(|w| w[1].duration_since(w[0]))
        .max()
        .unwrap_or_default()
}

/// Largest gap between two consecutive times inside [from, to), the ends
/// not counted (only gaps between events); the whole window if fewer than
/// two times fall in it.
pub fn largest_gap_between(times: &[Instant], from: Instant, to: Instant) -> Duration {
    let window: Vec<Instant> = times
        .iter()
        .copied()
        .filter(|at| *at >= from && *at < to)
        .collect();
    window
        .windows(2)
        .map(|pair| pair[1] - pair[0])
        .max()
        .unwrap_or(to - from)
}

/// Connects to `to` from the source address `from` (a loopback IP of the test's block).
pub fn connect_from(from: &str, to: &str) -> TcpStream {
    let from: Ipv4Addr = from.parse().expect("source ip");
    let to: SocketAddr = to.parse().expect("target addr");
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    socket
        .bind(&SocketAddr::from((from, 0)).into())
        .expect("bind source");
    socket
        .connect_timeout(&to.into(), Duration::from_secs(2))
        .expect("connect");
    socket.into()
}

/// Sends `bytes` from `from` to `to` and closes, as the Python original does.
pub fn send_once(from: &str, to: &str, bytes: &[u8]) {
    let mut stream = connect_from(from, to);
    stream.write_all(bytes).expect("write");
}

/// Binds a plain listener (a fake peer).
pub fn fake_peer(addr: &str) -> TcpListener {
    TcpListener::bind(addr).unwrap_or_else(|e| panic!("cannot bind fake peer {addr}: {e}"))
}

/// Waits for the node's "Listening" line (the port is bound).
pub fn wait_listening(node: &Node) {
    node.expect_line("Listening for peer updates...", Duration::from_secs(10));
}

/// Accepts one connection on a fake peer within `timeout`, or panics with the
/// node's output (a node that exited early shows why).
pub fn accept_within(listener: &TcpListener, timeout: Duration, node: &Node) -> TcpStream {
    listener.set_nonblocking(true).expect("nonblocking");
    let deadline = Instant::now() + timeout;
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false).expect("blocking");
                return stream;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("accept failed: {e}"),
        }
        if Instant::now() >= deadline {
            panic!(
                "no connection within {timeout:?}\nstdout:\n{}\nstderr:\n{}",
                node.lines().join("\n"),
                node.stderr()
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A network namespace of the test's own, removed on drop. Inside it the
/// whole 127.0.0.0/8 is the test's, and iptables rules make real faults.
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// Creates `p2pmon-<tag>-<pid>` with its loopback up. Panics with a clear
    /// message when namespaces are not available (not root, no iproute2,
    /// no iptables): these tests must not pass silently.
    pub fn new(tag: &str) -> Netns {
        let name = format!("p2pmon-{tag}-{}", std::process::id());
        let _ = Command::new("ip")
            .args(["netns", "del", &name])
            .stderr(Stdio::null())
            .status();
        let created = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            created,
            "cannot create network namespace {name}: these fault tests need root and iproute2 \
             (.ci/run installs what it needs; run the suite as root)"
        );
        let netns = Netns { name };
        netns.run(&["ip", "link", "set", "lo", "up"]);
        let iptables = Command::new("ip")
            .args(["netns", "exec", &netns.name, "iptables", "-L", "-n"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            iptables,
            "iptables does not work in a namespace here (apt-get install iptables)"
        );
        netns
    }

    /// Runs a command inside the namespace and asserts it succeeded.
    pub fn run(&self, args: &[&str]) {
        let status = Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(args)
            .status()
            .expect("ip netns exec runs");
        assert!(status.success(), "{args:?} failed in {}", self.name);
    }

    /// Drops every packet between `a` and `b`, both directions.
    pub fn partition(&self, a: &str, b: &str) {
        self.run(&["iptables", "-A", "INPUT", "-s", a, "-d", b, "-j", "DROP"]);
        self.run(&["iptables", "-A", "INPUT", "-s", b, "-d", a, "-j", "DROP"]);
    }

    /// Drops every packet to and from `ip`.
    pub fn black_hole(&self, ip: &str) {
        self.run(&["iptables", "-A", "INPUT", "-s", ip, "-j", "DROP"]);
        self.run(&["iptables", "-A", "INPUT", "-d", ip, "-j", "DROP"]);
    }

    /// Removes every rule.
    pub fn heal(&self) {
        self.run(&["iptables", "-F", "INPUT"]);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Times at which stdout lines matching `pred` were read.
pub fn times_of(node: &Node, pred: impl Fn(&str) -> bool) -> Vec<Instant> {
    node.stdout
        .lock()
        .expect("lock")
        .iter()
        .filter(|(_, line)| pred(line))
        .map(|(at, _)| *at)
        .collect()
}

/// A plain HTTP/1.1 GET (or other method) on `addr`; returns (status code, body).
pub fn http(addr: &str, method: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("request");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    let code = answer
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, body)
}

/// Matches the stdout line of a status received from `ip`.
pub fn status_from(ip: &str) -> impl Fn(&str) -> bool + '_ {
    move |line: &str| line.starts_with(&format!("Received status from {ip}: CPU="))
}
