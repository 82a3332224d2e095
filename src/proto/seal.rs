//! Sealing: the cluster key, the sealed frame, and the checks that make a
//! received message authentic, meant for this node and fresh (docs/PROTOCOL.md,
//! "Security"). Without a key none of this runs and p2pmon speaks plaintext,
//! as the Python original did.
//!
//! - [`Keyring`]: the keys of a key file (the first seals, all open), loaded
//!   with the checks a user needs (a small regular file, the user's or root's,
//!   owner-only mode, base64, 32 bytes), all made on the one open file.
//! - [`keygen`]: a new key file, written beside the target and renamed over
//!   it, so a symlink at the path is replaced, never written through.
//! - [`Keyring::seal`] / [`Keyring::open`]: XChaCha20-Poly1305 with a random
//!   24-byte nonce per message and the associated data `p2pmon-v1`; the
//!   plaintext is the v1 message plus `to`, the address the sender dialed,
//!   and `from`, the sender's address on that connection: a frame is bound
//!   to both ends, so a recording is useless from any other address.
//! - [`check_fresh`]: the pure replay and freshness rule, per peer.
//! - [`Gate`]: what the listener calls for every frame; it holds the per-peer
//!   freshness state and turns a frame into an [`Admitted`] message or a
//!   [`Rejection`] whose [`Rejection::reason`] is the counter label. The
//!   freshness a frame proves is kept only once the peer table accepted the
//!   message ([`Gate::commit`]), and dropped when the peer leaves the table
//!   ([`Gate::retain`]): strangers the table refuses leave nothing behind.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard};
use std::time::Instant;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chacha20poly1305::aead::rand_core::RngCore;
use chacha20poly1305::aead::{Aead, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde::Deserialize;

use crate::limits::{FRESHNESS_WINDOW, MAX_KEY_FILE, MAX_KEYS, MAX_PEERS, MAX_SEALED_PLAINTEXT};
use crate::proto::PeerId;
use crate::proto::wire::{self, DecodeError, Message};

/// Bytes in a key.
pub const KEY_LEN: usize = 32;
/// Bytes of the random nonce that starts every sealed payload.
const NONCE_LEN: usize = 24;
/// Bytes of the Poly1305 tag that ends it.
const TAG_LEN: usize = 16;
/// Associated data of every seal: a frame of another protocol or version,
/// even under the same key, never opens as this one.
pub const ASSOCIATED_DATA: &[u8] = b"p2pmon-v1";

/// A key file that cannot be used; the message says which and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyError(pub String);

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for KeyError {}

/// The keys of one key file. The first seals; every one is tried to open, so
/// a cluster can move from one key to the next without downtime.
pub struct Keyring {
    ciphers: Vec<XChaCha20Poly1305>,
    /// Messages opened with each key since the file was loaded: tells an
    /// operator when an old key is no longer in use.
    opened: Vec<AtomicU64>,
}

impl fmt::Debug for Keyring {
    /// Never prints key material.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Keyring({} keys)", self.ciphers.len())
    }
}

/// The keyring as the sender, the listener and SIGHUP share it.
pub type SharedKeyring = Arc<RwLock<Keyring>>;

/// Reads a shared keyring, even if a thread panicked holding it (a keyring is
/// replaced whole, never left half-written).
pub fn read(keyring: &SharedKeyring) -> RwLockReadGuard<'_, Keyring> {
    keyring.read().unwrap_or_else(PoisonError::into_inner)
}

