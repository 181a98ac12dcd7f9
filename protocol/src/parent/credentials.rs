//! The credentials frame (shim -> enclave, port `CREDENTIALS`): the enclave connects, the shim
//! sends one frame and closes; the connection is the request. A 4-byte big-endian length, then
//! a CBOR map with text keys:
//!
//! `{v: 1, ok: true, access_key_id, secret_access_key, session_token?, expiration?}` or
//! `{v: 1, ok: false, error: {code, message}}`.
//!
//! The credentials are the parent's own AWS credentials: they let the enclave sign KMS
//! requests, and the key policy's attestation conditions make them useless for getting the
//! data key without this enclave. They are still the parent's secrets, so the secret parts are
//! wiped on drop at both ends, never shown by `Debug`, and the frame buffers are zeroized.
//!
//! Decoding is strict, as for [`super::blobs`]: definite lengths, no unknown or repeated keys,
//! no trailing bytes.

use std::io::{self, Read, Write};

use minicbor::{Decoder, Encoder};
use zeroize::Zeroizing;

use super::FrameError;

pub const VERSION: u8 = 1;
/// A credentials frame is a few hundred bytes (a session token is up to ~2 KiB).
pub const MAX_FRAME: usize = 16 * 1024;
/// Longest text field accepted (and sent: a longer refusal message is cut to fit).
pub const MAX_FIELD: usize = 8 * 1024;
/// More map entries than any answer has: a bound on the work a hostile map can cause.
const MAX_ENTRIES: u64 = 8;

/// The refusal code the shim sends when it has no credentials to give.
pub const UNAVAILABLE: &str = "unavailable";
/// The refusal code for credentials too large to fit in [`MAX_FRAME`].
pub const TOO_LARGE: &str = "too_large";

#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: Zeroizing<String>,
    pub session_token: Option<Zeroizing<String>>,
    /// When temporary credentials expire (RFC 3339, as IMDS gives it); informational.
    pub expiration: Option<String>,
}

// Never print the secret parts (they would end up in the journal or the console).
impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("expiration", &self.expiration)
            .finish_non_exhaustive()
    }
}

/// The shim's answer when it has no credentials (IMDS down, no role, variables unset).
pub use super::Refusal;

/// What one credentials connection carries.
pub type Answer = Result<Credentials, Refusal>;

/// Why a credentials frame could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialsError {
    #[error("reading the credentials frame: {0}")]
    Frame(#[from] FrameError),
    #[error("empty credentials frame")]
    Empty,
    #[error("credentials frame version {0}; this side speaks {VERSION}")]
    Version(u8),
    #[error("malformed credentials frame: {0}")]
    Malformed(String),
}

fn bad(m: impl Into<String>) -> CredentialsError {
    CredentialsError::Malformed(m.into())
}

type EncResult = Result<(), minicbor::encode::Error<std::convert::Infallible>>;

/// Encodes an answer. Credentials that would not fit in [`MAX_FRAME`] become a
/// [`TOO_LARGE`] refusal (the enclave would refuse the frame anyway, with a less clear
/// error); a refusal message is cut to [`MAX_FIELD`] and the code to 64 bytes.
pub fn encode(answer: &Answer) -> Zeroizing<Vec<u8>> {
    if let Ok(c) = answer {
        if fields_fit(c) {
            let body = encode_ok(c);
            if body.len() <= MAX_FRAME {
                return body;
            }
        }
        return encode(&Err(Refusal {
            code: TOO_LARGE.into(),
            message: format!("the credentials do not fit in a {MAX_FRAME}-byte frame"),
        }));
    }
    let mut out = buffer();
    let mut e = Encoder::new(&mut *out);
    if let Err(r) = answer {
        // Writing to a Vec cannot fail; the Result only carries Infallible.
        let _ = (|| -> EncResult {
            e.map(3)?.str("v")?.u8(VERSION)?.str("ok")?.bool(false)?;
            e.str("error")?.map(2)?;
            e.str("code")?.str(super::clip(&r.code, 64))?;
            e.str("message")?.str(super::clip(&r.message, MAX_FIELD))?;
            Ok(())
        })();
    }
    out
}

/// Room for four fields of [`MAX_FIELD`] and the map around them, reserved up front: a
/// growing `Vec` would leave unwiped copies of the secret behind in freed memory.
fn buffer() -> Zeroizing<Vec<u8>> {
    Zeroizing::new(Vec::with_capacity(4 * MAX_FIELD + 256))
}

fn fields_fit(c: &Credentials) -> bool {
    [
        Some(c.access_key_id.as_str()),
        Some(c.secret_access_key.as_str()),
        c.session_token.as_ref().map(|t| t.as_str()),
        c.expiration.as_deref(),
    ]
    .into_iter()
    .flatten()
    .all(|f| f.len() <= MAX_FIELD)
}

