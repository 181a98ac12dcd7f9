//! The blob store: opaque sealed blobs, one file each, with compare-and-swap versions.
//!
//! Why files and not SQLite: no C dependency on the parent; `rename(2)` over the old file is an
//! atomic replace, so a crash or a torn write at any point leaves either the old blob or the new
//! one, never a mix (the temp file is fsynced before the rename, the directory after it). The
//! blobs are sealed by the enclave, so the store needs no query language, only get/put/list.
//!
//! File `b_<name with '/' as '~'>`: magic (8) | version u64 BE | length u64 BE | data.
//! Temp files `t_*` are leftovers of interrupted writes and are deleted at start.
//!
//! The same store can live in S3 instead ([`crate::s3::S3Store`]): both implement [`Backend`]
//! and check requests with the one [`check_request`], so names, codes and limits agree.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::wire::{MAX_LIST, Op, Request, Response};

const MAGIC: &[u8; 8] = b"SGLBLOB1";
const HEADER: usize = 24;
pub const MAX_NAME: usize = 128;

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_blob_bytes: usize,
    pub max_blobs: usize,
}

pub struct Store {
    dir: PathBuf,
    limits: Limits,
    /// name -> version, the authority for CAS. One lock serialises all writes, so a check and
    /// the write it guards cannot interleave with another client's (lost updates).
    index: Mutex<BTreeMap<String, u64>>,
    tmp_seq: AtomicU64,
}

/// A blob store: the file [`Store`] or the S3 store ([`crate::s3::S3Store`]). Both answer
/// every request alike: the same checks ([`check_request`]), the same versions (a new blob
/// is version 1, each put adds one, `expected_version` 0 means "must not exist"), the same
/// error codes (`bad_request`, `not_found`, `version_conflict` with the current version,
/// `too_large`, `limit`, `storage`).
pub trait Backend: Send + Sync {
    fn handle(&self, r: Request) -> Response;
}

impl Backend for Store {
    fn handle(&self, r: Request) -> Response {
        Store::handle(self, r)
    }
}

impl<T: Backend + ?Sized> Backend for Arc<T> {
    fn handle(&self, r: Request) -> Response {
        (**self).handle(r)
    }
}

impl<T: Backend + ?Sized> Backend for Box<T> {
    fn handle(&self, r: Request) -> Response {
        (**self).handle(r)
    }
}

impl<T: Backend + ?Sized> Backend for &T {
    fn handle(&self, r: Request) -> Response {
        (**self).handle(r)
    }
}

/// A request that passed [`check_request`]: what each backend then carries out.
#[derive(Debug)]
pub enum Call {
    Put {
        name: String,
        expected: u64,
        data: Vec<u8>,
    },
    Get {
        name: String,
    },
    List {
        prefix: String,
    },
    Delete {
        name: String,
        expected: u64,
    },
}

/// The checks every backend makes before it touches storage: a name where one is needed
/// ([`check_name`], not empty), `expected_version` and data for a put, `expected_version` for
/// a delete, a valid list prefix, data within `max_blob_bytes`.
pub fn check_request(r: Request, limits: &Limits) -> Result<Call, Response> {
    let bad = |m: String| Response::err("bad_request", m);
    let op = r.op;
    let need_name = |name: Option<String>| -> Result<String, Response> {
        let n = name.ok_or_else(|| bad(format!("{} needs a name", op.as_str())))?;
        check_name(&n, "name").map_err(|e| bad(e.to_string()))?;
        if n.is_empty() {
            return Err(bad("name is empty".into()));
        }
        Ok(n)
    };
    match op {
        Op::Put => {
            let name = need_name(r.name)?;
            let expected = r
                .expected_version
                .ok_or_else(|| bad("put needs expected_version (0 = must not exist)".into()))?;
            let data = r.data.ok_or_else(|| bad("put needs data".into()))?;
            if data.len() > limits.max_blob_bytes {
                return Err(Response::err(
                    "too_large",
                    format!(
                        "blob is {} bytes; the limit is {}",
                        data.len(),
                        limits.max_blob_bytes
                    ),
                ));
            }
            Ok(Call::Put {
                name,
                expected,
                data,
            })
        }
        Op::Get => Ok(Call::Get {
            name: need_name(r.name)?,
        }),
        Op::List => {
            let prefix = r.prefix.unwrap_or_default();
            check_name(&prefix, "prefix").map_err(|e| bad(e.to_string()))?;
            Ok(Call::List { prefix })
        }
        Op::Delete => {
            let name = need_name(r.name)?;
            let expected = r
                .expected_version
                .ok_or_else(|| bad("delete needs expected_version".into()))?;
            Ok(Call::Delete { name, expected })
        }
    }
}

