//! The simulated issuer: its documents verify only under an explicit test-root policy, are
//! debug-mode, and exercise the policy checks with live (not fixture) documents.
#![cfg(feature = "simulator")]

mod common;

use std::sync::Arc;

use common::*;
use sigil_attestation::chain::{SIGIL_TEST_ROOT_DER, SIGIL_TEST_ROOT_SHA256};
use sigil_attestation::cose::CoseSign1;
use sigil_attestation::simulator::{SimulatedIssuer, TEST_ROOT_KEY_PKCS8};
use sigil_attestation::{AttestationDocument, Policy, TrustedRoot, VerifyError, verify};
use x509_parser::prelude::*;

fn dev_policy() -> Policy {
    let mut p = Policy::at(now_secs());
    p.trust_test_root = true;
    p.allow_debug = true;
    p
}

fn issuer() -> SimulatedIssuer {
    SimulatedIssuer::new().unwrap()
}

#[test]
fn issuer_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<SimulatedIssuer>();
}

#[test]
fn attested_document_verifies_under_the_dev_policy() {
    let sim = issuer();
    let cose = sim
        .attest(Some(b"PUBKEY"), Some(b"hello"), Some(b"nonce-123"))
        .unwrap();
    let v = verify(&cose, &dev_policy()).unwrap();
    assert_eq!(v.root, TrustedRoot::SigilTestRoot);
    assert!(v.debug);
    let d = &v.document;
    assert!(
        d.module_id.starts_with("sigil-simulated-nsm-"),
        "{}",
        d.module_id
    );
    assert_eq!(d.module_id.len(), "sigil-simulated-nsm-".len() + 16);
    assert_eq!(d.module_id, sim.module_id());
    assert_eq!(d.digest, "SHA384");
    assert_eq!(d.pcrs.len(), 16);
    assert!(d.pcrs.iter().all(|(i, v)| *i < 16 && v == &vec![0u8; 48]));
    assert_eq!(d.public_key.as_deref(), Some(&b"PUBKEY"[..]));
    assert_eq!(d.user_data.as_deref(), Some(&b"hello"[..]));
    assert_eq!(d.nonce.as_deref(), Some(&b"nonce-123"[..]));
    assert_eq!(d.cabundle.len(), 2);
    assert_eq!(d.cabundle[0], SIGIL_TEST_ROOT_DER);
    let age_ms = (now_secs() * 1000).abs_diff(d.timestamp_ms);
    assert!(age_ms < 5_000, "timestamp is now");

    let json: serde_json::Value = serde_json::from_str(&v.to_json()).unwrap();
    assert_eq!(json["root"], "sigil-test-root");
    assert_eq!(json["debug"], true);
    assert_eq!(json["user_data"], hex::encode("hello"));
    assert_eq!(json["pcrs"]["15"], "00".repeat(48));

    // Envelope shape matches real documents: untagged, {1:-35}, empty unprotected map.
    let parsed = CoseSign1::parse(&cose).unwrap();
    assert!(!parsed.tagged);
    assert_eq!(cose[0], 0x84);
    assert_eq!(&cose[1..6], &[0x44, 0xa1, 0x01, 0x38, 0x22]);
    assert_eq!(cose[6], 0xa0);
}

#[test]
fn null_optional_fields_from_the_simulator() {
    let sim = issuer();
    let cose = sim.attest(None, None, None).unwrap();
    let v = verify(&cose, &dev_policy()).unwrap();
    assert_eq!(v.document.public_key, None);
    assert_eq!(v.document.user_data, None);
    assert_eq!(v.document.nonce, None);
    // Encoded as explicit nulls, like real documents.
    let payload = CoseSign1::parse(&cose).unwrap().payload.to_vec();
    assert!(payload.ends_with(&[0x65, b'n', b'o', b'n', b'c', b'e', 0xf6]));
}

/// A plain simulated document checked under the dev policy as `change` alters it: the error.
fn refused_under(change: impl FnOnce(&mut Policy)) -> VerifyError {
    let cose = issuer().attest(None, None, None).unwrap();
    let mut p = dev_policy();
    change(&mut p);
    verify(&cose, &p).unwrap_err()
}

#[test]
fn test_root_is_refused_unless_trusted() {
    let e = refused_under(|p| p.trust_test_root = false);
    assert_eq!(e.check(), "root", "{e}");
    assert!(e.to_string().contains("sigil test root"), "{e}");
}

#[test]
fn debug_documents_are_refused_unless_allowed() {
    let e = refused_under(|p| p.allow_debug = false);
    assert_eq!(e.check(), "debug", "{e}");
    assert!(
        e.to_string()
            .starts_with("debug: PCR0, PCR1 and PCR2 are all zero")
    );
}

