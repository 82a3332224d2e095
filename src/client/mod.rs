//! Clients of a running node: they speak HTTP to its status endpoint and
//! read the `/status` document; they never reach into the node itself.
//! [`members`] prints the peer table once, [`top`] shows it live.

pub mod members;
pub mod top;
