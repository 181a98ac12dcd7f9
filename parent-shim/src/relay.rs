//! Byte forwarding: the accept loop shared by every service (with its connection limit) and
//! the two-way forwarding used by ingress and egress (splice(2) through pipes, so the bytes
//! never enter this process; a copy loop where a socket cannot be spliced). Nothing here looks
//! at the bytes.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sigil_protocol::parent::source;
use sigil_sys::Addr;
use sigil_sys::splice::{self as sys_splice, Pipe, SpliceFlags};
use sigil_sys::{Listener, Stream};

use crate::log;

/// Capacity asked for each direction's pipe (see [`splice`]): the kernel's default, so no
/// resize is needed. A direction never holds more than its pipe's capacity (it asks for at
/// most that much and empties the pipe before reading its socket again), so what the relay
/// holds is bounded by `max_connections * 2 * PIPE_SIZE` per service: 2 pipes x 64 KiB =
/// 128 KiB a connection, 32 MiB at the default 256 connections; it sits in kernel pages (the
/// pipe references the socket buffers' pages), not in this process. The pipes also count
/// against the user's pipe budget (`/proc/sys/fs/pipe-user-pages-soft`, 16384 pages by
/// default: 512 connections' pairs of 64 KiB pipes for ingress and egress together); past it
/// the kernel gives an unprivileged user 8 KiB pipes, which costs speed, never correctness.
/// Larger pipes (256 KiB, 1 MiB) measured no faster on loopback, so none is asked for.
/// Each connection also holds 4 pipe descriptors besides its 4 socket descriptors (2 and
/// their clones); without descriptors for a pipe a direction copies instead.
const PIPE_SIZE: usize = 64 * 1024;
/// Size of the copy buffer of a direction that cannot be spliced (the fallback in [`pump`]):
/// at most one per direction, so that path is bounded by `max_connections * 2 * COPY_BUF`.
const COPY_BUF: usize = 32 * 1024;
/// How often a blocked read wakes up to check the idle clock.
const IDLE_TICK: Duration = Duration::from_millis(500);
/// Stack for connection threads: they only copy bytes, so a small stack keeps
/// `max_connections` threads cheap.
const THREAD_STACK: usize = 256 * 1024;

/// Counts live connections; dropping the guard frees the slot even if the handler panics.
struct Slot(Arc<AtomicUsize>);
impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn take_slot(live: &Arc<AtomicUsize>, max: usize) -> Option<Slot> {
    live.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
        (n < max).then_some(n + 1)
    })
    .ok()
    .map(|_| Slot(live.clone()))
}

/// Connections per source address. Threat: one greedy client (one address) opening
/// connections up to the service's limit and holding them, locking every other client out;
/// with this, it holds at most `per_source` of them. Sources are TCP peers' IP addresses;
/// Unix-socket peers (local processes) are not told apart here.
struct PerSource {
    per_source: usize,
    live: Mutex<HashMap<IpAddr, usize>>,
}

/// A source's place; dropping it gives the place back.
struct SourceSlot(Arc<PerSource>, IpAddr);

impl Drop for SourceSlot {
    fn drop(&mut self) {
        let mut live = self.0.live.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = live.get_mut(&self.1) {
            *n -= 1;
            if *n == 0 {
                live.remove(&self.1);
            }
        }
    }
}

impl PerSource {
    /// A place for `peer`, or `None` if its source holds all it may. Peers that are not
    /// TCP addresses always get one (`Some(None)`).
    fn take(self: &Arc<Self>, peer: &str) -> Option<Option<SourceSlot>> {
        let Ok(addr) = peer.parse::<SocketAddr>() else {
            return Some(None);
        };
        // The same key the enclave uses for its per-client limits (IPv4 address; IPv6 /64).
        let ip = source::key(addr.ip());
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        let n = live.entry(ip).or_insert(0);
        if *n >= self.per_source {
            return None;
        }
        *n += 1;
        Some(Some(SourceSlot(self.clone(), ip)))
    }
}

