//! Admission: the [`Gate`] every frame the listener reads goes through. With
//! a key, only sealed, authentic, fresh messages meant for this node and sent
//! from the address they came from get past it; without one it decodes
//! plaintext, as the Python original sent it. Every refusal is a
//! [`Rejection`] whose [`Rejection::reason`] is the counter label.
//!
//! The gate holds the per-peer freshness state ([`super::freshness`]), and
//! keeps what a frame proves only once the peer table accepted the message
//! (`Gate::commit`), dropping it when the peer leaves the table
//! (`Gate::retain`): strangers the table refuses leave nothing behind.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use serde::Deserialize;

use crate::limits::MAX_PEERS;
use crate::proto::PeerId;
use crate::proto::freshness::{Seen, Stale, check_fresh};
use crate::proto::keyring::{self, SharedKeyring};
use crate::proto::seal::OpenError;
use crate::proto::wire::{self, DecodeError, Message};

/// Why the gate refused a frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Rejection {
    /// Not a valid message (the plaintext path, or inside a seal).
    Decode(DecodeError),
    /// A valid plaintext message while a key is set.
    PlaintextRefused,
    /// Sealed, but no key opens it: wrong key, altered, truncated.
    BadSeal(&'static str),
    /// Sealed for another address than the one it arrived on.
    WrongRecipient {
        to: Option<String>,
        local: Option<SocketAddr>,
    },
    /// Sealed by another address than the one it came from (a recording
    /// replayed elsewhere), or without `from` at all.
    WrongSender {
        from: Option<String>,
        source: IpAddr,
    },
    /// Authentic but not fresh.
    Stale(Stale),
}

impl Rejection {
    /// Stable label for counters and rate-limited logs.
    pub fn reason(&self) -> &'static str {
        match self {
            Rejection::Decode(e) => e.reason(),
            Rejection::PlaintextRefused => "plaintext_refused",
            Rejection::BadSeal(_) => "bad_seal",
            Rejection::WrongRecipient { .. } => "wrong_recipient",
            Rejection::WrongSender { .. } => "wrong_sender",
            Rejection::Stale(Stale::ClockSkew { .. }) => "clock_skew",
            Rejection::Stale(_) => "replay",
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::Decode(e) => write!(f, "{e}"),
            Rejection::PlaintextRefused => write!(
                f,
                "plaintext message refused: this node has a key (a peer without the key, \
                 or the Python original; --allow-plaintext admits them during a migration)"
            ),
            Rejection::BadSeal(why) => write!(f, "sealed frame does not open: {why}"),
            Rejection::WrongRecipient { to, local } => {
                let to = to.as_deref().unwrap_or("nobody");
                match local {
                    Some(local) => write!(f, "sealed for {to}, arrived at {local}"),
                    None => write!(f, "sealed for {to}, arrived at an unknown address"),
                }
            }
            Rejection::WrongSender { from, source } => match from {
                Some(from) => write!(
                    f,
                    "sealed by {}, arrived from {source} (recorded and replayed?)",
                    from.escape_debug()
                ),
                None => write!(
                    f,
                    "sealed without a sender address (`from`), arrived from {source}"
                ),
            },
            Rejection::Stale(stale) => write!(f, "{stale}"),
        }
    }
}

impl std::error::Error for Rejection {}

impl From<OpenError> for Rejection {
    fn from(error: OpenError) -> Rejection {
        match error {
            OpenError::BadSeal(why) => Rejection::BadSeal(why),
            OpenError::TooLarge => Rejection::Decode(DecodeError::TooLarge),
        }
    }
}

/// The outer shape of a frame, to tell sealed from plaintext.
#[derive(Deserialize)]
struct Outer {
    v: Option<u64>,
    sealed: Option<serde::de::IgnoredAny>,
}

/// The payload of a sealed frame.
#[derive(Deserialize)]
struct SealedFrame {
    sealed: String,
}

