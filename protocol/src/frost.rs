//! FROST threshold signing across enclaves (`/v1/frost/...`): t of n BIP-340 Taproot
//! signatures by a group whose key shares live in different enclaves.
//!
//! An untrusted coordinator (the CLI, a library, the parents' own network) runs the steps and
//! carries what they return; the enclaves never dial each other.
//!
//! **Key generation** (frost-core's three-part DKG), each step one call per member:
//! 1. `dkg/start`: the members' attestation documents in participant order, the threshold,
//!    and the owner's signature over them ([`dkg_digest`]). Each enclave verifies every
//!    document against its measured peer policy and answers its round-1 package sealed to
//!    each other member ([`PeerMessage`]s, protocol [`FROST_DKG`], round 1).
//! 2. `dkg/round2`: the round-1 messages addressed to this member. It answers its round-2
//!    package for each other member sealed to that member alone (round 2); the payload is its
//!    digest of every round-1 package it saw (32 bytes) then the package.
//! 3. `dkg/finish`: the round-2 messages addressed to this member. It checks that every
//!    member saw the same round-1 packages (a coordinator or a member that showed members
//!    different packages is named), derives its share, seals it, and answers the group
//!    ([`GroupView`]). The coordinator checks that every member's answer agrees.
//!
//! **Signing** by any t members, each step one call per signer:
//! 1. `sign/commit`: the group, the signers, up to [`MAX_BATCH`] 32-byte messages, the
//!    Taproot script tree (`merkle_root`; absent: key path only, BIP-86), and the group
//!    owner's signature over them ([`sign_digest`]), checked by each enclave before it makes
//!    a commitment. It answers one commitment per message; the secret nonces stay in its
//!    memory only.
//! 2. `sign/share`: every signer's commitments. It answers one signature share per message,
//!    consuming its nonces: a session signs once, and a restart forgets it.
//! 3. `sign/aggregate` (any member): the commitments and shares. A signature that does not
//!    verify makes it check the shares and name the first bad signer; the signatures are
//!    verified under the group's Taproot output key before they are returned.

use serde::{Deserialize, Serialize};

use crate::peers::PeerMessage;
use crate::wire::{Base64Bytes, Hex32, Point, Signature, tagged_digest};

/// The peer-message protocol name of key generation.
pub const FROST_DKG: &str = "frost-dkg";
/// Most members of a group taken through the API.
pub const MAX_MEMBERS: usize = 16;
/// Most messages signed in one session.
pub const MAX_BATCH: usize = 16;
/// Largest commitment or signature share taken (each is well under 100 bytes).
pub const MAX_FROST_ITEM: usize = 256;

/// `POST /v1/frost/dkg/start`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DkgStart {
    /// The key generation's id, chosen by the coordinator (fresh per run).
    pub session: Hex32,
    /// Signers needed, 2..=members.
    pub threshold: u16,
    /// The members' attestation documents (fresh), in participant order: the first is
    /// participant 1. The called enclave finds itself by its node.
    pub members: Vec<Base64Bytes>,
    /// The group's owner: its signature approves every signing session.
    pub owner: Hex32,
    pub not_after: u64,
    /// The owner's signature over [`dkg_digest`], for this enclave's boot.
    pub signature: Signature,
}

/// `POST /v1/frost/dkg/round2` and `/finish`: the messages other members sealed to this one
/// in the previous step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DkgContinue {
    pub session: Hex32,
    pub messages: Vec<PeerMessage>,
}

/// Messages for the coordinator to carry, each to its `recipient`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DkgMessages {
    pub messages: Vec<PeerMessage>,
}

/// `POST /v1/frost/group`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupRequest {
    pub group: Hex32,
}

/// A group as one member holds it. Every member's view is the same but for `participant`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupView {
    /// The group's id: the x coordinate of its verifying key.
    pub group: Hex32,
    /// The group's verifying key (the Taproot internal key), compressed.
    pub verifying_key: Point,
    /// The BIP-86 output key (key path, no script tree): what the group's key-path
    /// signatures verify under.
    pub output_key: Hex32,
    pub threshold: u16,
    /// The members' node identities, in participant order.
    pub members: Vec<Hex32>,
    /// Each member's verifying share, in participant order.
    pub verifying_shares: Vec<Point>,
    pub owner: Hex32,
    /// Which participant this enclave is.
    pub participant: u16,
    /// The generation of the shares in use: SHA-256 of the group's public key package (it
    /// changes with each committed refresh; every member of a group in good order agrees).
    pub generation: Hex32,
    /// A refresh this member finished and that waits for the owner's commit: its generation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<Hex32>,
}

