//! The full-screen view, drawing only: ratatui draws the [`View`] that
//! `model` keeps, crossterm reads keys (each mapped to an [`Action`] on the
//! view) and resizes. Everything runs on the calling thread; key presses are
//! read between polls with a short timeout so `q` answers at once.

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

use super::REFRESH;
use super::cells::{bar, percent_label, sparkline};
use super::model::{Action, PeerRow, View};
use crate::Error;
use crate::cli::{SortKey, TopArgs};
use crate::client::fetch;
use crate::client::rates::human_rate;
use crate::http::document::StatusDocument;

/// Longest wait for a key before checking the clock again.
const KEY_WAIT: Duration = Duration::from_millis(100);
/// Width of the CPU and memory bars, in cells.
const BAR_WIDTH: usize = 10;
/// Space between columns.
const SPACING: u16 = 2;
/// Narrowest sparkline worth drawing.
const MIN_SPARK: u16 = 8;

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

/// Restores the terminal however `run` ends (ratatui's own panic hook
/// covers a panic).
struct Restore;

impl Drop for Restore {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

pub fn run(args: &TopArgs, status: StatusDocument) -> Result<(), Error> {
    // SIGTERM and SIGHUP would otherwise kill us in raw mode on the
    // alternate screen; a flag (no thread) lets the loop restore first.
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGHUP] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .map_err(|e| Error::Runtime(format!("cannot handle signals: {e}")))?;
    }
    let mut view = View::new(&args.http, args.sort, status, Instant::now());
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
            view.update(fetch::status(&view.addr), Instant::now());
            // After a slow poll, start the next second from now, not in a burst.
            next_poll = (next_poll + REFRESH).max(now);
        }
    }
    Ok(())
}

fn state_style(row: &PeerRow) -> Style {
    let style = Style::new();
    if !row.alerts.is_empty() {
        return style.fg(Color::Red).add_modifier(Modifier::BOLD);
    }
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
    let name = crate::names::for_terminal(view.node.name.as_deref().unwrap_or("?"));
    let online = view.online();
    let mut spans = vec![
        Span::styled("p2pmon top", Style::new().add_modifier(Modifier::BOLD)),
        Span::raw(format!(
            "  node {name} at {}  ·  {} peers, {online} online  ·  sorted by {}",
            view.addr,
            view.rows.len(),
            view.sort.label()
        )),
    ];
    if !view.node.alerts.is_empty() {
        let rules: Vec<String> = view
            .node
            .alerts
            .iter()
            .map(|alert| {
                crate::names::for_terminal(alert.rule.as_deref().unwrap_or("?")).into_owned()
            })
            .collect();
        spans.push(Span::styled(
            format!("  ALERT on this node: {}", rules.join(", ")),
            Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
        ));
    }
    if view.node.cut_off {
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
            "q quit  s/←/→ sort  1 peer 2 name 3 state 4 cpu 5 memory 6 seen 7 load 8 disk 9 net  ↑/↓ scroll",
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
        width_of(&mut view.rows.iter().map(PeerRow::state_cell), "STATE"),
        gauge_width,
        gauge_width,
        width_of(
            &mut view.rows.iter().map(PeerRow::last_seen_label),
            "LAST SEEN",
        ),
        width_of(&mut view.rows.iter().map(PeerRow::since_label), "SINCE"),
    ];
    // The health columns, only when some peer reports health (as `members`).
    let health = view.has_health();
    if health {
        widths.extend([
            width_of(&mut view.rows.iter().map(|r| r.load_label.clone()), "LOAD"),
            width_of(&mut view.rows.iter().map(|r| r.disk_label.clone()), "DISK").min(32),
            width_of(&mut view.rows.iter().map(|r| human_rate(r.rx)), "RX/s"),
            width_of(&mut view.rows.iter().map(|r| human_rate(r.tx)), "TX/s"),
        ]);
    }
    let used: u16 = widths.iter().map(|w| w + SPACING).sum();
    let spark = area.width.saturating_sub(used);
    let spark = if spark >= MIN_SPARK { spark } else { 0 };
    widths.push(spark);

    let mut titles = vec![
        (Some(SortKey::Peer), "PEER".to_string()),
        (Some(SortKey::Name), "NAME".to_string()),
        (Some(SortKey::State), "STATE".to_string()),
        (Some(SortKey::Cpu), "CPU".to_string()),
        (Some(SortKey::Memory), "MEMORY".to_string()),
        (Some(SortKey::Seen), "LAST SEEN".to_string()),
        (None, "SINCE".to_string()),
    ];
    if health {
        titles.extend([
            (Some(SortKey::Load), "LOAD".to_string()),
            (Some(SortKey::Disk), "DISK".to_string()),
            (Some(SortKey::Net), "RX/s".to_string()),
            (Some(SortKey::Net), "TX/s".to_string()),
        ]);
    }
    titles.push((None, format!("CPU, LAST {}", span_label(spark))));
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
        let mut cells = vec![
            Cell::from(row.peer.clone()),
            Cell::from(row.name.clone().unwrap_or_else(|| "-".to_string())),
            Cell::from(row.state_cell()).style(state_style(row)),
            gauge(row.cpu),
            gauge(row.memory),
            Cell::from(row.last_seen_label()),
            Cell::from(row.since_label()),
        ];
        if health {
            cells.extend([
                Cell::from(row.load_label.clone()),
                Cell::from(row.disk_label.clone()).style(Style::new().fg(level_colour(row.disk))),
                Cell::from(human_rate(row.rx)),
                Cell::from(human_rate(row.tx)),
            ]);
        }
        cells.push(
            Cell::from(sparkline(samples, usize::from(spark))).style(Style::new().fg(Color::Cyan)),
        );
        Row::new(cells)
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
        assert_eq!(
            press(KeyCode::Char('9'), none),
            Some(Action::Sort(SortKey::Net))
        );
        assert_eq!(press(KeyCode::Char('0'), none), None);
        assert_eq!(press(KeyCode::Char('x'), KeyModifiers::CONTROL), None);
        assert_eq!(span_label(45), "45s");
        assert_eq!(span_label(300), "5m");
        assert_eq!(span_label(90), "1m30s");
    }
}
