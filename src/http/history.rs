//! `GET /history`: the dashboard's charts, as JSON rendered from a
//! [`HistorySnapshot`] (the points `report::history` keeps, copied under the
//! lock). Kept apart from `/status`: it is the dashboard's own, and an
//! answer can carry up to [`HISTORY_WINDOW`] of points per peer.

use serde_json::{Value, json};

use crate::http::snapshot::HistorySnapshot;
use crate::limits::{HISTORY_STEP, HISTORY_WINDOW};
use crate::peers::PeerId;
use crate::report::history::Point;

/// The JSON of `GET /history`: this node's and every peer's points of the
/// last [`HISTORY_WINDOW`], each `[unix_s, cpu, memory, state, load1, disk]`
/// (cpu and memory null while there were no statuses, load1 and disk — the
/// fullest filesystem's percent — null where the host reports none; they
/// come last so that readers of the first four keep working), oldest first. `since` (unix
/// seconds, in the snapshot) leaves out older points, so a page polling it
/// only fetches what changed: the point of the current step, which may still
/// change, and newer.
pub fn history_json(snapshot: &HistorySnapshot) -> Value {
    let points = |points: &[Point]| -> Vec<Value> {
        points
            .iter()
            .map(|point| {
                json!([
                    point.at,
                    point.cpu(),
                    point.memory(),
                    point.state.as_str(),
                    point.load1(),
                    point.disk()
                ])
            })
            .collect()
    };
    let mut sorted: Vec<&(PeerId, Vec<Point>)> = snapshot.peers.iter().collect();
    sorted.sort_by_key(|(id, _)| *id);
    let peers: Vec<Value> = sorted
        .into_iter()
        .map(|(id, ring)| {
            json!({
                "peer": id.to_string(),
                "points": points(ring),
            })
        })
        .collect();
    json!({
        "now": snapshot.now,
        "since": snapshot.since,
        "window_s": HISTORY_WINDOW.as_secs(),
        "step_s": HISTORY_STEP.as_secs(),
        "node": { "name": snapshot.name, "points": points(&snapshot.own) },
        "peers": peers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peers::PeerState;
    use std::net::{IpAddr, Ipv4Addr};

    #[test]
    fn points_are_arrays_and_peers_are_listed_by_address() {
        let point = |at, cpu: Option<u16>, state| Point {
            at,
            cpu_tenths: cpu,
            memory_tenths: cpu.map(|t| t + 1),
            load1_hundredths: cpu.map_or(crate::report::history::NO_LOAD, |t| t * 2),
            disk_percent: cpu.map_or(crate::report::history::NO_DISK, |_| 71),
            state,
        };
        let id = |last| PeerId::new(IpAddr::from(Ipv4Addr::new(10, 0, 0, last)), 5000);
        let snapshot = HistorySnapshot {
            now: 1_700_000_100,
            since: 1_700_000_000,
            name: "alpha".to_string(),
            own: vec![point(1_700_000_050, Some(123), PeerState::Online)],
            peers: vec![
                (id(9), vec![point(1_700_000_060, None, PeerState::Offline)]),
                (id(2), Vec::new()),
            ],
        };
        assert_eq!(
            history_json(&snapshot),
            json!({
                "now": 1_700_000_100_u64,
                "since": 1_700_000_000_u64,
                "window_s": HISTORY_WINDOW.as_secs(),
                "step_s": HISTORY_STEP.as_secs(),
                "node": {"name": "alpha", "points": [[1_700_000_050_u32, 12.3, 12.4, "online", 2.46, 71.0]]},
                "peers": [
                    {"peer": "10.0.0.2", "points": []},
                    {"peer": "10.0.0.9", "points": [[1_700_000_060_u32, null, null, "offline", null, null]]},
                ],
            })
        );
    }
}
