//! A node's settings: the TOML file, merged with the command line (flags win,
//! then the file, then the defaults), validated once into a [`Config`] that
//! the rest of the program trusts. Every error here is the user's to fix and
//! maps to exit code 2 with one line naming the flag or key at fault.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::cli::RunArgs;
use crate::limits::{
    DEFAULT_FLAP_CHANGES, DEFAULT_FLAP_WINDOW, DEFAULT_FORGET_AFTER, DEFAULT_HTTP,
    DEFAULT_INTERVAL, DEFAULT_PORT, MAX_CONNECTIONS, MAX_DURATION, MAX_FLAP_WINDOW,
    MAX_HOOK_COMMANDS, MAX_NAME_LEN, MAX_OFFLINE_AFTER, MAX_PEER_INTERVAL,
};
use crate::names;
use crate::peers::{FlapRule, offline_threshold};
use crate::report::output::Format;

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

/// A peer as configured: a literal IP or a host name resolved on every
/// (re)connect, and a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerAddr {
    pub host: Host,
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Ip(IpAddr),
    Name(String),
}

impl fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]:{}", self.port),
            Host::Ip(ip) => write!(f, "{ip}:{}", self.port),
            Host::Name(name) => write!(f, "{name}:{}", self.port),
        }
    }
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
    /// The cluster key file: `None` sends and accepts plaintext.
    pub key_file: Option<PathBuf>,
    /// With a key, still accept plaintext peers (logged).
    pub allow_plaintext: bool,
    pub flap: FlapRule,
    pub max_connections: usize,
    pub http: HttpSetting,
    pub on_event: Vec<String>,
    /// Learn members from peers' statuses (on with a key; opt-in without).
    pub learn_peers: bool,
    /// Learned members offline this long are forgotten (`None`: never).
    pub forget_after: Option<Duration>,
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

/// Parses `--http`: `off`, `IP:PORT`, `[IPv6]:PORT`, or `:PORT` (loopback).
pub fn parse_http(text: &str) -> Result<HttpSetting, String> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("off") {
        return Ok(HttpSetting::Off);
    }
    let with_host = if text.starts_with(':') {
        format!("127.0.0.1{text}")
    } else {
        text.to_string()
    };
    with_host
        .parse::<SocketAddr>()
        .map(HttpSetting::Explicit)
        .map_err(|_| format!("invalid value {text:?} for --http: expected IP:PORT or off"))
}

/// A duration in the config file: a number of seconds or a string like "500ms".
#[derive(Debug, Deserialize, Clone)]
#[serde(untagged)]
enum FileDuration {
    Seconds(u64),
    Text(String),
}

impl FileDuration {
    fn to_text(&self) -> String {
        match self {
            FileDuration::Seconds(n) => n.to_string(),
            FileDuration::Text(text) => text.clone(),
        }
    }
}

/// The config file as written; every key optional, unknown keys rejected.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    peers: Option<Vec<String>>,
    port: Option<u16>,
    listen: Option<String>,
    interval: Option<FileDuration>,
    offline_after: Option<FileDuration>,
    name: Option<String>,
    format: Option<Format>,
    changes_only: Option<bool>,
    timestamps: Option<bool>,
    key_file: Option<PathBuf>,
    allow_plaintext: Option<bool>,
    learn_peers: Option<bool>,
    forget_after: Option<FileDuration>,
    flap_changes: Option<usize>,
    flap_window: Option<FileDuration>,
    max_connections: Option<usize>,
    http: Option<String>,
    on_event: Option<Vec<String>>,
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

/// Parses a duration: a bare number of seconds (`5`), or a number with a unit
/// (`500ms`, `5s`, `1.5s`, `2m`, `1h`). Zero and negative values are errors,
/// and so is anything longer than [`MAX_DURATION`].
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    parse_duration_within(text, MAX_DURATION)
}

/// [`parse_duration`] for a setting with a cap of its own (at most
/// [`MAX_DURATION`]): a longer value is an error naming `limit`.
pub fn parse_duration_within(text: &str, limit: Duration) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("invalid duration {text:?} (expected e.g. 5, 5s, 500ms)"))?;
    let seconds = match unit.trim() {
        "" | "s" | "sec" | "secs" => value,
        "ms" => value / 1000.0,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        other => {
            return Err(format!(
                "invalid duration {text:?}: unknown unit {other:?} (use ms, s, m or h)"
            ));
        }
    };
    let duration =
        Duration::try_from_secs_f64(seconds).map_err(|_| format!("invalid duration {text:?}"))?;
    if duration < Duration::from_millis(1) {
        return Err(format!("duration {text:?} must be at least 1ms"));
    }
    if duration > limit.min(MAX_DURATION) {
        return Err(format!(
            "{text:?} is longer than the limit, {}",
            show(limit.min(MAX_DURATION))
        ));
    }
    Ok(duration)
}

