//! The engine: the calls the enclave's HTTP API wraps. It owns the in-memory sessions and
//! reaches keys and aggregates through the caller's [`RecordStore`].

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use musig2::secp::Point;
use zeroize::Zeroizing;

use crate::aggregate::{
    AggregateInfo, AggregateRecord, AggregateSpec, ParticipantSpec, aggregate_record_name,
    parse_point,
};
use crate::approval::{DigestInput, session_digest};
use crate::codec::tagged_hash;
use crate::entropy::{CheckedEntropy, Entropy, EntropyError};
use crate::error::Error;
use crate::keys::{
    AggregateId, HeldKey, KeyId, KeyInfo, key_info_record_name, key_record_name, parse_owner,
};
use crate::owners::{MAX_AGGREGATES_PER_OWNER, MAX_KEYS_PER_OWNER, OwnerIndex, owner_record_name};
use crate::records::{RecordStore, is_tombstone};
use crate::session::{
    HeldPartials, NonceRound, ParticipantNonces, Role, Session, SessionEnv, SessionId, SessionInfo,
    SessionMessage, SessionParticipant, SessionRequest, SessionStatus, SigningEvent,
};
use crate::table::Table;
use crate::{
    MAX_MESSAGE_LEN, MAX_MESSAGES, MAX_SESSION_TTL_SECS, MAX_SESSION_UNITS, SIGNING_EVENT_LOG_LEN,
};

/// The MuSig2 engine. `Send + Sync`: calls take `&self` and lock per session, so different
/// sessions proceed in parallel while calls on one session are serialized.
pub struct Engine<V: RecordStore> {
    records: V,
    entropy: CheckedEntropy,
    /// Record names deleted in this process (the most recent [`MAX_REMEMBERED_DELETIONS`]).
    deleted: Mutex<Deletions>,
    /// Whether [`Engine::sweep`] has run on this engine.
    swept: AtomicBool,
    /// Held while keys and aggregates are created or deleted: the check for an earlier run
    /// of the same request, the quota check and the writes (records, then the owner's index)
    /// must not interleave with another such call.
    writing: Mutex<()>,
    sessions: Mutex<Table>,
    counter: AtomicU64,
    /// 32 bytes from the kernel RNG, drawn once per engine (per boot), mixed into every
    /// session id. Threat: an injected entropy source that replays its stream after a restart
    /// (a snapshot restored, a broken device) would otherwise repeat session ids, and with them
    /// the nonce-derivation inputs, whenever two boots fall in the same wall-clock second.
    /// Kept as a `Result` so that a kernel RNG failure refuses sessions instead of panicking.
    boot_id: Result<[u8; 32], EntropyError>,
    events: Mutex<EventLog>,
}

/// A per-boot id from the kernel RNG, independent of the injected entropy.
fn draw_boot_id() -> Result<[u8; 32], EntropyError> {
    let mut id = [0u8; 32];
    getrandom::fill(&mut id).map_err(|e| EntropyError(format!("kernel RNG: {e}")))?;
    Ok(id)
}

/// How long an engine remembers a deletion, seconds: longer than any owner signature is
/// valid (at most 600 s at the API, and for one boot), so a replayed creation request cannot
/// bring a deleted key back; after that the owners' indexes anchor what lives.
pub const DELETION_MEMORY_SECS: u64 = 900;
/// A hard bound on the deletions remembered at once (about 12 MiB), far above what the engine
/// can delete in [`DELETION_MEMORY_SECS`] (it makes and deletes a few hundred keys a second).
pub const MAX_REMEMBERED_DELETIONS: usize = 262_144;

/// Recently deleted record names, by a keyed hash of the name (so an entry is 16 bytes
/// whatever the name; two names colliding under the per-engine random key is negligible, and
/// would only refuse an unrelated name as deleted).
#[derive(Default)]
struct Deletions {
    hasher: RandomState,
    at: HashMap<u64, u64>,
    order: VecDeque<(u64, u64)>,
}

impl Deletions {
    fn contains(&self, name: &str) -> bool {
        self.at.contains_key(&self.hasher.hash_one(name))
    }

    fn insert(&mut self, name: &str, now: u64) {
        while let Some(&(h, t)) = self.order.front() {
            if t.saturating_add(DELETION_MEMORY_SECS) >= now
                && self.order.len() < MAX_REMEMBERED_DELETIONS
            {
                break;
            }
            self.order.pop_front();
            if self.at.get(&h) == Some(&t) {
                self.at.remove(&h);
            }
        }
        let h = self.hasher.hash_one(name);
        self.at.insert(h, now);
        self.order.push_back((h, now));
    }
}

