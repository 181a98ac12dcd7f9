//! Every format the enclave and its parent instance speak to each other, defined once and used
//! by both sides (the enclave sends or reads, the shim serves):
//!
//! | port ([`crate::ports`]) | module          | shape                                            |
//! |-------------------------|-----------------|--------------------------------------------------|
//! | `BLOBS` (9002)          | [`blobs`]       | length-prefixed CBOR request/response frames     |
//! | `EGRESS` (9003)         | [`egress`]      | one text line each way, then opaque (TLS) bytes  |
//! | `CREDENTIALS` (9004)    | [`credentials`] | one length-prefixed CBOR frame, shim to enclave  |
//! | `LOGS` (9001)           | [`logs`]        | `\n`-terminated text lines, enclave to shim      |
//! | `API` (5000), ingress   | [`source`]      | one PROXY v2 header, shim to enclave, then HTTP  |
//!
//! The parent is untrusted: every reader here bounds what it reads before allocating or
//! parsing, refuses what it does not understand with a typed error, and never panics. These
//! modules need neither HPKE nor JSON, so the shim links them with `default-features = false`.

pub mod blobs;
pub mod credentials;
pub mod egress;
pub mod logs;
pub mod source;

use std::io::{self, Read, Write};

/// A parent service's refusal (egress: a destination off the allow-list; credentials: none to
/// give), as the shim words it: a short code and one line of text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub code: String,
    pub message: String,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.code, self.message)
    }
}

/// Why a length-prefixed frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The peer closed cleanly between frames.
    #[error("the peer closed the connection")]
    Eof,
    /// A forged or broken length prefix: the stream cannot be resynchronised.
    #[error("frame of {0} bytes is over the limit")]
    TooLarge(usize),
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// Reads a 4-byte big-endian length and checks it against `max` before anything is allocated
/// (threat: memory exhaustion by a forged length). A close before the first byte is
/// [`FrameError::Eof`]; a close inside the prefix is an I/O error.
fn read_len(r: &mut impl Read, max: usize) -> Result<usize, FrameError> {
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match r.read(&mut len[got..]) {
            Ok(0) if got == 0 => return Err(FrameError::Eof),
            Ok(0) => return Err(FrameError::Io(io::ErrorKind::UnexpectedEof.into())),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(FrameError::Io(e)),
        }
    }
    let n = u32::from_be_bytes(len) as usize;
    if n > max {
        return Err(FrameError::TooLarge(n));
    }
    Ok(n)
}

/// Writes `body` behind its 4-byte big-endian length in one `write_all` (a frame is never
/// interleaved with another writer's bytes). `out` receives the frame; the caller picks a
/// zeroizing buffer when the body is secret.
fn frame_into(out: &mut Vec<u8>, body: &[u8], max: usize) -> io::Result<()> {
    let n = u32::try_from(body.len())
        .ok()
        .filter(|&n| n as usize <= max)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "frame over the limit"))?;
    out.reserve_exact(4 + body.len());
    out.extend_from_slice(&n.to_be_bytes());
    out.extend_from_slice(body);
    Ok(())
}

fn write_frame_with(w: &mut impl Write, body: &[u8], max: usize) -> io::Result<()> {
    let mut out = Vec::new();
    frame_into(&mut out, body, max)?;
    w.write_all(&out)
}

/// Echoing hostile text back in errors is fine, but only a bounded prefix of it.
fn clip(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
