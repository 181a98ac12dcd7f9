//! The request head is read and checked before hyper sees it, so that junk, truncated and
//! oversized heads get the same JSON error as every other bad request (hyper answers those
//! with an empty body). httparse is the parser hyper itself uses, so both agree on what a
//! valid head is; hyper then parses the same bytes again.

use std::io::{self, Read};
use std::time::{Duration, Instant};

use sigil_sys::Stream;
use sigil_sys::poll::{self, Interest};

/// Most headers a request may carry.
pub const MAX_HEADERS: usize = 32;

#[derive(Debug, PartialEq, Eq)]
pub enum HeadError {
    /// The peer closed before sending a whole head (nothing to answer).
    Closed,
    /// The head was not complete within the limits of time.
    Timeout,
    /// Larger than the limit.
    TooLarge(usize),
    TooManyHeaders,
    Malformed(String),
    Io(String),
}

/// Reads from `stream` (non-blocking) until a full request head is buffered. Returns every
/// byte read, which may include the start of the body. `idle` bounds each silence, `deadline`
/// the whole head: a client that sends nothing loses its slot after `idle`.
pub fn read_head(
    stream: &Stream,
    max_head: usize,
    deadline: Instant,
    idle: Duration,
) -> Result<Vec<u8>, HeadError> {
    read_head_after(stream, Vec::new(), max_head, deadline, idle)
}

/// As [`read_head`], the connection's first bytes `early` having been read already (after
/// the shim's PROXY header: see [`super::source`]).
pub fn read_head_after(
    stream: &Stream,
    early: Vec<u8>,
    max_head: usize,
    deadline: Instant,
    idle: Duration,
) -> Result<Vec<u8>, HeadError> {
    let mut buf = Vec::with_capacity(1024);
    if !early.is_empty() && push(&mut buf, &early, max_head)? {
        return Ok(buf);
    }
    let mut chunk = [0u8; 4096];
    loop {
        match { stream }.read(&mut chunk) {
            Ok(0) => return Err(HeadError::Closed),
            Ok(n) => {
                if push(&mut buf, &chunk[..n], max_head)? {
                    return Ok(buf);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let wait_until = deadline.min(Instant::now() + idle);
                wait_readable(stream, wait_until)?
            }
            Err(e) => return Err(HeadError::Io(e.to_string())),
        }
    }
}

/// Appends the bytes just read to `buf` and decides: `true` once `buf` holds a whole head
/// (possibly followed by the start of the body), `false` if more is needed, an error if the
/// head is junk or over `max_head`. The I/O-free half of [`read_head`], so that the same code
/// can be driven with arbitrary bytes in arbitrary pieces (the fuzz target does).
pub fn push(buf: &mut Vec<u8>, chunk: &[u8], max_head: usize) -> Result<bool, HeadError> {
    buf.extend_from_slice(chunk);
    // Parse only when a line ended: httparse decides where the head ends (it accepts bare LF
    // line ends too), junk fails at its first line, and the number of parses stays bounded by
    // the number of lines, which MAX_HEADERS bounds.
    if chunk.contains(&b'\n')
        && let httparse::Status::Complete(end) = parse(buf)?
    {
        if end > max_head {
            return Err(HeadError::TooLarge(max_head));
        }
        return Ok(true);
    }
    if buf.len() > max_head {
        return Err(HeadError::TooLarge(max_head));
    }
    Ok(false)
}

pub(super) fn wait_readable(stream: &Stream, deadline: Instant) -> Result<(), HeadError> {
    let left = deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
        .ok_or(HeadError::Timeout)?;
    match poll::wait(stream, Interest::Read, left.max(Duration::from_millis(1))) {
        Ok(true) => Ok(()),
        Ok(false) => Err(HeadError::Timeout),
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
        Err(e) => Err(HeadError::Io(e.to_string())),
    }
}

/// How a checked request is framed on its connection, for keep-alive.
#[derive(Debug, PartialEq, Eq)]
pub struct Framing {
    /// Bytes of the head, terminator included.
    pub head_len: usize,
    /// The body's length when the head fixes it (`Content-Length`, or no body at all).
    pub body_len: Option<usize>,
    /// No request may follow on this connection: the client did not ask for keep-alive, or
    /// the body's end cannot be known without decoding it (chunked, or a length hyper will
    /// refuse).
    ///
    /// Keep-alive is the client's choice, by `Connection: keep-alive` (Node's fetch,
    /// browsers and the Rust client send it): scripts and tools that read an answer to the
    /// end of the connection keep working as they did.
    pub last: bool,
}

/// The framing of the complete head at the start of `buf` (as [`push`] accepted it).
pub fn framing(buf: &[u8]) -> Result<Framing, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Err(HeadError::Malformed("incomplete".into())),
        Err(e) => return Err(HeadError::Malformed(e.to_string())),
    };
    let (mut keep, mut close) = (false, req.version != Some(1));
    let mut lengths = 0;
    let mut body_len = Some(0);
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("connection") {
            for t in h.value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                keep |= t.eq_ignore_ascii_case(b"keep-alive");
                close |= t.eq_ignore_ascii_case(b"close");
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            body_len = None;
        } else if h.name.eq_ignore_ascii_case("content-length") {
            lengths += 1;
            let n = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok());
            if body_len.is_some() {
                body_len = n;
            }
        }
    }
    if lengths > 1 {
        body_len = None;
    }
    Ok(Framing {
        head_len,
        body_len,
        last: close || !keep || body_len.is_none(),
    })
}

