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
//!   Python original's messages; [`names`]: what a display name may hold,
//!   and how each printer escapes one;
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
pub mod logging;
pub mod names;
pub mod node;
pub mod peers;
pub mod proto;
pub mod report;
pub mod sys;
pub mod time;

#[cfg(test)]
mod layers;

pub use error::Error;

use std::ffi::OsString;

use clap::Parser;

use crate::cli::{Cli, Command, RunArgs};
use crate::config::{Config, FileConfig};
use crate::node::run::Setup;
use crate::report::output::{Output, Stdout};

/// Runs the program with these arguments (the first is the program name).
/// `--help` and `--version` print and exit here, as clap does.
pub fn run(args: impl IntoIterator<Item = OsString>) -> Result<(), Error> {
    let cli = Cli::parse_from(args);
    match cli.command {
        None => run_node(&cli.run),
        Some(Command::Run(args)) => run_node(&args),
        Some(Command::Demo(args)) => cmd::demo::run(&args),
        Some(Command::Keygen(args)) => cmd::keygen::run(&args),
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
    logging::init(args.verbose, args.quiet);
    log::debug!("{config:?}");
    let output = Output::new(config.format, config.timestamps, config.changes_only);
    let source = node::reload::Source {
        args: args.clone(),
        default_name,
    };
    let node = Setup {
        config,
        output,
        stdout: Stdout::process(),
    };
    node::run::run(vec![node], Some(&source), http::endpoint)
}
