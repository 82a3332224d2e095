//! Every limit and protocol constant in one place, each with the reason it
//! has the value it has: whatever bounds what the network, a peer, a client
//! of the endpoint or a hook can cost, and every timing of the protocol. A
//! reader tuning p2pmon, or checking that it stays bounded under hostile
//! input, only has to read this file (and docs/PROTOCOL.md, which lists
//! them). What stays beside its code is layout, not policy: event-loop token
//! numbers, the cipher's sizes, `top`'s refresh and drawing, the clients'
//! own request timeout. It also holds [`later`],
//! the overflow-proof way to put a deadline a configured or peer-derived
//! duration ahead.

use std::time::{Duration, Instant};

/// Largest frame accepted or sent (one NDJSON line, newline included): big
/// enough for any status with room for later fields, small enough that 2048
/// connections each holding a partial frame stay in a few hundred MiB worst case.
pub const MAX_FRAME: usize = 64 * 1024;

/// The first frame on a connection is under this many bytes so that the Python
/// original, which reads a single `recv(1024)`, always sees it whole.
pub const MAX_FIRST_FRAME: usize = 1000;

/// Bytes a sender reads from a listener on one connection: the hello (23
/// bytes) with room to spare, since a listener writes nothing else. More is a
/// listener that talks back: the connection is closed (`peer_talks_back`),
/// never read without end at the other peers' expense.
pub const MAX_LISTENER_REPLY: usize = 64;

/// Longest `node` display name accepted from the wire; longer names are rejected
/// rather than stored, so the peer table's memory does not depend on input.
/// (What a name may contain is `names::is_forbidden`'s.)
pub const MAX_NAME_LEN: usize = 255;

/// Filesystems one status may carry (the fullest first): enough for a host's
/// real disks, small enough that a status stays well under
/// [`MAX_FIRST_FRAME`] for the Python original's single read.
pub const MAX_FILESYSTEMS: usize = 8;

/// Longest mount point accepted in a status (as for names: printable text,
/// bounded so the table's memory does not depend on input).
pub const MAX_MOUNT_LEN: usize = 255;

/// Most logical CPUs a status may claim (far above any host, low enough
/// that per-CPU arithmetic stays meaningful).
pub const MAX_CPUS: u32 = 1 << 16;

/// Highest load average accepted (a million runnable tasks: no real host).
pub const MAX_LOAD: f64 = 1e6;

/// Most peers tracked at once (configured plus heard from). Past it, statuses
/// from new senders are rejected and counted: memory stays bounded.
pub const MAX_PEERS: usize = 1024;

/// Most table entries (configured ones aside) that share one IP address:
/// several nodes may run on one host (one port each), but one address, or a
/// key holder sealing from it, cannot take the table from everyone else.
pub const MAX_PEERS_PER_IP: usize = 8;

/// Most inbound connections open at once: two per peer leaves room for a
/// reconnect overlapping the old connection's close.
pub const MAX_CONNECTIONS: usize = 2 * MAX_PEERS;

/// A connection without an accepted message within this is closed
/// (a peer's sender writes its first status right after connecting).
pub const UNIDENTIFIED_DEADLINE: Duration = Duration::from_secs(10);

/// Inbound connections one source IP may hold: room for a peer's reconnect
/// overlapping its old connection and for a few nodes sharing a host (each
/// listening on its own port). A newcomer past it closes the same address's
/// least useful connection (`address_limit`): an address crowds out only itself.
pub const MAX_CONNECTIONS_PER_ADDRESS: usize = 8;

/// Frames handled from one connection per turn of the listener loop; then the
/// other ready connections and the timers run, and it is serviced again.
pub const FRAME_BUDGET: usize = 64;

/// Connections accepted per listening socket per turn: a connect storm
/// holds the loop no longer than a flood does.
pub const ACCEPT_BUDGET: usize = 64;

/// Bytes read from one connection per turn (with [`FRAME_BUDGET`]): a flood
/// costs the others at most this much work between two of their turns.
pub const READ_BUDGET: usize = 4 * READ_CHUNK;

/// Invalid frames (empty lines included) an identified connection may send
/// within [`INVALID_FRAME_WINDOW`]; one more closes it (`too_many_invalid`).
/// Our senders never send one: this only bounds what garbage may cost.
pub const MAX_INVALID_FRAMES: u32 = 16;
/// The window over which [`MAX_INVALID_FRAMES`] is counted.
pub const INVALID_FRAME_WINDOW: Duration = Duration::from_secs(60);

