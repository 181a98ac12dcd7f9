//! End to end: the development KMS on 127.0.0.1:0, a client made of `sigil_kms::api::request`
//! and rustls pinning the development CA, documents from the simulated NSM.

mod common;

use common::two_keys;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use sigil_attestation::simulator::SimulatedIssuer;
use sigil_devkms::{Config, RunningServer};
use sigil_kms::api::{
    self, DecryptRequest, DecryptResponse, GenerateDataKeyRequest, GenerateDataKeyResponse,
    GenerateRandomRequest, GenerateRandomResponse, KeySpec, KmsApiError, Operation, RecipientInfo,
};
use sigil_kms::{Credentials, RecipientKey, SigningTime, cms};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

const REGION: &str = "eu-west-1";
const AKID: &str = "AKIDSIGILTEST";
const SECRET: &str = "sigil-test-secret";
const PCR0: [u8; 48] = [0xa0; 48];
const PCR1: [u8; 48] = [0xa1; 48];
const PCR2: [u8; 48] = [0xa2; 48];

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn config() -> Config {
    let json = two_keys(
        REGION,
        AKID,
        SECRET,
        serde_json::json!({
            "allowed_image_sha384": hex::encode(PCR0),
            "allowed_pcrs": {"1": hex::encode(PCR1), "2": hex::encode(PCR2).to_uppercase()},
            "trust_test_root": true,
            "allow_debug": false
        }),
        serde_json::json!({
            "master_key_hex": "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
        }),
    );
    Config::from_json(json.to_string().as_bytes()).unwrap()
}

struct Env {
    server: RunningServer,
    issuer: SimulatedIssuer,
    /// RSA key generation is slow in debug builds: one key, shared by the tests.
    recipient: RecipientKey,
}

fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| Env {
        server: sigil_devkms::start(&config()).unwrap(),
        issuer: SimulatedIssuer::new().unwrap(),
        recipient: RecipientKey::generate().unwrap(),
    })
}

/// A document for `env().recipient` with the given PCR0..2 and timestamp offset (seconds).
fn document(pcrs: [[u8; 48]; 3], age_seconds: u64) -> Vec<u8> {
    let e = env();
    let mut doc = e
        .issuer
        .document(Some(&e.recipient.spki_der()), None, None)
        .unwrap();
    for (i, v) in pcrs.iter().enumerate() {
        doc.pcrs.insert(i as u8, v.to_vec());
    }
    doc.timestamp_ms -= age_seconds * 1000;
    e.issuer.sign_document(&doc).unwrap()
}

fn good_document() -> Vec<u8> {
    document([PCR0, PCR1, PCR2], 0)
}

/// Sends one signed request; returns (status, body).
fn send_raw(op: Operation, body: Vec<u8>, secret: &str, time: u64) -> (u16, Vec<u8>) {
    let creds = Credentials {
        access_key_id: AKID.into(),
        secret_access_key: secret.into(),
        session_token: None,
    };
    let req = api::request(
        op,
        body,
        REGION,
        &creds,
        SigningTime::from_unix(time).unwrap(),
    )
    .unwrap();
    let mut wire = format!("{} {} HTTP/1.1\r\n", req.method, req.path).into_bytes();
    for (n, v) in &req.headers {
        wire.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
    }
    wire.extend_from_slice(
        format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n",
            req.body.len()
        )
        .as_bytes(),
    );
    wire.extend_from_slice(&req.body);
    exchange(&wire)
}

fn exchange(wire: &[u8]) -> (u16, Vec<u8>) {
    let (status, _, body) = exchange_all(wire).swap_remove(0);
    (status, body)
}

