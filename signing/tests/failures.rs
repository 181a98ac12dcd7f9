//! Every way a session can go wrong ends in a clear state and no signature.

mod common;

use common::*;
use sigil_signing::{
    AggregateInfo, AggregateSpec, Engine, Error, FailureReason, KeyOrder, MemoryRecords,
    MessageSpec, NonceRound, ParticipantSpec, RecordStore, SessionInfo, SessionRequest,
    SessionState, SessionStatus,
};

struct Setup {
    engine: Engine<MemoryRecords>,
    vault: MemoryRecords,
    owner: Owner,
    externals: Vec<External>,
    agg: AggregateInfo,
}

/// One held key (owned by `owner`) followed by `n_ext` external participants, in that order.
fn setup(seed: u64, n_ext: u64) -> Setup {
    let vault = MemoryRecords::new();
    let engine = Engine::new(vault.clone(), entropy(seed));
    let owner = Owner::new(seed);
    let key = engine.generate_key(owner.xonly(), NOW).unwrap();
    let externals: Vec<External> = (0..n_ext).map(|i| External::new(seed * 100 + i)).collect();
    let mut participants = vec![ParticipantSpec::Held(key.id)];
    participants.extend(
        externals
            .iter()
            .map(|e| ParticipantSpec::External(e.pubkey)),
    );
    let agg = engine
        .create_aggregate(
            &AggregateSpec {
                participants,
                order: KeyOrder::AsGiven,
                tweaks: vec![],
            },
            &owner.xonly(),
            NOW,
        )
        .unwrap();
    Setup {
        engine,
        vault,
        owner,
        externals,
        agg,
    }
}

fn messages(n: u64) -> Vec<Vec<u8>> {
    (0..n).map(|i| bytes32("msg", i).to_vec()).collect()
}

fn start(s: &Setup, msgs: &[Vec<u8>], ttl: u64) -> SessionInfo {
    s.engine
        .create_session(
            &plain_request(s.agg.id, msgs, NOW + ttl),
            &s.owner.xonly(),
            NOW,
        )
        .unwrap()
}

impl Setup {
    /// The owner approves `session` correctly.
    fn approve(&self, session: &SessionInfo) -> Result<SessionStatus, Error> {
        self.engine.approve(
            &session.id,
            &self.owner.xonly(),
            &self.owner.approve(&session.digest),
            NOW,
        )
    }

    /// The owner approves and every external sends its nonces: the session's signing round.
    fn approve_and_exchange_nonces(
        &mut self,
        session: &SessionInfo,
        msgs: &[Vec<u8>],
    ) -> NonceRound {
        self.approve(session).unwrap();
        for (i, e) in self.externals.iter_mut().enumerate() {
            self.engine
                .submit_nonces(&session.id, i as u32 + 1, &e.nonces(msgs), NOW)
                .unwrap();
        }
        self.engine.nonce_round(&session.id, NOW).unwrap()
    }

    /// External `i`'s partial signatures in `round` over the untweaked `msgs`.
    fn partial_signatures(
        &mut self,
        i: usize,
        round: &NonceRound,
        msgs: &[Vec<u8>],
    ) -> Vec<[u8; 32]> {
        let ctxs = contexts(&self.agg, &vec![None; msgs.len()]);
        self.externals[i].sign(&ctxs, &round.aggregated, msgs, None)
    }
}

