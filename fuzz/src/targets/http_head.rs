//! The start of a connection as the enclave reads it from any client, in pieces of any size:
//! the shim's PROXY v2 header if there is one (`sigil_protocol::parent::source`), then the
//! HTTP request head, routed through the endpoint table as the API does.

use sigil_enclave::http::head::{self, HeadError};
use sigil_protocol::endpoint::{Lookup, lookup};
use sigil_protocol::parent::source::{self, Parsed};

/// The enclave's default head limit.
pub const MAX_HEAD: usize = 16 * 1024;

pub fn run(data: &[u8]) {
    let Some((selector, stream)) = crate::split_selector(data) else {
        return;
    };
    // The selector is the size of each read (1..=64 bytes), as a slow or odd client sends.
    let piece = usize::from(selector % 64) + 1;
    // The PROXY header, read on growing prefixes as the connection reads it: bounded, and
    // what follows a whole header is the client's.
    let mut seen = 0;
    let after = loop {
        seen = (seen + piece).min(stream.len());
        match source::parse(&stream[..seen]) {
            Ok(Parsed::Incomplete) if seen < stream.len() => {
                assert!(
                    seen < source::MAX_HEADER + piece,
                    "header read past its bound"
                );
            }
            Ok(Parsed::Incomplete) | Err(_) => return,
            Ok(Parsed::NotProxy) => break 0,
            Ok(Parsed::Header { len, .. }) => {
                assert!(len <= seen && len <= source::MAX_HEADER);
                break len;
            }
        }
    };
    let stream = &stream[after..];
    let mut buf = Vec::new();
    let mut done = false;
    for chunk in stream.chunks(piece) {
        match head::push(&mut buf, chunk, MAX_HEAD) {
            Ok(true) => {
                done = true;
                break;
            }
            Ok(false) => assert!(buf.len() <= MAX_HEAD, "buffered past the limit"),
            Err(HeadError::TooLarge(n)) => {
                assert_eq!(n, MAX_HEAD);
                return;
            }
            Err(_) => return,
        }
    }
    if !done {
        return;
    }
    // A head the reader accepted is one httparse parses completely within the limit.
    let mut headers = [httparse::EMPTY_HEADER; head::MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let end = match req.parse(&buf) {
        Ok(httparse::Status::Complete(end)) => end,
        other => panic!("accepted head does not parse: {other:?}"),
    };
    assert!(end <= MAX_HEAD);
    let (Some(method), Some(target)) = (req.method, req.path) else {
        panic!("complete head without method or target");
    };
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    if let Lookup::Found(e, param) = lookup(method, path) {
        assert_eq!(e.method.as_str(), method);
        match (e.param, param) {
            (None, None) => assert_eq!(e.path, path),
            (Some(p), Some(seg)) => {
                assert_eq!(seg.len(), p.hex_digits);
                assert!(seg.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
            }
            _ => panic!("path parameter mismatch for {}", e.name),
        }
    }
}
