//! One-shot generator for the committed "sigil test root" (NOT an AWS certificate).
//!
//! Run once: `cargo run -p sigil-attestation --features simulator --example gen_test_root -- OUTDIR`
//! and commit `OUTDIR/sigil-test-root.der` and `OUTDIR/sigil-test-root.key.pk8` into
//! `attestation/test-root/`, then update `SIGIL_TEST_ROOT_SHA256` with the printed fingerprint.
//!
//! The private key is published on purpose: anyone can mint documents under this root, which is
//! why verifiers trust it only when `Policy::trust_test_root` is set. Re-running produces a NEW
//! key and certificate (and a new fingerprint); existing pins would then no longer match.

use std::error::Error;
use std::path::PathBuf;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P384_SHA384, date_time_ymd,
};

fn main() -> Result<(), Box<dyn Error>> {
    let out: PathBuf = std::env::args_os()
        .nth(1)
        .ok_or("usage: gen_test_root OUTDIR")?
        .into();
    std::fs::create_dir_all(&out)?;

    // Same algorithm family as AWS's chain (P-384 / ecdsa-with-SHA384) so the verifier's
    // algorithm rules apply unchanged to simulated documents.
    let key = KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384)?;

    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "sigil test root (NOT AWS)");
    dn.push(DnType::OrganizationName, "sigil");

    let mut params = CertificateParams::default();
    params.distinguished_name = dn;
    params.not_before = date_time_ymd(2025, 1, 1);
    params.not_after = date_time_ymd(2075, 1, 1);
    // rcgen writes BasicConstraints and KeyUsage as critical.
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];

    let cert = params.self_signed(&key)?;
    let der = cert.der().to_vec();
    std::fs::write(out.join("sigil-test-root.der"), &der)?;
    std::fs::write(out.join("sigil-test-root.key.pk8"), key.serialize_der())?;

    let fingerprint = ring::digest::digest(&ring::digest::SHA256, &der);
    println!("sha256 {}", hex::encode(fingerprint.as_ref()));
    Ok(())
}
