//! Puts the prover's CRS (`bn254_g1.dat`: 64-byte BN254 G1 points) into the blob store, where
//! the enclave reads it: chunks of [`CHUNK`] bytes named `crs/bn254_g1/00000`, `00001`, ...
//!
//! The CRS is public, and the enclave checks its SHA-256 against its measured configuration,
//! so the shim only carries it; a wrong or short file makes the enclave refuse to prove, never
//! prove wrongly. Importing is idempotent: chunks already stored with the same bytes are left
//! alone, so a restart does not rewrite (and fsync) the whole file.

use std::io::Read;
use std::path::Path;

use crate::store::Backend;
use crate::wire::{Op, Request};

/// Bytes per chunk (16,384 points); well under the blob store's 4 MiB limit.
pub const CHUNK: usize = 1 << 20;
/// Largest CRS imported: 2^24 points (circuits up to about 16 million gates).
pub const MAX_BYTES: u64 = 64 << 24;
/// Size of one point.
pub const POINT: u64 = 64;

pub fn chunk_name(i: usize) -> String {
    format!("crs/bn254_g1/{i:05}")
}

/// Why the CRS file could not be imported.
#[derive(Debug, thiserror::Error)]
pub enum CrsError {
    #[error("CRS {}: {source}", file.display())]
    Io {
        file: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "CRS {}: {len} bytes is not a whole number of 64-byte points up to {MAX_BYTES} bytes",
        file.display()
    )]
    Size { file: std::path::PathBuf, len: u64 },
    /// The blob store refused a chunk: its error code and message.
    #[error("storing {name}: {detail}")]
    Store { name: String, detail: String },
}

/// Imports `file`; returns (points, chunks written, chunks already present).
pub fn import<B: Backend + ?Sized>(
    store: &B,
    file: &Path,
) -> Result<(u64, usize, usize), CrsError> {
    let ctx = |source: std::io::Error| CrsError::Io {
        file: file.to_path_buf(),
        source,
    };
    let len = std::fs::metadata(file).map_err(ctx)?.len();
    if len == 0 || len % POINT != 0 || len > MAX_BYTES {
        return Err(CrsError::Size {
            file: file.to_path_buf(),
            len,
        });
    }
    let mut f = std::fs::File::open(file).map_err(ctx)?;
    let (mut written, mut kept) = (0, 0);
    let mut buf = vec![0u8; CHUNK];
    for i in 0.. {
        let n = read_full(&mut f, &mut buf).map_err(ctx)?;
        if n == 0 {
            break;
        }
        let name = chunk_name(i);
        let current = store.handle(Request {
            op: Op::Get,
            name: Some(name.clone()),
            expected_version: None,
            data: None,
            prefix: None,
        });
        let version = match (&current.data, current.version) {
            (Some(d), Some(_)) if d[..] == buf[..n] => {
                kept += 1;
                continue;
            }
            (_, Some(v)) if current.ok => v,
            _ => 0,
        };
        let r = store.handle(Request {
            op: Op::Put,
            name: Some(name.clone()),
            expected_version: Some(version),
            data: Some(buf[..n].to_vec()),
            prefix: None,
        });
        if !r.ok {
            let e = r.error.map(|e| format!("{}: {}", e.code, e.message));
            return Err(CrsError::Store {
                name,
                detail: e.unwrap_or_default(),
            });
        }
        written += 1;
    }
    Ok((len / POINT, written, kept))
}

fn read_full(f: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Limits, Store};

    #[test]
    fn imports_in_chunks_once_and_refuses_partial_points() {
        let dir = std::env::temp_dir().join(format!("sigil-crs-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("state")).unwrap();
        let limits = Limits {
            max_blob_bytes: crate::wire::MAX_DATA,
            max_blobs: 100,
        };
        let store = Store::open(&dir.join("state"), limits).unwrap();
        // Two full chunks and one point more.
        let bytes: Vec<u8> = (0..2 * CHUNK + 64).map(|i| (i % 251) as u8).collect();
        let file = dir.join("bn254_g1.dat");
        std::fs::write(&file, &bytes).unwrap();
        assert_eq!(import(&store, &file).unwrap(), (32_769, 3, 0));
        assert_eq!(import(&store, &file).unwrap(), (32_769, 0, 3));
        let last = store.handle(Request {
            op: Op::Get,
            name: Some(chunk_name(2)),
            expected_version: None,
            data: None,
            prefix: None,
        });
        assert_eq!(last.data.unwrap(), &bytes[2 * CHUNK..]);

        std::fs::write(&file, &bytes[..100]).unwrap();
        let e = import(&store, &file).unwrap_err().to_string();
        assert!(e.contains("64-byte points"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
