//! `p2pmon demo`: a three-node cluster in one process, on 127.0.0.1 and three
//! free ports, printing the events of the first node. A newcomer sees the
//! product work in one command with no other machine; Ctrl+C stops all three
//! (each sends its leave, as a real node does).

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};

use crate::Error;
use crate::cli::DemoArgs;
use crate::config::{Config, Host, HttpSetting, PeerAddr, parse_duration_within};
use crate::limits::{MAX_CONNECTIONS, MAX_PEER_INTERVAL};
use crate::node::run::Setup;
use crate::peers::{FlapRule, offline_threshold};
use crate::report::output::{Output, Stdout};

const NODES: usize = 3;

/// Runs the demo until Ctrl+C.
pub fn run(args: &DemoArgs) -> Result<(), Error> {
    crate::logging::init(args.verbose, 0);
    // Capped as a node's (config.rs): its peers refuse a longer interval_ms.
    let interval = parse_duration_within(&args.interval, MAX_PEER_INTERVAL)
        .map_err(|e| Error::Usage(format!("invalid value for --interval: {e}")))?;
    let ports = free_ports()?;
    let localhost = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let nodes = (0..NODES)
        .map(|me| {
            let peers = (0..NODES)
                .filter(|other| *other != me)
                .map(|other| PeerAddr {
                    host: Host::Ip(localhost),
                    port: ports[other],
                })
                .collect();
            let config = Config {
                peers,
                port: ports[me],
                listen: Some(localhost),
                interval,
                offline_after: offline_threshold(std::time::Duration::ZERO, interval),
                name: format!("demo-{}", me + 1),
                format: args.format,
                changes_only: false,
                timestamps: false,
                details: false,
                key_file: None,
                allow_plaintext: false,
                flap: FlapRule::default(),
                max_connections: MAX_CONNECTIONS,
                // The first node serves /status, so `p2pmon members` works on the demo.
                http: if me == 0 {
                    HttpSetting::Default(SocketAddr::from((localhost, 5080)))
                } else {
                    HttpSetting::Off
                },
                on_event: Vec::new(),
                hooks_on: crate::report::duty::HooksOn::Duty,
                learn_peers: false,
                forget_after: Some(crate::limits::DEFAULT_FORGET_AFTER),
                alerts: Vec::new(),
            };
            if me == 0 {
                Setup {
                    config,
                    output: Output::new(args.format, false, false),
                    stdout: Stdout::process(),
                }
            } else {
                Setup {
                    config,
                    output: Output::silent(),
                    stdout: Stdout::new(Box::new(std::io::sink())),
                }
            }
        })
        .collect();
    eprintln!(
        "demo: nodes demo-1, demo-2, demo-3 on 127.0.0.1 ports {}, {}, {}, sending every {:?}; \
         showing what demo-1 hears. Its dashboard is http://127.0.0.1:5080/ (also `p2pmon members`, \
         `p2pmon top`). Ctrl+C stops them.",
        ports[0], ports[1], ports[2], interval
    );
    crate::node::run::run(nodes, None, crate::http::endpoint)
}

/// Three distinct ports the OS says are free right now.
fn free_ports() -> Result<Vec<u16>, Error> {
    let sockets = (0..NODES)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::Runtime(format!("cannot find free ports on 127.0.0.1: {e}")))?;
    sockets
        .iter()
        .map(|socket| socket.local_addr().map(|addr| addr.port()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::Runtime(format!("cannot find free ports on 127.0.0.1: {e}")))
}
