//! Sealed state end to end in local mode: the enclave process, the real `sigil-shim` (blob
//! store, egress proxy, credentials) and the development KMS over TLS with attestation.
//!
//! Each test is a small deployment in its own directory: the enclave gets its data key from
//! the development KMS through the shim, keeps vault entries sealed in the shim's blob files,
//! and is killed, restarted, tampered with and refused in the ways the threat model names.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{api_error, target_dir};
use sigil_client::{AttestedEnclave, Client, OwnerKey};
use sigil_e2e::deployment::Deployment;
use sigil_e2e::workspace;

/// A fresh deployment (development KMS, shim; the enclave started by the test) in
/// `target/test-sealed/<name>-<pid>`.
fn deployment(name: &str, pcr0_policy: Option<&str>) -> Deployment {
    Deployment::new(
        target_dir()
            .join("test-sealed")
            .join(format!("{name}-{}", std::process::id())),
        common::enclave_bin(),
        common::profile_bin("sigil-shim"),
        pcr0_policy,
    )
}

/// What these tests do with a deployment beyond the fixture.
trait SealedTests {
    fn attest(&self) -> (Client, AttestedEnclave);
    /// The shim's file holding the sealed vault entry `name`.
    fn blob_file(&self, name: &str) -> PathBuf;
}

impl SealedTests for Deployment {
    fn attest(&self) -> (Client, AttestedEnclave) {
        common::attest_local(&self.endpoint())
    }

    fn blob_file(&self, name: &str) -> PathBuf {
        self.dir.join("state").join(format!("b_seal~secret~{name}"))
    }
}

#[test]
fn state_survives_restarts_of_the_enclave_the_shim_and_both() {
    let mut d = deployment("restarts", None);
    d.start_enclave();
    assert_eq!(d.wait_sealing(true)["origin"], "generated");
    let owner = OwnerKey::generate().unwrap();
    let (c, e) = d.attest();
    assert_eq!(
        c.vault_put(&e, &owner, "alpha", b"one", 0).unwrap().version,
        1
    );

    // The enclave restarts: the data key comes back from KMS, the entry from the shim.
    d.kill_enclave();
    d.start_enclave();
    assert_eq!(d.wait_sealing(true)["origin"], "recovered");
    let (c, e) = d.attest();
    assert_eq!(
        c.vault_get(&e, &owner, "alpha").unwrap(),
        (b"one".to_vec().into(), 1)
    );

    // The shim restarts under a running enclave: the next call reconnects.
    d.kill_shim();
    d.start_shim();
    assert_eq!(
        c.vault_put(&e, &owner, "alpha", b"two", 1).unwrap().version,
        2
    );
    assert_eq!(
        c.vault_get(&e, &owner, "alpha").unwrap(),
        (b"two".to_vec().into(), 2)
    );

    // Both restart.
    d.kill_enclave();
    d.kill_shim();
    d.start_shim();
    d.start_enclave();
    assert_eq!(d.wait_sealing(true)["origin"], "recovered");
    let (c, e) = d.attest();
    assert_eq!(
        c.vault_get(&e, &owner, "alpha").unwrap(),
        (b"two".to_vec().into(), 2)
    );

    // Only the owner: another key's signature is refused, and so is a stale version.
    let stranger = OwnerKey::generate().unwrap();
    let (status, code, _) = api_error(c.vault_get(&e, &stranger, "alpha").unwrap_err());
    assert_eq!((status, code.as_str()), (401, "bad_signature"));
    let (status, code, _) = api_error(c.vault_put(&e, &stranger, "alpha", b"x", 2).unwrap_err());
    assert_eq!((status, code.as_str()), (403, "not_owner"));
    let (status, code, _) = api_error(c.vault_put(&e, &owner, "alpha", b"x", 1).unwrap_err());
    assert_eq!((status, code.as_str()), (409, "version_conflict"));
    // The write that made version 2, sent again (a retry whose first answer was lost): it is
    // done already, so it is reported done, and nothing new is written.
    assert_eq!(
        c.vault_put(&e, &owner, "alpha", b"two", 1).unwrap().version,
        2
    );
    assert_eq!(
        c.vault_get(&e, &owner, "alpha").unwrap(),
        (b"two".to_vec().into(), 2)
    );
    let (status, code, _) = api_error(c.vault_get(&e, &owner, "missing").unwrap_err());
    assert_eq!((status, code.as_str()), (404, "not_found"));

    // Delete leaves a tombstone at version 3: the entry reads as gone, and a replayed create
    // (expected version 0) cannot bring it back; a create at the tombstone's version can.
    c.vault_delete(&e, &owner, "alpha", 2).unwrap();
    let (status, _, m) = api_error(c.vault_get(&e, &owner, "alpha").unwrap_err());
    assert_eq!(status, 404, "{m}");
    let (status, code, _) = api_error(c.vault_put(&e, &owner, "alpha", b"one", 0).unwrap_err());
    assert_eq!((status, code.as_str()), (409, "version_conflict"));
    let (status, _, _) = api_error(c.vault_delete(&e, &owner, "alpha", 2).unwrap_err());
    assert_eq!(status, 404);
    assert_eq!(
        c.vault_put(&e, &stranger, "alpha", b"new", 3)
            .unwrap()
            .version,
        4
    );
    assert_eq!(
        c.vault_get(&e, &stranger, "alpha").unwrap(),
        (b"new".to_vec().into(), 4)
    );
}

