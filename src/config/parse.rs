//! The values a flag and a config key spell the same way: peer, listen and
//! HTTP addresses, and durations. Each parser returns the message a user
//! sees; the merge adds which flag or key it was. Every duration is capped
//! here, as it is parsed ([`MAX_DURATION`], or the setting's own cap, which
//! the merge passes in), so no later arithmetic on it can overflow.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::{ConfigError, HttpSetting, error};
use crate::limits::MAX_DURATION;

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
pub(super) fn parse_listen(text: &str) -> Result<(IpAddr, Option<u16>), ConfigError> {
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

/// A duration as a user would write it.
pub(super) fn show(duration: Duration) -> String {
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
    }
}
