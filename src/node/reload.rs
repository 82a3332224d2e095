//! SIGHUP: re-read the config file and the key file while the node runs, so
//! an operator (or `systemctl reload p2pmon`) can add or remove peers and
//! rotate keys without a restart that other nodes would see as a leave.
//!
//! The file is merged with the original command line exactly as at start
//! (flags still win), then compared with the settings in use
//! ([`Config::diff`], pure, in `crate::config`). Only the peer list changes
//! at run time, as a diff: added peers start getting statuses, removed ones
//! get a leave and nothing more, and the connections to every other peer
//! are left alone. Every other setting that differs is named as needing a
//! restart. A file that does not load or validate changes nothing: the node
//! runs on with what it has and logs why. This file is the shell around the
//! diff: the signal's work on the running node (links, leaves, keys) and
//! the one summary line.

use std::path::Path;

use crate::cli::RunArgs;
use crate::config::{Config, ConfigChange, FileConfig, PeerAddr};
use crate::node::Node;

/// What a reload merges the file with: the command line the node started
/// with, and the name it defaulted to.
#[derive(Debug, Clone)]
pub struct Source {
    pub args: RunArgs,
    pub default_name: String,
}

/// How the key file reload went, for the summary line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyReload {
    /// No key file: nothing to reload.
    NoKey,
    /// Reloaded; this many keys now.
    Loaded(usize),
    /// The file failed its checks; the keys in use are kept (logged apart).
    Failed,
}

/// The one line that tells what a reload changed, e.g.
/// `reload: peers added: 10.0.0.3:5000; removed: none; key reloaded: 2 keys`.
/// `peers` is `None` when the peer list was not re-read (no file, a bad file).
pub fn summary(peers: Option<&ConfigChange>, key: &KeyReload) -> String {
    let list = |peers: &[PeerAddr]| {
        if peers.is_empty() {
            "none".to_string()
        } else {
            peers
                .iter()
                .map(PeerAddr::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    let peers = match peers {
        None => "peers unchanged".to_string(),
        Some(change) if change.added.is_empty() && change.removed.is_empty() => {
            "peers unchanged".to_string()
        }
        Some(change) => format!(
            "peers added: {}; removed: {}",
            list(&change.added),
            list(&change.removed)
        ),
    };
    let key = match key {
        KeyReload::NoKey => "no key file".to_string(),
        KeyReload::Loaded(1) => "key reloaded: 1 key".to_string(),
        KeyReload::Loaded(n) => format!("key reloaded: {n} keys"),
        KeyReload::Failed => "key not reloaded (see above)".to_string(),
    };
    format!("reload: {peers}; {key}")
}

/// Re-reads the settings a node can take at run time (SIGHUP) and applies
/// them. Never fails: whatever goes wrong is logged and the node runs on.
pub fn reload(node: &mut Node, source: Option<&Source>) {
    let change = source.and_then(|source| {
        let path = source.args.config.as_ref()?;
        let new = load(path, source)?;
        let change = node.config().diff(&new);
        if !change.needs_restart.is_empty() {
            log::warn!(
                "config {}: {} changed but need(s) a restart; still using the old value(s)",
                path.display(),
                change.needs_restart.join(", ")
            );
        }
        if node.config().learn_peers && !change.removed.is_empty() {
            log::warn!(
                "membership is on: removed peers are no longer configured but stay members \
                 until they leave or are forgotten (--forget-after); stop a node to take it out"
            );
        }
        node.change_peers(&new.peers, &change);
        Some(change)
    });
    if source.is_some_and(|source| source.args.config.is_none()) {
        log::info!("no --config file: SIGHUP reloads the key file only");
    }
    let key = node.reload_key();
    log::warn!("{}", summary(change.as_ref(), &key));
}

/// Reads and merges the file as at start; `None` (logged) when it fails.
fn load(path: &Path, source: &Source) -> Option<Config> {
    let merged = FileConfig::load(path).and_then(|file| {
        let file_has_peers = file.has_peers();
        Config::merge(&source.args, file, &source.default_name)
            .map(|config| (config, file_has_peers))
    });
    match merged {
        Ok((config, file_has_peers)) => {
            if file_has_peers && !source.args.peers.is_empty() {
                log::warn!(
                    "config {}: --peers on the command line wins; the file's peer list is not applied",
                    path.display()
                );
            }
            Some(config)
        }
        Err(e) => {
            log::error!("cannot reload the config: {e}; keeping the settings in use");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_peer;

    fn peers(texts: &[&str]) -> Vec<PeerAddr> {
        texts
            .iter()
            .map(|t| parse_peer(t, 5000).unwrap_or_else(|e| panic!("{e}")))
            .collect()
    }

    #[test]
    fn the_summary_says_exactly_what_changed() {
        let change = ConfigChange {
            added: peers(&["10.0.0.3"]),
            removed: peers(&["10.0.0.1", "[::1]:7000"]),
            needs_restart: vec![],
        };
        assert_eq!(
            summary(Some(&change), &KeyReload::Loaded(2)),
            "reload: peers added: 10.0.0.3:5000; removed: 10.0.0.1:5000, [::1]:7000; key reloaded: 2 keys"
        );
        let added_only = ConfigChange {
            removed: vec![],
            ..change
        };
        assert_eq!(
            summary(Some(&added_only), &KeyReload::NoKey),
            "reload: peers added: 10.0.0.3:5000; removed: none; no key file"
        );
        assert_eq!(
            summary(None, &KeyReload::Loaded(1)),
            "reload: peers unchanged; key reloaded: 1 key"
        );
        assert_eq!(
            summary(Some(&ConfigChange::default()), &KeyReload::Failed),
            "reload: peers unchanged; key not reloaded (see above)"
        );
    }
}