#[test]
fn an_enclave_killed_mid_write_keeps_every_acknowledged_write() {
    let mut d = deployment("sigkill", None);
    let owner = OwnerKey::generate().unwrap();
    let mut acked = 0u64;
    for round in 0..3u64 {
        d.start_enclave();
        d.wait_sealing(true);
        let (c, e) = d.attest();
        // The value after a restart is the last acknowledged write or the one in flight.
        if acked > 0 {
            acked = common::vault_version_after_restart(&c, &e, &owner, "counter", acked);
        }
        let endpoint = d.endpoint();
        let writer = std::thread::spawn({
            let owner_bytes = common::owner_secret(&owner);
            move || {
                let owner = OwnerKey::from_bytes(&owner_bytes).unwrap();
                let c = Client::new(&endpoint).unwrap();
                let mut last = acked;
                loop {
                    let next = last + 1;
                    match c.vault_put(
                        &e,
                        &owner,
                        "counter",
                        format!("value-{next}").as_bytes(),
                        last,
                    ) {
                        Ok(w) => {
                            assert_eq!(w.version, next);
                            last = next;
                        }
                        Err(_) => return last,
                    }
                }
            }
        });
        std::thread::sleep(Duration::from_millis(300 + 250 * round));
        d.kill_enclave();
        let done = writer.join().unwrap();
        assert!(done > acked, "round {round}: no write was acknowledged");
        acked = done;
    }
    d.start_enclave();
    d.wait_sealing(true);
    let (c, e) = d.attest();
    let (value, version) = c.vault_get(&e, &owner, "counter").unwrap();
    assert!(version == acked || version == acked + 1);
    assert_eq!(*value, format!("value-{version}").into_bytes());
}

#[test]
fn tampered_swapped_and_replayed_blobs_are_refused() {
    let mut d = deployment("tamper", None);
    d.start_enclave();
    d.wait_sealing(true);
    let owner = OwnerKey::generate().unwrap();
    let (c, e) = d.attest();
    c.vault_put(&e, &owner, "a", b"A1", 0).unwrap();
    let a_v1 = std::fs::read(d.blob_file("a")).unwrap();
    c.vault_put(&e, &owner, "a", b"A2", 1).unwrap();
    c.vault_put(&e, &owner, "b", b"B1", 0).unwrap();
    let a_v2 = std::fs::read(d.blob_file("a")).unwrap();
    let b_v1 = std::fs::read(d.blob_file("b")).unwrap();

    let with_files = |d: &mut Deployment, a: &[u8]| {
        d.kill_shim();
        std::fs::write(d.blob_file("a"), a).unwrap();
        d.start_shim();
    };
    let refused = |c: &Client, e: &AttestedEnclave, want: &str| {
        let (status, code, message) = api_error(c.vault_get(e, &owner, "a").unwrap_err());
        assert_eq!(status, 502, "{code}: {message}");
        assert_eq!(code, want, "{message}");
        message
    };

    // One flipped byte of ciphertext.
    let mut tampered = a_v2.clone();
    *tampered.last_mut().unwrap() ^= 1;
    with_files(&mut d, &tampered);
    let m = refused(&c, &e, "sealed_blob_rejected");
    assert!(m.contains("auth_failed"), "{m}");

    // The older version of the same entry: this boot has seen version 2.
    with_files(&mut d, &a_v1);
    let m = refused(&c, &e, "rollback_detected");
    assert!(m.contains("rollback"), "{m}");

    // Another entry's blob under this name, to a freshly booted enclave.
    with_files(&mut d, &b_v1);
    d.kill_enclave();
    d.start_enclave();
    d.wait_sealing(true);
    let (c, e) = d.attest();
    let m = refused(&c, &e, "sealed_blob_rejected");
    assert!(m.contains("id_mismatch"), "{m}");

    // The sealed blob cut short, in a well-formed store file (magic | version | length |
    // data; a torn file the store itself would skip).
    let mut short = a_v2[..a_v2.len() - 20].to_vec();
    let len = (short.len() - 24) as u64;
    short[16..24].copy_from_slice(&len.to_be_bytes());
    with_files(&mut d, &short);
    let m = refused(&c, &e, "sealed_blob_rejected");
    assert!(m.contains("auth_failed") || m.contains("truncated"), "{m}");

    // The genuine blob back: readable again, and b was never touched.
    with_files(&mut d, &a_v2);
    assert_eq!(
        c.vault_get(&e, &owner, "a").unwrap(),
        (b"A2".to_vec().into(), 2)
    );
    assert_eq!(
        c.vault_get(&e, &owner, "b").unwrap(),
        (b"B1".to_vec().into(), 1)
    );

    // What sealing cannot stop (see seal::format): a parent that replays an old version to
    // an enclave that has not seen a newer one since it booted is believed.
    with_files(&mut d, &a_v1);
    d.kill_enclave();
    d.start_enclave();
    d.wait_sealing(true);
    let (c, e) = d.attest();
    assert_eq!(
        c.vault_get(&e, &owner, "a").unwrap(),
        (b"A1".to_vec().into(), 1)
    );
}

