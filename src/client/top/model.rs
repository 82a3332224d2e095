//! The state of `p2pmon top`, apart from any drawing: a row per peer of the
//! node's `/status` document, the sort orders, the CPU history the client
//! keeps for the sparklines (the node keeps none it could ask for), the
//! network rates it takes from successive polls ([`NetRates`]), and the
//! [`View`] the screen draws from. Plain types over the typed document,
//! tested without a terminal.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use crate::Error;
use crate::cli::SortKey;
use crate::client::members;
use crate::client::rates::NetRates;
use crate::http::document::{FilesystemStatus, NodeStatus, PeerStatus, StatusDocument};
use crate::names;

/// CPU samples kept per peer, one per refresh: the sparkline's last five
/// minutes. Peers that leave /status are forgotten, so memory stays bounded
/// by the node's own peer limit.
pub const HISTORY_SAMPLES: usize = 300;

/// One peer's row, as shown: text escaped for the terminal, unknowns kept
/// unknown (the document already reads anything missing or odd as unknown).
#[derive(Debug, Clone, PartialEq)]
pub struct PeerRow {
    /// Position in /status, which lists peers by address.
    pub order: usize,
    pub peer: String,
    pub name: Option<String>,
    pub state: String,
    pub flapping: bool,
    pub cpu: Option<f64>,
    pub memory: Option<f64>,
    pub last_seen_s: Option<f64>,
    pub since_s: Option<f64>,
    /// The rules of its firing alerts, escaped.
    pub alerts: Vec<String>,
    /// 1 minute load average.
    pub load1: Option<f64>,
    /// The fullest filesystem's percent used.
    pub disk: Option<f64>,
    /// "1 minute load", "fullest filesystem" as `members` prints them.
    pub load_label: String,
    pub disk_label: String,
    /// Bytes per second, from the client's successive polls.
    pub rx: Option<f64>,
    pub tx: Option<f64>,
    /// Whether the peer reported any health (older peers do not).
    pub has_health: bool,
}

impl PeerRow {
    /// The row of `peer`, its network rates from `rates`.
    pub fn of(order: usize, peer: &PeerStatus, rates: &NetRates) -> PeerRow {
        let (rx, tx) = rates.of(peer.peer.as_deref().unwrap_or("?"));
        // Text from the node reaches the terminal with control characters escaped.
        let text = |text: &Option<String>| {
            text.as_deref()
                .map(|text| names::for_terminal(text).into_owned())
        };
        PeerRow {
            order,
            peer: text(&peer.peer).unwrap_or_else(|| "?".to_string()),
            name: text(&peer.name),
            state: text(&peer.state).unwrap_or_else(|| "?".to_string()),
            flapping: peer.flapping,
            cpu: peer.cpu,
            memory: peer.memory,
            last_seen_s: peer.last_seen_s,
            since_s: peer.since_s,
            alerts: peer
                .alerts
                .iter()
                .map(|alert| text(&alert.rule).unwrap_or_else(|| "?".to_string()))
                .collect(),
            load1: peer.load.map(|[one, _, _]| one),
            disk: FilesystemStatus::fullest(&peer.fs).map(|fs| fs.used),
            load_label: members::load_label(peer.load),
            disk_label: members::disk_label(&peer.fs),
            rx,
            tx,
            has_health: members::has_health(peer),
        }
    }

    /// The state with its firing alerts: `online ! cpu > 90, disk > 90`.
    pub fn state_cell(&self) -> String {
        if self.alerts.is_empty() {
            self.state_label()
        } else {
            format!("{} ! {}", self.state_label(), self.alerts.join(", "))
        }
    }

    /// Bytes per second both ways, for the network sort.
    fn net(&self) -> Option<f64> {
        match (self.rx, self.tx) {
            (None, None) => None,
            (rx, tx) => Some(rx.unwrap_or(0.0) + tx.unwrap_or(0.0)),
        }
    }

    /// The state as shown: `offline (flapping)` like `p2pmon members`.
    pub fn state_label(&self) -> String {
        if self.flapping {
            format!("{} (flapping)", self.state)
        } else {
            self.state.clone()
        }
    }

    pub fn is_online(&self) -> bool {
        self.state == "online"
    }

    /// "4.2s ago", or "never".
    pub fn last_seen_label(&self) -> String {
        self.last_seen_s.map_or("never".to_string(), |s| {
            format!("{} ago", members::human(s))
        })
    }

