//! p2pmon: a peer-to-peer host monitor. Every node samples its own CPU and
//! memory and pushes them to its peers; every node listens, prints what its
//! peers report, and says when one goes offline, comes back or leaves.
//!
//! A tour of the crate, from the bottom up (the folders are the layers; a
//! unit test, `layers`, holds the import rules: each module imports only
//! those below it, so no circle can form):
//! - helpers that import nothing above the ground floor: [`limits`] (every
//!   size, count and timeout, with its reason), [`Error`] (and its exit
//!   code), [`time`] (the wall clock), [`units`] (one-decimal rounding),
//!   [`names`] (what a display name may hold and how each printer escapes
//!   one), [`sys`] (naming I/O errors), [`logging`] (stderr);
//! - [`proto`]: the protocol: framing and strict decoding of v1 and of the
//!   Python original's messages, the cluster keys, sealing, freshness and
//!   the admission gate every frame goes through, [`proto::PeerId`];
//! - [`peers`]: the peer table and its state machine (online, offline, back
//!   online, left, flapping, cut off, membership), pure logic on an injected
//!   clock, one file per concept;
//! - [`report`]: what the table decided, reported: stdout lines (text or
//!   JSON), the dashboard's history, the event hooks and which node runs
//!   them (the duty rule), the counters;
//! - [`cli`] and [`config`]: the command line (and the man page from it) and
//!   the TOML file, merged and validated into a [`config::Config`] (errors
//!   exit 2), with the SIGHUP diff;
//! - [`node`]: a running node: its shared [`node::State`], the listener, the
//!   sender with one pure `link` state machine per peer, sampling (the only
//!   user of sysinfo), shutdown, and the run loop with signals and reload;
//! - [`http`]: the status endpoint (/metrics, /status as a typed document,
//!   /history, /healthz and the dashboard at /) on the node's fourth thread,
//!   which also runs the hooks; it reads the node only through `State`;
//! - [`client`]: `p2pmon members` and `p2pmon top`, which speak HTTP to a
//!   node and read its typed `/status` document;
//! - [`cmd`]: one-off commands, `demo`, `keygen` and the hidden `loadgen`.
//!
//! [`run`] dispatches a command line; `main` only turns its outcome into an
//! exit code.

// The tour links the private modules on purpose: `cargo doc
// --document-private-items` renders it for contributors.
#![allow(rustdoc::private_intra_doc_links)]

pub(crate) mod cli;
pub(crate) mod client;
pub(crate) mod cmd;
pub(crate) mod config;
mod error;
pub(crate) mod http;
pub mod limits;
pub(crate) mod logging;
pub(crate) mod names;
pub(crate) mod node;
pub(crate) mod peers;
pub mod proto;
pub(crate) mod report;
pub(crate) mod sys;
pub(crate) mod time;
pub(crate) mod units;

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
    let output = Output::new(config.format, config.timestamps, config.changes_only)
        .with_details(config.details);
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
