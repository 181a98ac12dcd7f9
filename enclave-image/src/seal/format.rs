//! The sealed blob: a versioned header and AES-256-GCM ciphertext with the whole header as
//! associated data.
//!
//! ```text
//! offset  size      field
//! 0       8         magic "SGLSEAL1"
//! 8       1         format version (1)
//! 9       1         kind (see [`Kind`])
//! 10      1         id length n (1..=128)
//! 11      n         id ([A-Za-z0-9._/-], no "..", no leading '/': the blob-name charset)
//! 11+n    8         version, u64 big-endian: the blob store's CAS version it is written as
//! 19+n    4         key epoch, u32 big-endian
//! 23+n    12        nonce (random)
//! 35+n    len+16    AES-256-GCM(ciphertext || tag), AAD = bytes 0 .. 35+n (the whole header)
//! ```
//!
//! The AES key is per blob: `HKDF-SHA256(ikm = data key, salt = "sigil seal salt v1",
//! info = "sigil seal v1" || kind || id || epoch_be32)`. Only `id` has a variable length and
//! the fields around it have fixed lengths, so the info string is unambiguous. One derived key
//! therefore only ever encrypts one (kind, id, epoch): a blob cannot be opened under another
//! id or kind even if the header check were skipped. Nonces are random; with at most 2^32
//! writes of one id in one epoch the chance of a nonce repeat stays below 2^-32.
//!
//! # Replay and rollback: what the parent can and cannot do
//!
//! The parent (and the shim on it) stores the sealed blobs and is untrusted. It cannot:
//!
//! - **read** a blob: it never holds the data key (KMS releases it only to the attested
//!   enclave) and so not the derived per-blob keys;
//! - **forge or modify** one: every header and body byte is authenticated by the GCM tag
//!   (header as AAD), any change fails with `auth_failed` or with the header check it breaks;
//! - **swap ids or kinds** (serve blob A when B is asked for, or a `config` as a `key`):
//!   the header names the kind and id ([`SealError::KindMismatch`], [`SealError::IdMismatch`]),
//!   and the key derivation binds them too, so even a rewritten header fails the tag;
//! - **move a blob across key epochs**: the epoch is in the header and the key derivation
//!   ([`SealError::EpochMismatch`]).
//!
//! It **can** replay: serve an older blob it once saw for the *same* kind, id and epoch (a
//! rollback to an earlier version), or withhold/delete blobs (denial of service). What sigil
//! does about it:
//!
//! - the header carries the store's CAS version the blob was written as, and
//!   [`open`] with `expected_version = Some(v)` refuses any other version
//!   ([`SealError::VersionMismatch`]). `SealedStore::get_sealed` passes the version the store
//!   reports, so the store's version and the sealed version must agree: a parent that serves
//!   an old blob must also report (and keep reporting) the old version number;
//! - within one enclave boot, `SealedStore` (through its [`super::store::RollbackGuard`])
//!   remembers the highest version it has written or read per blob, and that blob's nonce, and
//!   refuses a lower version ([`super::store::SealedStoreError::Rollback`]) or another blob at
//!   the same version ([`super::store::SealedStoreError::Equivocation`]); the store's versions
//!   only grow while a blob exists, so this catches a rollback of a single blob during the
//!   enclave's lifetime. The guarantee lasts for the boot as long as the same guard is used
//!   (reconnect with `SealedStore::reconnect` or a clone of the guard, never a fresh one). A
//!   write with an unknown outcome is resolved by reading the blob back, and blobs deleted with
//!   `SealedStore::delete_sealed` are remembered, so their old versions stay refused;
//! - across reboots the enclave has no memory of its own. The mitigation for a rollback of the
//!   whole state is a monotonic counter kept outside the parent's control (a `counter` blob
//!   whose value is anchored, e.g. in KMS or a quorum of peer enclaves) and a key-epoch bump:
//!   after an epoch bump, blobs of older epochs no longer open (`epoch_mismatch`), so
//!   everything written before the bump cannot be replayed.
//!
//! What remains: a freshly booted enclave that has no trusted anchor for the current version
//! accepts any consistent older (blob, version) pair of the current epoch the parent kept, and
//! a parent can roll back several blobs to a mutually inconsistent mix of versions. Deleting a
//! blob resets its store version, so across a reboot (or without the guard that recorded the
//! delete) a later version-1 blob and an old version-1 blob of the same id are
//! indistinguishable. Freshness across boots needs the
//! external counter; until that exists, state whose rollback is harmful (for example approval
//! or nonce-use records) must not rely on sealed blobs alone.