    pub fn since_label(&self) -> String {
        self.since_s.map_or("-".to_string(), members::human)
    }

    /// Lower is more worrying, for the state sort.
    fn trouble_rank(&self) -> (u8, bool) {
        let rank = match self.state.as_str() {
            "offline" => 0,
            "online" => 2,
            "left" => 3,
            _ => 1,
        };
        (rank, !self.flapping)
    }
}

/// The peers of a /status document, in its order.
#[cfg(test)]
pub fn rows(status: &StatusDocument) -> Vec<PeerRow> {
    rows_with_rates(status, &NetRates::default())
}

/// The peers of a /status document, in its order, with network rates.
pub fn rows_with_rates(status: &StatusDocument, rates: &NetRates) -> Vec<PeerRow> {
    status
        .peers
        .iter()
        .enumerate()
        .map(|(order, peer)| PeerRow::of(order, peer, rates))
        .collect()
}

/// Sorts rows by `key`; ties keep the node's order (by address).
pub fn sort_rows(rows: &mut [PeerRow], key: SortKey) {
    // Unknown numbers sort after every known one in the descending sorts.
    let descending = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) => b.total_cmp(&a),
        (a, b) => b.is_some().cmp(&a.is_some()),
    };
    rows.sort_by(|a, b| {
        let by_key = match key {
            SortKey::Peer => std::cmp::Ordering::Equal,
            SortKey::Name => {
                let name = |row: &PeerRow| row.name.as_ref().map(|n| n.to_lowercase());
                // Nameless peers last.
                match (name(a), name(b)) {
                    (Some(x), Some(y)) => x.cmp(&y),
                    (x, y) => y.is_some().cmp(&x.is_some()),
                }
            }
            SortKey::State => a.trouble_rank().cmp(&b.trouble_rank()),
            SortKey::Cpu => descending(a.cpu, b.cpu),
            SortKey::Memory => descending(a.memory, b.memory),
            // Never heard of is the longest silence of all.
            SortKey::Seen => {
                let silence = |row: &PeerRow| Some(row.last_seen_s.unwrap_or(f64::INFINITY));
                descending(silence(a), silence(b))
            }
            SortKey::Load => descending(a.load1, b.load1),
            SortKey::Disk => descending(a.disk, b.disk),
            SortKey::Net => descending(a.net(), b.net()),
        };
        by_key.then(a.order.cmp(&b.order))
    });
}

/// The /status document with its peers sorted by `key` (for the plain table).
#[cfg(test)]
pub fn sorted_status(status: &StatusDocument, key: SortKey) -> StatusDocument {
    sorted_status_with_rates(status, key, &NetRates::default())
}

/// The same, sorting by network rates from `rates` (`--sort net`).
pub fn sorted_status_with_rates(
    status: &StatusDocument,
    key: SortKey,
    rates: &NetRates,
) -> StatusDocument {
    let mut rows = rows_with_rates(status, rates);
    sort_rows(&mut rows, key);
    StatusDocument {
        node: status.node.clone(),
        peers: rows
            .iter()
            .filter_map(|row| status.peers.get(row.order).cloned())
            .collect(),
    }
}

/// The last CPU readings of every peer, one per refresh, kept by the client:
/// a bounded ring per peer, and a gap (None) while the peer is not online so
/// that a stale reading does not draw a flat line.
#[derive(Debug, Default)]
pub struct History {
    cpu: HashMap<String, VecDeque<Option<f64>>>,
}

impl History {
    /// Adds one reading per peer and forgets peers no longer listed.
    pub fn record(&mut self, rows: &[PeerRow]) {
        self.cpu
            .retain(|peer, _| rows.iter().any(|row| &row.peer == peer));
        for row in rows {
            let ring = self.cpu.entry(row.peer.clone()).or_default();
            if ring.len() == HISTORY_SAMPLES {
                ring.pop_front();
            }
            ring.push_back(row.cpu.filter(|_| row.is_online()));
        }
    }

    pub fn cpu(&self, peer: &str) -> Option<&VecDeque<Option<f64>>> {
        self.cpu.get(peer)
    }
}

/// What a key asks of the view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Quit,
    Sort(SortKey),
    NextSort,
    PreviousSort,
    Scroll(isize),
}

