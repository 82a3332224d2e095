//! Counters of what the node did and refused, and the rate limiter that keeps
//! rejection logs short. Every rejected message is counted by reason; it is
//! logged at most once per reason and source per [`REJECT_LOG_WINDOW`], and at
//! most [`MAX_REJECT_LOGS`] rejection lines are written per window in all (an
//! attacker has many source addresses), with one summary line for the rest.
//! So an attacker can neither crash the node nor flood its log.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Display;
use std::net::IpAddr;
use std::time::Instant;

use crate::limits::{MAX_REJECT_LOGS, REJECT_LOG_ENTRIES, REJECT_LOG_WINDOW};

/// Node-wide counters, read by `/metrics` and `/status` (through a snapshot).
#[derive(Debug, Default)]
pub struct Stats {
    /// Valid messages received (statuses, leaves, legacy statuses).
    pub received: u64,
    /// Statuses handed to the kernel, all peers together.
    pub sent: u64,
    /// Inbound connections open now.
    pub open_connections: u64,
    /// Rejected frames and connections, by reason.
    pub rejected: BTreeMap<&'static str, u64>,
    last_logged: HashMap<(&'static str, IpAddr), Instant>,
    /// The current log window: when it began, lines logged, lines withheld.
    window_start: Option<Instant>,
    logged_in_window: usize,
    withheld: u64,
}

impl Stats {
    /// Counts a rejection and logs it unless the same reason from the same
    /// source was logged within the window.
    pub fn reject(
        &mut self,
        reason: &'static str,
        source: IpAddr,
        detail: &dyn Display,
        now: Instant,
    ) {
        *self.rejected.entry(reason).or_insert(0) += 1;
        if self.should_log(reason, source, now) {
            log::warn!(
                "rejected message from {source}: {detail} [{reason}; further ones from this source are counted, not logged, for {} s]",
                REJECT_LOG_WINDOW.as_secs()
            );
        }
    }

    /// Total rejections for one reason.
    #[cfg(test)]
    pub fn rejected(&self, reason: &str) -> u64 {
        self.rejected.get(reason).copied().unwrap_or(0)
    }

    fn should_log(&mut self, reason: &'static str, source: IpAddr, now: Instant) -> bool {
        let window_over = self
            .window_start
            .is_none_or(|start| now.duration_since(start) >= REJECT_LOG_WINDOW);
        if window_over {
            if self.withheld > 0 {
                log::warn!(
                    "{} more rejected messages were not logged in the last {} s (log limit); \
                     all are counted in p2pmon_rejected_total",
                    self.withheld,
                    REJECT_LOG_WINDOW.as_secs()
                );
            }
            self.window_start = Some(now);
            self.logged_in_window = 0;
            self.withheld = 0;
        }
        if let Some(last) = self.last_logged.get(&(reason, source))
            && now.duration_since(*last) < REJECT_LOG_WINDOW
        {
            return false;
        }
        if self.logged_in_window >= MAX_REJECT_LOGS {
            self.withheld += 1;
            return false;
        }
        if self.last_logged.len() >= REJECT_LOG_ENTRIES {
            // Bounded memory: forget expired entries; if none expired, the
            // global budget above still bounds the log.
            self.last_logged
                .retain(|_, last| now.duration_since(*last) < REJECT_LOG_WINDOW);
        }
        if self.last_logged.len() < REJECT_LOG_ENTRIES {
            self.last_logged.insert((reason, source), now);
        }
        self.logged_in_window += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn every_rejection_is_counted_but_logged_once_a_window() {
        let mut stats = Stats::default();
        let t0 = Instant::now();
        let a = IpAddr::from([127, 0, 0, 2]);
        let b = IpAddr::from([127, 0, 0, 3]);
        assert!(stats.should_log("invalid_json", a, t0));
        assert!(!stats.should_log("invalid_json", a, t0 + Duration::from_secs(59)));
        assert!(stats.should_log("too_large", a, t0));
        assert!(stats.should_log("invalid_json", b, t0));
        assert!(stats.should_log("invalid_json", a, t0 + Duration::from_secs(61)));
        for _ in 0..5 {
            stats.reject("bad_field", a, &"x", t0);
        }
        assert_eq!(stats.rejected("bad_field"), 5);
        assert_eq!(stats.rejected("other"), 0);
    }

    #[test]
    fn many_sources_cannot_flood_the_log() {
        let mut stats = Stats::default();
        let t0 = Instant::now();
        let logged = (0..10_000u32)
            .filter(|n| stats.should_log("invalid_json", IpAddr::from(n.to_be_bytes()), t0))
            .count();
        assert_eq!(logged, MAX_REJECT_LOGS);
        assert_eq!(stats.withheld, 10_000 - MAX_REJECT_LOGS as u64);
        // A logged source stays quiet for its window even after the table filled.
        assert!(!stats.should_log(
            "invalid_json",
            IpAddr::from([0, 0, 0, 1]),
            t0 + Duration::from_secs(30)
        ));
        // Next window: a fresh budget.
        assert!(stats.should_log(
            "invalid_json",
            IpAddr::from([9, 9, 9, 9]),
            t0 + Duration::from_secs(61)
        ));
        assert_eq!(stats.withheld, 0);
    }

    #[test]
    fn the_rate_limiter_is_bounded() {
        let mut stats = Stats::default();
        let t0 = Instant::now();
        for n in 0..(REJECT_LOG_ENTRIES as u32 * 3) {
            stats.should_log("invalid_json", IpAddr::from(n.to_be_bytes()), t0);
            assert!(stats.last_logged.len() <= REJECT_LOG_ENTRIES);
        }
    }
}