fn manifest_with_pcr0(dir: &Path, pcr0: &str) -> PathBuf {
    let text = std::fs::read_to_string(workspace().join("pcr-manifest.json")).unwrap();
    let mut m: serde_json::Value = serde_json::from_str(&text).unwrap();
    m["Measurements"]["PCR0"] = serde_json::Value::String(pcr0.into());
    let p = dir.join(format!("manifest-{}.json", &pcr0[..8]));
    std::fs::write(&p, serde_json::to_string_pretty(&m).unwrap()).unwrap();
    p
}

#[test]
fn an_enclave_with_other_pcrs_cannot_unseal() {
    let good = "11".repeat(48);
    let other = "22".repeat(48);
    let mut d = deployment("pcrs", Some(&good));
    let good_manifest = manifest_with_pcr0(&d.dir, &good);
    let other_manifest = manifest_with_pcr0(&d.dir, &other);

    // The image the key policy names makes the data key and seals an entry.
    d.simulated_pcrs = Some(good_manifest.clone());
    d.start_enclave();
    assert_eq!(d.wait_sealing(true)["origin"], "generated");
    let owner = OwnerKey::generate().unwrap();
    let (c, e) = d.attest();
    c.vault_put(&e, &owner, "secret", b"for the good image only", 0)
        .unwrap();
    d.kill_enclave();

    // Another image (other PCR0), and one with zero PCRs: KMS refuses both.
    for pcrs in [Some(other_manifest), None] {
        d.simulated_pcrs = pcrs;
        d.start_enclave();
        let s = d.wait_sealing(false);
        assert_eq!(s["state"], "starting", "{s}");
        let err = s["error"].as_str().unwrap();
        assert!(err.contains("AccessDenied"), "{err}");
        assert_eq!(s["error_code"], "kms_refused", "{s}");
        let (c, e) = d.attest();
        let (status, code, _) = api_error(c.vault_get(&e, &owner, "secret").unwrap_err());
        assert_eq!((status, code.as_str()), (503, "sealing_unavailable"));
        d.kill_enclave();
    }

    // The good image still can.
    d.simulated_pcrs = Some(good_manifest);
    d.start_enclave();
    assert_eq!(d.wait_sealing(true)["origin"], "recovered");
    let (c, e) = d.attest();
    assert_eq!(
        *c.vault_get(&e, &owner, "secret").unwrap().0,
        b"for the good image only"
    );
}

#[test]
fn the_shim_refuses_egress_the_allow_list_does_not_name() {
    let mut d = deployment("egress", None);
    // The enclave asks for another region's KMS; the shim allows only us-east-1's.
    d.region = "eu-west-1";
    d.start_enclave();
    let s = d.wait_sealing(false);
    let err = s["error"].as_str().unwrap();
    assert!(err.contains("not_allowed"), "{err}");
    assert_eq!(s["error_code"], "kms_unreachable", "{s}");
    assert!(err.contains("kms.eu-west-1.amazonaws.com:443"), "{err}");
}

