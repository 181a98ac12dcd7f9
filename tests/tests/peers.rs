//! Peer trust is measured: an enclave verifies another enclave's attestation document against
//! the `peers` section of its own configuration (`POST /v1/peers/verify`), whatever the
//! coordinator says. Local deployments (development KMS, shim, enclave) with simulated PCRs
//! stand in for images.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{api_error, target_dir};
use sigil_client::{AttestedEnclave, Client};
use sigil_e2e::deployment::{Deployment, LocalEnclave};
use sigil_e2e::workspace;

fn deployment(name: &str) -> Deployment {
    Deployment::new(
        target_dir()
            .join("test-peers")
            .join(format!("{name}-{}", std::process::id())),
        common::enclave_bin(),
        common::profile_bin("sigil-shim"),
        None,
    )
}

/// The published manifest with PCR1 replaced: another image's measurements.
fn manifest_with_pcr1(dir: &Path, pcr1: &str) -> PathBuf {
    let text = std::fs::read_to_string(workspace().join("pcr-manifest.json")).unwrap();
    let mut m: serde_json::Value = serde_json::from_str(&text).unwrap();
    m["Measurements"]["PCR1"] = serde_json::Value::String(pcr1.into());
    let p = dir.join(format!("manifest-{}.json", &pcr1[..8]));
    std::fs::write(&p, serde_json::to_string_pretty(&m).unwrap()).unwrap();
    p
}

fn pcr2() -> String {
    let text = std::fs::read_to_string(workspace().join("pcr-manifest.json")).unwrap();
    let m: serde_json::Value = serde_json::from_str(&text).unwrap();
    m["Measurements"]["PCR2"].as_str().unwrap().to_string()
}

fn attest(endpoint: &str) -> (Client, AttestedEnclave) {
    let c = Client::new(endpoint).unwrap();
    let e = c.attest(common::test_root_policy()).unwrap();
    (c, e)
}

/// A fresh document from the enclave at `endpoint`, as a coordinator fetches it.
fn document(endpoint: &str) -> Vec<u8> {
    Client::new(endpoint)
        .unwrap()
        .attestation_document(&[0x5a; 32])
        .unwrap()
}

/// A deployment whose simulated image has PCR1 `pcr1`, started with its state open.
fn image(name: &str, pcr1: &str, peers: Option<String>) -> Deployment {
    let mut d = deployment(name);
    d.simulated_pcrs = Some(manifest_with_pcr1(&d.dir, pcr1));
    d.peers = peers;
    d.start_enclave();
    d.wait_sealing(true);
    d
}

#[test]
fn an_enclave_accepts_only_the_peers_its_measured_policy_names() {
    let (allowed, other) = ("11".repeat(48), "22".repeat(48));
    let policy = format!(
        r#"{{"images": [{{"pcr1": "{allowed}", "pcr2": "{}"}}], "max_age_secs": 3,
            "trust_test_root": true}}"#,
        pcr2()
    );
    let a = image("a", &allowed, Some(policy));
    let b = image("b", &allowed, None);
    let c = image("c", &other, None);
    let (client, enclave_a) = attest(&a.endpoint());
    let (_, enclave_b) = attest(&b.endpoint());

    // The allowed image: its node and per-boot key, as its own document binds them.
    let doc_b = document(&b.endpoint());
    let view = client.peers_verify(&enclave_a, &doc_b).unwrap();
    assert_eq!(Some(view.node.0), enclave_b.image.node);
    assert_eq!(view.public_key.0, enclave_b.public_key);
    assert_eq!((view.image, view.mode.as_str()), (0, "local"));

    // Another image: not on the allow-list.
    let (status, code, message) = api_error(
        client
            .peers_verify(&enclave_a, &document(&c.endpoint()))
            .unwrap_err(),
    );
    assert_eq!(
        (status, code.as_str()),
        (403, "peer_not_allowed"),
        "{message}"
    );

    // A tampered document (one byte of the signature flipped).
    let mut tampered = doc_b.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    let (status, code, _) = api_error(client.peers_verify(&enclave_a, &tampered).unwrap_err());
    assert_eq!((status, code.as_str()), (400, "peer_document_refused"));

    // The allowed image without sealed state: no node identity, so no peer.
    let stateless = LocalEnclave::start(
        &common::profile_bin("sigil-enclave"),
        &[
            "--simulated-pcrs",
            &manifest_with_pcr1(&a.dir, &allowed).display().to_string(),
        ],
    );
    let (status, code, message) = api_error(
        client
            .peers_verify(&enclave_a, &document(&stateless.endpoint()))
            .unwrap_err(),
    );
    assert_eq!((status, code.as_str()), (400, "peer_document_refused"));
    assert!(message.contains("node identity"), "{message}");

    // Too old: the policy takes documents up to 3 s old.
    std::thread::sleep(Duration::from_secs(5));
    let (status, code, message) = api_error(client.peers_verify(&enclave_a, &doc_b).unwrap_err());
    assert_eq!((status, code.as_str()), (400, "peer_document_refused"));
    assert!(
        message.contains("old") || message.contains("age"),
        "{message}"
    );

    // An image without a peers section accepts nobody.
    let (client_b, _) = attest(&b.endpoint());
    let (status, code, _) = api_error(
        client_b
            .peers_verify(&enclave_b, &document(&a.endpoint()))
            .unwrap_err(),
    );
    assert_eq!((status, code.as_str()), (403, "peer_not_allowed"));

    // The CLI as the coordinator: it fetches B's document and asks A.
    let out = common::sigil_json(&[
        "peers-verify",
        "--endpoint",
        &a.endpoint(),
        "--peer",
        &b.endpoint(),
        "--trust-test-root",
    ]);
    assert_eq!(
        out["node"],
        hex::encode(enclave_b.image.node.unwrap()),
        "{out}"
    );
}