impl Keyring {
    /// Builds a keyring from raw keys (first seals).
    pub fn new(keys: &[[u8; KEY_LEN]]) -> Keyring {
        Keyring {
            ciphers: keys
                .iter()
                .map(|key| XChaCha20Poly1305::new(key.into()))
                .collect(),
            opened: keys.iter().map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Reads a key file: opened once, and every check is made on the open
    /// file (fstat), so the file read is the file checked. A symlink at the
    /// path is followed (config tools and secret mounts manage key files so);
    /// what it points to must pass: a regular file, owned by the user running
    /// the node or by root, not accessible to group or others, at most
    /// [`MAX_KEY_FILE`] bytes (read through a cap, even if it grows).
    pub fn load(path: &Path) -> Result<Keyring, KeyError> {
        let shown = path.display();
        let cannot = |e: std::io::Error| KeyError(format!("cannot read key file {shown}: {e}"));
        // O_NONBLOCK: a FIFO at the path opens at once (and is then refused)
        // instead of blocking the node forever; O_NOCTTY: a terminal never
        // becomes ours. Neither changes how a regular file reads.
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(path)
            .map_err(cannot)?;
        let metadata = file.metadata().map_err(cannot)?;
        let euid = rustix::process::geteuid().as_raw();
        KeyFileFacts::of(&metadata).check(&shown.to_string(), euid)?;
        let mut text = String::new();
        file.take(MAX_KEY_FILE + 1)
            .read_to_string(&mut text)
            .map_err(cannot)?;
        if text.len() as u64 > MAX_KEY_FILE {
            // It grew after the check.
            return Err(too_large(&shown.to_string()));
        }
        Keyring::parse(&text, &format!("key file {shown}"))
    }

    /// Parses a key file's text: one base64 key per line; blank lines and
    /// lines starting with `#` are skipped. `origin` names the file in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Keyring, KeyError> {
        let mut keys = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let at = format!("{origin}, line {}", index + 1);
            // The key itself never goes into a message.
            let bytes = BASE64.decode(line).map_err(|_| {
                KeyError(format!(
                    "{at}: not valid base64; make a key with `p2pmon keygen`"
                ))
            })?;
            let key: [u8; KEY_LEN] = bytes.as_slice().try_into().map_err(|_| {
                KeyError(format!(
                    "{at}: the key is {} bytes, it must be exactly {KEY_LEN}; \
                     make one with `p2pmon keygen`",
                    bytes.len()
                ))
            })?;
            keys.push(key);
        }
        if keys.is_empty() {
            return Err(KeyError(format!(
                "{origin} holds no key; make one with `p2pmon keygen`"
            )));
        }
        if keys.len() > MAX_KEYS {
            return Err(KeyError(format!(
                "{origin} holds {} keys, at most {MAX_KEYS} are allowed",
                keys.len()
            )));
        }
        Ok(Keyring::new(&keys))
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.ciphers.len()
    }

    /// Always false: a keyring holds at least one key.
    pub fn is_empty(&self) -> bool {
        self.ciphers.is_empty()
    }

    /// Messages opened with each key since this keyring was loaded.
    pub fn opened_counts(&self) -> Vec<u64> {
        self.opened
            .iter()
            .map(|count| count.load(Ordering::Relaxed))
            .collect()
    }

    /// Seals `line`, one v1 message as [`wire::encode`] writes it, sent
    /// from `from` (the connection's local IP and our listening port) to the
    /// peer dialed at `to`. Returns the frame, newline included.
    pub fn seal(
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
        let cipher = self.ciphers.first().ok_or(SealError::NoKey)?;
        let mut nonce = [0u8; NONCE_LEN];
        OsRng
            .try_fill_bytes(&mut nonce)
            .map_err(|e| SealError::Random(e.to_string()))?;
        let ciphertext = cipher
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

    /// Opens the base64 payload of a sealed frame: the plaintext, and the
    /// index of the key that opened it.
    pub fn open(&self, sealed: &str) -> Result<(Vec<u8>, usize), Rejection> {
        let payload = BASE64
            .decode(sealed)
            .map_err(|_| Rejection::BadSeal("payload is not valid base64"))?;
        if payload.len() < NONCE_LEN + TAG_LEN {
            return Err(Rejection::BadSeal("payload too short (truncated?)"));
        }
        if payload.len() - NONCE_LEN - TAG_LEN > MAX_SEALED_PLAINTEXT {
            return Err(Rejection::Decode(DecodeError::TooLarge));
        }
        let (nonce, ciphertext) = payload.split_at(NONCE_LEN);
        for (index, cipher) in self.ciphers.iter().enumerate() {
            let opened = cipher.decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: ASSOCIATED_DATA,
                },
            );
            if let Ok(plaintext) = opened {
                if let Some(count) = self.opened.get(index) {
                    count.fetch_add(1, Ordering::Relaxed);
                }
                return Ok((plaintext, index));
            }
        }
        Err(Rejection::BadSeal(
            "no key opens it (another cluster's key, or altered on the way)",
        ))
    }

    /// One line for the log: how many keys, and which opened what lately.
    pub fn usage(&self) -> String {
        let counts: Vec<String> = self
            .opened_counts()
            .iter()
            .enumerate()
            .map(|(index, count)| format!("key {}: {count}", index + 1))
            .collect();
        format!(
            "messages opened per key since the last load: {}",
            counts.join(", ")
        )
    }
}

