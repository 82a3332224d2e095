//! One running node: binds the listening sockets (failing fast), then starts
//! the listener and sender threads around the state they share. The shared
//! state is one mutex over the peer table, the output and the counters: a
//! state change and the line that reports it happen together, so stdout never
//! shows events out of order, and each lock is held for microseconds.

mod link;
pub mod listener;
pub mod reload;
pub mod run;
pub mod sample;
pub mod sender;
pub mod shutdown;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::Instant;

use mio::Waker;

use mio::net::TcpListener;
use socket2::{Domain, Socket, Type};

use crate::Error;
use crate::config::{Config, Host, PeerAddr};
use crate::limits::{
    FILES_PER_HOOK, JOIN_DEADLINE, MAX_HOOKS_RUNNING, MAX_HTTP_CONNECTIONS, MAX_PEERS, SPARE_FILES,
};
use crate::node::listener::Listener;
use crate::node::reload::{ConfigChange, KeyReload};
use crate::node::sample::Sample;
use crate::node::sender::{LinkChange, Sender};
use crate::node::shutdown::Shutdown;
use crate::peers::{Event, PeerState, PeerTable};
use crate::proto::{Keyring, SharedKeyring};
use crate::report::history::History;
use crate::report::hooks::HookQueue;
use crate::report::output::{Output, Stdout};
use crate::report::stats::Stats;
use crate::sys::describe_io_error;

/// State shared by the listener and sender threads.
#[derive(Debug)]
pub struct Shared {
    pub table: PeerTable,
    pub output: Output,
    pub stats: Stats,
    /// Events caused by the last table update, not yet published.
    pub events: Vec<Event>,
    /// Set by a thread that stopped on an unrecoverable error.
    pub fatal: Option<String>,
    /// Wakes the listener, which writes stdout, when the sender produced lines.
    pub writer_waker: Option<Arc<Waker>>,
    /// The cluster keys, `None` without --key-file. Behind their own lock:
    /// SIGHUP swaps them while the threads run; the threads clone this handle.
    pub keyring: Option<SharedKeyring>,
    /// This node's display name and listening addresses (for /status).
    pub name: String,
    pub listening: Vec<String>,
    /// The sender's last sample of this node.
    pub own: Option<Sample>,
    /// The listener's loop is running (GET /healthz).
    pub listener_running: bool,
    /// Events waiting for the hooks (only filled when hooks are configured),
    /// fair between sources.
    pub hook_queue: HookQueue,
    pub hooks_enabled: bool,
    /// Wakes the HTTP thread, which runs the hooks.
    pub hook_waker: Option<Arc<Waker>>,
    /// Peers to add or remove, for the sender to apply.
    pub link_changes: Vec<LinkChange>,
    /// Wakes the sender to apply them.
    pub sender_waker: Option<Arc<Waker>>,
    /// The last 15 minutes of every peer and of this node (GET /history).
    pub history: History,
}

impl Shared {
    /// Logs the reasons and prints the lines of the pending events, and
    /// stops sending to members dropped from the table.
    pub fn publish(&mut self) {
        let removed = self.table.take_removed();
        if !removed.is_empty() {
            self.change_links(removed.into_iter().map(|id| {
                LinkChange::Remove(PeerAddr {
                    host: Host::Ip(id.0.ip()),
                    port: id.0.port(),
                })
            }));
        }
        if self.events.is_empty() {
            return;
        }
        let at = crate::time::unix_seconds();
        for event in self.events.drain(..) {
            record_history(&mut self.history, &self.table, &event, at);
            match &event {
                Event::Offline {
                    peer,
                    reason,
                    last_seen,
                    ..
                } => match last_seen {
                    Some(seen) => log::warn!(
                        "peer {peer} offline: {reason}, last heard {:.1} s ago",
                        seen.as_secs_f64()
                    ),
                    None => log::warn!("peer {peer} offline: {reason}"),
                },
                Event::Online { peer, away, .. } => {
                    log::info!("peer {peer} back online after {:.1} s", away.as_secs_f64());
                }
                Event::Left { peer, .. } => log::info!("peer {peer} left"),
                Event::Forgotten { peer, .. } => {
                    log::info!(
                        "peer {peer} forgotten: a learned member offline for longer than --forget-after"
                    );
                }
                Event::Flapping { peer, reason, .. } => {
                    log::warn!("peer {peer} is flapping: {reason}");
                }
                Event::CutOff { peers } => log::warn!(
                    "all {peers} peers went silent within one threshold: this node's network is the likely cause"
                ),
                Event::Restored { peers, after } => log::info!(
                    "contact restored with {peers} peers after {:.1} s",
                    after.as_secs_f64()
                ),
                Event::Status { .. } => {}
            }
            self.output.event(&event);
            if self.hooks_enabled && !matches!(event, Event::Status { .. }) {
                let (dropped, line) = self.hook_queue.push(event, Instant::now());
                if dropped > 0 {
                    *self.stats.rejected.entry("hook_queue_full").or_insert(0) += dropped;
                }
                if let Some(line) = line {
                    log::warn!("{line}");
                }
                if let Some(waker) = &self.hook_waker
                    && let Err(e) = waker.wake()
                {
                    log::debug!("cannot wake the hook runner: {e}");
                }
            }
        }
    }

    /// Keeps the sender's latest sample of this node, and its history.
    pub fn set_own(&mut self, sample: Sample) {
        self.own = Some(sample);
        self.history
            .record_own(crate::time::unix_seconds(), sample.cpu, sample.memory);
    }

    /// Asks the sender to start or stop sending to peers.
    pub fn change_links(&mut self, changes: impl IntoIterator<Item = LinkChange>) {
        self.link_changes.extend(changes);
        if let Some(waker) = &self.sender_waker
            && let Err(e) = waker.wake()
        {
            log::debug!("cannot wake the sender: {e}");
        }
    }