/// Parses `HOST`, `HOST:PORT`, `IP`, `IP:PORT`, `[IPv6]` or `[IPv6]:PORT`.
pub fn parse_peer(text: &str, default_port: u16) -> Result<PeerAddr, String> {
    let text = text.trim();
    let bad = |why: &str| format!("bad peer address {text:?}: {why}");
    if text.is_empty() {
        return Err(bad("empty"));
    }
    if let Ok(addr) = text.parse::<SocketAddr>() {
        if addr.port() == 0 {
            return Err(bad("port 0"));
        }
        return Ok(PeerAddr {
            host: Host::Ip(addr.ip()),
            port: addr.port(),
        });
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(PeerAddr {
            host: Host::Ip(ip),
            port: default_port,
        });
    }
    if let Some(inner) = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
        let ip: IpAddr = inner.parse().map_err(|_| bad("not an IPv6 address"))?;
        return Ok(PeerAddr {
            host: Host::Ip(ip),
            port: default_port,
        });
    }
    let (host, port) = match text.rsplit_once(':') {
        Some((host, port)) => {
            let port: u16 = port
                .parse()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| bad("port must be 1-65535"))?;
            (host, port)
        }
        None => (text, default_port),
    };
    let valid_name = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
        });
    if !valid_name {
        return Err(bad("not an IP address or host name"));
    }
    Ok(PeerAddr {
        host: Host::Name(host.to_ascii_lowercase()),
        port,
    })
}

/// Parses `--listen`: `IP`, `IP:PORT`, `[IPv6]:PORT`.
fn parse_listen(text: &str) -> Result<(IpAddr, Option<u16>), ConfigError> {
    let text = text.trim();
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok((addr.ip(), Some(addr.port())));
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok((ip, None));
    }
    if let Some(ip) = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .and_then(|t| t.parse::<IpAddr>().ok())
    {
        return Ok((ip, None));
    }
    Err(error(format!(
        "invalid value {text:?} for --listen: expected IP or IP:PORT (IPv6 as [::1]:5000)"
    )))
}

