//! One running node: binds the listening sockets (failing fast), then starts
//! its threads around the state they share ([`State`]): the listener (reads
//! every peer, runs the timers, writes stdout), the sender (samples this host
//! and drives one [`link`] per peer) and, supplied by the layer above as an
//! [`Endpoint`], the HTTP thread (status endpoint and hooks). At most four
//! threads with main, each an event loop. [`run`] is the loop around them:
//! signals, SIGHUP [`reload`], shutdown.

mod link;
pub mod listener;
mod probe;
pub mod reload;
pub mod run;
pub mod sample;
pub mod sender;
pub mod shutdown;
mod state;

pub use state::{Change, HookSetup, State, View};

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::Instant;

use mio::net::TcpListener;
use socket2::{Domain, Socket, Type};

use crate::Error;
use crate::config::{Config, ConfigChange, PeerAddr};
use crate::limits::{
    FILES_PER_HOOK, JOIN_DEADLINE, MAX_HOOKS_RUNNING, MAX_HTTP_CONNECTIONS, MAX_PEERS, SPARE_FILES,
};
use crate::node::listener::Listener;
use crate::node::reload::KeyReload;
use crate::node::sender::{LinkChange, Sender};
use crate::node::shutdown::Shutdown;
use crate::peers::PeerTable;
use crate::proto::Keyring;
use crate::report::output::{Output, Stdout};
use crate::sys::describe_io_error;

/// The stdout writer, shared by the listener thread (which writes while the
/// node runs) and `Node::join` (the last lines).
pub type SharedStdout = Arc<Mutex<Stdout>>;

/// The node's fourth thread, supplied by the layer above it (the status
/// endpoint and the hooks, `crate::http`), so the node starts it without
/// knowing what it serves: bound before the listening line is printed (a busy
/// address the user chose fails the start, exit 1), started once the shared
/// state exists.
pub trait Endpoint {
    /// Binds its sockets.
    fn bind(&mut self, config: &Config) -> Result<(), Error>;
    /// The thread's body, or None when there is nothing to run.
    fn start(
        self: Box<Self>,
        config: &Config,
        state: &State,
        shutdown: &Shutdown,
    ) -> Result<Option<ThreadBody>, Error>;
}

/// What a node's thread runs.
pub type ThreadBody = Box<dyn FnOnce() + Send>;

/// A started node: its threads (listener, sender and, with the endpoint or
/// hooks, the HTTP thread) and the state they share.
#[derive(Debug)]
pub struct Node {
    state: State,
    stdout: SharedStdout,
    threads: Vec<JoinHandle<()>>,
    /// The settings in use; SIGHUP may change the peers (see `reload`).
    config: Config,
}