/// Only for fields that [`fields_fit`], so the buffer never grows.
fn encode_ok(c: &Credentials) -> Zeroizing<Vec<u8>> {
    let mut out = buffer();
    let mut e = Encoder::new(&mut *out);
    let _ = (|| -> EncResult {
        let n = 4 + u64::from(c.session_token.is_some()) + u64::from(c.expiration.is_some());
        e.map(n)?.str("v")?.u8(VERSION)?.str("ok")?.bool(true)?;
        e.str("access_key_id")?.str(&c.access_key_id)?;
        e.str("secret_access_key")?.str(&c.secret_access_key)?;
        if let Some(t) = &c.session_token {
            e.str("session_token")?.str(t)?;
        }
        if let Some(x) = &c.expiration {
            e.str("expiration")?.str(x)?;
        }
        Ok(())
    })();
    out
}

/// Sends one answer as a frame (the shim's side).
pub fn write(w: &mut impl Write, answer: &Answer) -> io::Result<()> {
    let body = encode(answer);
    let mut out = Zeroizing::new(Vec::with_capacity(4 + body.len()));
    super::frame_into(&mut out, &body, MAX_FRAME)?;
    w.write_all(&out)
}

/// Reads and decodes the one frame of a credentials connection (the enclave's side).
pub fn read(r: &mut impl Read) -> Result<Answer, CredentialsError> {
    let n = super::read_len(r, MAX_FRAME)?;
    if n == 0 {
        return Err(CredentialsError::Empty);
    }
    let mut body = Zeroizing::new(vec![0u8; n]);
    r.read_exact(&mut body).map_err(FrameError::Io)?;
    decode(&body)
}

fn text<'b>(d: &mut Decoder<'b>, key: &str) -> Result<&'b str, CredentialsError> {
    let s = d.str().map_err(|e| bad(format!("{key}: {e}")))?;
    if s.len() > MAX_FIELD {
        return Err(bad(format!(
            "{key} is {} bytes; at most {MAX_FIELD}",
            s.len()
        )));
    }
    Ok(s)
}

fn set<T>(slot: &mut Option<T>, key: &str, v: T) -> Result<(), CredentialsError> {
    if slot.is_some() {
        return Err(bad(format!("key {key:?} appears twice")));
    }
    *slot = Some(v);
    Ok(())
}

fn map_len(d: &mut Decoder, max: u64) -> Result<u64, CredentialsError> {
    match d.map().map_err(|e| bad(format!("map: {e}")))? {
        None => Err(bad("indefinite-length maps are not accepted")),
        Some(n) if n > max => Err(bad(format!("map has {n} entries; at most {max}"))),
        Some(n) => Ok(n),
    }
}

