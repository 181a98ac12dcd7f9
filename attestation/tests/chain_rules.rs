//! Chain-rule vectors shared with the TypeScript SDK: `sdk/ts/test/vectors/chain-rules.json`.
//!
//! Each vector is a document under the sigil test root whose chain breaks exactly one X.509
//! rule of the path validation (everything else valid and correctly signed), plus controls
//! that must be accepted. This test asserts that the Rust verifier refuses each with the
//! expected check and detail; `sdk/ts/test/chain-rules.test.ts` asserts the same of the
//! TypeScript verifier, so a regression in either language's chain checks fails a test.
//!
//! The file is made again in memory from fixed inputs and must equal the committed one, so it
//! cannot fall behind the code; with `SIGIL_WRITE_TS_VECTORS=1` this test writes it instead.
//! Keys come from fixed seeds and ECDSA nonces from a fixed random source (ring's
//! deterministic test RNG: the nonce is then a hash of the key, that source and the message),
//! so every certificate and signature is the same on every run.
#![cfg(feature = "simulator")]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType, IsCa, Issuer,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384, PublicKeyData,
    SignatureAlgorithm, SigningKey, date_time_ymd,
};
use ring::rand::SecureRandom;
use ring::signature::{
    ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P384_SHA384_ASN1_SIGNING,
    ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair, EcdsaSigningAlgorithm, KeyPair as _,
};
use serde_json::{Value, json};
use sigil_attestation::chain::SIGIL_TEST_ROOT_DER;
use sigil_attestation::simulator::TEST_ROOT_KEY_PKCS8;
use sigil_attestation::{AttestationDocument, Policy, cose, verify};

const WRITE_ENV: &str = "SIGIL_WRITE_TS_VECTORS";

/// 2030-01-01T00:00:00Z, the verification time of every vector unless it says otherwise.
/// Certificates are valid 2029-01-01..2031-01-01 unless the rule under test is a time.
const AT: u64 = 1_893_456_000;
/// 2031-01-01T00:00:00Z: the control chain's last valid second.
const LAST_VALID: u64 = 1_924_992_000;

fn vectors_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../sdk/ts/test/vectors/chain-rules.json")
}

/// A fixed random source: every byte it gives is `byte`.
#[allow(deprecated)] // ring's deterministic RNG for tests; no other dependency offers one here
fn fixed_rng(byte: u8) -> Box<dyn SecureRandom> {
    Box::new(ring::test::rand::FixedByteRandom { byte })
}

/// Fills the ECDSA nonces (mixed with the key and the message by ring).
const NONCE_BYTE: u8 = 0x5a;

/// An ECDSA key with a fixed seed, usable by rcgen as a subject key and as a signer. `claim` is
/// the algorithm rcgen writes for it (in the SPKI of the certificate that carries it, and as
/// the signature algorithm of the certificates it signs); only the "wrong signature
/// algorithm" vector claims one the key does not sign with.
struct Key {
    pkcs8: Vec<u8>,
    signer: EcdsaKeyPair,
    claim: &'static SignatureAlgorithm,
}

impl Key {
    fn from_pkcs8(
        pkcs8: &[u8],
        alg: &'static EcdsaSigningAlgorithm,
        claim: &'static SignatureAlgorithm,
    ) -> Key {
        let signer = EcdsaKeyPair::from_pkcs8(alg, pkcs8, &*fixed_rng(NONCE_BYTE)).unwrap();
        Key {
            pkcs8: pkcs8.to_vec(),
            signer,
            claim,
        }
    }

