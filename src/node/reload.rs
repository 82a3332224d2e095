//! SIGHUP: re-read the config file and the key file while the node runs, so
//! an operator (or `systemctl reload p2pmon`) can add or remove peers and
//! rotate keys without a restart that other nodes would see as a leave.
//!
//! The file is merged with the original command line exactly as at start
//! (flags still win), then compared with the settings in use. Only the peer
//! list changes at run time, as a diff: added peers start getting statuses,
//! removed ones get a leave and nothing more, and the connections to every
//! other peer are left alone. Every other setting that differs is named as
//! needing a restart. A file that does not load or validate changes nothing:
//! the node runs on with what it has and logs why.

use std::path::Path;

use crate::cli::RunArgs;
use crate::config::{Config, FileConfig, PeerAddr};
use crate::node::Node;

/// What a reload merges the file with: the command line the node started
/// with, and the name it defaulted to.
#[derive(Debug, Clone)]
pub struct Source {
    pub args: RunArgs,
    pub default_name: String,
}

/// How the settings in a freshly read file differ from those in use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigChange {
    /// Peers to start sending to, in the file's order.
    pub added: Vec<PeerAddr>,
    /// Peers to stop sending to, in the order they were configured.
    pub removed: Vec<PeerAddr>,
    /// Settings (by config key) that differ but only apply after a restart.
    pub needs_restart: Vec<&'static str>,
}

/// Compares the settings in use with freshly merged ones. Pure, so the
/// rules are tested without a node.
pub fn diff(current: &Config, new: &Config) -> ConfigChange {
    let added = new
        .peers
        .iter()
        .filter(|peer| !current.peers.contains(peer))
        .cloned()
        .collect();
    let removed = current
        .peers
        .iter()
        .filter(|peer| !new.peers.contains(peer))
        .cloned()
        .collect();
    // Destructured without `..`: a new setting does not compile until it is
    // classified here.
    let Config {
        peers: _,
        port,
        listen,
        interval,
        offline_after,
        name,
        format,
        changes_only,
        timestamps,
        key_file,
        allow_plaintext,
        flap,
        max_connections,
        http,
        on_event,
        learn_peers,
        forget_after,
    } = current;
    let differs = [
        ("port", *port != new.port),
        ("listen", *listen != new.listen),
        ("http", *http != new.http),
        ("interval", *interval != new.interval),
        ("offline_after", *offline_after != new.offline_after),
        ("name", *name != new.name),
        ("format", *format != new.format),
        ("changes_only", *changes_only != new.changes_only),
        ("timestamps", *timestamps != new.timestamps),
        ("key_file", *key_file != new.key_file),
        ("allow_plaintext", *allow_plaintext != new.allow_plaintext),
        ("flap_changes", flap.changes != new.flap.changes),
        ("flap_window", flap.window != new.flap.window),
        ("max_connections", *max_connections != new.max_connections),
        ("on_event", *on_event != new.on_event),
        ("learn_peers", *learn_peers != new.learn_peers),
        ("forget_after", *forget_after != new.forget_after),
    ];
    ConfigChange {
        added,
        removed,
        needs_restart: differs
            .into_iter()
            .filter(|(_, differs)| *differs)
            .map(|(key, _)| key)
            .collect(),
    }
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
        let change = diff(node.config(), &new);
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

    fn config(peers: &[&str]) -> Config {
        let args = RunArgs {
            peers: peers.iter().map(|p| p.to_string()).collect(),
            ..RunArgs::default()
        };
        Config::merge(&args, FileConfig::default(), "host").unwrap_or_else(|e| panic!("{e}"))
    }

    fn peers(texts: &[&str]) -> Vec<PeerAddr> {
        texts
            .iter()
            .map(|t| parse_peer(t, 5000).unwrap_or_else(|e| panic!("{e}")))
            .collect()
    }

    #[test]
    fn peers_are_a_diff_in_order() {
        let current = config(&["10.0.0.1", "10.0.0.2", "10.0.0.3"]);
        let new = config(&["10.0.0.4", "10.0.0.2", "10.0.0.1:6000"]);
        let change = diff(&current, &new);
        assert_eq!(change.added, peers(&["10.0.0.4", "10.0.0.1:6000"]));
        assert_eq!(change.removed, peers(&["10.0.0.1", "10.0.0.3"]));
        assert!(change.needs_restart.is_empty());
        // Same list, other order: nothing to do.
        let reordered = config(&["10.0.0.3", "10.0.0.1", "10.0.0.2"]);
        assert_eq!(diff(&current, &reordered), ConfigChange::default());
    }

    #[test]
    fn settings_fixed_at_start_need_a_restart() {
        let current = config(&["10.0.0.1"]);
        let mut new = current.clone();
        new.port = 5001;
        new.http = crate::config::HttpSetting::Off;
        new.listen = Some(std::net::IpAddr::from([127, 0, 0, 2]));
        new.peers = vec![];
        let change = diff(&current, &new);
        assert_eq!(change.needs_restart, ["port", "listen", "http"]);
        assert_eq!(change.removed, peers(&["10.0.0.1"]));
    }

    #[test]
    fn command_line_peers_survive_a_file_with_others() {
        let args = RunArgs {
            peers: vec!["10.0.0.9".into()],
            ..RunArgs::default()
        };
        let start =
            Config::merge(&args, FileConfig::default(), "h").unwrap_or_else(|e| panic!("{e}"));
        let file =
            FileConfig::parse("peers = [\"10.0.0.1\"]", "test").unwrap_or_else(|e| panic!("{e}"));
        assert!(file.has_peers());
        let new = Config::merge(&args, file, "h").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(diff(&start, &new), ConfigChange::default());
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
