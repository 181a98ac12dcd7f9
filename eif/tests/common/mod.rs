//! Shared by the integration tests: the golden vectors and small helpers.
#![allow(dead_code)]

use std::path::PathBuf;

pub const ONE: &str = "one-ramdisk.eif";
pub const TWO: &str = "two-ramdisks.eif";

/// shared/ sits beside the workspace, as in CI.
pub fn vectors_dir() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/vectors/eif"
    ))
}

pub fn vector_path(name: &str) -> PathBuf {
    vectors_dir().join(name)
}

pub fn read(name: &str) -> Vec<u8> {
    let p = vector_path(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

pub fn expected() -> serde_json::Value {
    serde_json::from_slice(&read("expected.json")).unwrap()
}

pub fn cmdline() -> String {
    String::from_utf8(read("cmdline.txt")).unwrap()
}

/// Ramdisk inputs of a vector image, in order.
pub fn ramdisks_for(eif: &str) -> Vec<Vec<u8>> {
    match eif {
        ONE => vec![read("ramdisk1.bin")],
        TWO => vec![read("ramdisk1.bin"), read("ramdisk2.bin")],
        _ => unreachable!(),
    }
}

pub fn sha256_hex(b: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, b))
}

/// Recomputes the header CRC so a test reaches the check it aims at, not the CRC check.
pub fn fix_crc(b: &mut [u8]) {
    let mut h = crc32fast::Hasher::new();
    h.update(&b[..544]);
    h.update(&b[548..]);
    let crc = h.finalize();
    b[544..548].copy_from_slice(&crc.to_be_bytes());
}

pub fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_be_bytes());
}

/// Header offsets of the section table.
pub fn offset_slot(i: usize) -> usize {
    28 + 8 * i
}

pub fn size_slot(i: usize) -> usize {
    28 + 256 + 8 * i
}
