//! The web dashboard in a real browser: headless Chromium (Debian's
//! `chromium`; `.ci/run` installs it) loads `GET /` from a three-node
//! loopback cluster, runs the page's script, and we read the DOM it built.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::util::{Block, Node, http, offline, status_from};

const WAIT: Duration = Duration::from_secs(15);

/// Longest a single Chromium run may take (a cold start is about 1 s).
const BROWSER_DEADLINE: Duration = Duration::from_secs(60);

/// Virtual time the page gets before the DOM is dumped: one poll of /status
/// and /history (which pause virtual time while in flight) and its render.
const PAGE_BUDGET_MS: u32 = 1500;

/// The Chromium binary, or a failure that says how to get it.
pub(crate) fn chromium() -> PathBuf {
    let candidates = [
        std::env::var("CHROMIUM").unwrap_or_default(),
        "chromium".into(),
    ];
    for candidate in candidates.iter().filter(|c| !c.is_empty()) {
        let found = Command::new(candidate)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if found {
            return PathBuf::from(candidate);
        }
    }
    panic!(
        "the dashboard test needs headless Chromium: `apt-get install chromium` \
         (Debian's package; .ci/run installs it), or set CHROMIUM=/path/to/chrome"
    );
}

/// Runs headless Chromium on `url` with `extra` flags, in a fresh profile,
/// and returns its stdout. Killed (by its PID) past [`BROWSER_DEADLINE`].
fn browse(url: &str, extra: &[&str]) -> String {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    let profile = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "chromium-profile-{}-{}",
        std::process::id(),
        RUNS.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&profile);
    let budget = format!("--virtual-time-budget={PAGE_BUDGET_MS}");
    let mut child = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox", // as root, Chromium refuses to start with its sandbox
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            &budget,
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("chromium starts");
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let out = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let err = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + BROWSER_DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for chromium") {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let text = out.join().unwrap_or_default();
    let errors = err.join().unwrap_or_default();
    let _ = std::fs::remove_dir_all(&profile);
    match status {
        Some(status) if status.success() => text,
        Some(status) => panic!("chromium failed ({status}):\n{errors}"),
        None => panic!("chromium did not finish within {BROWSER_DEADLINE:?}:\n{errors}"),
    }
}

/// The `data-state` of the card of `peer` in a dumped DOM.
fn card_state<'a>(dom: &'a str, peer: &str) -> Option<&'a str> {
    let marker = format!("class=\"card peer\" data-peer=\"{peer}\" data-state=\"");
    let start = dom.find(&marker)? + marker.len();
    dom[start..].split('"').next()
}

/// The markup of the card of `peer` in a dumped DOM.
fn card<'a>(dom: &'a str, peer: &str) -> Option<&'a str> {
    let marker = format!("class=\"card peer\" data-peer=\"{peer}\"");
    let start = dom.find(&marker)?;
    let end = dom[start..].find("</article>")?;
    Some(&dom[start..start + end])
}

/// From `from`, a fake peer that reports every health field sends a status
/// to `to` every 300 ms until `stop`: 5 s of its uptime and 10 KiB sent each.
fn health_sender(from: String, to: String, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        use std::io::Write;
        // One connection, as a v1 peer keeps (closing it would mean offline).
        let mut stream = crate::util::connect_from(&from, &to);
        let mut seq = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let status = format!(
                "{{\"v\":1,\"type\":\"status\",\"node\":\"delta\",\"port\":5000,\"boot\":1,\
                 \"seq\":{seq},\"ts\":1,\"interval_ms\":1000,\"cpu\":12,\"memory\":34,\
                 \"load\":[0.5,1.25,2],\"cpus\":4,\"swap\":12.5,\
                 \"fs\":[{{\"mount\":\"/data\",\"used\":90,\"size\":1099511627776}},\
                 {{\"mount\":\"/\",\"used\":71.3,\"size\":1073741824}}],\
                 \"net_rx\":{rx},\"net_tx\":{tx},\"uptime_s\":{uptime}}}\n",
                rx = 1 << 30,
                tx = seq * 5 * 2048,
                uptime = 3600 + seq * 5,
            );
            if stream.write_all(status.as_bytes()).is_err() {
                return;
            }
            seq += 1;
            std::thread::sleep(Duration::from_millis(300));
        }
    })
}

/// Dumps the DOM of the page at `url` until `check` holds on it, or fails
/// at the deadline.
pub(crate) fn dom_until(url: &str, what: &str, check: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let dom = browse(url, &["--dump-dom"]);
        if check(&dom) {
            return dom;
        }
        assert!(
            Instant::now() < deadline,
            "the page never showed {what}:\n{dom}"
        );
    }
}

