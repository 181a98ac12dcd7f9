//! Repairing a lost share across enclaves (`/v1/frost/repair/...`, frost-core's repairable
//! threshold scheme): at least t helpers rebuild participant `lost`'s share for a new holder,
//! an enclave whose state never held it. The group key and every other share are unchanged.
//!
//! 1. `repair/start` (each helper): the group owner's approval checked, every helper and the
//!    new holder verified against the peer policy; one delta per helper, each sealed to that
//!    helper (round 1, its own kept).
//! 2. `repair/forward` (each helper): the other helpers' deltas opened; their sum (sigma)
//!    sealed to the new holder with the group's public facts (round 2). The helper's record
//!    now names the new holder's node as participant `lost`.
//! 3. `repair/finish` (the new holder): the owner's approval checked, the helpers' messages
//!    opened and checked to agree, the share rebuilt and refused unless it matches the
//!    group's verifying share for `lost`, then sealed. The new holder may be the member that
//!    held `lost` before, left on an old share by a refresh it did not finish: its share is
//!    replaced.
//!
//! Round-2 payload (sealed): `sigma_len u8 || sigma || owner[32] || n u8 || members[n][32] ||
//! public key package`. Deltas and sigmas are secret: they travel sealed to one enclave and
//! are wiped once used.
//!
//! Threats: a coordinator reading or forging deltas or sigmas (sealed between attested
//! enclaves); a repair nobody approved (the owner signs the lost participant, the helpers and
//! the new holder's node, checked by every helper and by the new holder); a wrong value from
//! a helper (the rebuilt share must match the public verifying share); a new holder that is
//! already a member, or a helper that is the lost participant (refused).

use std::collections::BTreeMap;

use sigil_protocol::error::{ApiError, Code};
use sigil_protocol::frost::{
    DkgContinue, DkgMessages, FROST_REPAIR, GroupView, MAX_MEMBERS, RepairFinish, RepairStart,
    repair_digest,
};
use sigil_protocol::peers::{MAX_PEER_DOCUMENT, PeerMessage};
use sigil_protocol::wire::Base64Bytes;
use sigil_signing::frost as engine;
use zeroize::Zeroizing;

use super::record::{self, Record};
use super::{
    FrostApi, MAX_RUNS, RUN_TTL_SECS, engine_refusal, group_view, invalid, load, lock, update,
};
use crate::api::peers::{PeerCtx, channel_refusal, peer_refusal};
use crate::peers::Peer;
use crate::seal::{SealedStoreError, StoreError};

/// One helper's repair in flight.
pub(super) struct RepairRun {
    group: [u8; 32],
    me: u16,
    lost: u16,
    helpers: Vec<(u16, Peer)>,
    new_member: Peer,
    /// Deltas for this helper, by helper (its own included).
    deltas: BTreeMap<u16, Zeroizing<Vec<u8>>>,
    expires: u64,
}

fn refused(m: impl Into<String>) -> ApiError {
    ApiError::new(Code::PeerMessageRefused, m)
}

/// The helpers' documents verified, in the order of `helpers` (increasing, distinct).
fn verify_helpers(
    ctx: &PeerCtx<'_>,
    helpers: &[u16],
    documents: &[Base64Bytes],
    n: u16,
    now: u64,
) -> Result<Vec<(u16, Peer)>, ApiError> {
    if helpers.len() != documents.len()
        || helpers.is_empty()
        || helpers.len() > MAX_MEMBERS
        || !helpers.windows(2).all(|w| w[0] < w[1])
        || helpers.iter().any(|h| !(1..=n).contains(h))
    {
        return Err(invalid(format!(
            "helpers must be increasing participant numbers 1..={n}, one document each"
        )));
    }
    helpers
        .iter()
        .zip(documents)
        .map(|(h, d)| {
            if d.0.len() > MAX_PEER_DOCUMENT {
                return Err(ApiError::new(
                    Code::PeerDocumentRefused,
                    format!("helper {h}'s document is too large"),
                ));
            }
            let peer = ctx.policy.verify(&d.0, now).map_err(|e| {
                let mut a = peer_refusal(e);
                a.message = format!("helper {h}: {}", a.message);
                a
            })?;
            Ok((*h, peer))
        })
        .collect()
}

