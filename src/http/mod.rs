//! The HTTP surface of a node: the status endpoint and, on the same thread,
//! the event hooks (`report::hooks`), off the hot path. One file per part:
//!
//! - `server`: the thread's `mio` loop with `httparse`, the clients and
//!   every bound on them (slots, eviction, deadlines), and the Host check
//!   against DNS rebinding;
//! - `routes`: method and path to a response, and the headers every answer
//!   carries (`Cache-Control: no-store`, `nosniff`, the dashboard's CSP);
//! - `snapshot`: the copy of the shared state every answer is rendered from,
//!   taken under the lock in microseconds, rendered after it is released,
//!   so no request holds up the listener or the sender;
//! - `document`: the typed `/status` document, serialized here and read by
//!   the clients (`p2pmon members`, `p2pmon top`);
//! - `metrics`: `/metrics`, Prometheus or OpenMetrics text;
//! - `history`: `/history`, the dashboard's charts.
//!
//! `GET /` is the web dashboard, one page embedded in the binary that polls
//! `/status` and `/history`; `/healthz` says whether the listener runs. This
//! file is what the node sees: [`endpoint`] gives it the [`Endpoint`] it
//! binds before it starts its threads and then runs as its fourth thread.

pub mod document;
pub(crate) mod history;
pub(crate) mod metrics;
pub(crate) mod routes;
pub(crate) mod server;
pub(crate) mod snapshot;

use std::net::SocketAddr;

use mio::net::TcpListener;

use crate::Error;
use crate::config::{Config, HttpSetting};
use crate::http::server::HttpServer;
use crate::node::shutdown::Shutdown;
use crate::node::{State, ThreadBody};
use crate::report::hooks::Hooks;

/// The status endpoint and the hooks, as the node's fourth thread.
#[derive(Debug, Default)]
pub struct Endpoint {
    listener: Option<TcpListener>,
}

/// The endpoint a node runs (see [`crate::node::Endpoint`]).
pub fn endpoint(_config: &Config) -> Box<dyn crate::node::Endpoint> {
    Box::new(Endpoint::default())
}

impl crate::node::Endpoint for Endpoint {
    fn bind(&mut self, config: &Config) -> Result<(), Error> {
        self.listener = match config.http {
            HttpSetting::Off => None,
            HttpSetting::Default(addr) => bind(addr, false).map_err(Error::Runtime)?,
            HttpSetting::Explicit(addr) => bind(addr, true).map_err(Error::Runtime)?,
        };
        Ok(())
    }

    fn start(
        self: Box<Self>,
        config: &Config,
        state: &State,
        shutdown: &Shutdown,
    ) -> Result<Option<ThreadBody>, Error> {
        if self.listener.is_none() && config.on_event.is_empty() {
            return Ok(None);
        }
        let hooks = Hooks::new(config.on_event.clone());
        let server = HttpServer::new(self.listener, state.clone(), shutdown, hooks)
            .map_err(|e| Error::Runtime(format!("cannot start the status endpoint: {e}")))?;
        Ok(Some(Box::new(move || server.run())))
    }
}

/// Binds the endpoint. `explicit` says the user chose the address: then a
/// busy address is fatal (exit 1); the default one only warns.
pub fn bind(addr: SocketAddr, explicit: bool) -> Result<Option<TcpListener>, String> {
    match TcpListener::bind(addr) {
        Ok(listener) => {
            log::info!(
                "status endpoint on http://{addr}/ (dashboard, /history, /metrics, /status, /healthz)"
            );
            Ok(Some(listener))
        }
        Err(e) if explicit => Err(format!(
            "cannot serve HTTP on {addr}: {}",
            crate::sys::describe_io_error(&e)
        )),
        Err(e) => {
            log::warn!(
                "status endpoint not started: {addr}: {} (choose another with --http ADDR, or --http off)",
                crate::sys::describe_io_error(&e)
            );
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_default_address_warns_a_busy_chosen_one_fails() {
        let holder = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = holder.local_addr().expect("addr");
        assert!(matches!(bind(addr, false), Ok(None)));
        let error = bind(addr, true).err().unwrap_or_default();
        assert!(error.contains("address already in use"), "{error}");
        drop(holder);
        assert!(matches!(bind(addr, true), Ok(Some(_))));
    }
}
