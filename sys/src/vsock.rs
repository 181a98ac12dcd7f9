//! AF_VSOCK on the `libc` socket API: the enclave's only link to its parent, and the shim's
//! listeners on the parent.
//!
//! [`VsockListener::bind`] and [`VsockStream::connect`] name the operation and the address in
//! their errors, so a misconfigured CID or port says so instead of failing silently.

use std::io::{self, Read, Write};
use std::mem::size_of;
use std::net::Shutdown;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::Duration;

pub use crate::addr::{VMADDR_CID_ANY, VsockAddr};
use crate::cvt;

/// How long a connect may take. Bounds the thread an unresponsive peer could hold.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest single send. Linux's virtio-vsock turns a larger send into non-linear packets
/// (data split over several buffers), which some vsock devices drop: vhost-device-vsock, the
/// QEMU harness's device, loses them silently and the sender stalls until its timeout. Packets
/// of at most 16 KiB are linear everywhere; the cost is a few more system calls.
const MAX_SEND: usize = 16 * 1024;

const SOCKADDR_VM_LEN: libc::socklen_t = size_of::<libc::sockaddr_vm>() as libc::socklen_t;

fn sockaddr(addr: VsockAddr) -> libc::sockaddr_vm {
    // SAFETY: sockaddr_vm is plain old data; all-zero is a valid value for it.
    let mut sa: libc::sockaddr_vm = unsafe { std::mem::zeroed() };
    sa.svm_family = libc::AF_VSOCK as libc::sa_family_t;
    sa.svm_cid = addr.cid;
    sa.svm_port = addr.port;
    sa
}

fn context(op: &str, addr: VsockAddr, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("vsock {op} {addr}: {e}"))
}

