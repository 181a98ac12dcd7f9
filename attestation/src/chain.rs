//! X.509 path validation from the document's leaf certificate to a pinned root.
//!
//! The path is `[certificate, cabundle[n-1], ..., cabundle[0]]`; in messages "certificate i"
//! counts along it, so certificate 0 is the leaf and the last one is the root. The root must be
//! byte-identical to a pinned certificate: a bundle's root is never trusted because it is in
//! the bundle. Revocation is not checked (AWS publishes no CRL for this PKI).
//!
//! Rules, for every certificate unless stated: X.509 v3; signature algorithm
//! ecdsa-with-SHA384 (outer and TBS, identical, no parameters); P-384 public key; valid at the
//! verification time (notBefore ≤ t ≤ notAfter, root included); no duplicate, malformed or
//! unknown critical extension. Each issuer name equals the next certificate's subject, and
//! each signature verifies with the next certificate's key. CAs (all but the leaf): critical
//! BasicConstraints with cA, pathLenConstraint respected, KeyUsage with keyCertSign. Leaf: not
//! a CA, KeyUsage (if present) with digitalSignature.

use x509_parser::certificate::X509Certificate;
use x509_parser::oid_registry::{
    OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_SIG_ECDSA_WITH_SHA384,
    OID_X509_EXT_BASIC_CONSTRAINTS, OID_X509_EXT_KEY_USAGE,
};
use x509_parser::x509::X509Version;

use crate::cache::ChainCache;
use crate::document::MAX_CABUNDLE_ENTRIES;
use crate::text;
use crate::verify::{TrustedRoot, VerifyError};

/// AWS Nitro Enclaves Root-G1, as published by AWS
/// (<https://aws-nitro-enclaves.amazonaws.com/AWS_NitroEnclaves_Root-G1.zip>).
pub const AWS_NITRO_ROOT_G1_DER: &[u8] = include_bytes!("../roots/aws-nitro-enclaves-root-g1.der");

/// SHA-256 of [`AWS_NITRO_ROOT_G1_DER`] as AWS publishes it:
/// `641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b`.
pub const AWS_NITRO_ROOT_G1_SHA256: [u8; 32] = [
    0x64, 0x1a, 0x03, 0x21, 0xa3, 0xe2, 0x44, 0xef, 0xe4, 0x56, 0x46, 0x31, 0x95, 0xd6, 0x06, 0x31,
    0x7e, 0xd7, 0xcd, 0xcc, 0x3c, 0x17, 0x56, 0xe0, 0x98, 0x93, 0xf3, 0xc6, 0x8f, 0x79, 0xbb, 0x5b,
];

/// The sigil test root (`CN=sigil test root (NOT AWS), O=sigil`). Its private key is committed
/// next to it, so anyone can issue documents under it: trusted only when
/// [`crate::Policy::trust_test_root`] is set.
pub const SIGIL_TEST_ROOT_DER: &[u8] = include_bytes!("../test-root/sigil-test-root.der");

/// SHA-256 of [`SIGIL_TEST_ROOT_DER`]:
/// `0b28c686ee002359ebd058efe793329e9f01edbc0000f205bb5d5c15db044d55`.
pub const SIGIL_TEST_ROOT_SHA256: [u8; 32] = [
    0x0b, 0x28, 0xc6, 0x86, 0xee, 0x00, 0x23, 0x59, 0xeb, 0xd0, 0x58, 0xef, 0xe7, 0x93, 0x32, 0x9e,
    0x9f, 0x01, 0xed, 0xbc, 0x00, 0x00, 0xf2, 0x05, 0xbb, 0x5d, 0x5c, 0x15, 0xdb, 0x04, 0x4d, 0x55,
];

/// The result of a successful path validation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidatedChain {
    /// The pinned root the path ends in.
    pub root: TrustedRoot,
    /// The leaf's uncompressed P-384 public key (`04 || x || y`), which must have signed the
    /// COSE message.
    pub leaf_public_key: Vec<u8>,
}