#[test]
fn wrong_approvals_leave_the_session_waiting_then_expired() {
    let s = setup(1, 1);
    let msgs = messages(1);
    let session = start(&s, &msgs, 60);
    let other_session = start(&s, &msgs, 60);
    let stranger = Owner::new(999);

    // Someone who owns nothing here.
    let err = s
        .engine
        .approve(
            &session.id,
            &stranger.xonly(),
            &stranger.approve(&session.digest),
            NOW,
        )
        .unwrap_err();
    assert_eq!(err, Error::NotAnApprover);
    // The right owner, signing something else: a different session's digest (replay) and junk.
    for sig in [
        s.owner.approve(&other_session.digest),
        s.owner.approve(&[0u8; 32]),
        [7u8; 64],
    ] {
        let err = s
            .engine
            .approve(&session.id, &s.owner.xonly(), &sig, NOW)
            .unwrap_err();
        assert_eq!(err, Error::BadApproval);
    }
    // Someone else signing with the owner's key id claimed.
    let err = s
        .engine
        .approve(
            &session.id,
            &s.owner.xonly(),
            &stranger.approve(&session.digest),
            NOW,
        )
        .unwrap_err();
    assert_eq!(err, Error::BadApproval);

    let status = s.engine.session_status(&session.id, NOW + 59).unwrap();
    assert_eq!(status.state, SessionState::WaitingForApprovals);
    assert_eq!(status.missing_approvals, vec![s.owner.xonly()]);
    // No nonce exists yet, so none can be fetched, and nothing was signed.
    assert!(matches!(
        s.engine.public_nonces(&session.id, NOW).unwrap_err(),
        Error::WrongState { .. }
    ));
    assert_eq!(s.engine.signing_events().1, 0);

    // At the expiry the session is dead; a correct approval now is refused.
    let status = s.engine.session_status(&session.id, NOW + 60).unwrap();
    assert_eq!(status.state, SessionState::Expired);
    let err = s
        .engine
        .approve(
            &session.id,
            &s.owner.xonly(),
            &s.owner.approve(&session.digest),
            NOW + 60,
        )
        .unwrap_err();
    assert_eq!(err, Error::SessionExpired);
    assert_eq!(s.engine.signing_events().1, 0);
}

#[test]
fn bad_partial_signature_fails_the_session_and_names_the_signer() {
    let mut s = setup(2, 2);
    let msgs = messages(2);
    let session = start(&s, &msgs, 600);
    let round = s.approve_and_exchange_nonces(&session, &msgs);
    let good = s.partial_signatures(0, &round, &msgs);
    let status = s
        .engine
        .submit_partial_signatures(&session.id, &round.round_id, 1, &good, NOW)
        .unwrap();
    assert_eq!(status.missing_partial_signatures, vec![2]);

    // Signer 2 gets message 0 right and sends its message-0 signature again for message 1.
    let mut bad = s.partial_signatures(1, &round, &msgs);
    bad[1] = bad[0];
    let err = s
        .engine
        .submit_partial_signatures(&session.id, &round.round_id, 2, &bad, NOW)
        .unwrap_err();
    assert_eq!(
        err,
        Error::BadPartialSignature {
            signer_index: 2,
            message_index: 1
        }
    );
    let status = s.engine.session_status(&session.id, NOW).unwrap();
    assert_eq!(
        status.state,
        SessionState::Failed {
            reason: FailureReason::BadPartialSignature {
                signer_index: 2,
                message_index: 1
            }
        }
    );
    // Closed for good: even a correct resubmission is refused, and no signature ever appears.
    let err = s
        .engine
        .submit_partial_signatures(&session.id, &round.round_id, 1, &good, NOW)
        .unwrap_err();
    assert!(matches!(err, Error::SessionFailed(_)));
    assert!(s.engine.nonce_round(&session.id, NOW).is_err());
}

#[test]
fn unparseable_partial_signature_is_refused_without_failing() {
    let mut s = setup(3, 1);
    let msgs = messages(1);
    let session = start(&s, &msgs, 600);
    let round = s.approve_and_exchange_nonces(&session, &msgs);
    // Not below the curve order; wrong count; wrong participant (the held one); wrong round.
    assert_eq!(
        s.engine
            .submit_partial_signatures(&session.id, &round.round_id, 1, &[[0xff; 32]], NOW)
            .unwrap_err(),
        Error::InvalidPartialSignature { index: 1 }
    );
    assert_eq!(
        s.engine
            .submit_partial_signatures(&session.id, &round.round_id, 1, &[], NOW)
            .unwrap_err(),
        Error::InvalidPartialSignature { index: 1 }
    );
    assert_eq!(
        s.engine
            .submit_partial_signatures(&session.id, &round.round_id, 0, &[[1; 32]], NOW)
            .unwrap_err(),
        Error::WrongParticipant { index: 0 }
    );
    assert_eq!(
        s.engine
            .submit_partial_signatures(&session.id, &[0u8; 32], 1, &[[1; 32]], NOW)
            .unwrap_err(),
        Error::RoundMismatch
    );
    let psigs = s.partial_signatures(0, &round, &msgs);
    let status = s
        .engine
        .submit_partial_signatures(&session.id, &round.round_id, 1, &psigs, NOW)
        .unwrap();
    assert_all_valid(&status, &s.agg, &msgs, &[None]);
}

