//! `p2pmon top` on the real binary: the full screen driven under tmux
//! against a three-node cluster, the plain fallback on a pipe, and the exit
//! when no node answers.

use std::time::{Duration, Instant};

use crate::util::{Block, Node, run};

const WAIT: Duration = Duration::from_secs(15);

/// The full screen exists only with the `tui` feature (the default).
#[cfg(feature = "tui")]
mod screen {
    use std::path::PathBuf;
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    use super::WAIT;
    use crate::util::{Block, Node, binary};

    /// A detached tmux session on a server of the test's own (its socket in the
    /// temp dir, `-S`), so it never sees or touches anyone else's sessions; on
    /// drop the session is killed by name (the server goes with its last
    /// session) and the socket file removed.
    struct Tmux {
        socket: PathBuf,
        session: String,
    }

    impl Tmux {
        fn start(tag: &str, width: u16, height: u16, command: &str) -> Tmux {
            let id = format!("p2pmon-{tag}-{}", std::process::id());
            let tmux = Tmux {
                socket: std::env::temp_dir().join(format!("{id}.tmux")),
                session: id,
            };
            let width = width.to_string();
            let height = height.to_string();
            let started = tmux
                .command()
                .args(["new-session", "-d", "-s", &tmux.session, "-x", &width])
                .args(["-y", &height, command])
                .status()
                .is_ok_and(|s| s.success());
            assert!(
                started,
                "cannot start tmux (apt-get install tmux; .ci/run does)"
            );
            tmux
        }

        fn command(&self) -> Command {
            let mut command = Command::new("tmux");
            command
                .arg("-S")
                .arg(&self.socket)
                .args(["-f", "/dev/null"])
                .stdin(Stdio::null());
            command
        }

        fn screen(&self) -> String {
            let output = self
                .command()
                .args(["capture-pane", "-p", "-t", &self.session])
                .output()
                .expect("tmux runs");
            String::from_utf8_lossy(&output.stdout).into_owned()
        }

        fn send(&self, keys: &str) {
            let sent = self
                .command()
                .args(["send-keys", "-t", &self.session, keys])
                .status()
                .is_ok_and(|s| s.success());
            assert!(sent, "send-keys {keys}");
        }

        fn alive(&self) -> bool {
            self.command()
                .args(["has-session", "-t", &self.session])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        }

        /// Polls the screen until `pred` holds; panics with the last screen.
        fn wait_for(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
            let deadline = Instant::now() + WAIT;
            loop {
                let screen = self.screen();
                if pred(&screen) {
                    return screen;
                }
                if Instant::now() >= deadline {
                    panic!("the screen never showed {what}:\n{screen}");
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }

    impl Drop for Tmux {
        fn drop(&mut self) {
            let _ = self
                .command()
                .args(["kill-session", "-t", &self.session])
                .stderr(Stdio::null())
                .status();
            let _ = std::fs::remove_file(&self.socket);
        }
    }

    /// The screen line of a peer's row, if any.
    fn row<'a>(screen: &'a str, peer: &str) -> Option<&'a str> {
        screen
            .lines()
            .find(|line| line.split_whitespace().next() == Some(peer))
    }

    fn row_state(screen: &str, peer: &str) -> Option<String> {
        row(screen, peer).and_then(|line| line.split_whitespace().nth(2).map(str::to_string))
    }

