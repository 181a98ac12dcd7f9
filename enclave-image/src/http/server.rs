//! The accept loop and one connection's life.
//!
//! Threats handled here: slow or silent clients (an idle timeout and a whole-request deadline),
//! floods (a bounded connection count; excess connections get an immediate 503), oversized
//! heads and bodies (refused before they are buffered), junk (a JSON 400 and the connection
//! closed), and a handler that panics (a JSON 500; the service keeps serving). Each connection
//! first has its client's source read (the shim's PROXY header, see [`super::source`]), which
//! handlers get in [`Request::source`] for per-client shares of capacity. Browsers' cross-origin
//! requests are answered as the measured configuration's [`Cors`] says (see [`super::cors`]).

use std::convert::Infallible;
use std::io::{self, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::HeaderName;
use hyper::header::{CACHE_CONTROL, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use serde::Serialize;
use sigil_protocol::api::{ErrorBody, ErrorDetail};
use sigil_sys::{Listener, ShutdownHandle, Stream};

use super::cors::{self, Cors};
use super::exec::{Abandoned, HyperIo, IoInterest, block_on};
use super::head::{HeadError, read_head_after};
use super::source::{self, ReadError};
use crate::log;
pub use sigil_protocol::parent::source::Source;

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Request line plus headers.
    pub max_head_bytes: usize,
    pub max_body_bytes: usize,
    pub max_connections: usize,
    /// Longest silence from the client before the connection is dropped.
    pub idle_timeout: Duration,
    /// Longest a whole request/response exchange may take.
    pub request_timeout: Duration,
    /// Request body bytes held at once across all connections (see [`BodyBudget`]), for
    /// routes whose own limit is at most [`SMALL_ROUTE_BODY`].
    pub max_body_bytes_in_flight: usize,
    /// The same for routes with larger bodies (proving submissions), from a budget of its
    /// own: slow large uploads can hold all of it and still not stop the small routes.
    pub max_large_body_bytes_in_flight: usize,
}

/// Routes whose body limit is at most this draw from the small routes' budget.
pub const SMALL_ROUTE_BODY: usize = (1 << 20) + 1024;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_head_bytes: 16 * 1024,
            // Every route but proving stays under 1 MiB (each has its own limit in the
            // endpoint table); boot raises this when the prover is on.
            max_body_bytes: SMALL_ROUTE_BODY,
            max_connections: 64,
            idle_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_body_bytes_in_flight: 64 << 20,
            max_large_body_bytes_in_flight: 0,
        }
    }
}

/// A request with its body fully read (and bounded).
#[derive(Debug)]
pub struct Request {
    pub method: http::Method,
    pub path: String,
    pub query: Option<String>,
    pub headers: http::HeaderMap,
    pub body: Bytes,
    /// Who sent it, as the shim says (or `Unknown`): for fair shares only, never trust.
    pub source: Source,
}

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    /// The `Allow` header of a 405: the methods the path takes.
    pub allow: Option<String>,
}

impl Response {
    pub fn json<T: Serialize>(status: u16, value: &T) -> Response {
        match serde_json::to_vec(value) {
            Ok(body) => Response {
                status,
                content_type: "application/json",
                body,
                allow: None,
            },
            Err(_) => Response::error(500, "internal_error", "response could not be encoded"),
        }
    }

    pub fn error(status: u16, code: &str, message: impl Into<String>) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: code.into(),
                message: message.into(),
            },
        };
        Response {
            status,
            content_type: "application/json",
            // Serializing two strings cannot fail; an empty body is the fallback regardless.
            body: serde_json::to_vec(&body).unwrap_or_default(),
            allow: None,
        }
    }

    /// The response as raw HTTP/1.1 bytes, for answers sent before hyper is involved (a
    /// connection over the limit, a client that stalls or sends an oversized head). This is
    /// the project's one hand-written HTTP codec, and it only writes: handing such a
    /// connection to hyper would mean reading from a peer we have already decided not to
    /// serve, so one fixed-form status line and body are written without a read.
    fn to_raw(&self) -> Vec<u8> {
        let reason = http::StatusCode::from_u16(self.status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("Error");
        let mut out = format!(
            "HTTP/1.1 {} {}\r\ncontent-type: {}\r\ncontent-length: {}\r\ncache-control: no-store\r\nconnection: close\r\n\r\n",
            self.status,
            reason,
            self.content_type,
            self.body.len()
        )
        .into_bytes();
        out.extend_from_slice(&self.body);
        out
    }
}