    /// Asks the listener thread to write pending lines now (the sender never
    /// writes stdout itself, so a stalled stdout cannot stop it sending).
    pub fn wake_writer(&self) {
        if self.output.has_pending()
            && let Some(waker) = &self.writer_waker
            && let Err(e) = waker.wake()
        {
            log::debug!("cannot wake the listener: {e}");
        }
    }
}

/// Adds a status or a state change to the peer's history; the state of a
/// status is the table's (a flapping peer's changes print nothing, but its
/// state in the table is current).
fn record_history(history: &mut History, table: &PeerTable, event: &Event, at: u64) {
    let known = |id: &_| table.get(id).is_some();
    let state_of = |id| table.get(id).map_or(PeerState::Online, |peer| peer.state);
    match event {
        Event::Status {
            peer, cpu, memory, ..
        } => history.record(*peer, at, Some((*cpu, *memory)), state_of(peer), known),
        Event::Offline { peer, .. } => history.record(*peer, at, None, PeerState::Offline, known),
        Event::Online { peer, .. } => history.record(*peer, at, None, PeerState::Online, known),
        Event::Left { peer, .. } => history.record(*peer, at, None, PeerState::Left, known),
        Event::Flapping { peer, .. } => history.record(*peer, at, None, state_of(peer), known),
        Event::Forgotten { peer, .. } => history.forget(peer),
        Event::CutOff { .. } | Event::Restored { .. } => {}
    }
}

/// The stdout writer, shared by the listener thread (which writes while the
/// node runs) and `Node::join` (the last lines).
pub type SharedStdout = Arc<Mutex<Stdout>>;

/// The shared state behind its lock.
pub type SharedState = Arc<Mutex<Shared>>;

/// Locks the shared state. A thread that panicked while holding it left the
/// data consistent enough to keep monitoring (each update is small), so a
/// poisoned lock is used anyway rather than taking the node down.
pub fn lock(shared: &SharedState) -> MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

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
        shared: &SharedState,
        shutdown: &Shutdown,
    ) -> Result<Option<ThreadBody>, Error>;
}

/// What a node's thread runs.
pub type ThreadBody = Box<dyn FnOnce() + Send>;

/// A started node: two threads and the state they share.
#[derive(Debug)]
pub struct Node {
    shared: SharedState,
    stdout: SharedStdout,
    threads: Vec<JoinHandle<()>>,
    /// The addresses actually listened on.
    pub listening: Vec<SocketAddr>,
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
        let shared = Arc::new(Mutex::new(Shared {
            table: PeerTable::new(started, config.offline_after, config.interval)
                .with_flap_rule(config.flap)
                .with_forget_after(config.forget_after),
            output,
            stats: Stats::default(),
            events: Vec::new(),
            fatal: None,
            writer_waker: None,
            keyring,
            name: config.name.clone(),
            listening: listening.iter().map(SocketAddr::to_string).collect(),
            own: None,
            listener_running: false,
            hook_queue: HookQueue::default(),
            hooks_enabled: !config.on_event.is_empty(),
            hook_waker: None,
            link_changes: Vec::new(),
            sender_waker: None,
            history: History::default(),
        }));
        let listener = Listener::new(listeners, shared.clone(), stdout.clone(), shutdown, config)
            .map_err(|e| Error::Runtime(format!("cannot start the listener: {e}")))?;
        let sender = Sender::new(config, shared.clone(), shutdown)
            .map_err(|e| Error::Runtime(format!("cannot start the sender: {e}")))?;
        let mut bodies = vec![
            (
                "listener",
                Box::new(move || listener.run()) as Box<dyn FnOnce() + Send>,
            ),
            ("sender", Box::new(move || sender.run())),
        ];
        if let Some(body) = endpoint.start(config, &shared, shutdown)? {
            bodies.push(("http", body));
        }
        let mut threads = Vec::new();
        for (name, body) in bodies {
            let handle = std::thread::Builder::new()
                .name(name.into())
                .spawn(body)
                .map_err(|e| Error::Runtime(format!("cannot start the {name} thread: {e}")))?;
            threads.push(handle);
        }
        Ok(Node {
            shared,
            stdout,
            threads,
            listening,
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
        lock(&self.shared).change_links(links);
        self.config.peers = peers.to_vec();
    }

    /// Reloads the key file (SIGHUP). A file that fails the checks is logged
    /// and the keys in use are kept. Logs how many messages each old key
    /// opened, so an operator sees when a retired key is no longer used.
    pub fn reload_key(&self) -> KeyReload {
        let keyring = lock(&self.shared).keyring.clone();
        let (Some(path), Some(keyring)) = (&self.config.key_file, keyring) else {
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

    /// The state shared by the threads (for the demo and tests).
    pub fn shared(&self) -> &SharedState {
        &self.shared
    }

    /// Waits for both threads (after the shutdown was triggered) until
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
                lock(&self.shared).fatal = Some("a thread panicked".into());
            }
        }
        let mut shared = lock(&self.shared);
        shared.output.stopping();
        if all_done {
            write_out(&mut shared.output, &self.stdout);
        }
        match shared.fatal.take() {
            Some(fatal) => Err(Error::Runtime(fatal)),
            None => Ok(()),
        }
    }
}

/// Writes the formatted lines of `output` to stdout.
pub fn write_out(output: &mut Output, stdout: &SharedStdout) {
    let bytes = output.take();
    if !bytes.is_empty() {
        stdout
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .write(&bytes);
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
/// the host has IPv6, [::] (IPv6-only, so the two do not collide).
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
