//! The coordinator of FROST groups across enclaves (`/v1/frost/...`, steps in
//! `sigil_protocol::frost`): it carries sealed messages between the members and checks what
//! they answer. It is untrusted by the enclaves: it sees no share, and a message it changes,
//! replays or redirects is refused by its recipient.

use std::collections::BTreeMap;

use k256::elliptic_curve::PrimeField;
use k256::elliptic_curve::point::AffineCoordinates;
use k256::{ProjectivePoint, Scalar};
use sha2::{Digest, Sha256};
use sigil_protocol::endpoint as ep;
use sigil_protocol::frost::{
    DkgContinue, DkgStart, GroupRequest, GroupView, RefreshCommit, RefreshStart, RepairFinish,
    RepairStart, SignAggregate, SignCommit, SignShare, Signatures, SignerItems, commit_digest,
    dkg_digest, refresh_digest, repair_digest, sign_digest,
};
use sigil_protocol::peers::PeerMessage;
use sigil_protocol::wire::{Base64Bytes, Hex};

use crate::owner::OwnerKey;
use crate::{AttestedEnclave, Client, ClientError};

/// One member as the coordinator reaches it: its API and its verified attestation (whose
/// document the other members are shown).
pub struct Member<'a> {
    pub client: &'a Client,
    pub enclave: &'a AttestedEnclave,
}

impl Member<'_> {
    fn node(&self) -> Result<[u8; 32], ClientError> {
        self.enclave.image.node.ok_or_else(|| {
            ClientError::Protocol(
                "an enclave has no node identity (its sealed state is not open)".into(),
            )
        })
    }
}

fn random32() -> Result<[u8; 32], ClientError> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).map_err(|e| ClientError::Protocol(format!("no randomness: {e}")))?;
    Ok(b)
}

fn mismatch(m: impl Into<String>) -> ClientError {
    ClientError::Protocol(m.into())
}

