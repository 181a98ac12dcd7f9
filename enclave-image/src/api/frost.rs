//! The FROST endpoints (`POST /v1/frost/...`, shapes and the protocol's steps in
//! `sigil_protocol::frost`): this enclave as one member of a t-of-n group whose other members
//! are peer enclaves, on `sigil_signing::frost`. Here: key generation (the three steps,
//! shared with a refresh's last two) and the group's view; `sign` signs, `refresh` refreshes,
//! `repair` rebuilds a lost share, `record` is the sealed share.
//!
//! Threats, and what stops each:
//! - **a coordinator or parent reading or forging key-generation traffic**: round-1 and
//!   round-2 packages travel as sealed peer messages (`crate::peers::channel`) between
//!   members verified against the measured peer policy when the run starts; a round-2 share
//!   opens only at its recipient;
//! - **a coordinator showing members different round-1 packages** (for example from two boots
//!   of one member): every member's round-2 message carries its digest of all the round-1
//!   packages it saw, and the key generation fails naming the member whose digest differs;
//! - **signing without the owner**: the group's owner (fixed at key generation) signs each
//!   session's digest for this enclave's boot; the enclave checks it before it makes a
//!   commitment;
//! - **nonce reuse**: commitments' secret nonces live only in this process's memory, in a
//!   session that `sign/share` takes out of the table before it signs, so they are used once;
//!   a restart forgets every session;
//! - **a bad signature share** (a member with a rolled-back share, a coordinator changing a
//!   share): a signature that does not verify makes aggregation check the shares and name
//!   the first bad signer, and the signatures are
//!   verified under the group's output key before they are returned;
//! - **filling memory**: key generations and signing sessions in flight are bounded and
//!   expire; every list is bounded by `MAX_MEMBERS` and `MAX_BATCH`.

mod record;
mod refresh;
mod repair;
mod sign;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use sigil_protocol::error::{ApiError, Code};
use sigil_protocol::frost::{
    DkgContinue, DkgMessages, DkgStart, FROST_DKG, GroupRequest, GroupView, MAX_MEMBERS, dkg_digest,
};
use sigil_protocol::peers::{MAX_PEER_DOCUMENT, PeerMessage};
use sigil_protocol::wire::{Base64Bytes, Hex};
use sigil_signing::frost::{self as engine, Dkg, FrostError};

use super::peers::{PeerCtx, channel_refusal, peer_refusal};
use crate::peers::Peer;
use crate::seal::{SealedStoreError, Sealing, SealingError, StoreError};
use record::Record;

/// Most key generations in flight; each expires [`RUN_TTL_SECS`] after it starts.
pub const MAX_RUNS: usize = 16;
pub const RUN_TTL_SECS: u64 = 600;
/// Most signing sessions in flight; each expires at its approval's `not_after`.
pub const MAX_SIGN_SESSIONS: usize = 256;

/// One member's key generation in flight.
struct Run {
    dkg: Dkg,
    me: u16,
    threshold: u16,
    members: Vec<Peer>,
    owner: [u8; 32],
    /// For a refresh: the group whose shares are replaced.
    refresh: Option<[u8; 32]>,
    /// The round whose messages this member waits for (1, then 2).
    waiting: u16,
    /// The messages of that round opened so far, by participant (round 2's hold shares).
    received: BTreeMap<u16, Vec<u8>>,
    expires: u64,
}

impl Drop for Run {
    fn drop(&mut self) {
        for v in self.received.values_mut() {
            zeroize::Zeroize::zeroize(v);
        }
    }
}

/// The key generations and signing sessions of this boot.
#[derive(Default)]
pub struct FrostApi {
    runs: Mutex<HashMap<[u8; 32], Run>>,
    sessions: Mutex<HashMap<[u8; 32], sign::SignSession>>,
    repairs: Mutex<HashMap<[u8; 32], repair::RepairRun>>,
    /// Owner approvals already used at this boot, by digest, until they expire. Threat: a
    /// coordinator replaying one approval to start a second key generation, refresh, repair
    /// or signing session (approvals are bound to this boot, so a restart needs no memory).
    used: Mutex<HashMap<[u8; 32], u64>>,
}

fn invalid(m: impl Into<String>) -> ApiError {
    ApiError::new(Code::InvalidRequest, m)
}

fn engine_refusal(e: FrostError) -> ApiError {
    match e {
        FrostError::Equivocation { .. } | FrostError::BadPackage { .. } => {
            ApiError::new(Code::FrostDkgFailed, e.to_string())
        }
        FrostError::BadShares { .. } => ApiError::new(Code::BadShare, e.to_string()),
        FrostError::Invalid(_) => invalid(e.to_string()),
        FrostError::WrongStep(_) => ApiError::new(Code::WrongState, e.to_string()),
    }
}