fn encode_payload(sigma: &[u8], rec: &Record) -> Result<Zeroizing<Vec<u8>>, ApiError> {
    let public = engine::public_package_bytes(&rec.public).map_err(engine_refusal)?;
    let mut out = Zeroizing::new(Vec::new());
    out.push(sigma.len() as u8);
    out.extend_from_slice(sigma);
    out.extend_from_slice(&rec.owner);
    out.push(rec.members.len() as u8);
    for m in &rec.members {
        out.extend_from_slice(m);
    }
    out.extend_from_slice(&public);
    Ok(out)
}

/// (sigma, owner, members, public package bytes) of a round-2 payload.
type Payload = (Zeroizing<Vec<u8>>, [u8; 32], Vec<[u8; 32]>, Vec<u8>);

fn decode_payload(b: &[u8]) -> Option<Payload> {
    let (&len, rest) = b.split_first()?;
    let (sigma, rest) = rest.split_at_checked(len as usize)?;
    let (owner, rest) = rest.split_at_checked(32)?;
    let (&n, mut rest) = rest.split_first()?;
    let mut members = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let (m, r) = rest.split_at_checked(32)?;
        members.push(m.try_into().ok()?);
        rest = r;
    }
    Some((
        Zeroizing::new(sigma.to_vec()),
        owner.try_into().ok()?,
        members,
        rest.to_vec(),
    ))
}

impl FrostApi {
    /// Step 1 at a helper.
    pub fn repair_start(
        &self,
        ctx: &PeerCtx<'_>,
        r: RepairStart,
        now: u64,
    ) -> Result<DkgMessages, ApiError> {
        let (node, key) = ctx.me()?;
        let rec = load(ctx.sealing, &r.group.0)?;
        let n = rec.members.len() as u16;
        if !(1..=n).contains(&r.lost) || r.helpers.contains(&r.lost) {
            return Err(invalid(format!(
                "the lost participant must be 1..={n} and not a helper"
            )));
        }
        if (r.helpers.len() as u16) < rec.threshold || !r.helpers.contains(&rec.participant) {
            return Err(invalid(format!(
                "at least {} helpers, this enclave (participant {}) among them",
                rec.threshold, rec.participant
            )));
        }
        if r.new_member.0.len() > MAX_PEER_DOCUMENT {
            return Err(ApiError::new(
                Code::PeerDocumentRefused,
                "the new holder's document is too large",
            ));
        }
        let new_member = ctx
            .policy
            .verify(&r.new_member.0, now)
            .map_err(peer_refusal)?;
        if rec
            .members
            .iter()
            .enumerate()
            .any(|(i, m)| *m == new_member.node && i as u16 + 1 != r.lost)
        {
            return Err(invalid(
                "the new holder is already another member of the group",
            ));
        }
        let digest = repair_digest(
            &r.session.0,
            &r.group.0,
            r.lost,
            &r.helpers,
            &new_member.node,
            r.not_after,
        );
        self.approve(ctx, &rec.owner, &digest, &r.signature, r.not_after, now)?;
        let helpers = verify_helpers(ctx, &r.helpers, &r.helper_documents, n, now)?;
        if let Some((h, _)) = helpers
            .iter()
            .find(|(h, p)| rec.members.get(usize::from(*h) - 1) != Some(&p.node))
        {
            return Err(invalid(format!(
                "helper {h}'s document is not the node the group has at that place"
            )));
        }
        match helpers.iter().find(|(h, _)| *h == rec.participant) {
            Some((_, p)) if p.node == node && p.public_key == key.public_key() => {}
            _ => {
                return Err(invalid(
                    "this enclave's document is not its own current one among the helpers",
                ));
            }
        }

        let mut repairs = lock(&self.repairs);
        repairs.retain(|_, run| run.expires > now);
        if repairs.contains_key(&r.session.0) {
            return Err(ApiError::new(
                Code::Conflict,
                "a repair with this session id is in flight",
            ));
        }
        if repairs.len() >= MAX_RUNS {
            return Err(ApiError::new(
                Code::LimitExceeded,
                format!("{MAX_RUNS} repairs are in flight; retry later"),
            )
            .with_status(429));
        }
        let mut deltas =
            engine::repair_deltas(&r.helpers, &rec.key, r.lost).map_err(engine_refusal)?;
        let mut messages = Vec::new();
        for (h, peer) in &helpers {
            if *h == rec.participant {
                continue;
            }
            let d = deltas
                .remove(h)
                .ok_or_else(|| ApiError::new(Code::InternalError, "no delta for a helper"))?;
            messages.push(
                ctx.channel
                    .seal((node, key), peer, (FROST_REPAIR, r.session.0, 1), &d)
                    .map_err(channel_refusal)?,
            );
        }
        let own = deltas
            .remove(&rec.participant)
            .ok_or_else(|| ApiError::new(Code::InternalError, "no delta for this helper"))?;
        repairs.insert(
            r.session.0,
            RepairRun {
                group: r.group.0,
                me: rec.participant,
                lost: r.lost,
                helpers,
                new_member,
                deltas: BTreeMap::from([(rec.participant, own)]),
                expires: now + RUN_TTL_SECS,
            },
        );
        Ok(DkgMessages { messages })
    }

