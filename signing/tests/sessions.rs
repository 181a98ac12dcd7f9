//! Complete signing sessions: 2, 3 and 5 participants mixing held and external keys, batch,
//! per-message tweaks, taproot and adaptor variants. Every final signature is also checked
//! with libsecp256k1.

mod common;

use common::*;
use sha2::{Digest, Sha256};
use sigil_signing::{
    AggregateInfo, AggregateSpec, DigestInput, Engine, KeyOrder, MemoryRecords, MessageSpec,
    ParticipantSpec, SessionInfo, SessionRequest, SessionState, SignatureValue, Tweak,
    complete_adaptor_signature, reveal_adaptor_secret, session_digest,
};
use zeroize::Zeroizing;

enum Who<'a> {
    Held(&'a Owner),
    Ext(&'a External),
}

fn aggregate(
    engine: &Engine<MemoryRecords>,
    who: &[Who<'_>],
    order: KeyOrder,
    tweaks: Vec<Tweak>,
) -> AggregateInfo {
    let creator = who
        .iter()
        .find_map(|w| match w {
            Who::Held(o) => Some(o.xonly()),
            Who::Ext(_) => None,
        })
        .expect("an aggregate has a held key");
    let participants = who
        .iter()
        .map(|w| match w {
            Who::Held(o) => ParticipantSpec::Held(engine.generate_key(o.xonly(), NOW).unwrap().id),
            Who::Ext(e) => ParticipantSpec::External(e.pubkey),
        })
        .collect();
    engine
        .create_aggregate(
            &AggregateSpec {
                participants,
                order,
                tweaks,
            },
            &creator,
            NOW,
        )
        .unwrap()
}

fn request(
    agg: &AggregateInfo,
    messages: &[Vec<u8>],
    tweaks: &[Option<Tweak>],
    adaptor: Option<[u8; 33]>,
) -> SessionRequest {
    SessionRequest {
        aggregate: agg.id,
        messages: messages
            .iter()
            .zip(tweaks)
            .map(|(m, t)| MessageSpec {
                message: m.clone(),
                tweak: *t,
            })
            .collect(),
        adaptor_point: adaptor,
        expires_at: NOW + 600,
    }
}

/// A session over `messages` with their `tweaks` and no adaptor point, created at NOW.
fn start(
    engine: &Engine<MemoryRecords>,
    agg: &AggregateInfo,
    messages: &[Vec<u8>],
    tweaks: &[Option<Tweak>],
) -> SessionInfo {
    engine
        .create_session(
            &request(agg, messages, tweaks, None),
            &creator(engine, agg.id),
            NOW,
        )
        .unwrap()
}

/// The owner recomputes the session's digest from public facts instead of trusting the one
/// shown: they agree.
fn assert_digest_recomputes(
    session: &SessionInfo,
    agg: &AggregateInfo,
    messages: &[Vec<u8>],
    tweaks: &[Option<Tweak>],
    adaptor_point: Option<&[u8; 33]>,
) {
    let recomputed = session_digest(&DigestInput {
        session_id: &session.id,
        internal_key: &agg.keys.internal_key,
        tweaks: &agg.tweaks,
        messages: &request(agg, messages, tweaks, None).messages,
        adaptor_point,
        expires_at: session.expires_at,
    });
    assert_eq!(recomputed, session.digest);
}

fn sighashes(n: u64) -> Vec<Vec<u8>> {
    (0..n).map(|i| bytes32("sighash", i).to_vec()).collect()
}

#[test]
fn two_party_held_and_external() {
    let engine = engine(1);
    let owner = Owner::new(1);
    let mut ext = External::new(1);
    let agg = aggregate(
        &engine,
        &[Who::Held(&owner), Who::Ext(&ext)],
        KeyOrder::AsGiven,
        vec![],
    );
    assert_eq!(agg.participants[1].public_key, ext.pubkey);
    let msgs = sighashes(1);
    let tweaks = [None];
    let session = start(&engine, &agg, &msgs, &tweaks);
    assert_eq!(session.approvers, vec![owner.xonly()]);
    assert_eq!(session.status.state, SessionState::WaitingForApprovals);
    assert_digest_recomputes(&session, &agg, &msgs, &tweaks, None);
    let job = Job::plain(&msgs, &tweaks);
    run_and_verify(&engine, &agg, &session, &[&owner], &mut [&mut ext], &job);
}

#[test]
fn three_party_two_held_one_external_sorted() {
    let engine = engine(2);
    let (o1, o2) = (Owner::new(1), Owner::new(2));
    let mut ext = External::new(7);
    let agg = aggregate(
        &engine,
        &[Who::Ext(&ext), Who::Held(&o1), Who::Held(&o2)],
        KeyOrder::Sorted,
        vec![],
    );
    let keys: Vec<[u8; 33]> = agg.participants.iter().map(|p| p.public_key).collect();
    assert_eq!(keys, sigil_signing::sort_keys(&keys));
    let msgs = vec![b"any length message, not only 32 bytes".to_vec()];
    let tweaks = [None];
    let session = start(&engine, &agg, &msgs, &tweaks);
    assert_eq!(session.approvers.len(), 2);
    // Nonces may arrive before the approvals; signing waits for both.
    let job = Job::plain(&msgs, &tweaks);
    run_and_verify(&engine, &agg, &session, &[&o1, &o2], &mut [&mut ext], &job);
}

#[test]
fn five_party_batch_with_per_message_tweaks() {
    let engine = engine(3);
    let (o1, o2) = (Owner::new(1), Owner::new(2));
    let (mut e1, mut e2) = (External::new(1), External::new(2));
    // Three held keys, two of them owned by the same client (one approval covers both).
    let agg = aggregate(
        &engine,
        &[
            Who::Held(&o1),
            Who::Ext(&e1),
            Who::Held(&o2),
            Who::Ext(&e2),
            Who::Held(&o1),
        ],
        KeyOrder::AsGiven,
        vec![
            Tweak::Plain(bytes32("plain", 0)),
            Tweak::XOnly(bytes32("xonly", 0)),
        ],
    );
    let msgs = sighashes(4);
    let tweaks = [
        None,
        Some(Tweak::Plain(bytes32("m-plain", 1))),
        Some(Tweak::XOnly(bytes32("m-xonly", 2))),
        Some(Tweak::Taproot(bytes32("m-root", 3))),
    ];
    let session = start(&engine, &agg, &msgs, &tweaks);
    assert_eq!(session.approvers, vec![o1.xonly(), o2.xonly()]);
    assert_eq!(session.output_keys.len(), 4);
    let job = Job::plain(&msgs, &tweaks);
    let sigs = run_and_verify(
        &engine,
        &agg,
        &session,
        &[&o1, &o2],
        &mut [&mut e1, &mut e2],
        &job,
    );
    // Different messages and keys: all signatures distinct.
    for i in 0..sigs.len() {
        for j in 0..i {
            assert_ne!(sigs[i], sigs[j]);
        }
    }
    // Three held signers times four messages: twelve partial signatures, one per nonce.
    assert_eq!(engine.signing_events().1, 12);
}

#[test]
fn all_held_completes_on_the_last_approval() {
    let engine = engine(4);
    let (o1, o2, o3) = (Owner::new(1), Owner::new(2), Owner::new(3));
    let agg = aggregate(
        &engine,
        &[Who::Held(&o1), Who::Held(&o2), Who::Held(&o3)],
        KeyOrder::Sorted,
        vec![],
    );
    let msgs = sighashes(2);
    let tweaks = [None, None];
    let session = start(&engine, &agg, &msgs, &tweaks);
    let s = engine
        .approve(&session.id, &o1.xonly(), &o1.approve(&session.digest), NOW)
        .unwrap();
    assert_eq!(s.state, SessionState::WaitingForApprovals);
    // Approvers are listed in signer order, which sorting decided; compare as sets.
    let mut missing = s.missing_approvals.clone();
    missing.sort();
    let mut expected = vec![o2.xonly(), o3.xonly()];
    expected.sort();
    assert_eq!(missing, expected);
    let job = Job::plain(&msgs, &tweaks);
    run_and_verify(&engine, &agg, &session, &[&o2, &o3], &mut [], &job);
}

/// BIP-341 output key computed with libsecp256k1 from the internal key: Q = P + H_TapTweak(P || root) G.
fn bip341_output(internal: &[u8; 32], root: Option<&[u8; 32]>) -> [u8; 32] {
    let tag = Sha256::digest(b"TapTweak");
    let mut h = Sha256::new()
        .chain_update(tag)
        .chain_update(tag)
        .chain_update(internal);
    if let Some(r) = root {
        h.update(r);
    }
    let t: [u8; 32] = h.finalize().into();
    let p = secp256k1::XOnlyPublicKey::from_byte_array(*internal).unwrap();
    let scalar = secp256k1::Scalar::from_be_bytes(t).unwrap();
    let (q, _) = p.add_tweak(secp256k1::SECP256K1, &scalar).unwrap();
    q.serialize()
}

#[test]
fn taproot_key_path_outputs_match_bip341() {
    let engine = engine(5);
    let owner = Owner::new(1);
    let mut ext = External::new(3);
    let root = bytes32("script-tree", 0);

    for (tweak, merkle) in [
        (Tweak::TaprootUnspendable, None),
        (Tweak::Taproot(root), Some(&root)),
    ] {
        let agg = aggregate(
            &engine,
            &[Who::Held(&owner), Who::Ext(&ext)],
            KeyOrder::Sorted,
            vec![tweak],
        );
        assert_eq!(
            agg.keys.output_xonly,
            bip341_output(&agg.keys.internal_xonly, merkle)
        );
        assert_ne!(agg.keys.output_xonly, agg.keys.internal_xonly);
        let msgs = sighashes(2);
        let tweaks = [None, None];
        let session = start(&engine, &agg, &msgs, &tweaks);
        assert!(
            session
                .output_keys
                .iter()
                .all(|k| *k == agg.keys.output_xonly)
        );
        let job = Job::plain(&msgs, &tweaks);
        run_and_verify(&engine, &agg, &session, &[&owner], &mut [&mut ext], &job);
    }
}

#[test]
fn adaptor_signatures_complete_with_the_secret() {
    let engine = engine(6);
    let (o1, o2) = (Owner::new(1), Owner::new(2));
    let mut ext = External::new(4);
    let agg = aggregate(
        &engine,
        &[Who::Held(&o1), Who::Ext(&ext), Who::Held(&o2)],
        KeyOrder::Sorted,
        vec![Tweak::TaprootUnspendable],
    );
    let secret = Zeroizing::new(bytes32("adaptor-secret", 0));
    let t = musig2::secp::Scalar::try_from(*secret).unwrap();
    let point = t.base_point_mul().serialize();
    let msgs = sighashes(2);
    let tweaks = [None, Some(Tweak::Plain(bytes32("p", 0)))];
    let session = engine
        .create_session(
            &request(&agg, &msgs, &tweaks, Some(point)),
            &creator(&engine, agg.id),
            NOW,
        )
        .unwrap();
    assert_digest_recomputes(&session, &agg, &msgs, &tweaks, Some(&point));
    let status = run_session(
        &engine,
        &session,
        &agg,
        &[&o1, &o2],
        &mut [(index_of(&agg, &ext), &mut ext)],
        &Job {
            messages: &msgs,
            tweaks: &tweaks,
            adaptor: Some(point),
        },
    );
    let SessionState::Completed { signatures } = status.state else {
        panic!("not completed: {:?}", status.state);
    };
    for s in &signatures {
        let SignatureValue::Adaptor(pre) = s.value else {
            panic!("expected an adaptor signature");
        };
        let msg = &msgs[s.message_index as usize];
        // The pre-signature alone is not a valid signature...
        let mut naive = [0u8; 64];
        naive[..32].copy_from_slice(&pre[1..33]);
        naive[32..].copy_from_slice(&pre[33..]);
        assert!(!secp_verify(&s.output_key, msg, &naive));
        // ...a wrong secret does not complete it...
        let wrong = Zeroizing::new(bytes32("adaptor-secret", 1));
        assert!(complete_adaptor_signature(&pre, &wrong, &s.output_key, msg).is_err());
        // ...the right one does, and the result reveals the secret.
        let sig = complete_adaptor_signature(&pre, &secret, &s.output_key, msg).unwrap();
        assert!(secp_verify(&s.output_key, msg, &sig));
        assert_eq!(*reveal_adaptor_secret(&pre, &sig).unwrap(), *secret);
    }
}

#[test]
fn imported_key_signs_like_a_generated_one() {
    let engine = engine(7);
    let owner = Owner::new(9);
    let secret = Zeroizing::new(bytes32("imported", 0));
    let info = engine.import_key(&secret, owner.xonly(), NOW).unwrap();
    let expected = musig2::secp::Scalar::try_from(*secret)
        .unwrap()
        .base_point_mul()
        .serialize();
    assert_eq!(info.public_key, expected);
    let mut ext = External::new(5);
    let agg = held_and_external(&engine, info.id, &ext, KeyOrder::AsGiven);
    let msgs = sighashes(1);
    let tweaks = [None];
    let session = start(&engine, &agg, &msgs, &tweaks);
    let job = Job::plain(&msgs, &tweaks);
    run_and_verify(&engine, &agg, &session, &[&owner], &mut [&mut ext], &job);
}
