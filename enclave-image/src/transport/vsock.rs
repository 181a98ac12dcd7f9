//! AF_VSOCK on the `libc` socket API: the enclave's only link to its parent.
//!
//! Every call is checked and turned into an `io::Error` that names the operation and the
//! address, so a misconfigured CID or port says so instead of failing silently.

use std::fmt;
use std::io::{self, Read, Write};
use std::mem::{size_of, zeroed};
use std::net::Shutdown;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use super::AddrError;

/// Listen on every CID the guest has.
pub const VMADDR_CID_ANY: u32 = libc::VMADDR_CID_ANY;
/// The host: the QEMU harness's vhost-device-vsock peer.
pub const VMADDR_CID_HOST: u32 = libc::VMADDR_CID_HOST;
/// The parent instance of a Nitro Enclave.
pub const NITRO_PARENT_CID: u32 = 3;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VsockAddr {
    pub cid: u32,
    pub port: u32,
}

impl fmt::Display for VsockAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.cid, self.port)
    }
}

impl std::str::FromStr for VsockAddr {
    type Err = AddrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (cid, port) = s
            .split_once(':')
            .ok_or_else(|| AddrError(format!("vsock address {s:?} needs CID:PORT")))?;
        let cid = match cid {
            "any" => VMADDR_CID_ANY,
            "host" => VMADDR_CID_HOST,
            "parent" => NITRO_PARENT_CID,
            n => n.parse::<u32>().map_err(|_| {
                AddrError(format!(
                    "vsock CID {n:?} is not a number, any, host or parent"
                ))
            })?,
        };
        let port = port
            .parse::<u32>()
            .map_err(|_| AddrError(format!("vsock port {port:?} is not a 32-bit number")))?;
        // Ports above 65535 are legal for vsock but nothing in sigil uses them; refusing them
        // catches swapped CID/port arguments early.
        if port > u16::MAX as u32 {
            return Err(AddrError(format!("vsock port {port} is above 65535")));
        }
        Ok(VsockAddr { cid, port })
    }
}

