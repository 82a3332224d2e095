//! The cipher: how one v1 message becomes a sealed frame and back
//! (docs/PROTOCOL.md, "Security"). XChaCha20-Poly1305 with a random 24-byte
//! nonce per message and the associated data [`ASSOCIATED_DATA`]; the
//! plaintext is the v1 message plus `to`, the address the sender dialed, and
//! `from`, the sender's address on that connection: a frame is bound to both
//! ends, so a recording is useless from any other address. On the wire it is
//! `{"v":1,"sealed":"BASE64(nonce, ciphertext, tag)"}` and a newline.
//!
//! This file knows one key at a time (`Cipher`). Which key seals and which
//! ones are tried to open is the keyring's ([`super::keyring`]); whether an
//! opened message is meant for us, from its sender and fresh is the gate's
//! ([`super::gate`]).

use std::fmt;
use std::net::SocketAddr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chacha20poly1305::aead::rand_core::RngCore;
use chacha20poly1305::aead::{Aead, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

use crate::limits::MAX_SEALED_PLAINTEXT;

/// Bytes in a key.
pub const KEY_LEN: usize = 32;
/// Bytes of the random nonce that starts every sealed payload.
pub(crate) const NONCE_LEN: usize = 24;
/// Bytes of the Poly1305 tag that ends it.
pub(crate) const TAG_LEN: usize = 16;
/// Associated data of every seal: a frame of another protocol or version,
/// even under the same key, never opens as this one.
pub const ASSOCIATED_DATA: &[u8] = b"p2pmon-v1";

/// One key, ready to seal and open.
pub(crate) struct Cipher(XChaCha20Poly1305);

impl Cipher {
    pub(crate) fn new(key: &[u8; KEY_LEN]) -> Cipher {
        Cipher(XChaCha20Poly1305::new(key.into()))
    }

    /// Seals `line` (one v1 message, newline or not) from `from` to `to`:
    /// the whole frame, newline included.
    pub(crate) fn seal(
        &self,
        line: &[u8],
        from: SocketAddr,
        to: SocketAddr,
    ) -> Result<Vec<u8>, SealError> {
        let mut object: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(line).map_err(|_| SealError::NotAMessage)?;
        object.insert("to".into(), to.to_string().into());
        object.insert("from".into(), from.to_string().into());
        let plaintext = serde_json::to_vec(&object).map_err(|_| SealError::NotAMessage)?;
        if plaintext.len() > MAX_SEALED_PLAINTEXT {
            return Err(SealError::TooLarge(plaintext.len()));
        }
        let mut nonce = [0u8; NONCE_LEN];
        OsRng
            .try_fill_bytes(&mut nonce)
            .map_err(|e| SealError::Random(e.to_string()))?;
        let ciphertext = self
            .0
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &plaintext,
                    aad: ASSOCIATED_DATA,
                },
            )
            .map_err(|_| SealError::TooLarge(plaintext.len()))?;
        let mut payload = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        payload.extend_from_slice(&nonce);
        payload.extend_from_slice(&ciphertext);
        let mut frame =
            format!("{{\"v\":1,\"sealed\":\"{}\"}}", BASE64.encode(payload)).into_bytes();
        frame.push(b'\n');
        Ok(frame)
    }

    /// The plaintext of a payload sealed with this key, or None (another
    /// key's, or altered on the way: the tag does not match).
    pub(crate) fn open(&self, payload: &SealedPayload) -> Option<Vec<u8>> {
        let (nonce, ciphertext) = payload.0.split_at(NONCE_LEN);
        self.0
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: ASSOCIATED_DATA,
                },
            )
            .ok()
    }
}

/// The bytes of a sealed frame's `sealed` field, decoded and checked for
/// length before any key is tried: at least a nonce and a tag, and no more
/// plaintext than we ever seal (a huge payload costs no decryption).
pub(crate) struct SealedPayload(Vec<u8>);

