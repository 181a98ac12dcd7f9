//! A blocking client for the parent shim's blob store ([`BlobClient`], frames from
//! `sigil_protocol::blob_wire`) and [`SealedStore`], which seals what it puts and opens what it
//! gets.
//!
//! The store is untrusted: every reply is bounded (frame size, names, data) and checked for
//! the fields its operation needs; a malformed reply or an I/O error poisons the connection
//! (the stream may be out of step), and the caller reconnects.

use std::collections::HashMap;
use std::fmt;
use std::io::{self, Read, Write};
use std::time::Duration;

use sigil_protocol::blob_wire::{self as wire, FrameError, Op, Request, Response};
use zeroize::Zeroizing;

use super::format::{self, DataKey, Kind, SealError, check_id};
use crate::transport::{Addr, Stream};

/// Default bound on one read or write of a blob exchange.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// A blob-store operation that failed.
#[derive(Debug)]
pub enum StoreError {
    /// `put`/`delete` with a stale `expected_version`; `current` is the store's (0 = absent).
    VersionConflict {
        current: u64,
    },
    NotFound,
    /// The blob is larger than the store (or the frame) accepts.
    TooLarge(String),
    /// The store is full or a version counter is exhausted.
    Limit(String),
    /// The store refused the request as malformed (a bug on our side, or an incompatible shim).
    BadRequest(String),
    /// The store could not read or write its disk.
    Storage(String),
    /// An error code this client does not know.
    Other {
        code: String,
        message: String,
    },
    /// The reply broke the protocol (bad frame, missing fields, out-of-bounds content).
    Protocol(String),
    /// The connection failed or timed out; it is not used again.
    Io(io::Error),
}

impl StoreError {
    pub fn code(&self) -> &str {
        match self {
            StoreError::VersionConflict { .. } => "version_conflict",
            StoreError::NotFound => "not_found",
            StoreError::TooLarge(_) => "too_large",
            StoreError::Limit(_) => "limit",
            StoreError::BadRequest(_) => "bad_request",
            StoreError::Storage(_) => "storage",
            StoreError::Other { code, .. } => code,
            StoreError::Protocol(_) => "protocol",
            StoreError::Io(_) => "io",
        }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::VersionConflict { current } => {
                write!(f, "version_conflict: the current version is {current}")
            }
            StoreError::NotFound => f.write_str("not_found: no such blob"),
            StoreError::TooLarge(m)
            | StoreError::Limit(m)
            | StoreError::BadRequest(m)
            | StoreError::Storage(m)
            | StoreError::Protocol(m) => write!(f, "{}: {m}", self.code()),
            StoreError::Other { code, message } => write!(f, "{code}: {message}"),
            StoreError::Io(e) => write!(f, "io: {e}"),
        }
    }
}

impl std::error::Error for StoreError {}

/// One connection to the blob store. Requests are strictly one at a time.
pub struct BlobClient<S> {
    stream: S,
    poisoned: bool,
}

impl BlobClient<Stream> {
    /// Connects to the shim's blob service and bounds every read and write by `timeout`.
    pub fn connect(addr: &Addr, timeout: Duration) -> Result<Self, StoreError> {
        let s = Stream::connect(addr).map_err(StoreError::Io)?;
        s.set_timeouts(Some(timeout)).map_err(StoreError::Io)?;
        Ok(BlobClient::new(s))
    }
}

fn proto(m: impl Into<String>) -> StoreError {
    StoreError::Protocol(m.into())
}

impl<S: Read + Write> BlobClient<S> {
    /// Wraps a connected stream. Set its timeouts first: the client blocks on it.
    pub fn new(stream: S) -> Self {
        BlobClient {
            stream,
            poisoned: false,
        }
    }

    fn call(&mut self, req: &Request) -> Result<Response, StoreError> {
        if self.poisoned {
            return Err(proto("the connection failed earlier; reconnect"));
        }
        let body = wire::encode_request(req);
        if body.len() > wire::MAX_FRAME {
            return Err(StoreError::TooLarge(format!(
                "request frame of {} bytes; the limit is {}",
                body.len(),
                wire::MAX_FRAME
            )));
        }
        // Poisoned until a whole well-formed reply is read.
        self.poisoned = true;
        wire::write_frame(&mut self.stream, &body).map_err(StoreError::Io)?;
        let reply = match wire::read_frame(&mut self.stream) {
            Ok(b) => b,
            Err(FrameError::Eof) => {
                return Err(StoreError::Io(io::ErrorKind::UnexpectedEof.into()));
            }
            Err(FrameError::TooLarge(n)) => return Err(proto(format!("reply frame of {n} bytes"))),
            Err(FrameError::Io(e)) => return Err(StoreError::Io(e)),
        };
        let resp = wire::decode_response(&reply).map_err(|e| proto(e.0))?;
        self.poisoned = false;
        if resp.ok {
            return Ok(resp);
        }
        let Some(e) = resp.error else {
            return Err(proto("an error reply without an error"));
        };
        Err(match e.code.as_str() {
            "version_conflict" => StoreError::VersionConflict {
                current: resp
                    .version
                    .ok_or_else(|| proto("version_conflict without the current version"))?,
            },
            "not_found" => StoreError::NotFound,
            "too_large" => StoreError::TooLarge(e.message),
            "limit" => StoreError::Limit(e.message),
            "bad_request" => StoreError::BadRequest(e.message),
            "storage" => StoreError::Storage(e.message),
            _ => StoreError::Other {
                code: e.code,
                message: e.message,
            },
        })
    }

