//! `sigil_kms::client::KmsClient` against the development KMS over TLS: once under a CA
//! generated at start and once under the committed development CA (`dev-ca/`), with
//! documents from the simulated NSM for the `Recipient` calls.

mod common;

use common::two_keys;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use sigil_attestation::simulator::SimulatedIssuer;
use sigil_devkms::{Config, RunningServer};
use sigil_kms::api::{
    self, DecryptRequest, GenerateDataKeyRequest, GenerateRandomRequest, GenerateRandomResponse,
    KeySpec, KmsApiError, RecipientInfo,
};
use sigil_kms::client::{FixedAddr, KmsClient, KmsError, Trust};
use sigil_kms::{Credentials, RecipientKey, SigningTime, cms};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const REGION: &str = "eu-west-1";
const AKID: &str = "AKIDSIGILCLIENT";
const SECRET: &str = "sigil-client-test-secret";
const PCR: [u8; 48] = [0xc0; 48];

fn dev_ca_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("dev-ca")
}

/// DER of the committed development CA certificate.
fn dev_ca_der() -> Vec<u8> {
    let pem = std::fs::read(dev_ca_dir().join("ca.pem")).unwrap();
    CertificateDer::from_pem_slice(&pem).unwrap().to_vec()
}

fn config(fixed_ca: bool) -> Config {
    let mut json = two_keys(
        REGION,
        AKID,
        SECRET,
        serde_json::json!({"allowed_pcrs": {"0": hex::encode(PCR)}, "trust_test_root": true}),
        serde_json::json!({}),
    );
    if fixed_ca {
        json["tls_ca_dir"] = dev_ca_dir().to_str().unwrap().into();
    }
    Config::from_json(json.to_string().as_bytes()).unwrap()
}

struct Env {
    random_ca: RunningServer,
    fixed_ca: RunningServer,
    issuer: SimulatedIssuer,
    /// RSA key generation is slow in debug builds: one key, shared by the tests.
    recipient: RecipientKey,
}

fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| Env {
        random_ca: sigil_devkms::start(&config(false)).unwrap(),
        fixed_ca: sigil_devkms::start(&config(true)).unwrap(),
        issuer: SimulatedIssuer::new().unwrap(),
        recipient: RecipientKey::generate().unwrap(),
    })
}

fn now() -> SigningTime {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    SigningTime::from_unix(secs).unwrap()
}

fn creds(secret: &str) -> Credentials {
    Credentials {
        access_key_id: AKID.into(),
        secret_access_key: secret.into(),
        session_token: None,
    }
}

fn client(server: &RunningServer, region: &str, trust: Trust) -> KmsClient<FixedAddr> {
    KmsClient::new(
        FixedAddr(server.local_addr(), Duration::from_secs(10)),
        region,
        trust,
    )
    .unwrap()
}

/// A fresh attestation document for the shared recipient key, meeting `enclave-key`'s policy.
fn recipient() -> Option<RecipientInfo> {
    let e = env();
    let mut doc = e
        .issuer
        .document(Some(&e.recipient.spki_der()), None, None)
        .unwrap();
    doc.pcrs.insert(0, PCR.to_vec());
    Some(RecipientInfo::new(e.issuer.sign_document(&doc).unwrap()))
}

fn open(envelope: &[u8]) -> Vec<u8> {
    let parsed = cms::parse(envelope).unwrap();
    cms::decrypt(&parsed, &env().recipient).unwrap().to_vec()
}

fn ctx(v: &str) -> Option<BTreeMap<String, String>> {
    Some(BTreeMap::from([("sigil:purpose".into(), v.into())]))
}

fn service_code(e: KmsError) -> String {
    match e {
        KmsError::Api(KmsApiError::Service { status, code, .. }) => {
            assert_eq!(status, 400);
            code
        }
        other => panic!("expected a KMS error, got {other:?}"),
    }
}

/// Sixteen random bytes, no Recipient, with the right credentials.
fn random16(c: &KmsClient<FixedAddr>) -> Result<GenerateRandomResponse, KmsError> {
    c.generate_random(
        &creds(SECRET),
        now(),
        &GenerateRandomRequest {
            number_of_bytes: 16,
            recipient: None,
        },
    )
}

