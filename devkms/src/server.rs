//! A small blocking HTTP/1.1-over-TLS server on std threads.
//!
//! Bounds: [`MAX_CONNECTIONS`] concurrent connections (more are closed at once), a head of at
//! most [`MAX_HEAD`] bytes and 64 headers, `Content-Length` bodies of at most [`MAX_BODY`]
//! (no chunked encoding), [`IO_TIMEOUT`] per socket operation, [`REQUEST_DEADLINE`] to receive
//! one whole request, [`MAX_REQUESTS_PER_CONNECTION`] keep-alive requests.
//!
//! Why this stays a small codec rather than a server crate: the request head is parsed by
//! `httparse` (the parser hyper uses); what is written here is only the body framing and the
//! response line, for a development tool that never runs in the enclave or on a parent. The
//! candidates do not fit better: `tiny_http` brings its own TLS binding (its rustls feature
//! pins an older rustls than the 0.23 `ServerConfig` on ring built in `tls.rs`), and hyper 1
//! needs an executor and an I/O adapter for blocking rustls streams that would be as large
//! as this module, while a per-request deadline and a per-connection request count would
//! still have to be written by hand around it. The client side, which does run in the
//! enclave, is ureq (`sigil_kms::client`), so the two ends are no longer the same code.

use crate::service::{DevKms, HttpRequest, HttpResponse, KmsError};
use crate::tls::DevTls;
use rustls::{ServerConfig, ServerConnection, StreamOwned};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use zeroize::Zeroizing;

pub const MAX_CONNECTIONS: usize = 64;
pub const MAX_HEAD: usize = 16 * 1024;
pub const MAX_HEADERS: usize = 64;
pub const MAX_BODY: usize = 64 * 1024;
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(30);
pub const MAX_REQUESTS_PER_CONNECTION: usize = 100;

/// A running server. Dropping it (or [`RunningServer::shutdown`]) stops accepting.
pub struct RunningServer {
    addr: SocketAddr,
    ca_pem: String,
    ca_der: Vec<u8>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl RunningServer {
    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
    /// PEM of the development CA that issued the server certificate.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }
    /// DER of the development CA certificate.
    pub fn ca_der(&self) -> &[u8] {
        &self.ca_der
    }
    /// Stops accepting and waits for the accept loop to end (open connections finish alone).
    pub fn shutdown(mut self) {
        self.stop_now();
    }
    /// Blocks until the accept loop ends (for the binary).
    pub fn wait(mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
    fn stop_now(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.stop_now();
        }
    }
}

/// Binds `listen` and serves `kms` over TLS with `tls` on a background thread.
pub fn start(kms: DevKms, tls: DevTls, listen: &str) -> io::Result<RunningServer> {
    let listener = TcpListener::bind(listen)?;
    let addr = listener.local_addr()?;
    let stop = Arc::new(AtomicBool::new(false));
    let kms = Arc::new(kms);
    let cfg = tls.server_config.clone();
    let stop2 = stop.clone();
    let thread = thread::Builder::new()
        .name("devkms-accept".into())
        .spawn(move || accept_loop(listener, kms, cfg, stop2))?;
    Ok(RunningServer {
        addr,
        ca_pem: tls.ca_pem,
        ca_der: tls.ca_der,
        stop,
        thread: Some(thread),
    })
}

/// Decrements the connection count when a connection thread ends, even by panic.
struct Slot(Arc<AtomicUsize>);
impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn accept_loop(
    listener: TcpListener,
    kms: Arc<DevKms>,
    cfg: Arc<ServerConfig>,
    stop: Arc<AtomicBool>,
) {
    let active = Arc::new(AtomicUsize::new(0));
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(tcp) = stream else {
            // EMFILE and friends: back off instead of spinning.
            thread::sleep(Duration::from_millis(50));
            continue;
        };
        if active.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
            active.fetch_sub(1, Ordering::SeqCst);
            drop(tcp);
            continue;
        }
        let slot = Slot(active.clone());
        let (kms, cfg) = (kms.clone(), cfg.clone());
        let spawned = thread::Builder::new()
            .name("devkms-conn".into())
            .spawn(move || {
                let _slot = slot;
                let _ = serve_connection(&kms, cfg, tcp);
            });
        // On spawn failure the closure (and its slot) is dropped, releasing the count.
        drop(spawned);
    }
}

type Tls = StreamOwned<ServerConnection, TcpStream>;

fn serve_connection(kms: &DevKms, cfg: Arc<ServerConfig>, tcp: TcpStream) -> io::Result<()> {
    tcp.set_read_timeout(Some(IO_TIMEOUT))?;
    tcp.set_write_timeout(Some(IO_TIMEOUT))?;
    tcp.set_nodelay(true)?;
    let conn = ServerConnection::new(cfg).map_err(io::Error::other)?;
    let mut s = StreamOwned::new(conn, tcp);
    let mut buf: Vec<u8> = Vec::new();
    for _ in 0..MAX_REQUESTS_PER_CONNECTION {
        let (req, keep_alive) = match read_request(&mut s, &mut buf) {
            Ok(Some(r)) => r,
            Ok(None) => break,
            Err(ReadError::Io(e)) => return Err(e),
            Err(ReadError::Http(status, msg)) => {
                let resp = HttpResponse {
                    status,
                    body: Zeroizing::new(KmsError::validation(msg).body()),
                };
                write_response(&mut s, &resp, false)?;
                break;
            }
        };
        let resp = kms.handle(&req, now());
        write_response(&mut s, &resp, keep_alive)?;
        if !keep_alive {
            break;
        }
    }
    s.conn.send_close_notify();
    let _ = s.flush();
    Ok(())
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

enum ReadError {
    Io(io::Error),
    Http(u16, String),
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        ReadError::Io(e)
    }
}

