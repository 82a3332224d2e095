//! One notification per cluster event (`--hooks-on duty`, the default):
//! three real nodes with the same recording hook, each writing to a file of
//! its own, and every event of a crash and a return accounted for across
//! the cluster: run by exactly one node, and every other node that saw it
//! said (on stderr) which node was on duty instead. Waiting for every
//! witness's decision, not for time to pass, is what makes "exactly one"
//! an observation rather than a guess.

use std::time::{Duration, Instant};

use crate::util::{Block, Node, TempDir, back_online, offline, status_from};

const WAIT: Duration = Duration::from_secs(10);

/// The cluster: nodes .1 < .2 < .3 and the files their hooks append
/// "<event> <peer> <node> <rule>" to.
struct Cluster<'a> {
    ips: [&'a str; 3],
    dir: &'a TempDir,
}

impl Cluster<'_> {
    fn start(&self, ip: &str) -> Node {
        self.start_with(ip, &[])
    }

    fn start_with(&self, ip: &str, extra: &[&str]) -> Node {
        let hook = format!(
            "echo \"$P2PMON_EVENT $P2PMON_PEER {ip} $P2PMON_HOOK_RULE\" >> {}",
            self.dir.path(&format!("hooks.{ip}"))
        );
        // A long offline-after: crashes are hard signals (connection closed,
        // connect refused), seen at once; silence never decides here, so a
        // restarted node does not declare a peer it has not heard yet offline.
        let mut args = vec![
            "--on-event",
            &hook,
            "--interval",
            "300ms",
            "--offline-after",
            "5s",
        ];
        args.extend_from_slice(extra);
        Node::on(ip, &self.ips, &args)
    }

    /// Every hook run in the cluster so far, as "<event> <peer> <node> <rule>".
    fn runs(&self) -> Vec<String> {
        self.ips
            .iter()
            .flat_map(|ip| {
                std::fs::read_to_string(self.dir.path(&format!("hooks.{ip}")))
                    .unwrap_or_default()
                    .lines()
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// The runs for `event` of `peer`.
    fn runs_of(&self, event: &str, peer: &str) -> Vec<String> {
        let prefix = format!("{event} {peer} ");
        self.runs()
            .into_iter()
            .filter(|run| run.starts_with(&prefix))
            .collect()
    }

    /// Waits until each of `witnesses` has decided about `event` of `peer`:
    /// it ran the hook, or it logged which node was on duty. Returns the
    /// cluster's runs for it.
    fn decided(&self, event: &str, peer: &str, witnesses: &[(&str, &Node)]) -> Vec<String> {
        let deadline = Instant::now() + WAIT;
        let stood_down = format!("hooks for the {event} of {peer}: ");
        loop {
            let runs = self.runs_of(event, peer);
            let undecided: Vec<&str> = witnesses
                .iter()
                .filter(|(ip, node)| {
                    !runs.iter().any(|run| run.contains(&format!(" {ip} ")))
                        && !node.stderr().contains(&stood_down)
                })
                .map(|(ip, _)| *ip)
                .collect();
            if undecided.is_empty() {
                return runs;
            }
            assert!(
                Instant::now() < deadline,
                "{undecided:?} never decided about the {event} of {peer}; runs: {:?}",
                self.runs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn wait_for_all(node: &Node, others: &[&str]) {
    for ip in others {
        assert!(
            node.wait_line_from(0, WAIT, status_from(ip)).is_some(),
            "no status from {ip}: {}",
            node.stderr()
        );
    }
}

#[test]
fn one_node_runs_the_hooks_for_each_crash_and_return() {
    let net = Block::take();
    let dir = TempDir::new("duty");
    let owned = net.ips([1, 2, 3]);
    let ips = owned.each_ref().map(String::as_str);
    let [a_ip, b_ip, c_ip] = ips;
    let cluster = Cluster { ips, dir: &dir };
    let mut c = cluster.start(c_ip);
    let b = cluster.start(b_ip);
    let mut a = cluster.start(a_ip);
    wait_for_all(&a, &[b_ip, c_ip]);
    wait_for_all(&b, &[a_ip, c_ip]);
    wait_for_all(&c, &[a_ip, b_ip]);

    // .3 crashes: .1 and .2 see it; .1, the lowest, runs the hook.
    c.signal("KILL");
    c.wait_exit(WAIT);
    a.expect_line(&offline(c_ip), WAIT);
    b.expect_line(&offline(c_ip), WAIT);
    let runs = cluster.decided("offline", c_ip, &[(a_ip, &a), (b_ip, &b)]);
    assert_eq!(runs, [format!("offline {c_ip} {a_ip} duty")]);
    assert!(
        b.stderr().contains(&format!(
            "hooks for the offline of {c_ip}: {a_ip} is on duty"
        )),
        "{}",
        b.stderr()
    );

    // The duty node .1 crashes: .2 is the lowest left, and runs the hook.
    a.signal("KILL");
    a.wait_exit(WAIT);
    b.expect_line(&offline(a_ip), WAIT);
    let runs = cluster.decided("offline", a_ip, &[(b_ip, &b)]);
    assert_eq!(runs, [format!("offline {a_ip} {b_ip} duty")]);

    // Both come back: only .2 saw them go, so only .2 sees them return (to
    // the restarted nodes, each other is a first status); each return is
    // one run, although .1 is the lowest again by then.
    let c = cluster.start(c_ip);
    let a = cluster.start(a_ip);
    b.expect_line(&back_online(a_ip), WAIT);
    b.expect_line(&back_online(c_ip), WAIT);
    wait_for_all(&a, &[b_ip, c_ip]);
    wait_for_all(&c, &[a_ip, b_ip]);
    for peer in [a_ip, c_ip] {
        let runs = cluster.decided("online", peer, &[(b_ip, &b)]);
        assert_eq!(runs, [format!("online {peer} {b_ip} duty")]);
    }
    // Nothing else ran anywhere: the restarted nodes saw no event of
    // their own about the others.
    let mut all = cluster.runs();
    all.sort();
    let mut expected = vec![
        format!("offline {c_ip} {a_ip} duty"),
        format!("offline {a_ip} {b_ip} duty"),
        format!("online {a_ip} {b_ip} duty"),
        format!("online {c_ip} {b_ip} duty"),
    ];
    expected.sort();
    assert_eq!(all, expected);
    for node in [&a, &c] {
        assert!(
            !node.lines().iter().any(|l| l.starts_with("Peer ")),
            "a restarted node saw an event: {:?}",
            node.lines()
        );
    }
}

#[test]
fn with_hooks_on_every_each_node_that_sees_a_crash_runs_the_hook() {
    let net = Block::take();
    let dir = TempDir::new("duty-every");
    let owned = net.ips([1, 2, 3]);
    let ips = owned.each_ref().map(String::as_str);
    let [a_ip, b_ip, c_ip] = ips;
    let cluster = Cluster { ips, dir: &dir };
    let every = ["--hooks-on", "every"];
    let mut c = cluster.start_with(c_ip, &every);
    let b = cluster.start_with(b_ip, &every);
    let a = cluster.start_with(a_ip, &every);
    wait_for_all(&a, &[b_ip, c_ip]);
    wait_for_all(&b, &[a_ip, c_ip]);
    wait_for_all(&c, &[a_ip, b_ip]);
    c.signal("KILL");
    c.wait_exit(WAIT);
    let mut runs = cluster.decided("offline", c_ip, &[(a_ip, &a), (b_ip, &b)]);
    runs.sort();
    assert_eq!(
        runs,
        [
            format!("offline {c_ip} {a_ip} every"),
            format!("offline {c_ip} {b_ip} every"),
        ]
    );
}