    /// A P-384 key whose private scalar is 48 bytes of `seed`.
    fn p384(seed: u8) -> Key {
        let alg = &ECDSA_P384_SHA384_ASN1_SIGNING;
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &*fixed_rng(seed)).unwrap();
        Key::from_pkcs8(pkcs8.as_ref(), alg, &PKCS_ECDSA_P384_SHA384)
    }

    /// A P-256 key whose private scalar is 32 bytes of `seed`.
    fn p256(seed: u8) -> Key {
        let alg = &ECDSA_P256_SHA256_ASN1_SIGNING;
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &*fixed_rng(seed)).unwrap();
        Key::from_pkcs8(pkcs8.as_ref(), alg, &PKCS_ECDSA_P256_SHA256)
    }

    fn root() -> Key {
        Key::from_pkcs8(
            TEST_ROOT_KEY_PKCS8,
            &ECDSA_P384_SHA384_ASN1_SIGNING,
            &PKCS_ECDSA_P384_SHA384,
        )
    }

    /// The same P-384 key, claiming ecdsa-with-SHA256 for what it signs (it still signs
    /// with SHA-384).
    fn claiming_sha256(&self) -> Key {
        Key::from_pkcs8(
            &self.pkcs8,
            &ECDSA_P384_SHA384_ASN1_SIGNING,
            &PKCS_ECDSA_P256_SHA256,
        )
    }

    /// A DER ECDSA signature (SHA-384) over `msg`.
    fn sign_der(&self, msg: &[u8]) -> Vec<u8> {
        self.signer
            .sign(&*fixed_rng(NONCE_BYTE), msg)
            .unwrap()
            .as_ref()
            .to_vec()
    }

    /// The document's ES384 signer, when this is a P-384 key.
    fn cose_signer(&self) -> Option<EcdsaKeyPair> {
        EcdsaKeyPair::from_pkcs8(
            &ECDSA_P384_SHA384_FIXED_SIGNING,
            &self.pkcs8,
            &*fixed_rng(NONCE_BYTE),
        )
        .ok()
    }
}

impl PublicKeyData for Key {
    fn der_bytes(&self) -> &[u8] {
        self.signer.public_key().as_ref()
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.claim
    }
}

impl SigningKey for Key {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        self.signer
            .sign(&*fixed_rng(NONCE_BYTE), msg)
            .map(|s| s.as_ref().to_vec())
            .map_err(|_| rcgen::Error::RingUnspecified)
    }
}

fn root() -> Issuer<'static, Key> {
    Issuer::from_ca_cert_der(&SIGIL_TEST_ROOT_DER.into(), Key::root()).unwrap()
}

fn dn(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn.push(DnType::OrganizationName, "sigil chain rules");
    dn
}

fn ca(cn: &str, path_len: Option<u8>) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name = dn(cn);
    p.not_before = date_time_ymd(2029, 1, 1);
    p.not_after = date_time_ymd(2031, 1, 1);
    p.is_ca = IsCa::Ca(match path_len {
        Some(n) => BasicConstraints::Constrained(n),
        None => BasicConstraints::Unconstrained,
    });
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p
}

fn leaf() -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name = dn("leaf");
    p.not_before = date_time_ymd(2029, 1, 1);
    p.not_after = date_time_ymd(2031, 1, 1);
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p
}

/// An extension with a hand-encoded value.
fn extension(oid: &[u64], critical: bool, value: &[u8]) -> CustomExtension {
    let mut ext = CustomExtension::from_oid_content(oid, value.to_vec());
    ext.set_criticality(critical);
    ext
}

const OID_BASIC_CONSTRAINTS: &[u64] = &[2, 5, 29, 19];
const OID_KEY_USAGE: &[u64] = &[2, 5, 29, 15];
/// A private-enterprise OID no verifier knows.
const OID_UNKNOWN: &[u64] = &[1, 3, 6, 1, 4, 1, 55555, 1];

/// Issues `params` for `key`: (DER, an issuer for it).
fn issue(
    params: CertificateParams,
    key: Key,
    by: &Issuer<'_, Key>,
) -> (Vec<u8>, Issuer<'static, Key>) {
    let der = params.signed_by(&key, by).unwrap().der().to_vec();
    (der, Issuer::new(params, key))
}

fn cert(params: &CertificateParams, key: &Key, by: &Issuer<'_, Key>) -> Vec<u8> {
    params.signed_by(key, by).unwrap().der().to_vec()
}