/// What the full-screen view shows, between polls: the state the screen
/// draws from, and changes only through [`View::update`] (a poll's result)
/// and [`View::apply`] (a key's action).
#[derive(Debug)]
pub struct View {
    pub addr: String,
    /// The node's own line of the last answer.
    pub node: NodeStatus,
    /// In the chosen order.
    pub rows: Vec<PeerRow>,
    pub history: History,
    /// Received and sent counters per peer, for the rates.
    pub rates: NetRates,
    pub sort: SortKey,
    /// Rows scrolled past, at most the last row.
    pub scroll: usize,
    /// When the node last answered.
    pub answered: Instant,
    /// Why the last poll failed, until one succeeds.
    pub error: Option<String>,
}

impl View {
    /// The view of a node's first answer.
    pub fn new(addr: &str, sort: SortKey, status: StatusDocument, now: Instant) -> View {
        let mut view = View {
            addr: addr.to_string(),
            node: NodeStatus::default(),
            rows: Vec::new(),
            history: History::default(),
            rates: NetRates::default(),
            sort,
            scroll: 0,
            answered: now,
            error: None,
        };
        view.update(Ok(status), now);
        view
    }

    /// A poll's result: a new answer replaces the rows and adds to the
    /// history; a failure keeps what the node last said, and says why.
    pub fn update(&mut self, polled: Result<StatusDocument, Error>, now: Instant) {
        match polled {
            Ok(status) => {
                self.rates.record_document(&status);
                self.rows = rows_with_rates(&status, &self.rates);
                self.history.record(&self.rows);
                self.node = status.node;
                self.answered = now;
                self.error = None;
            }
            Err(e) => self.error = Some(e.to_string()),
        }
        sort_rows(&mut self.rows, self.sort);
    }

    pub fn apply(&mut self, action: Action) {
        match action {
            Action::Quit => {}
            Action::Sort(key) => self.sort = key,
            Action::NextSort => self.sort = self.sort.next(),
            Action::PreviousSort => self.sort = self.sort.previous(),
            Action::Scroll(by) => {
                let last = self.rows.len().saturating_sub(1);
                self.scroll = self.scroll.saturating_add_signed(by).min(last);
            }
        }
        sort_rows(&mut self.rows, self.sort);
    }

    /// Whether any peer reports its health: the health columns show then.
    pub fn has_health(&self) -> bool {
        self.rows.iter().any(|row| row.has_health)
    }

    /// How many peers are online now.
    pub fn online(&self) -> usize {
        self.rows.iter().filter(|row| row.is_online()).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn document(status: Value) -> StatusDocument {
        StatusDocument::parse(&status.to_string()).unwrap_or_default()
    }

    fn status() -> StatusDocument {
        document(json!({
            "node": {"name": "a", "cut_off": false},
            "peers": [
                {"peer": "10.0.0.2", "name": "bravo", "state": "online", "cpu": 3.2,
                 "memory": 41.7, "last_seen_s": 0.4, "since_s": 125.0, "flapping": false},
                {"peer": "10.0.0.3", "name": "Alpha", "state": "offline", "cpu": 55.0,
                 "memory": 10.0, "last_seen_s": 9.0, "since_s": 3.0, "flapping": false},
                {"peer": "10.0.0.4:5001", "name": null, "state": "left", "cpu": null,
                 "memory": null, "last_seen_s": null, "since_s": 7300.0, "flapping": false},
                {"peer": "10.0.0.5", "name": "charlie", "state": "online", "cpu": 80.0,
                 "memory": 90.0, "last_seen_s": 1.0, "since_s": 2.0, "flapping": true},
            ]
        }))
    }

    fn order(rows: &[PeerRow]) -> Vec<&str> {
        rows.iter().map(|row| row.peer.as_str()).collect()
    }

    #[test]
    fn rows_read_every_field_and_tolerate_missing_ones() {
        let rows = rows(&status());
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[0].name.as_deref(), Some("bravo"));
        assert_eq!(rows[0].last_seen_label(), "0.4s ago");
        assert_eq!(rows[0].since_label(), "2m05s");
        assert_eq!(rows[2].last_seen_label(), "never");
        assert_eq!(rows[3].state_label(), "online (flapping)");
        let odd = super::rows(&document(json!({"peers": [{"cpu": "high"}]})));
        assert_eq!((odd[0].peer.as_str(), odd[0].cpu), ("?", None));
        assert!(super::rows(&document(json!({"peers": 3}))).is_empty());
        assert_eq!(rows[0].state_cell(), "online");
        let alerting = super::rows(&document(json!({"peers": [{"state": "online",
            "alerts": [{"rule": "cpu > 90"}, {"rule": "disk > 90\u{1b}"}, 3]}]})));
        assert_eq!(
            alerting[0].state_cell(),
            "online ! cpu > 90, disk > 90\\x1b, ?"
        );
    }

