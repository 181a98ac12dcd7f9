//! The shim's egress proxy as a [`sigil_kms::client::Connector`]: the enclave names
//! `HOST:PORT` on the first line, the shim answers `OK` or `ERR <code> <message>` and then
//! relays bytes. TLS runs inside the enclave on top of this stream, so the shim (and anyone
//! it connects to instead of KMS) sees ciphertext and cannot pass the certificate check.

use std::io::{self, Write};

use sigil_kms::client::Connector;
use sigil_sys::io::{LineError, read_bounded_line};
use sigil_sys::{Addr, Stream};

use super::TIMEOUT;

/// Longest answer line the shim sends.
const MAX_ANSWER: usize = 512;

pub struct EgressConnector {
    pub proxy: Addr,
}

impl Connector for EgressConnector {
    type Conn = Stream;

    fn connect(&self, host: &str, port: u16) -> io::Result<Stream> {
        let mut s = Stream::connect(&self.proxy)
            .map_err(|e| io::Error::new(e.kind(), format!("egress proxy {}: {e}", self.proxy)))?;
        s.set_timeouts(Some(TIMEOUT))?;
        s.write_all(format!("{host}:{port}\n").as_bytes())?;
        let line = read_line(&mut s)?;
        if line == "OK" {
            return Ok(s);
        }
        // The shim's refusal is shown as it is (bounded, printable): it names the reason,
        // for instance a destination missing from the allow-list.
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
        Err(io::Error::new(
            io::ErrorKind::ConnectionRefused,
            format!("egress proxy refused {host}:{port}: {shown}"),
        ))
    }
}

/// Reads the answer line; no byte of the TLS stream that follows is consumed.
fn read_line(s: &mut Stream) -> io::Result<String> {
    let line = read_bounded_line(s, MAX_ANSWER).map_err(|e| match e {
        LineError::Closed => io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "egress proxy closed without answering",
        ),
        LineError::TooLong(_) => io::Error::new(
            io::ErrorKind::InvalidData,
            "egress proxy answer is too long",
        ),
        LineError::Io(e) => e,
    })?;
    Ok(String::from_utf8_lossy(&line)
        .trim_end_matches('\r')
        .to_string())
}