/// A document carrying `leaf_der` and `cabundle`, signed by `leaf_key` (a dummy signature when
/// the key is not P-384: such a document fails in the chain, before its signature is read).
fn document(leaf_der: Vec<u8>, leaf_key: &Key, cabundle: Vec<Vec<u8>>) -> Vec<u8> {
    let doc = AttestationDocument {
        module_id: "i-chain-rules".into(),
        timestamp_ms: AT * 1000,
        digest: "SHA384".into(),
        pcrs: (0u8..4)
            .map(|i| (i, vec![i + 1; 48]))
            .collect::<BTreeMap<_, _>>(),
        certificate: leaf_der,
        cabundle,
        public_key: None,
        user_data: None,
        nonce: None,
    };
    let payload = doc.to_cbor();
    match leaf_key.cose_signer() {
        Some(signer) => cose::sign_es384(&signer, &*fixed_rng(NONCE_BYTE), &payload).unwrap(),
        None => cose::encode_sign1(&cose::PROTECTED_ES384, &payload, &[0; 96]),
    }
}

/// Fixed seeds, one per role.
const INTER: u8 = 0x11;
const INTER_2: u8 = 0x12;
const OTHER: u8 = 0x13;
const LEAF: u8 = 0x21;

/// root ← intermediate(`inter`) ← leaf(`leaf_params`): the shape of the simulator's chains.
fn two_level(inter: CertificateParams, leaf_params: CertificateParams) -> Vec<u8> {
    let (inter_der, inter_issuer) = issue(inter, Key::p384(INTER), &root());
    let leaf_key = Key::p384(LEAF);
    let leaf_der = cert(&leaf_params, &leaf_key, &inter_issuer);
    document(
        leaf_der,
        &leaf_key,
        vec![SIGIL_TEST_ROOT_DER.to_vec(), inter_der],
    )
}

fn control() -> Vec<u8> {
    two_level(ca("inter", Some(0)), leaf())
}

// ----- minimal DER surgery (for the one certificate rcgen cannot write: X.509 v1) -----

/// The elements of a DER SEQUENCE's contents, each with its header.
fn der_elements(mut content: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while !content.is_empty() {
        let (header, len) = der_header(content);
        let (elem, rest) = content.split_at(header + len);
        out.push(elem);
        content = rest;
    }
    out
}

/// (header length, content length) of the element at the start of `b`.
fn der_header(b: &[u8]) -> (usize, usize) {
    let first = usize::from(b[1]);
    if first < 0x80 {
        return (2, first);
    }
    let n = first & 0x7f;
    let len = b[2..2 + n]
        .iter()
        .fold(0usize, |a, &x| (a << 8) | usize::from(x));
    (2 + n, len)
}

fn der_tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|&b| b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

/// `der` re-issued as X.509 v1: the same fields without the version and the extensions,
/// signed again by `by`.
fn as_v1(der: &[u8], by: &Key) -> Vec<u8> {
    let (h, _) = der_header(der);
    let [tbs, alg, _sig] = der_elements(&der[h..])[..] else {
        panic!("not a certificate")
    };
    let (th, _) = der_header(tbs);
    let fields: Vec<u8> = der_elements(&tbs[th..])
        .into_iter()
        .filter(|e| e[0] != 0xa0 && e[0] != 0xa3)
        .flatten()
        .copied()
        .collect();
    let tbs = der_tlv(0x30, &fields);
    let mut bits = vec![0u8];
    bits.extend(by.sign_der(&tbs));
    der_tlv(0x30, &[tbs, alg.to_vec(), der_tlv(0x03, &bits)].concat())
}

// ----- the vectors -----

