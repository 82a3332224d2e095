//! The command line, as clap sees it. Only shapes and help texts live here;
//! what the values mean, their defaults and how they merge with the config
//! file is `config`'s job, so the file and the flags share one set of rules.
//! As in ripgrep, flags go from low-level arguments (`RunArgs`: values as
//! typed, `None` when not given) to high-level ones (`config::Config`:
//! merged with the file, validated).
//!
//! These definitions are the one place each setting is spelled. `--help`,
//! the man page and the shell completions ([`manual`]) are rendered from
//! them at run time. The config file's keys (`config::FileConfig`) are
//! checked against them by the tests of config/file.rs: every key is the
//! long name of a `run` flag with underscores, every `run` flag but
//! `--config`, `-v` and `-q` is a key, and config.example.toml shows every
//! key. The test below checks that README's options table lists every flag.

pub mod manual;

use crate::report::duty::HooksOn;
use crate::report::output::Format;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

/// p2pmon: every node pushes its CPU and memory to its peers and tells you,
/// live, who is up, who went down, who came back and who left.
#[derive(Debug, Parser)]
#[command(
    name = "p2pmon",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a node (the default when no subcommand is given).
    Run(Box<RunArgs>),
    /// Three nodes on 127.0.0.1, on free ports, printing the events of the first.
    Demo(DemoArgs),
    /// Make a new random cluster key (32 bytes, base64) for --key-file.
    Keygen(KeygenArgs),
    /// The peer table of a running node, like `serf members` (reads its /status).
    Members(MembersArgs),
    /// Print the man page (roff) to stdout, or write it to --out DIR.
    Man(ManArgs),
    /// Print shell completions for SHELL to stdout.
    Completions(CompletionsArgs),
    /// A live, full-screen peer table of a running node (reads its /status every second).
    Top(TopArgs),
    /// Simulated peers for benchmarks (loopback only).
    #[command(hide = true)]
    Loadgen(LoadgenArgs),
}

/// Options of `p2pmon man`.
#[derive(Debug, Args, Clone)]
pub struct ManArgs {
    /// Write p2pmon.1 and one page per subcommand (p2pmon-run.1, ...) into DIR.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// Options of `p2pmon completions`.
#[derive(Debug, Args, Clone)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Options of `p2pmon members`.
#[derive(Debug, Args, Clone)]
pub struct MembersArgs {
    /// The node's status endpoint.
    #[arg(long, value_name = "ADDR", default_value = crate::limits::DEFAULT_HTTP)]
    pub http: String,

    /// Print the node's /status JSON as is.
    #[arg(long)]
    pub json: bool,
}

/// Options of `p2pmon top`.
#[derive(Debug, Args, Clone)]
pub struct TopArgs {
    /// The node's status endpoint.
    #[arg(long, value_name = "ADDR", default_value = crate::limits::DEFAULT_HTTP)]
    pub http: String,

    /// Column to sort by (s, the arrows or 1-9 change it on screen).
    #[arg(long, value_enum, default_value = "peer")]
    pub sort: SortKey,