/// What [`Keyring::load`] checks of an open key file, apart from the I/O so
/// the rules are tested with any owner and kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct KeyFileFacts {
    /// None for a regular file, else what it is instead.
    not_regular: Option<&'static str>,
    mode: u32,
    owner: u32,
    len: u64,
}

impl KeyFileFacts {
    fn of(metadata: &std::fs::Metadata) -> KeyFileFacts {
        let kind = metadata.file_type();
        let not_regular = if kind.is_file() {
            None
        } else if kind.is_dir() {
            Some("a directory")
        } else if kind.is_fifo() {
            Some("a FIFO")
        } else if kind.is_socket() {
            Some("a socket")
        } else if kind.is_char_device() || kind.is_block_device() {
            Some("a device")
        } else {
            Some("not a file")
        };
        KeyFileFacts {
            not_regular,
            mode: metadata.mode() & 0o7777,
            owner: metadata.uid(),
            len: metadata.len(),
        }
    }

    /// The rules, for a node running as `euid`; `shown` names the file.
    fn check(&self, shown: &str, euid: u32) -> Result<(), KeyError> {
        if let Some(kind) = self.not_regular {
            return Err(KeyError(format!(
                "key file {shown} is not a regular file ({kind}); \
                 give the file that `p2pmon keygen --out FILE` wrote"
            )));
        }
        if self.owner != euid && self.owner != 0 {
            return Err(KeyError(format!(
                "key file {shown} is owned by uid {}, not by this user (uid {euid}) or root: \
                 whoever owns it can change the cluster key; chown {euid} {shown}",
                self.owner
            )));
        }
        let mode = self.mode & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyError(format!(
                "key file {shown} is accessible to group or others (mode {mode:03o}); \
                 make it private: chmod 600 {shown}"
            )));
        }
        if self.len > MAX_KEY_FILE {
            return Err(too_large(shown));
        }
        Ok(())
    }
}

