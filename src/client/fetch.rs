//! Fetching from a running node: one `GET` over plain HTTP/1.1 to its
//! status endpoint, bounded in time and size, and the `/status` answer read
//! as the typed document the node serves ([`StatusDocument`]). This is all
//! a client knows of a node: it never reaches into one.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use crate::Error;
use crate::http::document::StatusDocument;

/// Time to connect to and hear from the node.
const TIMEOUT: Duration = Duration::from_secs(3);
/// Largest answer read (a /status of 1024 peers fits many times over).
const MAX_ANSWER: u64 = 16 * 1024 * 1024;

/// The `/status` document of the node at `addr`. Only an answer that is not
/// JSON is an error; what an older node leaves out reads as unknown.
pub fn status(addr: &str) -> Result<StatusDocument, Error> {
    let body = get(addr, "/status")?;
    StatusDocument::parse(&body)
        .map_err(|e| Error::Runtime(format!("the node at {addr} sent bad JSON: {e}")))
}

/// The body of `GET path` from `addr` (`IP:PORT`, `HOST:PORT` or `:PORT`,
/// which means 127.0.0.1). A bad address is a usage error (exit 2); no
/// answer, or one other than 200, a runtime error (exit 1).
pub fn get(addr: &str, path: &str) -> Result<String, Error> {
    let target = if addr.starts_with(':') {
        format!("127.0.0.1{addr}")
    } else {
        addr.to_string()
    };
    let no_answer = |why: String| {
        Error::Runtime(format!(
            "no p2pmon node answers at {addr}: {why} (is it running, with --http {addr}?)"
        ))
    };
    let socket: SocketAddr = target
        .to_socket_addrs()
        .map_err(|e| Error::Usage(format!("invalid address {addr:?}: {e}")))?
        .next()
        .ok_or_else(|| Error::Usage(format!("invalid address {addr:?}")))?;
    let mut stream = TcpStream::connect_timeout(&socket, TIMEOUT)
        .map_err(|e| no_answer(crate::sys::describe_io_error(&e)))?;
    stream
        .set_read_timeout(Some(TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(TIMEOUT)))
        .and_then(|()| {
            stream.write_all(
                // The address reached, not the name typed: the node answers
                // only requests whose Host names its address (no DNS rebinding).
                format!("GET {path} HTTP/1.1\r\nHost: {socket}\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
        })
        .map_err(|e| no_answer(crate::sys::describe_io_error(&e)))?;
    let mut answer = String::new();
    stream
        .take(MAX_ANSWER)
        .read_to_string(&mut answer)
        .map_err(|e| no_answer(crate::sys::describe_io_error(&e)))?;
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .ok_or_else(|| no_answer("not an HTTP answer".into()))?;
    if !head.starts_with("HTTP/1.1 200") {
        let line = head.lines().next().unwrap_or_default();
        return Err(no_answer(format!("it answered {line:?}")));
    }
    Ok(body.to_string())
}
