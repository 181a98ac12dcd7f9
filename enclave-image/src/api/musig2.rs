//! The MuSig2 endpoints (`POST /v1/musig2/...`, shapes in `sigil_protocol::musig2`): the HTTP
//! face of the in-process engine `sigil_signing::Engine`.
//!
//! One engine per boot. Its keys and aggregate keys live in the sealed store (kinds
//! [`Kind::Key`] and [`Kind::AggregateKey`]) and survive restarts; its sessions, and the secret
//! nonces in them, live only in this process's memory, so a restart aborts every session in
//! flight and clients start a new one (a session id from before answers `unknown_session`).
//!
//! Who may call what, and what defends it:
//!
//! - **Creating or deleting a held key** needs the owner's BIP-340 signature over
//!   `request_digest` with a short `not_after` (as the vault does). Threat: anyone who can
//!   reach the API (the parent included) binding keys to an owner who did not ask, or
//!   destroying someone's key. An imported secret arrives only inside the encapsulated body.
//! - **Using a held key** needs its owner's approval of the session digest, checked by the
//!   engine (`Session::approve`); this layer passes the signature through untouched. The
//!   secret key record is opened only then (descriptions use the key's public record).
//! - **Creating an aggregate** needs the signature of the owner of one of its held keys, and
//!   counts against that owner's quota; **creating a session** needs an approver's signature,
//!   and counts against its sessions in flight (threat: anyone filling the sealed store or the
//!   session table). A counterparty without a key here asks an owner to create the session.
//! - **Deleting an aggregate** needs the signature of its creator or of the owner of one of
//!   its held keys; **aborting a session** that of one of its approvers. Threat: a stranger
//!   destroying or cancelling what others depend on.
//! - **External participants** are not authenticated here: they are authenticated by their
//!   MuSig2 partial signatures, which the engine verifies with BIP-327 `PartialSigVerify`
//!   before aggregating. Whoever submits nonces under an external index without that
//!   participant's secret key cannot produce a valid partial signature for them, so the worst
//!   they can do is make the session fail, and the failure names the signer index.
//! - **Reading keys and aggregates** (list, describe) needs the owner's signature: an owner
//!   lists only its own (threat: an anonymous reader enumerating owners and linking them to
//!   output keys). **Session reads** (status, nonces, round) need the session id, 32 random
//!   bytes its creator hands to the approvers and co-signers (who may hold no owner key).
//!   Answers are sealed, so the relaying parent can neither read nor forge them.
//! - **Denial of service**: finished sessions free their slot at once; in flight, an owner
//!   holds at most `MAX_SESSIONS_PER_OWNER`, an aggregate `MAX_SESSIONS_PER_AGGREGATE`, all
//!   together `MAX_SESSIONS`, and unapproved sessions expire after
//!   `UNAPPROVED_SESSION_TTL_SECS`. Anyone can still mint owner keys, so many owners together
//!   can fill the table (until their sessions expire); the parent can simply drop traffic
//!   anyway. External nonces can be front-run as described above.
//!
//! Every size is bounded: the body by [`body_limit`] (checked before HPKE opens it), and
//! counts and lengths by the engine (`MAX_PARTICIPANTS`, `MAX_TWEAKS`, `MAX_MESSAGES`,
//! `MAX_MESSAGE_LEN`, `MAX_SESSIONS`).

mod peer;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sigil_protocol::error::{ApiError, Code};
use sigil_protocol::musig2::{
    self as wire, AbortRequest, AggregateView, ApproveRequest, CreateAggregateRequest,
    CreateSessionRequest, DeleteAggregateRequest, DeleteKeyRequest, Deleted, FailureCode,
    FailureView, GenerateKeyRequest, IdList, IdRequest, ImportKeyRequest, KeyView, ListRequest,
    NoncesView, Op, PartialSignaturesRequest, ParticipantNoncesView, ParticipantView, RoundView,
    SessionRef, SessionView, SignatureView, StatusView, SubmitNoncesRequest, TweakError, TweakSpec,
};
use sigil_protocol::wire::{Hex, Hex32};
use sigil_signing::{
    AggregateId, AggregateInfo, AggregateSpec, Engine, Entropy, EntropyError, Error, FailureReason,
    HeldKey, KeyId, KeyInfo, MessageSpec, ParticipantInfo, RecordStore, RecordStoreError,
    SessionId, SessionRequest, SessionState, SessionStatus, SignatureValue, Tweak,
};
use zeroize::Zeroizing;

use super::owner::OwnerCheck;
use crate::nsm::Nsm;
use crate::seal::service::{Sealing, SealingError};
use crate::seal::{Kind, SealedStoreError, StoreError};

