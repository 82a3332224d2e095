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

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap_or(IpAddr::from([127, 0, 0, 1]))
    }

    #[test]
    fn display_adds_the_port_only_when_not_5000() {
        assert_eq!(PeerId::new(ip("127.0.0.2"), 5000).to_string(), "127.0.0.2");
        assert_eq!(
            PeerId::new(ip("127.0.0.2"), 5001).to_string(),
            "127.0.0.2:5001"
        );
        // IPv4-mapped IPv6 prints as plain IPv4, and is the same identity.
        let mapped = PeerId::new(ip("::ffff:10.1.2.3"), 5000);
        assert_eq!(mapped.to_string(), "10.1.2.3");
        assert_eq!(mapped, PeerId::new(ip("10.1.2.3"), 5000));
        assert_eq!(PeerId::new(ip("::1"), 5000).to_string(), "::1");
        assert_eq!(PeerId::new(ip("::1"), 6000).to_string(), "[::1]:6000");
    }
}
