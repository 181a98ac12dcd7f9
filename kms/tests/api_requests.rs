//! KMS request building and response parsing. The signature is checked against an independent
//! computation written out by hand here from the SigV4 algorithm (not via the crate's
//! canonicalization code).

use ring::{digest, hmac};
use sigil_kms::api::{
    self, DecryptResponse, GenerateDataKeyRequest, GenerateRandomResponse, KeySpec, KmsApiError,
    Operation, RecipientInfo,
};
use sigil_kms::sigv4::{Credentials, SigningTime};
use std::collections::BTreeMap;

fn creds() -> Credentials {
    Credentials {
        access_key_id: "AKIDEXAMPLE".into(),
        secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
        session_token: Some("TOKEN123".into()),
    }
}

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data.as_bytes())
        .as_ref()
        .to_vec()
}

#[test]
fn generate_data_key_request_matches_hand_computed_signature() {
    let body = serde_json::to_vec(&GenerateDataKeyRequest {
        key_id: "alias/sigil".into(),
        key_spec: Some(KeySpec::Aes256),
        number_of_bytes: None,
        encryption_context: Some(BTreeMap::from([(
            "purpose".to_string(),
            "test".to_string(),
        )])),
        recipient: Some(RecipientInfo::new(vec![0xd2, 0x84, 0x44])),
    })
    .unwrap();
    assert_eq!(
        std::str::from_utf8(&body).unwrap(),
        r#"{"KeyId":"alias/sigil","KeySpec":"AES_256","EncryptionContext":{"purpose":"test"},"Recipient":{"AttestationDocument":"0oRE","KeyEncryptionAlgorithm":"RSAES_OAEP_SHA_256"}}"#
    );

    let time = SigningTime::from_unix(1_700_000_000).unwrap(); // 2023-11-14T22:13:20Z
    let req = api::request(
        Operation::GenerateDataKey,
        body.clone(),
        "eu-west-1",
        &creds(),
        time.clone(),
    )
    .unwrap();
    let again = api::request(
        Operation::GenerateDataKey,
        body.clone(),
        "eu-west-1",
        &creds(),
        time,
    )
    .unwrap();
    assert_eq!(req, again, "signing must be deterministic for a fixed time");
    assert_eq!(req.method, "POST");
    assert_eq!(req.path, "/");
    assert_eq!(req.header("host"), Some("kms.eu-west-1.amazonaws.com"));
    assert_eq!(
        req.header("x-amz-target"),
        Some("TrentService.GenerateDataKey")
    );

    // By hand, following the AWS SigV4 steps.
    let body_hash = hex::encode(digest::digest(&digest::SHA256, &body));
    let creq = format!(
        "POST\n/\n\ncontent-type:application/x-amz-json-1.1\nhost:kms.eu-west-1.amazonaws.com\n\
         x-amz-date:20231114T221320Z\nx-amz-security-token:TOKEN123\nx-amz-target:TrentService.GenerateDataKey\n\n\
         content-type;host;x-amz-date;x-amz-security-token;x-amz-target\n{body_hash}"
    );
    let sts = format!(
        "AWS4-HMAC-SHA256\n20231114T221320Z\n20231114/eu-west-1/kms/aws4_request\n{}",
        hex::encode(digest::digest(&digest::SHA256, creq.as_bytes()))
    );
    let k = hmac(b"AWS4wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20231114");
    let k = hmac(&k, "eu-west-1");
    let k = hmac(&k, "kms");
    let k = hmac(&k, "aws4_request");
    let sig = hex::encode(hmac(&k, &sts));
    let expected = format!(
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20231114/eu-west-1/kms/aws4_request, \
         SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target, Signature={sig}"
    );
    assert_eq!(req.header("authorization"), Some(expected.as_str()));
    assert_eq!(req.header("x-amz-security-token"), Some("TOKEN123"));
}

#[test]
fn bad_region_is_refused() {
    let t = SigningTime::from_unix(1_700_000_000).unwrap();
    for region in ["evil.example/x", "", "EU-WEST-1", "a\r\nb"] {
        assert!(
            api::request(
                Operation::Decrypt,
                b"{}".to_vec(),
                region,
                &creds(),
                t.clone()
            )
            .is_err(),
            "{region:?}"
        );
    }
}

#[test]
fn responses_and_errors() {
    let ok = br#"{"KeyId":"arn:aws:kms:eu-west-1:111122223333:key/x","CiphertextForRecipient":"MIAGCQ==","EncryptionAlgorithm":"SYMMETRIC_DEFAULT"}"#;
    let r: DecryptResponse = api::parse_response(200, ok).unwrap();
    assert_eq!(
        api::recipient_ciphertext(&r).unwrap(),
        &[0x30, 0x80, 0x06, 0x09]
    );

    // A Recipient call answered with Plaintext must be refused.
    let leak = br#"{"Plaintext":"AAEC","CiphertextForRecipient":"MIAGCQ=="}"#;
    let r: GenerateRandomResponse = api::parse_response(200, leak).unwrap();
    assert_eq!(
        api::recipient_ciphertext(&r),
        Err(KmsApiError::UnexpectedPlaintext)
    );
    let r: GenerateRandomResponse = api::parse_response(200, b"{}").unwrap();
    assert_eq!(
        api::recipient_ciphertext(&r),
        Err(KmsApiError::MissingCiphertextForRecipient)
    );

    let gdk = br#"{"CiphertextBlob":"AQID","KeyId":"k","CiphertextForRecipient":"MIAGCQ=="}"#;
    let r: api::GenerateDataKeyResponse = api::parse_response(200, gdk).unwrap();
    assert_eq!(r.ciphertext_blob, vec![1, 2, 3]);
    assert!(r.plaintext.is_none());

    for body in [
        &br#"{"__type":"com.amazonaws.kms#NotFoundException","message":"Key not found"}"#[..],
        br#"{"__type":"NotFoundException","Message":"Key not found"}"#,
    ] {
        let e = api::parse_response::<DecryptResponse>(400, body).unwrap_err();
        assert_eq!(
            e,
            KmsApiError::Service {
                status: 400,
                code: "NotFoundException".into(),
                message: "Key not found".into()
            }
        );
    }

    assert!(matches!(
        api::parse_response::<DecryptResponse>(200, b"{\"Plaintext\":\"!!\"}"),
        Err(KmsApiError::Malformed(_))
    ));
    assert!(matches!(
        api::parse_response::<DecryptResponse>(500, b"<html>"),
        Err(KmsApiError::Malformed(_))
    ));
    assert_eq!(
        api::parse_response::<DecryptResponse>(200, &vec![b' '; api::MAX_RESPONSE + 1])
            .unwrap_err(),
        KmsApiError::TooLarge
    );
}
