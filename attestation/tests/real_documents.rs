//! Real Nitro documents (shared/vectors/nitro): accepted at their own time, rejected with the
//! right check once anything about them is wrong.

mod common;

use common::*;
use sigil_attestation::cose::CoseSign1;
use sigil_attestation::{AttestationDocument, Policy, TrustedRoot, decode_input, verify};

fn check_of(input: &[u8], policy: &Policy) -> &'static str {
    verify(input, policy).unwrap_err().check()
}

/// Each real document with the policy at its own time and what it verifies to.
fn verified_real_docs() -> Vec<(RealDoc, Policy, AttestationDocument)> {
    real_docs()
        .into_iter()
        .map(|d| {
            let policy = Policy::at(d.at);
            let doc = verify(&d.cbor, &policy).unwrap().document;
            (d, policy, doc)
        })
        .collect()
}

#[test]
fn real_documents_verify_at_their_own_time() {
    for d in real_docs() {
        let v = verify(&d.cbor, &Policy::at(d.at)).unwrap_or_else(|e| panic!("{}: {e}", d.file));
        assert_eq!(v.root, TrustedRoot::AwsNitroRootG1);
        assert!(!v.debug);
        assert_eq!(v.document.module_id, d.module_id);
        assert_eq!(v.document.timestamp_ms, d.timestamp_ms);
        assert_eq!(v.document.digest, "SHA384");
        assert_eq!(v.document.pcrs.len(), 16);
        assert_eq!(v.document.cabundle.len(), 4);
        assert_eq!(v.document.nonce.as_ref().map(Vec::len), d.nonce_len);

        let json: serde_json::Value = serde_json::from_str(&v.to_json()).unwrap();
        assert_eq!(json["module_id"], d.module_id.as_str());
        assert_eq!(json["pcrs"]["0"], d.pcr0.as_str());
        assert_eq!(json["timestamp"], d.timestamp_ms);
        assert_eq!(json["digest"], "SHA384");
        assert_eq!(json["root"], "aws-nitro-enclaves-root-g1");
        assert_eq!(json["debug"], false);
        assert_eq!(
            json["nonce"].as_str().map(|s| s.len() / 2),
            d.nonce_len,
            "nonce hex"
        );
    }
}

#[test]
fn doc03_has_null_public_key_and_user_data() {
    let d = real_doc("03_");
    let v = verify(&d.cbor, &Policy::at(d.at)).unwrap();
    assert_eq!(v.document.public_key, None);
    assert_eq!(v.document.user_data, None);
    assert_eq!(v.document.nonce.as_ref().unwrap().len(), 256);
    let json: serde_json::Value = serde_json::from_str(&v.to_json()).unwrap();
    assert!(json["public_key"].is_null());
    assert!(json["user_data"].is_null());
}

#[test]
fn doc06_carries_all_optional_fields() {
    let d = real_doc("06_");
    let v = verify(&d.cbor, &Policy::at(d.at)).unwrap();
    assert_eq!(v.document.public_key.as_ref().unwrap().len(), 5);
    assert_eq!(v.document.user_data.as_ref().unwrap().len(), 68);
    assert_eq!(v.document.nonce.as_ref().unwrap().len(), 20);
}

#[test]
fn base64_files_decode_to_the_cbor_and_verify() {
    for d in real_docs() {
        let raw = decode_input(&d.b64).unwrap();
        assert_eq!(raw, d.cbor, "{}", d.file);
        verify(&raw, &Policy::at(d.at)).unwrap();

        let text = std::str::from_utf8(&d.b64).unwrap().trim();
        let unpadded = text.trim_end_matches('=');
        assert_eq!(decode_input(unpadded.as_bytes()).unwrap(), d.cbor);
        let spaced = format!(" \r\n\t{text}\n\n");
        assert_eq!(decode_input(spaced.as_bytes()).unwrap(), d.cbor);
        let wrapped: String = text
            .as_bytes()
            .chunks(76)
            .map(|c| format!("{}\n", std::str::from_utf8(c).unwrap()))
            .collect();
        assert_eq!(decode_input(wrapped.as_bytes()).unwrap(), d.cbor);
        // Raw bytes pass through decode_input unchanged.
        assert_eq!(decode_input(&d.cbor).unwrap(), d.cbor);
        // URL-safe alphabet is not accepted.
        let urlsafe = text.replace('+', "-").replace('/', "_");
        if urlsafe != text {
            assert_eq!(
                decode_input(urlsafe.as_bytes()).unwrap_err().check(),
                "input"
            );
        }
    }
}