    #[test]
    fn every_sort_key_orders_as_documented() {
        let sorted = |key| {
            let mut rows = rows(&status());
            sort_rows(&mut rows, key);
            order(&rows)
                .into_iter()
                .map(String::from)
                .collect::<Vec<_>>()
        };
        let (b, a, gone, c) = ("10.0.0.2", "10.0.0.3", "10.0.0.4:5001", "10.0.0.5");
        assert_eq!(sorted(SortKey::Peer), [b, a, gone, c]);
        assert_eq!(sorted(SortKey::Name), [a, b, c, gone]);
        assert_eq!(sorted(SortKey::State), [a, c, b, gone]);
        assert_eq!(sorted(SortKey::Cpu), [c, a, b, gone]);
        assert_eq!(sorted(SortKey::Memory), [c, b, a, gone]);
        assert_eq!(sorted(SortKey::Seen), [gone, a, c, b]);
        // The plain table follows the same order.
        let plain = members::table(&sorted_status(&status(), SortKey::Cpu), false);
        let peers: Vec<&str> = plain
            .lines()
            .skip(1)
            .filter_map(|l| l.split_whitespace().next())
            .collect();
        assert_eq!(peers, [c, a, b, gone]);
    }

    #[test]
    fn sort_keys_cycle_and_map_from_digits() {
        assert_eq!(SortKey::Seen.next(), SortKey::Load);
        assert_eq!(SortKey::Net.next(), SortKey::Peer);
        assert_eq!(SortKey::Peer.previous(), SortKey::Net);
        assert_eq!(SortKey::Cpu.next(), SortKey::Memory);
        assert_eq!(SortKey::from_digit('1'), Some(SortKey::Peer));
        assert_eq!(SortKey::from_digit('6'), Some(SortKey::Seen));
        assert_eq!(SortKey::from_digit('7'), Some(SortKey::Load));
        assert_eq!(SortKey::from_digit('8'), Some(SortKey::Disk));
        assert_eq!(SortKey::from_digit('9'), Some(SortKey::Net));
        assert_eq!(SortKey::from_digit('0'), None);
        assert_eq!(SortKey::from_digit('x'), None);
    }