/// Writes `wire` on one TLS connection and reads until the server closes it; returns every
/// response as (status, whether it said `Connection: close`, body).
fn exchange_all(wire: &[u8]) -> Vec<(u16, bool, Vec<u8>)> {
    let e = env();
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from(e.server.ca_der().to_vec()))
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from(api::host(REGION)).unwrap();
    let conn = ClientConnection::new(Arc::new(cfg), name).unwrap();
    let tcp = TcpStream::connect(e.server.local_addr()).unwrap();
    let mut s = StreamOwned::new(conn, tcp);
    s.write_all(wire).unwrap();
    s.flush().unwrap();
    let mut resp = Vec::new();
    match s.read_to_end(&mut resp) {
        Ok(_) => {}
        Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => {}
        Err(err) => panic!("read: {err}"),
    }
    let mut out = Vec::new();
    let mut rest = &resp[..];
    while !rest.is_empty() {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut parsed = httparse::Response::new(&mut headers);
        let n = match parsed.parse(rest).unwrap() {
            httparse::Status::Complete(n) => n,
            httparse::Status::Partial => panic!("partial response"),
        };
        let header = |name: &str| {
            parsed
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| std::str::from_utf8(h.value).unwrap().to_string())
        };
        let cl: usize = header("content-length").unwrap().parse().unwrap();
        let close = header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
        out.push((parsed.code.unwrap(), close, rest[n..n + cl].to_vec()));
        rest = &rest[n + cl..];
    }
    assert!(!out.is_empty(), "no response");
    out
}

fn call<T: serde::de::DeserializeOwned>(
    op: Operation,
    body: &impl serde::Serialize,
) -> Result<T, KmsApiError> {
    let (status, body) = send_raw(op, serde_json::to_vec(body).unwrap(), SECRET, now());
    api::parse_response(status, &body)
}

fn expect_err<T: std::fmt::Debug>(r: Result<T, KmsApiError>, code: &str) -> String {
    match r {
        Err(KmsApiError::Service {
            status,
            code: c,
            message,
        }) => {
            assert_eq!(status, 400);
            assert_eq!(c, code, "{message}");
            message
        }
        other => panic!("expected {code}, got {other:?}"),
    }
}

fn ctx(v: &str) -> Option<BTreeMap<String, String>> {
    Some(BTreeMap::from([(
        "sigil:purpose".to_string(),
        v.to_string(),
    )]))
}

fn gdk(key: &str, recipient: Option<Vec<u8>>) -> Result<GenerateDataKeyResponse, KmsApiError> {
    call(
        Operation::GenerateDataKey,
        &GenerateDataKeyRequest {
            key_id: key.into(),
            key_spec: Some(KeySpec::Aes256),
            number_of_bytes: None,
            encryption_context: ctx("seal"),
            recipient: recipient.map(RecipientInfo::new),
        },
    )
}

fn decrypt(
    blob: Vec<u8>,
    context: Option<BTreeMap<String, String>>,
    recipient: Option<Vec<u8>>,
) -> Result<DecryptResponse, KmsApiError> {
    call(
        Operation::Decrypt,
        &DecryptRequest {
            ciphertext_blob: blob,
            key_id: None,
            encryption_context: context,
            recipient: recipient.map(RecipientInfo::new),
        },
    )
}

fn open(envelope: &[u8]) -> Vec<u8> {
    let env = cms::parse(envelope).unwrap();
    cms::decrypt(&env, &self::env().recipient).unwrap().to_vec()
}

