//! Freshness: the replay rules, per peer (docs/PROTOCOL.md, "Security"). A
//! sealed message proves who sent it, not when; these rules refuse one that
//! was recorded and played back: from an older incarnation, with a seq not
//! above the highest seen, delivered much later than its incarnation's other
//! messages, or a new incarnation whose clock is far from ours. Pure: the
//! clocks come in as numbers, so every edge is tested without waiting. The
//! gate ([`super::gate`]) keeps a `Seen` per peer the table holds.

use std::fmt;

use crate::limits::FRESHNESS_WINDOW;

/// What the listener knows of a peer's latest incarnation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Seen {
    /// The latest boot accepted.
    pub boot: u64,
    /// The highest seq accepted in it.
    pub seq: u64,
    /// The largest `ts` minus our monotonic clock (both ms) over the boot's
    /// messages: a message whose own difference is much smaller arrived late.
    pub offset_ms: i64,
}

/// Why a message is not fresh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stale {
    /// From an incarnation older than one already seen.
    OlderBoot { boot: u64, latest: u64 },
    /// Its seq is not above the highest seen in its boot.
    SeqNotAbove { seq: u64, highest: u64 },
    /// It arrived this many ms later than its boot's other messages say it should.
    Late { by_ms: i64 },
    /// A new incarnation whose `ts` is this far from our clock (ms, + = ahead).
    ClockSkew { skew_ms: i64 },
}

impl fmt::Display for Stale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stale::OlderBoot { boot, latest } => write!(
                f,
                "replay: incarnation {boot} is older than the latest seen, {latest}"
            ),
            Stale::SeqNotAbove { seq, highest } => {
                write!(f, "replay: seq {seq} is not above {highest}, already seen")
            }
            Stale::Late { by_ms } => write!(
                f,
                "replay: delivered {:.1} s late (more than {} s)",
                *by_ms as f64 / 1000.0,
                FRESHNESS_WINDOW.as_secs()
            ),
            Stale::ClockSkew { skew_ms } => write!(
                f,
                "clock skew {} s: the peer's clock is {} s {} ours, more than the {} s allowed; \
                 fix the clocks (NTP)",
                skew_ms / 1000,
                skew_ms.abs() / 1000,
                if *skew_ms > 0 { "ahead of" } else { "behind" },
                FRESHNESS_WINDOW.as_secs()
            ),
        }
    }
}

/// The replay and freshness rule (docs/PROTOCOL.md, "Security"). `seen` is
/// what was accepted from this peer so far; `wall_ms` our unix time and
/// `mono_ms` our monotonic clock, both in ms. Returns the state to keep.
///
/// A new boot is judged by the wall clocks (ours and its `ts`), once; within
/// a boot only seq and the monotonic clock count, so a step of our clock
/// never turns live traffic into "stale".
pub(crate) fn check_fresh(
    seen: Option<&Seen>,
    boot: u64,
    seq: u64,
    ts: u64,
    wall_ms: u64,
    mono_ms: u64,
) -> Result<Seen, Stale> {
    let window = FRESHNESS_WINDOW.as_millis() as i64;
    let offset_ms = signed(ts) - signed(mono_ms);
    match seen {
        Some(seen) if boot < seen.boot => Err(Stale::OlderBoot {
            boot,
            latest: seen.boot,
        }),
        Some(seen) if boot == seen.boot => {
            if seq <= seen.seq {
                return Err(Stale::SeqNotAbove {
                    seq,
                    highest: seen.seq,
                });
            }
            let late = seen.offset_ms - offset_ms;
            if late > window {
                return Err(Stale::Late { by_ms: late });
            }
            Ok(Seen {
                boot,
                seq,
                offset_ms: seen.offset_ms.max(offset_ms),
            })
        }
        _ => {
            let skew_ms = signed(ts) - signed(wall_ms);
            if skew_ms.abs() > window {
                return Err(Stale::ClockSkew { skew_ms });
            }
            Ok(Seen {
                boot,
                seq,
                offset_ms,
            })
        }
    }
}