/// What [`Engine::sweep`] removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Swept {
    /// Key, key-info and aggregate records no owner's index listed.
    pub records: usize,
    /// Index entries whose records were gone.
    pub index_entries: usize,
}

#[derive(Default)]
struct EventLog {
    recent: VecDeque<SigningEvent>,
    total: u64,
}

fn lock<T>(m: &Mutex<T>) -> Result<MutexGuard<'_, T>, Error> {
    m.lock().map_err(|_| Error::Internal("lock poisoned"))
}

/// The id of the key that the owner's creation request `request_id` makes.
pub fn key_id_for_request(owner: &[u8; 32], request_id: &[u8; 16]) -> KeyId {
    let h = tagged_hash("sigil/musig2/key-request", &[owner, request_id]);
    let mut id = [0u8; 16];
    id.copy_from_slice(&h[..16]);
    KeyId(id)
}

impl<V: RecordStore> Engine<V> {
    /// A fresh engine over `records`, with no sessions.
    ///
    /// Sessions (and the secret nonces inside them) are never persisted: an engine built after
    /// a restart knows every key and aggregate in the record store but none of the sessions that were
    /// running. Calls naming such a session get [`Error::UnknownSession`]; clients must start
    /// a new session and collect fresh approvals. This is what makes nonce reuse across a
    /// restart impossible.
    pub fn new(records: V, entropy: impl Entropy + 'static) -> Self {
        Self {
            records,
            entropy: CheckedEntropy::new(Box::new(entropy)),
            deleted: Mutex::new(Deletions::default()),
            swept: AtomicBool::new(false),
            writing: Mutex::new(()),
            sessions: Mutex::new(Table::default()),
            counter: AtomicU64::new(0),
            boot_id: draw_boot_id(),
            events: Mutex::new(EventLog::default()),
        }
    }

    pub fn records(&self) -> &V {
        &self.records
    }

    fn random16(&self) -> Result<[u8; 16], Error> {
        let r = self.entropy.draw32()?;
        let mut out = [0u8; 16];
        out.copy_from_slice(&r[..16]);
        Ok(out)
    }

    /// Threat: the untrusted parent stores the sealed blobs and could serve a deleted record
    /// again (rollback). Names deleted in this process are refused before the record store is
    /// asked; across restarts the owner's index anchors what lives (see [`Engine::forget`]).
    fn check_not_deleted(&self, name: &str) -> Result<(), Error> {
        if lock(&self.deleted)?.contains(name) {
            return Err(Error::Deleted(name.to_owned()));
        }
        Ok(())
    }

    /// A fresh id whose record name is neither in use nor deleted.
    fn fresh_name<T>(
        &self,
        make: impl Fn([u8; 16]) -> T,
        name: impl Fn(&T) -> String,
    ) -> Result<T, Error> {
        for _ in 0..4 {
            let id = make(self.random16()?);
            let n = name(&id);
            if self.check_not_deleted(&n).is_ok() && self.records.get(&n)?.is_none() {
                return Ok(id);
            }
        }
        Err(Error::Internal("could not find a free id"))
    }

    /// The record under `name`: `None` if there is none, `Deleted` if it (or this process)
    /// says it was deleted.
    fn read_record(&self, name: &str) -> Result<Option<Zeroizing<Vec<u8>>>, Error> {
        self.check_not_deleted(name)?;
        let Some(bytes) = self.records.get(name)? else {
            return Ok(None);
        };
        if is_tombstone(&bytes, name)? {
            return Err(Error::Deleted(name.to_owned()));
        }
        Ok(Some(bytes))
    }

    /// The record under `name`, unless deleted; `unknown()` if there is none.
    fn live_record(
        &self,
        name: &str,
        unknown: impl FnOnce() -> Error,
    ) -> Result<Zeroizing<Vec<u8>>, Error> {
        self.read_record(name)?.ok_or_else(unknown)
    }

    /// Removes the record under `name` from the store and refuses the name in this process.
    /// Callers first take the id out of its owner's index, which is what keeps it deleted
    /// across restarts: a key or aggregate lives only while its owner's index lists it, so an
    /// old record the parent serves again is refused ([`Engine::anchored`]).
    ///
    /// Why no tombstone: a tombstone holds its blob forever, so creating and deleting would
    /// use up the store's room for good (threat: one owner churning keys until nobody can
    /// make one). Replays of a creation request are the other reason to remember a deletion;
    /// they are valid for minutes, at one boot, and the in-process memory covers them.
    fn forget(&self, name: &str, now: u64) -> Result<(), Error> {
        lock(&self.deleted)?.insert(name, now);
        self.records.delete(name)?;
        Ok(())
    }

