//! Network rates from successive counters, as a viewer computes them
//! (DESIGN.md "Host health": the node sends bytes since boot, the viewer
//! turns them into bytes per second). Pure: readings come in, rates come
//! out, on whatever clock the caller passes.
//!
//! The clock is the host's own uptime (`uptime_s`), which comes from the
//! same sample as the counters: the rate then does not depend on when the
//! viewer happened to poll, nor on how late the status travelled. Uptime is
//! whole seconds, so one interval of 5 s could be off by a fifth; the rate
//! is taken over the readings of the last [`RATE_WINDOW`] seconds instead.
//! A counter or an uptime that goes back means the host rebooted (or the
//! counter wrapped): the readings start afresh, never a negative or huge
//! rate.

use std::collections::{HashMap, VecDeque};

use crate::http::document::StatusDocument;

/// The span of readings a rate is taken over, in seconds of host uptime:
/// long enough that whole-second uptimes cost under 7 %, short enough that
/// a change shows within a few statuses.
pub const RATE_WINDOW: u64 = 15;

/// One reading of a counter: its value at a time (seconds on any clock that
/// only goes forward while the counter does).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    pub at: u64,
    pub value: u64,
}

/// Units per second between two readings, or None when there is no rate to
/// tell: no time between them, or a counter that went back (a reboot starts
/// afresh).
pub fn rate(earlier: Reading, later: Reading) -> Option<f64> {
    let seconds = later.at.checked_sub(earlier.at).filter(|s| *s > 0)?;
    let grown = later.value.checked_sub(earlier.value)?;
    Some(grown as f64 / seconds as f64)
}

/// The recent readings of one counter, at most one per second of its
/// clock and [`RATE_WINDOW`] seconds of them: at most 16 readings.
#[derive(Debug, Default, Clone)]
pub struct Counter {
    readings: VecDeque<Reading>,
}

impl Counter {
    /// Adds a reading. One at the same time as the last is the same status
    /// seen again (the viewer polls faster than peers send) and is ignored;
    /// one that goes back in value or time starts afresh.
    pub fn observe(&mut self, reading: Reading) {
        if let Some(last) = self.readings.back() {
            if reading.value < last.value || reading.at < last.at {
                self.readings.clear();
            } else if reading.at == last.at {
                return;
            }
        }
        self.readings.push_back(reading);
        // Keep the oldest reading that still spans the window.
        while self.readings.len() > 2 && self.readings[1].at + RATE_WINDOW <= reading.at {
            self.readings.pop_front();
        }
    }

    /// Units per second over the readings kept, or None before two.
    pub fn per_second(&self) -> Option<f64> {
        rate(*self.readings.front()?, *self.readings.back()?)
    }
}

/// The received and sent counters of every peer, by address: what `top`
/// keeps between polls. Peers no longer listed are forgotten.
#[derive(Debug, Default)]
pub struct NetRates {
    peers: HashMap<String, (Counter, Counter)>,
}

/// A peer's counters as one status reported them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NetReading {
    pub uptime_s: Option<u64>,
    pub rx: Option<u64>,
    pub tx: Option<u64>,
}

impl NetRates {
    /// One poll's readings, by peer; peers missing from it are forgotten.
    pub fn record<'a>(&mut self, readings: impl IntoIterator<Item = (&'a str, NetReading)>) {
        let mut seen = HashMap::new();
        for (peer, reading) in readings {
            let (mut rx, mut tx) = self.peers.remove(peer).unwrap_or_default();
            // Without the host's clock there is no rate to take.
            if let Some(at) = reading.uptime_s {
                if let Some(value) = reading.rx {
                    rx.observe(Reading { at, value });
                }
                if let Some(value) = reading.tx {
                    tx.observe(Reading { at, value });
                }
            }
            seen.insert(peer.to_string(), (rx, tx));
        }
        self.peers = seen;
    }

    /// Records the counters of every peer of a `/status` answer.
    pub fn record_document(&mut self, status: &StatusDocument) {
        self.record(status.peers.iter().map(|peer| {
            let reading = NetReading {
                uptime_s: peer.uptime_s,
                rx: peer.net_rx,
                tx: peer.net_tx,
            };
            (peer.peer.as_deref().unwrap_or("?"), reading)
        }));
    }

    /// Bytes per second received and sent by `peer`, where known.
    pub fn of(&self, peer: &str) -> (Option<f64>, Option<f64>) {
        self.peers
            .get(peer)
            .map_or((None, None), |(rx, tx)| (rx.per_second(), tx.per_second()))
    }
}