use std::fmt;

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::hkdf::{HKDF_SHA256, Salt};
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

pub const MAGIC: &[u8; 8] = b"SGLSEAL1";
pub const FORMAT_VERSION: u8 = 1;
/// Longest id, as for blob names.
pub const MAX_ID: usize = 128;
pub const TAG_LEN: usize = 16;
/// Largest plaintext: a sealed blob must fit in one blob-store frame.
pub const MAX_PLAINTEXT: usize =
    sigil_protocol::parent::blobs::MAX_DATA - (FIXED_HEADER + MAX_ID + TAG_LEN);
/// Header bytes other than the id: magic, format, kind, id length, version, epoch, nonce.
const FIXED_HEADER: usize = 8 + 1 + 1 + 1 + 8 + 4 + NONCE_LEN;

const HKDF_SALT: &[u8] = b"sigil seal salt v1";
const HKDF_INFO: &[u8] = b"sigil seal v1";
/// Info prefix of secrets derived from the data key (`DataKey::derive_secret`).
const DERIVED_INFO: &[u8] = b"sigil derived secret v1";

/// What a sealed blob holds. A small set that grows by adding variants (never renumbering);
/// an unknown kind byte in a blob is refused ([`SealError::UnknownKind`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Kind {
    /// A signing key share.
    Key = 1,
    /// A MuSig2 aggregate key and its participants.
    AggregateKey = 2,
    /// Configuration that is not bound to a session.
    Config = 3,
    /// The KMS ciphertext of a data key (wrapped under KMS, stored for the next boot).
    DataKeyCiphertext = 4,
    /// A monotonic counter (rollback detection).
    Counter = 5,
    /// A vault entry: its owner's public key and the value.
    Secret = 6,
    /// A held key's public facts (id, public key, owner), read without opening the secret.
    KeyInfo = 7,
    /// An owner's index of its MuSig2 keys and aggregates.
    OwnerIndex = 8,
    /// A FROST group member's key package and the group's public facts.
    FrostShare = 9,
}

impl Kind {
    /// How many kinds there are (`1..=COUNT` are their numbers).
    pub const COUNT: usize = 9;

    pub fn from_u8(b: u8) -> Option<Kind> {
        Some(match b {
            1 => Kind::Key,
            2 => Kind::AggregateKey,
            3 => Kind::Config,
            4 => Kind::DataKeyCiphertext,
            5 => Kind::Counter,
            6 => Kind::Secret,
            7 => Kind::KeyInfo,
            8 => Kind::OwnerIndex,
            9 => Kind::FrostShare,
            _ => return None,
        })
    }

    pub fn as_u8(self) -> u8 {
        self as u8
    }

    /// A short stable name, used in blob-store names.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Key => "key",
            Kind::AggregateKey => "aggregate_key",
            Kind::Config => "config",
            Kind::DataKeyCiphertext => "data_key_ciphertext",
            Kind::Counter => "counter",
            Kind::Secret => "secret",
            Kind::KeyInfo => "key_info",
            Kind::OwnerIndex => "owner_index",
            Kind::FrostShare => "frost_share",
        }
    }
}

/// The 32-byte data key that KMS releases to the attested enclave. Wiped on drop; its
/// `Debug` never shows the bytes.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct DataKey([u8; 32]);

impl DataKey {
    pub fn from_bytes(bytes: [u8; 32]) -> DataKey {
        DataKey(bytes)
    }

    /// Takes the key from a slice (e.g. a decrypted KMS response); the caller wipes its copy.
    pub fn from_slice(bytes: &[u8]) -> Option<DataKey> {
        <[u8; 32]>::try_from(bytes).ok().map(DataKey)
    }

    /// The key's bytes, for wrapping it under the quorum root (`seal::quorum`); nothing else
    /// reads them.
    pub(crate) fn expose(&self) -> &[u8; 32] {
        &self.0
    }

    /// A fresh random key (tests, local mode, a state whose only root is the quorum).
    pub fn generate() -> Result<DataKey, SealError> {
        let mut k = [0u8; 32];
        SystemRandom::new()
            .fill(&mut k)
            .map_err(|_| SealError::Random)?;
        let key = DataKey(k);
        k.zeroize();
        Ok(key)
    }

