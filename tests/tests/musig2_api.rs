//! MuSig2 signing through the enclave's real HTTP API in local mode, with sealed state (the
//! development KMS, the real `sigil-shim` and the enclave process), driven by the client
//! library and the `sigil` CLI.
//!
//! A 3-party session (two keys held by the enclave, one external signer driven by the test)
//! completes with signatures checked by k256 outside the enclave; a wrong approval leaves the
//! session waiting; a bad partial signature fails it naming the signer; a restart mid-session
//! loses the session with a clear error while keys and aggregates survive.

mod common;

use std::time::{Duration, Instant};

use common::{api_error, attest_local as attest, now, target_dir};
use sigil_client::musig2::{
    AggregateSpec, ExpectedKey, ExpectedSession, SessionSpec, complete_adaptor_signature,
    verify_bip340,
};
use sigil_client::{AttestedEnclave, Client, OwnerKey, SignerKey};
use sigil_e2e::deployment::{Deployment, LocalEnclave};
use sigil_protocol::musig2::{
    AggregateView, KeyOrder, MessageView, ParticipantSpec, SessionView, TweakKind, TweakSpec,
};
use sigil_protocol::wire::{Hex, HexBytes, Point};

/// A fresh deployment in `target/test-signing/<name>-<pid>`. Its enclave is this workspace's
/// profile build, so it is always built from the current source, whatever static build lies
/// around.
fn deployment(name: &str) -> Deployment {
    Deployment::new(
        target_dir()
            .join("test-signing")
            .join(format!("{name}-{}", std::process::id())),
        common::profile_bin("sigil-enclave"),
        common::profile_bin("sigil-shim"),
        None,
    )
}

/// Starts the deployment's enclave and waits until its sealed state is ready.
fn start_ready(d: &mut Deployment) {
    d.start_enclave();
    d.wait_sealing(true);
}

/// A file in the deployment's directory.
fn file(d: &Deployment, name: &str) -> String {
    d.dir.join(name).display().to_string()
}

fn messages(n: u8) -> Vec<MessageView> {
    (0..n)
        .map(|i| MessageView {
            message: HexBytes(vec![0xa0 + i; 32]),
            tweak: None,
        })
        .collect()
}

/// A session on `agg` over `n` messages (see [`messages`]), expiring in `ttl` seconds.
fn session_request(
    agg: &AggregateView,
    n: u8,
    adaptor_point: Option<Point>,
    ttl: u64,
) -> SessionSpec {
    SessionSpec {
        aggregate: agg.id,
        messages: messages(n),
        adaptor_point,
        expires_at: now() + ttl,
    }
}

/// What the test, which created `s` on `agg`, expects of it (`musig2_create_session` checked
/// the messages against the request).
fn expected(s: &SessionView, agg: &AggregateView) -> ExpectedSession {
    ExpectedSession {
        session: s.id,
        key: ExpectedKey::Aggregate {
            id: agg.id,
            internal_key: agg.internal_key,
        },
        tweaks: agg.tweaks.clone(),
        messages: s.messages.clone(),
        adaptor_point: s.adaptor_point,
        expires_by: s.expires_at,
    }
}

/// A session on `agg` created by `owner` (an approver).
fn new_session(
    c: &Client,
    e: &AttestedEnclave,
    owner: &OwnerKey,
    agg: &AggregateView,
    n: u8,
) -> SessionView {
    c.musig2_create_session(e, owner, &session_request(agg, n, None, 600))
        .expect("create a session")
}

/// Every final signature is a BIP-340 signature on its message under the aggregate's output
/// key, checked here with k256 (outside the enclave).
fn assert_signed(view: &SessionView, agg: &AggregateView) {
    assert_eq!(view.status.state, "completed", "{:?}", view.status);
    assert_eq!(view.status.signatures.len(), view.messages.len());
    for s in &view.status.signatures {
        assert_eq!(s.output_key, agg.output_xonly);
        let key = s.output_key.0;
        let sig = s.signature.expect("a BIP-340 signature").0;
        let msg = view.messages[s.message_index as usize].message.0.clone();
        assert!(verify_bip340(&key, &msg, &sig), "signature {s:?}");
        // libsecp256k1: an implementation independent of k256 and the musig2 crate.
        let pk = secp256k1::XOnlyPublicKey::from_byte_array(key).unwrap();
        secp256k1::SECP256K1
            .verify_schnorr(
                &secp256k1::schnorr::Signature::from_byte_array(sig),
                &msg,
                &pk,
            )
            .unwrap_or_else(|e| panic!("libsecp256k1 refuses {s:?}: {e}"));
        let mut bad = msg.clone();
        bad[0] ^= 1;
        assert!(!verify_bip340(&key, &bad, &sig));
    }
}

