//! One listener and one stream type for every service: TCP, Unix, AF_VSOCK, and the
//! connect-only vhost-uds form of the QEMU harness. Services never care which one they have.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use crate::addr::Addr;
use crate::io::{LineError, read_bounded_line};
use crate::poll::{self, Interest};
use crate::vsock::{self, VsockListener, VsockStream};

/// How long a connect (and the vhost-uds handshake) may take. Bounds the thread an
/// unresponsive enclave, harness or remote host could otherwise hold.
pub const CONNECT_TIMEOUT: Duration = vsock::CONNECT_TIMEOUT;

/// The longest vhost-device-vsock reply accepted (`OK <u32>\n` is at most 14 bytes): a
/// misbehaving peer cannot make us buffer without end.
const MAX_HANDSHAKE_REPLY: usize = 32;

fn ctx(op: &str, addr: &Addr, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{op} {addr}: {e}"))
}

enum Bound {
    Tcp(TcpListener),
    Unix(UnixListener),
    Vsock(VsockListener),
}

impl AsFd for Bound {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Bound::Tcp(l) => l.as_fd(),
            Bound::Unix(l) => l.as_fd(),
            Bound::Vsock(l) => l.as_fd(),
        }
    }
}

/// A bound listener of any kind. A Unix listener removes its socket file when dropped.
pub struct Listener {
    // Shared only with [`ShutdownHandle`]s, which hold it weakly: a handle never keeps the
    // socket open, and cannot reach a descriptor number reused after the listener is gone.
    bound: Arc<Bound>,
    unix_path: Option<PathBuf>,
}

impl Listener {
    /// Binds `addr`. A Unix socket is made owner-only (other local users must not reach the
    /// services behind it), and a stale socket file left by a killed process is replaced,
    /// but only if it is a socket: a mistyped path never deletes someone's file.
    pub fn bind(addr: &Addr) -> io::Result<Listener> {
        let (bound, unix_path) = match addr {
            Addr::Tcp(a) => (
                Bound::Tcp(TcpListener::bind(a.as_str()).map_err(|e| ctx("bind", addr, e))?),
                None,
            ),
            Addr::Unix(p) => {
                if let Ok(meta) = std::fs::symlink_metadata(p) {
                    use std::os::unix::fs::FileTypeExt;
                    if meta.file_type().is_socket() {
                        std::fs::remove_file(p).map_err(|e| ctx("remove stale", addr, e))?;
                    }
                }
                let l = UnixListener::bind(p).map_err(|e| ctx("bind", addr, e))?;
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600))
                    .map_err(|e| ctx("chmod", addr, e))?;
                (Bound::Unix(l), Some(p.clone()))
            }
            Addr::Vsock(v) => (
                Bound::Vsock(VsockListener::bind_with(*v, |op, e| ctx(op, addr, e))?),
                None,
            ),
            Addr::VhostUds(p, port) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "cannot listen on {addr}: vhost-uds is connect-only; guest connections \
                         to port {port} arrive on unix:{}_{port}",
                        p.display()
                    ),
                ));
            }
        };
        Ok(Listener {
            bound: Arc::new(bound),
            unix_path,
        })
    }

    /// The address actually bound (resolves `tcp:127.0.0.1:0` to the chosen port).
    pub fn local_addr(&self) -> io::Result<Addr> {
        match (&*self.bound, &self.unix_path) {
            (Bound::Tcp(l), _) => Ok(Addr::Tcp(l.local_addr()?.to_string())),
            (Bound::Unix(_), Some(p)) => Ok(Addr::Unix(p.clone())),
            (Bound::Unix(l), None) => l
                .local_addr()?
                .as_pathname()
                .map(|p| Addr::Unix(p.to_path_buf()))
                .ok_or_else(|| io::Error::other("unnamed unix socket")),
            (Bound::Vsock(l), _) => Ok(Addr::Vsock(l.local_addr()?)),
        }
    }

    /// Accepts one connection and names its peer for logs. TCP streams get TCP_NODELAY:
    /// every service exchanges small requests and answers, which must not wait for Nagle.
    pub fn accept(&self) -> io::Result<(Stream, String)> {
        match &*self.bound {
            Bound::Tcp(l) => {
                let (s, peer) = l.accept()?;
                s.set_nodelay(true)?;
                Ok((Stream::Tcp(s), peer.to_string()))
            }
            Bound::Unix(l) => {
                let (s, _) = l.accept()?;
                let peer = match &self.unix_path {
                    Some(p) => format!("unix:{}", p.display()),
                    None => "unix".to_string(),
                };
                Ok((Stream::Unix(s), peer))
            }
            Bound::Vsock(l) => {
                let (s, peer) = l.accept()?;
                Ok((Stream::Vsock(s), format!("vsock:{peer}")))
            }
        }
    }

    /// A handle that stops a thread blocked in [`Listener::accept`] from another thread.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle(Arc::downgrade(&self.bound))
    }
}

