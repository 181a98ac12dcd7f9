//! The registry end to end in local mode: an instance (a simulated Nitro application with its
//! own X25519 key) is refused until two of three administrators allow its measurements, then
//! provisioned with its resolved configuration, its role's secrets and a certificate from the
//! application's CA naming its attested key; the change log verifies against the head the
//! registry attests, and a tampered entry is caught.

mod common;

use std::time::Instant;

use common::{api_error, target_dir};
use sigil_attestation::simulator::SimulatedIssuer;
use sigil_client::quorum::AdminKey;
use sigil_client::registry::{check_log, open_provision};
use sigil_e2e::deployment::Deployment;
use sigil_protocol::encap::ServerKey;
use sigil_protocol::registry::Change;
use sigil_protocol::wire::{Hex, SecretBase64};

/// A Nitro application's attestation document: its PCR1 and PCR2, its key, the nonce.
fn instance_document(
    issuer: &SimulatedIssuer,
    pcr1: u8,
    pcr2: u8,
    key: &ServerKey,
    nonce: &[u8; 32],
) -> Vec<u8> {
    let mut doc = issuer
        .document(Some(&key.public_key()), None, Some(nonce))
        .unwrap();
    doc.pcrs.insert(1, vec![pcr1; 48]);
    doc.pcrs.insert(2, vec![pcr2; 48]);
    issuer.sign_document(&doc).unwrap()
}