    /// `Deleted` unless `owner`'s index lists `id` (`keys` or `aggregates` by `listed`).
    fn anchored(
        &self,
        owner: &[u8; 32],
        name: &str,
        listed: impl FnOnce(&OwnerIndex) -> bool,
    ) -> Result<(), Error> {
        self.anchored_in(&mut Vec::new(), owner, name, listed)
    }

    /// As [`Engine::anchored`], with the owner indexes this call has already read: a session's
    /// creation checks the aggregate and its held keys, often of one owner, and reads each
    /// owner's index once. Never kept beyond the call: see [`Engine::forget`].
    fn anchored_in(
        &self,
        read: &mut Vec<OwnerIndex>,
        owner: &[u8; 32],
        name: &str,
        listed: impl FnOnce(&OwnerIndex) -> bool,
    ) -> Result<(), Error> {
        let index = match read.iter().position(|i| i.owner == *owner) {
            Some(at) => &read[at],
            None => {
                read.push(self.owner_index(owner)?);
                &read[read.len() - 1]
            }
        };
        if listed(index) {
            Ok(())
        } else {
            Err(Error::Deleted(name.to_owned()))
        }
    }

    fn owner_index(&self, owner: &[u8; 32]) -> Result<OwnerIndex, Error> {
        match self.records.get(&owner_record_name(owner))? {
            None => Ok(OwnerIndex::empty(*owner)),
            Some(bytes) => OwnerIndex::from_record(&bytes, owner),
        }
    }

    fn save_owner_index(&self, index: &OwnerIndex) -> Result<(), Error> {
        Ok(self
            .records
            .put(&owner_record_name(&index.owner), &index.to_record())?)
    }

    /// Runs `f` on `owner`'s index and saves it if `f` changed it. Callers hold `writing`.
    fn update_owner_index<T>(
        &self,
        owner: &[u8; 32],
        f: impl FnOnce(&mut OwnerIndex) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let mut index = self.owner_index(owner)?;
        let before = index.clone();
        let out = f(&mut index)?;
        if index != before {
            self.save_owner_index(&index)?;
        }
        Ok(out)
    }

    // ----- keys -----

    /// Generates a key inside the engine from the caller's entropy and stores its record,
    /// under a fresh request id (see [`Engine::generate_key_for_request`]).
    pub fn generate_key(&self, owner: [u8; 32], now: u64) -> Result<KeyInfo, Error> {
        let request_id = self.random16()?;
        self.generate_key_for_request(owner, request_id, now)
    }

    /// Generates a key for the owner's request `request_id`. The key's id derives from the
    /// owner and the request id, so repeating the request (a client's retry, or a replay of
    /// the signed request within its validity) returns the key it made the first time
    /// instead of making another.
    pub fn generate_key_for_request(
        &self,
        owner: [u8; 32],
        request_id: [u8; 16],
        now: u64,
    ) -> Result<KeyInfo, Error> {
        self.key_for_request(owner, request_id, |id, existing| {
            if let Some(existing) = existing {
                return Ok(existing);
            }
            for _ in 0..4 {
                let secret = self.entropy.draw32()?;
                match self.store_key(id, &secret, owner, now) {
                    // A draw at or above the curve order (probability ~2^-128): draw again.
                    Err(Error::InvalidSecretKey) => continue,
                    other => return other,
                }
            }
            Err(Error::Internal("no valid secret key drawn"))
        })
    }

    /// Imports a 32-byte secret (already decrypted by the caller from an HPKE request) under a
    /// fresh request id.
    pub fn import_key(
        &self,
        secret: &Zeroizing<[u8; 32]>,
        owner: [u8; 32],
        now: u64,
    ) -> Result<KeyInfo, Error> {
        let request_id = self.random16()?;
        self.import_key_for_request(secret, owner, request_id, now)
    }

    /// Imports a secret for the owner's request `request_id`. Threat: a replayed import (the
    /// parent keeps the encapsulated request and sends it again within its validity) would
    /// otherwise store a second copy of the secret under a new id, which survives deleting
    /// the first. The id derives from the owner and the request id, so a repeat finds the
    /// first key and returns it (or, once deleted, its tombstone); the same request id with
    /// another secret is refused.
    pub fn import_key_for_request(
        &self,
        secret: &Zeroizing<[u8; 32]>,
        owner: [u8; 32],
        request_id: [u8; 16],
        now: u64,
    ) -> Result<KeyInfo, Error> {
        self.key_for_request(owner, request_id, |id, existing| {
            let Some(existing) = existing else {
                return self.store_key(id, secret, owner, now);
            };
            let public_key = HeldKey::from_secret(id, secret, owner, now)?.public_key();
            if existing.public_key != public_key {
                return Err(Error::RequestReused);
            }
            Ok(existing)
        })
    }

