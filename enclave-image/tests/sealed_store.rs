//! The enclave's sealed store against the shim's real blob store (its library: the same
//! `Store` and `serve_conn` the `sigil-shim` binary runs), over a Unix socket, vsock's local
//! stand-in. A "restart" opens a new `Store` on the same directory and serves it on a new
//! socket, so everything read after it comes from disk.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use sigil_enclave::seal::format::{self, DataKey, Kind};
use sigil_enclave::seal::store::{
    BlobClient, MAX_NAMES_PER_KIND, RollbackGuard, SealedStore, SealedStoreError, blob_name,
};
use sigil_shim::{blobs, relay, store};
use sigil_sys::{Addr, Stream};

static SEQ: AtomicUsize = AtomicUsize::new(0);

struct Shim {
    dir: PathBuf,
}

impl Shim {
    fn new(name: &str) -> Shim {
        let dir = std::env::temp_dir().join(format!("sigil-seal-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Shim { dir }
    }

    fn state(&self) -> PathBuf {
        self.dir.join("state")
    }

    /// Starts (or "restarts") the blob service on the state directory; returns its address.
    fn start(&self) -> Addr {
        self.start_holding(100)
    }

    /// [`Shim::start`] with room for `max_blobs` blobs.
    fn start_holding(&self, max_blobs: usize) -> Addr {
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let sock = self.dir.join(format!("b{n}.sock"));
        let st = Arc::new(
            store::Store::open(
                &self.state(),
                store::Limits {
                    max_blob_bytes: sigil_protocol::parent::blobs::MAX_DATA,
                    max_blobs,
                },
            )
            .unwrap(),
        );
        relay::spawn_service("blobs", &Addr::Unix(sock.clone()), 4, move |s, _| {
            blobs::serve_conn(&st, s, Duration::from_secs(5))
        })
        .unwrap();
        Addr::Unix(sock)
    }

    /// (Re)starts the blob service and opens a sealed store on it.
    fn open(&self, key: &DataKey, epoch: u32) -> SealedStore<Stream> {
        sealed_store(&self.start(), key, epoch)
    }

    /// The shim's file for a blob name (its documented layout: `b_<name, '/' as '~'>`).
    fn file(&self, kind: Kind, id: &str) -> PathBuf {
        let name = blob_name(kind, id).unwrap();
        self.state().join(format!("b_{}", name.replace('/', "~")))
    }
}

fn sealed_store(addr: &Addr, key: &DataKey, epoch: u32) -> SealedStore<Stream> {
    let c = BlobClient::connect(addr, Duration::from_secs(5)).unwrap();
    SealedStore::new(c, key.clone(), epoch, RollbackGuard::new())
}

/// A new shim directory `name`, a data key of `key_byte`s, and an epoch-0 store on it.
fn fresh(name: &str, key_byte: u8) -> (Shim, DataKey, SealedStore<Stream>) {
    let shim = Shim::new(name);
    let key = DataKey::from_bytes([key_byte; 32]);
    let s = shim.open(&key, 0);
    (shim, key, s)
}

fn code<T: std::fmt::Debug>(r: Result<T, SealedStoreError>) -> String {
    r.expect_err("must be refused").code().to_string()
}

fn copy_file(from: &Path, to: &Path) {
    fs::write(to, fs::read(from).unwrap()).unwrap();
}

#[test]
fn put_get_across_a_restart() {
    let shim = Shim::new("restart");
    let key = DataKey::from_bytes([0x11; 32]);
    let mut s = shim.open(&key, 1);
    assert_eq!(s.put_sealed(Kind::Key, "alice", b"share v1").unwrap(), 1);
    assert_eq!(s.put_sealed(Kind::Key, "alice", b"share v2").unwrap(), 2);
    assert_eq!(s.put_sealed(Kind::Config, "alice", b"cfg").unwrap(), 1);
    let (v, pt) = s.get_sealed(Kind::Key, "alice").unwrap();
    assert_eq!((v, &pt[..]), (2, &b"share v2"[..]));
    assert_eq!(code(s.get_sealed(Kind::Key, "bob")), "not_found");
    drop(s);

    let addr = shim.start();
    let mut s = sealed_store(&addr, &key, 1);
    let (v, pt) = s.get_sealed(Kind::Key, "alice").unwrap();
    assert_eq!((v, &pt[..]), (2, &b"share v2"[..]));
    let (v, pt) = s.get_sealed(Kind::Config, "alice").unwrap();
    assert_eq!((v, &pt[..]), (1, &b"cfg"[..]));
    assert_eq!(s.put_sealed(Kind::Key, "alice", b"share v3").unwrap(), 3);
    let (names, more) = s.client().list("seal/key/").unwrap();
    assert_eq!((names, more), (vec!["seal/key/alice".to_string()], false));
    // Another data key or epoch cannot open it.
    let mut other = sealed_store(&addr, &DataKey::from_bytes([0x22; 32]), 1);
    assert_eq!(code(other.get_sealed(Kind::Key, "alice")), "auth_failed");
    let mut old_epoch = sealed_store(&addr, &key, 0);
    assert_eq!(
        code(old_epoch.get_sealed(Kind::Key, "alice")),
        "epoch_mismatch"
    );
}

#[test]
fn a_blob_tampered_on_disk_is_refused() {
    let (shim, key, mut s) = fresh("tamper", 0x33);
    s.put_sealed(Kind::AggregateKey, "agg-1", b"aggregate")
        .unwrap();
    let f = shim.file(Kind::AggregateKey, "agg-1");
    let mut bytes = fs::read(&f).unwrap();
    // The file on disk becomes `bytes`; a restarted store reads it.
    let served = |bytes: &[u8]| {
        fs::write(&f, bytes).unwrap();
        code(shim.open(&key, 0).get_sealed(Kind::AggregateKey, "agg-1"))
    };
    // The shim's file header is 24 bytes; flip the last byte of the sealed blob (the tag).
    *bytes.last_mut().unwrap() ^= 1;
    assert_eq!(served(&bytes), "auth_failed");
    // A byte in the sealed header (the id) names another blob.
    bytes[24 + 11] ^= 1;
    assert_eq!(served(&bytes), "id_mismatch");
}

#[test]
fn a_blob_copied_to_another_id_or_kind_is_refused() {
    let (shim, key, mut s) = fresh("swap", 0x44);
    s.put_sealed(Kind::Key, "alice", b"alice's share").unwrap();
    s.put_sealed(Kind::Key, "bob", b"bob's share").unwrap();
    copy_file(&shim.file(Kind::Key, "alice"), &shim.file(Kind::Key, "bob"));
    copy_file(
        &shim.file(Kind::Key, "alice"),
        &shim.file(Kind::Config, "alice"),
    );
    let mut s = shim.open(&key, 0);
    assert_eq!(code(s.get_sealed(Kind::Key, "bob")), "id_mismatch");
    assert_eq!(code(s.get_sealed(Kind::Config, "alice")), "kind_mismatch");
    assert_eq!(
        &s.get_sealed(Kind::Key, "alice").unwrap().1[..],
        b"alice's share"
    );
}

#[test]
fn rollback_what_is_caught_and_what_remains() {
    let (shim, key, mut s) = fresh("rollback", 0x55);
    s.put_sealed(Kind::Counter, "c", b"1").unwrap();
    let f = shim.file(Kind::Counter, "c");
    let v1_file = fs::read(&f).unwrap();
    s.put_sealed(Kind::Counter, "c", b"2").unwrap();
    let v2_file = fs::read(&f).unwrap();

    // The parent serves the old blob under the current store version: the sealed version
    // and the store's disagree.
    let mut spliced = v2_file[..24].to_vec();
    spliced.extend_from_slice(&v1_file[24..]);
    fs::write(&f, &spliced).unwrap();
    let addr2 = shim.start();
    let mut fresh = sealed_store(&addr2, &key, 0);
    assert_eq!(
        code(fresh.get_sealed(Kind::Counter, "c")),
        "version_mismatch"
    );

    // A consistent rollback (the old file, store version and all): this boot's enclave,
    // which has seen version 2, refuses it...
    fs::write(&f, &v1_file).unwrap();
    let addr3 = shim.start();
    s.reconnect(BlobClient::connect(&addr3, Duration::from_secs(5)).unwrap());
    assert!(matches!(
        s.get_sealed(Kind::Counter, "c"),
        Err(SealedStoreError::Rollback {
            known: 2,
            served: 1
        })
    ));
    assert_eq!(code(s.put_sealed(Kind::Counter, "c", b"3")), "rollback");
    // ...but a freshly booted enclave with no anchor accepts it: what remains, documented in
    // `seal::format` (the fix is an external monotonic counter and epoch bumps).
    let mut rebooted = sealed_store(&addr3, &key, 0);
    let (v, pt) = rebooted.get_sealed(Kind::Counter, "c").unwrap();
    assert_eq!((v, &pt[..]), (1, &b"1"[..]));
    // An epoch bump retires every blob of the old epoch.
    let mut bumped = sealed_store(&addr3, &key, 1);
    assert_eq!(
        code(bumped.get_sealed(Kind::Counter, "c")),
        "epoch_mismatch"
    );
    // The header version is what the store's version is checked against.
    let h = format::parse_header(&v1_file[24..]).unwrap();
    assert_eq!(h.version, 1);
}

#[test]
fn delete_then_put_and_a_replayed_old_blob_is_refused() {
    let shim = Shim::new("delete");
    let key = DataKey::from_bytes([0x66; 32]);
    let addr = shim.start();
    let guard = RollbackGuard::new();
    let connect = |addr: &Addr| {
        let c = BlobClient::connect(addr, Duration::from_secs(5)).unwrap();
        SealedStore::new(c, key.clone(), 0, guard.clone())
    };
    let mut s = connect(&addr);
    s.put_sealed(Kind::Config, "c", b"old 1").unwrap();
    let f = shim.file(Kind::Config, "c");
    let old1 = fs::read(&f).unwrap();
    assert_eq!(s.put_sealed(Kind::Config, "c", b"old 2").unwrap(), 2);
    s.delete_sealed(Kind::Config, "c").unwrap();
    assert_eq!(code(s.get_sealed(Kind::Config, "c")), "not_found");
    assert_eq!(s.put_sealed(Kind::Config, "c", b"new 1").unwrap(), 1);
    let (v, pt) = s.get_sealed(Kind::Config, "c").unwrap();
    assert_eq!((v, &pt[..]), (1, &b"new 1"[..]));
    // The parent puts back the deleted incarnation's version 1; a store built on a new
    // connection with the same guard refuses it.
    fs::write(&f, &old1).unwrap();
    let addr = shim.start();
    let mut s = connect(&addr);
    assert_eq!(code(s.get_sealed(Kind::Config, "c")), "equivocation");
}

/// One kind of record filling up does not stop the others, a delete frees room, and a new
/// boot (a fresh guard) counts what is there before it creates anything.
#[test]
fn each_kind_of_record_is_capped_below_the_shims_store() {
    // The enclave's kinds together stay below the shim's default capacity.
    const { assert!(Kind::COUNT * MAX_NAMES_PER_KIND < sigil_shim::config::DEFAULT_MAX_BLOBS) };
    assert!((1..=Kind::COUNT as u8).all(|k| Kind::from_u8(k).is_some()));
    assert!(Kind::from_u8(Kind::COUNT as u8 + 1).is_none());
    let shim = Shim::new("names");
    let key = DataKey::from_bytes([0x77; 32]);
    let addr = shim.start_holding(sigil_shim::config::DEFAULT_MAX_BLOBS);
    let mut s = sealed_store(&addr, &key, 0);
    for i in 0..MAX_NAMES_PER_KIND {
        s.put_sealed(Kind::Secret, &format!("v{i}"), b"x").unwrap();
    }
    let e = s
        .put_sealed(Kind::Secret, "one-too-many", b"x")
        .unwrap_err();
    assert_eq!(e.code(), "limit", "{e}");
    assert!(e.to_string().contains("1000 sealed secret records"), "{e}");
    // Existing names still take new versions; other kinds are untouched.
    assert_eq!(s.put_sealed(Kind::Secret, "v0", b"y").unwrap(), 2);
    s.put_sealed(Kind::Key, "k", b"key").unwrap();
    // A delete frees one place.
    s.delete_sealed(Kind::Secret, "v1").unwrap();
    s.put_sealed(Kind::Secret, "in-v1s-place", b"x").unwrap();
    assert_eq!(code(s.put_sealed(Kind::Secret, "again", b"x")), "limit");
    // After a restart the count is taken from the store before the first creation.
    let addr = shim.start_holding(sigil_shim::config::DEFAULT_MAX_BLOBS);
    let mut s = sealed_store(&addr, &key, 0);
    assert_eq!(
        code(s.put_sealed(Kind::Secret, "after-restart", b"x")),
        "limit"
    );
    assert_eq!(s.put_sealed(Kind::Key, "k2", b"key").unwrap(), 1);
}
