//! The quorum root (`/v1/quorum/...`): a second root of the sealed state, split among
//! administrators, for when KMS is gone (a deleted key, a lost account, a region down) or for a
//! deployment with no AWS at all.
//!
//! The measured configuration names the administrators (each a BIP-340 signing key and an
//! X25519 HPKE key, made by `sigil admin-key new`) and the threshold k of n.
//!
//! - **Genesis** (`quorum/genesis`, approved by one administrator's signature over
//!   [`genesis_digest`]): the enclave draws a root secret, splits it with Feldman verifiable
//!   secret sharing over secp256k1 (`sigil-quorum`), seals share i to administrator i's HPKE key
//!   ([`share_info`]: bound to the genesis id and the index), wraps the state's data key under
//!   the root and stores all of it, with the public commitments, in the parent's blob store.
//! - **Share fetch** (`quorum/share`): anyone may fetch a sealed share (only its administrator
//!   can open it); the administrator checks it against the commitments before keeping it.
//! - **Unlock** (`quorum/unlock`): an enclave that cannot get its data key from KMS is locked
//!   (`/v1/health` says so). Each administrator posts its share in an encapsulated request
//!   (sealed to the attested per-boot key) with a signature over [`share_digest`] bound to that
//!   key. A share that fails the verifiable check is refused with the administrator named; at
//!   k good shares the root is rebuilt, checked against the commitments, the data key
//!   unwrapped and every share copy wiped.
//! - **Re-share** (`quorum/reshare`): a new set of administrators or a new threshold, approved
//!   by k of the current administrators ([`reshare_digest`]), with the root in memory (after
//!   genesis or an unlock). A new root is drawn and split among the new set and the data key
//!   wrapped under it: the old shares stop working. The record keeps each re-share with its
//!   approvals, so a later boot checks the chain back to the measured administrators.
//! - **Key forwarding** (`quorum/forward`, then `quorum/receive`): an enclave that holds the
//!   root seals it to another enclave of the very same image (PCR0, PCR1 and PCR2 equal: the
//!   same code and the same measured quorum) that attests a fresh per-boot key, in HPKE auth
//!   mode bound to the quorum, the genesis and the recipient's key ([`forward_info`]). The
//!   recipient checks the sender's document the same way, opens the root, checks it against
//!   the commitments of the record it reads itself and unwraps the data key: a fleet on several
//!   parents shares one state without a ceremony each time.
//! - **Status** (`quorum/status`): the genesis, the administrators and whose shares are held.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::wire::{Base64Bytes, Hex32, Point, SecretHex, Signature, tagged_digest};

/// Most administrators of a quorum.
pub const MAX_ADMINS: usize = 16;
/// Longest administrator name.
pub const MAX_ADMIN_NAME: usize = 32;
/// A share on the wire: its index (1..=n) then its 32-byte value.
pub const SHARE_LEN: usize = 33;
/// A sealed share's ciphertext: the share and the AEAD tag.
pub const SEALED_SHARE_LEN: usize = SHARE_LEN + 16;

/// An administrator as the measured configuration names them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Admin {
    /// A short name (`[a-z0-9_-]`, 1..=32), used in messages.
    pub name: String,
    /// The BIP-340 x-only key whose signatures approve genesis and share posts.
    pub sign: Hex32,
    /// The X25519 key this administrator's share is sealed to.
    pub hpke: Hex32,
}

/// Checks a quorum's shape: 2 <= k <= n <= [`MAX_ADMINS`], names well-formed and distinct,
/// keys distinct. The signing keys' curve check is the enclave's and the client's.
pub fn check_admins(threshold: u16, admins: &[Admin]) -> Result<(), String> {
    let n = admins.len();
    if !(2..=MAX_ADMINS).contains(&n) || !(2..=n).contains(&usize::from(threshold)) {
        return Err(format!(
            "a quorum of {threshold} of {n}: need 2 <= threshold <= administrators <= {MAX_ADMINS}"
        ));
    }
    for (i, a) in admins.iter().enumerate() {
        let ok = (1..=MAX_ADMIN_NAME).contains(&a.name.len())
            && a.name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !ok {
            return Err(format!(
                "administrator {}: the name must be 1..={MAX_ADMIN_NAME} of [a-z0-9_-]",
                i + 1
            ));
        }
        for b in &admins[..i] {
            if b.name == a.name || b.sign == a.sign || b.hpke == a.hpke {
                return Err(format!(
                    "administrators {:?} and {:?} share a name or a key",
                    b.name, a.name
                ));
            }
        }
    }
    Ok(())
}

/// What identifies a quorum configuration: the threshold and the administrators in order.
/// Two enclaves with the same digest take the same shares (key forwarding compares it).
pub fn config_digest(threshold: u16, admins: &[Admin]) -> [u8; 32] {
    let mut fields: Vec<Vec<u8>> = vec![threshold.to_be_bytes().to_vec()];
    for a in admins {
        let mut f = vec![u8::try_from(a.name.len()).unwrap_or(u8::MAX)];
        f.extend_from_slice(a.name.as_bytes());
        f.extend_from_slice(&a.sign.0);
        f.extend_from_slice(&a.hpke.0);
        fields.push(f);
    }
    tagged_digest(
        "sigil/quorum-config/v1",
        fields.iter().map(|f| f.as_slice()),
    )
}