    /// Runs `make` with the key id of the owner's request `request_id` and the key an earlier
    /// run of the same request made (if any), one request at a time; the key is then in its
    /// owner's index (a run cut short before the index was written is completed here).
    fn key_for_request(
        &self,
        owner: [u8; 32],
        request_id: [u8; 16],
        make: impl FnOnce(KeyId, Option<KeyInfo>) -> Result<KeyInfo, Error>,
    ) -> Result<KeyInfo, Error> {
        parse_owner(&owner)?;
        let id = key_id_for_request(&owner, &request_id);
        self.sweep_once();
        let _one_at_a_time = lock(&self.writing)?;
        let existing = self.made_by_request(&id, &owner)?;
        if existing.is_none() && self.owner_index(&owner)?.keys.len() >= MAX_KEYS_PER_OWNER {
            return Err(Error::OwnerQuota("keys held by this owner"));
        }
        let info = make(id, existing)?;
        // If this fails, the records stay: the write may have happened (an unknown outcome),
        // and a retry of the same request completes it; otherwise `sweep` removes them.
        self.update_owner_index(&owner, |i| i.add_key(id))?;
        Ok(info)
    }

    /// The key an earlier run of the same request made, if any. A deleted one stays deleted.
    fn made_by_request(&self, id: &KeyId, owner: &[u8; 32]) -> Result<Option<KeyInfo>, Error> {
        // The secret record is the one a tombstone replaces first.
        if self.read_record(&key_record_name(id))?.is_none() {
            return Ok(None);
        }
        let bytes = self.live_record(&key_info_record_name(id), || {
            Error::UnknownKey(id.to_string())
        })?;
        // Not `key_info`: a run cut short before the index was written is completed here.
        let info = KeyInfo::from_record(&bytes, id)?;
        if info.owner != *owner {
            // Only a hash collision gets here; never hand one owner's key to another.
            return Err(Error::RequestReused);
        }
        Ok(Some(info))
    }

    /// Writes the secret record, then the public one (the key exists once both are there).
    fn store_key(
        &self,
        id: KeyId,
        secret: &Zeroizing<[u8; 32]>,
        owner: [u8; 32],
        now: u64,
    ) -> Result<KeyInfo, Error> {
        let key = HeldKey::from_secret(id, secret, owner, now)?;
        self.records.put(&key_record_name(&id), &key.to_record())?;
        let info = key.info();
        if let Err(e) = self
            .records
            .put(&key_info_record_name(&id), &info.to_record())
        {
            // The secret alone is no key (nothing can find or delete it): take it back out.
            let _ = self.records.delete(&key_record_name(&id));
            return Err(e.into());
        }
        Ok(info)
    }

    /// The secret key, opened only to sign for a session every owner approved.
    pub(crate) fn load_key(&self, id: &KeyId) -> Result<HeldKey, Error> {
        let bytes = self.live_record(&key_record_name(id), || Error::UnknownKey(id.to_string()))?;
        let key = HeldKey::from_record(&bytes, id)?;
        self.anchored(&key.owner(), &key_record_name(id), |i| i.keys.contains(id))?;
        Ok(key)
    }

    /// A key's public facts, from its public record (the secret one stays closed).
    fn key_info(&self, id: &KeyId) -> Result<KeyInfo, Error> {
        self.key_info_in(&mut Vec::new(), id)
    }

    /// As [`Engine::key_info`], with the owner indexes this call has read (see
    /// [`Engine::anchored_in`]).
    fn key_info_in(&self, read: &mut Vec<OwnerIndex>, id: &KeyId) -> Result<KeyInfo, Error> {
        let bytes = self.live_record(&key_info_record_name(id), || {
            Error::UnknownKey(id.to_string())
        })?;
        let info = KeyInfo::from_record(&bytes, id)?;
        self.anchored_in(read, &info.owner, &key_info_record_name(id), |i| {
            i.keys.contains(id)
        })?;
        Ok(info)
    }

    /// Public facts about a key.
    pub fn describe_key(&self, id: &KeyId) -> Result<KeyInfo, Error> {
        self.key_info(id)
    }

    /// Ids of `owner`'s keys (from its index; deleted ones left out).
    pub fn list_keys(&self, owner: &[u8; 32]) -> Result<Vec<KeyId>, Error> {
        let index = self.owner_index(owner)?;
        let deleted = lock(&self.deleted)?;
        Ok(index
            .keys
            .into_iter()
            .filter(|k| !deleted.contains(&key_record_name(k)))
            .collect())
    }

