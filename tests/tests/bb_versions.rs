//! Several bb versions served side by side, in local mode: the default (5.0.0, `target/bb/bb`)
//! and Aztec's published release 4.1.2 (`target/bb/4.1.2/bb` with its own C/C++ runtime, both
//! from `scripts/fetch-bb --version 4.1.2`). A request names its version; none means the
//! default; an unknown one is refused by name; the attestation lists every version with its
//! hashes.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Enclave, target_dir};
use sigil_client::{Client, ClientError};
use sigil_e2e::fixture;

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref())
}

/// The runtime digest user_data carries: sha256 of "<file> <sha256>\n" lines, by name.
fn runtime_digest(dir: &Path) -> String {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".so"))
        .collect();
    names.sort();
    let list: String = names
        .iter()
        .map(|n| format!("{n} {}\n", sha256_hex(&std::fs::read(dir.join(n)).unwrap())))
        .collect();
    sha256_hex(list.as_bytes())
}

fn wait_crs(endpoint: &str) {
    let start = Instant::now();
    loop {
        let body = ureq::get(format!("{endpoint}/v1/health"))
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        if v["crs"]["state"] == "ready" {
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "CRS: {v}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_request_names_its_bb_version_and_an_unknown_one_is_refused_by_name() {
    let bb5 = common::bb();
    let bb4 = target_dir().join("bb/4.1.2/bb");
    assert!(
        bb4.exists(),
        "{} is missing: scripts/setup fetches it (scripts/fetch-bb --version 4.1.2)",
        bb4.display()
    );
    let points = 32_769;
    let (dir, _shim) = common::crs_shim("test-bb-versions", "both");
    let config = dir.join("enclave.json");
    let sha = common::sha256_of_crs_points(points);
    std::fs::write(
        &config,
        format!(
            r#"{{"prover": {{"crs_sha256": "{sha}", "crs_points": {points}, "time_limit_secs": 120}}}}"#
        ),
    )
    .unwrap();
    let blobs = format!("unix:{}", dir.join("blobs.sock").display());
    let v4 = format!("4.1.2={}", bb4.display());
    let enclave = Enclave::start(&[
        "--config",
        config.to_str().unwrap(),
        "--blob-store",
        &blobs,
        "--bb",
        bb5.to_str().unwrap(),
        "--bb",
        &v4,
    ]);
    wait_crs(&enclave.endpoint());

    let c = Client::new(&enclave.endpoint()).unwrap();
    let e = c.attest(common::test_root_policy()).unwrap();
    // The attestation lists both, the default first, each with the hash of what runs; 4.1.2
    // with the digest of its own runtime. Its version string comes from running it in the
    // sandbox at start, so 4.1.2 runs there under its runtime.
    let served = &e.image.bb_served;
    let names: Vec<&str> = served.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(names, ["5.0.0", "4.1.2"], "{served:?}");
    assert!(served[0].version.starts_with("5.0.0"), "{served:?}");
    assert_eq!(served[0].sha256, sha256_hex(&std::fs::read(&bb5).unwrap()));
    assert_eq!(served[0].runtime, None);
    assert_eq!(served[1].version, "4.1.2");
    assert_eq!(served[1].sha256, sha256_hex(&std::fs::read(&bb4).unwrap()));
    assert_eq!(
        served[1].runtime.as_deref(),
        Some(runtime_digest(bb4.parent().unwrap()).as_str())
    );
    // Older clients read "bb": still the default.
    assert_eq!(e.image.bb.as_ref().unwrap().sha256, served[0].sha256);

    let circuit = std::fs::read(fixture("tiny", "target.json")).unwrap();
    let witness = std::fs::read(fixture("tiny", "witness.gz")).unwrap();
    let prove = |version: Option<&str>| {
        let job = c.prove_submit_with(&e, &circuit, &witness, "default", version)?;
        c.prove_wait(&job, Duration::from_secs(120), |_| {})
    };
    // No version, and the default's name: 5.0.0 proves.
    for version in [None, Some("5.0.0")] {
        let p = prove(version).unwrap_or_else(|err| panic!("{version:?}: {err}"));
        assert!(p.result.bb_version.starts_with("5.0.0"), "{version:?}");
        assert!(!p.proof.is_empty());
    }
    // 4.1.2 runs, but the fixture is compiled by Noir 1.0.0-beta.26, whose ACIR bb 4.1.2
    // cannot read: a clear failure naming bb's complaint, not a hang or a wrong proof.
    match prove(Some("4.1.2")) {
        Err(ClientError::Api { code, message, .. }) => {
            assert_eq!(code.to_string(), "bad_circuit", "{message}");
            assert!(message.contains("current_witness_index"), "{message}");
        }
        Ok(_) => panic!("bb 4.1.2 proved beta.26 bytecode: update this test and the docs"),
        Err(other) => panic!("bb 4.1.2 on beta.26 bytecode: {other}"),
    }
    // An unknown version is refused at submission, by name, listing what is served.
    match c.prove_submit_with(&e, &circuit, &witness, "default", Some("9.9.9")) {
        Err(ClientError::Api {
            status,
            code,
            message,
        }) => {
            assert_eq!(
                (status, code.to_string().as_str()),
                (400, "unknown_bb_version")
            );
            assert!(
                message.contains("\"9.9.9\"") && message.contains("5.0.0, 4.1.2"),
                "{message}"
            );
        }
        Ok(_) => panic!("9.9.9 was accepted"),
        Err(other) => panic!("9.9.9: {other}"),
    }
}