/// `POST /v1/frost/sign/commit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignCommit {
    /// The signing session's id, chosen by the coordinator.
    pub session: Hex32,
    pub group: Hex32,
    /// The signers' participant numbers, increasing; at least the threshold.
    pub signers: Vec<u16>,
    /// 1..=[`MAX_BATCH`] messages (for Bitcoin, sighashes).
    pub messages: Vec<Hex32>,
    /// The Taproot script tree's root; absent: key path only (BIP-86).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merkle_root: Option<Hex32>,
    pub not_after: u64,
    /// The group owner's signature over [`sign_digest`], for this enclave's boot.
    pub signature: Signature,
}

/// One signer's commitments (or shares), one per message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignerItems {
    pub participant: u16,
    pub items: Vec<Base64Bytes>,
}

/// `POST /v1/frost/sign/share`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignShare {
    pub session: Hex32,
    /// Every signer's commitments, this enclave's included.
    pub commitments: Vec<SignerItems>,
}

/// `POST /v1/frost/sign/aggregate`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignAggregate {
    pub group: Hex32,
    pub messages: Vec<Hex32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merkle_root: Option<Hex32>,
    pub commitments: Vec<SignerItems>,
    pub shares: Vec<SignerItems>,
}

/// The signatures, one per message, verified under `output_key`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signatures {
    pub output_key: Hex32,
    pub signatures: Vec<Signature>,
}

/// `POST /v1/frost/refresh/start`, at every member: new shares for the same group key (a
/// refresh is a key generation over a polynomial whose secret is zero). The next steps are
/// `dkg/round2` and `dkg/finish`, as for a key generation; `finish` keeps the new share as
/// pending, and `refresh/commit` puts it into use. Old shares stop combining with new ones,
/// so a share that leaked before the refresh is worthless after it. A new refresh of a group
/// ends any other refresh of it in flight at this member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefreshStart {
    pub session: Hex32,
    pub group: Hex32,
    /// The generation being refreshed: every member must be at it (a member on another one
    /// refuses, so members on different generations never finish a refresh together).
    pub generation: Hex32,
    /// Every member's attestation document, in participant order.
    pub members: Vec<Base64Bytes>,
    pub not_after: u64,
    /// The group owner's signature over [`refresh_digest`], for this enclave's boot.
    pub signature: Signature,
}

/// What the group owner signs to let a refresh run: the session, the group, the generation
/// refreshed and the members' node identities in participant order.
pub fn refresh_digest(
    session: &[u8; 32],
    group: &[u8; 32],
    generation: &[u8; 32],
    members: &[[u8; 32]],
    not_after: u64,
) -> [u8; 32] {
    let nodes = members.concat();
    tagged_digest(
        "sigil/frost-refresh/v1",
        [
            &session[..],
            &group[..],
            &generation[..],
            &nodes,
            &not_after.to_be_bytes(),
        ],
    )
}

/// `POST /v1/frost/refresh/commit`, at every member once every member finished the refresh
/// (their `dkg/finish` answers name the same pending generation): the new shares go into use
/// and the old ones are erased. Until then each member signs with its old share, so a refresh
/// that is never finished or committed everywhere costs nothing; a member not yet committed
/// is committed later with the same generation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefreshCommit {
    pub group: Hex32,
    /// The pending generation to put into use.
    pub generation: Hex32,
    pub not_after: u64,
    /// The group owner's signature over [`commit_digest`], for this enclave's boot.
    pub signature: Signature,
}

/// What the group owner signs to put a refreshed generation into use.
pub fn commit_digest(group: &[u8; 32], generation: &[u8; 32], not_after: u64) -> [u8; 32] {
    tagged_digest(
        "sigil/frost-refresh-commit/v1",
        [&group[..], &generation[..], &not_after.to_be_bytes()],
    )
}

/// The peer-message protocol name of share repair.
pub const FROST_REPAIR: &str = "frost-repair";

/// `POST /v1/frost/repair/start`, at each helper: participant `lost`'s share is rebuilt for a
/// new holder (an enclave whose state never held it) by `helpers`, at least the threshold of
/// the other members. The group key and every other share stay as they are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepairStart {
    pub session: Hex32,
    pub group: Hex32,
    /// The participant whose share is lost.
    pub lost: u16,
    /// The helpers' participant numbers, increasing.
    pub helpers: Vec<u16>,
    /// The helpers' attestation documents, in the order of `helpers`.
    pub helper_documents: Vec<Base64Bytes>,
    /// The new holder's attestation document.
    pub new_member: Base64Bytes,
    pub not_after: u64,
    /// The group owner's signature over [`repair_digest`], for this enclave's boot.
    pub signature: Signature,
}