    /// Deletes a key: it leaves its owner's index (from then on it is refused, across
    /// restarts too unless the parent rolls the index and the records back across a reboot,
    /// the limit every sealed record shares; and its quota place is free), then its secret
    /// and public records leave the store. Sessions that still need the key fail when they next reach for it.
    pub fn delete_key(&self, id: &KeyId, now: u64) -> Result<(), Error> {
        self.sweep_once();
        let _one_at_a_time = lock(&self.writing)?;
        let info = self.key_info(id)?;
        self.update_owner_index(&info.owner, |i| {
            i.keys.retain(|k| k != id);
            Ok(())
        })?;
        // Dead from here on; records a failure leaves behind are swept at the next boot.
        self.forget(&key_record_name(id), now)?;
        self.forget(&key_info_record_name(id), now)
    }

    // ----- aggregates -----

    /// Creates and stores an aggregate key for `creator`, who has signed for it (the caller
    /// checks the signature).
    ///
    /// Threat: anyone filling the sealed store with aggregates nobody can delete. An aggregate
    /// needs at least one held participant, `creator` must own one of them (so it can always
    /// delete the aggregate again), and it counts against `creator`'s quota
    /// (`owners::MAX_AGGREGATES_PER_OWNER`). Held participants are resolved from their public
    /// records: no secret is opened.
    pub fn create_aggregate(
        &self,
        spec: &AggregateSpec,
        creator: &[u8; 32],
        now: u64,
    ) -> Result<AggregateInfo, Error> {
        if spec.participants.is_empty() {
            return Err(Error::InvalidRequest(
                "at least one participant is required",
            ));
        }
        let mut owns_one = false;
        let resolved = spec
            .participants
            .iter()
            .enumerate()
            .map(|(i, p)| match p {
                ParticipantSpec::Held(id) => self.key_info(id).map(|k| {
                    owns_one |= k.owner == *creator;
                    k.public_key
                }),
                ParticipantSpec::External(pk) => parse_point(pk, i as u32).map(|_| *pk),
            })
            .collect::<Result<Vec<_>, _>>()?;
        if !spec
            .participants
            .iter()
            .any(|p| matches!(p, ParticipantSpec::Held(_)))
        {
            return Err(Error::NoHeldParticipant);
        }
        if !owns_one {
            return Err(Error::NotOwner);
        }
        self.sweep_once();
        let _one_at_a_time = lock(&self.writing)?;
        if self.owner_index(creator)?.aggregates.len() >= MAX_AGGREGATES_PER_OWNER {
            return Err(Error::OwnerQuota("aggregates created by this owner"));
        }
        let id = self.fresh_name(AggregateId, aggregate_record_name)?;
        let rec = AggregateRecord::build(id, spec, &resolved, (now, *creator))?;
        self.records
            .put(&aggregate_record_name(&id), &rec.to_record())?;
        // If this fails, the record stays (the write may have happened); `sweep` removes it
        // at the next boot if no index lists it.
        self.update_owner_index(creator, |i| i.add_aggregate(id))?;
        Ok(rec.info().clone())
    }

    fn load_aggregate(&self, id: &AggregateId) -> Result<AggregateRecord, Error> {
        self.load_aggregate_in(&mut Vec::new(), id)
    }

    /// As [`Engine::load_aggregate`], with the owner indexes this call has read (see
    /// [`Engine::anchored_in`]).
    fn load_aggregate_in(
        &self,
        read: &mut Vec<OwnerIndex>,
        id: &AggregateId,
    ) -> Result<AggregateRecord, Error> {
        let name = aggregate_record_name(id);
        let bytes = self.live_record(&name, || Error::UnknownAggregate(id.to_string()))?;
        let rec = AggregateRecord::from_record(&bytes, id)?;
        self.anchored_in(read, &rec.info().creator, &name, |i| {
            i.aggregates.contains(id)
        })?;
        Ok(rec)
    }

    pub fn describe_aggregate(&self, id: &AggregateId) -> Result<AggregateInfo, Error> {
        Ok(self.load_aggregate(id)?.info().clone())
    }

    /// Ids of the aggregates `owner` created (from its index; deleted ones left out).
    pub fn list_aggregates(&self, owner: &[u8; 32]) -> Result<Vec<AggregateId>, Error> {
        let index = self.owner_index(owner)?;
        let deleted = lock(&self.deleted)?;
        Ok(index
            .aggregates
            .into_iter()
            .filter(|a| !deleted.contains(&aggregate_record_name(a)))
            .collect())
    }

    /// Deletes an aggregate: it leaves its creator's index (from then on it is refused, and
    /// the quota place is free), its sessions in flight are aborted (deleting means no more
    /// signatures under it, even ones already approved), then its record leaves the store.
    pub fn delete_aggregate(&self, id: &AggregateId, now: u64) -> Result<(), Error> {
        self.sweep_once();
        let _one_at_a_time = lock(&self.writing)?;
        let creator = self.load_aggregate(id)?.info().creator;
        self.update_owner_index(&creator, |i| {
            i.aggregates.retain(|a| a != id);
            Ok(())
        })?;
        let in_flight = lock(&self.sessions)?.live_on(id);
        for session in in_flight {
            // A session that ended meanwhile has nothing left to abort.
            let _ = self.abort_session(&session, now);
        }
        self.forget(&aggregate_record_name(id), now)
    }