fn store_refusal(e: SealingError) -> ApiError {
    match e {
        SealingError::Store(SealedStoreError::Store(StoreError::NotFound)) => ApiError::new(
            Code::UnknownGroup,
            "this enclave holds no share of this group",
        ),
        e => ApiError::from(e),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Plain maps: a panic elsewhere leaves them consistent.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn load(sealing: &Sealing, group: &[u8; 32]) -> Result<Record, ApiError> {
    let (_, plain) = sealing
        .with_store(|s| s.get_sealed(record::KIND, &hex::encode(group)))
        .map_err(store_refusal)?;
    Record::decode(&plain).map_err(|m| ApiError::new(Code::InternalError, m))
}

/// Reads this member's record of `group`, lets `change` modify it, and seals it back, under
/// one hold of the store (atomic within this enclave). `change` answers whether there is
/// anything to write, or an error that leaves the record as it was; it may run twice (the
/// store retries once on I/O), so it must be idempotent. Returns the record as it now stands.
fn update(
    sealing: &Sealing,
    group: &[u8; 32],
    mut change: impl FnMut(&mut Record) -> Result<bool, ApiError>,
) -> Result<Record, ApiError> {
    let name = hex::encode(group);
    let mut out = None;
    sealing
        .with_store(|s| {
            let (_, plain) = s.get_sealed(record::KIND, &name)?;
            let mut rec = match Record::decode(&plain) {
                Ok(r) => r,
                Err(m) => return Ok(Err(ApiError::new(Code::InternalError, m))),
            };
            match change(&mut rec) {
                Err(e) => return Ok(Err(e)),
                Ok(false) => {}
                Ok(true) => {
                    let encoded = match rec.encode() {
                        Ok(e) => e,
                        Err(e) => return Ok(Err(engine_refusal(e))),
                    };
                    s.put_sealed(record::KIND, &name, &encoded)?;
                }
            }
            out = Some(rec);
            Ok(Ok(()))
        })
        .map_err(store_refusal)??;
    out.ok_or_else(|| ApiError::new(Code::InternalError, "the record was not read"))
}

fn group_view(r: &Record) -> Result<GroupView, ApiError> {
    let n = r.members.len() as u16;
    let facts = engine::facts(&r.public, n).map_err(engine_refusal)?;
    let output_key = engine::output_key(&r.public, None).map_err(engine_refusal)?;
    let mut group = [0u8; 32];
    group.copy_from_slice(&facts.verifying_key[1..]);
    Ok(GroupView {
        group: Hex(group),
        verifying_key: Hex(facts.verifying_key),
        output_key: Hex(output_key),
        threshold: facts.threshold,
        members: r.members.iter().map(|m| Hex(*m)).collect(),
        verifying_shares: facts.verifying_shares.values().map(|p| Hex(*p)).collect(),
        owner: Hex(r.owner),
        participant: r.participant,
        generation: Hex(record::generation(&r.public).map_err(engine_refusal)?),
        pending: r
            .pending
            .as_ref()
            .map(|p| record::generation(&p.public).map(Hex))
            .transpose()
            .map_err(engine_refusal)?,
    })
}

/// Most owner approvals remembered as used (each until its `not_after`, at most 600 s).
pub const MAX_USED_APPROVALS: usize = 4096;

/// Opens the messages of `round` in `session` into `run.received`, one per member but this
/// one. A message from a member whose message of this round was opened already is skipped:
/// after a refusal the coordinator sends the list again and nothing is lost (the channel's
/// sequence numbers would refuse a second opening anyway).
fn receive(
    ctx: &PeerCtx<'_>,
    run: &mut Run,
    session: &[u8; 32],
    round: u16,
    messages: &[PeerMessage],
) -> Result<(), ApiError> {
    let me = ctx.me()?;
    for m in messages {
        if m.protocol != FROST_DKG || m.session.0 != *session || m.round != round {
            return Err(ApiError::new(
                Code::PeerMessageRefused,
                format!(
                    "a message of protocol {:?}, round {}, or another session: this step takes \
                     round {round} of this key generation",
                    m.protocol, m.round
                ),
            ));
        }
        let Some(i) = run.members.iter().position(|p| p.node == m.sender.0) else {
            return Err(ApiError::new(
                Code::PeerMessageRefused,
                "a message from a node that is not a member of this key generation",
            ));
        };
        let from = i as u16 + 1;
        if from == run.me {
            return Err(ApiError::new(
                Code::PeerMessageRefused,
                "a message from this enclave itself",
            ));
        }
        if run.received.contains_key(&from) {
            continue;
        }
        let payload = ctx
            .channel
            .open_from(me, &run.members[i], m)
            .map_err(channel_refusal)?;
        run.received.insert(from, payload);
    }
    Ok(())
}

/// Every other member sent a message of `round`.
fn require_all(run: &Run, round: u16, got: &BTreeMap<u16, Vec<u8>>) -> Result<(), ApiError> {
    let missing: Vec<u16> = (1..=run.members.len() as u16)
        .filter(|p| *p != run.me && !got.contains_key(p))
        .collect();
    if !missing.is_empty() {
        return Err(invalid(format!(
            "round {round} needs a message from each other member; missing participants {missing:?}"
        )));
    }
    Ok(())
}

/// `e`, naming the member's node when it names a participant.
fn name_member(run: &Run, e: FrostError) -> ApiError {
    let mut a = engine_refusal(e.clone());
    if let FrostError::Equivocation { participant }
    | FrostError::BadPackage {
        from: participant, ..
    } = e
        && let Some(p) = run.members.get(usize::from(participant).wrapping_sub(1))
    {
        a.message = format!("{} (node {})", a.message, hex::encode(p.node));
    }
    a
}

/// The members' documents verified, in participant order, and this enclave's place among
/// them (its current document: its node and this boot's key).
fn verify_members(
    ctx: &PeerCtx<'_>,
    documents: &[Base64Bytes],
    now: u64,
) -> Result<(Vec<Peer>, usize), ApiError> {
    let (node, key) = ctx.me()?;
    let n = documents.len();
    if !(2..=MAX_MEMBERS).contains(&n) {
        return Err(invalid(format!(
            "a group has 2 to {MAX_MEMBERS} members, not {n}"
        )));
    }
    let mut members = Vec::with_capacity(n);
    for (i, doc) in documents.iter().enumerate() {
        if doc.0.len() > MAX_PEER_DOCUMENT {
            return Err(ApiError::new(
                Code::PeerDocumentRefused,
                format!("member {}'s document is too large", i + 1),
            ));
        }
        let peer = ctx.policy.verify(&doc.0, now).map_err(|e| {
            let mut a = peer_refusal(e);
            a.message = format!("member {}: {}", i + 1, a.message);
            a
        })?;
        if members.iter().any(|m: &Peer| m.node == peer.node) {
            return Err(invalid(format!("member {} repeats a node", i + 1)));
        }
        members.push(peer);
    }
    let Some(i) = members.iter().position(|m| m.node == node) else {
        return Err(invalid("this enclave's node is not among the members"));
    };
    if members[i].public_key != key.public_key() {
        return Err(invalid(
            "this enclave's document is from another boot: fetch a fresh one",
        ));
    }
    Ok((members, i))
}

impl FrostApi {
    /// The owner's signature over `digest` for this boot, used once.
    fn approve(
        &self,
        ctx: &PeerCtx<'_>,
        owner: &[u8; 32],
        digest: &[u8; 32],
        signature: &sigil_protocol::wire::Signature,
        not_after: u64,
        now: u64,
    ) -> Result<(), ApiError> {
        ctx.owners.check(owner, digest, signature, not_after, now)?;
        let mut used = lock(&self.used);
        if used.len() >= MAX_USED_APPROVALS {
            used.retain(|_, until| *until >= now);
        }
        if used.contains_key(digest) {
            return Err(ApiError::new(
                Code::ApprovalUsed,
                "this owner approval was used already at this enclave",
            ));
        }
        if used.len() >= MAX_USED_APPROVALS {
            return Err(ApiError::new(
                Code::LimitExceeded,
                format!("{MAX_USED_APPROVALS} owner approvals are in use; retry later"),
            )
            .with_status(429));
        }
        used.insert(*digest, not_after);
        Ok(())
    }

    pub fn new() -> Arc<FrostApi> {
        Arc::new(FrostApi::default())
    }

    /// Step 1 of key generation.
    pub fn dkg_start(
        &self,
        ctx: &PeerCtx<'_>,
        r: DkgStart,
        now: u64,
    ) -> Result<DkgMessages, ApiError> {
        let n = r.members.len();
        if !(2..=n as u16).contains(&r.threshold) {
            return Err(invalid(format!(
                "the threshold must be 2 to {n}, not {}",
                r.threshold
            )));
        }
        let (members, i) = verify_members(ctx, &r.members, now)?;
        let nodes: Vec<[u8; 32]> = members.iter().map(|m| m.node).collect();
        let digest = dkg_digest(&r.session.0, r.threshold, &nodes, &r.owner.0, r.not_after);
        self.approve(ctx, &r.owner.0, &digest, &r.signature, r.not_after, now)?;
        let run = (r.owner.0, r.threshold, None);
        self.begin(ctx, r.session.0, (members, i), run, now, |me, n| {
            Dkg::start(me, n, r.threshold)
        })
    }

    /// Starts a run (a key generation or a refresh) and seals its round-1 package to each
    /// other member.
    fn begin(
        &self,
        ctx: &PeerCtx<'_>,
        session: [u8; 32],
        (members, i): (Vec<Peer>, usize),
        (owner, threshold, refresh): ([u8; 32], u16, Option<[u8; 32]>),
        now: u64,
        start: impl FnOnce(u16, u16) -> Result<(Dkg, Vec<u8>), FrostError>,
    ) -> Result<DkgMessages, ApiError> {
        let (node, key) = ctx.me()?;
        let mut runs = lock(&self.runs);
        runs.retain(|_, run| run.expires > now);
        // One refresh per group at a time: a new one ends the others here (their secrets are
        // wiped as they drop). Threat: a coordinator holding back an older run's last step
        // and delivering it after a newer refresh finished, overwriting the newer pending
        // share at one member so that the commit splits the group. No member finishes the new
        // run before every member has started it, so no older run survives anywhere by then.
        if let Some(group) = refresh {
            runs.retain(|_, run| run.refresh != Some(group));
        }
        if runs.contains_key(&session) {
            return Err(ApiError::new(
                Code::Conflict,
                "a key generation with this session id is in flight",
            ));
        }
        if runs.len() >= MAX_RUNS {
            return Err(ApiError::new(
                Code::LimitExceeded,
                format!("{MAX_RUNS} key generations are in flight; retry later"),
            )
            .with_status(429));
        }
        let me = i as u16 + 1;
        let (dkg, package) = start(me, members.len() as u16).map_err(engine_refusal)?;
        let mut messages = Vec::with_capacity(members.len() - 1);
        for (j, peer) in members.iter().enumerate() {
            if j != i {
                messages.push(
                    ctx.channel
                        .seal((node, key), peer, (FROST_DKG, session, 1), &package)
                        .map_err(channel_refusal)?,
                );
            }
        }
        runs.insert(
            session,
            Run {
                threshold,
                refresh,
                dkg,
                me,
                members,
                owner,
                waiting: 1,
                received: BTreeMap::new(),
                expires: now + RUN_TTL_SECS,
            },
        );
        Ok(DkgMessages { messages })
    }

    fn take_run(&self, session: &[u8; 32], round: u16, now: u64) -> Result<Run, ApiError> {
        let mut runs = lock(&self.runs);
        runs.retain(|_, run| run.expires > now);
        match runs.get(session) {
            None => Err(ApiError::new(
                Code::UnknownSession,
                "no key generation with this session id at this boot",
            )),
            Some(run) if run.waiting != round => Err(ApiError::new(
                Code::WrongState,
                format!("the key generation waits for round {}", run.waiting),
            )),
            // Taken out while it runs: a concurrent call for the same step finds nothing.
            Some(_) => Ok(runs.remove(session).expect("present")),
        }
    }

    /// Step 2 of key generation. A failure ends the run (the members start again).
    pub fn dkg_round2(
        &self,
        ctx: &PeerCtx<'_>,
        r: DkgContinue,
        now: u64,
    ) -> Result<DkgMessages, ApiError> {
        let (node, key) = ctx.me()?;
        let mut run = self.take_run(&r.session.0, 1, now)?;
        if let Err(e) = receive(ctx, &mut run, &r.session.0, 1, &r.messages)
            .and_then(|()| require_all(&run, 1, &run.received))
        {
            // Nothing was used yet: the step can be sent again.
            lock(&self.runs).insert(r.session.0, run);
            return Err(e);
        }
        let round1 = std::mem::take(&mut run.received);
        let (packages, digest) = run.dkg.round2(&round1).map_err(|e| name_member(&run, e))?;
        // Secret shares, one per recipient: wiped when this returns, sealed or not.
        let packages: BTreeMap<u16, zeroize::Zeroizing<Vec<u8>>> = packages
            .into_iter()
            .map(|(k, v)| (k, zeroize::Zeroizing::new(v)))
            .collect();
        let mut messages = Vec::with_capacity(packages.len());
        for (to, package) in &packages {
            let peer = &run.members[*to as usize - 1];
            let mut payload = zeroize::Zeroizing::new(Vec::with_capacity(32 + package.len()));
            payload.extend_from_slice(&digest);
            payload.extend_from_slice(package);
            messages.push(
                ctx.channel
                    .seal((node, key), peer, (FROST_DKG, r.session.0, 2), &payload)
                    .map_err(channel_refusal)?,
            );
        }
        run.waiting = 2;
        lock(&self.runs).insert(r.session.0, run);
        Ok(DkgMessages { messages })
    }

    /// Step 3 of key generation: the share is sealed before the group is answered.
    pub fn dkg_finish(
        &self,
        ctx: &PeerCtx<'_>,
        r: DkgContinue,
        now: u64,
    ) -> Result<GroupView, ApiError> {
        let mut run = self.take_run(&r.session.0, 2, now)?;
        if let Err(e) = receive(ctx, &mut run, &r.session.0, 2, &r.messages) {
            lock(&self.runs).insert(r.session.0, run);
            return Err(e);
        }
        let mut digests = BTreeMap::new();
        for (from, payload) in &run.received {
            if let Some(d) = payload.get(..32) {
                digests.insert(*from, <[u8; 32]>::try_from(d).expect("32 bytes"));
            }
        }
        // Equivocation first: a member that saw other round-1 packages is named even while
        // others' messages are missing (they may be what it was shown); the run then ends.
        run.dkg
            .check_digests(&digests)
            .map_err(|e| name_member(&run, e))?;
        if let Err(e) = require_all(&run, 2, &run.received) {
            lock(&self.runs).insert(r.session.0, run);
            return Err(e);
        }
        let round2 = std::mem::take(&mut run.received);
        let mut digests = BTreeMap::new();
        let mut packages = BTreeMap::new();
        let mut short = None;
        for (from, payload) in round2 {
            let payload = zeroize::Zeroizing::new(payload);
            if payload.len() < 32 {
                short = Some(from);
                continue;
            }
            let mut d = [0u8; 32];
            d.copy_from_slice(&payload[..32]);
            digests.insert(from, d);
            packages.insert(from, payload[32..].to_vec());
        }
        let generated = match short {
            Some(from) => Err(ApiError::new(
                Code::FrostDkgFailed,
                format!("participant {from}'s round-2 message is too short"),
            )),
            None => run
                .dkg
                .finish(&packages, &digests)
                .map_err(|e| name_member(&run, e)),
        };
        // Round-2 packages are secret shares: wiped once used.
        for (_, mut p) in packages {
            zeroize::Zeroize::zeroize(&mut p);
        }
        let generated = generated?;
        if generated.key_package.min_signers() != &run.threshold {
            return Err(ApiError::new(
                Code::FrostDkgFailed,
                "the generated share has another threshold",
            ));
        }
        if let Some(group) = run.refresh {
            return self.finish_refresh(ctx, &run, group, generated);
        }
        let rec = Record {
            participant: run.me,
            threshold: run.threshold,
            members: run.members.iter().map(|m| m.node).collect(),
            owner: run.owner,
            public: generated.public,
            key: generated.key_package,
            pending: None,
        };
        let view = group_view(&rec)?;
        let plain = rec.encode().map_err(engine_refusal)?;
        let name = hex::encode(view.group.0);
        ctx.sealing
            .with_store(|s| match s.get_sealed(record::KIND, &name) {
                // This very share, written by an attempt whose answer was lost (the store's
                // I/O retried): done.
                Ok((_, stored)) if stored[..] == plain[..] => Ok(Ok(())),
                // A group key is fresh randomness of every member: a record of it already
                // here means a bug or a replayed run, never a second share to keep.
                Ok(_) => Ok(Err(ApiError::new(
                    Code::Conflict,
                    "this enclave already holds a share of this group",
                ))),
                Err(SealedStoreError::Store(StoreError::NotFound)) => s
                    .put_sealed_at(record::KIND, &name, 0, &plain)
                    .map(|_| Ok(())),
                Err(e) => Err(e),
            })
            .map_err(store_refusal)??;
        Ok(view)
    }

    /// A group this enclave is a member of (public facts only).
    pub fn group(&self, ctx: &PeerCtx<'_>, r: GroupRequest) -> Result<GroupView, ApiError> {
        group_view(&load(ctx.sealing, &r.group.0)?)
    }
}