fn assert_png(path: &Path) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        bytes.len() > 1000 && bytes.starts_with(b"\x89PNG"),
        "{} is not a screenshot",
        path.display()
    );
}

#[test]
#[ignore = "needs chromium (headless)"]
fn the_dashboard_shows_peer_cards_and_a_killed_peer_turns_offline() {
    chromium(); // without a browser, fail first and say how to get one
    let net = Block::take();
    let owned = net.ips([1, 2, 3]);
    let ips = owned.each_ref().map(String::as_str);
    let endpoint = net.http(1);
    let dashboard = format!("http://{endpoint}/");
    let a = Node::on(ips[0], &ips, &["--http", &endpoint, "--name", "alpha"]);
    let _b = Node::on(ips[1], &ips, &["--name", "bravo"]);
    let c = Node::on(ips[2], &ips, &["--name", "charlie"]);
    for other in [ips[1], ips[2]] {
        assert!(
            a.wait_line_from(0, WAIT, status_from(other)).is_some(),
            "no status from {other}:\n{}",
            a.lines().join("\n")
        );
    }

    // The page and its data, as plain HTTP.
    let (code, page) = http(&endpoint, "GET", "/");
    assert_eq!(code, 200);
    assert!(page.starts_with("<!doctype html>") && !page.contains("src=\"http"));
    let (code, history) = http(&endpoint, "GET", "/history");
    assert_eq!(code, 200);
    let history: serde_json::Value = serde_json::from_str(&history).expect("history is JSON");
    assert_eq!(history["window_s"], 900);
    assert_eq!(history["peers"].as_array().map(Vec::len), Some(2));
    assert!(history["node"]["points"][0][1].is_number(), "{history}");
    let (code, text) = http(&endpoint, "GET", "/nowhere");
    assert_eq!(code, 404);
    assert!(text.contains("/history"), "{text}");

    let dom = dom_until(&dashboard, "two online peer cards", |dom| {
        card_state(dom, ips[1]) == Some("online") && card_state(dom, ips[2]) == Some("online")
    });
    assert_eq!(dom.matches("class=\"card peer\"").count(), 2, "{dom}");
    assert!(dom.contains("charlie"), "names come from /status:\n{dom}");
    assert!(
        dom.contains("class=\"cpu-line\""),
        "charts are drawn:\n{dom}"
    );

    c.signal("KILL");
    a.expect_line(&offline(ips[2]), WAIT);
    let dom = dom_until(&dashboard, "charlie offline", |dom| {
        card_state(dom, ips[2]) == Some("offline")
    });
    assert_eq!(card_state(&dom, ips[1]), Some("online"), "{dom}");

    // A peer that reports its host's health: its card shows load, the
    // fullest filesystem with its mount, network, uptime and the second chart.
    let fake = net.ip(5);
    let stop = Arc::new(AtomicBool::new(false));
    let sender = health_sender(fake.clone(), net.addr(1), Arc::clone(&stop));
    let dom = dom_until(&dashboard, "the health of delta", |dom| {
        card(dom, &fake).is_some_and(|card| card.contains(">0.50<"))
    });
    let delta = card(&dom, &fake).unwrap_or_default();
    for shown in [
        "<span class=\"number\">90.0%</span>",
        "<span class=\"mount\">/data</span>",
        "4 CPUs · swap 12.5% · net ↓ ",
        "booted 1 h 0 min ago",
        "class=\"load-line\"",
        "class=\"disk-line\"",
    ] {
        assert!(delta.contains(shown), "{shown}:\n{delta}");
    }
    // The real nodes sample their own host now: their cards show the health
    // rows too, with this machine's CPU count.
    let bravo = card(&dom, ips[1]).unwrap_or_default();
    let cpus = format!(
        "{} CPUs",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    assert!(
        bravo.contains("class=\"load health-only\"") && bravo.contains(&cpus),
        "{cpus}:\n{bravo}"
    );

    // Screenshots at desktop and phone width (docs/dashboard.png is made the
    // same way from a cluster that has run for a few minutes).
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    for (name, size) in [
        ("dashboard.png", "1200,800"),
        ("dashboard-phone.png", "390,1000"),
    ] {
        let path = dir.join(name);
        let _ = std::fs::remove_file(&path);
        browse(
            &dashboard,
            &[
                &format!("--screenshot={}", path.display()),
                &format!("--window-size={size}"),
            ],
        );
        assert_png(&path);
    }
    stop.store(true, Ordering::Relaxed);
    let _ = sender.join();
}
