//! `p2pmon top`: a live view of a running node's peer table. It is a client,
//! not a node: one thread polls the node's `GET /status` once a second (with
//! [`members::fetch_status`]), keeps a short CPU history per peer itself (the
//! node keeps none that it could ask for), and draws a full-screen table with
//! bars and sparklines. The screen needs the `tui` cargo feature (ratatui on
//! crossterm); without it, or when stdout is not a terminal, or with
//! `--count`, it prints the `p2pmon members` table once a second instead.
//!
//! What a row says (sorting, bars, sparklines, the history ring) is plain
//! functions over the /status JSON, tested without a terminal; the screen is
//! a thin shell around them.

use std::collections::{HashMap, VecDeque};
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::Error;
use crate::cli::{SortKey, TopArgs};
use crate::client::members;
use crate::names;

/// How often the node is asked for its peer table.
const REFRESH: Duration = Duration::from_secs(1);
/// CPU samples kept per peer, one per refresh: the sparkline's last five
/// minutes. Peers that leave /status are forgotten, so memory stays bounded
/// by the node's own peer limit.
const HISTORY_SAMPLES: usize = 300;
/// Sparkline levels, lowest to highest; a space marks a gap (not online).
const SPARKS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
/// Partial bar cells, in eighths.
const EIGHTHS: [char; 8] = [' ', '▏', '▎', '▍', '▌', '▋', '▊', '▉'];

/// One peer as /status reports it; anything missing or of the wrong type
/// reads as unknown rather than failing the whole table.
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
}

impl PeerRow {
    pub fn from_json(order: usize, peer: &Value) -> PeerRow {
        // Text from the node reaches the terminal with control characters escaped.
        let text = |key: &str| {
            peer[key]
                .as_str()
                .map(|text| names::for_terminal(text).into_owned())
        };
        PeerRow {
            order,
            peer: text("peer").unwrap_or_else(|| "?".to_string()),
            name: text("name"),
            state: text("state").unwrap_or_else(|| "?".to_string()),
            flapping: peer["flapping"].as_bool() == Some(true),
            cpu: peer["cpu"].as_f64(),
            memory: peer["memory"].as_f64(),
            last_seen_s: peer["last_seen_s"].as_f64(),
            since_s: peer["since_s"].as_f64(),
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
pub fn rows(status: &Value) -> Vec<PeerRow> {
    status["peers"].as_array().map_or_else(Vec::new, |peers| {
        peers
            .iter()
            .enumerate()
            .map(|(order, peer)| PeerRow::from_json(order, peer))
            .collect()
    })
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
        };
        by_key.then(a.order.cmp(&b.order))
    });
}

