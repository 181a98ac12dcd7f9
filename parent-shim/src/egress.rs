//! The egress proxy: the enclave names a destination on a first line, the shim checks it
//! against the allow-list, connects, answers, then copies bytes both ways.
//!
//! Protocol: [`sigil_protocol::parent::egress`]. TLS runs end to end inside the enclave, so the
//! shim sees only ciphertext.

use std::io::Write;
use std::time::Duration;

use sigil_protocol::parent::egress::{
    self as wire, BAD_REQUEST, CONNECT_FAILED, EgressError, NOT_ALLOWED, Refusal,
};
use sigil_sys::{Addr, Stream};

use crate::config::check_destination;
use crate::relay;

/// Time allowed for the request line (slowloris on the handshake).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Why an egress connection ended with an error.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error(transparent)]
    Io(std::io::Error),
    #[error("reading the request line: {0}")]
    Request(#[source] EgressError),
    /// Refused with this code, which the enclave was told.
    #[error("{code}: {message}")]
    Refused { code: &'static str, message: String },
    #[error("{dest}: {source}")]
    Splice {
        dest: String,
        #[source]
        source: std::io::Error,
    },
}

fn refuse(s: &mut Stream, code: &'static str, msg: &str) -> ProxyError {
    let _ = s.write_all(&wire::encode_answer(&Err(Refusal {
        code: code.into(),
        message: msg.into(),
    })));
    ProxyError::Refused {
        code,
        message: msg.into(),
    }
}

/// `resolve` maps allowed destinations to fixed `ip:port` addresses (development only).
pub fn handle(
    mut client: Stream,
    allow: &[String],
    resolve: &[(String, String)],
    idle: Duration,
) -> Result<(), ProxyError> {
    client
        .set_read_timeout(Some(REQUEST_TIMEOUT))
        .map_err(ProxyError::Io)?;
    client
        .set_write_timeout(Some(REQUEST_TIMEOUT))
        .map_err(ProxyError::Io)?;
    let line = match wire::read_request(&mut client) {
        Ok(line) => line,
        Err(e @ (EgressError::TooLong(..) | EgressError::NotUtf8(_))) => {
            return Err(refuse(&mut client, BAD_REQUEST, &e.to_string()));
        }
        Err(e) => return Err(ProxyError::Request(e)),
    };
    let dest =
        check_destination(&line).map_err(|e| refuse(&mut client, BAD_REQUEST, &e.to_string()))?;
    // The allow-list is the whole defence against the proxy being used to reach anything
    // else (the instance metadata service, internal hosts): check before any DNS or connect.
    if !allow.contains(&dest) {
        return Err(refuse(
            &mut client,
            NOT_ALLOWED,
            &format!("{dest} is not on the egress allow-list"),
        ));
    }
    // Resolved afresh on every connection (Stream::connect does not cache), so a DNS change
    // at AWS takes effect without a restart.
    let target = resolve
        .iter()
        .find(|(d, _)| *d == dest)
        .map(|(_, to)| to.clone())
        .unwrap_or_else(|| dest.clone());
    let server = Stream::connect(&Addr::Tcp(target))
        .map_err(|e| refuse(&mut client, CONNECT_FAILED, &e.to_string()))?;
    client.write_all(wire::OK).map_err(ProxyError::Io)?;
    relay::splice(client, server, idle).map_err(|source| ProxyError::Splice { dest, source })
}
