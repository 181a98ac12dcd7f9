//! The cache of verified CA chains: with or without it, every document verifies to the same
//! result (error included); a cached chain still has each CA's validity checked at the
//! document's time; only exact chains hit; only chains that validated are kept; the cache stays
//! bounded.

mod common;

use common::*;
use sigil_attestation::cache::CacheStats;
use sigil_attestation::{ChainCache, Policy, Verified, VerifyError, verify, verify_with};

fn uncached(input: &[u8], policy: &Policy) -> Result<Verified, VerifyError> {
    verify_with(input, policy, None)
}

/// Verifies with `cache` and checks the result equals the uncached one.
#[track_caller]
fn same(input: &[u8], policy: &Policy, cache: &ChainCache) -> Result<Verified, VerifyError> {
    let want = uncached(input, policy);
    let got = verify_with(input, policy, Some(cache));
    assert_eq!(got, want);
    got
}

fn stats(cache: &ChainCache) -> (usize, u64, u64) {
    let CacheStats {
        entries,
        hits,
        misses,
    } = cache.stats();
    (entries, hits, misses)
}

/// Offset of the certificate `der` inside the document bytes.
fn offset_of(cbor: &[u8], der: &[u8]) -> std::ops::Range<usize> {
    let start = find_unique(cbor, der);
    start..start + der.len()
}

#[test]
fn real_documents_verify_alike_cold_and_warm() {
    for d in real_docs() {
        let cache = ChainCache::new(4);
        let policy = Policy::at(d.at);
        let cold = same(&d.cbor, &policy, &cache).unwrap();
        assert_eq!(stats(&cache), (1, 0, 1), "{}: miss, then cached", d.file);
        let warm = same(&d.cbor, &policy, &cache).unwrap();
        assert_eq!(stats(&cache), (1, 1, 1), "{}: hit", d.file);
        assert_eq!(cold, warm);
        // The leaf's and the CAs' windows are checked at each verification's time, also on a
        // hit: before the leaf existed, after it expired, long after every CA expired.
        for at in [d.at - 3600, d.at + 4 * 3600, now_secs(), u64::MAX] {
            let e = same(&d.cbor, &Policy::at(at), &cache).unwrap_err();
            assert_eq!(e.check(), "chain", "{}: {e}", d.file);
        }
        assert_eq!(stats(&cache), (1, 5, 1), "{}: all hits", d.file);
    }
}

#[test]
fn the_leaf_expiry_boundary_is_the_same_on_a_hit() {
    let d = real_doc("06_");
    let cache = ChainCache::new(4);
    same(&d.cbor, &Policy::at(d.at), &cache).unwrap();
    same(&d.cbor, &Policy::at(1_722_467_907), &cache).unwrap();
    let e = same(&d.cbor, &Policy::at(1_722_467_908), &cache).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("chain: certificate 0 (CN=i-0809070ca8037095f"),
        "{e}"
    );
    assert_eq!(stats(&cache), (1, 2, 1));
}

#[test]
fn policy_failures_are_the_same_on_a_hit() {
    for d in real_docs() {
        let cache = ChainCache::new(4);
        let doc = same(&d.cbor, &Policy::at(d.at), &cache).unwrap().document;
        let mut p = Policy::at(d.at);
        p.expected_pcrs.insert(0, vec![0; 48]);
        assert_eq!(same(&d.cbor, &p, &cache).unwrap_err().check(), "pcr");
        let mut p = Policy::at(d.at);
        p.nonce = Some(b"another nonce".to_vec());
        assert_eq!(same(&d.cbor, &p, &cache).unwrap_err().check(), "nonce");
        let mut p = Policy::at(d.at + 3600);
        p.max_age_seconds = Some(60);
        assert_eq!(same(&d.cbor, &p, &cache).unwrap_err().check(), "freshness");
        let mut p = Policy::at(d.at);
        p.trust_test_root = true;
        p.expected_pcrs.insert(0, doc.pcrs[&0].clone());
        same(&d.cbor, &p, &cache).unwrap();
    }
}

