//! Who the client is: the PROXY v2 header the shim writes in front of each connection (format
//! in `sigil_protocol::parent::source`), read before the request head.
//!
//! Threat model. Every connection reaches the enclave through the parent, which can write any
//! header it likes: it can forge any source. It can also refuse to relay anyone at all, so a
//! forged source gives it nothing it does not already have. A source is therefore used only
//! to share capacity between clients (the proving queue's per-client share), never to decide
//! what a request may do. A client cannot choose its source through an honest shim: the
//! shim's header comes before the client's first byte, and only the first header on a
//! connection is read; a second one is part of the client's request, and not valid HTTP.
//!
//! Without a header (a direct connection: local mode, tests; or a shim with the header turned
//! off) the source is [`Source::Unknown`]. A header that is malformed, too large or not
//! complete in time closes the connection with nothing served.

use std::io::{self, Read};
use std::time::Instant;

use sigil_protocol::parent::source::{self, Parsed, Source, SourceError};
use sigil_sys::Stream;

use super::head::{HeadError, wait_readable};

/// Why a connection's first bytes gave no source.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The peer closed before its first bytes were told apart.
    #[error("closed before the first bytes")]
    Closed,
    /// Nothing arrived by the deadline (a client that connects and stays silent); answered
    /// like a silent client's missing request head.
    #[error("nothing received in time")]
    Silent,
    /// A header begun but not completed by the deadline.
    #[error("PROXY header not completed in time")]
    Truncated,
    #[error(transparent)]
    Bad(SourceError),
    #[error("{0}")]
    Io(String),
}

/// Reads until the connection's first bytes are either a whole PROXY header (its source, and
/// the bytes after it) or not a header at all ([`Source::Unknown`], and every byte read).
/// Bounded: at most one read past [`source::MAX_HEADER`] bytes, and nothing after `deadline`.
pub fn read_source(stream: &mut Stream, deadline: Instant) -> Result<(Source, Vec<u8>), ReadError> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        match source::parse(&buf).map_err(ReadError::Bad)? {
            Parsed::NotProxy => return Ok((Source::Unknown, buf)),
            Parsed::Header { peer, len } => {
                let rest = buf.split_off(len);
                return Ok((Source::of(peer), rest));
            }
            Parsed::Incomplete => {}
        }
        match stream.read(&mut chunk) {
            Ok(0) => return Err(ReadError::Closed),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                match wait_readable(stream, deadline) {
                    Ok(()) => {}
                    Err(HeadError::Timeout) if buf.is_empty() => return Err(ReadError::Silent),
                    Err(HeadError::Timeout) => return Err(ReadError::Truncated),
                    Err(e) => return Err(ReadError::Io(format!("{e:?}"))),
                }
            }
            Err(e) => return Err(ReadError::Io(e.to_string())),
        }
    }
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
        Instant::now() + Duration::from_millis(300)
    }

    fn header(peer: &str) -> Vec<u8> {
        source::encode(Some(peer.parse().unwrap())).unwrap()
    }

    #[test]
    fn a_header_gives_the_source_and_the_bytes_after_it() {
        let (mut c, mut s) = pair();
        let mut sent = header("127.0.0.2:5555");
        sent.extend_from_slice(b"GET /v1/health HTTP/1.1\r\n\r\n");
        c.write_all(&sent).unwrap();
        let (src, rest) = read_source(&mut s, soon()).unwrap();
        assert_eq!(src, Source::Addr("127.0.0.2".parse().unwrap()));
        assert_eq!(rest, b"GET /v1/health HTTP/1.1\r\n\r\n");
    }

    #[test]
    fn a_header_sent_byte_by_byte() {
        let (mut c, mut s) = pair();
        let h = header("[2001:db8:1:2::5]:1");
        let t = std::thread::spawn(move || {
            for b in h {
                c.write_all(&[b]).unwrap();
                std::thread::sleep(Duration::from_millis(1));
            }
            c
        });
        let (src, rest) = read_source(&mut s, Instant::now() + Duration::from_secs(5)).unwrap();
        assert_eq!(src, Source::Addr("2001:db8:1:2::".parse().unwrap()));
        assert!(rest.is_empty());
        drop(t.join());
    }

    #[test]
    fn without_a_header_the_source_is_unknown_and_nothing_is_lost() {
        let (mut c, mut s) = pair();
        c.write_all(b"GET /v1/health HTTP/1.1\r\n\r\n").unwrap();
        let (src, rest) = read_source(&mut s, soon()).unwrap();
        assert_eq!(src, Source::Unknown);
        assert!(b"GET /v1/health HTTP/1.1\r\n\r\n".starts_with(&rest) && !rest.is_empty());
    }

    #[test]
    fn only_the_first_header_counts() {
        let (mut c, mut s) = pair();
        let second = header("10.0.0.9:1");
        let mut sent = header("127.0.0.2:1");
        sent.extend_from_slice(&second);
        c.write_all(&sent).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        let (src, rest) = read_source(&mut s, soon()).unwrap();
        assert_eq!(src, Source::Addr("127.0.0.2".parse().unwrap()));
        // The second is left for the request parser (which refuses it).
        assert_eq!(rest, second);
    }

    #[test]
    fn bad_truncated_and_silent_starts_are_errors() {
        let (mut c, mut s) = pair();
        let mut h = header("127.0.0.2:1");
        h[12] = 0x2f;
        c.write_all(&h).unwrap();
        assert!(matches!(
            read_source(&mut s, soon()),
            Err(ReadError::Bad(SourceError::Malformed(_)))
        ));
        let (mut c, mut s) = pair();
        c.write_all(&header("127.0.0.2:1")[..20]).unwrap();
        assert!(matches!(
            read_source(&mut s, soon()),
            Err(ReadError::Truncated)
        ));
        let (_c, mut s) = pair();
        assert!(matches!(
            read_source(&mut s, soon()),
            Err(ReadError::Silent)
        ));
        let (c, mut s) = pair();
        drop(c);
        assert!(matches!(
            read_source(&mut s, soon()),
            Err(ReadError::Closed)
        ));
    }
}
