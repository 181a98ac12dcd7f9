//! A throw-away development CA and the server certificate for `kms.<region>.amazonaws.com`,
//! `localhost`, `127.0.0.1` and `::1`, generated at start. Clients pin the CA certificate.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

/// The generated CA (public part) and the TLS server configuration.
pub struct DevTls {
    /// PEM of the development CA certificate (what `--ca-out` writes).
    pub ca_pem: String,
    /// DER of the development CA certificate.
    pub ca_der: Vec<u8>,
    /// rustls (ring provider) server configuration with the leaf and CA.
    pub server_config: Arc<ServerConfig>,
}

/// Generates a CA and a server certificate for the given region.
pub fn generate(region: &str) -> Result<DevTls, String> {
    let err = |e: rcgen::Error| format!("certificate generation: {e}");
    let ca_key = KeyPair::generate().map_err(err)?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    ca.distinguished_name.push(
        DnType::CommonName,
        "sigil devkms development CA (NOT AWS, never trust in production)",
    );
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).map_err(err)?;
    let issuer = Issuer::new(ca, ca_key);

    let mut leaf =
        CertificateParams::new(vec![sigil_kms::api::host(region), "localhost".to_string()])
            .map_err(err)?;
    leaf.subject_alt_names
        .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    leaf.subject_alt_names
        .push(SanType::IpAddress(IpAddr::V6(Ipv6Addr::LOCALHOST)));
    leaf.distinguished_name
        .push(DnType::CommonName, sigil_kms::api::host(region));
    leaf.is_ca = IsCa::ExplicitNoCa;
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.use_authority_key_identifier_extension = true;
    let leaf_key = KeyPair::generate().map_err(err)?;
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer).map_err(err)?;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server_config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("tls: {e}"))?
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf_cert.der().clone(), ca_cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
        )
        .map_err(|e| format!("tls: {e}"))?;
    Ok(DevTls {
        ca_pem: ca_cert.pem(),
        ca_der: CertificateDer::from(ca_cert.der().to_vec()).to_vec(),
        server_config: Arc::new(server_config),
    })
}
