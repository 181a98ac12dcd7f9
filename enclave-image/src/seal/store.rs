//! A blocking client for the parent shim's blob store ([`BlobClient`], frames from
//! `sigil_protocol::parent::blobs`) and [`SealedStore`], which seals what it puts and opens what it
//! gets.
//!
//! The store is untrusted: every reply is bounded (frame size, names, data) and checked for
//! the fields its operation needs; a malformed reply or an I/O error poisons the connection
//! (the stream may be out of step), and the caller reconnects.

use std::collections::HashMap;
use std::fmt;
use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ring::aead::NONCE_LEN;
use sigil_protocol::parent::blobs::{self as wire, FrameError, Op, Request, Response};
use sigil_sys::{Addr, Stream};
use zeroize::Zeroizing;

use super::format::{self, DataKey, Kind, SealError, check_id};

/// Default bound on one read or write of a blob exchange.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on one whole call. Threat: the parent answers a byte at a time, each within the
/// socket timeout, and so holds the store (and everyone waiting on it) for as long as it
/// likes. A frame is at most a few MiB over a local socket; 30 s is ample.
pub const CALL_DEADLINE: Duration = Duration::from_secs(30);

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
    deadline: Duration,
}

/// The stream seen through one call's deadline: every read and write past it fails with
/// `TimedOut`. With the socket timeout on each operation, a call ends at most one timeout
/// after its deadline.
struct Deadlined<'a, S> {
    inner: &'a mut S,
    end: Instant,
    limit: Duration,
}

impl<S> Deadlined<'_, S> {
    fn check(&self) -> io::Result<()> {
        if Instant::now() >= self.end {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "the blob store did not complete the call within {} s",
                    self.limit.as_secs_f32()
                ),
            ));
        }
        Ok(())
    }
}

impl<S: Read> Read for Deadlined<'_, S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.check()?;
        self.inner.read(buf)
    }
}

