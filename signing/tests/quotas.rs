//! The session table's bounds: in-flight sessions per aggregate, per creating owner and in
//! total; finished sessions (completed, aborted) free their slot, so any number of sessions
//! can run one after another.

mod common;

use common::*;
use sigil_signing::{
    AggregateInfo, Engine, Error, KeyOrder, MAX_SESSIONS, MAX_SESSIONS_PER_AGGREGATE,
    MAX_SESSIONS_PER_OWNER, MemoryRecords, SessionInfo, SessionState,
};

/// An owner with one held key in `n` aggregates (each with its own external co-signer).
fn owner_with_aggregates(
    engine: &Engine<MemoryRecords>,
    i: u64,
    n: u64,
) -> (Owner, Vec<AggregateInfo>) {
    let owner = Owner::new(i);
    let key = engine.generate_key(owner.xonly(), NOW).unwrap().id;
    let aggs = (0..n)
        .map(|j| held_and_external(engine, key, &External::new(i * 100 + j), KeyOrder::Sorted))
        .collect();
    (owner, aggs)
}

fn open(
    engine: &Engine<MemoryRecords>,
    owner: &Owner,
    agg: &AggregateInfo,
) -> Result<SessionInfo, Error> {
    engine.create_session(
        &plain_request(agg.id, &[vec![5; 32]], NOW + 600),
        &owner.xonly(),
        NOW,
    )
}

#[test]
fn filling_one_aggregates_quota_does_not_block_another() {
    let engine = engine(1);
    let (owner, aggs) = owner_with_aggregates(&engine, 1, 2);
    for _ in 0..MAX_SESSIONS_PER_AGGREGATE {
        open(&engine, &owner, &aggs[0]).unwrap();
    }
    assert!(matches!(
        open(&engine, &owner, &aggs[0]).unwrap_err(),
        Error::SessionQuota(_)
    ));
    open(&engine, &owner, &aggs[1]).unwrap();
}

#[test]
fn filling_one_owners_quota_does_not_block_another() {
    let engine = engine(2);
    let per_agg = MAX_SESSIONS_PER_AGGREGATE;
    let n_aggs = MAX_SESSIONS_PER_OWNER.div_ceil(per_agg) as u64 + 1;
    let (greedy, aggs) = owner_with_aggregates(&engine, 2, n_aggs);
    for i in 0..MAX_SESSIONS_PER_OWNER {
        open(&engine, &greedy, &aggs[i / per_agg]).unwrap();
    }
    let err = open(&engine, &greedy, aggs.last().unwrap()).unwrap_err();
    assert!(matches!(err, Error::SessionQuota(_)), "{err:?}");
    let (other, other_aggs) = owner_with_aggregates(&engine, 3, 1);
    open(&engine, &other, &other_aggs[0]).unwrap();
}

#[test]
fn the_table_is_bounded_in_total_and_frees_up_at_expiry() {
    let engine = engine(3);
    let per_owner = MAX_SESSIONS_PER_OWNER;
    let aggs_per_owner = per_owner.div_ceil(MAX_SESSIONS_PER_AGGREGATE) as u64;
    let mut opened = 0;
    let mut owner_i = 10;
    while opened < MAX_SESSIONS {
        let (o, aggs) = owner_with_aggregates(&engine, owner_i, aggs_per_owner);
        for i in 0..per_owner.min(MAX_SESSIONS - opened) {
            open(&engine, &o, &aggs[i / MAX_SESSIONS_PER_AGGREGATE]).unwrap();
            opened += 1;
        }
        owner_i += 1;
    }
    let (late, late_aggs) = owner_with_aggregates(&engine, 99, 1);
    assert_eq!(
        open(&engine, &late, &late_aggs[0]).unwrap_err(),
        Error::TooManySessions
    );
    // Once they expire (unapproved: early) they are pruned and room frees up.
    let later = NOW + sigil_signing::UNAPPROVED_SESSION_TTL_SECS;
    engine
        .create_session(
            &plain_request(late_aggs[0].id, &[vec![5; 32]], later + 60),
            &late.xonly(),
            later,
        )
        .unwrap();
    assert_eq!(engine.session_count(), 1);
}

#[test]
fn finished_sessions_free_their_slot_so_any_number_run_one_after_another() {
    let engine = engine(4);
    let owner = Owner::new(4);
    let mut ext = External::new(4);
    let key = engine.generate_key(owner.xonly(), NOW).unwrap().id;
    let agg = held_and_external(&engine, key, &ext, KeyOrder::Sorted);
    let msgs = vec![vec![5u8; 32]];
    let job = Job::plain(&msgs, &[None]);
    // More than the table holds, alternating completed and aborted sessions.
    let mut first = None;
    for i in 0..(MAX_SESSIONS + 50) {
        let s = open(&engine, &owner, &agg).unwrap();
        first.get_or_insert(s.id);
        if i % 2 == 0 {
            run_and_verify(&engine, &agg, &s, &[&owner], &mut [&mut ext], &job);
        } else {
            let st = engine.abort_session(&s.id, NOW).unwrap();
            assert!(matches!(st.state, SessionState::Failed { .. }));
        }
        assert_eq!(engine.session_count(), 0);
    }
    // The most recent results stay readable; the oldest were forgotten to make room.
    assert_eq!(
        engine.session_status(&first.unwrap(), NOW).unwrap_err(),
        Error::UnknownSession
    );
}
