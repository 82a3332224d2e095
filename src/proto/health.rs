//! Host health beyond CPU and memory, as a v1 status carries it (issue 14,
//! DESIGN.md "Host health"): load averages, the logical CPU count, swap,
//! up to [`MAX_FILESYSTEMS`] local filesystems (fullest first), network
//! bytes since boot and uptime. Every part is optional: a host that does not
//! provide one leaves it out, older nodes send none, and older receivers
//! ignore them (unknown fields), as does the Python original.
//!
//! Validation is as strict as for cpu and memory: a field that is present
//! must be finite and in range, a list bounded, a mount point a printable
//! path; anything else rejects the whole frame (`out_of_range`,
//! `bad_field`), never a partial status.

use serde::{Deserialize, Serialize};

use crate::limits::{MAX_CPUS, MAX_FILESYSTEMS, MAX_LOAD, MAX_MOUNT_LEN};
use crate::names;

/// What a status says of its host besides CPU and memory.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Health {
    /// 1, 5 and 15 minute load averages.
    pub load: Option<[f64; 3]>,
    /// Logical CPUs.
    pub cpus: Option<u32>,
    /// Percent of swap in use; absent without swap.
    pub swap: Option<f64>,
    /// Local filesystems, fullest first, at most [`MAX_FILESYSTEMS`].
    pub fs: Vec<Filesystem>,
    /// Bytes received and sent since boot, all non-loopback interfaces.
    pub net_rx: Option<u64>,
    pub net_tx: Option<u64>,
    /// Seconds since the host booted.
    pub uptime_s: Option<u64>,
}

/// One local filesystem.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Filesystem {
    /// Where it is mounted (`/`, `/home`...).
    pub mount: String,
    /// Percent used, as `df` shows it.
    pub used: f64,
    /// Size in bytes.
    pub size: u64,
}

impl Health {
    /// The fullest filesystem (the first: the list is sent fullest first).
    pub fn fullest(&self) -> Option<&Filesystem> {
        self.fs.iter().max_by(|a, b| a.used.total_cmp(&b.used))
    }
}

/// The health fields of a frame as written (see `wire::RawMessage`).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct RawHealth {
    pub load: Option<Vec<f64>>,
    pub cpus: Option<u64>,
    pub swap: Option<f64>,
    pub fs: Option<Vec<Filesystem>>,
    pub net_rx: Option<u64>,
    pub net_tx: Option<u64>,
    pub uptime_s: Option<u64>,
}

/// Why a health field was refused: the field's name and what was wrong.
pub(crate) type Refused = (&'static str, String);

impl RawHealth {
    /// Validates every present field.
    pub(crate) fn check(self) -> Result<Health, Refused> {
        let load = match self.load {
            None => None,
            Some(values) => {
                let [one, five, fifteen] = <[f64; 3]>::try_from(values.as_slice())
                    .map_err(|_| ("load", format!("{} values, not 3", values.len())))?;
                for value in [one, five, fifteen] {
                    if !(value.is_finite() && (0.0..=MAX_LOAD).contains(&value)) {
                        return Err(("load", value.to_string()));
                    }
                }
                Some([one, five, fifteen])
            }
        };
        let cpus = match self.cpus {
            None => None,
            Some(n) => Some(
                u32::try_from(n)
                    .ok()
                    .filter(|n| (1..=MAX_CPUS).contains(n))
                    .ok_or(("cpus", n.to_string()))?,
            ),
        };
        let swap = match self.swap {
            None => None,
            Some(value) if value.is_finite() && (0.0..=100.0).contains(&value) => Some(value),
            Some(value) => return Err(("swap", value.to_string())),
        };
        let fs = self.fs.unwrap_or_default();
        if fs.len() > MAX_FILESYSTEMS {
            return Err((
                "fs",
                format!("{} entries, at most {MAX_FILESYSTEMS}", fs.len()),
            ));
        }
        for entry in &fs {
            if entry.mount.is_empty()
                || entry.mount.len() > MAX_MOUNT_LEN
                || names::check(&entry.mount).is_err()
            {
                return Err((
                    "fs",
                    format!("mount point {}", names::for_terminal(&entry.mount)),
                ));
            }
            if !(entry.used.is_finite() && (0.0..=100.0).contains(&entry.used)) {
                return Err(("fs", format!("used {}", entry.used)));
            }
        }
        Ok(Health {
            load,
            cpus,
            swap,
            fs,
            net_rx: self.net_rx,
            net_tx: self.net_tx,
            uptime_s: self.uptime_s,
        })
    }
}

/// The health fields as written, each left out when absent.
#[derive(Debug, Serialize)]
pub(crate) struct HealthOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load: Option<[f64; 3]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpus: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub swap: Option<f64>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub fs: &'a [Filesystem],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub net_rx: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub net_tx: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uptime_s: Option<u64>,
}