#[test]
fn data_key_for_recipient_round_trip() {
    let resp = gdk("alias/sigil", Some(good_document())).unwrap();
    assert!(resp.plaintext.is_none(), "no Plaintext on a Recipient call");
    assert_eq!(
        resp.key_id,
        format!("arn:aws:kms:{REGION}:111122223333:key/enclave-key")
    );
    let data_key = open(api::recipient_ciphertext(&resp).unwrap());
    assert_eq!(data_key.len(), 32);

    let dec = decrypt(
        resp.ciphertext_blob.clone(),
        ctx("seal"),
        Some(good_document()),
    )
    .unwrap();
    assert_eq!(open(api::recipient_ciphertext(&dec).unwrap()), data_key);
    assert_eq!(dec.key_id.as_deref(), Some(resp.key_id.as_str()));

    // Wrong or missing encryption context.
    let m = expect_err(
        decrypt(
            resp.ciphertext_blob.clone(),
            ctx("other"),
            Some(good_document()),
        ),
        "InvalidCiphertextException",
    );
    assert!(m.is_empty());
    expect_err(
        decrypt(resp.ciphertext_blob.clone(), None, Some(good_document())),
        "InvalidCiphertextException",
    );
    // Tampered blob: last byte (tag) and a byte of the key id.
    let mut t = resp.ciphertext_blob.clone();
    *t.last_mut().unwrap() ^= 1;
    expect_err(
        decrypt(t, ctx("seal"), Some(good_document())),
        "InvalidCiphertextException",
    );
    let mut t = resp.ciphertext_blob.clone();
    t[7] ^= 1;
    expect_err(
        decrypt(t, ctx("seal"), Some(good_document())),
        "InvalidCiphertextException",
    );
    expect_err(
        decrypt(vec![1, 2, 3], ctx("seal"), Some(good_document())),
        "InvalidCiphertextException",
    );

    // The key requires a Recipient.
    let m = expect_err(
        decrypt(resp.ciphertext_blob, ctx("seal"), None),
        "AccessDeniedException",
    );
    assert!(m.contains("no Recipient"), "{m}");
    expect_err(gdk("enclave-key", None), "AccessDeniedException");
}

#[test]
fn other_pcrs_are_denied_naming_the_condition() {
    let m = expect_err(
        gdk("enclave-key", Some(document([PCR0, [0xee; 48], PCR2], 0))),
        "AccessDeniedException",
    );
    assert!(m.contains("kms:RecipientAttestation:PCR1"), "{m}");
    let m = expect_err(
        gdk("enclave-key", Some(document([[0xee; 48], PCR1, PCR2], 0))),
        "AccessDeniedException",
    );
    assert!(m.contains("kms:RecipientAttestation:ImageSha384"), "{m}");
    // Debug-mode documents (all-zero PCRs, as `attest` issues) are refused by this key.
    let e = env();
    let debug = e
        .issuer
        .attest(Some(&e.recipient.spki_der()), None, None)
        .unwrap();
    let m = expect_err(gdk("enclave-key", Some(debug)), "AccessDeniedException");
    assert!(m.contains("debug"), "{m}");
    // Decrypt applies the same conditions.
    let blob = gdk("enclave-key", Some(good_document()))
        .unwrap()
        .ciphertext_blob;
    let m = expect_err(
        decrypt(blob, ctx("seal"), Some(document([PCR0, PCR1, [0; 48]], 0))),
        "AccessDeniedException",
    );
    assert!(m.contains("kms:RecipientAttestation:PCR2"), "{m}");
}

#[test]
fn stale_document_is_denied() {
    let m = expect_err(
        gdk("enclave-key", Some(document([PCR0, PCR1, PCR2], 10 * 60))),
        "AccessDeniedException",
    );
    assert!(m.contains("freshness"), "{m}");
}

#[test]
fn bad_signatures_are_rejected() {
    let body = serde_json::to_vec(&GenerateRandomRequest {
        number_of_bytes: 16,
        recipient: None,
    })
    .unwrap();
    let (status, b) = send_raw(
        Operation::GenerateRandom,
        body.clone(),
        "wrong-secret",
        now(),
    );
    let err: api::KmsErrorBody = serde_json::from_slice(&b).unwrap();
    assert_eq!(status, 400);
    assert_eq!(
        err.error_type,
        "com.amazon.coral.service#InvalidSignatureException"
    );
    // Correct secret but signed 10 minutes ago.
    let (status, b) = send_raw(Operation::GenerateRandom, body, SECRET, now() - 600);
    let err = api::parse_response::<GenerateRandomResponse>(status, &b).unwrap_err();
    expect_err::<()>(Err(err), "InvalidSignatureException");
}

