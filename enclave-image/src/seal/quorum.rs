//! The quorum root: a second root of the sealed state, split among the administrators the
//! measured configuration names (see `sigil_protocol::quorum` for the protocol).
//!
//! Genesis draws a root secret, splits it k of n with Feldman VSS (`sigil-quorum`), seals
//! share i to administrator i's HPKE key, and wraps the state's data key under a key derived
//! from the root. All of it goes into the parent's blob store as [`RECORD_NAME`] (the shares
//! are sealed, the commitments public, the data key wrapped). The root itself is kept in
//! memory only, and only after genesis or an unlock.
//!
//! What the parent can do with the record:
//! - Read it: the shares open only with the administrators' keys, the wrapped key only with
//!   the root.
//! - Alter a share, the commitments or the wrapped key: the wrapped key's associated data
//!   covers the genesis id, the configuration, the commitments and every sealed share, so the
//!   rebuilt root does not open it; a share altered in transit fails its administrator's
//!   check against the commitments it pinned at fetch.
//! - Replace the whole record with one of its own making (its own root, a data key it knows):
//!   an enclave whose state is open (from KMS) refuses it ([`key_check`] is derived from the
//!   real data key); a locked enclave cannot tell, so administrators pin the genesis id and
//!   commitments when they fetch their share and refuse to post it to an enclave that shows
//!   another genesis (`sigil admin unlock`). A record for another quorum configuration is
//!   refused outright.
//! - Delete it, or serve an older one (from before a re-share): the state's sealed quorum
//!   marker (`seal::service`) refuses a record that does not descend from it once the state
//!   is open, and refuses a second genesis while it exists.
//! - Keep a copy of an old record: removed administrators who kept their share files could,
//!   with it and k of them, rebuild the old root and the data key offline. A re-share does
//!   not rotate the data key (yet), so it protects against lost or departed administrators
//!   going forward, not against k old shares already exposed.

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::hkdf::{HKDF_SHA256, Salt};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sigil_protocol::encap::seal_base;
use sigil_protocol::quorum::{
    Admin, Approval, SEALED_SHARE_LEN, SHARE_LEN, check_admins, config_digest, reshare_digest,
    share_info,
};
use sigil_protocol::wire::{Base64Bytes, Hex, Hex32, Point, tagged_digest};
use sigil_quorum::{Commitments, Share};
use zeroize::Zeroizing;

use super::DataKey;
use crate::boot::config::QuorumConfig;

/// Blob-store name of the genesis record (not sealed: see the module comment).
pub const RECORD_NAME: &str = "quorum/genesis";
/// A record of 16 administrators is under 8 KiB of JSON; each re-share it keeps adds up to
/// about 6 KiB (the new administrators and the approvals).
const MAX_RECORD: usize = 1024 * 1024;
const WRAP_SALT: &[u8] = b"sigil quorum wrap v1";
/// Re-shares a record keeps (each a few KiB at most): administrators can be rotated this
/// many times before the state needs a new genesis.
pub const MAX_LINEAGE: usize = 128;

/// What is stored under [`RECORD_NAME`].
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisRecord {
    pub v: u32,
    pub id: Hex32,
    /// `config_digest` of the current quorum (`threshold`, `admins`).
    pub config: Hex32,
    pub threshold: u16,
    /// The current administrators: the measured ones, or those of the last re-share.
    pub admins: Vec<Admin>,
    /// Every re-share from the measured administrators to the current ones, with its
    /// approvals, checked link by link at each boot.
    pub lineage: Vec<Reshare>,
    pub commitments: Vec<Point>,
    /// Share i+1 sealed to administrator i+1.
    pub shares: Vec<StoredShare>,
    /// `nonce || AES-256-GCM(wrap key, nonce, aad = wrap_aad, data key)`.
    pub wrapped_key: Base64Bytes,
    /// [`key_check`] of the data key.
    pub key_check: Hex32,
}

/// One re-share: the genesis it replaced, the new quorum, and the approvals of k
/// administrators of the quorum before it, made for the boot whose HPKE key is `boot_key`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reshare {
    pub from_genesis: Hex32,
    pub threshold: u16,
    pub admins: Vec<Admin>,
    pub boot_key: Hex32,
    pub approvals: Vec<Approval>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredShare {
    pub index: u8,
    pub enc: Hex32,
    pub ciphertext: Base64Bytes,
}

