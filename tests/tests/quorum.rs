//! The quorum root end to end in local mode: administrators' keys, genesis, shares fetched
//! and checked, KMS taken away, the enclave locked and unlocked by two of three
//! administrators with its sealed state intact (vault entries, MuSig2 keys, a FROST share),
//! a bad share refused with its administrator named; and a deployment whose only root is the
//! quorum.

mod common;

use std::path::PathBuf;
use std::time::Instant;

use common::{api_error, target_dir};
use sigil_client::frost::{self, Member};
use sigil_client::quorum::{AdminKey, ShareFile, open_share};
use sigil_client::{AttestedEnclave, Client, OwnerKey};
use sigil_e2e::deployment::Deployment;
use sigil_e2e::workspace;
use sigil_protocol::endpoint as ep;
use sigil_protocol::quorum::{GenesisRequest, ShareRequest};
use sigil_protocol::wire::Hex;

const NAMES: [&str; 3] = ["alice", "bob", "carol"];

fn dir(name: &str) -> PathBuf {
    target_dir()
        .join("test-quorum")
        .join(format!("{name}-{}", std::process::id()))
}

/// Three administrators' keys (files in `dir`) and the `quorum` member for k = 2.
fn admins(dir: &std::path::Path) -> (Vec<AdminKey>, String) {
    common::quorum_admins(dir, &NAMES)
}

/// A deployment (shim, development KMS) in `dir` whose measured configuration has `quorum`,
/// and no `kms` section when `quorum_only`; its enclave started.
fn quorum_deployment(dir: PathBuf, quorum: String, quorum_only: bool) -> Deployment {
    let mut d = Deployment::new(
        dir,
        common::enclave_bin(),
        common::profile_bin("sigil-shim"),
        None,
    );
    d.quorum = Some(quorum);
    d.without_kms = quorum_only;
    d.start_enclave();
    d
}

fn attest(d: &Deployment) -> (Client, AttestedEnclave) {
    common::attest_local(&d.endpoint())
}

/// Each administrator fetches and checks its share.
fn fetch_shares(d: &Deployment, keys: &[AdminKey]) -> Vec<ShareFile> {
    let (c, e) = attest(d);
    keys.iter()
        .map(|k| {
            c.quorum_share_fetch(&e, k)
                .expect("fetch and check a share")
        })
        .collect()
}