    /// Removes what a creation or deletion cut short left behind: key, key-info and
    /// aggregate records that no owner's index lists (dead, but holding the store's room),
    /// and index entries whose records are gone (holding their owner's quota). Run once per
    /// boot, before the first creation or deletion (see [`Engine::sweep_once`]).
    ///
    /// Threat: a flaky link to the parent (or a parent answering a write and then failing)
    /// slowly filling the per-kind room with orphans nobody can delete. Only what is certain
    /// is removed: a record is deleted only when every owner's index was read, and an index
    /// entry only when its record reads back as absent.
    pub fn sweep(&self) -> Result<Swept, Error> {
        let _one_at_a_time = lock(&self.writing)?;
        let mut swept = Swept::default();
        let mut live_keys = HashSet::new();
        let mut live_aggregates = HashSet::new();
        for name in self.records.list("owner/")? {
            let Some(hex) = name.strip_prefix("owner/") else {
                continue;
            };
            let Some(owner) = crate::codec::parse_hex::<32>(hex) else {
                continue;
            };
            let mut index = self.owner_index(&owner)?;
            let before = index.clone();
            let mut gone = Vec::new();
            for k in &index.keys {
                let missing = self.records.get(&key_record_name(k))?.is_none()
                    || self.records.get(&key_info_record_name(k))?.is_none();
                if missing {
                    gone.push(*k);
                }
            }
            index.keys.retain(|k| !gone.contains(k));
            let mut gone_aggregates = Vec::new();
            for a in &index.aggregates {
                if self.records.get(&aggregate_record_name(a))?.is_none() {
                    gone_aggregates.push(*a);
                }
            }
            index.aggregates.retain(|a| !gone_aggregates.contains(a));
            swept.index_entries += gone.len() + gone_aggregates.len();
            if index != before {
                self.save_owner_index(&index)?;
            }
            live_keys.extend(index.keys.iter().map(|k| k.to_string()));
            live_aggregates.extend(index.aggregates.iter().map(|a| a.to_string()));
        }
        for (prefix, live) in [
            ("key/", &live_keys),
            ("keyinfo/", &live_keys),
            ("agg/", &live_aggregates),
        ] {
            for name in self.records.list(prefix)? {
                let id = &name[prefix.len()..];
                if !live.contains(id) && self.records.delete(&name)? {
                    swept.records += 1;
                }
            }
        }
        Ok(swept)
    }

    /// [`Engine::sweep`], the first time it is called on this engine (and again after a
    /// failure): creations and deletions call it first.
    fn sweep_once(&self) {
        if !self.swept.load(Ordering::Acquire) && self.sweep().is_ok() {
            self.swept.store(true, Ordering::Release);
        }
    }

    // ----- sessions -----

