//! The prover's CRS in local mode: the real shim puts the shared BN254 CRS into its blob store
//! (`--crs`), and the enclave loads it only if its SHA-256 matches the pin in its (measured)
//! configuration, saying clearly what is wrong otherwise.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{Enclave, target_dir};
use sigil_e2e::shim::Shim;

struct Setup {
    dir: PathBuf,
    _shim: Shim,
}

impl Setup {
    fn new(name: &str) -> Setup {
        let (dir, shim) = common::crs_shim("test-crs", name);
        Setup { dir, _shim: shim }
    }

    fn enclave(&self, sha: &str, points: usize) -> Enclave {
        let config = self
            .dir
            .join(format!("enclave-{points}-{}.json", &sha[..8]));
        std::fs::write(
            &config,
            format!(r#"{{"prover": {{"crs_sha256": "{sha}", "crs_points": {points}}}}}"#),
        )
        .unwrap();
        // The prover section needs bb (scripts/fetch-bb) as well as the CRS.
        common::prover_enclave(&config, &self.dir, &target_dir().join("bb/bb"))
    }
}

/// Polls health until the CRS is ready, or has an error when `want_error`.
fn crs_status(e: &Enclave, want_error: bool) -> serde_json::Value {
    let start = Instant::now();
    loop {
        let body = ureq::get(format!("{}/v1/health", e.endpoint()))
            .call()
            .expect("health")
            .body_mut()
            .read_to_string()
            .unwrap();
        let h: serde_json::Value = serde_json::from_str(&body).unwrap();
        let crs = h["crs"].clone();
        if crs["state"] == "ready" || (want_error && crs["error"].is_string()) {
            return crs;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "CRS did not settle: {h}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_pinned_crs_is_loaded_and_anything_else_refused() {
    let s = Setup::new("pins");
    let total = (std::fs::metadata(common::shared_crs()).unwrap().len() / 64) as usize;

    // The whole shared CRS (spanning three 1 MiB chunks), and a prefix of it.
    for points in [total, 1000] {
        let e = s.enclave(&common::sha256_of_crs_points(points), points);
        let st = crs_status(&e, false);
        assert_eq!(st["state"], "ready", "{st}");
        assert_eq!(st["points"], points as u64);
    }

    // A pin that is not this CRS's: refused, and said so.
    let wrong = "ab".repeat(32);
    let e = s.enclave(&wrong, total);
    let st = crs_status(&e, true);
    assert_eq!(st["state"], "loading", "{st}");
    let err = st["error"].as_str().unwrap();
    assert!(err.contains("refused") && err.contains(&wrong), "{err}");

    // More points than the parent holds: how many there are, how many are needed, what to do.
    let e = s.enclave(&wrong, total + 20_000);
    let st = crs_status(&e, true);
    let err = st["error"].as_str().unwrap();
    let want = format!("has only {total} points");
    assert!(err.contains(&want) && err.contains("--crs"), "{err}");
}

/// A large generated CRS (2^20 points, 64 chunks: the bench loads 2^23) goes through the shim
/// into the enclave with its hash checked; one byte flipped in one stored chunk (a parent
/// tampering with its store after the import) is refused, with the hash found and the pin.
#[test]
fn a_large_generated_crs_loads_and_a_flipped_byte_is_refused() {
    const POINTS: u64 = 1 << 20;
    let gen_dir = common::fresh_dir("test-crs", "large-gen");
    let file = gen_dir.join("bn254_g1.dat");
    let sha = sigil_insecure_crs::write_file(POINTS, &file).expect("generate the CRS");
    let (dir, shim) = common::crs_shim_with("test-crs", "large", file.clone());
    let s = Setup { dir, _shim: shim };
    // The generated file is in the store now; only the store's copy is read from here on.
    std::fs::remove_dir_all(&gen_dir).unwrap();

    let e = s.enclave(&sha, POINTS as usize);
    let st = crs_status(&e, false);
    assert_eq!(st["state"], "ready", "{st}");
    assert_eq!(st["points"], POINTS);
    drop(e);

    // Chunk 37's file in the shim's store: a 24-byte header, then the points.
    let chunk = s.dir.join("state").join("b_crs~bn254_g1~00037");
    let mut bytes = std::fs::read(&chunk).expect("the stored chunk");
    assert_eq!(bytes.len(), 24 + (1 << 20));
    bytes[24 + 5000] ^= 0x01;
    std::fs::write(&chunk, &bytes).unwrap();

    let e = s.enclave(&sha, POINTS as usize);
    let st = crs_status(&e, true);
    assert_eq!(st["state"], "loading", "{st}");
    let err = st["error"].as_str().unwrap();
    assert!(
        err.contains("refused") && err.contains(&sha) && err.contains("SHA-256"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&s.dir);
}
