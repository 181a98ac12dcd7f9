//! The prover's CRS (`bn254_g1.dat`, 64-byte BN254 G1 points), which `bb` reads from a
//! directory. It is too large to belong in the image and is public, so the parent supplies it
//! through the blob store (`sigil-shim --crs FILE` stores it as 1 MiB chunks
//! `crs/bn254_g1/NNNNN`), and the enclave accepts it only if its SHA-256 equals the value in
//! the measured configuration (threat: a parent feeding a CRS whose trapdoor it knows, which
//! would let it forge proofs that verify). The checked file lives in tmpfs (`/run` in the
//! image), written under a temporary name and renamed, so `bb` never sees a partial file.

use std::fmt;
use std::io::Write;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ring::digest::{Context, SHA256};
use serde::Serialize;
use sigil_sys::Addr;

use crate::boot::config::ProverConfig;
use crate::log;
use crate::parent::{TIMEOUT, retry_with_backoff};
use crate::seal::{BlobClient, StoreError};

/// Bytes per chunk in the blob store (the shim's `crs::CHUNK`).
pub const CHUNK: u64 = 1 << 20;
/// Bytes per point.
pub const POINT: u64 = 64;
/// The file name `bb` looks for in its CRS directory.
pub const FILE_NAME: &str = "bn254_g1.dat";

pub fn chunk_name(i: u64) -> String {
    format!("crs/bn254_g1/{i:05}")
}

#[derive(Debug)]
pub enum CrsError {
    Store(StoreError),
    /// A chunk the configured size needs is not in the store.
    Missing {
        chunk: u64,
        needed_points: u64,
    },
    /// The parent's CRS ends before the configured number of points.
    TooShort {
        have_points: u64,
        needed_points: u64,
    },
    /// A chunk is longer than a chunk can be.
    BadChunk {
        chunk: u64,
        len: usize,
    },
    /// The bytes are not the pinned CRS.
    HashMismatch {
        found: String,
        pinned: String,
    },
    Io(String),
}

impl fmt::Display for CrsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CrsError::Store(e) => write!(f, "blob store: {e}"),
            CrsError::Missing {
                chunk,
                needed_points,
            } => write!(
                f,
                "the parent's blob store lacks {} (the configuration pins a CRS of \
                 {needed_points} points; start sigil-shim with --crs FILE)",
                chunk_name(*chunk)
            ),
            CrsError::TooShort {
                have_points,
                needed_points,
            } => write!(
                f,
                "the parent's CRS has only {have_points} points; the measured configuration \
                 needs {needed_points} (supply a longer bn254_g1.dat with sigil-shim --crs)"
            ),
            CrsError::BadChunk { chunk, len } => write!(
                f,
                "{} is {len} bytes, more than a chunk ({CHUNK})",
                chunk_name(*chunk)
            ),
            CrsError::HashMismatch { found, pinned } => write!(
                f,
                "the CRS the parent supplied has SHA-256 {found}; the measured configuration \
                 pins {pinned}: refused"
            ),
            CrsError::Io(m) => write!(f, "writing the CRS: {m}"),
        }
    }
}