/// A signed read that leaks (a relay keeps it, a client sealed it to the wrong enclave) is
/// good only at the boot of the enclave it was signed for: rewrapped to the same enclave after
/// a restart, within its validity, it reads nothing.
#[test]
fn a_leaked_signed_read_cannot_be_rewrapped_to_another_boot() {
    use sigil_protocol::endpoint::VaultGet;
    use sigil_protocol::vault::{self, NameRequest};
    let mut d = deployment("rewrap", None);
    d.start_enclave();
    d.wait_sealing(true);
    let owner = OwnerKey::generate().unwrap();
    let (c, e) = d.attest();
    c.vault_put(&e, &owner, "alpha", b"the secret", 0).unwrap();
    // The signed read, as the owner's client makes it for this boot.
    let not_after = common::now() + 300;
    let digest = vault::digest(vault::Op::Get, "alpha", 0, None, None, not_after);
    let read = NameRequest {
        name: "alpha".into(),
        expected_version: 0,
        not_after,
        signature: owner.sign_for(&e, &digest).unwrap(),
    };
    let leaked = serde_json::to_vec(&read).unwrap();
    let plain = c.call_raw::<VaultGet>(&e, &leaked).unwrap();
    assert!(String::from_utf8_lossy(&plain).contains("\"version\":1"));

    d.kill_enclave();
    d.start_enclave();
    d.wait_sealing(true);
    // Anyone can attest the new boot and seal the leaked request to it.
    let (c, e) = d.attest();
    let (status, code, _) = api_error(c.call_raw::<VaultGet>(&e, &leaked).unwrap_err());
    assert_eq!((status, code.as_str()), (401, "bad_signature"));
    // The owner, signing for this boot, still reads it.
    assert_eq!(
        &c.vault_get(&e, &owner, "alpha").unwrap().0[..],
        b"the secret"
    );
}

/// "First boot" is not the parent's word alone: an image whose measured configuration says
/// `first_boot: refuse` recovers an existing state, but over a store the parent emptied it
/// makes no new data key (and so no second state), says why, and writes nothing.
#[test]
fn an_image_that_refuses_a_first_boot_mints_no_new_state_over_an_empty_store() {
    let mut d = deployment("first-boot", None);
    d.start_enclave();
    assert_eq!(d.wait_sealing(true)["origin"], "generated");
    let owner = OwnerKey::generate().unwrap();
    let (c, e) = d.attest();
    c.vault_put(&e, &owner, "alpha", b"one", 0).unwrap();
    d.kill_enclave();

    // The serving image: recovers the state as any later boot does.
    d.first_boot = Some("refuse");
    d.start_enclave();
    assert_eq!(d.wait_sealing(true)["origin"], "recovered");
    let (c, e) = d.attest();
    assert_eq!(&c.vault_get(&e, &owner, "alpha").unwrap().0[..], b"one");
    d.kill_enclave();

    // The parent hides the whole state (moves it aside) and restarts the enclave.
    let state = d.dir.join("state");
    let hidden = d.dir.join("hidden-state");
    d.kill_shim();
    std::fs::rename(&state, &hidden).unwrap();
    std::fs::create_dir_all(&state).unwrap();
    d.start_shim();
    d.start_enclave();
    let s = d.wait_sealing(false);
    assert_eq!(s["error_code"], "first_boot_refused", "{s}");
    assert!(
        std::fs::read_dir(&state).unwrap().next().is_none(),
        "the enclave wrote into the empty store"
    );
}

/// An image whose measured configuration lists its owners (`owners.admit`) serves those keys
/// only: anyone else is refused by name before anything is written, for the vault and for
/// MuSig2 keys alike, so freshly made owner keys cannot fill the store.
#[test]
fn only_the_owners_the_image_admits_may_own_anything() {
    let mut d = deployment("admission", None);
    let admitted = OwnerKey::generate().unwrap();
    let stranger = OwnerKey::generate().unwrap();
    d.owners = Some(format!(
        r#"{{"admit": ["{}"]}}"#,
        hex::encode(admitted.x_only())
    ));
    d.start_enclave();
    d.wait_sealing(true);
    let (c, e) = d.attest();
    let blobs_before = std::fs::read_dir(d.dir.join("state")).unwrap().count();

    let (status, code, message) =
        api_error(c.vault_put(&e, &stranger, "mine", b"x", 0).unwrap_err());
    assert_eq!(
        (status, code.as_str()),
        (403, "owner_not_admitted"),
        "{message}"
    );
    let (status, code, _) = api_error(c.musig2_generate_key(&e, &stranger).unwrap_err());
    assert_eq!((status, code.as_str()), (403, "owner_not_admitted"));
    assert_eq!(
        std::fs::read_dir(d.dir.join("state")).unwrap().count(),
        blobs_before,
        "a refused owner wrote to the store"
    );

    c.vault_put(&e, &admitted, "mine", b"x", 0).unwrap();
    c.musig2_generate_key(&e, &admitted).unwrap();
}