/// Why a quorum step failed; the API maps each to a code.
#[derive(Debug, thiserror::Error)]
pub enum QuorumError {
    #[error("the quorum record {RECORD_NAME}: {0}")]
    BadRecord(String),
    #[error("{0}")]
    Crypto(String),
    #[error("share {index} of administrator {admin:?} does not match the genesis commitments")]
    BadShare { index: u8, admin: String },
    #[error("the quorum record wraps another data key than this state's: the parent replaced it")]
    OtherState,
    /// A re-share's approvals fall short (the message says whose or how many).
    #[error("{0}")]
    Approvals(String),
    /// A re-share's new quorum is malformed (its shape or a key).
    #[error("the new quorum: {0}")]
    NewQuorum(String),
}

impl GenesisRecord {
    /// Parses and checks a stored record against the measured configuration: its shape, and
    /// every re-share back to the measured administrators. Threat: a parent that writes a
    /// record naming administrators of its own, to unlock a state it made with their shares.
    pub fn parse(bytes: &[u8], measured: &QuorumConfig) -> Result<GenesisRecord, QuorumError> {
        let bad = |m: String| QuorumError::BadRecord(m);
        if bytes.len() > MAX_RECORD {
            return Err(bad(format!("{} bytes; at most {MAX_RECORD}", bytes.len())));
        }
        let r: GenesisRecord = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
        if r.v != 1 {
            return Err(bad(format!("format {} (this build reads 1)", r.v)));
        }
        if r.lineage.len() > MAX_LINEAGE {
            return Err(bad(format!("more than {MAX_LINEAGE} re-shares")));
        }
        let (mut threshold, mut admins) = (measured.threshold, measured.admins.clone());
        for (i, link) in r.lineage.iter().enumerate() {
            check_approvals(
                threshold,
                &admins,
                &link.from_genesis.0,
                link.threshold,
                &link.admins,
                &link.boot_key.0,
                &link.approvals,
            )
            .map_err(|e| bad(format!("re-share {}: {e}", i + 1)))?;
            (threshold, admins) = (link.threshold, link.admins.clone());
        }
        if r.threshold != threshold || r.admins != admins {
            return Err(bad(
                "its administrators are not the measured ones or those of its last re-share".into(),
            ));
        }
        if r.config.0 != config_digest(r.threshold, &r.admins) {
            return Err(bad("its configuration digest disagrees with it".into()));
        }
        if r.commitments.len() != usize::from(r.threshold) || r.shares.len() != r.admins.len() {
            return Err(bad("its threshold or share count disagrees with it".into()));
        }
        for (i, s) in r.shares.iter().enumerate() {
            if usize::from(s.index) != i + 1 || s.ciphertext.0.len() != SEALED_SHARE_LEN {
                return Err(bad(format!("share {} is malformed", i + 1)));
            }
        }
        // Every commitment must be a curve point (checked once, here).
        r.commitments()
            .check()
            .map_err(|e| bad(format!("commitments: {e}")))?;
        Ok(r)
    }

