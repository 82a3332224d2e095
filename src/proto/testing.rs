//! Fixtures shared by the unit tests of proto/: keyrings from key bytes, a
//! v1 status line, the addresses of one sealed exchange (a node at `SOURCE`
//! naming itself `FROM` seals for `HERE`), and a gate admitting on an
//! injected clock.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::proto::seal::KEY_LEN;
use crate::proto::wire::{self, Header, Message};
use crate::proto::{Admitted, Gate, Keyring, Rejection, SharedKeyring};

/// The wall clock of the tests, unix ms.
pub(crate) const T0: u64 = 1_700_000_000_000;

/// Where sealed frames arrive: this node's address on the connection.
pub(crate) const HERE: &str = "127.0.0.2:5000";
/// Where they come from.
pub(crate) const SOURCE: [u8; 4] = [127, 0, 0, 3];
/// What a node at SOURCE names itself in its seals.
pub(crate) const FROM: &str = "127.0.0.3:5000";

/// A keyring of keys whose every byte is one of `keys` (the first seals).
pub(crate) fn ring(keys: &[u8]) -> Keyring {
    let keys: Vec<[u8; KEY_LEN]> = keys.iter().map(|k| [*k; KEY_LEN]).collect();
    Keyring::new(&keys)
}

pub(crate) fn shared(keyring: Keyring) -> SharedKeyring {
    Arc::new(RwLock::new(keyring))
}

pub(crate) fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap_or(SocketAddr::from(([0, 0, 0, 0], 1)))
}

/// A v1 status from node "b" on port 5000, as the sender encodes it.
pub(crate) fn status(boot: u64, seq: u64, ts: u64) -> Vec<u8> {
    wire::encode(&Message::Status {
        header: Header {
            node: "b".into(),
            port: 5000,
            boot,
            seq,
            ts,
            interval_ms: 1000,
            members: Vec::new(),
        },
        cpu: 3.2,
        memory: 41.7,
        health: Default::default(),
    })
}

/// The base64 payload of a sealed frame.
pub(crate) fn payload(frame: &[u8]) -> String {
    let text = String::from_utf8_lossy(frame).into_owned();
    text.trim_end()
        .trim_start_matches("{\"v\":1,\"sealed\":\"")
        .trim_end_matches("\"}")
        .to_string()
}

/// A gate with this keyring, refusing plaintext, and the instant it started.
pub(crate) fn gate(keyring: Keyring) -> (Gate, Instant) {
    let started = Instant::now();
    (Gate::new(Some(shared(keyring)), false, started), started)
}

/// Admits a frame sealed for HERE, from SOURCE, at monotonic `at_ms`
/// after start, and commits its freshness as when the table accepts it.
pub(crate) fn admit(
    gate: &mut Gate,
    started: Instant,
    frame: &[u8],
    at_ms: u64,
) -> Result<Message, Rejection> {
    let admitted = admit_from(gate, started, frame, SOURCE, at_ms)?;
    if let Some(freshness) = admitted.freshness {
        gate.commit(freshness);
    }
    Ok(admitted.message)
}

/// Admits a frame arriving from `source`, committing nothing.
pub(crate) fn admit_from(
    gate: &mut Gate,
    started: Instant,
    frame: &[u8],
    source: [u8; 4],
    at_ms: u64,
) -> Result<Admitted, Rejection> {
    let now = started + Duration::from_millis(at_ms);
    let frame = frame.strip_suffix(b"\n").unwrap_or(frame);
    gate.admit(
        frame,
        IpAddr::from(source),
        Some(addr(HERE)),
        now,
        T0 + at_ms,
    )
}

/// The reason label of a rejection; panics on an admission.
pub(crate) fn reason<T: fmt::Debug>(result: Result<T, Rejection>) -> &'static str {
    match result {
        Ok(admitted) => panic!("expected a rejection, got {admitted:?}"),
        Err(e) => e.reason(),
    }
}