    /// A 32-byte secret for `label`, derived from the data key (HKDF-SHA256; its own info
    /// prefix, so no derived secret is ever a blob key). The same state always derives the
    /// same secret, and nothing needs storing.
    pub fn derive_secret(&self, label: &[u8]) -> zeroize::Zeroizing<[u8; 32]> {
        struct Len32;
        impl ring::hkdf::KeyType for Len32 {
            fn len(&self) -> usize {
                32
            }
        }
        let info: [&[u8]; 2] = [DERIVED_INFO, label];
        let prk = Salt::new(HKDF_SHA256, HKDF_SALT).extract(&self.0);
        let mut out = zeroize::Zeroizing::new([0u8; 32]);
        // Neither can fail for 32 bytes of output (at most 255 hash lengths).
        prk.expand(&info, Len32)
            .and_then(|okm| okm.fill(out.as_mut()))
            .expect("HKDF-SHA256 can expand 32 bytes");
        out
    }

    fn blob_key(&self, kind: Kind, id: &str, epoch: u32) -> LessSafeKey {
        let kind_b = [kind.as_u8()];
        let epoch_b = epoch.to_be_bytes();
        let info: [&[u8]; 4] = [HKDF_INFO, &kind_b, id.as_bytes(), &epoch_b];
        // `expand` fails only if the output is longer than 255 hash lengths; 32 bytes is not.
        let prk = Salt::new(HKDF_SHA256, HKDF_SALT).extract(&self.0);
        let okm = prk
            .expand(&info, &AES_256_GCM)
            .expect("HKDF-SHA256 can expand 32 bytes");
        LessSafeKey::new(UnboundKey::from(okm))
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(<redacted>)")
    }
}

/// Why a blob could not be sealed or opened. Each variant names the check that failed;
/// [`SealError::code`] is a stable string for logs and API errors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SealError {
    /// Shorter than its header (plus tag) says it must be.
    Truncated,
    BadMagic,
    UnsupportedFormat(u8),
    UnknownKind(u8),
    /// An id that is empty, too long or outside the blob-name charset (sealing), or a header
    /// id length of 0 or above [`MAX_ID`] (opening).
    BadId(String),
    KindMismatch {
        expected: Kind,
        found: Kind,
    },
    IdMismatch,
    EpochMismatch {
        expected: u32,
        found: u32,
    },
    VersionMismatch {
        expected: u64,
        found: u64,
    },
    /// The GCM tag did not verify: a tampered byte or the wrong data key.
    AuthFailed,
    TooLarge(usize),
    Random,
}

impl SealError {
    pub fn code(&self) -> &'static str {
        match self {
            SealError::Truncated => "truncated",
            SealError::BadMagic => "bad_magic",
            SealError::UnsupportedFormat(_) => "unsupported_format",
            SealError::UnknownKind(_) => "unknown_kind",
            SealError::BadId(_) => "bad_id",
            SealError::KindMismatch { .. } => "kind_mismatch",
            SealError::IdMismatch => "id_mismatch",
            SealError::EpochMismatch { .. } => "epoch_mismatch",
            SealError::VersionMismatch { .. } => "version_mismatch",
            SealError::AuthFailed => "auth_failed",
            SealError::TooLarge(_) => "too_large",
            SealError::Random => "random",
        }
    }
}

impl fmt::Display for SealError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.code())?;
        match self {
            SealError::Truncated => f.write_str("the sealed blob is truncated"),
            SealError::BadMagic => f.write_str("not a sealed blob (bad magic)"),
            SealError::UnsupportedFormat(v) => write!(
                f,
                "sealed format version {v}; this enclave reads {FORMAT_VERSION}"
            ),
            SealError::UnknownKind(k) => write!(f, "unknown blob kind {k}"),
            SealError::BadId(m) => f.write_str(m),
            SealError::KindMismatch { expected, found } => write!(
                f,
                "the blob is a {}, not a {}",
                found.as_str(),
                expected.as_str()
            ),
            SealError::IdMismatch => f.write_str("the blob was sealed for another id"),
            SealError::EpochMismatch { expected, found } => {
                write!(f, "the blob is of key epoch {found}, expected {expected}")
            }
            SealError::VersionMismatch { expected, found } => write!(
                f,
                "the blob was sealed as version {found}, expected {expected} (replayed?)"
            ),
            SealError::AuthFailed => {
                f.write_str("authentication failed (tampered, or another data key)")
            }
            SealError::TooLarge(n) => {
                write!(f, "plaintext is {n} bytes; at most {MAX_PLAINTEXT}")
            }
            SealError::Random => f.write_str("the system random generator failed"),
        }
    }
}

