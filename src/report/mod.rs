//! Reporting what the peer table decided: the event lines on stdout
//! ([`output`], text or JSON), the dashboard's 15-minute rings
//! ([`history`]), the event hooks ([`hooks`]) and which node runs them
//! ([`duty`]), and the counters with the rate limit on rejection logs
//! ([`stats`]). Never imports the node.

pub mod duty;
pub mod history;
pub mod hooks;
pub mod output;
pub mod stats;
