//! Path-validation rules, each shown by a purpose-built chain under the sigil test root that
//! differs from a valid one in exactly one respect.
#![cfg(feature = "simulator")]

use std::collections::BTreeMap;

use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType, IsCa, Issuer,
    KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384, date_time_ymd,
};
use sigil_attestation::chain::SIGIL_TEST_ROOT_DER;
use sigil_attestation::simulator::TEST_ROOT_KEY_PKCS8;
use sigil_attestation::{AttestationDocument, Policy, TrustedRoot, cose, verify};

/// 2030-01-01T00:00:00Z; every certificate below is valid 2029-01-01..2031-01-01 unless a test
/// says otherwise.
const AT: u64 = 1_893_456_000;

fn root() -> Issuer<'static, KeyPair> {
    let key = KeyPair::try_from(TEST_ROOT_KEY_PKCS8).unwrap();
    Issuer::from_ca_cert_der(&SIGIL_TEST_ROOT_DER.into(), key).unwrap()
}

fn p384() -> KeyPair {
    KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).unwrap()
}

fn dn(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn.push(DnType::OrganizationName, "sigil chain test");
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
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    p
}

fn leaf(cn: &str) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name = dn(cn);
    p.not_before = date_time_ymd(2029, 1, 1);
    p.not_after = date_time_ymd(2031, 1, 1);
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p
}

/// Issues `params` for `key` and returns (DER, an issuer for it).
fn issue(
    params: CertificateParams,
    key: KeyPair,
    by: &Issuer<'_, KeyPair>,
) -> (Vec<u8>, Issuer<'static, KeyPair>) {
    let der = params.signed_by(&key, by).unwrap().der().to_vec();
    (der, Issuer::new(params, key))
}

/// A leaf certificate ("leaf") for a fresh P-384 key, issued by `by`: (DER, key).
fn p384_leaf(by: &Issuer<'_, KeyPair>) -> (Vec<u8>, KeyPair) {
    let key = p384();
    let der = leaf("leaf").signed_by(&key, by).unwrap().der().to_vec();
    (der, key)
}

/// A document whose leaf is a `p384_leaf` issued by `by`, with the sigil test root and then
/// `intermediates` as its bundle.
fn leaf_document(by: &Issuer<'_, KeyPair>, intermediates: Vec<Vec<u8>>) -> Vec<u8> {
    let (der, key) = p384_leaf(by);
    let mut cabundle = vec![SIGIL_TEST_ROOT_DER.to_vec()];
    cabundle.extend(intermediates);
    document(der, &key, cabundle)
}