impl std::error::Error for SealError {}

/// Checks an id against the blob-name rules: 1..=128 bytes of `[A-Za-z0-9._/-]`, no `..`,
/// no leading `/`.
pub fn check_id(id: &str) -> Result<(), SealError> {
    let bad = |m: String| Err(SealError::BadId(m));
    if id.is_empty() || id.len() > MAX_ID {
        return bad(format!("id is {} bytes; 1 to {MAX_ID} allowed", id.len()));
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/')))
    {
        return bad(format!(
            "id contains {c:?}; allowed are A-Z a-z 0-9 . _ - /"
        ));
    }
    if id.contains("..") {
        return bad("id contains \"..\"".into());
    }
    if id.starts_with('/') {
        return bad("id starts with '/'".into());
    }
    Ok(())
}

fn header(kind: Kind, id: &str, version: u64, epoch: u32, nonce: &[u8; NONCE_LEN]) -> Vec<u8> {
    let mut h = Vec::with_capacity(FIXED_HEADER + id.len());
    h.extend_from_slice(MAGIC);
    h.push(FORMAT_VERSION);
    h.push(kind.as_u8());
    h.push(id.len() as u8); // check_id bounds it by MAX_ID (128)
    h.extend_from_slice(id.as_bytes());
    h.extend_from_slice(&version.to_be_bytes());
    h.extend_from_slice(&epoch.to_be_bytes());
    h.extend_from_slice(nonce);
    h
}

/// Seals `plaintext` as blob `id` of `kind`, written as store version `version` under key
/// epoch `epoch`, with a fresh random nonce.
pub fn seal(
    key: &DataKey,
    kind: Kind,
    id: &str,
    version: u64,
    epoch: u32,
    plaintext: &[u8],
) -> Result<Vec<u8>, SealError> {
    let mut nonce = [0u8; NONCE_LEN];
    SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| SealError::Random)?;
    seal_with_nonce(key, kind, id, version, epoch, nonce, plaintext)
}

fn seal_with_nonce(
    key: &DataKey,
    kind: Kind,
    id: &str,
    version: u64,
    epoch: u32,
    nonce: [u8; NONCE_LEN],
    plaintext: &[u8],
) -> Result<Vec<u8>, SealError> {
    check_id(id)?;
    if plaintext.len() > MAX_PLAINTEXT {
        return Err(SealError::TooLarge(plaintext.len()));
    }
    let mut out = header(kind, id, version, epoch, &nonce);
    let hlen = out.len();
    // Reserved up front: the buffer holds plaintext for a moment and must not reallocate
    // (which would leave a copy behind in freed memory).
    out.reserve_exact(plaintext.len() + TAG_LEN);
    out.extend_from_slice(plaintext);
    let (aad, body) = out.split_at_mut(hlen);
    let tag = key
        .blob_key(kind, id, epoch)
        .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::from(&*aad), body)
        .map_err(|_| SealError::TooLarge(plaintext.len()))?;
    out.extend_from_slice(tag.as_ref());
    Ok(out)
}

/// The parsed header of a sealed blob (authenticated only once [`open`] succeeds).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub kind: Kind,
    pub id: String,
    pub version: u64,
    pub epoch: u32,
    pub nonce: [u8; NONCE_LEN],
    /// Length of the header in bytes (the AAD).
    pub len: usize,
}

