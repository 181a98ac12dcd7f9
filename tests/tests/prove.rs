//! Delegated proving in local mode: the enclave process with the real `bb` (fetched and
//! checked by `scripts/fetch-bb`), its CRS from the real shim's blob store, driven by the
//! `sigil` CLI and the client library. Every proof is checked on the host with `bb verify`.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{DOORS, Enclave, assert_doors_shut, bb, hostile_bb, target_dir};
use sigil_client::{Client, ClientError};
use sigil_e2e::shim::Shim;
use sigil_e2e::{fixture, workspace};

struct Setup {
    dir: PathBuf,
    _shim: Shim,
    enclave: Enclave,
}

impl Setup {
    /// A shim holding the shared CRS and an enclave pinning its first `points` points (or
    /// `sha` when given).
    fn new(name: &str, points: usize, sha: Option<String>) -> Setup {
        Setup::with_limits(name, points, sha, r#""time_limit_secs": 120"#)
    }

    /// As [`Setup::new`], with `limits` (JSON members) in the prover's configuration.
    fn with_limits(name: &str, points: usize, sha: Option<String>, limits: &str) -> Setup {
        let sha = sha.unwrap_or_else(|| common::sha256_of_crs_points(points));
        Setup::with_crs(name, common::shared_crs(), points, &sha, limits)
    }

    /// A shim serving the points in `crs`, and an enclave pinning `points` of them by `sha`.
    fn with_crs(name: &str, crs: PathBuf, points: usize, sha: &str, limits: &str) -> Setup {
        Setup::with_bb(name, crs, points, sha, limits, |_| bb())
    }

    /// The real CRS prefix and a bb that stalls when it proves `large` (as a hostile or stuck
    /// input would make it); `stall` is a sleep duration no other process on the machine uses,
    /// so the test can find (and count) the stalled process.
    fn stalling(name: &str, stall: &str, limits: &str) -> Setup {
        let sha = common::sha256_of_crs_points(32_769);
        Setup::with_bb(name, common::shared_crs(), 32_769, &sha, limits, |dir| {
            common::stalling_bb(dir, stall)
        })
    }

    /// As [`Setup::with_crs`], with the prover binary that `bb` makes in the test directory.
    fn with_bb(
        name: &str,
        crs: PathBuf,
        points: usize,
        sha: &str,
        limits: &str,
        bb: impl FnOnce(&Path) -> PathBuf,
    ) -> Setup {
        let (dir, shim) = common::crs_shim_with("test-prove", name, crs);
        let config = dir.join("enclave.json");
        std::fs::write(
            &config,
            format!(r#"{{"prover": {{"crs_sha256": "{sha}", "crs_points": {points}, {limits}}}}}"#),
        )
        .unwrap();
        let enclave = common::prover_enclave(&config, &dir, &bb(&dir));
        Setup {
            dir,
            _shim: shim,
            enclave,
        }
    }

    fn endpoint(&self) -> String {
        self.enclave.endpoint()
    }

    fn health(&self) -> serde_json::Value {
        let body = ureq::get(format!("{}/v1/health", self.endpoint()))
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap();
        serde_json::from_str(&body).unwrap()
    }

    fn wait_crs(&self, want_ready: bool) -> serde_json::Value {
        let start = Instant::now();
        loop {
            let crs = self.health()["crs"].clone();
            if crs["state"] == "ready" || (!want_ready && crs["error"].is_string()) {
                return crs;
            }
            assert!(start.elapsed() < Duration::from_secs(60), "CRS: {crs}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The enclave's job directories: none may remain once jobs have ended.
    fn leftover_job_dirs(&self) -> Vec<PathBuf> {
        let jobs = std::env::temp_dir()
            .join(format!("sigil-enclave-{}", self.enclave.pid()))
            .join("jobs");
        std::fs::read_dir(&jobs)
            .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
            .unwrap_or_default()
    }
}

/// A CRS directory for the host's bb: a link to the shared file in a directory of our own,
/// because bb writes a lock file (and more) into its CRS directory and `../shared` is not ours.
fn host_crs_dir() -> PathBuf {
    let dir = target_dir()
        .join("test-prove")
        .join(format!("host-crs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let link = dir.join("bn254_g1.dat");
    if !link.exists() {
        std::os::unix::fs::symlink(common::shared_crs(), &link).unwrap();
    }
    dir
}

/// `bb verify` on the host over what `sigil prove` wrote.
fn host_verify(out: &Path) -> bool {
    common::bb_verifies(out, &host_crs_dir())
}

/// `sigil prove` of the fixture `name` succeeds and the host's bb verifies the proof.
fn assert_proves(s: &Setup, name: &str) {
    let (o, out) = prove_cli(s, name);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(host_verify(&out));
}

fn prove_cli(s: &Setup, name: &str) -> (std::process::Output, PathBuf) {
    let out = s.dir.join(format!("out-{name}"));
    let o = common::sigil(&[
        "prove",
        "--endpoint",
        &s.endpoint(),
        "--trust-test-root",
        "--circuit",
        fixture(name, "target.json").to_str().unwrap(),
        "--witness",
        fixture(name, "witness.gz").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    (o, out)
}

fn attest(endpoint: &str) -> (Client, sigil_client::AttestedEnclave) {
    let c = Client::new(endpoint).unwrap();
    let e = c.attest(common::test_root_policy()).unwrap();
    (c, e)
}

#[test]
fn proofs_made_in_the_enclave_verify_on_the_host_and_failures_are_clear() {
    let s = Setup::new("main", 32_769, None);
    s.wait_crs(true);

    for name in ["tiny", "large"] {
        let (o, out) = prove_cli(&s, name);
        assert!(
            o.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert!(v["circuit_size"].as_u64().unwrap() > 0, "{v}");
        assert!(
            host_verify(&out),
            "{name}: the host's bb verify refuses the proof"
        );
        // The progress display went to stderr.
        assert!(String::from_utf8_lossy(&o.stderr).contains("submitted"));
    }

    let (c, e) = attest(&s.endpoint());
    // The attestation names the prover that runs: bb's version and the hash of its binary.
    let bb_info = e.image.bb.clone().expect("user_data names bb");
    let bytes = std::fs::read(bb()).unwrap();
    let want = hex::encode(ring::digest::digest(&ring::digest::SHA256, &bytes).as_ref());
    assert_eq!(bb_info.sha256, want);
    assert!(bb_info.version.starts_with("5.0.0"), "{}", bb_info.version);
    let fail = |circuit: &[u8], witness: &[u8]| -> (String, String) {
        let job = c.prove_submit(&e, circuit, witness, "default").unwrap();
        match c.prove_wait(&job, Duration::from_secs(120), |_| {}) {
            Err(ClientError::Api { code, message, .. }) => (code.to_string(), message),
            Ok(_) => panic!("a proof came back for bad inputs"),
            Err(other) => panic!("{other}"),
        }
    };
    let read = |n: &str, f: &str| std::fs::read(fixture(n, f)).unwrap();

    // A witness that does not satisfy its circuit.
    let (code, m) = fail(
        &read("unsatisfied", "target.json"),
        &read("unsatisfied", "witness.gz"),
    );
    assert_eq!(code, "unsatisfied", "{m}");
    // A corrupt circuit.
    let mut corrupt = read("tiny", "target.json");
    corrupt.truncate(corrupt.len() / 2);
    let (code, m) = fail(&corrupt, &read("tiny", "witness.gz"));
    assert_eq!(code, "bad_circuit", "{m}");
    // Nothing of any job is left behind.
    assert!(
        s.leftover_job_dirs().is_empty(),
        "{:?}",
        s.leftover_job_dirs()
    );
}

#[test]
fn a_crs_too_small_for_the_circuit_is_named_before_proving() {
    let s = Setup::new("small", 1025, None);
    s.wait_crs(true);
    let (o, _) = prove_cli(&s, "large");
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("crs_too_small")
            && err.contains("needs 32769 CRS points")
            && err.contains("has 1025"),
        "{err}"
    );
    assert!(s.leftover_job_dirs().is_empty());
    // The tiny circuit fits.
    assert_proves(&s, "tiny");
}

#[test]
fn a_wrong_crs_hash_stops_proving_with_the_reason() {
    let s = Setup::new("wronghash", 32_769, Some("cd".repeat(32)));
    let crs = s.wait_crs(false);
    assert!(crs["error"].as_str().unwrap().contains("refused"), "{crs}");
    let (o, _) = prove_cli(&s, "tiny");
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("crs_not_ready") && err.contains("refused"),
        "{err}"
    );
}

#[test]
fn two_clients_at_once_are_queued_and_each_gets_its_own_proof() {
    let s = Setup::new("two", 32_769, None);
    s.wait_crs(true);
    let endpoint = s.endpoint();
    let runs: Vec<_> = ["large", "tiny"]
        .into_iter()
        .map(|name| {
            let endpoint = endpoint.clone();
            std::thread::spawn(move || {
                let (c, e) = attest(&endpoint);
                let circuit = std::fs::read(fixture(name, "target.json")).unwrap();
                let witness = std::fs::read(fixture(name, "witness.gz")).unwrap();
                let job = c.prove_submit(&e, &circuit, &witness, "default").unwrap();
                let p = c
                    .prove_wait(&job, Duration::from_secs(300), |_| {})
                    .unwrap();
                (name, p)
            })
        })
        .collect();
    let results: Vec<_> = runs.into_iter().map(|r| r.join().unwrap()).collect();
    let mut sizes = Vec::new();
    for (name, p) in &results {
        let out = s.dir.join(format!("concurrent-{name}"));
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(out.join("proof"), &p.proof).unwrap();
        std::fs::write(out.join("public_inputs"), &p.public_inputs).unwrap();
        std::fs::write(out.join("vk"), &p.vk).unwrap();
        assert!(host_verify(&out), "{name}");
        sizes.push(p.result.circuit_size.unwrap());
    }
    // Each got the proof of its own circuit.
    assert!(
        sizes[0] > sizes[1],
        "large {} vs tiny {}",
        sizes[0],
        sizes[1]
    );
}

/// Submits `name` and waits for its failure.
fn fail_with(s: &Setup, name: &str) -> (String, String) {
    let (c, e) = attest(&s.endpoint());
    let circuit = std::fs::read(fixture(name, "target.json")).unwrap();
    let witness = std::fs::read(fixture(name, "witness.gz")).unwrap();
    let job = c.prove_submit(&e, &circuit, &witness, "default").unwrap();
    match c.prove_wait(&job, Duration::from_secs(120), |_| {}) {
        Err(ClientError::Api { code, message, .. }) => (code.to_string(), message),
        Ok(_) => panic!("{name} was proven within the limits"),
        Err(other) => panic!("{other}"),
    }
}

#[test]
fn a_prover_over_its_memory_limit_fails_clearly_and_the_next_job_runs() {
    // bb proves `tiny` in about 13 MiB of heap and `large` in about 46 MiB; with its code and
    // thread stacks, 64 MiB of address space is enough for the first and not the second.
    let s = Setup::with_limits("memory", 32_769, None, r#""memory_limit_mib": 64"#);
    s.wait_crs(true);
    let (code, m) = fail_with(&s, "large");
    assert_eq!(code, "memory_limit", "{m}");
    assert!(m.contains("64 MiB"), "{m}");
    assert!(s.leftover_job_dirs().is_empty());
    assert_proves(&s, "tiny");
}

#[test]
fn a_prover_over_its_time_limit_is_stopped_and_the_next_job_runs() {
    // A real proof can finish within any limit a fast machine gives it, so proving `large`
    // goes to a bb that stalls (as a hostile or stuck input would make it); every other call
    // is bb itself.
    // A duration no other process on the machine sleeps for, to find this one.
    let stall = format!("60.{}", std::process::id());
    let s = Setup::stalling("time", &stall, r#""time_limit_secs": 1"#);
    s.wait_crs(true);
    let start = Instant::now();
    let (code, m) = fail_with(&s, "large");
    assert_eq!(code, "time_limit", "{m}");
    assert!(m.contains("within 1 s"), "{m}");
    // Stopped at the limit, not left to finish.
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "{:?}",
        start.elapsed()
    );
    assert!(s.leftover_job_dirs().is_empty());
    // The kill reached the stalled program itself (process 1 of the sandbox's PID namespace),
    // not only the process the enclave started.
    let deadline = Instant::now() + Duration::from_secs(5);
    while stalled_processes(&stall) > 0 {
        assert!(
            Instant::now() < deadline,
            "the stalled bb outlived its time limit"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_proves(&s, "tiny");
}

/// Processes of this machine running `sleep STALL`.
fn stalled_processes(stall: &str) -> usize {
    let want = format!("/bin/sleep\0{stall}\0");
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| std::fs::read(e.path().join("cmdline")).is_ok_and(|c| c == want.as_bytes()))
        .count()
}

#[test]
fn a_full_queue_refuses_new_jobs_and_the_queued_ones_still_finish() {
    // One worker, room for one waiting job.
    let s = Setup::with_limits(
        "queue",
        32_769,
        None,
        r#""time_limit_secs": 120, "workers": 1, "max_queue": 1"#,
    );
    s.wait_crs(true);
    let (c, e) = attest(&s.endpoint());
    let read = |n: &str, f: &str| std::fs::read(fixture(n, f)).unwrap();
    let submit = |name: &str| {
        c.prove_submit(
            &e,
            &read(name, "target.json"),
            &read(name, "witness.gz"),
            "default",
        )
    };

    let running = submit("large").unwrap();
    // Wait until the worker has taken it, so the next one is the one waiting.
    let start = Instant::now();
    while c.prove_status(&running.submitted.id).unwrap().state == "queued" {
        assert!(start.elapsed() < Duration::from_secs(30));
        std::thread::sleep(Duration::from_millis(20));
    }
    let waiting = submit("tiny").unwrap();
    let st = c.prove_status(&waiting.submitted.id).unwrap();
    assert_eq!(st.state, "queued", "{st:?}");
    assert_eq!(st.queue_position, Some(0));

    match submit("tiny") {
        Err(ClientError::Api {
            status,
            code,
            message,
        }) => {
            assert_eq!((status, code.as_str()), (503, "queue_full"), "{message}");
        }
        Ok(_) => panic!("a job was accepted past the queue's bound"),
        Err(other) => panic!("{other}"),
    }

    for job in [running, waiting] {
        let p = c
            .prove_wait(&job, Duration::from_secs(300), |_| {})
            .unwrap();
        assert!(!p.proof.is_empty());
    }
    // With the queue drained, new work is accepted again.
    let again = submit("tiny").unwrap();
    c.prove_wait(&again, Duration::from_secs(120), |_| {})
        .unwrap();
}

// ----- chonk ---------------------------------------------------------------------------------

fn chonk_fixture(file: &str) -> Vec<u8> {
    std::fs::read(workspace().join("fixtures/chonk").join(file)).unwrap()
}

/// Submits a chonk stack and waits for its end.
fn chonk(s: &Setup, ivc_inputs: &[u8]) -> Result<sigil_client::prove::Proof, (String, String)> {
    let (c, e) = attest(&s.endpoint());
    let job = c.prove_submit_chonk(&e, ivc_inputs).unwrap();
    match c.prove_wait(&job, Duration::from_secs(300), |_| {}) {
        Ok(p) => Ok(p),
        Err(ClientError::Api { code, message, .. }) => Err((code.to_string(), message)),
        Err(other) => panic!("{other}"),
    }
}

/// Sends a raw prove request (to see what the API refuses before any job exists).
fn raw_prove(s: &Setup, req: serde_json::Value) -> (u16, String, String) {
    let (c, e) = attest(&s.endpoint());
    let r =
        c.call_raw::<sigil_protocol::endpoint::ProveSubmit>(&e, &serde_json::to_vec(&req).unwrap());
    match r {
        Err(ClientError::Api {
            status,
            code,
            message,
        }) => (status, code.to_string(), message),
        Ok(_) => panic!("accepted: {req}"),
        Err(other) => panic!("{other}"),
    }
}

#[test]
fn chonk_requests_are_checked_and_a_small_crs_is_named_before_bb_runs() {
    let s = Setup::new("chonk-small", 32_769, None);
    s.wait_crs(true);
    let b64 = |b: &[u8]| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(b)
    };
    let key = b64(&[7u8; 32]);
    let stack = b64(&chonk_fixture("ivc-inputs.msgpack"));
    let tiny = b64(&std::fs::read(fixture("tiny", "target.json")).unwrap());
    for (req, want) in [
        (
            serde_json::json!({"scheme": "plonk", "circuit": tiny, "witness": tiny, "result_key": key}),
            "bad_scheme",
        ),
        (
            serde_json::json!({"scheme": "chonk", "result_key": key}),
            "bad_input",
        ),
        (
            serde_json::json!({"scheme": "chonk", "ivc_inputs": stack, "circuit": tiny, "result_key": key}),
            "bad_input",
        ),
        (
            serde_json::json!({"scheme": "ultra_honk", "ivc_inputs": stack, "circuit": tiny, "witness": tiny, "result_key": key}),
            "bad_input",
        ),
        (
            serde_json::json!({"scheme": "chonk", "ivc_inputs": stack, "target": "evm", "result_key": key}),
            "bad_target",
        ),
    ] {
        let (status, code, m) = raw_prove(&s, req.clone());
        assert_eq!((status, code.as_str()), (400, want), "{req}: {m}");
    }

    // A well-formed stack: the 32,769-point CRS cannot prove any chonk stack, and the enclave
    // says so at once instead of letting bb look for more points on a network it lacks.
    let start = Instant::now();
    let (code, m) = chonk(&s, &chonk_fixture("ivc-inputs.msgpack"))
        .err()
        .unwrap();
    assert_eq!(code, "crs_too_small", "{m}");
    assert!(m.contains("131072") && m.contains("32769"), "{m}");
    assert!(start.elapsed() < Duration::from_secs(10));
    assert!(s.leftover_job_dirs().is_empty());
}

/// The insecure test CRS (tau = 2) the chonk fixtures under `test-crs/` were made with,
/// regenerated by `scripts/insecure-test-crs` and checked against their record.
fn insecure_test_crs() -> (PathBuf, usize, String) {
    let want: serde_json::Value =
        serde_json::from_slice(&chonk_fixture("test-crs/crs.json")).unwrap();
    let points = want["crs_points"].as_u64().unwrap() as usize;
    let sha = want["crs_sha256"].as_str().unwrap().to_string();
    let dir = target_dir().join("test-prove");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!("insecure-crs-{}.dat", std::process::id()));
    let o = std::process::Command::new(workspace().join("scripts/insecure-test-crs"))
        .arg("--points")
        .arg(points.to_string())
        .arg("--out")
        .arg(&file)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let got: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(got["crs_sha256"], sha.as_str());
    (file, points, sha)
}

#[test]
fn chonk_stacks_run_through_bb_up_to_the_ceremony_check_and_bad_ones_fail_clearly() {
    // No real CRS of 131,072 points is at hand (../shared has 32,769), so the enclave is
    // pinned to an insecure one whose tau is known. bb then folds the whole stack and fails
    // only its final check of its own proof, because its verifier's G2 point is the real
    // ceremony's. That is as far as chonk can be taken here; see fixtures/README.md.
    let (crs, points, sha) = insecure_test_crs();
    let s = Setup::with_crs(
        "chonk",
        crs,
        points,
        &sha,
        r#""time_limit_secs": 300, "max_queue": 4"#,
    );
    s.wait_crs(true);

    let (code, m) = chonk(&s, &chonk_fixture("test-crs/ivc-inputs.msgpack"))
        .err()
        .expect("no proof can verify under the insecure CRS");
    assert_eq!(code, "prover_failed", "{m}");
    assert!(m.contains("Failed to verify the generated proof"), "{m}");

    // A step whose witness does not satisfy its circuit.
    let (code, m) = chonk(&s, &chonk_fixture("test-crs/unsatisfied.msgpack"))
        .err()
        .unwrap();
    assert_eq!(code, "unsatisfied", "{m}");

    // Not a stack at all, and a stack cut short.
    let (code, m) = chonk(&s, b"\x93not msgpack at all").err().unwrap();
    assert_eq!(code, "bad_circuit", "{m}");
    let mut cut = chonk_fixture("test-crs/ivc-inputs.msgpack");
    cut.truncate(cut.len() / 3);
    let (code, m) = chonk(&s, &cut).err().unwrap();
    assert_eq!(code, "bad_circuit", "{m}");

    assert!(s.leftover_job_dirs().is_empty());
}

/// Proving inputs at the documented limits go through the whole path (HTTP body limit, HPKE,
/// JSON, the job) and prove; one byte more is refused by name before any job exists.
#[test]
fn inputs_at_the_size_limit_prove_and_one_byte_more_is_refused() {
    use sigil_protocol::prove::{MAX_CIRCUIT, MAX_IVC_INPUTS};
    let s = Setup::new("size-limit", 32_769, None);
    s.wait_crs(true);
    let (c, e) = attest(&s.endpoint());
    // Noir's program JSON padded with whitespace to exactly the limit: still the same circuit.
    let mut circuit = std::fs::read(fixture("tiny", "target.json")).unwrap();
    circuit.resize(MAX_CIRCUIT, b' ');
    let witness = std::fs::read(fixture("tiny", "witness.gz")).unwrap();
    let job = c.prove_submit(&e, &circuit, &witness, "default").unwrap();
    let p = c
        .prove_wait(&job, Duration::from_secs(300), |_| {})
        .unwrap();
    let out = s.dir.join("at-the-limit");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("proof"), &p.proof).unwrap();
    std::fs::write(out.join("public_inputs"), &p.public_inputs).unwrap();
    std::fs::write(out.join("vk"), &p.vk).unwrap();
    assert!(host_verify(&out));

    circuit.push(b' ');
    match c.prove_submit(&e, &circuit, &witness, "default") {
        Err(ClientError::Api {
            status, message, ..
        }) => {
            assert_eq!(status, 413);
            assert!(message.contains(&MAX_CIRCUIT.to_string()), "{message}");
        }
        Err(other) => panic!("an oversized circuit: {other}"),
        Ok(_) => panic!("an oversized circuit was accepted"),
    }

    // A 64 MiB chonk stack is taken in (not a valid stack: bb says so), one byte more is not.
    let mut stack = vec![0xc1u8; MAX_IVC_INPUTS];
    let job = c.prove_submit_chonk(&e, &stack).unwrap();
    match c.prove_wait(&job, Duration::from_secs(300), |_| {}) {
        Err(ClientError::Api { code, .. }) => assert_ne!(code.to_string(), "body_too_large"),
        Err(other) => panic!("{other}"),
        Ok(_) => panic!("a garbage stack proved"),
    }
    stack.push(0xc1);
    match c.prove_submit_chonk(&e, &stack) {
        Err(ClientError::Api { status, .. }) => assert_eq!(status, 413),
        Err(other) => panic!("an oversized stack: {other}"),
        Ok(_) => panic!("an oversized stack was accepted"),
    }
    assert!(s.leftover_job_dirs().is_empty());
}

#[test]
fn a_hostile_prover_in_the_enclave_finds_every_door_shut() {
    // The enclave runs the hostile stand-in as its bb, through the same sandbox as the real
    // one. Its "circuit" names the doors to try: a stand-in for the NSM device, another job's
    // witness and the enclave's own state, the enclave's and this test's processes.
    let sha = common::sha256_of_crs_points(32_769);
    let s = Setup::with_bb(
        "hostile",
        common::shared_crs(),
        32_769,
        &sha,
        r#""time_limit_secs": 60"#,
        |_| hostile_bb(),
    );
    s.wait_crs(true);
    let state = std::env::temp_dir().join(format!("sigil-enclave-{}", s.enclave.pid()));
    let other_job = state.join("jobs").join("another-job");
    std::fs::create_dir_all(&other_job).unwrap();
    std::fs::write(other_job.join("witness.gz"), b"another client's witness").unwrap();
    let nsm = s.dir.join("nsm");
    std::fs::write(&nsm, b"stand-in for /dev/nsm").unwrap();
    let doors = serde_json::json!({
        "nsm": ["/dev/nsm", nsm],
        "secrets": [other_job.join("witness.gz")],
        "pids": [s.enclave.pid(), std::process::id()],
        "write_dirs": [state.join("jobs"), state.join("crs"), s.dir],
    });
    let (c, e) = attest(&s.endpoint());
    let job = c
        .prove_submit(
            &e,
            &serde_json::to_vec(&doors).unwrap(),
            b"witness",
            "default",
        )
        .unwrap();
    let p = c
        .prove_wait(&job, Duration::from_secs(120), |_| {})
        .unwrap();
    assert_doors_shut(&p.proof, DOORS);
    assert!(s.leftover_job_dirs().iter().all(|d| d == &other_job));
}

/// What the parent relays in the clear (the job's status) is the same for a proof and for a
/// witness that does not satisfy its circuit: `ended`, no timings, a sealed result of the same
/// length. Only the client, opening it, learns which.
#[test]
fn the_status_in_the_clear_does_not_tell_a_proof_from_a_failure() {
    let s = Setup::new("outcome", 32_769, None);
    s.wait_crs(true);
    let (c, e) = attest(&s.endpoint());
    let read = |n: &str, f: &str| std::fs::read(fixture(n, f)).unwrap();
    let done = c
        .prove_submit(
            &e,
            &read("tiny", "target.json"),
            &read("tiny", "witness.gz"),
            "default",
        )
        .unwrap();
    let failed = c
        .prove_submit(
            &e,
            &read("unsatisfied", "target.json"),
            &read("unsatisfied", "witness.gz"),
            "default",
        )
        .unwrap();
    assert!(
        c.prove_wait(&done, Duration::from_secs(120), |_| {})
            .is_ok()
    );
    assert!(
        c.prove_wait(&failed, Duration::from_secs(120), |_| {})
            .is_err()
    );
    let raw = |id: &sigil_protocol::wire::Id| -> serde_json::Value {
        let body = ureq::get(format!("{}/v1/prove/{id}", s.endpoint()))
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap();
        serde_json::from_str(&body).unwrap()
    };
    let (a, b) = (raw(&done.submitted.id), raw(&failed.submitted.id));
    for st in [&a, &b] {
        assert_eq!(st["state"], "ended", "{st}");
        assert!(st.get("elapsed_ms").is_none(), "{st}");
    }
    assert_eq!(
        a["sealed"].as_str().unwrap().len(),
        b["sealed"].as_str().unwrap().len()
    );
}

/// Slow uploads of proving-sized bodies hold only the large routes' budget: a second one is
/// told `busy`, and every small route (here ping) still answers.
#[test]
fn slow_large_uploads_do_not_lock_the_small_routes_out() {
    use sigil_protocol::endpoint::MAX_PROVE_BODY;
    use std::io::{Read, Write};
    let s = Setup::new("budgets", 32_769, None);
    let addr = s.enclave.addr.clone();
    let start_upload = |len: usize| {
        let mut c = std::net::TcpStream::connect(&addr).unwrap();
        write!(
            c,
            "POST /v1/prove HTTP/1.1\r\nHost: x\r\nContent-Type: application/sigil-encapsulated\r\nContent-Length: {len}\r\n\r\nxx"
        )
        .unwrap();
        c
    };
    // One upload holds nearly all of the large budget, and sends nothing more.
    let _first = start_upload(MAX_PROVE_BODY - 1024);
    std::thread::sleep(Duration::from_millis(300));
    // A second large one does not fit: busy at once.
    let mut second = start_upload(16 << 20);
    second
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut answer = vec![0u8; 512];
    let n = second.read(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("busy"), "{answer}");
    // The small routes are untouched.
    let (c, e) = attest(&s.endpoint());
    assert_eq!(c.ping(&e, "still here").unwrap().message, "still here");
}

// ----- cancellation --------------------------------------------------------------------------

/// The job's sealed result, opened (a cancelled job, which has none, is the failure
/// `cancelled` to the client).
fn failure_code(c: &Client, job: &sigil_client::prove::Job) -> String {
    match c.prove_wait(job, Duration::from_secs(60), |_| {}) {
        Err(ClientError::Api { code, .. }) => code.to_string(),
        Ok(_) => "done".into(),
        Err(other) => panic!("{other}"),
    }
}

fn api_code<T>(r: Result<T, ClientError>) -> (u16, String) {
    match r {
        Err(ClientError::Api { status, code, .. }) => (status, code.to_string()),
        Ok(_) => panic!("accepted"),
        Err(other) => panic!("{other}"),
    }
}

#[test]
fn a_client_cancels_its_queued_and_running_jobs_and_no_one_else_can() {
    // One worker, one place in the queue; `large` goes to a bb that stalls, so it runs until
    // it is cancelled (the time limit is far away).
    let stall = format!("70.{}", std::process::id());
    let s = Setup::stalling(
        "cancel",
        &stall,
        r#""time_limit_secs": 300, "workers": 1, "max_queue": 1"#,
    );
    s.wait_crs(true);
    let (c, e) = attest(&s.endpoint());
    let read = |n: &str, f: &str| std::fs::read(fixture(n, f)).unwrap();
    let submit = |name: &str| {
        c.prove_submit(
            &e,
            &read(name, "target.json"),
            &read(name, "witness.gz"),
            "default",
        )
    };

    let running = submit("large").unwrap();
    let start = Instant::now();
    while stalled_processes(&stall) == 0 {
        assert!(start.elapsed() < Duration::from_secs(60), "bb never ran");
        std::thread::sleep(Duration::from_millis(50));
    }
    let queued = submit("tiny").unwrap();
    assert_eq!(
        c.prove_status(&queued.submitted.id).unwrap().state,
        "queued"
    );
    assert_eq!(api_code(submit("tiny")), (503, "queue_full".into()));

    // A wrong token and an unknown id get the same answer; the job is untouched.
    use sigil_protocol::endpoint::ProveCancel;
    use sigil_protocol::prove::CancelRequest;
    use sigil_protocol::wire::Hex;
    use sigil_protocol::wire::SecretHex;
    let wrong = CancelRequest {
        id: queued.submitted.id,
        token: SecretHex::new([7; 32].into()),
    };
    let unknown = CancelRequest {
        id: Hex([9; 16]),
        token: SecretHex::new([7; 32].into()),
    };
    let refusal = |r: &CancelRequest| match c.call::<ProveCancel>(&e, r) {
        Err(ClientError::Api {
            status,
            code,
            message,
        }) => (status, code.to_string(), message),
        other => panic!("{:?}", other.map(|s| s.state)),
    };
    let (a, b) = (refusal(&wrong), refusal(&unknown));
    assert_eq!(a, b);
    assert_eq!((a.0, a.1.as_str()), (404, "unknown_job"));
    // Another job's token is as wrong.
    let theirs = CancelRequest {
        id: queued.submitted.id,
        token: sigil_protocol::prove::cancel_token(&[0; 32]),
    };
    assert_eq!(refusal(&theirs), a);
    assert_eq!(
        c.prove_status(&queued.submitted.id).unwrap().state,
        "queued"
    );

    // The queued job: out of the queue at once, its place free for the next; it keeps no
    // result.
    let st = c.prove_cancel(&e, &queued).unwrap();
    assert_eq!((st.state.as_str(), st.cancelled), ("cancelled", true));
    let status = c.prove_status(&queued.submitted.id).unwrap();
    assert_eq!(status.state, "cancelled");
    assert!(status.sealed.is_none());
    assert_eq!(failure_code(&c, &queued), "cancelled");
    let next = submit("tiny").unwrap();
    assert_eq!(c.prove_status(&next.submitted.id).unwrap().state, "queued");

    // The running job: its bb is killed (the stalled program itself, as at the time limit),
    // its directory removed, and it ends as cancelled.
    let t = Instant::now();
    let st = c.prove_cancel(&e, &running).unwrap();
    assert_eq!(
        (st.state.as_str(), st.cancelled),
        ("cancelled", true),
        "{st:?}"
    );
    assert!(t.elapsed() < Duration::from_secs(15), "{:?}", t.elapsed());
    let deadline = Instant::now() + Duration::from_secs(5);
    while stalled_processes(&stall) > 0 {
        assert!(Instant::now() < deadline, "the cancelled bb runs on");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(failure_code(&c, &running), "cancelled");

    // Cancelling it again changes nothing and answers at once.
    let t = Instant::now();
    let again = c.prove_cancel(&e, &running).unwrap();
    assert_eq!((again.state.as_str(), again.cancelled), ("cancelled", true));
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert_eq!(failure_code(&c, &running), "cancelled");

    // The worker is free: the job queued after the cancellation proves.
    let p = c
        .prove_wait(&next, Duration::from_secs(120), |_| {})
        .unwrap();
    assert!(!p.proof.is_empty());
    assert!(s.leftover_job_dirs().is_empty());
    // A job that ended otherwise cannot be cancelled; its result stays.
    assert_eq!(
        api_code(c.prove_cancel(&e, &next)),
        (409, "job_ended".into())
    );
    c.prove_wait(&next, Duration::from_secs(5), |_| {}).unwrap();
}

#[test]
fn a_cancelled_chonk_job_is_answered_sealed_and_keeps_no_result() {
    // A chonk result is padded to 1 MiB: an answer carrying it could not be sealed (the
    // response limit), and keeping it would spend the finished results' byte budget on a job
    // that never ran. One worker, stalled on `large`, so the chonk jobs wait in the queue.
    let stall = format!("71.{}", std::process::id());
    let s = Setup::stalling(
        "cancel-chonk",
        &stall,
        r#""time_limit_secs": 300, "workers": 1, "max_queue": 4"#,
    );
    s.wait_crs(true);
    let (c, e) = attest(&s.endpoint());
    let read = |n: &str, f: &str| std::fs::read(fixture(n, f)).unwrap();
    let running = c
        .prove_submit(
            &e,
            &read("large", "target.json"),
            &read("large", "witness.gz"),
            "default",
        )
        .unwrap();
    let start = Instant::now();
    while stalled_processes(&stall) == 0 {
        assert!(start.elapsed() < Duration::from_secs(60), "bb never ran");
        std::thread::sleep(Duration::from_millis(50));
    }
    let stack = chonk_fixture("ivc-inputs.msgpack");
    let queued: Vec<_> = (0..3)
        .map(|_| c.prove_submit_chonk(&e, &stack).unwrap())
        .collect();
    for job in &queued {
        let a = c.prove_cancel(&e, job).unwrap();
        assert_eq!(a.id, job.submitted.id);
        assert_eq!(
            (a.state.as_str(), a.cancelled),
            ("cancelled", true),
            "{a:?}"
        );
        let st = c.prove_status(&job.submitted.id).unwrap();
        assert_eq!(st.state, "cancelled");
        assert!(st.sealed.is_none(), "a cancelled job keeps no result");
        assert_eq!(failure_code(&c, job), "cancelled");
        // Again: the same answer, at once.
        let again = c.prove_cancel(&e, job).unwrap();
        assert_eq!(again, a);
    }
    let a = c.prove_cancel(&e, &running).unwrap();
    assert_eq!(
        (a.state.as_str(), a.cancelled),
        ("cancelled", true),
        "{a:?}"
    );
    assert!(s.leftover_job_dirs().is_empty());
}

/// `GET /v1/prove/{id}?wait=SECONDS` as it comes back: HTTP status, the JSON, and how long it
/// took.
fn long_poll(endpoint: &str, id: &str, query: &str) -> (u16, serde_json::Value, Duration) {
    let t = Instant::now();
    let mut resp = ureq::get(format!("{endpoint}/v1/prove/{id}?{query}"))
        .config()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .call()
        .unwrap();
    let status = resp.status().as_u16();
    let body = resp.body_mut().read_to_string().unwrap();
    (status, serde_json::from_str(&body).unwrap(), t.elapsed())
}

#[test]
fn a_long_poll_answers_when_the_job_ends_or_when_its_wait_runs_out() {
    // One worker, stalled on `large` until it is cancelled; `tiny` waits behind it.
    let stall = format!("72.{}", std::process::id());
    let s = Setup::stalling(
        "long-poll",
        &stall,
        r#""time_limit_secs": 300, "workers": 1, "max_queue": 2"#,
    );
    s.wait_crs(true);
    let endpoint = s.endpoint();
    let (c, e) = attest(&endpoint);
    let read = |n: &str, f: &str| std::fs::read(fixture(n, f)).unwrap();
    let submit = |name: &str| {
        c.prove_submit(
            &e,
            &read(name, "target.json"),
            &read(name, "witness.gz"),
            "default",
        )
        .unwrap()
    };
    let running = submit("large");
    let start = Instant::now();
    while stalled_processes(&stall) == 0 {
        assert!(start.elapsed() < Duration::from_secs(60), "bb never ran");
        std::thread::sleep(Duration::from_millis(50));
    }
    let queued = submit("tiny");
    let (run_id, queued_id) = (
        running.submitted.id.to_string(),
        queued.submitted.id.to_string(),
    );

    // A bad wait is refused, with its code; so is any other parameter.
    for q in [
        "wait=21",
        "wait=abc",
        "wait=-1",
        "wait=",
        "wait=1&wait=1",
        "until=5",
    ] {
        let (status, body, _) = long_poll(&endpoint, &run_id, q);
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some("bad_query")),
            "{q}: {body}"
        );
    }
    // An unknown job is answered at once, as without a wait.
    let (status, body, took) = long_poll(&endpoint, &"ab".repeat(16), "wait=20");
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("unknown_job"))
    );
    assert!(took < Duration::from_secs(20), "{took:?}");

    // The wait runs out first: the job as it is, still running.
    let (status, body, took) = long_poll(&endpoint, &run_id, "wait=1");
    assert_eq!(
        (status, body["state"].as_str()),
        (200, Some("running")),
        "{body}"
    );
    assert!(took >= Duration::from_secs(1), "{took:?}");
    assert!(body.get("sealed").is_none());

    // A long-poll of each job: the running one's answers when the job is cancelled, the
    // queued one's once `tiny` has proved after the cancellation freed the worker (ended,
    // with the result sealed to its client); both long before their wait.
    let poll = |id: &str| {
        let (endpoint, id) = (endpoint.clone(), id.to_string());
        std::thread::spawn(move || long_poll(&endpoint, &id, "wait=20"))
    };
    let (run_poll, queued_poll) = (poll(&run_id), poll(&queued_id));
    std::thread::sleep(Duration::from_millis(300));
    assert!(c.prove_cancel(&e, &running).unwrap().cancelled);
    let (status, body, took) = run_poll.join().unwrap();
    assert_eq!(
        (status, body["state"].as_str()),
        (200, Some("cancelled")),
        "{body}"
    );
    assert!(took < Duration::from_secs(20), "{took:?}");
    let (status, body, took) = queued_poll.join().unwrap();
    assert_eq!(
        (status, body["state"].as_str()),
        (200, Some("ended")),
        "{body}"
    );
    assert!(body["sealed"].is_string(), "{body}");
    assert!(took < Duration::from_secs(20), "{took:?}");
    // The long-poll's answer is the status: the client opens the same result from it.
    let p = c
        .prove_wait(&queued, Duration::from_secs(60), |_| {})
        .unwrap();
    assert!(!p.proof.is_empty());
    // An ended job's long-poll is answered at once.
    let (status, body, took) = long_poll(&endpoint, &queued_id, "wait=20");
    assert_eq!((status, body["state"].as_str()), (200, Some("ended")));
    assert!(took < Duration::from_secs(20), "{took:?}");

    // Waiting places are bounded: five long-polls of a running job from one client, which
    // has four (MAX_WAITERS_PER_SOURCE; every connection here is of the same unknown source).
    // The fifth to come is answered at once, still running; the four others when the job
    // ends.
    let stalled = submit("large");
    let start = Instant::now();
    while stalled_processes(&stall) == 0 {
        assert!(start.elapsed() < Duration::from_secs(60), "bb never ran");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (tx, rx) = std::sync::mpsc::channel();
    for _ in 0..5 {
        let (tx, endpoint, id) = (
            tx.clone(),
            endpoint.clone(),
            stalled.submitted.id.to_string(),
        );
        std::thread::spawn(move || tx.send(long_poll(&endpoint, &id, "wait=20")).unwrap());
    }
    let (status, body, took) = rx
        .recv_timeout(Duration::from_secs(15))
        .expect("one answered at once");
    assert_eq!(
        (status, body["state"].as_str()),
        (200, Some("running")),
        "{body}"
    );
    assert!(took < Duration::from_secs(15), "{took:?}");
    assert!(c.prove_cancel(&e, &stalled).unwrap().cancelled);
    for _ in 0..4 {
        let (status, body, took) = rx.recv_timeout(Duration::from_secs(30)).unwrap();
        assert_eq!(
            (status, body["state"].as_str()),
            (200, Some("cancelled")),
            "{body}"
        );
        assert!(took < Duration::from_secs(20), "{took:?}");
    }
    assert!(s.leftover_job_dirs().is_empty());
}

#[test]
fn the_client_long_polls_and_sees_the_end_when_it_happens() {
    // `sigil prove` and `prove_wait` long-poll: a job that ends is seen at once, not at the
    // next poll. The progress callback gets every answer.
    let s = Setup::new("long-poll-client", 32_769, None);
    s.wait_crs(true);
    let (c, e) = attest(&s.endpoint());
    let read = |f: &str| std::fs::read(fixture("tiny", f)).unwrap();
    let job = c
        .prove_submit(&e, &read("target.json"), &read("witness.gz"), "default")
        .unwrap();
    let t = Instant::now();
    let first = c.prove_status_wait(&job.submitted.id, 20).unwrap();
    assert_eq!(first.state, "ended");
    assert!(first.sealed.is_some());
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
    let mut seen = Vec::new();
    let p = c
        .prove_wait(&job, Duration::from_secs(60), |s| seen.push(s.state))
        .unwrap();
    assert!(!p.proof.is_empty());
    assert_eq!(seen, ["ended"]);
    assert_proves(&s, "tiny");
}