    #[test]
    fn the_plain_tables_are_what_they_were_before_the_document_was_typed() {
        // Printed by the untyped (serde_json::Value) members and top, kept
        // byte for byte: odd fields and entries read as unknown.
        let status = document(json!({
            "node": {"name": "a", "cut_off": false},
            "peers": [
                {"peer": "10.0.0.2", "name": "bravo", "state": "online", "cpu": 3.25,
                 "memory": 41.7, "last_seen_s": 0.4, "since_s": 125.0, "flapping": false},
                {"peer": "10.0.0.3", "name": "Alpha\u{1b}[2J", "state": "offline", "cpu": 55.0,
                 "memory": 10.0, "last_seen_s": 9.0, "since_s": 3.0, "flapping": false},
                {"peer": "10.0.0.4:5001", "name": null, "state": "left", "cpu": null,
                 "memory": null, "last_seen_s": null, "since_s": 7300.0, "flapping": false},
                {"peer": "10.0.0.5", "name": "charlie", "state": "online", "cpu": 80.0,
                 "memory": 90.0, "last_seen_s": 1.0, "since_s": 2.0, "flapping": true},
                {"cpu": "high", "state": 3, "since_s": "x", "flapping": "yes"},
                7,
            ]
        }));
        let plain = |key| members::table(&sorted_status(&status, key), false);
        assert_eq!(
            plain(SortKey::Peer),
            "PEER           NAME          STATE              CPU    MEMORY  LAST SEEN  SINCE\n10.0.0.2       bravo         online             3.2%   41.7%   0.4s ago   2m05s\n10.0.0.3       Alpha\\x1b[2J  offline            55.0%  10.0%   9.0s ago   3.0s\n10.0.0.4:5001  -             left               -      -       never      2h01m\n10.0.0.5       charlie       online (flapping)  80.0%  90.0%   1.0s ago   2.0s\n?              -             ?                  -      -       never      -\n?              -             ?                  -      -       never      -\n"
        );
        assert_eq!(
            plain(SortKey::Cpu),
            "PEER           NAME          STATE              CPU    MEMORY  LAST SEEN  SINCE\n10.0.0.5       charlie       online (flapping)  80.0%  90.0%   1.0s ago   2.0s\n10.0.0.3       Alpha\\x1b[2J  offline            55.0%  10.0%   9.0s ago   3.0s\n10.0.0.2       bravo         online             3.2%   41.7%   0.4s ago   2m05s\n10.0.0.4:5001  -             left               -      -       never      2h01m\n?              -             ?                  -      -       never      -\n?              -             ?                  -      -       never      -\n"
        );
        assert_eq!(
            plain(SortKey::Seen),
            "PEER           NAME          STATE              CPU    MEMORY  LAST SEEN  SINCE\n10.0.0.4:5001  -             left               -      -       never      2h01m\n?              -             ?                  -      -       never      -\n?              -             ?                  -      -       never      -\n10.0.0.3       Alpha\\x1b[2J  offline            55.0%  10.0%   9.0s ago   3.0s\n10.0.0.5       charlie       online (flapping)  80.0%  90.0%   1.0s ago   2.0s\n10.0.0.2       bravo         online             3.2%   41.7%   0.4s ago   2m05s\n"
        );
        assert_eq!(
            members::table(&status, true),
            "PEER           NAME          \u{1b}[2mSTATE            \u{1b}[0m  CPU    MEMORY  LAST SEEN  SINCE\n10.0.0.2       bravo         \u{1b}[32monline           \u{1b}[0m  3.2%   41.7%   0.4s ago   2m05s\n10.0.0.3       Alpha\\x1b[2J  \u{1b}[31moffline          \u{1b}[0m  55.0%  10.0%   9.0s ago   3.0s\n10.0.0.4:5001  -             \u{1b}[2mleft             \u{1b}[0m  -      -       never      2h01m\n10.0.0.5       charlie       \u{1b}[33monline (flapping)\u{1b}[0m  80.0%  90.0%   1.0s ago   2.0s\n?              -             \u{1b}[2m?                \u{1b}[0m  -      -       never      -\n?              -             \u{1b}[2m?                \u{1b}[0m  -      -       never      -\n"
        );
        for odd in [json!({"peers": 3}), json!([1])] {
            assert_eq!(
                members::table(&document(odd), false),
                "PEER  NAME  STATE  CPU  MEMORY  LAST SEEN  SINCE\n"
            );
        }
    }

    /// Three peers reporting health, at uptime `uptime`, with network
    /// counters grown by `rx` and `tx` bytes a second, and one older peer.
    fn health_status(uptime: u64) -> StatusDocument {
        let peer = |ip: &str, load: f64, disk: f64, rx: u64, tx: u64| {
            json!({"peer": ip, "state": "online", "cpu": 1.0, "memory": 1.0,
                   "load": [load, 0.0, 0.0],
                   "fs": [{"mount": "/", "used": 10.0, "size": 1}, {"mount": "/data", "used": disk, "size": 1}],
                   "net_rx": rx * uptime, "net_tx": tx * uptime, "uptime_s": uptime})
        };
        document(json!({"peers": [
            peer("10.0.0.2", 0.5, 95.0, 100, 0),
            peer("10.0.0.3", 3.0, 20.0, 5000, 5000),
            peer("10.0.0.4", 1.0, 60.0, 0, 100_000),
            {"peer": "10.0.0.5", "state": "online", "cpu": 1.0, "memory": 1.0},
        ]}))
    }