#[test]
fn session_expires_during_nonce_exchange() {
    let mut s = setup(4, 1);
    let msgs = messages(1);
    let session = start(&s, &msgs, 30);
    s.approve(&session).unwrap();
    assert_eq!(
        s.engine
            .session_status(&session.id, NOW + 29)
            .unwrap()
            .state,
        SessionState::WaitingForNonces
    );
    let nonces = s.externals[0].nonces(&msgs);
    assert_eq!(
        s.engine
            .submit_nonces(&session.id, 1, &nonces, NOW + 30)
            .unwrap_err(),
        Error::SessionExpired
    );
    assert_eq!(
        s.engine.public_nonces(&session.id, NOW + 31).unwrap_err(),
        Error::SessionExpired
    );
    let status = s.engine.session_status(&session.id, NOW + 31).unwrap();
    assert_eq!(status.state, SessionState::Expired);
    assert_eq!(s.engine.signing_events().1, 0);
    // Pruning forgets it entirely.
    assert_eq!(s.engine.prune_sessions(NOW + 31).unwrap(), 1);
    assert_eq!(
        s.engine.session_status(&session.id, NOW + 31).unwrap_err(),
        Error::UnknownSession
    );
}

#[test]
fn replayed_requests_change_nothing() {
    let mut s = setup(5, 1);
    let msgs = messages(2);
    let session = start(&s, &msgs, 600);
    let approval = s.owner.approve(&session.digest);
    let a1 = s
        .engine
        .approve(&session.id, &s.owner.xonly(), &approval, NOW)
        .unwrap();
    let engine_nonces = s.engine.public_nonces(&session.id, NOW).unwrap();
    // Replayed approval: same status, same nonces (no regeneration).
    assert_eq!(
        s.engine
            .approve(&session.id, &s.owner.xonly(), &approval, NOW)
            .unwrap(),
        a1
    );
    assert_eq!(
        s.engine.public_nonces(&session.id, NOW).unwrap(),
        engine_nonces
    );

    let nonces = s.externals[0].nonces(&msgs);
    let n1 = s
        .engine
        .submit_nonces(&session.id, 1, &nonces, NOW)
        .unwrap();
    assert_eq!(
        s.engine
            .submit_nonces(&session.id, 1, &nonces, NOW)
            .unwrap(),
        n1
    );
    // Different nonces after the fact: refused (the engine has already signed against the first).
    let other = External::new(12345).nonces(&msgs);
    assert_eq!(
        s.engine
            .submit_nonces(&session.id, 1, &other, NOW)
            .unwrap_err(),
        Error::Conflict { index: 1 }
    );
    assert_eq!(s.engine.signing_events().1, 2);

    let round = s.engine.nonce_round(&session.id, NOW).unwrap();
    let psigs = s.partial_signatures(0, &round, &msgs);
    let done = s
        .engine
        .submit_partial_signatures(&session.id, &round.round_id, 1, &psigs, NOW)
        .unwrap();
    let first = assert_all_valid(&done, &s.agg, &msgs, &[None, None]);
    // Every call replayed after completion returns the same result and signs nothing new.
    assert_eq!(
        s.engine
            .submit_partial_signatures(&session.id, &round.round_id, 1, &psigs, NOW)
            .unwrap(),
        done
    );
    let mut altered = psigs.clone();
    altered[0][31] ^= 1;
    assert_eq!(
        s.engine
            .submit_partial_signatures(&session.id, &round.round_id, 1, &altered, NOW)
            .unwrap_err(),
        Error::Conflict { index: 1 }
    );
    assert_eq!(
        s.engine
            .submit_nonces(&session.id, 1, &nonces, NOW)
            .unwrap(),
        done
    );
    assert_eq!(
        s.engine
            .approve(&session.id, &s.owner.xonly(), &approval, NOW)
            .unwrap(),
        done
    );
    assert_eq!(s.engine.nonce_round(&session.id, NOW).unwrap(), round);
    assert_eq!(
        assert_all_valid(
            &s.engine.session_status(&session.id, NOW).unwrap(),
            &s.agg,
            &msgs,
            &[None, None]
        ),
        first
    );
    assert_eq!(s.engine.signing_events().1, 2);
}