#[test]
fn the_registry_provisions_an_allowed_instance_and_its_log_verifies() {
    let base = target_dir()
        .join("test-registry")
        .join(format!("provision-{}", std::process::id()));
    let (keys, quorum) = common::quorum_admins(&base.join("admins"), &["alice", "bob", "carol"]);
    let mut d = Deployment::new(
        base.join("registry"),
        common::enclave_bin(),
        common::profile_bin("sigil-shim"),
        None,
    );
    d.quorum = Some(quorum);
    d.registry = Some(r#"{"trust_test_root": true}"#.into());
    d.without_kms = true;
    d.start_enclave();
    d.wait_sealing_state("awaiting_genesis");
    let (c, e) = common::attest_local(&d.endpoint());
    c.quorum_genesis(&e, &keys[0]).unwrap();
    let shares: Vec<_> = keys
        .iter()
        .map(|k| c.quorum_share_fetch(&e, k).unwrap())
        .collect();
    d.wait_sealing(true);
    let (c, e) = common::attest_local(&d.endpoint());
    assert_eq!(
        e.image.registry_log,
        Some([0; 32]),
        "an empty log's head is attested"
    );

    let issuer = SimulatedIssuer::new().unwrap();
    let instance = ServerKey::generate().unwrap();
    let register = |pcr1: u8| {
        let nonce = c.registry_challenge(&e).unwrap().nonce.0;
        let doc = instance_document(&issuer, pcr1, 0x22, &instance, &nonce);
        (nonce, doc.clone(), c.registry_register(&e, doc))
    };

    // Not on the allow-list: refused (as often as it is sent).
    let (_, doc, refused) = register(0x11);
    let (status, code, _) = api_error(refused.unwrap_err());
    assert_eq!((status, code.as_str()), (403, "instance_not_allowed"));
    let (_, code, _) = api_error(c.registry_register(&e, doc).unwrap_err());
    assert_eq!(code, "instance_not_allowed");

    // Changes need two of the three administrators.
    let allow = Change::Allow {
        app: "web".into(),
        role: "server".into(),
        pcr0: None,
        pcr1: Hex([0x11; 48]),
        pcr2: Hex([0x22; 48]),
    };
    let (status, code, _) = api_error(
        c.registry_change(&e, allow.clone(), &[&keys[1]])
            .unwrap_err(),
    );
    assert_eq!((status, code.as_str()), (401, "bad_approval"));
    let stranger = AdminKey::from_seed(&[9; 32]).unwrap();
    assert!(
        c.registry_change(&e, allow.clone(), &[&keys[0], &stranger])
            .is_err()
    );
    let base_config = serde_json::json!({"host": "db.internal", "port": 5432});
    let t = Instant::now();
    c.registry_change(
        &e,
        Change::Config {
            app: "db".into(),
            template: base_config.clone(),
        },
        &[&keys[0], &keys[2]],
    )
    .unwrap();
    let change_ms = t.elapsed().as_millis();
    let db_hash = {
        use ring::digest::{SHA256, digest};
        hex::encode(digest(&SHA256, &serde_json::to_vec(&base_config).unwrap()))
    };
    for (name, roles, value) in [
        ("db-password", vec!["server".to_string()], "hunter2"),
        ("admin-token", vec!["admin".to_string()], "root-only"),
    ] {
        c.registry_change(
            &e,
            Change::Secret {
                app: "web".into(),
                name: name.into(),
                roles,
                value: SecretBase64::copy_of(value.as_bytes()),
                salt: Hex([name.len() as u8; 32]),
            },
            &[&keys[1], &keys[2]],
        )
        .unwrap();
    }
    c.registry_change(
        &e,
        Change::Config {
            app: "web".into(),
            template: serde_json::json!({
                "db": {"$config": db_hash},
                "password": {"$secret": "db-password"},
                "mode": "production",
            }),
        },
        &[&keys[0], &keys[1]],
    )
    .unwrap();
    // A reference to a configuration that does not exist is refused.
    let (_, code, _) = api_error(
        c.registry_change(
            &e,
            Change::Config {
                app: "web".into(),
                template: serde_json::json!({"db": {"$config": "00".repeat(32)}}),
            },
            &[&keys[0], &keys[1]],
        )
        .unwrap_err(),
    );
    assert_eq!(code, "bad_change");
    let log = c.registry_change(&e, allow, &[&keys[0], &keys[1]]).unwrap();
    assert_eq!(
        (log.total, log.entries.len()),
        (5, 1),
        "a change answers its entry"
    );

    // Now allowed: provisioned, sealed to the instance's key.
    let t = Instant::now();
    let (nonce, doc, provisioned) = register(0x11);
    let provisioned = provisioned.unwrap();
    let register_ms = t.elapsed().as_millis();
    let (_, code, _) = api_error(c.registry_register(&e, doc).unwrap_err());
    assert_eq!(
        code, "unknown_challenge",
        "a challenge answers one registration"
    );
    // A nonce the registry did not issue is refused.
    let forged = instance_document(&issuer, 0x11, 0x22, &instance, &[7; 32]);
    let (_, code, _) = api_error(c.registry_register(&e, forged).unwrap_err());
    assert_eq!(code, "unknown_challenge");
    assert_eq!(
        (provisioned.app.as_str(), provisioned.role.as_str()),
        ("web", "server")
    );
    let other = ServerKey::generate().unwrap();
    assert!(open_provision(&other, &e.public_key, &nonce, &provisioned).is_err());
    // A provision sealed by anyone but the attested registry does not open.
    let forger = ServerKey::generate().unwrap();
    let (enc, ct) = forger
        .seal_auth(
            &instance.public_key(),
            &sigil_protocol::registry::provision_info(&nonce),
            &[],
            b"{}",
        )
        .unwrap();
    let forged = sigil_protocol::registry::Provisioned {
        enc: Hex(enc),
        ciphertext: sigil_protocol::wire::Base64Bytes(ct),
        ..provisioned.clone()
    };
    assert!(open_provision(&instance, &e.public_key, &nonce, &forged).is_err());
    assert!(open_provision(&instance, &forger.public_key(), &nonce, &provisioned).is_err());
    let p = open_provision(&instance, &e.public_key, &nonce, &provisioned).unwrap();
    assert_eq!(
        p.config,
        serde_json::json!({
            "db": {"host": "db.internal", "port": 5432},
            "password": "hunter2",
            "mode": "production",
        })
    );
    assert_eq!(
        p.secrets.keys().collect::<Vec<_>>(),
        vec!["db-password"],
        "only the role's secrets"
    );
    assert_eq!(p.secrets["db-password"].expose(), b"hunter2");

    // The certificate chains to the application's CA and names the instance's key.
    let pem = |text: &str| x509_parser::pem::parse_x509_pem(text.as_bytes()).unwrap().1;
    let (cert_pem, ca_pem) = (pem(&p.tls_cert_pem), pem(&p.ca_cert_pem));
    let cert = cert_pem.parse_x509().unwrap();
    let ca = ca_pem.parse_x509().unwrap();
    cert.verify_signature(Some(ca.public_key()))
        .expect("signed by the application's CA");
    assert!(ca.is_ca());
    let sans = format!(
        "{:?}",
        cert.subject_alternative_name().unwrap().unwrap().value
    );
    assert!(
        sans.contains(&hex::encode(instance.public_key())),
        "the certificate names the instance's key: {sans}"
    );
    assert!(p.tls_key_pem.contains("PRIVATE KEY"));

    // The log verifies against the head a fresh document attests; a tampered entry does not.
    let log = c
        .registry_log_verified(&e, common::test_root_policy())
        .unwrap();
    assert_eq!(log.entries.len(), 5);
    let text = serde_json::to_string(&log).unwrap();
    assert!(!text.contains("hunter2"), "no secret value in the log");
    assert!(!text.contains("salt"), "nor its salt");
    let attested = common::attest_local(&d.endpoint()).1.image.registry_log;
    check_log(&log, attested).unwrap();
    let mut tampered = log.clone();
    tampered.entries[4].change["role"] = "admin".into();
    let err = check_log(&tampered, attested).unwrap_err().to_string();
    assert!(err.contains("entry 4"), "{err}");
    let mut dropped = log.clone();
    dropped.entries.pop();
    dropped.head = dropped.entries[3].hash;
    assert!(
        check_log(&dropped, attested).is_err(),
        "a hidden change is caught"
    );

    // The CLI: the log verified, an instance registered from files.
    let endpoint = d.endpoint();
    let cli = |args: &[&str]| {
        let mut all = vec!["registry", "--endpoint", &endpoint, "--trust-test-root"];
        all.extend_from_slice(args);
        common::sigil_json(&all)
    };
    let out = cli(&["log", "--verify"]);
    assert_eq!(out["verified"], true, "{out}");
    assert_eq!(out["entries"].as_array().unwrap().len(), 5);
    let challenge = cli(&["challenge"]);
    let nonce_hex = challenge["nonce"].as_str().unwrap().to_string();
    let nonce: [u8; 32] = hex::decode(&nonce_hex).unwrap().try_into().unwrap();
    let seed = [0x5a; 32];
    let cli_instance = ServerKey::from_seed(&seed).unwrap();
    let files = base.join("instance");
    std::fs::create_dir_all(&files).unwrap();
    let doc_file = files.join("document.cbor");
    std::fs::write(
        &doc_file,
        instance_document(&issuer, 0x11, 0x22, &cli_instance, &nonce),
    )
    .unwrap();
    let key_file = files.join("instance.key");
    std::fs::write(&key_file, hex::encode(seed)).unwrap();
    let out_dir = files.join("provision");
    let out = cli(&[
        "register",
        "--document",
        doc_file.to_str().unwrap(),
        "--nonce",
        &nonce_hex,
        "--instance-key",
        key_file.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert_eq!(out["role"], "server", "{out}");
    assert_eq!(
        std::fs::read(out_dir.join("secrets/db-password")).unwrap(),
        b"hunter2"
    );
    assert!(out_dir.join("tls.crt").exists() && out_dir.join("ca.crt").exists());
    // A secret change from a file: the CLI draws its salt; the log shows neither.
    let change_file = files.join("secret.json");
    std::fs::write(
        &change_file,
        r#"{"kind": "secret", "app": "web", "name": "api-key", "roles": ["server"], "value": "c2VjcmV0LTI="}"#,
    )
    .unwrap();
    let key = |n: &str| {
        base.join("admins")
            .join(format!("{n}.key"))
            .display()
            .to_string()
    };
    let out = cli(&[
        "change",
        "--change",
        change_file.to_str().unwrap(),
        "--key",
        &key("alice"),
        "--key",
        &key("carol"),
    ]);
    assert_eq!(out["entries"], 6, "{out}");
    let logged = &c.registry_log(&e).unwrap().entries[5].change;
    assert_eq!(logged["name"], "api-key");
    assert!(logged.get("value").is_none() && logged.get("salt").is_none());

    // A client remembers the log's head; the parent keeps a copy of the registry's state.
    let pin = files.join("log.pin");
    let pin = pin.to_str().unwrap();
    cli(&["log", "--verify", "--pin", pin]);
    let state_file = d.dir.join("state").join("b_seal~config~registry");
    let before_revoke = std::fs::read(&state_file).unwrap();

    // Revoked: refused again.
    c.registry_change(
        &e,
        Change::Revoke {
            pcr1: Hex([0x11; 48]),
            pcr2: Hex([0x22; 48]),
        },
        &[&keys[1], &keys[2]],
    )
    .unwrap();
    let (_, code, _) = api_error(register(0x11).2.unwrap_err());
    assert_eq!(code, "instance_not_allowed");
    let out = cli(&["log", "--verify", "--pin", pin]);
    assert_eq!(out["verified"], true, "the log extends the pinned head");

    // The parent rolls the registry back across a restart (the revocation undone): the
    // registry attests the old head consistently, but a client with a pin refuses it.
    d.kill_enclave();
    d.kill_shim();
    std::fs::write(&state_file, &before_revoke).unwrap();
    d.start_shim();
    d.start_enclave();
    d.wait_sealing_state("locked");
    let (c2, e2) = common::attest_local(&d.endpoint());
    c2.quorum_unlock(&e2, &keys[0], &shares[0]).unwrap();
    c2.quorum_unlock(&e2, &keys[1], &shares[1]).unwrap();
    d.wait_sealing(true);
    let endpoint = d.endpoint();
    let out = common::sigil(&[
        "registry",
        "--endpoint",
        &endpoint,
        "--trust-test-root",
        "log",
        "--verify",
        "--pin",
        pin,
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a rolled-back log passes the pin");
    assert!(stderr.contains("rolled back"), "{stderr}");
    eprintln!(
        "registry (debug build): change {change_ms} ms, registration {register_ms} ms, \
         provision {} bytes sealed",
        provisioned.ciphertext.0.len()
    );
}