pub trait Handler: Send + Sync + 'static {
    fn handle(&self, req: Request) -> Response;

    /// The largest body this route takes, if smaller than the server-wide limit. Checked
    /// before anything is buffered, so small endpoints cannot be used to fill memory.
    fn body_limit(&self, _method: &http::Method, _path: &str) -> Option<usize> {
        None
    }

    /// The methods `path` takes (`"GET"`, `"POST"`), or `None` if it is no route: CORS
    /// preflights are answered for routes only.
    fn methods(&self, _path: &str) -> Option<String> {
        None
    }
}

/// Request body bytes held at once, across connections. Threat: the per-route limits bound one
/// request, not many: 64 connections each sending the largest proving submission (about 11 MiB)
/// would hold over 700 MiB. A request reserves its declared length (or its route's limit when
/// the length is not declared) before its body is read and keeps it until it is answered; a
/// request that does not fit gets 503 `busy` at once.
pub struct BodyBudget {
    limit: usize,
    used: Mutex<usize>,
}

/// Bytes reserved from a [`BodyBudget`], given back on drop (panics included).
pub struct Reservation {
    budget: Arc<BodyBudget>,
    bytes: usize,
}

impl BodyBudget {
    pub fn new(limit: usize) -> Arc<BodyBudget> {
        Arc::new(BodyBudget {
            limit,
            used: Mutex::new(0),
        })
    }

    pub fn reserve(self: &Arc<Self>, bytes: usize) -> Option<Reservation> {
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        if bytes > self.limit.saturating_sub(*used) {
            return None;
        }
        *used += bytes;
        Some(Reservation {
            budget: self.clone(),
            bytes,
        })
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut used = self.budget.used.lock().unwrap_or_else(|p| p.into_inner());
        *used = used.saturating_sub(self.bytes);
    }
}

/// Stops a running [`Server`] from another thread.
#[derive(Clone)]
pub struct Stopper {
    stop: Arc<AtomicBool>,
    handle: ShutdownHandle,
}

impl Stopper {
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        self.handle.shutdown();
    }
}

pub struct Server {
    listener: Listener,
    limits: Limits,
    stop: Arc<AtomicBool>,
    active: Arc<AtomicUsize>,
    bodies: Bodies,
    cors: Arc<Cors>,
}

/// The two body budgets. Threat: two slow uploads of proving-sized bodies holding the whole
/// budget (for up to the request timeout, again and again) so that every vault, MuSig2 and
/// ping request is told `busy`.
#[derive(Clone)]
pub struct Bodies {
    small: Arc<BodyBudget>,
    large: Arc<BodyBudget>,
}

impl Bodies {
    fn for_route(&self, max_body: usize) -> &Arc<BodyBudget> {
        if max_body <= SMALL_ROUTE_BODY {
            &self.small
        } else {
            &self.large
        }
    }
}