#[test]
fn restart_keeps_keys_and_aggregates_but_no_sessions() {
    let mut s = setup(6, 1);
    let msgs = messages(1);
    let session = start(&s, &msgs, 600);
    let round = s.approve_and_exchange_nonces(&session, &msgs);
    let psigs = s.partial_signatures(0, &round, &msgs);
    let key_id = s.agg.participants[0].held.unwrap();
    let key_info = s.engine.describe_key(&key_id).unwrap();

    // "Restart": a new engine over the same vault.
    drop(s.engine);
    let engine = Engine::new(s.vault.clone(), entropy(600));
    assert_eq!(engine.session_count(), 0);
    assert_eq!(engine.describe_key(&key_id).unwrap(), key_info);
    assert_eq!(engine.describe_aggregate(&s.agg.id).unwrap(), s.agg);
    assert_eq!(engine.list_keys(&s.owner.xonly()).unwrap(), vec![key_id]);
    assert_eq!(
        engine.list_aggregates(&s.owner.xonly()).unwrap(),
        vec![s.agg.id]
    );
    for err in [
        engine.session_status(&session.id, NOW).unwrap_err(),
        engine
            .submit_partial_signatures(&session.id, &round.round_id, 1, &psigs, NOW)
            .unwrap_err(),
        engine.public_nonces(&session.id, NOW).unwrap_err(),
    ] {
        assert_eq!(err, Error::UnknownSession);
    }
    assert!(
        Error::UnknownSession
            .to_string()
            .contains("start a new one")
    );

    // A new session over the surviving aggregate works.
    let fresh = engine
        .create_session(
            &plain_request(s.agg.id, &msgs, NOW + 600),
            &s.owner.xonly(),
            NOW,
        )
        .unwrap();
    assert_ne!(fresh.id, session.id);
    let job = Job::plain(&msgs, &[None]);
    run_and_verify(
        &engine,
        &s.agg,
        &fresh,
        &[&s.owner],
        &mut [&mut s.externals[0]],
        &job,
    );
}

#[test]
fn deleted_key_is_unusable_and_its_id_never_returns() {
    let mut s = setup(7, 1);
    let msgs = messages(1);
    let key_id = s.agg.participants[0].held.unwrap();
    let name = format!("key/{key_id}");
    let record = s.vault.get(&name).unwrap().unwrap();
    // A session approved before the deletion...
    let session = start(&s, &msgs, 600);
    s.engine.delete_key(&key_id, NOW).unwrap();
    assert!(matches!(
        s.engine.describe_key(&key_id).unwrap_err(),
        Error::Deleted(_)
    ));
    assert!(s.engine.list_keys(&s.owner.xonly()).unwrap().is_empty());
    // ...fails when it reaches for the key, with no signature.
    let err = s.approve(&session).unwrap_err();
    assert!(matches!(err, Error::Deleted(_)));
    assert_eq!(
        s.engine.session_status(&session.id, NOW).unwrap().state,
        SessionState::Failed {
            reason: FailureReason::KeyUnavailable { signer_index: 0 }
        }
    );
    // The untrusted store serves the old record again (rollback): still refused.
    s.vault.put(&name, &record).unwrap();
    assert!(matches!(
        s.engine.describe_key(&key_id).unwrap_err(),
        Error::Deleted(_)
    ));
    assert!(matches!(
        s.engine.delete_key(&key_id, NOW).unwrap_err(),
        Error::Deleted(_)
    ));
    let err = s
        .engine
        .create_session(
            &plain_request(s.agg.id, &msgs, NOW + 600),
            &s.owner.xonly(),
            NOW,
        )
        .unwrap_err();
    assert!(matches!(err, Error::Deleted(_)));
    let _ = &mut s.externals;
}