fn refuse(code: Code, message: impl Into<String>) -> ApiError {
    ApiError::new(code, message)
}

// ----- randomness -----

/// The engine's randomness: each 32-byte block is `SHA-256(tag || counter || NSM output ||
/// kernel RNG output)`.
///
/// Threat: a weak or backdoored RNG makes secret keys and secret nonces guessable (and a
/// repeated nonce leaks the key). Mixing two independent sources means both must fail for the
/// output to be predictable; the engine additionally refuses all-zero and repeated draws, and
/// derives nonces from the secret key, the messages and the session too (BIP-327 NonceGen).
struct NsmEntropy(Arc<dyn Nsm>);

const ENTROPY_TAG: &[u8] = b"sigil/musig2/entropy/v1";

impl Entropy for NsmEntropy {
    fn fill(&self, out: &mut [u8]) -> Result<(), EntropyError> {
        for (i, chunk) in out.chunks_mut(32).enumerate() {
            let hw = Zeroizing::new(
                self.0
                    .random(32)
                    .map_err(|e| EntropyError(format!("NSM: {e}")))?,
            );
            if hw.len() != 32 {
                return Err(EntropyError(format!(
                    "NSM returned {} random bytes, not 32",
                    hw.len()
                )));
            }
            let mut os = Zeroizing::new([0u8; 32]);
            getrandom::fill(&mut os[..]).map_err(|e| EntropyError(format!("kernel RNG: {e}")))?;
            let mut h = ring::digest::Context::new(&ring::digest::SHA256);
            h.update(ENTROPY_TAG);
            h.update(&(i as u64).to_be_bytes());
            h.update(&hw);
            h.update(&os[..]);
            let d = h.finish();
            chunk.copy_from_slice(&d.as_ref()[..chunk.len()]);
        }
        Ok(())
    }
}

// ----- the engine's records in the sealed store -----

/// The engine's [`RecordStore`] on the sealed store. Engine names `key/<hex>` and `agg/<hex>` map to
/// sealed blobs of kind [`Kind::Key`] and [`Kind::AggregateKey`] with the hex as id: the seal
/// binds kind and id, so the parent cannot serve a key record as an aggregate or under another
/// id, and it cannot read either (key records hold secrets).
///
/// What the parent can still do (see `seal::format`): withhold or delete blobs (denial of
/// service), hide names from a listing (the list comes from the blob store unauthenticated;
/// invented names fail when they are opened), and, across a reboot, replay a deleted record.
/// Within one boot the engine refuses ids it deleted and the store's rollback guard refuses
/// older versions.
///
/// Records written once (keys, their public facts, aggregates) are kept open in
/// [`RecordCache`]: a session opens the same aggregate and key records at each step, and each
/// open is a round trip to the parent plus an unseal. Owner indexes are never kept: enclaves
/// of one cluster share a store, and the index is what says a key or aggregate still exists
/// (another member may have deleted one, or added one this member must not write over). A
/// cached key whose owner's index no longer lists it is refused ([`Engine`]'s anchoring), so
/// a deletion elsewhere takes effect at once here too.
pub struct SealedRecords {
    sealing: Arc<Sealing>,
    cache: RecordCache,
}

/// Most records kept open. A key record is under 200 bytes and an owner index a few KiB at
/// most, so this stays within a few MiB whatever names the callers ask for.
const RECORD_CACHE_ENTRIES: usize = 1024;

/// Opened records by engine name: filled by reads and writes, emptied of a name before it is
/// deleted or when a write's outcome is unknown. Plaintexts are zeroized when they leave.
/// Threats: a caller cycling through many names to grow enclave memory (the bound evicts
/// any entry: a miss costs one store read, never a wrong answer); a read that raced a
/// write or delete putting back what the store no longer holds (each forget moves the
/// generation on, and a read fills the cache only if none happened since it began).
struct RecordCache(Mutex<Records>);

/// The kept records, and the generation [`RecordCache::forget`] moves on.
type Records = (HashMap<String, Zeroizing<Vec<u8>>>, u64);

/// Only records that are never rewritten are kept (see [`SealedRecords`]).
fn cacheable(kind: Kind) -> bool {
    matches!(kind, Kind::Key | Kind::KeyInfo | Kind::AggregateKey)
}

impl RecordCache {
    fn new() -> Self {
        RecordCache(Mutex::new((HashMap::new(), 0)))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Records> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().0.len()
    }

    fn get(&self, name: &str) -> Option<Zeroizing<Vec<u8>>> {
        self.lock().0.get(name).cloned()
    }

    /// The generation a read starts at (see [`RecordCache::fill`]).
    fn generation(&self) -> u64 {
        self.lock().1
    }

