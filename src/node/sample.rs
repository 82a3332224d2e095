//! The node's own CPU and memory use. The only file that knows sysinfo, so a
//! change of collector (or of sysinfo's API) stays here; only the two parts
//! that are sent are refreshed, and sysinfo's thread pool is off (Cargo.toml).

use sysinfo::System;

use crate::proto::health::Health;

/// A source of CPU and memory percentages.
#[derive(Debug)]
pub struct Sampler {
    system: System,
}

/// One reading: CPU and memory in percent (0..=100), and the rest of the
/// host's health.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub cpu: f64,
    pub memory: f64,
    pub health: Health,
}

impl Sampler {
    /// Takes a first CPU reading, so the first real sample covers the time
    /// since start rather than reporting 0.
    pub fn new() -> std::io::Result<Sampler> {
        let mut system = System::new().map_err(|e| std::io::Error::other(e.to_string()))?;
        system.refresh_cpu_usage();
        Ok(Sampler { system })
    }

    /// CPU use since the previous call, and memory in use now.
    pub fn sample(&mut self) -> Sample {
        self.system.refresh_cpu_usage();
        self.system.refresh_memory();
        let cpu = f64::from(self.system.global_cpu_usage());
        let total = self.system.total_memory();
        let used = self.system.used_memory();
        let memory = if total == 0 {
            0.0
        } else {
            used as f64 * 100.0 / total as f64
        };
        Sample {
            cpu: clamp_percent(cpu),
            memory: clamp_percent(memory),
            health: Health::default(),
        }
    }
}

/// The host name, for the default --name.
pub fn host_name() -> Option<String> {
    System::host_name().ok()
}

/// Keeps a reading inside what the wire accepts, whatever the OS reported.
fn clamp_percent(value: f64) -> f64 {
    if value.is_finite() {
        value.clamp(0.0, 100.0)
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_valid_percentages() {
        let mut sampler = match Sampler::new() {
            Ok(sampler) => sampler,
            Err(e) => panic!("sysinfo unavailable: {e}"),
        };
        let sample = sampler.sample();
        assert!((0.0..=100.0).contains(&sample.cpu));
        assert!(sample.memory > 0.0 && sample.memory <= 100.0, "{sample:?}");
    }

    #[test]
    fn clamping() {
        assert_eq!(clamp_percent(f64::NAN), 0.0);
        assert_eq!(clamp_percent(100.5), 100.0);
        assert_eq!(clamp_percent(-1.0), 0.0);
        assert_eq!(clamp_percent(42.0), 42.0);
    }
}