    fn request(op: Op, name: Option<&str>) -> Request {
        Request {
            op,
            name: name.map(str::to_string),
            expected_version: None,
            data: None,
            prefix: None,
        }
    }

    /// Writes `data` as `name` if the store's version is `expected_version` (0 = must not
    /// exist); returns the new version.
    pub fn put(
        &mut self,
        name: &str,
        expected_version: u64,
        data: &[u8],
    ) -> Result<u64, StoreError> {
        if data.len() > wire::MAX_DATA {
            return Err(StoreError::TooLarge(format!(
                "blob is {} bytes; the limit is {}",
                data.len(),
                wire::MAX_DATA
            )));
        }
        let r = self.call(&Request {
            expected_version: Some(expected_version),
            data: Some(data.to_vec()),
            ..Self::request(Op::Put, Some(name))
        })?;
        let v = r
            .version
            .ok_or_else(|| proto("put reply without a version"))?;
        if Some(v) != expected_version.checked_add(1) {
            return Err(proto(format!(
                "put of version {expected_version} answered with version {v}"
            )));
        }
        Ok(v)
    }

    /// Reads `name`: (version, data).
    pub fn get(&mut self, name: &str) -> Result<(u64, Vec<u8>), StoreError> {
        let r = self.call(&Self::request(Op::Get, Some(name)))?;
        match (r.version, r.data) {
            (Some(v), Some(d)) if v > 0 => Ok((v, d)),
            _ => Err(proto("get reply without a version or data")),
        }
    }

    /// Names starting with `prefix` (at most `wire::MAX_LIST`), and whether there are more.
    pub fn list(&mut self, prefix: &str) -> Result<(Vec<String>, bool), StoreError> {
        let r = self.call(&Request {
            prefix: Some(prefix.to_string()),
            ..Self::request(Op::List, None)
        })?;
        let names = r.names.ok_or_else(|| proto("list reply without names"))?;
        if let Some(n) = names.iter().find(|n| !n.starts_with(prefix)) {
            return Err(proto(format!("list returned {n:?} outside the prefix")));
        }
        Ok((names, r.more.unwrap_or(false)))
    }

    /// Deletes `name` if its version is `expected_version`.
    pub fn delete(&mut self, name: &str, expected_version: u64) -> Result<(), StoreError> {
        self.call(&Request {
            expected_version: Some(expected_version),
            ..Self::request(Op::Delete, Some(name))
        })?;
        Ok(())
    }
}

/// Why a sealed put or get failed.
#[derive(Debug)]
pub enum SealedStoreError {
    Store(StoreError),
    Seal(SealError),
    /// The store served a version lower than one this enclave already wrote or read for the
    /// same blob: a rollback by the parent.
    Rollback {
        known: u64,
        served: u64,
    },
}

impl SealedStoreError {
    pub fn code(&self) -> &str {
        match self {
            SealedStoreError::Store(e) => e.code(),
            SealedStoreError::Seal(e) => e.code(),
            SealedStoreError::Rollback { .. } => "rollback",
        }
    }
}

impl fmt::Display for SealedStoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SealedStoreError::Store(e) => write!(f, "blob store: {e}"),
            SealedStoreError::Seal(e) => write!(f, "sealed blob: {e}"),
            SealedStoreError::Rollback { known, served } => write!(
                f,
                "rollback: the store served version {served}, this enclave has seen {known}"
            ),
        }
    }
}

impl std::error::Error for SealedStoreError {}

impl From<StoreError> for SealedStoreError {
    fn from(e: StoreError) -> Self {
        SealedStoreError::Store(e)
    }
}
impl From<SealError> for SealedStoreError {
    fn from(e: SealError) -> Self {
        SealedStoreError::Seal(e)
    }
}