fn too_large(shown: &str) -> KeyError {
    KeyError(format!(
        "key file {shown} is larger than {MAX_KEY_FILE} bytes, too big for at most \
         {MAX_KEYS} keys (the wrong file?); make one with `p2pmon keygen`"
    ))
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

/// Makes a new random key, base64-encoded (without newline).
pub fn new_key() -> Result<String, SealError> {
    let mut key = [0u8; KEY_LEN];
    OsRng
        .try_fill_bytes(&mut key)
        .map_err(|e| SealError::Random(e.to_string()))?;
    Ok(BASE64.encode(key))
}

/// Attempts at a fresh temporary name beside the key file before giving up
/// (each name is random; a clash means someone is creating files there).
const TEMP_ATTEMPTS: usize = 8;

/// `p2pmon keygen`: a new key to `out` or to stdout. The key is written to a
/// new private file in the same directory (created with O_EXCL, mode 0600
/// from the open on), synced, then moved to `out` in one step: renamed over
/// it with `force` (a symlink there is replaced, never written through), or
/// hard-linked without it, which fails if anything, even a dangling symlink,
/// is at `out`. Never a half-written or loose key file.
pub fn keygen(out: Option<&Path>, force: bool) -> Result<(), crate::Error> {
    let key = new_key().map_err(|e| crate::Error::Runtime(format!("cannot make a key: {e}")))?;
    let Some(path) = out else {
        println!("{key}");
        return Ok(());
    };
    let shown = path.display();
    let exists = || {
        crate::Error::Runtime(format!(
            "{shown} already exists; not replacing a key without --force"
        ))
    };
    let cannot = |e: std::io::Error| crate::Error::Runtime(format!("cannot write {shown}: {e}"));
    if !force && path.symlink_metadata().is_ok() {
        return Err(exists());
    }
    let (temp, mut file) = create_temp_beside(path).map_err(cannot)?;
    let written = file
        .set_permissions(std::fs::Permissions::from_mode(0o600))
        .and_then(|()| file.write_all(format!("{key}\n").as_bytes()))
        .and_then(|()| file.sync_all());
    drop(file);
    let placed = written.and_then(|()| {
        if force {
            std::fs::rename(&temp, path)
        } else {
            std::fs::hard_link(&temp, path).and_then(|()| std::fs::remove_file(&temp))
        }
    });
    if let Err(e) = placed {
        let _ = std::fs::remove_file(&temp);
        return Err(if e.kind() == std::io::ErrorKind::AlreadyExists {
            exists()
        } else {
            cannot(e)
        });
    }
    // The rename is durable once the directory is synced (best effort: some
    // file systems cannot sync a directory, and the key is written anyway).
    if let Some(dir) = temp.parent() {
        let _ = File::open(dir).and_then(|dir| dir.sync_all());
    }
    eprintln!("wrote a new key to {shown} (mode 0600); copy it to every node of the cluster");
    Ok(())
}

/// A new private file beside `path`, named `.NAME.RANDOM.tmp`.
fn create_temp_beside(path: &Path) -> std::io::Result<(PathBuf, File)> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file name"))?;
    let mut last = std::io::Error::new(std::io::ErrorKind::AlreadyExists, "no free name");
    for _ in 0..TEMP_ATTEMPTS {
        let mut random = [0u8; 8];
        OsRng
            .try_fill_bytes(&mut random)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let suffix: String = random.iter().map(|b| format!("{b:02x}")).collect();
        let temp = dir.join(format!(".{name}.{suffix}.tmp"));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)
        {
            Ok(file) => return Ok((temp, file)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = e,
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

/// What the listener knows of a peer's latest incarnation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    /// The latest boot accepted.
    pub boot: u64,
    /// The highest seq accepted in it.
    pub seq: u64,
    /// The largest `ts` minus our monotonic clock (both ms) over the boot's
    /// messages: a message whose own difference is much smaller arrived late.
    pub offset_ms: i64,
}

/// Why a message is not fresh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stale {
    /// From an incarnation older than one already seen.
    OlderBoot { boot: u64, latest: u64 },
    /// Its seq is not above the highest seen in its boot.
    SeqNotAbove { seq: u64, highest: u64 },
    /// It arrived this many ms later than its boot's other messages say it should.
    Late { by_ms: i64 },
    /// A new incarnation whose `ts` is this far from our clock (ms, + = ahead).
    ClockSkew { skew_ms: i64 },
}

/// The replay and freshness rule (docs/PROTOCOL.md, "Security"). `seen` is
/// what was accepted from this peer so far; `wall_ms` our unix time and
/// `mono_ms` our monotonic clock, both in ms. Returns the state to keep.
///
/// A new boot is judged by the wall clocks (ours and its `ts`), once; within
/// a boot only seq and the monotonic clock count, so a step of our clock
/// never turns live traffic into "stale".
pub fn check_fresh(
    seen: Option<&Seen>,
    boot: u64,
    seq: u64,
    ts: u64,
    wall_ms: u64,
    mono_ms: u64,
) -> Result<Seen, Stale> {
    let window = FRESHNESS_WINDOW.as_millis() as i64;
    let offset_ms = signed(ts) - signed(mono_ms);
    match seen {
        Some(seen) if boot < seen.boot => Err(Stale::OlderBoot {
            boot,
            latest: seen.boot,
        }),
        Some(seen) if boot == seen.boot => {
            if seq <= seen.seq {
                return Err(Stale::SeqNotAbove {
                    seq,
                    highest: seen.seq,
                });
            }
            let late = seen.offset_ms - offset_ms;
            if late > window {
                return Err(Stale::Late { by_ms: late });
            }
            Ok(Seen {
                boot,
                seq,
                offset_ms: seen.offset_ms.max(offset_ms),
            })
        }
        _ => {
            let skew_ms = signed(ts) - signed(wall_ms);
            if skew_ms.abs() > window {
                return Err(Stale::ClockSkew { skew_ms });
            }
            Ok(Seen {
                boot,
                seq,
                offset_ms,
            })
        }
    }
}

fn signed(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

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
            Rejection::Stale(Stale::OlderBoot { boot, latest }) => write!(
                f,
                "replay: incarnation {boot} is older than the latest seen, {latest}"
            ),
            Rejection::Stale(Stale::SeqNotAbove { seq, highest }) => {
                write!(f, "replay: seq {seq} is not above {highest}, already seen")
            }
            Rejection::Stale(Stale::Late { by_ms }) => write!(
                f,
                "replay: delivered {:.1} s late (more than {} s)",
                *by_ms as f64 / 1000.0,
                FRESHNESS_WINDOW.as_secs()
            ),
            Rejection::Stale(Stale::ClockSkew { skew_ms }) => write!(
                f,
                "clock skew {} s: the peer's clock is {} s {} ours, more than the {} s allowed; \
                 fix the clocks (NTP)",
                skew_ms / 1000,
                skew_ms.abs() / 1000,
                if *skew_ms > 0 { "ahead of" } else { "behind" },
                FRESHNESS_WINDOW.as_secs()
            ),
        }
    }
}