    /// Keeps what a read that began at `generation` found, unless something was forgotten
    /// since.
    fn fill(&self, name: &str, record: &[u8], generation: u64) {
        if self.lock().1 == generation {
            self.insert(name, record);
        }
    }

    fn insert(&self, name: &str, record: &[u8]) {
        let mut guard = self.lock();
        let map = &mut guard.0;
        if map.len() >= RECORD_CACHE_ENTRIES && !map.contains_key(name) {
            let victim = map.keys().next().cloned();
            if let Some(v) = victim {
                map.remove(&v);
            }
        }
        map.insert(name.to_owned(), Zeroizing::new(record.to_vec()));
    }

    fn forget(&self, name: &str) {
        let mut guard = self.lock();
        guard.0.remove(name);
        guard.1 += 1;
    }
}

fn blob_of(name: &str) -> Result<(Kind, &str), RecordStoreError> {
    if let Some(id) = name.strip_prefix("key/") {
        Ok((Kind::Key, id))
    } else if let Some(id) = name.strip_prefix("keyinfo/") {
        Ok((Kind::KeyInfo, id))
    } else if let Some(id) = name.strip_prefix("agg/") {
        Ok((Kind::AggregateKey, id))
    } else if let Some(id) = name.strip_prefix("owner/") {
        Ok((Kind::OwnerIndex, id))
    } else {
        Err(RecordStoreError::failed(format!(
            "no sealed kind for record {name:?}"
        )))
    }
}

fn record_error(e: SealingError) -> RecordStoreError {
    if let SealingError::Store(SealedStoreError::Store(StoreError::Limit(m))) = &e {
        return RecordStoreError::full(m.clone());
    }
    RecordStoreError::failed(e.to_string())
}

impl RecordStore for SealedRecords {
    fn put(&self, name: &str, record: &[u8]) -> Result<(), RecordStoreError> {
        let (kind, id) = blob_of(name)?;
        // Out first: if the write fails its outcome may be unknown, and the next read must
        // ask the store.
        self.cache.forget(name);
        self.sealing
            .with_store(|s| s.put_sealed(kind, id, record))
            .map_err(record_error)?;
        if cacheable(kind) {
            self.cache.insert(name, record);
        }
        Ok(())
    }

    fn get(&self, name: &str) -> Result<Option<Zeroizing<Vec<u8>>>, RecordStoreError> {
        let (kind, id) = blob_of(name)?;
        // The state must still be open (a revoked data key refuses every call, cached or not).
        self.sealing.ready().map_err(record_error)?;
        if let Some(plain) = self.cache.get(name) {
            return Ok(Some(plain));
        }
        let generation = self.cache.generation();
        match self.sealing.with_store(|s| s.get_sealed(kind, id)) {
            Ok((_, plain)) => {
                if cacheable(kind) {
                    self.cache.fill(name, &plain, generation);
                }
                Ok(Some(plain))
            }
            Err(SealingError::Store(SealedStoreError::Store(StoreError::NotFound))) => Ok(None),
            Err(e) => Err(record_error(e)),
        }
    }

    fn delete(&self, name: &str) -> Result<bool, RecordStoreError> {
        let (kind, id) = blob_of(name)?;
        self.cache.forget(name);
        match self.sealing.with_store(|s| s.delete_sealed(kind, id)) {
            Ok(()) => Ok(true),
            Err(SealingError::Store(SealedStoreError::Store(StoreError::NotFound))) => Ok(false),
            Err(e) => Err(record_error(e)),
        }
    }

    /// Every name, or an error: the wire has no cursor and stops at `parent::blobs::MAX_LIST`
    /// names, which the sealed store's per-kind cap keeps every kind within. A longer list
    /// is refused rather than cut short, since the engine's sweep removes what it does not
    /// see listed.
    fn list(&self, prefix: &str) -> Result<Vec<String>, RecordStoreError> {
        let (kind, rest) = blob_of(prefix)?;
        let engine_prefix = &prefix[..prefix.len() - rest.len()];
        let blob_prefix = format!("seal/{}/{rest}", kind.as_str());
        let (names, more) = self
            .sealing
            .with_store(|s| Ok(s.client().list(&blob_prefix)?))
            .map_err(record_error)?;
        if more {
            return Err(RecordStoreError::failed(format!(
                "the store lists more than {} {prefix} records",
                names.len()
            )));
        }
        let strip = format!("seal/{}/", kind.as_str());
        let mut out: Vec<String> = names
            .iter()
            .filter_map(|n| n.strip_prefix(&strip))
            .map(|id| format!("{engine_prefix}{id}"))
            .collect();
        out.sort();
        Ok(out)
    }
}