/// What validating the CA part of a path established, enough to validate another leaf under
/// the same CAs without parsing or verifying them again (see [`crate::cache`]). Built only
/// from a path that validated in full.
#[derive(Debug)]
pub(crate) struct CaFacts {
    pub(crate) root: TrustedRoot,
    /// The leaf's issuer (the last cabundle entry): subject DER, its text for messages, key.
    issuer_subject: Vec<u8>,
    issuer_subject_text: String,
    issuer_key: Vec<u8>,
    /// Each CA's validity window in path order (certificate 1 first, the root last): the one
    /// CA check that depends on the verification time, so it is redone every time.
    windows: Vec<Window>,
}

#[derive(Debug)]
struct Window {
    label: String,
    not_before: i64,
    not_after: i64,
}

#[cfg(test)]
impl CaFacts {
    pub(crate) fn for_tests(root: TrustedRoot) -> Self {
        Self {
            root,
            issuer_subject: Vec::new(),
            issuer_subject_text: String::new(),
            issuer_key: Vec::new(),
            windows: Vec::new(),
        }
    }
}

fn sha256(data: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

fn root_err(msg: String) -> VerifyError {
    VerifyError::Root(msg)
}

/// Confirms the embedded copy of a root still has its pinned fingerprint, so a build that
/// swapped the file (or a corrupted binary) fails closed instead of trusting a new root.
fn check_embedded(root: TrustedRoot) -> Result<(), VerifyError> {
    let actual = sha256(root.der());
    if &actual != root.sha256() {
        return Err(root_err(format!(
            "embedded {} certificate has sha256 {}, not the pinned {}",
            root.name(),
            hex::encode(actual),
            hex::encode(root.sha256())
        )));
    }
    Ok(())
}

/// Identifies `cabundle[0]` as a pinned root: byte-equal to the embedded certificate, whose
/// fingerprint is checked against the pinned constant. The test root only counts when
/// `trust_test_root` is set.
pub fn pin_root(root_der: &[u8], trust_test_root: bool) -> Result<TrustedRoot, VerifyError> {
    let fingerprint = sha256(root_der);
    for candidate in [TrustedRoot::AwsNitroRootG1, TrustedRoot::SigilTestRoot] {
        if &fingerprint == candidate.sha256() && root_der == candidate.der() {
            if candidate == TrustedRoot::SigilTestRoot && !trust_test_root {
                return Err(root_err(format!(
                    "cabundle[0] is the sigil test root (sha256 {}), whose private key is public; \
                     it is not the pinned AWS Nitro Enclaves Root-G1 (sha256 {}) and is trusted \
                     only when the policy sets trust_test_root",
                    hex::encode(fingerprint),
                    hex::encode(AWS_NITRO_ROOT_G1_SHA256)
                )));
            }
            check_embedded(candidate)?;
            return Ok(candidate);
        }
    }
    let also = if trust_test_root {
        format!(
            " nor the sigil test root (sha256 {})",
            hex::encode(SIGIL_TEST_ROOT_SHA256)
        )
    } else {
        String::new()
    };
    Err(root_err(format!(
        "cabundle[0] (sha256 {}) is not the pinned AWS Nitro Enclaves Root-G1 (sha256 {}){also}",
        hex::encode(fingerprint),
        hex::encode(AWS_NITRO_ROOT_G1_SHA256)
    )))
}

/// "certificate i (CN=...)" for messages; the name is untrusted, so it is sanitised.
fn label(i: usize, cert: &X509Certificate<'_>) -> String {
    let subject = cert.subject();
    let name = match subject.iter_common_name().next().map(|cn| cn.as_str()) {
        Some(Ok(cn)) => format!("CN={cn}"),
        _ => subject.to_string(),
    };
    format!("certificate {i} ({})", text::one_line(&name, 96))
}

fn chain_err(msg: String) -> VerifyError {
    VerifyError::Chain(msg)
}

/// Signature and key algorithms: only ECDSA P-384 with SHA-384, as AWS's whole chain uses.
/// Refusing everything else removes algorithm-confusion and weak-algorithm attacks.
fn check_algorithms(i: usize, cert: &X509Certificate<'_>) -> Result<(), VerifyError> {
    let who = || label(i, cert);
    if cert.version() != X509Version::V3 {
        return Err(chain_err(format!(
            "{} is X.509 version {}, expected 3",
            who(),
            cert.version().0.saturating_add(1)
        )));
    }
    let outer = &cert.signature_algorithm;
    if outer.algorithm != OID_SIG_ECDSA_WITH_SHA384 || outer.parameters.is_some() {
        return Err(chain_err(format!(
            "{} signature algorithm {} is not ecdsa-with-SHA384",
            who(),
            outer.algorithm
        )));
    }
    // RFC 5280 §4.1.1.2: the signed copy of the algorithm must match the unsigned one.
    if cert.tbs_certificate.signature != *outer {
        return Err(chain_err(format!(
            "{} TBS signature algorithm differs from the outer one",
            who()
        )));
    }
    let spki = cert.public_key();
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.as_oid().ok());
    if spki.algorithm.algorithm != OID_KEY_TYPE_EC_PUBLIC_KEY || curve != Some(OID_NIST_EC_P384) {
        return Err(chain_err(format!(
            "{} public key is not an EC P-384 key (algorithm {})",
            who(),
            spki.algorithm.algorithm
        )));
    }
    let key = &spki.subject_public_key;
    if key.unused_bits != 0 || key.data.len() != 97 || key.data.first() != Some(&0x04) {
        return Err(chain_err(format!(
            "{} P-384 public key is not a 97-byte uncompressed point",
            who()
        )));
    }
    Ok(())
}

