//! Attestation documents as a client receives them from the network: the whole verifier
//! (base64 or raw input, COSE_Sign1, the document, the certificate chain, the signature), the
//! document parser on its own, and the image's `user_data` inside it.

use sigil_attestation::cose::CoseSign1;
use sigil_attestation::{AttestationDocument, Policy, decode_input, verify};
use sigil_protocol::user_data::ImageInfo;

pub fn run(data: &[u8]) {
    let Ok(raw) = decode_input(data) else {
        // What a client would show as "not a document"; the user_data parser still gets the
        // bytes, since it reads a CBOR map too.
        let _ = ImageInfo::from_cbor(data);
        return;
    };
    let Ok(cose) = CoseSign1::parse(&raw) else {
        return;
    };
    let Ok(doc) = AttestationDocument::from_cbor(cose.payload) else {
        return;
    };
    // The canonical encoding of what was accepted must parse back to the same document.
    let again = AttestationDocument::from_cbor(&doc.to_cbor());
    assert_eq!(
        again.as_ref(),
        Ok(&doc),
        "document does not survive re-encoding"
    );
    if let Some(user_data) = &doc.user_data
        && let Ok(info) = ImageInfo::from_cbor(user_data)
    {
        assert_eq!(ImageInfo::from_cbor(&info.to_cbor()).as_ref(), Ok(&info));
    }
    // Verified at the document's own time, with the test root and debug documents allowed,
    // so that well-formed inputs reach the chain and the signature checks.
    let mut policy = Policy::at(doc.timestamp_ms / 1000);
    policy.trust_test_root = true;
    policy.allow_debug = true;
    if let Ok(v) = verify(&raw, &policy) {
        assert_eq!(v.document, doc);
        let json: serde_json::Value =
            serde_json::from_str(&v.to_json()).expect("Verified::to_json is not JSON");
        assert!(json.is_object());
    }
}
