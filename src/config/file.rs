//! The config file as written: [`FileConfig`], the TOML shape of the same
//! settings as the `run` flags, each key the flag's long name with
//! underscores (`offline_after` is `--offline-after`). Every key is optional
//! (a missing one falls back to the default at the merge) and an unknown key
//! is an error naming its line, so a typo never goes unnoticed. Values are
//! kept as written (a duration as a number of seconds or a text) for the
//! merge to parse with the flags' own rules and messages.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{ConfigError, error};
use crate::report::output::Format;

/// A duration in the config file: a number of seconds or a string like "500ms".
#[derive(Debug, Deserialize, Clone)]
#[serde(untagged)]
pub(super) enum FileDuration {
    Seconds(u64),
    Text(String),
}

impl FileDuration {
    pub(super) fn to_text(&self) -> String {
        match self {
            FileDuration::Seconds(n) => n.to_string(),
            FileDuration::Text(text) => text.clone(),
        }
    }
}

/// The config file as written; every key optional, unknown keys rejected.
/// The fields are the keys, read only by the merge.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub(super) peers: Option<Vec<String>>,
    pub(super) port: Option<u16>,
    pub(super) listen: Option<String>,
    pub(super) interval: Option<FileDuration>,
    pub(super) offline_after: Option<FileDuration>,
    pub(super) name: Option<String>,
    pub(super) format: Option<Format>,
    pub(super) changes_only: Option<bool>,
    pub(super) timestamps: Option<bool>,
    pub(super) key_file: Option<PathBuf>,
    pub(super) allow_plaintext: Option<bool>,
    pub(super) learn_peers: Option<bool>,
    pub(super) forget_after: Option<FileDuration>,
    pub(super) flap_changes: Option<usize>,
    pub(super) flap_window: Option<FileDuration>,
    pub(super) max_connections: Option<usize>,
    pub(super) http: Option<String>,
    pub(super) on_event: Option<Vec<String>>,
}

impl FileConfig {
    /// Parses the text of a config file; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<FileConfig, ConfigError> {
        toml::from_str(text).map_err(|e| {
            let message = e.message().trim_end().to_string();
            let line = e
                .span()
                .map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1);
            match line {
                Some(line) => error(format!("{origin}, line {line}: {message}")),
                None => error(format!("{origin}: {message}")),
            }
        })
    }

    /// Whether the file lists peers (a reload says when --peers overrides them).
    pub fn has_peers(&self) -> bool {
        self.peers.is_some()
    }

    /// Reads and parses a config file.
    pub fn load(path: &Path) -> Result<FileConfig, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| error(format!("cannot read config {}: {e}", path.display())))?;
        FileConfig::parse(&text, &format!("config {}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::RunArgs;
    use crate::config::Config;

    #[test]
    fn unknown_keys_are_named() {
        let err = FileConfig::parse("port = 5000\nintervall = 5\n", "test");
        let message = err.err().map(|e| e.0).unwrap_or_default();
        assert!(message.contains("intervall"), "{message}");
        assert!(message.contains("line 2"), "{message}");
    }

    #[test]
    fn wrong_types_are_errors() {
        for text in [
            "port = \"x\"",
            "port = 70000",
            "peers = \"10.0.0.1\"",
            "format = \"xml\"",
            "this is not toml",
        ] {
            assert!(FileConfig::parse(text, "test").is_err(), "{text}");
        }
    }

    #[test]
    fn example_config_loads() {
        let text = include_str!("../../config.example.toml");
        let file = FileConfig::parse(text, "config.example.toml").unwrap_or_else(|e| panic!("{e}"));
        assert!(Config::merge(&RunArgs::default(), file, "x").is_ok());
    }
}
