//! Moving bytes from one descriptor to another inside the kernel: splice(2) through a pipe
//! (socket -> pipe -> socket), so a forwarder never copies payload into user space and back.
//!
//! A [`Pipe`] is the kernel-side buffer between the two splices; its capacity bounds how many
//! bytes one direction of a forwarded connection can hold. [`splice`] is one call of
//! splice(2), with the usual `io::Result`.

use std::io::{self, PipeReader, PipeWriter, Read};
use std::ops::BitOr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use crate::cvt;

/// Flags of one [`splice`] call (`SPLICE_F_*`), combined with `|`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpliceFlags(libc::c_uint);

impl SpliceFlags {
    /// No flags: the call blocks as the descriptors do (a socket's `SO_RCVTIMEO` and
    /// `SO_SNDTIMEO` still bound it).
    pub const NONE: SpliceFlags = SpliceFlags(0);
    /// `SPLICE_F_MOVE`: move pages instead of copying where the kernel can (a hint).
    pub const MOVE: SpliceFlags = SpliceFlags(libc::SPLICE_F_MOVE);
    /// `SPLICE_F_NONBLOCK`: do not block on the pipe (the socket's own mode still applies).
    pub const NONBLOCK: SpliceFlags = SpliceFlags(libc::SPLICE_F_NONBLOCK);
    /// `SPLICE_F_MORE`: more data follows (TCP may hold a partial segment back).
    pub const MORE: SpliceFlags = SpliceFlags(libc::SPLICE_F_MORE);
}

impl BitOr for SpliceFlags {
    type Output = SpliceFlags;
    fn bitor(self, rhs: SpliceFlags) -> SpliceFlags {
        SpliceFlags(self.0 | rhs.0)
    }
}

