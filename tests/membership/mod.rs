//! Membership: nodes that each know only the first one complete the mesh;
//! crashes, restarts and leaves reach every member; learned members that stay
//! offline are forgotten.

use std::time::{Duration, Instant};

use crate::util::{Block, Node, back_online, http, left, offline, status_from};

const WAIT: Duration = Duration::from_secs(15);

fn ip(net: &Block, n: usize) -> String {
    net.ip(u8::try_from(n).expect("a host number"))
}

/// A node on the block's host `n` that knows only host 1, with its status endpoint.
fn member(net: &Block, n: usize, extra: &[&str]) -> Node {
    let me = ip(net, n);
    let http_addr = format!("{me}:5080");
    let first = ip(net, 1);
    let mut args = vec![
        "--join",
        &first,
        "--learn-peers",
        "--interval",
        "500ms",
        "--http",
        &http_addr,
    ];
    args.extend_from_slice(extra);
    Node::on(&me, &[], &args)
}

/// The peers listed in a node's /status.
fn listed(net: &Block, n: usize) -> Vec<(String, String, String)> {
    let (_, body) = http(&format!("{}:5080", ip(net, n)), "GET", "/status");
    let status: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    status["peers"]
        .as_array()
        .map(|peers| {
            peers
                .iter()
                .map(|p| {
                    (
                        p["peer"].as_str().unwrap_or("").to_string(),
                        p["state"].as_str().unwrap_or("").to_string(),
                        p["known_from"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn five_nodes_that_know_only_the_first_see_each_other() {
    let net = Block::take();
    let ip = |n| ip(&net, n);
    let listed = |n| listed(&net, n);
    let started = Instant::now();
    let mut nodes: Vec<Node> = (1..=5).map(|n| member(&net, n, &[])).collect();
    let mut converged = started;
    for (i, node) in nodes.iter().enumerate() {
        for other in (1..=5).filter(|o| *o != i + 1) {
            let (_, at) = node
                .wait_line_from(0, WAIT, status_from(&ip(other)))
                .unwrap_or_else(|| {
                    panic!(
                        "{} never heard {}:\n{}",
                        ip(i + 1),
                        ip(other),
                        node.stderr()
                    )
                });
            converged = converged.max(at);
        }
    }
    let took = converged.duration_since(started);
    println!("5 nodes converged in {took:?} (interval 500 ms)");
    // Three intervals, plus the time to start five processes on a busy machine.
    assert!(took <= Duration::from_millis(1500 + 1000), "{took:?}");
    // How each learned of the others is on record.
    let seen_by_3 = listed(3);
    assert!(
        seen_by_3
            .iter()
            .any(|(p, _, from)| *p == ip(1) && from == "configured"),
        "{seen_by_3:?}"
    );
    assert!(
        seen_by_3
            .iter()
            .any(|(p, _, from)| from.starts_with("learned from")
                || from == "contacted us" && *p != ip(1))
    );

    // kill -9 node 4: every other member reports it offline, once.
    nodes[3].signal("KILL");
    for (i, node) in nodes.iter().enumerate().filter(|(i, _)| *i != 3) {
        node.expect_line(&offline(&ip(4)), WAIT);
        assert_eq!(node.count(&offline(&ip(4))), 1, "node {}", i + 1);
    }
    // Restart: back online everywhere.
    nodes[3] = member(&net, 4, &[]);
    for node in nodes
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 3)
        .map(|(_, n)| n)
    {
        node.expect_line(&back_online(&ip(4)), WAIT);
    }
    // Ctrl+C node 5: left everywhere, and gone from every list.
    nodes[4].signal("INT");
    assert_eq!(nodes[4].wait_exit(WAIT).and_then(|s| s.code()), Some(0));
    for (i, node) in nodes.iter().enumerate().take(4) {
        node.expect_line(&left(&ip(5)), WAIT);
        let deadline = Instant::now() + WAIT;
        while listed(i + 1).iter().any(|(p, _, _)| *p == ip(5)) {
            assert!(
                Instant::now() < deadline,
                "node {} still lists 5: {:?}",
                i + 1,
                listed(i + 1)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    // And the rest keep hearing each other.
    let from = nodes[1].lines().len();
    assert!(
        nodes[1]
            .wait_line_from(from, WAIT, status_from(&ip(3)))
            .is_some()
    );
}

#[test]
fn a_learned_member_offline_past_forget_after_is_forgotten() {
    // Node 1 is configured by everyone; node 3 is learned by 2.
    let net = Block::take();
    let addr = |n: usize| ip(&net, n);
    let first = addr(1);
    let start = |n: usize, extra: &[&str]| {
        let me = addr(n);
        let http_addr = format!("{me}:5080");
        let mut args = vec![
            "--join",
            &first,
            "--learn-peers",
            "--interval",
            "500ms",
            "--http",
            &http_addr,
            "--forget-after",
            "3s",
        ];
        args.extend_from_slice(extra);
        Node::on(&me, &[], &args)
    };
    let _one = start(1, &[]);
    let two = start(2, &[]);
    let three = start(3, &[]);
    assert!(
        two.wait_line_from(0, WAIT, status_from(&addr(3))).is_some(),
        "{}",
        two.stderr()
    );
    three.signal("KILL");
    two.expect_line(&offline(&addr(3)), WAIT);
    let offline_at = Instant::now();
    let forgotten_at = two.expect_line(&format!("Peer {} forgotten.", addr(3)), WAIT);
    let after = forgotten_at.duration_since(offline_at);
    println!("offline -> forgotten: {after:?} (--forget-after 3s)");
    assert!(after >= Duration::from_millis(2800), "{after:?}");
    let (_, body) = http(&net.http(2), "GET", "/status");
    assert!(!body.contains(&addr(3)), "{body}");
    // The configured peer stays listed whatever happens.
    assert!(body.contains(&format!("\"{first}\"")), "{body}");
}

#[test]
fn without_learning_a_stranger_cannot_add_members() {
    // A node without --learn-peers (and no key) ignores hearsay.
    let net = Block::take();
    let a = Node::on(
        &net.ip(1),
        &[],
        &["--http", &net.http(1), "--interval", "500ms"],
    );
    crate::util::wait_listening(&a);
    let mut stranger = crate::util::connect_from(&net.ip(9), &net.addr(1));
    let status = format!(
        r#"{{"v":1,"type":"status","node":"x","port":5000,"boot":1,"seq":0,"ts":1,"interval_ms":500,"cpu":1,"memory":1,"members":[{{"addr":"{}","boot":1,"heard_ms":0}}]}}"#,
        net.addr(77)
    );
    std::io::Write::write_all(&mut stranger, format!("{status}\n").as_bytes()).expect("write");
    a.expect_line(&crate::util::received(&net.ip(9), "1.0", "1.0"), WAIT);
    let (_, body) = http(&net.http(1), "GET", "/status");
    assert!(!body.contains(&net.ip(77)), "{body}");
}
