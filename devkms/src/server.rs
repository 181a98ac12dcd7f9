//! The HTTPS server: hyper 1 (HTTP/1.1 only) over tokio-rustls, on a small tokio runtime
//! that runs on its own threads behind a blocking API ([`start`], [`RunningServer`]).
//!
//! Why these crates: the HTTP/1.1 framing (head parsing, `Content-Length` and chunked bodies,
//! keep-alive, error answers to malformed heads) is hyper's, the server the enclave uses too,
//! so nothing here parses or writes HTTP by hand. hyper needs an executor and async I/O; the
//! enclave drives it with its own tiny executor, which this crate cannot depend on, and a
//! development tool that never runs in the enclave or on a parent can afford tokio. TLS stays
//! the rustls 0.23 `ServerConfig` on ring built in `tls.rs`, through `tokio-rustls` 0.26
//! (built on that same rustls).
//!
//! Threat model: clients are local test processes, but the server must not be wedged or
//! made to allocate without bound by a buggy or hostile one, so every resource is bounded:
//!
//! * [`MAX_CONNECTIONS`] concurrent connections; more are closed at once (semaphore).
//! * [`IO_TIMEOUT`] for the TLS handshake, and for each request head, counted from the moment
//!   the connection waits for it (so it is also the keep-alive idle timeout): hyper's
//!   `header_read_timeout`.
//! * A head of at most [`MAX_HEAD`] bytes and [`MAX_HEADERS`] fields (hyper answers 431).
//! * Bodies of at most [`MAX_BODY`] bytes: a larger `Content-Length` is refused with 413
//!   before any of it is read, and a chunked body is read through `http_body_util::Limited`,
//!   so no more than the limit is ever buffered.
//! * [`REQUEST_DEADLINE`] to receive a whole body after its head (408 after it).
//! * [`MAX_REQUESTS_PER_CONNECTION`] requests per keep-alive connection (the last answer
//!   says `Connection: close`) and [`CONNECTION_LIFETIME`] from accept to close, which also
//!   bounds a client that stops reading its answers (hyper has no write timeout).
//! * The KMS operations run on tokio's blocking pool, so a slow one (RSA, attestation
//!   checks) never stalls the I/O threads; a panic there ends that request with a 500.
//!
//! Response bodies may carry a plaintext data key: the body handed to hyper is a
//! `Zeroizing` buffer, wiped when hyper drops it; hyper's write buffer and rustls's record
//! buffers are not wiped (as before, and as the README says).
//!
//! Stopping ([`RunningServer::shutdown`] or drop) stops accepting, asks open connections to
//! close after their current request (hyper's graceful shutdown), waits up to [`IO_TIMEOUT`]
//! for them and then drops the runtime, which cancels whatever is left.

use crate::service::{DevKms, HttpRequest, HttpResponse, KmsError};
use crate::tls::DevTls;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Body as _, Incoming};
use hyper::header::{CONNECTION, CONTENT_TYPE, HeaderName, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::convert::Infallible;
use std::io::{self, Cursor};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, oneshot};
use tokio::time::timeout;
use tokio_rustls::TlsAcceptor;
use zeroize::Zeroizing;

pub const MAX_CONNECTIONS: usize = 64;
pub const MAX_HEAD: usize = 16 * 1024;
pub const MAX_HEADERS: usize = 64;
pub const MAX_BODY: usize = 64 * 1024;
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(30);
pub const MAX_REQUESTS_PER_CONNECTION: usize = 100;
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(300);

/// Runtime worker threads (I/O and timers); the KMS work runs on the blocking pool.
const WORKERS: usize = 2;
/// Largest hyper read buffer per connection (a whole head must fit; body bytes stream).
const MAX_BUF: usize = MAX_HEAD + 16 * 1024;
/// Blocking-pool threads for the KMS operations.
const MAX_BLOCKING: usize = 8;

/// A response body: the bytes are wiped when hyper is done with them.
type ResponseBody = Full<Cursor<Zeroizing<Vec<u8>>>>;