/// An identified connection is closed after this long without an accepted
/// frame, whatever interval and threshold its peer claims: three statuses at
/// [`PEER_INTERVAL_CAP`] (or two of our own interval, if longer).
pub const MAX_IDLE_DEADLINE: Duration = Duration::from_secs(180);

/// Default and well-known port, also the port the Python original listens on.
pub const DEFAULT_PORT: u16 = 5000;

/// Send period of the Python original, which does not announce its interval.
pub const PYTHON_INTERVAL: Duration = Duration::from_secs(5);

/// Default send period.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);

/// A peer is offline after `OFFLINE_FACTOR` times its interval without a sign
/// of life (and never sooner than `--offline-after`): two lost updates are
/// tolerated, the third is not.
pub const OFFLINE_FACTOR: u32 = 3;

/// A v1 peer's inbound connection that closes without a leave and is not
/// reopened within this grace is a crashed process: offline at once.
pub const CLOSE_GRACE: Duration = Duration::from_millis(500);

/// Longest wait for a TCP handshake; a black-holed peer costs at most this much
/// of one link's time, never the other links' (connects are non-blocking).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// First reconnect delay after a failure; doubles up to the send interval.
pub const BACKOFF_MIN: Duration = Duration::from_millis(250);

/// A kept-open connection carries statuses and their ACKs, nothing else
/// while they are on time. A status later than its sender's interval plus
/// this grace is late, and the listener probes that connection (kernel
/// keepalive, armed on that socket only): enough for a loaded sender's
/// jitter, small enough that a dead host is reported within 7 s of its last
/// status at the default interval.
pub const PROBE_GRACE: Duration = Duration::from_millis(500);

/// A probe unanswered for this long fails the connection, and the late peer
/// is offline (a silence verdict, reached sooner). Also the idle the probe is
/// armed with, so the kernel sends it at once (a late connection has been
/// idle longer). Whole seconds: the kernel's keepalive timers count in them,
/// and 1 s is their floor.
pub const PROBE_WAIT: Duration = Duration::from_secs(1);

/// Probes sent before the verdict: one, since the budget after a late status
/// (7 s from the last status at 5 s, 3 s at 1 s) holds one `PROBE_WAIT`. The
/// kernel ACKs a probe itself, so a starved or busy peer process still answers.
pub const PROBE_COUNT: u32 = 1;

/// TCP_USER_TIMEOUT on every kept-open connection: data unacknowledged this
/// long fails it. Our sender writes a status every interval, so this is what
/// reveals a dead receiver or a black hole on our side (within an interval
/// plus this of the drop) instead of retransmitting for 15 minutes; several
/// retransmissions fit in it, so one lost segment is not a verdict.
pub const TCP_USER_TIMEOUT: Duration = Duration::from_secs(2);

/// An inbound connection silent for `IDLE_FACTOR` × the peer's threshold T is
/// closed: long enough never to cut a live peer, short enough to free the slot.
pub const IDLE_FACTOR: u32 = 2;

/// How long shutdown waits for leave frames to drain before closing anyway,
/// keeping Ctrl+C to exit in well under a second.
pub const LEAVE_DEADLINE: Duration = Duration::from_millis(300);

/// Resolution of the listener's timers (offline checks, close grace, idle
/// deadlines): a burst of deadlines within it is handled in one pass.
pub const TICK: Duration = Duration::from_millis(10);

/// The listener sleeps until the next deadline (the table's, a connection's),
/// and a change made by another thread that moves the table's deadlines
/// wakes it to recompute; this is only the safety net. It was a second: that
/// wake-up a second was a third of an idle node's CPU (each costs a context
/// switch), more than its statuses (issue 15).
pub const MAX_TICK: Duration = Duration::from_secs(30);

/// After a failed accept (EMFILE and friends) the listener tries again this
/// soon.
pub const ACCEPT_RETRY: Duration = Duration::from_secs(1);

/// A rejected message is logged at most once per reason and source address per
/// this window, so garbage cannot flood stderr; every one is still counted.
pub const REJECT_LOG_WINDOW: Duration = Duration::from_secs(60);

/// Rejection lines logged per window in all, whatever the number of sources
/// (one summary line then tells how many were withheld).
pub const MAX_REJECT_LOGS: usize = 50;