/// Every call the enclave makes, with and without a Recipient, through `c`.
fn round_trips(c: &KmsClient<FixedAddr>) {
    let good = creds(SECRET);

    // GenerateRandom: plaintext without Recipient, envelope with one.
    let r = c
        .generate_random(
            &good,
            now(),
            &GenerateRandomRequest {
                number_of_bytes: 48,
                recipient: None,
            },
        )
        .unwrap();
    assert_eq!(r.plaintext.unwrap().len(), 48);
    let r = c
        .generate_random(
            &good,
            now(),
            &GenerateRandomRequest {
                number_of_bytes: 64,
                recipient: recipient(),
            },
        )
        .unwrap();
    assert!(r.plaintext.is_none());
    let random = open(r.ciphertext_for_recipient.as_deref().unwrap());
    assert_eq!(random.len(), 64);
    assert_ne!(random, vec![0; 64]);

    // GenerateDataKey + Decrypt without Recipient.
    let gdk = |key: &str, recipient: Option<RecipientInfo>| GenerateDataKeyRequest {
        key_id: key.into(),
        key_spec: Some(KeySpec::Aes256),
        number_of_bytes: None,
        encryption_context: ctx("seal"),
        recipient,
    };
    let dk = c
        .generate_data_key(&good, now(), &gdk("plain-key", None))
        .unwrap();
    let data_key = dk.plaintext.clone().unwrap();
    assert_eq!(data_key.len(), 32);
    assert!(dk.ciphertext_for_recipient.is_none());
    let dec = |blob: &[u8], context, recipient| DecryptRequest {
        ciphertext_blob: blob.to_vec(),
        key_id: None,
        encryption_context: context,
        recipient,
    };
    let back = c
        .decrypt(&good, now(), &dec(&dk.ciphertext_blob, ctx("seal"), None))
        .unwrap();
    assert_eq!(back.plaintext.unwrap().as_slice(), data_key.as_slice());
    assert_eq!(back.key_id.as_deref(), Some(dk.key_id.as_str()));
    let e = c
        .decrypt(&good, now(), &dec(&dk.ciphertext_blob, ctx("other"), None))
        .unwrap_err();
    assert_eq!(service_code(e), "InvalidCiphertextException");

    // GenerateDataKey + Decrypt with Recipient: the key only ever arrives enveloped.
    let dk = c
        .generate_data_key(&good, now(), &gdk("alias/sigil", recipient()))
        .unwrap();
    assert!(dk.plaintext.is_none());
    assert_eq!(
        dk.key_id,
        format!("arn:aws:kms:{REGION}:111122223333:key/enclave-key")
    );
    let data_key = open(dk.ciphertext_for_recipient.as_deref().unwrap());
    assert_eq!(data_key.len(), 32);
    let back = c
        .decrypt(
            &good,
            now(),
            &dec(&dk.ciphertext_blob, ctx("seal"), recipient()),
        )
        .unwrap();
    assert!(back.plaintext.is_none());
    assert_eq!(open(api::recipient_ciphertext(&back).unwrap()), data_key);
    // The key's policy requires a Recipient.
    let e = c
        .decrypt(&good, now(), &dec(&dk.ciphertext_blob, ctx("seal"), None))
        .unwrap_err();
    assert_eq!(service_code(e), "AccessDeniedException");
    let e = c
        .generate_data_key(&good, now(), &gdk("no-such-key", None))
        .unwrap_err();
    assert_eq!(service_code(e), "NotFoundException");
}

#[test]
fn round_trips_under_a_ca_generated_at_start() {
    let s = &env().random_ca;
    assert_ne!(s.ca_der(), dev_ca_der().as_slice());
    round_trips(&client(s, REGION, Trust::Custom(vec![s.ca_der().to_vec()])));
}