/// Frees a connection slot however the connection thread ends, panics included.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Server {
    pub fn new(listener: Listener, limits: Limits) -> Server {
        Server {
            listener,
            limits,
            stop: Arc::new(AtomicBool::new(false)),
            active: Arc::new(AtomicUsize::new(0)),
            bodies: Bodies {
                small: BodyBudget::new(limits.max_body_bytes_in_flight),
                large: BodyBudget::new(limits.max_large_body_bytes_in_flight),
            },
            cors: Arc::new(Cors::none()),
        }
    }

    /// Answers browsers' cross-origin requests from `cors`'s origins (none by default).
    pub fn with_cors(mut self, cors: Cors) -> Server {
        self.cors = Arc::new(cors);
        self
    }

    pub fn stopper(&self) -> Stopper {
        Stopper {
            stop: self.stop.clone(),
            handle: self.listener.shutdown_handle(),
        }
    }

    /// Accepts until stopped. Connection threads still running finish on their own deadlines.
    pub fn serve(self, handler: Arc<dyn Handler>) -> io::Result<()> {
        loop {
            let stream = match self.listener.accept() {
                Ok((s, _)) => s,
                Err(_) if self.stop.load(Ordering::Acquire) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // EMFILE, ENOBUFS and the like pass; back off briefly instead of spinning.
                    log::warn(format_args!("accept failed: {e}"));
                    thread::sleep(Duration::from_millis(20));
                    continue;
                }
            };
            if self.stop.load(Ordering::Acquire) {
                return Ok(());
            }
            if self.active.fetch_add(1, Ordering::AcqRel) >= self.limits.max_connections {
                self.active.fetch_sub(1, Ordering::AcqRel);
                refuse_busy(stream);
                continue;
            }
            let slot = Slot(self.active.clone());
            let handler = handler.clone();
            let limits = self.limits;
            let bodies = self.bodies.clone();
            let cors = self.cors.clone();
            let active = self.active.clone();
            let spawned = thread::Builder::new()
                .name("sigil-conn".into())
                .stack_size(256 * 1024)
                .spawn(move || {
                    let _slot = slot;
                    connection(stream, handler, limits, bodies, cors, active);
                });
            if let Err(e) = spawned {
                log::warn(format_args!("could not start a connection thread: {e}"));
            }
        }
    }
}

fn refuse_busy(mut stream: Stream) {
    // Never block the accept loop on a client: the socket buffer of a fresh connection takes
    // this small answer at once or not at all.
    let _ = stream.set_nonblocking(true);
    let r = Response::error(503, "busy", "too many connections; retry shortly");
    let _ = stream.write_all(&r.to_raw());
}

/// `Keep-Alive` (not among hyper's named headers).
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");

fn send_raw(stream: &Stream, r: &Response, deadline: Instant) {
    let _ = stream.set_nonblocking(false);
    let left = deadline
        .checked_duration_since(Instant::now())
        .unwrap_or(Duration::from_millis(100))
        .max(Duration::from_millis(100));
    let _ = stream.set_timeouts(Some(left));
    let _ = { stream }.write_all(&r.to_raw());
    linger(stream);
}

/// Closes gracefully (see [`Stream::linger`]): the client still uploading an oversized body
/// reads the error response instead of a reset.
fn linger(stream: &Stream) {
    const MAX_LINGER: Duration = Duration::from_secs(1);
    const MAX_DRAIN: usize = 1 << 20;
    stream.linger(MAX_LINGER, MAX_DRAIN);
}

/// Longest a kept-alive connection waits for its next request. Short: threat, idle kept-alive
/// clients holding every connection slot so that new clients get 503. Once three quarters of
/// the slots are taken, answers close their connection instead. Clients are told the wait
/// (`Keep-Alive: timeout`, a second under it) and reuse a connection only within it.
const KEEP_ALIVE_IDLE: Duration = Duration::from_secs(5);

/// How long the connection will wait for the next request after this answer, decided before
/// the answer is sent (it says so); `None`: it will not, the answer closes it.
fn keep_alive_idle(active: &AtomicUsize, limits: &Limits) -> Option<Duration> {
    let busy = active.load(Ordering::Acquire) * 4 >= limits.max_connections * 3;
    let idle = KEEP_ALIVE_IDLE.min(limits.idle_timeout);
    (!busy && idle >= Duration::from_secs(2)).then_some(idle)
}