/// Entries kept for the reject-log rate limiter (bounded memory).
pub const REJECT_LOG_ENTRIES: usize = 4096;

/// Largest interval a peer may announce (`interval_ms`), one hour: a bigger one
/// would let a single message keep a dead peer "online" for days.
pub const MAX_PEER_INTERVAL: Duration = Duration::from_secs(3600);

/// Longest interval a peer's declaration counts for in any timing (threshold,
/// idle deadline, cut-off windows), unless this node's own --interval is
/// longer: 12 × the default interval covers clusters of mixed intervals, and
/// a stranger's `interval_ms` = 1 h cannot stretch our verdicts to hours.
pub const PEER_INTERVAL_CAP: Duration = Duration::from_secs(60);

/// Longest --offline-after accepted (a day): longer is a typo, not a choice.
pub const MAX_OFFLINE_AFTER: Duration = Duration::from_secs(24 * 3600);

/// Longest duration any flag or config value accepts (a year, 8760h; also
/// the longest --forget-after, `never` aside): longer is a typo, and every
/// deadline computed from one stays far inside what an `Instant` can hold.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// Longest --flap-window accepted (a day): a peer muted for longer is hidden,
/// not damped.
pub const MAX_FLAP_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// Most `--alert` rules: each costs a little state per peer (at most
/// `MAX_PEERS` × this many), and a dozen rules already cover every metric.
pub const MAX_ALERT_RULES: usize = 16;

/// Longest `for DURATION` of an alert rule (a day): a condition that must
/// last longer is a trend, not an alert.
pub const MAX_ALERT_FOR: Duration = Duration::from_secs(24 * 3600);

/// An alert clears only once its value is back past the threshold by this
/// fraction of it (`cpu > 90` clears at 85.5 or below), so a value hovering
/// at the threshold fires once, not at every status.
pub const ALERT_CLEAR_MARGIN: f64 = 0.05;

/// `at + after` for deadlines: never panics. Durations are capped where they
/// are parsed ([`MAX_DURATION`], at most a year ahead of a clock that counts
/// from boot), so the far-future fallback only guards against a future
/// change letting a bigger one through; it is still later than any real
/// deadline.
pub fn later(at: Instant, after: Duration) -> Instant {
    at.checked_add(after)
        .or_else(|| at.checked_add(MAX_DURATION))
        .unwrap_or(at)
}

/// Flap damping: more than this many state changes within
/// [`DEFAULT_FLAP_WINDOW`] (two restarts and a half) mark a peer as flapping.
pub const DEFAULT_FLAP_CHANGES: usize = 5;
/// ...and it stays muted until it has been stable this long.
pub const DEFAULT_FLAP_WINDOW: Duration = Duration::from_secs(120);

/// Bytes read from a socket per `read` call.
pub const READ_CHUNK: usize = 16 * 1024;

/// Event lines held for stdout when it does not keep up (a paused pager):
/// past this, lines are dropped and counted, never buffered without bound.
pub const MAX_OUTPUT_BUFFER: usize = 1024 * 1024;

/// How long shutdown waits for the threads before exiting anyway (a thread
/// stuck writing to a stalled stdout must not keep the process alive).
pub const JOIN_DEADLINE: Duration = Duration::from_millis(900);

/// Largest plaintext sealed or opened: once encrypted (+40 bytes of nonce and
/// tag), base64-encoded (x 4/3) and wrapped, it still fits in [`MAX_FRAME`].
pub const MAX_SEALED_PLAINTEXT: usize = 48 * 1024;

/// Keys a key file may hold (one seals, all open). Each sealed frame that no
/// key opens costs one attempt per key, so the list stays short; rotation
/// needs two.
pub const MAX_KEYS: usize = 8;

/// Largest key file read (4 KiB): `MAX_KEYS` keys of 44 base64 characters
/// and room for comments; a bigger file is refused before it is read, so a
/// wrong path (a log, a device) costs nothing.
pub const MAX_KEY_FILE: u64 = 4096;

/// With a key, a sealed message from a new incarnation (boot) of a peer is
/// accepted only if its `ts` is within this of the local clock, and a message
/// of a known boot only if it arrives at most this late compared with the
/// boot's earlier messages. Wide enough for hosts whose clocks drift between
/// NTP syncs, narrow enough that recorded traffic is useless after half a minute.
pub const FRESHNESS_WINDOW: Duration = Duration::from_secs(30);

