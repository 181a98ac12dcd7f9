//! Keys the enclave holds: the secret (zeroized on drop, never printed), the owner who must
//! approve every use, and the sealable record format.

use std::fmt;
use std::str::FromStr;

use k256::elliptic_curve::sec1::ToEncodedPoint;
use zeroize::Zeroizing;

use crate::codec::{Reader, hex32, parse_hex};
use crate::error::Error;

/// Identifies a held key: 16 random bytes, shown as 32 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub [u8; 16]);

/// Identifies an aggregate key record: 16 random bytes, shown as hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AggregateId(pub [u8; 16]);

macro_rules! hex_id {
    ($t:ident, $name:literal) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&hex32(&self.0))
            }
        }
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($name, "({})"), self)
            }
        }
        impl FromStr for $t {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self, Error> {
                parse_hex(s).map($t).ok_or(Error::InvalidRequest(concat!(
                    $name,
                    " must be 32 hex digits"
                )))
            }
        }
    };
}
hex_id!(KeyId, "KeyId");
hex_id!(AggregateId, "AggregateId");

/// RecordStore record name of a key.
pub(crate) fn key_record_name(id: &KeyId) -> String {
    format!("key/{id}")
}

/// RecordStore record name of a key's public facts.
pub(crate) fn key_info_record_name(id: &KeyId) -> String {
    format!("keyinfo/{id}")
}

/// Validates a 32-byte x-only BIP-340 public key (it must lift to a curve point).
pub(crate) fn parse_owner(owner: &[u8; 32]) -> Result<k256::schnorr::VerifyingKey, Error> {
    k256::schnorr::VerifyingKey::from_bytes(owner).map_err(|_| Error::InvalidOwnerKey)
}

/// Public facts about a held key; safe to log and return to anyone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    pub id: KeyId,
    /// Compressed SEC1 public key, the form MuSig2 key aggregation uses.
    pub public_key: [u8; 33],
    /// The x-only BIP-340 public key of the client who must approve every use of this key.
    pub owner: [u8; 32],
    /// Unix seconds when the key was generated or imported.
    pub created: u64,
}

const INFO_MAGIC: &[u8; 4] = b"SGKI";
const INFO_VERSION: u8 = 1;
/// magic, version, id, public key, owner, created.
const INFO_RECORD_LEN: usize = 4 + 1 + 16 + 33 + 32 + 8;

impl KeyInfo {
    /// The public record kept beside the secret one, so that describing a key, building an
    /// aggregate or opening a session never opens the secret (threat: a secret decrypted, and
    /// so exposed to any memory disclosure, on a request nobody approved):
    /// `"SGKI" || 0x01 || id[16] || public_key[33] || owner[32] || created u64 BE`.
    pub fn to_record(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(INFO_RECORD_LEN);
        out.extend_from_slice(INFO_MAGIC);
        out.push(INFO_VERSION);
        out.extend_from_slice(&self.id.0);
        out.extend_from_slice(&self.public_key);
        out.extend_from_slice(&self.owner);
        out.extend_from_slice(&self.created.to_be_bytes());
        out
    }

    /// Strict parse: exact length, magic, version, the id asked for, a valid point and owner.
    pub fn from_record(bytes: &[u8], expected_id: &KeyId) -> Result<Self, Error> {
        let bad = |reason| Error::InvalidRecord {
            kind: "key info",
            reason,
        };
        if bytes.len() != INFO_RECORD_LEN {
            return Err(bad("wrong length"));
        }
        let t = |_| bad("truncated");
        let mut r = Reader::new(bytes);
        if r.take(4).map_err(t)? != INFO_MAGIC {
            return Err(bad("wrong magic"));
        }
        if r.u8().map_err(t)? != INFO_VERSION {
            return Err(bad("unsupported version"));
        }
        let id = KeyId(r.array().map_err(t)?);
        if id != *expected_id {
            return Err(bad("id does not match the record name"));
        }
        let public_key: [u8; 33] = r.array().map_err(t)?;
        if crate::aggregate::strict_point(&public_key).is_none() {
            return Err(bad("invalid public key"));
        }
        let owner: [u8; 32] = r.array().map_err(t)?;
        parse_owner(&owner).map_err(|_| bad("invalid owner key"))?;
        let created = r.u64().map_err(t)?;
        Ok(Self {
            id,
            public_key,
            owner,
            created,
        })
    }
}