/// `child` must name `issuer` and carry a signature made with `issuer`'s key.
fn check_link(
    i: usize,
    child: &X509Certificate<'_>,
    issuer: &X509Certificate<'_>,
) -> Result<(), VerifyError> {
    check_signed_by(
        i,
        child,
        issuer.subject().as_raw(),
        || issuer.subject().to_string(),
        issuer.public_key().subject_public_key.data.as_ref(),
    )
}

/// [`check_link`] against an issuer known by its subject DER, its subject text (only for the
/// message) and its uncompressed P-384 key, as a cached chain keeps them.
fn check_signed_by(
    i: usize,
    child: &X509Certificate<'_>,
    issuer_subject: &[u8],
    issuer_subject_text: impl FnOnce() -> String,
    issuer_key: &[u8],
) -> Result<(), VerifyError> {
    // Exact DER comparison: stricter than RFC 5280 name matching, and what AWS's chains
    // satisfy. It stops a certificate from claiming a different issuer than the one checked.
    if child.issuer().as_raw() != issuer_subject {
        return Err(chain_err(format!(
            "{} issuer \"{}\" does not match the subject of the next certificate \"{}\"",
            label(i, child),
            text::one_line(&child.issuer().to_string(), 96),
            text::one_line(&issuer_subject_text(), 96)
        )));
    }
    let key = ring::signature::UnparsedPublicKey::new(
        &ring::signature::ECDSA_P384_SHA384_ASN1,
        issuer_key,
    );
    key.verify(
        child.tbs_certificate.as_ref(),
        child.signature_value.data.as_ref(),
    )
    .map_err(|_| {
        chain_err(format!(
            "{} signature does not verify with the key of certificate {}",
            label(i, child),
            i.saturating_add(1)
        ))
    })
}

fn check_validity(i: usize, cert: &X509Certificate<'_>, at: u64) -> Result<(), VerifyError> {
    let validity = cert.validity();
    check_window(
        || label(i, cert),
        validity.not_before.timestamp(),
        validity.not_after.timestamp(),
        at,
    )
}

/// notBefore ≤ at ≤ notAfter; `who` names the certificate in the message.
fn check_window(
    who: impl Fn() -> String,
    not_before: i64,
    not_after: i64,
    at: u64,
) -> Result<(), VerifyError> {
    let t = i64::try_from(at).unwrap_or(i64::MAX);
    if t < not_before {
        return Err(chain_err(format!(
            "{} is not valid before {} (verification time {})",
            who(),
            text::rfc3339(not_before),
            text::rfc3339_u(at)
        )));
    }
    if t > not_after {
        return Err(chain_err(format!(
            "{} expired at {} (verification time {})",
            who(),
            text::rfc3339(not_after),
            text::rfc3339_u(at)
        )));
    }
    Ok(())
}