#[test]
fn round_trips_under_the_committed_dev_ca() {
    let s = &env().fixed_ca;
    // The server hands out exactly the committed CA, which is one PEM certificate.
    assert_eq!(s.ca_der(), dev_ca_der().as_slice());
    let pem = std::fs::read_to_string(dev_ca_dir().join("ca.pem")).unwrap();
    assert_eq!(pem.matches("-----BEGIN ").count(), 1);
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----\n"));
    round_trips(&client(s, REGION, Trust::Custom(vec![dev_ca_der()])));
}

#[test]
fn a_second_start_under_the_dev_ca_gets_a_new_leaf_under_the_same_ca() {
    let other = sigil_devkms::start(&config(true)).unwrap();
    assert_eq!(other.ca_der(), env().fixed_ca.ca_der());
    let c = client(&other, REGION, Trust::Custom(vec![dev_ca_der()]));
    let r = random16(&c).unwrap();
    assert_eq!(r.plaintext.unwrap().len(), 16);
    other.shutdown();
}

fn expect_tls(c: &KmsClient<FixedAddr>) -> String {
    let e = random16(c).unwrap_err();
    match e {
        KmsError::Tls(m) => m,
        other => panic!("expected a TLS error, got {other:?}"),
    }
}

#[test]
fn untrusted_certificates_are_tls_errors() {
    let e = env();
    // Each server's CA is not the other's.
    let m = expect_tls(&client(
        &e.random_ca,
        REGION,
        Trust::Custom(vec![dev_ca_der()]),
    ));
    assert!(m.contains("certificate"), "{m}");
    expect_tls(&client(
        &e.fixed_ca,
        REGION,
        Trust::Custom(vec![e.random_ca.ca_der().to_vec()]),
    ));
    // The Amazon roots do not vouch for the development KMS.
    expect_tls(&client(&e.random_ca, REGION, Trust::AmazonRoots));
    expect_tls(&client(&e.fixed_ca, REGION, Trust::AmazonRoots));
    // Right CA, but the certificate is for kms.eu-west-1, not the host this client expects.
    let m = expect_tls(&client(
        &e.fixed_ca,
        "us-east-1",
        Trust::Custom(vec![dev_ca_der()]),
    ));
    assert!(m.contains("kms.us-east-1.amazonaws.com"), "{m}");
}

#[test]
fn plain_http_to_a_tls_server_fails_cleanly() {
    let c = client(&env().random_ca, REGION, Trust::PlainHttpForTests);
    let e = random16(&c).unwrap_err();
    assert!(matches!(e, KmsError::Http(_) | KmsError::Io(_)), "{e:?}");
}

#[test]
fn wrong_credentials_are_aws_style_api_errors() {
    let s = &env().fixed_ca;
    let c = client(s, REGION, Trust::Custom(vec![dev_ca_der()]));
    let req = GenerateRandomRequest {
        number_of_bytes: 16,
        recipient: None,
    };
    let e = c
        .generate_random(&creds("not-the-secret"), now(), &req)
        .unwrap_err();
    // Nothing secret in what a caller would log.
    let shown = format!("{e} {e:?}");
    assert!(
        !shown.contains("not-the-secret") && !shown.contains(SECRET),
        "{shown}"
    );
    assert_eq!(service_code(e), "InvalidSignatureException");

    let stranger = Credentials {
        access_key_id: "AKIDSTRANGER".into(),
        secret_access_key: SECRET.into(),
        session_token: None,
    };
    let e = c.generate_random(&stranger, now(), &req).unwrap_err();
    assert_eq!(service_code(e), "UnrecognizedClientException");

    // Malformed credentials never reach the wire.
    let bad = Credentials {
        access_key_id: "AKID/../x".into(),
        secret_access_key: SECRET.into(),
        session_token: None,
    };
    assert!(matches!(
        c.generate_random(&bad, now(), &req),
        Err(KmsError::Sign(_))
    ));
}

#[test]
fn connection_refused_is_a_connect_error() {
    // A port that was free a moment ago: bind, note it, drop.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let c = KmsClient::new(
        FixedAddr(addr, Duration::from_secs(2)),
        REGION,
        Trust::Custom(vec![dev_ca_der()]),
    )
    .unwrap();
    let e = random16(&c).unwrap_err();
    assert!(matches!(e, KmsError::Connect(_)), "{e:?}");
}