/// One connection: requests one after another (HTTP/1.1 keep-alive), each one's head read and
/// checked here before hyper sees it, each with its own deadline. Hyper is handed exactly one
/// request's bytes at a time (see [`HyperIo::limited`]); whatever the client sent beyond them
/// (a pipelined next request) waits for the next turn of the loop.
fn connection(
    mut stream: Stream,
    handler: Arc<dyn Handler>,
    limits: Limits,
    bodies: Bodies,
    cors: Arc<Cors>,
    active: Arc<AtomicUsize>,
) {
    let deadline = Instant::now() + limits.request_timeout;
    if stream.set_nonblocking(true).is_err() {
        return;
    }
    // The shim writes its header as soon as it connects: one idle period is plenty.
    let source_deadline = deadline.min(Instant::now() + limits.idle_timeout);
    let (source, head) = match source::read_source(&mut stream, source_deadline) {
        Ok((source, early)) => (
            source,
            read_head_after(
                &stream,
                early,
                limits.max_head_bytes,
                deadline,
                limits.idle_timeout,
            ),
        ),
        // A silent client is answered as before: its request head did not come in time.
        Err(ReadError::Silent) => (Source::Unknown, Err(HeadError::Timeout)),
        // A bad header: whoever sent it is not the shim speaking for a client, or the shim is
        // broken; nothing is served, and the parent learns nothing from an answer.
        Err(e) => {
            log::debug(format_args!("connection closed at its start: {e}"));
            return;
        }
    };
    let stream = Rc::new(stream);
    let mut head = head;
    let mut deadline = deadline;
    loop {
        let bytes = match head {
            Ok(h) => h,
            Err(e) => return answer_bad_head(&stream, e, &limits, deadline),
        };
        let framing = match super::head::framing(&bytes) {
            Ok(f) => f,
            Err(e) => return answer_bad_head(&stream, e, &limits, deadline),
        };
        // This request's bytes, and what the client already sent after them.
        let (this, rest, more) = match framing.body_len {
            Some(body) if !framing.last => {
                let end = framing.head_len.saturating_add(body);
                if bytes.len() > end {
                    let mut this = bytes;
                    let rest = this.split_off(end);
                    (this, rest, 0)
                } else {
                    let more = end - bytes.len();
                    (bytes, Vec::new(), more)
                }
            }
            _ => (bytes, Vec::new(), usize::MAX),
        };
        let idle = if framing.last {
            None
        } else {
            keep_alive_idle(&active, &limits)
        };
        let Some(reusable) = exchange(
            &stream,
            this,
            (idle.is_some() && more != usize::MAX).then_some(more),
            idle,
            deadline,
            &handler,
            &limits,
            &bodies,
            &cors,
            source,
        ) else {
            return;
        };
        if !reusable {
            linger(&stream);
            return;
        }
        // The next request: its own deadline, and the wait the answer announced.
        let Some(idle) = idle else { return };
        deadline = Instant::now() + limits.request_timeout;
        if rest.is_empty() {
            let first = Instant::now() + idle;
            match super::head::wait_readable(&stream, first.min(deadline)) {
                Ok(()) => {}
                // Nothing came: the client is done with the connection.
                Err(_) => return,
            }
        }
        head = match read_head_after(&stream, rest, limits.max_head_bytes, deadline, idle) {
            // A client closing between requests, or going quiet, ends the connection
            // without an answer: the answer could be taken for the next request's.
            Err(HeadError::Closed | HeadError::Io(_) | HeadError::Timeout) => return,
            other => other,
        };
    }
}

/// Answers a head that failed its checks (or does nothing when the client is gone).
fn answer_bad_head(stream: &Stream, e: HeadError, limits: &Limits, deadline: Instant) {
    let r = match e {
        HeadError::Timeout => Response::error(
            408,
            "request_timeout",
            format!(
                "request head not received within {} s",
                limits.request_timeout.as_secs()
            ),
        ),
        HeadError::TooLarge(n) => Response::error(
            431,
            "headers_too_large",
            format!("request line and headers exceed {n} bytes"),
        ),
        HeadError::TooManyHeaders => Response::error(
            431,
            "too_many_headers",
            format!("more than {} headers", super::head::MAX_HEADERS),
        ),
        HeadError::Malformed(m) => Response::error(
            400,
            "malformed_request",
            format!("not a valid HTTP/1.1 request head: {m}"),
        ),
        HeadError::Closed | HeadError::Io(_) => return,
    };
    send_raw(stream, &r, deadline);
}