/// Every tampered byte ends in the same result with a warm cache as without one. The leaf and
/// the CAs are sampled densely, the rest of the document more sparsely.
#[test]
fn tampered_documents_fail_alike_with_a_warm_cache() {
    for (di, d) in real_docs().into_iter().enumerate() {
        let policy = Policy::at(d.at);
        let cache = ChainCache::new(4);
        let doc = same(&d.cbor, &policy, &cache).unwrap().document;
        let leaf = offset_of(&d.cbor, &doc.certificate);
        let cas: Vec<_> = doc.cabundle.iter().map(|c| offset_of(&d.cbor, c)).collect();
        let mut positions: Vec<usize> = (0..d.cbor.len()).step_by(29).collect();
        positions.extend(leaf.clone().step_by(3));
        positions.extend(leaf.end - 110..leaf.end); // the leaf's signature
        for ca in &cas {
            positions.extend(ca.clone().step_by(41));
            positions.push(ca.end - 1);
        }
        for (k, pos) in positions.into_iter().enumerate() {
            let mask = [0x01, 0x80, 0x10, 0xff][(k + di) % 4];
            let tampered = flipped(&d.cbor, pos, mask);
            if let Ok(v) = same(&tampered, &policy, &cache) {
                // Only bytes the signature does not cover can change without failing, and
                // they cannot change what was verified.
                assert_eq!(v.document, doc, "{}: offset {pos}", d.file);
            }
            // Some CA bytes are not signed (x509-parser accepts another outer tag): such a
            // chain validates, but no document under it does, so it is not cached.
            assert_eq!(cache.stats().entries, 1, "{}: offset {pos}", d.file);
        }
    }
}

#[test]
fn a_chain_one_byte_off_misses() {
    let d = real_doc("06_");
    let policy = Policy::at(d.at);
    let cache = ChainCache::new(4);
    let doc = same(&d.cbor, &policy, &cache).unwrap().document;
    let (_, hits, misses) = stats(&cache);
    for ca in &doc.cabundle[1..] {
        let at = offset_of(&d.cbor, ca);
        // The last byte of the CA's signature and a byte of its TBS.
        for pos in [at.end - 1, at.start + 40] {
            let before = stats(&cache);
            let e = verify_with(&flipped(&d.cbor, pos, 0x01), &policy, Some(&cache)).unwrap_err();
            assert_eq!(Err(e), uncached(&flipped(&d.cbor, pos, 0x01), &policy));
            let after = stats(&cache);
            assert_eq!(after.1, before.1, "offset {pos}: no hit");
            assert_eq!(after.2, before.2 + 1, "offset {pos}: a miss");
            assert_eq!(after.0, 1, "offset {pos}: not cached");
        }
    }
    // The genuine chain still hits.
    same(&d.cbor, &policy, &cache).unwrap();
    assert_eq!(stats(&cache).1, hits + 1);
    assert!(stats(&cache).2 > misses);
}

#[test]
fn failures_are_never_cached() {
    let d = real_doc("03_");
    let cache = ChainCache::new(4);
    let doc = uncached(&d.cbor, &Policy::at(d.at)).unwrap().document;
    // The whole chain checked, and refused: expired, not yet valid.
    for at in [now_secs(), d.at - 3600] {
        same(&d.cbor, &Policy::at(at), &cache).unwrap_err();
        assert_eq!(cache.stats().entries, 0, "at {at}");
    }
    // The leaf's signature broken: the CAs validated, but the chain did not.
    let leaf = offset_of(&d.cbor, &doc.certificate);
    let e = same(
        &flipped(&d.cbor, leaf.end - 1, 1),
        &Policy::at(d.at),
        &cache,
    )
    .unwrap_err();
    assert_eq!(e.check(), "chain");
    assert_eq!(cache.stats().entries, 0);
    // The chain validated but the document did not: COSE signature, then policy.
    let n = d.cbor.len();
    let e = same(&flipped(&d.cbor, n - 1, 1), &Policy::at(d.at), &cache).unwrap_err();
    assert_eq!(e.check(), "signature");
    let mut wrong_pcr = Policy::at(d.at);
    wrong_pcr.expected_pcrs.insert(0, vec![0; 48]);
    assert_eq!(
        same(&d.cbor, &wrong_pcr, &cache).unwrap_err().check(),
        "pcr"
    );
    assert_eq!(cache.stats().entries, 0);
    // A CA byte outside what its issuer signed (its outer DER tag): refused by the chain
    // check itself, before the document's signature is looked at.
    let last_ca = offset_of(&d.cbor, doc.cabundle.last().unwrap());
    let e = same(
        &flipped(&d.cbor, last_ca.start, 0x80),
        &Policy::at(d.at),
        &cache,
    )
    .unwrap_err();
    assert_eq!(e.check(), "chain");
    // A root that is not pinned is refused before any lookup.
    let root = offset_of(&d.cbor, &doc.cabundle[0]);
    let e = same(
        &flipped(&d.cbor, root.start + 200, 1),
        &Policy::at(d.at),
        &cache,
    )
    .unwrap_err();
    assert_eq!(e.check(), "root");
    assert_eq!(stats(&cache), (0, 0, 6));
    // Success is cached.
    same(&d.cbor, &Policy::at(d.at), &cache).unwrap();
    assert_eq!(stats(&cache), (1, 0, 7));
}