#[test]
fn custom_pcrs_make_a_production_looking_document() {
    let sim = issuer();
    let mut doc = sim.document(None, None, None).unwrap();
    for i in 0..3u8 {
        doc.pcrs.insert(i, vec![0x10 + i; 48]);
    }
    let cose = sim.sign_document(&doc).unwrap();
    let mut p = Policy::at(now_secs());
    p.trust_test_root = true; // debug not allowed, and not needed
    p.expected_pcrs.insert(0, vec![0x10; 48]);
    p.expected_pcrs.insert(2, vec![0x12; 48]);
    let v = verify(&cose, &p).unwrap();
    assert!(!v.debug);
    p.expected_pcrs.insert(1, vec![0x10; 48]);
    let e = verify(&cose, &p).unwrap_err();
    assert_eq!(e.check(), "pcr");
    assert!(
        e.to_string()
            .starts_with("pcr: PCR1 mismatch (expected 1010"),
        "{e}"
    );
}

#[test]
fn nonce_policy_with_simulated_documents() {
    let sim = issuer();
    let nonce = [7u8; 32];
    let cose = sim.attest(None, None, Some(&nonce)).unwrap();
    let mut p = dev_policy();
    p.nonce = Some(nonce.to_vec());
    verify(&cose, &p).unwrap();
    p.nonce = Some(vec![8; 32]);
    assert_eq!(verify(&cose, &p).unwrap_err().check(), "nonce");
    // Expected nonce but the document has none.
    let bare = sim.attest(None, None, None).unwrap();
    p.nonce = Some(nonce.to_vec());
    let e = verify(&bare, &p).unwrap_err();
    assert_eq!(e.check(), "nonce");
    assert!(e.to_string().contains("has no nonce"), "{e}");
}

#[test]
fn stale_and_future_documents_fail_freshness() {
    let sim = issuer();
    let now = now_secs();
    let mut p = dev_policy();
    p.max_age_seconds = Some(300);

    let fresh = sim.attest(None, None, None).unwrap();
    verify(&fresh, &p).unwrap();

    let mut doc = sim.document(None, None, None).unwrap();
    doc.timestamp_ms = (now - 2 * 3600) * 1000;
    let stale = sim.sign_document(&doc).unwrap();
    let e = verify(&stale, &p).unwrap_err();
    assert_eq!(e.check(), "freshness", "{e}");
    assert!(
        e.to_string().contains("old, more than the allowed 300 s"),
        "{e}"
    );
    // Without max_age the stale document is accepted (its chain is current).
    p.max_age_seconds = None;
    verify(&stale, &p).unwrap();

    p.max_age_seconds = Some(300);
    doc.timestamp_ms = (now + 600) * 1000;
    let future = sim.sign_document(&doc).unwrap();
    let e = verify(&future, &p).unwrap_err();
    assert_eq!(e.check(), "freshness");
    assert!(e.to_string().contains("in the future"), "{e}");
    // 30 s ahead is within the 60 s skew allowance.
    doc.timestamp_ms = (now + 30) * 1000;
    verify(&sim.sign_document(&doc).unwrap(), &p).unwrap();
}

#[test]
fn indefinite_length_payload_signed_by_the_simulator_verifies() {
    let sim = issuer();
    let doc = sim.document(Some(b"k"), Some(b"u"), Some(b"n")).unwrap();
    let mut entries = entries_of(&doc);
    // Indefinite outer map, indefinite pcrs map and cabundle array, as 2025 documents may use.
    indefinite_pcrs_and_cabundle(&mut entries, &doc);
    let payload = encode_entries(&entries, true);
    assert_eq!(payload[0], 0xbf);
    assert_eq!(*payload.last().unwrap(), 0xff);
    let cose = sim.sign_payload(&payload).unwrap();
    let v = verify(&cose, &dev_policy()).unwrap();
    assert_eq!(v.document, doc);
}

#[test]
fn user_data_1024_is_accepted_1025_is_rejected() {
    let sim = issuer();
    let cose = sim.attest(None, Some(&[0xaa; 1024]), None).unwrap();
    let v = verify(&cose, &dev_policy()).unwrap();
    assert_eq!(v.document.user_data.unwrap().len(), 1024);
    let cose = sim
        .attest(Some(&[1; 1024]), Some(&[2; 1024]), Some(&[3; 1024]))
        .unwrap();
    verify(&cose, &dev_policy()).unwrap();

    // The simulator refuses to issue oversized fields, like the NSM.
    assert!(sim.attest(None, Some(&[0xaa; 1025]), None).is_err());
    assert!(sim.attest(None, None, Some(&[0xaa; 1025])).is_err());
    assert!(sim.attest(Some(&[]), None, None).is_err());
    // Signed anyway, the verifier rejects it on syntax before looking at the chain.
    let mut doc = sim.document(None, None, None).unwrap();
    doc.user_data = Some(vec![0xaa; 1025]);
    let e = verify(&sim.sign_document(&doc).unwrap(), &dev_policy()).unwrap_err();
    assert_eq!(e.check(), "syntax");
    assert!(e.to_string().contains("user_data is 1025 bytes"), "{e}");
}