    /// The current quorum as a configuration.
    pub fn quorum(&self) -> QuorumConfig {
        QuorumConfig {
            threshold: self.threshold,
            admins: self.admins.clone(),
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn commitments(&self) -> Commitments {
        Commitments(self.commitments.iter().map(|p| p.0).collect())
    }

    /// What the wrapped key's associated data covers: the whole record but the wrapped key
    /// and the key check.
    fn wrap_aad(&self) -> [u8; 32] {
        let mut shares = Sha256::new();
        for s in &self.shares {
            shares.update([s.index]);
            shares.update(s.enc.0);
            shares.update(&s.ciphertext.0);
        }
        let shares: [u8; 32] = shares.finalize().into();
        let mut commits = Sha256::new();
        for c in &self.commitments {
            commits.update(c.0);
        }
        let commits: [u8; 32] = commits.finalize().into();
        tagged_digest(
            "sigil/quorum-wrap/v1",
            [
                &self.id.0[..],
                &self.config.0[..],
                &self.threshold.to_be_bytes()[..],
                &commits[..],
                &shares[..],
            ],
        )
    }

    /// The data key, unwrapped with the rebuilt root.
    pub fn unwrap_key(&self, root: &[u8; 32]) -> Result<DataKey, QuorumError> {
        let wrapped = &self.wrapped_key.0;
        if wrapped.len() != NONCE_LEN + 32 + AES_256_GCM.tag_len() {
            return Err(QuorumError::BadRecord(
                "the wrapped key is malformed".into(),
            ));
        }
        let (nonce, ct) = wrapped.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce)
            .map_err(|_| QuorumError::BadRecord("the wrapped key's nonce".into()))?;
        let mut buf = Zeroizing::new(ct.to_vec());
        let plain = wrap_key(root, &self.id.0)
            .open_in_place(nonce, Aad::from(self.wrap_aad()), &mut buf)
            .map_err(|_| {
                QuorumError::BadRecord(
                    "the wrapped data key does not open under the rebuilt root (the record was \
                     altered)"
                        .into(),
                )
            })?;
        let key = DataKey::from_slice(plain)
            .ok_or_else(|| QuorumError::BadRecord("the wrapped key is not 32 bytes".into()))?;
        if key_check(&key, &self.id.0) != self.key_check.0 {
            return Err(QuorumError::OtherState);
        }
        Ok(key)
    }

    /// Whether this record wraps `key` (an open state checks the record the parent serves).
    pub fn wraps(&self, key: &DataKey) -> bool {
        key_check(key, &self.id.0) == self.key_check.0
    }
}

/// A fact about the data key that names it without revealing it: an open state tells its own
/// record from a substitute.
fn key_check(key: &DataKey, genesis: &[u8; 32]) -> [u8; 32] {
    let secret = key.derive_secret(b"quorum key check");
    tagged_digest("sigil/quorum-key-check/v1", [&secret[..], &genesis[..]])
}

fn wrap_key(root: &[u8; 32], genesis: &[u8; 32]) -> LessSafeKey {
    let prk = Salt::new(HKDF_SHA256, WRAP_SALT).extract(root);
    let info: [&[u8]; 1] = [genesis];
    // 32 bytes of output is always within HKDF-SHA256's limit.
    let okm = prk
        .expand(&info, &AES_256_GCM)
        .expect("HKDF-SHA256 can expand 32 bytes");
    LessSafeKey::new(UnboundKey::from(okm))
}

/// Genesis: a fresh root split among `config`'s administrators, `key` wrapped under it.
/// Returns the record to store and the root (kept in memory).
pub fn genesis(
    config: &QuorumConfig,
    key: &DataKey,
    lineage: Vec<Reshare>,
) -> Result<(GenesisRecord, Zeroizing<[u8; 32]>), QuorumError> {
    let rng = SystemRandom::new();
    let random = |out: &mut [u8]| {
        rng.fill(out)
            .map_err(|_| QuorumError::Crypto("the randomness source failed".into()))
    };
    let mut id = [0u8; 32];
    random(&mut id)?;
    let n = u8::try_from(config.admins.len())
        .map_err(|_| QuorumError::Crypto("too many administrators".into()))?;
    let k = u8::try_from(config.threshold)
        .map_err(|_| QuorumError::Crypto("threshold too large".into()))?;
    // A random 32 bytes is below the group order but for a chance of 2^-128: draw again then.
    let (root, commitments, shares) = loop {
        let mut root = Zeroizing::new([0u8; 32]);
        random(&mut root[..])?;
        match sigil_quorum::split(&root, k, n) {
            Ok((c, s)) => break (root, c, s),
            Err(sigil_quorum::QuorumError::Invalid(m)) if m.contains("secret") => continue,
            Err(e) => return Err(QuorumError::Crypto(e.to_string())),
        }
    };
    let mut sealed = Vec::with_capacity(shares.len());
    for (share, admin) in shares.iter().zip(&config.admins) {
        let bytes = share.to_bytes();
        let (enc, ct) = seal_base(
            &admin.hpke.0,
            &share_info(&id, share.index),
            &[],
            &bytes[..],
        )
        .map_err(|e| QuorumError::Crypto(format!("sealing share {}: {e}", share.index)))?;
        sealed.push(StoredShare {
            index: share.index,
            enc: Hex(enc),
            ciphertext: Base64Bytes(ct),
        });
    }
    drop(shares);
    let mut record = GenesisRecord {
        v: 1,
        id: Hex(id),
        config: Hex(config.digest()),
        threshold: config.threshold,
        admins: config.admins.clone(),
        lineage,
        commitments: commitments.0.iter().map(|c| Hex(*c)).collect(),
        shares: sealed,
        wrapped_key: Base64Bytes(Vec::new()),
        key_check: Hex(key_check(key, &id)),
    };
    let mut nonce = [0u8; NONCE_LEN];
    random(&mut nonce)?;
    let mut buf = Zeroizing::new(key.expose().to_vec());
    // The one key per genesis seals one message: a random nonce cannot repeat.
    wrap_key(&root, &id)
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(record.wrap_aad()),
            &mut *buf,
        )
        .map_err(|_| QuorumError::Crypto("wrapping the data key".into()))?;
    let mut wrapped = nonce.to_vec();
    wrapped.extend_from_slice(&buf);
    record.wrapped_key = Base64Bytes(wrapped);
    Ok((record, root))
}