impl<S: Write> Write for Deadlined<'_, S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.check()?;
        self.inner.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.check()?;
        self.inner.flush()
    }
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
            deadline: CALL_DEADLINE,
        }
    }

    /// Sets the bound on one whole call (default [`CALL_DEADLINE`]).
    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// Whether an earlier failure left the connection unusable (reconnect then).
    pub fn is_poisoned(&self) -> bool {
        self.poisoned
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
        let mut stream = Deadlined {
            inner: &mut self.stream,
            end: Instant::now() + self.deadline,
            limit: self.deadline,
        };
        wire::write_frame(&mut stream, &body).map_err(StoreError::Io)?;
        let reply = match wire::read_frame(&mut stream) {
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

/// Why a sealed put, get or delete failed.
#[derive(Debug)]
pub enum SealedStoreError {
    Store(StoreError),
    Seal(SealError),
    /// The store served a version lower than one this enclave already wrote or read for the
    /// same blob (or an old version of a blob it deleted): a rollback by the parent.
    Rollback {
        known: u64,
        served: u64,
    },
    /// The store served a blob at the version this enclave already wrote or read, but not the
    /// same blob (another nonce): the parent keeps two blobs sealed as one version.
    Equivocation {
        version: u64,
    },
}

impl SealedStoreError {
    pub fn code(&self) -> &str {
        match self {
            SealedStoreError::Store(e) => e.code(),
            SealedStoreError::Seal(e) => e.code(),
            SealedStoreError::Rollback { .. } => "rollback",
            SealedStoreError::Equivocation { .. } => "equivocation",
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
            SealedStoreError::Equivocation { version } => write!(
                f,
                "equivocation: the store served another blob as version {version} than the one \
                 this enclave has seen"
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

/// The nonce of a sealed blob: it identifies the blob among blobs sealed as the same version.
type BlobNonce = [u8; NONCE_LEN];

/// A write whose outcome is unknown (the request may or may not have been applied).
#[derive(Clone, Copy, Debug)]
enum Pending {
    Put { version: u64, nonce: BlobNonce },
    Delete,
}

/// What this boot knows of one blob name.
#[derive(Clone, Copy, Debug, Default)]
struct Track {
    /// The highest version written or read (0: none, or deleted by this enclave).
    version: u64,
    /// The nonce of the blob at `version` (`None` only while `version` is 0).
    nonce: Option<BlobNonce>,
    /// The highest version of an earlier incarnation this enclave deleted: versions in
    /// `(version, floor]` can only be old blobs of that incarnation.
    floor: u64,
    /// The last put or delete has an unknown outcome; the next read resolves it.
    pending: Option<Pending>,
}

impl Track {
    /// Whether a served `version` (not yet opened) can be accepted on its number alone.
    fn check_version(&self, served: u64) -> Result<(), SealedStoreError> {
        if served < self.version {
            return Err(SealedStoreError::Rollback {
                known: self.version,
                served,
            });
        }
        let ours = matches!(self.pending, Some(Pending::Put { version, .. }) if version == served);
        if served > self.version && served <= self.floor && !ours {
            return Err(SealedStoreError::Rollback {
                known: self.floor,
                served,
            });
        }
        Ok(())
    }

    /// Checks an opened blob (its authenticated version and nonce) and records it.
    fn accept(&mut self, served: u64, nonce: BlobNonce) -> Result<(), SealedStoreError> {
        self.check_version(served)?;
        if served == self.version && self.nonce.is_some_and(|n| n != nonce) {
            return Err(SealedStoreError::Equivocation { version: served });
        }
        if served > self.version
            && served <= self.floor
            && !matches!(self.pending, Some(Pending::Put { version, nonce: n })
                if version == served && n == nonce)
        {
            return Err(SealedStoreError::Rollback {
                known: self.floor,
                served,
            });
        }
        self.version = served;
        self.nonce = Some(nonce);
        self.pending = None;
        Ok(())
    }

    /// Records that the store no longer holds the blob, deleted by this enclave at `version`.
    fn deleted(&mut self) {
        self.floor = self.floor.max(self.version);
        self.version = 0;
        self.nonce = None;
        self.pending = None;
    }
}

/// The most names of one kind (keys, vault entries, aggregates, ...) this enclave keeps in the
/// parent's store, tombstones included (they occupy a blob each).
///
/// Threat: one owner, or many freshly made owner keys, filling the parent's store so that
/// nothing else can be written: a full vault cannot stop keys being made, nor the reverse,
/// and the nine kinds together (9,000 names) stay below the shim's default `max_blobs`
/// (10,000). It is the largest `list` reply, so the count taken by listing at the first
/// creation of a boot is exact.
pub const MAX_NAMES_PER_KIND: usize = wire::MAX_LIST;

/// Within-boot rollback tracking of sealed blobs: for each blob name, the highest version
/// (and which blob, by nonce) this enclave has written or read, the versions it deleted, and
/// writes whose outcome is unknown. Cloning shares it. Create one per boot and pass it to
/// every [`SealedStore`] (including the one built after a lost connection, or use
/// [`SealedStore::reconnect`]): the guarantee lasts for the boot only as long as the same
/// guard is used; a fresh guard knows nothing.
#[derive(Clone, Debug, Default)]
pub struct RollbackGuard {
    tracks: Arc<Mutex<HashMap<String, Track>>>,
    /// Names of each kind in the store (by `Kind as u8`), once counted this boot.
    names: Arc<Mutex<HashMap<u8, usize>>>,
}

impl RollbackGuard {
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, name: &str, f: impl FnOnce(&mut Track) -> T) -> T {
        // A panic while holding the lock leaves a consistent map: every update is a plain
        // assignment after its checks.
        let mut map = self.tracks.lock().unwrap_or_else(|e| e.into_inner());
        f(map.entry(name.to_string()).or_default())
    }

    fn get(&self, name: &str) -> Track {
        self.with(name, |t| *t)
    }

    /// For scripted stores: `n` names of `kind` are known to be there (no `list` needed).
    #[cfg(test)]
    fn assume_names(self, kind: Kind, n: usize) -> Self {
        self.names().insert(kind as u8, n);
        self
    }

    #[cfg(test)]
    fn name_count(&self, kind: Kind) -> Option<usize> {
        self.names().get(&(kind as u8)).copied()
    }

    fn names(&self) -> std::sync::MutexGuard<'_, HashMap<u8, usize>> {
        // Plain counters: a panic elsewhere leaves them consistent.
        self.names.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Whether a failed write may nevertheless have been applied by the store.
fn outcome_unknown(e: &StoreError) -> bool {
    matches!(
        e,
        StoreError::Io(_)
            | StoreError::Protocol(_)
            | StoreError::Storage(_)
            | StoreError::Other { .. }
    )
}

/// Sealed blobs in the shim's store, under one data key and key epoch.
///
/// With its [`RollbackGuard`] it remembers, for this boot, the highest version of each blob it
/// has written or read and which blob that was (its nonce), and refuses an older version
/// ([`SealedStoreError::Rollback`]) or another blob at the same version
/// ([`SealedStoreError::Equivocation`]). This holds for the boot as long as the same guard is
/// used: after a connection failure call [`SealedStore::reconnect`] (or build the new store
/// with a clone of the guard), never a fresh guard.
///
/// A put or delete whose outcome is unknown (an I/O or protocol error after sending) marks the
/// name unresolved; the next `get_sealed`, `put_sealed` or `delete_sealed` of it reads the blob
/// back and accepts whichever version at or above the known one it finds (a version of a
/// deleted incarnation only if it is the unresolved put's own blob), and records it.
///
/// After `delete_sealed`, the deleted version is kept as a floor: until this enclave writes
/// past it again, a served version at or below it that this enclave did not write since the
/// delete is an old blob and refused (a lower one as `Rollback`, the re-created blob's own
/// version with another nonce as `Equivocation`).
pub struct SealedStore<S> {
    client: BlobClient<S>,
    key: DataKey,
    epoch: u32,
    guard: RollbackGuard,
}

impl<S: Read + Write> SealedStore<S> {
    /// A store over `client`, tracking rollback in `guard` (share one guard for the boot).
    pub fn new(client: BlobClient<S>, key: DataKey, epoch: u32, guard: RollbackGuard) -> Self {
        SealedStore {
            client,
            key,
            epoch,
            guard,
        }
    }

    /// Replaces the connection (e.g. after an I/O error poisoned it), keeping the tracking.
    pub fn reconnect(&mut self, client: BlobClient<S>) {
        self.client = client;
    }

    /// The rollback tracking this store uses.
    pub fn guard(&self) -> &RollbackGuard {
        &self.guard
    }

    /// The underlying client (e.g. to list names). Writes through it bypass the tracking.
    pub fn client(&mut self) -> &mut BlobClient<S> {
        &mut self.client
    }

    /// Reads, opens, checks and records `name`. `NotFound` resolves an unknown-outcome delete
    /// (or a first put that did not happen) and is returned as the error.
    fn read(
        &mut self,
        kind: Kind,
        id: &str,
        name: &str,
    ) -> Result<(u64, Zeroizing<Vec<u8>>), SealedStoreError> {
        let (version, blob) = match self.client.get(name) {
            Ok(r) => r,
            Err(StoreError::NotFound) => {
                let deleted = self.guard.with(name, |t| match t.pending {
                    Some(Pending::Delete) => {
                        t.deleted();
                        true
                    }
                    Some(Pending::Put { .. }) if t.version == 0 => {
                        t.pending = None;
                        false
                    }
                    _ => false,
                });
                if deleted {
                    // The delete whose answer was lost did happen: its name is free.
                    self.counted(kind, |n| n.saturating_sub(1));
                }
                return Err(StoreError::NotFound.into());
            }
            Err(e) => return Err(e.into()),
        };
        let before = self.guard.get(name);
        before.check_version(version)?;
        let pt = format::open(&self.key, kind, id, Some(version), self.epoch, &blob)?;
        let nonce = format::parse_header(&blob)?.nonce;
        self.guard.with(name, |t| t.accept(version, nonce))?;
        if version == 1 && matches!(before.pending, Some(Pending::Put { version: 1, .. })) {
            // A creation (the put of version 1) whose answer was lost did happen: it took a
            // name.
            self.counted(kind, |n| n + 1);
        }
        Ok((version, pt))
    }

    /// Resolves an unknown-outcome write of `name` by reading it back.
    fn resolve(&mut self, kind: Kind, id: &str, name: &str) -> Result<(), SealedStoreError> {
        if self.guard.get(name).pending.is_none() {
            return Ok(());
        }
        match self.read(kind, id, name) {
            Ok(_) | Err(SealedStoreError::Store(StoreError::NotFound)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Refuses a new name of `kind` once [`MAX_NAMES_PER_KIND`] are in the store (counted by
    /// listing them at the first creation of the boot, then kept up to date here).
    fn room_for(&mut self, kind: Kind) -> Result<(), SealedStoreError> {
        let known = self.guard.names().get(&(kind as u8)).copied();
        let n = match known {
            Some(n) => n,
            None => {
                let (names, more) = self.client.list(&format!("seal/{}/", kind.as_str()))?;
                let n = if more {
                    MAX_NAMES_PER_KIND
                } else {
                    names.len()
                };
                self.guard.names().insert(kind as u8, n);
                n
            }
        };
        if n >= MAX_NAMES_PER_KIND {
            return Err(StoreError::Limit(format!(
                "the store holds {n} sealed {} records, the most this enclave keeps; delete some first",
                kind.as_str()
            ))
            .into());
        }
        Ok(())
    }

    /// Updates the count of `kind`'s names, if it has been taken this boot.
    fn counted(&self, kind: Kind, f: impl FnOnce(usize) -> usize) {
        if let Some(n) = self.guard.names().get_mut(&(kind as u8)) {
            *n = f(*n);
        }
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
        self.put_sealed_with(kind, id, plaintext, None)
    }

    /// As [`SealedStore::put_sealed`], but only over `expected` (the version the caller read,
    /// 0 = must not exist): a conflict is returned, not retried. For read-modify-write
    /// callers whose store other enclaves share (a cluster on one S3 bucket): a write based
    /// on a stale read fails instead of dropping the other enclave's write.
    pub fn put_sealed_at(
        &mut self,
        kind: Kind,
        id: &str,
        expected: u64,
        plaintext: &[u8],
    ) -> Result<u64, SealedStoreError> {
        self.put_sealed_with(kind, id, plaintext, Some(expected))
    }

    fn put_sealed_with(
        &mut self,
        kind: Kind,
        id: &str,
        plaintext: &[u8],
        expected: Option<u64>,
    ) -> Result<u64, SealedStoreError> {
        let name = blob_name(kind, id)?;
        self.resolve(kind, id, &name)?;
        let mut current = match expected {
            Some(v) => v,
            None => match self.client.get(&name) {
                Ok((v, _)) => v,
                Err(StoreError::NotFound) => 0,
                Err(e) => return Err(e.into()),
            },
        };
        if current == 0 {
            self.room_for(kind)?;
        }
        for attempt in 0..2 {
            self.guard.get(&name).check_version(current)?;
            let next = current
                .checked_add(1)
                .ok_or_else(|| StoreError::Limit("version counter exhausted".into()))?;
            let blob = format::seal(&self.key, kind, id, next, self.epoch, plaintext)?;
            let nonce = format::parse_header(&blob)?.nonce;
            match self.client.put(&name, current, &blob) {
                Ok(v) => {
                    self.guard.with(&name, |t| {
                        // Our own write: it supersedes whatever we knew below `v`.
                        if v < t.version {
                            return Err(SealedStoreError::Rollback {
                                known: t.version,
                                served: v,
                            });
                        }
                        t.version = v;
                        t.nonce = Some(nonce);
                        t.pending = None;
                        Ok(())
                    })?;
                    if current == 0 {
                        self.counted(kind, |n| n + 1);
                    }
                    return Ok(v);
                }
                Err(StoreError::VersionConflict { current: c })
                    if attempt == 0 && expected.is_none() =>
                {
                    if c == 0 {
                        // The name vanished between the read and the write: this is a
                        // creation after all.
                        self.room_for(kind)?;
                    }
                    current = c
                }
                Err(e) => {
                    if outcome_unknown(&e) {
                        self.guard.with(&name, |t| {
                            t.pending = Some(Pending::Put {
                                version: next,
                                nonce,
                            })
                        });
                    }
                    return Err(e.into());
                }
            }
        }
        unreachable!("the second attempt returns")
    }

    /// Reads and opens (kind, id): (version, plaintext). The blob must have been sealed as the
    /// version the store reports, that version must not be below one seen this boot, and at
    /// the version seen this boot it must be the same blob.
    pub fn get_sealed(
        &mut self,
        kind: Kind,
        id: &str,
    ) -> Result<(u64, Zeroizing<Vec<u8>>), SealedStoreError> {
        let name = blob_name(kind, id)?;
        self.read(kind, id, &name)
    }

    /// Deletes (kind, id) at the version known this boot (read and checked first if none is
    /// known, or the last write's outcome is unknown), and records the deletion: a later
    /// `put_sealed` re-creates it from version 1, while old blobs of the deleted incarnation
    /// stay refused (see [`SealedStore`]). An absent blob is `NotFound`.
    pub fn delete_sealed(&mut self, kind: Kind, id: &str) -> Result<(), SealedStoreError> {
        let name = blob_name(kind, id)?;
        self.resolve(kind, id, &name)?;
        let mut version = self.guard.get(&name).version;
        if version == 0 {
            version = self.read(kind, id, &name)?.0;
        }
        match self.client.delete(&name, version) {
            Ok(()) => {
                self.guard.with(&name, |t| {
                    if t.version == version {
                        t.deleted();
                    }
                });
                self.counted(kind, |n| n.saturating_sub(1));
                Ok(())
            }
            Err(e) => {
                if outcome_unknown(&e) {
                    self.guard
                        .with(&name, |t| t.pending = Some(Pending::Delete));
                }
                Err(e.into())
            }
        }
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

    /// Answers one byte per read, slowly: each read is within any socket timeout.
    struct Dribble(Fake);

    impl Read for Dribble {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            std::thread::sleep(Duration::from_millis(5));
            let n = buf.len().min(1);
            self.0.read(&mut buf[..n])
        }
    }
    impl Write for Dribble {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.write(buf)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_store_that_dribbles_its_answer_is_cut_off_at_the_deadline() {
        let reply = Response {
            ok: true,
            version: Some(1),
            data: Some(vec![7u8; 4096]),
            ..Default::default()
        };
        let mut c = BlobClient::new(Dribble(Fake::new(vec![reply.clone()])))
            .with_deadline(Duration::from_millis(100));
        let start = Instant::now();
        match c.get("a") {
            Err(StoreError::Io(e)) => {
                assert_eq!(e.kind(), io::ErrorKind::TimedOut);
                assert!(e.to_string().contains("within 0.1 s"), "{e}");
            }
            other => panic!("{other:?}"),
        }
        assert!(start.elapsed() < Duration::from_secs(2));
        assert!(c.is_poisoned());
        // The same answer at full speed is read whole.
        let mut c =
            BlobClient::new(Fake::new(vec![reply])).with_deadline(Duration::from_millis(100));
        assert_eq!(c.get("a").unwrap(), (1, vec![7u8; 4096]));
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
        let guard = RollbackGuard::new().assume_names(Kind::Key, 0);
        let mut st = SealedStore::new(BlobClient::new(s), key.clone(), 0, guard);
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
        let guard = RollbackGuard::new().assume_names(Kind::Key, 0);
        let mut st = SealedStore::new(BlobClient::new(s), key, 0, guard);
        assert!(matches!(
            st.put_sealed(Kind::Key, "k", b"v"),
            Err(SealedStoreError::Store(StoreError::VersionConflict {
                current: 5
            }))
        ));
    }

    fn get_reply(version: u64, data: Vec<u8>) -> Response {
        Response {
            ok: true,
            version: Some(version),
            data: Some(data),
            ..Default::default()
        }
    }

    fn sealed(key: &DataKey, version: u64, pt: &[u8]) -> Vec<u8> {
        format::seal(key, Kind::Key, "k", version, 0, pt).unwrap()
    }

    /// A creation or a deletion whose answer was lost is counted once a read settles it.
    #[test]
    fn writes_with_lost_answers_are_counted_when_settled() {
        let key = DataKey::from_bytes([6; 32]);
        let lost = || Response::err("storage", "the disk said something odd");
        let s = Fake::new(vec![
            Response::err("not_found", "x"),     // put_sealed reads: absent
            lost(),                              // the put: outcome unknown
            get_reply(1, sealed(&key, 1, b"v")), // the read settles it: it happened
            lost(),                              // the delete: outcome unknown
            Response::err("not_found", "x"),     // the read settles it: it happened
        ]);
        let guard = RollbackGuard::new().assume_names(Kind::Key, 5);
        let mut st = SealedStore::new(BlobClient::new(s), key, 0, guard.clone());
        assert!(st.put_sealed(Kind::Key, "k", b"v").is_err());
        assert_eq!(guard.name_count(Kind::Key), Some(5));
        assert_eq!(st.get_sealed(Kind::Key, "k").unwrap().0, 1);
        assert_eq!(guard.name_count(Kind::Key), Some(6));
        assert!(st.delete_sealed(Kind::Key, "k").is_err());
        assert_eq!(
            st.get_sealed(Kind::Key, "k").unwrap_err().code(),
            "not_found"
        );
        assert_eq!(guard.name_count(Kind::Key), Some(5));
    }

    /// The blob this store sent in its last request.
    fn last_put(st: &SealedStore<Fake>) -> Vec<u8> {
        let mut out = &st.client.stream.out[..];
        let mut last = None;
        while let Ok(f) = wire::read_frame(&mut out) {
            let r = wire::decode_request(&f).unwrap();
            if r.op == Op::Put {
                last = r.data;
            }
        }
        last.unwrap()
    }

    #[test]
    fn reconnect_keeps_rollback_protection() {
        let key = DataKey::from_bytes([2; 32]);
        let guard = RollbackGuard::new();
        let v2 = sealed(&key, 2, b"two");
        let v1 = sealed(&key, 1, b"one");
        // Read version 2, then the connection dies.
        let s = Fake::new(vec![get_reply(2, v2.clone())]);
        let mut st = SealedStore::new(BlobClient::new(s), key.clone(), 0, guard.clone());
        assert_eq!(st.get_sealed(Kind::Key, "k").unwrap().0, 2);
        assert_eq!(st.get_sealed(Kind::Key, "k").unwrap_err().code(), "io");
        // The new connection serves the old version: still refused.
        st.reconnect(BlobClient::new(Fake::new(vec![get_reply(1, v1.clone())])));
        assert!(matches!(
            st.get_sealed(Kind::Key, "k"),
            Err(SealedStoreError::Rollback {
                known: 2,
                served: 1
            })
        ));
        // So does a new store sharing the guard; only a fresh guard knows nothing.
        let s = Fake::new(vec![get_reply(1, v1.clone())]);
        let mut other = SealedStore::new(BlobClient::new(s), key.clone(), 0, guard);
        assert_eq!(
            other.get_sealed(Kind::Key, "k").unwrap_err().code(),
            "rollback"
        );
        let s = Fake::new(vec![get_reply(1, v1)]);
        let mut fresh = SealedStore::new(BlobClient::new(s), key, 0, RollbackGuard::new());
        assert_eq!(fresh.get_sealed(Kind::Key, "k").unwrap().0, 1);
    }

    #[test]
    fn equal_version_different_blob_is_refused() {
        let key = DataKey::from_bytes([3; 32]);
        let p1 = sealed(&key, 1, b"p1");
        let p2 = sealed(&key, 1, b"p2");
        let s = Fake::new(vec![
            get_reply(1, p1.clone()),
            get_reply(1, p1),
            get_reply(1, p2),
        ]);
        let mut st = SealedStore::new(BlobClient::new(s), key, 0, RollbackGuard::new());
        assert_eq!(&*st.get_sealed(Kind::Key, "k").unwrap().1, b"p1");
        assert_eq!(&*st.get_sealed(Kind::Key, "k").unwrap().1, b"p1");
        assert!(matches!(
            st.get_sealed(Kind::Key, "k"),
            Err(SealedStoreError::Equivocation { version: 1 })
        ));
    }

    #[test]
    fn unknown_outcome_put_is_resolved_by_reading_back() {
        let key = DataKey::from_bytes([4; 32]);
        let guard = RollbackGuard::new();
        let v1 = sealed(&key, 1, b"one");
        // Read version 1; the put of version 2 gets no reply (I/O error after sending).
        let s = Fake::new(vec![get_reply(1, v1.clone()), get_reply(1, v1.clone())]);
        let mut st = SealedStore::new(BlobClient::new(s), key.clone(), 0, guard.clone());
        assert_eq!(st.get_sealed(Kind::Key, "k").unwrap().0, 1);
        assert_eq!(
            st.put_sealed(Kind::Key, "k", b"p1").unwrap_err().code(),
            "io"
        );
        let p1 = last_put(&st);
        // The parent kept P1 at version 2: the read back accepts and records it...
        st.reconnect(BlobClient::new(Fake::new(vec![get_reply(2, p1.clone())])));
        let (v, pt) = st.get_sealed(Kind::Key, "k").unwrap();
        assert_eq!((v, &pt[..]), (2, &b"p1"[..]));
        // ...so another blob sealed as version 2 (P2) is refused afterwards, and so is 1.
        let p2 = sealed(&key, 2, b"p2");
        st.reconnect(BlobClient::new(Fake::new(vec![
            get_reply(2, p2),
            get_reply(1, v1.clone()),
        ])));
        assert_eq!(
            st.get_sealed(Kind::Key, "k").unwrap_err().code(),
            "equivocation"
        );
        assert_eq!(
            st.get_sealed(Kind::Key, "k").unwrap_err().code(),
            "rollback"
        );

        // The other outcome: the put did not happen; a put_sealed first reads back version 1
        // (the same blob), then writes version 2 and records it.
        let guard = RollbackGuard::new();
        let s = Fake::new(vec![get_reply(1, v1.clone()), get_reply(1, v1.clone())]);
        let mut st = SealedStore::new(BlobClient::new(s), key.clone(), 0, guard);
        st.get_sealed(Kind::Key, "k").unwrap();
        assert_eq!(
            st.put_sealed(Kind::Key, "k", b"lost").unwrap_err().code(),
            "io"
        );
        st.reconnect(BlobClient::new(Fake::new(vec![
            get_reply(1, v1.clone()), // resolve: not applied
            get_reply(1, v1.clone()), // current version
            ok(Some(2)),
        ])));
        assert_eq!(st.put_sealed(Kind::Key, "k", b"p2").unwrap(), 2);
        let p2 = last_put(&st);
        let stale = sealed(&key, 2, b"lost");
        st.reconnect(BlobClient::new(Fake::new(vec![
            get_reply(2, stale),
            get_reply(2, p2),
        ])));
        assert_eq!(
            st.get_sealed(Kind::Key, "k").unwrap_err().code(),
            "equivocation"
        );
        assert_eq!(&*st.get_sealed(Kind::Key, "k").unwrap().1, b"p2");
    }

    #[test]
    fn delete_then_put_works_and_old_blobs_stay_refused() {
        let key = DataKey::from_bytes([5; 32]);
        let v1 = sealed(&key, 1, b"one");
        let v3 = sealed(&key, 3, b"three");
        let s = Fake::new(vec![
            get_reply(3, v3.clone()),
            ok(None), // delete at version 3
            Response::err("not_found", "x"),
            ok(Some(1)),
        ]);
        let guard = RollbackGuard::new().assume_names(Kind::Key, 1);
        let mut st = SealedStore::new(BlobClient::new(s), key.clone(), 0, guard);
        assert_eq!(st.get_sealed(Kind::Key, "k").unwrap().0, 3);
        st.delete_sealed(Kind::Key, "k").unwrap();
        assert_eq!(st.put_sealed(Kind::Key, "k", b"new").unwrap(), 1);
        let new = last_put(&st);
        {
            let mut out = &st.client.stream.out[..];
            let _get = wire::read_frame(&mut out).unwrap();
            let del = wire::decode_request(&wire::read_frame(&mut out).unwrap()).unwrap();
            assert_eq!((del.op, del.expected_version), (Op::Delete, Some(3)));
        }
        // The re-created blob reads; the deleted incarnation's blobs do not.
        st.reconnect(BlobClient::new(Fake::new(vec![
            get_reply(1, new),
            get_reply(3, v3),
            get_reply(1, v1),
        ])));
        assert_eq!(&*st.get_sealed(Kind::Key, "k").unwrap().1, b"new");
        assert!(matches!(
            st.get_sealed(Kind::Key, "k"),
            Err(SealedStoreError::Rollback {
                known: 3,
                served: 3
            })
        ));
        assert_eq!(
            st.get_sealed(Kind::Key, "k").unwrap_err().code(),
            "equivocation"
        );
    }

    #[test]
    fn blob_names() {
        assert_eq!(blob_name(Kind::Key, "a/b").unwrap(), "seal/key/a/b");
        assert!(blob_name(Kind::Key, &"x".repeat(120)).is_err());
        assert!(blob_name(Kind::Key, "../x").is_err());
    }
}
