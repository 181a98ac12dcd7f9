//! One transport type for every service: AF_VSOCK inside the enclave, TCP or Unix sockets in
//! local mode. Services accept a [`Stream`] and never care which one it is.

mod vsock;

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::time::Duration;

pub use vsock::{VMADDR_CID_ANY, VMADDR_CID_HOST, VsockAddr, VsockListener, VsockStream};

/// Where to listen or connect: `tcp:HOST:PORT`, `unix:PATH` or `vsock:CID:PORT`
/// (`CID` may be `any`, `host` (2), `parent` (3) or a number).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Addr {
    Tcp(String),
    Unix(PathBuf),
    Vsock(VsockAddr),
}

#[derive(Debug, PartialEq, Eq)]
pub struct AddrError(pub String);

impl fmt::Display for AddrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for AddrError {}

impl std::str::FromStr for Addr {
    type Err = AddrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (scheme, rest) = s.split_once(':').ok_or_else(|| {
            AddrError(format!(
                "address {s:?} has no scheme: use tcp:HOST:PORT, unix:PATH or vsock:CID:PORT"
            ))
        })?;
        match scheme {
            "tcp" => {
                let (host, port) = rest
                    .rsplit_once(':')
                    .ok_or_else(|| AddrError(format!("tcp address {rest:?} needs HOST:PORT")))?;
                if host.is_empty() {
                    return Err(AddrError(format!("tcp address {rest:?} has an empty host")));
                }
                port.parse::<u16>()
                    .map_err(|_| AddrError(format!("tcp port {port:?} is not a number 0-65535")))?;
                Ok(Addr::Tcp(rest.to_string()))
            }
            "unix" => {
                if rest.is_empty() {
                    return Err(AddrError("unix address needs a path".into()));
                }
                // sun_path holds 108 bytes including the terminating NUL.
                if rest.len() > 107 {
                    return Err(AddrError(format!(
                        "unix socket path is {} bytes; the limit is 107",
                        rest.len()
                    )));
                }
                Ok(Addr::Unix(PathBuf::from(rest)))
            }
            "vsock" => rest.parse::<VsockAddr>().map(Addr::Vsock),
            other => Err(AddrError(format!(
                "unknown address scheme {other:?}: use tcp, unix or vsock"
            ))),
        }
    }
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Addr::Tcp(a) => write!(f, "tcp:{a}"),
            Addr::Unix(p) => write!(f, "unix:{}", p.display()),
            Addr::Vsock(v) => write!(f, "vsock:{}:{}", v.cid, v.port),
        }
    }
}

/// A bound listener of any kind.
pub enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener, PathBuf),
    Vsock(VsockListener),
}

impl Listener {
    pub fn bind(addr: &Addr) -> io::Result<Listener> {
        match addr {
            Addr::Tcp(a) => Ok(Listener::Tcp(TcpListener::bind(a.as_str())?)),
            Addr::Unix(p) => {
                // A stale socket file from a killed process would make bind fail with
                // EADDRINUSE; remove it only if it is a socket, never another kind of file.
                if let Ok(meta) = std::fs::symlink_metadata(p) {
                    use std::os::unix::fs::FileTypeExt;
                    if meta.file_type().is_socket() {
                        std::fs::remove_file(p)?;
                    }
                }
                Ok(Listener::Unix(UnixListener::bind(p)?, p.clone()))
            }
            Addr::Vsock(v) => Ok(Listener::Vsock(VsockListener::bind(*v)?)),
        }
    }

    /// The address actually bound (resolves `tcp:127.0.0.1:0` to the chosen port).
    pub fn local_addr(&self) -> io::Result<Addr> {
        match self {
            Listener::Tcp(l) => Ok(Addr::Tcp(l.local_addr()?.to_string())),
            Listener::Unix(_, p) => Ok(Addr::Unix(p.clone())),
            Listener::Vsock(l) => Ok(Addr::Vsock(l.local_addr()?)),
        }
    }

    pub fn accept(&self) -> io::Result<Stream> {
        match self {
            Listener::Tcp(l) => {
                let (s, _) = l.accept()?;
                // Small request/response exchanges: do not wait for Nagle.
                s.set_nodelay(true)?;
                Ok(Stream::Tcp(s))
            }
            Listener::Unix(l, _) => Ok(Stream::Unix(l.accept()?.0)),
            Listener::Vsock(l) => Ok(Stream::Vsock(l.accept()?)),
        }
    }

    /// A handle that stops a thread blocked in [`Listener::accept`] from another thread.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle(self.as_raw_fd())
    }
}

impl AsRawFd for Listener {
    fn as_raw_fd(&self) -> RawFd {
        match self {
            Listener::Tcp(l) => l.as_raw_fd(),
            Listener::Unix(l, _) => l.as_raw_fd(),
            Listener::Vsock(l) => l.as_raw_fd(),
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

/// Wakes a blocked `accept` by shutting the listening socket down. On Linux this makes
/// `accept` return EINVAL for TCP, Unix and vsock listeners alike.
#[derive(Clone, Copy)]
pub struct ShutdownHandle(RawFd);

impl ShutdownHandle {
    pub fn shutdown(&self) {
        // SAFETY: shutdown(2) on a descriptor has no memory-safety preconditions; if the
        // listener is already closed the call fails with EBADF, which is harmless here.
        unsafe {
            libc::shutdown(self.0, libc::SHUT_RDWR);
        }
    }
}

/// A connected stream of any kind.
pub enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
    Vsock(VsockStream),
}

impl Stream {
    pub fn connect(addr: &Addr) -> io::Result<Stream> {
        match addr {
            Addr::Tcp(a) => {
                let s = TcpStream::connect(a.as_str())?;
                s.set_nodelay(true)?;
                Ok(Stream::Tcp(s))
            }
            Addr::Unix(p) => Ok(Stream::Unix(UnixStream::connect(p)?)),
            Addr::Vsock(v) => Ok(Stream::Vsock(VsockStream::connect(*v)?)),
        }
    }

    pub fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_nonblocking(on),
            Stream::Unix(s) => s.set_nonblocking(on),
            Stream::Vsock(s) => s.set_nonblocking(on),
        }
    }