/// Parses the header without authenticating it. For diagnostics; [`open`] is the only way
/// to trust a blob.
pub fn parse_header(blob: &[u8]) -> Result<Header, SealError> {
    let take = |at: usize, n: usize| blob.get(at..at + n).ok_or(SealError::Truncated);
    if take(0, 8)? != MAGIC {
        return Err(SealError::BadMagic);
    }
    let format = take(8, 1)?[0];
    if format != FORMAT_VERSION {
        return Err(SealError::UnsupportedFormat(format));
    }
    let kind_b = take(9, 1)?[0];
    let kind = Kind::from_u8(kind_b).ok_or(SealError::UnknownKind(kind_b))?;
    let n = usize::from(take(10, 1)?[0]);
    if n == 0 || n > MAX_ID {
        return Err(SealError::BadId(format!(
            "header id length {n}; 1 to {MAX_ID} allowed"
        )));
    }
    let id_b = take(11, n)?;
    let mut at = 11 + n;
    let version = u64::from_be_bytes(take(at, 8)?.try_into().expect("8 bytes"));
    at += 8;
    let epoch = u32::from_be_bytes(take(at, 4)?.try_into().expect("4 bytes"));
    at += 4;
    let nonce: [u8; NONCE_LEN] = take(at, NONCE_LEN)?.try_into().expect("12 bytes");
    at += NONCE_LEN;
    if blob.len() < at + TAG_LEN {
        return Err(SealError::Truncated);
    }
    // The id is compared as bytes by `open`; a non-UTF-8 id cannot be one we sealed.
    let id = String::from_utf8_lossy(id_b).into_owned();
    Ok(Header {
        kind,
        id,
        version,
        epoch,
        nonce,
        len: at,
    })
}