/// The refusal of a put or delete whose `expected` is not the `current` version.
pub fn conflict(current: u64, expected: u64) -> Response {
    Response {
        version: Some(current),
        ..Response::err(
            "version_conflict",
            format!("expected version {expected}, current is {current}"),
        )
    }
}

/// A blob name (or prefix) that [`check_name`] refuses; `what` says which.
#[derive(Debug, thiserror::Error)]
pub enum NameError {
    #[error("{what} is {len} bytes; at most {MAX_NAME}")]
    TooLong { what: &'static str, len: usize },
    #[error("{what} contains {c:?}; allowed are A-Z a-z 0-9 . _ - /")]
    Character { what: &'static str, c: char },
    #[error("{what} contains \"..\"")]
    DotDot { what: &'static str },
    #[error("{what} starts with '/'")]
    LeadingSlash { what: &'static str },
}

/// Names reach the filesystem, so they are restricted (path traversal: no `..`, no leading
/// `/`, a small character set) before they are used.
pub fn check_name(name: &str, what: &'static str) -> Result<(), NameError> {
    if name.len() > MAX_NAME {
        return Err(NameError::TooLong {
            what,
            len: name.len(),
        });
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/')))
    {
        return Err(NameError::Character { what, c });
    }
    if name.contains("..") {
        return Err(NameError::DotDot { what });
    }
    if name.starts_with('/') {
        return Err(NameError::LeadingSlash { what });
    }
    Ok(())
}

fn file_name(name: &str) -> String {
    // '~' is not allowed in names, so the mapping is one-to-one; the flat layout avoids
    // directories ("a" and "a/b" may both exist) and the prefix keeps "." from being a name.
    format!("b_{}", name.replace('/', "~"))
}

fn name_of(file: &str) -> Option<String> {
    let n = file.strip_prefix("b_")?.replace('~', "/");
    check_name(&n, "name").ok().map(|_| n)
}

/// Reads and checks one blob file: (version, data). Public so tests can audit the directory.
pub fn read_blob_file(path: &Path, max: usize) -> io::Result<(u64, Vec<u8>)> {
    let bad = |m: &str| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {m}", path.display()),
        )
    };
    let mut f = File::open(path)?;
    let mut h = [0u8; HEADER];
    f.read_exact(&mut h).map_err(|_| bad("short header"))?;
    if &h[..8] != MAGIC {
        return Err(bad("bad magic"));
    }
    let version = u64::from_be_bytes(h[8..16].try_into().unwrap_or_default());
    let len = u64::from_be_bytes(h[16..24].try_into().unwrap_or_default());
    if len > max as u64 {
        return Err(bad("length above the blob limit"));
    }
    let mut data = Vec::with_capacity(len as usize);
    f.take(len + 1).read_to_end(&mut data)?;
    if data.len() as u64 != len {
        return Err(bad("length does not match the header"));
    }
    Ok((version, data))
}

/// One blob in the store's format: magic | version | length | data (a file here, an object's
/// body in S3).
pub fn encode_blob(version: u64, data: &[u8]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(HEADER + data.len());
    buf.extend_from_slice(MAGIC);
    buf.extend_from_slice(&version.to_be_bytes());
    buf.extend_from_slice(&(data.len() as u64).to_be_bytes());
    buf.extend_from_slice(data);
    buf
}

/// The inverse of [`encode_blob`]: (version, data), the data at most `max` bytes. The
/// header is removed in place (no second copy of the data).
pub fn decode_blob(mut bytes: Vec<u8>, max: usize) -> Result<(u64, Vec<u8>), &'static str> {
    if bytes.len() < HEADER {
        return Err("short header");
    }
    if &bytes[..8] != MAGIC {
        return Err("bad magic");
    }
    let version = u64::from_be_bytes(bytes[8..16].try_into().unwrap_or_default());
    let len = u64::from_be_bytes(bytes[16..24].try_into().unwrap_or_default());
    if len > max as u64 {
        return Err("length above the blob limit");
    }
    if (bytes.len() - HEADER) as u64 != len {
        return Err("length does not match the header");
    }
    bytes.drain(..HEADER);
    Ok((version, bytes))
}

/// Bytes of [`encode_blob`]'s header.
pub const BLOB_HEADER: usize = HEADER;

fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Store {
    /// Opens the directory: deletes leftover temp files and loads the index.
    pub fn open(dir: &Path, limits: Limits) -> io::Result<Store> {
        fs::create_dir_all(dir)?;
        let mut index = BTreeMap::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let file = entry.file_name();
            let Some(file) = file.to_str() else { continue };
            if file.starts_with("t_") {
                // An interrupted write: the blob it would have replaced is intact.
                fs::remove_file(entry.path())?;
            } else if let Some(name) = name_of(file) {
                match read_blob_file(&entry.path(), limits.max_blob_bytes) {
                    Ok((v, _)) => {
                        index.insert(name, v);
                    }
                    // Not served and not deleted: an operator should look at it.
                    Err(e) => crate::log::error("blobs", &format!("skipping damaged blob: {e}")),
                }
            }
        }
        fsync_dir(dir)?;
        Ok(Store {
            dir: dir.to_path_buf(),
            limits,
            index: Mutex::new(index),
            tmp_seq: AtomicU64::new(0),
        })
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, u64>> {
        // A panic while holding the lock cannot leave the index inconsistent with the disk
        // in a way that matters: every entry is updated only after its file is durable.
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn write_file(&self, name: &str, version: u64, data: &[u8]) -> io::Result<()> {
        let seq = self.tmp_seq.fetch_add(1, Ordering::Relaxed);
        let tmp = self.dir.join(format!("t_{}.{seq}", std::process::id()));
        let r = (|| {
            let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
            f.write_all(&encode_blob(version, data))?;
            f.sync_all()?; // the data is on disk before it can replace anything
            fs::rename(&tmp, self.dir.join(file_name(name)))?;
            fsync_dir(&self.dir) // the rename itself is durable before we acknowledge
        })();
        if r.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        r
    }

    pub fn handle(&self, r: Request) -> Response {
        match self.try_handle(r) {
            Ok(resp) => resp,
            Err(resp) => resp,
        }
    }

    fn try_handle(&self, r: Request) -> Result<Response, Response> {
        let io_err = |e: io::Error| {
            crate::log::error("blobs", &format!("storage: {e}"));
            Response::err("storage", format!("storage error: {}", e.kind()))
        };
        match check_request(r, &self.limits)? {
            Call::Put {
                name,
                expected,
                data,
            } => {
                let mut index = self.lock();
                let current = index.get(&name).copied().unwrap_or(0);
                if current != expected {
                    return Err(conflict(current, expected));
                }
                if current == 0 && index.len() >= self.limits.max_blobs {
                    return Err(Response::err(
                        "limit",
                        format!("the store holds {} blobs, the limit", self.limits.max_blobs),
                    ));
                }
                let version = current
                    .checked_add(1)
                    .ok_or_else(|| Response::err("limit", "version counter exhausted"))?;
                self.write_file(&name, version, &data).map_err(io_err)?;
                index.insert(name, version);
                Ok(Response {
                    ok: true,
                    version: Some(version),
                    ..Default::default()
                })
            }
            Call::Get { name } => {
                let index = self.lock();
                let Some(&version) = index.get(&name) else {
                    return Err(Response::err(
                        "not_found",
                        format!("no blob named {name:?}"),
                    ));
                };
                let (v, data) =
                    read_blob_file(&self.dir.join(file_name(&name)), self.limits.max_blob_bytes)
                        .map_err(io_err)?;
                if v != version {
                    return Err(io_err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "version changed on disk",
                    )));
                }
                Ok(Response {
                    ok: true,
                    version: Some(v),
                    data: Some(data),
                    ..Default::default()
                })
            }
            Call::List { prefix } => {
                let index = self.lock();
                let mut names: Vec<String> = index
                    .range(prefix.clone()..)
                    .map(|(k, _)| k)
                    .take_while(|k| k.starts_with(&prefix))
                    .take(MAX_LIST + 1)
                    .cloned()
                    .collect();
                let more = names.len() > MAX_LIST;
                names.truncate(MAX_LIST);
                Ok(Response {
                    ok: true,
                    names: Some(names),
                    more: Some(more),
                    ..Default::default()
                })
            }
            Call::Delete { name, expected } => {
                let mut index = self.lock();
                let Some(&current) = index.get(&name) else {
                    return Err(Response::err(
                        "not_found",
                        format!("no blob named {name:?}"),
                    ));
                };
                if current != expected {
                    return Err(conflict(current, expected));
                }
                fs::remove_file(self.dir.join(file_name(&name))).map_err(io_err)?;
                fsync_dir(&self.dir).map_err(io_err)?;
                index.remove(&name);
                Ok(Response {
                    ok: true,
                    version: Some(current),
                    ..Default::default()
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("sigil-shim-store-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    const L: Limits = Limits {
        max_blob_bytes: 1024,
        max_blobs: 3,
    };

    fn put(s: &Store, name: &str, ev: u64, data: &[u8]) -> Response {
        s.handle(Request {
            op: Op::Put,
            name: Some(name.into()),
            expected_version: Some(ev),
            data: Some(data.to_vec()),
            prefix: None,
        })
    }
    fn get(s: &Store, name: &str) -> Response {
        s.handle(Request {
            op: Op::Get,
            name: Some(name.into()),
            expected_version: None,
            data: None,
            prefix: None,
        })
    }
    fn code(r: &Response) -> &str {
        r.error.as_ref().map(|e| e.code.as_str()).unwrap_or("ok")
    }

    #[test]
    fn compare_and_swap() {
        let d = dir("cas");
        let s = Store::open(&d, L).unwrap();
        assert_eq!(put(&s, "k", 0, b"one").version, Some(1));
        // 0 means "must not exist": a second create loses and learns the current version.
        let r = put(&s, "k", 0, b"x");
        assert_eq!((code(&r), r.version), ("version_conflict", Some(1)));
        assert_eq!(code(&put(&s, "k", 5, b"x")), "version_conflict");
        assert_eq!(put(&s, "k", 1, b"two").version, Some(2));
        let g = get(&s, "k");
        assert_eq!((g.version, g.data.as_deref()), (Some(2), Some(&b"two"[..])));
        assert_eq!(code(&get(&s, "nope")), "not_found");
        let del = |ev| {
            s.handle(Request {
                op: Op::Delete,
                name: Some("k".into()),
                expected_version: Some(ev),
                data: None,
                prefix: None,
            })
        };
        assert_eq!(code(&del(1)), "version_conflict");
        assert!(del(2).ok);
        assert_eq!(code(&get(&s, "k")), "not_found");
        assert_eq!(code(&del(2)), "not_found");
        // Recreated after delete, versions start again at 1.
        assert_eq!(put(&s, "k", 0, b"again").version, Some(1));
        // Survives a reopen.
        drop(s);
        let s = Store::open(&d, L).unwrap();
        assert_eq!(get(&s, "k").data.as_deref(), Some(&b"again"[..]));
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn limits_and_list() {
        let d = dir("limits");
        let s = Store::open(&d, L).unwrap();
        assert_eq!(code(&put(&s, "big", 0, &[0; 1025])), "too_large");
        assert!(put(&s, "a/1", 0, b"").ok);
        assert!(put(&s, "a/2", 0, b"x").ok);
        assert!(put(&s, "b", 0, b"x").ok);
        assert_eq!(code(&put(&s, "c", 0, b"x")), "limit");
        // Replacing an existing blob is not a new blob.
        assert!(put(&s, "b", 1, b"y").ok);
        let list = |p: Option<&str>| {
            s.handle(Request {
                op: Op::List,
                name: None,
                expected_version: None,
                data: None,
                prefix: p.map(Into::into),
            })
        };
        assert_eq!(list(Some("a/")).names.unwrap(), ["a/1", "a/2"]);
        assert_eq!(list(None).names.unwrap(), ["a/1", "a/2", "b"]);
        assert_eq!(list(Some("zz")).names.unwrap(), Vec::<String>::new());
        assert_eq!(code(&list(Some("../"))), "bad_request");
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn bad_names_and_requests() {
        let d = dir("names");
        let s = Store::open(&d, L).unwrap();
        let long = "x".repeat(129);
        for n in [
            "",
            "../etc/passwd",
            "a/../b",
            "/abs",
            "sp ace",
            "a~b",
            "nul\0",
            "é",
            long.as_str(),
            "a\\b",
        ] {
            assert_eq!(code(&put(&s, n, 0, b"x")), "bad_request", "{n:?}");
        }
        assert!(put(&s, &"x".repeat(128), 0, b"x").ok);
        assert!(put(&s, "ok.name_1-2/x.y", 0, b"x").ok);
        assert!(
            put(&s, ".", 0, b"x").ok,
            "a lone dot is a legal name and a safe file"
        );
        let no_ev = s.handle(Request {
            op: Op::Put,
            name: Some("n".into()),
            expected_version: None,
            data: Some(vec![]),
            prefix: None,
        });
        assert!(no_ev.error.unwrap().message.contains("expected_version"));
        let no_name = s.handle(Request {
            op: Op::Get,
            name: None,
            expected_version: None,
            data: None,
            prefix: None,
        });
        assert_eq!(code(&no_name), "bad_request");
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn temp_files_are_removed_and_damage_is_skipped() {
        let d = dir("tmp");
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("t_123.0"), b"half a blo").unwrap();
        fs::write(d.join("b_torn"), b"SGLBLOB1short").unwrap();
        let s = Store::open(&d, L).unwrap();
        assert!(!d.join("t_123.0").exists());
        assert_eq!(code(&get(&s, "torn")), "not_found");
        assert!(
            d.join("b_torn").exists(),
            "damaged files are left for the operator"
        );
        let _ = fs::remove_dir_all(&d);
    }
}
