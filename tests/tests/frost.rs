//! FROST threshold signing across enclaves: three local deployments (each its own shim and
//! development KMS) generate a 2-of-3 key and sign with any two, the test (or the CLI) as the
//! untrusted coordinator. Signatures are checked with libsecp256k1, independently of the
//! enclaves' FROST library and of the client's own k256 check.

mod common;

use std::time::Duration;

use common::{api_error, target_dir};
use sigil_client::frost::{self, Member};
use sigil_client::{AttestedEnclave, Client, OwnerKey};
use sigil_e2e::deployment::Deployment;
use sigil_e2e::workspace;
use sigil_protocol::endpoint as ep;
use sigil_protocol::frost::{
    DkgContinue, DkgStart, GroupView, RefreshCommit, RefreshStart, SignCommit, SignShare,
    SignerItems, commit_digest, dkg_digest, refresh_digest, sign_digest,
};
use sigil_protocol::peers::PeerMessage;
use sigil_protocol::wire::{Base64Bytes, Hex};

/// The published manifest with PCR1 replaced: a simulated image of our own.
fn manifest(dir: &std::path::Path, pcr1: &str) -> std::path::PathBuf {
    let text = std::fs::read_to_string(workspace().join("pcr-manifest.json")).unwrap();
    let mut m: serde_json::Value = serde_json::from_str(&text).unwrap();
    m["Measurements"]["PCR1"] = serde_json::Value::String(pcr1.into());
    let p = dir.join("manifest.json");
    std::fs::write(&p, serde_json::to_string_pretty(&m).unwrap()).unwrap();
    p
}

/// A deployment running image `pcr1` whose peers are its own image, state open; with its own
/// development KMS, or `kms_of`'s.
fn member_beside(name: &str, pcr1: &str, max_age: u64, kms_of: Option<&Deployment>) -> Deployment {
    let dir = target_dir()
        .join("test-frost")
        .join(format!("{name}-{}", std::process::id()));
    let (enclave, shim) = (common::enclave_bin(), common::profile_bin("sigil-shim"));
    let mut d = match kms_of {
        Some(k) => Deployment::beside(dir, enclave, shim, k),
        None => Deployment::new(dir, enclave, shim, None),
    };
    d.simulated_pcrs = Some(manifest(&d.dir, pcr1));
    d.peers = Some(format!(
        r#"{{"images": ["self"], "max_age_secs": {max_age}, "trust_test_root": true}}"#
    ));
    d.start_enclave();
    d.wait_sealing(true);
    d
}

fn member(name: &str, pcr1: &str, max_age: u64) -> Deployment {
    member_beside(name, pcr1, max_age, None)
}

fn attest(d: &Deployment) -> (Client, AttestedEnclave) {
    let c = Client::new(&d.endpoint()).unwrap();
    let e = c.attest(common::test_root_policy()).unwrap();
    (c, e)
}

/// libsecp256k1's verdict on a BIP-340 signature.
fn libsecp_verifies(key: &[u8; 32], msg: &[u8; 32], sig: &[u8; 64]) -> bool {
    let key = secp256k1::XOnlyPublicKey::from_byte_array(*key).unwrap();
    let sig = secp256k1::schnorr::Signature::from_byte_array(*sig);
    secp256k1::SECP256K1.verify_schnorr(&sig, msg, &key).is_ok()
}

/// BIP-341's output key computed with libsecp256k1 (the tweak added to the x-only key).
fn libsecp_output_key(internal: &[u8; 32], merkle_root: Option<&[u8; 32]>) -> [u8; 32] {
    let sha = |b: &[u8]| ring::digest::digest(&ring::digest::SHA256, b);
    let tag = sha(b"TapTweak");
    let mut data = [tag.as_ref(), tag.as_ref(), &internal[..]].concat();
    if let Some(r) = merkle_root {
        data.extend_from_slice(r);
    }
    let t: [u8; 32] = sha(&data).as_ref().try_into().unwrap();
    let key = secp256k1::XOnlyPublicKey::from_byte_array(*internal).unwrap();
    let (q, _) = key
        .add_tweak(
            secp256k1::SECP256K1,
            &secp256k1::Scalar::from_be_bytes(t).unwrap(),
        )
        .unwrap();
    q.serialize()
}