#[test]
fn real_documents_are_rejected_now_as_expired() {
    let now = now_secs();
    for d in real_docs() {
        let e = verify(&d.cbor, &Policy::at(now)).unwrap_err();
        assert_eq!(e.check(), "chain", "{e}");
        assert!(e.to_string().contains("expired at"), "{e}");
        assert!(e.to_string().starts_with("chain: certificate "), "{e}");
        assert!(!e.to_string().contains('\n'));
    }
}

#[test]
fn real_documents_are_rejected_before_not_before() {
    for d in real_docs() {
        // The leaf was issued a few seconds before the document; an hour earlier it did not exist.
        let e = verify(&d.cbor, &Policy::at(d.at - 3600)).unwrap_err();
        assert_eq!(e.check(), "chain", "{e}");
        assert!(e.to_string().contains("is not valid before"), "{e}");
    }
}

#[test]
fn leaf_expiry_is_the_end_of_the_window() {
    let d = real_doc("06_");
    // Leaf notAfter 2024-07-31T23:18:27Z = 1722467907.
    verify(&d.cbor, &Policy::at(1_722_467_907)).unwrap();
    let e = verify(&d.cbor, &Policy::at(1_722_467_908)).unwrap_err();
    assert_eq!(e.check(), "chain");
    assert!(
        e.to_string().starts_with(
            "chain: certificate 0 (CN=i-0809070ca8037095f-enc01910a70380dca7e.us-east-1.aws) expired at 2024-07-31T23:18:27Z (verification time 2024-07-31T23:18:28Z)"
        ),
        "{e}"
    );
}

#[test]
fn flipped_signature_byte_is_a_signature_failure() {
    for d in real_docs() {
        let n = d.cbor.len();
        for pos in [n - 1, n - 48, n - 96] {
            let e = verify(&flipped(&d.cbor, pos, 0x01), &Policy::at(d.at)).unwrap_err();
            assert_eq!(e.check(), "signature", "{}: {e}", d.file);
            assert_eq!(
                e.to_string(),
                "signature: ES384 signature over the Sig_structure does not verify with the leaf certificate's key"
            );
        }
    }
}

#[test]
fn flipped_payload_byte_is_a_signature_failure() {
    for d in real_docs() {
        let policy = Policy::at(d.at);
        // A character of module_id (first occurrence is the payload's module_id value).
        let pos = find_first(&d.cbor, d.module_id.as_bytes()) + 3;
        assert_eq!(check_of(&flipped(&d.cbor, pos, 0x01), &policy), "signature");
        // A byte of PCR0.
        let pcr0 = hex::decode(&d.pcr0).unwrap();
        let pos = find_unique(&d.cbor, &pcr0) + 10;
        assert_eq!(check_of(&flipped(&d.cbor, pos, 0x80), &policy), "signature");
        // A byte of the timestamp (0x1b + 8 bytes after the "timestamp" key).
        let pos = find_unique(&d.cbor, b"\x69timestamp") + 10 + 8;
        assert_eq!(check_of(&flipped(&d.cbor, pos, 0x01), &policy), "signature");
        // A byte of the nonce.
        let doc = verify(&d.cbor, &policy).unwrap().document;
        let pos = find_unique(&d.cbor, doc.nonce.as_ref().unwrap()) + 5;
        assert_eq!(check_of(&flipped(&d.cbor, pos, 0x01), &policy), "signature");
    }
}

#[test]
fn flipped_leaf_certificate_byte_is_a_chain_failure() {
    for (d, policy, doc) in verified_real_docs() {
        let start = find_unique(&d.cbor, &doc.certificate);
        let end = start + doc.certificate.len();
        // Last byte of the certificate: inside the ECDSA signature's s value.
        let e = verify(&flipped(&d.cbor, end - 1, 0x01), &policy).unwrap_err();
        assert_eq!(e.check(), "chain", "{e}");
        assert!(e.to_string().contains("certificate 0"), "{e}");
        assert!(e.to_string().contains("signature does not verify"), "{e}");
        // A byte of the leaf's subject CN, inside the TBS part.
        let cn = format!("{}.us-east-1.aws", d.module_id);
        let pos = start + find_unique(&doc.certificate, cn.as_bytes()) + 2;
        let e = verify(&flipped(&d.cbor, pos, 0x01), &policy).unwrap_err();
        assert_eq!(e.check(), "chain", "{e}");
        assert!(e.to_string().contains("signature does not verify"), "{e}");
        // Any other TBS byte: whether it breaks parsing or the signature, it is "chain".
        for off in [4, 20, 100, 200, 300] {
            let e = verify(&flipped(&d.cbor, start + off, 0x10), &policy).unwrap_err();
            assert_eq!(e.check(), "chain", "offset {off}: {e}");
        }
    }
}