/// Checks that k distinct administrators of the quorum (`threshold`, `admins`) approved a
/// re-share of `from_genesis` to (`new_threshold`, `new_admins`), for the boot `boot_key`.
pub fn check_approvals(
    threshold: u16,
    admins: &[Admin],
    from_genesis: &[u8; 32],
    new_threshold: u16,
    new_admins: &[Admin],
    boot_key: &[u8; 32],
    approvals: &[Approval],
) -> Result<(), QuorumError> {
    check_admins(new_threshold, new_admins).map_err(QuorumError::NewQuorum)?;
    for a in new_admins {
        k256::schnorr::VerifyingKey::from_bytes(&a.sign.0).map_err(|_| {
            QuorumError::NewQuorum(format!(
                "administrator {:?}: sign is not a BIP-340 public key",
                a.name
            ))
        })?;
    }
    let message = sigil_protocol::wire::owner_message(
        boot_key,
        &reshare_digest(from_genesis, &config_digest(new_threshold, new_admins)),
    );
    check_quorum_approvals(threshold, admins, &message, approvals)
}

/// Checks that at least `threshold` distinct administrators of `admins` signed `message`
/// (BIP-340), each signature valid; names the first that does not verify.
pub fn check_quorum_approvals(
    threshold: u16,
    admins: &[Admin],
    message: &[u8; 32],
    approvals: &[Approval],
) -> Result<(), QuorumError> {
    let fail = |m: String| QuorumError::Approvals(m);
    if approvals.len() > admins.len() {
        return Err(fail("more approvals than administrators".into()));
    }
    let mut seen = std::collections::BTreeSet::new();
    for a in approvals {
        let admin = admins
            .get(usize::from(a.admin).wrapping_sub(1))
            .ok_or_else(|| fail(format!("no administrator {}", a.admin)))?;
        if !seen.insert(a.admin) {
            return Err(fail(format!(
                "administrator {:?} approved twice",
                admin.name
            )));
        }
        let key = k256::schnorr::VerifyingKey::from_bytes(&admin.sign.0)
            .map_err(|_| fail(format!("administrator {:?}'s key", admin.name)))?;
        let sig = k256::schnorr::Signature::try_from(&a.signature.0[..])
            .map_err(|_| fail(format!("administrator {:?}'s signature", admin.name)))?;
        key.verify_raw(message, &sig).map_err(|_| {
            fail(format!(
                "administrator {:?}'s approval does not verify",
                admin.name
            ))
        })?;
    }
    if seen.len() < usize::from(threshold) {
        return Err(fail(format!(
            "{} approval(s); this needs {threshold} of the current administrators",
            seen.len()
        )));
    }
    Ok(())
}

/// An administrator's share checked against the record's commitments (a bad one named).
pub fn check_share(record: &GenesisRecord, share: &[u8; SHARE_LEN]) -> Result<Share, QuorumError> {
    let index = share[0];
    let admin = record
        .admins
        .get(usize::from(index).wrapping_sub(1))
        .map(|a| a.name.clone())
        .unwrap_or_default();
    let bad = || QuorumError::BadShare {
        index,
        admin: admin.clone(),
    };
    let share = Share::from_bytes(share).map_err(|_| bad())?;
    sigil_quorum::verify(&share, &record.commitments()).map_err(|_| bad())?;
    Ok(share)
}

