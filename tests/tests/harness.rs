//! The built image booted in the QEMU harness: heartbeat, attestation from inside the VM,
//! an encapsulated round trip through guest vsock, logs on the log port, clean stop.

mod common;

use sigil_e2e::harness::{Harness, Options};

fn eif() -> std::path::PathBuf {
    let p = common::target_dir().join("eif/sigil.eif");
    assert!(
        p.exists(),
        "{} is missing: scripts/test builds it with reproducible-build/build",
        p.display()
    );
    p
}

#[test]
fn the_image_boots_attests_and_answers_sealed_requests() {
    let mut h = Harness::boot(&Options::new(eif())).unwrap_or_else(|e| panic!("boot: {e}"));
    eprintln!(
        "booted in {} ms with {:?}",
        h.boot_time.as_millis(),
        h.accel
    );

    let v = common::sigil_json(&["attest", "--endpoint", &h.endpoint, "--trust-test-root"]);
    assert_eq!(v["image"]["mode"], "harness");
    assert_eq!(v["root"], "sigil-test-root");
    assert!(v["module_id"].as_str().unwrap().contains("simulated"));

    let refused = common::sigil(&["attest", "--endpoint", &h.endpoint]);
    assert_eq!(refused.status.code(), Some(1));

    let v = common::sigil_json(&[
        "ping",
        "--endpoint",
        &h.endpoint,
        "--trust-test-root",
        "--message",
        "through vsock",
    ]);
    assert_eq!(v["message"], "through vsock");

    // The enclave's own log stream reached the parent's log port.
    let mut seen = false;
    for _ in 0..50 {
        if h.logs()
            .iter()
            .any(|l| l.contains("heartbeat acknowledged"))
        {
            seen = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(
        seen,
        "log port got: {:?}\nconsole:\n{}",
        h.logs(),
        h.console_tail(40)
    );
    assert!(h.logs().iter().any(|l| l.contains("HARNESS MODE")));

    assert!(h.running());
    h.shutdown();
    assert!(!h.running());
}

/// A parent that answers the heartbeat wrongly is not the parent the enclave expects: PID 1
/// logs why and powers the machine off (QEMU exits by itself), it does not hang or serve.
#[test]
fn a_wrong_heartbeat_answer_powers_the_enclave_off() {
    let mut opts = Options::new(eif());
    opts.heartbeat_reply = 0x00;
    opts.boot_timeout = std::time::Duration::from_secs(60);
    let err = match Harness::boot(&opts) {
        Ok(_) => panic!("the enclave served after a wrong heartbeat answer"),
        Err(e) => e,
    };
    assert!(err.contains("QEMU exited (exit status: 0)"), "{err}");
    assert!(err.contains("heartbeat answered 0x00"), "{err}");
    assert!(err.contains("powering off"), "{err}");
}

/// The image's sealed state through the real shim in the harness: the enclave gets its data
/// key from the development KMS over TLS through the shim's egress proxy (the image's
/// measured configuration names it), seals a vault entry into the shim's blob store, is
/// powered off, and a fresh boot of the same image recovers the key and reads the entry.
#[test]
fn sealed_state_survives_reboots_and_a_power_cut_mid_write() {
    use sigil_client::{Client, OwnerKey};

    let state = common::fresh_dir("test-sealed", "harness");
    let (_kms, opts) = with_dev_parent(&state);
    let owner = OwnerKey::generate().unwrap();
    let mut acked = 0u64;

    // Boot 0 makes the data key and writes; boot 1 recovers it, reads, and is killed (SIGKILL
    // to QEMU) in the middle of a stream of writes; boot 2 finds the last acknowledged write
    // (or the one in flight), intact.
    for boot in 0..3 {
        let mut h = Harness::boot(&opts).unwrap_or_else(|e| panic!("boot {boot}: {e}"));
        let sealing = common::wait_sealing_ready(&h.endpoint, || h.console_tail(40));
        assert_eq!(
            sealing["origin"],
            if boot == 0 { "generated" } else { "recovered" },
            "{sealing}"
        );
        let client = Client::new(&h.endpoint).unwrap();
        let enclave = client.attest(common::test_root_policy()).unwrap();
        if boot == 0 {
            let w = client
                .vault_put(&enclave, &owner, "harness-entry", b"value-1", 0)
                .unwrap();
            assert_eq!(w.version, 1);
            acked = 1;
            h.shutdown();
            continue;
        }
        acked =
            common::vault_version_after_restart(&client, &enclave, &owner, "harness-entry", acked);
        if boot == 2 {
            h.shutdown();
            break;
        }
        let writer = std::thread::spawn({
            let endpoint = h.endpoint.clone();
            let secret = common::owner_secret(&owner);
            move || {
                let owner = OwnerKey::from_bytes(&secret).unwrap();
                let client = Client::new(&endpoint).unwrap();
                let mut last = acked;
                loop {
                    let next = last + 1;
                    let value = format!("value-{next}");
                    match client.vault_put(
                        &enclave,
                        &owner,
                        "harness-entry",
                        value.as_bytes(),
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
        std::thread::sleep(std::time::Duration::from_millis(1500));
        h.power_cut();
        let done = writer.join().unwrap();
        assert!(
            done > acked,
            "no write was acknowledged before the power cut"
        );
        acked = done;
    }
    let _ = std::fs::remove_dir_all(&state);
}

/// The image's own bb (pinned, in the first ramdisk with its loader and libc) proves inside the
/// VM: the CRS comes from the shim's blob store and is checked against the image's measured
/// pin, the inputs travel encrypted, and the proof verifies with the host's bb.
#[test]
fn the_image_proves_with_its_measured_bb() {
    use sigil_client::Client;
    use sigil_e2e::harness::ShimOptions;

    let state = common::fresh_dir("test-sealed", "harness-prove");
    let mut opts = Options::new(eif());
    opts.shim = Some(ShimOptions {
        bin: common::profile_bin("sigil-shim"),
        state_dir: state.clone(),
        egress_allow: "kms.us-east-1.amazonaws.com:443".into(),
        egress_resolve: None,
        crs: Some(common::shared("crs/bn254_g1.dat")),
    });
    let mut h = Harness::boot(&opts).unwrap_or_else(|e| panic!("boot: {e}"));
    let start = std::time::Instant::now();
    let health = loop {
        let h2: serde_json::Value = ureq::get(format!("{}/v1/health", h.endpoint))
            .call()
            .ok()
            .and_then(|mut r| r.body_mut().read_to_string().ok())
            .and_then(|b| serde_json::from_str(&b).ok())
            .unwrap_or_default();
        if h2["crs"]["state"] == "ready" {
            break h2;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(120),
            "CRS not ready: {h2}\n{}",
            h.console_tail(40)
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert!(
        health["prover"]["bb_version"]
            .as_str()
            .unwrap()
            .starts_with("5.0.0"),
        "{health}"
    );
    let client = Client::new(&h.endpoint).unwrap();
    let enclave = client.attest(common::test_root_policy()).unwrap();
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/tiny");
    let job = client
        .prove_submit(
            &enclave,
            &std::fs::read(fixtures.join("target.json")).unwrap(),
            &std::fs::read(fixtures.join("witness.gz")).unwrap(),
            "default",
        )
        .unwrap();
    let proof = client
        .prove_wait(&job, std::time::Duration::from_secs(300), |_| {})
        .unwrap_or_else(|e| panic!("{e}\n{}", h.console_tail(40)));
    // The attestation names the bb that ran: the pinned binary the image carries.
    let bb_bytes = std::fs::read(common::target_dir().join("bb/bb")).unwrap();
    assert_eq!(
        enclave.image.bb.as_ref().map(|b| b.sha256.clone()),
        Some(hex::encode(
            ring::digest::digest(&ring::digest::SHA256, &bb_bytes).as_ref()
        ))
    );
    // The image also serves Aztec's release, bb 4.1.2, with its own loader and C/C++ runtime:
    // listed with its hashes, and it runs in the image's sandbox. It cannot read Noir
    // beta.26's bytecode, so the tiny fixture fails as a circuit it does not understand: that
    // message can only come from bb 4.1.2 itself having started and parsed the input.
    let served: Vec<&str> = enclave
        .image
        .bb_served
        .iter()
        .map(|b| b.name.as_str())
        .collect();
    assert_eq!(served, ["5.0.0", "4.1.2"]);
    let bb4 = std::fs::read(common::target_dir().join("bb/4.1.2/bb")).unwrap();
    assert_eq!(
        enclave.image.bb_served[1].sha256,
        hex::encode(ring::digest::digest(&ring::digest::SHA256, &bb4).as_ref())
    );
    let job = client
        .prove_submit_with(
            &enclave,
            &std::fs::read(fixtures.join("target.json")).unwrap(),
            &std::fs::read(fixtures.join("witness.gz")).unwrap(),
            "default",
            Some("4.1.2"),
        )
        .unwrap();
    match client.prove_wait(&job, std::time::Duration::from_secs(300), |_| {}) {
        Err(sigil_client::ClientError::Api { code, message, .. }) => {
            assert_eq!(code, "bad_circuit", "{message}\n{}", h.console_tail(40));
            assert!(message.contains("current_witness_index"), "{message}");
        }
        Err(e) => panic!("bb 4.1.2 in the image: {e}\n{}", h.console_tail(40)),
        Ok(_) => panic!("bb 4.1.2 proved beta.26 bytecode: update this test"),
    }
    // Bad inputs fail with their codes inside the image too.
    let fixtures_bad = fixtures.join("../unsatisfied");
    for (circuit, witness, want) in [
        (
            std::fs::read(fixtures_bad.join("target.json")).unwrap(),
            std::fs::read(fixtures_bad.join("witness.gz")).unwrap(),
            "unsatisfied",
        ),
        (
            b"{\"not\": \"a circuit\"}".to_vec(),
            std::fs::read(fixtures.join("witness.gz")).unwrap(),
            "bad_circuit",
        ),
    ] {
        let job = client
            .prove_submit(&enclave, &circuit, &witness, "default")
            .unwrap();
        match client.prove_wait(&job, std::time::Duration::from_secs(300), |_| {}) {
            Err(sigil_client::ClientError::Api { code, .. }) => assert_eq!(code, want),
            Err(e) => panic!("{want}: {e}"),
            Ok(_) => panic!("{want}: a proof came back"),
        }
    }
    h.shutdown();

    let out = state.join("out");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("proof"), &proof.proof).unwrap();
    std::fs::write(out.join("public_inputs"), &proof.public_inputs).unwrap();
    std::fs::write(out.join("vk"), &proof.vk).unwrap();
    // The host's bb, with a CRS directory of our own (bb writes a lock file there).
    let crs_dir = state.join("crs");
    std::fs::create_dir_all(&crs_dir).unwrap();
    std::os::unix::fs::symlink(
        common::shared("crs/bn254_g1.dat"),
        crs_dir.join("bn254_g1.dat"),
    )
    .unwrap();
    let ok = common::bb_verifies(&out, &crs_dir);
    assert!(ok, "the host's bb refuses the proof made in the image");
    let _ = std::fs::remove_dir_all(&state);
}

/// The hostile stand-in for bb, built static (the image has only the loader and libc), as the
/// image's bb: an image for this test only, built by the reproducible build with
/// `SIGIL_IMAGE_BB`, with the same kernel, enclave binary and configuration as the real one.
fn hostile_image() -> std::path::PathBuf {
    use std::process::Command;
    let workspace = sigil_e2e::workspace();
    let target = common::target_dir();
    let static_dir = target.join("static-test");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let built = Command::new(&cargo)
        .current_dir(&workspace)
        .env("CARGO_TARGET_DIR", &static_dir)
        .args([
            "build",
            "--locked",
            "-q",
            "-p",
            "sigil-hostile-bb",
            "--target",
            "x86_64-unknown-linux-gnu",
            "--config",
            "target.x86_64-unknown-linux-gnu.rustflags=['-C', 'target-feature=+crt-static']",
        ])
        .status()
        .unwrap();
    assert!(built.success(), "building the static hostile-bb failed");
    let bb = static_dir.join("x86_64-unknown-linux-gnu/debug/hostile-bb");
    test_image(&target.join("eif-hostile"), ("SIGIL_IMAGE_BB", &bb))
}

/// A test image built by the reproducible build into `out`, with one test input changed
/// (`SIGIL_IMAGE_BB` or `SIGIL_IMAGE_CONFIG`): the same kernel and enclave binary otherwise.
fn test_image(out: &std::path::Path, input: (&str, &std::path::Path)) -> std::path::PathBuf {
    let workspace = sigil_e2e::workspace();
    let image = std::process::Command::new(workspace.join("reproducible-build/build"))
        .current_dir(&workspace)
        .env(input.0, input.1)
        .env("SIGIL_IMAGE_OUT", out)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(
        image.success(),
        "building the test image ({}) failed",
        input.0
    );
    out.join("sigil.eif")
}

/// Defect 1 in the measured image's own kernel: a compromised bb, run by PID 1 through the
/// sandbox, finds every door shut (no network, no NSM, no other process, nothing writable but
/// its job directory, no mount or namespace) and cannot fill the enclave's memory through its
/// job directory: the jobs' own tmpfs stops it.
#[test]
fn a_hostile_prover_in_the_image_finds_every_door_shut() {
    use sigil_client::Client;
    use sigil_e2e::harness::ShimOptions;

    let eif = hostile_image();
    let state = common::fresh_dir("test-sealed", "harness-hostile");
    let mut opts = Options::new(eif);
    opts.memory_mib = 1024;
    opts.shim = Some(ShimOptions {
        bin: common::profile_bin("sigil-shim"),
        state_dir: state,
        egress_allow: "kms.us-east-1.amazonaws.com:443".into(),
        egress_resolve: None,
        crs: Some(common::shared("crs/bn254_g1.dat")),
    });
    let h = Harness::boot(&opts).unwrap_or_else(|e| panic!("boot: {e}"));
    let start = std::time::Instant::now();
    loop {
        let health: serde_json::Value = ureq::get(format!("{}/v1/health", h.endpoint))
            .call()
            .ok()
            .and_then(|mut r| r.body_mut().read_to_string().ok())
            .and_then(|b| serde_json::from_str(&b).ok())
            .unwrap_or_default();
        if health["crs"]["state"] == "ready" {
            assert_eq!(health["prover"]["bb_version"], "hostile-bb 0", "{health}");
            break;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(120),
            "CRS not ready: {health}\n{}",
            h.console_tail(40)
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let doors = serde_json::json!({
        "nsm": ["/dev/nsm"],
        // The enclave's binary and its measured configuration: not in the sandbox's view.
        "secrets": ["/init", "/etc/sigil/enclave.json"],
        // PID 1 is the hostile prover itself in its PID namespace; the enclave is out of sight,
        // and so is any other process.
        "pids": [2],
        "write_dirs": ["/run/sigil/jobs", "/run/sigil/crs", "/run", "/usr/lib/sigil"],
        // More than the jobs' tmpfs holds for one worker (256 MiB).
        "fill_mib": 300,
    });
    let client = Client::new(&h.endpoint).unwrap();
    let enclave = client.attest(common::test_root_policy()).unwrap();
    let job = client
        .prove_submit(
            &enclave,
            &serde_json::to_vec(&doors).unwrap(),
            b"witness",
            "default",
        )
        .unwrap();
    let report = client
        .prove_wait(&job, std::time::Duration::from_secs(300), |_| {})
        .unwrap_or_else(|e| panic!("{e}\n{}", h.console_tail(40)));
    let mut must_try = common::DOORS.to_vec();
    must_try.push("fill the job file system");
    common::assert_doors_shut(&report.proof, &must_try);
    // The enclave still serves after its job directory was filled.
    client.ping(&enclave, "still here").unwrap();
}

/// The image's parent for sealed state: the real shim (its blobs in `state`) and a development
/// KMS that trusts the test root, as the default image's configuration expects.
fn with_dev_parent(state: &std::path::Path) -> (sigil_devkms::RunningServer, Options) {
    dev_parent(state, eif(), true)
}

/// As [`with_dev_parent`], for `image`, with a KMS that admits it (`admit`) or refuses every
/// image (its policy names a PCR0 no image has: the enclave's KMS access is gone).
fn dev_parent(
    state: &std::path::Path,
    image: std::path::PathBuf,
    admit: bool,
) -> (sigil_devkms::RunningServer, Options) {
    use sigil_e2e::harness::ShimOptions;
    use sigil_e2e::shim::{ACCESS_KEY_ID, SECRET_ACCESS_KEY};

    let host = "kms.us-east-1.amazonaws.com:443";
    let config = format!(
        r#"{{"listen": "127.0.0.1:0", "region": "us-east-1",
            "tls_ca_dir": "{}/../devkms/dev-ca",
            "keys": [{{"key_id": "sigil-dev",
                "master_key_hex": "{}",
                "policy": {{"allowed_credentials": [{{"access_key_id": "{ACCESS_KEY_ID}",
                    "secret_access_key": "{SECRET_ACCESS_KEY}"}}],
                    "trust_test_root": true, {}}}}}]}}"#,
        env!("CARGO_MANIFEST_DIR"),
        "42".repeat(32),
        if admit {
            r#""allow_debug": true"#.to_string()
        } else {
            format!(
                r#""allowed_pcrs": {{"0": "{}"}}, "allow_debug": false"#,
                "ee".repeat(48)
            )
        }
    );
    let kms = sigil_devkms::start(&sigil_devkms::Config::from_json(config.as_bytes()).unwrap())
        .expect("development KMS");
    let mut opts = Options::new(image);
    opts.shim = Some(ShimOptions {
        bin: common::profile_bin("sigil-shim"),
        state_dir: state.to_path_buf(),
        egress_allow: host.into(),
        egress_resolve: Some(format!("{host}={}", kms.local_addr())),
        crs: None,
    });
    (kms, opts)
}

/// The measured image is a member of a 2-of-3 FROST group with two local-mode enclaves (its
/// configuration accepts peers that attest its own PCRs under the test root, as they do):
/// the key generation's sealed messages cross between the VM and the processes, and the
/// image signs with either of them.
#[test]
fn the_image_joins_a_frost_group_with_two_local_enclaves_and_signs() {
    use sigil_client::frost::{self, Member};
    use sigil_client::{Client, OwnerKey};
    use sigil_e2e::deployment::Deployment;

    let state = common::fresh_dir("test-frost-harness", "image");
    let (_kms, opts) = with_dev_parent(&state);
    let mut h = Harness::boot(&opts).unwrap_or_else(|e| panic!("boot: {e}"));
    common::wait_sealing_ready(&h.endpoint, || h.console_tail(40));
    let locals: Vec<Deployment> = ["local-1", "local-2"]
        .iter()
        .map(|n| {
            let mut d = Deployment::new(
                common::fresh_dir("test-frost-harness", n),
                common::enclave_bin(),
                common::profile_bin("sigil-shim"),
                None,
            );
            d.peers = Some(r#"{"images": ["self"], "trust_test_root": true}"#.into());
            d.start_enclave();
            d.wait_sealing(true);
            d
        })
        .collect();
    let endpoints = [
        h.endpoint.clone(),
        locals[0].endpoint(),
        locals[1].endpoint(),
    ];
    let conns: Vec<_> = endpoints
        .iter()
        .map(|e| {
            let c = Client::new(e).unwrap();
            let a = c.attest(common::test_root_policy()).unwrap();
            (c, a)
        })
        .collect();
    assert_eq!(conns[0].1.image.mode, "harness");
    let members: Vec<Member<'_>> = conns
        .iter()
        .map(|(client, enclave)| Member { client, enclave })
        .collect();
    let owner = OwnerKey::generate().unwrap();
    let view = frost::dkg(&members, 2, &owner)
        .unwrap_or_else(|e| panic!("dkg: {e}\n{}", h.console_tail(40)))
        .remove(0);
    for pair in [[1u16, 2], [1, 3]] {
        let signers: Vec<(u16, Member<'_>)> = pair
            .iter()
            .map(|n| {
                let (client, enclave) = &conns[*n as usize - 1];
                (*n, Member { client, enclave })
            })
            .collect();
        let message = [pair[1] as u8; 32];
        // The client verifies each signature under the output key it computes itself.
        let sigs = frost::sign(&signers, &view, &[message], None, &owner).unwrap();
        let key = secp256k1::XOnlyPublicKey::from_byte_array(sigs.output_key.0).unwrap();
        let sig = secp256k1::schnorr::Signature::from_byte_array(sigs.signatures[0].0);
        assert!(
            secp256k1::SECP256K1
                .verify_schnorr(&sig, &message, &key)
                .is_ok(),
            "signers {pair:?}"
        );
    }
    h.shutdown();
    let _ = std::fs::remove_dir_all(&state);
}

/// The image with a quorum of three administrators in its measured configuration (the stock
/// configuration plus a `quorum` section): built by the reproducible build with
/// `SIGIL_IMAGE_CONFIG`, the same kernel and binary as the published image.
fn quorum_image(keys: &[sigil_client::quorum::AdminKey]) -> std::path::PathBuf {
    let workspace = sigil_e2e::workspace();
    let target = common::target_dir();
    let out = target.join("eif-quorum");
    std::fs::create_dir_all(&out).unwrap();
    let stock = std::fs::read(workspace.join("reproducible-build/config/enclave.json")).unwrap();
    let mut config: serde_json::Value = serde_json::from_slice(&stock).unwrap();
    let admins: Vec<_> = keys
        .iter()
        .zip(["alice", "bob", "carol"])
        .map(|(k, n)| k.admin(n))
        .collect();
    config["quorum"] = serde_json::json!({"threshold": 2, "admins": admins});
    let path = out.join("enclave.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
    test_image(&out, ("SIGIL_IMAGE_CONFIG", &path))
}

/// The measured image (with a quorum section) loses its KMS access and is unlocked by two of
/// its three administrators, its sealed state intact.
#[test]
fn the_image_is_unlocked_by_its_administrators_when_kms_is_gone() {
    use sigil_client::quorum::AdminKey;
    use sigil_client::{Client, OwnerKey};

    let keys: Vec<AdminKey> = (1u8..=3)
        .map(|i| AdminKey::from_seed(&[i; 32]).unwrap())
        .collect();
    let image = quorum_image(&keys);
    let state = common::fresh_dir("test-quorum-harness", "image");
    let owner = OwnerKey::generate().unwrap();

    // Boot 1, KMS admits the image: genesis, shares fetched, a vault entry.
    let shares = {
        let (_kms, opts) = dev_parent(&state, image.clone(), true);
        let mut h = Harness::boot(&opts).unwrap_or_else(|e| panic!("boot: {e}"));
        common::wait_sealing_ready(&h.endpoint, || h.console_tail(40));
        let c = Client::new(&h.endpoint).unwrap();
        let e = c.attest(common::test_root_policy()).unwrap();
        c.quorum_genesis(&e, &keys[0])
            .unwrap_or_else(|e| panic!("genesis: {e}\n{}", h.console_tail(40)));
        c.vault_put(&e, &owner, "harness-quorum", b"kept", 0)
            .unwrap();
        let shares: Vec<_> = keys
            .iter()
            .map(|k| c.quorum_share_fetch(&e, k).unwrap())
            .collect();
        h.shutdown();
        shares
    };

    // Boot 2, KMS refuses: locked until Bob and Carol post their shares.
    let (_kms, opts) = dev_parent(&state, image, false);
    let mut h = Harness::boot(&opts).unwrap_or_else(|e| panic!("boot: {e}"));
    let start = std::time::Instant::now();
    loop {
        let health: serde_json::Value = ureq::get(format!("{}/v1/health", h.endpoint))
            .call()
            .ok()
            .and_then(|mut r| r.body_mut().read_to_string().ok())
            .and_then(|b| serde_json::from_str(&b).ok())
            .unwrap_or_default();
        if health["sealing"]["state"] == "locked" {
            break;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(120),
            "never locked: {health}\n{}",
            h.console_tail(40)
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let c = Client::new(&h.endpoint).unwrap();
    let e = c.attest(common::test_root_policy()).unwrap();
    assert_eq!(e.image.mode, "harness");
    assert_eq!(
        c.quorum_unlock(&e, &keys[1], &shares[1]).unwrap().state,
        "locked"
    );
    assert_eq!(
        c.quorum_unlock(&e, &keys[2], &shares[2]).unwrap().state,
        "unlocked"
    );
    let sealing = common::wait_sealing_ready(&h.endpoint, || h.console_tail(40));
    assert_eq!(sealing["origin"], "quorum", "{sealing}");
    let e = c.attest(common::test_root_policy()).unwrap();
    assert_eq!(
        c.vault_get(&e, &owner, "harness-quorum").unwrap(),
        (b"kept".to_vec().into(), 1)
    );
    h.shutdown();
    let _ = std::fs::remove_dir_all(&state);
}
