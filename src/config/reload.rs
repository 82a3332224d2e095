//! What a re-read config file changes (SIGHUP): [`Config::diff`] compares
//! the settings in use with freshly merged ones. Only the peer list can
//! change at run time, as a diff (added peers, removed peers, every other
//! connection left alone); every other setting that differs is named, by
//! its config key, as needing a restart. Pure, so the rules are tested
//! without a node; `crate::node::reload` reads the file on the signal and
//! applies the change to the running node (links, leaves, keys).

use super::{Config, PeerAddr};

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

impl Config {
    /// How `new` differs from these settings, the ones in use.
    pub fn diff(&self, new: &Config) -> ConfigChange {
        let added = new
            .peers
            .iter()
            .filter(|peer| !self.peers.contains(peer))
            .cloned()
            .collect();
        let removed = self
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
            details,
            key_file,
            allow_plaintext,
            flap,
            max_connections,
            http,
            on_event,
            hooks_on,
            learn_peers,
            forget_after,
            alerts,
        } = self;
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
            ("details", *details != new.details),
            ("key_file", *key_file != new.key_file),
            ("allow_plaintext", *allow_plaintext != new.allow_plaintext),
            ("flap_changes", flap.changes != new.flap.changes),
            ("flap_window", flap.window != new.flap.window),
            ("max_connections", *max_connections != new.max_connections),
            ("on_event", *on_event != new.on_event),
            ("hooks_on", *hooks_on != new.hooks_on),
            ("learn_peers", *learn_peers != new.learn_peers),
            ("forget_after", *forget_after != new.forget_after),
            ("alerts", *alerts != new.alerts),
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::RunArgs;
    use crate::config::{FileConfig, HttpSetting, parse_peer};
    use crate::peers::FlapRule;
    use crate::report::output::Format;
    use std::time::Duration;

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
        let change = current.diff(&new);
        assert_eq!(change.added, peers(&["10.0.0.4", "10.0.0.1:6000"]));
        assert_eq!(change.removed, peers(&["10.0.0.1", "10.0.0.3"]));
        assert!(change.needs_restart.is_empty());
        // Same list, other order: nothing to do.
        let reordered = config(&["10.0.0.3", "10.0.0.1", "10.0.0.2"]);
        assert_eq!(current.diff(&reordered), ConfigChange::default());
    }

    #[test]
    fn settings_fixed_at_start_need_a_restart() {
        let current = config(&["10.0.0.1"]);
        let mut new = current.clone();
        new.port = 5001;
        new.http = HttpSetting::Off;
        new.listen = Some(std::net::IpAddr::from([127, 0, 0, 2]));
        new.peers = vec![];
        let change = current.diff(&new);
        assert_eq!(change.needs_restart, ["port", "listen", "http"]);
        assert_eq!(change.removed, peers(&["10.0.0.1"]));
    }

    #[test]
    fn every_setting_but_peers_is_named_by_its_config_key() {
        let current = config(&[]);
        let new = Config {
            peers: vec![],
            port: 5001,
            listen: Some(std::net::IpAddr::from([127, 0, 0, 2])),
            interval: Duration::from_secs(1),
            offline_after: Duration::from_secs(4),
            name: "other".into(),
            format: Format::Json,
            changes_only: true,
            timestamps: true,
            details: true,
            key_file: Some("/etc/p2pmon/key".into()),
            allow_plaintext: true,
            flap: FlapRule {
                changes: 9,
                window: Duration::from_secs(9),
            },
            max_connections: 9,
            http: HttpSetting::Off,
            on_event: vec!["true".into()],
            hooks_on: crate::report::duty::HooksOn::Every,
            learn_peers: true,
            forget_after: None,
            alerts: vec![
                crate::peers::AlertRule::parse("cpu > 90", crate::config::parse_duration)
                    .unwrap_or_else(|e| panic!("{e}")),
            ],
        };
        let mut named = current.diff(&new).needs_restart;
        named.sort_unstable();
        let mut keys: Vec<&str> = crate::config::file::keys()
            .iter()
            .copied()
            .filter(|key| *key != "peers")
            .collect();
        keys.sort_unstable();
        assert_eq!(named, keys, "the restart warning names config keys");
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
        assert_eq!(start.diff(&new), ConfigChange::default());
    }
}
