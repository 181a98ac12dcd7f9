//! Small I/O helpers: one bounded line, non-blocking descriptors, the standard descriptors,
//! and whether the kernel's random number generator is ready.

use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd};

use crate::cvt;

/// Why [`read_bounded_line`] returned no line.
#[derive(Debug, thiserror::Error)]
pub enum LineError {
    /// The peer closed before the line ended.
    #[error("closed before the end of the line")]
    Closed,
    /// More than the allowed bytes arrived before a newline.
    #[error("line is longer than {0} bytes")]
    TooLong(usize),
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Reads one `\n`-terminated line of at most `max` bytes (the newline not counted) and
/// returns it without the newline. Reads a byte at a time, so nothing after the newline is
/// consumed: handshakes use this before the stream carries another protocol (TLS, the
/// guest's bytes). A peer cannot make it buffer more than `max` bytes.
pub fn read_bounded_line<R: Read + ?Sized>(r: &mut R, max: usize) -> Result<Vec<u8>, LineError> {
    let mut line = Vec::with_capacity(max.min(64));
    loop {
        let mut b = [0u8; 1];
        match r.read(&mut b) {
            Ok(0) => return Err(LineError::Closed),
            Ok(_) if b[0] == b'\n' => return Ok(line),
            Ok(_) if line.len() >= max => return Err(LineError::TooLong(max)),
            Ok(_) => line.push(b[0]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(LineError::Io(e)),
        }
    }
}

/// Sets or clears `O_NONBLOCK` on any descriptor (sockets, pipes, the console).
pub fn set_nonblocking(fd: &impl AsFd, on: bool) -> io::Result<()> {
    let fd = fd.as_fd().as_raw_fd();
    // SAFETY: fcntl(F_GETFL) takes no pointer; `fd` is borrowed, so it is open.
    let flags = cvt(unsafe { libc::fcntl(fd, libc::F_GETFL) })?;
    let flags = if on {
        flags | libc::O_NONBLOCK
    } else {
        flags & !libc::O_NONBLOCK
    };
    // SAFETY: fcntl(F_SETFL) with an integer argument on a borrowed, open descriptor.
    cvt(unsafe { libc::fcntl(fd, libc::F_SETFL, flags) })?;
    Ok(())
}

/// Points stdin, stdout and stderr at `to` (PID 1 sends them to /dev/null, so nothing can
/// block on the console the kernel handed over).
pub fn redirect_stdio(to: &impl AsFd) -> io::Result<()> {
    let src = to.as_fd().as_raw_fd();
    for fd in 0..3 {
        // SAFETY: dup2 takes no pointers; `src` is borrowed and open for the whole loop, and
        // replacing descriptors 0-2 is the purpose (std holds no Rust-owned handle to them).
        cvt(unsafe { libc::dup2(src, fd) })?;
    }
    Ok(())
}

/// Whether the kernel's CSPRNG is initialized: a one-byte `getrandom(GRND_NONBLOCK)` that
/// succeeds only once it is. `Ok(false)` means not yet (EAGAIN or an interrupted call).
pub fn kernel_rng_ready() -> io::Result<bool> {
    let mut b = [0u8; 1];
    // SAFETY: `b` is a valid, writable 1-byte buffer for the duration of the call.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), 1, libc::GRND_NONBLOCK) };
    if n == 1 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EAGAIN) || e.kind() == io::ErrorKind::Interrupted {
        return Ok(false);
    }
    Err(e)
}

/// Which descriptors in `range` are open in this process (`fcntl(F_GETFD)` succeeds), for
/// checking that a sandboxed program inherited none.
pub fn open_descriptors(range: std::ops::Range<i32>) -> Vec<i32> {
    range
        // SAFETY: F_GETFD only reads the descriptor's flags; an unused number fails with EBADF.
        .filter(|&fd| unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn bounded_line_stops_at_the_newline() {
        let mut r: &[u8] = b"OK 1234\nrest";
        assert_eq!(read_bounded_line(&mut r, 32).unwrap(), b"OK 1234");
        assert_eq!(r, b"rest", "bytes after the newline stay unread");
    }

    #[test]
    fn bounded_line_limits() {
        let mut r: &[u8] = b"12345\n";
        assert_eq!(read_bounded_line(&mut r, 5).unwrap(), b"12345");
        let mut r: &[u8] = b"123456\n";
        assert!(matches!(
            read_bounded_line(&mut r, 5),
            Err(LineError::TooLong(5))
        ));
        let mut r: &[u8] = b"no newline";
        assert!(matches!(
            read_bounded_line(&mut r, 64),
            Err(LineError::Closed)
        ));
        let mut r: &[u8] = b"\n";
        assert_eq!(read_bounded_line(&mut r, 0).unwrap(), b"");
    }

    #[test]
    fn nonblocking_pipe_reports_would_block() {
        let (rd, mut wr) = std::io::pipe().unwrap();
        set_nonblocking(&wr, true).unwrap();
        let chunk = [0u8; 4096];
        let mut full = false;
        for _ in 0..10_000 {
            match wr.write(&chunk) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    full = true;
                    break;
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert!(full, "a non-blocking pipe never filled");
        drop(rd);
    }

    #[test]
    fn rng_is_ready_on_a_running_system() {
        assert!(kernel_rng_ready().unwrap());
    }
}
