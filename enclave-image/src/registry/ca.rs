//! Each application's certificate authority, held by the registry: a P-256 key made at the
//! application's first change, kept in the sealed registry state, and the certificates it
//! issues to registered instances (for mutual TLS between instances of the application).

use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, date_time_ymd,
};
use zeroize::Zeroizing;

/// How long an instance certificate is valid: instances register again at each boot.
const INSTANCE_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);
/// How long a CA is valid.
const CA_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// Certificates start a little in the past: clocks of instances differ.
const BACKDATE: Duration = Duration::from_secs(3600);

/// Sets a certificate's validity from seconds since the epoch.
fn validity(params: &mut CertificateParams, from: Duration, to: Duration) {
    params.not_before = date_time_ymd(1970, 1, 1) + from;
    params.not_after = date_time_ymd(1970, 1, 1) + to;
}

/// A new CA for `app`: (its key as PKCS#8 PEM, its certificate as PEM).
pub fn new_ca(app: &str, now: u64) -> Result<(Zeroizing<String>, String), String> {
    let key = KeyPair::generate().map_err(|e| format!("CA key: {e}"))?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, format!("sigil registry CA: {app}"));
    params.distinguished_name = dn;
    let now = Duration::from_secs(now);
    validity(
        &mut params,
        now.saturating_sub(BACKDATE),
        now.saturating_add(CA_LIFETIME),
    );
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let cert = params
        .self_signed(&key)
        .map_err(|e| format!("CA certificate: {e}"))?;
    Ok((Zeroizing::new(key.serialize_pem()), cert.pem()))
}

/// A fresh TLS key for an instance and its certificate from the application's CA: the
/// subject names the application and role, the SANs name the role's DNS name and the
/// instance's attested key (`urn:sigil:instance:<hex>`), so a peer checking the certificate
/// knows which attested instance holds it. Returns (key PEM, certificate PEM).
pub fn issue(
    ca_key_pem: &str,
    ca_cert_pem: &str,
    app: &str,
    role: &str,
    instance_key: &[u8; 32],
    now: u64,
) -> Result<(Zeroizing<String>, String), String> {
    let ca_key = KeyPair::from_pem(ca_key_pem).map_err(|e| format!("CA key: {e}"))?;
    let issuer = Issuer::from_ca_cert_pem(ca_cert_pem, ca_key)
        .map_err(|e| format!("CA certificate: {e}"))?;
    let key = KeyPair::generate().map_err(|e| format!("instance key: {e}"))?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, format!("{app}/{role}"));
    params.distinguished_name = dn;
    let now = Duration::from_secs(now);
    validity(
        &mut params,
        now.saturating_sub(BACKDATE),
        now.saturating_add(INSTANCE_LIFETIME),
    );
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.subject_alt_names = vec![
        SanType::DnsName(
            format!("{role}.{app}.sigil")
                .try_into()
                .map_err(|e| format!("DNS name: {e}"))?,
        ),
        SanType::URI(
            format!("urn:sigil:instance:{}", hex::encode(instance_key))
                .try_into()
                .map_err(|e| format!("URI: {e}"))?,
        ),
    ];
    params.use_authority_key_identifier_extension = true;
    let cert = params
        .signed_by(&key, &issuer)
        .map_err(|e| format!("instance certificate: {e}"))?;
    Ok((Zeroizing::new(key.serialize_pem()), cert.pem()))
}