// ----- the API -----

/// The signing endpoints: the engine plus what the wire needs that the engine does not keep
/// (each live session's request, so approvers and external signers can fetch what they sign).
pub struct Musig2Api {
    engine: Engine<SealedRecords>,
    sealing: Arc<Sealing>,
    /// Bounded like the engine's sessions: entries are added only for sessions the engine
    /// accepted, and dropped once the engine forgets them or they expire.
    described: Mutex<HashMap<SessionId, SessionView>>,
    /// Owner signatures: bound to this boot's attested key, from admitted owners only.
    owners: OwnerCheck,
}

impl Musig2Api {
    pub fn new(nsm: Arc<dyn Nsm>, sealing: Arc<Sealing>, owners: OwnerCheck) -> Musig2Api {
        let records = SealedRecords {
            sealing: sealing.clone(),
            cache: RecordCache::new(),
        };
        Musig2Api {
            engine: Engine::new(records, NsmEntropy(nsm)),
            sealing,
            described: Mutex::new(HashMap::new()),
            owners,
        }
    }

    /// `owner`'s signature over `request_digest(op, fields, not_after)`, bound to this boot's
    /// attested key, from an admitted owner (see `owner::OwnerCheck`).
    fn check_owner(
        &self,
        owner: &[u8; 32],
        op: Op,
        fields: &[&[u8]],
        signature: &sigil_protocol::wire::Signature,
        not_after: u64,
        now: u64,
    ) -> Result<(), ApiError> {
        let digest = wire::request_digest(op, fields, not_after);
        self.owners.check(owner, &digest, signature, not_after, now)
    }

    /// The owner's keys, from its index.
    pub fn list_keys(&self, r: ListRequest, now: u64) -> Result<IdList, ApiError> {
        let owner = owner_key(&r.owner)?;
        self.check_owner(
            &owner,
            Op::ListKeys,
            &[&owner],
            &r.signature,
            r.not_after,
            now,
        )?;
        self.need_sealing()?;
        let ids = self.engine.list_keys(&owner)?;
        Ok(IdList {
            ids: ids.iter().map(|i| Hex(i.0)).collect(),
        })
    }

    /// A key's public facts, for its owner. Someone else gets the same `not_owner` whether or
    /// not the id exists.
    pub fn describe_key(&self, r: IdRequest, now: u64) -> Result<KeyView, ApiError> {
        let owner = owner_key(&r.owner)?;
        self.check_owner(
            &owner,
            Op::DescribeKey,
            &[&r.id.0, &owner],
            &r.signature,
            r.not_after,
            now,
        )?;
        self.need_sealing()?;
        match self.engine.describe_key(&KeyId(r.id.0)) {
            Ok(info) if info.owner == owner => Ok(key_view(&info)),
            Ok(_) | Err(Error::UnknownKey(_)) => Err(not_yours()),
            Err(e) => Err(e.into()),
        }
    }

    /// The aggregates the owner created, from its index.
    pub fn list_aggregates(&self, r: ListRequest, now: u64) -> Result<IdList, ApiError> {
        let owner = owner_key(&r.owner)?;
        self.check_owner(
            &owner,
            Op::ListAggregates,
            &[&owner],
            &r.signature,
            r.not_after,
            now,
        )?;
        self.need_sealing()?;
        let ids = self.engine.list_aggregates(&owner)?;
        Ok(IdList {
            ids: ids.iter().map(|i| Hex(i.0)).collect(),
        })
    }

    /// An aggregate, for its creator or the owner of one of its held keys.
    pub fn describe_aggregate(&self, r: IdRequest, now: u64) -> Result<AggregateView, ApiError> {
        let owner = owner_key(&r.owner)?;
        self.check_owner(
            &owner,
            Op::DescribeAggregate,
            &[&r.id.0, &owner],
            &r.signature,
            r.not_after,
            now,
        )?;
        self.need_sealing()?;
        match self.engine.describe_aggregate(&AggregateId(r.id.0)) {
            Ok(info) if self.has_a_say(&info, &owner) => Ok(aggregate_view(&info)),
            Ok(_) | Err(Error::UnknownAggregate(_)) => Err(not_yours()),
            Err(e) => Err(e.into()),
        }
    }

    /// Whether `owner` created the aggregate or owns one of its held keys still present.
    fn has_a_say(&self, info: &AggregateInfo, owner: &[u8; 32]) -> bool {
        info.creator == *owner
            || info.participants.iter().filter_map(|p| p.held).any(|k| {
                self.engine
                    .describe_key(&k)
                    .is_ok_and(|i| i.owner == *owner)
            })
    }

