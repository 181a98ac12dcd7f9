//! One stream type for every service: TCP, Unix or AF_VSOCK (via `libc`), and the
//! vhost-device-vsock handshake of the QEMU harness. Services never care which one they have.

use std::io::{self, Read, Write};
use std::mem::{size_of, zeroed};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::time::Duration;

use crate::addr::{Addr, VsockAddr};

/// How long a connect (and the vhost-uds handshake) may take. Bounds the thread an
/// unresponsive enclave or harness could otherwise hold forever.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest vhost-device-vsock reply we accept (`OK <u32>\n` is at most 14 bytes): a
/// misbehaving peer cannot make us buffer without end.
const MAX_HANDSHAKE_REPLY: usize = 32;

pub enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener, PathBuf),
    Vsock(OwnedFd),
}

pub enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
    Vsock(OwnedFd),
}

fn ctx(op: &str, addr: &Addr, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{op} {addr}: {e}"))
}

fn vsock_sockaddr(a: VsockAddr) -> libc::sockaddr_vm {
    // SAFETY: sockaddr_vm is plain old data; all-zero is a valid value.
    let mut sa: libc::sockaddr_vm = unsafe { zeroed() };
    sa.svm_family = libc::AF_VSOCK as libc::sa_family_t;
    sa.svm_cid = a.cid;
    sa.svm_port = a.port;
    sa
}

