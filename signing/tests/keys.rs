//! Held keys and aggregate records through the engine and its vault.

mod common;

use common::*;
use sigil_signing::{
    Engine, Error, HeldKey, KeyOrder, MemoryRecords, MessageSpec, RecordStore, SessionRequest,
};
use zeroize::Zeroizing;

fn snapshot(v: &MemoryRecords) -> Vec<(String, Vec<u8>)> {
    v.list("")
        .unwrap()
        .into_iter()
        .map(|n| {
            let b = v.get(&n).unwrap().unwrap().to_vec();
            (n, b)
        })
        .collect()
}

/// An engine over an inspectable vault, and an owner; both from `seed`.
fn fixture(seed: u64) -> (MemoryRecords, Engine<MemoryRecords>, Owner) {
    let vault = MemoryRecords::new();
    let engine = Engine::new(vault.clone(), entropy(seed));
    (vault, engine, Owner::new(seed))
}

#[test]
fn generated_key_is_stored_sealable_and_describable() {
    let (vault, engine, owner) = fixture(1);
    let a = engine.generate_key(owner.xonly(), NOW).unwrap();
    let b = engine.generate_key(owner.xonly(), NOW + 1).unwrap();
    assert_ne!(a.id, b.id);
    assert_ne!(a.public_key, b.public_key);
    assert_eq!(a.owner, owner.xonly());
    assert_eq!(a.created, NOW);
    assert_eq!(engine.describe_key(&a.id).unwrap(), a);
    let mut ids = engine.list_keys(&owner.xonly()).unwrap();
    ids.sort();
    let mut expected = vec![a.id, b.id];
    expected.sort();
    assert_eq!(ids, expected);

    // The record under key/<id> parses back to the same key, and only under that id.
    let record = vault.get(&format!("key/{}", a.id)).unwrap().unwrap();
    let held = HeldKey::from_record(&record, &a.id).unwrap();
    assert_eq!(held.info(), a);
    assert!(HeldKey::from_record(&record, &b.id).is_err());
    assert!(!format!("{held:?}").contains(&hex::encode(&record[21..53])));
}

#[test]
fn swapped_or_tampered_records_are_refused() {
    let (vault, engine, owner) = fixture(2);
    let a = engine.generate_key(owner.xonly(), NOW).unwrap();
    let b = engine.generate_key(owner.xonly(), NOW).unwrap();
    let ext = External::new(2);
    let agg = held_and_external(&engine, a.id, &ext, KeyOrder::AsGiven);

    // The store serves a's records under b's names.
    for kind in ["key", "keyinfo"] {
        let rec_a = vault.get(&format!("{kind}/{}", a.id)).unwrap().unwrap();
        vault.put(&format!("{kind}/{}", b.id), &rec_a).unwrap();
    }
    assert_eq!(
        engine.describe_key(&b.id).unwrap_err().code(),
        "invalid_record"
    );

    // The store flips a byte of the aggregate record.
    let name = format!("agg/{}", agg.id);
    let mut rec = vault.get(&name).unwrap().unwrap().to_vec();
    // A byte of the first participant's key (after magic, version, id, created, creator,
    // order, count and the held flag).
    rec[70] ^= 1;
    vault.put(&name, &rec).unwrap();
    assert_eq!(
        engine.describe_aggregate(&agg.id).unwrap_err().code(),
        "invalid_record"
    );
    let err = engine
        .create_session(
            &SessionRequest {
                aggregate: agg.id,
                messages: vec![MessageSpec {
                    message: vec![1; 32],
                    tweak: None,
                }],
                adaptor_point: None,
                expires_at: NOW + 60,
            },
            &owner.xonly(),
            NOW,
        )
        .unwrap_err();
    assert_eq!(err.code(), "invalid_record");
}