#[test]
fn the_trust_setting_is_part_of_the_key() {
    let d = real_doc("06_");
    let cache = ChainCache::new(4);
    let mut test_root_trusted = Policy::at(d.at);
    test_root_trusted.trust_test_root = true;
    same(&d.cbor, &Policy::at(d.at), &cache).unwrap();
    same(&d.cbor, &test_root_trusted, &cache).unwrap();
    assert_eq!(stats(&cache), (2, 0, 2), "one entry per trust setting");
    same(&d.cbor, &test_root_trusted, &cache).unwrap();
    same(&d.cbor, &Policy::at(d.at), &cache).unwrap();
    assert_eq!(stats(&cache), (2, 2, 2));
}

#[test]
fn verify_uses_the_global_cache() {
    let d = real_doc("06_");
    let policy = Policy::at(d.at);
    let v = verify(&d.cbor, &policy).unwrap();
    let before = ChainCache::global().stats();
    assert_eq!(verify(&d.cbor, &policy).unwrap(), v);
    // Other tests may use the global cache at the same time: counters only grow.
    assert!(ChainCache::global().stats().hits > before.hits);
    assert!(ChainCache::global().stats().entries <= ChainCache::global().capacity());
    assert_eq!(v, uncached(&d.cbor, &policy).unwrap());
}

/// Chains with chosen validity windows under the sigil test root.
#[cfg(feature = "simulator")]
mod chosen_chains {
    use super::*;

    use std::collections::BTreeMap;

    use rcgen::{
        BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
        KeyUsagePurpose, PKCS_ECDSA_P384_SHA384, date_time_ymd,
    };
    use sigil_attestation::chain::SIGIL_TEST_ROOT_DER;
    use sigil_attestation::simulator::TEST_ROOT_KEY_PKCS8;
    use sigil_attestation::{AttestationDocument, TrustedRoot, cose};

    /// 2030-01-01T00:00:00Z.
    const AT: u64 = 1_893_456_000;
    /// 2030-06-01T00:00:00Z, when the intermediate of [`Chain::new`] expires.
    const INTER_EXPIRES: u64 = 1_906_502_400;

