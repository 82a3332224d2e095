//! Clients of a running node: they speak HTTP to its status endpoint
//! ([`fetch`]) and read the typed `/status` document it serves
//! (`http::document`); they never reach into the node itself.
//! [`members`] prints the peer table once, [`top`] shows it live, with
//! network [`rates`] from successive polls.

pub mod fetch;
pub mod members;
pub mod rates;
pub mod top;