    pub fn session_status(&self, r: SessionRef, now: u64) -> Result<SessionView, ApiError> {
        self.session_view(&SessionId(r.session.0), now)
    }

    pub fn approve(&self, r: ApproveRequest, now: u64) -> Result<StatusView, ApiError> {
        let id = SessionId(r.session.0);
        // The last approval loads the held keys: a vault outage must be a retryable 503, not a
        // session failed for want of its keys.
        self.need_sealing()?;
        // An owner taken off the allow-list (a new image over the same state) keeps its
        // records but may no longer co-sign with them.
        self.owners.admitted(&r.owner.0)?;
        let st = self.engine.approve(&id, &r.owner.0, &r.signature.0, now);
        Ok(status_view(&self.session_result(&id, st)?))
    }

    pub fn nonces(
        &self,
        SessionRef { session }: SessionRef,
        now: u64,
    ) -> Result<NoncesView, ApiError> {
        Ok(NoncesView {
            session,
            participants: self.held_nonces(&session, now)?,
        })
    }

    /// The public nonces of the participants this enclave holds.
    fn held_nonces(
        &self,
        session: &Hex32,
        now: u64,
    ) -> Result<Vec<ParticipantNoncesView>, ApiError> {
        let id = SessionId(session.0);
        let n = self.engine.public_nonces(&id, now);
        let n = self.session_result(&id, n)?;
        Ok(n.iter()
            .map(|p| ParticipantNoncesView {
                index: p.index,
                nonces: p.nonces.iter().copied().map(Hex).collect(),
            })
            .collect())
    }

    pub fn submit_nonces(&self, r: SubmitNoncesRequest, now: u64) -> Result<StatusView, ApiError> {
        let id = SessionId(r.session.0);
        let nonces: Vec<[u8; 66]> = r.nonces.iter().map(|n| n.0).collect();
        // The last nonce makes the engine sign with its held keys (see approve).
        self.need_sealing()?;
        let st = self.engine.submit_nonces(&id, r.index, &nonces, now);
        Ok(status_view(&self.session_result(&id, st)?))
    }

    pub fn round(
        &self,
        SessionRef { session }: SessionRef,
        now: u64,
    ) -> Result<RoundView, ApiError> {
        let id = SessionId(session.0);
        let round = self.engine.nonce_round(&id, now);
        let round = self.session_result(&id, round)?;
        Ok(RoundView {
            session,
            round_id: Hex(round.round_id),
            aggregated_nonces: round.aggregated.iter().copied().map(Hex).collect(),
            nonces: self.held_nonces(&session, now)?,
        })
    }

    pub fn submit_partial_signatures(
        &self,
        r: PartialSignaturesRequest,
        now: u64,
    ) -> Result<StatusView, ApiError> {
        let id = SessionId(r.session.0);
        let psigs: Vec<[u8; 32]> = r.partial_signatures.iter().map(|s| s.0).collect();
        let st = self
            .engine
            .submit_partial_signatures(&id, &r.round_id.0, r.index, &psigs, now);
        Ok(status_view(&self.session_result(&id, st)?))
    }

    /// Key and aggregate operations need the sealed store: without it they answer 503 with
    /// the sealing's own reason (as the vault does) rather than a generic store error.
    fn need_sealing(&self) -> Result<(), ApiError> {
        self.sealing.with_store(|_| Ok(())).map_err(|e| match e {
            // Nothing was looked up: any store failure is the store's.
            SealingError::Store(_) => refuse(Code::BlobStoreFailed, e.to_string()),
            e => ApiError::from(e),
        })
    }

    pub fn generate_key(&self, r: GenerateKeyRequest, now: u64) -> Result<KeyView, ApiError> {
        let owner = owner_key(&r.owner)?;
        let request_id = r.request_id.0;
        self.check_owner(
            &owner,
            Op::GenerateKey,
            &[&owner, &request_id],
            &r.signature,
            r.not_after,
            now,
        )?;
        self.need_sealing()?;
        let info = self
            .engine
            .generate_key_for_request(owner, request_id, now)?;
        Ok(key_view(&info))
    }

    pub fn import_key(&self, r: ImportKeyRequest, now: u64) -> Result<KeyView, ApiError> {
        // Wiped when `r` drops.
        let secret = r.secret.expose();
        let owner = owner_key(&r.owner)?;
        // The public key the owner signs for is derived here, from the secret itself.
        let public_key = HeldKey::from_secret(KeyId([0; 16]), secret, owner, now)?.public_key();
        let request_id = r.request_id.0;
        self.check_owner(
            &owner,
            Op::ImportKey,
            &[&owner, &public_key, &request_id],
            &r.signature,
            r.not_after,
            now,
        )?;
        self.need_sealing()?;
        // A replay of this request (within its validity) returns the key it made; see
        // `Engine::import_key_for_request`.
        let info = self
            .engine
            .import_key_for_request(secret, owner, request_id, now)?;
        Ok(key_view(&info))
    }

