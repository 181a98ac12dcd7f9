//! The egress handshake (enclave -> shim, port `EGRESS`): the enclave names a destination on
//! one line, the shim answers on one line, then the connection carries opaque bytes both ways
//! (TLS that ends inside the enclave, so the shim sees only ciphertext).
//!
//! Request: `HOST:PORT\n` (at most [`MAX_REQUEST`] bytes before the newline).
//! Answer:  `OK\n`, or `ERR <code> <message>\n` and the shim closes. Codes: [`BAD_REQUEST`],
//! [`NOT_ALLOWED`], [`CONNECT_FAILED`].
//!
//! Both lines are read a byte at a time so that no byte of the stream that follows is
//! consumed; both are bounded, so a silent or endless peer costs a timeout, not memory.

use std::io::{self, Read};

/// Longest request line: a 253-byte host, ':' and a port fit with room to spare.
pub const MAX_REQUEST: usize = 300;
/// Longest answer line.
pub const MAX_ANSWER: usize = 512;

/// The request line is not `HOST:PORT`, or is too long or not UTF-8.
pub const BAD_REQUEST: &str = "bad_request";
/// The destination is not on the shim's allow-list.
pub const NOT_ALLOWED: &str = "not_allowed";
/// The shim could not reach the destination.
pub const CONNECT_FAILED: &str = "connect_failed";

/// The answer that lets the bytes flow.
pub const OK: &[u8] = b"OK\n";

pub use super::Refusal;

