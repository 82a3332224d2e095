//! The wall clock, in one place. Every verdict runs on the monotonic clock
//! (`Instant`, injected into the pure logic); the wall clock only stamps what
//! leaves the process: a status's `boot` and `ts`, `/status` and `/metrics`
//! timestamps, the dashboard's history. A clock before 1970 reads as 0
//! rather than failing.

use std::time::{SystemTime, UNIX_EPOCH};

/// The unix time in milliseconds.
pub fn unix_ms() -> u64 {
    since_epoch().map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The unix time in whole seconds.
pub fn unix_seconds() -> u64 {
    since_epoch().map_or(0, |d| d.as_secs())
}

/// The unix time in seconds, with a fraction (Prometheus timestamps).
pub fn unix_seconds_f64() -> f64 {
    since_epoch().map_or(0.0, |d| d.as_secs_f64())
}

fn since_epoch() -> Option<std::time::Duration> {
    SystemTime::now().duration_since(UNIX_EPOCH).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_readings_agree() {
        let ms = unix_ms();
        let s = unix_seconds();
        let f = unix_seconds_f64();
        assert!(ms / 1000 >= s.saturating_sub(1) && ms / 1000 <= s + 1);
        assert!((f - s as f64).abs() < 2.0);
        // After 2020 and before 2200: a real clock, not a unit mix-up.
        assert!((1_577_836_800..7_258_118_400).contains(&s));
    }
}