/// Serves one request with hyper: `prefix` holds its head (and the start of its body), and
/// `more` (when known) the bytes of it still to come; `keep` is how long the connection will
/// wait for another request (`None`: the answer closes it). `Some(true)` when the connection
/// can carry another request: every byte of this one was read (its body by the handler too),
/// and hyper kept none unparsed.
#[allow(clippy::too_many_arguments)]
fn exchange(
    stream: &Rc<Stream>,
    prefix: Vec<u8>,
    more: Option<usize>,
    keep: Option<Duration>,
    deadline: Instant,
    handler: &Arc<dyn Handler>,
    limits: &Limits,
    bodies: &Bodies,
    cors: &Arc<Cors>,
    source: Source,
) -> Option<bool> {
    let interest = IoInterest::default();
    let io = match more {
        Some(more) => HyperIo::limited(stream.clone(), prefix, more, interest.clone()),
        None => HyperIo::new(stream.clone(), prefix, interest.clone()),
    };
    let (handler, bodies, cors, limits) = (handler.clone(), bodies.clone(), cors.clone(), *limits);
    let keep_alive = keep.is_some();
    // Set once the handler has the whole body: an answer given without reading it (too
    // large, no room) leaves the rest of the body on the connection, which must then close
    // rather than read it as the next request.
    let body_read = Rc::new(std::cell::Cell::new(false));
    let read_flag = body_read.clone();
    let service = service_fn(move |req| {
        let handler = handler.clone();
        let bodies = bodies.clone();
        let cors = cors.clone();
        let read_flag = read_flag.clone();
        async move {
            // Decided before anything else, so errors (413, 503 busy) are readable too.
            let origin = cors.allowed(req.headers());
            let max_body = limits.max_body_bytes;
            let mut resp = dispatch(
                req,
                handler,
                max_body,
                &bodies,
                source,
                origin.is_some(),
                &read_flag,
            )
            .await;
            if let Some(origin) = origin {
                cors::expose(resp.headers_mut(), origin);
            }
            cors::vary(&cors, resp.headers_mut());
            match keep {
                Some(idle) if read_flag.get() => {
                    let hint = format!("timeout={}", idle.as_secs().saturating_sub(1));
                    if let Ok(v) = HeaderValue::from_str(&hint) {
                        resp.headers_mut().insert(KEEP_ALIVE, v);
                    }
                }
                Some(_) => {
                    resp.headers_mut()
                        .insert(CONNECTION, HeaderValue::from_static("close"));
                }
                None => {}
            }
            Ok::<_, Infallible>(resp)
        }
    });
    let conn = http1::Builder::new()
        // Hyper serves one request per call (the loop in `connection` reads the next head):
        // keep-alive only decides what the answer says about the connection.
        .keep_alive(keep_alive)
        // A client may shut its sending side once the request is out (`nc -N`, scripts); it
        // still reads the answer, so a read EOF must not abort the exchange.
        .half_close(true)
        .max_buf_size(limits.max_head_bytes.max(8192) + 1024)
        .serve_connection(io, service)
        .without_shutdown();
    let mut conn = pin!(conn);
    match block_on(
        conn.as_mut(),
        &interest,
        stream,
        deadline,
        limits.idle_timeout,
    ) {
        Ok(Ok(parts)) => Some(
            keep_alive && body_read.get() && parts.io.delivered_all() && parts.read_buf.is_empty(),
        ),
        Ok(Err(e)) => {
            log::debug(format_args!("connection ended with an error: {e}"));
            Some(false)
        }
        Err(why) => {
            if !interest.wrote() {
                // The client stalled mid-body: tell it why before closing. The socket is
                // still open: this function holds it as well as `conn`.
                let r = match why {
                    Abandoned::Deadline | Abandoned::Idle => {
                        Response::error(408, "request_timeout", "request not completed in time")
                    }
                    Abandoned::Poll(_) => return None,
                };
                // One best-effort send that never blocks: the client has stalled.
                let _ = stream.send_nowait(&r.to_raw());
                linger(stream);
            }
            None
        }
    }
}