/// Extensions and the certificate's role. `i` is the position (0 = leaf); a CA at position `i`
/// has `i - 1` intermediate CAs below it, which its pathLenConstraint must allow.
fn check_extensions(i: usize, cert: &X509Certificate<'_>) -> Result<(), VerifyError> {
    let who = || label(i, cert);
    let extensions = cert.extensions();
    for (k, ext) in extensions.iter().enumerate() {
        // A second copy of an extension could say something different to another parser.
        if extensions
            .iter()
            .skip(k.saturating_add(1))
            .any(|e| e.oid == ext.oid)
        {
            return Err(chain_err(format!(
                "{} has a duplicate extension {}",
                who(),
                ext.oid
            )));
        }
        if ext.parsed_extension().error().is_some() {
            return Err(chain_err(format!(
                "{} has a malformed extension {}",
                who(),
                ext.oid
            )));
        }
        // A critical extension we do not act on may restrict the certificate in ways we would
        // ignore (RFC 5280 §4.2: such a certificate must be rejected).
        let understood =
            ext.oid == OID_X509_EXT_BASIC_CONSTRAINTS || ext.oid == OID_X509_EXT_KEY_USAGE;
        if ext.critical && !understood {
            return Err(chain_err(format!(
                "{} has an unsupported critical extension {}",
                who(),
                ext.oid
            )));
        }
    }
    let bc = cert
        .basic_constraints()
        .map_err(|e| chain_err(format!("{} BasicConstraints: {e}", who())))?;
    let ku = cert
        .key_usage()
        .map_err(|e| chain_err(format!("{} KeyUsage: {e}", who())))?;

    if i == 0 {
        // A leaf that is a CA could mint further "leaves"; AWS leaves are CA:FALSE.
        if let Some(bc) = bc
            && (bc.value.ca || bc.value.path_len_constraint.is_some())
        {
            return Err(chain_err(format!(
                "{} is the leaf and must not be a CA or carry a pathLenConstraint",
                who()
            )));
        }
        if let Some(ku) = ku
            && !ku.value.digital_signature()
        {
            return Err(chain_err(format!(
                "{} is the leaf but its KeyUsage lacks digitalSignature",
                who()
            )));
        }
        return Ok(());
    }

    // Only a certificate that explicitly (and critically) says it is a CA may issue the next
    // one; otherwise any end-entity key in the chain could sign a fake leaf.
    match bc {
        Some(bc) if bc.critical && bc.value.ca => {
            let below = u64::try_from(i.saturating_sub(1)).unwrap_or(u64::MAX);
            if let Some(max) = bc.value.path_len_constraint
                && below > u64::from(max)
            {
                return Err(chain_err(format!(
                    "{} has pathLenConstraint {max} but {below} intermediate CAs below it",
                    who()
                )));
            }
        }
        Some(bc) if !bc.value.ca => {
            return Err(chain_err(format!(
                "{} issues a certificate but BasicConstraints says cA=false",
                who()
            )));
        }
        Some(_) => {
            return Err(chain_err(format!(
                "{} is a CA but its BasicConstraints is not critical",
                who()
            )));
        }
        None => {
            return Err(chain_err(format!(
                "{} issues a certificate but has no BasicConstraints",
                who()
            )));
        }
    }
    match ku {
        Some(ku) if ku.value.key_cert_sign() => Ok(()),
        Some(_) => Err(chain_err(format!(
            "{} is a CA but its KeyUsage lacks keyCertSign",
            who()
        ))),
        None => Err(chain_err(format!("{} is a CA without KeyUsage", who()))),
    }
}

/// Validates `[certificate, cabundle[n-1], ..., cabundle[0]]` at `at_unix_seconds` and returns
/// the root it ends in and the leaf key. The root pin is checked first, so a substituted root
/// is reported as `root` rather than as a downstream chain failure. Uses no cache.
pub fn validate(
    certificate: &[u8],
    cabundle: &[Vec<u8>],
    at_unix_seconds: u64,
    trust_test_root: bool,
) -> Result<ValidatedChain, VerifyError> {
    let root = check_bundle(cabundle, trust_test_root)?;
    validate_path(certificate, cabundle, root, at_unix_seconds, false).map(|(chain, _)| chain)
}