#[test]
fn three_party_sessions_through_the_api_and_the_cli() {
    let mut d = deployment("musig");
    start_ready(&mut d);
    let (c, e) = attest(&d.endpoint());
    let (alice, bob, stranger) = (
        OwnerKey::generate().unwrap(),
        OwnerKey::generate().unwrap(),
        OwnerKey::generate().unwrap(),
    );
    let external = SignerKey::generate().unwrap();

    // Keys: one generated inside, one imported; both bound to their owner.
    let k1 = c.musig2_generate_key(&e, &alice).unwrap();
    let imported = SignerKey::generate().unwrap();
    let k2 = c.musig2_import_key(&e, &bob, &imported).unwrap();
    assert_eq!(k2.public_key, imported.public_key());
    assert_eq!(k1.owner, alice.x_only());
    // Each owner lists and describes its own keys, and nobody else's.
    assert_eq!(c.musig2_list_keys(&e, &alice).unwrap(), vec![k1.id]);
    assert_eq!(c.musig2_list_keys(&e, &bob).unwrap(), vec![k2.id]);
    assert!(c.musig2_list_keys(&e, &stranger).unwrap().is_empty());
    let (status, code, _) = api_error(c.musig2_describe_key(&e, &stranger, &k1.id).unwrap_err());
    assert_eq!((status, code.as_str()), (403, "not_owner"));
    let (status, code, _) = api_error(
        c.musig2_describe_key(&e, &stranger, &Hex([9; 16]))
            .unwrap_err(),
    );
    assert_eq!((status, code.as_str()), (403, "not_owner"));

    // Aggregates are signed by an owner of one of their held keys: junk of external keys
    // only, or one signed by a stranger, is refused.
    let junk = AggregateSpec {
        participants: vec![ParticipantSpec::External(Hex(external.public_key()))],
        order: KeyOrder::AsGiven,
        tweaks: vec![],
    };
    let (status, code, _) = api_error(c.musig2_create_aggregate(&e, &alice, &junk).unwrap_err());
    assert_eq!((status, code.as_str()), (400, "no_held_participant"));
    let theirs = AggregateSpec {
        participants: vec![
            ParticipantSpec::Held(k1.id),
            ParticipantSpec::External(Hex(external.public_key())),
        ],
        ..junk.clone()
    };
    let (status, code, _) = api_error(
        c.musig2_create_aggregate(&e, &stranger, &theirs)
            .unwrap_err(),
    );
    assert_eq!((status, code.as_str()), (403, "not_owner"));

    // 2 held + 1 external, BIP-86-style taproot output.
    let agg = c
        .musig2_create_aggregate(
            &e,
            &alice,
            &AggregateSpec {
                participants: vec![
                    ParticipantSpec::Held(k1.id),
                    ParticipantSpec::Held(k2.id),
                    ParticipantSpec::External(Hex(external.public_key())),
                ],
                order: KeyOrder::AsGiven,
                tweaks: vec![TweakSpec {
                    kind: TweakKind::TaprootUnspendable,
                    value: None,
                }],
            },
        )
        .unwrap();
    assert_eq!(agg.participants.len(), 3);
    assert_eq!(agg.participants[2].key_id, None);

    // --- a batch session, completed ---
    // Creating a session needs an approver's signature.
    let (status, code, _) = api_error(
        c.musig2_create_session(&e, &stranger, &session_request(&agg, 1, None, 600))
            .unwrap_err(),
    );
    assert_eq!((status, code.as_str()), (403, "not_an_approver"));
    let s = new_session(&c, &e, &bob, &agg, 2);
    assert_eq!(s.status.state, "waiting_for_approvals");
    let mut approvers = s.approvers.clone();
    approvers.sort();
    let mut owners = vec![Hex(alice.x_only()), Hex(bob.x_only())];
    owners.sort();
    assert_eq!(approvers, owners);

    // Wrong approvals leave the session waiting: a signature over another digest, and a key
    // that approves nothing here.
    let wrong = alice.sign(&[7u8; 32]).unwrap();
    let (status, code, _) = api_error(c.musig2_approve_raw(&e, &alice, &s.id, &wrong).unwrap_err());
    assert_eq!((status, code.as_str()), (401, "bad_approval"));
    let (status, code, _) = api_error(
        c.musig2_approve(&e, &stranger, &s, &expected(&s, &agg))
            .unwrap_err(),
    );
    assert_eq!((status, code.as_str()), (403, "not_an_approver"));
    let st = c.musig2_session(&e, &s.id).unwrap().status;
    assert_eq!(st.state, "waiting_for_approvals");
    assert_eq!(st.missing_approvals.len(), 2);
    // Nothing secret was touched: the engine has no nonces yet.
    let (status, code, _) = api_error(c.musig2_nonces(&e, &s.id).unwrap_err());
    assert_eq!((status, code.as_str()), (409, "wrong_state"));

    // The external signer's nonces may come before the approvals.
    let mut part = external.join(&s).unwrap();
    assert_eq!(part.index(), 2);
    c.musig2_submit_nonces(&e, &s.id, 2, &part.public_nonces())
        .unwrap();
    let st = c
        .musig2_approve(&e, &alice, &s, &expected(&s, &agg))
        .unwrap();
    assert_eq!(st.state, "waiting_for_approvals");
    let st = c.musig2_approve(&e, &bob, &s, &expected(&s, &agg)).unwrap();
    // The last approval made the engine sign with both held keys at once.
    assert_eq!(st.state, "waiting_for_partial_signatures");
    assert_eq!(st.missing_partial_signatures, vec![2]);

    let round = c.musig2_round(&e, &s.id).unwrap();
    // The round carries what sessions/nonces answers.
    let engine_nonces = c.musig2_nonces(&e, &s.id).unwrap();
    assert_eq!(round.nonces, engine_nonces.participants);
    part.check_round(&round.nonces, &round).unwrap();
    let psigs = part.sign(&round).unwrap();
    // Spent nonces cannot sign again.
    assert!(part.sign(&round).is_err());
    let st = c
        .musig2_submit_partial_signatures(&e, &s.id, &round.round_id, 2, &psigs)
        .unwrap();
    assert_eq!(st.state, "completed");
    // A replay of the same submission changes nothing.
    let again = c
        .musig2_submit_partial_signatures(&e, &s.id, &round.round_id, 2, &psigs)
        .unwrap();
    assert_eq!(again, st);
    assert_signed(&c.musig2_session(&e, &s.id).unwrap(), &agg);

    // --- a bad partial signature fails the session and names the signer ---
    let s = new_session(&c, &e, &alice, &agg, 1);
    c.musig2_approve(&e, &alice, &s, &expected(&s, &agg))
        .unwrap();
    c.musig2_approve(&e, &bob, &s, &expected(&s, &agg)).unwrap();
    let mut part = external.join(&s).unwrap();
    c.musig2_submit_nonces(&e, &s.id, 2, &part.public_nonces())
        .unwrap();
    let round = c.musig2_round(&e, &s.id).unwrap();
    let mut psigs = part.sign(&round).unwrap();
    psigs[0][31] ^= 1;
    let (status, code, message) = api_error(
        c.musig2_submit_partial_signatures(&e, &s.id, &round.round_id, 2, &psigs)
            .unwrap_err(),
    );
    assert_eq!((status, code.as_str()), (400, "bad_partial_signature"));
    assert!(message.contains("signer 2"), "{message}");
    let st = c.musig2_session(&e, &s.id).unwrap().status;
    assert_eq!(st.state, "failed");
    let failure = st.failure.expect("a failure reason");
    assert_eq!(
        (failure.code.as_str(), failure.signer_index),
        ("bad_partial_signature", Some(2))
    );
    assert!(st.signatures.is_empty());

    // --- a restart mid-session: the session is gone, keys and aggregate are not ---
    let s = new_session(&c, &e, &alice, &agg, 1);
    c.musig2_approve(&e, &alice, &s, &expected(&s, &agg))
        .unwrap();
    c.musig2_approve(&e, &bob, &s, &expected(&s, &agg)).unwrap();
    assert_eq!(
        c.musig2_session(&e, &s.id).unwrap().status.state,
        "waiting_for_nonces"
    );
    d.kill_enclave();
    start_ready(&mut d);
    let (c, e) = attest(&d.endpoint());
    let (status, code, message) = api_error(c.musig2_session(&e, &s.id).unwrap_err());
    assert_eq!((status, code.as_str()), (404, "unknown_session"));
    assert!(message.contains("restart"), "{message}");
    let (status, _, _) = api_error(
        c.musig2_submit_nonces(&e, &s.id, 2, &external.join(&s).unwrap().public_nonces())
            .unwrap_err(),
    );
    assert_eq!(status, 404);
    assert_eq!(c.musig2_describe_key(&e, &alice, &k1.id).unwrap(), k1);
    assert_eq!(c.musig2_describe_key(&e, &bob, &k2.id).unwrap(), k2);
    assert_eq!(c.musig2_describe_aggregate(&e, &bob, &agg.id).unwrap(), agg);
    assert_eq!(c.musig2_list_aggregates(&e, &alice).unwrap(), vec![agg.id]);
    let (status, code, _) = api_error(
        c.musig2_describe_aggregate(&e, &stranger, &agg.id)
            .unwrap_err(),
    );
    assert_eq!((status, code.as_str()), (403, "not_owner"));

    // --- after the restart, a session driven entirely by the CLI signs with the same keys ---
    let (alice_file, bob_file, ext_file) = (
        file(&d, "alice.key"),
        file(&d, "bob.key"),
        file(&d, "ext.key"),
    );
    alice.save(&alice_file).unwrap();
    bob.save(&bob_file).unwrap();
    external.save(&ext_file).unwrap();
    let endpoint = d.endpoint();
    let cli = |args: &[&str]| -> serde_json::Value {
        let mut all = vec!["musig2", "--endpoint", &endpoint, "--trust-test-root"];
        all.extend_from_slice(args);
        common::sigil_json(&all)
    };
    let msg = hex::encode([0x5a; 32]);
    let created = cli(&[
        "session",
        "create",
        "--aggregate",
        &agg.id.to_string(),
        "--message",
        &msg,
        "--owner-key",
        &alice_file,
    ]);
    let sid = created["id"].as_str().unwrap().to_string();
    let session: Hex<32> = sid.parse().unwrap();
    // What the owners and the external signer mean to sign, as the CLI takes it.
    let agg_id = agg.id.to_string();
    let intent = [
        "--aggregate",
        agg_id.as_str(),
        "--tweak",
        "taproot_unspendable",
        "--no-adaptor",
        "--message",
        msg.as_str(),
    ];
    let with = |head: &[&str], tail: &[&str]| -> Vec<String> {
        head.iter().chain(tail).map(|a| a.to_string()).collect()
    };
    // The approver refuses a session that signs something else, naming what differs.
    let other = hex::encode([0x5b; 32]);
    // Under the command's first name, which scripts may still use.
    let mut all = vec!["musig", "--endpoint", &endpoint, "--trust-test-root"];
    all.extend_from_slice(&[
        "session",
        "approve",
        &sid,
        "--owner-key",
        &alice_file,
        "--aggregate",
        &agg_id,
        "--tweak",
        "taproot_unspendable",
        "--no-adaptor",
        "--message",
        &other,
    ]);
    let out = common::sigil(&all);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("message 0"), "{stderr}");
    // Alice names the aggregate, Bob the output key it signs for.
    let output_key = agg.output_xonly.to_string();
    let by_key = [
        "--output-key",
        output_key.as_str(),
        "--tweak",
        "taproot_unspendable",
        "--no-adaptor",
        "--message",
        msg.as_str(),
    ];
    for (f, how) in [(&alice_file, &intent[..]), (&bob_file, &by_key[..])] {
        let args = with(&["session", "approve", &sid, "--owner-key", f], how);
        cli(&args.iter().map(String::as_str).collect::<Vec<_>>());
    }
    // The external signer holds no key here, so it cannot read the aggregate: it names the
    // output key.
    let args = with(
        &["session", "participate", &sid, "--signer-key", &ext_file],
        &by_key,
    );
    let st = cli(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(st["state"], "completed", "{st}");
    let sigs = cli(&["session", "signature", &sid]);
    assert_eq!(sigs.as_array().map(Vec::len), Some(1));
    assert_signed(&c.musig2_session(&e, &session).unwrap(), &agg);

    // --- an adaptor session: the pre-signature completes with the adaptor secret ---
    let adaptor = SignerKey::generate().unwrap();
    let s = c
        .musig2_create_session(
            &e,
            &alice,
            &session_request(&agg, 1, Some(Hex(adaptor.public_key())), 600),
        )
        .unwrap();
    c.musig2_approve(&e, &alice, &s, &expected(&s, &agg))
        .unwrap();
    // A replayed approval changes nothing.
    assert_eq!(
        c.musig2_approve(&e, &alice, &s, &expected(&s, &agg))
            .unwrap()
            .missing_approvals,
        vec![Hex(bob.x_only())]
    );
    c.musig2_approve(&e, &bob, &s, &expected(&s, &agg)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let st = c
        .musig2_participate(
            &e,
            &external,
            &s,
            &expected(&s, &agg),
            Duration::from_millis(50),
            deadline,
        )
        .unwrap();
    assert_eq!(st.state, "completed");
    let pre = st.signatures[0].adaptor_signature.unwrap().0;
    assert!(st.signatures[0].signature.is_none());
    let key = agg.output_xonly.0;
    let msg = s.messages[0].message.0.clone();
    let sig = complete_adaptor_signature(&pre, &adaptor.secret_bytes(), &key, &msg).unwrap();
    assert!(verify_bip340(&key, &msg, &sig));

    // --- an expired session ends with a clear state and no signature ---
    let s = c
        .musig2_create_session(&e, &alice, &session_request(&agg, 1, None, 2))
        .unwrap();
    c.musig2_approve(&e, &alice, &s, &expected(&s, &agg))
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let st = c.musig2_session(&e, &s.id).unwrap().status;
    assert_eq!(st.state, "expired");
    assert!(st.signatures.is_empty());
    // The client refuses it itself; the enclave, sent a valid approval anyway, too.
    let refused = c
        .musig2_approve(&e, &bob, &s, &expected(&s, &agg))
        .unwrap_err();
    assert!(refused.to_string().contains("expiry"), "{refused}");
    let late = bob.sign(&s.digest.0).unwrap();
    let (status, code, _) = api_error(c.musig2_approve_raw(&e, &bob, &s.id, &late).unwrap_err());
    assert_eq!((status, code.as_str()), (410, "session_expired"));

    // --- deleting a key: only its owner, and the id is gone for good ---
    let (status, code, _) = api_error(c.musig2_delete_key(&e, &alice, &k2.id).unwrap_err());
    assert_eq!((status, code.as_str()), (401, "bad_signature"));
    c.musig2_delete_key(&e, &bob, &k2.id).unwrap();
    let (status, _, _) = api_error(c.musig2_describe_key(&e, &bob, &k2.id).unwrap_err());
    assert!(status == 403 || status == 410, "{status}");
    // A session on the aggregate now cannot get the deleted key.
    let (status, _, _) = api_error(
        c.musig2_create_session(&e, &alice, &session_request(&agg, 1, None, 600))
            .unwrap_err(),
    );
    assert!(status == 404 || status == 410, "{status}");
}

/// An atomic swap: the owner approves a session with an adaptor point, so that completing
/// the signature reveals the adaptor secret. The counterparty opens a second session on the
/// same aggregate and message without the adaptor point and hands the owner its id. The CLI,
/// told what the owner means to sign, refuses it naming the adaptor point, and approves (or
/// signs in) nothing; the intended session is approved.
#[test]
fn the_cli_refuses_a_session_without_the_expected_adaptor_point() {
    let mut d = deployment("adaptor");
    start_ready(&mut d);
    let (c, e) = attest(&d.endpoint());
    let (alice, carol) = (
        OwnerKey::generate().unwrap(),
        SignerKey::generate().unwrap(),
    );
    let k = c.musig2_generate_key(&e, &alice).unwrap();
    let agg = c
        .musig2_create_aggregate(
            &e,
            &alice,
            &AggregateSpec {
                participants: vec![
                    ParticipantSpec::Held(k.id),
                    ParticipantSpec::External(Hex(carol.public_key())),
                ],
                order: KeyOrder::Sorted,
                tweaks: vec![],
            },
        )
        .unwrap();
    let adaptor = Hex(SignerKey::generate().unwrap().public_key());
    let intended = c
        .musig2_create_session(&e, &alice, &session_request(&agg, 1, Some(adaptor), 600))
        .unwrap();
    let decoy = c
        .musig2_create_session(&e, &alice, &session_request(&agg, 1, None, 600))
        .unwrap();
    assert_eq!(intended.messages, decoy.messages);

    let (alice_file, carol_file) = (file(&d, "alice.key"), file(&d, "carol.key"));
    alice.save(&alice_file).unwrap();
    carol.save(&carol_file).unwrap();
    let endpoint = d.endpoint();
    let (agg_id, msg, point) = (
        agg.id.to_string(),
        intended.messages[0].message.to_string(),
        adaptor.to_string(),
    );
    let output_key = agg.output_xonly.to_string();
    let run = |verb: &str, session: &Hex<32>, key_flag: &str, key_file: &str| {
        let session = session.to_string();
        // An owner names the aggregate; the external signer, who cannot read it, its key.
        let (key_how, key) = if verb == "participate" {
            ("--output-key", output_key.as_str())
        } else {
            ("--aggregate", agg_id.as_str())
        };
        common::sigil(&[
            "musig2",
            "--endpoint",
            &endpoint,
            "--trust-test-root",
            "session",
            verb,
            &session,
            key_flag,
            key_file,
            key_how,
            key,
            "--message",
            &msg,
            "--adaptor-point",
            &point,
        ])
    };

    for (verb, flag, key_file) in [
        ("approve", "--owner-key", &alice_file),
        ("participate", "--signer-key", &carol_file),
    ] {
        let out = run(verb, &decoy.id, flag, key_file);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{verb}: {stderr}");
        assert!(
            stderr.contains("adaptor point: expected") && stderr.contains(&point),
            "{verb}: {stderr}"
        );
    }
    // Nothing reached the decoy: no approval, no nonces.
    let st = c.musig2_session(&e, &decoy.id).unwrap().status;
    assert_eq!(st.missing_approvals, vec![Hex(alice.x_only())]);
    assert_eq!(st.state, "waiting_for_approvals");
    let carol_index = decoy
        .participants
        .iter()
        .find(|p| p.key_id.is_none())
        .unwrap()
        .index;
    assert!(st.missing_nonces.contains(&carol_index), "{st:?}");

    // The session the owner meant is approved, with a summary of what was approved.
    let out = run("approve", &intended.id, "--owner-key", &alice_file);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("adaptor pre-signatures") && stderr.contains(&msg),
        "{stderr}"
    );
    let st = c.musig2_session(&e, &intended.id).unwrap().status;
    assert!(st.missing_approvals.is_empty(), "{st:?}");
}

