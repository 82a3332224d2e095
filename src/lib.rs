//! p2pmon: a peer-to-peer host monitor. Every node samples its own CPU and
//! memory and pushes them to its peers; every node listens, prints what its
//! peers report, and says when one goes offline, comes back or leaves.
//!
//! A tour of the crate, in the order data flows:
//! - [`cli`] and [`config`]: the command line and the TOML file, merged and
//!   validated into a [`config::Config`] (errors exit 2);
//! - [`node`]: binds the listening sockets, then starts two threads around
//!   one shared state (peer table, output, counters);
//! - [`sender`]: samples ([`sample`], the only user of sysinfo) and pushes a
//!   status to every peer each interval, one `mio` event loop;
//! - [`listener`]: accepts and reads every peer's frames on one `mio` event
//!   loop and runs the timers;
//! - [`wire`]: framing, encoding and strict decoding of protocol v1 and of the
//!   Python original's messages;
//! - [`seal`]: with a cluster key, sealed frames, the keyring (SIGHUP reloads
//!   it) and the checks that a message is authentic, for us and fresh;
//! - [`peers`]: the peer table and its state machine (online, offline, back
//!   online, left), pure and tested with an injected clock;
//! - [`output`]: the event lines on stdout, text or JSON;
//! - [`stats`]: counters and the rate limit on rejection logs;
//! - [`http`] and [`status`]: the status endpoint (/metrics, /status,
//!   /healthz, and the web dashboard at / with its /history, kept by
//!   [`history`]) on a third thread, which also runs the event [`hooks`];
//! - [`members`]: `p2pmon members`, the peer table of a running node;
//! - [`top`]: `p2pmon top`, the same table live and full-screen;
//! - [`loadgen`]: simulated peers for the benchmarks (hidden subcommand);
//! - [`shutdown`]: the one stop token that Ctrl+C and SIGTERM set;
//! - [`reload`]: SIGHUP, which re-reads the config file's peer list and the
//!   key file while the node runs;
//! - [`manual`]: the man page and shell completions, from the clap definitions;
//! - [`demo`]: three nodes in one process for a first look;
//! - [`limits`]: every size, count and timeout, with its reason.

pub mod cli;
pub mod client;
pub mod cmd;
pub mod config;
mod error;
pub mod http;
pub mod limits;
pub mod node;
pub mod peers;
pub mod proto;
pub mod report;
pub mod sys;

#[cfg(test)]
mod layers;

pub use error::Error;

use std::ffi::OsString;

use std::io::Write;

use clap::Parser;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::cli::{Cli, Command, RunArgs};
use crate::config::{Config, FileConfig};
use crate::node::Node;
use crate::node::shutdown::Shutdown;
use crate::report::output::{Output, Stdout};

/// Runs the program with these arguments (the first is the program name).
/// `--help` and `--version` print and exit here, as clap does.
pub fn run(args: impl IntoIterator<Item = OsString>) -> Result<(), Error> {
    let cli = Cli::parse_from(args);
    match cli.command {
        None => run_node(&cli.run),
        Some(Command::Run(args)) => run_node(&args),
        Some(Command::Demo(args)) => cmd::demo::run(&args),
        Some(Command::Keygen(args)) => proto::seal::keygen(args.out.as_deref(), args.force),
        Some(Command::Members(args)) => client::members::run(&args),
        Some(Command::Top(args)) => client::top::run(&args),
        Some(Command::Loadgen(args)) => cmd::loadgen::run(&args),
        Some(Command::Man(args)) => cli::manual::man(args.out.as_deref()),
        Some(Command::Completions(args)) => cli::manual::completions(args.shell),
    }
}

/// Runs one node until Ctrl+C or SIGTERM.
fn run_node(args: &RunArgs) -> Result<(), Error> {
    let file = match &args.config {
        Some(path) => FileConfig::load(path)?,
        None => FileConfig::default(),
    };
    let default_name = node::sample::host_name().unwrap_or_else(|| "p2pmon".to_string());
    let config = Config::merge(args, file, &default_name)?;
    init_logging(args.verbose, args.quiet);
    log::debug!("{config:?}");
    let output = Output::new(config.format, config.timestamps, config.changes_only);
    let source = node::reload::Source {
        args: args.clone(),
        default_name,
    };
    run_nodes_reloading(vec![(config, output, Stdout::process())], Some(&source))
}

/// Sets up stderr logging: warnings by default, -v info, -vv debug, -q errors
/// only; RUST_LOG, when set, wins.
pub fn init_logging(verbose: u8, quiet: u8) {
    let level = match (quiet, verbose) {
        (q, _) if q > 0 => log::LevelFilter::Error,
        (_, 0) => log::LevelFilter::Warn,
        (_, 1) => log::LevelFilter::Info,
        _ => log::LevelFilter::Debug,
    };
    let mut builder = env_logger::Builder::new();
    builder.filter_level(level);
    if let Ok(spec) = std::env::var("RUST_LOG") {
        builder.parse_filters(&spec);
    }
    builder.format(|buf, record| {
        let level = match record.level() {
            log::Level::Error => "error",
            log::Level::Warn => "warning",
            log::Level::Info => "info",
            log::Level::Debug => "debug",
            log::Level::Trace => "trace",
        };
        writeln!(buf, "{level}: {}", record.args())
    });
    // A second initialisation (tests, the demo) keeps the first logger.
    let _ = builder.try_init();
}

/// SIGINT and SIGTERM, registered before any node starts so that an early
/// Ctrl+C is never lost; and SIGHUP, which reloads (never stops: a daemon's
/// `systemctl reload` must not kill it).
fn signals() -> Result<Signals, Error> {
    Signals::new([SIGINT, SIGTERM, SIGHUP])
        .map_err(|e| Error::Runtime(format!("cannot handle signals: {e}")))
}

/// Starts nodes sharing one shutdown, waits for SIGINT or SIGTERM (or for a
/// thread that failed to trigger the shutdown), stops and joins them. SIGHUP
/// reloads the nodes' key files meanwhile.
pub fn run_nodes(nodes: Vec<(Config, Output, Stdout)>) -> Result<(), Error> {
    run_nodes_reloading(nodes, None)
}

/// [`run_nodes`], where SIGHUP also re-reads the config file of `source`
/// (the command line the nodes started with) and applies its peer list.
pub fn run_nodes_reloading(
    nodes: Vec<(Config, Output, Stdout)>,
    source: Option<&node::reload::Source>,
) -> Result<(), Error> {
    let mut signals = signals()?;
    let shutdown = Shutdown::new();
    shutdown.close_on_trigger(signals.handle());
    let mut started = Vec::new();
    let mut result = Ok(());
    for (config, output, stdout) in nodes {
        match Node::start(&config, output, stdout, &shutdown) {
            Ok(node) => started.push(node),
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    if result.is_ok() {
        if started.iter().any(|node| !node.is_sealed()) {
            log::warn!(
                "no --key-file: traffic is neither authenticated nor encrypted; anyone who can \
                 reach the port can read the statuses and invent peers (see `p2pmon keygen`)"
            );
        }
        for signal in signals.forever() {
            if signal == SIGHUP {
                for node in &mut started {
                    node::reload::reload(node, source);
                }
                continue;
            }
            log::info!("received signal {signal}: leaving");
            break;
        }
    }
    shutdown.trigger();
    let deadline = std::time::Instant::now() + limits::JOIN_DEADLINE;
    for node in started {
        if let Err(e) = node.join(deadline) {
            result = result.and(Err(e));
        }
    }
    result
}
