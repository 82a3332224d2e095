//! `p2pmon loadgen` (hidden from the main help): simulated peers for
//! benchmarks. Loopback only, bounded in time.
//!
//! - `loadgen send`: N peers, each a kept-open connection from its own
//!   loopback source address, each sending a v1 status every interval (or,
//!   with `--flood`, as fast as the node takes them) to one target node.
//! - `loadgen sink`: N peers listening on N loopback addresses (one `mio`
//!   loop), greeting like a v1 node and timing every status that arrives, to
//!   check a node's fan-out: every live peer gets every update on time.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use socket2::{Domain, Socket, Type};

use crate::Error;
use crate::cli::{LoadgenArgs, Mode, SendArgs, SinkArgs};
use crate::config::parse_duration;
use crate::proto::health::Health;
use crate::proto::wire::{self, HELLO, Header, Message};
use crate::proto::{FrameBuffer, Keyring};
use crate::time::unix_ms;

pub fn run(args: &LoadgenArgs) -> Result<(), Error> {
    match &args.mode {
        Mode::Send(send) => run_send(send),
        Mode::Sink(sink) => run_sink(sink),
    }
}

fn duration(flag: &str, text: &str) -> Result<Duration, Error> {
    parse_duration(text).map_err(|e| Error::Usage(format!("invalid value for {flag}: {e}")))
}

/// Address `base` + `offset`, refused unless it stays in 127.0.0.0/8.
fn loopback(base: Ipv4Addr, offset: u32) -> Result<Ipv4Addr, Error> {
    let ip = Ipv4Addr::from(u32::from(base).wrapping_add(offset));
    if ip.is_loopback() && base.is_loopback() {
        Ok(ip)
    } else {
        Err(Error::Usage(format!(
            "loadgen only uses loopback addresses; {ip} is not one"
        )))
    }
}

struct Peer {
    stream: std::net::TcpStream,
    /// Its source address and port 5000: the `from` of its sealed frames.
    from: SocketAddr,
    name: String,
    seq: u64,
    /// Bytes of a frame not yet written (the node read slowly).
    backlog: Vec<u8>,
}