impl std::error::Error for Rejection {}

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
/// [`Gate::commit`] once the peer table accepted the message.
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
    pub fn keyed(&self) -> bool {
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
        let (plaintext, _key) = read(keyring).open(&sealed.sealed)?;

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
    pub fn commit(&mut self, freshness: Freshness) {
        self.seen.insert(freshness.peer, freshness.seen);
    }

    /// Forgets the freshness of peers that left the table (`keep` false):
    /// the gate never tracks more peers than the table holds.
    pub fn retain(&mut self, mut keep: impl FnMut(&PeerId) -> bool) {
        self.seen.retain(|peer, _| keep(peer));
    }

    /// Peers whose freshness is kept.
    pub fn tracked(&self) -> usize {
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
    use super::*;
    use crate::proto::wire::Header;

    const T0: u64 = 1_700_000_000_000;

    fn ring(keys: &[u8]) -> Keyring {
        let keys: Vec<[u8; KEY_LEN]> = keys.iter().map(|k| [*k; KEY_LEN]).collect();
        Keyring::new(&keys)
    }

    fn shared(keyring: Keyring) -> SharedKeyring {
        Arc::new(RwLock::new(keyring))
    }

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap_or(SocketAddr::from(([0, 0, 0, 0], 1)))
    }

    fn status(boot: u64, seq: u64, ts: u64) -> Vec<u8> {
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
        })
    }

    const HERE: &str = "127.0.0.2:5000";
    const SOURCE: [u8; 4] = [127, 0, 0, 3];
    /// What a node at SOURCE names itself in its seals.
    const FROM: &str = "127.0.0.3:5000";

    fn gate(keyring: Keyring) -> (Gate, Instant) {
        let started = Instant::now();
        (Gate::new(Some(shared(keyring)), false, started), started)
    }

    /// Admits a frame sealed for HERE, from SOURCE, at monotonic `at_ms`
    /// after start, and commits its freshness as when the table accepts it.
    fn admit(
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
    fn admit_from(
        gate: &mut Gate,
        started: Instant,
        frame: &[u8],
        source: [u8; 4],
        at_ms: u64,
    ) -> Result<Admitted, Rejection> {
        let now = started + std::time::Duration::from_millis(at_ms);
        let frame = frame.strip_suffix(b"\n").unwrap_or(frame);
        gate.admit(
            frame,
            IpAddr::from(source),
            Some(addr(HERE)),
            now,
            T0 + at_ms,
        )
    }

    fn reason<T: fmt::Debug>(result: Result<T, Rejection>) -> &'static str {
        match result {
            Ok(admitted) => panic!("expected a rejection, got {admitted:?}"),
            Err(e) => e.reason(),
        }
    }

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
        let text = String::from_utf8_lossy(&good).into_owned();
        let payload = text
            .trim_end()
            .trim_start_matches("{\"v\":1,\"sealed\":\"")
            .trim_end_matches("\"}");
        let bytes = BASE64.decode(payload).unwrap_or_default();
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
    fn replay_rules_at_their_edges() {
        let window = FRESHNESS_WINDOW.as_millis() as u64;
        let first = check_fresh(None, T0, 5, T0, T0, 0);
        let Ok(seen) = first else {
            panic!("{first:?}");
        };
        // Same boot: seq must grow.
        assert_eq!(
            check_fresh(Some(&seen), T0, 5, T0 + 1000, T0 + 1000, 1000),
            Err(Stale::SeqNotAbove { seq: 5, highest: 5 })
        );
        assert_eq!(
            check_fresh(Some(&seen), T0, 4, T0 + 1000, T0 + 1000, 1000),
            Err(Stale::SeqNotAbove { seq: 4, highest: 5 })
        );
        assert!(check_fresh(Some(&seen), T0, 6, T0 + 1000, T0 + 1000, 1000).is_ok());
        // An older boot is a replay, whatever its seq.
        assert_eq!(
            check_fresh(Some(&seen), T0 - 1, 99, T0, T0, 0),
            Err(Stale::OlderBoot {
                boot: T0 - 1,
                latest: T0
            })
        );
        // A new boot is judged by the clocks: just inside and just outside.
        let new_boot = T0 + 50_000;
        let now = T0 + 60_000;
        for ts in [now - window, now + window] {
            assert!(
                check_fresh(Some(&seen), new_boot, 0, ts, now, 60_000).is_ok(),
                "ts {ts}"
            );
        }
        assert_eq!(
            check_fresh(Some(&seen), new_boot, 0, now - window - 1, now, 60_000),
            Err(Stale::ClockSkew {
                skew_ms: -(window as i64) - 1
            })
        );
        assert_eq!(
            check_fresh(None, new_boot, 0, now + window + 1, now, 60_000),
            Err(Stale::ClockSkew {
                skew_ms: window as i64 + 1
            })
        );
        // Within a boot, lateness: a message held back just inside and just
        // outside the window (its ts says sent at 1 s; it arrives later).
        assert!(check_fresh(Some(&seen), T0, 6, T0 + 1000, 0, 1000 + window).is_ok());
        assert_eq!(
            check_fresh(Some(&seen), T0, 6, T0 + 1000, 0, 1000 + window + 1),
            Err(Stale::Late {
                by_ms: window as i64 + 1
            })
        );
    }

    #[test]
    fn our_clock_stepping_does_not_stale_a_known_boot() {
        let Ok(seen) = check_fresh(None, T0, 0, T0, T0, 0) else {
            panic!("first message refused");
        };
        // Our wall clock jumps a day either way: within a boot it is not used.
        for wall in [T0 - 86_400_000, T0 + 86_400_000] {
            assert!(check_fresh(Some(&seen), T0, 1, T0 + 1000, wall, 1000).is_ok());
        }
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
    fn rotation_two_keys_the_first_seals_both_open() {
        let old = ring(&[1]);
        let new = ring(&[2]);
        let both = ring(&[2, 1]);
        let line = status(T0, 0, T0);
        let by_old = old.seal(&line, addr(FROM), addr(HERE)).unwrap_or_default();
        let by_new = new.seal(&line, addr(FROM), addr(HERE)).unwrap_or_default();
        let by_both = both.seal(&line, addr(FROM), addr(HERE)).unwrap_or_default();
        let payload = |frame: &[u8]| -> String {
            let text = String::from_utf8_lossy(frame).into_owned();
            text.trim_end()
                .trim_start_matches("{\"v\":1,\"sealed\":\"")
                .trim_end_matches("\"}")
                .to_string()
        };
        assert_eq!(both.open(&payload(&by_new)).map(|(_, key)| key), Ok(0));
        assert_eq!(both.open(&payload(&by_old)).map(|(_, key)| key), Ok(1));
        // The first key seals: a node holding only the new key opens it,
        // one holding only the old key does not.
        assert_eq!(new.open(&payload(&by_both)).map(|(_, key)| key), Ok(0));
        assert!(old.open(&payload(&by_both)).is_err());
        assert_eq!(both.opened_counts(), vec![1, 1]);
        assert!(
            both.usage().contains("key 1: 1, key 2: 1"),
            "{}",
            both.usage()
        );
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

    /// A file in the temp directory, removed on drop.
    struct TempFile(std::path::PathBuf);

    impl TempFile {
        fn new(name: &str, text: &str, mode: u32) -> TempFile {
            let path =
                std::env::temp_dir().join(format!("p2pmon-seal-{}-{name}", std::process::id()));
            let _ = std::fs::remove_file(&path);
            let written = std::fs::write(&path, text).and_then(|()| {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
            });
            assert!(written.is_ok(), "{written:?}");
            TempFile(path)
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn load_error(file: &TempFile) -> String {
        match Keyring::load(&file.0) {
            Ok(keyring) => panic!("expected an error, got {keyring:?}"),
            Err(e) => e.0,
        }
    }

    #[test]
    fn key_files_are_checked() {
        let key_a = BASE64.encode([1u8; KEY_LEN]);
        let key_b = BASE64.encode([2u8; KEY_LEN]);
        let good = TempFile::new(
            "good",
            &format!("# cluster key\n{key_a}\n\n{key_b}\n"),
            0o600,
        );
        assert_eq!(Keyring::load(&good.0).map(|k| k.len()), Ok(2));
        let owner_only = TempFile::new("readonly", &format!("{key_a}\n"), 0o400);
        assert_eq!(Keyring::load(&owner_only.0).map(|k| k.len()), Ok(1));

        for (name, mode) in [("group", 0o640), ("world", 0o604), ("groupwrite", 0o620)] {
            let file = TempFile::new(name, &format!("{key_a}\n"), mode);
            let error = load_error(&file);
            let hint = format!("chmod 600 {}", file.0.display());
            assert!(error.contains(&hint), "{error}");
            assert!(error.contains(&format!("{mode:03o}")), "{error}");
        }
        let not_base64 = TempFile::new("b64", "not*base64\n", 0o600);
        assert!(load_error(&not_base64).contains("line 1: not valid base64"));
        let short = TempFile::new(
            "short",
            &format!("{key_a}\n{}\n", BASE64.encode([1u8; 16])),
            0o600,
        );
        assert!(load_error(&short).contains("line 2: the key is 16 bytes, it must be exactly 32"));
        let long = TempFile::new("long", &format!("{}\n", BASE64.encode([1u8; 33])), 0o600);
        assert!(load_error(&long).contains("33 bytes"));
        let unpadded = TempFile::new(
            "unpadded",
            &format!("{}\n", key_a.trim_end_matches('=')),
            0o600,
        );
        assert!(load_error(&unpadded).contains("not valid base64"));
        let empty = TempFile::new("empty", "\n# nothing\n", 0o600);
        assert!(load_error(&empty).contains("holds no key"));
        let many = TempFile::new("many", &format!("{key_a}\n").repeat(MAX_KEYS + 1), 0o600);
        assert!(load_error(&many).contains("at most"));
        let missing = std::env::temp_dir().join("p2pmon-seal-no-such-file");
        assert!(Keyring::load(&missing).is_err());
        // A key never appears in an error.
        assert!(!load_error(&short).contains(&key_a));
    }

    #[test]
    fn key_file_rules_on_the_open_file() {
        let facts = KeyFileFacts {
            not_regular: None,
            mode: 0o600,
            owner: 1000,
            len: 45,
        };
        let check = |facts: KeyFileFacts, euid: u32| facts.check("/k", euid).map_err(|e| e.0);
        // The user's own file, or root's; another user's is refused with the fix.
        assert_eq!(check(facts, 1000), Ok(()));
        assert_eq!(check(KeyFileFacts { owner: 0, ..facts }, 1000), Ok(()));
        let error = check(facts, 0).err().unwrap_or_default();
        assert!(error.contains("owned by uid 1000"), "{error}");
        assert!(error.contains("chown 0 /k"), "{error}");
        assert!(
            check(
                KeyFileFacts {
                    owner: 65534,
                    ..facts
                },
                1000
            )
            .is_err()
        );
        // Not a regular file.
        for kind in ["a FIFO", "a directory", "a device"] {
            let error = check(
                KeyFileFacts {
                    not_regular: Some(kind),
                    ..facts
                },
                1000,
            )
            .err()
            .unwrap_or_default();
            assert!(
                error.contains(&format!("not a regular file ({kind})")),
                "{error}"
            );
        }
        // Owner-only modes pass; any group or other bit fails.
        assert_eq!(
            check(
                KeyFileFacts {
                    mode: 0o400,
                    ..facts
                },
                1000
            ),
            Ok(())
        );
        assert!(
            check(
                KeyFileFacts {
                    mode: 0o640,
                    ..facts
                },
                1000
            )
            .is_err()
        );
        assert!(
            check(
                KeyFileFacts {
                    mode: 0o601,
                    ..facts
                },
                1000
            )
            .is_err()
        );
        // The size cap, at its edge.
        let at_cap = KeyFileFacts {
            len: MAX_KEY_FILE,
            ..facts
        };
        assert_eq!(check(at_cap, 1000), Ok(()));
        let error = check(
            KeyFileFacts {
                len: MAX_KEY_FILE + 1,
                ..facts
            },
            1000,
        )
        .err()
        .unwrap_or_default();
        assert!(error.contains("larger than 4096 bytes"), "{error}");
    }

    #[test]
    fn the_largest_useful_key_file_fits_under_the_cap() {
        // MAX_KEYS keys, each with a comment line as long as the key line.
        let line = BASE64.encode([1u8; KEY_LEN]);
        let comment = format!("# {}", "x".repeat(line.len()));
        let text = format!("{comment}\n{line}\n").repeat(MAX_KEYS);
        assert!(text.len() as u64 <= MAX_KEY_FILE, "{}", text.len());
    }

    #[test]
    fn oversized_and_special_key_files_are_refused() {
        let key = BASE64.encode([1u8; KEY_LEN]);
        let big = TempFile::new("big", &format!("{key}\n").repeat(100), 0o600);
        assert!(load_error(&big).contains("larger than 4096 bytes"));
        let dir = std::env::temp_dir();
        let error = match Keyring::load(&dir) {
            Ok(keyring) => panic!("a directory loaded: {keyring:?}"),
            Err(e) => e.0,
        };
        assert!(
            error.contains("not a regular file (a directory)"),
            "{error}"
        );
        let error = match Keyring::load(Path::new("/dev/zero")) {
            Ok(keyring) => panic!("/dev/zero loaded: {keyring:?}"),
            Err(e) => e.0,
        };
        assert!(error.contains("not a regular file (a device)"), "{error}");
    }

    #[test]
    fn keygen_replaces_a_symlink_and_refuses_without_force() {
        let dir = std::env::temp_dir().join(format!("p2pmon-seal-keygen-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        assert!(std::fs::create_dir_all(&dir).is_ok());
        let target = dir.join("target");
        let link = dir.join("key");
        assert!(std::fs::write(&target, "keep\n").is_ok());
        assert!(std::os::unix::fs::symlink(&target, &link).is_ok());
        assert!(
            keygen(Some(&link), false).is_err(),
            "replaced without --force"
        );
        assert!(keygen(Some(&link), true).is_ok());
        assert_eq!(
            std::fs::read_to_string(&target).ok().as_deref(),
            Some("keep\n")
        );
        let meta = std::fs::symlink_metadata(&link);
        assert!(
            meta.as_ref().is_ok_and(|m| m.file_type().is_file()),
            "{meta:?}"
        );
        assert_eq!(Keyring::load(&link).map(|k| k.len()), Ok(1));
        // Nothing else was left in the directory.
        let entries = std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
        assert_eq!(entries, 2);
        let _ = std::fs::remove_dir_all(&dir);
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
        let payload = String::from_utf8_lossy(&frame)
            .trim_end()
            .trim_start_matches("{\"v\":1,\"sealed\":\"")
            .trim_end_matches("\"}")
            .to_string();
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