/// Why a handshake line could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EgressError {
    #[error("closed before the {0} line")]
    Closed(&'static str),
    #[error("{0} line longer than {1} bytes")]
    TooLong(&'static str, usize),
    #[error("{0} line is not UTF-8")]
    NotUtf8(&'static str),
    #[error("malformed answer {0:?}")]
    Malformed(String),
    #[error("destination {0:?} cannot be named on the request line")]
    BadDestination(String),
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// The request line for `host:port`. The host must be printable ASCII without spaces or
/// `:` (a name or an IPv4 address), so that one line names exactly one destination.
pub fn encode_request(host: &str, port: u16) -> Result<Vec<u8>, EgressError> {
    let line = format!("{host}:{port}\n");
    if host.is_empty()
        || line.len() > MAX_REQUEST + 1
        || !host.bytes().all(|b| b.is_ascii_graphic() && b != b':')
    {
        return Err(EgressError::BadDestination(
            super::clip(host, 64).to_string(),
        ));
    }
    Ok(line.into_bytes())
}

/// Reads the request line (the shim's side): the destination text without the newline (and
/// without a trailing `\r`). Whether it is a valid, allowed destination is the shim's call.
pub fn read_request(r: &mut impl Read) -> Result<String, EgressError> {
    let line = read_line(r, MAX_REQUEST, "request")?;
    let line = String::from_utf8(line).map_err(|_| EgressError::NotUtf8("request"))?;
    Ok(line.trim_end_matches('\r').to_string())
}

/// The answer line. A message is made one printable line and clipped so the whole answer
/// fits in [`MAX_ANSWER`] (an error text from the OS must not break the framing).
pub fn encode_answer(answer: &Result<(), Refusal>) -> Vec<u8> {
    match answer {
        Ok(()) => OK.to_vec(),
        Err(r) => {
            let clean = |s: &str| -> String {
                s.chars()
                    .map(|c| if c.is_control() { ' ' } else { c })
                    .collect()
            };
            let code = clean(super::clip(&r.code, 64)).replace(' ', "_");
            let message = clean(&r.message);
            let room = MAX_ANSWER.saturating_sub("ERR  ".len() + code.len());
            format!("ERR {code} {}\n", super::clip(&message, room)).into_bytes()
        }
    }
}

/// Reads the answer line (the enclave's side).
pub fn read_answer(r: &mut impl Read) -> Result<Result<(), Refusal>, EgressError> {
    let line = read_line(r, MAX_ANSWER, "answer")?;
    let line = String::from_utf8_lossy(&line);
    let line = line.trim_end_matches('\r');
    if line == "OK" {
        return Ok(Ok(()));
    }
    // Shown to the operator and logged: printable ASCII only, whatever the parent sent (no
    // terminal escapes, bidi overrides or zero-width characters from an untrusted parent).
    let shown: String = line
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect();
    match shown.strip_prefix("ERR ") {
        Some(rest) => {
            let (code, message) = rest.split_once(' ').unwrap_or((rest, ""));
            Ok(Err(Refusal {
                code: code.to_string(),
                message: message.to_string(),
            }))
        }
        None => Err(EgressError::Malformed(shown)),
    }
}

/// Reads one `\n`-terminated line of at most `max` bytes, a byte at a time.
fn read_line(r: &mut impl Read, max: usize, what: &'static str) -> Result<Vec<u8>, EgressError> {
    let mut line = Vec::with_capacity(64);
    loop {
        let mut b = [0u8; 1];
        match r.read(&mut b) {
            Ok(0) => return Err(EgressError::Closed(what)),
            Ok(_) if b[0] == b'\n' => return Ok(line),
            Ok(_) if line.len() >= max => return Err(EgressError::TooLong(what, max)),
            Ok(_) => line.push(b[0]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(EgressError::Io(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_round_trip_and_nothing_after_the_line_is_consumed() {
        let mut wire = encode_request("kms.eu-west-1.amazonaws.com", 443).unwrap();
        assert_eq!(wire, b"kms.eu-west-1.amazonaws.com:443\n");
        wire.extend_from_slice(b"\x16\x03\x01");
        let mut r = &wire[..];
        assert_eq!(
            read_request(&mut r).unwrap(),
            "kms.eu-west-1.amazonaws.com:443"
        );
        assert_eq!(r, b"\x16\x03\x01");
        assert_eq!(read_request(&mut &b"h:1\r\n"[..]).unwrap(), "h:1");
        for host in ["", "a b", "a\nb", "[::1]", &"a".repeat(MAX_REQUEST)] {
            assert!(encode_request(host, 1).is_err(), "{host:?}");
        }
    }

    #[test]
    fn answers_round_trip() {
        for a in [
            Ok(()),
            Err(Refusal {
                code: NOT_ALLOWED.into(),
                message: "x:1 is not on the egress allow-list".into(),
            }),
        ] {
            let wire = encode_answer(&a);
            assert_eq!(read_answer(&mut &wire[..]).unwrap(), a);
        }
        // A multi-line OS error stays one line, and a huge one fits.
        let wire = encode_answer(&Err(Refusal {
            code: CONNECT_FAILED.into(),
            message: format!("refused\nERR fake\r{}", "x".repeat(4 * MAX_ANSWER)),
        }));
        assert!(wire.len() <= MAX_ANSWER + 1);
        assert_eq!(wire.iter().filter(|&&b| b == b'\n').count(), 1);
        let Err(r) = read_answer(&mut &wire[..]).unwrap() else {
            panic!()
        };
        assert_eq!(r.code, CONNECT_FAILED);
        assert!(r.message.starts_with("refused ERR fake "));
        // What a hostile parent sends is shown as printable ASCII only: no terminal escape,
        // bidi override or zero-width character reaches the enclave's errors and logs.
        let wire = "ERR not_allowed a\x1b[2J\u{202e}b\u{200b}c\n".as_bytes();
        let Err(r) = read_answer(&mut &wire[..]).unwrap() else {
            panic!()
        };
        assert_eq!(r.message, "a?[2J?b?c");
    }

    #[test]
    fn truncated_oversized_and_malformed_lines() {
        assert!(matches!(
            read_request(&mut &b"h:1"[..]),
            Err(EgressError::Closed("request"))
        ));
        let long = vec![b'a'; MAX_REQUEST + 1];
        assert!(matches!(
            read_request(&mut &long[..]),
            Err(EgressError::TooLong("request", MAX_REQUEST))
        ));
        let mut exact = vec![b'a'; MAX_REQUEST];
        exact.push(b'\n');
        assert!(read_request(&mut &exact[..]).is_ok());
        assert!(matches!(
            read_request(&mut &b"\xff:1\n"[..]),
            Err(EgressError::NotUtf8(_))
        ));
        assert!(matches!(
            read_answer(&mut &b""[..]),
            Err(EgressError::Closed("answer"))
        ));
        assert!(matches!(
            read_answer(&mut &vec![b'E'; MAX_ANSWER + 1][..]),
            Err(EgressError::TooLong("answer", MAX_ANSWER))
        ));
        let e = read_answer(&mut &b"HTTP/1.1 200 OK\x1b\n"[..]).unwrap_err();
        assert!(matches!(e, EgressError::Malformed(ref s) if s == "HTTP/1.1 200 OK?"));
    }
}