impl Config {
    /// Merges the command line over the file over the defaults and validates
    /// the result. `default_name` is the host name (passed in for tests).
    pub fn merge(
        args: &RunArgs,
        file: FileConfig,
        default_name: &str,
    ) -> Result<Config, ConfigError> {
        let flag_port = args.port.or(file.port);
        let listen_text = args.listen.clone().or(file.listen);
        let (listen, listen_port) = match &listen_text {
            Some(text) => {
                let (ip, port) = parse_listen(text)?;
                (Some(ip), port)
            }
            None => (None, None),
        };
        let port = match (flag_port, listen_port) {
            (Some(a), Some(b)) if a != b => {
                return Err(error(format!(
                    "--listen port {b} contradicts --port {a}; give the port once"
                )));
            }
            (Some(port), _) | (None, Some(port)) => port,
            (None, None) => DEFAULT_PORT,
        };
        if port == 0 {
            return Err(error("--port must be 1-65535"));
        }
        if let Some(ip) = listen
            && ip.is_unspecified()
        {
            // 0.0.0.0 or :: given explicitly: treat as "all addresses" of that family only.
            log::debug!("listening on the unspecified address {ip}");
        }

        // Every duration has its cap, checked as it is parsed.
        let duration =
            |flag: &str, cli: &Option<String>, file: &Option<FileDuration>, limit: Duration| {
                let text = cli
                    .clone()
                    .or_else(|| file.as_ref().map(FileDuration::to_text));
                text.map(|text| {
                    parse_duration_within(&text, limit)
                        .map_err(|e| error(format!("invalid value for {flag}: {e}")))
                })
                .transpose()
            };
        // Peers reject a longer interval_ms (it would keep a dead node
        // "online" for days), so refuse it here rather than be ignored.
        let interval = duration(
            "--interval",
            &args.interval,
            &file.interval,
            MAX_PEER_INTERVAL,
        )?
        .unwrap_or(DEFAULT_INTERVAL);
        let offline_after = duration(
            "--offline-after",
            &args.offline_after,
            &file.offline_after,
            MAX_OFFLINE_AFTER,
        )?;
        let offline_after = match offline_after {
            Some(after) if after <= interval => {
                return Err(error(format!(
                    "--offline-after ({}) must be longer than --interval ({})",
                    show(after),
                    show(interval)
                )));
            }
            Some(after) => after,
            None => offline_threshold(Duration::ZERO, interval),
        };

        let peer_texts = if args.peers.is_empty() {
            file.peers.unwrap_or_default()
        } else {
            args.peers.clone()
        };
        let mut peers: Vec<PeerAddr> = Vec::new();
        for text in peer_texts.iter().filter(|t| !t.trim().is_empty()) {
            let peer = parse_peer(text, port).map_err(error)?;
            if !peers.contains(&peer) {
                peers.push(peer);
            }
        }

        let chosen = args.name.clone().or(file.name);
        let from_host = chosen.is_none();
        let name = chosen.unwrap_or_else(|| default_name.to_string());
        if name.is_empty() || name.len() > MAX_NAME_LEN {
            return Err(error(format!(
                "--name must be 1 to {MAX_NAME_LEN} bytes long"
            )));
        }
        // Peers refuse such a name at decode (`bad_name`): refuse it here first.
        if let Err(why) = names::check(&name) {
            let name = names::for_terminal(&name);
            return Err(error(if from_host {
                format!("the host name {name:?} cannot be this node's name ({why}): set --name")
            } else {
                format!("--name {name:?}: {why}")
            }));
        }

        // The flag, else P2PMON_KEY_FILE (clap reads both into `key_file`), else the file.
        let key_file = args.key_file.clone().or(file.key_file);
        // With a key only authenticated members can name members, so learning
        // is on; without one a stranger could inject hosts, so it is opt-in.
        let learn_peers =
            args.learn_peers || file.learn_peers.unwrap_or(false) || key_file.is_some();
        let forget_text = args
            .forget_after
            .clone()
            .or_else(|| file.forget_after.as_ref().map(FileDuration::to_text));
        let forget_after =
            match forget_text.as_deref().map(str::trim) {
                None => Some(DEFAULT_FORGET_AFTER),
                Some("never") => None,
                Some(text) => Some(parse_duration(text).map_err(|e| {
                    error(format!("invalid value for --forget-after: {e} (or never)"))
                })?),
            };
        let allow_plaintext = args.allow_plaintext || file.allow_plaintext.unwrap_or(false);
        if allow_plaintext && key_file.is_none() {
            return Err(error(
                "--allow-plaintext only makes sense with --key-file (without a key, everything is plaintext)",
            ));
        }
        let flap_changes = args
            .flap_changes
            .or(file.flap_changes)
            .unwrap_or(DEFAULT_FLAP_CHANGES);
        if flap_changes == 0 {
            return Err(error("--flap-changes must be at least 1"));
        }
        let flap_window = duration(
            "--flap-window",
            &args.flap_window,
            &file.flap_window,
            MAX_FLAP_WINDOW,
        )?
        .unwrap_or(DEFAULT_FLAP_WINDOW);
        let max_connections = args
            .max_connections
            .or(file.max_connections)
            .unwrap_or(MAX_CONNECTIONS);
        if !(1..=65_536).contains(&max_connections) {
            return Err(error("--max-connections must be 1 to 65536"));
        }

        let http = match args.http.clone().or(file.http) {
            Some(text) => parse_http(&text).map_err(error)?,
            None => HttpSetting::Default(
                DEFAULT_HTTP
                    .parse()
                    .map_err(|_| error("bad built-in HTTP address"))?,
            ),
        };
        let on_event = if args.on_event.is_empty() {
            file.on_event.unwrap_or_default()
        } else {
            args.on_event.clone()
        };
        if on_event.iter().any(|command| command.trim().is_empty()) {
            return Err(error("--on-event needs a command"));
        }
        if on_event.len() > MAX_HOOK_COMMANDS {
            return Err(error(format!(
                "--on-event given {} times: at most {MAX_HOOK_COMMANDS} commands",
                on_event.len()
            )));
        }
        // A NUL cannot reach `sh -c` (the spawn would fail at every event).
        if on_event.iter().any(|command| command.contains('\0')) {
            return Err(error(
                "--on-event: a command cannot contain a NUL character",
            ));
        }

        Ok(Config {
            peers,
            port,
            listen,
            interval,
            offline_after,
            name,
            format: args.format.or(file.format).unwrap_or_default(),
            changes_only: args.changes_only || file.changes_only.unwrap_or(false),
            timestamps: args.timestamps || file.timestamps.unwrap_or(false),
            key_file,
            allow_plaintext,
            learn_peers,
            forget_after,
            flap: FlapRule {
                changes: flap_changes,
                window: flap_window,
            },
            max_connections,
            http,
            on_event,
        })
    }
}