#[test]
fn flipped_intermediate_byte_is_a_chain_failure() {
    for (d, policy, doc) in verified_real_docs() {
        for ca in &doc.cabundle[1..] {
            let start = find_unique(&d.cbor, ca);
            let e = verify(&flipped(&d.cbor, start + ca.len() - 1, 0x01), &policy).unwrap_err();
            assert_eq!(e.check(), "chain", "{e}");
        }
    }
}

#[test]
fn flipped_root_byte_is_a_root_failure() {
    for (d, policy, doc) in verified_real_docs() {
        let start = find_unique(&d.cbor, &doc.cabundle[0]);
        for off in [10, 200, doc.cabundle[0].len() - 1] {
            let e = verify(&flipped(&d.cbor, start + off, 0x01), &policy).unwrap_err();
            assert_eq!(e.check(), "root", "{e}");
            assert!(
                e.to_string()
                    .contains("not the pinned AWS Nitro Enclaves Root-G1 (sha256 641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b)"),
                "{e}"
            );
        }
    }
}

#[test]
fn pcr_policy_on_real_documents() {
    for d in real_docs() {
        let doc = verify(&d.cbor, &Policy::at(d.at)).unwrap().document;
        // All 16 PCRs as expected: accepted.
        let mut policy = Policy::at(d.at);
        policy.expected_pcrs = doc.pcrs.clone();
        verify(&d.cbor, &policy).unwrap();
        // PCR0 off by one bit.
        let mut wrong = doc.pcrs[&0].clone();
        wrong[47] ^= 1;
        policy.expected_pcrs.insert(0, wrong.clone());
        let e = verify(&d.cbor, &policy).unwrap_err();
        assert_eq!(e.check(), "pcr");
        assert_eq!(
            e.to_string(),
            format!(
                "pcr: PCR0 mismatch (expected {}, got {})",
                hex::encode(&wrong),
                d.pcr0
            )
        );
        // A PCR the document does not report.
        let mut policy = Policy::at(d.at);
        policy.expected_pcrs.insert(20, vec![0; 48]);
        assert_eq!(check_of(&d.cbor, &policy), "pcr");
    }
}

#[test]
fn nonce_policy_on_real_documents() {
    for (prefix, len) in [("03_", 256), ("06_", 20)] {
        let d = real_doc(prefix);
        let nonce = verify(&d.cbor, &Policy::at(d.at))
            .unwrap()
            .document
            .nonce
            .unwrap();
        assert_eq!(nonce.len(), len);
        let mut policy = Policy::at(d.at);
        policy.nonce = Some(nonce.clone());
        verify(&d.cbor, &policy).unwrap();
        let mut wrong = nonce.clone();
        wrong[len - 1] ^= 1;
        policy.nonce = Some(wrong);
        let e = verify(&d.cbor, &policy).unwrap_err();
        assert_eq!(e.check(), "nonce", "{e}");
        policy.nonce = Some(nonce[..len - 1].to_vec());
        assert_eq!(check_of(&d.cbor, &policy), "nonce");
        policy.nonce = Some(vec![]);
        assert_eq!(check_of(&d.cbor, &policy), "nonce");
    }
}

#[test]
fn freshness_policy_on_real_documents() {
    for d in real_docs() {
        // An hour later the chain is still valid (leaf lives 3 h) but the document is stale.
        let mut policy = Policy::at(d.at + 3600);
        policy.max_age_seconds = Some(60);
        let e = verify(&d.cbor, &policy).unwrap_err();
        assert_eq!(e.check(), "freshness", "{e}");
        assert!(e.to_string().contains("3599 s old"), "{e}");
        policy.max_age_seconds = Some(3601);
        verify(&d.cbor, &policy).unwrap();
        // At the document's own second (the ms part is in the "future"): within the skew.
        let mut policy = Policy::at(d.at);
        policy.max_age_seconds = Some(0);
        verify(&d.cbor, &policy).unwrap();
    }
}

