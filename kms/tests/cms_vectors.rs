//! CMS CiphertextForRecipient: real KMS samples (parse only), the synthetic OpenSSL sample
//! (decrypts), build round trip, and strictness on damaged input.

use sigil_kms::cms::{self, CmsError};
use sigil_kms::recipient::RecipientKey;
use std::fs;

const KMS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/vectors/kms");

fn vec(rel: &str) -> Vec<u8> {
    fs::read(format!("{KMS}/{rel}")).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn synthetic_key() -> RecipientKey {
    let pem = fs::read_to_string(format!("{KMS}/synthetic/recipient_rsa2048_key.pem")).unwrap();
    RecipientKey::from_pkcs8_pem(&pem).unwrap()
}

/// Parses the real KMS sample `cms/input_ber{suffix}.bin` and checks its parts against the
/// `cms/*_out{suffix}.bin` files.
fn parse_real_kms_sample(suffix: &str) -> cms::EnvelopedData {
    let env = cms::parse(&vec(&format!("cms/input_ber{suffix}.bin"))).unwrap();
    let part = |name: &str| vec(&format!("cms/{name}_out{suffix}.bin"));
    assert_eq!(env.encrypted_key, part("encrypted_key"));
    assert_eq!(env.iv.to_vec(), part("iv"));
    assert_eq!(env.ciphertext, part("ciphertext"));
    env
}

#[test]
fn real_kms_sample_constructed_content() {
    let env = parse_real_kms_sample("");
    assert_eq!(env.rid.len(), 32);
}

#[test]
fn real_kms_sample_primitive_content() {
    parse_real_kms_sample("_w_ctx");
}

#[test]
fn synthetic_sample_decrypts() {
    let key = synthetic_key();
    assert_eq!(key.spki_der(), vec("synthetic/recipient_rsa2048_spki.der"));
    let env = cms::parse(&vec("synthetic/ciphertext_for_recipient.ber")).unwrap();
    assert_eq!(env.rid.len(), 20);
    assert_eq!(hex::encode(env.iv), "5a97eecbc39e8ba2122db71d99a501fe");
    let pt = cms::decrypt(&env, &key).unwrap();
    assert_eq!(&pt[..], &vec("synthetic/plaintext_datakey.bin")[..]);
}

#[test]
fn build_parse_decrypt_round_trip_and_wrong_key() {
    let key = synthetic_key();
    let rid = [7u8; 32];
    for pt in [
        &b""[..],
        b"0123456789abcdef0123456789abcdef",
        &[0x5au8; 3000][..],
    ] {
        let ber = cms::build(pt, &key.spki_der(), &rid).unwrap();
        let env = cms::parse(&ber).unwrap();
        assert_eq!(env.rid, rid);
        assert_eq!(&cms::decrypt(&env, &key).unwrap()[..], pt);
    }

    // A different key (fresh RSA-2048, the production path) must fail cleanly.
    let other = RecipientKey::generate().unwrap();
    assert_eq!(other.modulus_len(), 256);
    let ber = cms::build(b"secret data key", &key.spki_der(), &rid).unwrap();
    let env = cms::parse(&ber).unwrap();
    assert_eq!(cms::decrypt(&env, &other), Err(CmsError::DecryptFailed));
    // And the fresh key works for envelopes made to it.
    let ber = cms::build(b"secret data key", &other.spki_der(), &rid).unwrap();
    assert_eq!(
        &cms::decrypt(&cms::parse(&ber).unwrap(), &other).unwrap()[..],
        b"secret data key"
    );
}

#[test]
fn tampered_ciphertext_or_key_fails_cleanly() {
    let key = synthetic_key();
    let env = cms::parse(&vec("synthetic/ciphertext_for_recipient.ber")).unwrap();

    let mut bad = env.clone();
    bad.encrypted_key[100] ^= 1;
    assert_eq!(cms::decrypt(&bad, &key), Err(CmsError::DecryptFailed));

    // Flipping the last block breaks the PKCS#7 padding (CBC gives no other integrity).
    let mut bad = env.clone();
    let n = bad.ciphertext.len();
    bad.ciphertext[n - 1] ^= 0x80;
    assert_eq!(cms::decrypt(&bad, &key), Err(CmsError::DecryptFailed));

    let mut bad = env.clone();
    bad.encrypted_key.truncate(255);
    assert_eq!(cms::decrypt(&bad, &key), Err(CmsError::DecryptFailed));

    let mut bad = env;
    bad.ciphertext.truncate(47);
    assert!(matches!(
        cms::decrypt(&bad, &key),
        Err(CmsError::BadFieldLength(_))
    ));
}

/// Replaces the first occurrence of `from` with `to` (same length).
fn patch(data: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let i = data
        .windows(from.len())
        .position(|w| w == from)
        .expect("pattern present");
    let mut out = data.to_vec();
    out[i..i + from.len()].copy_from_slice(to);
    out
}

#[test]
fn strict_parsing_rejects_damaged_input() {
    let good = vec("cms/input_ber.bin");

    // Every truncation fails, and never panics.
    for n in 0..good.len() {
        assert!(cms::parse(&good[..n]).is_err(), "truncated at {n}");
    }

    let mut trailing = good.clone();
    trailing.push(0);
    assert_eq!(
        cms::parse(&trailing),
        Err(CmsError::TrailingData("ContentInfo"))
    );

    // One OID swapped for another: (OID, replacement, the field that reports it).
    for (oid, other, field) in [
        // envelopedData -> signedData (1.2.840.113549.1.7.2).
        (
            [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03],
            [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02],
            "ContentInfo.contentType",
        ),
        // aes256-CBC -> aes128-CBC (2.16.840.1.101.3.4.1.2).
        (
            [0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2a],
            [0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x02],
            "contentEncryptionAlgorithm",
        ),
        // OAEP hash sha256 -> sha384 (first occurrence: hashAlgorithm).
        (
            [0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01],
            [0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02],
            "hashAlgorithm",
        ),
    ] {
        assert_eq!(
            cms::parse(&patch(&good, &oid, &other)),
            Err(CmsError::WrongOid(field)),
            "{field}"
        );
    }

    // A version 2 -> 0, at the offset of its `02 01 02`: EnvelopedData's, then the KTRI's
    // (issuerAndSerialNumber form, as LocalStack sends).
    for (at, field) in [
        (17, "EnvelopedData.version"),
        (28, "KeyTransRecipientInfo.version"),
    ] {
        let mut v = good.clone();
        assert_eq!(&v[at..at + 3], &[0x02, 0x01, 0x02]);
        v[at + 2] = 0;
        assert_eq!(cms::parse(&v), Err(CmsError::WrongVersion(field)));
    }

    // IV length 16 -> 15 breaks the structure below it.
    let mut v = good.clone();
    assert_eq!(&v[413..415], &[0x04, 0x10]);
    v[414] = 0x0f;
    assert!(cms::parse(&v).is_err());

    // Definite length running past the end of the input.
    let mut v = good.clone();
    v[21] = 0x82;
    v[22] = 0xff;
    assert!(cms::parse(&v).is_err());

    // Too big, and deeply nested indefinite SEQUENCEs: clean errors, no stack overflow.
    assert_eq!(
        cms::parse(&vec![0x30; cms::MAX_CMS_LEN + 1]),
        Err(CmsError::TooLarge)
    );
    let mut deep = Vec::new();
    for _ in 0..10_000 {
        deep.extend_from_slice(&[0x30, 0x80]);
    }
    assert_eq!(cms::parse(&deep), Err(CmsError::TooDeep));
    assert!(cms::parse(&[]).is_err());
    assert!(cms::parse(&[0x30, 0x80, 0x00]).is_err());
}

#[test]
fn build_rejects_bad_inputs() {
    let spki = vec("synthetic/recipient_rsa2048_spki.der");
    assert_eq!(
        cms::build(&[0; cms::MAX_PLAINTEXT + 1], &spki, &[1]),
        Err(CmsError::TooLarge)
    );
    assert_eq!(
        cms::build(b"x", &spki[..100], &[1]),
        Err(CmsError::BadRecipientKey)
    );
    assert!(cms::build(b"x", &spki, &[]).is_err());
}

#[test]
fn recipient_key_inputs_are_checked() {
    assert!(RecipientKey::from_pkcs8_pem("not a key").is_err());
    assert!(RecipientKey::from_pkcs8_der(&[0x30, 0x00]).is_err());
    let dbg = format!("{:?}", synthetic_key());
    assert!(dbg.contains("spki") && !dbg.to_lowercase().contains("private"));
}
