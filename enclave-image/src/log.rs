//! Logging for the enclave: one line per event, never a secret.
//!
//! As an ordinary process, lines go to stderr. As PID 1 they go to a bounded in-memory ring
//! (forwarded to the parent's log port when it listens) and to the console without ever
//! blocking: a console that cannot keep up loses lines (counted), the service does not stall.
//! Levels are few on purpose; `SIGIL_LOG=debug` adds the per-connection noise.

use std::fmt::Arguments;
use std::fs::File;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};

/// Bytes of log kept in memory as PID 1.
pub const RING_BYTES: usize = 256 * 1024;
/// Lines kept at most, whatever their size: the ring's slots are allocated once, at boot, and
/// never grow (a flood of short lines cannot make the ring reallocate).
pub const RING_LINES: usize = 1024;
/// Longest line kept (longer ones are cut): a huge message must not evict the whole ring.
pub const MAX_LINE: usize = 2048;

static DEBUG: AtomicBool = AtomicBool::new(false);
static SINK: OnceLock<Ring> = OnceLock::new();

/// The PID-1 sink: a ring of whole lines plus the console.
pub struct Ring {
    inner: Mutex<RingInner>,
    more: Condvar,
    console: Option<File>,
    console_dropped: AtomicU64,
}

struct RingInner {
    lines: heapless::Deque<(u64, Vec<u8>), RING_LINES>,
    bytes: usize,
    next_seq: u64,
    dropped: u64,
}

impl Ring {
    fn push(&self, line: Vec<u8>) {
        if let Some(mut console) = self.console.as_ref() {
            // O_NONBLOCK console: one write(2); EAGAIN or a short write means it is full, and
            // the line is dropped for the console only.
            if !matches!(console.write(&line), Ok(n) if n == line.len()) {
                self.console_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        let Ok(mut g) = self.inner.lock() else { return };
        let seq = g.next_seq;
        g.next_seq += 1;
        if g.lines.is_full()
            && let Some((_, old)) = g.lines.pop_front()
        {
            g.bytes -= old.len();
            g.dropped += 1;
        }
        g.bytes += line.len();
        // Cannot fail: a slot was freed above when the ring was full.
        let _ = g.lines.push_back((seq, line));
        while g.bytes > RING_BYTES {
            match g.lines.pop_front() {
                Some((_, old)) => {
                    g.bytes -= old.len();
                    g.dropped += 1;
                }
                None => break,
            }
        }
        drop(g);
        self.more.notify_all();
    }

    /// Lines with sequence number >= `from`, waiting up to `wait` for one to exist. Returns
    /// the lines and the next sequence number to ask for; lines already evicted are skipped.
    pub fn read_from(&self, from: u64, wait: std::time::Duration) -> (Vec<Vec<u8>>, u64) {
        let Ok(g) = self.inner.lock() else {
            return (Vec::new(), from);
        };
        let Ok((g, _)) = self
            .more
            .wait_timeout_while(g, wait, |g| g.next_seq <= from)
        else {
            return (Vec::new(), from);
        };
        let lines = g
            .lines
            .iter()
            .filter(|(s, _)| *s >= from)
            .map(|(_, l)| l.clone())
            .collect();
        (lines, g.next_seq)
    }

    /// An empty ring that also writes to `console`, if any.
    fn new(console: Option<File>) -> Ring {
        Ring {
            inner: Mutex::new(RingInner {
                lines: heapless::Deque::new(),
                bytes: 0,
                next_seq: 0,
                dropped: 0,
            }),
            more: Condvar::new(),
            console,
            console_dropped: AtomicU64::new(0),
        }
    }

    /// (lines evicted from the ring, lines the console could not take)
    pub fn dropped(&self) -> (u64, u64) {
        let ring = self.inner.lock().map(|g| g.dropped).unwrap_or(0);
        (ring, self.console_dropped.load(Ordering::Relaxed))
    }
}

/// Switches logging to the ring (and `console`, which must be non-blocking). Once only.
pub fn use_ring(console: Option<File>) -> &'static Ring {
    SINK.get_or_init(|| Ring::new(console))
}

pub fn set_debug(on: bool) {
    DEBUG.store(on, Ordering::Relaxed);
}

fn emit(level: &str, args: Arguments<'_>) {
    let mut line = format!("sigil-enclave {level}: {args}");
    if line.len() > MAX_LINE {
        let mut cut = MAX_LINE;
        while !line.is_char_boundary(cut) {
            cut -= 1;
        }
        line.truncate(cut);
        line.push_str(" [cut]");
    }
    line.push('\n');
    match SINK.get() {
        Some(ring) => ring.push(line.into_bytes()),
        // One write per line so lines from different threads do not interleave; a failing
        // stderr must not take the service down.
        None => {
            let _ = std::io::stderr().lock().write_all(line.as_bytes());
        }
    }
}

pub fn info(args: Arguments<'_>) {
    emit("info", args);
}

pub fn warn(args: Arguments<'_>) {
    emit("warn", args);
}

pub fn debug(args: Arguments<'_>) {
    if DEBUG.load(Ordering::Relaxed) {
        emit("debug", args);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ring() -> Ring {
        Ring::new(None)
    }

    #[test]
    fn ring_is_bounded_and_keeps_the_newest_lines() {
        let r = ring();
        let line = vec![b'x'; 1000];
        for _ in 0..1000 {
            r.push(line.clone());
        }
        let (lines, next) = r.read_from(0, Duration::ZERO);
        assert_eq!(next, 1000);
        assert!(lines.len() * 1000 <= RING_BYTES);
        assert_eq!(lines.len(), RING_BYTES / 1000);
        assert_eq!(r.dropped().0, 1000 - lines.len() as u64);
        // Reading from the end waits, then returns nothing new.
        let (none, again) = r.read_from(next, Duration::from_millis(10));
        assert!(none.is_empty());
        assert_eq!(again, next);
    }

    #[test]
    fn ring_keeps_at_most_its_line_count_of_short_lines() {
        let r = ring();
        for i in 0..(RING_LINES as u64 + 10) {
            r.push(format!("{i}\n").into_bytes());
        }
        let (lines, next) = r.read_from(0, Duration::ZERO);
        assert_eq!(lines.len(), RING_LINES);
        assert_eq!(next, RING_LINES as u64 + 10);
        // The oldest went first.
        assert_eq!(lines[0], b"10\n");
        assert_eq!(r.dropped().0, 10);
    }

    #[test]
    fn a_full_console_drops_lines_instead_of_blocking() {
        // A pipe nobody reads, non-blocking: after its buffer fills, writes fail with EAGAIN.
        let (rd, wr) = std::io::pipe().unwrap();
        sigil_sys::io::set_nonblocking(&wr, true).unwrap();
        let wr = File::from(std::os::fd::OwnedFd::from(wr));
        let mut r = ring();
        r.console = Some(wr);
        let start = std::time::Instant::now();
        for _ in 0..200 {
            r.push(vec![b'y'; 2000]);
        }
        assert!(start.elapsed() < Duration::from_secs(5));
        assert!(r.dropped().1 > 0, "the console never filled");
        drop(rd);
    }
}