/// Default status endpoint: loopback only; exposing it is an explicit choice.
pub const DEFAULT_HTTP: &str = "127.0.0.1:5080";

/// Status endpoint clients served at once. At the cap a new client closes
/// the oldest one that has not sent its whole request yet, so idle
/// connections cannot lock anyone out; when all are being answered, it is
/// closed at accept.
pub const MAX_HTTP_CONNECTIONS: usize = 32;

/// Status endpoint clients from one address at once (more are closed at
/// accept): a browser opens at most 6 to one host, a scraper one; a quarter
/// of the slots leaves the rest to everyone else.
pub const MAX_HTTP_CONNECTIONS_PER_ADDRESS: usize = MAX_HTTP_CONNECTIONS / 4;

/// Largest HTTP request (line and headers) read; larger gets 431.
pub const MAX_HTTP_REQUEST: usize = 8 * 1024;

/// Time a client has to send its request and read the answer.
pub const HTTP_DEADLINE: Duration = Duration::from_secs(5);

/// Events waiting for hooks, all sources together; past this the source
/// holding the most gives up its oldest (dropped and counted).
pub const MAX_HOOK_QUEUE: usize = 256;

/// Events waiting for hooks per source address (a peer's IP: the port is
/// self-declared, so one address could pose as many peers); past this its
/// oldest is dropped. The latest events say where the peer stands, and one
/// flapping source cannot push out another peer's offline.
pub const MAX_HOOK_EVENTS_PER_SOURCE: usize = 4;

/// Dropped hook events are summarised in one log line per this window.
pub const HOOK_DROP_LOG_WINDOW: Duration = Duration::from_secs(60);

/// Hook processes running at once.
pub const MAX_HOOKS_RUNNING: usize = 8;

/// File descriptors one running hook costs the node (its stdio pipes), for
/// sizing the open-file limit.
pub const FILES_PER_HOOK: usize = 3;

/// File descriptors beyond the sockets and hooks: stdio, the listening
/// sockets, the event loops and their wakers, the key and config files.
pub const SPARE_FILES: usize = 64;

/// Most `--on-event` commands: each event starts every one of them, so this
/// bounds the processes one event costs (more is a config mistake).
pub const MAX_HOOK_COMMANDS: usize = 32;

/// A hook still running after this is killed, with every process of its
/// process group (children it started included).
pub const HOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// Member entries read from one message (more are ignored) and written into
/// one status (the table is walked round-robin, so every member is announced
/// within a few intervals): bounds both parsing and the bytes a status costs.
pub const MAX_MEMBERS_PER_MESSAGE: usize = 32;

/// A v1 peer gets the members on a connection's first status and when they
/// change, else at least this often: hearsay it missed or forgot (a member
/// refused by its learning budget, one it forgot) reaches it within this,
/// while a settled cluster's other statuses stay bare (issue 15: bytes).
pub const MEMBERS_REFRESH: Duration = Duration::from_secs(60);

/// Members one source address may add to the table per [`LEARN_WINDOW`]: one
/// full digest per default interval, so a cluster still converges in a few
/// rounds while a key holder's hearsay cannot fill the table in one breath.
pub const MAX_LEARNED_PER_SOURCE: usize = MAX_MEMBERS_PER_MESSAGE;
/// ...and the window of that budget (the default interval).
pub const LEARN_WINDOW: Duration = DEFAULT_INTERVAL;

/// Default time after which a learned member that stays offline is forgotten.
pub const DEFAULT_FORGET_AFTER: Duration = Duration::from_secs(3600);

/// The dashboard's charts cover this much time (`GET /history`).
pub const HISTORY_WINDOW: Duration = Duration::from_secs(15 * 60);

/// At most one history point per peer per step: statuses arriving faster are
/// merged, so the history's memory does not depend on anyone's interval.
pub const HISTORY_STEP: Duration = Duration::from_secs(5);

/// Points in each peer's history ring (180: the window at one point a step).
/// With 16-byte points (CPU, memory, 1 min load, fullest disk, state), at
/// most `MAX_PEERS` + 1 rings take about 3 MiB.
pub const HISTORY_POINTS: usize = (HISTORY_WINDOW.as_secs() / HISTORY_STEP.as_secs()) as usize;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_adds_and_never_overflows() {
        let now = Instant::now();
        assert_eq!(later(now, TICK), now + TICK);
        let far = later(now, Duration::MAX);
        assert!(far >= later(now, MAX_DURATION), "{far:?}");
    }
}
