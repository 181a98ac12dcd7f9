//! An INSECURE BN254 G1 "CRS" for tests, in the layout bb reads (`bn254_g1.dat`: 64-byte
//! points, x then y, each 32 bytes big-endian): point i = 2^i * G, G = (1, 2), so tau = 2.
//!
//! FOR TESTS ONLY: the trapdoor is public, anyone can forge proofs under it. The bytes are
//! exactly those `scripts/insecure-test-crs` writes for the same N (a test checks it), but
//! 2^23 points take seconds instead of hours: the points are doubled in projective
//! coordinates (no inversion per point), turned affine a block at a time with one batch
//! inversion, and the blocks are made on every core. Block b starts at (2^(b * BLOCK) mod r) * G,
//! one scalar multiplication, so blocks do not depend on each other.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;

use ark_bn254::{Fr, G1Projective};
use ark_ec::{AdditiveGroup, CurveGroup, PrimeGroup};
use ark_ff::{BigInteger256, Field, PrimeField};
use ring::digest::{Context, SHA256};

/// Bytes per point.
pub const POINT: usize = 64;
/// Fewest points written (bb's smallest circuits read two).
pub const MIN_POINTS: u64 = 2;
/// Most points written: 2^24 (1 GiB), the enclave's `MAX_CRS_POINTS`.
pub const MAX_POINTS: u64 = 1 << 24;
/// Points per block: one batch inversion each, 1 MiB of output.
const BLOCK: u64 = 1 << 14;

/// Points `start .. start + count` in bb's layout.
fn block(start: u64, count: u64) -> Vec<u8> {
    let mut p = G1Projective::generator() * Fr::from(2u64).pow([start]);
    let mut projective = Vec::with_capacity(count as usize);
    for _ in 0..count {
        projective.push(p);
        p.double_in_place();
    }
    let mut out = Vec::with_capacity(count as usize * POINT);
    for a in G1Projective::normalize_batch(&projective) {
        put_be(&mut out, a.x.into_bigint());
        put_be(&mut out, a.y.into_bigint());
    }
    out
}

/// A field element's canonical integer, 32 bytes big-endian (the limbs are little-endian).
fn put_be(out: &mut Vec<u8>, n: BigInteger256) {
    for limb in n.0.iter().rev() {
        out.extend_from_slice(&limb.to_be_bytes());
    }
}

/// Writes the first `points` points to `out` in order; returns their SHA-256 (hex).
pub fn write(points: u64, out: &mut impl Write) -> io::Result<String> {
    if !(MIN_POINTS..=MAX_POINTS).contains(&points) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("points must be {MIN_POINTS}..{MAX_POINTS}, not {points}"),
        ));
    }
    let blocks = points.div_ceil(BLOCK);
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(blocks as usize);
    let next = AtomicU64::new(0);
    let mut hash = Context::new(&SHA256);
    std::thread::scope(|s| {
        // Bounded, so workers stay a few blocks ahead of the writer, not the whole file.
        let (tx, rx) = mpsc::sync_channel::<(u64, Vec<u8>)>(2 * workers);
        for _ in 0..workers {
            let (tx, next) = (tx.clone(), &next);
            s.spawn(move || {
                loop {
                    let b = next.fetch_add(1, Ordering::Relaxed);
                    if b >= blocks {
                        return;
                    }
                    let start = b * BLOCK;
                    if tx
                        .send((b, block(start, BLOCK.min(points - start))))
                        .is_err()
                    {
                        return; // the writer failed and went away
                    }
                }
            });
        }
        drop(tx);
        let mut pending = BTreeMap::new();
        let mut want = 0;
        for (b, bytes) in rx {
            pending.insert(b, bytes);
            while let Some(bytes) = pending.remove(&want) {
                hash.update(&bytes);
                out.write_all(&bytes)?;
                want += 1;
            }
        }
        Ok::<_, io::Error>(())
    })?;
    Ok(hex::encode(hash.finish().as_ref()))
}

