//! Fixtures shared by the unit tests of peers/: identities on loopback, a
//! status report, a table with T = 3 s, and the kinds of a list of events.

pub(crate) use super::*;
pub(crate) use crate::limits::*;
pub(crate) use crate::proto::wire::Member;
pub(crate) use std::net::{IpAddr, Ipv4Addr};
pub(crate) use std::time::{Duration, Instant};

pub(crate) const SEC: Duration = Duration::from_secs(1);

pub(crate) fn id(last: u8) -> PeerId {
    PeerId::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)), 5000)
}

pub(crate) fn report(boot: u64, seq: u64) -> StatusReport {
    StatusReport {
        name: Some("b".into()),
        boot: Some(boot),
        seq: Some(seq),
        interval: SEC,
        cpu: 1.0,
        memory: 2.0,
        health: crate::proto::health::Health::default(),
    }
}

/// A table with offline-after 3 s and interval 1 s (T = 3 s), started at `t0`.
pub(crate) fn table(t0: Instant) -> PeerTable {
    PeerTable::new(t0, 3 * SEC, SEC)
}

pub(crate) fn kinds(events: &[Event]) -> Vec<&'static str> {
    events
        .iter()
        .map(|e| match e {
            Event::Status { .. } => "status",
            Event::Offline { .. } => "offline",
            Event::Online { .. } => "online",
            Event::Left { .. } => "left",
            Event::Flapping { .. } => "flapping",
            Event::CutOff { .. } => "cut_off",
            Event::Restored { .. } => "restored",
            Event::Forgotten { .. } => "forgotten",
            Event::Alert(_) => "alert",
            Event::AlertCleared(_) => "alert_cleared",
        })
        .collect()
}

pub(crate) fn member(last: u8, boot: u64, heard_ms: u64) -> Member {
    Member {
        addr: id(last).0,
        name: Some(format!("m{last}")),
        boot,
        heard_ms,
    }
}

/// Brings `peers` online with statuses every second up to `until`.
pub(crate) fn chatter(table: &mut PeerTable, peers: &[PeerId], from: Instant, until: Instant) {
    let mut at = from;
    let mut seq = 0;
    let mut ignored = Vec::new();
    while at <= until {
        for peer in peers {
            table
                .on_status(*peer, report(1, seq), at, &mut ignored)
                .ok();
        }
        table.tick(at, &mut ignored);
        seq += 1;
        at += SEC;
    }
}

/// A peer on 127.1.x.y (one per IP), for filling the table.
pub(crate) fn nth(n: usize) -> PeerId {
    PeerId::new(
        IpAddr::V4(Ipv4Addr::new(127, 1, (n / 256) as u8, (n % 256) as u8)),
        5000,
    )
}