/// Decodes one frame body.
pub fn decode(body: &[u8]) -> Result<Answer, CredentialsError> {
    let mut d = Decoder::new(body);
    let (mut v, mut ok, mut key_id, mut expiration) = (None, None, None, None);
    let mut secret: Option<Zeroizing<String>> = None;
    let mut token: Option<Zeroizing<String>> = None;
    let mut error: Option<Refusal> = None;
    for _ in 0..map_len(&mut d, MAX_ENTRIES)? {
        let key = d.str().map_err(|e| bad(format!("key: {e}")))?;
        match key {
            "v" => set(&mut v, key, d.u8().map_err(|e| bad(format!("v: {e}")))?)?,
            "ok" => set(&mut ok, key, d.bool().map_err(|e| bad(format!("ok: {e}")))?)?,
            "access_key_id" => set(&mut key_id, key, text(&mut d, key)?.to_string())?,
            "secret_access_key" => set(
                &mut secret,
                key,
                Zeroizing::new(text(&mut d, key)?.to_string()),
            )?,
            "session_token" => set(
                &mut token,
                key,
                Zeroizing::new(text(&mut d, key)?.to_string()),
            )?,
            "expiration" => set(&mut expiration, key, text(&mut d, key)?.to_string())?,
            "error" => {
                if map_len(&mut d, 2)? != 2 {
                    return Err(bad("error must be {code, message}"));
                }
                let (mut code, mut message) = (None, None);
                for _ in 0..2 {
                    match d.str().map_err(|e| bad(format!("error key: {e}")))? {
                        "code" => set(&mut code, "code", text(&mut d, "code")?.to_string())?,
                        "message" => set(
                            &mut message,
                            "message",
                            text(&mut d, "message")?.to_string(),
                        )?,
                        other => {
                            return Err(bad(format!(
                                "unknown error key {:?}",
                                super::clip(other, 40)
                            )));
                        }
                    }
                }
                let (Some(code), Some(message)) = (code, message) else {
                    return Err(bad("error must be {code, message}"));
                };
                set(&mut error, key, Refusal { code, message })?
            }
            other => return Err(bad(format!("unknown key {:?}", super::clip(other, 40)))),
        }
    }
    if d.position() != body.len() {
        return Err(bad(format!(
            "{} trailing bytes after the map",
            body.len().saturating_sub(d.position())
        )));
    }
    match v {
        Some(VERSION) => {}
        Some(other) => return Err(CredentialsError::Version(other)),
        None => return Err(bad("missing key \"v\"")),
    }
    match ok {
        Some(true) => Ok(Ok(Credentials {
            access_key_id: key_id.ok_or_else(|| bad("missing key \"access_key_id\""))?,
            secret_access_key: secret.ok_or_else(|| bad("missing key \"secret_access_key\""))?,
            session_token: token,
            expiration,
        })),
        Some(false) => Ok(Err(error.ok_or_else(|| bad("missing key \"error\""))?)),
        None => Err(bad("missing key \"ok\"")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds() -> Credentials {
        Credentials {
            access_key_id: "ASIAEXAMPLE".into(),
            secret_access_key: Zeroizing::new("secretEXAMPLE".into()),
            session_token: Some(Zeroizing::new("tokenEXAMPLE".into())),
            expiration: Some("2026-11-21T16:00:00Z".into()),
        }
    }

    fn refusal() -> Refusal {
        Refusal {
            code: UNAVAILABLE.into(),
            message: "IMDS down".into(),
        }
    }

    #[test]
    fn answers_round_trip_through_frames() {
        let minimal = Credentials {
            session_token: None,
            expiration: None,
            ..creds()
        };
        for a in [Ok(creds()), Ok(minimal), Err(refusal())] {
            let mut wire = Vec::new();
            write(&mut wire, &a).unwrap();
            assert_eq!(read(&mut &wire[..]).unwrap(), a);
        }
        assert!(!format!("{:?}", creds()).contains("secret"));
    }

    #[test]
    fn known_encoding() {
        // {"v": 1, "ok": false, "error": {"code": "x", "message": ""}}, pinned: both the shim
        // and the enclave of one release speak it, and a change should be deliberate.
        let body = encode(&Err(Refusal {
            code: "x".into(),
            message: String::new(),
        }));
        let want = [
            0xa3, 0x61, b'v', 0x01, 0x62, b'o', b'k', 0xf4, 0x65, b'e', b'r', b'r', b'o', b'r',
            0xa2, 0x64, b'c', b'o', b'd', b'e', 0x61, b'x', 0x67, b'm', b'e', b's', b's', b'a',
            b'g', b'e', 0x60,
        ];
        assert_eq!(&body[..], want);
    }

    fn malformed(body: &[u8], why: &str) {
        let e = decode(body).expect_err(why).to_string();
        assert!(e.contains(why), "{e} lacks {why}");
    }

    #[test]
    fn malformed_truncated_and_wrong_version() {
        let good = encode(&Ok(creds()));
        for i in 0..good.len() {
            assert!(decode(&good[..i]).is_err(), "truncated at {i}");
        }
        let mut trailing = good.to_vec();
        trailing.push(0);
        malformed(&trailing, "trailing");
        malformed(&[0x01], "map");
        malformed(&[0xbf, 0xff], "indefinite");
        malformed(&[0xa9], "at most 8");
        assert!(matches!(
            decode(&[0xa1, 0x61, b'v', 0x02]),
            Err(CredentialsError::Version(2))
        ));
        malformed(&[0xa1, 0x61, b'v', 0x01], "missing key \"ok\"");
        malformed(
            &[0xa2, 0x61, b'v', 0x01, 0x62, b'o', b'k', 0xf5],
            "access_key_id",
        );
        malformed(&[0xa2, 0x61, b'v', 0x01, 0x61, b'v', 0x01], "twice");
        malformed(&[0xa1, 0x61, b'x', 0x01], "unknown key");
        // Arbitrary bytes: never a panic.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..10_000 {
            let len = (x % 48) as usize;
            let buf: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            let _ = decode(&buf);
        }
    }

    #[test]
    fn oversized_frames_and_fields() {
        let huge = ((MAX_FRAME + 1) as u32).to_be_bytes();
        assert!(matches!(
            read(&mut &huge[..]),
            Err(CredentialsError::Frame(FrameError::TooLarge(_)))
        ));
        assert!(matches!(
            read(&mut &[0, 0, 0, 0][..]),
            Err(CredentialsError::Empty)
        ));
        assert!(matches!(
            read(&mut &[0, 0, 0, 9, 0xa0][..]),
            Err(CredentialsError::Frame(FrameError::Io(_)))
        ));
        // A field over the limit is refused by the reader ...
        let long = "a".repeat(MAX_FIELD + 1);
        let mut e = Encoder::new(Vec::new());
        e.map(1)
            .unwrap()
            .str("access_key_id")
            .unwrap()
            .str(&long)
            .unwrap();
        malformed(&e.into_writer(), "at most");
        // ... and never sent by the writer: it sends a clear refusal instead.
        let big = Credentials {
            session_token: Some(Zeroizing::new(long.clone())),
            ..creds()
        };
        let Err(r) = decode(&encode(&Ok(big))).unwrap() else {
            panic!("oversized credentials were sent");
        };
        assert_eq!(r.code, TOO_LARGE);
        let Err(r) = decode(&encode(&Err(Refusal {
            code: "c".into(),
            message: long,
        })))
        .unwrap() else {
            panic!()
        };
        assert_eq!(r.message.len(), MAX_FIELD);
    }
}