impl Node {
    /// Prints the start line, binds, prints the listening line, and starts the
    /// threads. They run until `shutdown` is triggered.
    pub fn start(
        config: &Config,
        mut output: Output,
        stdout: Stdout,
        shutdown: &Shutdown,
        mut endpoint: Box<dyn Endpoint>,
    ) -> Result<Node, Error> {
        // A bad key file is the user's to fix (exit 2), before anything prints.
        let keyring = match &config.key_file {
            Some(path) => {
                let keyring = Keyring::load(path).map_err(|e| Error::Usage(e.0))?;
                log::info!(
                    "sealing with the first of {} key(s) in {}",
                    keyring.len(),
                    path.display()
                );
                if config.allow_plaintext {
                    log::warn!(
                        "--allow-plaintext: peers without the key are accepted, unauthenticated"
                    );
                }
                Some(Arc::new(RwLock::new(keyring)))
            }
            None => None,
        };
        let stdout = Arc::new(Mutex::new(stdout));
        output.started(&config.name);
        write_out(&mut output, &stdout);
        let listeners = bind(config)?;
        endpoint.bind(config)?;
        let listening: Vec<SocketAddr> = listeners
            .iter()
            .filter_map(|listener| listener.local_addr().ok())
            .collect();
        log::info!(
            "listening on {}",
            listening
                .iter()
                .map(SocketAddr::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
        output.listening(
            &listening
                .iter()
                .map(SocketAddr::to_string)
                .collect::<Vec<_>>(),
        );
        write_out(&mut output, &stdout);

        raise_open_file_limit(config);
        let started = Instant::now();
        let table = PeerTable::new(started, config.offline_after, config.interval)
            .with_flap_rule(config.flap)
            .with_forget_after(config.forget_after)
            .with_alerts(config.alerts.clone());
        let state = State::new(
            config.name.clone(),
            listening.iter().map(SocketAddr::to_string).collect(),
            keyring,
            (!config.on_event.is_empty()).then_some(HookSetup {
                hooks_on: config.hooks_on,
                port: config.port,
                listen: config.listen,
            }),
            table,
            output,
        );
        let listener = Listener::new(listeners, state.clone(), stdout.clone(), shutdown, config)
            .map_err(|e| Error::Runtime(format!("cannot start the listener: {e}")))?;
        let sender = Sender::new(config, state.clone(), shutdown)
            .map_err(|e| Error::Runtime(format!("cannot start the sender: {e}")))?;
        let mut bodies = vec![
            (
                "listener",
                Box::new(move || listener.run()) as Box<dyn FnOnce() + Send>,
            ),
            ("sender", Box::new(move || sender.run())),
        ];
        if let Some(body) = endpoint.start(config, &state, shutdown)? {
            bodies.push(("http", body));
        }
        let mut threads = Vec::new();
        for (name, body) in bodies {
            // A thread that panics stops the node (exit 1) instead of leaving
            // it running deaf; release builds abort on panic anyway.
            let (state, shutdown) = (state.clone(), shutdown.clone());
            let guarded = move || {
                if std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)).is_err() {
                    state.fail(format!("the {name} thread panicked"));
                    shutdown.trigger();
                }
            };
            let handle = std::thread::Builder::new()
                .name(name.into())
                .spawn(guarded)
                .map_err(|e| Error::Runtime(format!("cannot start the {name} thread: {e}")))?;
            threads.push(handle);
        }
        Ok(Node {
            state,
            stdout,
            threads,
            config: config.clone(),
        })
    }

    /// Whether this node seals (has a key).
    pub fn is_sealed(&self) -> bool {
        self.config.key_file.is_some()
    }

    /// The settings in use.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Starts and stops sending to peers as `change` says (SIGHUP), leaving
    /// the connections to the others alone; `peers` becomes the list in use.
    pub fn change_peers(&mut self, peers: &[PeerAddr], change: &ConfigChange) {
        // With membership on, the config only says where to start: a peer
        // taken out of it stays a member until it leaves or is forgotten.
        let remove = if self.config.learn_peers {
            LinkChange::Unconfigure
        } else {
            LinkChange::Remove
        };
        let links = change
            .removed
            .iter()
            .cloned()
            .map(remove)
            .chain(change.added.iter().cloned().map(LinkChange::Add));
        self.state.change_links(links);
        self.config.peers = peers.to_vec();
    }

    /// Reloads the key file (SIGHUP). A file that fails the checks is logged
    /// and the keys in use are kept. Logs how many messages each old key
    /// opened, so an operator sees when a retired key is no longer used.
    pub fn reload_key(&self) -> KeyReload {
        let (Some(path), Some(keyring)) = (&self.config.key_file, self.state.keyring()) else {
            return KeyReload::NoKey;
        };
        match Keyring::load(path) {
            Ok(new) => {
                let mut current = keyring.write().unwrap_or_else(PoisonError::into_inner);
                let usage = current.usage();
                let count = new.len();
                *current = new;
                log::warn!(
                    "reloaded key file {}: {count} key(s), the first seals; before the reload, {usage}",
                    path.display()
                );
                KeyReload::Loaded(count)
            }
            Err(e) => {
                log::error!("cannot reload the key file: {e}; keeping the keys in use");
                KeyReload::Failed
            }
        }
    }