/// A document with the given chain, signed by `leaf_key` when it is a P-384 key (otherwise a
/// dummy signature: those tests fail before the signature check).
fn document(leaf_der: Vec<u8>, leaf_key: &KeyPair, cabundle: Vec<Vec<u8>>) -> Vec<u8> {
    let doc = AttestationDocument {
        module_id: "i-chain-test".into(),
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
    let rng = ring::rand::SystemRandom::new();
    match ring::signature::EcdsaKeyPair::from_pkcs8(
        &ring::signature::ECDSA_P384_SHA384_FIXED_SIGNING,
        &leaf_key.serialize_der(),
        &rng,
    ) {
        Ok(signer) => cose::sign_es384(&signer, &rng, &payload).unwrap(),
        Err(_) => cose::encode_sign1(&cose::PROTECTED_ES384, &payload, &[0; 96]),
    }
}

fn policy() -> Policy {
    let mut p = Policy::at(AT);
    p.trust_test_root = true;
    p
}

/// root ← intermediate(`inter`) ← leaf(`leaf_params`, `leaf_key`).
fn two_level(
    inter: CertificateParams,
    leaf_params: CertificateParams,
    leaf_key: KeyPair,
) -> Vec<u8> {
    let (inter_der, inter_issuer) = issue(inter, p384(), &root());
    let leaf_der = leaf_params
        .signed_by(&leaf_key, &inter_issuer)
        .unwrap()
        .der()
        .to_vec();
    document(
        leaf_der,
        &leaf_key,
        vec![SIGIL_TEST_ROOT_DER.to_vec(), inter_der],
    )
}

#[track_caller]
fn chain_error(cose: &[u8], needle: &str) {
    let e = verify(cose, &policy()).unwrap_err();
    assert_eq!(e.check(), "chain", "{e}");
    assert!(e.to_string().contains(needle), "{e} (wanted {needle:?})");
}

#[test]
fn control_valid_two_level_chain() {
    let cose = two_level(ca("inter", Some(0)), leaf("leaf"), p384());
    let v = verify(&cose, &policy()).unwrap();
    assert_eq!(v.root, TrustedRoot::SigilTestRoot);
    assert!(!v.debug);
}

#[test]
fn leaf_directly_under_the_root() {
    verify(&leaf_document(&root(), vec![]), &policy()).unwrap();
}

#[test]
fn path_length_constraint_is_enforced() {
    let build = |upper: Option<u8>| {
        let (i1, i1_issuer) = issue(ca("inter 1", upper), p384(), &root());
        let (i2, i2_issuer) = issue(ca("inter 2", Some(0)), p384(), &i1_issuer);
        leaf_document(&i2_issuer, vec![i1, i2])
    };
    verify(&build(Some(1)), &policy()).unwrap();
    verify(&build(None), &policy()).unwrap();
    chain_error(
        &build(Some(0)),
        "certificate 2 (CN=inter 1) has pathLenConstraint 0 but 1 intermediate CAs below it",
    );
}

#[test]
fn wrong_bundle_order_is_a_root_failure() {
    let (i1, i1_issuer) = issue(ca("inter 1", None), p384(), &root());
    let (i2, i2_issuer) = issue(ca("inter 2", Some(0)), p384(), &i1_issuer);
    let (der, key) = p384_leaf(&i2_issuer);
    let cose = document(
        der.clone(),
        &key,
        vec![i2.clone(), i1.clone(), SIGIL_TEST_ROOT_DER.to_vec()],
    );
    assert_eq!(verify(&cose, &policy()).unwrap_err().check(), "root");
    // Root right, intermediates swapped: names do not chain.
    let cose = document(der, &key, vec![SIGIL_TEST_ROOT_DER.to_vec(), i2, i1]);
    chain_error(&cose, "does not match the subject of the next certificate");
}

#[test]
fn ca_rules_for_intermediates() {
    let mut no_cert_sign = ca("inter", Some(0));
    no_cert_sign.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::CrlSign];
    chain_error(
        &two_level(no_cert_sign, leaf("leaf"), p384()),
        "certificate 1 (CN=inter) is a CA but its KeyUsage lacks keyCertSign",
    );

    let mut no_ku = ca("inter", Some(0));
    no_ku.key_usages = vec![];
    chain_error(
        &two_level(no_ku, leaf("leaf"), p384()),
        "is a CA without KeyUsage",
    );

    let mut not_ca = ca("inter", None);
    not_ca.is_ca = IsCa::ExplicitNoCa;
    chain_error(
        &two_level(not_ca, leaf("leaf"), p384()),
        "BasicConstraints says cA=false",
    );

    let mut no_bc = ca("inter", None);
    no_bc.is_ca = IsCa::NoCa;
    chain_error(
        &two_level(no_bc, leaf("leaf"), p384()),
        "has no BasicConstraints",
    );

    // cA=true but not critical (encoded by hand: SEQUENCE { BOOLEAN TRUE }).
    let mut non_critical = ca("inter", None);
    non_critical.is_ca = IsCa::NoCa;
    non_critical
        .custom_extensions
        .push(CustomExtension::from_oid_content(
            &[2, 5, 29, 19],
            vec![0x30, 0x03, 0x01, 0x01, 0xff],
        ));
    chain_error(
        &two_level(non_critical, leaf("leaf"), p384()),
        "BasicConstraints is not critical",
    );
}

#[test]
fn leaf_rules() {
    let mut leaf_ca = leaf("leaf");
    leaf_ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    leaf_ca.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyCertSign,
    ];
    chain_error(
        &two_level(ca("inter", Some(0)), leaf_ca, p384()),
        "certificate 0 (CN=leaf) is the leaf and must not be a CA",
    );

    let mut wrong_ku = leaf("leaf");
    wrong_ku.key_usages = vec![KeyUsagePurpose::KeyAgreement];
    chain_error(
        &two_level(ca("inter", Some(0)), wrong_ku, p384()),
        "KeyUsage lacks digitalSignature",
    );

    // No BasicConstraints and no KeyUsage on a leaf: allowed (absent = not a CA, unrestricted).
    let mut bare = leaf("leaf");
    bare.is_ca = IsCa::NoCa;
    bare.key_usages = vec![];
    verify(&two_level(ca("inter", Some(0)), bare, p384()), &policy()).unwrap();
}