#[test]
fn without_sealed_state_key_operations_answer_503() {
    let enclave = LocalEnclave::start(&common::profile_bin("sigil-enclave"), &[]);
    let (c, e) = attest(&enclave.endpoint());
    // No sealed state, so no node identity either.
    assert_eq!(e.image.node, None);
    let owner = OwnerKey::generate().unwrap();
    let (status, code, _) = api_error(c.musig2_generate_key(&e, &owner).unwrap_err());
    assert_eq!((status, code.as_str()), (503, "sealing_disabled"));
    let (status, code, _) = api_error(c.musig2_list_aggregates(&e, &owner).unwrap_err());
    assert_eq!((status, code.as_str()), (503, "sealing_disabled"));
    // Sessions are in memory, but an unknown one is still a clear 404.
    let (status, code, _) = api_error(c.musig2_session(&e, &Hex([0; 32])).unwrap_err());
    assert_eq!((status, code.as_str()), (404, "unknown_session"));

    // The endpoint table says which endpoints need sealed state, and the enclave's pipeline
    // acts on it before it reads the request: each of them refuses even an empty request with
    // 503. Every other encapsulated endpoint reaches its typed decoding and answers 400 (a
    // route declared in the table but not dispatched would answer 500).
    for info in sigil_protocol::endpoint::ENDPOINTS
        .iter()
        .filter(|i| i.encapsulated)
    {
        let (status, code, _) = api_error(c.call_raw_at(&e, info, b"{}").unwrap_err());
        if info.needs_sealed_state {
            assert_eq!(
                (status, code.as_str()),
                (503, "sealing_disabled"),
                "{}",
                info.route
            );
        } else if info.route
            == <sigil_protocol::endpoint::QuorumStatus as sigil_protocol::endpoint::Endpoint>::ROUTE
        {
            // Its request is empty, so `{}` decodes: this image has no quorum.
            assert_eq!((status, code.as_str()), (503, "quorum_disabled"));
        } else {
            assert_eq!(status, 400, "{}: {code}", info.route);
        }
    }
}

