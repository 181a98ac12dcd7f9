//! Sealed state end to end in local mode: the enclave process, the real `sigil-shim` (blob
//! store, egress proxy, credentials) and the development KMS over TLS with attestation.
//!
//! Each test is a small deployment in its own directory: the enclave gets its data key from
//! the development KMS through the shim, keeps vault entries sealed in the shim's blob files,
//! and is killed, restarted, tampered with and refused in the ways the threat model names.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Enclave, target_dir};
use sigil_client::{AttestedEnclave, Client, ClientError, OwnerKey};
use sigil_e2e::shim::{ACCESS_KEY_ID, SECRET_ACCESS_KEY, Shim, ShimSetup};

const REGION: &str = "us-east-1";
const KEY_ID: &str = "sigil-test-key";
/// A fixed master key, so a restarted development KMS decrypts what it made before.
const MASTER_KEY: &str = "5c1d3f0a9b8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a392817060504";

fn key_arn() -> String {
    format!("arn:aws:kms:{REGION}:111122223333:key/{KEY_ID}")
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The key policy of the development KMS, as JSON.
fn policy(pcr0: Option<&str>) -> String {
    let pcrs = match pcr0 {
        Some(p) => format!(r#""allowed_pcrs": {{"0": "{p}"}}, "allow_debug": false"#),
        None => r#""allow_debug": true"#.into(),
    };
    format!(
        r#"{{"allowed_credentials": [{{"access_key_id": "{ACCESS_KEY_ID}", "secret_access_key": "{SECRET_ACCESS_KEY}"}}],
            "trust_test_root": true, {pcrs}}}"#
    )
}

struct Deployment {
    dir: PathBuf,
    kms: Option<sigil_devkms::RunningServer>,
    kms_addr: String,
    shim: Option<Shim>,
    enclave: Option<Enclave>,
    region: &'static str,
    simulated_pcrs: Option<PathBuf>,
}

impl Deployment {
    fn new(name: &str, pcr0_policy: Option<&str>) -> Deployment {
        let dir = target_dir()
            .join("test-sealed")
            .join(format!("{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("state")).unwrap();
        let mut d = Deployment {
            dir,
            kms: None,
            kms_addr: String::new(),
            shim: None,
            enclave: None,
            region: REGION,
            simulated_pcrs: None,
        };
        d.start_kms(pcr0_policy);
        d.start_shim();
        d
    }

    fn start_kms(&mut self, pcr0_policy: Option<&str>) {
        let config = format!(
            r#"{{"listen": "127.0.0.1:0", "region": "{REGION}", "tls_ca_dir": "{}",
                "keys": [{{"key_id": "{KEY_ID}", "master_key_hex": "{MASTER_KEY}", "policy": {}}}]}}"#,
            workspace().join("devkms/dev-ca").display(),
            policy(pcr0_policy)
        );
        let config = sigil_devkms::Config::from_json(config.as_bytes()).expect("devkms config");
        let kms = sigil_devkms::start(&config).expect("start the development KMS");
        self.kms_addr = kms.local_addr().to_string();
        self.kms = Some(kms);
    }

    fn sock(&self, name: &str) -> String {
        format!("unix:{}", self.dir.join(name).display())
    }

    fn start_shim(&mut self) {
        let host = format!("kms.{REGION}.amazonaws.com:443");
        let setup = ShimSetup {
            bin: common::profile_bin("sigil-shim"),
            state_dir: self.dir.join("state"),
            blob_listen: self.sock("blobs.sock"),
            egress_listen: self.sock("egress.sock"),
            credentials_listen: self.sock("creds.sock"),
            egress_resolve: Some(format!("{host}={}", self.kms_addr)),
            egress_allow: host,
            ingress: None,
            log: self.dir.join("shim.log"),
            crs: None,
        };
        self.shim = Some(Shim::start(&setup).expect("start sigil-shim"));
    }

    fn kill_shim(&mut self) {
        if let Some(s) = self.shim.take() {
            s.kill();
        }
    }

