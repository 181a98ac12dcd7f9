//! The request head is read and checked before hyper sees it, so that junk, truncated and
//! oversized heads get the same JSON error as every other bad request (hyper answers those
//! with an empty body). httparse is the parser hyper itself uses, so both agree on what a
//! valid head is; hyper then parses the same bytes again.

use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::time::Instant;

use crate::transport::Stream;

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
/// byte read, which may include the start of the body.
pub fn read_head(
    stream: &mut Stream,
    max_head: usize,
    deadline: Instant,
) -> Result<Vec<u8>, HeadError> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => return Err(HeadError::Closed),
            Ok(n) => {
                let searched_from = buf.len().saturating_sub(3);
                buf.extend_from_slice(&chunk[..n]);
                if let Some(end) = find_head_end(&buf[searched_from..]) {
                    let end = searched_from + end;
                    if end > max_head {
                        return Err(HeadError::TooLarge(max_head));
                    }
                    check(&buf[..end])?;
                    return Ok(buf);
                }
                if buf.len() > max_head {
                    return Err(HeadError::TooLarge(max_head));
                }
                // Fail fast on junk: once the request line is complete it must parse.
                check_partial(&buf)?;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => wait_readable(stream, deadline)?,
            Err(e) => return Err(HeadError::Io(e.to_string())),
        }
    }
}

fn find_head_end(b: &[u8]) -> Option<usize> {
    b.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

fn wait_readable(stream: &Stream, deadline: Instant) -> Result<(), HeadError> {
    let left = deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
        .ok_or(HeadError::Timeout)?;
    let mut pfd = libc::pollfd {
        fd: stream.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let rc = unsafe {
        libc::poll(
            &mut pfd,
            1,
            left.as_millis().clamp(1, i32::MAX as u128) as i32,
        )
    };
    match rc {
        0 => Err(HeadError::Timeout),
        n if n < 0 => {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                Ok(())
            } else {
                Err(HeadError::Io(e.to_string()))
            }
        }
        _ => Ok(()),
    }
}

fn parse(head: &[u8]) -> Result<httparse::Status<usize>, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    req.parse(head).map_err(|e| match e {
        httparse::Error::TooManyHeaders => HeadError::TooManyHeaders,
        other => HeadError::Malformed(other.to_string()),
    })
}

fn check(head: &[u8]) -> Result<(), HeadError> {
    match parse(head)? {
        httparse::Status::Complete(_) => Ok(()),
        httparse::Status::Partial => Err(HeadError::Malformed("incomplete request head".into())),
    }
}

fn check_partial(buf: &[u8]) -> Result<(), HeadError> {
    parse(buf).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::TcpListener;
    use std::time::Duration;

    fn pair() -> (std::net::TcpStream, Stream) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        s.set_nonblocking(true).unwrap();
        (c, Stream::Tcp(s))
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(5)
    }

    #[test]
    fn whole_head_with_body_start() {
        let (mut c, mut s) = pair();
        c.write_all(b"POST /v1/ping HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
            .unwrap();
        let got = read_head(&mut s, 16384, soon()).unwrap();
        assert!(got.ends_with(b"\r\n\r\nabc"));
    }

    #[test]
    fn head_split_across_many_writes() {
        let (mut c, mut s) = pair();
        let t = std::thread::spawn(move || {
            for b in b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n" {
                c.write_all(&[*b]).unwrap();
            }
            c
        });
        let got = read_head(&mut s, 16384, soon()).unwrap();
        assert_eq!(got, b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n");
        drop(t.join());
    }

    #[test]
    fn junk_is_malformed_without_waiting_for_more() {
        let (mut c, mut s) = pair();
        c.write_all(b"\x00\x01\x02 garbage\r\n").unwrap();
        assert!(matches!(
            read_head(&mut s, 16384, soon()),
            Err(HeadError::Malformed(_))
        ));
    }

    #[test]
    fn oversized_head() {
        let (mut c, mut s) = pair();
        let mut req = b"GET / HTTP/1.1\r\n".to_vec();
        req.extend(std::iter::repeat_n(b"X-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n", 40).flatten());
        c.write_all(&req).unwrap();
        assert_eq!(
            read_head(&mut s, 1024, soon()),
            Err(HeadError::TooLarge(1024))
        );
        // Also when the whole oversized head (terminator included) arrives before it is read.
        let (mut c, mut s) = pair();
        req.extend_from_slice(b"\r\n");
        c.write_all(&req).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(
            read_head(&mut s, 1024, soon()),
            Err(HeadError::TooLarge(1024))
        );
    }

    #[test]
    fn too_many_headers() {
        let (mut c, mut s) = pair();
        let mut req = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..(MAX_HEADERS + 1) {
            req.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
        }
        req.extend_from_slice(b"\r\n");
        c.write_all(&req).unwrap();
        assert_eq!(
            read_head(&mut s, 16384, soon()),
            Err(HeadError::TooManyHeaders)
        );
    }

    #[test]
    fn truncated_then_closed() {
        let (mut c, mut s) = pair();
        c.write_all(b"GET /v1/hea").unwrap();
        drop(c);
        assert_eq!(read_head(&mut s, 16384, soon()), Err(HeadError::Closed));
    }

    #[test]
    fn truncated_and_silent_times_out() {
        let (mut c, mut s) = pair();
        c.write_all(b"GET /v1/hea").unwrap();
        let deadline = Instant::now() + Duration::from_millis(100);
        assert_eq!(read_head(&mut s, 16384, deadline), Err(HeadError::Timeout));
    }
}