#[test]
fn a_replayed_key_import_returns_the_first_key_and_stores_no_copy() {
    use sigil_protocol::musig2::{self as wire, ImportKeyRequest, Op};
    let mut d = deployment("replay");
    start_ready(&mut d);
    let (c, e) = attest(&d.endpoint());
    let owner = OwnerKey::generate().unwrap();
    let not_after = now() + 300;
    // What the owner signs, for one boot's attested key.
    let request = |e: &AttestedEnclave, secret: &SignerKey, request_id: [u8; 16]| {
        let digest = wire::request_digest(
            Op::ImportKey,
            &[&owner.x_only(), &secret.public_key(), &request_id],
            not_after,
        );
        ImportKeyRequest {
            secret: sigil_protocol::wire::SecretHex::new(secret.secret_bytes()),
            owner: Hex(owner.x_only()),
            request_id: Hex(request_id),
            not_after,
            signature: owner.sign_for(e, &digest).unwrap(),
        }
    };
    // The same plaintext as a parent replaying the captured request would deliver.
    let import = |c: &Client, e: &AttestedEnclave, secret: &SignerKey, request_id: [u8; 16]| {
        c.call::<sigil_protocol::endpoint::KeyImport>(e, &request(e, secret, request_id))
    };
    let secret = SignerKey::generate().unwrap();
    let first = import(&c, &e, &secret, [5; 16]).unwrap();
    let replayed = import(&c, &e, &secret, [5; 16]).unwrap();
    assert_eq!(replayed.id, first.id);
    assert_eq!(c.musig2_list_keys(&e, &owner).unwrap(), vec![first.id]);

    // The same request id cannot carry another secret.
    let (status, code, _) =
        api_error(import(&c, &e, &SignerKey::generate().unwrap(), [5; 16]).unwrap_err());
    assert_eq!((status, code.as_str()), (409, "request_reused"));

    // Once deleted, a replay does not bring the key back.
    let key_file = d.dir.join("state").join(format!("b_seal~key~{}", first.id));
    let old_blob = std::fs::read(&key_file).unwrap();
    c.musig2_delete_key(&e, &owner, &first.id).unwrap();
    let (status, code, _) = api_error(import(&c, &e, &secret, [5; 16]).unwrap_err());
    assert_eq!((status, code.as_str()), (410, "deleted"));
    assert!(c.musig2_list_keys(&e, &owner).unwrap().is_empty());

    // Nor does a reboot. The request captured at the first boot is signed for that boot's
    // key only; and the key's records, put back by the parent, are no key: its owner's index
    // no longer lists it.
    let captured = request(&e, &secret, [5; 16]);
    let info_file = d
        .dir
        .join("state")
        .join(format!("b_seal~key_info~{}", first.id));
    assert!(
        !key_file.exists() && !info_file.exists(),
        "deleting left records behind"
    );
    d.kill_enclave();
    d.kill_shim();
    std::fs::write(&key_file, &old_blob).unwrap();
    d.start_shim();
    start_ready(&mut d);
    let (c, e) = attest(&d.endpoint());
    let (status, code, _) = api_error(
        c.call::<sigil_protocol::endpoint::KeyImport>(&e, &captured)
            .unwrap_err(),
    );
    assert_eq!((status, code.as_str()), (401, "bad_signature"));
    assert!(c.musig2_list_keys(&e, &owner).unwrap().is_empty());
    let (status, code, _) = api_error(c.musig2_describe_key(&e, &owner, &first.id).unwrap_err());
    assert_eq!((status, code.as_str()), (403, "not_owner"));
}