    /// Starts a session created by `creator`, who must be one of its approvers (the owner of
    /// a held participant); the caller has checked `creator`'s signature on the request.
    /// Nothing secret is touched until every owner approves.
    ///
    /// Why creation needs an approver (rather than a limit per source): the enclave cannot
    /// tell its clients apart (every connection arrives from the parent), so a per-source
    /// limit could only live in the untrusted parent; an owner's signature gives each session
    /// an accountable creator whose quota (`MAX_SESSIONS_PER_OWNER`) nobody else can spend. A
    /// counterparty (an external participant, holding no key here) therefore does not create
    /// sessions itself: it hands its proposal (messages, tweaks, adaptor point, expiry) to an
    /// owner, who creates the session and must check and approve exactly that anyway.
    pub fn create_session(
        &self,
        request: &SessionRequest,
        creator: &[u8; 32],
        now: u64,
    ) -> Result<SessionInfo, Error> {
        if request.messages.is_empty() {
            return Err(Error::InvalidRequest("at least one message is required"));
        }
        if request.messages.len() > MAX_MESSAGES {
            return Err(Error::LimitExceeded("too many messages"));
        }
        if request
            .messages
            .iter()
            .any(|m| m.message.len() > MAX_MESSAGE_LEN)
        {
            return Err(Error::LimitExceeded("message too long"));
        }
        if request.expires_at <= now {
            return Err(Error::InvalidRequest("expiry is not in the future"));
        }
        if request.expires_at - now > MAX_SESSION_TTL_SECS {
            return Err(Error::LimitExceeded("expiry too far in the future"));
        }
        let adaptor = match &request.adaptor_point {
            None => None,
            Some(p) => Some(
                Point::try_from(p)
                    .map_err(|_| Error::InvalidRequest("adaptor point is not a valid point"))?,
            ),
        };

        // The owner indexes that anchor the aggregate and its held keys, each read once.
        let mut indexes = Vec::new();
        let aggregate = self.load_aggregate_in(&mut indexes, &request.aggregate)?;
        let info = aggregate.info();
        let mut participants = Vec::with_capacity(info.participants.len());
        for p in &info.participants {
            let point = parse_point(&p.public_key, p.index)?;
            let role = match p.held {
                None => Role::External,
                Some(key_id) => {
                    // The public record only: the secret is opened once every owner approved.
                    let key = self.key_info_in(&mut indexes, &key_id)?;
                    if key.public_key != p.public_key {
                        return Err(Error::InvalidRecord {
                            kind: "key",
                            reason: "public key differs from the aggregate's participant",
                        });
                    }
                    Role::Held {
                        key: key_id,
                        owner: key.owner,
                    }
                }
            };
            participants.push(SessionParticipant::new(*p, point, role));
        }
        if !participants
            .iter()
            .any(|p| matches!(p.role, Role::Held { .. }))
        {
            return Err(Error::NoHeldParticipant);
        }
        if !participants
            .iter()
            .any(|p| matches!(p.role, Role::Held { owner, .. } if owner == *creator))
        {
            return Err(Error::NotAnApprover);
        }

        if participants.len() * request.messages.len() > MAX_SESSION_UNITS {
            return Err(Error::LimitExceeded(
                "participants x messages exceeds MAX_SESSION_UNITS (256) for one session",
            ));
        }
        let mut messages = Vec::with_capacity(request.messages.len());
        for (mi, spec) in request.messages.iter().enumerate() {
            let ctx = match &spec.tweak {
                None => aggregate.context().clone(),
                Some(t) => t.apply(aggregate.context().clone(), mi as u32)?,
            };
            let output: Point = ctx.aggregated_pubkey();
            messages.push(SessionMessage {
                spec: spec.clone(),
                ctx,
                output,
            });
        }

        // Unique per process even if the RNG repeated itself: the counter never does; unique
        // across restarts by the per-boot id, not by the clock.
        let boot_id = self.boot_id.clone()?;
        let random = self.entropy.draw32()?;
        let count = self.counter.fetch_add(1, Ordering::Relaxed);
        let id = SessionId(tagged_hash(
            "sigil/musig2/session-id/v2",
            &[
                &boot_id,
                random.as_ref(),
                &count.to_be_bytes(),
                &now.to_be_bytes(),
                &request.aggregate.0,
            ],
        ));
        let digest = session_digest(&DigestInput {
            session_id: &id,
            internal_key: &info.keys.internal_key,
            tweaks: &info.tweaks,
            messages: &request.messages,
            adaptor_point: request.adaptor_point.as_ref(),
            expires_at: request.expires_at,
        });
        let session = Session::new(
            id,
            digest,
            (now, request.expires_at),
            adaptor,
            messages,
            participants,
        );
        let out = SessionInfo {
            id,
            digest,
            aggregate: request.aggregate,
            internal_key: info.keys.internal_key,
            tweaks: info.tweaks.clone(),
            approvers: session.approvers(),
            participants: info.participants.clone(),
            output_keys: session.output_keys(),
            expires_at: request.expires_at,
            status: session.status(),
        };

        let mut sessions = lock(&self.sessions)?;
        sessions.prune(now);
        // Threat: memory exhaustion, or a full table, by opening sessions; see `table`.
        sessions.admit(&request.aggregate, creator)?;
        sessions.insert(id, session, request.aggregate, *creator);
        Ok(out)
    }

    /// Runs `f` on the session under its lock, after applying expiry. A session that is
    /// finished afterwards frees its slot (see `table`).
    fn with_session<T>(
        &self,
        id: &SessionId,
        now: u64,
        f: impl FnOnce(&mut Session, &dyn SessionEnv) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let session = lock(&self.sessions)?.get(id).ok_or(Error::UnknownSession)?;
        let mut guard = match session.lock() {
            Ok(g) => g,
            // A panic while the session was locked: its state can't be trusted, so fail it
            // (which drops its secret nonces) rather than continue.
            Err(poisoned) => {
                let mut g = poisoned.into_inner();
                g.abort();
                g
            }
        };
        guard.refresh(now);
        let out = f(&mut guard, &EngineEnv(self));
        if guard.is_terminal() {
            // Session lock, then table lock: the table never waits for a session's lock
            // (it only tries it), so this order cannot deadlock.
            lock(&self.sessions)?.finish(id);
        }
        out
    }