fn parse(head: &[u8]) -> Result<httparse::Status<usize>, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    req.parse(head).map_err(|e| match e {
        httparse::Error::TooManyHeaders => HeadError::TooManyHeaders,
        other => HeadError::Malformed(other.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::TcpListener;

    fn pair() -> (std::net::TcpStream, Stream) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        s.set_nonblocking(true).unwrap();
        (c, Stream::Tcp(s))
    }

    const IDLE: Duration = Duration::from_secs(5);

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(5)
    }

    /// What `read_head` (16 KiB limit) makes of `sent`, the client still connected, or gone
    /// once it sent it if `then_close`.
    fn head_of(sent: &[u8], then_close: bool) -> Result<Vec<u8>, HeadError> {
        let (mut c, s) = pair();
        c.write_all(sent).unwrap();
        if then_close {
            drop(c);
            return read_head(&s, 16384, soon(), IDLE);
        }
        let head = read_head(&s, 16384, soon(), IDLE);
        drop(c);
        head
    }

    fn framing_of(head: &str) -> Framing {
        framing(head.as_bytes()).unwrap()
    }

    #[test]
    fn keep_alive_only_when_asked_and_the_body_length_is_known() {
        let f = framing_of(
            "POST /a HTTP/1.1\r\nConnection: keep-alive\r\nContent-Length: 7\r\n\r\nabc",
        );
        assert_eq!((f.head_len, f.body_len, f.last), (63, Some(7), false));
        let f = framing_of("GET /a HTTP/1.1\r\nconnection: Keep-Alive\r\n\r\n");
        assert_eq!((f.body_len, f.last), (Some(0), false));
        // Not asked, asked to close, HTTP/1.0, or a body whose end needs decoding: last.
        for head in [
            "GET /a HTTP/1.1\r\nHost: x\r\n\r\n",
            "GET /a HTTP/1.1\r\nConnection: keep-alive, close\r\n\r\n",
            "GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
            "POST /a HTTP/1.1\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST /a HTTP/1.1\r\nConnection: keep-alive\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
            "POST /a HTTP/1.1\r\nConnection: keep-alive\r\nContent-Length: -1\r\n\r\n",
        ] {
            assert!(framing_of(head).last, "{head}");
        }
    }

    #[test]
    fn whole_head_with_body_start() {
        let got = head_of(
            b"POST /v1/ping HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
            false,
        )
        .unwrap();
        assert!(got.ends_with(b"\r\n\r\nabc"));
    }

    #[test]
    fn head_split_across_many_writes() {
        let (mut c, s) = pair();
        let t = std::thread::spawn(move || {
            for b in b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n" {
                c.write_all(&[*b]).unwrap();
            }
            c
        });
        let got = read_head(&s, 16384, soon(), IDLE).unwrap();
        assert_eq!(got, b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n");
        drop(t.join());
    }

    #[test]
    fn junk_is_malformed_without_waiting_for_more() {
        assert!(matches!(
            head_of(b"\x00\x01\x02 garbage\r\n", false),
            Err(HeadError::Malformed(_))
        ));
    }

    #[test]
    fn oversized_head() {
        let (mut c, s) = pair();
        let mut req = b"GET / HTTP/1.1\r\n".to_vec();
        // 20 headers (under MAX_HEADERS) of 80 bytes: too large, not too many.
        req.extend(
            std::iter::repeat_n([b"X-Pad: ".as_slice(), &[b'a'; 71], b"\r\n"].concat(), 20)
                .flatten(),
        );
        c.write_all(&req).unwrap();
        assert_eq!(
            read_head(&s, 1024, soon(), IDLE),
            Err(HeadError::TooLarge(1024))
        );
        // Also when the whole oversized head (terminator included) arrives before it is read.
        let (mut c, s) = pair();
        req.extend_from_slice(b"\r\n");
        c.write_all(&req).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(
            read_head(&s, 1024, soon(), IDLE),
            Err(HeadError::TooLarge(1024))
        );
    }

    #[test]
    fn too_many_headers() {
        let mut req = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..(MAX_HEADERS + 1) {
            req.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
        }
        req.extend_from_slice(b"\r\n");
        assert_eq!(head_of(&req, false), Err(HeadError::TooManyHeaders));
    }

    #[test]
    fn truncated_then_closed() {
        assert_eq!(head_of(b"GET /v1/hea", true), Err(HeadError::Closed));
    }

    #[test]
    fn truncated_and_silent_times_out() {
        let (mut c, s) = pair();
        c.write_all(b"GET /v1/hea").unwrap();
        let deadline = Instant::now() + Duration::from_millis(100);
        assert_eq!(
            read_head(&s, 16384, deadline, IDLE),
            Err(HeadError::Timeout)
        );
    }

    #[test]
    fn bare_lf_line_ends_complete_the_head() {
        assert!(head_of(b"GET /v1/health HTTP/1.1\nHost: x\n\n", false).is_ok());
    }

    #[test]
    fn a_silent_client_loses_its_slot_after_the_idle_timeout() {
        let (_c, s) = pair();
        let start = Instant::now();
        let far = Instant::now() + Duration::from_secs(30);
        assert_eq!(
            read_head(&s, 16384, far, Duration::from_millis(100)),
            Err(HeadError::Timeout)
        );
        assert!(start.elapsed() < Duration::from_secs(5));
    }
}
