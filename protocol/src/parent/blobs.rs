//! Blob-store frames (enclave <-> shim, port `BLOBS`): a 4-byte big-endian length, then a CBOR
//! map with text keys. The enclave sends requests; the shim serves them from its store.
//!
//! Request:  `{v: 1, op: "put"|"get"|"list"|"delete", name?, expected_version?, data?, prefix?}`
//! Response: `{v: 1, ok: bool, version?, data?, names?, more?, error?: {code, message}}`
//!
//! Decoding is strict (definite lengths only, no unknown or repeated keys, no trailing bytes)
//! so that there is exactly one encoding of each message and nothing is silently ignored.

use std::io::{self, Read, Write};

use minicbor::{Decoder, Encoder};

pub use super::FrameError;

pub const VERSION: u8 = 1;
/// Largest blob the protocol carries.
pub const MAX_DATA: usize = 4 * 1024 * 1024;
/// Largest frame body: one blob plus room for the map, keys and a name. A length prefix above
/// this is refused before any allocation (memory exhaustion by a forged length).
pub const MAX_FRAME: usize = MAX_DATA + 64 * 1024;
/// Most names in one `list` reply.
pub const MAX_LIST: usize = 1000;
/// Longest name, prefix, error code or message accepted on the wire.
pub const MAX_TEXT: usize = 1024;
/// More map entries than any message has: a bound on the work a hostile map can cause.
const MAX_ENTRIES: u64 = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Put,
    Get,
    List,
    Delete,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Put => "put",
            Op::Get => "get",
            Op::List => "list",
            Op::Delete => "delete",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub op: Op,
    pub name: Option<String>,
    pub expected_version: Option<u64>,
    pub data: Option<Vec<u8>>,
    pub prefix: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WireError {
    pub code: String,
    pub message: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Response {
    pub ok: bool,
    pub version: Option<u64>,
    pub data: Option<Vec<u8>>,
    pub names: Option<Vec<String>>,
    /// Set on a `list` reply that stopped at [`MAX_LIST`] names.
    pub more: Option<bool>,
    pub error: Option<WireError>,
}

impl Response {
    pub fn err(code: &str, message: impl Into<String>) -> Response {
        Response {
            ok: false,
            error: Some(WireError {
                code: code.into(),
                message: message.into(),
            }),
            ..Response::default()
        }
    }
}

/// A frame or message that could not be decoded; becomes a `bad_request` error frame.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DecodeError(pub String);

fn de<E: std::fmt::Display>(what: &str) -> impl Fn(E) -> DecodeError + '_ {
    move |e| DecodeError(format!("{what}: {e}"))
}

type Enc = Encoder<Vec<u8>>;
type EncResult = Result<(), minicbor::encode::Error<std::convert::Infallible>>;

fn count<T>(o: &Option<T>) -> u64 {
    u64::from(o.is_some())
}

pub fn encode_request(r: &Request) -> Vec<u8> {
    let mut e = Encoder::new(Vec::new());
    // Writing to a Vec cannot fail; the Result only carries Infallible.
    let _ = (|e: &mut Enc| -> EncResult {
        let n = 2 + count(&r.name) + count(&r.expected_version) + count(&r.data) + count(&r.prefix);
        e.map(n)?
            .str("v")?
            .u8(VERSION)?
            .str("op")?
            .str(r.op.as_str())?;
        if let Some(x) = &r.name {
            e.str("name")?.str(x)?;
        }
        if let Some(x) = r.expected_version {
            e.str("expected_version")?.u64(x)?;
        }
        if let Some(x) = &r.data {
            e.str("data")?.bytes(x)?;
        }
        if let Some(x) = &r.prefix {
            e.str("prefix")?.str(x)?;
        }
        Ok(())
    })(&mut e);
    e.into_writer()
}