impl SealedPayload {
    pub(crate) fn decode(sealed: &str) -> Result<SealedPayload, OpenError> {
        let payload = BASE64
            .decode(sealed)
            .map_err(|_| OpenError::BadSeal("payload is not valid base64"))?;
        if payload.len() < NONCE_LEN + TAG_LEN {
            return Err(OpenError::BadSeal("payload too short (truncated?)"));
        }
        if payload.len() - NONCE_LEN - TAG_LEN > MAX_SEALED_PLAINTEXT {
            return Err(OpenError::TooLarge);
        }
        Ok(SealedPayload(payload))
    }
}

/// Why a sealed payload does not open; the gate turns it into its
/// rejection (`bad_seal`, or `too_large` as for any oversized frame).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpenError {
    /// Not base64, too short, or no key opens it; says which.
    BadSeal(&'static str),
    /// More plaintext than [`MAX_SEALED_PLAINTEXT`].
    TooLarge,
}

/// Why a message could not be sealed (never input-triggered: a bug or a
/// broken OS random source).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SealError {
    NotAMessage,
    TooLarge(usize),
    NoKey,
    Random(String),
}

impl fmt::Display for SealError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SealError::NotAMessage => write!(f, "not a JSON message"),
            SealError::TooLarge(len) => write!(
                f,
                "message of {len} bytes exceeds the {MAX_SEALED_PLAINTEXT}-byte sealing limit"
            ),
            SealError::NoKey => write!(f, "no key"),
            SealError::Random(e) => write!(f, "OS random source failed: {e}"),
        }
    }
}

impl std::error::Error for SealError {}