    pub fn delete_key(&self, r: DeleteKeyRequest, now: u64) -> Result<Deleted, ApiError> {
        let id = KeyId(r.id.0);
        self.need_sealing()?;
        let info = self.engine.describe_key(&id)?;
        self.check_owner(
            &info.owner,
            Op::DeleteKey,
            &[&id.0],
            &r.signature,
            r.not_after,
            now,
        )?;
        self.engine.delete_key(&id, now)?;
        Ok(Deleted {
            id: r.id,
            deleted: true,
        })
    }

    pub fn create_aggregate(
        &self,
        r: CreateAggregateRequest,
        now: u64,
    ) -> Result<AggregateView, ApiError> {
        if r.participants.len() > sigil_signing::MAX_PARTICIPANTS {
            return Err(refuse(
                Code::LimitExceeded,
                format!(
                    "{} participants; at most {}",
                    r.participants.len(),
                    sigil_signing::MAX_PARTICIPANTS
                ),
            ));
        }
        let participants = r.participants.iter().map(|&p| p.into()).collect();
        let order = r.order.into();
        let tweaks = r
            .tweaks
            .iter()
            .map(tweak_of)
            .collect::<Result<Vec<_>, _>>()?;
        let owner = owner_key(&r.owner)?;
        self.check_owner(
            &owner,
            Op::CreateAggregate,
            &[&owner, &r.signed_spec()],
            &r.signature,
            r.not_after,
            now,
        )?;
        self.need_sealing()?;
        let info = self.engine.create_aggregate(
            &AggregateSpec {
                participants,
                order,
                tweaks,
            },
            &owner,
            now,
        )?;
        Ok(aggregate_view(&info))
    }

    pub fn delete_aggregate(
        &self,
        r: DeleteAggregateRequest,
        now: u64,
    ) -> Result<Deleted, ApiError> {
        let id = AggregateId(r.id.0);
        let owner = owner_key(&r.owner)?;
        self.check_owner(
            &owner,
            Op::DeleteAggregate,
            &[&id.0, &owner],
            &r.signature,
            r.not_after,
            now,
        )?;
        self.need_sealing()?;
        let info = self.engine.describe_aggregate(&id)?;
        // Its creator, or the owner of a held key still present; a deleted key's owner has no
        // say.
        if !self.has_a_say(&info, &owner) {
            return Err(refuse(
                Code::NotOwner,
                "the owner neither created this aggregate nor owns any of its held keys",
            ));
        }
        self.engine.delete_aggregate(&id, now)?;
        Ok(Deleted {
            id: r.id,
            deleted: true,
        })
    }

    pub fn create_session(
        &self,
        r: CreateSessionRequest,
        now: u64,
    ) -> Result<SessionView, ApiError> {
        let aggregate = AggregateId(r.aggregate.0);
        if r.messages.len() > sigil_signing::MAX_MESSAGES {
            return Err(refuse(
                Code::LimitExceeded,
                format!(
                    "{} messages; at most {}",
                    r.messages.len(),
                    sigil_signing::MAX_MESSAGES
                ),
            ));
        }
        let messages = r
            .messages
            .iter()
            .map(|m| MessageSpec::try_from(m).map_err(tweak_error))
            .collect::<Result<Vec<_>, ApiError>>()?;
        let adaptor_point = r.adaptor_point.map(|p| p.0);
        // See `Engine::create_session` for why creation is signed by an approver.
        let owner = owner_key(&r.owner)?;
        self.check_owner(
            &owner,
            Op::CreateSession,
            &[&owner, &r.signed_spec()],
            &r.signature,
            r.not_after,
            now,
        )?;
        self.need_sealing()?;
        // The session's description takes what it needs of the aggregate from the engine's
        // answer: the engine has just read the aggregate (and anchored it), once.
        let info = self.engine.create_session(
            &SessionRequest {
                aggregate,
                messages,
                adaptor_point,
                expires_at: r.expires_at,
            },
            &owner,
            now,
        )?;
        let view = SessionView {
            id: Hex(info.id.0),
            digest: Hex(info.digest),
            aggregate: r.aggregate,
            internal_key: Hex(info.internal_key),
            tweaks: info.tweaks.iter().map(TweakSpec::from).collect(),
            messages: r.messages,
            adaptor_point: r.adaptor_point,
            expires_at: info.expires_at,
            approvers: info.approvers.iter().copied().map(Hex).collect(),
            participants: info.participants.iter().map(participant_view).collect(),
            output_keys: info.output_keys.iter().copied().map(Hex).collect(),
            status: status_view(&info.status),
        };
        let mut described = self.lock_described();
        // Only what the engine still holds (live or among its finished sessions): the two
        // tables stay the same size.
        described.retain(|id, v| v.expires_at > now && self.engine.knows_session(id));
        described.insert(info.id, view.clone());
        Ok(view)
    }