async fn dispatch(
    req: hyper::Request<Incoming>,
    handler: Arc<dyn Handler>,
    max_body: usize,
    bodies: &Bodies,
    source: Source,
    // The request comes from an origin the CORS policy allows.
    cross_origin: bool,
    // Set once the whole body is read.
    body_read: &std::cell::Cell<bool>,
) -> hyper::Response<Full<Bytes>> {
    let max_body = handler
        .body_limit(req.method(), req.uri().path())
        .map_or(max_body, |l| l.min(max_body));
    let bodies = bodies.for_route(max_body);
    // What this request may hold: its declared length when that is within the route's limit
    // (a larger one is refused below), else the limit. Held until the answer is built.
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.parse::<usize>().ok());
    let want = declared.map_or(max_body, |n| n.min(max_body));
    if want > bodies.limit {
        // Would never fit, however long the client waits.
        return to_hyper(Response::error(
            413,
            "body_too_large",
            format!(
                "request body of up to {want} bytes exceeds the server's {} bytes for all \
                 requests in flight",
                bodies.limit
            ),
        ));
    }
    let Some(_reserved) = bodies.reserve(want) else {
        return to_hyper(Response::error(
            503,
            "busy",
            "too many large requests are being received; retry shortly",
        ));
    };
    let r = match read_request(req, max_body, source).await {
        Ok(req) => {
            body_read.set(true);
            // A preflight is read like any request first, so the limits hold (OPTIONS is no
            // route: no body). One from an origin not allowed, or for a path that is no
            // route, gets what every OPTIONS gets (405 or 404) without CORS headers, and the
            // browser then refuses to send the real request.
            if cross_origin
                && cors::is_preflight(&req.method, &req.headers)
                && let Some(methods) = handler.methods(&req.path)
            {
                return cors::preflight(&methods);
            }
            catch_unwind(AssertUnwindSafe(|| handler.handle(req))).unwrap_or_else(|_| {
                log::warn(format_args!("a request handler panicked"));
                Response::error(500, "internal_error", "internal error")
            })
        }
        Err(r) => r,
    };
    to_hyper(r)
}

async fn read_request(
    req: hyper::Request<Incoming>,
    max_body: usize,
    source: Source,
) -> Result<Request, Response> {
    let too_large = || {
        Response::error(
            413,
            "body_too_large",
            format!("request body exceeds {max_body} bytes"),
        )
    };
    // Refuse a declared oversize body before reading any of it.
    if let Some(len) = req.headers().get(CONTENT_LENGTH) {
        let len = len
            .to_str()
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or_else(|| Response::error(400, "malformed_request", "bad content-length"))?;
        if len > max_body as u64 {
            return Err(too_large());
        }
    }
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, max_body).collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => return Err(too_large()),
        Err(e) => {
            return Err(Response::error(
                400,
                "malformed_body",
                format!("request body could not be read: {e}"),
            ));
        }
    };
    Ok(Request {
        method: parts.method,
        path: parts.uri.path().to_string(),
        query: parts.uri.query().map(str::to_string),
        headers: parts.headers,
        body,
        source,
    })
}

fn to_hyper(r: Response) -> hyper::Response<Full<Bytes>> {
    let mut resp = hyper::Response::new(Full::new(Bytes::from(r.body)));
    *resp.status_mut() =
        http::StatusCode::from_u16(r.status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(r.content_type));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(allow) = r.allow.and_then(|a| HeaderValue::from_str(&a).ok()) {
        h.insert(http::header::ALLOW, allow);
    }
    resp
}