/// `POST /v1/frost/repair/finish`, at the new holder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepairFinish {
    pub session: Hex32,
    pub group: Hex32,
    pub lost: u16,
    pub helpers: Vec<u16>,
    pub helper_documents: Vec<Base64Bytes>,
    /// Every helper's round-2 message to this enclave.
    pub messages: Vec<PeerMessage>,
    /// The group owner (the helpers' messages say who it is; this must agree).
    pub owner: Hex32,
    pub not_after: u64,
    /// The group owner's signature over [`repair_digest`], for this enclave's boot.
    pub signature: Signature,
}

/// What the group owner signs to let a repair run: the session, the group, the lost
/// participant, the helpers and the new holder's node.
pub fn repair_digest(
    session: &[u8; 32],
    group: &[u8; 32],
    lost: u16,
    helpers: &[u16],
    new_node: &[u8; 32],
    not_after: u64,
) -> [u8; 32] {
    let helpers: Vec<u8> = helpers.iter().flat_map(|s| s.to_be_bytes()).collect();
    tagged_digest(
        "sigil/frost-repair/v1",
        [
            &session[..],
            &group[..],
            &lost.to_be_bytes(),
            &helpers,
            &new_node[..],
            &not_after.to_be_bytes(),
        ],
    )
}

/// What the owner signs to let a key generation run: the session, the threshold, the
/// members' node identities in participant order, the owner and the expiry.
pub fn dkg_digest(
    session: &[u8; 32],
    threshold: u16,
    members: &[[u8; 32]],
    owner: &[u8; 32],
    not_after: u64,
) -> [u8; 32] {
    let nodes = members.concat();
    tagged_digest(
        "sigil/frost-dkg/v1",
        [
            &session[..],
            &threshold.to_be_bytes(),
            &nodes,
            &owner[..],
            &not_after.to_be_bytes(),
        ],
    )
}

/// What the group owner signs to let a signing session run: everything the signature will
/// cover and who makes it.
pub fn sign_digest(
    session: &[u8; 32],
    group: &[u8; 32],
    signers: &[u16],
    messages: &[[u8; 32]],
    merkle_root: Option<&[u8; 32]>,
    not_after: u64,
) -> [u8; 32] {
    let signers: Vec<u8> = signers.iter().flat_map(|s| s.to_be_bytes()).collect();
    let messages = messages.concat();
    // Absent and present are told apart by the length (0 or 32).
    let root: &[u8] = merkle_root.map(|r| &r[..]).unwrap_or(&[]);
    tagged_digest(
        "sigil/frost-sign/v1",
        [
            &session[..],
            &group[..],
            &signers,
            &messages,
            root,
            &not_after.to_be_bytes(),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_bind_every_field() {
        let base = sign_digest(&[1; 32], &[2; 32], &[1, 2], &[[3; 32]], None, 9);
        assert_ne!(
            base,
            sign_digest(&[1; 32], &[2; 32], &[1, 3], &[[3; 32]], None, 9)
        );
        assert_ne!(
            base,
            sign_digest(&[1; 32], &[2; 32], &[1, 2], &[[3; 32]], Some(&[0; 32]), 9)
        );
        assert_ne!(
            base,
            sign_digest(&[1; 32], &[2; 32], &[1, 2], &[[3; 32], [3; 32]], None, 9)
        );
        assert_ne!(
            base,
            sign_digest(&[1; 32], &[2; 32], &[1, 2], &[[3; 32]], None, 10)
        );
        let d = dkg_digest(&[1; 32], 2, &[[4; 32], [5; 32]], &[6; 32], 9);
        assert_ne!(d, dkg_digest(&[1; 32], 2, &[[5; 32], [4; 32]], &[6; 32], 9));
        assert_ne!(d, dkg_digest(&[1; 32], 1, &[[4; 32], [5; 32]], &[6; 32], 9));
    }

    #[test]
    fn shapes_are_strict() {
        let j = r#"{"session":"0101010101010101010101010101010101010101010101010101010101010101","messages":[]}"#;
        let r: DkgContinue = serde_json::from_str(j).unwrap();
        assert!(r.messages.is_empty());
        let extra = j.replace("\"messages\"", "\"x\":1,\"messages\"");
        assert!(serde_json::from_str::<DkgContinue>(&extra).is_err());
    }
}