fd_through_field!(Listener, bound);

impl Drop for Listener {
    fn drop(&mut self) {
        if let Some(p) = &self.unix_path {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Wakes a blocked `accept` by shutting the listening socket down. On Linux this makes
/// `accept` return EINVAL for TCP, Unix and vsock listeners alike. Does nothing once the
/// listener is dropped.
#[derive(Clone)]
pub struct ShutdownHandle(Weak<Bound>);

impl ShutdownHandle {
    pub fn shutdown(&self) {
        if let Some(bound) = self.0.upgrade() {
            // Already shut down or never connected: nothing more to do either way.
            let _ = vsock::shutdown_fd(bound.as_fd(), Shutdown::Both);
        }
    }
}

/// A connected stream of any kind (a vhost-uds connection is a Unix stream after its
/// handshake).
#[derive(Debug)]
pub enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
    Vsock(VsockStream),
}

fn connect_tcp(a: &str) -> io::Result<TcpStream> {
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

/// Connects to guest port `port` through vhost-device-vsock's Unix socket at `path`:
/// `CONNECT <port>\n`, answered by `OK <host port>\n`. No byte after the answer is consumed,
/// and the returned stream has no timeouts.
pub fn connect_vhost_uds(path: &Path, port: u32) -> io::Result<UnixStream> {
    let s = UnixStream::connect(path)?;
    s.set_read_timeout(Some(CONNECT_TIMEOUT))?;
    s.set_write_timeout(Some(CONNECT_TIMEOUT))?;
    (&s).write_all(format!("CONNECT {port}\n").as_bytes())?;
    let line = read_bounded_line(&mut &s, MAX_HANDSHAKE_REPLY).map_err(|e| match e {
        LineError::Closed => io::Error::new(
            io::ErrorKind::ConnectionRefused,
            format!("vhost-uds closed before answering CONNECT {port} (no guest listener?)"),
        ),
        LineError::TooLong(n) => io::Error::new(
            io::ErrorKind::InvalidData,
            format!("vhost-uds reply to CONNECT is longer than {n} bytes"),
        ),
        LineError::Io(e) => e,
    })?;
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
    Ok(s)
}

impl Stream {
    /// Connects within [`CONNECT_TIMEOUT`]; errors name the address.
    pub fn connect(addr: &Addr) -> io::Result<Stream> {
        let r = match addr {
            Addr::Tcp(a) => connect_tcp(a).map(Stream::Tcp),
            Addr::Unix(p) => UnixStream::connect(p).map(Stream::Unix),
            Addr::Vsock(v) => VsockStream::connect_bare(*v).map(Stream::Vsock),
            Addr::VhostUds(p, port) => connect_vhost_uds(p, *port).map(Stream::Unix),
        };
        r.map_err(|e| ctx("connect to", addr, e))
    }

    pub fn try_clone(&self) -> io::Result<Stream> {
        match self {
            Stream::Tcp(s) => s.try_clone().map(Stream::Tcp),
            Stream::Unix(s) => s.try_clone().map(Stream::Unix),
            Stream::Vsock(s) => s.try_clone().map(Stream::Vsock),
        }
    }

    pub fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_read_timeout(t),
            Stream::Unix(s) => s.set_read_timeout(t),
            Stream::Vsock(s) => s.set_read_timeout(t),
        }
    }

    pub fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_write_timeout(t),
            Stream::Unix(s) => s.set_write_timeout(t),
            Stream::Vsock(s) => s.set_write_timeout(t),
        }
    }

    /// Both timeouts at once.
    pub fn set_timeouts(&self, t: Option<Duration>) -> io::Result<()> {
        self.set_read_timeout(t)?;
        self.set_write_timeout(t)
    }

    pub fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_nonblocking(on),
            Stream::Unix(s) => s.set_nonblocking(on),
            Stream::Vsock(s) => s.set_nonblocking(on),
        }
    }

    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.shutdown(how),
            Stream::Unix(s) => s.shutdown(how),
            Stream::Vsock(s) => s.shutdown(how),
        }
    }

    /// One send that never blocks and never raises SIGPIPE, whatever the socket's mode:
    /// `WouldBlock` when the socket buffer is full.
    pub fn send_nowait(&self, buf: &[u8]) -> io::Result<usize> {
        // SAFETY: buf is valid for reads of buf.len() bytes for the duration of the call; the
        // descriptor is borrowed from `self`, so it is open.
        let n = unsafe {
            libc::send(
                self.as_raw_fd(),
                buf.as_ptr().cast(),
                buf.len(),
                libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    /// One receive that never blocks, whatever the socket's mode: `WouldBlock` when nothing
    /// is buffered, `Ok(0)` at end of stream.
    pub fn recv_nowait(&self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: buf is valid for writes of buf.len() bytes for the duration of the call; the
        // descriptor is borrowed from `self`, so it is open.
        let n = unsafe {
            libc::recv(
                self.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    /// Closes gracefully: stops sending, then reads and drops what the peer still sends, for
    /// at most `max_time` and `max_drain` bytes. Closing a socket with unread input makes the
    /// kernel send a reset, which can destroy a response before the peer has read it (a
    /// client still uploading an oversized body would never learn why it was cut off).
    pub fn linger(&self, max_time: Duration, max_drain: usize) {
        let _ = self.shutdown(Shutdown::Write);
        let end = Instant::now() + max_time;
        let mut drained = 0usize;
        let mut buf = [0u8; 8192];
        while drained < max_drain {
            let Some(left) = end.checked_duration_since(Instant::now()) else {
                return;
            };
            if !matches!(
                poll::wait(self, Interest::Read, left.max(Duration::from_millis(1))),
                Ok(true)
            ) {
                return;
            }
            match self.recv_nowait(&mut buf) {
                Ok(n) if n > 0 => drained += n,
                _ => return,
            }
        }
    }
}

impl AsFd for Stream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Stream::Tcp(s) => s.as_fd(),
            Stream::Unix(s) => s.as_fd(),
            Stream::Vsock(s) => s.as_fd(),
        }
    }
}

impl AsRawFd for Stream {
    fn as_raw_fd(&self) -> RawFd {
        self.as_fd().as_raw_fd()
    }
}

impl Read for &Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => (&*s).read(buf),
            Stream::Unix(s) => (&*s).read(buf),
            Stream::Vsock(s) => (&*s).read(buf),
        }
    }
}