#[test]
fn deleting_an_aggregate_refuses_new_sessions() {
    let mut s = setup(8, 1);
    // A session approved before the deletion is aborted by it: no signature comes out.
    let msgs = messages(1);
    let session = start(&s, &msgs, 600);
    s.approve(&session).unwrap();
    s.engine.delete_aggregate(&s.agg.id, NOW).unwrap();
    assert_eq!(
        s.engine.session_status(&session.id, NOW).unwrap().state,
        SessionState::Failed {
            reason: FailureReason::Aborted
        }
    );
    assert!(matches!(
        s.engine.describe_aggregate(&s.agg.id).unwrap_err(),
        Error::Deleted(_)
    ));
    assert!(
        s.engine
            .list_aggregates(&s.owner.xonly())
            .unwrap()
            .is_empty()
    );
    // The key itself is untouched.
    assert!(
        s.engine
            .describe_key(&s.agg.participants[0].held.unwrap())
            .is_ok()
    );
    let _ = &mut s.externals;
}

#[test]
fn aborted_session_is_closed() {
    let mut s = setup(9, 1);
    let msgs = messages(1);
    let session = start(&s, &msgs, 600);
    s.approve(&session).unwrap();
    let status = s.engine.abort_session(&session.id, NOW).unwrap();
    assert_eq!(
        status.state,
        SessionState::Failed {
            reason: FailureReason::Aborted
        }
    );
    let nonces = s.externals[0].nonces(&msgs);
    assert!(matches!(
        s.engine
            .submit_nonces(&session.id, 1, &nonces, NOW)
            .unwrap_err(),
        Error::SessionFailed(FailureReason::Aborted)
    ));
    assert_eq!(s.engine.signing_events().1, 0);
    assert!(s.engine.remove_session(&session.id).unwrap());
    assert!(!s.engine.remove_session(&session.id).unwrap());
    assert_eq!(
        s.engine.session_status(&session.id, NOW).unwrap_err(),
        Error::UnknownSession
    );
}

