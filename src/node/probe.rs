//! The socket options of a kept-open connection: what makes a dead host or
//! a cut path fail it, without a packet more than statuses and their ACKs
//! while statuses are on time (DESIGN.md, "Probing only when a status is
//! late").
//!
//! Our sender writes a status every interval, so unacknowledged data is what
//! reveals a dead receiver: every kept-open connection, both ends, has
//! [`TCP_USER_TIMEOUT`]. The listener's end only receives, so silence is
//! what reveals a dead sender: when a status is late (see
//! [`crate::peers::probe_after`]) the listener arms kernel keepalive on that
//! one socket ([`arm`]). Armed with an idle of [`PROBE_WAIT`], shorter than
//! the connection has been idle, the kernel probes at once, then fails the
//! connection if [`PROBE_COUNT`] probes go unanswered for [`PROBE_WAIT`]
//! each (the user timeout is lifted meanwhile: with it set, Linux would
//! ignore the probe count). The next accepted status disarms it ([`disarm`]).

use mio::net::TcpStream;
use socket2::{SockRef, TcpKeepalive};

use crate::limits::{PROBE_COUNT, PROBE_WAIT, TCP_USER_TIMEOUT};

/// Every kept-open connection, from the start: data unacknowledged for
/// [`TCP_USER_TIMEOUT`] fails it. No keepalive: a healthy connection is quiet.
pub fn kept_open(stream: &TcpStream) {
    if let Err(e) = SockRef::from(stream).set_tcp_user_timeout(Some(TCP_USER_TIMEOUT)) {
        log::debug!("cannot set TCP_USER_TIMEOUT: {e}");
    }
}

/// A status is late on this inbound connection: probe it now.
pub fn arm(stream: &TcpStream) {
    let socket = SockRef::from(stream);
    if let Err(e) = socket.set_tcp_user_timeout(None) {
        log::debug!("cannot lift TCP_USER_TIMEOUT for a probe: {e}");
    }
    // socket2 turns SO_KEEPALIVE on first, then sets the idle: Linux then
    // re-arms the keepalive timer from the time already idle, so the probe
    // leaves at once.
    let probe = TcpKeepalive::new()
        .with_time(PROBE_WAIT)
        .with_interval(PROBE_WAIT)
        .with_retries(PROBE_COUNT);
    if let Err(e) = socket.set_tcp_keepalive(&probe) {
        log::debug!("cannot arm a keepalive probe: {e}");
    }
}

/// A status arrived on a probed connection: quiet again.
pub fn disarm(stream: &TcpStream) {
    if let Err(e) = SockRef::from(stream).set_keepalive(false) {
        log::debug!("cannot disarm a keepalive probe: {e}");
    }
    kept_open(stream);
}