/// A duration as a user would write it.
fn show(duration: Duration) -> String {
    let secs = duration.as_secs();
    if duration.subsec_millis() == 0 && secs >= 3600 && secs % 3600 == 0 {
        format!("{}h", secs / 3600)
    } else if duration.subsec_millis() == 0 {
        format!("{secs}s")
    } else {
        format!("{}ms", duration.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn merge(args: RunArgs, file: &str) -> Result<Config, ConfigError> {
        Config::merge(&args, FileConfig::parse(file, "test")?, "host-a")
    }

    fn ip(text: &str) -> IpAddr {
        text.parse()
            .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration(" 1h "), Ok(Duration::from_secs(3600)));
        for bad in [
            "0", "0s", "0ms", "", "s", "-1", "5x", "5 days", "1e3", "abc", "0.0001s",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn peers() {
        let peer = |t| parse_peer(t, 5000);
        assert_eq!(
            peer("192.168.1.100"),
            Ok(PeerAddr {
                host: Host::Ip(ip("192.168.1.100")),
                port: 5000
            })
        );
        assert_eq!(
            peer("10.0.0.1:6000"),
            Ok(PeerAddr {
                host: Host::Ip(ip("10.0.0.1")),
                port: 6000
            })
        );
        assert_eq!(
            peer("[::1]:7000"),
            Ok(PeerAddr {
                host: Host::Ip(ip("::1")),
                port: 7000
            })
        );
        assert_eq!(
            peer("[::1]"),
            Ok(PeerAddr {
                host: Host::Ip(ip("::1")),
                port: 5000
            })
        );
        assert_eq!(
            peer("::1"),
            Ok(PeerAddr {
                host: Host::Ip(ip("::1")),
                port: 5000
            })
        );
        assert_eq!(
            peer("Node-B.example:5001"),
            Ok(PeerAddr {
                host: Host::Name("node-b.example".into()),
                port: 5001
            })
        );
        for bad in [
            "",
            "host:",
            "host:0",
            "host:99999",
            "host:abc",
            "bad_host",
            "a..b",
            "[::1",
            "-x",
            "1.2.3.4:0",
        ] {
            assert!(peer(bad).is_err(), "{bad:?} should be rejected");
        }
        assert_eq!(
            peer("10.0.0.1:6000").map(|p| p.to_string()),
            Ok("10.0.0.1:6000".to_string())
        );
    }

    #[test]
    fn defaults() {
        let config = merge(RunArgs::default(), "");
        assert_eq!(
            config,
            Ok(Config {
                peers: vec![],
                port: 5000,
                listen: None,
                interval: Duration::from_secs(5),
                offline_after: Duration::from_secs(15),
                name: "host-a".into(),
                format: Format::Text,
                changes_only: false,
                timestamps: false,
                key_file: None,
                allow_plaintext: false,
                learn_peers: false,
                forget_after: Some(DEFAULT_FORGET_AFTER),
                flap: FlapRule::default(),
                max_connections: 2048,
                http: HttpSetting::Default(SocketAddr::from(([127, 0, 0, 1], 5080))),
                on_event: vec![],
            })
        );
    }

    #[test]
    fn membership_settings() {
        let config = merge(RunArgs::default(), "").unwrap_or_else(|e| panic!("{e}"));
        assert!(!config.learn_peers, "off without a key");
        assert_eq!(config.forget_after, Some(Duration::from_secs(3600)));
        let config = merge(
            RunArgs::default(),
            "learn_peers = true\nforget_after = \"never\"\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(config.learn_peers);
        assert_eq!(config.forget_after, None);
        let args = RunArgs {
            forget_after: Some("3s".into()),
            ..RunArgs::default()
        };
        assert_eq!(
            merge(args, "").map(|c| c.forget_after),
            Ok(Some(Duration::from_secs(3)))
        );
        let args = RunArgs {
            forget_after: Some("soon".into()),
            ..RunArgs::default()
        };
        assert!(merge(args, "").is_err());
        let keyed = merge(RunArgs::default(), "key_file = \"/etc/p2pmon/key\"\n");
        assert_eq!(keyed.map(|c| c.learn_peers), Ok(true), "on with a key");
    }

    #[test]
    fn http_setting() {
        assert_eq!(parse_http("off"), Ok(HttpSetting::Off));
        assert_eq!(
            parse_http("127.0.0.2:9000"),
            Ok(HttpSetting::Explicit(SocketAddr::from((
                [127, 0, 0, 2],
                9000
            ))))
        );
        assert_eq!(
            parse_http(":9100"),
            Ok(HttpSetting::Explicit(SocketAddr::from((
                [127, 0, 0, 1],
                9100
            ))))
        );
        assert!(parse_http("nowhere").is_err());
        let config = merge(
            RunArgs::default(),
            "http = \"off\"\non_event = [\"logger p2pmon\"]\n",
        );
        assert_eq!(
            config.map(|c| (c.http, c.on_event)),
            Ok((HttpSetting::Off, vec!["logger p2pmon".to_string()]))
        );
    }

    #[test]
    fn flap_and_connection_settings() {
        let file = "flap_changes = 3\nflap_window = \"30s\"\nmax_connections = 100\n";
        let config = merge(RunArgs::default(), file).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            config.flap,
            FlapRule {
                changes: 3,
                window: Duration::from_secs(30)
            }
        );
        assert_eq!(config.max_connections, 100);
        let args = RunArgs {
            flap_changes: Some(0),
            ..RunArgs::default()
        };
        assert!(merge(args, "").is_err());
        let args = RunArgs {
            max_connections: Some(0),
            ..RunArgs::default()
        };
        assert!(merge(args, "").is_err());
    }

    #[test]
    fn names_with_control_or_bidi_characters_are_refused_everywhere() {
        for name in ["a\x1b[2J", "a\"}\nb", "x\u{202e}y", "nul\0"] {
            let args = RunArgs {
                name: Some(name.into()),
                ..RunArgs::default()
            };
            let error = merge(args, "").map(|c| c.name);
            let Err(ConfigError(text)) = error else {
                panic!("{name:?} accepted");
            };
            assert!(text.starts_with("--name \""), "{text}");
            assert!(!text.contains(['\x1b', '\n', '\0', '\u{202e}']), "{text}");
        }
        let file = "name = \"tab\\there\"";
        assert!(merge(RunArgs::default(), file).is_err());
        let host = Config::merge(&RunArgs::default(), FileConfig::default(), "bad\rhost");
        let Err(ConfigError(text)) = host.map(|c| c.name) else {
            panic!("bad host name accepted");
        };
        assert!(
            text.contains("set --name") && text.contains("\\x0d"),
            "{text}"
        );
        let fine = RunArgs {
            name: Some("nœud-東京".into()),
            ..RunArgs::default()
        };
        assert!(merge(fine, "").is_ok());
    }

    #[test]
    fn hook_commands_are_capped_and_never_hold_a_nul() {
        let args = |count: usize| RunArgs {
            on_event: vec!["true".into(); count],
            ..RunArgs::default()
        };
        assert!(merge(args(MAX_HOOK_COMMANDS), "").is_ok());
        let Err(ConfigError(text)) = merge(args(MAX_HOOK_COMMANDS + 1), "").map(|c| c.name) else {
            panic!("too many hooks accepted");
        };
        assert!(
            text.contains("--on-event") && text.contains("at most 32"),
            "{text}"
        );
        assert!(merge(RunArgs::default(), "on_event = [\"a\\u0000b\"]").is_err());
    }

    #[test]
    fn command_line_wins_over_file() {
        let file = r#"
            peers = ["10.0.0.1", "10.0.0.2:6000"]
            port = 5100
            interval = "2s"
            name = "from-file"
            format = "json"
            changes_only = true
        "#;
        let args = RunArgs {
            peers: vec!["10.0.0.9".into()],
            interval: Some("500ms".into()),
            name: Some("from-flag".into()),
            ..RunArgs::default()
        };
        let config = merge(args, file).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            config.peers,
            vec![PeerAddr {
                host: Host::Ip(ip("10.0.0.9")),
                port: 5100
            }]
        );
        assert_eq!(config.port, 5100);
        assert_eq!(config.interval, Duration::from_millis(500));
        assert_eq!(config.offline_after, Duration::from_millis(1500));
        assert_eq!(config.name, "from-flag");
        assert_eq!(config.format, Format::Json);
        assert!(config.changes_only);

        let config = merge(RunArgs::default(), file).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.peers.len(), 2);
        assert_eq!(config.peers[1].port, 6000);
        assert_eq!(
            config.peers[0].port, 5100,
            "file peers take the file's port"
        );
        assert_eq!(config.interval, Duration::from_secs(2));
        assert_eq!(config.name, "from-file");
    }

    #[test]
    fn key_file_flag_wins_over_the_file_and_allow_plaintext_needs_a_key() {
        let file = "key_file = \"/etc/p2pmon/key\"\nallow_plaintext = true\n";
        let config = merge(RunArgs::default(), file).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.key_file, Some(PathBuf::from("/etc/p2pmon/key")));
        assert!(config.allow_plaintext);
        let args = RunArgs {
            key_file: Some(PathBuf::from("/run/other-key")),
            ..RunArgs::default()
        };
        let config = merge(args, file).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.key_file, Some(PathBuf::from("/run/other-key")));
        // The example config's commented keys, uncommented, are valid.
        let example = include_str!("../../config.example.toml")
            .replace("# key_file =", "key_file =")
            .replace("# allow_plaintext =", "allow_plaintext =");
        let config = merge(RunArgs::default(), &example).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.key_file, Some(PathBuf::from("/etc/p2pmon/key")));
        let error = merge(RunArgs::default(), "allow_plaintext = true");
        assert!(
            matches!(&error, Err(e) if e.0.contains("--allow-plaintext only makes sense with --key-file")),
            "{error:?}"
        );
    }

    #[test]
    fn file_durations_may_be_numbers() {
        let config = merge(RunArgs::default(), "interval = 2\noffline_after = \"10s\"");
        assert_eq!(
            config.map(|c| (c.interval, c.offline_after)),
            Ok((Duration::from_secs(2), Duration::from_secs(10)))
        );
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = merge(RunArgs::default(), "port = 5000\nintervall = 5\n");
        let message = err.err().map(|e| e.0).unwrap_or_default();
        assert!(message.contains("intervall"), "{message}");
        assert!(message.contains("line 2"), "{message}");
    }

    #[test]
    fn wrong_types_are_errors() {
        assert!(merge(RunArgs::default(), "port = \"x\"").is_err());
        assert!(merge(RunArgs::default(), "port = 70000").is_err());
        assert!(merge(RunArgs::default(), "peers = \"10.0.0.1\"").is_err());
        assert!(merge(RunArgs::default(), "format = \"xml\"").is_err());
        assert!(merge(RunArgs::default(), "this is not toml").is_err());
    }

    #[test]
    fn offline_after_must_exceed_interval() {
        let args = RunArgs {
            interval: Some("5s".into()),
            offline_after: Some("5s".into()),
            ..RunArgs::default()
        };
        let message = merge(args, "").err().map(|e| e.0).unwrap_or_default();
        assert!(
            message.contains("--offline-after (5s) must be longer than --interval (5s)"),
            "{message}"
        );
        let args = RunArgs {
            offline_after: Some("4s".into()),
            ..RunArgs::default()
        };
        assert!(merge(args, "").is_err(), "default interval 5s");
    }

    #[test]
    fn huge_durations_are_errors_not_overflows() {
        for (flag, value) in [
            ("interval", "2h"),
            ("interval", "9000000000000000000"),
            ("offline", "2000h"),
        ] {
            let args = if flag == "interval" {
                RunArgs {
                    interval: Some(value.into()),
                    ..RunArgs::default()
                }
            } else {
                RunArgs {
                    offline_after: Some(value.into()),
                    ..RunArgs::default()
                }
            };
            assert!(merge(args, "").is_err(), "{flag} {value}");
        }
        let args = RunArgs {
            interval: Some("1h".into()),
            ..RunArgs::default()
        };
        assert_eq!(
            merge(args, "").map(|c| c.offline_after),
            Ok(Duration::from_secs(3 * 3600))
        );
    }

    #[test]
    fn every_duration_is_capped_at_parse_naming_the_flag_and_the_limit() {
        assert_eq!(parse_duration("8760h"), Ok(MAX_DURATION));
        for text in ["8761h", "4000000000000000h", "99999999999999999999", "1e30"] {
            let error = parse_duration(text).err().unwrap_or_default();
            assert!(!error.is_empty(), "{text} accepted");
        }
        let error = parse_duration("4000000000000000h")
            .err()
            .unwrap_or_default();
        assert!(error.contains("the limit, 8760h"), "{error}");

        let forget = |text: &str| RunArgs {
            forget_after: Some(text.into()),
            ..RunArgs::default()
        };
        assert_eq!(
            merge(forget("8760h"), "").map(|c| c.forget_after),
            Ok(Some(MAX_DURATION))
        );
        let message = merge(forget("4000000000000000h"), "")
            .err()
            .map(|e| e.0)
            .unwrap_or_default();
        assert!(
            message.starts_with("invalid value for --forget-after") && message.contains("8760h"),
            "{message}"
        );
        // From the file, as a number of seconds, too.
        assert!(merge(RunArgs::default(), "forget_after = 4000000000000000000").is_err());
        assert!(merge(RunArgs::default(), "forget_after = 31536001").is_err());

        let flap = |text: &str| RunArgs {
            flap_window: Some(text.into()),
            ..RunArgs::default()
        };
        assert_eq!(
            merge(flap("24h"), "").map(|c| c.flap.window),
            Ok(MAX_FLAP_WINDOW)
        );
        let message = merge(flap("25h"), "")
            .err()
            .map(|e| e.0)
            .unwrap_or_default();
        assert_eq!(
            message,
            "invalid value for --flap-window: \"25h\" is longer than the limit, 24h"
        );
        let message = merge(flap("4000000000000000h"), "")
            .err()
            .map(|e| e.0)
            .unwrap_or_default();
        assert!(message.ends_with("the limit, 24h"), "{message}");
        assert!(merge(RunArgs::default(), "flap_window = \"2000h\"").is_err());

        // The limits as they are printed.
        assert_eq!(show(MAX_PEER_INTERVAL), "1h");
        assert_eq!(show(MAX_OFFLINE_AFTER), "24h");
        assert_eq!(show(Duration::from_secs(90)), "90s");
        assert_eq!(show(Duration::from_millis(1500)), "1500ms");
    }

    #[test]
    fn zero_interval_is_an_error() {
        let args = RunArgs {
            interval: Some("0".into()),
            ..RunArgs::default()
        };
        let message = merge(args, "").err().map(|e| e.0).unwrap_or_default();
        assert!(
            message.starts_with("invalid value for --interval"),
            "{message}"
        );
    }

    #[test]
    fn listen_port_must_agree_with_port() {
        let args = RunArgs {
            listen: Some("127.0.0.2:6000".into()),
            ..RunArgs::default()
        };
        let config = merge(args.clone(), "").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((config.listen, config.port), (Some(ip("127.0.0.2")), 6000));
        let clash = RunArgs {
            port: Some(5000),
            ..args.clone()
        };
        assert!(merge(clash, "").is_err());
        let same = RunArgs {
            port: Some(6000),
            ..args
        };
        assert!(merge(same, "").is_ok());
        let v6 = RunArgs {
            listen: Some("[::1]:5001".into()),
            ..RunArgs::default()
        };
        assert_eq!(
            merge(v6, "").map(|c| (c.listen, c.port)),
            Ok((Some(ip("::1")), 5001))
        );
        let bad = RunArgs {
            listen: Some("nowhere".into()),
            ..RunArgs::default()
        };
        assert!(merge(bad, "").is_err());
    }

    #[test]
    fn duplicate_peers_are_merged_and_empty_items_skipped() {
        let args = RunArgs {
            peers: vec!["10.0.0.1".into(), "".into(), "10.0.0.1:5000".into()],
            ..RunArgs::default()
        };
        assert_eq!(merge(args, "").map(|c| c.peers.len()), Ok(1));
    }

    #[test]
    fn example_config_loads() {
        let text = include_str!("../../config.example.toml");
        let file = FileConfig::parse(text, "config.example.toml").unwrap_or_else(|e| panic!("{e}"));
        assert!(Config::merge(&RunArgs::default(), file, "x").is_ok());
    }
}
