//! The words the peer table speaks with the rest of the node: where a peer
//! stands ([`PeerState`]), what a status says whatever its wire format
//! ([`StatusReport`]), what is worth telling the user ([`Event`]), how a
//! peer became known ([`Origin`]) and why a message was not applied
//! ([`Refusal`], with the reason label the counters use). Plain data, kept
//! apart from the rules so a reader of `report/` or `http/` finds them
//! without reading the state machine.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::PeerId;
use super::alerts::AlertNote;
use crate::limits::{
    LEARN_WINDOW, MAX_LEARNED_PER_SOURCE, MAX_PEERS, MAX_PEERS_PER_IP, PYTHON_INTERVAL,
};
use crate::proto::health::Health;

/// Where a peer stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerState {
    /// Configured but not heard from yet.
    Unknown,
    Online,
    Offline,
    /// Sent a leave: shut down on purpose.
    Left,
}

impl PeerState {
    /// Lower-case name used in JSON and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            PeerState::Unknown => "unknown",
            PeerState::Online => "online",
            PeerState::Offline => "offline",
            PeerState::Left => "left",
        }
    }
}

/// What a received status says, whatever its wire format.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusReport {
    pub name: Option<String>,
    /// `None` for the Python original, which has no incarnations.
    pub boot: Option<u64>,
    pub seq: Option<u64>,
    pub interval: Duration,
    pub cpu: f64,
    pub memory: f64,
    /// The rest of the host's health (empty from the Python original).
    pub health: Health,
}

/// Something worth telling the user, in the order it happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Status {
        peer: PeerId,
        name: Option<String>,
        cpu: f64,
        memory: f64,
        /// The rest of the host's health, as the status said it.
        health: Health,
        /// First status ever from this peer (printed even with --changes-only).
        first: bool,
    },
    Offline {
        peer: PeerId,
        name: Option<String>,
        reason: String,
        /// Time since the last sign of life, if there was one.
        last_seen: Option<Duration>,
    },
    Online {
        peer: PeerId,
        name: Option<String>,
        /// How long it was offline or gone.
        away: Duration,
    },
    Left {
        peer: PeerId,
        name: Option<String>,
    },
    /// Changed state too often: further changes are muted until it is stable.
    Flapping {
        peer: PeerId,
        name: Option<String>,
        reason: String,
    },
    /// Every peer fell silent at once: this node is probably the one cut off.
    CutOff {
        peers: usize,
    },
    /// Contact came back after a cut-off.
    Restored {
        peers: usize,
        after: Duration,
    },
    /// A learned member offline longer than forget-after, dropped from the table.
    Forgotten {
        peer: PeerId,
        name: Option<String>,
    },
    /// An `--alert` rule fired for a peer or this node (see `alerts.rs`).
    Alert(AlertNote),
    /// ...and cleared.
    AlertCleared(AlertNote),
}

/// How a peer became known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Listed in --peers or the config file.
    Configured,
    /// Named in the membership data of this member's status.
    Learned { from: PeerId },
    /// It sent us a status first.
    Contacted,
}

/// Why a status or leave was not applied.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// The table already holds [`MAX_PEERS`] peers.
    TableFull,
    /// The table already holds [`MAX_PEERS_PER_IP`] peers on this IP.
    IpShareFull(IpAddr),
    /// The message belongs to an older incarnation than one already seen.
    StaleBoot,
    /// A member named in hearsay that no node can be: an unspecified,
    /// multicast or broadcast address, or port 0.
    BadMember(SocketAddr),
    /// The source already added [`MAX_LEARNED_PER_SOURCE`] members within
    /// [`LEARN_WINDOW`].
    LearnBudget(IpAddr),
}

impl Refusal {
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::TableFull => "table_full",
            Refusal::IpShareFull(_) => "ip_share_full",
            Refusal::StaleBoot => "stale_boot",
            Refusal::BadMember(_) => "bad_member",
            Refusal::LearnBudget(_) => "learn_budget",
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::TableFull => write!(f, "peer table full ({MAX_PEERS} peers)"),
            Refusal::IpShareFull(ip) => write!(
                f,
                "{MAX_PEERS_PER_IP} peers on {ip} already (the most one address may hold)"
            ),
            Refusal::StaleBoot => write!(f, "message from an older incarnation of the peer"),
            Refusal::BadMember(addr) => write!(
                f,
                "member {addr} is not a node's address (unspecified, multicast, broadcast or port 0)"
            ),
            Refusal::LearnBudget(ip) => write!(
                f,
                "{ip} named {MAX_LEARNED_PER_SOURCE} new members within {} s already; \
                 the rest wait for its next statuses",
                LEARN_WINDOW.as_secs()
            ),
        }
    }
}

/// Python peers do not announce an interval; theirs is 5 s.
pub fn legacy_report(cpu: f64, memory: f64) -> StatusReport {
    StatusReport {
        name: None,
        boot: None,
        seq: None,
        interval: PYTHON_INTERVAL,
        cpu,
        memory,
        health: Health::default(),
    }
}
