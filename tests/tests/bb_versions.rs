//! Several bb versions served side by side, in local mode: the default (5.0.0, `target/bb/bb`)
//! and Aztec's published release 4.1.2 (`target/bb/4.1.2/bb` with its own C/C++ runtime, both
//! from `scripts/fetch-bb --version 4.1.2`). A request names its version; none means the
//! default; an unknown one is refused by name; the attestation lists every version with its
//! hashes.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Enclave, enclave_bin, target_dir};
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

/// The status, code and message of a refusal (`what` names the request in a panic).
fn refusal<T>(r: Result<T, ClientError>, what: &str) -> (u16, String, String) {
    match r {
        Err(ClientError::Api {
            status,
            code,
            message,
        }) => (status, code.to_string(), message),
        Ok(_) => panic!("{what} was accepted"),
        Err(other) => panic!("{what}: {other}"),
    }
}

/// Health's answer once `done` holds for it (within a minute).
fn wait_health(endpoint: &str, done: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let start = Instant::now();
    loop {
        let body = ureq::get(format!("{endpoint}/v1/health"))
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        if done(&v) {
            return v;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "health: {v}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_crs(endpoint: &str) {
    wait_health(endpoint, |v| v["crs"]["state"] == "ready");
}

#[test]
fn a_request_names_its_bb_version_and_an_unknown_one_is_refused_by_name() {
    let bb5 = common::bb();
    let bb4 = bb412();
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
    let unknown = c.prove_submit_with(&e, &circuit, &witness, "default", Some("9.9.9"));
    let (status, code, message) = refusal(unknown, "9.9.9");
    assert_eq!((status, code.as_str()), (400, "unknown_bb_version"));
    assert!(
        message.contains("\"9.9.9\"") && message.contains("5.0.0, 4.1.2"),
        "{message}"
    );
    // Names and targets the body limit allows to be megabytes long are refused without being
    // echoed whole: the sealed refusal stays small (a whole echo would not even seal).
    let long = "9".repeat(2 << 20);
    for (target, version, want) in [
        ("default", long.as_str(), "unknown_bb_version"),
        (long.as_str(), "4.1.2", "bad_target"),
    ] {
        let r = c.prove_submit_with(&e, &circuit, &witness, target, Some(version));
        let (status, code, message) = refusal(r, &format!("a {want} request"));
        assert_eq!((status, code.as_str()), (400, want), "{message}");
        assert!(message.len() < 512, "{} bytes", message.len());
    }
}

/// Starts local mode with `prover` as the configuration's prover section (the CRS pinned as the
/// shared one's first points) and returns what it said when it refused to start.
fn refused_at_start(dir: &Path, prover: serde_json::Value) -> String {
    let points = 32_769;
    let mut prover = prover;
    prover["crs_sha256"] = common::sha256_of_crs_points(points).into();
    prover["crs_points"] = points.into();
    let config = dir.join("enclave.json");
    std::fs::write(&config, serde_json::json!({ "prover": prover }).to_string()).unwrap();
    let blobs = format!("unix:{}", dir.join("blobs.sock").display());
    let out = std::process::Command::new(enclave_bin())
        .args(["--listen", "tcp:127.0.0.1:0", "--blob-store", &blobs])
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("listening"),
        "{err}"
    );
    err
}

/// The measured configuration pins every bb: a binary or runtime other than the pinned one, an
/// unpinned runtime, or a runtime missing a library bb needs stops the enclave at start with
/// the reason (never a prover running something else than what was pinned).
#[test]
fn a_bb_other_than_the_pinned_one_stops_the_prover_at_start() {
    let bb5 = common::bb();
    let bb4 = bb412();
    let dir = common::fresh_dir("test-bb-versions", "pins");
    let sha5 = sha256_hex(&std::fs::read(&bb5).unwrap());
    let sha4 = sha256_hex(&std::fs::read(&bb4).unwrap());
    let runtime4 = runtime_digest(bb4.parent().unwrap());
    let wrong = "0".repeat(64);
    let prover = |bb_sha256: &str, v4: serde_json::Value| {
        serde_json::json!({
            "bb_path": bb5,
            "bb_version": "5.0.0",
            "bb_sha256": bb_sha256,
            "bb_versions": [v4],
        })
    };
    let v4 = |path: &Path, sha256: &str, runtime: Option<&str>| {
        let mut v = serde_json::json!({ "version": "4.1.2", "path": path, "sha256": sha256 });
        if let Some(r) = runtime {
            v["runtime_sha256"] = r.into();
        }
        v
    };
    let bb5_shown = std::fs::canonicalize(&bb5).unwrap().display().to_string();
    let bb4_shown = std::fs::canonicalize(&bb4).unwrap().display().to_string();

    // The default's pin.
    let err = refused_at_start(&dir, prover(&wrong, v4(&bb4, &sha4, Some(&runtime4))));
    assert!(
        err.contains(&format!(
            "{bb5_shown} has sha256 {sha5}, not the pinned {wrong}"
        )),
        "{err}"
    );
    // A further version's pin.
    let err = refused_at_start(&dir, prover(&sha5, v4(&bb4, &wrong, Some(&runtime4))));
    assert!(
        err.contains(&format!(
            "{bb4_shown} has sha256 {sha4}, not the pinned {wrong}"
        )),
        "{err}"
    );
    // Its runtime's pin: wrong, or absent while a runtime is there.
    let err = refused_at_start(&dir, prover(&sha5, v4(&bb4, &sha4, Some(&wrong))));
    assert!(
        err.contains(&format!("has sha256 {runtime4}, not the pinned {wrong}")),
        "{err}"
    );
    // What it prints, pinned while another version is not pinned whole (so checked before
    // the service starts): held all the same.
    let mut printed = v4(&bb4, &sha4, Some(&runtime4));
    printed["version_output"] = "4.1.3".into();
    let err = refused_at_start(&dir, prover(&sha5, printed));
    assert!(
        err.contains(&format!(
            "{bb4_shown} --version prints \"4.1.2\", not the pinned \"4.1.3\""
        )),
        "{err}"
    );
    let err = refused_at_start(&dir, prover(&sha5, v4(&bb4, &sha4, None)));
    assert!(
        err.contains("bb_versions entry's runtime_sha256 is needed"),
        "{err}"
    );
    // The default's runtime: a default bb that brings one is pinned by bb_runtime_sha256.
    let default4 = |runtime: Option<&str>| {
        let mut p = serde_json::json!({
            "bb_path": bb4,
            "bb_version": "4.1.2",
            "bb_sha256": sha4,
        });
        if let Some(r) = runtime {
            p["bb_runtime_sha256"] = r.into();
        }
        p
    };
    let err = refused_at_start(&dir, default4(None));
    assert!(
        err.contains(&format!(
            "(sha256 {runtime4}) is not pinned: prover.bb_runtime_sha256"
        )),
        "{err}"
    );
    let err = refused_at_start(&dir, default4(Some(&wrong)));
    assert!(
        err.contains(&format!("has sha256 {runtime4}, not the pinned {wrong}")),
        "{err}"
    );

    // A runtime without one of the libraries bb needs (pinned as it is): the loader would take
    // the system's copy, so the prover refuses it, naming the library.
    let partial = dir.join("partial");
    std::fs::create_dir_all(&partial).unwrap();
    for e in std::fs::read_dir(bb4.parent().unwrap()).unwrap() {
        let e = e.unwrap();
        if e.file_name() != "libm.so.6" {
            std::fs::hard_link(e.path(), partial.join(e.file_name()))
                .or_else(|_| std::fs::copy(e.path(), partial.join(e.file_name())).map(|_| ()))
                .unwrap();
        }
    }
    let partial_bb = partial.join("bb");
    let digest = runtime_digest(&partial);
    let err = refused_at_start(&dir, prover(&sha5, v4(&partial_bb, &sha4, Some(&digest))));
    assert!(
        err.contains("needs libm.so.6") && err.contains("lacks"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// bb 4.1.2 with its runtime beside it, as `scripts/fetch-bb --version 4.1.2` installs it (a
/// missing one fails the test with the command that makes it).
fn bb412() -> std::path::PathBuf {
    let bb4 = target_dir().join("bb/4.1.2/bb");
    assert!(
        bb4.exists(),
        "{} is missing: scripts/setup fetches it (scripts/fetch-bb --version 4.1.2)",
        bb4.display()
    );
    bb4
}

/// Health's `prover` section once its start check has ended (`ready` or `failed`).
fn wait_prover_checked(endpoint: &str) -> serde_json::Value {
    wait_health(endpoint, |v| v["prover"]["state"] != "checking")["prover"].clone()
}

/// A configuration that pins all the attestation says of each bb (name, hashes and what
/// `--version` prints) lets the service start before the binaries are checked: the attestation
/// lists the pins at once, a proof submitted meanwhile waits for the check, and a bb that does
/// not match its pins stops the prover only (health says why, and so does every submission),
/// never letting a job run.
#[test]
fn a_fully_pinned_prover_is_checked_after_the_service_starts() {
    let bb5 = common::bb();
    let bb4 = bb412();
    let points = 32_769;
    let (dir, _shim) = common::crs_shim("test-bb-versions", "pinned");
    let sha5 = sha256_hex(&std::fs::read(&bb5).unwrap());
    let sha4 = sha256_hex(&std::fs::read(&bb4).unwrap());
    let runtime4 = runtime_digest(bb4.parent().unwrap());
    let out = std::process::Command::new(&bb5)
        .arg("--version")
        .output()
        .unwrap();
    let prints5 = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(prints5.starts_with("5.0.0"), "{prints5}");
    let config = |prints4: &str, sha4: &str| {
        serde_json::json!({ "prover": {
            "crs_sha256": common::sha256_of_crs_points(points),
            "crs_points": points,
            "time_limit_secs": 120,
            "bb_path": bb5,
            "bb_version": "5.0.0",
            "bb_sha256": sha5,
            "bb_version_output": prints5,
            "bb_versions": [{
                "version": "4.1.2",
                "path": bb4,
                "sha256": sha4,
                // Hex pins are case-blind; the attestation shows them lowercase.
                "runtime_sha256": runtime4.to_uppercase(),
                "version_output": prints4,
            }],
        }})
    };
    let start = |config: serde_json::Value| {
        let path = dir.join("enclave.json");
        std::fs::write(&path, config.to_string()).unwrap();
        let blobs = format!("unix:{}", dir.join("blobs.sock").display());
        Enclave::start(&["--config", path.to_str().unwrap(), "--blob-store", &blobs])
    };
    let circuit = std::fs::read(fixture("tiny", "target.json")).unwrap();
    let witness = std::fs::read(fixture("tiny", "witness.gz")).unwrap();

    // Pinned as they are: attested from the pins, then checked; the proof runs after the check.
    let enclave = start(config("4.1.2", &sha4));
    let c = Client::new(&enclave.endpoint()).unwrap();
    let e = c.attest(common::test_root_policy()).unwrap();
    let served = &e.image.bb_served;
    assert_eq!(served.len(), 2, "{served:?}");
    assert_eq!(
        (served[0].name.as_str(), served[0].version.as_str()),
        ("5.0.0", prints5.as_str())
    );
    assert_eq!(
        (served[0].sha256.as_str(), served[0].runtime.as_deref()),
        (sha5.as_str(), None)
    );
    assert_eq!(
        (
            served[1].name.as_str(),
            served[1].version.as_str(),
            served[1].sha256.as_str()
        ),
        ("4.1.2", "4.1.2", sha4.as_str())
    );
    assert_eq!(served[1].runtime.as_deref(), Some(runtime4.as_str()));
    wait_crs(&enclave.endpoint());
    let job = c
        .prove_submit_with(&e, &circuit, &witness, "default", None)
        .unwrap();
    let p = c
        .prove_wait(&job, Duration::from_secs(120), |_| {})
        .unwrap();
    assert_eq!(p.result.bb_version, prints5);
    let prover = wait_prover_checked(&enclave.endpoint());
    assert_eq!(prover["state"], "ready", "{prover}");
    drop(enclave);

    // A pin its file does not match (what it prints, or its hash): the service runs, the
    // prover does not, and both health and the refusal name the mismatch.
    let bb4_shown = std::fs::canonicalize(&bb4).unwrap().display().to_string();
    let wrong = "0".repeat(64);
    for (cfg, want) in [
        (
            config("4.1.3", &sha4),
            format!("{bb4_shown} --version prints \"4.1.2\", not the pinned \"4.1.3\""),
        ),
        (
            config("4.1.2", &wrong),
            format!("{bb4_shown} has sha256 {sha4}, not the pinned {wrong}"),
        ),
    ] {
        let enclave = start(cfg);
        let prover = wait_prover_checked(&enclave.endpoint());
        assert_eq!(prover["state"], "failed", "{prover}");
        let error = prover["error"].as_str().unwrap_or_default();
        assert!(error.contains(&want), "{error}");
        wait_crs(&enclave.endpoint());
        let c = Client::new(&enclave.endpoint()).unwrap();
        let e = c.attest(common::test_root_policy()).unwrap();
        let r = c.prove_submit_with(&e, &circuit, &witness, "default", None);
        let (status, code, message) = refusal(r, "a job for a prover that failed its check");
        assert_eq!(
            (status, code.as_str()),
            (503, "prover_unavailable"),
            "{message}"
        );
        assert!(message.contains(&want), "{message}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
