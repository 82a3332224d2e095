//! A node's settings: the TOML file, merged with the command line (flags win,
//! then the file, then the defaults), validated once into a [`Config`] that
//! the rest of the program trusts. Every error here is the user's to fix and
//! maps to exit code 2 with one line naming the flag or key at fault.
//!
//! One file per step, in the order a setting travels:
//! - `crate::cli` spells each setting as a flag (`RunArgs`), with its help
//!   text; the man page and completions are rendered from those definitions;
//! - `file.rs`: [`FileConfig`], the TOML shape: the same settings as keys
//!   (a flag's long name with underscores), every one optional, unknown keys
//!   an error naming their line; its tests check that every key has its flag
//!   and every flag but --config, -v and -q its key, and that
//!   config.example.toml shows every key;
//! - `parse.rs`: the values both spell the same way: peer, listen and HTTP
//!   addresses ([`PeerAddr`]), and durations with their caps;
//! - `merge.rs`: [`Config::merge`], flags over the file over the defaults,
//!   and the checks across settings (offline_after longer than interval, a
//!   key for allow_plaintext, ...);
//! - `reload.rs`: [`Config::diff`], what a re-read file changes (SIGHUP): the
//!   peers added and removed, and the settings that need a restart.
//!   `crate::node::reload` applies it to the running node.

mod file;
mod merge;
mod parse;
mod reload;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use crate::peers::{AlertRule, FlapRule};
use crate::report::duty::HooksOn;
use crate::report::output::Format;

pub use file::FileConfig;
#[cfg(test)]
pub use parse::parse_peer;
pub use parse::{Host, PeerAddr, parse_duration, parse_duration_within};
pub use reload::ConfigChange;

/// A bad flag, key or value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

impl From<ConfigError> for crate::Error {
    fn from(error: ConfigError) -> crate::Error {
        crate::Error::Usage(error.0)
    }
}

fn error(message: impl Into<String>) -> ConfigError {
    ConfigError(message.into())
}

/// The validated settings of one node.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub peers: Vec<PeerAddr>,
    pub port: u16,
    /// `None`: all IPv4 addresses and, where the host has it, all IPv6 ones.
    pub listen: Option<IpAddr>,
    pub interval: Duration,
    pub offline_after: Duration,
    pub name: String,
    pub format: Format,
    pub changes_only: bool,
    pub timestamps: bool,
    /// Text statuses go on with the host's health (--details).
    pub details: bool,
    /// The cluster key file: `None` sends and accepts plaintext.
    pub key_file: Option<PathBuf>,
    /// With a key, still accept plaintext peers (logged).
    pub allow_plaintext: bool,
    pub flap: FlapRule,
    pub max_connections: usize,
    pub http: HttpSetting,
    pub on_event: Vec<String>,
    /// Which nodes run the hooks for events about peers.
    pub hooks_on: HooksOn,
    /// Learn members from peers' statuses (on with a key; opt-in without).
    pub learn_peers: bool,
    /// Learned members offline this long are forgotten (`None`: never).
    pub forget_after: Option<Duration>,
    /// The `--alert` rules, in the order given.
    pub alerts: Vec<AlertRule>,
}

/// Where the status endpoint listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpSetting {
    Off,
    /// The default address: if busy, warn and run on.
    Default(SocketAddr),
    /// Chosen by the user: if busy, exit 1.
    Explicit(SocketAddr),
}