/// Moves up to `len` bytes from `from` to `to`, one of which must be a pipe, without copying
/// them through user space. Returns how many moved; `Ok(0)` from a socket is its end of
/// stream. A socket's timeouts apply: a blocking read that waited `SO_RCVTIMEO` gives
/// `WouldBlock`. EINVAL (or ESPIPE, ENOSYS, EOPNOTSUPP) means this pair of descriptors cannot
/// be spliced (see [`unsupported`]); callers then copy instead.
pub fn splice(
    from: BorrowedFd<'_>,
    to: BorrowedFd<'_>,
    len: usize,
    flags: SpliceFlags,
) -> io::Result<usize> {
    // SAFETY: both descriptors are borrowed, so they stay open for the call; null offset
    // pointers are allowed (and required for pipes and sockets: their own position is used),
    // and no other pointer is passed.
    let n = unsafe {
        libc::splice(
            from.as_raw_fd(),
            std::ptr::null_mut(),
            to.as_raw_fd(),
            std::ptr::null_mut(),
            len,
            flags.0,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// Whether a [`splice`] error means "these descriptors cannot be spliced" (EINVAL: a file
/// type without splice support; ESPIPE: one that wants an offset; ENOSYS/EOPNOTSUPP: a
/// kernel or sandbox without the call) rather than a failure of the connection. A caller
/// that then copies instead loses nothing by being wrong: a real failure shows again on its
/// next read or write.
pub fn unsupported(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EINVAL | libc::ESPIPE | libc::ENOSYS | libc::EOPNOTSUPP)
    )
}

/// A pipe owning both ends (close-on-exec, closed on drop), used as the buffer between two
/// [`splice`] calls. Nothing in it is ever seen by user space unless [`Pipe::read`] takes it
/// out (the fallback when the far side cannot be spliced to).
#[derive(Debug)]
pub struct Pipe {
    r: PipeReader,
    w: PipeWriter,
    capacity: usize,
}

impl Pipe {
    /// A new pipe of the kernel's default size (16 pages: 64 KiB with 4 KiB pages; 2 pages for
    /// an unprivileged user past `/proc/sys/fs/pipe-user-pages-soft`).
    pub fn new() -> io::Result<Pipe> {
        let (r, w) = io::pipe()?;
        // SAFETY: F_GETPIPE_SZ takes no argument and only reads the pipe's size; `w` is an
        // open descriptor owned by this function.
        let capacity = cvt(unsafe { libc::fcntl(w.as_raw_fd(), libc::F_GETPIPE_SZ) })?;
        Ok(Pipe {
            r,
            w,
            capacity: capacity as usize,
        })
    }

    /// A new pipe resized towards `want` bytes (the kernel rounds up to a power-of-two number
    /// of pages). Resizing is best effort: past `/proc/sys/fs/pipe-max-size`, or past the
    /// user's `pipe-user-pages-soft` budget, the kernel refuses and the pipe keeps its
    /// default size. [`Pipe::capacity`] says what it got.
    pub fn with_capacity(want: usize) -> io::Result<Pipe> {
        let mut p = Pipe::new()?;
        if want != p.capacity {
            let want = libc::c_int::try_from(want).unwrap_or(libc::c_int::MAX);
            // SAFETY: F_SETPIPE_SZ takes an integer argument; the descriptor is owned by `p`
            // and open.
            if let Ok(got) = cvt(unsafe { libc::fcntl(p.w.as_raw_fd(), libc::F_SETPIPE_SZ, want) })
            {
                p.capacity = got as usize;
            }
        }
        Ok(p)
    }

    /// The pipe's size as the kernel reports it (what it granted). A caller that splices at
    /// most this many bytes into it at a time, and empties it in between, never has more in
    /// it.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The end to [`splice`] from.
    pub fn read_end(&self) -> BorrowedFd<'_> {
        self.r.as_fd()
    }

    /// The end to [`splice`] into.
    pub fn write_end(&self) -> BorrowedFd<'_> {
        self.w.as_fd()
    }

    /// Reads bytes out of the pipe into `buf` (blocks while it is empty, as the pipe's own
    /// write end is open: call it only for bytes known to be there).
    pub fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        (&self.r).read(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::Shutdown;
    use std::os::unix::net::UnixStream;
    use std::time::{Duration, Instant};

    #[test]
    fn socket_to_pipe_to_socket() {
        let (mut a, b) = UnixStream::pair().unwrap();
        let (c, mut d) = UnixStream::pair().unwrap();
        let p = Pipe::new().unwrap();
        assert!(p.capacity() >= 4096, "{}", p.capacity());
        a.write_all(b"hello, splice").unwrap();
        let n = splice(b.as_fd(), p.write_end(), p.capacity(), SpliceFlags::MOVE).unwrap();
        assert_eq!(n, 13);
        let mut left = n;
        while left > 0 {
            left -= splice(p.read_end(), c.as_fd(), left, SpliceFlags::MOVE).unwrap();
        }
        let mut got = [0u8; 13];
        std::io::Read::read_exact(&mut d, &mut got).unwrap();
        assert_eq!(&got, b"hello, splice");
        // End of stream reads as 0.
        a.shutdown(Shutdown::Write).unwrap();
        assert_eq!(
            splice(b.as_fd(), p.write_end(), 4096, SpliceFlags::NONE).unwrap(),
            0
        );
    }

    #[test]
    fn a_socket_read_timeout_bounds_a_blocking_splice() {
        let (_a, b) = UnixStream::pair().unwrap();
        b.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let p = Pipe::new().unwrap();
        let t = Instant::now();
        let e = splice(b.as_fd(), p.write_end(), 4096, SpliceFlags::MOVE).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock, "{e}");
        assert!(t.elapsed() >= Duration::from_millis(40));
        assert!(!unsupported(&e));
    }

    #[test]
    fn splicing_to_a_closed_peer_is_an_error_not_a_signal() {
        // splice(2) sends without MSG_NOSIGNAL: the kernel raises SIGPIPE, which the Rust
        // runtime ignores (SIG_IGN before main), so the caller sees EPIPE (or a reset).
        let (mut a, b) = UnixStream::pair().unwrap();
        let (c, d) = UnixStream::pair().unwrap();
        drop(d);
        let p = Pipe::new().unwrap();
        a.write_all(b"x").unwrap();
        assert_eq!(
            splice(b.as_fd(), p.write_end(), 1, SpliceFlags::NONE).unwrap(),
            1
        );
        let e = splice(p.read_end(), c.as_fd(), 1, SpliceFlags::NONE).unwrap_err();
        assert!(
            matches!(
                e.kind(),
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
            ),
            "{e}"
        );
        assert!(!unsupported(&e));
    }

    #[test]
    fn resizing_and_reading_back() {
        let p = Pipe::with_capacity(256 * 1024).unwrap();
        // Granted as asked (as root, or within the user's budget), or left at the default.
        assert!(p.capacity() == 256 * 1024 || p.capacity() == Pipe::new().unwrap().capacity());
        let (mut a, b) = UnixStream::pair().unwrap();
        a.write_all(b"abc").unwrap();
        assert_eq!(
            splice(b.as_fd(), p.write_end(), 3, SpliceFlags::NONE).unwrap(),
            3
        );
        let mut buf = [0u8; 8];
        assert_eq!(p.read(&mut buf).unwrap(), 3);
        assert_eq!(&buf[..3], b"abc");
    }

    #[test]
    fn splicing_without_a_pipe_is_classified_as_unsupported() {
        // splice between two sockets (no pipe on either side) is EINVAL: the "cannot splice
        // these" case callers fall back from.
        let (_a, b) = UnixStream::pair().unwrap();
        let (c, _d) = UnixStream::pair().unwrap();
        let e = splice(b.as_fd(), c.as_fd(), 16, SpliceFlags::NONBLOCK).unwrap_err();
        assert!(unsupported(&e), "{e}");
    }
}