struct Vector {
    name: &'static str,
    rule: &'static str,
    document: Vec<u8>,
    at: u64,
    /// `None`: accepted. Otherwise the Rust check and a substring of its detail, then the
    /// TypeScript check and a substring of its message.
    refused: Option<[&'static str; 4]>,
}

fn refused(
    name: &'static str,
    rule: &'static str,
    document: Vec<u8>,
    expect: [&'static str; 4],
) -> Vector {
    Vector {
        name,
        rule,
        document,
        at: AT,
        refused: Some(expect),
    }
}

fn vectors() -> Vec<Vector> {
    let mut out = vec![
        Vector {
            name: "control",
            rule: "valid two-level chain (root, intermediate with pathLen 0, leaf)",
            document: control(),
            at: AT,
            refused: None,
        },
        Vector {
            name: "control_at_last_valid_second",
            rule: "valid chain verified at its certificates' notAfter (inclusive)",
            document: control(),
            at: LAST_VALID,
            refused: None,
        },
        Vector {
            name: "leaf_under_root",
            rule: "valid chain without intermediate (leaf issued by the root)",
            document: {
                let key = Key::p384(LEAF);
                let der = cert(&leaf(), &key, &root());
                document(der, &key, vec![SIGIL_TEST_ROOT_DER.to_vec()])
            },
            at: AT,
            refused: None,
        },
    ];

    // --- leaf role ---
    let mut p = leaf();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    out.push(refused(
        "leaf_is_ca",
        "leaf with BasicConstraints cA=true",
        two_level(ca("inter", Some(0)), p),
        [
            "chain",
            "certificate 0 (CN=leaf) is the leaf and must not be a CA",
            "chain",
            "certificate 0 is the leaf and must not be a CA",
        ],
    ));

    // cA absent (FALSE) but pathLenConstraint 0: SEQUENCE { INTEGER 0 }.
    let mut p = leaf();
    p.is_ca = IsCa::NoCa;
    p.custom_extensions.push(extension(
        OID_BASIC_CONSTRAINTS,
        true,
        &[0x30, 0x03, 0x02, 0x01, 0x00],
    ));
    out.push(refused(
        "leaf_with_path_len",
        "leaf with cA=false and a pathLenConstraint",
        two_level(ca("inter", Some(0)), p),
        [
            "chain",
            "certificate 0 (CN=leaf) is the leaf and must not be a CA or carry a pathLenConstraint",
            "chain",
            "certificate 0 is the leaf and must not be a CA or carry a pathLenConstraint",
        ],
    ));

    let mut p = leaf();
    p.key_usages = vec![KeyUsagePurpose::KeyAgreement];
    out.push(refused(
        "leaf_key_usage_without_digital_signature",
        "leaf whose KeyUsage lacks digitalSignature",
        two_level(ca("inter", Some(0)), p),
        [
            "chain",
            "certificate 0 (CN=leaf) is the leaf but its KeyUsage lacks digitalSignature",
            "chain",
            "certificate 0 is the leaf but its KeyUsage lacks digitalSignature",
        ],
    ));

    // --- CA role ---
    let mut p = ca("inter", Some(0));
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::CrlSign];
    out.push(refused(
        "ca_without_key_cert_sign",
        "CA whose KeyUsage lacks keyCertSign",
        two_level(p, leaf()),
        [
            "chain",
            "certificate 1 (CN=inter) is a CA but its KeyUsage lacks keyCertSign",
            "chain",
            "certificate 1 is a CA but its KeyUsage lacks keyCertSign",
        ],
    ));

    let mut p = ca("inter", Some(0));
    p.key_usages = vec![];
    out.push(refused(
        "ca_without_key_usage",
        "CA without KeyUsage",
        two_level(p, leaf()),
        [
            "chain",
            "certificate 1 (CN=inter) is a CA without KeyUsage",
            "chain",
            "certificate 1 is a CA without KeyUsage",
        ],
    ));

    // cA=TRUE, pathLen 0, not critical: SEQUENCE { BOOLEAN TRUE, INTEGER 0 }.
    let mut p = ca("inter", None);
    p.is_ca = IsCa::NoCa;
    p.custom_extensions.push(extension(
        OID_BASIC_CONSTRAINTS,
        false,
        &[0x30, 0x06, 0x01, 0x01, 0xff, 0x02, 0x01, 0x00],
    ));
    out.push(refused(
        "ca_basic_constraints_not_critical",
        "CA whose BasicConstraints is not critical",
        two_level(p, leaf()),
        [
            "chain",
            "certificate 1 (CN=inter) is a CA but its BasicConstraints is not critical",
            "chain",
            "certificate 1 is a CA but its BasicConstraints is not critical",
        ],
    ));

    let mut p = ca("inter", None);
    p.is_ca = IsCa::NoCa;
    out.push(refused(
        "ca_without_basic_constraints",
        "CA without BasicConstraints",
        two_level(p, leaf()),
        [
            "chain",
            "certificate 1 (CN=inter) issues a certificate but has no BasicConstraints",
            "chain",
            "certificate 1 issues a certificate but has no BasicConstraints",
        ],
    ));

    let mut p = ca("inter", None);
    p.is_ca = IsCa::ExplicitNoCa;
    out.push(refused(
        "ca_basic_constraints_ca_false",
        "issuing certificate whose BasicConstraints says cA=false",
        two_level(p, leaf()),
        [
            "chain",
            "certificate 1 (CN=inter) issues a certificate but BasicConstraints says cA=false",
            "chain",
            "certificate 1 issues a certificate but BasicConstraints says cA=false",
        ],
    ));

    // root ← inter 1 (pathLen 0) ← inter 2 ← leaf: one CA below inter 1.
    let (i1, i1_issuer) = issue(ca("inter 1", Some(0)), Key::p384(INTER), &root());
    let (i2, i2_issuer) = issue(ca("inter 2", Some(0)), Key::p384(INTER_2), &i1_issuer);
    let leaf_key = Key::p384(LEAF);
    let leaf_der = cert(&leaf(), &leaf_key, &i2_issuer);
    out.push(refused(
        "path_len_exceeded",
        "pathLenConstraint 0 with an intermediate CA below",
        document(
            leaf_der,
            &leaf_key,
            vec![SIGIL_TEST_ROOT_DER.to_vec(), i1, i2],
        ),
        [
            "chain",
            "certificate 2 (CN=inter 1) has pathLenConstraint 0 but 1 intermediate CAs below it",
            "chain",
            "certificate 2 has pathLenConstraint 0 but 1 intermediate CAs below it",
        ],
    ));

    // pathLenConstraint is a non-negative INTEGER: -1 must not read as a large limit.
    let mut p = ca("inter", None);
    p.is_ca = IsCa::NoCa;
    p.custom_extensions.push(extension(
        OID_BASIC_CONSTRAINTS,
        true,
        &[0x30, 0x06, 0x01, 0x01, 0xff, 0x02, 0x01, 0xff],
    ));
    out.push(refused(
        "ca_path_len_negative",
        "CA whose pathLenConstraint is negative (-1)",
        two_level(p, leaf()),
        [
            "chain",
            "certificate 1 (CN=inter) has a malformed extension 2.5.29.19",
            "chain",
            "certificate 1 has a malformed extension BasicConstraints",
        ],
    ));

    // A large pathLenConstraint (65536, three content bytes) is well-formed.
    let mut p = ca("inter", None);
    p.is_ca = IsCa::NoCa;
    p.custom_extensions.push(extension(
        OID_BASIC_CONSTRAINTS,
        true,
        &[0x30, 0x08, 0x01, 0x01, 0xff, 0x02, 0x03, 0x01, 0x00, 0x00],
    ));
    out.push(Vector {
        name: "ca_path_len_large",
        rule: "CA with pathLenConstraint 65536 (accepted)",
        document: two_level(p, leaf()),
        at: AT,
        refused: None,
    });

    // --- extensions ---
    // A second, identical KeyUsage (critical, digitalSignature).
    let mut p = leaf();
    p.custom_extensions
        .push(extension(OID_KEY_USAGE, true, &[0x03, 0x02, 0x07, 0x80]));
    out.push(refused(
        "duplicate_extension",
        "leaf with two identical KeyUsage extensions",
        two_level(ca("inter", Some(0)), p),
        [
            "chain",
            "certificate 0 (CN=leaf) has a duplicate extension 2.5.29.15",
            "chain",
            "certificate 0 has a duplicate extension",
        ],
    ));

    let mut p = leaf();
    p.custom_extensions
        .push(extension(OID_UNKNOWN, true, &[0x05, 0x00]));
    out.push(refused(
        "unknown_critical_extension",
        "leaf with a critical extension the verifier does not understand",
        two_level(ca("inter", Some(0)), p),
        [
            "chain",
            "certificate 0 (CN=leaf) has an unsupported critical extension 1.3.6.1.4.1.55555.1",
            "chain",
            "certificate 0 has an unsupported critical extension",
        ],
    ));

    let mut p = ca("inter", Some(0));
    p.custom_extensions
        .push(extension(OID_UNKNOWN, true, &[0x05, 0x00]));
    out.push(refused(
        "ca_unknown_critical_extension",
        "CA with a critical extension the verifier does not understand",
        two_level(p, leaf()),
        [
            "chain",
            "certificate 1 (CN=inter) has an unsupported critical extension 1.3.6.1.4.1.55555.1",
            "chain",
            "certificate 1 has an unsupported critical extension",
        ],
    ));

    // --- cabundle order ---
    let (inter, inter_issuer) = issue(ca("inter", Some(0)), Key::p384(INTER), &root());
    let leaf_der = cert(&leaf(), &leaf_key, &inter_issuer);
    out.push(refused(
        "cabundle_root_last",
        "cabundle in leaf-to-root order (the root must be cabundle[0])",
        document(
            leaf_der,
            &leaf_key,
            vec![inter, SIGIL_TEST_ROOT_DER.to_vec()],
        ),
        [
            "root",
            "is not the pinned AWS Nitro Enclaves Root-G1",
            "root",
            "is not the pinned AWS Nitro Enclaves Root-G1",
        ],
    ));

    let (i1, i1_issuer) = issue(ca("inter 1", Some(1)), Key::p384(INTER), &root());
    let (i2, i2_issuer) = issue(ca("inter 2", Some(0)), Key::p384(INTER_2), &i1_issuer);
    let leaf_der = cert(&leaf(), &leaf_key, &i2_issuer);
    out.push(refused(
        "cabundle_intermediates_swapped",
        "root first but the two intermediates in the wrong order",
        document(
            leaf_der,
            &leaf_key,
            vec![SIGIL_TEST_ROOT_DER.to_vec(), i2, i1],
        ),
        [
            "chain",
            "certificate 0 (CN=leaf) issuer \"CN=inter 2, O=sigil chain rules\" does not match \
             the subject of the next certificate \"CN=inter 1, O=sigil chain rules\"",
            "chain",
            "certificate 0 issuer does not match the subject of certificate 1",
        ],
    ));

    // --- algorithms and format ---
    let (inter, inter_issuer) = issue(ca("inter", Some(0)), Key::p384(INTER), &root());
    let v1 = as_v1(&cert(&leaf(), &leaf_key, &inter_issuer), &Key::p384(INTER));
    out.push(refused(
        "x509_v1_leaf",
        "X.509 v1 leaf (no version field, no extensions)",
        document(v1, &leaf_key, vec![SIGIL_TEST_ROOT_DER.to_vec(), inter]),
        [
            "chain",
            "certificate 0 (CN=leaf) is X.509 version 1, expected 3",
            "chain",
            "certificate 0 is X.509 version 1, expected 3",
        ],
    ));

    let p256 = Key::p256(LEAF);
    let (inter, inter_issuer) = issue(ca("inter", Some(0)), Key::p384(INTER), &root());
    let leaf_der = cert(&leaf(), &p256, &inter_issuer);
    out.push(refused(
        "leaf_p256_key",
        "leaf whose public key is on P-256",
        document(leaf_der, &p256, vec![SIGIL_TEST_ROOT_DER.to_vec(), inter]),
        [
            "chain",
            "certificate 0 (CN=leaf) public key is not an EC P-384 key",
            "chain",
            "certificate 0 public key is not an EC P-384 key",
        ],
    ));

    // The intermediate's key signs the leaf with SHA-384 as always, but the leaf's signature
    // algorithm (TBS and outer) says ecdsa-with-SHA256: only the declared algorithm is wrong,
    // so a verifier that ignored it would accept.
    let (inter, _) = issue(ca("inter", Some(0)), Key::p384(INTER), &root());
    let lying = Issuer::new(ca("inter", Some(0)), Key::p384(INTER).claiming_sha256());
    let leaf_der = cert(&leaf(), &leaf_key, &lying);
    out.push(refused(
        "leaf_signature_algorithm_sha256",
        "leaf whose signature algorithm is ecdsa-with-SHA256",
        document(leaf_der, &leaf_key, vec![SIGIL_TEST_ROOT_DER.to_vec(), inter]),
        [
            "chain",
            "certificate 0 (CN=leaf) signature algorithm 1.2.840.10045.4.3.2 is not ecdsa-with-SHA384",
            "chain",
            "certificate 0 signature algorithm is not ecdsa-with-SHA384",
        ],
    ));

    // --- names and signatures ---
    // Signed with the intermediate's key, but naming another issuer.
    let (inter, _) = issue(ca("inter", Some(0)), Key::p384(INTER), &root());
    let misnamed = Issuer::new(ca("other inter", Some(0)), Key::p384(INTER));
    let leaf_der = cert(&leaf(), &leaf_key, &misnamed);
    out.push(refused(
        "issuer_name_mismatch",
        "leaf whose issuer name is not the intermediate's subject",
        document(
            leaf_der,
            &leaf_key,
            vec![SIGIL_TEST_ROOT_DER.to_vec(), inter],
        ),
        [
            "chain",
            "certificate 0 (CN=leaf) issuer \"CN=other inter, O=sigil chain rules\" does not \
             match the subject of the next certificate \"CN=inter, O=sigil chain rules\"",
            "chain",
            "certificate 0 issuer does not match the subject of certificate 1",
        ],
    ));

    // Naming the intermediate, but signed with another key.
    let (inter, _) = issue(ca("inter", Some(0)), Key::p384(INTER), &root());
    let impostor = Issuer::new(ca("inter", Some(0)), Key::p384(OTHER));
    let leaf_der = cert(&leaf(), &leaf_key, &impostor);
    out.push(refused(
        "leaf_signed_by_wrong_key",
        "leaf naming the intermediate but signed by another key",
        document(
            leaf_der,
            &leaf_key,
            vec![SIGIL_TEST_ROOT_DER.to_vec(), inter],
        ),
        [
            "chain",
            "certificate 0 (CN=leaf) signature does not verify with the key of certificate 1",
            "chain",
            "certificate 0 signature does not verify with the key of certificate 1",
        ],
    ));

    // --- validity ---
    let mut p = leaf();
    p.not_before = date_time_ymd(2030, 1, 1) + Duration::from_secs(1);
    out.push(refused(
        "leaf_not_yet_valid",
        "leaf valid from one second after the verification time",
        two_level(ca("inter", Some(0)), p),
        [
            "chain",
            "certificate 0 (CN=leaf) is not valid before 2030-01-01T00:00:01Z (verification time \
             2030-01-01T00:00:00Z)",
            "validity",
            "certificate 0 is not valid before 2030-01-01T00:00:01.000Z",
        ],
    ));

    let mut p = leaf();
    p.not_after = date_time_ymd(2030, 1, 1) - Duration::from_secs(1);
    out.push(refused(
        "leaf_expired",
        "leaf expired one second before the verification time",
        two_level(ca("inter", Some(0)), p),
        [
            "chain",
            "certificate 0 (CN=leaf) expired at 2029-12-31T23:59:59Z (verification time \
             2030-01-01T00:00:00Z)",
            "validity",
            "certificate 0 expired at 2029-12-31T23:59:59.000Z",
        ],
    ));

    let mut p = ca("inter", Some(0));
    p.not_after = date_time_ymd(2029, 12, 31);
    out.push(refused(
        "intermediate_expired",
        "intermediate expired before the verification time",
        two_level(p, leaf()),
        [
            "chain",
            "certificate 1 (CN=inter) expired at 2029-12-31T00:00:00Z",
            "validity",
            "certificate 1 expired at 2029-12-31T00:00:00.000Z",
        ],
    ));

    let mut late = refused(
        "chain_expired",
        "valid chain verified one second after its certificates' notAfter",
        control(),
        [
            "chain",
            "certificate 0 (CN=leaf) expired at 2031-01-01T00:00:00Z",
            "validity",
            "certificate 0 expired at 2031-01-01T00:00:00.000Z",
        ],
    );
    late.at = LAST_VALID + 1;
    out.push(late);

    out
}

fn policy(at: u64) -> Policy {
    let mut p = Policy::at(at);
    p.trust_test_root = true;
    p
}

fn to_json(vectors: &[Vector]) -> String {
    let entries: Vec<Value> = vectors
        .iter()
        .map(|v| {
            let mut e = json!({
                "name": v.name,
                "rule": v.rule,
                "at_unix_seconds": v.at,
                "document": B64.encode(&v.document),
            });
            match v.refused {
                None => e["accept"] = json!(true),
                Some([rust_check, rust_detail, ts_check, ts_detail]) => {
                    e["accept"] = json!(false);
                    e["rust_check"] = json!(rust_check);
                    e["rust_detail"] = json!(rust_detail);
                    e["ts_check"] = json!(ts_check);
                    e["ts_detail"] = json!(ts_detail);
                }
            }
            e
        })
        .collect();
    let file = json!({
        "about": "Made by attestation/tests/chain_rules.rs from fixed keys and times; checked by \
                  sdk/ts/test/chain-rules.test.ts. Each refused document breaks one X.509 rule \
                  of the chain to the sigil test root (verify with the test root trusted, at \
                  at_unix_seconds). Regenerate: SIGIL_WRITE_TS_VECTORS=1 cargo test -p \
                  sigil-attestation --features simulator --test chain_rules",
        "vectors": entries,
    });
    let mut s = serde_json::to_string_pretty(&file).unwrap();
    s.push('\n');
    s
}

#[test]
fn each_vector_gets_the_expected_verdict() {
    for v in vectors() {
        let result = verify(&v.document, &policy(v.at));
        match (v.refused, result) {
            (None, Ok(_)) => {}
            (None, Err(e)) => panic!("{}: should be accepted, got {e}", v.name),
            (Some(_), Ok(_)) => panic!("{}: should be refused ({})", v.name, v.rule),
            (Some([check, detail, ..]), Err(e)) => {
                assert_eq!(e.check(), check, "{}: {e}", v.name);
                assert!(
                    e.detail().contains(detail),
                    "{}: {e} (wanted {detail:?})",
                    v.name
                );
            }
        }
    }
}

#[test]
fn generation_is_deterministic() {
    assert_eq!(to_json(&vectors()), to_json(&vectors()));
}

#[test]
fn chain_rule_vectors_are_the_committed_ones() {
    let made = to_json(&vectors());
    let path = vectors_path();
    if std::env::var_os(WRITE_ENV).is_some_and(|v| v == "1") {
        std::fs::write(&path, &made).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == made,
        "sdk/ts/test/vectors/chain-rules.json is not what this code makes; regenerate it with \
         {WRITE_ENV}=1 cargo test -p sigil-attestation --features simulator --test chain_rules \
         (and run the TypeScript tests)"
    );
}
