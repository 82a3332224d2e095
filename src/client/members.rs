//! `p2pmon members`: the peer table of a running node, read from its
//! `/status` and printed like `serf members` — one row per peer with its
//! state (coloured on a terminal), last cpu and memory, when it was last
//! heard and how long it has been in its state. Text from the node is
//! printed with control characters escaped (`names::for_terminal`).

use std::io::IsTerminal;

use crate::Error;
use crate::cli::MembersArgs;
use crate::client::fetch;
use crate::client::rates::{NetRates, human_rate};
use crate::http::document::{AlertStatus, FilesystemStatus, PeerStatus, StatusDocument};
use crate::names;

pub fn run(args: &MembersArgs) -> Result<(), Error> {
    if args.json {
        // The document as the node sent it, unparsed.
        println!("{}", fetch::get(&args.http, "/status")?);
        return Ok(());
    }
    let status = fetch::status(&args.http)?;
    print!("{}", table(&status, std::io::stdout().is_terminal()));
    Ok(())
}

/// The members table for a /status document. A one-shot table has no
/// network rates (they need two readings: `p2pmon top` shows them).
pub fn table(status: &StatusDocument, colour: bool) -> String {
    table_with_rates(status, colour, &NetRates::default())
}

/// The members table, its RX/s and TX/s from `rates` (kept by `top` across
/// polls). The health columns (LOAD, DISK, RX/s, TX/s) follow the old ones,
/// and only when some peer reports its health: the table of a cluster of
/// older nodes is what it always was.
pub fn table_with_rates(status: &StatusDocument, colour: bool, rates: &NetRates) -> String {
    let health = status.peers.iter().any(has_health);
    let mut rows = vec![
        [
            "PEER",
            "NAME",
            "STATE",
            "CPU",
            "MEMORY",
            "LAST SEEN",
            "SINCE",
        ]
        .map(String::from)
        .to_vec(),
    ];
    if health {
        rows[0].extend(["LOAD", "DISK", "RX/s", "TX/s"].map(String::from));
    }
    for peer in &status.peers {
        let percent = |value: Option<f64>| value.map_or("-".to_string(), |v| format!("{v:.1}%"));
        let state = peer.state.as_deref().unwrap_or("?");
        let state = if peer.flapping {
            format!("{state} (flapping)")
        } else {
            state.to_string()
        };
        let mut row = vec![
            // Text from the node (and its peers) reaches the terminal escaped.
            names::for_terminal(peer.peer.as_deref().unwrap_or("?")).into_owned(),
            names::for_terminal(peer.name.as_deref().unwrap_or("-")).into_owned(),
            names::for_terminal(&state).into_owned(),
            percent(peer.cpu),
            percent(peer.memory),
            peer.last_seen_s
                .map_or("never".to_string(), |s| format!("{} ago", human(s))),
            peer.since_s.map_or("-".to_string(), human),
        ];
        if health {
            let (rx, tx) = rates.of(peer.peer.as_deref().unwrap_or("?"));
            row.extend([
                load_label(peer.load),
                disk_label(&peer.fs),
                human_rate(rx),
                human_rate(tx),
            ]);
        }
        rows.push(row);
    }
    // Firing alerts: a last column, only when some peer has one (a table
    // without alerts is what it always was).
    let alerts: Vec<String> = status.peers.iter().map(|p| alert_cell(&p.alerts)).collect();
    let with_alerts = alerts.iter().any(|cell| !cell.is_empty());
    let columns = rows[0].len();
    let widths: Vec<usize> = (0..columns)
        .map(|column| rows.iter().map(|row| row[column].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for (index, row) in rows.iter().enumerate() {
        let mut line = String::new();
        for (column, cell) in row.iter().enumerate() {
            let padded = format!("{cell:<width$}", width = widths[column]);
            let painted = if colour && column == 2 {
                paint(cell, &padded)
            } else {
                padded
            };
            line.push_str(&painted);
            if column + 1 < columns {
                line.push_str("  ");
            }
        }
        if with_alerts {
            let cell = match index.checked_sub(1) {
                None => "ALERTS",
                Some(peer) => alerts.get(peer).map_or("", String::as_str),
            };
            line.push_str("  ");
            line.push_str(&if colour && index > 0 && !cell.is_empty() {
                format!("\x1b[31m{cell}\x1b[0m")
            } else {
                cell.to_string()
            });
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    if !status.node.alerts.is_empty() {
        let firing: Vec<String> = status
            .node
            .alerts
            .iter()
            .map(|alert| {
                let value = alert.value.map_or("?".to_string(), |v| v.to_string());
                let since = alert.since_s.map_or("?".to_string(), human);
                format!(
                    "{} ({value}, {since})",
                    alert.rule.as_deref().unwrap_or("?")
                )
            })
            .collect();
        let line = format!("Alerts on this node: {}", firing.join(", "));
        out.push_str(&names::for_terminal(&line));
        out.push('\n');
    }
    out
}

/// A peer's firing alerts, as one cell: `cpu > 90 for 30s, disk > 90`.
fn alert_cell(alerts: &[AlertStatus]) -> String {
    let rules: Vec<&str> = alerts
        .iter()
        .map(|alert| alert.rule.as_deref().unwrap_or("?"))
        .collect();
    names::for_terminal(&rules.join(", ")).into_owned()
}

/// Whether a peer reported any of the health a table shows.
pub(crate) fn has_health(peer: &PeerStatus) -> bool {
    peer.load.is_some() || !peer.fs.is_empty() || peer.net_rx.is_some() || peer.net_tx.is_some()
}

/// The 1 minute load, "0.52", or "-".
pub(crate) fn load_label(load: Option<[f64; 3]>) -> String {
    load.map_or("-".to_string(), |[one, _, _]| format!("{one:.2}"))
}

/// The fullest filesystem, "71.3% /" (its mount escaped), or "-".
pub(crate) fn disk_label(fs: &[FilesystemStatus]) -> String {
    FilesystemStatus::fullest(fs).map_or("-".to_string(), |fs| {
        format!("{:.1}% {}", fs.used, names::for_terminal(&fs.mount))
    })
}

/// ANSI colour by state (only on a terminal).
fn paint(state: &str, padded: &str) -> String {
    let code = if state.contains("flapping") {
        "33"
    } else if state.starts_with("online") {
        "32"
    } else if state.starts_with("offline") {
        "31"
    } else {
        "2"
    };
    format!("\x1b[{code}m{padded}\x1b[0m")
}

/// Seconds as "4.2s", "3m10s", "2h05m".
pub(crate) fn human(seconds: f64) -> String {
    let whole = seconds.max(0.0) as u64;
    if seconds < 60.0 {
        format!("{seconds:.1}s")
    } else if whole < 3600 {
        format!("{}m{:02}s", whole / 60, whole % 60)
    } else {
        format!("{}h{:02}m", whole / 3600, (whole % 3600) / 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn document(status: Value) -> StatusDocument {
        StatusDocument::parse(&status.to_string()).unwrap_or_default()
    }

    #[test]
    fn the_table_lines_up_and_colours_only_on_request() {
        let status = document(json!({
            "node": {"name": "a"},
            "peers": [
                {"peer": "10.0.0.2", "name": "b", "state": "online", "cpu": 3.2, "memory": 41.7,
                 "last_seen_s": 0.4, "since_s": 125.0, "flapping": false},
                {"peer": "10.0.0.3:5001", "name": null, "state": "offline", "cpu": null, "memory": null,
                 "last_seen_s": null, "since_s": 7300.0, "flapping": true},
            ]
        }));
        let plain = table(&status, false);
        let lines: Vec<&str> = plain.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("PEER"));
        assert!(
            lines[1].contains("10.0.0.2")
                && lines[1].contains("3.2%")
                && lines[1].contains("0.4s ago")
        );
        assert!(lines[1].contains("2m05s"));
        assert!(
            lines[2].contains("offline (flapping)")
                && lines[2].contains("never")
                && lines[2].contains("2h01m")
        );
        // Columns line up: the state column starts at the same offset.
        let offset = |line: &str, word: &str| line.find(word);
        assert_eq!(offset(lines[1], "online"), offset(lines[2], "offline"));
        assert!(!plain.contains('\x1b'));
        assert!(table(&status, true).contains("\x1b[32m"));
    }

    #[test]
    fn firing_alerts_are_a_last_column_and_a_line_for_this_node() {
        let status = document(json!({
            "node": {"name": "a", "alerts": [{"rule": "memory > 90", "since_s": 12.3, "value": 95.5}]},
            "peers": [
                {"peer": "10.0.0.2", "name": "b", "state": "online", "cpu": 97.3, "memory": 41.7,
                 "last_seen_s": 0.4, "since_s": 125.0,
                 "alerts": [{"rule": "cpu > 90 for 30s", "since_s": 40.0, "value": 97.3},
                            {"rule": "load1 > 4", "since_s": 2.0, "value": 4.5}]},
                {"peer": "10.0.0.3", "name": "c", "state": "offline", "cpu": 1.0, "memory": 1.0,
                 "last_seen_s": 9.0, "since_s": 3.0},
            ]
        }));
        assert_eq!(
            table(&status, false),
            "PEER      NAME  STATE    CPU    MEMORY  LAST SEEN  SINCE  ALERTS\n\
             10.0.0.2  b     online   97.3%  41.7%   0.4s ago   2m05s  cpu > 90 for 30s, load1 > 4\n\
             10.0.0.3  c     offline  1.0%   1.0%    9.0s ago   3.0s\n\
             Alerts on this node: memory > 90 (95.5, 12.3s)\n"
        );
        assert!(table(&status, true).contains("\x1b[31mcpu > 90 for 30s, load1 > 4\x1b[0m"));
    }

    #[test]
    fn health_columns_follow_the_old_ones_when_a_peer_reports_health() {
        let status = document(json!({
            "peers": [
                {"peer": "10.0.0.2", "name": "b", "state": "online", "cpu": 3.2, "memory": 41.7,
                 "last_seen_s": 0.4, "since_s": 125.0, "load": [0.5, 1.25, 2.0], "cpus": 2,
                 "fs": [{"mount": "/", "used": 40.0, "size": 10},
                        {"mount": "/var\u{1b}", "used": 91.25, "size": 10}],
                 "net_rx": 1000, "net_tx": 2000, "uptime_s": 100},
                {"peer": "10.0.0.3", "name": "c", "state": "online", "cpu": 1.0, "memory": 2.0,
                 "last_seen_s": 1.0, "since_s": 2.0},
            ]
        }));
        assert_eq!(
            table(&status, false),
            "PEER      NAME  STATE   CPU   MEMORY  LAST SEEN  SINCE  LOAD  DISK            RX/s  TX/s\n\
             10.0.0.2  b     online  3.2%  41.7%   0.4s ago   2m05s  0.50  91.2% /var\\x1b  -     -\n\
             10.0.0.3  c     online  1.0%  2.0%    1.0s ago   2.0s   -     -               -     -\n"
        );
        // With two readings 5 s of uptime apart, the rates show.
        let mut rates = NetRates::default();
        rates.record_document(&status);
        let later = document(
            json!({"peers": [{"peer": "10.0.0.2", "name": "b", "state": "online",
            "cpu": 3.2, "memory": 41.7, "last_seen_s": 0.4, "since_s": 130.0, "load": [0.5, 1.0, 1.0],
            "net_rx": 1000 + 5 * 1536, "net_tx": 2000 + 5 * 3 * 1024 * 1024, "uptime_s": 105}]}),
        );
        rates.record_document(&later);
        let line = table_with_rates(&later, false, &rates);
        assert!(line.ends_with("0.50  -     1.5K/s  3.0M/s\n"), "{line}");
    }

    #[test]
    fn control_characters_from_the_node_are_escaped_not_printed() {
        let status = document(json!({
            "peers": [{"peer": "10.0.0.2", "name": "\u{1b}]0;x\u{7}\r\u{202e}", "state": "online\u{1b}[2J"}]
        }));
        let plain = table(&status, false);
        assert!(
            !plain.contains(['\x1b', '\x07', '\r', '\u{202e}']),
            "{plain:?}"
        );
        assert!(plain.contains(r"\x1b]0;x\x07\x0d\u{202e}"), "{plain:?}");
        assert!(plain.contains(r"online\x1b[2J"), "{plain:?}");
    }
}
