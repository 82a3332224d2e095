//! The peer table and its state machine: who is online, offline, back or gone,
//! and why. Pure logic: every method takes the current time (`now`) and
//! appends the events it causes to a caller's vector, so the rules of
//! docs/PROTOCOL.md ("Peers and their states") are unit-tested without sleeping
//! and the threads around it stay a thin shell. It imports only `proto` and
//! the top-level helpers.
//!
//! The rules in one place (and the file that keeps each):
//! - signs of life: a status; for a peer that has never sent us one (send-only),
//!   also an accepted connection of ours that has not failed (`peer.rs`);
//! - offline at once on a hard signal (v1 connection closed without a leave and
//!   not reopened within [`CLOSE_GRACE`](crate::limits::CLOSE_GRACE), our
//!   connect refused or reset, a kept-open connection failed by
//!   keepalive/user timeout; a failure of ours only if its attempt began no
//!   earlier than the last sign of life) (`links.rs`), otherwise after T
//!   without a sign of life, where T = max(offline-after, 3 × the peer's
//!   interval) ([`offline_threshold`], the one copy of that formula; `timing.rs`);
//! - a peer we have never heard from is not declared offline before T has passed
//!   since our start (no burst of offline lines when a cluster starts at once);
//! - back online on the first sign of life after offline or left;
//! - left on a leave frame; a left peer stays silent until it comes back
//!   (`table.rs`);
//! - flapping: a peer that changes state more than N times within M is
//!   reported once as flapping, then muted until stable for M (see
//!   [`FlapRule`]; `flap.rs`);
//! - membership: peers learned from other members' statuses (hearsay) only
//!   add links; every verdict about a peer still comes from our own contact
//!   with it. A learned peer that leaves is dropped (and tombstoned, so
//!   hearsay of the same incarnation cannot bring it back); one offline for
//!   longer than forget-after is forgotten. Configured peers are never
//!   dropped (`membership.rs`);
//! - admission: the table holds at most `MAX_PEERS` entries and at most
//!   `MAX_PEERS_PER_IP` of them (configured ones aside) on one IP; a
//!   configured peer is never refused: at a full table the unconfigured entry
//!   offline the longest makes room (`table.rs`). Hearsay names only routable
//!   addresses, and one source adds at most `MAX_LEARNED_PER_SOURCE` per
//!   `LEARN_WINDOW` (`membership.rs`);
//! - cut off: when every peer (two or more) falls silent within one window,
//!   one "Lost contact with all N peers" line replaces N offline lines, and
//!   one "Contact restored" line replaces the back-online lines that follow;
//!   a peer still offline when contact is restored gets its own offline line
//!   then, so no verdict is ever dropped without a line (`cutoff.rs`);
//! - timing: a peer's declared interval counts for at most
//!   [`PEER_INTERVAL_CAP`](crate::limits::PEER_INTERVAL_CAP) (or our own
//!   interval if longer) in every timing derived from it (see
//!   [`PeerTable::timing_interval`]; `timing.rs`).
//!
//! One file per concept (reading the list is reading the design):
//! - `types.rs`: the words of the table: [`PeerState`], [`StatusReport`],
//!   [`Event`], [`Origin`], [`Refusal`];
//! - `peer.rs`: one [`Peer`] (its groups [`Incarnation`](peer::Incarnation) and [`Signals`]) and
//!   the two transitions every rule ends in, offline and alive;
//! - `table.rs`: [`PeerTable`]: admission, statuses, leaves, the configured
//!   list, the tick and its next deadline;
//! - `links.rs`: what connections say ([`LinkFailure`], the close grace);
//! - `membership.rs`: hearsay, the digest, tombstones, forgetting
//!   ([`Membership`](membership::Membership));
//! - `flap.rs`: flap damping ([`FlapRule`], [`FlapState`](flap::FlapState));
//! - `cutoff.rs`: the "lost contact with all peers" episode;
//! - `timing.rs`: the offline threshold T and the interval cap;
//! - `alerts.rs`: `--alert` rules and their evaluation with hysteresis
//!   ([`Alerts`]), on every status the table accepts and on this node's own
//!   sample ([`PeerTable::on_own_sample`]).
//!
//! The table's rules are `impl PeerTable` blocks in the file of their
//! concept; its fields are `pub(super)` so those files reach them (see
//! [`PeerTable`]). Unit tests sit in the file of the code they test and share
//! fixtures through `testing.rs`.

pub mod alerts;
mod cutoff;
mod flap;
mod links;
mod membership;
mod peer;
mod table;
mod timing;
mod types;

pub use crate::proto::PeerId;
pub use alerts::{AlertNote, AlertRule, Subject};
pub use flap::FlapRule;
pub use links::LinkFailure;
pub use peer::{Peer, Signals};
pub use table::PeerTable;
pub use timing::{offline_threshold, probe_after};
pub use types::{Event, Origin, PeerState, Refusal, StatusReport, legacy_report};

#[cfg(test)]
mod testing;