    /// Waits for the threads (after the shutdown was triggered) until
    /// `deadline`, and prints the last line. Fails if a thread stopped on an
    /// error. A thread still running at the deadline (stuck writing to a
    /// stalled stdout) is left behind: the process exits anyway.
    pub fn join(self, deadline: Instant) -> Result<(), Error> {
        while Instant::now() < deadline && self.threads.iter().any(|t| !t.is_finished()) {
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        let mut all_done = true;
        for thread in self.threads {
            if !thread.is_finished() {
                all_done = false;
                log::warn!("a thread did not stop within {JOIN_DEADLINE:?}; exiting anyway");
            } else if thread.join().is_err() {
                self.state.fail("a thread panicked".into());
            }
        }
        let last = self.state.take_last_output();
        if all_done {
            write_bytes(&last, &self.stdout);
        }
        match self.state.fatal() {
            Some(fatal) => Err(Error::Runtime(fatal.to_string())),
            None => Ok(()),
        }
    }
}

/// Writes the formatted lines of `output` to stdout (before the threads start).
fn write_out(output: &mut Output, stdout: &SharedStdout) {
    write_bytes(&output.take(), stdout);
}

/// Writes formatted lines to stdout, outside the shared lock: the one place
/// that writes stdout (the listener writes through it while the node runs).
pub fn write_bytes(bytes: &[u8], stdout: &SharedStdout) {
    if !bytes.is_empty() {
        stdout
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .write(bytes);
    }
}

/// Raises the soft open-file limit (often 1024) so that the connection caps
/// in use, not the OS, are what limit the node: `--max-connections` inbound,
/// one outbound link per peer, the status endpoint's clients and the hooks.
fn raise_open_file_limit(config: &Config) {
    let needed = (config.max_connections
        + MAX_PEERS
        + MAX_HTTP_CONNECTIONS
        + MAX_HOOKS_RUNNING * FILES_PER_HOOK
        + SPARE_FILES) as u64;
    match rlimit::increase_nofile_limit(needed) {
        Ok(limit) if limit >= needed => log::debug!("open-file limit: {limit}"),
        Ok(limit) => log::warn!(
            "open-file limit is {limit}, below the {needed} that --max-connections {} and \
             {MAX_PEERS} peers need; raise it (ulimit -n, or LimitNOFILE= in the systemd unit)",
            config.max_connections
        ),
        Err(e) => log::warn!("cannot read the open-file limit: {e}"),
    }
}

/// Binds the listening sockets: the `--listen` address, or 0.0.0.0 plus, where
/// the host has IPv6, `[::]` (IPv6-only, so the two do not collide).
fn bind(config: &Config) -> Result<Vec<TcpListener>, Error> {
    match config.listen {
        Some(ip) => Ok(vec![bind_one(SocketAddr::new(ip, config.port), false)?]),
        None => {
            let v4 = bind_one(
                SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), config.port),
                false,
            )?;
            let mut listeners = vec![v4];
            let v6_addr = SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), config.port);
            match bind_one(v6_addr, true) {
                Ok(v6) => listeners.push(v6),
                Err(e) => log::debug!("not listening on IPv6: {e}"),
            }
            Ok(listeners)
        }
    }
}

fn bind_one(addr: SocketAddr, v6_only: bool) -> Result<TcpListener, Error> {
    let fail = |e: std::io::Error| {
        Error::Runtime(format!(
            "cannot listen on {addr}: {}",
            describe_io_error(&e)
        ))
    };
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None).map_err(fail)?;
    socket.set_reuse_address(true).map_err(fail)?;
    if v6_only || addr.is_ipv6() {
        socket.set_only_v6(v6_only).map_err(fail)?;
    }
    socket.bind(&addr.into()).map_err(fail)?;
    socket.listen(1024).map_err(fail)?;
    socket.set_nonblocking(true).map_err(fail)?;
    Ok(TcpListener::from_std(socket.into()))
}
