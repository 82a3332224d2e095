//! `p2pmon top`: a live view of a running node's peer table. It is a client,
//! not a node: it asks the node for its `/status` document once a second
//! ([`fetch::status`]), keeps a short CPU history per peer itself, and draws
//! a full-screen table with bars and sparklines. The screen needs the `tui`
//! cargo feature (ratatui on crossterm); without it, or when stdout is not a
//! terminal, or with `--count`, it prints the `p2pmon members` table once a
//! second instead.
//!
//! State apart from drawing: [`model`] holds what the view shows (rows,
//! sorting, the history, the [`model::View`] that keys and polls change),
//! [`cells`] the text of a bar, a sparkline or a percentage, both tested
//! without a terminal; `screen` only draws the view and reads keys.

#[cfg(feature = "tui")]
mod cells;
// Part of the model (history, labels for the live view) serves only the
// full-screen view; the lean build prints the plain tables from the rest.
#[cfg_attr(not(feature = "tui"), allow(dead_code))]
pub(crate) mod model;
#[cfg(feature = "tui")]
mod screen;

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use crate::Error;
use crate::cli::TopArgs;
use crate::client::rates::NetRates;
use crate::client::{fetch, members};
use crate::http::document::StatusDocument;
use model::sorted_status_with_rates;

/// How often the node is asked for its peer table.
const REFRESH: Duration = Duration::from_secs(1);

pub fn run(args: &TopArgs) -> Result<(), Error> {
    // No node, no screen: fail (exit 1) before touching the terminal.
    let status = fetch::status(&args.http)?;
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
/// stdout closes), with network rates from the polls so far. A node that stops answering is reported on stderr and
/// asked again at the next tick.
fn run_plain(args: &TopArgs, first: StatusDocument, colour: bool) -> Result<(), Error> {
    let mut stdout = std::io::stdout().lock();
    let mut status = Ok(first);
    let mut next = Instant::now();
    let mut printed: u64 = 0;
    let mut rates = NetRates::default();
    loop {
        let written = match &status {
            Ok(status) => {
                rates.record_document(status);
                let sorted = sorted_status_with_rates(status, args.sort, &rates);
                let table = members::table_with_rates(&sorted, colour, &rates);
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
        status = fetch::status(&args.http);
    }
}