#[test]
fn import_validates_secret_and_owner() {
    let engine = engine(3);
    let owner = Owner::new(3);
    let order_n: [u8; 32] =
        hex::decode("fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141")
            .unwrap()
            .try_into()
            .unwrap();
    for bad in [[0u8; 32], order_n, [0xff; 32]] {
        assert_eq!(
            engine
                .import_key(&Zeroizing::new(bad), owner.xonly(), NOW)
                .unwrap_err(),
            Error::InvalidSecretKey
        );
    }
    let not_on_curve: [u8; 32] =
        hex::decode("eefdea4cdb677750a420fee807eacf21eb9898ae79b9768766e4faa04a2d4a34")
            .unwrap()
            .try_into()
            .unwrap();
    assert_eq!(
        engine
            .import_key(&Zeroizing::new([1u8; 32]), not_on_curve, NOW)
            .unwrap_err(),
        Error::InvalidOwnerKey
    );
    // n - 1 is the largest valid secret.
    let mut max = order_n;
    max[31] -= 1;
    assert!(
        engine
            .import_key(&Zeroizing::new(max), owner.xonly(), NOW)
            .is_ok()
    );
    assert!(engine.list_keys(&owner.xonly()).unwrap().len() == 1);
}

#[test]
fn sessions_write_nothing_to_the_vault() {
    let (vault, engine, owner) = fixture(4);
    let mut ext = External::new(4);
    let key = engine.generate_key(owner.xonly(), NOW).unwrap();
    let agg = held_and_external(&engine, key.id, &ext, KeyOrder::Sorted);
    let before = snapshot(&vault);
    let msgs = vec![vec![7u8; 32]];
    let session = engine
        .create_session(&plain_request(agg.id, &msgs, NOW + 60), &owner.xonly(), NOW)
        .unwrap();
    let job = Job::plain(&msgs, &[None]);
    run_and_verify(&engine, &agg, &session, &[&owner], &mut [&mut ext], &job);
    // Secret nonces (and everything else about sessions) stayed in memory.
    assert_eq!(snapshot(&vault), before);
}

#[test]
fn a_repeated_creation_request_returns_the_first_key_and_makes_no_copy() {
    let (vault, engine, owner) = fixture(31);
    let other_owner = Owner::new(32);

    // Generate: the same request twice is one key; another request id is another key.
    let a = engine
        .generate_key_for_request(owner.xonly(), [1; 16], NOW)
        .unwrap();
    let again = engine
        .generate_key_for_request(owner.xonly(), [1; 16], NOW + 5)
        .unwrap();
    assert_eq!(again, a);
    assert_eq!(
        a.id,
        sigil_signing::key_id_for_request(&owner.xonly(), &[1; 16])
    );
    let b = engine
        .generate_key_for_request(owner.xonly(), [2; 16], NOW)
        .unwrap();
    assert_ne!(b.id, a.id);
    // The same request id from another owner names another key.
    let c = engine
        .generate_key_for_request(other_owner.xonly(), [1; 16], NOW)
        .unwrap();
    assert_ne!(c.id, a.id);
    assert_eq!(engine.list_keys(&owner.xonly()).unwrap().len(), 2);
    assert_eq!(engine.list_keys(&other_owner.xonly()).unwrap().len(), 1);

    // Import: a replay stores nothing new and answers with the first key.
    let secret = Zeroizing::new([0x42u8; 32]);
    let before = snapshot(&vault).len();
    let imported = engine
        .import_key_for_request(&secret, owner.xonly(), [9; 16], NOW)
        .unwrap();
    let replayed = engine
        .import_key_for_request(&secret, owner.xonly(), [9; 16], NOW + 60)
        .unwrap();
    assert_eq!(replayed, imported);
    // Its secret record and its public one (the owner's index was there already).
    assert_eq!(snapshot(&vault).len(), before + 2);
    // The same request id with another secret is refused, and the first key is untouched.
    let other = Zeroizing::new([0x43u8; 32]);
    let e = engine
        .import_key_for_request(&other, owner.xonly(), [9; 16], NOW)
        .unwrap_err();
    assert!(matches!(e, Error::RequestReused), "{e}");
    assert_eq!(e.code(), "request_reused");
    assert_eq!(engine.describe_key(&imported.id).unwrap(), imported);

    // Deleted, the key does not come back from a replay of its request.
    engine.delete_key(&imported.id, NOW).unwrap();
    let e = engine
        .import_key_for_request(&secret, owner.xonly(), [9; 16], NOW)
        .unwrap_err();
    assert!(matches!(e, Error::Deleted(_)), "{e}");
    // Both records left the store (and their room with them): the secret is gone.
    assert_eq!(snapshot(&vault).len(), before);
    assert!(
        vault
            .get(&format!("key/{}", imported.id))
            .unwrap()
            .is_none()
    );
}