/// The blob-store name of a sealed blob: `seal/<kind>/<id>`.
pub fn blob_name(kind: Kind, id: &str) -> Result<String, SealError> {
    check_id(id)?;
    let name = format!("seal/{}/{id}", kind.as_str());
    if name.len() > format::MAX_ID {
        return Err(SealError::BadId(format!(
            "blob name {name:?} is {} bytes; at most {}",
            name.len(),
            format::MAX_ID
        )));
    }
    Ok(name)
}

/// Sealed blobs in the shim's store, under one data key and key epoch. Remembers, for this
/// boot, the highest version it has written or read of each blob and refuses to go back.
pub struct SealedStore<S> {
    client: BlobClient<S>,
    key: DataKey,
    epoch: u32,
    known: HashMap<String, u64>,
}

impl<S: Read + Write> SealedStore<S> {
    pub fn new(client: BlobClient<S>, key: DataKey, epoch: u32) -> Self {
        SealedStore {
            client,
            key,
            epoch,
            known: HashMap::new(),
        }
    }

    /// The underlying client (e.g. to list names).
    pub fn client(&mut self) -> &mut BlobClient<S> {
        &mut self.client
    }

    fn note(&mut self, name: &str, served: u64) -> Result<(), SealedStoreError> {
        let known = self.known.entry(name.to_string()).or_insert(0);
        if served < *known {
            return Err(SealedStoreError::Rollback {
                known: *known,
                served,
            });
        }
        *known = served;
        Ok(())
    }

    /// Seals `plaintext` as (kind, id) at the next version and writes it with compare-and-swap;
    /// on a conflict (another writer, or a stale read) it retries once at the store's current
    /// version. Returns the new version.
    pub fn put_sealed(
        &mut self,
        kind: Kind,
        id: &str,
        plaintext: &[u8],
    ) -> Result<u64, SealedStoreError> {
        let name = blob_name(kind, id)?;
        let mut current = match self.client.get(&name) {
            Ok((v, _)) => v,
            Err(StoreError::NotFound) => 0,
            Err(e) => return Err(e.into()),
        };
        for attempt in 0..2 {
            self.note(&name, current)?;
            let next = current
                .checked_add(1)
                .ok_or_else(|| StoreError::Limit("version counter exhausted".into()))?;
            let blob = format::seal(&self.key, kind, id, next, self.epoch, plaintext)?;
            match self.client.put(&name, current, &blob) {
                Ok(v) => {
                    self.note(&name, v)?;
                    return Ok(v);
                }
                Err(StoreError::VersionConflict { current: c }) if attempt == 0 => current = c,
                Err(e) => return Err(e.into()),
            }
        }
        unreachable!("the second attempt returns")
    }

    /// Reads and opens (kind, id): (version, plaintext). The blob must have been sealed as the
    /// version the store reports, and that version must not be below one seen this boot.
    pub fn get_sealed(
        &mut self,
        kind: Kind,
        id: &str,
    ) -> Result<(u64, Zeroizing<Vec<u8>>), SealedStoreError> {
        let name = blob_name(kind, id)?;
        let (version, blob) = self.client.get(&name)?;
        if let Some(&known) = self.known.get(&name)
            && version < known
        {
            return Err(SealedStoreError::Rollback {
                known,
                served: version,
            });
        }
        let pt = format::open(&self.key, kind, id, Some(version), self.epoch, &blob)?;
        self.note(&name, version)?;
        Ok((version, pt))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    /// A scripted store: records request frames, answers with queued reply frames.
    struct Fake {
        replies: VecDeque<Vec<u8>>,
        out: Vec<u8>,
        reading: Vec<u8>,
    }

    impl Fake {
        fn new(replies: Vec<Response>) -> Self {
            let replies = replies
                .iter()
                .map(|r| {
                    let mut f = Vec::new();
                    wire::write_frame(&mut f, &wire::encode_response(r)).unwrap();
                    f
                })
                .collect();
            Fake {
                replies,
                out: Vec::new(),
                reading: Vec::new(),
            }
        }
        fn raw(bytes: Vec<u8>) -> Self {
            Fake {
                replies: VecDeque::from([bytes]),
                out: Vec::new(),
                reading: Vec::new(),
            }
        }
    }

    impl Read for Fake {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.reading.is_empty() {
                match self.replies.pop_front() {
                    Some(r) => self.reading = r,
                    None => return Ok(0),
                }
            }
            let n = buf.len().min(self.reading.len());
            buf[..n].copy_from_slice(&self.reading[..n]);
            self.reading.drain(..n);
            Ok(n)
        }
    }
    impl Write for Fake {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.out.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn ok(version: Option<u64>) -> Response {
        Response {
            ok: true,
            version,
            ..Default::default()
        }
    }