/// Reads more bytes into `buf`; `Ok(0)` at a clean end of stream.
fn fill(s: &mut Tls, buf: &mut Vec<u8>, deadline: Instant) -> Result<usize, ReadError> {
    if Instant::now() > deadline {
        return Err(ReadError::Http(408, "request took too long".into()));
    }
    let mut chunk = [0u8; 8192];
    match s.read(&mut chunk) {
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            Ok(n)
        }
        // A peer that closes without close_notify: treat as end of stream.
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(0),
        Err(e) => Err(e.into()),
    }
}

/// Reads one request; `Ok(None)` if the peer closed between requests.
fn read_request(s: &mut Tls, buf: &mut Vec<u8>) -> Result<Option<(HttpRequest, bool)>, ReadError> {
    let deadline = Instant::now() + REQUEST_DEADLINE;
    let (head_len, mut req, content_length, keep_alive) = loop {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut parsed = httparse::Request::new(&mut headers);
        match parsed.parse(buf) {
            Ok(httparse::Status::Complete(n)) => {
                let (req, cl, ka) = head(&parsed)?;
                break (n, req, cl, ka);
            }
            Ok(httparse::Status::Partial) => {}
            Err(httparse::Error::TooManyHeaders) => {
                return Err(ReadError::Http(431, "too many headers".into()));
            }
            Err(e) => return Err(ReadError::Http(400, format!("malformed HTTP request: {e}"))),
        }
        if buf.len() > MAX_HEAD {
            return Err(ReadError::Http(431, "request head too large".into()));
        }
        if fill(s, buf, deadline)? == 0 {
            if buf.is_empty() {
                return Ok(None);
            }
            return Err(ReadError::Io(io::ErrorKind::UnexpectedEof.into()));
        }
    };
    if head_len > MAX_HEAD {
        return Err(ReadError::Http(431, "request head too large".into()));
    }
    let total = head_len + content_length;
    while buf.len() < total {
        if fill(s, buf, deadline)? == 0 {
            return Err(ReadError::Io(io::ErrorKind::UnexpectedEof.into()));
        }
    }
    req.body = buf[head_len..total].to_vec();
    buf.drain(..total);
    Ok(Some((req, keep_alive)))
}

fn head(p: &httparse::Request<'_, '_>) -> Result<(HttpRequest, usize, bool), ReadError> {
    let bad = |m: &str| ReadError::Http(400, m.to_string());
    let method = p.method.ok_or_else(|| bad("no method"))?.to_string();
    let target = p.path.ok_or_else(|| bad("no path"))?.to_string();
    let mut keep_alive = p.version == Some(1);
    let mut content_length = None;
    let mut headers = Vec::with_capacity(p.headers.len());
    for h in p.headers.iter() {
        let value = std::str::from_utf8(h.value)
            .map_err(|_| bad("header values must be UTF-8"))?
            .to_string();
        let name = h.name;
        if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(ReadError::Http(
                411,
                "chunked bodies are not supported".into(),
            ));
        }
        if name.eq_ignore_ascii_case("content-length") {
            let n: usize = value
                .trim()
                .parse()
                .map_err(|_| bad("bad Content-Length"))?;
            if content_length.replace(n).is_some() {
                return Err(bad("duplicate Content-Length"));
            }
        }
        if name.eq_ignore_ascii_case("connection") {
            let v = value.to_ascii_lowercase();
            if v.contains("close") {
                keep_alive = false;
            } else if v.contains("keep-alive") {
                keep_alive = true;
            }
        }
        headers.push((name.to_string(), value));
    }
    let content_length = content_length.unwrap_or(0);
    if content_length > MAX_BODY {
        return Err(ReadError::Http(
            413,
            format!("body exceeds {MAX_BODY} bytes"),
        ));
    }
    Ok((
        HttpRequest {
            method,
            target,
            headers,
            body: Vec::new(),
        },
        content_length,
        keep_alive,
    ))
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        _ => "Error",
    }
}

fn write_response(s: &mut Tls, resp: &HttpResponse, keep_alive: bool) -> io::Result<()> {
    let mut id = [0u8; 16];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut id);
    let head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: {}\r\nx-amzn-RequestId: {}\r\nConnection: {}\r\n\r\n",
        resp.status,
        reason(resp.status),
        resp.body.len(),
        hex::encode(id),
        if keep_alive { "keep-alive" } else { "close" }
    );
    let mut out = Zeroizing::new(Vec::with_capacity(head.len() + resp.body.len()));
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(&resp.body);
    s.write_all(&out)?;
    s.flush()
}