#[test]
fn deleted_keys_and_aggregates_stay_deleted_after_a_restart() {
    let (vault, engine, owner) = fixture(33);
    let secret = Zeroizing::new([0x44u8; 32]);
    let key = engine
        .import_key_for_request(&secret, owner.xonly(), [7; 16], NOW)
        .unwrap();
    let agg = held_and_external(&engine, key.id, &External::new(33), KeyOrder::Sorted);
    // What the untrusted store keeps of them before the deletions.
    let names = [
        format!("key/{}", key.id),
        format!("keyinfo/{}", key.id),
        format!("agg/{}", agg.id),
    ];
    let kept: Vec<_> = names
        .iter()
        .map(|n| vault.get(n).unwrap().unwrap())
        .collect();
    engine.delete_aggregate(&agg.id, NOW).unwrap();
    engine.delete_key(&key.id, NOW).unwrap();
    drop(engine);

    // A new engine (a reboot) over the same store, with no memory of the deletions: the
    // records are gone...
    let engine = Engine::new(vault.clone(), entropy(34));
    assert!(matches!(
        engine.describe_key(&key.id).unwrap_err(),
        Error::UnknownKey(_)
    ));
    assert!(engine.list_keys(&owner.xonly()).unwrap().is_empty());
    assert!(engine.list_aggregates(&owner.xonly()).unwrap().is_empty());
    // ...and when the store serves them again, the owner's index (which no longer lists
    // them) refuses them.
    for (n, r) in names.iter().zip(&kept) {
        vault.put(n, r).unwrap();
    }
    assert!(matches!(
        engine.describe_key(&key.id).unwrap_err(),
        Error::Deleted(_)
    ));
    assert!(matches!(
        engine.describe_aggregate(&agg.id).unwrap_err(),
        Error::Deleted(_)
    ));
    // (A replay of the owner's signed import after the reboot is refused before it reaches
    // the engine: at the API, owner signatures are bound to the boot's attested key.)
    let e = engine
        .create_session(
            &plain_request(agg.id, &[vec![1; 32]], NOW + 60),
            &owner.xonly(),
            NOW,
        )
        .unwrap_err();
    assert!(matches!(e, Error::Deleted(_)), "{e}");
}

#[test]
fn aggregates_count_against_their_creators_quota_until_deleted() {
    use sigil_signing::owners::MAX_AGGREGATES_PER_OWNER;
    let (vault, engine, owner) = fixture(35);
    let key = engine.generate_key(owner.xonly(), NOW).unwrap();
    let aggs: Vec<_> = (0..MAX_AGGREGATES_PER_OWNER as u64)
        .map(|i| held_and_external(&engine, key.id, &External::new(1000 + i), KeyOrder::Sorted))
        .collect();
    let spec = |i| sigil_signing::AggregateSpec {
        participants: vec![
            sigil_signing::ParticipantSpec::Held(key.id),
            sigil_signing::ParticipantSpec::External(External::new(i).pubkey),
        ],
        order: KeyOrder::Sorted,
        tweaks: vec![],
    };
    let e = engine
        .create_aggregate(&spec(5000), &owner.xonly(), NOW)
        .unwrap_err();
    assert!(matches!(e, Error::OwnerQuota(_)), "{e}");
    assert_eq!(e.code(), "limit_exceeded");
    // Another owner is not affected.
    let other = Owner::new(36);
    let k2 = engine.generate_key(other.xonly(), NOW).unwrap();
    held_and_external(&engine, k2.id, &External::new(6000), KeyOrder::Sorted);
    // Deleting one frees its place, and its record leaves the store.
    let name = format!("agg/{}", aggs[0].id);
    assert!(vault.get(&name).unwrap().is_some());
    engine.delete_aggregate(&aggs[0].id, NOW).unwrap();
    assert!(vault.get(&name).unwrap().is_none());
    engine
        .create_aggregate(&spec(5001), &owner.xonly(), NOW)
        .unwrap();
}