/// Bytes per second as "1.5M/s" style: base 1024, one decimal under 10.
pub fn human_rate(bytes_per_second: Option<f64>) -> String {
    let Some(mut value) = bytes_per_second.filter(|v| v.is_finite() && *v >= 0.0) else {
        return "-".to_string();
    };
    let mut unit = 0;
    const UNITS: [&str; 7] = ["B", "K", "M", "G", "T", "P", "E"];
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 || value >= 10.0 {
        format!("{value:.0}{}/s", UNITS[unit])
    } else {
        format!("{value:.1}{}/s", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(at: u64, value: u64) -> Reading {
        Reading { at, value }
    }

    #[test]
    fn a_rate_is_growth_over_time_and_never_negative() {
        assert_eq!(rate(at(10, 1000), at(15, 6000)), Some(1000.0));
        assert_eq!(rate(at(10, 1000), at(10, 6000)), None, "no time between");
        assert_eq!(rate(at(15, 1000), at(10, 6000)), None, "time went back");
        // A reboot: the counter restarts near zero.
        assert_eq!(rate(at(10, 1 << 40), at(15, 300)), None);
        assert_eq!(rate(at(0, 0), at(1, u64::MAX)), Some(u64::MAX as f64));
    }

    #[test]
    fn a_counter_that_goes_back_starts_afresh() {
        let mut counter = Counter::default();
        assert_eq!(counter.per_second(), None);
        counter.observe(at(100, 1_000_000));
        assert_eq!(counter.per_second(), None, "one reading is no rate");
        // The same status seen again by a faster poll changes nothing.
        counter.observe(at(100, 1_000_000));
        counter.observe(at(105, 1_005_000));
        assert_eq!(counter.per_second(), Some(1000.0));
        // The host rebooted: uptime and counter restart.
        counter.observe(at(3, 2_000));
        assert_eq!(counter.per_second(), None);
        counter.observe(at(8, 12_000));
        assert_eq!(counter.per_second(), Some(2000.0));
        // The counter alone went back (a wrap or a reset interface).
        counter.observe(at(13, 100));
        assert_eq!(counter.per_second(), None);
        counter.observe(at(18, 600));
        assert_eq!(counter.per_second(), Some(100.0));
    }

    #[test]
    fn the_rate_spans_the_window_and_the_readings_stay_bounded() {
        let mut counter = Counter::default();
        // 1000 B/s, statuses every 5 s whose whole-second uptimes jitter.
        for (i, jitter) in (0..40u64).zip([0, 1, 0, 0, 1].into_iter().cycle()) {
            let real = i * 5;
            counter.observe(at(real + jitter, real * 1000));
            assert!(counter.readings.len() <= 5, "{}", counter.readings.len());
        }
        let rate = counter.per_second().unwrap_or_default();
        assert!((rate - 1000.0).abs() < 1000.0 / 15.0, "{rate}");
        // After a burst the rate follows within the window.
        counter.observe(at(205, 195_000 + 5 * 100_000));
        counter.observe(at(210, 195_000 + 10 * 100_000));
        counter.observe(at(215, 195_000 + 15 * 100_000));
        counter.observe(at(220, 195_000 + 20 * 100_000));
        let rate = counter.per_second().unwrap_or_default();
        assert!(rate > 90_000.0, "{rate}");
    }

    #[test]
    fn peers_keep_their_own_counters_and_are_forgotten_when_gone() {
        let mut rates = NetRates::default();
        let reading = |uptime_s, rx, tx| NetReading { uptime_s, rx, tx };
        rates.record([
            ("a", reading(Some(10), Some(0), Some(0))),
            ("b", reading(None, Some(0), Some(0))),
        ]);
        rates.record([
            ("a", reading(Some(15), Some(5120), None)),
            ("b", reading(None, Some(999), Some(999))),
        ]);
        assert_eq!(rates.of("a"), (Some(1024.0), None));
        assert_eq!(rates.of("b"), (None, None), "no clock, no rate");
        rates.record([("b", reading(None, None, None))]);
        assert_eq!(rates.of("a"), (None, None));
        rates.record([("a", reading(Some(20), Some(10240), None))]);
        assert_eq!(
            rates.of("a"),
            (None, None),
            "a forgotten peer starts afresh"
        );
    }

    #[test]
    fn rates_read_in_binary_units() {
        assert_eq!(human_rate(None), "-");
        assert_eq!(human_rate(Some(f64::NAN)), "-");
        assert_eq!(human_rate(Some(0.0)), "0B/s");
        assert_eq!(human_rate(Some(1023.4)), "1023B/s");
        assert_eq!(human_rate(Some(1536.0)), "1.5K/s");
        assert_eq!(human_rate(Some(12.0 * 1024.0 * 1024.0)), "12M/s");
        assert_eq!(human_rate(Some(3.0 * 1024f64.powi(6))), "3.0E/s");
    }
}