impl<'a> HealthOut<'a> {
    /// Rounded as printed (two decimals for load, one for percents), to keep
    /// frames short.
    pub(crate) fn of(health: &'a Health, rounded_fs: &'a [Filesystem]) -> HealthOut<'a> {
        let two = |x: f64| (x * 100.0).round() / 100.0;
        HealthOut {
            load: health.load.map(|[a, b, c]| [two(a), two(b), two(c)]),
            cpus: health.cpus,
            swap: health.swap.map(crate::units::round1),
            fs: rounded_fs,
            net_rx: health.net_rx,
            net_tx: health.net_tx,
            uptime_s: health.uptime_s,
        }
    }
}

/// The filesystems as sent: used rounded to one decimal.
pub(crate) fn rounded_fs(health: &Health) -> Vec<Filesystem> {
    health
        .fs
        .iter()
        .map(|fs| Filesystem {
            mount: fs.mount.clone(),
            used: crate::units::round1(fs.used),
            size: fs.size,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(json: &str) -> Result<Health, Refused> {
        let raw: RawHealth = match serde_json::from_str(json) {
            Ok(raw) => raw,
            Err(e) => panic!("{e}: {json}"),
        };
        raw.check()
    }

    #[test]
    fn absent_fields_are_absent_not_zero() {
        assert_eq!(raw("{}"), Ok(Health::default()));
    }

    #[test]
    fn every_field_is_read_and_checked() {
        let health = raw(r#"{"load":[0.5,1.25,2],"cpus":2,"swap":12.5,
            "fs":[{"mount":"/","used":71.3,"size":1073741824}],
            "net_rx":10,"net_tx":20,"uptime_s":3600}"#);
        assert_eq!(
            health,
            Ok(Health {
                load: Some([0.5, 1.25, 2.0]),
                cpus: Some(2),
                swap: Some(12.5),
                fs: vec![Filesystem {
                    mount: "/".into(),
                    used: 71.3,
                    size: 1 << 30
                }],
                net_rx: Some(10),
                net_tx: Some(20),
                uptime_s: Some(3600),
            })
        );
    }

    #[test]
    fn out_of_range_values_are_refused_by_field() {
        let cases = [
            (r#"{"load":[1,2]}"#, "load"),
            (r#"{"load":[1,2,-1]}"#, "load"),
            (r#"{"load":[1,2,1e300]}"#, "load"),
            (r#"{"cpus":0}"#, "cpus"),
            (r#"{"cpus":99999999999}"#, "cpus"),
            (r#"{"swap":100.5}"#, "swap"),
            (r#"{"fs":[{"mount":"/","used":101,"size":1}]}"#, "fs"),
            (r#"{"fs":[{"mount":"","used":1,"size":1}]}"#, "fs"),
            (
                r#"{"fs":[{"mount":"/a\u001b[2J","used":1,"size":1}]}"#,
                "fs",
            ),
        ];
        for (json, field) in cases {
            assert_eq!(raw(json).map_err(|(f, _)| f), Err(field), "{json}");
        }
        let many: Vec<String> = (0..=MAX_FILESYSTEMS)
            .map(|i| format!(r#"{{"mount":"/m{i}","used":1,"size":1}}"#))
            .collect();
        let json = format!(r#"{{"fs":[{}]}}"#, many.join(","));
        assert_eq!(raw(&json).map_err(|(f, _)| f), Err("fs"));
    }

    #[test]
    fn the_fullest_filesystem_is_found_whatever_the_order() {
        let fs = |mount: &str, used| Filesystem {
            mount: mount.into(),
            used,
            size: 1,
        };
        let health = Health {
            fs: vec![fs("/", 40.0), fs("/var", 90.0), fs("/home", 10.0)],
            ..Health::default()
        };
        assert_eq!(health.fullest().map(|f| f.mount.as_str()), Some("/var"));
        assert_eq!(Health::default().fullest(), None);
    }
}