#[test]
fn truncated_and_extended_inputs_are_cose_failures() {
    for d in real_docs() {
        let policy = Policy::at(d.at);
        for n in [
            0,
            1,
            5,
            100,
            d.cbor.len() / 2,
            d.cbor.len() - 97,
            d.cbor.len() - 1,
        ] {
            let e = verify(&d.cbor[..n], &policy).unwrap_err();
            assert_eq!(e.check(), "cose", "len {n}: {e}");
        }
        let mut longer = d.cbor.clone();
        longer.push(0x00);
        let e = verify(&longer, &policy).unwrap_err();
        assert_eq!(e.check(), "cose");
        assert!(e.to_string().contains("1 trailing bytes"), "{e}");
        // Oversized input is refused before parsing.
        let mut huge = d.cbor.clone();
        huge.resize(sigil_attestation::MAX_INPUT_BYTES + 1, 0);
        assert_eq!(check_of(&huge, &policy), "input");
    }
}

#[test]
fn tag_18_is_accepted_other_tags_are_not() {
    for d in real_docs() {
        let policy = Policy::at(d.at);
        let tagged = [&[0xd2][..], &d.cbor].concat();
        verify(&tagged, &policy).unwrap();
        assert_eq!(decode_input(&tagged).unwrap(), tagged);
        let tag19 = [&[0xd3][..], &d.cbor].concat();
        assert_eq!(check_of(&tag19, &policy), "cose");
    }
}

#[test]
fn trusting_the_test_root_does_not_change_real_results() {
    for d in real_docs() {
        let mut policy = Policy::at(d.at);
        policy.trust_test_root = true;
        assert_eq!(
            verify(&d.cbor, &policy).unwrap().root,
            TrustedRoot::AwsNitroRootG1
        );
        policy.at_unix_seconds = now_secs();
        assert_eq!(check_of(&d.cbor, &policy), "chain");
    }
}

#[test]
fn real_payloads_reencode_byte_for_byte() {
    for d in real_docs() {
        let cose = CoseSign1::parse(&d.cbor).unwrap();
        assert!(!cose.tagged);
        assert_eq!(cose.protected, [0xa1, 0x01, 0x38, 0x22]);
        let doc = AttestationDocument::from_cbor(cose.payload).unwrap();
        assert_eq!(doc.to_cbor(), cose.payload, "{}", d.file);
    }
}

#[test]
fn indefinite_length_reencoding_of_real_payload_parses_the_same() {
    for d in real_docs() {
        let cose = CoseSign1::parse(&d.cbor).unwrap();
        let doc = AttestationDocument::from_cbor(cose.payload).unwrap();
        assert_eq!(cose.payload[0], 0xa9, "definite map of 9");
        let mut indefinite = cose.payload.to_vec();
        indefinite[0] = 0xbf;
        indefinite.push(0xff);
        assert_eq!(AttestationDocument::from_cbor(&indefinite).unwrap(), doc);
        // Inside the original envelope the signature no longer matches the bytes.
        let resigned =
            sigil_attestation::cose::encode_sign1(cose.protected, &indefinite, cose.signature);
        assert_eq!(check_of(&resigned, &Policy::at(d.at)), "signature");
    }
}

#[test]
fn swapping_the_leaf_between_real_documents_fails() {
    let a = real_doc("03_");
    let b = real_doc("06_");
    let pa = CoseSign1::parse(&a.cbor).unwrap();
    let pb = CoseSign1::parse(&b.cbor).unwrap();
    let mut doc = AttestationDocument::from_cbor(pa.payload).unwrap();
    let other = AttestationDocument::from_cbor(pb.payload).unwrap();
    // Document a, but carrying b's chain: at a's time, b's certificates are not valid yet.
    doc.certificate = other.certificate.clone();
    doc.cabundle = other.cabundle.clone();
    let forged = sigil_attestation::cose::encode_sign1(pa.protected, &doc.to_cbor(), pa.signature);
    assert_eq!(check_of(&forged, &Policy::at(a.at)), "chain");
    // At b's time, the chain is valid but a's signature was not made by b's leaf.
    assert_eq!(check_of(&forged, &Policy::at(b.at)), "signature");
}