    fn start_enclave(&mut self) -> &Enclave {
        let config = self.dir.join("enclave.json");
        std::fs::write(
            &config,
            format!(
                r#"{{"kms": {{"region": "{}", "key_id": "{}", "trust": "development",
                    "encryption_context": {{"app": "sigil-test"}}}}}}"#,
                self.region,
                key_arn()
            ),
        )
        .unwrap();
        let config = config.display().to_string();
        let (blobs, egress, creds) = (
            self.sock("blobs.sock"),
            self.sock("egress.sock"),
            self.sock("creds.sock"),
        );
        let mut args = vec![
            "--config",
            &config,
            "--blob-store",
            &blobs,
            "--egress",
            &egress,
            "--credentials",
            &creds,
        ];
        let pcrs = self
            .simulated_pcrs
            .as_ref()
            .map(|p| p.display().to_string());
        if let Some(p) = &pcrs {
            args.extend(["--simulated-pcrs", p]);
        }
        self.enclave = Some(Enclave::start(&args));
        self.enclave.as_ref().unwrap()
    }

    /// SIGKILL, as a crash or a power cut would.
    fn kill_enclave(&mut self) {
        self.enclave = None;
    }

    fn endpoint(&self) -> String {
        self.enclave.as_ref().expect("enclave running").endpoint()
    }

    fn health(&self) -> serde_json::Value {
        let body = ureq::get(format!("{}/v1/health", self.endpoint()))
            .call()
            .expect("health")
            .body_mut()
            .read_to_string()
            .unwrap();
        serde_json::from_str(&body).unwrap()
    }

    /// Waits until the sealing settles: "ready" or an error that has been retried.
    fn wait_sealing(&self, want_ready: bool) -> serde_json::Value {
        let start = Instant::now();
        loop {
            let h = self.health();
            let s = &h["sealing"];
            if s["state"] == "ready" || (!want_ready && s["error"].is_string()) {
                return s.clone();
            }
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "sealing did not settle: {h}\nshim log:\n{}",
                std::fs::read_to_string(self.dir.join("shim.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn attest(&self) -> (Client, AttestedEnclave) {
        let client = Client::new(&self.endpoint()).unwrap();
        let mut policy = sigil_attestation::Policy::at(now());
        policy.trust_test_root = true;
        policy.allow_debug = true;
        let enclave = client.attest(policy).expect("attest the local enclave");
        (client, enclave)
    }

    fn blob_file(&self, name: &str) -> PathBuf {
        self.dir.join("state").join(format!("b_seal~secret~{name}"))
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn api_code(e: ClientError) -> (u16, String, String) {
    match e {
        ClientError::Api {
            status,
            code,
            message,
        } => (status, code, message),
        other => panic!("expected an API error, got {other}"),
    }
}

#[test]
fn state_survives_restarts_of_the_enclave_the_shim_and_both() {
    let mut d = Deployment::new("restarts", None);
    d.start_enclave();
    assert_eq!(d.wait_sealing(true)["origin"], "generated");
    let owner = OwnerKey::generate().unwrap();
    let (c, e) = d.attest();
    assert_eq!(
        c.vault_put(&e, &owner, "alpha", b"one", 0).unwrap().version,
        1
    );

    // The enclave restarts: the data key comes back from KMS, the entry from the shim.
    d.kill_enclave();
    d.start_enclave();
    assert_eq!(d.wait_sealing(true)["origin"], "recovered");
    let (c, e) = d.attest();
    assert_eq!(
        c.vault_get(&e, &owner, "alpha").unwrap(),
        (b"one".to_vec(), 1)
    );

    // The shim restarts under a running enclave: the next call reconnects.
    d.kill_shim();
    d.start_shim();
    assert_eq!(
        c.vault_put(&e, &owner, "alpha", b"two", 1).unwrap().version,
        2
    );
    assert_eq!(
        c.vault_get(&e, &owner, "alpha").unwrap(),
        (b"two".to_vec(), 2)
    );

    // Both restart.
    d.kill_enclave();
    d.kill_shim();
    d.start_shim();
    d.start_enclave();
    assert_eq!(d.wait_sealing(true)["origin"], "recovered");
    let (c, e) = d.attest();
    assert_eq!(
        c.vault_get(&e, &owner, "alpha").unwrap(),
        (b"two".to_vec(), 2)
    );

    // Only the owner: another key's signature is refused, and so is a stale version.
    let stranger = OwnerKey::generate().unwrap();
    let (status, code, _) = api_code(c.vault_get(&e, &stranger, "alpha").unwrap_err());
    assert_eq!((status, code.as_str()), (401, "bad_signature"));
    let (status, code, _) = api_code(c.vault_put(&e, &stranger, "alpha", b"x", 2).unwrap_err());
    assert_eq!((status, code.as_str()), (403, "not_owner"));
    let (status, code, _) = api_code(c.vault_put(&e, &owner, "alpha", b"x", 1).unwrap_err());
    assert_eq!((status, code.as_str()), (409, "version_conflict"));
    let (status, code, _) = api_code(c.vault_get(&e, &owner, "missing").unwrap_err());
    assert_eq!((status, code.as_str()), (404, "not_found"));

    // Delete leaves a tombstone at version 3: the entry reads as gone, and a replayed create
    // (expected version 0) cannot bring it back; a create at the tombstone's version can.
    c.vault_delete(&e, &owner, "alpha", 2).unwrap();
    let (status, _, m) = api_code(c.vault_get(&e, &owner, "alpha").unwrap_err());
    assert_eq!(status, 404, "{m}");
    let (status, code, _) = api_code(c.vault_put(&e, &owner, "alpha", b"one", 0).unwrap_err());
    assert_eq!((status, code.as_str()), (409, "version_conflict"));
    let (status, _, _) = api_code(c.vault_delete(&e, &owner, "alpha", 2).unwrap_err());
    assert_eq!(status, 404);
    assert_eq!(
        c.vault_put(&e, &stranger, "alpha", b"new", 3)
            .unwrap()
            .version,
        4
    );
    assert_eq!(
        c.vault_get(&e, &stranger, "alpha").unwrap(),
        (b"new".to_vec(), 4)
    );
}

#[test]
fn an_enclave_killed_mid_write_keeps_every_acknowledged_write() {
    let mut d = Deployment::new("sigkill", None);
    let owner = OwnerKey::generate().unwrap();
    let mut acked = 0u64;
    for round in 0..3u64 {
        d.start_enclave();
        d.wait_sealing(true);
        let (c, e) = d.attest();
        // The value after a restart is the last acknowledged write or the one in flight.
        if acked > 0 {
            let (value, version) = c.vault_get(&e, &owner, "counter").unwrap();
            assert!(
                version == acked || version == acked + 1,
                "version {version} after {acked} acknowledged writes"
            );
            assert_eq!(value, format!("value-{version}").into_bytes());
            acked = version;
        }
        let endpoint = d.endpoint();
        let writer = std::thread::spawn({
            let owner_bytes = common::owner_secret(&owner);
            move || {
                let owner = OwnerKey::from_bytes(&owner_bytes).unwrap();
                let c = Client::new(&endpoint).unwrap();
                let mut last = acked;
                loop {
                    let next = last + 1;
                    match c.vault_put(
                        &e,
                        &owner,
                        "counter",
                        format!("value-{next}").as_bytes(),
                        last,
                    ) {
                        Ok(w) => {
                            assert_eq!(w.version, next);
                            last = next;
                        }
                        Err(_) => return last,
                    }
                }
            }
        });
        std::thread::sleep(Duration::from_millis(300 + 250 * round));
        d.kill_enclave();
        let done = writer.join().unwrap();
        assert!(done > acked, "round {round}: no write was acknowledged");
        acked = done;
    }
    d.start_enclave();
    d.wait_sealing(true);
    let (c, e) = d.attest();
    let (value, version) = c.vault_get(&e, &owner, "counter").unwrap();
    assert!(version == acked || version == acked + 1);
    assert_eq!(value, format!("value-{version}").into_bytes());
}

#[test]
fn tampered_swapped_and_replayed_blobs_are_refused() {
    let mut d = Deployment::new("tamper", None);
    d.start_enclave();
    d.wait_sealing(true);
    let owner = OwnerKey::generate().unwrap();
    let (c, e) = d.attest();
    c.vault_put(&e, &owner, "a", b"A1", 0).unwrap();
    let a_v1 = std::fs::read(d.blob_file("a")).unwrap();
    c.vault_put(&e, &owner, "a", b"A2", 1).unwrap();
    c.vault_put(&e, &owner, "b", b"B1", 0).unwrap();
    let a_v2 = std::fs::read(d.blob_file("a")).unwrap();
    let b_v1 = std::fs::read(d.blob_file("b")).unwrap();

    let with_files = |d: &mut Deployment, a: &[u8]| {
        d.kill_shim();
        std::fs::write(d.blob_file("a"), a).unwrap();
        d.start_shim();
    };
    let refused = |c: &Client, e: &AttestedEnclave, want: &str| {
        let (status, code, message) = api_code(c.vault_get(e, &owner, "a").unwrap_err());
        assert_eq!(status, 502, "{code}: {message}");
        assert_eq!(code, want, "{message}");
        message
    };

    // One flipped byte of ciphertext.
    let mut tampered = a_v2.clone();
    *tampered.last_mut().unwrap() ^= 1;
    with_files(&mut d, &tampered);
    let m = refused(&c, &e, "sealed_blob_rejected");
    assert!(m.contains("auth_failed"), "{m}");

    // The older version of the same entry: this boot has seen version 2.
    with_files(&mut d, &a_v1);
    let m = refused(&c, &e, "rollback_detected");
    assert!(m.contains("rollback"), "{m}");

    // Another entry's blob under this name, to a freshly booted enclave.
    with_files(&mut d, &b_v1);
    d.kill_enclave();
    d.start_enclave();
    d.wait_sealing(true);
    let (c, e) = d.attest();
    let m = refused(&c, &e, "sealed_blob_rejected");
    assert!(m.contains("id_mismatch"), "{m}");

    // The sealed blob cut short, in a well-formed store file (magic | version | length |
    // data; a torn file the store itself would skip).
    let mut short = a_v2[..a_v2.len() - 20].to_vec();
    let len = (short.len() - 24) as u64;
    short[16..24].copy_from_slice(&len.to_be_bytes());
    with_files(&mut d, &short);
    let m = refused(&c, &e, "sealed_blob_rejected");
    assert!(m.contains("auth_failed") || m.contains("truncated"), "{m}");

    // The genuine blob back: readable again, and b was never touched.
    with_files(&mut d, &a_v2);
    assert_eq!(c.vault_get(&e, &owner, "a").unwrap(), (b"A2".to_vec(), 2));
    assert_eq!(c.vault_get(&e, &owner, "b").unwrap(), (b"B1".to_vec(), 1));

    // What sealing cannot stop (see seal::format): a parent that replays an old version to
    // an enclave that has not seen a newer one since it booted is believed.
    with_files(&mut d, &a_v1);
    d.kill_enclave();
    d.start_enclave();
    d.wait_sealing(true);
    let (c, e) = d.attest();
    assert_eq!(c.vault_get(&e, &owner, "a").unwrap(), (b"A1".to_vec(), 1));
}

fn manifest_with_pcr0(dir: &Path, pcr0: &str) -> PathBuf {
    let text = std::fs::read_to_string(workspace().join("pcr-manifest.json")).unwrap();
    let mut m: serde_json::Value = serde_json::from_str(&text).unwrap();
    m["Measurements"]["PCR0"] = serde_json::Value::String(pcr0.into());
    let p = dir.join(format!("manifest-{}.json", &pcr0[..8]));
    std::fs::write(&p, serde_json::to_string_pretty(&m).unwrap()).unwrap();
    p
}

#[test]
fn an_enclave_with_other_pcrs_cannot_unseal() {
    let good = "11".repeat(48);
    let other = "22".repeat(48);
    let mut d = Deployment::new("pcrs", Some(&good));
    let good_manifest = manifest_with_pcr0(&d.dir, &good);
    let other_manifest = manifest_with_pcr0(&d.dir, &other);

    // The image the key policy names makes the data key and seals an entry.
    d.simulated_pcrs = Some(good_manifest.clone());
    d.start_enclave();
    assert_eq!(d.wait_sealing(true)["origin"], "generated");
    let owner = OwnerKey::generate().unwrap();
    let (c, e) = d.attest();
    c.vault_put(&e, &owner, "secret", b"for the good image only", 0)
        .unwrap();
    d.kill_enclave();

    // Another image (other PCR0), and one with zero PCRs: KMS refuses both.
    for pcrs in [Some(other_manifest), None] {
        d.simulated_pcrs = pcrs;
        d.start_enclave();
        let s = d.wait_sealing(false);
        assert_eq!(s["state"], "starting", "{s}");
        let err = s["error"].as_str().unwrap();
        assert!(err.contains("AccessDenied"), "{err}");
        assert_eq!(s["error_code"], "kms_refused", "{s}");
        let (c, e) = d.attest();
        let (status, code, _) = api_code(c.vault_get(&e, &owner, "secret").unwrap_err());
        assert_eq!((status, code.as_str()), (503, "sealing_unavailable"));
        d.kill_enclave();
    }

    // The good image still can.
    d.simulated_pcrs = Some(good_manifest);
    d.start_enclave();
    assert_eq!(d.wait_sealing(true)["origin"], "recovered");
    let (c, e) = d.attest();
    assert_eq!(
        c.vault_get(&e, &owner, "secret").unwrap().0,
        b"for the good image only"
    );
}

#[test]
fn the_shim_refuses_egress_the_allow_list_does_not_name() {
    let mut d = Deployment::new("egress", None);
    // The enclave asks for another region's KMS; the shim allows only us-east-1's.
    d.region = "eu-west-1";
    d.start_enclave();
    let s = d.wait_sealing(false);
    let err = s["error"].as_str().unwrap();
    assert!(err.contains("not_allowed"), "{err}");
    assert_eq!(s["error_code"], "kms_unreachable", "{s}");
    assert!(err.contains("kms.eu-west-1.amazonaws.com:443"), "{err}");
}