    /// Print the table N times, once a second, as plain text (even on a
    /// terminal), then exit.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
}

/// How to run one node.
#[derive(Debug, Args, Default, Clone)]
pub struct RunArgs {
    /// Peers to push to: HOST or HOST:PORT, comma-separated, repeatable;
    /// IPv6 in brackets (`[::1]:5000`). The node's own address is skipped.
    /// With membership learning, one running member is enough (alias --join).
    #[arg(
        short = 'p',
        long = "peers",
        visible_alias = "join",
        value_name = "HOST[:PORT],...",
        value_delimiter = ','
    )]
    pub peers: Vec<String>,

    /// Port to listen on, and the default port of peers [default: 5000].
    #[arg(long)]
    pub port: Option<u16>,

    /// Address to listen on [default: all IPv4 and, where the host has it, IPv6].
    /// A specific IP is also the source address of outgoing connections.
    #[arg(long, value_name = "IP[:PORT]")]
    pub listen: Option<String>,

    /// Send period: 5, 5s, 500ms, 1m [default: 5s].
    #[arg(long, value_name = "DURATION")]
    pub interval: Option<String>,

    /// Silence before a peer is offline [default: 3 x interval].
    #[arg(long, value_name = "DURATION")]
    pub offline_after: Option<String>,

    /// Display name sent to peers, without control or text-direction
    /// characters [default: host name].
    #[arg(long)]
    pub name: Option<String>,

    /// TOML config file; command-line flags win over it.
    #[arg(short = 'c', long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Format of the event lines on stdout [default: text].
    #[arg(long, value_enum)]
    pub format: Option<Format>,

    /// Print state changes only, not every status.
    #[arg(long)]
    pub changes_only: bool,

    /// Prefix text lines with the local time (RFC 3339).
    #[arg(long)]
    pub timestamps: bool,

    /// Text status lines go on with the host's health: load, cpus, swap,
    /// disks, network bytes, uptime (json events always carry it).
    #[arg(long)]
    pub details: bool,

    /// Cluster key file (from `p2pmon keygen`, mode 0600): seal everything
    /// sent, accept only sealed, fresh messages. Several lines: rotation.
    #[arg(long, value_name = "FILE", env = "P2PMON_KEY_FILE")]
    pub key_file: Option<PathBuf>,

    /// With --key-file, still accept plaintext peers (during a migration);
    /// each one is logged.
    #[arg(long)]
    pub allow_plaintext: bool,
    /// Flap damping: more than this many state changes within --flap-window
    /// mark a peer as flapping [default: 5].
    #[arg(long, value_name = "N")]
    pub flap_changes: Option<usize>,

    /// Flap damping window; a flapping peer is muted until stable this long
    /// (at most 24h) [default: 2m].
    #[arg(long, value_name = "DURATION")]
    pub flap_window: Option<String>,

    /// Status endpoint (/metrics, /status, /healthz): ADDR or `off`
    /// [default: 127.0.0.1:5080; if busy, the node warns and runs on].
    #[arg(long, value_name = "ADDR|off")]
    pub http: Option<String>,

    /// Run CMD (with sh -c) on offline, back online, left, flapping, cut-off,
    /// restored, alert and alert cleared events; the event is in P2PMON_* variables and on stdin
    /// as JSON. Repeatable (at most 32); each hook is killed, with what it
    /// started, after 10 s.
    #[arg(long = "on-event", value_name = "CMD")]
    pub on_event: Vec<String>,

    /// Which nodes run the hooks for an event about a peer: `duty`, the
    /// lowest (IP, port) among this node and the peers it sees online, so
    /// that one node in the cluster notifies; or `every` node [default:
    /// duty]. Cut-off and restored always run here.
    #[arg(long, value_enum, value_name = "duty|every")]
    pub hooks_on: Option<HooksOn>,
    /// Alert when a metric crosses a threshold: `METRIC > VALUE [for
    /// DURATION]` or `<`; METRIC: cpu, memory, swap, disk (the fullest
    /// filesystem), load1, load5, load15, load1_per_cpu. Percent metrics take
    /// a percent. Evaluated on every status of every peer and on this node's
    /// own; clears 5 % of the threshold back. Repeatable (at most 16).
    #[arg(long = "alert", value_name = "RULE")]
    pub alert: Vec<String>,

    /// Learn members from peers' statuses and push to them too (on when a
    /// key is set: only authenticated members can name members).
    #[arg(long)]
    pub learn_peers: bool,

    /// Forget a learned member offline this long: DURATION (at most 8760h)
    /// or `never` [default: 1h]. Configured peers are never forgotten.
    #[arg(long, value_name = "DURATION|never")]
    pub forget_after: Option<String>,

    /// Most inbound connections open at once [default: 2048].
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,

    /// More logging on stderr (-v info, -vv debug); RUST_LOG also works.
    #[arg(short = 'v', long = "verbose", action = ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,

    /// Less logging on stderr (errors only).
    #[arg(short = 'q', long = "quiet", action = ArgAction::Count)]
    pub quiet: u8,
}

/// Options of `p2pmon demo`.
#[derive(Debug, Args, Clone)]
pub struct DemoArgs {
    /// Send period of the demo nodes.
    #[arg(long, value_name = "DURATION", default_value = "1s")]
    pub interval: String,

    /// Format of the event lines on stdout.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,

    /// More logging on stderr.
    #[arg(short = 'v', long = "verbose", action = ArgAction::Count)]
    pub verbose: u8,
}

/// Options of `p2pmon keygen`.
#[derive(Debug, Args, Clone)]
pub struct KeygenArgs {
    /// Write the key to FILE, mode 0600, instead of printing it.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,

    /// Replace FILE if it exists.
    #[arg(long, requires = "out")]
    pub force: bool,
}

/// The column the table is sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum SortKey {
    /// Peer address, as the node lists them.
    #[default]
    Peer,
    /// Display name.
    Name,
    /// Trouble first: offline, then flapping, then online, then left.
    State,
    /// Busiest first.
    Cpu,
    /// Fullest first.
    Memory,
    /// Longest silence first.
    Seen,
    /// Highest 1 minute load first.
    Load,
    /// Fullest filesystem first.
    Disk,
    /// Busiest network first (bytes received and sent per second).
    Net,
}

// The keys and labels serve the full-screen `top` (the `tui` feature); the
// lean build sorts by the flag only.
#[cfg_attr(not(feature = "tui"), allow(dead_code))]
impl SortKey {
    /// In the order of the number keys 1 to 9.
    pub const ALL: [SortKey; 9] = [
        SortKey::Peer,
        SortKey::Name,
        SortKey::State,
        SortKey::Cpu,
        SortKey::Memory,
        SortKey::Seen,
        SortKey::Load,
        SortKey::Disk,
        SortKey::Net,
    ];

