//! The protocol: what goes on the wire between nodes and what gets past the
//! door. [`wire`] frames, encodes and strictly decodes v1 and the Python
//! original's messages; [`seal`] holds the cluster keys, the cipher, the
//! freshness rules and the admission gate every frame goes through;
//! [`Dialect`] names which of the two a peer speaks.
//! Imports nothing of the crate but the top-level helpers.

mod dialect;
mod peer_id;
pub mod seal;
pub mod wire;

pub use dialect::Dialect;
pub use peer_id::PeerId;