    #[test]
    fn error_frames_map_to_typed_errors() {
        let mut c = BlobClient::new(Fake::new(vec![
            Response {
                version: Some(4),
                ..Response::err("version_conflict", "x")
            },
            Response::err("not_found", "x"),
            Response::err("limit", "full"),
            Response::err("weird", "y"),
            ok(Some(1)),
        ]));
        assert!(matches!(
            c.put("a", 1, b"x"),
            Err(StoreError::VersionConflict { current: 4 })
        ));
        assert!(matches!(c.get("a"), Err(StoreError::NotFound)));
        assert!(matches!(c.put("a", 0, b"x"), Err(StoreError::Limit(m)) if m == "full"));
        assert_eq!(c.delete("a", 1).unwrap_err().code(), "weird");
        assert_eq!(c.put("a", 0, b"x").unwrap(), 1);
        // The requests were well-formed frames.
        let mut out = &c.stream.out[..];
        let first = wire::decode_request(&wire::read_frame(&mut out).unwrap()).unwrap();
        assert_eq!(first.op, Op::Put);
        assert_eq!(first.expected_version, Some(1));
    }

    #[test]
    fn malformed_replies_poison_the_connection() {
        // Missing fields.
        let mut c = BlobClient::new(Fake::new(vec![ok(None)]));
        assert_eq!(c.get("a").unwrap_err().code(), "protocol");
        // A put answered with a version that is not expected + 1.
        let mut c = BlobClient::new(Fake::new(vec![ok(Some(9))]));
        assert_eq!(c.put("a", 1, b"x").unwrap_err().code(), "protocol");
        // A list that strays outside the prefix.
        let mut c = BlobClient::new(Fake::new(vec![Response {
            ok: true,
            names: Some(vec!["b/1".into()]),
            ..Default::default()
        }]));
        assert_eq!(c.list("a/").unwrap_err().code(), "protocol");
        // A forged length prefix: refused before allocation, and the stream is not reused.
        let huge = ((wire::MAX_FRAME + 1) as u32).to_be_bytes().to_vec();
        let mut c = BlobClient::new(Fake::raw(huge));
        assert_eq!(c.get("a").unwrap_err().code(), "protocol");
        assert_eq!(c.get("a").unwrap_err().code(), "protocol");
        // Garbage body; then EOF.
        let mut c = BlobClient::new(Fake::raw(vec![0, 0, 0, 2, 0xff, 0xff]));
        assert_eq!(c.get("a").unwrap_err().code(), "protocol");
        let mut c = BlobClient::new(Fake::new(vec![]));
        assert_eq!(c.get("a").unwrap_err().code(), "io");
        // Too large to send.
        let mut c = BlobClient::new(Fake::new(vec![]));
        assert_eq!(
            c.put("a", 0, &vec![0; wire::MAX_DATA + 1])
                .unwrap_err()
                .code(),
            "too_large"
        );
    }

    #[test]
    fn put_sealed_retries_once_on_conflict() {
        let key = DataKey::from_bytes([1; 32]);
        let conflict = |c| Response {
            version: Some(c),
            ..Response::err("version_conflict", "x")
        };
        let s = Fake::new(vec![
            Response::err("not_found", "x"),
            conflict(3),
            ok(Some(4)),
        ]);
        let mut st = SealedStore::new(BlobClient::new(s), key.clone(), 0);
        assert_eq!(st.put_sealed(Kind::Key, "k", b"v").unwrap(), 4);
        // The retry was sealed as version 4 and sent with expected_version 3.
        let mut out = &st.client.stream.out[..];
        let _get = wire::read_frame(&mut out).unwrap();
        let _first = wire::read_frame(&mut out).unwrap();
        let retry = wire::decode_request(&wire::read_frame(&mut out).unwrap()).unwrap();
        assert_eq!(retry.expected_version, Some(3));
        let pt = format::open(&key, Kind::Key, "k", Some(4), 0, &retry.data.unwrap()).unwrap();
        assert_eq!(&*pt, b"v");
        // Two conflicts in a row: the second is returned.
        let s = Fake::new(vec![
            Response::err("not_found", "x"),
            conflict(3),
            conflict(5),
        ]);
        let mut st = SealedStore::new(BlobClient::new(s), key, 0);
        assert!(matches!(
            st.put_sealed(Kind::Key, "k", b"v"),
            Err(SealedStoreError::Store(StoreError::VersionConflict {
                current: 5
            }))
        ));
    }

    #[test]
    fn blob_names() {
        assert_eq!(blob_name(Kind::Key, "a/b").unwrap(), "seal/key/a/b");
        assert!(blob_name(Kind::Key, &"x".repeat(120)).is_err());
        assert!(blob_name(Kind::Key, "../x").is_err());
    }
}
