//! The seal gate (`proto::Gate::admit`) with a fixed key. Input: a flags byte
//! (bit 0: --allow-plaintext), then frames separated by newlines, admitted in
//! order from one source (so freshness state carries over). A frame that
//! starts with `S` is sealed by `Keyring::seal` for this node (a JSON object
//! gets its `to` and `from`: the inner decoder is reached); one that starts
//! with `R` is the rest encrypted as is, any plaintext at all; anything else
//! is admitted as it is. Checks: without --allow-plaintext, nothing the
//! fuzzer wrote itself (no key) is ever admitted.
#![no_main]

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use libfuzzer_sys::fuzz_target;
use p2pmon::proto::seal::{ASSOCIATED_DATA, KEY_LEN};
use p2pmon::proto::{Gate, Keyring};

const KEY: [u8; KEY_LEN] = [7; KEY_LEN];
/// The wall clock of the run: seeds' `boot` and `ts` are near it.
const T0: u64 = 1_700_000_000_000;
const HERE: SocketAddr = SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2)), 5000);
const SOURCE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 3));
/// What a node at SOURCE names itself in its seals (`from`).
const FROM: SocketAddr = SocketAddr::new(SOURCE, 5000);

fn seal_raw(plaintext: &[u8]) -> Vec<u8> {
    let cipher = XChaCha20Poly1305::new(&KEY.into());
    let nonce = [9u8; 24];
    let Ok(ciphertext) = cipher.encrypt(
        XNonce::from_slice(&nonce),
        Payload {
            msg: plaintext,
            aad: ASSOCIATED_DATA,
        },
    ) else {
        return Vec::new();
    };
    format!(
        "{{\"v\":1,\"sealed\":\"{}\"}}",
        BASE64.encode([&nonce[..], &ciphertext].concat())
    )
    .into_bytes()
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, frames)) = data.split_first() else {
        return;
    };
    let allow_plaintext = flags & 1 == 1;
    let keyring = Keyring::new(&[KEY]);
    let started = Instant::now();
    let mut gate = Gate::new(
        Some(Arc::new(RwLock::new(Keyring::new(&[KEY])))),
        allow_plaintext,
        started,
    );
    for (step, frame) in frames.split(|b| *b == b'\n').take(64).enumerate() {
        let (sealed_by_us, frame) = match frame.split_first() {
            Some((b'S', rest)) => {
                let mut line = rest.to_vec();
                line.push(b'\n');
                match keyring.seal(&line, FROM, HERE) {
                    Ok(mut sealed) => {
                        sealed.pop();
                        (true, sealed)
                    }
                    Err(_) => (true, seal_raw(rest)),
                }
            }
            Some((b'R', rest)) => (true, seal_raw(rest)),
            _ => (false, frame.to_vec()),
        };
        let at = Duration::from_millis(step as u64 * 100);
        let admitted = gate.admit(
            &frame,
            SOURCE,
            Some(HERE),
            started + at,
            T0 + at.as_millis() as u64,
        );
        if admitted.is_ok() && !sealed_by_us {
            assert!(
                allow_plaintext,
                "admitted without the key or --allow-plaintext: {:?}",
                String::from_utf8_lossy(&frame)
            );
        }
        if let Err(rejection) = admitted {
            let _ = (rejection.reason(), rejection.to_string());
        }
    }
});