#[test]
fn generate_random_with_recipient() {
    let resp: GenerateRandomResponse = call(
        Operation::GenerateRandom,
        &GenerateRandomRequest {
            number_of_bytes: 64,
            recipient: Some(RecipientInfo::new(good_document())),
        },
    )
    .unwrap();
    assert_eq!(open(api::recipient_ciphertext(&resp).unwrap()).len(), 64);
    let too_many: Result<GenerateRandomResponse, _> = call(
        Operation::GenerateRandom,
        &GenerateRandomRequest {
            number_of_bytes: 1025,
            recipient: None,
        },
    );
    expect_err(too_many, "ValidationException");
}

#[test]
fn plaintext_key_and_errors() {
    let resp = gdk("plain-key", None).unwrap();
    let pt = resp.plaintext.clone().unwrap();
    assert_eq!(pt.len(), 32);
    let dec = decrypt(resp.ciphertext_blob, ctx("seal"), None).unwrap();
    assert_eq!(dec.plaintext.unwrap().as_slice(), pt.as_slice());
    assert_eq!(
        dec.encryption_algorithm.as_deref(),
        Some("SYMMETRIC_DEFAULT")
    );

    let m = expect_err(gdk("no-such-key", None), "NotFoundException");
    assert!(m.contains("no-such-key"));
    let both: Result<GenerateDataKeyResponse, _> = call(
        Operation::GenerateDataKey,
        &GenerateDataKeyRequest {
            key_id: "plain-key".into(),
            key_spec: Some(KeySpec::Aes256),
            number_of_bytes: Some(32),
            encryption_context: None,
            recipient: None,
        },
    );
    expect_err(both, "ValidationException");
    let (status, b) = send_raw(Operation::Decrypt, b"{not json".to_vec(), SECRET, now());
    expect_err::<DecryptResponse>(api::parse_response(status, &b), "ValidationException");
}

#[test]
fn oversized_body_is_refused() {
    let wire = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        1024 * 1024
    );
    let (status, _) = exchange(wire.as_bytes());
    assert_eq!(status, 413);
}

#[test]
fn oversized_chunked_body_is_refused_after_the_limit() {
    // The chunk announces more than the limit; one byte over it is sent, then nothing.
    let over = sigil_devkms::server::MAX_BODY + 1;
    let mut wire = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n",
        2 * over
    )
    .into_bytes();
    wire.resize(wire.len() + over, b'a');
    let responses = exchange_all(&wire);
    assert_eq!(responses.len(), 1);
    let (status, close, body) = &responses[0];
    assert_eq!((*status, *close), (413, true));
    let err = api::parse_response::<DecryptResponse>(400, body).unwrap_err();
    assert!(
        matches!(&err, KmsApiError::Service { code, .. } if code == "ValidationException"),
        "{err:?}"
    );
}

#[test]
fn a_keep_alive_connection_serves_a_bounded_number_of_requests() {
    let max = sigil_devkms::server::MAX_REQUESTS_PER_CONNECTION;
    let one = "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}";
    let responses = exchange_all(one.repeat(max).as_bytes());
    assert_eq!(responses.len(), max);
    for (i, (status, close, body)) in responses.iter().enumerate() {
        assert_eq!(*status, 400);
        assert_eq!(*close, i + 1 == max, "response {i}");
        let err = api::parse_response::<DecryptResponse>(*status, body).unwrap_err();
        assert!(
            matches!(&err, KmsApiError::Service { code, .. } if code == "MissingAuthenticationTokenException"),
            "{err:?}"
        );
    }
}

#[test]
fn shutdown_closes_the_listener() {
    let server = sigil_devkms::start(&config()).unwrap();
    let addr = server.local_addr();
    TcpStream::connect(addr).unwrap();
    server.shutdown();
    assert!(TcpStream::connect(addr).is_err());
}