/// Makes a new random key, base64-encoded (without newline), as a key file
/// holds it (`p2pmon keygen`).
pub(crate) fn new_key() -> Result<String, SealError> {
    let mut key = [0u8; KEY_LEN];
    OsRng
        .try_fill_bytes(&mut key)
        .map_err(|e| SealError::Random(e.to_string()))?;
    Ok(BASE64.encode(key))
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::proto::Keyring;
    use crate::proto::testing::*;
    use crate::proto::wire;

    #[test]
    fn seal_then_open_round_trips() {
        let keyring = ring(&[1]);
        let line = status(T0, 0, T0);
        let frame = keyring.seal(&line, addr(FROM), addr(HERE));
        let Ok(frame) = frame else {
            panic!("seal failed: {frame:?}");
        };
        assert!(frame.starts_with(b"{\"v\":1,\"sealed\":\""));
        assert_eq!(frame.last(), Some(&b'\n'));
        assert!(
            frame.len() < crate::limits::MAX_FIRST_FRAME,
            "{}",
            frame.len()
        );
        // The plaintext is not visible in the frame.
        assert!(!frame.windows(6).any(|w| w == b"status"));
        let (mut gate, started) = gate(keyring);
        let opened = admit(&mut gate, started, &frame, 0);
        let decoded = wire::decode(line.trim_ascii_end());
        assert_eq!(opened.ok(), decoded.ok());
        // Two seals of one message differ (random nonce).
        let again = ring(&[1])
            .seal(&line, addr(FROM), addr(HERE))
            .unwrap_or_default();
        assert_ne!(again, frame);
    }

    #[test]
    fn a_cipher_opens_only_its_own_seals() {
        let line = status(T0, 0, T0);
        let one = Cipher::new(&[1; KEY_LEN]);
        let two = Cipher::new(&[2; KEY_LEN]);
        let frame = one.seal(&line, addr(FROM), addr(HERE)).unwrap_or_default();
        let decoded = SealedPayload::decode(&payload(&frame));
        let Ok(sealed) = decoded else {
            panic!("{:?}", decoded.err());
        };
        let opened = one.open(&sealed).unwrap_or_default();
        let object: serde_json::Value = serde_json::from_slice(&opened).unwrap_or_default();
        assert_eq!(object["to"], HERE);
        assert_eq!(object["from"], FROM);
        assert_eq!(object["type"], "status");
        assert_eq!(two.open(&sealed), None);
        // Not a JSON object: nothing to address, nothing sealed.
        assert_eq!(
            one.seal(b"[1,2]", addr(FROM), addr(HERE)),
            Err(SealError::NotAMessage)
        );
    }

    #[test]
    fn payloads_are_checked_before_any_key_is_tried() {
        let check = |bytes: usize| SealedPayload::decode(&BASE64.encode(vec![0u8; bytes])).err();
        assert_eq!(
            check(NONCE_LEN + TAG_LEN - 1),
            Some(OpenError::BadSeal("payload too short (truncated?)"))
        );
        assert_eq!(check(NONCE_LEN + TAG_LEN), None);
        assert_eq!(check(NONCE_LEN + TAG_LEN + MAX_SEALED_PLAINTEXT), None);
        assert_eq!(
            check(NONCE_LEN + TAG_LEN + MAX_SEALED_PLAINTEXT + 1),
            Some(OpenError::TooLarge)
        );
        assert_eq!(
            SealedPayload::decode("not base64!").err(),
            Some(OpenError::BadSeal("payload is not valid base64"))
        );
    }

    #[test]
    fn new_keys_are_random_and_valid() {
        let (Ok(a), Ok(b)) = (new_key(), new_key()) else {
            panic!("no OS randomness");
        };
        assert_ne!(a, b);
        assert_eq!(BASE64.decode(&a).map(|k| k.len()), Ok(KEY_LEN));
        assert!(Keyring::parse(&a, "test").is_ok());
    }

    /// Sizes and CPU cost of sealing; run by scripts/bench-seal.sh.
    #[test]
    #[ignore = "benchmark: cargo test --release --lib seal::tests::bench -- --ignored --nocapture"]
    fn bench_seal_and_open() {
        const ROUNDS: u32 = 20_000;
        let keyring = ring(&[1]);
        let line = status(T0, 123_456, T0 + 617_280_000);
        let frame = keyring
            .seal(
                &line,
                addr("192.168.100.102:5000"),
                addr("192.168.100.101:5000"),
            )
            .unwrap_or_default();
        println!("plaintext status frame: {} bytes", line.len());
        println!("sealed status frame:    {} bytes", frame.len());
        let started = Instant::now();
        for _ in 0..ROUNDS {
            std::hint::black_box(
                keyring
                    .seal(
                        &line,
                        addr("192.168.100.102:5000"),
                        addr("192.168.100.101:5000"),
                    )
                    .ok(),
            );
        }
        let seal = started.elapsed() / ROUNDS;
        let payload = payload(&frame);
        let started = Instant::now();
        for _ in 0..ROUNDS {
            std::hint::black_box(keyring.open(&payload).ok());
        }
        let open = started.elapsed() / ROUNDS;
        let started = Instant::now();
        for _ in 0..ROUNDS {
            std::hint::black_box(wire::decode(line.trim_ascii_end()).ok());
        }
        let decode = started.elapsed() / ROUNDS;
        let (mut gate, gate_started) = gate(ring(&[1]));
        let frames: Vec<Vec<u8>> = (0..u64::from(ROUNDS))
            .map(|seq| {
                keyring
                    .seal(&status(T0, seq, T0), addr(FROM), addr(HERE))
                    .unwrap_or_default()
            })
            .collect();
        let started = Instant::now();
        for frame in &frames {
            std::hint::black_box(admit(&mut gate, gate_started, frame, 0).ok());
        }
        let admit = started.elapsed() / ROUNDS;
        println!("seal (JSON + to + encrypt + base64): {seal:?} per message");
        println!("open (base64 + decrypt):             {open:?} per message");
        println!("gate (open + to + decode + fresh):   {admit:?} per message");
        println!("plaintext decode, for comparison:    {decode:?} per message");
    }
}