fn signed(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::testing::T0;

    #[test]
    fn replay_rules_at_their_edges() {
        let window = FRESHNESS_WINDOW.as_millis() as u64;
        let first = check_fresh(None, T0, 5, T0, T0, 0);
        let Ok(seen) = first else {
            panic!("{first:?}");
        };
        // Same boot: seq must grow.
        assert_eq!(
            check_fresh(Some(&seen), T0, 5, T0 + 1000, T0 + 1000, 1000),
            Err(Stale::SeqNotAbove { seq: 5, highest: 5 })
        );
        assert_eq!(
            check_fresh(Some(&seen), T0, 4, T0 + 1000, T0 + 1000, 1000),
            Err(Stale::SeqNotAbove { seq: 4, highest: 5 })
        );
        assert!(check_fresh(Some(&seen), T0, 6, T0 + 1000, T0 + 1000, 1000).is_ok());
        // An older boot is a replay, whatever its seq.
        assert_eq!(
            check_fresh(Some(&seen), T0 - 1, 99, T0, T0, 0),
            Err(Stale::OlderBoot {
                boot: T0 - 1,
                latest: T0
            })
        );
        // A new boot is judged by the clocks: just inside and just outside.
        let new_boot = T0 + 50_000;
        let now = T0 + 60_000;
        for ts in [now - window, now + window] {
            assert!(
                check_fresh(Some(&seen), new_boot, 0, ts, now, 60_000).is_ok(),
                "ts {ts}"
            );
        }
        assert_eq!(
            check_fresh(Some(&seen), new_boot, 0, now - window - 1, now, 60_000),
            Err(Stale::ClockSkew {
                skew_ms: -(window as i64) - 1
            })
        );
        assert_eq!(
            check_fresh(None, new_boot, 0, now + window + 1, now, 60_000),
            Err(Stale::ClockSkew {
                skew_ms: window as i64 + 1
            })
        );
        // Within a boot, lateness: a message held back just inside and just
        // outside the window (its ts says sent at 1 s; it arrives later).
        assert!(check_fresh(Some(&seen), T0, 6, T0 + 1000, 0, 1000 + window).is_ok());
        assert_eq!(
            check_fresh(Some(&seen), T0, 6, T0 + 1000, 0, 1000 + window + 1),
            Err(Stale::Late {
                by_ms: window as i64 + 1
            })
        );
    }

    #[test]
    fn every_stale_message_says_why() {
        let said = |stale: Stale| stale.to_string();
        assert_eq!(
            said(Stale::OlderBoot { boot: 1, latest: 2 }),
            "replay: incarnation 1 is older than the latest seen, 2"
        );
        assert_eq!(
            said(Stale::SeqNotAbove { seq: 4, highest: 5 }),
            "replay: seq 4 is not above 5, already seen"
        );
        let window = FRESHNESS_WINDOW.as_secs();
        assert_eq!(
            said(Stale::Late { by_ms: 61_300 }),
            format!("replay: delivered 61.3 s late (more than {window} s)")
        );
        assert_eq!(
            said(Stale::ClockSkew {
                skew_ms: -3_600_000
            }),
            format!(
                "clock skew -3600 s: the peer's clock is 3600 s behind ours, \
                 more than the {window} s allowed; fix the clocks (NTP)"
            )
        );
    }

    #[test]
    fn our_clock_stepping_does_not_stale_a_known_boot() {
        let Ok(seen) = check_fresh(None, T0, 0, T0, T0, 0) else {
            panic!("first message refused");
        };
        // Our wall clock jumps a day either way: within a boot it is not used.
        for wall in [T0 - 86_400_000, T0 + 86_400_000] {
            assert!(check_fresh(Some(&seen), T0, 1, T0 + 1000, wall, 1000).is_ok());
        }
    }
}