fn sockaddr(addr: VsockAddr) -> libc::sockaddr_vm {
    // SAFETY: sockaddr_vm is plain old data; all-zero is a valid value for it.
    let mut sa: libc::sockaddr_vm = unsafe { zeroed() };
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
    let fd = unsafe { libc::socket(libc::AF_VSOCK, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor we own exclusively.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

pub struct VsockListener {
    fd: OwnedFd,
}

impl VsockListener {
    pub fn bind(addr: VsockAddr) -> io::Result<VsockListener> {
        let fd = new_socket().map_err(|e| context("socket for", addr, e))?;
        let sa = sockaddr(addr);
        // SAFETY: sa is a valid sockaddr_vm and the length passed is its size.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                &sa as *const libc::sockaddr_vm as *const libc::sockaddr,
                size_of::<libc::sockaddr_vm>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(context("bind", addr, io::Error::last_os_error()));
        }
        // SAFETY: listen(2) on a descriptor we own.
        if unsafe { libc::listen(fd.as_raw_fd(), 128) } < 0 {
            return Err(context("listen", addr, io::Error::last_os_error()));
        }
        Ok(VsockListener { fd })
    }

    pub fn local_addr(&self) -> io::Result<VsockAddr> {
        // SAFETY: zeroed POD out-parameter with its correct length.
        let mut sa: libc::sockaddr_vm = unsafe { zeroed() };
        let mut len = size_of::<libc::sockaddr_vm>() as libc::socklen_t;
        let rc = unsafe {
            libc::getsockname(
                self.fd.as_raw_fd(),
                &mut sa as *mut libc::sockaddr_vm as *mut libc::sockaddr,
                &mut len,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(VsockAddr {
            cid: sa.svm_cid,
            port: sa.svm_port,
        })
    }

    pub fn accept(&self) -> io::Result<VsockStream> {
        loop {
            // SAFETY: null address pointers are allowed by accept4(2).
            let fd = unsafe {
                libc::accept4(
                    self.fd.as_raw_fd(),
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    libc::SOCK_CLOEXEC,
                )
            };
            if fd >= 0 {
                // SAFETY: fresh descriptor owned by us.
                return Ok(VsockStream {
                    fd: unsafe { OwnedFd::from_raw_fd(fd) },
                });
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}

impl AsRawFd for VsockListener {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

pub struct VsockStream {
    fd: OwnedFd,
}

impl VsockStream {
    pub fn connect(addr: VsockAddr) -> io::Result<VsockStream> {
        let fd = new_socket().map_err(|e| context("socket for", addr, e))?;
        let sa = sockaddr(addr);
        loop {
            // SAFETY: sa is a valid sockaddr_vm and the length is its size.
            let rc = unsafe {
                libc::connect(
                    fd.as_raw_fd(),
                    &sa as *const libc::sockaddr_vm as *const libc::sockaddr,
                    size_of::<libc::sockaddr_vm>() as libc::socklen_t,
                )
            };
            if rc == 0 {
                return Ok(VsockStream { fd });
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(context("connect to", addr, e));
            }
        }
    }

    pub fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        let fd = self.fd.as_raw_fd();
        // SAFETY: fcntl with F_GETFL/F_SETFL takes integer arguments only.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        if flags < 0 {
            return Err(io::Error::last_os_error());
        }
        let flags = if on {
            flags | libc::O_NONBLOCK
        } else {
            flags & !libc::O_NONBLOCK
        };
        if unsafe { libc::fcntl(fd, libc::F_SETFL, flags) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    pub fn set_timeouts(&self, t: Option<Duration>) -> io::Result<()> {
        let tv = match t {
            Some(d) => libc::timeval {
                tv_sec: d.as_secs() as libc::time_t,
                tv_usec: d.subsec_micros() as libc::suseconds_t,
            },
            None => libc::timeval {
                tv_sec: 0,
                tv_usec: 0,
            },
        };
        for opt in [libc::SO_RCVTIMEO, libc::SO_SNDTIMEO] {
            // SAFETY: tv is a valid timeval and the length is its size.
            let rc = unsafe {
                libc::setsockopt(
                    self.fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    opt,
                    &tv as *const libc::timeval as *const libc::c_void,
                    size_of::<libc::timeval>() as libc::socklen_t,
                )
            };
            if rc < 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    }

    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        let how = match how {
            Shutdown::Read => libc::SHUT_RD,
            Shutdown::Write => libc::SHUT_WR,
            Shutdown::Both => libc::SHUT_RDWR,
        };
        // SAFETY: shutdown(2) on a descriptor we own.
        if unsafe { libc::shutdown(self.fd.as_raw_fd(), how) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

impl AsRawFd for VsockStream {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl Read for VsockStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: buf is valid for writes of buf.len() bytes.
        let n = unsafe {
            libc::recv(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr() as *mut libc::c_void,
                buf.len(),
                0,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }
}

/// Largest single send. Linux's virtio-vsock turns a larger send into non-linear packets
/// (data split over several buffers), which some vsock devices drop: vhost-device-vsock, the
/// QEMU harness's device, loses them silently and the sender stalls until its timeout. Packets
/// of at most 16 KiB are linear everywhere; the cost is a few more system calls.
const MAX_SEND: usize = 16 * 1024;

impl Write for VsockStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let len = buf.len().min(MAX_SEND);
        // MSG_NOSIGNAL: a parent that hangs up must give EPIPE, not kill PID 1 with SIGPIPE.
        // SAFETY: buf is valid for reads of len <= buf.len() bytes.
        let n = unsafe {
            libc::send(
                self.fd.as_raw_fd(),
                buf.as_ptr() as *const libc::c_void,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_cids() {
        assert_eq!("any:5000".parse::<VsockAddr>().unwrap().cid, u32::MAX);
        assert_eq!("host:1".parse::<VsockAddr>().unwrap().cid, 2);
        assert_eq!(
            "parent:9000".parse::<VsockAddr>().unwrap(),
            VsockAddr { cid: 3, port: 9000 }
        );
        assert_eq!("16:5000".parse::<VsockAddr>().unwrap().cid, 16);
    }

    #[test]
    fn bad_vsock_addresses() {
        for bad in [
            "",
            "3",
            "3:",
            ":5000",
            "-1:5000",
            "3:port",
            "3:65536",
            "99999999999:1",
        ] {
            assert!(bad.parse::<VsockAddr>().is_err(), "{bad:?} accepted");
        }
    }

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
                let e = VsockListener::bind(addr)
                    .err()
                    .expect("second bind to one port");
                assert!(e.to_string().starts_with("vsock bind"), "{e}");
                assert!(e.to_string().contains(&addr.port.to_string()), "{e}");
                assert_eq!(first.local_addr().unwrap().port, addr.port);
            }
        }
    }
}