#[test]
fn signed_unknown_or_duplicate_keys_are_syntax_errors() {
    let sim = issuer();
    let doc = sim.document(None, None, Some(b"n1")).unwrap();
    for (key, value, needle) in [
        ("extra", uint(1), "unknown key"),
        ("nonce", bstr(b"n2"), "duplicate key \"nonce\""),
    ] {
        let mut entries = entries_of(&doc);
        entries.push((key.into(), value));
        let e = verify(
            &sim.sign_payload(&encode_entries(&entries, false)).unwrap(),
            &dev_policy(),
        )
        .unwrap_err();
        assert_eq!(e.check(), "syntax");
        assert!(e.to_string().contains(needle), "{e}");
    }
}

#[test]
fn tampering_with_simulated_documents() {
    let sim = issuer();
    let cose = sim.attest(None, Some(b"payload-marker"), None).unwrap();
    let p = dev_policy();
    let n = cose.len();
    assert_eq!(
        verify(&flipped(&cose, n - 1, 1), &p).unwrap_err().check(),
        "signature"
    );
    let pos = find_unique(&cose, b"payload-marker");
    assert_eq!(
        verify(&flipped(&cose, pos, 1), &p).unwrap_err().check(),
        "signature"
    );
    let doc = verify(&cose, &p).unwrap().document;
    let leaf = find_unique(&cose, &doc.certificate);
    let e = verify(&flipped(&cose, leaf + doc.certificate.len() - 1, 1), &p).unwrap_err();
    assert_eq!(e.check(), "chain", "{e}");
    let root = find_unique(&cose, &doc.cabundle[0]);
    assert_eq!(
        verify(&flipped(&cose, root + 50, 1), &p)
            .unwrap_err()
            .check(),
        "root"
    );
    let tagged = [&[0xd2][..], &cose].concat();
    verify(&tagged, &p).unwrap();
}

#[test]
fn another_issuers_intermediate_does_not_validate_the_leaf() {
    let a = issuer();
    let b = issuer();
    let mut doc = a.document(None, None, None).unwrap();
    let other = b.document(None, None, None).unwrap();
    // Same intermediate name, different key: the leaf's signature must not verify.
    doc.cabundle[1] = other.cabundle[1].clone();
    let e = verify(&a.sign_document(&doc).unwrap(), &dev_policy()).unwrap_err();
    assert_eq!(e.check(), "chain", "{e}");
    assert!(e.to_string().contains("certificate 0"), "{e}");
    assert!(e.to_string().contains("signature does not verify"), "{e}");
    // b's whole chain with a's signature: chain fine, signature not.
    let mut doc = a.document(None, None, None).unwrap();
    doc.certificate = other.certificate.clone();
    doc.cabundle = other.cabundle.clone();
    let e = verify(&a.sign_document(&doc).unwrap(), &dev_policy()).unwrap_err();
    assert_eq!(e.check(), "signature", "{e}");
}

#[test]
fn simulated_chain_expires_with_the_leaf() {
    let sim = issuer();
    let cose = sim.attest(None, None, None).unwrap();
    let mut p = dev_policy();
    p.at_unix_seconds = now_secs() + 2 * 3600;
    verify(&cose, &p).unwrap();
    p.at_unix_seconds = now_secs() + 3 * 3600 + 60;
    let e = verify(&cose, &p).unwrap_err();
    assert_eq!(e.check(), "chain");
    assert!(
        e.to_string().contains("certificate 0") && e.to_string().contains("expired"),
        "{e}"
    );
    p.at_unix_seconds = now_secs() - 120;
    let e = verify(&cose, &p).unwrap_err();
    assert!(
        e.to_string().contains("certificate 0") && e.to_string().contains("not valid before"),
        "{e}"
    );
}