/// Fetches the configured CRS into `dir/bn254_g1.dat` and checks it. Returns the file.
pub fn load(
    blobs: &mut BlobClient<impl std::io::Read + Write>,
    config: &ProverConfig,
    dir: &Path,
) -> Result<PathBuf, CrsError> {
    let total = config.crs_points * POINT;
    let chunks = total.div_ceil(CHUNK);
    std::fs::create_dir_all(dir).map_err(|e| CrsError::Io(format!("{}: {e}", dir.display())))?;
    let partial = dir.join(format!("{FILE_NAME}.partial"));
    let io = |e: std::io::Error| CrsError::Io(format!("{}: {e}", partial.display()));
    let mut out = std::fs::File::create(&partial).map_err(io)?;
    let mut hash = Context::new(&SHA256);
    let result = (|| {
        for i in 0..chunks {
            let expected = CHUNK.min(total - i * CHUNK);
            let data = match blobs.get(&chunk_name(i)) {
                Ok((_, d)) => d,
                Err(StoreError::NotFound) => {
                    return Err(CrsError::Missing {
                        chunk: i,
                        needed_points: config.crs_points,
                    });
                }
                Err(e) => return Err(CrsError::Store(e)),
            };
            // The last chunk of a longer file holds more points than configured: only the
            // configured prefix is used (and hashed).
            let take = if i + 1 == chunks {
                expected as usize
            } else {
                data.len()
            };
            if data.len() as u64 > CHUNK {
                return Err(CrsError::BadChunk {
                    chunk: i,
                    len: data.len(),
                });
            }
            if data.len() < take || (i + 1 < chunks && data.len() as u64 != CHUNK) {
                return Err(CrsError::TooShort {
                    have_points: (i * CHUNK + data.len() as u64) / POINT,
                    needed_points: config.crs_points,
                });
            }
            hash.update(&data[..take]);
            out.write_all(&data[..take]).map_err(io)?;
        }
        let found = hex::encode(hash.finish().as_ref());
        if !found.eq_ignore_ascii_case(&config.crs_sha256) {
            return Err(CrsError::HashMismatch {
                found,
                pinned: config.crs_sha256.to_ascii_lowercase(),
            });
        }
        out.sync_all().map_err(io)?;
        Ok(())
    })();
    drop(out);
    if let Err(e) = result {
        let _ = std::fs::remove_file(&partial);
        return Err(e);
    }
    let file = dir.join(FILE_NAME);
    // Read-only to everyone: every job's CRS directory links here, and the sandbox also
    // shows the file through a read-only bind mount, so no bb can write the checked points.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o444)).map_err(io)?;
    std::fs::rename(&partial, &file).map_err(io)?;
    Ok(file)
}

/// What `GET /v1/health` shows of the CRS.
#[derive(Clone, Debug, Serialize)]
pub struct Status {
    pub state: &'static str,
    pub points: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The CRS as a service: loaded in the background, retried while it is missing or wrong (the
/// operator may fix the parent's file), its state visible in health.
pub struct CrsService {
    status: Mutex<Status>,
    path: Mutex<Option<PathBuf>>,
}

impl CrsService {
    pub fn start(config: ProverConfig, blobs: Addr, dir: PathBuf) -> Arc<CrsService> {
        let svc = Arc::new(CrsService {
            status: Mutex::new(Status {
                state: "loading",
                points: config.crs_points,
                error: None,
            }),
            path: Mutex::new(None),
        });
        let me = svc.clone();
        let spawned = std::thread::Builder::new()
            .name("sigil-crs".into())
            .spawn(move || me.run(&config, &blobs, &dir));
        if let Err(e) = spawned {
            svc.set("failed", Some(format!("cannot start the CRS thread: {e}")));
        }
        svc
    }

    fn set(&self, state: &'static str, error: Option<String>) {
        let mut s = self.status.lock().unwrap_or_else(|p| p.into_inner());
        s.state = state;
        s.error = error;
    }

    fn run(&self, config: &ProverConfig, blobs: &Addr, dir: &Path) {
        retry_with_backoff(|_, delay| {
            let started = std::time::Instant::now();
            let attempt = BlobClient::connect(blobs, TIMEOUT)
                .map_err(CrsError::Store)
                .and_then(|mut c| load(&mut c, config, dir));
            match attempt {
                Ok(path) => {
                    log::info(format_args!(
                        "CRS ready: {} points, SHA-256 {} checked, in {} ms",
                        config.crs_points,
                        config.crs_sha256,
                        started.elapsed().as_millis()
                    ));
                    *self.path.lock().unwrap_or_else(|p| p.into_inner()) = Some(path);
                    self.set("ready", None);
                    ControlFlow::Break(())
                }
                Err(e) => {
                    log::warn(format_args!(
                        "CRS: {e}; retrying in {} ms",
                        delay.as_millis()
                    ));
                    self.set("loading", Some(e.to_string()));
                    ControlFlow::Continue(())
                }
            }
        });
    }

    pub fn status(&self) -> Status {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The checked CRS file, once loaded.
    pub fn path(&self) -> Option<PathBuf> {
        self.path.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}