    pub fn label(self) -> &'static str {
        match self {
            SortKey::Peer => "peer",
            SortKey::Name => "name",
            SortKey::State => "state",
            SortKey::Cpu => "cpu",
            SortKey::Memory => "memory",
            SortKey::Seen => "seen",
            SortKey::Load => "load",
            SortKey::Disk => "disk",
            SortKey::Net => "net",
        }
    }

    fn position(self) -> usize {
        SortKey::ALL.iter().position(|k| *k == self).unwrap_or(0)
    }

    /// The next key (`s`, right arrow), wrapping around.
    pub fn next(self) -> SortKey {
        SortKey::ALL[(self.position() + 1) % SortKey::ALL.len()]
    }

    /// The previous key (`S`, left arrow), wrapping around.
    pub fn previous(self) -> SortKey {
        SortKey::ALL[(self.position() + SortKey::ALL.len() - 1) % SortKey::ALL.len()]
    }

    /// The key of a number key, '1' (peer) to '9' (net).
    pub fn from_digit(digit: char) -> Option<SortKey> {
        let index = digit.to_digit(10)?.checked_sub(1)?;
        SortKey::ALL.get(usize::try_from(index).ok()?).copied()
    }
}

/// Options of `p2pmon loadgen`.
#[derive(Debug, Args, Clone)]
pub struct LoadgenArgs {
    #[command(subcommand)]
    pub mode: Mode,
}

#[derive(Debug, Subcommand, Clone)]
pub enum Mode {
    /// Simulate N peers pushing statuses to one node.
    Send(SendArgs),
    /// Simulate N listening peers and time what a node sends them.
    Sink(SinkArgs),
}

#[derive(Debug, Args, Clone)]
pub struct SendArgs {
    /// The node to push to.
    #[arg(long, default_value = "127.0.0.1:5000")]
    pub target: SocketAddr,
    /// Number of simulated peers (one connection each).
    #[arg(long, default_value_t = 1000)]
    pub peers: u32,
    /// First source address; peer i uses this address + i (must be loopback).
    #[arg(long, default_value = "127.70.0.1")]
    pub source: Ipv4Addr,
    /// Send period of each peer.
    #[arg(long, default_value = "1s")]
    pub interval: String,
    /// How long to run.
    #[arg(long, default_value = "60s")]
    pub duration: String,
    /// Send as fast as the node reads (maximum ingest), ignoring --interval.
    #[arg(long)]
    pub flood: bool,
    /// Seal every frame with the first key of this file (as a keyed node does).
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<std::path::PathBuf>,
}

#[derive(Debug, Args, Clone)]
pub struct SinkArgs {
    /// First address to listen on; peer i listens on this address + i.
    #[arg(long, default_value = "127.71.0.1")]
    pub listen: Ipv4Addr,
    /// Number of simulated listening peers.
    #[arg(long, default_value_t = 1000)]
    pub peers: u32,
    #[arg(long, default_value_t = 5000)]
    pub port: u16,
    /// How long to run.
    #[arg(long, default_value = "60s")]
    pub duration: String,
    /// The sender's interval, to judge "on time" (a gap above 1.5 x is late).
    #[arg(long, default_value = "1s")]
    pub interval: String,
    /// Ignore the first part of the run (connection set-up) when judging gaps.
    #[arg(long, default_value = "5s")]
    pub warmup: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// The words of the first column of README's options table
    /// (`-p, --peers HOST[:PORT],...` gives `-p`, `--peers`, ...).
    fn readme_options() -> Vec<&'static str> {
        include_str!("../../README.md")
            .split("### Options")
            .nth(1)
            .unwrap_or_default()
            .lines()
            .skip_while(|line| line.trim().is_empty())
            .take_while(|line| line.starts_with('|'))
            // The header and the |---| line.
            .skip(2)
            .filter_map(|row| row.split(" | ").next())
            .flat_map(|cell| cell.split([' ', '`', ',', '|', '\\']))
            .filter(|word| word.starts_with('-'))
            .collect()
    }

    #[test]
    fn the_readme_options_table_lists_every_run_flag() {
        let shown = readme_options();
        let cli = Cli::command();
        let Some(run) = cli.find_subcommand("run") else {
            panic!("no run subcommand");
        };
        let mut flags = Vec::new();
        for arg in run.get_arguments() {
            // The table shows the logging flags by their short names only.
            let long = arg
                .get_long()
                .filter(|long| !matches!(*long, "verbose" | "quiet"));
            flags.extend(long.map(|long| format!("--{long}")));
            flags.extend(arg.get_short().map(|short| format!("-{short}")));
        }
        for flag in &flags {
            assert!(
                shown.contains(&flag.as_str()),
                "README's options table lacks {flag}"
            );
        }
        for word in shown {
            // -vv is -v twice.
            assert!(
                flags.iter().any(|flag| flag == word) || word == "-vv",
                "README's options table shows {word}, which `run` does not have"
            );
        }
    }
}