/// Why one ingress connection ended with an error.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("upstream: {0}")]
    Upstream(#[source] io::Error),
    #[error(transparent)]
    Splice(io::Error),
}

/// Binds `addr` and serves it on a background thread: at most `max` connections at once,
/// each on its own thread running `handler(stream, peer)`. Returns the bound address.
pub fn spawn_service<F, E>(
    service: &'static str,
    addr: &Addr,
    max: usize,
    handler: F,
) -> io::Result<Addr>
where
    F: Fn(Stream, &str) -> Result<(), E> + Send + Sync + 'static,
    E: std::fmt::Display,
{
    spawn_service_per_source(service, addr, max, max, handler)
}

/// As [`spawn_service`], with at most `per_source` of the `max` connections from any one
/// source address (see [`PerSource`]).
pub fn spawn_service_per_source<F, E>(
    service: &'static str,
    addr: &Addr,
    max: usize,
    per_source: usize,
    handler: F,
) -> io::Result<Addr>
where
    F: Fn(Stream, &str) -> Result<(), E> + Send + Sync + 'static,
    E: std::fmt::Display,
{
    let listener = Listener::bind(addr)?;
    let bound = listener.local_addr()?;
    log::info(service, &format!("listening on {bound}"));
    std::thread::Builder::new()
        .name(format!("{service}-accept"))
        .spawn(move || serve(service, listener, max, per_source, Arc::new(handler)))?;
    Ok(bound)
}

fn serve<F, E>(
    service: &'static str,
    listener: Listener,
    max: usize,
    per_source: usize,
    handler: Arc<F>,
) where
    F: Fn(Stream, &str) -> Result<(), E> + Send + Sync + 'static,
    E: std::fmt::Display,
{
    let live = Arc::new(AtomicUsize::new(0));
    let sources = Arc::new(PerSource {
        per_source,
        live: Mutex::new(HashMap::new()),
    });
    let mut last_refusal_log: Option<Instant> = None;
    loop {
        let (stream, peer) = match listener.accept() {
            Ok(x) => x,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                // EMFILE/ENFILE/ENOMEM are transient under a connection flood: back off rather
                // than spin (CPU exhaustion) or exit (one flood would take the service down).
                log::error(service, &format!("accept: {e}"));
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        // Connection flood (resource exhaustion): past the limit a connection is closed at
        // once, before any thread or buffer is spent on it.
        let slots = sources
            .take(&peer)
            .ok_or("per-source")
            .and_then(|s| take_slot(&live, max).map(|l| (l, s)).ok_or("total"));
        let (slot, source_slot) = match slots {
            Ok(s) => s,
            Err(which) => {
                drop(stream);
                // Rate-limited so a flood cannot also flood the journal.
                if last_refusal_log.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                    let limit = if which == "total" { max } else { per_source };
                    log::warn(
                        service,
                        &format!("refused {peer}: {which} connection limit {limit} reached"),
                    );
                    last_refusal_log = Some(Instant::now());
                }
                continue;
            }
        };
        let h = handler.clone();
        let p = peer.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("{service}-conn"))
            .stack_size(THREAD_STACK)
            .spawn(move || {
                let _slot = (slot, source_slot);
                if let Err(e) = h(stream, &p) {
                    // The peer and the error, never payload bytes.
                    log::warn(service, &format!("{p}: {e}"));
                }
            });
        if let Err(e) = spawned {
            log::error(
                service,
                &format!("{peer}: no thread for the connection: {e}"),
            );
        }
    }
}

/// Ingress: connect to the enclave and copy both ways.
pub fn forward(client: Stream, upstream: &Addr, idle: Duration) -> Result<(), RelayError> {
    let server = Stream::connect(upstream).map_err(RelayError::Upstream)?;
    splice(client, server, idle).map_err(RelayError::Splice)
}