    #[test]
    fn health_columns_sort_and_rates_come_from_successive_polls() {
        let now = Instant::now();
        let mut view = View::new("127.0.0.1:5080", SortKey::Load, health_status(100), now);
        assert!(view.has_health());
        let (b, c, d, old) = ("10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5");
        assert_eq!(order(&view.rows), [c, d, b, old]);
        assert_eq!(view.rows[0].load_label, "3.00");
        assert_eq!(view.rows[2].disk_label, "95.0% /data");
        view.apply(Action::Sort(SortKey::Disk));
        assert_eq!(order(&view.rows), [b, d, c, old]);
        // One poll is no rate: the network sort keeps the node's order.
        view.apply(Action::Sort(SortKey::Net));
        assert_eq!(order(&view.rows), [b, c, d, old]);
        assert_eq!((view.rows[0].rx, view.rows[0].tx), (None, None));
        // The same statuses polled again (peers send slower than top polls).
        view.update(Ok(health_status(100)), now);
        assert_eq!(view.rows[0].rx, None);
        view.update(Ok(health_status(105)), now);
        assert_eq!(order(&view.rows), [d, c, b, old]);
        let row = |view: &View, ip: &str| view.rows.iter().find(|r| r.peer == ip).cloned();
        assert_eq!(
            row(&view, c).map(|r| (r.rx, r.tx)),
            Some((Some(5000.0), Some(5000.0)))
        );
        assert_eq!(
            row(&view, old).map(|r| (r.rx, r.has_health)),
            Some((None, false))
        );
        // A reboot (uptime and counters restart): no rate until two new readings.
        view.update(Ok(health_status(3)), now);
        assert_eq!(row(&view, c).and_then(|r| r.rx), None);
        // The plain table takes the same columns and order.
        let mut rates = NetRates::default();
        rates.record_document(&health_status(100));
        rates.record_document(&health_status(110));
        let sorted = sorted_status_with_rates(&health_status(110), SortKey::Net, &rates);
        let plain = members::table_with_rates(&sorted, false, &rates);
        let lines: Vec<&str> = plain.lines().collect();
        assert!(
            lines[0].ends_with("LOAD  DISK         RX/s    TX/s"),
            "{plain}"
        );
        assert!(
            lines[1].starts_with(d) && lines[1].ends_with("0B/s    98K/s"),
            "{plain}"
        );
        assert!(
            lines[4].starts_with(old) && lines[4].ends_with("-     -            -       -"),
            "{plain}"
        );
    }

    #[test]
    fn the_view_follows_polls_and_keys() {
        let now = Instant::now();
        let mut view = View::new("127.0.0.1:5080", SortKey::Cpu, status(), now);
        assert_eq!(
            order(&view.rows),
            ["10.0.0.5", "10.0.0.3", "10.0.0.2", "10.0.0.4:5001"]
        );
        assert_eq!((view.online(), view.node.name.as_deref()), (2, Some("a")));
        view.apply(Action::Sort(SortKey::Peer));
        assert_eq!(order(&view.rows)[0], "10.0.0.2");
        view.apply(Action::Scroll(10));
        assert_eq!(view.scroll, 3, "scrolling stops at the last row");
        view.apply(Action::Scroll(-1));
        assert_eq!(view.scroll, 2);
        // A failed poll keeps what the node last said, and says why.
        let later = now + std::time::Duration::from_secs(1);
        view.update(Err(Error::Runtime("no answer".into())), later);
        assert_eq!((view.rows.len(), view.answered), (4, now));
        assert_eq!(view.error.as_deref(), Some("no answer"));
        let history = view.history.cpu("10.0.0.2").map(VecDeque::len);
        assert_eq!(history, Some(1));
        view.update(Ok(status()), later);
        assert_eq!((view.error.as_deref(), view.answered), (None, later));
        assert_eq!(view.history.cpu("10.0.0.2").map(VecDeque::len), Some(2));
    }

    #[test]
    fn history_is_a_bounded_ring_per_listed_peer() {
        let mut history = History::default();
        let mut rows = rows(&status());
        for _ in 0..HISTORY_SAMPLES + 5 {
            history.record(&rows);
        }
        let bravo = history.cpu("10.0.0.2").map(VecDeque::len);
        assert_eq!(bravo, Some(HISTORY_SAMPLES));
        // Offline and left peers leave gaps, not their stale last reading.
        let alpha = history.cpu("10.0.0.3");
        assert!(alpha.is_some_and(|ring| ring.iter().all(Option::is_none)));
        assert_eq!(history.cpu("10.0.0.2").and_then(|r| r[0]), Some(3.2));
        // A peer gone from /status is forgotten.
        rows.retain(|row| row.peer != "10.0.0.2");
        history.record(&rows);
        assert!(history.cpu("10.0.0.2").is_none());
        assert_eq!(
            history.cpu("10.0.0.5").map(VecDeque::len),
            Some(HISTORY_SAMPLES)
        );
    }
}
