//! The shim's egress proxy as a [`sigil_kms::client::Connector`]: the handshake is
//! [`sigil_protocol::parent::egress`] (the enclave names `HOST:PORT`, the shim answers `OK` or
//! refuses), then the shim relays bytes. TLS runs inside the enclave on top of this stream, so
//! the shim (and anyone it connects to instead of KMS) sees ciphertext and cannot pass the
//! certificate check.

use std::io::{self, Write};

use sigil_kms::client::Connector;
use sigil_protocol::parent::egress as wire;
use sigil_sys::{Addr, Stream};

use super::TIMEOUT;

pub struct EgressConnector {
    pub proxy: Addr,
}

impl Connector for EgressConnector {
    type Conn = Stream;

    fn connect(&self, host: &str, port: u16) -> io::Result<Stream> {
        let request = wire::encode_request(host, port)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let mut s = Stream::connect(&self.proxy)
            .map_err(|e| io::Error::new(e.kind(), format!("egress proxy {}: {e}", self.proxy)))?;
        s.set_timeouts(Some(TIMEOUT))?;
        s.write_all(&request)?;
        match wire::read_answer(&mut s) {
            Ok(Ok(())) => Ok(s),
            // The shim's refusal is shown as it is (bounded, printable): it names the reason,
            // for instance a destination missing from the allow-list.
            Ok(Err(refusal)) => Err(io::Error::new(
                io::ErrorKind::ConnectionRefused,
                format!("egress proxy refused {host}:{port}: {refusal}"),
            )),
            Err(wire::EgressError::Io(e)) => Err(e),
            Err(e) => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("egress proxy: {e}"),
            )),
        }
    }
}