impl Write for &Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => (&*s).write(buf),
            Stream::Unix(s) => (&*s).write(buf),
            Stream::Vsock(s) => (&*s).write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

io_through_ref!(Stream);

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread;

    fn tmp(name: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("sigil-sys-net-{}-{name}", std::process::id()));
        let _ = std::fs::remove_file(&p);
        p
    }

    fn echo_once(listener: Listener) -> thread::JoinHandle<()> {
        thread::spawn(move || {
            let (mut s, _) = listener.accept().expect("accept");
            let mut buf = [0u8; 5];
            s.read_exact(&mut buf).expect("read");
            s.write_all(&buf).expect("write");
        })
    }

    /// Sends `msg` to an echo server on `l` (at `addr`) and checks it comes back.
    fn echo_round_trip(l: Listener, addr: &Addr, msg: &[u8; 5]) {
        let t = echo_once(l);
        let mut c = Stream::connect(addr).unwrap();
        c.write_all(msg).unwrap();
        let mut buf = [0u8; 5];
        c.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, msg);
        t.join().unwrap();
    }

    #[test]
    fn tcp_round_trip_through_the_common_type() {
        let l = Listener::bind(&"tcp:127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = l.local_addr().unwrap();
        echo_round_trip(l, &addr, b"hello");
    }

    #[test]
    fn unix_round_trip_and_stale_socket_replaced() {
        let path = tmp("api.sock");
        let addr = Addr::Unix(path.clone());
        // A stale socket left by a killed process must not stop the next bind.
        drop(UnixListener::bind(&path).unwrap());
        assert!(path.exists());
        let l = Listener::bind(&addr).unwrap();
        echo_round_trip(l, &addr, b"world");
        // The listener removed its socket file when it was dropped.
        assert!(!path.exists());
    }

    #[test]
    fn unix_bind_refuses_to_delete_a_regular_file() {
        let path = tmp("notasock");
        std::fs::write(&path, b"data").unwrap();
        assert!(Listener::bind(&Addr::Unix(path.clone())).is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"data");
        std::fs::remove_file(&path).unwrap();
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
    fn shutdown_handle_unblocks_accept() {
        let l = Listener::bind(&"tcp:127.0.0.1:0".parse().unwrap()).unwrap();
        let h = l.shutdown_handle();
        let t = thread::spawn(move || l.accept().map(|_| ()));
        thread::sleep(Duration::from_millis(50));
        h.shutdown();
        assert!(t.join().unwrap().is_err());
        // The listener is gone: the handle does nothing, and touches no other descriptor.
        h.shutdown();
    }

    #[test]
    fn vsock_without_peer_fails_with_context() {
        // No vsock loopback here (maybe no AF_VSOCK at all): the error must name the address.
        let a: Addr = "vsock:3:9".parse().unwrap();
        if let Err(e) = Stream::connect(&a) {
            assert!(e.to_string().contains("connect to vsock:3:9"), "{e}");
        }
        let l: Addr = "vsock:any:65000".parse().unwrap();
        if let Err(e) = Listener::bind(&l) {
            assert!(e.to_string().contains("vsock:4294967295:65000"), "{e}");
        }
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
            let e =
                Stream::connect(&Addr::VhostUds(p.clone(), 7)).expect_err("handshake must fail");
            assert!(e.to_string().contains(want), "{name}: {e}");
            assert!(e.to_string().contains("vhost-uds:"), "{name}: {e}");
            assert_eq!(t.join().unwrap(), b"CONNECT 7");
            let _ = std::fs::remove_file(&p);
        }
    }

    #[test]
    fn nowait_calls_do_not_block_and_linger_drains() {
        let l = Listener::bind(&"tcp:127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = l.local_addr().unwrap();
        let c = Stream::connect(&addr).unwrap();
        let (s, _) = l.accept().unwrap();
        let mut buf = [0u8; 16];
        let e = s.recv_nowait(&mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        assert_eq!(c.send_nowait(b"abc").unwrap(), 3);
        assert!(poll::wait(&s, Interest::Read, Duration::from_secs(5)).unwrap());
        assert_eq!(s.recv_nowait(&mut buf).unwrap(), 3);
        // The peer closes after sending more: linger reads it and returns at end of stream.
        (&c).write_all(b"more").unwrap();
        drop(c);
        let start = Instant::now();
        s.linger(Duration::from_secs(5), 1 << 20);
        assert!(start.elapsed() < Duration::from_secs(4));
    }
}
