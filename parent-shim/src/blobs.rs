//! The blob service: frames in, [`Backend`] operations (the file store or S3), frames out.
//! The blobs themselves are sealed by the enclave and stay opaque here.

use std::time::Duration;

use sigil_sys::Stream;

use crate::store::Backend;
use crate::wire::{self, FrameError, Response};

/// At most this many blob connections at once: each may hold one maximum-size frame in
/// memory, so this bounds the service's memory (~16 x 4 MiB).
pub const MAX_CONNECTIONS: usize = 16;

/// Why a blob connection was closed with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Timeouts(std::io::Error),
    #[error("frame of {0} bytes; the limit is {max}", max = wire::MAX_FRAME)]
    TooLarge(usize),
    #[error("reading a frame: {0}")]
    Read(#[source] std::io::Error),
    #[error("writing a reply: {0}")]
    Write(#[source] std::io::Error),
}

/// Serves one connection until the peer closes, is idle for `idle`, or sends a frame that
/// cannot be framed. A frame that frames but does not decode gets an error reply and the
/// connection goes on: only a broken length prefix makes the stream unusable.
pub fn serve_conn<B: Backend + ?Sized>(
    store: &B,
    mut s: Stream,
    idle: Duration,
) -> Result<(), ServeError> {
    // A slow or silent peer (slowloris) cannot hold a connection slot past `idle`.
    s.set_timeouts(Some(idle)).map_err(ServeError::Timeouts)?;
    loop {
        let resp = match wire::read_frame(&mut s) {
            Ok(body) => match wire::decode_request(&body) {
                Ok(req) => store.handle(req),
                Err(e) => Response::err("bad_request", e.0),
            },
            Err(FrameError::Eof) => return Ok(()),
            Err(FrameError::TooLarge(n)) => {
                let e = ServeError::TooLarge(n);
                let _ = wire::write_frame(
                    &mut s,
                    &wire::encode_response(&Response::err("too_large", e.to_string())),
                );
                return Err(e);
            }
            Err(FrameError::Io(e)) => return Err(ServeError::Read(e)),
        };
        wire::write_frame(&mut s, &wire::encode_response(&resp)).map_err(ServeError::Write)?;
    }
}