/// The HPKE `info` of share `index` of genesis `genesis`: a share sealed for one genesis or
/// index does not open as another's (a parent that swaps sealed shares between
/// administrators or between geneses gets a decryption failure, not a wrong share).
pub fn share_info(genesis: &[u8; 32], index: u8) -> Vec<u8> {
    let mut info = b"sigil quorum share v1".to_vec();
    info.push(0);
    info.extend_from_slice(genesis);
    info.push(index);
    info
}

/// What an administrator signs to approve genesis for a quorum configuration
/// ([`config_digest`]); bound to the enclave's per-boot key with `wire::owner_message`.
pub fn genesis_digest(config: &[u8; 32]) -> [u8; 32] {
    tagged_digest("sigil/quorum-genesis/v1", [&config[..]])
}

/// What an administrator signs to post its share: the genesis, the index and a hash of the
/// share (the share itself travels sealed); bound to the enclave's per-boot key with
/// `wire::owner_message`, so a captured post is good at that boot only.
pub fn share_digest(genesis: &[u8; 32], index: u8, share: &[u8; SHARE_LEN]) -> [u8; 32] {
    let hash: [u8; 32] = Sha256::digest(share).into();
    tagged_digest(
        "sigil/quorum-share/v1",
        [&genesis[..], &[index][..], &hash[..]],
    )
}

/// What an administrator signs to approve a re-share of genesis `genesis` to the
/// configuration `config` ([`config_digest`] of the new threshold and administrators); bound to
/// the enclave's per-boot key with `wire::owner_message`.
pub fn reshare_digest(genesis: &[u8; 32], config: &[u8; 32]) -> [u8; 32] {
    tagged_digest("sigil/quorum-reshare/v1", [&genesis[..], &config[..]])
}

/// One administrator's approval: its index among the current administrators and its
/// signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approval {
    pub admin: u8,
    pub signature: Signature,
}

/// `POST /v1/quorum/reshare`: the new quorum and k current administrators' approvals over
/// [`reshare_digest`] for this boot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReshareRequest {
    pub threshold: u16,
    pub admins: Vec<Admin>,
    pub approvals: Vec<Approval>,
}

/// The HPKE `info` of a forwarded root: the quorum ([`config_digest`]), the genesis and the
/// recipient's per-boot key. A root forwarded for another quorum, genesis or enclave does not
/// open.
pub fn forward_info(config: &[u8; 32], genesis: &[u8; 32], recipient: &[u8; 32]) -> Vec<u8> {
    let mut info = b"sigil quorum forward v1".to_vec();
    info.push(0);
    info.extend_from_slice(config);
    info.extend_from_slice(genesis);
    info.extend_from_slice(recipient);
    info
}

/// `POST /v1/quorum/forward`: the recipient's fresh attestation document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardRequest {
    pub document: Base64Bytes,
}

/// The root sealed from one enclave to another, for the coordinator to carry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Forwarded {
    pub genesis: Hex32,
    /// The HPKE encapsulated key (auth mode, the sender's per-boot key).
    pub enc: Hex32,
    /// The root (32 bytes) sealed with [`forward_info`].
    pub ciphertext: Base64Bytes,
}

/// `POST /v1/quorum/receive`: the sender's fresh attestation document and what it sealed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiveRequest {
    pub document: Base64Bytes,
    pub forwarded: Forwarded,
}

/// `POST /v1/quorum/status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusRequest {}

/// `POST /v1/quorum/genesis`: one administrator approves genesis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisRequest {
    /// The approving administrator's index (1..=n).
    pub admin: u8,
    /// Its signature over [`genesis_digest`] of the configuration, for this boot.
    pub signature: Signature,
}

/// `POST /v1/quorum/share`: an administrator's sealed share.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShareRequest {
    pub index: u8,
}

/// `POST /v1/quorum/unlock`: an administrator's share, posted.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnlockRequest {
    /// The genesis the share belongs to (the administrator pinned it at fetch).
    pub genesis: Hex32,
    pub index: u8,
    /// The share: its index then its value.
    pub share: SecretHex<SHARE_LEN>,
    /// The administrator's signature over [`share_digest`], for this boot.
    pub signature: Signature,
}

/// What the enclave answers about its quorum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuorumView {
    /// How many re-shares the genesis has been through (0: the measured administrators).
    pub generation: u32,
    /// `starting` (the record is not read yet: the parent's store is not reachable),
    /// `awaiting_genesis` (no genesis yet), `locked` (the sealed state waits for shares),
    /// `unlocked` (the state is open and the root is in memory) or `open` (the state is open
    /// from KMS; the root is not in memory).
    pub state: String,
    /// The current threshold and administrators (the measured ones until a re-share).
    pub threshold: u16,
    pub admins: Vec<Admin>,
    /// [`config_digest`] of the current quorum.
    pub config: Hex32,
    /// [`config_digest`] of the measured quorum configuration.
    pub measured: Hex32,
    /// The genesis id, once there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub genesis: Option<Hex32>,
    /// The public commitments of the sharing (the first is the root's public key).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub commitments: Vec<Point>,
    /// The administrators whose good shares this boot holds, waiting for the threshold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub received: Vec<String>,
}

/// One administrator's share, sealed to its HPKE key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealedShare {
    pub genesis: Hex32,
    pub index: u8,
    pub admin: String,
    pub threshold: u16,
    /// The HPKE encapsulated key.
    pub enc: Hex32,
    /// The share sealed with [`share_info`], no associated data.
    pub ciphertext: Base64Bytes,
    pub commitments: Vec<Point>,
}