#[test]
fn simulated_certificates_have_the_documented_shape() {
    let sim = issuer();
    let doc = sim.document(None, None, None).unwrap();
    let now = now_secs() as i64;

    let (_, leaf) = parse_x509_certificate(&doc.certificate).unwrap();
    let bc = leaf.basic_constraints().unwrap().unwrap();
    assert!(bc.critical && !bc.value.ca && bc.value.path_len_constraint.is_none());
    let ku = leaf.key_usage().unwrap().unwrap();
    assert!(ku.value.digital_signature() && !ku.value.key_cert_sign());
    let v = leaf.validity();
    assert!((v.not_before.timestamp() - (now - 60)).abs() <= 5);
    assert!((v.not_after.timestamp() - (now + 3 * 3600)).abs() <= 5);

    let (_, inter) = parse_x509_certificate(&doc.cabundle[1]).unwrap();
    let bc = inter.basic_constraints().unwrap().unwrap();
    assert!(bc.critical && bc.value.ca);
    assert_eq!(bc.value.path_len_constraint, Some(0));
    assert!(inter.key_usage().unwrap().unwrap().value.key_cert_sign());
    let v = inter.validity();
    assert!((v.not_before.timestamp() - (now - 3600)).abs() <= 5);
    assert!((v.not_after.timestamp() - (now + 30 * 24 * 3600)).abs() <= 5);
    assert_eq!(leaf.issuer().as_raw(), inter.subject().as_raw());
    assert_eq!(
        inter.issuer().as_raw(),
        parse_x509_certificate(SIGIL_TEST_ROOT_DER)
            .unwrap()
            .1
            .subject()
            .as_raw()
    );
}

#[test]
fn committed_test_root_matches_its_pin_and_key() {
    let fp = ring::digest::digest(&ring::digest::SHA256, SIGIL_TEST_ROOT_DER);
    assert_eq!(fp.as_ref(), SIGIL_TEST_ROOT_SHA256);
    assert_eq!(
        hex::encode(SIGIL_TEST_ROOT_SHA256),
        "0b28c686ee002359ebd058efe793329e9f01edbc0000f205bb5d5c15db044d55"
    );
    let on_disk = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/test-root/sigil-test-root.der"
    ))
    .unwrap();
    assert_eq!(on_disk, SIGIL_TEST_ROOT_DER);

    let (rest, root) = parse_x509_certificate(SIGIL_TEST_ROOT_DER).unwrap();
    assert!(rest.is_empty());
    assert_eq!(
        root.subject().to_string(),
        "CN=sigil test root (NOT AWS), O=sigil"
    );
    assert_eq!(root.issuer().as_raw(), root.subject().as_raw());
    assert_eq!(root.validity().not_before.timestamp(), 1_735_689_600); // 2025-01-01
    assert_eq!(root.validity().not_after.timestamp(), 3_313_526_400); // 2075-01-01
    let bc = root.basic_constraints().unwrap().unwrap();
    assert!(bc.critical && bc.value.ca && bc.value.path_len_constraint.is_none());
    let ku = root.key_usage().unwrap().unwrap();
    assert!(ku.critical);
    assert!(ku.value.key_cert_sign() && ku.value.crl_sign() && ku.value.digital_signature());
    // Self-signed with the committed key.
    ring::signature::UnparsedPublicKey::new(
        &ring::signature::ECDSA_P384_SHA384_ASN1,
        root.public_key().subject_public_key.data.as_ref(),
    )
    .verify(
        root.tbs_certificate.as_ref(),
        root.signature_value.data.as_ref(),
    )
    .unwrap();
    let rng = ring::rand::SystemRandom::new();
    let key = ring::signature::EcdsaKeyPair::from_pkcs8(
        &ring::signature::ECDSA_P384_SHA384_FIXED_SIGNING,
        TEST_ROOT_KEY_PKCS8,
        &rng,
    )
    .unwrap();
    use ring::signature::KeyPair;
    assert_eq!(
        key.public_key().as_ref(),
        root.public_key().subject_public_key.data.as_ref()
    );
}

#[test]
fn concurrent_attestation_from_many_threads() {
    let sim = Arc::new(issuer());
    let docs: Vec<Vec<u8>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4u8)
            .map(|i| {
                let sim = Arc::clone(&sim);
                s.spawn(move || sim.attest(None, None, Some(&[i; 8])).unwrap())
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (i, cose) in docs.iter().enumerate() {
        let v = verify(cose, &dev_policy()).unwrap();
        assert_eq!(v.document.nonce, Some(vec![i as u8; 8]));
    }
    // One cached leaf serves all of them.
    let leaves: std::collections::BTreeSet<Vec<u8>> = docs
        .iter()
        .map(|c| {
            AttestationDocument::from_cbor(CoseSign1::parse(c).unwrap().payload)
                .unwrap()
                .certificate
        })
        .collect();
    assert_eq!(leaves.len(), 1);
}