/// The two ends named inside a sealed plaintext.
#[derive(Deserialize)]
struct Addressed {
    to: Option<String>,
    from: Option<String>,
}

/// What a sealed message proved about its peer's freshness: kept by
/// `Gate::commit` once the peer table accepted the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Freshness {
    peer: PeerId,
    seen: Seen,
}

/// A frame the gate let through.
#[derive(Debug, Clone, PartialEq)]
pub struct Admitted {
    pub message: Message,
    /// Sealed and opened with our key (not plaintext let in by
    /// --allow-plaintext, not a node without a key).
    pub authenticated: bool,
    /// For a sealed message: the freshness to commit if the table takes it.
    pub freshness: Option<Freshness>,
}

/// What every frame the listener reads goes through: with a key, only
/// sealed, authentic, fresh messages meant for this node and sent from the
/// address they came from get past it.
#[derive(Debug)]
pub struct Gate {
    keyring: Option<SharedKeyring>,
    allow_plaintext: bool,
    /// Freshness per peer, only for peers the table holds (see `commit`).
    seen: HashMap<PeerId, Seen>,
    /// Sources whose plaintext was admitted (logged once each).
    plaintext_logged: HashSet<IpAddr>,
    started: Instant,
}

impl Gate {
    pub fn new(keyring: Option<SharedKeyring>, allow_plaintext: bool, started: Instant) -> Gate {
        Gate {
            keyring,
            allow_plaintext,
            seen: HashMap::new(),
            plaintext_logged: HashSet::new(),
            started,
        }
    }

    /// Whether a key is set (frames must then be sealed, unless
    /// --allow-plaintext lets plaintext through unauthenticated).
    pub(crate) fn keyed(&self) -> bool {
        self.keyring.is_some()
    }

    /// Admits one frame (without its newline) that arrived from `source` on a
    /// connection whose local address is `local`, or says why not. `now` is
    /// the monotonic clock, `wall_ms` the unix time in ms. Nothing is kept:
    /// the caller commits the freshness once the table accepted the message.
    pub fn admit(
        &mut self,
        frame: &[u8],
        source: IpAddr,
        local: Option<SocketAddr>,
        now: Instant,
        wall_ms: u64,
    ) -> Result<Admitted, Rejection> {
        let Some(keyring) = &self.keyring else {
            return wire::decode(frame)
                .map(Admitted::unauthenticated)
                .map_err(Rejection::Decode);
        };
        if frame.len() > crate::limits::MAX_FRAME {
            return Err(Rejection::Decode(DecodeError::TooLarge));
        }
        let frame = frame.strip_suffix(b"\r").unwrap_or(frame);
        let outer: Option<Outer> = serde_json::from_slice(frame).ok();
        let Some(outer) = outer.filter(|outer| outer.sealed.is_some()) else {
            return self.plaintext(frame, source).map(Admitted::unauthenticated);
        };
        match outer.v {
            Some(1) => {}
            Some(v) => return Err(Rejection::Decode(DecodeError::UnsupportedVersion(v))),
            None => return Err(Rejection::Decode(DecodeError::MissingField("v"))),
        }
        let sealed: SealedFrame = serde_json::from_slice(frame)
            .map_err(|_| Rejection::BadSeal("`sealed` is not a string"))?;
        let (plaintext, _key) = keyring::read(keyring).open(&sealed.sealed)?;

        let addressed: Addressed = serde_json::from_slice(&plaintext)
            .map_err(|e| Rejection::Decode(DecodeError::BadField(e.to_string())))?;
        let canonical = |addr: SocketAddr| SocketAddr::new(addr.ip().to_canonical(), addr.port());
        let to = addressed
            .to
            .as_deref()
            .and_then(|to| to.parse::<SocketAddr>().ok())
            .map(canonical);
        let here = local.map(canonical);
        if to.is_none() || to != here {
            return Err(Rejection::WrongRecipient {
                to: addressed.to,
                local,
            });
        }
        // Every node that seals is ours and names itself: a frame without
        // `from`, or from another IP than the connection's, is a recording.
        let from = addressed
            .from
            .as_deref()
            .and_then(|from| from.parse::<SocketAddr>().ok())
            .map(canonical);
        if from.is_none_or(|from| from.ip() != source.to_canonical()) {
            return Err(Rejection::WrongSender {
                from: addressed.from,
                source,
            });
        }

        let message = wire::decode(&plaintext).map_err(Rejection::Decode)?;
        let header = match &message {
            Message::Status { header, .. } | Message::Leave { header } => header,
            Message::Legacy { .. } => {
                return Err(Rejection::Decode(DecodeError::MissingField("v")));
            }
        };
        // The identity: the connection's source IP and the authenticated port.
        let peer = PeerId::new(source, header.port);
        let mono_ms = now.saturating_duration_since(self.started).as_millis() as u64;
        let known = self.seen.get(&peer);
        let seen = check_fresh(known, header.boot, header.seq, header.ts, wall_ms, mono_ms)
            .map_err(Rejection::Stale)?;
        Ok(Admitted {
            message,
            authenticated: true,
            freshness: Some(Freshness { peer, seen }),
        })
    }

