//! Cross-check of `KmsClient` against an independent KMS implementation: moto's server
//! (`moto[server]`, installed by scripts/setup), over plain HTTP on 127.0.0.1. moto accepts
//! any credentials and does not know `Recipient`, so only the calls without one are compared,
//! plus the client's refusal of the `Plaintext` moto sends back when a Recipient is ignored.

use sigil_kms::api::{
    self, DecryptRequest, GenerateDataKeyRequest, GenerateRandomRequest, KeySpec, KmsApiError,
    RecipientInfo,
};
use sigil_kms::client::{FixedAddr, KmsClient, KmsError, Trust};
use sigil_kms::sigv4::{self, Request, SigningParams};
use sigil_kms::{Credentials, SigningTime};
use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Keep in step with scripts/setup.
const MOTO_VERSION: &str = "5.2.1";
const REGION: &str = "eu-west-1";

fn creds() -> Credentials {
    Credentials {
        access_key_id: "AKIDMOTOTEST".into(),
        secret_access_key: "moto-accepts-anything".into(),
        session_token: None,
    }
}

fn now() -> SigningTime {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    SigningTime::from_unix(secs).unwrap()
}

/// A moto server on a free loopback port, killed when dropped (also when a test panics).
struct Moto {
    child: Child,
    addr: SocketAddr,
    /// moto's output; kept only when a test fails.
    log_path: std::path::PathBuf,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !std::thread::panicking() {
            let _ = std::fs::remove_file(&self.log_path);
        }
    }
}