    /// Step 2 at a helper: the run ends here (a refused message leaves it for a retry).
    pub fn repair_forward(
        &self,
        ctx: &PeerCtx<'_>,
        r: DkgContinue,
        now: u64,
    ) -> Result<DkgMessages, ApiError> {
        let me = ctx.me()?;
        let mut run = {
            let mut repairs = lock(&self.repairs);
            repairs.retain(|_, run| run.expires > now);
            repairs.remove(&r.session.0).ok_or_else(|| {
                ApiError::new(
                    Code::UnknownSession,
                    "no repair with this session id at this boot",
                )
            })?
        };
        let opened = self.open_deltas(ctx, me, &mut run, &r.session.0, &r.messages);
        let missing: Vec<u16> = run
            .helpers
            .iter()
            .map(|(h, _)| *h)
            .filter(|h| !run.deltas.contains_key(h))
            .collect();
        if let Err(e) = opened.and_then(|()| {
            if missing.is_empty() {
                Ok(())
            } else {
                Err(invalid(format!(
                    "a delta from each other helper is needed; missing helpers {missing:?}"
                )))
            }
        }) {
            lock(&self.repairs).insert(r.session.0, run);
            return Err(e);
        }
        let sigma = engine::repair_sigma(&run.deltas).map_err(engine_refusal)?;
        run.deltas.clear();
        // The group whose share is repaired: this helper's record, now naming the new holder.
        let group = self.repair_group(ctx, &run)?;
        let payload = encode_payload(&sigma, &group)?;
        let message = ctx
            .channel
            .seal(
                me,
                &run.new_member,
                (FROST_REPAIR, r.session.0, 2),
                &payload,
            )
            .map_err(channel_refusal)?;
        Ok(DkgMessages {
            messages: vec![message],
        })
    }

    fn open_deltas(
        &self,
        ctx: &PeerCtx<'_>,
        me: ([u8; 32], &sigil_protocol::encap::ServerKey),
        run: &mut RepairRun,
        session: &[u8; 32],
        messages: &[PeerMessage],
    ) -> Result<(), ApiError> {
        for m in messages {
            if m.protocol != FROST_REPAIR || m.session.0 != *session || m.round != 1 {
                return Err(refused(
                    "a message of another protocol, session or round: this step takes round 1 \
                     of this repair",
                ));
            }
            let Some((h, peer)) = run.helpers.iter().find(|(_, p)| p.node == m.sender.0) else {
                return Err(refused("a message from a node that is not a helper"));
            };
            if *h == run.me || run.deltas.contains_key(h) {
                continue;
            }
            let d = ctx
                .channel
                .open_from(me, peer, m)
                .map_err(channel_refusal)?;
            run.deltas.insert(*h, Zeroizing::new(d));
        }
        Ok(())
    }

    /// This helper's record with participant `lost` held by the new holder, sealed again.
    fn repair_group(&self, ctx: &PeerCtx<'_>, run: &RepairRun) -> Result<Record, ApiError> {
        update(ctx.sealing, &run.group, |rec| {
            let slot = rec
                .members
                .get_mut(usize::from(run.lost).wrapping_sub(1))
                .ok_or_else(|| invalid("the lost participant is not a member"))?;
            *slot = run.new_member.node;
            Ok(true)
        })
    }