/// Ingress that tells the enclave who the client is: connect, write one PROXY v2 header with
/// `peer`'s address (`LOCAL` when it is not an IP address, a Unix-socket client), then copy
/// both ways. The header goes out before any client byte is read, so whatever the client
/// sends, header-like bytes included, comes after it: a client cannot choose its source.
pub fn forward_with_source(
    client: Stream,
    peer: &str,
    upstream: &Addr,
    idle: Duration,
) -> Result<(), RelayError> {
    let header = source::encode(peer.parse::<SocketAddr>().ok())
        .map_err(|e| RelayError::Upstream(io::Error::other(e)))?;
    let mut server = Stream::connect(upstream).map_err(RelayError::Upstream)?;
    server
        .set_write_timeout(Some(idle))
        .and_then(|_| server.write_all(&header))
        .map_err(RelayError::Upstream)?;
    splice(client, server, idle).map_err(RelayError::Splice)
}

/// Copies `a` <-> `b` until both directions have ended. EOF in one direction becomes
/// shutdown(Write) on the other side (half-close is propagated, so request/response protocols
/// that signal the end of a request by closing their write side keep working). An error in
/// either direction, or no byte in either direction for `idle`, closes both fully.
///
/// Each direction runs on its own thread and moves bytes with splice(2), socket -> pipe ->
/// socket, so payload is never copied into this process and back (see [`pump`]). Memory is
/// bounded by [`PIPE_SIZE`] per direction: `max_connections * 2 * PIPE_SIZE` per service.
/// The idle limit works as it did for the copy loop: blocked splices wake every `IDLE_TICK`
/// (SO_RCVTIMEO applies to splice as to read) to look at the shared idle clock.
pub fn splice(a: Stream, b: Stream, idle: Duration) -> io::Result<()> {
    let start = Instant::now();
    let last = Arc::new(AtomicU64::new(0));
    for s in [&a, &b] {
        s.set_read_timeout(Some(IDLE_TICK.min(idle)))?;
        // A peer that stops reading cannot pin this thread for longer than the idle limit.
        s.set_write_timeout(Some(idle))?;
    }
    let (a2, b2) = (a.try_clone()?, b.try_clone()?);
    let last2 = last.clone();
    let up = std::thread::Builder::new()
        .name("splice".into())
        .stack_size(THREAD_STACK)
        .spawn(move || pump(a2, b2, &IdleClock::new(&last2, start, idle)))?;
    let r1 = pump(b, a, &IdleClock::new(&last, start, idle));
    let r2 = up
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("copy thread panicked")));
    r1.and(r2)
}

/// The idle clock a connection's two directions share: when a byte last moved either way.
struct IdleClock<'a> {
    last: &'a AtomicU64,
    start: Instant,
    limit: Duration,
}

impl<'a> IdleClock<'a> {
    fn new(last: &'a AtomicU64, start: Instant, limit: Duration) -> Self {
        IdleClock { last, start, limit }
    }

    fn touch(&self) {
        self.last
            .store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// Called when a read waited `IDLE_TICK` for nothing. Idle connections (slowloris-style
    /// slot hoarding) are cut once no byte moved either way for the limit.
    fn check(&self) -> io::Result<()> {
        let now = self.start.elapsed().as_millis() as u64;
        let quiet = now.saturating_sub(self.last.load(Ordering::Relaxed));
        if quiet >= self.limit.as_millis() as u64 {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("idle for {} s, closed", self.limit.as_secs()),
            ));
        }
        Ok(())
    }
}

/// A read that woke up after `IDLE_TICK` (SO_RCVTIMEO) with nothing to read.
fn is_tick(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// A write that waited the whole idle limit (SO_SNDTIMEO) for a peer that reads nothing.
fn stalled(e: io::Error, idle: Duration) -> io::Error {
    if is_tick(&e) {
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!("peer read nothing for {} s, closed", idle.as_secs()),
        )
    } else {
        e
    }
}

/// How a spliced direction stopped without an error.
enum Spliced {
    /// End of stream from `from`.
    Eof,
    /// These descriptors cannot be spliced; nothing is left in the pipe (what was there went
    /// to `to` by copying), so the direction goes on copying.
    Unsupported,
}

