//! The run loop: starts the nodes of one process (one, or the demo's three)
//! around one shutdown, then waits on the signals: SIGINT or SIGTERM leave,
//! SIGHUP reloads (the config file's peer list and the key file), and a
//! thread that failed triggers the shutdown too. Then it stops and joins
//! the nodes within [`JOIN_DEADLINE`], whose errors decide the exit code.

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::Error;
use crate::config::Config;
use crate::limits::JOIN_DEADLINE;
use crate::node::reload::{self, Source};
use crate::node::shutdown::Shutdown;
use crate::node::{Endpoint, Node};
use crate::report::output::{Output, Stdout};

/// What one node of the process starts with.
#[derive(Debug)]
pub struct Setup {
    pub config: Config,
    pub output: Output,
    pub stdout: Stdout,
}

/// SIGINT and SIGTERM, registered before any node starts so that an early
/// Ctrl+C is never lost; and SIGHUP, which reloads (never stops: a daemon's
/// `systemctl reload` must not kill it).
fn signals() -> Result<Signals, Error> {
    Signals::new([SIGINT, SIGTERM, SIGHUP])
        .map_err(|e| Error::Runtime(format!("cannot handle signals: {e}")))
}

/// Starts the nodes sharing one shutdown, each with the fourth thread that
/// `endpoint` makes for it (the status endpoint and hooks), waits for SIGINT
/// or SIGTERM (or for a thread that failed to trigger the shutdown), stops
/// and joins them. SIGHUP reloads the nodes' key files meanwhile and, with a
/// `source` (the command line the node started with), re-reads its config
/// file and applies its peer list.
pub fn run(
    nodes: Vec<Setup>,
    source: Option<&Source>,
    endpoint: fn(&Config) -> Box<dyn Endpoint>,
) -> Result<(), Error> {
    let mut signals = signals()?;
    let shutdown = Shutdown::new();
    shutdown.close_on_trigger(signals.handle());
    let mut started = Vec::new();
    let mut result = Ok(());
    for Setup {
        config,
        output,
        stdout,
    } in nodes
    {
        match Node::start(&config, output, stdout, &shutdown, endpoint(&config)) {
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
                    reload::reload(node, source);
                }
                continue;
            }
            log::info!("received signal {signal}: leaving");
            break;
        }
    }
    shutdown.trigger();
    let deadline = std::time::Instant::now() + JOIN_DEADLINE;
    for node in started {
        if let Err(e) = node.join(deadline) {
            result = result.and(Err(e));
        }
    }
    result
}