    /// Step 3 at the new holder.
    pub fn repair_finish(
        &self,
        ctx: &PeerCtx<'_>,
        r: RepairFinish,
        now: u64,
    ) -> Result<GroupView, ApiError> {
        let (node, key) = ctx.me()?;
        let digest = repair_digest(
            &r.session.0,
            &r.group.0,
            r.lost,
            &r.helpers,
            &node,
            r.not_after,
        );
        self.approve(ctx, &r.owner.0, &digest, &r.signature, r.not_after, now)?;
        let helpers = verify_helpers(
            ctx,
            &r.helpers,
            &r.helper_documents,
            MAX_MEMBERS as u16,
            now,
        )?;
        let mut sigmas = BTreeMap::new();
        // What every helper must agree on: owner, members, public package.
        type Facts = ([u8; 32], Vec<[u8; 32]>, Vec<u8>);
        let mut facts: Option<Facts> = None;
        for m in &r.messages {
            if m.protocol != FROST_REPAIR || m.session != r.session || m.round != 2 {
                return Err(refused(
                    "a message of another protocol, session or round: this step takes round 2 \
                     of this repair",
                ));
            }
            let Some((h, peer)) = helpers.iter().find(|(_, p)| p.node == m.sender.0) else {
                return Err(refused("a message from a node that is not a helper"));
            };
            let payload = Zeroizing::new(
                ctx.channel
                    .open_from((node, key), peer, m)
                    .map_err(channel_refusal)?,
            );
            let (sigma, owner, members, public) = decode_payload(&payload)
                .ok_or_else(|| refused(format!("helper {h}'s message does not parse")))?;
            let these = (owner, members, public);
            match &facts {
                Some(f) if *f != these => {
                    return Err(ApiError::new(
                        Code::FrostDkgFailed,
                        format!("helper {h} describes the group differently than the others"),
                    ));
                }
                Some(_) => {}
                None => facts = Some(these),
            }
            sigmas.insert(*h, sigma);
        }
        let missing: Vec<u16> = helpers
            .iter()
            .map(|(h, _)| *h)
            .filter(|h| !sigmas.contains_key(h))
            .collect();
        if !missing.is_empty() {
            return Err(invalid(format!(
                "a message from each helper is needed; missing helpers {missing:?}"
            )));
        }
        let (owner, members, public) =
            facts.ok_or_else(|| invalid("a message from each helper is needed"))?;
        if owner != r.owner.0 {
            return Err(invalid("the helpers name another owner for this group"));
        }
        if members.get(usize::from(r.lost).wrapping_sub(1)) != Some(&node) {
            return Err(invalid(
                "the helpers' group does not name this enclave as the lost participant",
            ));
        }
        let public = engine::public_package(&public).map_err(engine_refusal)?;
        let key_package = engine::repair_finish(&sigmas, r.lost, &public)
            .map_err(|e| ApiError::new(Code::FrostDkgFailed, format!("the repair failed: {e}")))?;
        let rec = Record {
            participant: r.lost,
            threshold: *key_package.min_signers(),
            members,
            owner,
            public,
            key: key_package,
            pending: None,
        };
        let view = group_view(&rec)?;
        if view.group != r.group {
            return Err(invalid("the helpers' group is not the one named"));
        }
        let plain = rec.encode().map_err(engine_refusal)?;
        let name = hex::encode(view.group.0);
        ctx.sealing
            .with_store(|s| match s.get_sealed(record::KIND, &name) {
                // This enclave's own share as participant `lost`, left behind (a refresh it
                // did not finish): replaced by the repaired one, which matches the group's
                // current verifying share.
                Ok((_, old)) if Record::decode(&old).is_ok_and(|o| o.participant == r.lost) => {
                    s.put_sealed(record::KIND, &name, &plain).map(|_| Ok(()))
                }
                Ok(_) => Ok(Err(ApiError::new(
                    Code::Conflict,
                    "this enclave already holds another share of this group",
                ))),
                Err(SealedStoreError::Store(StoreError::NotFound)) => {
                    s.put_sealed(record::KIND, &name, &plain).map(|_| Ok(()))
                }
                Err(e) => Err(e),
            })
            .map_err(ApiError::from)??;
        Ok(view)
    }
}