    /// A file of the test's own in the temp dir, removed on drop.
    struct TempFile(PathBuf);

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    #[test]
    #[ignore = "needs tmux"]
    fn top_shows_the_cluster_live_sorts_and_quits_on_q() {
        let net = Block::take();
        let owned = net.ips([1, 2, 3]);
        let ips = owned.each_ref().map(String::as_str);
        let _a = Node::on(ips[0], &ips, &["--http", &net.http(1)]);
        let _b = Node::on(ips[1], &ips, &["--name", "bravo"]);
        let c = Node::on(ips[2], &ips, &["--name", "charlie"]);
        let code =
            TempFile(std::env::temp_dir().join(format!("p2pmon-top-{}", std::process::id())));
        let tmux = Tmux::start(
            "top",
            120,
            30,
            &format!(
                "{} top --http {}; echo $? > {}",
                binary(),
                net.http(1),
                code.0.display()
            ),
        );

        // A peer can be online (its port took our connection) before its
        // first status: wait for the names, which only statuses carry.
        let reported = |screen: &str, peer: &str, name: &str| {
            row_state(screen, peer).as_deref() == Some("online")
                && row(screen, peer).is_some_and(|line| line.contains(name))
        };
        let screen = tmux.wait_for("both peers online with their statuses", |screen| {
            reported(screen, ips[1], "bravo") && reported(screen, ips[2], "charlie")
        });
        assert!(screen.contains("p2pmon top"), "{screen}");
        assert!(screen.contains("LAST SEEN"), "{screen}");
        // The rows carry the numbers and the bars: "12.3% ██▍".
        let bravo = row(&screen, ips[1]).unwrap_or_default();
        assert!(bravo.contains('%') && bravo.contains(" ago"), "{screen}");

        // A crash: the row turns offline.
        c.signal("KILL");
        tmux.wait_for("the killed peer offline", |screen| {
            row_state(screen, ips[2]).as_deref() == Some("offline")
                && row_state(screen, ips[1]).as_deref() == Some("online")
        });

        // `3` sorts by state, trouble first.
        tmux.send("3");
        let screen = tmux.wait_for("the state sort", |screen| {
            let position = |peer| screen.lines().position(|l| l.starts_with(peer));
            screen.contains("sorted by state") && position(ips[2]) < position(ips[1])
        });
        assert!(row(&screen, ips[2]).is_some(), "{screen}");

        // `q` quits: the session (whose only command is top, then the echo) ends.
        tmux.send("q");
        let deadline = Instant::now() + WAIT;
        while tmux.alive() {
            assert!(
                Instant::now() < deadline,
                "top did not quit:\n{}",
                tmux.screen()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let exit = std::fs::read_to_string(&code.0).unwrap_or_default();
        assert_eq!(exit.trim(), "0", "exit code of top");
    }
}

#[test]
fn top_prints_plain_tables_when_stdout_is_not_a_terminal() {
    let net = Block::take();
    let owned = net.ips([1, 2]);
    let ips = owned.each_ref().map(String::as_str);
    let a = Node::on(ips[0], &ips, &["--http", &net.http(1)]);
    let _b = Node::on(ips[1], &ips, &["--name", "bravo"]);
    let from_b = format!("Received status from {}:", ips[1]);
    let heard = a.wait_line_from(0, WAIT, |line| line.starts_with(&from_b));
    assert!(heard.is_some(), "{:?}\n{}", a.lines(), a.stderr());

    let started = Instant::now();
    let (code, stdout, stderr) = run(&["top", "--http", &net.http(1), "--count", "2"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    // Two tables, one second apart.
    assert!(started.elapsed() >= Duration::from_millis(900));
    let headers = stdout.lines().filter(|l| l.starts_with("PEER")).count();
    assert_eq!(headers, 2, "{stdout}");
    let rows: Vec<&str> = stdout.lines().filter(|l| l.starts_with(ips[1])).collect();
    assert_eq!(rows.len(), 2, "{stdout}");
    assert!(
        rows.iter()
            .all(|r| r.contains("bravo") && r.contains("online")),
        "{stdout}"
    );
    assert!(
        !stdout.contains('\x1b'),
        "no escape codes on a pipe: {stdout:?}"
    );
}

#[test]
fn top_exits_1_when_no_node_answers() {
    let net = Block::take();
    let (code, stdout, stderr) = run(&["top", "--http", &net.http(1)]);
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr.contains(&format!("error: no p2pmon node answers at {}", net.http(1))),
        "{stderr}"
    );
}
