//! [`Dialect`]: which of the two protocols a peer speaks, as far as we know.
//! One notion shared by the listener (what an inbound connection carries),
//! the sender's links (what a peer gets on our connections) and the peer
//! table, so "the Python original" has one name everywhere. It lives in the
//! protocol because that is where both dialects are defined (see
//! [`super::wire`]) and every layer above may import it.

/// What a peer (or a connection) speaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Dialect {
    /// Nothing proves either yet: treated as the Python original might
    /// expect (one bare status per connection), never as v1.
    #[default]
    Unknown,
    /// The Python original: one bare status per connection, then close;
    /// never a hello, a leave or an idle connection.
    Python,
    /// v1: it greeted us with the hello or sent us v1 frames; kept-open
    /// connections, several statuses on one, probes and a leave.
    V1,
}