pub fn encode_response(r: &Response) -> Vec<u8> {
    let mut e = Encoder::new(Vec::new());
    let _ = (|e: &mut Enc| -> EncResult {
        let n = 2
            + count(&r.version)
            + count(&r.data)
            + count(&r.names)
            + count(&r.more)
            + count(&r.error);
        e.map(n)?.str("v")?.u8(VERSION)?.str("ok")?.bool(r.ok)?;
        if let Some(x) = r.version {
            e.str("version")?.u64(x)?;
        }
        if let Some(x) = &r.data {
            e.str("data")?.bytes(x)?;
        }
        if let Some(names) = &r.names {
            e.str("names")?.array(names.len() as u64)?;
            for n in names {
                e.str(n)?;
            }
        }
        if let Some(x) = r.more {
            e.str("more")?.bool(x)?;
        }
        if let Some(x) = &r.error {
            e.str("error")?.map(2)?;
            e.str("code")?
                .str(&x.code)?
                .str("message")?
                .str(&x.message)?;
        }
        Ok(())
    })(&mut e);
    e.into_writer()
}

fn map_len(d: &mut Decoder) -> Result<u64, DecodeError> {
    match d.map().map_err(de("map"))? {
        None => Err(DecodeError(
            "indefinite-length maps are not accepted".into(),
        )),
        Some(n) if n > MAX_ENTRIES => Err(DecodeError(format!(
            "map has {n} entries; at most {MAX_ENTRIES}"
        ))),
        Some(n) => Ok(n),
    }
}

fn text(d: &mut Decoder, key: &str) -> Result<String, DecodeError> {
    let s = d.str().map_err(de(key))?;
    if s.len() > MAX_TEXT {
        return Err(DecodeError(format!(
            "{key} is {} bytes; at most {MAX_TEXT}",
            s.len()
        )));
    }
    Ok(s.to_string())
}

fn set<T>(slot: &mut Option<T>, key: &str, v: T) -> Result<(), DecodeError> {
    if slot.is_some() {
        return Err(DecodeError(format!("key {key:?} appears twice")));
    }
    *slot = Some(v);
    Ok(())
}

fn data(d: &mut Decoder) -> Result<Vec<u8>, DecodeError> {
    let b = d.bytes().map_err(de("data"))?;
    if b.len() > MAX_DATA {
        return Err(DecodeError(format!(
            "data is {} bytes; at most {MAX_DATA}",
            b.len()
        )));
    }
    Ok(b.to_vec())
}

fn check_version(v: Option<u8>) -> Result<(), DecodeError> {
    match v {
        Some(VERSION) => Ok(()),
        Some(other) => Err(DecodeError(format!(
            "unsupported frame version {other}; this side speaks {VERSION}"
        ))),
        None => Err(DecodeError("missing key \"v\"".into())),
    }
}

fn finish(d: &Decoder, body: &[u8]) -> Result<(), DecodeError> {
    if d.position() != body.len() {
        return Err(DecodeError(format!(
            "{} trailing bytes after the map",
            body.len().saturating_sub(d.position())
        )));
    }
    Ok(())
}

pub fn decode_request(body: &[u8]) -> Result<Request, DecodeError> {
    let mut d = Decoder::new(body);
    let (mut v, mut op, mut name, mut ev, mut dat, mut prefix) =
        (None, None, None, None, None, None);
    for _ in 0..map_len(&mut d)? {
        let key = d.str().map_err(de("key"))?;
        match key {
            "v" => set(&mut v, key, d.u8().map_err(de(key))?)?,
            "op" => {
                let o = match d.str().map_err(de(key))? {
                    "put" => Op::Put,
                    "get" => Op::Get,
                    "list" => Op::List,
                    "delete" => Op::Delete,
                    other => return Err(DecodeError(format!("unknown op {:?}", truncate(other)))),
                };
                set(&mut op, key, o)?
            }
            "name" => set(&mut name, key, text(&mut d, key)?)?,
            "expected_version" => set(&mut ev, key, d.u64().map_err(de(key))?)?,
            "data" => set(&mut dat, key, data(&mut d)?)?,
            "prefix" => set(&mut prefix, key, text(&mut d, key)?)?,
            other => return Err(DecodeError(format!("unknown key {:?}", truncate(other)))),
        }
    }
    finish(&d, body)?;
    check_version(v)?;
    let op = op.ok_or_else(|| DecodeError("missing key \"op\"".into()))?;
    Ok(Request {
        op,
        name,
        expected_version: ev,
        data: dat,
        prefix,
    })
}