    /// Current state of a session.
    pub fn session_status(&self, id: &SessionId, now: u64) -> Result<SessionStatus, Error> {
        self.with_session(id, now, |s, _| Ok(s.status()))
    }

    /// An owner's BIP-340 signature over the session digest.
    pub fn approve(
        &self,
        id: &SessionId,
        owner: &[u8; 32],
        signature: &[u8; 64],
        now: u64,
    ) -> Result<SessionStatus, Error> {
        self.with_session(id, now, |s, env| s.approve(owner, signature, env))
    }

    /// The engine's public nonces, one list per held participant.
    pub fn public_nonces(&self, id: &SessionId, now: u64) -> Result<Vec<ParticipantNonces>, Error> {
        self.with_session(id, now, |s, _| s.engine_nonces())
    }

    /// An external participant's public nonces, one per message.
    pub fn submit_nonces(
        &self,
        id: &SessionId,
        index: u32,
        nonces: &[[u8; 66]],
        now: u64,
    ) -> Result<SessionStatus, Error> {
        self.with_session(id, now, |s, env| s.submit_nonces(index, nonces, env))
    }

    /// The aggregated nonces and the round id partial signatures must cite.
    pub fn nonce_round(&self, id: &SessionId, now: u64) -> Result<NonceRound, Error> {
        self.with_session(id, now, |s, _| s.nonce_round())
    }

    /// The partial signatures made with held keys and the round they are for (available once
    /// every nonce is in).
    pub fn held_partial_signatures(&self, id: &SessionId, now: u64) -> Result<HeldPartials, Error> {
        self.with_session(id, now, |s, _| s.engine_partial_signatures())
    }

    /// An external participant's partial signatures, one per message.
    pub fn submit_partial_signatures(
        &self,
        id: &SessionId,
        round_id: &[u8; 32],
        index: u32,
        partial_signatures: &[[u8; 32]],
        now: u64,
    ) -> Result<SessionStatus, Error> {
        self.with_session(id, now, |s, _| {
            s.submit_partial_signatures(round_id, index, partial_signatures)
        })
    }

    /// Ends a session now; its secret nonces are dropped.
    pub fn abort_session(&self, id: &SessionId, now: u64) -> Result<SessionStatus, Error> {
        self.with_session(id, now, |s, _| {
            s.abort();
            Ok(s.status())
        })
    }

    /// Forgets a session now (for example once its client has fetched the signatures). Its
    /// secret nonces, if any were left, are dropped with it. Returns whether it existed.
    pub fn remove_session(&self, id: &SessionId) -> Result<bool, Error> {
        let removed = lock(&self.sessions)?.remove(id);
        if let Some(s) = &removed
            && let Ok(mut g) = s.lock()
        {
            g.abort();
        }
        Ok(removed.is_some())
    }

    /// Applies expiry to every session and forgets those past their expiry (finished ones
    /// included: their results were available until then). Returns how many were removed.
    pub fn prune_sessions(&self, now: u64) -> Result<usize, Error> {
        Ok(lock(&self.sessions)?.prune(now))
    }

    /// Whether the engine still holds the session (in flight, or finished and kept).
    pub fn knows_session(&self, id: &SessionId) -> bool {
        self.sessions.lock().is_ok_and(|t| t.get(id).is_some())
    }

    /// Number of sessions in flight (finished ones, kept for their results, not counted).
    pub fn session_count(&self) -> usize {
        self.sessions.lock().map(|s| s.live()).unwrap_or(0)
    }

    /// The most recent partial signatures produced with held keys (bounded log) and the total
    /// ever produced by this engine. Public information, for audit.
    pub fn signing_events(&self) -> (Vec<SigningEvent>, u64) {
        match self.events.lock() {
            Ok(e) => (e.recent.iter().cloned().collect(), e.total),
            Err(_) => (Vec::new(), 0),
        }
    }
}

struct EngineEnv<'a, V: RecordStore>(&'a Engine<V>);

impl<V: RecordStore> SessionEnv for EngineEnv<'_, V> {
    fn load_key(&self, id: &KeyId) -> Result<HeldKey, Error> {
        self.0.load_key(id)
    }

    fn fresh_seed(&self) -> Result<Zeroizing<[u8; 32]>, Error> {
        Ok(self.0.entropy.draw32()?)
    }

    fn record(&self, event: SigningEvent) {
        if let Ok(mut log) = self.0.events.lock() {
            if log.recent.len() >= SIGNING_EVENT_LOG_LEN {
                log.recent.pop_front();
            }
            log.recent.push_back(event);
            log.total += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_is_shareable_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Engine<crate::MemoryRecords>>();
        assert_send_sync::<Engine<std::sync::Arc<dyn RecordStore>>>();
    }
}