/// Moves `from` -> `to` until `from` ends (then half-closes `to`) or either fails (then
/// closes both, which also ends the other direction's thread).
///
/// The path is splice(2) through a pipe for every stream type (TCP, Unix, vsock: the same
/// generic descriptor code). TCP and Unix sockets move page references (no copy); AF_VSOCK
/// has no splice operations of its own, so the kernel's generic path copies between the
/// socket and the pipe's pages inside the kernel (one copy per direction where read + write
/// made two). Where the kernel cannot splice a socket type at all (EINVAL, ESPIPE, or
/// ENOSYS/EOPNOTSUPP under a kernel or sandbox without splice), or no pipe can be had (the
/// descriptor limit), the direction falls back to the copy loop through a [`COPY_BUF`]
/// buffer, with the same semantics; nothing is lost in the switch.
fn pump(from: Stream, to: Stream, idle: &IdleClock<'_>) -> io::Result<()> {
    let result = match Pipe::with_capacity(PIPE_SIZE) {
        Ok(pipe) => match pump_spliced(&from, &to, &pipe, idle) {
            Ok(Spliced::Eof) => Ok(()),
            Ok(Spliced::Unsupported) => {
                drop(pipe);
                pump_copied(&from, &to, idle)
            }
            Err(e) => Err(e),
        },
        Err(_) => pump_copied(&from, &to, idle),
    };
    match result {
        Ok(()) => {
            // Half-close: tell the other side this direction is finished; the other direction
            // keeps flowing.
            let _ = to.shutdown(Shutdown::Write);
        }
        Err(_) => {
            // Wake the other direction's thread so it ends too.
            let _ = from.shutdown(Shutdown::Both);
            let _ = to.shutdown(Shutdown::Both);
        }
    }
    result
}