/// A secret key held by the enclave.
///
/// Threat: secret exposure through logs, panics or freed memory. The secret lives in a
/// `k256::SecretKey`, which zeroizes itself on drop; `Debug` prints only public fields; there is
/// no `Clone`, so copies of the secret are not made by accident.
pub struct HeldKey {
    id: KeyId,
    secret: k256::SecretKey,
    public_key: [u8; 33],
    owner: [u8; 32],
    created: u64,
}

const KEY_MAGIC: &[u8; 4] = b"SGKY";
const KEY_VERSION: u8 = 1;
/// magic, version, id, secret, owner, created.
const KEY_RECORD_LEN: usize = 4 + 1 + 16 + 32 + 32 + 8;

impl HeldKey {
    /// Builds a key from a 32-byte secret (the import path). The secret buffer is wiped when
    /// the caller's `Zeroizing` drops.
    pub fn from_secret(
        id: KeyId,
        secret: &Zeroizing<[u8; 32]>,
        owner: [u8; 32],
        created: u64,
    ) -> Result<Self, Error> {
        let secret = k256::SecretKey::from_bytes(secret.as_ref().into())
            .map_err(|_| Error::InvalidSecretKey)?;
        parse_owner(&owner)?;
        let mut public_key = [0u8; 33];
        public_key.copy_from_slice(secret.public_key().to_encoded_point(true).as_bytes());
        Ok(Self {
            id,
            secret,
            public_key,
            owner,
            created,
        })
    }

    pub fn id(&self) -> KeyId {
        self.id
    }

    pub fn public_key(&self) -> [u8; 33] {
        self.public_key
    }

    pub fn owner(&self) -> [u8; 32] {
        self.owner
    }

    pub fn created(&self) -> u64 {
        self.created
    }

    pub fn info(&self) -> KeyInfo {
        KeyInfo {
            id: self.id,
            public_key: self.public_key,
            owner: self.owner,
            created: self.created,
        }
    }

    /// The secret as the musig2 crate's scalar type. That type is `Copy` and has no zeroize, so
    /// callers keep it on the stack for the duration of one signing call only.
    pub(crate) fn signing_scalar(&self) -> musig2::secp::Scalar {
        musig2::secp::Scalar::from(self.secret.to_nonzero_scalar())
    }

    /// The record to seal: `"SGKY" || 0x01 || id[16] || secret[32] || owner[32] || created u64 BE`.
    /// The public key is not stored; it is recomputed from the secret on parse, so the two can
    /// never disagree.
    pub fn to_record(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(KEY_RECORD_LEN));
        out.extend_from_slice(KEY_MAGIC);
        out.push(KEY_VERSION);
        out.extend_from_slice(&self.id.0);
        out.extend_from_slice(&Zeroizing::new(<[u8; 32]>::from(self.secret.to_bytes()))[..]);
        out.extend_from_slice(&self.owner);
        out.extend_from_slice(&self.created.to_be_bytes());
        out
    }

    /// Parses a record strictly: exact length, magic, version, a valid secret and owner key.
    ///
    /// Threat: the store is outside the enclave's memory, and a record could be served under
    /// another name (swap) or altered. The id inside the record must equal the id asked for,
    /// and every field is validated before use.
    pub fn from_record(bytes: &[u8], expected_id: &KeyId) -> Result<Self, Error> {
        let bad = |reason| Error::InvalidRecord {
            kind: "key",
            reason,
        };
        if bytes.len() != KEY_RECORD_LEN {
            return Err(bad("wrong length"));
        }
        let mut r = Reader::new(bytes);
        let truncated = |_| bad("truncated");
        if r.take(4).map_err(truncated)? != KEY_MAGIC {
            return Err(bad("wrong magic"));
        }
        if r.u8().map_err(truncated)? != KEY_VERSION {
            return Err(bad("unsupported version"));
        }
        let id = KeyId(r.array().map_err(truncated)?);
        if id != *expected_id {
            return Err(bad("id does not match the record name"));
        }
        let secret = Zeroizing::new(r.array::<32>().map_err(truncated)?);
        let owner: [u8; 32] = r.array().map_err(truncated)?;
        let created = r.u64().map_err(truncated)?;
        if !r.is_empty() {
            return Err(bad("trailing bytes"));
        }
        Self::from_secret(id, &secret, owner, created).map_err(|e| match e {
            Error::InvalidSecretKey => bad("invalid secret"),
            Error::InvalidOwnerKey => bad("invalid owner key"),
            other => other,
        })
    }
}