fn vsock_socket() -> io::Result<OwnedFd> {
    // SAFETY: socket(2) takes no pointers; the result is checked before use.
    let fd = unsafe { libc::socket(libc::AF_VSOCK, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor owned only here.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn cvt(rc: libc::c_int) -> io::Result<()> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

impl Listener {
    pub fn bind(addr: &Addr) -> io::Result<Listener> {
        match addr {
            Addr::Tcp(a) => TcpListener::bind(a.as_str())
                .map(Listener::Tcp)
                .map_err(|e| ctx("bind", addr, e)),
            Addr::Unix(p) => {
                // A stale socket left by a killed shim would make bind fail; remove it only
                // if it is a socket, so a mistyped path never deletes someone's file.
                if let Ok(meta) = std::fs::symlink_metadata(p) {
                    use std::os::unix::fs::FileTypeExt;
                    if meta.file_type().is_socket() {
                        std::fs::remove_file(p).map_err(|e| ctx("remove stale", addr, e))?;
                    }
                }
                let l = UnixListener::bind(p).map_err(|e| ctx("bind", addr, e))?;
                // Owner only: other local users on the parent must not reach the blob store
                // or the egress proxy through a local-mode socket.
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600))
                    .map_err(|e| ctx("chmod", addr, e))?;
                Ok(Listener::Unix(l, p.clone()))
            }
            Addr::Vsock(v) => {
                let fd = vsock_socket().map_err(|e| ctx("socket for", addr, e))?;
                let sa = vsock_sockaddr(*v);
                // SAFETY: sa is a valid sockaddr_vm and the length is its size.
                cvt(unsafe {
                    libc::bind(
                        fd.as_raw_fd(),
                        &sa as *const libc::sockaddr_vm as *const libc::sockaddr,
                        size_of::<libc::sockaddr_vm>() as libc::socklen_t,
                    )
                })
                .map_err(|e| ctx("bind", addr, e))?;
                // SAFETY: listen(2) on a descriptor we own.
                cvt(unsafe { libc::listen(fd.as_raw_fd(), 128) })
                    .map_err(|e| ctx("listen", addr, e))?;
                Ok(Listener::Vsock(fd))
            }
            Addr::VhostUds(p, port) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "cannot listen on {addr}: vhost-uds is connect-only; guest connections to \
                     port {port} arrive on unix:{}_{port}",
                    p.display()
                ),
            )),
        }
    }

    /// The bound address (resolves `tcp:127.0.0.1:0` to the chosen port).
    pub fn local_addr(&self) -> io::Result<Addr> {
        match self {
            Listener::Tcp(l) => Ok(Addr::Tcp(l.local_addr()?.to_string())),
            Listener::Unix(_, p) => Ok(Addr::Unix(p.clone())),
            Listener::Vsock(fd) => {
                // SAFETY: zeroed POD out-parameter with its correct length.
                let mut sa: libc::sockaddr_vm = unsafe { zeroed() };
                let mut len = size_of::<libc::sockaddr_vm>() as libc::socklen_t;
                cvt(unsafe {
                    libc::getsockname(
                        fd.as_raw_fd(),
                        &mut sa as *mut libc::sockaddr_vm as *mut libc::sockaddr,
                        &mut len,
                    )
                })?;
                Ok(Addr::Vsock(VsockAddr {
                    cid: sa.svm_cid,
                    port: sa.svm_port,
                }))
            }
        }
    }

    /// Accepts one connection and names its peer for logs.
    pub fn accept(&self) -> io::Result<(Stream, String)> {
        match self {
            Listener::Tcp(l) => {
                let (s, peer) = l.accept()?;
                s.set_nodelay(true)?;
                Ok((Stream::Tcp(s), peer.to_string()))
            }
            Listener::Unix(l, p) => {
                Ok((Stream::Unix(l.accept()?.0), format!("unix:{}", p.display())))
            }
            Listener::Vsock(fd) => loop {
                // SAFETY: sa/len are valid out-parameters of the right size.
                let mut sa: libc::sockaddr_vm = unsafe { zeroed() };
                let mut len = size_of::<libc::sockaddr_vm>() as libc::socklen_t;
                let nfd = unsafe {
                    libc::accept4(
                        fd.as_raw_fd(),
                        &mut sa as *mut libc::sockaddr_vm as *mut libc::sockaddr,
                        &mut len,
                        libc::SOCK_CLOEXEC,
                    )
                };
                if nfd >= 0 {
                    // SAFETY: fresh descriptor owned only here.
                    let s = unsafe { OwnedFd::from_raw_fd(nfd) };
                    return Ok((
                        Stream::Vsock(s),
                        format!("vsock:{}:{}", sa.svm_cid, sa.svm_port),
                    ));
                }
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            },
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Listener::Unix(_, p) = self {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn connect_tcp(a: &str) -> io::Result<TcpStream> {
    use std::net::ToSocketAddrs;
    // Resolved on every call, never cached: a changed DNS answer takes effect at once.
    let mut last = io::Error::new(io::ErrorKind::NotFound, "name resolved to no address");
    for sa in a.to_socket_addrs()? {
        match TcpStream::connect_timeout(&sa, CONNECT_TIMEOUT) {
            Ok(s) => {
                s.set_nodelay(true)?;
                return Ok(s);
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

impl Stream {
    pub fn connect(addr: &Addr) -> io::Result<Stream> {
        let r = match addr {
            Addr::Tcp(a) => connect_tcp(a).map(Stream::Tcp),
            Addr::Unix(p) => UnixStream::connect(p).map(Stream::Unix),
            Addr::Vsock(v) => connect_vsock(*v).map(Stream::Vsock),
            Addr::VhostUds(p, port) => UnixStream::connect(p).and_then(|s| {
                vhost_handshake(&s, *port)?;
                Ok(Stream::Unix(s))
            }),
        };
        r.map_err(|e| ctx("connect to", addr, e))
    }

    pub fn try_clone(&self) -> io::Result<Stream> {
        match self {
            Stream::Tcp(s) => s.try_clone().map(Stream::Tcp),
            Stream::Unix(s) => s.try_clone().map(Stream::Unix),
            Stream::Vsock(fd) => fd.try_clone().map(Stream::Vsock),
        }
    }

    pub fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_read_timeout(t),
            Stream::Unix(s) => s.set_read_timeout(t),
            Stream::Vsock(fd) => set_timeout(fd, libc::SO_RCVTIMEO, t),
        }
    }

    pub fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_write_timeout(t),
            Stream::Unix(s) => s.set_write_timeout(t),
            Stream::Vsock(fd) => set_timeout(fd, libc::SO_SNDTIMEO, t),
        }
    }

    pub fn set_timeouts(&self, t: Option<Duration>) -> io::Result<()> {
        self.set_read_timeout(t)?;
        self.set_write_timeout(t)
    }

    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.shutdown(how),
            Stream::Unix(s) => s.shutdown(how),
            Stream::Vsock(fd) => {
                let how = match how {
                    Shutdown::Read => libc::SHUT_RD,
                    Shutdown::Write => libc::SHUT_WR,
                    Shutdown::Both => libc::SHUT_RDWR,
                };
                // SAFETY: shutdown(2) on a descriptor we own.
                cvt(unsafe { libc::shutdown(fd.as_raw_fd(), how) })
            }
        }
    }
}

fn connect_vsock(a: VsockAddr) -> io::Result<OwnedFd> {
    let fd = vsock_socket()?;
    // Bound the connect: SO_SNDTIMEO also limits a blocking connect(2) on Linux.
    set_timeout(&fd, libc::SO_SNDTIMEO, Some(CONNECT_TIMEOUT))?;
    let sa = vsock_sockaddr(a);
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
            set_timeout(&fd, libc::SO_SNDTIMEO, None)?;
            return Ok(fd);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

fn set_timeout(fd: &OwnedFd, opt: libc::c_int, t: Option<Duration>) -> io::Result<()> {
    let tv = match t {
        // A zero timeval means "no timeout"; round a zero duration up so it never does.
        Some(d) => libc::timeval {
            tv_sec: d.as_secs().min(i32::MAX as u64) as libc::time_t,
            tv_usec: d.subsec_micros().max(u32::from(d.is_zero())) as libc::suseconds_t,
        },
        None => libc::timeval {
            tv_sec: 0,
            tv_usec: 0,
        },
    };
    // SAFETY: tv is a valid timeval and the length is its size.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            opt,
            &tv as *const libc::timeval as *const libc::c_void,
            size_of::<libc::timeval>() as libc::socklen_t,
        )
    })
}

