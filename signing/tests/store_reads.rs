//! How often a session's steps read owner indexes: never cached across calls (a cluster's
//! enclaves share one store, and the index is what says a key or aggregate still exists).
//! Session creation reads each owner's index once for the aggregate and all its held keys;
//! the approval that loads the held keys reads each key's owner index once, for drawing the
//! nonces and signing alike.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use common::*;
use sigil_signing::{
    AggregateSpec, Engine, KeyOrder, MemoryRecords, ParticipantSpec, RecordStore, RecordStoreError,
    SessionState, Tweak,
};
use zeroize::Zeroizing;

/// A memory store that counts the reads of each record name.
#[derive(Clone)]
struct Counting {
    inner: MemoryRecords,
    reads: Arc<Mutex<HashMap<String, usize>>>,
}

impl Counting {
    /// Reads of owner indexes since the last call, by name.
    fn take_owner_reads(&self) -> HashMap<String, usize> {
        let mut reads = self.reads.lock().unwrap();
        let out = reads
            .iter()
            .filter(|(n, _)| n.starts_with("owner/"))
            .map(|(n, c)| (n.clone(), *c))
            .collect();
        reads.clear();
        out
    }
}

impl RecordStore for Counting {
    fn put(&self, name: &str, record: &[u8]) -> Result<(), RecordStoreError> {
        self.inner.put(name, record)
    }
    fn get(&self, name: &str) -> Result<Option<Zeroizing<Vec<u8>>>, RecordStoreError> {
        *self
            .reads
            .lock()
            .unwrap()
            .entry(name.to_owned())
            .or_default() += 1;
        self.inner.get(name)
    }
    fn delete(&self, name: &str) -> Result<bool, RecordStoreError> {
        self.inner.delete(name)
    }
    fn list(&self, prefix: &str) -> Result<Vec<String>, RecordStoreError> {
        self.inner.list(prefix)
    }
}

#[test]
fn each_call_reads_each_owner_index_once() {
    let store = Counting {
        inner: MemoryRecords::new(),
        reads: Arc::new(Mutex::new(HashMap::new())),
    };
    let engine = Engine::new(store.clone(), entropy(7));
    let (alice, bob) = (Owner::new(1), Owner::new(2));
    let mut external = External::new(3);
    let k1 = engine.generate_key(alice.xonly(), NOW).unwrap().id;
    let k2 = engine.generate_key(bob.xonly(), NOW).unwrap().id;
    let agg = engine
        .create_aggregate(
            &AggregateSpec {
                participants: vec![
                    ParticipantSpec::Held(k1),
                    ParticipantSpec::Held(k2),
                    ParticipantSpec::External(external.pubkey),
                ],
                order: KeyOrder::AsGiven,
                tweaks: vec![Tweak::TaprootUnspendable],
            },
            &alice.xonly(),
            NOW,
        )
        .unwrap();
    store.take_owner_reads();

    // Creation anchors the aggregate (alice's index) and both held keys (alice's and bob's):
    // one read of each index.
    let messages = vec![b"one message".to_vec()];
    let session = engine
        .create_session(
            &plain_request(agg.id, &messages, NOW + 600),
            &alice.xonly(),
            NOW,
        )
        .unwrap();
    assert_eq!(session.internal_key, agg.keys.internal_key);
    assert_eq!(session.tweaks, agg.tweaks);
    let reads = store.take_owner_reads();
    assert_eq!(reads.len(), 2, "{reads:?}");
    assert!(reads.values().all(|&n| n == 1), "{reads:?}");

    // The external nonces first; the last approval then loads both held keys, draws their
    // nonces and signs in one call: each key's owner index is read once, not once to draw and
    // again to sign.
    let index = index_of(&agg, &external);
    engine
        .submit_nonces(&session.id, index, &external.nonces(&messages), NOW)
        .unwrap();
    engine
        .approve(
            &session.id,
            &alice.xonly(),
            &alice.approve(&session.digest),
            NOW,
        )
        .unwrap();
    assert!(store.take_owner_reads().is_empty());
    let st = engine
        .approve(
            &session.id,
            &bob.xonly(),
            &bob.approve(&session.digest),
            NOW,
        )
        .unwrap();
    assert!(matches!(
        st.state,
        SessionState::WaitingForPartialSignatures
    ));
    let reads = store.take_owner_reads();
    assert_eq!(reads.len(), 2, "{reads:?}");
    assert!(reads.values().all(|&n| n == 1), "{reads:?}");

    // Nothing is kept across calls: the next session reads the indexes again.
    engine
        .create_session(
            &plain_request(agg.id, &messages, NOW + 600),
            &alice.xonly(),
            NOW,
        )
        .unwrap();
    assert_eq!(store.take_owner_reads().len(), 2);
}
