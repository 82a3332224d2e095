//! [`Config::merge`]: the command line over the file over the defaults
//! (ripgrep's and bottom's order), then the checks that take more than one
//! value (a port given twice, offline_after against interval, a key for
//! allow_plaintext) and the caps on counts (hooks, connections, flap
//! changes). Pure: the host name comes in as an argument, so every rule is a
//! unit test. Messages name the flag (`--offline-after`) for a value from
//! either place: the key is the flag's name with underscores.

use std::time::Duration;

use super::file::{FileConfig, FileDuration};
use super::parse::{
    parse_duration, parse_duration_within, parse_http, parse_listen, parse_peer, show,
};
use super::{Config, ConfigError, HttpSetting, PeerAddr, error};
use crate::cli::RunArgs;
use crate::limits::{
    DEFAULT_FLAP_CHANGES, DEFAULT_FLAP_WINDOW, DEFAULT_FORGET_AFTER, DEFAULT_HTTP,
    DEFAULT_INTERVAL, DEFAULT_PORT, MAX_ALERT_FOR, MAX_ALERT_RULES, MAX_CONNECTIONS,
    MAX_FLAP_WINDOW, MAX_HOOK_COMMANDS, MAX_NAME_LEN, MAX_OFFLINE_AFTER, MAX_PEER_INTERVAL,
};
use crate::names;
use crate::peers::{AlertRule, FlapRule, offline_threshold};

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

        let alerts = alert_rules(&args.alert, file.alerts)?;

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
            details: args.details || file.details.unwrap_or(false),
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
            hooks_on: args.hooks_on.or(file.hooks_on).unwrap_or_default(),
            alerts,
        })
    }
}

/// The `--alert` rules (the flags, else the file's `alerts`), parsed: a bad
/// rule is named with what is wrong with it, as is one given twice.
fn alert_rules(flags: &[String], file: Option<Vec<String>>) -> Result<Vec<AlertRule>, ConfigError> {
    let texts = if flags.is_empty() {
        file.unwrap_or_default()
    } else {
        flags.to_vec()
    };
    if texts.len() > MAX_ALERT_RULES {
        return Err(error(format!(
            "--alert given {} times: at most {MAX_ALERT_RULES} rules",
            texts.len()
        )));
    }
    let mut rules: Vec<AlertRule> = Vec::new();
    for text in &texts {
        let shown = names::for_terminal(text);
        let rule = AlertRule::parse(text, |d| parse_duration_within(d, MAX_ALERT_FOR))
            .map_err(|e| error(format!("invalid value for --alert {shown:?}: {e}")))?;
        if rules.iter().any(|known| known.text == rule.text) {
            return Err(error(format!(
                "--alert {shown:?} is given twice (as {:?})",
                rule.text
            )));
        }
        rules.push(rule);
    }
    Ok(rules)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Host;
    use crate::limits::MAX_DURATION;
    use crate::report::duty::HooksOn;
    use crate::report::output::Format;
    use std::net::{IpAddr, SocketAddr};
    use std::path::PathBuf;

    fn merge(args: RunArgs, file: &str) -> Result<Config, ConfigError> {
        Config::merge(&args, FileConfig::parse(file, "test")?, "host-a")
    }

    fn ip(text: &str) -> IpAddr {
        text.parse()
            .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
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
                details: false,
                key_file: None,
                allow_plaintext: false,
                learn_peers: false,
                forget_after: Some(DEFAULT_FORGET_AFTER),
                flap: FlapRule::default(),
                max_connections: 2048,
                http: HttpSetting::Default(SocketAddr::from(([127, 0, 0, 1], 5080))),
                on_event: vec![],
                hooks_on: HooksOn::Duty,
                alerts: vec![],
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
    fn http_and_hooks_from_the_file() {
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
}