#[test]
fn two_of_three_administrators_unlock_an_enclave_whose_kms_access_is_gone() {
    let base = dir("kms-gone");
    let (keys, quorum) = admins(&base.join("admins"));
    let (enclave, shim) = (common::enclave_bin(), common::profile_bin("sigil-shim"));
    let mut d = Deployment::new(base.join("a"), enclave.clone(), shim.clone(), None);
    d.quorum = Some(quorum);
    d.peers = Some(r#"{"images": ["self"], "trust_test_root": true}"#.into());
    d.start_enclave();
    assert_eq!(d.wait_sealing(true)["origin"], "generated");
    assert_eq!(d.health()["sealing"]["quorum"]["state"], "awaiting_genesis");

    // A second member, for a FROST group whose share in `d` must survive.
    let mut b = Deployment::new(base.join("b"), enclave, shim, None);
    b.peers = d.peers.clone();
    b.start_enclave();
    b.wait_sealing(true);

    // State worth keeping: a vault entry, a MuSig2 key, a FROST share.
    let owner = OwnerKey::generate().unwrap();
    let (c, e) = attest(&d);
    c.vault_put(&e, &owner, "kept", b"through KMS loss", 0)
        .unwrap();
    let key = c.musig2_generate_key(&e, &owner).unwrap();
    let (cb, eb) = attest(&b);
    let group = {
        let members = [
            Member {
                client: &c,
                enclave: &e,
            },
            Member {
                client: &cb,
                enclave: &eb,
            },
        ];
        frost::dkg(&members, 2, &owner).unwrap().remove(0)
    };

    // Only an administrator may approve genesis.
    let stranger = AdminKey::from_seed(&[7; 32]).unwrap();
    let err = c.quorum_genesis(&e, &stranger).unwrap_err();
    assert!(err.to_string().contains("not an administrator"), "{err}");
    let bad_signature = c
        .call::<ep::QuorumGenesis>(
            &e,
            &GenesisRequest {
                admin: 1,
                signature: Hex([1; 64]),
            },
        )
        .unwrap_err();
    assert_eq!(api_error(bad_signature).1, "bad_signature");

    let t = Instant::now();
    let view = c.quorum_genesis(&e, &keys[0]).unwrap();
    let genesis_ms = t.elapsed().as_millis();
    assert_eq!(view.state, "unlocked");
    assert_eq!(view.commitments.len(), 2);
    let genesis = view.genesis.unwrap();
    // Once only.
    let (_, code, _) = api_error(c.quorum_genesis(&e, &keys[1]).unwrap_err());
    assert_eq!(code, "conflict");

    let t = Instant::now();
    let shares = fetch_shares(&d, &keys);
    let fetch_ms = t.elapsed().as_millis() / 3;
    for (i, s) in shares.iter().enumerate() {
        assert_eq!(s.share.genesis, genesis);
        assert_eq!(usize::from(s.share.index), i + 1);
        assert_eq!(s.share.admin, NAMES[i]);
    }
    // A share sealed to another administrator does not open with this one's key.
    assert!(open_share(&keys[1], &shares[0]).is_err());
    let share_json = serde_json::to_vec(&shares[0]).unwrap().len();

    // KMS access goes away; the enclave restarts and cannot get its data key.
    d.refuse_kms();
    d.kill_enclave();
    d.start_enclave();
    let locked = d.wait_sealing_state("locked");
    assert_eq!(locked["quorum"]["state"], "locked", "{locked}");
    assert_eq!(locked["quorum"]["genesis"], hex::encode(genesis.0));
    let (c, e) = attest(&d);
    let (_, code, _) = api_error(c.vault_get(&e, &owner, "kept").unwrap_err());
    assert_eq!(code, "sealing_unavailable");

    // Bob's share, altered, is refused and Bob named; nothing is kept of it.
    let mut bad = open_share(&keys[1], &shares[1]).unwrap();
    bad[32] ^= 1;
    let (status, code, message) = api_error(
        c.quorum_post_share(&e, &keys[1], genesis.0, &bad)
            .unwrap_err(),
    );
    assert_eq!((status, code.as_str()), (400, "bad_share"), "{message}");
    assert!(message.contains("bob"), "{message}");
    // A share posted under another administrator's key is refused by the signature.
    let alice = open_share(&keys[0], &shares[0]).unwrap();
    let (_, code, _) = api_error(
        c.quorum_post_share(&e, &keys[2], genesis.0, &alice)
            .unwrap_err(),
    );
    assert_eq!(code, "bad_signature");
    // A share for another genesis is refused before any check.
    let (_, code, _) = api_error(
        c.quorum_post_share(&e, &keys[0], [9; 32], &alice)
            .unwrap_err(),
    );
    assert_eq!(code, "wrong_genesis");
    assert!(c.quorum_status(&e).unwrap().received.is_empty());

    // Alice, then Carol: at two good shares the state opens.
    let t = Instant::now();
    let after_one = c.quorum_unlock(&e, &keys[0], &shares[0]).unwrap();
    assert_eq!(after_one.state, "locked");
    assert_eq!(after_one.received, vec!["alice".to_string()]);
    let after_two = c.quorum_unlock(&e, &keys[2], &shares[2]).unwrap();
    let unlock_ms = t.elapsed().as_millis();
    assert_eq!(after_two.state, "unlocked");
    assert!(after_two.received.is_empty(), "share copies are dropped");
    let sealing = d.wait_sealing(true);
    assert_eq!(sealing["origin"], "quorum");

    // Everything sealed before is there.
    let (c, e) = attest(&d);
    assert_eq!(
        c.vault_get(&e, &owner, "kept").unwrap(),
        (b"through KMS loss".to_vec().into(), 1)
    );
    assert_eq!(
        c.musig2_describe_key(&e, &owner, &key.id)
            .unwrap()
            .public_key,
        key.public_key
    );
    let members = [
        (
            1u16,
            Member {
                client: &c,
                enclave: &e,
            },
        ),
        (
            2u16,
            Member {
                client: &cb,
                enclave: &eb,
            },
        ),
    ];
    frost::sign(&members, &group, &[[0x42; 32]], None, &owner)
        .expect("the FROST share survived: the group signs");

    eprintln!(
        "quorum timings (debug build): genesis {genesis_ms} ms, share fetch+check {fetch_ms} ms \
         each, unlock (2 posts) {unlock_ms} ms; share file {share_json} bytes"
    );
}

#[test]
fn a_quorum_is_the_only_root_of_a_deployment_without_kms() {
    let base = dir("only-root");
    let (keys, quorum) = admins(&base.join("admins"));
    let mut d = quorum_deployment(base.join("a"), quorum, true);
    let s = d.wait_sealing_state("awaiting_genesis");
    assert_eq!(s["quorum"]["state"], "awaiting_genesis");
    let (c, e) = attest(&d);
    let owner = OwnerKey::generate().unwrap();
    let (_, code, _) = api_error(c.vault_get(&e, &owner, "x").unwrap_err());
    assert_eq!(code, "sealing_unavailable");
    // No share before genesis.
    let (_, code, _) = api_error(
        c.call::<ep::QuorumShare>(&e, &ShareRequest { index: 1 })
            .unwrap_err(),
    );
    assert_eq!(code, "no_genesis");

    c.quorum_genesis(&e, &keys[1]).unwrap();
    assert_eq!(d.wait_sealing(true)["origin"], "generated");
    let (c, e) = attest(&d);
    assert!(
        e.image.node.is_some(),
        "the node identity comes with the state"
    );
    c.vault_put(&e, &owner, "only", b"quorum", 0).unwrap();
    let shares = fetch_shares(&d, &keys);
    let (_, code, _) = api_error(
        c.call::<ep::QuorumShare>(&e, &ShareRequest { index: 4 })
            .unwrap_err(),
    );
    assert_eq!(code, "not_an_admin");

    // Every boot is locked until two administrators post their shares.
    let node = e.image.node;
    d.kill_enclave();
    d.start_enclave();
    d.wait_sealing_state("locked");
    let (c, e) = attest(&d);
    c.quorum_unlock(&e, &keys[1], &shares[1]).unwrap();
    // The same administrator twice is still one share.
    let again = c.quorum_unlock(&e, &keys[1], &shares[1]).unwrap();
    assert_eq!(again.state, "locked");
    c.quorum_unlock(&e, &keys[0], &shares[0]).unwrap();
    assert_eq!(d.wait_sealing(true)["origin"], "quorum");
    let (c, e) = attest(&d);
    assert_eq!(e.image.node, node, "the same state is the same node");
    assert_eq!(
        c.vault_get(&e, &owner, "only").unwrap(),
        (b"quorum".to_vec().into(), 1)
    );
}

#[test]
fn the_cli_makes_administrator_keys_and_fetches_and_posts_shares() {
    let base = dir("cli");
    std::fs::create_dir_all(&base).unwrap();
    let mut entries = Vec::new();
    for n in NAMES {
        let path = base.join(format!("{n}.key"));
        let _ = std::fs::remove_file(&path);
        let out = common::sigil_json(&[
            "admin-key",
            "new",
            "--name",
            n,
            "--out",
            path.to_str().unwrap(),
        ]);
        assert_eq!(out["name"], n);
        entries.push(out);
    }
    let quorum = serde_json::json!({"threshold": 2, "admins": entries}).to_string();
    let mut d = quorum_deployment(base.join("a"), quorum, true);
    d.wait_sealing_state("awaiting_genesis");
    let endpoint = d.endpoint();
    let admin = |args: &[&str]| {
        let mut all = vec!["admin", "--endpoint", &endpoint, "--trust-test-root"];
        all.extend_from_slice(args);
        common::sigil_json(&all)
    };
    let key = |n: &str| base.join(format!("{n}.key")).display().to_string();
    let share = |n: &str| base.join(format!("{n}.share")).display().to_string();
    let g = admin(&["genesis", "--key", &key("carol")]);
    assert_eq!(g["state"], "unlocked", "{g}");
    for n in ["alice", "bob"] {
        let _ = std::fs::remove_file(share(n));
        let f = admin(&["share", "fetch", "--key", &key(n), "--out", &share(n)]);
        assert_eq!(f["verified"], true, "{f}");
    }
    d.kill_enclave();
    d.start_enclave();
    d.wait_sealing_state("locked");
    let endpoint2 = d.endpoint();
    let post = |n: &str| {
        common::sigil_json(&[
            "admin",
            "--endpoint",
            &endpoint2,
            "--trust-test-root",
            "share",
            "post",
            "--key",
            &key(n),
            "--share",
            &share(n),
        ])
    };
    assert_eq!(post("alice")["state"], "locked");
    assert_eq!(post("bob")["state"], "unlocked");
    assert_eq!(d.wait_sealing(true)["origin"], "quorum");
}

#[test]
fn a_reshare_to_new_administrators_voids_the_old_shares() {
    let base = dir("reshare");
    let (old_keys, quorum) = admins(&base.join("old"));
    let mut d = quorum_deployment(base.join("a"), quorum, true);
    d.wait_sealing_state("awaiting_genesis");
    let (c, e) = attest(&d);
    c.quorum_genesis(&e, &old_keys[0]).unwrap();
    let owner = OwnerKey::generate().unwrap();
    c.vault_put(&e, &owner, "kept", b"across a re-share", 0)
        .unwrap();
    let old_shares = fetch_shares(&d, &old_keys);
    // The parent keeps a copy of the record as it is before the re-share.
    let record_file = d.dir.join("state").join("b_quorum~genesis");
    let old_record = std::fs::read(&record_file).unwrap();

    // The new quorum: two new administrators and Carol, 2 of 3.
    let new_dir = base.join("new");
    std::fs::create_dir_all(&new_dir).unwrap();
    let mut new_keys: Vec<AdminKey> = ["dave", "erin"]
        .iter()
        .map(|n| {
            let p = new_dir.join(format!("{n}.key"));
            let _ = std::fs::remove_file(&p);
            AdminKey::create(p.to_str().unwrap()).unwrap()
        })
        .collect();
    let carol = AdminKey::load(base.join("old/carol.key").to_str().unwrap()).unwrap();
    let new_admins = vec![
        new_keys[0].admin("dave"),
        new_keys[1].admin("erin"),
        carol.admin("carol"),
    ];
    new_keys.push(carol);

    // After a restart the root is not in memory until the administrators unlock.
    d.kill_enclave();
    d.start_enclave();
    d.wait_sealing_state("locked");
    let (c, e) = attest(&d);
    let view = c.quorum_status(&e).unwrap();
    let approve = |k: &AdminKey, view| k.approve_reshare(&e, view, 2, &new_admins).unwrap();
    // One approval is not enough, and a new administrator's does not count yet.
    let one = vec![approve(&old_keys[0], &view)];
    let (status, code, message) = api_error(
        c.quorum_reshare(&e, 2, new_admins.clone(), one.clone())
            .unwrap_err(),
    );
    assert_eq!((status, code.as_str()), (401, "bad_approval"), "{message}");
    assert!(
        new_keys[0]
            .approve_reshare(&e, &view, 2, &new_admins)
            .is_err()
    );
    // Two approvals, but the root is not in memory while locked.
    let two = vec![approve(&old_keys[0], &view), approve(&old_keys[1], &view)];
    let (_, code, message) = api_error(
        c.quorum_reshare(&e, 2, new_admins.clone(), two.clone())
            .unwrap_err(),
    );
    assert_eq!(code, "sealing_unavailable", "{message}");
    c.quorum_unlock(&e, &old_keys[0], &old_shares[0]).unwrap();
    c.quorum_unlock(&e, &old_keys[1], &old_shares[1]).unwrap();
    d.wait_sealing(true);

    let t = Instant::now();
    let after = c.quorum_reshare(&e, 2, new_admins.clone(), two).unwrap();
    let reshare_ms = t.elapsed().as_millis();
    assert_eq!(after.generation, 1);
    assert_eq!(after.admins, new_admins);
    assert_ne!(after.genesis, view.genesis, "a new root, a new genesis");
    assert_ne!(after.config, after.measured);
    let new_shares = fetch_shares(&d, &new_keys);
    // Bob is no administrator any more.
    assert!(c.quorum_share_fetch(&e, &old_keys[1]).is_err());

    // Restart: only the new shares unlock, the old ones no longer count.
    d.kill_enclave();
    d.start_enclave();
    d.wait_sealing_state("locked");
    let (c, e) = attest(&d);
    let status = c.quorum_status(&e).unwrap();
    assert_eq!(status.generation, 1, "the re-share survives a restart");
    // The client refuses to post an old share (another genesis) ...
    let err = c
        .quorum_unlock(&e, &old_keys[0], &old_shares[0])
        .unwrap_err();
    assert!(
        err.to_string().contains("another genesis") || err.to_string().contains("genesis"),
        "{err}"
    );
    // ... and the enclave refuses the old share's bytes under the new genesis.
    let old_alice = open_share(&old_keys[0], &old_shares[0]).unwrap();
    let new_genesis = status.genesis.unwrap().0;
    let (_, code, _) = api_error(
        c.quorum_post_share(&e, &old_keys[0], new_genesis, &old_alice)
            .unwrap_err(),
    );
    // Alice is no administrator of the new set: administrator 1 is Dave, whose key her
    // signature does not match.
    assert_eq!(code, "bad_signature", "an old share is refused");
    // Carol's old share (she is administrator 3 in both sets) does not verify either.
    let old_carol = open_share(&old_keys[2], &old_shares[2]).unwrap();
    let (_, code, message) = api_error(
        c.quorum_post_share(&e, &new_keys[2], new_genesis, &old_carol)
            .unwrap_err(),
    );
    assert_eq!(code, "bad_share", "{message}");
    assert!(message.contains("carol"), "{message}");
    c.quorum_unlock(&e, &new_keys[0], &new_shares[0]).unwrap();
    c.quorum_unlock(&e, &new_keys[2], &new_shares[2]).unwrap();
    assert_eq!(d.wait_sealing(true)["origin"], "quorum");
    let (c, e) = attest(&d);
    assert_eq!(
        c.vault_get(&e, &owner, "kept").unwrap(),
        (b"across a re-share".to_vec().into(), 1)
    );

    // The parent puts the old record back (and restarts): the old administrators' shares
    // rebuild the old root and unwrap the data key, but the state's sealed quorum marker says
    // it was re-shared since, so the state stays locked.
    d.kill_enclave();
    d.kill_shim();
    let new_record = std::fs::read(&record_file).unwrap();
    std::fs::write(&record_file, &old_record).unwrap();
    d.start_shim();
    d.start_enclave();
    d.wait_sealing_state("locked");
    let (c, e) = attest(&d);
    assert_eq!(c.quorum_status(&e).unwrap().generation, 0, "the old record");
    c.quorum_unlock(&e, &old_keys[0], &old_shares[0]).unwrap();
    let (_, code, message) = api_error(
        c.quorum_unlock(&e, &old_keys[1], &old_shares[1])
            .unwrap_err(),
    );
    assert_eq!(code, "rollback_detected", "{message}");
    assert_eq!(
        d.health()["sealing"]["state"],
        "locked",
        "the state stays locked"
    );
    // The current record back: the new administrators unlock as before.
    d.kill_enclave();
    d.kill_shim();
    std::fs::write(&record_file, &new_record).unwrap();
    d.start_shim();
    d.start_enclave();
    d.wait_sealing_state("locked");
    let (c, e) = attest(&d);
    c.quorum_unlock(&e, &new_keys[1], &new_shares[1]).unwrap();
    c.quorum_unlock(&e, &new_keys[2], &new_shares[2]).unwrap();
    assert_eq!(d.wait_sealing(true)["origin"], "quorum");
    eprintln!("quorum re-share (debug build): {reshare_ms} ms");
}

#[test]
fn a_second_enclave_of_the_image_joins_by_key_forwarding_and_another_image_is_refused() {
    let base = dir("forward");
    let (keys, quorum) = admins(&base.join("admins"));
    let mut d = Deployment::new(
        base.join("a"),
        common::enclave_bin(),
        common::profile_bin("sigil-shim"),
        None,
    );
    d.quorum = Some(quorum);
    d.without_kms = true;
    d.peers = Some(r#"{"images": ["self"], "trust_test_root": true}"#.into());
    d.start_enclave();
    d.wait_sealing_state("awaiting_genesis");
    let (c, e) = attest(&d);
    c.quorum_genesis(&e, &keys[0]).unwrap();
    let owner = OwnerKey::generate().unwrap();
    c.vault_put(&e, &owner, "fleet", b"one state", 0).unwrap();
    let (c, e) = attest(&d);

    // A second enclave of the image on the same store starts locked, and is let in by the
    // first without any administrator.
    let b = d.start_another_enclave(None);
    sigil_e2e::deployment::wait_sealing_state(&b.endpoint(), "locked");
    let (cb, eb) = common::attest_local(&b.endpoint());
    let t = Instant::now();
    let view = sigil_client::quorum::forward((&c, &e), (&cb, &eb)).unwrap();
    let forward_ms = t.elapsed().as_millis();
    assert_eq!(view.state, "unlocked");
    assert_eq!(
        sigil_e2e::deployment::wait_sealing_state(&b.endpoint(), "ready")["origin"],
        "forwarded"
    );
    let (cb, eb) = common::attest_local(&b.endpoint());
    assert_eq!(eb.image.node, e.image.node, "one state, one node");
    assert_eq!(
        cb.vault_get(&eb, &owner, "fleet").unwrap(),
        (b"one state".to_vec().into(), 1)
    );

    // An enclave of another image (it claims the published PCRs) is refused both ways.
    let other = d.start_another_enclave(Some(workspace().join("pcr-manifest.json")));
    sigil_e2e::deployment::wait_sealing_state(&other.endpoint(), "locked");
    let (co, eo) = common::attest_local(&other.endpoint());
    let (status, code, message) =
        api_error(sigil_client::quorum::forward((&c, &e), (&co, &eo)).unwrap_err());
    assert_eq!(
        (status, code.as_str()),
        (403, "peer_not_allowed"),
        "{message}"
    );
    assert!(message.contains("not of this image"), "{message}");
    let (_, code, _) = api_error(sigil_client::quorum::forward((&co, &eo), (&c, &e)).unwrap_err());
    assert_eq!(code, "peer_not_allowed");

    // A root sealed to B does not open at another enclave of the image (C, locked), and an
    // enclave without the root in memory has nothing to forward.
    let c3 = d.start_another_enclave(None);
    sigil_e2e::deployment::wait_sealing_state(&c3.endpoint(), "locked");
    let (cc, ec) = common::attest_local(&c3.endpoint());
    let mut nonce = [0u8; 32];
    nonce[0] = 1;
    let for_b = c
        .call::<ep::QuorumForward>(
            &e,
            &sigil_protocol::quorum::ForwardRequest {
                document: sigil_protocol::wire::Base64Bytes(
                    cb.attestation_document(&nonce).unwrap(),
                ),
            },
        )
        .unwrap();
    let (_, code, message) = api_error(
        cc.call::<ep::QuorumReceive>(
            &ec,
            &sigil_protocol::quorum::ReceiveRequest {
                document: sigil_protocol::wire::Base64Bytes(
                    c.attestation_document(&nonce).unwrap(),
                ),
                forwarded: for_b,
            },
        )
        .unwrap_err(),
    );
    assert_eq!(code, "peer_message_refused", "{message}");
    let (_, code, _) =
        api_error(sigil_client::quorum::forward((&cc, &ec), (&co, &eo)).unwrap_err());
    assert_eq!(code, "peer_not_allowed");
    let c4 = d.start_another_enclave(None);
    sigil_e2e::deployment::wait_sealing_state(&c4.endpoint(), "locked");
    let (c4c, c4e) = common::attest_local(&c4.endpoint());
    let (_, code, _) =
        api_error(sigil_client::quorum::forward((&cc, &ec), (&c4c, &c4e)).unwrap_err());
    assert_eq!(code, "sealing_unavailable");
    eprintln!("quorum forwarding (debug build): {forward_ms} ms");
}

#[test]
fn a_second_enclave_on_another_shim_joins_by_forwarding_and_serves_the_same_state_from_s3() {
    let base = dir("cluster-s3");
    let moto = sigil_e2e::moto::MotoS3::start(&base.join("moto"));
    moto.create_bucket("sigil-cluster");
    let options = || sigil_e2e::deployment::Options {
        blob_s3: Some((moto.endpoint(), "sigil-cluster".into())),
        ..Default::default()
    };
    let (keys, quorum) = admins(&base.join("admins"));
    let peers = r#"{"images": ["self"], "trust_test_root": true}"#;
    let configure = |d: &mut Deployment| {
        d.quorum = Some(quorum.clone());
        d.peers = Some(peers.into());
        d.without_kms = true;
    };
    let (enclave, shim) = (common::enclave_bin(), common::profile_bin("sigil-shim"));
    let mut a = Deployment::with_options(
        base.join("a"),
        enclave.clone(),
        shim.clone(),
        None,
        options(),
    );
    configure(&mut a);
    a.start_enclave();
    a.wait_sealing_state("awaiting_genesis");
    let (ca, ea) = attest(&a);
    ca.quorum_genesis(&ea, &keys[0]).unwrap();
    let owner = OwnerKey::generate().unwrap();
    let (ca, ea) = attest(&a);
    ca.vault_put(&ea, &owner, "shared", b"in the bucket", 0)
        .unwrap();
    let key = ca.musig2_generate_key(&ea, &owner).unwrap();
    // Nothing of it is on A's disk: the blobs are objects in the bucket.
    let files = std::fs::read_dir(a.dir.join("state"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(files, 0, "the S3 store writes no blob files");

    // B: its own shim (another parent) on the same bucket; locked until A forwards the root.
    let mut b =
        Deployment::beside_with(base.join("b"), enclave.clone(), shim.clone(), &a, options());
    configure(&mut b);
    b.start_enclave();
    b.wait_sealing_state("locked");
    let (cb, eb) = attest(&b);
    let t = Instant::now();
    sigil_client::quorum::forward((&ca, &ea), (&cb, &eb)).unwrap();
    let forward_ms = t.elapsed().as_millis();
    assert_eq!(b.wait_sealing(true)["origin"], "forwarded");
    let (cb, eb) = attest(&b);
    assert_eq!(
        cb.vault_get(&eb, &owner, "shared").unwrap(),
        (b"in the bucket".to_vec().into(), 1)
    );
    assert_eq!(
        cb.musig2_describe_key(&eb, &owner, &key.id)
            .unwrap()
            .public_key,
        key.public_key
    );
    // A write through B is read through A: one store.
    cb.vault_put(&eb, &owner, "shared", b"written by b", 1)
        .unwrap();
    assert_eq!(
        ca.vault_get(&ea, &owner, "shared").unwrap(),
        (b"written by b".to_vec().into(), 2)
    );

    // An enclave of another image on the same bucket is refused the root.
    let mut c = Deployment::beside_with(base.join("c"), enclave, shim, &a, options());
    configure(&mut c);
    c.simulated_pcrs = Some(workspace().join("pcr-manifest.json"));
    c.start_enclave();
    c.wait_sealing_state("locked");
    let (cc, ec) = attest(&c);
    let (_, code, _) =
        api_error(sigil_client::quorum::forward((&ca, &ea), (&cc, &ec)).unwrap_err());
    assert_eq!(code, "peer_not_allowed");
    eprintln!("quorum forwarding over S3 (debug build): {forward_ms} ms");
}

#[test]
fn a_hidden_record_does_not_let_one_administrator_start_a_new_genesis() {
    let base = dir("hidden-record");
    let (keys, quorum) = admins(&base.join("admins"));
    let mut d = quorum_deployment(base.join("a"), quorum, false);
    d.wait_sealing(true);
    let (c, e) = attest(&d);
    c.quorum_genesis(&e, &keys[0]).unwrap();
    // The parent deletes the record; KMS still opens the state at the next boot.
    d.kill_enclave();
    std::fs::remove_file(d.dir.join("state").join("b_quorum~genesis")).unwrap();
    d.kill_shim();
    d.start_shim();
    d.start_enclave();
    assert_eq!(d.wait_sealing(true)["origin"], "recovered");
    let (c, e) = attest(&d);
    let (status, code, message) = api_error(c.quorum_genesis(&e, &keys[1]).unwrap_err());
    assert_eq!((status, code.as_str()), (409, "conflict"), "{message}");
    assert!(message.contains("had a genesis"), "{message}");
}

#[test]
fn a_state_unlocked_from_a_foreign_record_stops_when_kms_answers_with_another_key() {
    let base = dir("foreign-record");
    let (keys, quorum) = admins(&base.join("admins"));
    // Two states of one image and one quorum, each with its own KMS key.
    let mut a = quorum_deployment(base.join("a"), quorum.clone(), false);
    a.wait_sealing(true);
    let (c, e) = attest(&a);
    c.quorum_genesis(&e, &keys[0]).unwrap();
    let b = quorum_deployment(base.join("b"), quorum, false);
    b.wait_sealing(true);
    let (cb, eb) = attest(&b);
    cb.quorum_genesis(&eb, &keys[0]).unwrap();

    // A's parent blocks KMS, serves B's record and hides A's marker; administrators who do
    // not pin their genesis fetch fresh shares and unlock A, which opens under B's key.
    a.kill_enclave();
    a.refuse_kms();
    let state = a.dir.join("state");
    std::fs::copy(
        b.dir.join("state").join("b_quorum~genesis"),
        state.join("b_quorum~genesis"),
    )
    .unwrap();
    std::fs::remove_file(state.join("b_seal~counter~quorum-marker")).unwrap();
    a.kill_shim();
    a.start_shim();
    a.start_enclave();
    a.wait_sealing_state("locked");
    let shares = fetch_shares(&a, &keys);
    let (c, e) = attest(&a);
    c.quorum_unlock(&e, &keys[0], &shares[0]).unwrap();
    c.quorum_unlock(&e, &keys[1], &shares[1]).unwrap();
    assert_eq!(a.wait_sealing(true)["origin"], "quorum");

    // KMS answers again with A's real key: the sealed state stops for good.
    a.admit_kms();
    let start = Instant::now();
    let sealing = loop {
        let s = a.health()["sealing"].clone();
        if s["state"] == "failed" {
            break s;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(120),
            "never stopped: {s}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert_eq!(sealing["error_code"], "keys_disagree", "{sealing}");
    let owner = OwnerKey::generate().unwrap();
    let (c, e) = attest(&a);
    let (_, code, _) = api_error(c.vault_put(&e, &owner, "x", b"y", 0).unwrap_err());
    assert_eq!(code, "sealing_unavailable");
}