#[test]
fn requests_are_validated() {
    let s = setup(10, 1);
    let msg = |m: Vec<u8>| MessageSpec {
        message: m,
        tweak: None,
    };
    let req =
        |messages: Vec<MessageSpec>, adaptor: Option<[u8; 33]>, expires_at: u64| SessionRequest {
            aggregate: s.agg.id,
            messages,
            adaptor_point: adaptor,
            expires_at,
        };
    let ok = vec![msg(vec![1; 32])];
    let cases: Vec<(SessionRequest, &str)> = vec![
        (req(vec![], None, NOW + 10), "invalid_request"),
        (req(ok.clone(), None, NOW), "invalid_request"),
        (
            req(
                ok.clone(),
                None,
                NOW + sigil_signing::MAX_SESSION_TTL_SECS + 1,
            ),
            "limit_exceeded",
        ),
        (
            req(
                vec![msg(vec![0; sigil_signing::MAX_MESSAGE_LEN + 1])],
                None,
                NOW + 10,
            ),
            "limit_exceeded",
        ),
        (
            req(
                vec![msg(vec![0; 1]); sigil_signing::MAX_MESSAGES + 1],
                None,
                NOW + 10,
            ),
            "limit_exceeded",
        ),
        (req(ok.clone(), Some([5; 33]), NOW + 10), "invalid_request"),
        (
            SessionRequest {
                aggregate: sigil_signing::AggregateId([0; 16]),
                ..req(ok.clone(), None, NOW + 10)
            },
            "unknown_aggregate",
        ),
    ];
    for (r, code) in cases {
        assert_eq!(
            s.engine
                .create_session(&r, &s.owner.xonly(), NOW)
                .unwrap_err()
                .code(),
            code,
            "{r:?}"
        );
    }

    // Aggregates: no held key, a repeated key, a non-canonical key encoding, an unknown key.
    let ext = External::new(77);
    let mut compact = ext.pubkey;
    compact[0] = 0x05;
    let held = s.agg.participants[0].held.unwrap();
    let agg = |participants| AggregateSpec {
        participants,
        order: KeyOrder::AsGiven,
        tweaks: vec![],
    };
    let creator = s.owner.xonly();
    // Junk of external keys only: nobody here could ever sign with it, or delete it.
    assert_eq!(
        s.engine
            .create_aggregate(
                &agg(vec![ParticipantSpec::External(ext.pubkey)]),
                &creator,
                NOW
            )
            .unwrap_err(),
        Error::NoHeldParticipant
    );
    // Someone else's held key: the creator must own one of the held keys.
    assert_eq!(
        s.engine
            .create_aggregate(
                &agg(vec![
                    ParticipantSpec::Held(held),
                    ParticipantSpec::External(ext.pubkey)
                ]),
                &Owner::new(4242).xonly(),
                NOW
            )
            .unwrap_err(),
        Error::NotOwner
    );
    assert_eq!(
        s.engine
            .create_aggregate(
                &agg(vec![
                    ParticipantSpec::Held(held),
                    ParticipantSpec::External(s.externals[0].pubkey),
                    ParticipantSpec::Held(held)
                ]),
                &creator,
                NOW
            )
            .unwrap_err(),
        Error::DuplicateParticipant { index: 2 }
    );
    assert_eq!(
        s.engine
            .create_aggregate(
                &agg(vec![
                    ParticipantSpec::Held(held),
                    ParticipantSpec::External(compact)
                ]),
                &creator,
                NOW
            )
            .unwrap_err(),
        Error::InvalidPublicKey { index: 1 }
    );
    assert!(matches!(
        s.engine
            .create_aggregate(
                &agg(vec![ParticipantSpec::Held(sigil_signing::KeyId([1; 16]))]),
                &creator,
                NOW
            )
            .unwrap_err(),
        Error::UnknownKey(_)
    ));
    assert_eq!(
        s.engine
            .create_aggregate(&agg(vec![]), &creator, NOW)
            .unwrap_err()
            .code(),
        "invalid_request"
    );
    assert_eq!(
        s.engine.generate_key([0u8; 32], NOW).unwrap_err(),
        Error::InvalidOwnerKey
    );
}

#[test]
fn broken_entropy_is_refused() {
    let engine = Engine::new(MemoryRecords::new(), |out: &mut [u8]| {
        out.fill(0);
        Ok(())
    });
    assert_eq!(
        engine
            .generate_key(Owner::new(1).xonly(), NOW)
            .unwrap_err()
            .code(),
        "entropy_failed"
    );
    let stuck = Engine::new(MemoryRecords::new(), |out: &mut [u8]| {
        out.fill(1);
        Ok(())
    });
    let owner = Owner::new(1);
    stuck.generate_key(owner.xonly(), NOW).unwrap_err();
}

#[test]
fn sessions_need_an_approver_as_creator() {
    let s = setup(11, 1);
    let stranger = Owner::new(999);
    let err = s
        .engine
        .create_session(
            &plain_request(s.agg.id, &messages(1), NOW + 60),
            &stranger.xonly(),
            NOW,
        )
        .unwrap_err();
    assert_eq!(err, Error::NotAnApprover);
    assert_eq!(s.engine.session_count(), 0);
}

#[test]
fn a_session_nobody_approves_expires_early() {
    let s = setup(12, 1);
    let msgs = messages(1);
    let lazy = start(&s, &msgs, 3600);
    let approved = start(&s, &msgs, 3600);
    s.approve(&approved).unwrap();
    let later = NOW + sigil_signing::UNAPPROVED_SESSION_TTL_SECS;
    assert_eq!(
        s.engine.session_status(&lazy.id, later).unwrap().state,
        SessionState::Expired
    );
    assert_eq!(
        s.engine.session_status(&approved.id, later).unwrap().state,
        SessionState::WaitingForNonces
    );
    assert_eq!(s.engine.session_count(), 1);
}