/// Sealed messages between enclaves, carried by the test as an untrusted coordinator: a ping
/// from A opens at B; replayed, reordered, changed or redirected copies are refused by name;
/// a sender whose image is not on B's allow-list is refused however it seals.
#[test]
fn peer_messages_open_only_at_their_recipient_once_and_in_order() {
    let (allowed, other) = ("31".repeat(48), "32".repeat(48));
    // A, B and C run one image and accept their own ("self": the PCRs they attest).
    let same = r#"{"images": ["self"], "trust_test_root": true}"#.to_string();
    let a = image("ping-a", &allowed, Some(same.clone()));
    let b = image("ping-b", &allowed, Some(same.clone()));
    let c = image("ping-c", &allowed, Some(same));
    // D runs another image, which itself accepts ours by its PCRs.
    let d = image(
        "ping-d",
        &other,
        Some(format!(
            r#"{{"images": [{{"pcr1": "{allowed}", "pcr2": "{}"}}], "trust_test_root": true}}"#,
            pcr2()
        )),
    );
    let (ca, ea) = attest(&a.endpoint());
    let (cb, eb) = attest(&b.endpoint());
    let (cc, ec) = attest(&c.endpoint());
    let (cd, ed) = attest(&d.endpoint());
    let (doc_a, doc_b, doc_d) = (
        document(&a.endpoint()),
        document(&b.endpoint()),
        document(&d.endpoint()),
    );
    let session = [0x77; 32];
    let refused =
        |r: Result<sigil_protocol::peers::PeerPingReceived, sigil_client::ClientError>| {
            let (status, code, message) = api_error(r.unwrap_err());
            assert_eq!(
                (status, code.as_str()),
                (400, "peer_message_refused"),
                "{message}"
            );
            message
        };

    // A to B, carried as it is.
    let m1 = ca.peers_ping_send(&ea, &doc_b, session, "hello B").unwrap();
    assert_eq!(m1.recipient.0, eb.image.node.unwrap());
    let got = cb.peers_ping_receive(&eb, &m1, Some(&doc_a)).unwrap();
    assert_eq!((got.text.as_str(), got.seq), ("hello B", 1));
    assert_eq!(Some(got.sender.0), ea.image.node);

    // The same message again: a replay. (A is known now: no document needed.)
    let m = refused(cb.peers_ping_receive(&eb, &m1, None));
    assert!(m.contains("replayed"), "{m}");

    // Out of order: 3 is taken, then 2 is refused.
    let m2 = ca.peers_ping_send(&ea, &doc_b, session, "two").unwrap();
    let m3 = ca.peers_ping_send(&ea, &doc_b, session, "three").unwrap();
    assert_eq!(cb.peers_ping_receive(&eb, &m3, None).unwrap().seq, 3);
    let m = refused(cb.peers_ping_receive(&eb, &m2, None));
    assert!(m.contains("out of order"), "{m}");

    // Changed on the way: the payload, the round, the sequence number, the session.
    let m4 = ca.peers_ping_send(&ea, &doc_b, session, "four").unwrap();
    let changes: [fn(&mut sigil_protocol::peers::PeerMessage); 4] = [
        |m| m.ct.0[0] ^= 1,
        |m| m.round = 1,
        |m| m.seq += 10,
        |m| m.session.0[0] ^= 1,
    ];
    for change in changes {
        let mut bad = m4.clone();
        change(&mut bad);
        let m = refused(cb.peers_ping_receive(&eb, &bad, None));
        assert!(m.contains("does not open"), "{m}");
    }
    // The untouched one still opens (nothing above consumed its sequence number).
    assert_eq!(cb.peers_ping_receive(&eb, &m4, None).unwrap().text, "four");

    // Redirected to C (another allowed enclave): not addressed to it...
    let m5 = ca
        .peers_ping_send(&ea, &doc_b, session, "for B only")
        .unwrap();
    let m = refused(cc.peers_ping_receive(&ec, &m5, Some(&doc_a)));
    assert!(m.contains("another node"), "{m}");
    // ...and readdressed to C, it does not open there.
    let mut readdressed = m5.clone();
    readdressed.recipient.0 = ec.image.node.unwrap();
    let m = refused(cc.peers_ping_receive(&ec, &readdressed, Some(&doc_a)));
    assert!(m.contains("does not open"), "{m}");

    // D's image is not on B's allow-list: D can seal to B (it accepts B), B refuses it.
    let from_d = cd
        .peers_ping_send(&ed, &doc_b, session, "let me in")
        .unwrap();
    let (status, code, _) = api_error(
        cb.peers_ping_receive(&eb, &from_d, Some(&doc_d))
            .unwrap_err(),
    );
    assert_eq!((status, code.as_str()), (403, "peer_not_allowed"));
    // Without its document it is no known peer either.
    let m = refused(cb.peers_ping_receive(&eb, &from_d, None));
    assert!(m.contains("send its document"), "{m}");

    // Nothing to or from the enclave itself.
    let doc_own = document(&a.endpoint());
    let (status, code, message) = api_error(
        ca.peers_ping_send(&ea, &doc_own, session, "me")
            .unwrap_err(),
    );
    assert_eq!(
        (status, code.as_str()),
        (400, "peer_message_refused"),
        "{message}"
    );

    // The CLI as the coordinator.
    let out = common::sigil_json(&[
        "peers-ping",
        "--from",
        &a.endpoint(),
        "--to",
        &b.endpoint(),
        "--text",
        "through the CLI",
        "--trust-test-root",
    ]);
    assert_eq!(out["text"], "through the CLI", "{out}");
    assert_eq!(out["sender"], hex::encode(ea.image.node.unwrap()), "{out}");
}