    fn lock_described(&self) -> std::sync::MutexGuard<'_, HashMap<SessionId, SessionView>> {
        self.described.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An engine answer about a session; a session the engine no longer knows is forgotten
    /// here too.
    fn session_result<T>(&self, id: &SessionId, r: Result<T, Error>) -> Result<T, ApiError> {
        if let Err(Error::UnknownSession) = r {
            self.lock_described().remove(id);
        }
        Ok(r?)
    }

    fn session_view(&self, id: &SessionId, now: u64) -> Result<SessionView, ApiError> {
        let st = self.engine.session_status(id, now);
        let st = self.session_result(id, st)?;
        let mut view = self
            .lock_described()
            .get(id)
            .cloned()
            .ok_or_else(|| ApiError::from(Error::UnknownSession))?;
        view.status = status_view(&st);
        Ok(view)
    }

    pub fn abort(&self, r: AbortRequest, now: u64) -> Result<StatusView, ApiError> {
        let id = SessionId(r.session.0);
        let owner = owner_key(&r.owner)?;
        let view = self.session_view(&id, now)?;
        if !view.approvers.contains(&r.owner) {
            return Err(refuse(
                Code::NotAnApprover,
                "only an approver of this session may abort it",
            ));
        }
        self.check_owner(
            &owner,
            Op::AbortSession,
            &[&id.0, &owner],
            &r.signature,
            r.not_after,
            now,
        )?;
        let st = self.engine.abort_session(&id, now);
        Ok(status_view(&self.session_result(&id, st)?))
    }
}

// ----- checks and views -----

/// The owner's key: the wire type guarantees 32 bytes, this that they are a curve point.
fn owner_key(owner: &Hex32) -> Result<[u8; 32], ApiError> {
    if k256::schnorr::VerifyingKey::from_bytes(&owner.0).is_err() {
        return Err(refuse(
            Code::InvalidOwnerKey,
            "owner is not a valid x-only secp256k1 key",
        ));
    }
    Ok(owner.0)
}

/// The answer to a read of something that is not the signer's (or does not exist): the same
/// either way, so that signing with a fresh key does not probe which ids exist.
fn not_yours() -> ApiError {
    refuse(Code::NotOwner, "no such id among the signing owner's")
}

fn tweak_error(e: TweakError) -> ApiError {
    ApiError::new(Code::InvalidTweak, e.to_string())
}

fn tweak_of(t: &TweakSpec) -> Result<Tweak, ApiError> {
    t.to_tweak().map_err(tweak_error)
}

fn key_view(k: &KeyInfo) -> KeyView {
    KeyView {
        id: Hex(k.id.0),
        public_key: Hex(k.public_key),
        owner: Hex(k.owner),
        created: k.created,
    }
}

fn participant_view(p: &ParticipantInfo) -> ParticipantView {
    ParticipantView {
        index: p.index,
        public_key: Hex(p.public_key),
        key_id: p.held.map(|k| Hex(k.0)),
    }
}

fn aggregate_view(a: &AggregateInfo) -> AggregateView {
    AggregateView {
        id: Hex(a.id.0),
        participants: a.participants.iter().map(participant_view).collect(),
        order: a.order.into(),
        tweaks: a.tweaks.iter().map(TweakSpec::from).collect(),
        internal_key: Hex(a.keys.internal_key),
        internal_xonly: Hex(a.keys.internal_xonly),
        output_key: Hex(a.keys.output_key),
        output_xonly: Hex(a.keys.output_xonly),
        created: a.created,
    }
}

fn failure_view(r: &FailureReason) -> FailureView {
    let (code, signer_index, message_index) = match r {
        FailureReason::BadPartialSignature {
            signer_index,
            message_index,
        } => (
            FailureCode::BadPartialSignature,
            Some(*signer_index),
            Some(*message_index),
        ),
        FailureReason::KeyUnavailable { signer_index } => {
            (FailureCode::KeyUnavailable, Some(*signer_index), None)
        }
        FailureReason::EntropyFailed => (FailureCode::EntropyFailed, None, None),
        FailureReason::Aborted => (FailureCode::Aborted, None, None),
        FailureReason::Internal(_) => (FailureCode::Internal, None, None),
    };
    FailureView {
        code,
        message: r.to_string(),
        signer_index,
        message_index,
    }
}