pub fn decode_response(body: &[u8]) -> Result<Response, DecodeError> {
    let mut d = Decoder::new(body);
    let mut v = None;
    let mut ok = None;
    let mut r = Response::default();
    for _ in 0..map_len(&mut d)? {
        let key = d.str().map_err(de("key"))?;
        match key {
            "v" => set(&mut v, key, d.u8().map_err(de(key))?)?,
            "ok" => set(&mut ok, key, d.bool().map_err(de(key))?)?,
            "version" => set(&mut r.version, key, d.u64().map_err(de(key))?)?,
            "data" => set(&mut r.data, key, data(&mut d)?)?,
            "more" => set(&mut r.more, key, d.bool().map_err(de(key))?)?,
            "names" => {
                let n = d.array().map_err(de(key))?.ok_or_else(|| {
                    DecodeError("indefinite-length arrays are not accepted".into())
                })?;
                if n > MAX_LIST as u64 {
                    return Err(DecodeError(format!(
                        "names has {n} entries; at most {MAX_LIST}"
                    )));
                }
                let names = (0..n)
                    .map(|_| text(&mut d, key))
                    .collect::<Result<Vec<_>, _>>()?;
                set(&mut r.names, key, names)?
            }
            "error" => {
                if map_len(&mut d)? != 2 {
                    return Err(DecodeError("error must be {code, message}".into()));
                }
                let (mut code, mut message) = (None, None);
                for _ in 0..2 {
                    match d.str().map_err(de("error key"))? {
                        "code" => set(&mut code, "code", text(&mut d, "code")?)?,
                        "message" => set(&mut message, "message", text(&mut d, "message")?)?,
                        other => {
                            return Err(DecodeError(format!(
                                "unknown error key {:?}",
                                truncate(other)
                            )));
                        }
                    }
                }
                let (Some(code), Some(message)) = (code, message) else {
                    return Err(DecodeError("error must be {code, message}".into()));
                };
                set(&mut r.error, key, WireError { code, message })?
            }
            other => return Err(DecodeError(format!("unknown key {:?}", truncate(other)))),
        }
    }
    finish(&d, body)?;
    check_version(v)?;
    r.ok = ok.ok_or_else(|| DecodeError("missing key \"ok\"".into()))?;
    Ok(r)
}

fn truncate(s: &str) -> &str {
    super::clip(s, 40)
}

/// Reads one frame body. The length is checked before the body is allocated.
pub fn read_frame(r: &mut impl Read) -> Result<Vec<u8>, FrameError> {
    let n = super::read_len(r, MAX_FRAME)?;
    let mut body = vec![0u8; n];
    r.read_exact(&mut body)?;
    Ok(body)
}