fn new_socket() -> io::Result<OwnedFd> {
    // SAFETY: socket(2) takes no pointers; the result is checked before use.
    let fd =
        cvt(unsafe { libc::socket(libc::AF_VSOCK, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: fd is a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// SO_RCVTIMEO or SO_SNDTIMEO; `None` means no timeout.
fn set_timeout(fd: BorrowedFd<'_>, opt: libc::c_int, t: Option<Duration>) -> io::Result<()> {
    let tv = match t {
        // A zero timeval means "no timeout"; round a duration that would give one (zero, or
        // under a microsecond) up to one microsecond so it never does.
        Some(d) => libc::timeval {
            tv_sec: d.as_secs().min(i32::MAX as u64) as libc::time_t,
            tv_usec: d.subsec_micros().max(u32::from(d.as_secs() == 0)) as libc::suseconds_t,
        },
        None => libc::timeval {
            tv_sec: 0,
            tv_usec: 0,
        },
    };
    // SAFETY: tv is a valid timeval that outlives the call and the length passed is its size;
    // fd is borrowed, so it is open.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            opt,
            (&raw const tv).cast(),
            size_of::<libc::timeval>() as libc::socklen_t,
        )
    })?;
    Ok(())
}

pub(crate) fn shutdown_fd(fd: BorrowedFd<'_>, how: Shutdown) -> io::Result<()> {
    let how = match how {
        Shutdown::Read => libc::SHUT_RD,
        Shutdown::Write => libc::SHUT_WR,
        Shutdown::Both => libc::SHUT_RDWR,
    };
    // SAFETY: shutdown(2) takes no pointers; fd is borrowed, so it is open.
    cvt(unsafe { libc::shutdown(fd.as_raw_fd(), how) })?;
    Ok(())
}

/// A listening AF_VSOCK socket.
#[derive(Debug)]
pub struct VsockListener {
    fd: OwnedFd,
}

impl VsockListener {
    pub fn bind(addr: VsockAddr) -> io::Result<VsockListener> {
        Self::bind_with(addr, |op, e| context(op, addr, e))
    }

    /// [`VsockListener::bind`] with the caller's way of naming the failed step.
    pub(crate) fn bind_with(
        addr: VsockAddr,
        ctx: impl Fn(&str, io::Error) -> io::Error,
    ) -> io::Result<VsockListener> {
        let fd = new_socket().map_err(|e| ctx("socket for", e))?;
        let sa = sockaddr(addr);
        // SAFETY: sa is a valid sockaddr_vm that outlives the call and the length is its size.
        cvt(unsafe { libc::bind(fd.as_raw_fd(), (&raw const sa).cast(), SOCKADDR_VM_LEN) })
            .map_err(|e| ctx("bind", e))?;
        // SAFETY: listen(2) takes no pointers; fd is ours and open.
        cvt(unsafe { libc::listen(fd.as_raw_fd(), 128) }).map_err(|e| ctx("listen", e))?;
        Ok(VsockListener { fd })
    }

    /// The bound address (the port the kernel chose, the CID it bound).
    pub fn local_addr(&self) -> io::Result<VsockAddr> {
        // SAFETY: sockaddr_vm is plain old data; all-zero is a valid value for it.
        let mut sa: libc::sockaddr_vm = unsafe { std::mem::zeroed() };
        let mut len = SOCKADDR_VM_LEN;
        // SAFETY: sa and len are valid out-parameters; len holds sa's size.
        cvt(unsafe { libc::getsockname(self.fd.as_raw_fd(), (&raw mut sa).cast(), &raw mut len) })?;
        Ok(VsockAddr {
            cid: sa.svm_cid,
            port: sa.svm_port,
        })
    }

    /// Accepts one connection; returns it with its peer's address.
    pub fn accept(&self) -> io::Result<(VsockStream, VsockAddr)> {
        loop {
            // SAFETY: sockaddr_vm is plain old data; all-zero is a valid value for it.
            let mut sa: libc::sockaddr_vm = unsafe { std::mem::zeroed() };
            let mut len = SOCKADDR_VM_LEN;
            // SAFETY: sa and len are valid out-parameters of the right size.
            let fd = unsafe {
                libc::accept4(
                    self.fd.as_raw_fd(),
                    (&raw mut sa).cast(),
                    &raw mut len,
                    libc::SOCK_CLOEXEC,
                )
            };
            if fd >= 0 {
                // SAFETY: a fresh descriptor that nothing else owns.
                let fd = unsafe { OwnedFd::from_raw_fd(fd) };
                let peer = VsockAddr {
                    cid: sa.svm_cid,
                    port: sa.svm_port,
                };
                return Ok((VsockStream { fd }, peer));
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}

fd_through_field!(VsockListener, fd);

/// A connected AF_VSOCK stream.
#[derive(Debug)]
pub struct VsockStream {
    fd: OwnedFd,
}

impl VsockStream {
    /// Connects within [`CONNECT_TIMEOUT`]; the stream then has no timeouts.
    pub fn connect(addr: VsockAddr) -> io::Result<VsockStream> {
        Self::connect_bare(addr).map_err(|e| context("connect to", addr, e))
    }

    /// [`VsockStream::connect`] without the address in the error (for callers that add it).
    pub(crate) fn connect_bare(addr: VsockAddr) -> io::Result<VsockStream> {
        let fd = new_socket()?;
        // SO_SNDTIMEO also bounds a blocking connect(2) on Linux.
        set_timeout(fd.as_fd(), libc::SO_SNDTIMEO, Some(CONNECT_TIMEOUT))?;
        let sa = sockaddr(addr);
        loop {
            // SAFETY: sa is a valid sockaddr_vm that outlives the call; the length is its size.
            let rc =
                unsafe { libc::connect(fd.as_raw_fd(), (&raw const sa).cast(), SOCKADDR_VM_LEN) };
            if rc == 0 {
                set_timeout(fd.as_fd(), libc::SO_SNDTIMEO, None)?;
                return Ok(VsockStream { fd });
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    pub fn try_clone(&self) -> io::Result<VsockStream> {
        Ok(VsockStream {
            fd: self.fd.try_clone()?,
        })
    }

    pub fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        crate::io::set_nonblocking(&self.fd, on)
    }

    pub fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        set_timeout(self.fd.as_fd(), libc::SO_RCVTIMEO, t)
    }

    pub fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        set_timeout(self.fd.as_fd(), libc::SO_SNDTIMEO, t)
    }

    /// Both timeouts at once.
    pub fn set_timeouts(&self, t: Option<Duration>) -> io::Result<()> {
        self.set_read_timeout(t)?;
        self.set_write_timeout(t)
    }

    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        shutdown_fd(self.fd.as_fd(), how)
    }
}

fd_through_field!(VsockStream, fd);

impl Read for &VsockStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: buf is valid for writes of buf.len() bytes for the duration of the call.
        let n = unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }
}

impl Write for &VsockStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let len = buf.len().min(MAX_SEND);
        // MSG_NOSIGNAL: a peer that hangs up must give EPIPE, not kill the process (PID 1 in
        // the enclave) with SIGPIPE.
        // SAFETY: buf is valid for reads of len <= buf.len() bytes for the duration of the call.
        let n = unsafe {
            libc::send(
                self.fd.as_raw_fd(),
                buf.as_ptr().cast(),
                len,
                libc::MSG_NOSIGNAL,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

io_through_ref!(VsockStream);

#[cfg(test)]
mod tests {
    use super::*;
    use sigil_protocol::ports::NITRO_PARENT_CID;

    // This machine has no vsock loopback (and may lack AF_VSOCK entirely): connecting to the
    // Nitro parent must fail with an error that names the operation and the address, not hang
    // or panic.
    #[test]
    fn connect_without_a_peer_fails_with_context() {
        let addr = VsockAddr {
            cid: NITRO_PARENT_CID,
            port: 9,
        };
        let err = match VsockStream::connect(addr) {
            Ok(_) => return, // a real vsock peer exists here: nothing to assert about failure
            Err(e) => e,
        };
        let msg = err.to_string();
        assert!(msg.starts_with("vsock "), "{msg}");
        assert!(msg.contains("3:9"), "{msg}");
    }

    #[test]
    fn second_bind_to_a_port_fails_with_context() {
        let addr = VsockAddr {
            cid: VMADDR_CID_ANY,
            port: 40_000 + (std::process::id() % 20_000),
        };
        match VsockListener::bind(addr) {
            // No AF_VSOCK here at all: the error still names the operation and address.
            Err(e) => assert!(e.to_string().contains(&addr.to_string()), "{e}"),
            Ok(first) => {
                let e = VsockListener::bind(addr).expect_err("second bind to one port");
                assert!(e.to_string().starts_with("vsock bind"), "{e}");
                assert!(e.to_string().contains(&addr.port.to_string()), "{e}");
                assert_eq!(first.local_addr().unwrap().port, addr.port);
            }
        }
    }
}