/// vhost-device-vsock's host side: `CONNECT <port>\n`, answered by `OK <host port>\n`.
/// The reply is read a byte at a time so no guest byte after the newline is consumed here.
fn vhost_handshake(s: &UnixStream, port: u32) -> io::Result<()> {
    s.set_read_timeout(Some(CONNECT_TIMEOUT))?;
    s.set_write_timeout(Some(CONNECT_TIMEOUT))?;
    let mut w = s;
    w.write_all(format!("CONNECT {port}\n").as_bytes())?;
    let mut line = Vec::with_capacity(MAX_HANDSHAKE_REPLY);
    let mut r = s;
    loop {
        let mut b = [0u8; 1];
        if r.read(&mut b)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionRefused,
                format!("vhost-uds closed before answering CONNECT {port} (no guest listener?)"),
            ));
        }
        if b[0] == b'\n' {
            break;
        }
        line.push(b[0]);
        if line.len() > MAX_HANDSHAKE_REPLY {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "vhost-uds reply to CONNECT is longer than 32 bytes",
            ));
        }
    }
    let ok = line
        .strip_prefix(b"OK ")
        .and_then(|n| std::str::from_utf8(n).ok())
        .is_some_and(|n| n.parse::<u32>().is_ok());
    if !ok {
        return Err(io::Error::new(
            io::ErrorKind::ConnectionRefused,
            format!(
                "vhost-uds answered CONNECT {port} with {:?}, not OK <n>",
                String::from_utf8_lossy(&line)
            ),
        ));
    }
    s.set_read_timeout(None)?;
    s.set_write_timeout(None)?;
    Ok(())
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
            Stream::Vsock(fd) => {
                // SAFETY: buf is valid for writes of buf.len() bytes.
                let n =
                    unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
                if n < 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(n as usize)
            }
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
            Stream::Vsock(fd) => {
                // MSG_NOSIGNAL: a peer that hangs up gives EPIPE instead of killing the shim.
                // SAFETY: buf is valid for reads of buf.len() bytes.
                let n = unsafe {
                    libc::send(
                        fd.as_raw_fd(),
                        buf.as_ptr().cast(),
                        buf.len(),
                        libc::MSG_NOSIGNAL,
                    )
                };
                if n < 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(n as usize)
            }
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("sigil-shim-tr-{}-{name}", std::process::id()));
        let _ = std::fs::remove_file(&d);
        d
    }

    #[test]
    fn vsock_without_peer_fails_with_context() {
        // No vsock loopback here (maybe no AF_VSOCK at all): the error must name the address.
        let a: Addr = "vsock:3:9".parse().unwrap();
        match Stream::connect(&a) {
            Ok(_) => {}
            Err(e) => assert!(e.to_string().contains("connect to vsock:3:9"), "{e}"),
        }
        let l: Addr = "vsock:any:65000".parse().unwrap();
        if let Err(e) = Listener::bind(&l) {
            assert!(e.to_string().contains("vsock:4294967295:65000"), "{e}");
        }
    }

    #[test]
    fn unix_socket_is_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let p = tmp("mode");
        let _l = Listener::bind(&Addr::Unix(p.clone())).unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn vhost_uds_cannot_listen() {
        let a: Addr = "vhost-uds:/tmp/v.sock:5000".parse().unwrap();
        let e = Listener::bind(&a).err().expect("bind must fail");
        assert!(e.to_string().contains("unix:/tmp/v.sock_5000"), "{e}");
    }

    fn fake_vhost(path: &PathBuf, reply: &'static [u8]) -> thread::JoinHandle<Vec<u8>> {
        let l = UnixListener::bind(path).unwrap();
        thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut got = Vec::new();
            let mut b = [0u8; 1];
            while s.read(&mut b).unwrap() == 1 && b[0] != b'\n' {
                got.push(b[0]);
            }
            s.write_all(reply).unwrap();
            if !reply.starts_with(b"OK") {
                return got; // hang up, as vhost-device-vsock does on refusal
            }
            // Echo what follows, proving bytes after the handshake flow untouched.
            let mut rest = [0u8; 4];
            if s.read_exact(&mut rest).is_ok() {
                s.write_all(&rest).unwrap();
            }
            got
        })
    }

    #[test]
    fn vhost_uds_handshake_then_bytes_flow() {
        let p = tmp("vhost-ok");
        // The guest's first bytes arrive in the same segment as OK: they must not be eaten.
        let t = fake_vhost(&p, b"OK 1234\n");
        let a = Addr::VhostUds(p.clone(), 5000);
        let mut s = Stream::connect(&a).unwrap();
        s.write_all(b"ping").unwrap();
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"ping");
        assert_eq!(t.join().unwrap(), b"CONNECT 5000");
        let _ = std::fs::remove_file(&p);
    }

    #[test]
    fn vhost_uds_refusal_is_a_clear_error() {
        for (name, reply, want) in [
            ("vhost-fail", &b"FAILED\n"[..], "not OK"),
            ("vhost-long", &[b'x'; 100][..], "longer than 32"),
            ("vhost-eof", &b""[..], "closed before answering"),
        ] {
            let p = tmp(name);
            let reply: &'static [u8] = Box::leak(reply.to_vec().into_boxed_slice());
            let t = fake_vhost(&p, reply);
            let e = Stream::connect(&Addr::VhostUds(p.clone(), 7))
                .err()
                .expect("handshake must fail");
            assert!(e.to_string().contains(want), "{name}: {e}");
            assert!(e.to_string().contains("vhost-uds:"), "{name}: {e}");
            assert_eq!(t.join().unwrap(), b"CONNECT 7");
            let _ = std::fs::remove_file(&p);
        }
    }
}