fn session_state(s: &SessionState) -> wire::SessionState {
    match s {
        SessionState::WaitingForApprovals => wire::SessionState::WaitingForApprovals,
        SessionState::WaitingForNonces => wire::SessionState::WaitingForNonces,
        SessionState::WaitingForPartialSignatures => {
            wire::SessionState::WaitingForPartialSignatures
        }
        SessionState::Completed { .. } => wire::SessionState::Completed,
        SessionState::Failed { .. } => wire::SessionState::Failed,
        SessionState::Expired => wire::SessionState::Expired,
    }
}

fn status_view(s: &SessionStatus) -> StatusView {
    let (failure, signatures) = match &s.state {
        SessionState::Failed { reason } => (Some(failure_view(reason)), Vec::new()),
        SessionState::Completed { signatures } => (
            None,
            signatures
                .iter()
                .map(|f| {
                    let (signature, adaptor_signature) = match f.value {
                        SignatureValue::Schnorr(s) => (Some(Hex(s)), None),
                        SignatureValue::Adaptor(a) => (None, Some(Hex(a))),
                    };
                    SignatureView {
                        message_index: f.message_index,
                        output_key: Hex(f.output_key),
                        signature,
                        adaptor_signature,
                    }
                })
                .collect(),
        ),
        _ => (None, Vec::new()),
    };
    StatusView {
        session: Hex(s.id.0),
        state: session_state(&s.state),
        expires_at: s.expires_at,
        missing_approvals: s.missing_approvals.iter().copied().map(Hex).collect(),
        missing_nonces: s.missing_nonces.clone(),
        missing_partial_signatures: s.missing_partial_signatures.clone(),
        failure,
        signatures,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tweaks_round_trip_and_bad_ones_are_refused() {
        for t in [
            Tweak::Plain([1; 32]),
            Tweak::XOnly([2; 32]),
            Tweak::Taproot([3; 32]),
            Tweak::TaprootUnspendable,
        ] {
            assert_eq!(tweak_of(&TweakSpec::from(&t)).ok(), Some(t));
        }
        use sigil_protocol::musig2::TweakKind;
        for (kind, value) in [
            (TweakKind::Plain, None),
            (TweakKind::TaprootUnspendable, Some(Hex([0; 32]))),
        ] {
            let e = tweak_of(&TweakSpec { kind, value }).unwrap_err();
            assert_eq!((e.status, e.code), (400, Code::InvalidTweak), "{kind}");
        }
    }

    #[test]
    fn record_names_map_to_sealed_kinds() {
        assert_eq!(blob_of("key/00ff").unwrap(), (Kind::Key, "00ff"));
        assert_eq!(blob_of("agg/01").unwrap(), (Kind::AggregateKey, "01"));
        assert_eq!(blob_of("keyinfo/02").unwrap(), (Kind::KeyInfo, "02"));
        assert_eq!(blob_of("owner/03").unwrap(), (Kind::OwnerIndex, "03"));
        assert!(blob_of("session/01").is_err());
    }

    #[test]
    fn the_record_cache_is_bounded_and_forgets_what_it_is_told() {
        let c = RecordCache::new();
        for i in 0..RECORD_CACHE_ENTRIES + 50 {
            c.insert(&format!("key/{i:04x}"), &[i as u8; 8]);
            assert!(c.len() <= RECORD_CACHE_ENTRIES);
        }
        let last = format!("key/{:04x}", RECORD_CACHE_ENTRIES + 49);
        assert_eq!(
            c.get(&last).as_deref().map(|v| v.to_vec()),
            Some(vec![(RECORD_CACHE_ENTRIES + 49) as u8; 8])
        );
        c.insert(&last, b"new");
        assert_eq!(
            c.get(&last).as_deref().map(|v| v.to_vec()),
            Some(b"new".to_vec())
        );
        c.forget(&last);
        assert!(c.get(&last).is_none());
        // A read that began before a forget does not put back what it found.
        let before = c.generation();
        c.forget("key/0001");
        c.fill("key/0001", b"stale", before);
        assert!(c.get("key/0001").is_none());
        c.fill("key/0001", b"fresh", c.generation());
        assert_eq!(
            c.get("key/0001").as_deref().map(|v| v.to_vec()),
            Some(b"fresh".to_vec())
        );
        // Owner indexes are never kept.
        assert!(!cacheable(Kind::OwnerIndex));
        assert!(cacheable(Kind::Key) && cacheable(Kind::AggregateKey));
    }
}