/// Writes the first `points` points to `file` (through a temporary file beside it, renamed
/// over it, so a reader never sees a partial CRS); returns their SHA-256 (hex).
pub fn write_file(points: u64, file: &Path) -> io::Result<String> {
    let name = file
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the output names no file"))?;
    let tmp = file.with_file_name(format!(
        ".{}.{}.partial",
        name.to_string_lossy(),
        std::process::id()
    ));
    let r = (|| {
        let mut f = io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&tmp)?);
        let sha = write(points, &mut f)?;
        f.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(&tmp, file)?;
        Ok(sha)
    })();
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn workspace() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
    }

    fn bytes(points: u64) -> Vec<u8> {
        let mut v = Vec::new();
        write(points, &mut v).unwrap();
        v
    }

    #[test]
    fn starts_with_the_generator_and_its_double() {
        let b = bytes(2);
        let mut want = [0u8; 128];
        want[31] = 1; // G = (1, 2)
        want[63] = 2;
        // 2G, as every BN254 implementation has it.
        let x2 = "030644e72e131a029b85045b68181585d97816a916871ca8d3c208c16d87cfd3";
        let y2 = "15ed738c0e0a7c92e7845f96b2ae9c0a68a6a449e3538fc7ff3ebf7a5a18a2c4";
        want[64..96].copy_from_slice(&hex::decode(x2).unwrap());
        want[96..].copy_from_slice(&hex::decode(y2).unwrap());
        assert_eq!(b, want);
    }

    #[test]
    fn the_chonk_fixtures_crs_is_reproduced() {
        // 2^17 points span eight blocks: each block's start must continue the chain exactly.
        let record = std::fs::read_to_string(workspace().join("fixtures/chonk/test-crs/crs.json"))
            .expect("fixtures/chonk/test-crs/crs.json");
        let record: serde_json::Value = serde_json::from_str(&record).unwrap();
        let n = record["crs_points"].as_u64().unwrap();
        let mut sink = io::sink();
        assert_eq!(write(n, &mut sink).unwrap(), record["crs_sha256"]);
    }

    #[test]
    fn byte_for_byte_what_the_python_script_writes() {
        // Not a whole number of blocks, so the last, short block is covered too.
        let n = BLOCK + 3001;
        let dir = std::env::temp_dir().join(format!("sigil-insecure-crs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("bn254_g1.dat");
        let out = std::process::Command::new(workspace().join("scripts/insecure-test-crs"))
            .args(["--points", &n.to_string(), "--out"])
            .arg(&file)
            .output()
            .expect("run scripts/insecure-test-crs (python3)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let python = std::fs::read(&file).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        let ours = bytes(n);
        assert_eq!(ours.len(), python.len());
        let first_difference = ours.iter().zip(&python).position(|(a, b)| a != b);
        assert_eq!(
            first_difference, None,
            "differs at byte {first_difference:?}"
        );
        let line: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let sha = hex::encode(ring::digest::digest(&SHA256, &python).as_ref());
        assert_eq!(line["crs_sha256"], sha);
    }

    #[test]
    fn refuses_sizes_out_of_range() {
        for n in [0, 1, MAX_POINTS + 1] {
            let e = write(n, &mut io::sink()).unwrap_err();
            assert!(e.to_string().contains("points must be"), "{e}");
        }
    }

    #[test]
    fn the_file_appears_whole_under_its_name() {
        let dir = std::env::temp_dir().join(format!("sigil-insecure-crs-f-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("bn254_g1.dat");
        let sha = write_file(1000, &file).unwrap();
        let on_disk = std::fs::read(&file).unwrap();
        assert_eq!(on_disk, bytes(1000));
        assert_eq!(
            hex::encode(ring::digest::digest(&SHA256, &on_disk).as_ref()),
            sha
        );
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(left.len(), 1, "no temporary file is left behind");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