#[test]
fn extension_rules() {
    let private_oid: &[u64] = &[1, 3, 6, 1, 4, 1, 55555, 1];
    let mut critical = leaf("leaf");
    let mut ext = CustomExtension::from_oid_content(private_oid, vec![0x05, 0x00]);
    ext.set_criticality(true);
    critical.custom_extensions.push(ext);
    chain_error(
        &two_level(ca("inter", Some(0)), critical, p384()),
        "unsupported critical extension 1.3.6.1.4.1.55555.1",
    );

    // The same extension, non-critical, is ignored.
    let mut ignorable = leaf("leaf");
    ignorable
        .custom_extensions
        .push(CustomExtension::from_oid_content(
            private_oid,
            vec![0x05, 0x00],
        ));
    verify(
        &two_level(ca("inter", Some(0)), ignorable, p384()),
        &policy(),
    )
    .unwrap();

    let mut duplicate = leaf("leaf");
    for _ in 0..2 {
        duplicate
            .custom_extensions
            .push(CustomExtension::from_oid_content(
                private_oid,
                vec![0x05, 0x00],
            ));
    }
    chain_error(
        &two_level(ca("inter", Some(0)), duplicate, p384()),
        "duplicate extension",
    );

    // A critical extension on a CA is just as fatal.
    let mut inter = ca("inter", Some(0));
    let mut ext = CustomExtension::from_oid_content(private_oid, vec![0x05, 0x00]);
    ext.set_criticality(true);
    inter.custom_extensions.push(ext);
    chain_error(
        &two_level(inter, leaf("leaf"), p384()),
        "certificate 1 (CN=inter) has an unsupported critical",
    );
}

#[test]
fn only_p384_with_sha384() {
    let p256 = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    chain_error(
        &two_level(ca("inter", Some(0)), leaf("leaf"), p256),
        "certificate 0 (CN=leaf) public key is not an EC P-384 key",
    );

    // A P-256 intermediate signs the leaf with ecdsa-with-SHA256.
    let (inter_der, inter_issuer) = issue(
        ca("inter", Some(0)),
        KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap(),
        &root(),
    );
    chain_error(
        &leaf_document(&inter_issuer, vec![inter_der]),
        "certificate 0 (CN=leaf) signature algorithm 1.2.840.10045.4.3.2 is not ecdsa-with-SHA384",
    );
}

#[test]
fn validity_windows() {
    let mut expired = leaf("leaf");
    expired.not_after = date_time_ymd(2029, 6, 1);
    chain_error(
        &two_level(ca("inter", Some(0)), expired, p384()),
        "certificate 0 (CN=leaf) expired at 2029-06-01T00:00:00Z (verification time 2030-01-01T00:00:00Z)",
    );

    let mut early = leaf("leaf");
    early.not_before = date_time_ymd(2030, 6, 1);
    chain_error(
        &two_level(ca("inter", Some(0)), early, p384()),
        "certificate 0 (CN=leaf) is not valid before 2030-06-01T00:00:00Z",
    );

    let mut inter = ca("inter", Some(0));
    inter.not_after = date_time_ymd(2029, 12, 31);
    chain_error(
        &two_level(inter, leaf("leaf"), p384()),
        "certificate 1 (CN=inter) expired at",
    );

    // The root is checked too: before 2025 the sigil test root does not exist.
    let cose = two_level(ca("inter", Some(0)), leaf("leaf"), p384());
    let mut p = policy();
    p.at_unix_seconds = 1_700_000_000; // 2023
    let e = verify(&cose, &p).unwrap_err();
    assert_eq!(e.check(), "chain");
    // Leaf and intermediate also fail in 2023; the first reported is the leaf.
    assert!(e.to_string().contains("certificate 0"), "{e}");
}

#[test]
fn names_must_chain() {
    // The leaf is signed by "inter A" but the bundle carries "inter B".
    let (_, a_issuer) = issue(ca("inter A", Some(0)), p384(), &root());
    let (b_der, _) = issue(ca("inter B", Some(0)), p384(), &root());
    chain_error(
        &leaf_document(&a_issuer, vec![b_der]),
        "certificate 0 (CN=leaf) issuer \"CN=inter A, O=sigil chain test\" does not match the subject of the next certificate \"CN=inter B, O=sigil chain test\"",
    );
}

#[test]
fn trailing_bytes_after_a_certificate() {
    let (mut inter_der, inter_issuer) = issue(ca("inter", Some(0)), p384(), &root());
    inter_der.push(0);
    chain_error(
        &leaf_document(&inter_issuer, vec![inter_der]),
        "certificate 1 has 1 trailing bytes",
    );
}

#[test]
fn a_leaf_certificate_that_is_not_der() {
    let key = p384();
    chain_error(
        &document(
            b"not a certificate".to_vec(),
            &key,
            vec![SIGIL_TEST_ROOT_DER.to_vec()],
        ),
        "certificate 0 is not a valid DER X.509 certificate",
    );
}
