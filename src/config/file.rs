//! The config file as written: [`FileConfig`], the TOML shape of the same
//! settings as the `run` flags, each key the flag's long name with
//! underscores (`offline_after` is `--offline-after`). Every key is optional
//! (a missing one falls back to the default at the merge) and an unknown key
//! is an error naming its line, so a typo never goes unnoticed. Values are
//! kept as written (a duration as a number of seconds or a text) for the
//! merge to parse with the flags' own rules and messages.
//!
//! The tests below hold the keys and the flags together: every key has its
//! flag, every flag but a few listed ones has its key, and
//! config.example.toml shows every key.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{ConfigError, error};
use crate::report::duty::HooksOn;
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
    pub(super) details: Option<bool>,
    pub(super) key_file: Option<PathBuf>,
    pub(super) allow_plaintext: Option<bool>,
    pub(super) learn_peers: Option<bool>,
    pub(super) forget_after: Option<FileDuration>,
    pub(super) flap_changes: Option<usize>,
    pub(super) flap_window: Option<FileDuration>,
    pub(super) max_connections: Option<usize>,
    pub(super) http: Option<String>,
    pub(super) on_event: Option<Vec<String>>,
    pub(super) hooks_on: Option<HooksOn>,
    pub(super) alerts: Option<Vec<String>>,
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

/// The keys serde accepts, read from the derive itself rather than from a
/// copy kept by hand: serde hands a struct's field names to
/// `deserialize_struct`, and this deserializer only records them.
#[cfg(test)]
pub(super) fn keys() -> &'static [&'static str] {
    use serde::de::{self, Deserializer, Visitor};

    struct Keys(&'static [&'static str]);

    impl<'de> Deserializer<'de> for &mut Keys {
        type Error = de::value::Error;

        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("FileConfig is a struct"))
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _visitor: V,
        ) -> Result<V::Value, Self::Error> {
            self.0 = fields;
            Err(de::Error::custom("keys recorded"))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map enum identifier ignored_any
        }
    }

    let mut keys = Keys(&[]);
    // The error is the point: deserializing stops once the keys are recorded.
    let _ = FileConfig::deserialize(&mut keys);
    keys.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, RunArgs};
    use crate::config::Config;
    use clap::CommandFactory;

    /// Flags of `run` that are no setting of the file, on purpose: which
    /// file to read, and how much to log (set before the file is read, so
    /// the errors about the file itself obey it).
    const FLAGS_WITHOUT_A_KEY: &[&str] = &["config", "verbose", "quiet"];

    /// Flags whose key is not their long name: a repeatable flag named for
    /// one value whose key holds the list (`--alert R` ... is `alerts = [R]`,
    /// DESIGN.md's spelling).
    const KEY_OF_FLAG: &[(&str, &str)] = &[("alert", "alerts")];

    /// The long names of `run`'s flags, as the key each would be.
    fn flags_as_keys() -> Vec<String> {
        let cli = Cli::command();
        let Some(run) = cli.find_subcommand("run") else {
            panic!("no run subcommand");
        };
        run.get_arguments()
            .map(|arg| match arg.get_long() {
                Some(long) => {
                    let key = long.replace('-', "_");
                    KEY_OF_FLAG
                        .iter()
                        .find(|(flag, _)| *flag == key)
                        .map_or(key, |(_, key)| (*key).to_string())
                }
                None => panic!("run's argument {} has no long name", arg.get_id()),
            })
            .collect()
    }

    #[test]
    fn the_keys_are_read_from_serde() {
        let keys = keys();
        assert!(
            keys.contains(&"peers") && keys.contains(&"on_event"),
            "{keys:?}"
        );
        let stranger = FileConfig::parse("not_a_key = 0", "test");
        assert!(
            matches!(&stranger, Err(ConfigError(message)) if message.contains("unknown field")),
            "{stranger:?}"
        );
        // Every key listed is one the parser takes.
        for key in keys {
            let text = format!("{key} = 0");
            let Err(ConfigError(message)) = FileConfig::parse(&text, "test") else {
                continue;
            };
            assert!(!message.contains("unknown field"), "{key}: {message}");
        }
    }

    #[test]
    fn every_key_has_its_flag_and_every_flag_its_key() {
        let flags = flags_as_keys();
        let keys = keys();
        for key in keys {
            assert!(
                flags.iter().any(|flag| flag == key),
                "config key {key} has no flag --{}",
                key.replace('_', "-")
            );
        }
        for flag in &flags {
            let listed = FLAGS_WITHOUT_A_KEY.contains(&flag.as_str());
            let is_key = keys.contains(&flag.as_str());
            assert!(
                listed != is_key,
                "--{}: {}",
                flag.replace('_', "-"),
                if listed {
                    "listed as having no key, but it is one"
                } else {
                    "no config key of that name (add one, or list it as an exception)"
                }
            );
        }
        for flag in FLAGS_WITHOUT_A_KEY {
            assert!(flags.iter().any(|f| f == flag), "no flag --{flag} any more");
        }
    }

    #[test]
    fn the_example_config_shows_every_key_and_only_keys() {
        let example = include_str!("../../config.example.toml");
        // A key's line, set or commented out: `port = 5000`, `# name = "web-1"`.
        let shown: Vec<&str> = example
            .lines()
            .map(|line| line.strip_prefix("# ").unwrap_or(line))
            .filter_map(|line| line.split_once(" = ").map(|(key, _)| key))
            .filter(|key| key.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
            .collect();
        for key in keys() {
            assert!(
                shown.contains(key),
                "config.example.toml does not show {key}"
            );
        }
        for key in &shown {
            assert!(
                keys().contains(key),
                "config.example.toml shows {key}, no key"
            );
        }
    }

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
