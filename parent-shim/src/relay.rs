//! Byte forwarding: the accept loop shared by every service (with its connection limit) and
//! the two-way copy used by ingress and egress. Nothing here looks at the bytes.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sigil_protocol::parent::source;
use sigil_sys::Addr;
use sigil_sys::{Listener, Stream};

use crate::log;

/// Size of each direction's copy buffer: one per direction per connection, so memory is
/// bounded by `max_connections * 2 * COPY_BUF`.
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
        .spawn(move || pump(a2, b2, &last2, start, idle))?;
    let r1 = pump(b, a, &last, start, idle);
    let r2 = up
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("copy thread panicked")));
    r1.and(r2)
}

fn pump(
    mut from: Stream,
    mut to: Stream,
    last: &AtomicU64,
    start: Instant,
    idle: Duration,
) -> io::Result<()> {
    let mut buf = vec![0u8; COPY_BUF];
    let touch = || last.store(start.elapsed().as_millis() as u64, Ordering::Relaxed);
    let result = loop {
        match from.read(&mut buf) {
            Ok(0) => {
                // Half-close: tell the other side this direction is finished.
                let _ = to.shutdown(Shutdown::Write);
                return Ok(());
            }
            Ok(n) => {
                touch();
                if let Err(e) = to.write_all(&buf[..n]) {
                    break Err(e);
                }
                touch();
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                let now = start.elapsed().as_millis() as u64;
                let quiet = now.saturating_sub(last.load(Ordering::Relaxed));
                // Idle connections (slowloris-style slot hoarding) are cut after `idle`.
                if quiet >= idle.as_millis() as u64 {
                    break Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("idle for {} s, closed", idle.as_secs()),
                    ));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => break Err(e),
        }
    };
    // Wake the other direction's thread so it ends too.
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
    result
}