    /// Keeps what an admitted message proved, once the peer table accepted
    /// it (so holds that peer): its next message must be fresher.
    pub(crate) fn commit(&mut self, freshness: Freshness) {
        self.seen.insert(freshness.peer, freshness.seen);
    }

    /// Forgets the freshness of peers that left the table (`keep` false):
    /// the gate never tracks more peers than the table holds.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&PeerId) -> bool) {
        self.seen.retain(|peer, _| keep(peer));
    }

    /// Peers whose freshness is kept (the tests' view of the bound).
    #[cfg(test)]
    pub(crate) fn tracked(&self) -> usize {
        self.seen.len()
    }

    /// A frame that is not sealed, while a key is set.
    fn plaintext(&mut self, frame: &[u8], source: IpAddr) -> Result<Message, Rejection> {
        let message = wire::decode(frame).map_err(Rejection::Decode)?;
        if !self.allow_plaintext {
            return Err(Rejection::PlaintextRefused);
        }
        if self.plaintext_logged.len() >= MAX_PEERS {
            self.plaintext_logged.clear();
        }
        if self.plaintext_logged.insert(source) {
            log::warn!(
                "accepted a plaintext message from {source} (--allow-plaintext): \
                 it is neither authenticated nor encrypted"
            );
        }
        Ok(message)
    }
}