/// Deleting gives the room back: keys and aggregates made and deleted over and over leave
/// nothing in the parent's store (no tombstone piles up), so no owner can use up the
/// store's per-kind room for good by churning, and a deleted key's old records, put back by
/// the parent, stay refused after a restart.
#[test]
fn making_and_deleting_keys_and_aggregates_leaves_nothing_behind() {
    use sigil_client::SignerKey;
    use sigil_client::musig2::AggregateSpec;
    use sigil_protocol::musig2::{KeyOrder, ParticipantSpec};
    use sigil_protocol::wire::Hex;

    let mut d = deployment("churn", None);
    d.start_enclave();
    d.wait_sealing(true);
    let (c, e) = d.attest();
    let owner = OwnerKey::generate().unwrap();
    let state = d.dir.join("state");
    let blobs = || std::fs::read_dir(&state).unwrap().count();
    // The owner's index is made by the first key; count from there.
    let first = c.musig2_generate_key(&e, &owner).unwrap();
    let baseline = blobs();
    let external = SignerKey::generate().unwrap();
    let mut kept = Vec::new();
    let mut first_round = None;
    for round in 0..5 {
        let key = c.musig2_generate_key(&e, &owner).unwrap();
        let spec = AggregateSpec {
            participants: vec![
                ParticipantSpec::Held(key.id),
                ParticipantSpec::External(Hex(external.public_key())),
            ],
            order: KeyOrder::Sorted,
            tweaks: vec![],
        };
        let agg = c.musig2_create_aggregate(&e, &owner, &spec).unwrap();
        assert_eq!(blobs(), baseline + 3, "round {round}");
        if round == 0 {
            first_round = Some((key.id, agg.id));
            // What a parent could keep and serve again later.
            kept = std::fs::read_dir(&state)
                .unwrap()
                .map(|f| {
                    let p = f.unwrap().path();
                    (p.clone(), std::fs::read(&p).unwrap())
                })
                .collect();
        }
        c.musig2_delete_aggregate(&e, &owner, &agg.id).unwrap();
        c.musig2_delete_key(&e, &owner, &key.id).unwrap();
        assert_eq!(blobs(), baseline, "round {round}: something stayed behind");
    }
    // The parent puts the first round's records back, and restarts the enclave.
    d.kill_enclave();
    let index: Vec<_> = std::fs::read_dir(&state)
        .unwrap()
        .map(|f| f.unwrap().path())
        .collect();
    for (p, bytes) in &kept {
        // The owner's index and the data key stay as they are now.
        if !index.contains(p) {
            std::fs::write(p, bytes).unwrap();
        }
    }
    d.start_enclave();
    d.wait_sealing(true);
    let (c, e) = d.attest();
    let listed = c.musig2_list_keys(&e, &owner).unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0], first.id);
    assert!(c.musig2_list_aggregates(&e, &owner).unwrap().is_empty());
    // Reads go by the owner's index, which no longer lists them: to their own owner they
    // are as foreign as anyone else's.
    let (key, agg) = first_round.unwrap();
    let (status, code, _) = api_error(c.musig2_describe_key(&e, &owner, &key).unwrap_err());
    assert_eq!((status, code.as_str()), (403, "not_owner"));
    let (status, code, _) = api_error(c.musig2_describe_aggregate(&e, &owner, &agg).unwrap_err());
    assert_eq!((status, code.as_str()), (403, "not_owner"));
}

/// The node identity: made on the first boot of a state, sealed, attested beside the per-boot
/// key in every document once the state is open (and printed by `sigil attest`), the same
/// after a restart, and another state's is another.
#[test]
fn the_node_identity_is_attested_and_survives_restarts() {
    let mut d = deployment("node-id", None);
    d.start_enclave();
    d.wait_sealing(true);
    let (_, e) = d.attest();
    let node = e.image.node.expect("a node id once the state is open");
    let printed = common::sigil_json(&["attest", "--endpoint", &d.endpoint(), "--trust-test-root"]);
    assert_eq!(printed["image"]["node"], hex::encode(node), "{printed}");
    let per_boot = e.public_key;

    d.kill_enclave();
    d.start_enclave();
    d.wait_sealing(true);
    let (_, e) = d.attest();
    assert_eq!(
        e.image.node,
        Some(node),
        "the node id changed across a restart"
    );
    assert_ne!(e.public_key, per_boot, "the per-boot key did not change");

    let mut other = deployment("node-id-other", None);
    other.start_enclave();
    other.wait_sealing(true);
    let (_, e) = other.attest();
    assert_ne!(e.image.node, Some(node), "two states share a node id");
}