pub fn write_frame(w: &mut impl Write, body: &[u8]) -> io::Result<()> {
    super::write_frame_with(w, body, MAX_FRAME)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(op: Op) -> Request {
        Request {
            op,
            name: None,
            expected_version: None,
            data: None,
            prefix: None,
        }
    }

    #[test]
    fn requests_round_trip() {
        let all = Request {
            op: Op::Put,
            name: Some("seal/key-1".into()),
            expected_version: Some(0),
            data: Some(vec![1, 2, 3]),
            prefix: None,
        };
        for r in [
            all,
            req(Op::Get),
            Request {
                prefix: Some("a/".into()),
                ..req(Op::List)
            },
            req(Op::Delete),
        ] {
            assert_eq!(decode_request(&encode_request(&r)).unwrap(), r);
        }
    }

    #[test]
    fn responses_round_trip() {
        let rs = [
            Response {
                ok: true,
                version: Some(7),
                data: Some(vec![9; 10]),
                ..Default::default()
            },
            Response {
                ok: true,
                names: Some(vec!["a".into(), "b".into()]),
                more: Some(false),
                ..Default::default()
            },
            Response {
                version: Some(3),
                ..Response::err("version_conflict", "current is 3")
            },
        ];
        for r in rs {
            assert_eq!(decode_response(&encode_response(&r)).unwrap(), r);
        }
    }

    #[test]
    fn known_encoding() {
        // {"v": 1, "op": "get", "name": "a"} in canonical CBOR, pinned so that a change in the
        // encoding (which the enclave also implements) is noticed.
        let r = Request {
            name: Some("a".into()),
            ..req(Op::Get)
        };
        let want = [
            0xa3, 0x61, b'v', 0x01, 0x62, b'o', b'p', 0x63, b'g', b'e', b't', 0x64, b'n', b'a',
            b'm', b'e', 0x61, b'a',
        ];
        assert_eq!(encode_request(&r), want);
    }

    fn bad(body: &[u8], why: &str) {
        let e = decode_request(body).expect_err(why);
        assert!(e.0.contains(why), "{e} lacks {why}");
    }

    #[test]
    fn malformed_requests_are_errors_not_panics() {
        let good = encode_request(&Request {
            name: Some("a".into()),
            ..req(Op::Get)
        });
        bad(&[], "map");
        bad(&[0xbf, 0xff], "indefinite");
        bad(&[0xa9], "at most 8");
        bad(&[0xa1, 0x61, b'v', 0x02], "unsupported frame version 2");
        bad(
            &[0xa1, 0x62, b'o', b'p', 0x63, b'g', b'e', b't'],
            "missing key \"v\"",
        );
        bad(&[0xa1, 0x61, b'v', 0x01], "missing key \"op\"");
        bad(&[0xa2, 0x61, b'v', 0x01, 0x61, b'v', 0x01], "twice");
        bad(&[0xa1, 0x61, b'x', 0x01], "unknown key");
        bad(
            &[0xa1, 0x62, b'o', b'p', 0x63, b'c', b'a', b't'],
            "unknown op",
        );
        let mut trailing = good.clone();
        trailing.push(0);
        bad(&trailing, "trailing");
        // A byte string claiming 4 GiB in a tiny buffer.
        bad(
            &[
                0xa1, 0x64, b'd', b'a', b't', b'a', 0x5a, 0xff, 0xff, 0xff, 0xff,
            ],
            "data",
        );
        // Every truncation of a valid message is an error.
        for i in 0..good.len() {
            assert!(decode_request(&good[..i]).is_err());
        }
        // Arbitrary bytes: never a panic.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            let len = (x % 40) as usize;
            let mut buf = Vec::with_capacity(len);
            for _ in 0..len {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                buf.push(x as u8);
            }
            let _ = decode_request(&buf);
            let _ = decode_response(&buf);
        }
    }

    #[test]
    fn frame_limits() {
        let mut buf = Vec::new();
        write_frame(&mut buf, b"abc").unwrap();
        assert_eq!(buf, [0, 0, 0, 3, b'a', b'b', b'c']);
        assert_eq!(read_frame(&mut &buf[..]).unwrap(), b"abc");
        assert!(matches!(read_frame(&mut &[][..]), Err(FrameError::Eof)));
        assert!(matches!(
            read_frame(&mut &[0, 0][..]),
            Err(FrameError::Io(_))
        ));
        assert!(matches!(
            read_frame(&mut &[0, 0, 0, 5, 1][..]),
            Err(FrameError::Io(_))
        ));
        let huge = ((MAX_FRAME + 1) as u32).to_be_bytes();
        assert!(matches!(
            read_frame(&mut &huge[..]),
            Err(FrameError::TooLarge(_))
        ));
        assert!(write_frame(&mut Vec::new(), &vec![0; MAX_FRAME + 1]).is_err());
    }
}