/// The members' node identities and attestation documents, in order.
fn nodes_and_documents(
    members: &[Member<'_>],
) -> Result<(Vec<[u8; 32]>, Vec<Base64Bytes>), ClientError> {
    let nodes = members
        .iter()
        .map(Member::node)
        .collect::<Result<Vec<_>, _>>()?;
    let documents = members
        .iter()
        .map(|m| Base64Bytes(m.enclave.raw.clone()))
        .collect();
    Ok((nodes, documents))
}

/// The messages addressed to `node`.
fn addressed(all: &[PeerMessage], node: &[u8; 32]) -> Vec<PeerMessage> {
    all.iter()
        .filter(|m| m.recipient.0 == *node)
        .cloned()
        .collect()
}

/// Runs a key generation of `members` (participant i is `members[i-1]`) with `threshold`,
/// owned by `owner`. Returns every member's view, checked to agree: the same group key,
/// output key, threshold, members (the nodes their documents attest, in order), verifying
/// shares and owner, each member at its own place.
pub fn dkg(
    members: &[Member<'_>],
    threshold: u16,
    owner: &OwnerKey,
) -> Result<Vec<GroupView>, ClientError> {
    let session = random32()?;
    let (nodes, documents) = nodes_and_documents(members)?;
    let not_after = owner.not_after();
    let digest = dkg_digest(&session, threshold, &nodes, &owner.x_only(), not_after);

    let mut round1 = Vec::new();
    for m in members {
        let req = DkgStart {
            session: Hex(session),
            threshold,
            members: documents.clone(),
            owner: Hex(owner.x_only()),
            not_after,
            signature: owner.sign_for(m.enclave, &digest)?,
        };
        round1.extend(
            m.client
                .call::<ep::FrostDkgStart>(m.enclave, &req)?
                .messages,
        );
    }
    let views = rounds_2_and_3(members, &nodes, session, &round1)?;
    check_views(&views, &nodes, threshold, &owner.x_only())?;
    Ok(views)
}

/// Steps 2 and 3 of a key generation or a refresh, carrying each member's messages.
fn rounds_2_and_3(
    members: &[Member<'_>],
    nodes: &[[u8; 32]],
    session: [u8; 32],
    round1: &[PeerMessage],
) -> Result<Vec<GroupView>, ClientError> {
    let mut round2 = Vec::new();
    for (m, node) in members.iter().zip(nodes) {
        let req = DkgContinue {
            session: Hex(session),
            messages: addressed(round1, node),
        };
        round2.extend(
            m.client
                .call::<ep::FrostDkgRound2>(m.enclave, &req)?
                .messages,
        );
    }
    let mut views = Vec::new();
    for (m, node) in members.iter().zip(nodes) {
        let req = DkgContinue {
            session: Hex(session),
            messages: addressed(&round2, node),
        };
        views.push(m.client.call::<ep::FrostDkgFinish>(m.enclave, &req)?);
    }
    Ok(views)
}

/// Refreshes every share of `group` (all `members`, in participant order, every one at the
/// generation `group` names): a key generation over a zero secret whose new shares each
/// member keeps as pending, then, once every member's answer names the same pending
/// generation, the owner's commit at every member. The group key and output key stay, every
/// verifying share changes, and old shares are erased. Returns the members' views after the
/// commit, checked to agree. If a commit fails part way, [`commit`] with the pending
/// generation finishes it (members keep signing with their old shares until committed).
pub fn refresh(
    members: &[Member<'_>],
    group: &GroupView,
    owner: &OwnerKey,
) -> Result<Vec<GroupView>, ClientError> {
    let session = random32()?;
    let (nodes, documents) = nodes_and_documents(members)?;
    let not_after = owner.not_after();
    let digest = refresh_digest(
        &session,
        &group.group.0,
        &group.generation.0,
        &nodes,
        not_after,
    );
    let mut round1 = Vec::new();
    for m in members {
        let req = RefreshStart {
            session: Hex(session),
            group: group.group,
            generation: group.generation,
            members: documents.clone(),
            not_after,
            signature: owner.sign_for(m.enclave, &digest)?,
        };
        round1.extend(
            m.client
                .call::<ep::FrostRefreshStart>(m.enclave, &req)?
                .messages,
        );
    }
    let finished = rounds_2_and_3(members, &nodes, session, &round1)?;
    check_views(&finished, &nodes, group.threshold, &owner.x_only())?;
    let pending = finished[0]
        .pending
        .ok_or_else(|| mismatch("the members finished the refresh but hold nothing pending"))?;
    if finished[0].generation != group.generation {
        return Err(mismatch("the members' shares moved during the refresh"));
    }
    let views = commit(members, group, &pending.0, owner)?;
    if views[0].verifying_key != group.verifying_key || views[0].output_key != group.output_key {
        return Err(mismatch("the refresh changed the group key"));
    }
    Ok(views)
}

/// Puts the pending generation `generation` into use at every member (the last step of a
/// refresh; committing a member twice is harmless). Returns the members' views, checked to
/// agree and to be at `generation`.
pub fn commit(
    members: &[Member<'_>],
    group: &GroupView,
    generation: &[u8; 32],
    owner: &OwnerKey,
) -> Result<Vec<GroupView>, ClientError> {
    let nodes = members
        .iter()
        .map(Member::node)
        .collect::<Result<Vec<_>, _>>()?;
    // Nothing is committed unless every member is at `generation` or has it pending (their
    // views are authenticated): a commit that could stop part way is not begun.
    for (i, m) in members.iter().enumerate() {
        let v = self::group(m, &group.group.0)?;
        if v.generation.0 != *generation && v.pending.map(|p| p.0) != Some(*generation) {
            return Err(mismatch(format!(
                "member {} neither holds nor has pending generation {}: nothing committed",
                i + 1,
                hex::encode(generation)
            )));
        }
    }
    let not_after = owner.not_after();
    let digest = commit_digest(&group.group.0, generation, not_after);
    let mut views = Vec::new();
    for m in members {
        let req = RefreshCommit {
            group: group.group,
            generation: Hex(*generation),
            not_after,
            signature: owner.sign_for(m.enclave, &digest)?,
        };
        views.push(m.client.call::<ep::FrostRefreshCommit>(m.enclave, &req)?);
    }
    check_views(&views, &nodes, group.threshold, &owner.x_only())?;
    if views[0].generation.0 != *generation || views[0].pending.is_some() {
        return Err(mismatch("the members are not at the committed generation"));
    }
    Ok(views)
}

/// Every member's view agrees, and matches what the coordinator asked for.
pub fn check_views(
    views: &[GroupView],
    nodes: &[[u8; 32]],
    threshold: u16,
    owner: &[u8; 32],
) -> Result<(), ClientError> {
    let first = views
        .first()
        .ok_or_else(|| mismatch("no member answered"))?;
    for (i, v) in views.iter().enumerate() {
        let mut same = v.clone();
        same.participant = first.participant;
        if same != *first {
            return Err(mismatch(format!(
                "member {} describes another group than member 1",
                i + 1
            )));
        }
        if v.participant as usize != i + 1 {
            return Err(mismatch(format!(
                "member {} says it is participant {}",
                i + 1,
                v.participant
            )));
        }
    }
    let members: Vec<[u8; 32]> = first.members.iter().map(|m| m.0).collect();
    if members != nodes || first.threshold != threshold || first.owner.0 != *owner {
        return Err(mismatch(
            "the group's members, threshold or owner are not the ones asked for",
        ));
    }
    if first.verifying_key.0[1..] != first.group.0 || first.verifying_shares.len() != nodes.len() {
        return Err(mismatch(
            "the group's key or verifying shares are malformed",
        ));
    }
    if taproot_output_key(&first.group.0, None)? != first.output_key.0 {
        return Err(mismatch(
            "the group's output key is not the BIP-86 tweak of its key",
        ));
    }
    Ok(())
}

/// The group as the member at `m` holds it.
pub fn group(m: &Member<'_>, group: &[u8; 32]) -> Result<GroupView, ClientError> {
    m.client
        .call::<ep::FrostGroup>(m.enclave, &GroupRequest { group: Hex(*group) })
}

/// Signs `messages` with the group `group` by `signers` (each a member with its participant
/// number, increasing), the owner approving. Each signature is verified here (BIP-340, under
/// the Taproot output key this function computes itself) before it is returned.
pub fn sign(
    signers: &[(u16, Member<'_>)],
    group: &GroupView,
    messages: &[[u8; 32]],
    merkle_root: Option<[u8; 32]>,
    owner: &OwnerKey,
) -> Result<Signatures, ClientError> {
    let session = random32()?;
    let numbers: Vec<u16> = signers.iter().map(|(n, _)| *n).collect();
    let not_after = owner.not_after();
    let digest = sign_digest(
        &session,
        &group.group.0,
        &numbers,
        messages,
        merkle_root.as_ref(),
        not_after,
    );
    let mut commitments = Vec::new();
    for (n, m) in signers {
        let req = SignCommit {
            session: Hex(session),
            group: group.group,
            signers: numbers.clone(),
            messages: messages.iter().map(|m| Hex(*m)).collect(),
            merkle_root: merkle_root.map(Hex),
            not_after,
            signature: owner.sign_for(m.enclave, &digest)?,
        };
        let c = m.client.call::<ep::FrostSignCommit>(m.enclave, &req)?;
        if c.participant != *n {
            return Err(mismatch(format!(
                "the enclave given as participant {n} is participant {}",
                c.participant
            )));
        }
        commitments.push(c);
    }
    let mut shares = Vec::new();
    for (_, m) in signers {
        let req = SignShare {
            session: Hex(session),
            commitments: commitments.clone(),
        };
        shares.push(m.client.call::<ep::FrostSignShare>(m.enclave, &req)?);
    }
    aggregate(
        &signers[0].1,
        group,
        messages,
        merkle_root,
        commitments,
        shares,
    )
}

/// Step 3 at `at` (any member), then each signature verified here.
pub fn aggregate(
    at: &Member<'_>,
    group: &GroupView,
    messages: &[[u8; 32]],
    merkle_root: Option<[u8; 32]>,
    commitments: Vec<SignerItems>,
    shares: Vec<SignerItems>,
) -> Result<Signatures, ClientError> {
    let req = SignAggregate {
        group: group.group,
        messages: messages.iter().map(|m| Hex(*m)).collect(),
        merkle_root: merkle_root.map(Hex),
        commitments,
        shares,
    };
    let out = at.client.call::<ep::FrostSignAggregate>(at.enclave, &req)?;
    let expected = taproot_output_key(&group.group.0, merkle_root.as_ref())?;
    if out.output_key.0 != expected || out.signatures.len() != messages.len() {
        return Err(mismatch(
            "the aggregator answered another output key or another number of signatures",
        ));
    }
    let key = k256::schnorr::VerifyingKey::from_bytes(&expected)
        .map_err(|_| mismatch("the output key is not a valid x-only key"))?;
    for (i, (sig, m)) in out.signatures.iter().zip(messages).enumerate() {
        let s = k256::schnorr::Signature::try_from(&sig.0[..])
            .map_err(|_| mismatch(format!("signature {} is malformed", i + 1)))?;
        key.verify_raw(m, &s)
            .map_err(|_| mismatch(format!("signature {} does not verify", i + 1)))?;
    }
    Ok(out)
}

/// Rebuilds participant `lost`'s share for `new_member` (an enclave whose state never held
/// it) with `helpers` (at least the threshold of the other members, with their participant
/// numbers, increasing). Returns the new holder's view, checked to be the same group with
/// the new holder at place `lost`.
pub fn repair(
    helpers: &[(u16, Member<'_>)],
    new_member: &Member<'_>,
    group: &GroupView,
    lost: u16,
    owner: &OwnerKey,
) -> Result<GroupView, ClientError> {
    let session = random32()?;
    let numbers: Vec<u16> = helpers.iter().map(|(n, _)| *n).collect();
    let documents: Vec<Base64Bytes> = helpers
        .iter()
        .map(|(_, m)| Base64Bytes(m.enclave.raw.clone()))
        .collect();
    let new_node = new_member.node()?;
    let not_after = owner.not_after();
    let digest = repair_digest(
        &session,
        &group.group.0,
        lost,
        &numbers,
        &new_node,
        not_after,
    );
    let mut round1 = Vec::new();
    for (_, m) in helpers {
        let req = RepairStart {
            session: Hex(session),
            group: group.group,
            lost,
            helpers: numbers.clone(),
            helper_documents: documents.clone(),
            new_member: Base64Bytes(new_member.enclave.raw.clone()),
            not_after,
            signature: owner.sign_for(m.enclave, &digest)?,
        };
        round1.extend(
            m.client
                .call::<ep::FrostRepairStart>(m.enclave, &req)?
                .messages,
        );
    }
    let mut round2 = Vec::new();
    for (_, m) in helpers {
        let req = DkgContinue {
            session: Hex(session),
            messages: addressed(&round1, &m.node()?),
        };
        round2.extend(
            m.client
                .call::<ep::FrostRepairForward>(m.enclave, &req)?
                .messages,
        );
    }
    let req = RepairFinish {
        session: Hex(session),
        group: group.group,
        lost,
        helpers: numbers,
        helper_documents: documents,
        messages: addressed(&round2, &new_node),
        owner: Hex(owner.x_only()),
        not_after,
        signature: owner.sign_for(new_member.enclave, &digest)?,
    };
    let view = new_member
        .client
        .call::<ep::FrostRepairFinish>(new_member.enclave, &req)?;
    let mut expected = group.clone();
    expected.participant = lost;
    // Nothing is pending at the new holder, whatever is at the helpers.
    expected.pending = None;
    expected.members[usize::from(lost) - 1] = Hex(new_node);
    if view != expected {
        return Err(mismatch(
            "the new holder describes another group than the one repaired",
        ));
    }
    Ok(view)
}

/// BIP-341's output key of the x-only internal key `internal`: `lift_x(P) + t·G`, with
/// `t = hash_TapTweak(P || merkle_root)` (no root: key path only, BIP-86). Computed here
/// independently of the enclaves' FROST library.
pub fn taproot_output_key(
    internal: &[u8; 32],
    merkle_root: Option<&[u8; 32]>,
) -> Result<[u8; 32], ClientError> {
    let p = k256::schnorr::VerifyingKey::from_bytes(internal)
        .map_err(|_| mismatch("the group key is not a valid x-only key"))?;
    let tag = Sha256::digest(b"TapTweak");
    let mut h = Sha256::new();
    h.update(tag);
    h.update(tag);
    h.update(internal);
    if let Some(r) = merkle_root {
        h.update(r);
    }
    let t: [u8; 32] = h.finalize().into();
    let t = Option::<Scalar>::from(Scalar::from_repr(t.into()))
        .ok_or_else(|| mismatch("the Taproot tweak is out of range"))?;
    let q = (ProjectivePoint::from(*p.as_affine()) + ProjectivePoint::GENERATOR * t).to_affine();
    Ok(q.x().into())
}

/// Participant numbers by node, from a view.
pub fn participants(view: &GroupView) -> BTreeMap<[u8; 32], u16> {
    view.members
        .iter()
        .enumerate()
        .map(|(i, n)| (n.0, i as u16 + 1))
        .collect()
}