fn members<'a>(conns: &'a [(Client, AttestedEnclave)]) -> Vec<Member<'a>> {
    conns
        .iter()
        .map(|(client, enclave)| Member { client, enclave })
        .collect()
}

fn sign_with(
    conns: &[(Client, AttestedEnclave)],
    who: &[u16],
    view: &GroupView,
    messages: &[[u8; 32]],
    root: Option<[u8; 32]>,
    owner: &OwnerKey,
) -> Vec<[u8; 64]> {
    let signers: Vec<(u16, Member<'_>)> = who
        .iter()
        .map(|n| {
            let (client, enclave) = &conns[*n as usize - 1];
            (*n, Member { client, enclave })
        })
        .collect();
    let out = frost::sign(&signers, view, messages, root, owner).unwrap();
    let key = libsecp_output_key(&view.group.0, root.as_ref());
    assert_eq!(out.output_key.0, key);
    for (sig, m) in out.signatures.iter().zip(messages) {
        assert!(libsecp_verifies(&key, m, &sig.0), "signers {who:?}");
    }
    out.signatures.iter().map(|s| s.0).collect()
}

#[test]
fn three_enclaves_make_a_2_of_3_key_and_any_two_sign_through_a_restart() {
    // Each with its own shim, one development KMS (the first deployment's, which lives
    // throughout).
    let pcr1 = "41".repeat(48);
    let first = member("a", &pcr1, 300);
    let mut ds: Vec<Deployment> = ["b", "c"]
        .iter()
        .map(|n| member_beside(n, &pcr1, 300, Some(&first)))
        .collect();
    ds.insert(0, first);
    let owner = OwnerKey::generate().unwrap();
    let mut conns: Vec<_> = ds.iter().map(attest).collect();

    let views = frost::dkg(&members(&conns), 2, &owner).unwrap();
    let view = views[0].clone();
    assert_eq!(view.threshold, 2);
    assert_eq!(
        view.output_key.0,
        libsecp_output_key(&view.group.0, None),
        "BIP-86 output key"
    );

    // {1,2}, key path; {2,3}, a batch under a script tree.
    let m1 = [0x11; 32];
    sign_with(&conns, &[1, 2], &view, &[m1], None, &owner);
    let root = [0x5c; 32];
    sign_with(
        &conns,
        &[2, 3],
        &view,
        &[[0x22; 32], [0x33; 32]],
        Some(root),
        &owner,
    );
    // All three may sign too.
    sign_with(&conns, &[1, 2, 3], &view, &[m1], None, &owner);

    // A commitment made, then the enclave dies: its nonces die with it.
    let (c1, e1) = &conns[0];
    let session = [0x9a; 32];
    let not_after = common::now() + 60;
    let commit = |c: &Client, e: &AttestedEnclave, session: [u8; 32], signers: Vec<u16>| {
        let digest = sign_digest(&session, &view.group.0, &signers, &[m1], None, not_after);
        c.call::<ep::FrostSignCommit>(
            e,
            &SignCommit {
                session: Hex(session),
                group: view.group,
                signers,
                messages: vec![Hex(m1)],
                merkle_root: None,
                not_after,
                signature: owner.sign_for(e, &digest).unwrap(),
            },
        )
    };
    let mine = commit(c1, e1, session, vec![1, 3]).unwrap();
    ds[0].kill_enclave();

    // The other two still sign.
    sign_with(&conns, &[2, 3], &view, &[[0x44; 32]], None, &owner);

    // It restarts, unseals its share (same node, same group) and signs again; the session
    // from before the restart is gone.
    ds[0].start_enclave();
    ds[0].wait_sealing(true);
    conns[0] = attest(&ds[0]);
    assert_eq!(conns[0].1.image.node, Some(view.members[0].0));
    let again = frost::group(
        &Member {
            client: &conns[0].0,
            enclave: &conns[0].1,
        },
        &view.group.0,
    )
    .unwrap();
    assert_eq!(
        (again.participant, &again.output_key),
        (1, &view.output_key)
    );
    let (status, code, message) = api_error(
        conns[0]
            .0
            .call::<ep::FrostSignShare>(
                &conns[0].1,
                &SignShare {
                    session: Hex(session),
                    commitments: vec![mine],
                },
            )
            .unwrap_err(),
    );
    assert_eq!(
        (status, code.as_str()),
        (404, "unknown_session"),
        "{message}"
    );
    sign_with(&conns, &[1, 3], &view, &[[0x55; 32]], None, &owner);

    // The CLI as the coordinator: it finds each signer's number and verifies what it prints.
    let key_file = ds[0].dir.join("owner.key");
    owner.save(key_file.to_str().unwrap()).unwrap();
    let out = common::sigil_json(&[
        "frost",
        "sign",
        "--endpoint",
        &ds[2].endpoint(),
        "--endpoint",
        &ds[0].endpoint(),
        "--group",
        &hex::encode(view.group.0),
        "--message",
        &hex::encode([0x66; 32]),
        "--owner-key",
        key_file.to_str().unwrap(),
        "--trust-test-root",
    ]);
    assert_eq!(out["signers"], serde_json::json!([1, 3]), "{out}");
    let sig: [u8; 64] = hex::decode(out["signatures"][0].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    assert!(libsecp_verifies(&view.output_key.0, &[0x66; 32], &sig));

    // Member 3's state is gone for good (its deployment and store deleted). A new enclave
    // takes its place: members 1 and 2 rebuild its share; the group key does not change.
    let gone = ds.pop().unwrap();
    let gone_dir = gone.dir.clone();
    drop(gone);
    let _ = std::fs::remove_dir_all(&gone_dir);
    let replacement = member_beside("d", &pcr1, 300, Some(&ds[0]));
    let (cd, ed) = attest(&replacement);
    // Without the owner's approval: refused by the helpers.
    let thief = OwnerKey::generate().unwrap();
    let helpers: Vec<(u16, Member<'_>)> = conns[..2]
        .iter()
        .enumerate()
        .map(|(i, (client, enclave))| (i as u16 + 1, Member { client, enclave }))
        .collect();
    let new_member = Member {
        client: &cd,
        enclave: &ed,
    };
    let (status, code, _) =
        api_error(frost::repair(&helpers, &new_member, &view, 3, &thief).unwrap_err());
    assert_eq!((status, code.as_str()), (401, "bad_signature"));
    drop(helpers);
    let out = common::sigil_json(&[
        "frost",
        "repair",
        "--endpoint",
        &ds[0].endpoint(),
        "--endpoint",
        &ds[1].endpoint(),
        "--new-member",
        &replacement.endpoint(),
        "--group",
        &hex::encode(view.group.0),
        "--lost",
        "3",
        "--owner-key",
        key_file.to_str().unwrap(),
        "--trust-test-root",
    ]);
    assert_eq!(out["group_key_unchanged"], true, "{out}");
    assert_eq!(out["participant"], 3, "{out}");
    conns[2] = (cd, ed);
    // The new holder signs with either of the others.
    sign_with(&conns, &[1, 3], &view, &[[0x77; 32]], None, &owner);
    sign_with(&conns, &[2, 3], &view, &[[0x78; 32]], None, &owner);

    // A refresh of every share (the CLI as coordinator): same group key, new shares, and the
    // members still sign.
    let out = common::sigil_json(&[
        "frost",
        "refresh",
        "--endpoint",
        &ds[0].endpoint(),
        "--endpoint",
        &ds[1].endpoint(),
        "--endpoint",
        &replacement.endpoint(),
        "--group",
        &hex::encode(view.group.0),
        "--owner-key",
        key_file.to_str().unwrap(),
        "--trust-test-root",
    ]);
    assert_eq!(
        (&out["group_key_unchanged"], &out["shares_changed"]),
        (&serde_json::json!(true), &serde_json::json!(true)),
        "{out}"
    );
    assert_eq!(out["output_key"], hex::encode(view.output_key.0), "{out}");
    sign_with(&conns, &[1, 2], &view, &[[0x79; 32]], None, &owner);
    sign_with(&conns, &[1, 3], &view, &[[0x7a; 32]], None, &owner);

    // A refresh runs to its finish step at every member but is committed at member 1 only:
    // 1 signs with the new shares, 3 still with its old one, and the aggregator names 3.
    // Committing the pending generation at the others (the CLI, as after a coordinator that
    // stopped) brings the group together again.
    let current = frost::group(&members(&conns)[0], &view.group.0).unwrap();
    let pending = refresh_steps(&conns, &current, &owner, &[0, 1, 2], &[0]).pending;
    // A refresh from the generation member 1 left, and a commit of no pending generation:
    // both refused by name.
    refused(
        frost::refresh(&members(&conns), &current, &owner),
        (409, "conflict"),
    );
    let (c1, e1) = &conns[0];
    let unknown = [0x55; 32];
    let not_after = common::now() + 60;
    let digest = commit_digest(&view.group.0, &unknown, not_after);
    refused(
        c1.call::<ep::FrostRefreshCommit>(
            e1,
            &RefreshCommit {
                group: view.group,
                generation: Hex(unknown),
                not_after,
                signature: owner.sign_for(e1, &digest).unwrap(),
            },
        ),
        (409, "conflict"),
    );
    let (status, code, message) =
        api_error(sign_result(&conns, &[1, 3], &view, &owner).unwrap_err());
    assert_eq!((status, code.as_str()), (400, "bad_share"), "{message}");
    assert!(message.contains("[3]"), "{message}");
    let out = common::sigil_json(&[
        "frost",
        "commit",
        "--endpoint",
        &ds[0].endpoint(),
        "--endpoint",
        &ds[1].endpoint(),
        "--endpoint",
        &replacement.endpoint(),
        "--group",
        &hex::encode(view.group.0),
        "--generation",
        &hex::encode(pending),
        "--owner-key",
        key_file.to_str().unwrap(),
        "--trust-test-root",
    ]);
    assert_eq!(out["generation"], hex::encode(pending), "{out}");
    sign_with(&conns, &[1, 3], &view, &[[0x7b; 32]], None, &owner);

    // A refresh finished at members 1 and 2 only is never committed: everyone keeps signing
    // with the shares in use, and its approval cannot start a second run. Its last step at
    // member 3, held back and delivered after a newer refresh went through, is refused: the
    // newer one ended it.
    let current = frost::group(&members(&conns)[0], &view.group.0).unwrap();
    let held = refresh_steps(&conns, &current, &owner, &[0, 1], &[]);
    sign_with(&conns, &[2, 3], &view, &[[0x7c; 32]], None, &owner);
    let newer = frost::refresh(&members(&conns), &current, &owner).unwrap();
    assert_ne!(newer[0].generation.0, held.pending);
    refused(
        finish(&conns, 2, held.session, to(&held.round2, &conns, 2)),
        (404, "unknown_session"),
    );
    sign_with(&conns, &[1, 3], &view, &[[0x7e; 32]], None, &owner);

    // A member left on an older generation (committed at 1 and 2 only) is also brought back
    // by a repair from the others, with itself as the new holder.
    let current = frost::group(&members(&conns)[0], &view.group.0).unwrap();
    refresh_steps(&conns, &current, &owner, &[0, 1, 2], &[0, 1]);
    let helpers: Vec<(u16, Member<'_>)> = conns[..2]
        .iter()
        .enumerate()
        .map(|(i, (client, enclave))| (i as u16 + 1, Member { client, enclave }))
        .collect();
    let third = Member {
        client: &conns[2].0,
        enclave: &conns[2].1,
    };
    let at_helpers = frost::group(&helpers[0].1, &view.group.0).unwrap();
    assert_ne!(at_helpers.generation, current.generation);
    frost::repair(&helpers, &third, &at_helpers, 3, &owner).unwrap();
    drop(helpers);
    sign_with(&conns, &[1, 3], &view, &[[0x7d; 32]], None, &owner);
    let _ = &mut ds;
}

/// A refresh run by hand: its session, the pending generation its finishers agree on, and
/// every round-2 message (for a finish held back).
struct Refreshed {
    session: [u8; 32],
    pending: [u8; 32],
    round2: Vec<PeerMessage>,
}

/// A refresh of every member of `conns` at `group`'s generation, run by hand: finished at
/// the members `finish_at` (indices), committed at `commit_at`. The start request, sent
/// again, is refused as a used approval.
fn refresh_steps(
    conns: &Conns,
    group: &GroupView,
    owner: &OwnerKey,
    finish_at: &[usize],
    commit_at: &[usize],
) -> Refreshed {
    let session = {
        let mut s = [0u8; 32];
        getrandom::fill(&mut s).unwrap();
        s
    };
    let docs: Vec<Base64Bytes> = conns
        .iter()
        .map(|(_, e)| Base64Bytes(e.raw.clone()))
        .collect();
    let nodes: Vec<[u8; 32]> = conns.iter().map(|(_, e)| e.image.node.unwrap()).collect();
    let not_after = common::now() + 120;
    let digest = refresh_digest(
        &session,
        &group.group.0,
        &group.generation.0,
        &nodes,
        not_after,
    );
    let mut round1 = Vec::new();
    for (i, (c, e)) in conns.iter().enumerate() {
        let req = RefreshStart {
            session: Hex(session),
            group: group.group,
            generation: group.generation,
            members: docs.clone(),
            not_after,
            signature: owner.sign_for(e, &digest).unwrap(),
        };
        round1.extend(c.call::<ep::FrostRefreshStart>(e, &req).unwrap().messages);
        if i == 0 {
            let again = c.call::<ep::FrostRefreshStart>(e, &req);
            refused(again, (409, "approval_used"));
        }
    }
    let mut round2 = Vec::new();
    for (i, (c, e)) in conns.iter().enumerate() {
        let req = DkgContinue {
            session: Hex(session),
            messages: to(&round1, conns, i),
        };
        round2.extend(c.call::<ep::FrostDkgRound2>(e, &req).unwrap().messages);
    }
    let mut pending = None;
    for i in finish_at {
        let v = finish(conns, *i, session, to(&round2, conns, *i)).unwrap();
        // Nothing changes in use until the commit, and every finisher has the same pending.
        assert_eq!(v.generation, group.generation);
        assert!(v.pending.is_some() && (pending.is_none() || pending == v.pending));
        pending = v.pending;
    }
    let pending = pending.unwrap().0;
    let not_after = common::now() + 120;
    for i in commit_at {
        let (c, e) = &conns[*i];
        let digest = commit_digest(&group.group.0, &pending, not_after);
        let v = c
            .call::<ep::FrostRefreshCommit>(
                e,
                &RefreshCommit {
                    group: group.group,
                    generation: Hex(pending),
                    not_after,
                    signature: owner.sign_for(e, &digest).unwrap(),
                },
            )
            .unwrap();
        assert_eq!((v.generation.0, v.pending), (pending, None));
    }
    Refreshed {
        session,
        pending,
        round2,
    }
}

/// A signature of one message by `who`, or the error.
fn sign_result(
    conns: &Conns,
    who: &[u16],
    view: &GroupView,
    owner: &OwnerKey,
) -> Result<sigil_protocol::frost::Signatures, sigil_client::ClientError> {
    let signers: Vec<(u16, Member<'_>)> = who
        .iter()
        .map(|n| {
            let (client, enclave) = &conns[*n as usize - 1];
            (*n, Member { client, enclave })
        })
        .collect();
    frost::sign(&signers, view, &[[0x7f; 32]], None, owner)
}

/// The node a document attests (zero when it attests none).
fn node_of(doc: &[u8]) -> [u8; 32] {
    sigil_attestation::verify(doc, &common::test_root_policy())
        .ok()
        .and_then(|v| v.document.user_data)
        .and_then(|u| sigil_protocol::user_data::ImageInfo::from_cbor(&u).ok())
        .and_then(|i| i.node)
        .unwrap_or([0; 32])
}

type Conns = [(Client, AttestedEnclave)];

fn start(
    conns: &Conns,
    i: usize,
    session: [u8; 32],
    docs: &[Vec<u8>],
    owner: &OwnerKey,
    signer: &OwnerKey,
) -> Result<Vec<PeerMessage>, sigil_client::ClientError> {
    let nodes: Vec<[u8; 32]> = docs.iter().map(|d| node_of(d)).collect();
    let not_after = common::now() + 120;
    let digest = dkg_digest(&session, 2, &nodes, &owner.x_only(), not_after);
    let (c, e) = &conns[i];
    c.call::<ep::FrostDkgStart>(
        e,
        &DkgStart {
            session: Hex(session),
            threshold: 2,
            members: docs.iter().map(|d| Base64Bytes(d.clone())).collect(),
            owner: Hex(owner.x_only()),
            not_after,
            signature: signer.sign_for(e, &digest).unwrap(),
        },
    )
    .map(|r| r.messages)
}

fn round2(
    conns: &Conns,
    i: usize,
    session: [u8; 32],
    messages: Vec<PeerMessage>,
) -> Result<Vec<PeerMessage>, sigil_client::ClientError> {
    let (c, e) = &conns[i];
    c.call::<ep::FrostDkgRound2>(
        e,
        &DkgContinue {
            session: Hex(session),
            messages,
        },
    )
    .map(|r| r.messages)
}

fn finish(
    conns: &Conns,
    i: usize,
    session: [u8; 32],
    messages: Vec<PeerMessage>,
) -> Result<GroupView, sigil_client::ClientError> {
    let (c, e) = &conns[i];
    c.call::<ep::FrostDkgFinish>(
        e,
        &DkgContinue {
            session: Hex(session),
            messages,
        },
    )
}

/// The messages of `all` addressed to member `i`.
fn to(all: &[PeerMessage], conns: &Conns, i: usize) -> Vec<PeerMessage> {
    let node = conns[i].1.image.node.unwrap();
    all.iter()
        .filter(|m| m.recipient.0 == node)
        .cloned()
        .collect()
}

fn docs(conns: &Conns) -> Vec<Vec<u8>> {
    conns.iter().map(|(_, e)| e.raw.clone()).collect()
}

fn refused(
    r: Result<impl std::fmt::Debug, sigil_client::ClientError>,
    want: (u16, &str),
) -> String {
    let (status, code, message) = api_error(r.unwrap_err());
    assert_eq!((status, code.as_str()), want, "{message}");
    message
}

/// Each attack on a key generation or a signing session is refused by name, and a refused
/// message costs the run nothing: the step is sent again with the right one.
#[test]
fn frost_attacks_are_refused_by_name() {
    let (pcr1, other) = ("42".repeat(48), "43".repeat(48));
    let mut ds: Vec<Deployment> = ["xa", "xb", "xc"]
        .iter()
        .map(|n| member(n, &pcr1, 20))
        .collect();
    let stranger = member("xd", &other, 20);
    let owner = OwnerKey::generate().unwrap();
    let mut conns: Vec<_> = ds.iter().map(attest).collect();

    // A member on another image: refused before anything is made.
    let (_, es) = attest(&stranger);
    let mut with_stranger = docs(&conns);
    with_stranger[2] = es.raw.clone();
    let m = refused(
        start(&conns, 0, [1; 32], &with_stranger, &owner, &owner),
        (403, "peer_not_allowed"),
    );
    assert!(m.contains("member 3"), "{m}");

    // Without the owner: another key's signature.
    let thief = OwnerKey::generate().unwrap();
    refused(
        start(&conns, 0, [1; 32], &docs(&conns), &owner, &thief),
        (401, "bad_signature"),
    );

    // An equivocating coordinator: A starts, restarts (a second boot, a new per-boot key)
    // and starts again; B is shown A's first round-1 package, C the second.
    let session = [0x31; 32];
    let first_docs = docs(&conns);
    let from_a1 = start(&conns, 0, session, &first_docs, &owner, &owner).unwrap();
    let from_b = start(&conns, 1, session, &first_docs, &owner, &owner).unwrap();
    ds[0].kill_enclave();
    ds[0].start_enclave();
    ds[0].wait_sealing(true);
    conns[0] = attest(&ds[0]);
    let second_docs = docs(&conns);
    let from_a2 = start(&conns, 0, session, &second_docs, &owner, &owner).unwrap();
    let from_c = start(&conns, 2, session, &second_docs, &owner, &owner).unwrap();
    let for_b: Vec<_> = [to(&from_a1, &conns, 1), to(&from_c, &conns, 1)].concat();
    let for_c: Vec<_> = [to(&from_a2, &conns, 2), to(&from_b, &conns, 2)].concat();

    // Tampered on the way: refused, and the run goes on.
    let mut tampered = for_b.clone();
    tampered[1].ct.0[5] ^= 1;
    let m = refused(
        round2(&conns, 1, session, tampered),
        (400, "peer_message_refused"),
    );
    assert!(m.contains("does not open"), "{m}");
    // Redirected: B's message handed to C.
    let m = refused(
        round2(&conns, 2, session, vec![for_b[0].clone()]),
        (400, "peer_message_refused"),
    );
    assert!(m.contains("another node"), "{m}");
    // Missing one: named.
    let m = refused(
        round2(&conns, 1, session, vec![for_b[0].clone()]),
        (400, "invalid_request"),
    );
    assert!(m.contains("missing participants [3]"), "{m}");
    // The right messages: the step goes through (the first already opened, nothing lost).
    let r2_b = round2(&conns, 1, session, for_b.clone()).unwrap();
    // The same step again (a replay): the run has moved on.
    let m = refused(
        round2(&conns, 1, session, for_b.clone()),
        (409, "wrong_state"),
    );
    assert!(m.contains("round 2"), "{m}");
    let r2_c = round2(&conns, 2, session, for_c).unwrap();
    // Round-1 messages at the last step: reordered across rounds.
    let m = refused(
        finish(&conns, 1, session, for_b),
        (400, "peer_message_refused"),
    );
    assert!(m.contains("takes round 2"), "{m}");
    // B and C each find that the other saw another round-1 package from A, and name it.
    let m = refused(
        finish(&conns, 1, session, to(&r2_c, &conns, 1)),
        (409, "frost_dkg_failed"),
    );
    assert!(
        m.contains("participant 3") && m.contains(&hex::encode(conns[2].1.image.node.unwrap())),
        "{m}"
    );
    let m = refused(
        finish(&conns, 2, session, to(&r2_b, &conns, 2)),
        (409, "frost_dkg_failed"),
    );
    assert!(m.contains("participant 2"), "{m}");

    // A fair run makes the group the signing attacks below use.
    let views = frost::dkg(&members(&conns), 2, &owner).unwrap();
    let view = views[0].clone();
    let m1 = [0x71; 32];
    let not_after = common::now() + 60;
    let commit_request = |i: usize, session: [u8; 32], signed: [u8; 32], signer: &OwnerKey| {
        let digest = sign_digest(&session, &view.group.0, &[1, 2], &[signed], None, not_after);
        SignCommit {
            session: Hex(session),
            group: view.group,
            signers: vec![1, 2],
            messages: vec![Hex(m1)],
            merkle_root: None,
            not_after,
            signature: signer.sign_for(&conns[i].1, &digest).unwrap(),
        }
    };
    let send_commit = |i: usize, req: &SignCommit| {
        let (c, e) = &conns[i];
        c.call::<ep::FrostSignCommit>(e, req)
    };
    let commit = |i: usize, session: [u8; 32], signed: [u8; 32], signer: &OwnerKey| {
        send_commit(i, &commit_request(i, session, signed, signer))
    };
    // No approval by the owner; an approval of another message.
    refused(commit(0, [2; 32], m1, &thief), (401, "bad_signature"));
    refused(
        commit(0, [2; 32], [0x72; 32], &owner),
        (401, "bad_signature"),
    );

    // A bad signature share: the aggregator names its signer.
    let session = [3; 32];
    let first = commit_request(0, session, m1, &owner);
    let commitments: Vec<SignerItems> = vec![
        send_commit(0, &first).unwrap(),
        commit(1, session, m1, &owner).unwrap(),
    ];
    let share = |i: usize| {
        let (c, e) = &conns[i];
        c.call::<ep::FrostSignShare>(
            e,
            &SignShare {
                session: Hex(session),
                commitments: commitments.clone(),
            },
        )
    };
    let shares: Vec<SignerItems> = (0..2).map(|i| share(i).unwrap()).collect();
    // The nonces were used once: a second share is refused, and the approval, sent again,
    // starts no second session.
    refused(share(0), (404, "unknown_session"));
    refused(send_commit(0, &first), (409, "approval_used"));
    let mut bad = shares.clone();
    let last = bad[1].items[0].0.len() - 1;
    bad[1].items[0].0[last] ^= 1;
    let at = Member {
        client: &conns[2].0,
        enclave: &conns[2].1,
    };
    let m = refused(
        frost::aggregate(&at, &view, &[m1], None, commitments.clone(), bad),
        (400, "bad_share"),
    );
    assert!(m.contains("[2]") || m.contains("signer 2"), "{m}");
    // The true shares aggregate (at a member that did not sign) into a valid signature.
    let sigs = frost::aggregate(&at, &view, &[m1], None, commitments, shares).unwrap();
    assert!(libsecp_verifies(
        &view.output_key.0,
        &m1,
        &sigs.signatures[0].0
    ));

    // Documents older than the policy's max age (20 s here): refused.
    std::thread::sleep(Duration::from_secs(21));
    let m = refused(
        start(&conns, 1, [4; 32], &docs(&conns), &owner, &owner),
        (400, "peer_document_refused"),
    );
    assert!(m.contains("old") || m.contains("age"), "{m}");
    let _ = &mut ds;
}