    pub fn set_timeouts(&self, t: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => {
                s.set_read_timeout(t)?;
                s.set_write_timeout(t)
            }
            Stream::Unix(s) => {
                s.set_read_timeout(t)?;
                s.set_write_timeout(t)
            }
            Stream::Vsock(s) => s.set_timeouts(t),
        }
    }

    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.shutdown(how),
            Stream::Unix(s) => s.shutdown(how),
            Stream::Vsock(s) => s.shutdown(how),
        }
    }
}

impl AsRawFd for Stream {
    fn as_raw_fd(&self) -> RawFd {
        match self {
            Stream::Tcp(s) => s.as_raw_fd(),
            Stream::Unix(s) => s.as_raw_fd(),
            Stream::Vsock(s) => s.as_raw_fd(),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
            Stream::Vsock(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
            Stream::Vsock(s) => s.write(buf),
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

    #[test]
    fn parses_and_prints_addresses() {
        let cases = [
            ("tcp:127.0.0.1:5000", "tcp:127.0.0.1:5000"),
            ("tcp:[::1]:80", "tcp:[::1]:80"),
            ("unix:/run/sigil.sock", "unix:/run/sigil.sock"),
            ("vsock:any:5000", "vsock:4294967295:5000"),
            ("vsock:3:9000", "vsock:3:9000"),
            ("vsock:parent:9000", "vsock:3:9000"),
            ("vsock:host:9000", "vsock:2:9000"),
        ];
        for (input, shown) in cases {
            let a: Addr = input.parse().unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(a.to_string(), shown);
        }
    }

    #[test]
    fn rejects_bad_addresses_with_reasons() {
        let cases = [
            ("127.0.0.1:5000", "unknown address scheme"),
            ("localhost", "no scheme"),
            ("tcp:127.0.0.1", "needs HOST:PORT"),
            ("tcp:127.0.0.1:99999", "not a number"),
            ("tcp::80", "empty host"),
            ("unix:", "needs a path"),
            ("quic:1.2.3.4:5", "unknown address scheme"),
            ("vsock:3", "CID:PORT"),
            ("vsock:x:5000", "CID"),
            ("vsock:3:70000", "port"),
        ];
        for (input, reason) in cases {
            let e = input.parse::<Addr>().expect_err(input);
            assert!(
                e.0.contains(reason),
                "{input}: {e} does not mention {reason}"
            );
        }
        let long = format!("unix:/{}", "a".repeat(200));
        assert!(long.parse::<Addr>().unwrap_err().0.contains("limit is 107"));
    }

    fn echo_once(listener: Listener) -> thread::JoinHandle<()> {
        thread::spawn(move || {
            let mut s = listener.accept().expect("accept");
            let mut buf = [0u8; 5];
            s.read_exact(&mut buf).expect("read");
            s.write_all(&buf).expect("write");
        })
    }

    #[test]
    fn tcp_round_trip_through_the_common_type() {
        let l = Listener::bind(&"tcp:127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = l.local_addr().unwrap();
        let t = echo_once(l);
        let mut c = Stream::connect(&addr).unwrap();
        c.write_all(b"hello").unwrap();
        let mut buf = [0u8; 5];
        c.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"hello");
        t.join().unwrap();
    }

    #[test]
    fn unix_round_trip_and_stale_socket_replaced() {
        let dir = std::env::temp_dir().join(format!("sigil-transport-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("api.sock");
        let addr = Addr::Unix(path.clone());
        // A stale socket left by a killed process must not stop the next bind.
        drop(UnixListener::bind(&path).unwrap());
        assert!(path.exists());
        let l = Listener::bind(&addr).unwrap();
        let t = echo_once(l);
        let mut c = Stream::connect(&addr).unwrap();
        c.write_all(b"world").unwrap();
        let mut buf = [0u8; 5];
        c.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"world");
        t.join().unwrap();
        // The listener removed its socket file when it was dropped.
        assert!(!path.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn unix_bind_refuses_to_delete_a_regular_file() {
        let path = std::env::temp_dir().join(format!("sigil-notasock-{}", std::process::id()));
        std::fs::write(&path, b"data").unwrap();
        assert!(Listener::bind(&Addr::Unix(path.clone())).is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"data");
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn shutdown_handle_unblocks_accept() {
        let l = Listener::bind(&"tcp:127.0.0.1:0".parse().unwrap()).unwrap();
        let h = l.shutdown_handle();
        let t = thread::spawn(move || l.accept().map(|_| ()));
        thread::sleep(Duration::from_millis(50));
        h.shutdown();
        assert!(t.join().unwrap().is_err());
    }
}