/// The root from at least k checked shares, checked against the root's public key.
pub fn combine(
    record: &GenesisRecord,
    shares: &[Share],
) -> Result<Zeroizing<[u8; 32]>, QuorumError> {
    sigil_quorum::combine(shares, &record.commitments())
        .map_err(|e| QuorumError::Crypto(format!("rebuilding the root: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sigil_protocol::encap::ServerKey;
    use sigil_protocol::quorum::Admin;

    fn admin(i: u8) -> (ServerKey, Admin) {
        let hpke = ServerKey::from_seed(&[i; 32]).unwrap();
        let sign = k256::schnorr::SigningKey::from_bytes(&[i; 32]).unwrap();
        let a = Admin {
            name: format!("admin{i}"),
            sign: Hex(sign.verifying_key().to_bytes().into()),
            hpke: Hex(hpke.public_key()),
        };
        (hpke, a)
    }

    fn open(key: &ServerKey, r: &GenesisRecord, i: usize) -> [u8; SHARE_LEN] {
        let s = &r.shares[i];
        let plain = key
            .open_base(
                &s.enc.0,
                &share_info(&r.id.0, s.index),
                &[],
                &s.ciphertext.0,
            )
            .unwrap();
        plain.try_into().unwrap()
    }

    #[test]
    fn genesis_then_k_shares_unwrap_the_data_key_and_an_altered_record_does_not() {
        let (keys, admins): (Vec<_>, Vec<_>) = (1..=3).map(admin).unzip();
        let config = QuorumConfig {
            threshold: 2,
            admins,
        };
        let data = DataKey::from_bytes([9; 32]);
        let (record, root) = genesis(&config, &data, Vec::new()).unwrap();
        let record =
            GenesisRecord::parse(&record.to_bytes(), &config).expect("a fresh record parses");
        assert!(record.wraps(&data));
        assert!(!record.wraps(&DataKey::from_bytes([8; 32])));
        let s1 = check_share(&record, &open(&keys[0], &record, 0)).unwrap();
        let s3 = check_share(&record, &open(&keys[2], &record, 2)).unwrap();
        let rebuilt = combine(&record, &[s1.clone(), s3]).unwrap();
        assert_eq!(rebuilt, root);
        assert_eq!(record.unwrap_key(&rebuilt).unwrap().expose(), data.expose());
        // One share is not enough.
        assert!(combine(&record, &[s1]).is_err());
        // A share sealed to one administrator does not open for another.
        let s = &record.shares[0];
        assert!(
            keys[1]
                .open_base(&s.enc.0, &share_info(&record.id.0, 1), &[], &s.ciphertext.0)
                .is_err()
        );
        // A share with a changed value fails the verifiable check, and names its admin.
        let mut bad = open(&keys[1], &record, 1);
        bad[32] ^= 1;
        let e = check_share(&record, &bad).unwrap_err();
        assert!(e.to_string().contains("admin2"), "{e}");
        // A record whose sealed share was swapped no longer unwraps the key.
        let mut altered = record.clone();
        altered.shares.swap(0, 1);
        altered.shares[0].index = 1;
        altered.shares[1].index = 2;
        assert!(altered.unwrap_key(&root).is_err());
        // A record for another configuration is refused.
        let mut other = config.clone();
        other.threshold = 3;
        assert!(GenesisRecord::parse(&record.to_bytes(), &other).is_err());
    }

    /// A re-share link signed by the measured administrators, for `new`.
    fn link(from: [u8; 32], new: &QuorumConfig, signers: &[u8]) -> Reshare {
        let boot = [5u8; 32];
        let message = sigil_protocol::wire::owner_message(
            &boot,
            &reshare_digest(&from, &config_digest(new.threshold, &new.admins)),
        );
        let approvals = signers
            .iter()
            .map(|i| {
                let key = k256::schnorr::SigningKey::from_bytes(&[*i; 32]).unwrap();
                Approval {
                    admin: *i,
                    signature: Hex(key.sign_raw(&message, &[0; 32]).unwrap().to_bytes()),
                }
            })
            .collect();
        Reshare {
            from_genesis: Hex(from),
            threshold: new.threshold,
            admins: new.admins.clone(),
            boot_key: Hex(boot),
            approvals,
        }
    }

    #[test]
    fn a_lineage_is_checked_back_to_the_measured_administrators() {
        let measured = QuorumConfig {
            threshold: 2,
            admins: (1..=3).map(|i| admin(i).1).collect(),
        };
        let new = QuorumConfig {
            threshold: 2,
            admins: (4..=6).map(|i| admin(i).1).collect(),
        };
        let data = DataKey::from_bytes([9; 32]);
        let good = vec![link([1; 32], &new, &[1, 3])];
        let (record, _) = genesis(&new, &data, good).unwrap();
        GenesisRecord::parse(&record.to_bytes(), &measured).expect("approved by 2 of 3");
        // One approval is not enough.
        let (one, _) = genesis(&new, &data, vec![link([1; 32], &new, &[2])]).unwrap();
        let e = GenesisRecord::parse(&one.to_bytes(), &measured).unwrap_err();
        assert!(e.to_string().contains("re-share 1"), "{e}");
        // Administrators of the parent's choosing, approving themselves: refused.
        let (forged, _) = genesis(&new, &data, vec![link([1; 32], &new, &[4, 5])]).unwrap();
        assert!(GenesisRecord::parse(&forged.to_bytes(), &measured).is_err());
        // A record naming new administrators with no lineage at all: refused.
        let (bare, _) = genesis(&new, &data, Vec::new()).unwrap();
        assert!(GenesisRecord::parse(&bare.to_bytes(), &measured).is_err());
    }
}