impl Moto {
    fn start() -> Moto {
        let probe = Command::new("python3")
            .args([
                "-c",
                "import moto.server, importlib.metadata as m; print(m.version('moto'))",
            ])
            .output();
        let version = match probe {
            Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_string(),
            _ => panic!(
                "moto's KMS server is not installed (python3 -c 'import moto.server' fails): \
                 run scripts/setup, which installs moto[server]=={MOTO_VERSION}"
            ),
        };
        if version != MOTO_VERSION {
            eprintln!("note: moto {version} installed, scripts/setup pins {MOTO_VERSION}");
        }

        // A port that is free now; moto binds it a moment later (a clash only fails this run).
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log_path =
            std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("moto-{port}.log"));
        let log = std::fs::File::create(&log_path).unwrap();
        let child = Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn python3 -m moto.server");
        let mut moto = Moto {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            log_path,
        };

        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect_timeout(&moto.addr, Duration::from_millis(200)).is_err() {
            if let Some(status) = moto.child.try_wait().unwrap() {
                panic!(
                    "moto server exited ({status}): {}",
                    std::fs::read_to_string(&moto.log_path).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "moto server did not start in 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        moto
    }

    fn client(&self) -> KmsClient<FixedAddr> {
        KmsClient::new(
            FixedAddr(self.addr, Duration::from_secs(10)),
            REGION,
            Trust::PlainHttpForTests,
        )
        .unwrap()
    }

    /// `TrentService.CreateKey`, which the client does not offer, as a hand-built signed
    /// request. Returns the new key's id.
    fn create_key(&self) -> String {
        let mut req = Request {
            method: "POST".into(),
            path: "/".into(),
            query: Vec::new(),
            headers: vec![
                ("Host".into(), api::host(REGION)),
                ("Content-Type".into(), "application/x-amz-json-1.1".into()),
                ("X-Amz-Target".into(), "TrentService.CreateKey".into()),
            ],
            body: br#"{"Description":"sigil client cross-check"}"#.to_vec(),
        };
        sigv4::sign(
            &mut req,
            &creds(),
            &SigningParams::new(REGION, "kms", now()),
        )
        .unwrap();
        // The signed request as it is, over plain HTTP to moto (ureq, as the client uses).
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .proxy(None)
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .into();
        let mut call = agent.post(format!("http://{}{}", self.addr, req.path));
        for (n, v) in &req.headers {
            call = call.header(n.as_str(), v.as_str());
        }
        let mut resp = call.send(&req.body[..]).unwrap();
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .with_config()
            .limit(1 << 20)
            .read_to_string()
            .unwrap();
        assert_eq!(status, 200, "{text}");
        let body: serde_json::Value = serde_json::from_str(&text).unwrap();
        body["KeyMetadata"]["KeyId"].as_str().unwrap().to_string()
    }
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

fn ctx(v: &str) -> Option<BTreeMap<String, String>> {
    Some(BTreeMap::from([("sigil:purpose".into(), v.into())]))
}

#[test]
fn generate_random_against_moto() {
    let moto = Moto::start();
    let c = moto.client();
    let random = |n: u32| {
        c.generate_random(
            &creds(),
            now(),
            &GenerateRandomRequest {
                number_of_bytes: n,
                recipient: None,
            },
        )
    };
    for n in [1, 32, 1024] {
        let r = random(n).unwrap();
        assert!(r.ciphertext_for_recipient.is_none());
        assert_eq!(r.plaintext.unwrap().len(), n as usize);
    }
    assert_ne!(
        random(32).unwrap().plaintext.unwrap(),
        random(32).unwrap().plaintext.unwrap()
    );
    assert_eq!(
        service_code(random(1025).unwrap_err()),
        "ValidationException"
    );
}

#[test]
fn data_keys_and_errors_against_moto() {
    let moto = Moto::start();
    let c = moto.client();
    let key_id = moto.create_key();
    let gdk = |key: &str, spec: Option<KeySpec>, bytes: Option<u32>| GenerateDataKeyRequest {
        key_id: key.into(),
        key_spec: spec,
        number_of_bytes: bytes,
        encryption_context: ctx("seal"),
        recipient: None,
    };

    let dk = c
        .generate_data_key(&creds(), now(), &gdk(&key_id, Some(KeySpec::Aes256), None))
        .unwrap();
    let data_key = dk.plaintext.clone().unwrap();
    assert_eq!(data_key.len(), 32);
    assert!(dk.key_id.starts_with(&format!("arn:aws:kms:{REGION}:")));
    assert!(dk.key_id.ends_with(&format!(":key/{key_id}")));
    for (spec, bytes, len) in [(Some(KeySpec::Aes128), None, 16), (None, Some(64), 64)] {
        let other = c
            .generate_data_key(&creds(), now(), &gdk(&key_id, spec, bytes))
            .unwrap();
        assert_eq!(other.plaintext.unwrap().len(), len);
    }

    let dec = |blob: &[u8], context| DecryptRequest {
        ciphertext_blob: blob.to_vec(),
        key_id: None,
        encryption_context: context,
        recipient: None,
    };
    let back = c
        .decrypt(&creds(), now(), &dec(&dk.ciphertext_blob, ctx("seal")))
        .unwrap();
    assert_eq!(back.plaintext.unwrap().as_slice(), data_key.as_slice());
    assert_eq!(back.key_id.as_deref(), Some(dk.key_id.as_str()));

    let e = c
        .decrypt(&creds(), now(), &dec(&dk.ciphertext_blob, ctx("other")))
        .unwrap_err();
    assert_eq!(service_code(e), "InvalidCiphertextException");
    let e = c
        .generate_data_key(
            &creds(),
            now(),
            &gdk(
                "11111111-2222-3333-4444-555555555555",
                Some(KeySpec::Aes256),
                None,
            ),
        )
        .unwrap_err();
    assert_eq!(service_code(e), "NotFoundException");

    // moto ignores a Recipient and answers in the clear: the client must refuse that answer
    // rather than hand a caller who asked for an envelope a key the relay could read.
    let mut with_recipient = gdk(&key_id, Some(KeySpec::Aes256), None);
    with_recipient.recipient = Some(RecipientInfo::new(b"not a real document".to_vec()));
    let e = c
        .generate_data_key(&creds(), now(), &with_recipient)
        .unwrap_err();
    assert!(
        matches!(e, KmsError::Api(KmsApiError::UnexpectedPlaintext)),
        "{e:?}"
    );
}