/// The /status document with its peers sorted by `key` (for the plain table).
pub fn sorted_status(status: &Value, key: SortKey) -> Value {
    let mut rows = rows(status);
    sort_rows(&mut rows, key);
    let peers: Vec<Value> = rows
        .iter()
        .map(|row| status["peers"][row.order].clone())
        .collect();
    json!({ "node": status["node"].clone(), "peers": peers })
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

/// The last `width` samples as a sparkline of exactly `width` cells, newest
/// on the right; 0..100 % on a fixed scale so peers compare at a glance.
pub fn sparkline(samples: &VecDeque<Option<f64>>, width: usize) -> String {
    let shown = samples.len().min(width);
    let mut line = " ".repeat(width - shown);
    for sample in samples.iter().skip(samples.len() - shown) {
        line.push(match sample {
            Some(value) if value.is_finite() => {
                let level = (value.clamp(0.0, 100.0) / 100.0 * 7.0).round() as usize;
                SPARKS[level.min(7)]
            }
            _ => ' ',
        });
    }
    line
}

/// A percentage as a bar of exactly `width` cells, in eighths of a cell.
pub fn bar(percent: Option<f64>, width: usize) -> String {
    let Some(percent) = percent.filter(|p| p.is_finite()) else {
        return " ".repeat(width);
    };
    let eighths = (percent.clamp(0.0, 100.0) / 100.0 * (width * 8) as f64).round() as usize;
    let mut line = "█".repeat(eighths / 8);
    if eighths % 8 > 0 {
        line.push(EIGHTHS[eighths % 8]);
    }
    let used = line.chars().count();
    line.push_str(&" ".repeat(width.saturating_sub(used)));
    line
}

/// "3.2%", or "-" when unknown.
pub fn percent_label(percent: Option<f64>) -> String {
    percent.map_or("-".to_string(), |v| format!("{v:.1}%"))
}

/// GET /status and decode it.
fn poll(addr: &str) -> Result<Value, Error> {
    let body = members::fetch_status(addr)?;
    serde_json::from_str(&body)
        .map_err(|e| Error::Runtime(format!("the node at {addr} sent bad JSON: {e}")))
}

pub fn run(args: &TopArgs) -> Result<(), Error> {
    // No node, no screen: fail (exit 1) before touching the terminal.
    let status = poll(&args.http)?;
    let terminal = std::io::stdout().is_terminal();
    if terminal && args.count.is_none() {
        #[cfg(feature = "tui")]
        return screen::run(args, status);
        #[cfg(not(feature = "tui"))]
        eprintln!("note: built without the `tui` feature: printing plain tables");
    }
    run_plain(args, status, terminal)
}

/// The fallback: the members table every second, `--count` times (or until
/// stdout closes). A node that stops answering is reported on stderr and
/// asked again at the next tick.
fn run_plain(args: &TopArgs, first: Value, colour: bool) -> Result<(), Error> {
    let mut stdout = std::io::stdout().lock();
    let mut status = Ok(first);
    let mut next = Instant::now();
    let mut printed: u64 = 0;
    loop {
        let written = match &status {
            Ok(status) => {
                let table = members::table(&sorted_status(status, args.sort), colour);
                let separator = if printed == 0 { "" } else { "\n" };
                write!(stdout, "{separator}{table}").and_then(|()| stdout.flush())
            }
            Err(e) => {
                eprintln!("warning: {e}");
                Ok(())
            }
        };
        // A closed pipe (`p2pmon top | head`) is a normal end.
        if written.is_err() {
            return Ok(());
        }
        printed += 1;
        if args.count.is_some_and(|count| printed >= count) {
            return Ok(());
        }
        next += REFRESH;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
        status = poll(&args.http);
    }
}

#[cfg(feature = "tui")]
mod screen {
    //! The full-screen view: ratatui draws, crossterm reads keys and resizes.
    //! Everything runs on the calling thread; key presses are read between
    //! polls with a short timeout so `q` answers at once.

    use std::os::fd::AsRawFd;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use mio::unix::SourceFd;
    use std::time::{Duration, Instant};

    use ratatui::crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
    use ratatui::layout::{Constraint, Layout, Rect};
    use ratatui::style::{Color, Modifier, Style};
    use ratatui::text::{Line, Span};
    use ratatui::widgets::{Cell, Paragraph, Row, Table};
    use ratatui::{DefaultTerminal, Frame};
    use serde_json::Value;

    use super::{
        History, PeerRow, REFRESH, SortKey, bar, percent_label, poll, rows, sort_rows, sparkline,
    };
    use crate::Error;
    use crate::cli::TopArgs;

    /// Longest wait for a key before checking the clock again.
    const KEY_WAIT: Duration = Duration::from_millis(100);
    /// Width of the CPU and memory bars, in cells.
    const BAR_WIDTH: usize = 10;
    /// Space between columns.
    const SPACING: u16 = 2;
    /// Narrowest sparkline worth drawing.
    const MIN_SPARK: u16 = 8;

    /// What a key asks for.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Action {
        Quit,
        Sort(SortKey),
        NextSort,
        PreviousSort,
        Scroll(isize),
    }

    /// The action of a key press, if any.
    pub fn action(key: KeyEvent) -> Option<Action> {
        if key.modifiers.contains(KeyModifiers::CONTROL) {
            return (key.code == KeyCode::Char('c')).then_some(Action::Quit);
        }
        match key.code {
            KeyCode::Char('q' | 'Q') | KeyCode::Esc => Some(Action::Quit),
            KeyCode::Char('s') | KeyCode::Right | KeyCode::Tab => Some(Action::NextSort),
            KeyCode::Char('S') | KeyCode::Left | KeyCode::BackTab => Some(Action::PreviousSort),
            KeyCode::Char(digit) => SortKey::from_digit(digit).map(Action::Sort),
            KeyCode::Up => Some(Action::Scroll(-1)),
            KeyCode::Down => Some(Action::Scroll(1)),
            KeyCode::PageUp => Some(Action::Scroll(-10)),
            KeyCode::PageDown => Some(Action::Scroll(10)),
            _ => None,
        }
    }

    /// What is on screen, between polls.
    struct View {
        addr: String,
        status: Value,
        rows: Vec<PeerRow>,
        history: History,
        sort: SortKey,
        scroll: usize,
        /// When the node last answered.
        answered: Instant,
        /// Why the last poll failed, until one succeeds.
        error: Option<String>,
    }

    impl View {
        fn update(&mut self, polled: Result<Value, Error>, now: Instant) {
            match polled {
                Ok(status) => {
                    self.rows = rows(&status);
                    self.history.record(&self.rows);
                    self.status = status;
                    self.answered = now;
                    self.error = None;
                }
                Err(e) => self.error = Some(e.to_string()),
            }
            sort_rows(&mut self.rows, self.sort);
        }

        fn apply(&mut self, action: Action) {
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
    }

    /// Restores the terminal however `run` ends (ratatui's own panic hook
    /// covers a panic).
    struct Restore;

    impl Drop for Restore {
        fn drop(&mut self) {
            ratatui::restore();
        }
    }

    pub fn run(args: &TopArgs, status: Value) -> Result<(), Error> {
        // SIGTERM and SIGHUP would otherwise kill us in raw mode on the
        // alternate screen; a flag (no thread) lets the loop restore first.
        let stop = Arc::new(AtomicBool::new(false));
        for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGHUP] {
            signal_hook::flag::register(signal, Arc::clone(&stop))
                .map_err(|e| Error::Runtime(format!("cannot handle signals: {e}")))?;
        }
        let now = Instant::now();
        let mut view = View {
            addr: args.http.clone(),
            status: Value::Null,
            rows: Vec::new(),
            history: History::default(),
            sort: args.sort,
            scroll: 0,
            answered: now,
            error: None,
        };
        view.update(Ok(status), now);
        let _restore = Restore;
        let mut terminal = ratatui::try_init()
            .map_err(|e| Error::Runtime(format!("cannot set up the terminal: {e}")))?;
        event_loop(&mut terminal, &mut view, &stop)
            .map_err(|e| Error::Runtime(format!("terminal: {e}")))
    }

    fn event_loop(
        terminal: &mut DefaultTerminal,
        view: &mut View,
        stop: &AtomicBool,
    ) -> std::io::Result<()> {
        // We wait for input ourselves, on stdin's readiness, and only then
        // let crossterm read: crossterm 0.28 spins forever at 100 % CPU when
        // the terminal hangs up (its read loop ignores end of file), which
        // left orphaned `top`s burning a core after their terminal closed.
        // A hang-up shows here as "read closed", and we stop.
        let mut input = mio::Poll::new()?;
        let stdin = std::io::stdin().as_raw_fd();
        input.registry().register(
            &mut SourceFd(&stdin),
            mio::Token(0),
            mio::Interest::READABLE,
        )?;
        let mut ready = mio::Events::with_capacity(4);
        let mut next_poll = Instant::now() + REFRESH;
        while !stop.load(Ordering::Relaxed) {
            terminal.draw(|frame| draw(frame, view))?;
            let wait = next_poll.saturating_duration_since(Instant::now());
            match input.poll(&mut ready, Some(wait.min(KEY_WAIT))) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            if ready.iter().any(|e| e.is_read_closed() || e.is_error()) {
                return Ok(());
            }
            while !ready.is_empty() && event::poll(Duration::ZERO)? {
                // A resize needs nothing but the redraw at the top of the loop.
                if let Event::Key(key) = event::read()?
                    && key.kind != KeyEventKind::Release
                {
                    match action(key) {
                        Some(Action::Quit) => return Ok(()),
                        Some(action) => view.apply(action),
                        None => {}
                    }
                }
            }
            let now = Instant::now();
            if now >= next_poll {
                view.update(poll(&view.addr), Instant::now());
                // After a slow poll, start the next second from now, not in a burst.
                next_poll = (next_poll + REFRESH).max(now);
            }
        }
        Ok(())
    }

    fn state_style(row: &PeerRow) -> Style {
        let style = Style::new();
        if row.flapping {
            return style.fg(Color::Yellow);
        }
        match row.state.as_str() {
            "online" => style.fg(Color::Green),
            "offline" => style.fg(Color::Red).add_modifier(Modifier::BOLD),
            _ => style.fg(Color::DarkGray),
        }
    }

    fn level_colour(percent: Option<f64>) -> Color {
        match percent {
            Some(p) if p >= 90.0 => Color::Red,
            Some(p) if p >= 70.0 => Color::Yellow,
            _ => Color::Green,
        }
    }

    /// "12.3% ██▍       ": the number, then the bar on a grey track.
    fn gauge(percent: Option<f64>) -> Cell<'static> {
        Cell::from(Line::from(vec![
            Span::raw(format!("{:>6} ", percent_label(percent))),
            Span::styled(
                bar(percent, BAR_WIDTH),
                Style::new().fg(level_colour(percent)).bg(Color::DarkGray),
            ),
        ]))
    }

    fn header_line(view: &View) -> Line<'static> {
        let node = &view.status["node"];
        let name = crate::names::for_terminal(node["name"].as_str().unwrap_or("?"));
        let online = view.rows.iter().filter(|row| row.is_online()).count();
        let mut spans = vec![
            Span::styled("p2pmon top", Style::new().add_modifier(Modifier::BOLD)),
            Span::raw(format!(
                "  node {name} at {}  ·  {} peers, {online} online  ·  sorted by {}",
                view.addr,
                view.rows.len(),
                view.sort.label()
            )),
        ];
        if node["cut_off"].as_bool() == Some(true) {
            spans.push(Span::styled(
                "  CUT OFF: this node hears no peer",
                Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
            ));
        }
        Line::from(spans)
    }

    fn footer_line(view: &View) -> Line<'static> {
        match &view.error {
            Some(error) => Line::styled(
                format!(
                    "{error} — showing what it said {:.0}s ago; retrying every second",
                    view.answered.elapsed().as_secs_f64()
                ),
                Style::new().fg(Color::Red),
            ),
            None => Line::styled(
                "q quit  s/←/→ sort  1 peer 2 name 3 state 4 cpu 5 memory 6 seen  ↑/↓ scroll",
                Style::new().fg(Color::DarkGray),
            ),
        }
    }

    fn draw(frame: &mut Frame, view: &View) {
        let [header, body, footer] = Layout::vertical([
            Constraint::Length(1),
            Constraint::Fill(1),
            Constraint::Length(1),
        ])
        .areas(frame.area());
        frame.render_widget(Paragraph::new(header_line(view)), header);
        frame.render_widget(Paragraph::new(footer_line(view)), footer);
        if view.rows.is_empty() {
            frame.render_widget(Paragraph::new("no peers yet"), body);
            return;
        }
        frame.render_widget(table(view, body), body);
    }

    fn table(view: &View, area: Rect) -> Table<'static> {
        let width_of = |texts: &mut dyn Iterator<Item = String>, title: &str| {
            let widest = texts.map(|t| t.chars().count()).max().unwrap_or(0);
            u16::try_from(widest.max(title.len())).unwrap_or(u16::MAX)
        };
        let gauge_width = u16::try_from(7 + BAR_WIDTH).unwrap_or(u16::MAX);
        let mut widths = vec![
            width_of(&mut view.rows.iter().map(|r| r.peer.clone()), "PEER"),
            width_of(
                &mut view.rows.iter().map(|r| r.name.clone().unwrap_or_default()),
                "NAME",
            )
            .min(20),
            width_of(&mut view.rows.iter().map(PeerRow::state_label), "STATE"),
            gauge_width,
            gauge_width,
            width_of(
                &mut view.rows.iter().map(PeerRow::last_seen_label),
                "LAST SEEN",
            ),
            width_of(&mut view.rows.iter().map(PeerRow::since_label), "SINCE"),
        ];
        let used: u16 = widths.iter().map(|w| w + SPACING).sum();
        let spark = area.width.saturating_sub(used);
        let spark = if spark >= MIN_SPARK { spark } else { 0 };
        widths.push(spark);

        let titles = [
            (Some(SortKey::Peer), "PEER".to_string()),
            (Some(SortKey::Name), "NAME".to_string()),
            (Some(SortKey::State), "STATE".to_string()),
            (Some(SortKey::Cpu), "CPU".to_string()),
            (Some(SortKey::Memory), "MEMORY".to_string()),
            (Some(SortKey::Seen), "LAST SEEN".to_string()),
            (None, "SINCE".to_string()),
            (None, format!("CPU, LAST {}", span_label(spark))),
        ];
        let header = Row::new(titles.into_iter().map(|(key, title)| {
            let style = Style::new().add_modifier(Modifier::BOLD);
            if key == Some(view.sort) {
                Cell::from(title).style(style.add_modifier(Modifier::REVERSED))
            } else {
                Cell::from(title).style(style)
            }
        }));
        let empty = std::collections::VecDeque::new();
        let rows = view.rows.iter().skip(view.scroll).map(|row| {
            let samples = view.history.cpu(&row.peer).unwrap_or(&empty);
            Row::new(vec![
                Cell::from(row.peer.clone()),
                Cell::from(row.name.clone().unwrap_or_else(|| "-".to_string())),
                Cell::from(row.state_label()).style(state_style(row)),
                gauge(row.cpu),
                gauge(row.memory),
                Cell::from(row.last_seen_label()),
                Cell::from(row.since_label()),
                Cell::from(sparkline(samples, usize::from(spark)))
                    .style(Style::new().fg(Color::Cyan)),
            ])
        });
        Table::new(rows, widths.into_iter().map(Constraint::Length))
            .header(header)
            .column_spacing(SPACING)
    }

    /// The time a sparkline of `cells` one-second samples covers: "45s", "5m".
    fn span_label(cells: u16) -> String {
        let seconds = u64::from(cells) * REFRESH.as_secs().max(1);
        if seconds < 60 {
            format!("{seconds}s")
        } else if seconds % 60 == 0 {
            format!("{}m", seconds / 60)
        } else {
            format!("{}m{:02}s", seconds / 60, seconds % 60)
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn press(code: KeyCode, modifiers: KeyModifiers) -> Option<Action> {
            action(KeyEvent::new(code, modifiers))
        }

        #[test]
        fn keys_quit_and_change_the_sort() {
            let none = KeyModifiers::NONE;
            assert_eq!(press(KeyCode::Char('q'), none), Some(Action::Quit));
            assert_eq!(
                press(KeyCode::Char('c'), KeyModifiers::CONTROL),
                Some(Action::Quit)
            );
            assert_eq!(press(KeyCode::Char('s'), none), Some(Action::NextSort));
            assert_eq!(press(KeyCode::Left, none), Some(Action::PreviousSort));
            assert_eq!(
                press(KeyCode::Char('4'), none),
                Some(Action::Sort(SortKey::Cpu))
            );
            assert_eq!(press(KeyCode::Char('7'), none), None);
            assert_eq!(press(KeyCode::Char('x'), KeyModifiers::CONTROL), None);
            assert_eq!(span_label(45), "45s");
            assert_eq!(span_label(300), "5m");
            assert_eq!(span_label(90), "1m30s");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status() -> Value {
        json!({
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
        })
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
        let odd = PeerRow::from_json(0, &json!({"cpu": "high"}));
        assert_eq!((odd.peer.as_str(), odd.cpu), ("?", None));
        assert!(super::rows(&json!({"peers": 3})).is_empty());
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
        assert_eq!(SortKey::Seen.next(), SortKey::Peer);
        assert_eq!(SortKey::Peer.previous(), SortKey::Seen);
        assert_eq!(SortKey::Cpu.next(), SortKey::Memory);
        assert_eq!(SortKey::from_digit('1'), Some(SortKey::Peer));
        assert_eq!(SortKey::from_digit('6'), Some(SortKey::Seen));
        assert_eq!(SortKey::from_digit('0'), None);
        assert_eq!(SortKey::from_digit('7'), None);
        assert_eq!(SortKey::from_digit('x'), None);
    }

    #[test]
    fn bars_fill_in_eighths_and_keep_their_width() {
        assert_eq!(bar(Some(0.0), 10), " ".repeat(10));
        assert_eq!(bar(Some(100.0), 10), "█".repeat(10));
        assert_eq!(bar(Some(50.0), 4), "██  ");
        assert_eq!(bar(Some(5.0), 10), "▌         ");
        assert_eq!(bar(Some(250.0), 3), "███");
        assert_eq!(bar(None, 5), "     ");
        assert_eq!(bar(Some(f64::NAN), 2), "  ");
        for tenth in 0..=1000 {
            let cells = bar(Some(f64::from(tenth) / 10.0), 10);
            assert_eq!(cells.chars().count(), 10, "{tenth}");
        }
        assert_eq!(percent_label(Some(3.25)), "3.2%");
        assert_eq!(percent_label(None), "-");
    }

    #[test]
    fn sparklines_are_right_aligned_with_gaps_and_a_fixed_scale() {
        let samples: VecDeque<Option<f64>> =
            [Some(0.0), Some(100.0), None, Some(50.0), Some(f64::NAN)].into();
        assert_eq!(sparkline(&samples, 5), "▁█ ▅ ");
        assert_eq!(sparkline(&samples, 8), "   ▁█ ▅ ");
        // Narrower than the history: the newest samples.
        assert_eq!(sparkline(&samples, 2), "▅ ");
        assert_eq!(sparkline(&samples, 0), "");
        assert_eq!(sparkline(&VecDeque::new(), 3), "   ");
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