    fn root() -> Issuer<'static, KeyPair> {
        let key = KeyPair::try_from(TEST_ROOT_KEY_PKCS8).unwrap();
        Issuer::from_ca_cert_der(&SIGIL_TEST_ROOT_DER.into(), key).unwrap()
    }

    fn dn(cn: &str) -> DistinguishedName {
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, cn);
        dn
    }

    fn p384() -> KeyPair {
        KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).unwrap()
    }

    /// root ← intermediate (valid `from`..`to`); leaves valid 2029-01-01..2031-01-01.
    struct Chain {
        inter_der: Vec<u8>,
        inter: Issuer<'static, KeyPair>,
    }

    impl Chain {
        fn new(cn: &str) -> Self {
            Self::with_window(cn, (2029, 1, 1), (2030, 6, 1))
        }

        fn with_window(cn: &str, from: (i32, u8, u8), to: (i32, u8, u8)) -> Self {
            let mut p = CertificateParams::default();
            p.distinguished_name = dn(cn);
            p.not_before = date_time_ymd(from.0, from.1, from.2);
            p.not_after = date_time_ymd(to.0, to.1, to.2);
            p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
            p.key_usages = vec![KeyUsagePurpose::KeyCertSign];
            let key = p384();
            let inter_der = p.signed_by(&key, &root()).unwrap().der().to_vec();
            Self {
                inter_der,
                inter: Issuer::new(p, key),
            }
        }

        /// A document signed by a fresh leaf under this chain's intermediate.
        fn document(&self) -> Vec<u8> {
            let mut p = CertificateParams::default();
            p.distinguished_name = dn("leaf");
            p.not_before = date_time_ymd(2029, 1, 1);
            p.not_after = date_time_ymd(2031, 1, 1);
            p.is_ca = IsCa::ExplicitNoCa;
            p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            let key = p384();
            let leaf_der = p.signed_by(&key, &self.inter).unwrap().der().to_vec();
            let doc = AttestationDocument {
                module_id: "i-cache-test".into(),
                timestamp_ms: AT * 1000,
                digest: "SHA384".into(),
                pcrs: (0u8..4)
                    .map(|i| (i, vec![i + 1; 48]))
                    .collect::<BTreeMap<_, _>>(),
                certificate: leaf_der,
                cabundle: vec![SIGIL_TEST_ROOT_DER.to_vec(), self.inter_der.clone()],
                public_key: None,
                user_data: None,
                nonce: None,
            };
            let rng = ring::rand::SystemRandom::new();
            let signer = ring::signature::EcdsaKeyPair::from_pkcs8(
                &ring::signature::ECDSA_P384_SHA384_FIXED_SIGNING,
                &key.serialize_der(),
                &rng,
            )
            .unwrap();
            cose::sign_es384(&signer, &rng, &doc.to_cbor()).unwrap()
        }
    }

    fn policy(at: u64) -> Policy {
        let mut p = Policy::at(at);
        p.trust_test_root = true;
        p
    }

    #[test]
    fn an_expired_ca_is_refused_after_its_chain_was_cached() {
        let chain = Chain::new("inter");
        let cache = ChainCache::new(4);
        let v = same(&chain.document(), &policy(AT), &cache).unwrap();
        assert_eq!(v.root, TrustedRoot::SigilTestRoot);
        // A fresh document (new leaf) under the same CAs hits.
        let fresh = chain.document();
        same(&fresh, &policy(AT), &cache).unwrap();
        assert_eq!(stats(&cache), (1, 1, 1));
        // The leaf is still valid, the intermediate is not: refused, on a hit, as uncached.
        same(&fresh, &policy(INTER_EXPIRES), &cache).unwrap();
        let e = same(&fresh, &policy(INTER_EXPIRES + 1), &cache).unwrap_err();
        assert_eq!(
            e.to_string(),
            "chain: certificate 1 (CN=inter) expired at 2030-06-01T00:00:00Z \
             (verification time 2030-06-01T00:00:01Z)"
        );
        assert_eq!(stats(&cache), (1, 3, 1));
    }

    #[test]
    fn a_ca_not_yet_valid_is_refused_after_its_chain_was_cached() {
        let chain = Chain::with_window("later", (2029, 6, 1), (2031, 1, 1));
        let cache = ChainCache::new(4);
        same(&chain.document(), &policy(AT), &cache).unwrap();
        let e = same(&chain.document(), &policy(AT - 365 * 86_400), &cache).unwrap_err();
        assert_eq!(
            e.to_string(),
            "chain: certificate 1 (CN=later) is not valid before 2029-06-01T00:00:00Z \
             (verification time 2029-01-01T00:00:00Z)"
        );
        assert_eq!(stats(&cache), (1, 1, 1));
    }

    #[test]
    fn a_test_root_chain_needs_the_test_root_trusted_even_when_cached() {
        let chain = Chain::new("inter");
        let cache = ChainCache::new(4);
        let doc = chain.document();
        same(&doc, &policy(AT), &cache).unwrap();
        let e = same(&doc, &Policy::at(AT), &cache).unwrap_err();
        assert_eq!(e.check(), "root");
        assert_eq!(stats(&cache), (1, 0, 1), "refused before any lookup");
    }

    #[test]
    fn the_cache_stays_bounded_over_many_distinct_chains() {
        let cache = ChainCache::new(4);
        let chains: Vec<Chain> = (0..12).map(|i| Chain::new(&format!("inter {i}"))).collect();
        for chain in &chains {
            same(&chain.document(), &policy(AT), &cache).unwrap();
            assert!(cache.stats().entries <= 4);
        }
        assert_eq!(stats(&cache), (4, 0, 12));
        // The four most recent hit; an evicted one misses, verifies in full and comes back.
        for chain in &chains[8..] {
            same(&chain.document(), &policy(AT), &cache).unwrap();
        }
        assert_eq!(stats(&cache), (4, 4, 12));
        same(&chains[0].document(), &policy(AT), &cache).unwrap();
        assert_eq!(stats(&cache), (4, 4, 13));
    }

    #[test]
    fn the_default_capacity_bounds_the_global_size() {
        let cache = ChainCache::new(sigil_attestation::cache::DEFAULT_CAPACITY);
        for i in 0..cache.capacity() + 5 {
            same(
                &Chain::new(&format!("inter {i}")).document(),
                &policy(AT),
                &cache,
            )
            .unwrap();
        }
        assert_eq!(cache.stats().entries, cache.capacity());
    }
}

/// The outer tag of a certificate is covered by no signature: a CA whose first byte is not a
/// SEQUENCE is refused, so nobody can mint "new" chains that still validate by re-tagging.
#[test]
fn a_retagged_certificate_is_refused() {
    for d in real_docs() {
        let v = uncached(&d.cbor, &Policy::at(d.at)).unwrap();
        let doc = &v.document;
        sigil_attestation::chain::validate(&doc.certificate, &doc.cabundle, d.at, false).unwrap();
        for i in 1..doc.cabundle.len() {
            let mut bundle = doc.cabundle.clone();
            bundle[i][0] = 0xb0;
            let e = sigil_attestation::chain::validate(&doc.certificate, &bundle, d.at, false)
                .unwrap_err();
            assert!(e.to_string().contains("SEQUENCE"), "{}: {e}", d.file);
        }
        let mut leaf = doc.certificate.clone();
        leaf[0] = 0xb0;
        assert!(
            sigil_attestation::chain::validate(&leaf, &doc.cabundle, d.at, false).is_err(),
            "{}",
            d.file
        );
    }
}
