//! The keyring: the cluster keys of one key file, the first of which seals
//! while every one is tried to open, so a cluster moves from one key to the
//! next without downtime. Loading a key file makes the checks a user needs (a
//! small regular file, the user's or root's, owner-only mode, base64, 32
//! bytes), all on the one open file (fstat), so the file read is the file
//! checked. [`SharedKeyring`] is how the sender, the listener and SIGHUP share
//! it; SIGHUP replaces it whole. What one key does is [`super::seal`]'s.

use std::fmt;
use std::fs::OpenOptions;
use std::io::Read;
use std::net::SocketAddr;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::limits::{MAX_KEY_FILE, MAX_KEYS};
use crate::proto::seal::{Cipher, KEY_LEN, OpenError, SealError, SealedPayload};

/// A key file that cannot be used; the message says which and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeyError(pub String);

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for KeyError {}

/// The keys of one key file. The first seals; every one is tried to open, so
/// a cluster can move from one key to the next without downtime.
pub struct Keyring {
    ciphers: Vec<Cipher>,
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
pub(crate) fn read(keyring: &SharedKeyring) -> RwLockReadGuard<'_, Keyring> {
    keyring.read().unwrap_or_else(PoisonError::into_inner)
}

impl Keyring {
    /// Builds a keyring from raw keys (first seals).
    pub fn new(keys: &[[u8; KEY_LEN]]) -> Keyring {
        Keyring {
            ciphers: keys.iter().map(Cipher::new).collect(),
            opened: keys.iter().map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Reads a key file: opened once, and every check is made on the open
    /// file (fstat), so the file read is the file checked. A symlink at the
    /// path is followed (config tools and secret mounts manage key files so);
    /// what it points to must pass: a regular file, owned by the user running
    /// the node or by root, not accessible to group or others, at most
    /// [`MAX_KEY_FILE`] bytes (read through a cap, even if it grows).
    pub(crate) fn load(path: &Path) -> Result<Keyring, KeyError> {
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
    pub(crate) fn parse(text: &str, origin: &str) -> Result<Keyring, KeyError> {
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
    pub(crate) fn len(&self) -> usize {
        self.ciphers.len()
    }

    /// Messages opened with each key since this keyring was loaded.
    pub(crate) fn opened_counts(&self) -> Vec<u64> {
        self.opened
            .iter()
            .map(|count| count.load(Ordering::Relaxed))
            .collect()
    }

    /// Seals `line`, one v1 message as [`wire::encode`] writes it, with the
    /// first key, sent from `from` (the connection's local IP and our
    /// listening port) to the peer dialed at `to`. Returns the frame, newline
    /// included.
    ///
    /// [`wire::encode`]: crate::proto::wire::encode
    pub fn seal(
        &self,
        line: &[u8],
        from: SocketAddr,
        to: SocketAddr,
    ) -> Result<Vec<u8>, SealError> {
        let cipher = self.ciphers.first().ok_or(SealError::NoKey)?;
        cipher.seal(line, from, to)
    }

    /// Opens the base64 payload of a sealed frame with the first key that
    /// can: the plaintext, and the index of that key (counted in
    /// [`Keyring::opened_counts`]).
    pub(crate) fn open(&self, sealed: &str) -> Result<(Vec<u8>, usize), OpenError> {
        let payload = SealedPayload::decode(sealed)?;
        for (index, cipher) in self.ciphers.iter().enumerate() {
            if let Some(plaintext) = cipher.open(&payload) {
                if let Some(count) = self.opened.get(index) {
                    count.fetch_add(1, Ordering::Relaxed);
                }
                return Ok((plaintext, index));
            }
        }
        Err(OpenError::BadSeal(
            "no key opens it (another cluster's key, or altered on the way)",
        ))
    }

    /// One line for the log: how many keys, and which opened what lately.
    pub(crate) fn usage(&self) -> String {
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

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::proto::testing::*;

    #[test]
    fn rotation_two_keys_the_first_seals_both_open() {
        let old = ring(&[1]);
        let new = ring(&[2]);
        let both = ring(&[2, 1]);
        let line = status(T0, 0, T0);
        let by_old = old.seal(&line, addr(FROM), addr(HERE)).unwrap_or_default();
        let by_new = new.seal(&line, addr(FROM), addr(HERE)).unwrap_or_default();
        let by_both = both.seal(&line, addr(FROM), addr(HERE)).unwrap_or_default();
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
}