fn run_send(args: &SendArgs) -> Result<(), Error> {
    if !args.target.ip().is_loopback() {
        return Err(Error::Usage(
            "loadgen only targets loopback addresses".into(),
        ));
    }
    let interval = duration("--interval", &args.interval)?;
    let run_for = duration("--duration", &args.duration)?;
    let keyring = match &args.key_file {
        Some(path) => Some(Keyring::load(path).map_err(|e| Error::Usage(e.to_string()))?),
        None => None,
    };
    let boot = unix_ms();
    let mut peers = Vec::new();
    let mut failed = 0u32;
    for i in 0..args.peers {
        let source = loopback(args.source, i)?;
        match connect(source, args.target) {
            Ok(stream) => peers.push(Peer {
                stream,
                from: SocketAddr::new(IpAddr::V4(source), 5000),
                name: format!("sim-{i}"),
                seq: 0,
                backlog: Vec::new(),
            }),
            Err(e) => {
                failed += 1;
                if failed <= 3 {
                    eprintln!("loadgen: {source} cannot connect: {e}");
                }
            }
        }
    }
    eprintln!(
        "loadgen: {} peers connected ({failed} failed) to {}",
        peers.len(),
        args.target
    );
    let started = Instant::now();
    let (mut sent, mut stalled, mut bytes) = (0u64, 0u64, 0u64);
    let mut next_round = started;
    let mut batch = Vec::with_capacity(64 * 1024);
    while started.elapsed() < run_for {
        let now = Instant::now();
        if !args.flood {
            if now < next_round {
                std::thread::sleep(next_round - now);
            }
            next_round = crate::limits::later(next_round, interval);
        }
        for peer in &mut peers {
            if !peer.backlog.is_empty() {
                match peer.stream.write(&peer.backlog) {
                    Ok(n) => {
                        peer.backlog.drain(..n);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(_) => continue,
                }
                if !peer.backlog.is_empty() {
                    stalled += 1;
                    continue;
                }
            }
            batch.clear();
            let frames = if args.flood { 256 } else { 1 };
            for _ in 0..frames {
                let message = Message::Status {
                    header: Header {
                        node: peer.name.clone(),
                        port: 5000,
                        boot,
                        seq: peer.seq,
                        ts: unix_ms(),
                        interval_ms: interval.as_millis() as u64,
                        members: Vec::new(),
                    },
                    cpu: (peer.seq % 100) as f64,
                    memory: 42.0,
                    health: Health::default(),
                };
                peer.seq += 1;
                let line = wire::encode(&message);
                match &keyring {
                    Some(keyring) => match keyring.seal(&line, peer.from, args.target) {
                        Ok(sealed) => batch.extend_from_slice(&sealed),
                        Err(e) => return Err(Error::Runtime(format!("cannot seal: {e}"))),
                    },
                    None => batch.extend_from_slice(&line),
                }
            }
            match peer.stream.write(&batch) {
                Ok(n) => {
                    bytes += n as u64;
                    // Whole frames only count as sent; a partial one waits.
                    sent += frames as u64;
                    if n < batch.len() {
                        peer.backlog.extend_from_slice(&batch[n..]);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    stalled += 1;
                    peer.seq -= frames as u64;
                }
                Err(_) => {}
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    // Finish the frames in flight and close cleanly: unread bytes (the
    // node's hello) at close would reset the connection and cut the last frames.
    for peer in &mut peers {
        if peer.stream.set_nonblocking(false).is_ok() {
            let _ = peer.stream.write_all(&peer.backlog);
            let _ = peer.stream.shutdown(std::net::Shutdown::Write);
            let _ = peer.stream.set_read_timeout(Some(Duration::from_secs(1)));
        }
    }
    let mut sink = [0u8; 256];
    for peer in &mut peers {
        while matches!(peer.stream.read(&mut sink), Ok(n) if n > 0) {}
    }
    println!(
        "sent {sent} statuses from {} peers in {seconds:.1} s ({:.0}/s, {:.1} MB), {stalled} writes stalled",
        peers.len(),
        sent as f64 / seconds,
        bytes as f64 / 1e6
    );
    Ok(())
}

/// A blocking-connected, then non-blocking, stream from `source`.
fn connect(source: Ipv4Addr, target: SocketAddr) -> io::Result<std::net::TcpStream> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.bind(&SocketAddr::new(IpAddr::V4(source), 0).into())?;
    socket.connect_timeout(&target.into(), Duration::from_secs(3))?;
    socket.set_tcp_nodelay(true)?;
    let stream: std::net::TcpStream = socket.into();
    stream.set_nonblocking(true)?;
    Ok(stream)
}

/// Arrivals seen by one simulated listening peer.
#[derive(Default)]
struct Arrivals {
    count: u64,
    last: Option<Instant>,
    largest_gap: Duration,
}

fn run_sink(args: &SinkArgs) -> Result<(), Error> {
    let run_for = duration("--duration", &args.duration)?;
    let interval = duration("--interval", &args.interval)?;
    let warmup = duration("--warmup", &args.warmup)?;
    let mut poll = Poll::new().map_err(|e| Error::Runtime(e.to_string()))?;
    let mut listeners = Vec::new();
    for i in 0..args.peers {
        let ip = loopback(args.listen, i)?;
        let addr = SocketAddr::new(IpAddr::V4(ip), args.port);
        let mut listener = TcpListener::bind(addr)
            .map_err(|e| Error::Runtime(format!("cannot listen on {addr}: {e}")))?;
        poll.registry()
            .register(&mut listener, Token(i as usize), Interest::READABLE)
            .map_err(|e| Error::Runtime(e.to_string()))?;
        listeners.push(listener);
    }
    eprintln!(
        "loadgen sink: {} peers listening from {}",
        args.peers, args.listen
    );
    let first_conn = listeners.len();
    let mut conns: Vec<(TcpStream, usize, FrameBuffer)> = Vec::new();
    let mut arrivals: HashMap<usize, Arrivals> = HashMap::new();
    let mut events = Events::with_capacity(1024);
    let started = Instant::now();
    let judge_from = crate::limits::later(started, warmup);
    let mut buffer = vec![0u8; 64 * 1024];
    while started.elapsed() < run_for {
        let left = run_for.saturating_sub(started.elapsed());
        if poll
            .poll(&mut events, Some(left.min(Duration::from_millis(200))))
            .is_err()
        {
            continue;
        }
        for event in events.iter() {
            let token = event.token().0;
            if token < first_conn {
                while let Ok((mut stream, _)) = listeners[token].accept() {
                    let _ = stream.write(HELLO);
                    let index = first_conn + conns.len();
                    if poll
                        .registry()
                        .register(&mut stream, Token(index), Interest::READABLE)
                        .is_ok()
                    {
                        conns.push((stream, token, FrameBuffer::default()));
                    }
                }
                continue;
            }
            let Some((stream, peer, frames)) = conns.get_mut(token - first_conn) else {
                continue;
            };
            loop {
                match stream.read(&mut buffer) {
                    Ok(0) => break,
                    Ok(n) => {
                        let now = Instant::now();
                        let record = arrivals.entry(*peer).or_default();
                        let _ = frames.push(&buffer[..n], |frame| {
                            if matches!(wire::decode(frame), Ok(Message::Status { .. })) {
                                record.count += 1;
                                if let Some(last) = record.last
                                    && now >= judge_from
                                {
                                    record.largest_gap = record.largest_gap.max(now - last);
                                }
                                record.last = Some(now);
                            }
                        });
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(_) => break,
                }
            }
        }
    }
    // A peer that stopped hearing from the node has a gap up to the end.
    let ended = Instant::now();
    for record in arrivals.values_mut() {
        if let Some(last) = record.last {
            record.largest_gap = record.largest_gap.max(ended - last);
        }
    }
    let late_limit = interval.mul_f64(1.5);
    let heard = arrivals.len();
    let mut late: Vec<(usize, Duration)> = arrivals
        .iter()
        .filter(|(_, a)| a.largest_gap > late_limit)
        .map(|(peer, a)| (*peer, a.largest_gap))
        .collect();
    late.sort();
    let counts: Vec<u64> = arrivals.values().map(|a| a.count).collect();
    let worst_gap = arrivals
        .values()
        .map(|a| a.largest_gap)
        .max()
        .unwrap_or_default();
    println!(
        "sink: {heard} of {} peers heard; statuses per peer min {} max {}; largest gap {:.2} s; {} peers with a gap above {:.1} s",
        args.peers,
        counts.iter().min().copied().unwrap_or(0),
        counts.iter().max().copied().unwrap_or(0),
        worst_gap.as_secs_f64(),
        late.len(),
        late_limit.as_secs_f64()
    );
    for (peer, gap) in late.iter().take(10) {
        println!(
            "  late: {} (gap {:.2} s)",
            loopback(args.listen, *peer as u32)?,
            gap.as_secs_f64()
        );
    }
    Ok(())
}