/// A running server. Dropping it (or [`RunningServer::shutdown`]) stops it.
pub struct RunningServer {
    addr: SocketAddr,
    ca_pem: String,
    ca_der: Vec<u8>,
    /// Sending (or dropping) it ends the accept loop.
    stop: Option<oneshot::Sender<()>>,
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
    /// Stops accepting, lets open connections finish their current request (up to
    /// [`IO_TIMEOUT`]) and waits for the server threads to end.
    pub fn shutdown(mut self) {
        self.stop_now();
    }
    /// Blocks until the server ends (for the binary: never, unless the runtime fails).
    pub fn wait(mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
    fn stop_now(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        self.stop_now();
    }
}

/// Binds `listen` and serves `kms` over TLS with `tls` on background threads. The address
/// is bound before this returns, so [`RunningServer::local_addr`] is ready to connect to.
pub fn start(kms: DevKms, tls: DevTls, listen: &str) -> io::Result<RunningServer> {
    let listener = std::net::TcpListener::bind(listen)?;
    let addr = listener.local_addr()?;
    listener.set_nonblocking(true)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .max_blocking_threads(MAX_BLOCKING)
        .thread_name("devkms")
        .enable_io()
        .enable_time()
        .build()?;
    let listener = {
        let _in_runtime = runtime.enter();
        TcpListener::from_std(listener)?
    };
    let acceptor = TlsAcceptor::from(tls.server_config.clone());
    let kms = Arc::new(kms);
    let (stop, stopped) = oneshot::channel();
    let thread = thread::Builder::new()
        .name("devkms-server".into())
        .spawn(move || {
            runtime.block_on(serve(listener, acceptor, kms, stopped));
            // Dropping the runtime cancels connections that outlived the graceful wait.
        })?;
    Ok(RunningServer {
        addr,
        ca_pem: tls.ca_pem,
        ca_der: tls.ca_der,
        stop: Some(stop),
        thread: Some(thread),
    })
}

/// The accept loop, then the graceful close of open connections.
async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    kms: Arc<DevKms>,
    mut stopped: oneshot::Receiver<()>,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let graceful = GracefulShutdown::new();
    loop {
        let accepted = tokio::select! {
            _ = &mut stopped => break,
            accepted = listener.accept() => accepted,
        };
        let Ok((tcp, _)) = accepted else {
            // EMFILE and friends: back off instead of spinning.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            drop(tcp);
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let (acceptor, kms, watcher) = (acceptor.clone(), kms.clone(), graceful.watcher());
        tokio::spawn(async move {
            let _slot = slot;
            let Ok(Ok(tls)) = timeout(IO_TIMEOUT, acceptor.accept(tcp)).await else {
                return;
            };
            let served = AtomicUsize::new(0);
            let service = service_fn(move |req| {
                let last =
                    served.fetch_add(1, Ordering::Relaxed) + 1 >= MAX_REQUESTS_PER_CONNECTION;
                respond(kms.clone(), req, last)
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(IO_TIMEOUT)
                .max_headers(MAX_HEADERS)
                .max_header_size(MAX_HEAD)
                .max_buf_size(MAX_BUF)
                .serve_connection(TokioIo::new(tls), service);
            let _ = timeout(CONNECTION_LIFETIME, watcher.watch(conn)).await;
        });
    }
    drop(listener);
    let _ = timeout(IO_TIMEOUT, graceful.shutdown()).await;
}

/// One request: read it within its limits, run the operation, frame the answer.
async fn respond(
    kms: Arc<DevKms>,
    req: Request<Incoming>,
    last: bool,
) -> Result<Response<ResponseBody>, Infallible> {
    let (resp, close) = match read_request(req).await {
        Ok(req) => {
            let resp = tokio::task::spawn_blocking(move || kms.handle(&req, now()))
                .await
                .unwrap_or_else(|_| KmsError::internal("the operation failed").into());
            (resp, last)
        }
        // The body may be partly unread: do not try to reuse the connection.
        Err(refused) => (refused, true),
    };
    Ok(response(resp, close))
}

/// The request as [`DevKms::handle`] takes it, or the error answer when it breaks a limit.
async fn read_request(req: Request<Incoming>) -> Result<HttpRequest, HttpResponse> {
    let refuse = |status: u16, message: String| HttpResponse {
        status,
        body: Zeroizing::new(KmsError::validation(message).body()),
    };
    let (parts, body) = req.into_parts();
    let mut headers = Vec::with_capacity(parts.headers.len());
    for (name, value) in &parts.headers {
        let value = std::str::from_utf8(value.as_bytes())
            .map_err(|_| refuse(400, "header values must be UTF-8".into()))?;
        headers.push((name.as_str().to_string(), value.to_string()));
    }
    // A declared length over the limit is refused before a byte of the body is read.
    if body.size_hint().lower() > MAX_BODY as u64 {
        return Err(refuse(413, format!("body exceeds {MAX_BODY} bytes")));
    }
    let body = match timeout(REQUEST_DEADLINE, Limited::new(body, MAX_BODY).collect()).await {
        Err(_) => return Err(refuse(408, "request took too long".into())),
        Ok(Err(e)) if e.is::<LengthLimitError>() => {
            return Err(refuse(413, format!("body exceeds {MAX_BODY} bytes")));
        }
        Ok(Err(e)) => return Err(refuse(400, format!("cannot read the request body: {e}"))),
        Ok(Ok(collected)) => collected.to_bytes().to_vec(),
    };
    Ok(HttpRequest {
        method: parts.method.as_str().to_string(),
        target: parts.uri.to_string(),
        headers,
        body,
    })
}

/// The HTTP response for `resp`, with KMS's content type and a fresh request id.
fn response(resp: HttpResponse, close: bool) -> Response<ResponseBody> {
    let status = StatusCode::from_u16(resp.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut out = Response::new(Full::new(Cursor::new(resp.body)));
    *out.status_mut() = status;
    let headers = out.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/x-amz-json-1.1"),
    );
    let mut id = [0u8; 16];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut id);
    if let Ok(id) = HeaderValue::from_str(&hex::encode(id)) {
        headers.insert(HeaderName::from_static("x-amzn-requestid"), id);
    }
    if close {
        headers.insert(CONNECTION, HeaderValue::from_static("close"));
    }
    out
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
