//! Waiting for one socket to become readable or writable, never past a timeout: what a
//! thread-per-connection server needs to enforce idle limits and deadlines without a reactor.

use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::time::Duration;

/// The readiness to wait for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interest {
    Read,
    Write,
    ReadWrite,
}

impl Interest {
    fn events(self) -> libc::c_short {
        match self {
            Interest::Read => libc::POLLIN,
            Interest::Write => libc::POLLOUT,
            Interest::ReadWrite => libc::POLLIN | libc::POLLOUT,
        }
    }
}

/// `timeout` in whole milliseconds for poll(2), rounded up so a sub-millisecond wait still
/// sleeps instead of spinning, and capped at what poll accepts.
fn millis(timeout: Duration) -> libc::c_int {
    let ms = timeout.as_nanos().div_ceil(1_000_000);
    ms.min(libc::c_int::MAX as u128) as libc::c_int
}

/// Waits until `fd` is ready for `interest` (or has an error or hang-up to report) or
/// `timeout` passes. `Ok(true)`: ready; `Ok(false)`: timed out. A signal interrupting the
/// wait gives an `Interrupted` error, which the caller usually retries.
pub fn wait(fd: &impl AsFd, interest: Interest, timeout: Duration) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd: fd.as_fd().as_raw_fd(),
        events: interest.events(),
        revents: 0,
    };
    // SAFETY: one valid pollfd that outlives the call, count 1; the descriptor is borrowed,
    // so it stays open during the wait.
    let rc = unsafe { libc::poll(&raw mut pfd, 1, millis(timeout)) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(rc > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::net::UnixStream;
    use std::time::Instant;

    #[test]
    fn readable_once_data_arrives_and_times_out_before() {
        let (a, mut b) = UnixStream::pair().unwrap();
        let start = Instant::now();
        assert!(!wait(&a, Interest::Read, Duration::from_millis(30)).unwrap());
        assert!(start.elapsed() >= Duration::from_millis(25));
        b.write_all(b"x").unwrap();
        assert!(wait(&a, Interest::Read, Duration::from_secs(5)).unwrap());
        assert!(wait(&a, Interest::Write, Duration::from_secs(5)).unwrap());
    }

    #[test]
    fn rounding_up_and_capping() {
        assert_eq!(millis(Duration::ZERO), 0);
        assert_eq!(millis(Duration::from_micros(1)), 1);
        assert_eq!(millis(Duration::from_millis(7)), 7);
        assert_eq!(millis(Duration::from_secs(u64::MAX)), libc::c_int::MAX);
    }
}
