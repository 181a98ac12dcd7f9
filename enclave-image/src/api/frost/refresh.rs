//! Refreshing a group's shares (`/v1/frost/refresh/...`): a key generation over a zero
//! secret whose new share each member keeps as pending until the owner commits the new
//! generation there. Threat: a coordinator that finishes or commits a refresh at some members
//! only, which would otherwise leave the group on different generations, unable to sign or
//! repair (with t > n/2, for good). Members on another generation than the approved one
//! refuse to start, and each keeps signing with its current share until committed.

use sigil_protocol::error::{ApiError, Code};
use sigil_protocol::frost::{
    DkgMessages, GroupView, RefreshCommit, RefreshStart, commit_digest, refresh_digest,
};
use sigil_signing::frost::{self as engine, Dkg};

use super::record;
use super::{FrostApi, Run, engine_refusal, group_view, invalid, load, update, verify_members};
use crate::api::peers::PeerCtx;

impl FrostApi {
    /// Step 1 of a refresh; steps 2 and 3 are those of a key generation.
    pub fn refresh_start(
        &self,
        ctx: &PeerCtx<'_>,
        r: RefreshStart,
        now: u64,
    ) -> Result<DkgMessages, ApiError> {
        let rec = load(ctx.sealing, &r.group.0)?;
        if r.members.len() != rec.members.len() {
            return Err(invalid(format!(
                "the group has {} members; a refresh takes every one",
                rec.members.len()
            )));
        }
        let (members, i) = verify_members(ctx, &r.members, now)?;
        if i as u16 + 1 != rec.participant {
            return Err(invalid(format!(
                "this enclave is participant {} of the group, not {}",
                rec.participant,
                i + 1
            )));
        }
        let current = record::generation(&rec.public).map_err(engine_refusal)?;
        if current != r.generation.0 {
            return Err(ApiError::new(
                Code::Conflict,
                format!(
                    "this member's shares are of generation {}, the refresh is for {}: commit \
                     or repair it first",
                    hex::encode(current),
                    hex::encode(r.generation.0)
                ),
            ));
        }
        let nodes: Vec<[u8; 32]> = members.iter().map(|m| m.node).collect();
        let digest = refresh_digest(&r.session.0, &r.group.0, &current, &nodes, r.not_after);
        self.approve(ctx, &rec.owner, &digest, &r.signature, r.not_after, now)?;
        let n = rec.members.len() as u16;
        let run = (rec.owner, rec.threshold, Some(r.group.0));
        self.begin(ctx, r.session.0, (members, i), run, now, |_, _| {
            Dkg::start_refresh(rec.key, rec.public, n)
        })
    }

    /// A refresh's new share is kept beside the one in use, as pending: the owner commits it
    /// at every member once every member has finished. Threat: a coordinator that finishes
    /// or commits a refresh at some members only would otherwise leave the group on
    /// different generations, unable to sign or repair (with t > n/2, for good).
    pub(super) fn finish_refresh(
        &self,
        ctx: &PeerCtx<'_>,
        run: &Run,
        group: [u8; 32],
        new: engine::Generated,
    ) -> Result<GroupView, ApiError> {
        let rec = update(ctx.sealing, &group, |rec| {
            let facts = engine::facts(&new.public, rec.members.len() as u16);
            if facts.is_err() || facts.as_ref().is_ok_and(|f| f.verifying_key[1..] != group) {
                return Err(ApiError::new(
                    Code::FrostDkgFailed,
                    "the refreshed shares belong to another group key",
                ));
            }
            rec.members = run.members.iter().map(|m| m.node).collect();
            rec.pending = Some(record::Share {
                public: new.public.clone(),
                key: new.key_package.clone(),
            });
            Ok(true)
        })?;
        group_view(&rec)
    }

    /// The last step of a refresh at one member: the pending generation goes into use.
    pub fn refresh_commit(
        &self,
        ctx: &PeerCtx<'_>,
        r: RefreshCommit,
        now: u64,
    ) -> Result<GroupView, ApiError> {
        let rec = load(ctx.sealing, &r.group.0)?;
        let digest = commit_digest(&r.group.0, &r.generation.0, r.not_after);
        // Committing twice is harmless, so the approval is not single-use.
        ctx.owners
            .check(&rec.owner, &digest, &r.signature, r.not_after, now)?;
        let want = r.generation.0;
        let rec = update(ctx.sealing, &r.group.0, |rec| {
            if record::generation(&rec.public).map_err(engine_refusal)? == want {
                // Committed already (a retry, or a second coordinator): nothing to do.
                return Ok(false);
            }
            let pending = rec
                .pending
                .as_ref()
                .map(|p| record::generation(&p.public))
                .transpose()
                .map_err(engine_refusal)?;
            if pending != Some(want) {
                return Err(ApiError::new(
                    Code::Conflict,
                    format!(
                        "no refresh of generation {} is pending at this member",
                        hex::encode(want)
                    ),
                ));
            }
            if let Some(p) = rec.pending.take() {
                rec.public = p.public;
                rec.key = p.key;
            }
            Ok(true)
        })?;
        group_view(&rec)
    }
}
