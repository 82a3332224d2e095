//! The protocol: what goes on the wire between nodes and what gets past the
//! door (docs/PROTOCOL.md), one file per concept, in the order a frame meets
//! them:
//! - [`frame`]: a TCP byte stream cut into newline-terminated frames, at most
//!   one unfinished frame held;
//! - [`gate`]: admission, what the listener hands every frame to; it returns
//!   the message or a [`Rejection`] with its counter label;
//! - [`keyring`]: the cluster keys of a key file (the first seals, all
//!   open) and the checks made on that file;
//! - [`seal`]: the cipher, one v1 message sealed for the address it is sent
//!   to and from the one it is sent from;
//! - [`wire`]: the messages (v1's status and leave, the Python original's
//!   bare status), their strict decoding and their encoding;
//! - [`freshness`]: the replay rules per peer (incarnation, seq, lateness,
//!   clock skew);
//! - [`PeerId`], a peer's identity (IP, port), and [`Dialect`], which of the
//!   two protocols a peer speaks.
//!
//! Without a key only `frame` and `wire` do any work and p2pmon speaks
//! plaintext, as the Python original did. The main types are re-exported
//! here (`proto::Gate`); the messages are used through their module
//! (`wire::encode`, `wire::Message`). This module is public, the protocol's
//! face for the integration tests and the fuzz targets; what only the crate
//! uses is `pub(crate)`. Imports nothing of the crate but the top-level
//! helpers.

mod dialect;
pub mod frame;
pub mod freshness;
pub mod gate;
pub mod health;
pub mod keyring;
mod peer_id;
pub mod seal;
pub mod wire;

#[cfg(test)]
mod testing;

pub use dialect::Dialect;
pub use frame::FrameBuffer;
pub use gate::{Admitted, Freshness, Gate, Rejection};
pub use keyring::{Keyring, SharedKeyring};
pub use peer_id::PeerId;
