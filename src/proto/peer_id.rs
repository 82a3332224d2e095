//! A peer's identity, (IP, port): the port it listens on, never a name
//! (names are for display only and may collide).

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use crate::limits::DEFAULT_PORT;

/// A peer's identity: its IP and the port it listens on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(pub SocketAddr);

impl PeerId {
    /// Builds an identity, printing IPv4-mapped IPv6 addresses as plain IPv4.
    pub fn new(ip: IpAddr, port: u16) -> PeerId {
        PeerId(SocketAddr::new(ip.to_canonical(), port))
    }
}

impl fmt::Display for PeerId {
    /// The IP, plus `:PORT` when the port is not 5000 (IPv6 then in brackets).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.port() == DEFAULT_PORT {
            write!(f, "{}", self.0.ip())
        } else {
            write!(f, "{}", self.0)
        }
    }
}