/// The bundle's size, then the root pin: the first checks, cached or not.
fn check_bundle(cabundle: &[Vec<u8>], trust_test_root: bool) -> Result<TrustedRoot, VerifyError> {
    if cabundle.is_empty() || cabundle.len() > MAX_CABUNDLE_ENTRIES {
        return Err(chain_err(format!(
            "cabundle has {} certificates, allowed 1..={MAX_CABUNDLE_ENTRIES}",
            cabundle.len()
        )));
    }
    let Some(root_der) = cabundle.first() else {
        return Err(chain_err("cabundle is empty".into()));
    };
    pin_root(root_der, trust_test_root)
}

/// [`validate`] with a cache of verified CA chains. On a hit only the leaf is parsed and
/// checked (against its issuer's cached key) and each CA's cached validity window is checked
/// at `at_unix_seconds`. On a miss the path is validated in full and what the cache needs is
/// returned, for the caller to insert once the whole document has verified.
///
/// The result, error included, is the same as [`validate`]'s: the checks run in the same
/// order, and those skipped on a hit are exactly the ones that passed before for these bytes
/// and depend neither on the time nor on the leaf.
pub(crate) fn validate_cached(
    certificate: &[u8],
    cabundle: &[Vec<u8>],
    at_unix_seconds: u64,
    trust_test_root: bool,
    cache: &ChainCache,
) -> Result<(ValidatedChain, Option<CaFacts>), VerifyError> {
    let root = check_bundle(cabundle, trust_test_root)?;
    match cache.get(root, trust_test_root, cabundle) {
        Some(entry) => Ok((
            validate_leaf(certificate, &entry.facts, at_unix_seconds)?,
            None,
        )),
        None => validate_path(certificate, cabundle, root, at_unix_seconds, true),
    }
}

fn parse_certificate(i: usize, der: &[u8]) -> Result<X509Certificate<'_>, VerifyError> {
    // x509-parser does not check the outer tag, which no signature covers: without this, a
    // certificate's bytes could be changed without breaking its chain (DER is one encoding).
    if der.first() != Some(&0x30) {
        return Err(chain_err(format!(
            "certificate {i} is not a valid DER X.509 certificate: it does not start with a \
             SEQUENCE tag"
        )));
    }
    match x509_parser::parse_x509_certificate(der) {
        Ok(([], cert)) => Ok(cert),
        Ok((rest, _)) => Err(chain_err(format!(
            "certificate {i} has {} trailing bytes after its DER",
            rest.len()
        ))),
        Err(e) => Err(chain_err(format!(
            "certificate {i} is not a valid DER X.509 certificate: {e}"
        ))),
    }
}

/// The full path validation; with `keep_facts`, also what a cache needs to skip the CAs next
/// time.
fn validate_path(
    certificate: &[u8],
    cabundle: &[Vec<u8>],
    root: TrustedRoot,
    at_unix_seconds: u64,
    keep_facts: bool,
) -> Result<(ValidatedChain, Option<CaFacts>), VerifyError> {
    let ders = std::iter::once(certificate).chain(cabundle.iter().rev().map(Vec::as_slice));
    let mut certs = Vec::with_capacity(cabundle.len().saturating_add(1));
    for (i, der) in ders.enumerate() {
        certs.push(parse_certificate(i, der)?);
    }
    for (i, cert) in certs.iter().enumerate() {
        check_algorithms(i, cert)?;
    }
    for (i, pair) in certs.windows(2).enumerate() {
        if let [child, issuer] = pair {
            check_link(i, child, issuer)?;
        }
    }
    for (i, cert) in certs.iter().enumerate() {
        check_validity(i, cert, at_unix_seconds)?;
    }
    for (i, cert) in certs.iter().enumerate() {
        check_extensions(i, cert)?;
    }
    let leaf_public_key = certs
        .first()
        .map(|leaf| leaf.public_key().subject_public_key.data.to_vec())
        .ok_or_else(|| chain_err("no leaf certificate".into()))?;
    let facts = match (keep_facts, certs.get(1)) {
        (true, Some(issuer)) => Some(CaFacts {
            root,
            issuer_subject: issuer.subject().as_raw().to_vec(),
            issuer_subject_text: issuer.subject().to_string(),
            issuer_key: issuer.public_key().subject_public_key.data.to_vec(),
            windows: certs
                .iter()
                .enumerate()
                .skip(1)
                .map(|(i, cert)| Window {
                    label: label(i, cert),
                    not_before: cert.validity().not_before.timestamp(),
                    not_after: cert.validity().not_after.timestamp(),
                })
                .collect(),
        }),
        _ => None,
    };
    Ok((
        ValidatedChain {
            root,
            leaf_public_key,
        },
        facts,
    ))
}

