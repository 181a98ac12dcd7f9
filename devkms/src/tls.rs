//! The development CA and the server certificate for `kms.<region>.amazonaws.com`,
//! `localhost`, `127.0.0.1` and `::1`. The leaf is always generated at start; the CA is either
//! thrown away (generated at start, the default) or the committed development CA in
//! `devkms/dev-ca/`, whose key is public (see its README). Clients pin the CA certificate.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{RootCertStore, ServerConfig};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::sync::Arc;

/// Largest CA certificate or key file read (a P-256 or RSA-4096 PEM is a few KiB).
const MAX_PEM: u64 = 16 * 1024;

/// Why the TLS material could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("certificate generation: {0}")]
    Generate(#[source] rcgen::Error),
    #[error("development CA: {0}")]
    Ca(#[source] rcgen::Error),
    #[error("development CA certificate: {0}")]
    CaPem(#[source] rustls::pki_types::pem::Error),
    #[error("development CA certificate: {0}")]
    CaCertificate(#[source] rustls::Error),
    #[error("{}: {source}", path.display())]
    Read {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: larger than {MAX_PEM} bytes", .0.display())]
    TooLarge(std::path::PathBuf),
    #[error("tls: {0}")]
    Verifier(#[source] rustls::client::VerifierBuilderError),
    #[error("server name: {0}")]
    ServerName(#[source] rustls::pki_types::InvalidDnsNameError),
    #[error("the server certificate does not verify under the CA: {0}")]
    NotVerified(#[source] rustls::Error),
    #[error("tls: {0}")]
    Tls(#[source] rustls::Error),
}

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
pub fn generate(region: &str) -> Result<DevTls, TlsError> {
    let err = TlsError::Generate;
    let ca_key = KeyPair::generate().map_err(err)?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    ca.distinguished_name.push(
        DnType::CommonName,
        "sigil devkms development CA (NOT AWS, never trust in production)",
    );
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).map_err(err)?;
    let ca_der = ca_cert.der().to_vec();
    let issuer = Issuer::new(ca, ca_key);
    with_leaf(region, ca_cert.pem(), ca_der, &issuer)
}

/// A server certificate for the given region, issued by an existing CA: `ca_cert_pem` (one
/// certificate) and `ca_key_pem` (its PKCS#8 private key), e.g. the committed development CA.
pub fn generate_with_ca(
    region: &str,
    ca_cert_pem: &str,
    ca_key_pem: &str,
) -> Result<DevTls, TlsError> {
    let err = TlsError::Ca;
    let ca_der = CertificateDer::from_pem_slice(ca_cert_pem.as_bytes()).map_err(TlsError::CaPem)?;
    let ca_key = KeyPair::from_pem(ca_key_pem).map_err(err)?;
    let issuer = Issuer::from_ca_cert_der(&ca_der, ca_key).map_err(err)?;
    with_leaf(region, ca_cert_pem.to_string(), ca_der.to_vec(), &issuer)
}

/// Reads `ca.pem` and `ca.key` from `dir` (the layout of `devkms/dev-ca/`) and issues the
/// server certificate with them.
pub fn generate_with_ca_dir(region: &str, dir: &Path) -> Result<DevTls, TlsError> {
    let read = |name: &str| -> Result<String, TlsError> {
        let p = dir.join(name);
        let failed = |source| TlsError::Read {
            path: p.clone(),
            source,
        };
        let len = std::fs::metadata(&p).map_err(failed)?.len();
        if len > MAX_PEM {
            return Err(TlsError::TooLarge(p));
        }
        std::fs::read_to_string(&p).map_err(failed)
    };
    generate_with_ca(region, &read("ca.pem")?, &read("ca.key")?)
}

fn with_leaf(
    region: &str,
    ca_pem: String,
    ca_der: Vec<u8>,
    issuer: &Issuer<'_, KeyPair>,
) -> Result<DevTls, TlsError> {
    let err = TlsError::Generate;
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
    let leaf_cert = leaf.signed_by(&leaf_key, issuer).map_err(err)?;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    // Self-check: the leaf must verify under the CA handed to clients, as a client would check
    // it. A CA key that does not belong to the CA certificate (or a name the CA's constraints
    // do not permit) would otherwise only show up as handshake failures in every client.
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from(ca_der.clone()))
        .map_err(TlsError::CaCertificate)?;
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(TlsError::Verifier)?
        .verify_server_cert(
            leaf_cert.der(),
            &[],
            &ServerName::try_from(sigil_kms::api::host(region)).map_err(TlsError::ServerName)?,
            &[],
            UnixTime::now(),
        )
        .map_err(TlsError::NotVerified)?;
    let server_config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Tls)?
        .with_no_client_auth()
        .with_single_cert(
            vec![
                leaf_cert.der().clone(),
                CertificateDer::from(ca_der.clone()),
            ],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
        )
        .map_err(TlsError::Tls)?;
    Ok(DevTls {
        ca_pem,
        ca_der,
        server_config: Arc::new(server_config),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEV_CA_PEM: &str = include_str!("../dev-ca/ca.pem");
    const DEV_CA_KEY: &str = include_str!("../dev-ca/ca.key");

    #[test]
    fn committed_dev_ca_issues_and_is_handed_out() {
        let tls = generate_with_ca("eu-west-1", DEV_CA_PEM, DEV_CA_KEY).unwrap();
        assert_eq!(tls.ca_pem, DEV_CA_PEM);
        assert_eq!(
            tls.ca_der,
            CertificateDer::from_pem_slice(DEV_CA_PEM.as_bytes())
                .unwrap()
                .to_vec()
        );
    }

    #[test]
    fn a_key_that_is_not_the_cas_is_refused() {
        let other = KeyPair::generate().unwrap().serialize_pem();
        let e = generate_with_ca("eu-west-1", DEV_CA_PEM, &other)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("does not verify under the CA"), "{e}");
        assert!(generate_with_ca("eu-west-1", "not pem", DEV_CA_KEY).is_err());
        assert!(generate_with_ca("eu-west-1", DEV_CA_PEM, "not pem").is_err());
    }

    #[test]
    fn the_dev_ca_name_constraints_refuse_other_names() {
        // Its key is public, so the committed CA must vouch only for amazonaws.com, localhost
        // and loopback addresses: a certificate it signs for another site does not verify.
        let issuer =
            Issuer::from_ca_cert_pem(DEV_CA_PEM, KeyPair::from_pem(DEV_CA_KEY).unwrap()).unwrap();
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(DEV_CA_PEM.as_bytes()).unwrap())
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .unwrap();
        let verify = |name: &str| {
            let mut leaf = CertificateParams::new(vec![name.to_string()]).unwrap();
            leaf.is_ca = IsCa::ExplicitNoCa;
            leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            let key = KeyPair::generate().unwrap();
            let cert = leaf.signed_by(&key, &issuer).unwrap();
            verifier.verify_server_cert(
                cert.der(),
                &[],
                &ServerName::try_from(name.to_string()).unwrap(),
                &[],
                UnixTime::now(),
            )
        };
        assert!(verify("kms.eu-west-1.amazonaws.com").is_ok());
        assert!(verify("localhost").is_ok());
        for other in ["example.org", "kms.eu-west-1.amazonaws.com.example.org"] {
            let e = verify(other).unwrap_err();
            assert!(
                format!("{e:?}").contains("NameConstraint"),
                "{other}: {e:?}"
            );
        }
    }
}
