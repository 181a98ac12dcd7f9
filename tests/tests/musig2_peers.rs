//! MuSig2 across enclaves (KeyMeld's layout): a 2-of-2 aggregate whose keys are held by two
//! different enclaves. Each enclave runs its own session over the same aggregate and message,
//! approved by its own key's owner; their nonces and partial signatures travel between them as
//! sealed peer messages, carried by the test as the untrusted coordinator. Both end with the
//! same signature, checked with libsecp256k1.

mod common;

use common::{api_error, target_dir};
use sigil_client::musig2::{AggregateSpec, SessionSpec, recompute_digest};
use sigil_client::{AttestedEnclave, Client, OwnerKey};
use sigil_e2e::deployment::Deployment;
use sigil_protocol::endpoint as ep;
use sigil_protocol::musig2::{
    KeyOrder, MessageView, ParticipantSpec, PeerReceiveRequest, PeerSendRequest, PeerStep,
    SessionState, SessionView, StatusView,
};
use sigil_protocol::peers::PeerMessage;
use sigil_protocol::wire::{Base64Bytes, HexBytes};

fn member(name: &str) -> (Deployment, Client, AttestedEnclave) {
    let mut d = Deployment::new(
        target_dir()
            .join("test-musig2-peers")
            .join(format!("{name}-{}", std::process::id())),
        common::enclave_bin(),
        common::profile_bin("sigil-shim"),
        None,
    );
    d.peers = Some(r#"{"images": ["self"], "trust_test_root": true}"#.into());
    d.start_enclave();
    d.wait_sealing(true);
    let c = Client::new(&d.endpoint()).unwrap();
    let e = c.attest(common::test_root_policy()).unwrap();
    (d, c, e)
}

fn send(
    (c, e): (&Client, &AttestedEnclave),
    session: &SessionView,
    step: PeerStep,
    (to, to_session): (&AttestedEnclave, &SessionView),
) -> PeerMessage {
    c.call::<ep::SessionPeerSend>(
        e,
        &PeerSendRequest {
            session: session.id,
            step,
            recipient_document: Base64Bytes(to.raw.clone()),
            recipient_session: to_session.id,
        },
    )
    .unwrap()
}

fn receive(
    (c, e): (&Client, &AttestedEnclave),
    session: &SessionView,
    message: &PeerMessage,
    from: &AttestedEnclave,
) -> Result<StatusView, sigil_client::ClientError> {
    c.call::<ep::SessionPeerReceive>(
        e,
        &PeerReceiveRequest {
            session: session.id,
            message: message.clone(),
            sender_document: Some(Base64Bytes(from.raw.clone())),
        },
    )
}

#[test]
fn a_musig2_session_whose_keys_live_in_two_enclaves_signs() {
    let (_da, ca, ea) = member("a");
    let (_db, cb, eb) = member("b");
    let (oa, ob) = (OwnerKey::generate().unwrap(), OwnerKey::generate().unwrap());
    let ka = ca.musig2_generate_key(&ea, &oa).unwrap();
    let kb = cb.musig2_generate_key(&eb, &ob).unwrap();

    // One aggregate, described by each enclave from its side.
    let spec = |held_first: bool, held| AggregateSpec {
        participants: if held_first {
            vec![
                ParticipantSpec::Held(held),
                ParticipantSpec::External(kb.public_key),
            ]
        } else {
            vec![
                ParticipantSpec::External(ka.public_key),
                ParticipantSpec::Held(held),
            ]
        },
        order: KeyOrder::AsGiven,
        tweaks: vec![],
    };
    let agg_a = ca
        .musig2_create_aggregate(&ea, &oa, &spec(true, ka.id))
        .unwrap();
    let agg_b = cb
        .musig2_create_aggregate(&eb, &ob, &spec(false, kb.id))
        .unwrap();
    assert_eq!(agg_a.output_xonly, agg_b.output_xonly);

    let message = [0x4d; 32];
    let session = |c: &Client, e: &AttestedEnclave, o: &OwnerKey, agg| {
        let v = c
            .musig2_create_session(
                e,
                o,
                &SessionSpec {
                    aggregate: agg,
                    messages: vec![MessageView {
                        message: HexBytes(message.to_vec()),
                        tweak: None,
                    }],
                    adaptor_point: None,
                    expires_at: common::now() + 300,
                },
            )
            .unwrap();
        // Each enclave's own key owner approves its own session.
        let digest = recompute_digest(&v).unwrap();
        c.musig2_approve_raw(e, o, &v.id, &o.sign(&digest).unwrap())
            .unwrap();
        v
    };
    let sa = session(&ca, &ea, &oa, agg_a.id);
    let sb = session(&cb, &eb, &ob, agg_b.id);

    // Nonces, each way.
    let n_ab = send((&ca, &ea), &sa, PeerStep::Nonces, (&eb, &sb));
    let n_ba = send((&cb, &eb), &sb, PeerStep::Nonces, (&ea, &sa));
    // Changed on the way: refused, nothing lost.
    let mut bad = n_ab.clone();
    bad.ct.0[3] ^= 1;
    let (status, code, m) = api_error(receive((&cb, &eb), &sb, &bad, &ea).unwrap_err());
    assert_eq!(
        (status, code.as_str()),
        (400, "peer_message_refused"),
        "{m}"
    );
    // Delivered into another session at B than the one it was sealed for: refused before
    // it is opened (the session is bound into the seal as well).
    let other = session(&cb, &eb, &ob, agg_b.id);
    let (status, code, m) = api_error(receive((&cb, &eb), &other, &n_ab, &ea).unwrap_err());
    assert_eq!(
        (status, code.as_str()),
        (400, "peer_message_refused"),
        "{m}"
    );
    assert!(m.contains("session"), "{m}");
    let mut moved = n_ab.clone();
    moved.session = other.id;
    let (status, code, m) = api_error(receive((&cb, &eb), &other, &moved, &ea).unwrap_err());
    assert_eq!(
        (status, code.as_str()),
        (400, "peer_message_refused"),
        "{m}"
    );
    assert!(m.contains("does not open"), "{m}");
    let st = receive((&cb, &eb), &sb, &n_ab, &ea).unwrap();
    assert_eq!(st.state, SessionState::WaitingForPartialSignatures);
    // Replayed: refused.
    let (status, code, m) = api_error(receive((&cb, &eb), &sb, &n_ab, &ea).unwrap_err());
    assert_eq!(
        (status, code.as_str()),
        (400, "peer_message_refused"),
        "{m}"
    );
    assert!(m.contains("replayed"), "{m}");
    receive((&ca, &ea), &sa, &n_ba, &eb).unwrap();

    // Partial signatures, one way then the other (B answers after it has completed): each
    // enclave verifies the other's and aggregates.
    let p_ab = send((&ca, &ea), &sa, PeerStep::PartialSignatures, (&eb, &sb));
    let done_b = receive((&cb, &eb), &sb, &p_ab, &ea).unwrap();
    assert_eq!(done_b.state, SessionState::Completed);
    let p_ba = send((&cb, &eb), &sb, PeerStep::PartialSignatures, (&ea, &sa));
    let done_a = receive((&ca, &ea), &sa, &p_ba, &eb).unwrap();
    assert_eq!(done_a.state, SessionState::Completed);
    assert_eq!(done_b.state, SessionState::Completed);
    let sig_a = done_a.signatures[0].signature.unwrap().0;
    assert_eq!(Some(sig_a), done_b.signatures[0].signature.map(|s| s.0));
    let key = secp256k1::XOnlyPublicKey::from_byte_array(agg_a.output_xonly.0).unwrap();
    let sig = secp256k1::schnorr::Signature::from_byte_array(sig_a);
    assert!(
        secp256k1::SECP256K1
            .verify_schnorr(&sig, &message, &key)
            .is_ok()
    );
}