/// The checks of [`validate_path`] that a cached CA chain does not settle, in the same order
/// (parse, algorithms, link, validity, extensions; leaf before CAs), so the first failure
/// and its message are the same as on the full path.
fn validate_leaf(
    certificate: &[u8],
    facts: &CaFacts,
    at_unix_seconds: u64,
) -> Result<ValidatedChain, VerifyError> {
    let leaf = parse_certificate(0, certificate)?;
    check_algorithms(0, &leaf)?;
    check_signed_by(
        0,
        &leaf,
        &facts.issuer_subject,
        || facts.issuer_subject_text.clone(),
        &facts.issuer_key,
    )?;
    check_validity(0, &leaf, at_unix_seconds)?;
    for window in &facts.windows {
        check_window(
            || window.label.clone(),
            window.not_before,
            window.not_after,
            at_unix_seconds,
        )?;
    }
    check_extensions(0, &leaf)?;
    Ok(ValidatedChain {
        root: facts.root,
        leaf_public_key: leaf.public_key().subject_public_key.data.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinned_fingerprints_match_embedded_roots() {
        assert_eq!(
            hex::encode(AWS_NITRO_ROOT_G1_SHA256),
            "641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b"
        );
        assert_eq!(sha256(AWS_NITRO_ROOT_G1_DER), AWS_NITRO_ROOT_G1_SHA256);
        assert_eq!(
            hex::encode(SIGIL_TEST_ROOT_SHA256),
            "0b28c686ee002359ebd058efe793329e9f01edbc0000f205bb5d5c15db044d55"
        );
        assert_eq!(sha256(SIGIL_TEST_ROOT_DER), SIGIL_TEST_ROOT_SHA256);
        assert!(check_embedded(TrustedRoot::AwsNitroRootG1).is_ok());
        assert!(check_embedded(TrustedRoot::SigilTestRoot).is_ok());
    }

    #[test]
    fn pin_root_decisions() {
        assert_eq!(
            pin_root(AWS_NITRO_ROOT_G1_DER, false).unwrap(),
            TrustedRoot::AwsNitroRootG1
        );
        assert_eq!(
            pin_root(AWS_NITRO_ROOT_G1_DER, true).unwrap(),
            TrustedRoot::AwsNitroRootG1
        );
        assert_eq!(
            pin_root(SIGIL_TEST_ROOT_DER, true).unwrap(),
            TrustedRoot::SigilTestRoot
        );
        let e = pin_root(SIGIL_TEST_ROOT_DER, false).unwrap_err();
        assert_eq!(e.check(), "root");
        assert!(e.to_string().contains("trust_test_root"), "{e}");
        let mut other = AWS_NITRO_ROOT_G1_DER.to_vec();
        other[100] ^= 1;
        let e = pin_root(&other, true).unwrap_err();
        assert_eq!(e.check(), "root");
        assert!(
            e.to_string()
                .contains("not the pinned AWS Nitro Enclaves Root-G1 (sha256 641a0321"),
            "{e}"
        );
    }

    #[test]
    fn root_alone_is_a_valid_ca_in_its_window() {
        let (_, root) = x509_parser::parse_x509_certificate(AWS_NITRO_ROOT_G1_DER).unwrap();
        check_algorithms(1, &root).unwrap();
        check_extensions(1, &root).unwrap();
        check_validity(1, &root, 1_700_000_000).unwrap();
        let e = check_validity(1, &root, 2_600_000_000).unwrap_err();
        assert!(
            e.to_string().starts_with(
                "chain: certificate 1 (CN=aws.nitro-enclaves) expired at 2049-10-28T14:28:05Z"
            ),
            "{e}"
        );
        // As a leaf it is rejected: it is a CA.
        assert_eq!(check_extensions(0, &root).unwrap_err().check(), "chain");
    }
}