/// Opens a sealed blob, refusing it unless it is a `expected_kind` blob for `expected_id`,
/// of key epoch `expected_epoch`, sealed as `expected_version` (when given) and untouched.
/// Checks run in header order so the error names the first field that is wrong; the tag is
/// checked last and covers everything.
pub fn open(
    key: &DataKey,
    expected_kind: Kind,
    expected_id: &str,
    expected_version: Option<u64>,
    expected_epoch: u32,
    blob: &[u8],
) -> Result<Zeroizing<Vec<u8>>, SealError> {
    check_id(expected_id)?;
    let h = parse_header(blob)?;
    if h.kind != expected_kind {
        return Err(SealError::KindMismatch {
            expected: expected_kind,
            found: h.kind,
        });
    }
    // Equal header lengths mean equal id lengths, so the slice is in bounds.
    if h.len != FIXED_HEADER + expected_id.len()
        || blob[11..11 + expected_id.len()] != *expected_id.as_bytes()
    {
        return Err(SealError::IdMismatch);
    }
    if let Some(v) = expected_version
        && h.version != v
    {
        return Err(SealError::VersionMismatch {
            expected: v,
            found: h.version,
        });
    }
    if h.epoch != expected_epoch {
        return Err(SealError::EpochMismatch {
            expected: expected_epoch,
            found: h.epoch,
        });
    }
    let (aad, body) = blob.split_at(h.len);
    let mut buf = Zeroizing::new(body.to_vec());
    let n = key
        .blob_key(expected_kind, expected_id, expected_epoch)
        .open_in_place(
            Nonce::assume_unique_for_key(h.nonce),
            Aad::from(aad),
            &mut buf,
        )
        .map_err(|_| SealError::AuthFailed)?
        .len();
    buf.truncate(n);
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "keys/alice-1";

    fn key() -> DataKey {
        DataKey::from_bytes([7; 32])
    }

    fn sealed() -> Vec<u8> {
        seal(&key(), Kind::Key, ID, 5, 2, b"secret share").unwrap()
    }

    fn open_default(blob: &[u8]) -> Result<Zeroizing<Vec<u8>>, SealError> {
        open(&key(), Kind::Key, ID, Some(5), 2, blob)
    }

    fn code(r: Result<Zeroizing<Vec<u8>>, SealError>) -> &'static str {
        r.expect_err("must be refused").code()
    }

    #[test]
    fn round_trip_and_layout() {
        let b = sealed();
        assert_eq!(&*open_default(&b).unwrap(), b"secret share");
        // Without a known version, any version opens (the caller did not know it).
        assert_eq!(
            &*open(&key(), Kind::Key, ID, None, 2, &b).unwrap(),
            b"secret share"
        );
        let h = parse_header(&b).unwrap();
        assert_eq!(h.len, FIXED_HEADER + ID.len());
        assert_eq!(b.len(), h.len + b"secret share".len() + TAG_LEN);
        assert_eq!(&b[..8], b"SGLSEAL1");
        assert_eq!(b[8], 1);
        assert_eq!(b[9], Kind::Key.as_u8());
        assert_eq!(usize::from(b[10]), ID.len());
        assert_eq!(&b[11..11 + ID.len()], ID.as_bytes());
        assert_eq!(&b[23..31], &5u64.to_be_bytes());
        assert_eq!(&b[31..35], &2u32.to_be_bytes());
        // Empty and maximal plaintexts.
        let e = seal(&key(), Kind::Config, "c", 1, 0, b"").unwrap();
        assert!(
            open(&key(), Kind::Config, "c", Some(1), 0, &e)
                .unwrap()
                .is_empty()
        );
        let max_id = "x".repeat(MAX_ID);
        let big = vec![0xa5; MAX_PLAINTEXT];
        let b = seal(&key(), Kind::Config, &max_id, 1, 0, &big).unwrap();
        assert!(b.len() <= sigil_protocol::parent::blobs::MAX_DATA);
        assert_eq!(
            &*open(&key(), Kind::Config, &max_id, Some(1), 0, &b).unwrap(),
            &big
        );
        assert_eq!(
            seal(&key(), Kind::Config, "c", 1, 0, &vec![0; MAX_PLAINTEXT + 1])
                .unwrap_err()
                .code(),
            "too_large"
        );
    }

    #[test]
    fn fresh_nonces() {
        assert_ne!(sealed(), sealed());
    }

    /// The code a flip of header byte `i` must produce (the id-length byte may fail in
    /// several ways, depending on what it now points at).
    fn expected_codes(i: usize, id_len: usize) -> &'static [&'static str] {
        let id_end = 11 + id_len;
        match i {
            0..=7 => &["bad_magic"],
            8 => &["unsupported_format"],
            9 => &["unknown_kind", "kind_mismatch"],
            10 => &["bad_id", "truncated", "id_mismatch"],
            _ if i < id_end => &["id_mismatch"],
            _ if i < id_end + 8 => &["version_mismatch"],
            _ if i < id_end + 12 => &["epoch_mismatch"],
            _ => &["auth_failed"], // nonce, ciphertext, tag
        }
    }

    #[test]
    fn every_byte_flip_is_refused_with_the_right_code() {
        let b = sealed();
        for i in 0..b.len() {
            for mask in [0x01u8, 0x80, 0xff] {
                let mut t = b.clone();
                t[i] ^= mask;
                let got = code(open_default(&t));
                let want = expected_codes(i, ID.len());
                assert!(
                    want.contains(&got),
                    "byte {i} ^ {mask:#x}: {got}, want {want:?}"
                );
                // Even a caller that does not know the version is protected by the tag.
                let got = code(open(&key(), Kind::Key, ID, None, 2, &t));
                let want: &[&str] = if (11 + ID.len()..11 + ID.len() + 8).contains(&i) {
                    &["auth_failed"]
                } else {
                    want
                };
                assert!(
                    want.contains(&got),
                    "byte {i} ^ {mask:#x} (no version): {got}"
                );
            }
        }
    }

    #[test]
    fn truncations_are_refused() {
        let b = sealed();
        let hlen = FIXED_HEADER + ID.len();
        for n in 0..b.len() {
            let got = code(open_default(&b[..n]));
            if n < hlen + TAG_LEN {
                assert_eq!(got, "truncated", "cut at {n}");
            } else {
                assert_eq!(got, "auth_failed", "cut at {n}");
            }
        }
        let mut longer = b.clone();
        longer.push(0);
        assert_eq!(code(open_default(&longer)), "auth_failed");
    }

    #[test]
    fn swapped_kind_id_epoch_version_and_key_are_refused() {
        let b = sealed();
        assert_eq!(
            code(open(&key(), Kind::Config, ID, Some(5), 2, &b)),
            "kind_mismatch"
        );
        assert_eq!(
            code(open(&key(), Kind::Key, "keys/bob-1", Some(5), 2, &b)),
            "id_mismatch"
        );
        assert_eq!(
            code(open(&key(), Kind::Key, "keys/alice-10", Some(5), 2, &b)),
            "id_mismatch"
        );
        assert_eq!(
            code(open(&key(), Kind::Key, "keys/alice-", Some(5), 2, &b)),
            "id_mismatch"
        );
        assert_eq!(
            code(open(&key(), Kind::Key, ID, Some(5), 3, &b)),
            "epoch_mismatch"
        );
        assert_eq!(
            code(open(&key(), Kind::Key, ID, Some(6), 2, &b)),
            "version_mismatch"
        );
        // A stale version: the caller knows the current one is 6, the parent serves 5.
        assert_eq!(
            open(&key(), Kind::Key, ID, Some(6), 2, &b).unwrap_err(),
            SealError::VersionMismatch {
                expected: 6,
                found: 5
            }
        );
        let other = DataKey::from_bytes([8; 32]);
        assert_eq!(
            code(open(&other, Kind::Key, ID, Some(5), 2, &b)),
            "auth_failed"
        );
    }

    #[test]
    fn rewritten_headers_fail_the_tag() {
        // A parent that rewrites the header to name another id, kind or epoch (so the header
        // checks pass) still fails: the AAD and the derived key both change.
        let b = sealed();
        let body = &b[FIXED_HEADER + ID.len()..];
        let nonce = parse_header(&b).unwrap().nonce;
        for (kind, id, version, epoch) in [
            (Kind::Key, "keys/bob-1", 5, 2),
            (Kind::Config, ID, 5, 2),
            (Kind::Key, ID, 5, 3),
            (Kind::Key, ID, 6, 2),
        ] {
            let mut forged = header(kind, id, version, epoch, &nonce);
            forged.extend_from_slice(body);
            assert_eq!(
                code(open(&key(), kind, id, Some(version), epoch, &forged)),
                "auth_failed"
            );
        }
    }

    #[test]
    fn hkdf_separates_ids_kinds_and_epochs() {
        let n = [3u8; NONCE_LEN];
        let pt = [0u8; 32];
        let body = |kind, id: &str, epoch| {
            let b = seal_with_nonce(&key(), kind, id, 1, epoch, n, &pt).unwrap();
            b[FIXED_HEADER + id.len()..].to_vec()
        };
        let a = body(Kind::Key, "a1", 0);
        // Same data key, nonce, plaintext and length of id: a different keystream and tag.
        assert_ne!(a, body(Kind::Key, "b1", 0));
        assert_ne!(a, body(Kind::Config, "a1", 0));
        assert_ne!(a, body(Kind::Key, "a1", 1));
        // Deterministic given the nonce (so the differences above come from the key).
        assert_eq!(a, body(Kind::Key, "a1", 0));
        // The version is not in the key (only in the AAD): same keystream, different tag.
        let v2 = seal_with_nonce(&key(), Kind::Key, "a1", 2, 0, n, &pt).unwrap();
        assert_eq!(v2[FIXED_HEADER + 2..][..32], a[..32]);
        assert_ne!(v2[FIXED_HEADER + 2 + 32..], a[32..]);
    }

    #[test]
    fn bad_ids_and_garbage_are_errors_not_panics() {
        for id in ["", "/a", "a/../b", "a b", "é", &"x".repeat(MAX_ID + 1)] {
            assert_eq!(
                seal(&key(), Kind::Key, id, 1, 0, b"x").unwrap_err().code(),
                "bad_id",
                "{id:?}"
            );
            assert_eq!(
                code(open(&key(), Kind::Key, id, None, 0, &sealed())),
                "bad_id"
            );
        }
        let mut b = sealed();
        b[9] = 0;
        assert_eq!(code(open_default(&b)), "unknown_kind");
        b[9] = 200;
        assert_eq!(code(open_default(&b)), "unknown_kind");
        let mut b = sealed();
        b[10] = 0;
        assert_eq!(code(open_default(&b)), "bad_id");
        b[10] = 129;
        assert_eq!(code(open_default(&b)), "bad_id");
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..5_000 {
            let len = (x % 80) as usize;
            let mut buf = MAGIC.to_vec();
            buf.push(1);
            for _ in 0..len {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                buf.push(x as u8);
            }
            assert!(open(&key(), Kind::Key, ID, None, 2, &buf).is_err());
            let _ = parse_header(&buf);
        }
    }

    #[test]
    fn data_key_debug_is_redacted() {
        let k = DataKey::from_bytes([0x41; 32]);
        let d = format!("{k:?}");
        assert!(!d.contains("65") && !d.contains("41") && d.contains("redacted"));
        assert!(DataKey::from_slice(&[0; 31]).is_none());
        assert!(DataKey::generate().is_ok());
    }
}