/// The splice loop: socket -> pipe (whatever the socket has, up to the pipe's capacity), then
/// pipe -> socket until the pipe is empty, and again.
///
/// Threats, and what bounds them:
/// - A peer that never reads: the pipe -> `to` splice blocks once `to`'s send buffer is full,
///   so nothing more is read from `from`; `from`'s receive window closes and its sender
///   stops (back-pressure: never more than the pipe in flight here). The blocked splice
///   gives up after the idle limit (SO_SNDTIMEO) and the connection is closed.
/// - A half-close: `from`'s end of stream is splice returning 0 with the pipe empty; `to` is
///   shut down for writing only and the other direction keeps going.
/// - A reset peer: splice fails (ECONNRESET, EPIPE) and both sides are closed. (splice(2)
///   sends without MSG_NOSIGNAL, so the kernel also raises SIGPIPE; the Rust runtime ignores
///   SIGPIPE from before `main`, so it only shows as EPIPE.)
/// - An idle client: the socket -> pipe splice blocks at most `IDLE_TICK` (SO_RCVTIMEO
///   applies to splice as to read), and the shared idle clock closes the connection after
///   the idle limit, as the copy loop does.
fn pump_spliced(
    from: &Stream,
    to: &Stream,
    pipe: &Pipe,
    idle: &IdleClock<'_>,
) -> io::Result<Spliced> {
    // Blocking splices without SPLICE_F_NONBLOCK: one system call per chunk each way and no
    // poll in between; the pipe is always empty before the socket -> pipe splice (so that one
    // never waits for pipe space) and always holds data before the pipe -> socket one.
    let flags = SpliceFlags::MOVE;
    // At most PIPE_SIZE even where the kernel's pipes are larger (64 KiB pages).
    let chunk = pipe.capacity().min(PIPE_SIZE);
    loop {
        let n = match sys_splice::splice(from.as_fd(), pipe.write_end(), chunk, flags) {
            Ok(0) if at_end(from) => return Ok(Spliced::Eof),
            // Not the end: TCP urgent data at the head of the queue stops a splice (it
            // returns 0) but not a read. The pipe is empty: the copy loop takes over.
            Ok(0) => return Ok(Spliced::Unsupported),
            Ok(n) => n,
            // The pipe is empty: switching to copying loses nothing.
            Err(e) if sys_splice::unsupported(&e) => return Ok(Spliced::Unsupported),
            Err(e) if is_tick(&e) => {
                idle.check()?;
                continue;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        idle.touch();
        let mut left = n;
        while left > 0 {
            match sys_splice::splice(pipe.read_end(), to.as_fd(), left, flags) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(m) => {
                    left -= m;
                    idle.touch();
                }
                Err(e) if sys_splice::unsupported(&e) => {
                    // `to` cannot be spliced to: copy out what the pipe holds, then copy.
                    copy_out(pipe, to, left).map_err(|e| stalled(e, idle.limit))?;
                    return Ok(Spliced::Unsupported);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(stalled(e, idle.limit)),
            }
        }
    }
}

/// After a splice from `from` returned 0: whether that was its end of stream. Threat: a
/// client sending one TCP urgent byte would otherwise have the shim half-close its upstream
/// connection as if it had finished (only its own connection, but silently truncated).
fn at_end(from: &Stream) -> bool {
    match from {
        // A peek sees the end of stream as 0 too, but reads past an urgent byte.
        Stream::Tcp(t) => matches!(t.peek(&mut [0u8; 1]), Ok(0)),
        // No urgent data on Unix and vsock sockets: 0 is the end.
        _ => true,
    }
}

/// Moves the `left` bytes the pipe holds to `to` through a buffer.
fn copy_out(pipe: &Pipe, mut to: &Stream, mut left: usize) -> io::Result<()> {
    let mut buf = vec![0u8; left.min(COPY_BUF)];
    while left > 0 {
        let want = left.min(buf.len());
        match pipe.read(&mut buf[..want]) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                to.write_all(&buf[..n])?;
                left -= n;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The copy loop: read into a buffer, write it all out. Used where splicing is not possible.
/// `Ok(())` at `from`'s end of stream.
fn pump_copied(mut from: &Stream, mut to: &Stream, idle: &IdleClock<'_>) -> io::Result<()> {
    let mut buf = vec![0u8; COPY_BUF];
    loop {
        match from.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => {
                idle.touch();
                to.write_all(&buf[..n])
                    .map_err(|e| stalled(e, idle.limit))?;
                idle.touch();
            }
            Err(e) if is_tick(&e) => idle.check()?,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;

    /// (the user's end, the relay's end) of a connected Unix stream.
    fn pair() -> (Stream, Stream) {
        let (a, b) = UnixStream::pair().unwrap();
        (Stream::Unix(a), Stream::Unix(b))
    }

    fn pattern(n: usize, seed: u8) -> Vec<u8> {
        (0..n)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    /// Both directions through `splice` over Unix streams (the TCP case is in
    /// tests/ingress.rs): a request closed by a half-close, then an answer, each larger than
    /// the pipes and the socket buffers, arrive whole and in order, and each end sees the
    /// other's end of stream.
    #[test]
    fn splice_carries_both_directions_and_propagates_half_close() {
        let (mut client, c_relay) = pair();
        let (s_relay, mut server) = pair();
        let relay = std::thread::spawn(move || splice(c_relay, s_relay, Duration::from_secs(30)));
        let request = pattern(3 * 1024 * 1024 + 17, 1);
        let answer = pattern(2 * 1024 * 1024 + 5, 2);
        let (req, ans) = (request.clone(), answer.clone());
        let server_side = std::thread::spawn(move || {
            let mut got = Vec::new();
            server.read_to_end(&mut got).unwrap();
            assert!(got == req, "request bytes differ");
            server.write_all(&ans).unwrap();
            server.shutdown(Shutdown::Write).unwrap();
        });
        let writer = {
            let mut c = client.try_clone().unwrap();
            std::thread::spawn(move || {
                c.write_all(&request).unwrap();
                c.shutdown(Shutdown::Write).unwrap();
            })
        };
        let mut got = Vec::new();
        client.read_to_end(&mut got).unwrap();
        assert!(got == answer, "answer bytes differ");
        writer.join().unwrap();
        server_side.join().unwrap();
        relay.join().unwrap().unwrap();
    }

    /// Threat: a peer that never reads. The relay stops reading from the sender once the
    /// pipe and the peer's socket buffer are full (back-pressure, nothing buffered without
    /// end) and closes the connection after the idle limit.
    #[test]
    fn a_peer_that_never_reads_is_cut_after_the_idle_limit() {
        let (client, c_relay) = pair();
        let (s_relay, _server) = pair();
        let idle = Duration::from_secs(1);
        let start = Instant::now();
        let relay = std::thread::spawn(move || splice(c_relay, s_relay, idle));
        // Push until the path is full: the relay must stop taking bytes.
        let chunk = vec![0u8; 64 * 1024];
        let mut sent = 0usize;
        let end = Instant::now() + Duration::from_secs(10);
        let err = loop {
            match client.send_nowait(&chunk) {
                Ok(n) => sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    assert!(Instant::now() < end, "the relay never closed");
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => break e,
            }
        };
        let r = relay.join().unwrap();
        let waited = start.elapsed();
        assert!(
            matches!(r, Err(ref e) if e.kind() == io::ErrorKind::TimedOut),
            "{r:?}"
        );
        assert!(
            waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
            "{waited:?}"
        );
        assert!(
            matches!(
                err.kind(),
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
            ),
            "{err}"
        );
        // Bounded: the socket buffers on both sides plus one pipe, far below what a sender
        // could push in that time if the relay kept reading.
        assert!(sent < 64 * 1024 * 1024, "{sent} bytes taken");
    }

    /// The copy loop (the fallback for descriptors that cannot be spliced) keeps the same
    /// semantics: every byte, then `Ok` at end of stream.
    #[test]
    fn the_copy_fallback_moves_everything_to_the_end() {
        let (mut a_user, a) = pair();
        let (b, mut b_user) = pair();
        let last = AtomicU64::new(0);
        let data = pattern(1024 * 1024 + 3, 3);
        let d = data.clone();
        let writer = std::thread::spawn(move || {
            a_user.write_all(&d).unwrap();
            a_user.shutdown(Shutdown::Write).unwrap();
        });
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            b_user.read_to_end(&mut got).unwrap();
            got
        });
        let clock = IdleClock::new(&last, Instant::now(), Duration::from_secs(30));
        pump_copied(&a, &b, &clock).unwrap();
        b.shutdown(Shutdown::Write).unwrap();
        writer.join().unwrap();
        assert!(reader.join().unwrap() == data);
    }

    /// The switch from splicing to copying in the middle of a chunk: what the pipe holds goes
    /// out through a buffer, nothing lost or reordered.
    #[test]
    fn what_the_pipe_holds_is_copied_out_on_fallback() {
        let (mut a_user, a) = pair();
        let (b, mut b_user) = pair();
        let pipe = Pipe::new().unwrap();
        let data = pattern(40_000, 4);
        a_user.write_all(&data).unwrap();
        let mut held = 0;
        while held < data.len() {
            held += sys_splice::splice(
                a.as_fd(),
                pipe.write_end(),
                data.len() - held,
                SpliceFlags::MOVE,
            )
            .unwrap();
        }
        copy_out(&pipe, &b, held).unwrap();
        drop(b);
        let mut got = Vec::new();
        b_user.read_to_end(&mut got).unwrap();
        assert!(got == data);
    }

    /// Threat: an idle client. With nothing moving either way the connection is closed after
    /// the idle limit, on the splice path as on the copy path.
    #[test]
    fn idle_connections_are_closed_on_the_splice_path() {
        let (_client, c_relay) = pair();
        let (s_relay, _server) = pair();
        let start = Instant::now();
        let r = splice(c_relay, s_relay, Duration::from_millis(700));
        let waited = start.elapsed();
        assert!(
            matches!(r, Err(ref e) if e.kind() == io::ErrorKind::TimedOut),
            "{r:?}"
        );
        assert!(
            waited >= Duration::from_millis(650) && waited < Duration::from_secs(3),
            "{waited:?}"
        );
    }
}