impl Admitted {
    fn unauthenticated(message: Message) -> Admitted {
        Admitted {
            message,
            authenticated: false,
            freshness: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD as BASE64;
    use chacha20poly1305::aead::{Aead, KeyInit, Payload};
    use chacha20poly1305::{XChaCha20Poly1305, XNonce};

    use super::*;
    use crate::limits::{FRESHNESS_WINDOW, MAX_SEALED_PLAINTEXT};
    use crate::proto::seal::{ASSOCIATED_DATA, KEY_LEN, NONCE_LEN, TAG_LEN};
    use crate::proto::testing::*;

    #[test]
    fn every_rejection_has_its_reason() {
        let keyring = ring(&[1]);
        let sealed =
            |line: &[u8], to: &str| keyring.seal(line, addr(FROM), addr(to)).unwrap_or_default();
        let good = sealed(&status(T0, 0, T0), HERE);
        let (mut gate, started) = gate(ring(&[1]));

        // Plaintext, v1 or the Python original's.
        assert_eq!(
            reason(admit(&mut gate, started, &status(T0, 0, T0), 0)),
            "plaintext_refused"
        );
        assert_eq!(
            reason(admit(&mut gate, started, br#"{"cpu":1,"memory":2}"#, 0)),
            "plaintext_refused"
        );
        // Garbage keeps its own label.
        assert_eq!(
            reason(admit(&mut gate, started, b"hello", 0)),
            "invalid_json"
        );
        // Another cluster's key.
        let foreign = ring(&[2])
            .seal(&status(T0, 0, T0), addr(FROM), addr(HERE))
            .unwrap_or_default();
        assert_eq!(reason(admit(&mut gate, started, &foreign, 0)), "bad_seal");
        // One flipped bit anywhere in the payload: nonce, ciphertext or tag.
        let prefix = b"{\"v\":1,\"sealed\":\"".len();
        for position in [prefix, prefix + 40, good.len() - 5] {
            let mut tampered = good.clone();
            tampered[position] = if tampered[position] == b'A' {
                b'B'
            } else {
                b'A'
            };
            assert_eq!(
                reason(admit(&mut gate, started, &tampered, 0)),
                "bad_seal",
                "at {position}"
            );
        }
        // Truncated: shorter ciphertext, and shorter than nonce + tag.
        let bytes = BASE64.decode(payload(&good)).unwrap_or_default();
        for keep in [bytes.len() - 1, NONCE_LEN + TAG_LEN - 1, 0] {
            let frame = format!(
                "{{\"v\":1,\"sealed\":\"{}\"}}",
                BASE64.encode(&bytes[..keep])
            );
            assert_eq!(
                reason(admit(&mut gate, started, frame.as_bytes(), 0)),
                "bad_seal",
                "{keep} bytes"
            );
        }
        assert_eq!(
            reason(admit(
                &mut gate,
                started,
                br#"{"v":1,"sealed":"not base64!"}"#,
                0
            )),
            "bad_seal"
        );
        assert_eq!(
            reason(admit(&mut gate, started, br#"{"v":1,"sealed":42}"#, 0)),
            "bad_seal"
        );
        assert_eq!(
            reason(admit(&mut gate, started, br#"{"v":2,"sealed":"AAAA"}"#, 0)),
            "unsupported_version"
        );
        // An oversized payload is refused before any decryption.
        let huge = format!(
            "{{\"v\":1,\"sealed\":\"{}\"}}",
            BASE64.encode(vec![0u8; MAX_SEALED_PLAINTEXT + 100])
        );
        assert_eq!(
            reason(admit(&mut gate, started, huge.as_bytes(), 0)),
            "too_large"
        );
        // Sealed for another node, or for this IP on another port.
        let elsewhere = sealed(&status(T0, 0, T0), "127.0.0.9:5000");
        assert_eq!(
            reason(admit(&mut gate, started, &elsewhere, 0)),
            "wrong_recipient"
        );
        let other_port = sealed(&status(T0, 0, T0), "127.0.0.2:5001");
        assert_eq!(
            reason(admit(&mut gate, started, &other_port, 0)),
            "wrong_recipient"
        );
        // A new boot whose clock is far from ours.
        let skewed = sealed(&status(T0, 0, T0 + 3_600_000), HERE);
        let skew = admit(&mut gate, started, &skewed, 0);
        assert!(
            matches!(&skew, Err(e) if e.to_string().starts_with("clock skew 3600 s")),
            "{skew:?}"
        );
        assert_eq!(reason(skew), "clock_skew");
        // Authentic and fresh, then the same frame again.
        assert!(admit(&mut gate, started, &good, 0).is_ok());
        assert_eq!(reason(admit(&mut gate, started, &good, 10)), "replay");
    }

    #[test]
    fn a_seal_must_name_a_recipient() {
        // Sealed by hand without `to`: authentic, but meant for nobody.
        let keyring = ring(&[1]);
        let cipher = XChaCha20Poly1305::new(&[1u8; KEY_LEN].into());
        let nonce = [7u8; NONCE_LEN];
        let plaintext = status(T0, 0, T0);
        let ciphertext = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext.trim_ascii_end(),
                    aad: ASSOCIATED_DATA,
                },
            )
            .unwrap_or_default();
        let frame = format!(
            "{{\"v\":1,\"sealed\":\"{}\"}}",
            BASE64.encode([&nonce[..], &ciphertext].concat())
        );
        let (mut gate, started) = gate(keyring);
        assert_eq!(
            reason(admit(&mut gate, started, frame.as_bytes(), 0)),
            "wrong_recipient"
        );
        // The same plaintext under other associated data does not open.
        let ciphertext = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: b"{}",
                    aad: b"p2pmon-v2",
                },
            )
            .unwrap_or_default();
        let frame = format!(
            "{{\"v\":1,\"sealed\":\"{}\"}}",
            BASE64.encode([&nonce[..], &ciphertext].concat())
        );
        assert_eq!(
            reason(admit(&mut gate, started, frame.as_bytes(), 0)),
            "bad_seal"
        );
    }

    #[test]
    fn a_seal_must_name_its_sender_and_come_from_it() {
        let keyring = ring(&[1]);
        let line = status(T0, 0, T0);
        let good = keyring
            .seal(&line, addr(FROM), addr(HERE))
            .unwrap_or_default();
        let (mut gate, started) = gate(ring(&[1]));
        // A recording replayed from any other address, in time: refused.
        let replayed = admit_from(&mut gate, started, &good, [127, 0, 0, 9], 0);
        assert!(
            matches!(&replayed, Err(e) if e.to_string()
                == "sealed by 127.0.0.3:5000, arrived from 127.0.0.9 (recorded and replayed?)"),
            "{replayed:?}"
        );
        assert_eq!(reason(replayed), "wrong_sender");
        // Sealed by another node, arriving from SOURCE.
        let other = keyring
            .seal(&line, addr("127.0.0.9:5000"), addr(HERE))
            .unwrap_or_default();
        assert_eq!(reason(admit(&mut gate, started, &other, 0)), "wrong_sender");
        // Authentic, addressed right, but without `from`: refused.
        let cipher = XChaCha20Poly1305::new(&[1u8; KEY_LEN].into());
        let nonce = [9u8; NONCE_LEN];
        let mut object: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&line).unwrap_or_default();
        object.insert("to".into(), HERE.into());
        let plaintext = serde_json::to_vec(&object).unwrap_or_default();
        let ciphertext = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &plaintext,
                    aad: ASSOCIATED_DATA,
                },
            )
            .unwrap_or_default();
        let anonymous = format!(
            "{{\"v\":1,\"sealed\":\"{}\"}}",
            BASE64.encode([&nonce[..], &ciphertext].concat())
        );
        let refused = admit(&mut gate, started, anonymous.as_bytes(), 0);
        assert!(
            matches!(&refused, Err(e) if e.to_string().contains("without a sender address")),
            "{refused:?}"
        );
        assert_eq!(reason(refused), "wrong_sender");
        // From its own address (as an IPv4-mapped IPv6 source too): admitted.
        let mapped = IpAddr::from(std::net::Ipv4Addr::from(SOURCE).to_ipv6_mapped());
        let admitted = gate.admit(good.trim_ascii_end(), mapped, Some(addr(HERE)), started, T0);
        assert!(
            matches!(&admitted, Ok(a) if a.authenticated),
            "{admitted:?}"
        );
    }

    #[test]
    fn freshness_is_kept_only_for_peers_the_table_accepted() {
        let keyring = ring(&[1]);
        let frame = keyring
            .seal(&status(T0, 0, T0), addr(FROM), addr(HERE))
            .unwrap_or_default();
        let (mut gate, started) = gate(ring(&[1]));
        // The table refused it (full): nothing kept, however often it comes.
        for at_ms in [0, 10, 20] {
            let admitted = admit_from(&mut gate, started, &frame, SOURCE, at_ms);
            assert!(
                matches!(&admitted, Ok(a) if a.freshness.is_some()),
                "{admitted:?}"
            );
            assert_eq!(gate.tracked(), 0);
        }
        // Accepted: committed, and the same frame is now a replay.
        assert!(admit(&mut gate, started, &frame, 30).is_ok());
        assert_eq!(gate.tracked(), 1);
        assert_eq!(reason(admit(&mut gate, started, &frame, 40)), "replay");
        // The peer left the table: its freshness goes with it.
        let peer = PeerId::new(IpAddr::from(SOURCE), 5000);
        gate.retain(|id| *id != peer);
        assert_eq!(gate.tracked(), 0);
        // Plaintext with --allow-plaintext is unauthenticated, proves nothing.
        let mut open = Gate::new(Some(shared(ring(&[1]))), true, started);
        let plain = status(T0, 0, T0);
        let admitted = open.admit(
            plain.trim_ascii_end(),
            IpAddr::from(SOURCE),
            None,
            started,
            T0,
        );
        assert!(
            matches!(&admitted, Ok(a) if !a.authenticated && a.freshness.is_none()),
            "{admitted:?}"
        );
    }

    #[test]
    fn a_replayed_stream_cannot_revive_a_peer() {
        let keyring = ring(&[1]);
        let frames: Vec<Vec<u8>> = (0..3)
            .map(|seq| {
                keyring
                    .seal(&status(T0, seq, T0 + seq * 1000), addr(FROM), addr(HERE))
                    .unwrap_or_default()
            })
            .collect();
        let (mut gate, started) = gate(keyring);
        for (seq, frame) in frames.iter().enumerate() {
            assert!(admit(&mut gate, started, frame, seq as u64 * 1000).is_ok());
        }
        // Much later (the peer died), the whole recording again: all replays.
        for frame in &frames {
            assert_eq!(reason(admit(&mut gate, started, frame, 60_000)), "replay");
        }
    }

    #[test]
    fn a_frame_held_back_too_long_is_refused() {
        let keyring = ring(&[1]);
        let first = keyring
            .seal(&status(T0, 0, T0), addr(FROM), addr(HERE))
            .unwrap_or_default();
        let held = keyring
            .seal(&status(T0, 1, T0 + 1000), addr(FROM), addr(HERE))
            .unwrap_or_default();
        let (mut gate, started) = gate(keyring);
        assert!(admit(&mut gate, started, &first, 0).is_ok());
        let late = 1000 + FRESHNESS_WINDOW.as_millis() as u64 + 1;
        assert_eq!(reason(admit(&mut gate, started, &held, late)), "replay");
    }

    #[test]
    fn without_a_key_frames_are_plain_v1() {
        let mut gate = Gate::new(None, false, Instant::now());
        let line = status(T0, 0, T0);
        let source = IpAddr::from(SOURCE);
        assert!(
            gate.admit(line.trim_ascii_end(), source, None, Instant::now(), 0)
                .is_ok()
        );
        let sealed = ring(&[1])
            .seal(&line, addr(FROM), addr(HERE))
            .unwrap_or_default();
        let refused = gate.admit(sealed.trim_ascii_end(), source, None, Instant::now(), 0);
        assert_eq!(reason(refused), "sealed_without_key");
    }

    #[test]
    fn allow_plaintext_admits_plaintext_but_still_checks_seals() {
        let mut gate = Gate::new(Some(shared(ring(&[1]))), true, Instant::now());
        let source = IpAddr::from(SOURCE);
        let line = status(T0, 0, T0);
        assert!(
            gate.admit(line.trim_ascii_end(), source, None, Instant::now(), T0)
                .is_ok()
        );
        assert!(
            gate.admit(br#"{"cpu":1,"memory":2}"#, source, None, Instant::now(), T0)
                .is_ok()
        );
        let foreign = ring(&[2])
            .seal(&line, addr(FROM), addr(HERE))
            .unwrap_or_default();
        let refused = gate.admit(
            foreign.trim_ascii_end(),
            source,
            Some(addr(HERE)),
            Instant::now(),
            T0,
        );
        assert_eq!(reason(refused), "bad_seal");
    }
}