/// A deletion is remembered for longer than any owner signature is valid (a replayed import
/// within that time finds the key deleted), not for a number of later deletions that anyone
/// could push it out with.
#[test]
fn a_deletion_is_remembered_for_longer_than_any_signature_is_valid() {
    use sigil_signing::DELETION_MEMORY_SECS;
    let (_vault, engine, owner) = fixture(41);
    let secret = Zeroizing::new([0x45u8; 32]);
    let key = engine
        .import_key_for_request(&secret, owner.xonly(), [1; 16], NOW)
        .unwrap();
    engine.delete_key(&key.id, NOW).unwrap();
    // Another owner churns keys meanwhile.
    let other = Owner::new(42);
    for i in 0..300 {
        let k = engine.generate_key(other.xonly(), NOW + 1).unwrap();
        engine.delete_key(&k.id, NOW + 1 + i / 100).unwrap();
    }
    let e = engine
        .import_key_for_request(&secret, owner.xonly(), [1; 16], NOW + 600)
        .unwrap_err();
    assert!(matches!(e, Error::Deleted(_)), "{e}");
    // Long after every signature on the request has expired, the memory lets go (the API
    // refuses the expired request itself).
    let later = NOW + DELETION_MEMORY_SECS + 10;
    let k = engine.generate_key(other.xonly(), later).unwrap();
    engine.delete_key(&k.id, later).unwrap();
    engine
        .import_key_for_request(&secret, owner.xonly(), [1; 16], later)
        .unwrap();
}

/// What a cut-short creation or deletion left behind (or a parent put back) is swept before
/// the first creation of the next boot: records no owner's index lists, and index entries
/// whose records are gone.
#[test]
fn a_new_engine_sweeps_orphan_records_and_dangling_index_entries() {
    let (vault, engine, owner) = fixture(43);
    let kept = engine.generate_key(owner.xonly(), NOW).unwrap();
    let dangling = engine.generate_key(owner.xonly(), NOW).unwrap();
    let gone = engine.generate_key(owner.xonly(), NOW).unwrap();
    let agg = held_and_external(&engine, gone.id, &External::new(43), KeyOrder::Sorted);
    let orphans: Vec<_> = [format!("key/{}", gone.id), format!("agg/{}", agg.id)]
        .into_iter()
        .map(|n| {
            let r = vault.get(&n).unwrap().unwrap();
            (n, r)
        })
        .collect();
    engine.delete_aggregate(&agg.id, NOW).unwrap();
    engine.delete_key(&gone.id, NOW).unwrap();
    drop(engine);
    // The parent puts deleted records back and loses one key's public record.
    for (n, r) in &orphans {
        vault.put(n, r).unwrap();
    }
    vault.delete(&format!("keyinfo/{}", dangling.id)).unwrap();

    let engine = Engine::new(vault.clone(), entropy(44));
    let swept = engine.sweep().unwrap();
    assert_eq!(swept.records, 3, "{swept:?}"); // two put back, and the dangling key's secret
    assert_eq!(swept.index_entries, 1, "{swept:?}");
    assert_eq!(engine.list_keys(&owner.xonly()).unwrap(), vec![kept.id]);
    for n in [
        format!("key/{}", gone.id),
        format!("agg/{}", agg.id),
        format!("key/{}", dangling.id),
    ] {
        assert!(vault.get(&n).unwrap().is_none(), "{n} is still there");
    }
    // Nothing is left to sweep, and the live key is untouched.
    assert_eq!(engine.sweep().unwrap(), Default::default());
    assert_eq!(engine.describe_key(&kept.id).unwrap(), kept);
}
