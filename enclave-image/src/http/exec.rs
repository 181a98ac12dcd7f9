//! The minimal executor that drives hyper without an async runtime.
//!
//! Each connection has its own thread and its own non-blocking socket. The connection's one
//! future is polled until it needs the socket; then the thread sleeps in poll(2) on exactly
//! the readiness hyper asked for, never past the connection's deadline. Nothing else is
//! scheduled, so there is nothing to steal work from and no reactor to share.

use std::cell::Cell;
use std::future::Future;
use std::io::{self, Read, Write};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use hyper::rt::ReadBufCursor;

use sigil_sys::Stream;
use sigil_sys::poll::{self, Interest};

const WANT_READ: u8 = 1;
const WANT_WRITE: u8 = 2;

/// Why a connection's future was abandoned.
#[derive(Debug, PartialEq, Eq)]
pub enum Abandoned {
    /// The whole exchange took longer than the connection's deadline.
    Deadline,
    /// No byte moved for the idle timeout.
    Idle,
    /// poll(2) itself failed.
    Poll(io::ErrorKind),
}

struct FlagWaker(AtomicBool);

impl Wake for FlagWaker {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::Release);
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.store(true, Ordering::Release);
    }
}

/// Runs `fut` to completion on this thread; `socket` is the one it waits on and `io` records
/// which readiness it waits for.
pub fn block_on<F: Future>(
    mut fut: Pin<&mut F>,
    io: &IoInterest,
    socket: &Stream,
    deadline: Instant,
    idle: Duration,
) -> Result<F::Output, Abandoned> {
    let flag = Arc::new(FlagWaker(AtomicBool::new(false)));
    let waker = Waker::from(flag.clone());
    let mut cx = Context::from_waker(&waker);
    loop {
        io.0.set(0);
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return Ok(v);
        }
        if flag.0.swap(false, Ordering::Acquire) {
            continue; // woken from inside the poll (hyper's internal body channel)
        }
        let wanted = io.0.get();
        let interest = match (
            wanted & WANT_READ != 0 || wanted == 0,
            wanted & WANT_WRITE != 0,
        ) {
            (true, true) => Interest::ReadWrite,
            (false, true) => Interest::Write,
            _ => Interest::Read,
        };
        let now = Instant::now();
        let Some(left) = deadline
            .checked_duration_since(now)
            .filter(|d| !d.is_zero())
        else {
            return Err(Abandoned::Deadline);
        };
        let wait = left.min(idle);
        match poll::wait(socket, interest, wait) {
            Ok(true) => {}
            Ok(false) => {
                return Err(if wait < idle {
                    Abandoned::Deadline
                } else {
                    Abandoned::Idle
                });
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Abandoned::Poll(e.kind())),
        }
    }
}

/// What the connection's future last waited for, and whether any response byte has been
/// written; shared between [`HyperIo`], [`block_on`] and the connection handler.
#[derive(Clone, Default)]
pub struct IoInterest(Rc<Cell<u8>>, Rc<Cell<bool>>);

impl IoInterest {
    /// True once hyper has written part of a response: too late for an error response.
    pub fn wrote(&self) -> bool {
        self.1.get()
    }
}

/// A non-blocking stream presented to hyper, with bytes already read (the request head that
/// was checked before hyper saw it) replayed first.
///
/// With a limit ([`HyperIo::limited`]) it reads no more than one request's bytes from the
/// socket and then reports end of input: hyper serves exactly that request and stops, and
/// the connection loop checks the next request's head itself before hyper sees it.
pub struct HyperIo {
    // Shared with the connection handler, which waits on, answers on and lingers on the same
    // socket while hyper owns this.
    stream: Rc<Stream>,
    prefix: Vec<u8>,
    prefix_pos: usize,
    interest: IoInterest,
    /// Bytes still to read from the socket after the prefix; `None` reads to the end.
    left: Option<usize>,
}

impl HyperIo {
    pub fn new(stream: Rc<Stream>, prefix: Vec<u8>, interest: IoInterest) -> Self {
        HyperIo {
            stream,
            prefix,
            prefix_pos: 0,
            interest,
            left: None,
        }
    }

    /// As [`HyperIo::new`], reading at most `more` bytes from the socket after the prefix.
    pub fn limited(stream: Rc<Stream>, prefix: Vec<u8>, more: usize, interest: IoInterest) -> Self {
        HyperIo {
            left: Some(more),
            ..HyperIo::new(stream, prefix, interest)
        }
    }

    /// True once every byte this was allowed to read has been handed to hyper.
    pub fn delivered_all(&self) -> bool {
        self.prefix_pos == self.prefix.len() && self.left == Some(0)
    }

    fn want(&self, bit: u8) {
        self.interest.0.set(self.interest.0.get() | bit);
    }
}

impl hyper::rt::Read for HyperIo {
    fn poll_read(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        mut buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.prefix_pos < this.prefix.len() {
            let rest = &this.prefix[this.prefix_pos..];
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            this.prefix_pos += n;
            return Poll::Ready(Ok(()));
        }
        if this.left == Some(0) {
            return Poll::Ready(Ok(())); // this request's bytes are all read: end of input
        }
        let mut tmp = [0u8; 16 * 1024];
        let want = tmp
            .len()
            .min(buf.remaining())
            .min(this.left.unwrap_or(usize::MAX));
        loop {
            match (&*this.stream).read(&mut tmp[..want]) {
                Ok(n) => {
                    buf.put_slice(&tmp[..n]);
                    if let Some(left) = &mut this.left {
                        *left -= n;
                    }
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    this.want(WANT_READ);
                    return Poll::Pending;
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl hyper::rt::Write for HyperIo {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        loop {
            match (&*this.stream).write(buf) {
                Ok(n) => {
                    this.interest.1.set(true);
                    return Poll::Ready(Ok(n));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    this.want(WANT_WRITE);
                    return Poll::Pending;
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // The peer may already be gone; the connection is ending either way.
        let _ = self.stream.shutdown(std::net::Shutdown::Write);
        Poll::Ready(Ok(()))
    }
}
