//! `p2pmon keygen`: a new cluster key, printed or written to a key file. The
//! key is the protocol's ([`crate::proto::seal`] makes it, base64 as a key
//! file holds it); this file does the writing, so a key file is never
//! half-written, never loose (mode 0600 from the open on) and never written
//! through a symlink: a new private file beside the target, synced, then
//! moved over it in one step.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

// The OS random source the cipher uses, here for the temporary file's name.
use chacha20poly1305::aead::OsRng;
use chacha20poly1305::aead::rand_core::RngCore;

use crate::Error;
use crate::cli::KeygenArgs;
use crate::proto::seal::new_key;

/// Attempts at a fresh temporary name beside the key file before giving up
/// (each name is random; a clash means someone is creating files there).
const TEMP_ATTEMPTS: usize = 8;

/// Runs `p2pmon keygen`.
pub fn run(args: &KeygenArgs) -> Result<(), Error> {
    keygen(args.out.as_deref(), args.force)
}

/// A new key to `out` or to stdout. The key is written to a new private file
/// in the same directory (created with O_EXCL, mode 0600 from the open on),
/// synced, then moved to `out` in one step: renamed over it with `force` (a
/// symlink there is replaced, never written through), or hard-linked without
/// it, which fails if anything, even a dangling symlink, is at `out`. Never a
/// half-written or loose key file.
fn keygen(out: Option<&Path>, force: bool) -> Result<(), Error> {
    let key = new_key().map_err(|e| Error::Runtime(format!("cannot make a key: {e}")))?;
    let Some(path) = out else {
        println!("{key}");
        return Ok(());
    };
    let shown = path.display();
    let exists = || {
        Error::Runtime(format!(
            "{shown} already exists; not replacing a key without --force"
        ))
    };
    let cannot = |e: std::io::Error| Error::Runtime(format!("cannot write {shown}: {e}"));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::Keyring;

    /// A directory of its own in the temp directory, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            let dir =
                std::env::temp_dir().join(format!("p2pmon-keygen-{}-{name}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            assert!(std::fs::create_dir_all(&dir).is_ok());
            TempDir(dir)
        }

        fn entries(&self) -> usize {
            std::fs::read_dir(&self.0).map(|d| d.count()).unwrap_or(0)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn keygen_replaces_a_symlink_and_refuses_without_force() {
        let dir = TempDir::new("link");
        let target = dir.0.join("target");
        let link = dir.0.join("key");
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
        assert_eq!(dir.entries(), 2);
    }

    #[test]
    fn a_new_key_file_is_private_and_never_replaced_without_force() {
        let dir = TempDir::new("new");
        let path = dir.0.join("cluster.key");
        assert!(keygen(Some(&path), false).is_ok());
        let mode = std::fs::metadata(&path).map(|m| m.permissions().mode() & 0o777);
        assert_eq!(mode.ok(), Some(0o600));
        let first = std::fs::read_to_string(&path).unwrap_or_default();
        assert_eq!(Keyring::load(&path).map(|k| k.len()), Ok(1));
        let refused = keygen(Some(&path), false).err().map(|e| e.to_string());
        let expected = format!(
            "{} already exists; not replacing a key without --force",
            path.display()
        );
        assert_eq!(refused, Some(expected));
        assert_eq!(std::fs::read_to_string(&path).ok(), Some(first.clone()));
        assert!(keygen(Some(&path), true).is_ok());
        assert_ne!(std::fs::read_to_string(&path).ok(), Some(first));
        // No temporary file left behind, whichever way it went.
        assert_eq!(dir.entries(), 1);
    }
}