impl fmt::Debug for HeldKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HeldKey")
            .field("id", &self.id)
            .field("public_key", &hex32(&self.public_key))
            .field("owner", &hex32(&self.owner))
            .field("created", &self.created)
            .field("secret", &"<redacted>")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner() -> [u8; 32] {
        // x-coordinate of the generator: a valid x-only key.
        parse_hex("79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798").unwrap()
    }

    fn key() -> HeldKey {
        HeldKey::from_secret(
            KeyId([7; 16]),
            &Zeroizing::new([3u8; 32]),
            owner(),
            1_700_000_000,
        )
        .unwrap()
    }

    #[test]
    fn record_round_trip() {
        let k = key();
        let rec = k.to_record();
        assert_eq!(rec.len(), KEY_RECORD_LEN);
        let back = HeldKey::from_record(&rec, &k.id()).unwrap();
        assert_eq!(back.info(), k.info());
    }

    #[test]
    fn info_record_round_trip_and_strict_parse() {
        let info = key().info();
        let rec = info.to_record();
        assert_eq!(KeyInfo::from_record(&rec, &info.id).unwrap(), info);
        assert!(KeyInfo::from_record(&rec, &KeyId([8; 16])).is_err());
        assert!(KeyInfo::from_record(&rec[..rec.len() - 1], &info.id).is_err());
        let mut m = rec.clone();
        m[21] = 0x05;
        assert!(KeyInfo::from_record(&m, &info.id).is_err());
    }

    #[test]
    fn debug_never_prints_the_secret() {
        let k = key();
        let dbg = format!("{k:?}");
        assert!(dbg.contains("<redacted>"));
        assert!(!dbg.contains(&hex32(&[3u8; 32])));
    }

    #[test]
    fn strict_parse_rejects_every_malformation() {
        let k = key();
        let rec = k.to_record();
        let id = k.id();
        assert!(HeldKey::from_record(&rec[..rec.len() - 1], &id).is_err());
        let mut longer = rec.to_vec();
        longer.push(0);
        assert!(HeldKey::from_record(&longer, &id).is_err());
        assert!(HeldKey::from_record(&rec, &KeyId([8; 16])).is_err());
        for (offset, value) in [(0usize, b'X'), (4, 2)] {
            let mut m = rec.to_vec();
            m[offset] = value;
            assert!(HeldKey::from_record(&m, &id).is_err());
        }
        // Zero secret.
        let mut m = rec.to_vec();
        m[21..53].fill(0);
        assert!(HeldKey::from_record(&m, &id).is_err());
        // Secret above the curve order.
        let mut m = rec.to_vec();
        m[21..53].fill(0xff);
        assert!(HeldKey::from_record(&m, &id).is_err());
        // Owner x-coordinate not on the curve (BIP-340 test vector 5's public key).
        let mut m = rec.to_vec();
        m[53..85].copy_from_slice(
            &parse_hex::<32>("eefdea4cdb677750a420fee807eacf21eb9898ae79b9768766e4faa04a2d4a34")
                .unwrap(),
        );
        assert!(HeldKey::from_record(&m, &id).is_err());
    }

    #[test]
    fn ids_parse_and_print_as_hex() {
        let id: KeyId = "000102030405060708090a0b0c0d0e0f".parse().unwrap();
        assert_eq!(id.0[15], 15);
        assert_eq!(id.to_string(), "000102030405060708090a0b0c0d0e0f");
        assert!("zz".parse::<KeyId>().is_err());
    }
}
