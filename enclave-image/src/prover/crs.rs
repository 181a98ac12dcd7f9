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
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

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

/// Where a load spent its time: each stage's busy time. Fetching runs beside hashing and
/// writing, so the load takes about the longer of the two, not their sum.
#[derive(Clone, Copy, Debug, Default)]
pub struct Timings {
    pub fetch: Duration,
    pub hash: Duration,
    pub write: Duration,
}

impl fmt::Display for Timings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "fetch {} ms, hash {} ms, write {} ms",
            self.fetch.as_millis(),
            self.hash.as_millis(),
            self.write.as_millis()
        )
    }
}

/// Chunks fetched but not yet hashed and written, at most: bounds the loader's memory
/// (a few MiB, whatever the CRS size) while keeping both threads busy.
const QUEUE: usize = 4;

/// Fetches the configured CRS into `dir/bn254_g1.dat` and checks it. Returns the file and
/// where the time went.
pub fn load(
    blobs: &mut BlobClient<impl std::io::Read + Write>,
    config: &ProverConfig,
    dir: &Path,
) -> Result<(PathBuf, Timings), CrsError> {
    std::fs::create_dir_all(dir).map_err(|e| CrsError::Io(format!("{}: {e}", dir.display())))?;
    // bb is only ever shown FILE_NAME, renamed into place after the hash matched: a partial
    // or unchecked file is never where bb looks.
    let partial = dir.join(format!("{FILE_NAME}.partial"));
    let io = |e: std::io::Error| CrsError::Io(format!("{}: {e}", partial.display()));
    let out = std::fs::File::create(&partial).map_err(io)?;
    let result = fetch_and_check(blobs, config, out, &io);
    let timings = match result {
        Ok(t) => t,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    };
    let file = dir.join(FILE_NAME);
    // Read-only to everyone: every job's CRS directory links here, and the sandbox also
    // shows the file through a read-only bind mount, so no bb can write the checked points.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o444)).map_err(io)?;
    std::fs::rename(&partial, &file).map_err(io)?;
    Ok((file, timings))
}

/// Fetches every chunk on this thread while another hashes and writes them in order into
/// `out`; then compares the hash with the pin.
fn fetch_and_check(
    blobs: &mut BlobClient<impl std::io::Read + Write>,
    config: &ProverConfig,
    mut out: std::fs::File,
    io: &(impl Fn(std::io::Error) -> CrsError + Sync),
) -> Result<Timings, CrsError> {
    let total = config.crs_points * POINT;
    let chunks = total.div_ceil(CHUNK);
    std::thread::scope(|s| {
        let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(QUEUE);
        // Spawned through the Builder: a thread that cannot start is an error, not a panic.
        let sink = std::thread::Builder::new()
            .name("sigil-crs-hash".into())
            .spawn_scoped(s, move || {
                let mut hash = Context::new(&SHA256);
                let (mut hashing, mut writing) = (Duration::ZERO, Duration::ZERO);
                for data in rx {
                    let at = Instant::now();
                    hash.update(&data);
                    hashing += at.elapsed();
                    let at = Instant::now();
                    out.write_all(&data).map_err(io)?;
                    writing += at.elapsed();
                }
                out.sync_all().map_err(io)?;
                Ok::<_, CrsError>((hex::encode(hash.finish().as_ref()), hashing, writing))
            })
            .map_err(|e| CrsError::Io(format!("cannot start the CRS hashing thread: {e}")))?;
        let mut fetching = Duration::ZERO;
        let fetched = (|| {
            for i in 0..chunks {
                let expected = CHUNK.min(total - i * CHUNK);
                let at = Instant::now();
                let got = blobs.get(&chunk_name(i));
                fetching += at.elapsed();
                let mut data = match got {
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
                data.truncate(take);
                if tx.send(data).is_err() {
                    // The hashing thread stopped on an error; it reports it below.
                    break;
                }
            }
            Ok(())
        })();
        drop(tx);
        let sunk = sink
            .join()
            .map_err(|_| CrsError::Io("the CRS hashing thread failed".into()))?;
        fetched?;
        let (found, hash, write) = sunk?;
        if !found.eq_ignore_ascii_case(&config.crs_sha256) {
            return Err(CrsError::HashMismatch {
                found,
                pinned: config.crs_sha256.to_ascii_lowercase(),
            });
        }
        Ok(Timings {
            fetch: fetching,
            hash,
            write,
        })
    })
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
            let started = Instant::now();
            let attempt = BlobClient::connect(blobs, TIMEOUT)
                .map_err(CrsError::Store)
                .and_then(|mut c| load(&mut c, config, dir));
            match attempt {
                Ok((path, timings)) => {
                    log::info(format_args!(
                        "CRS ready: {} points, SHA-256 {} checked, in {} ms ({timings})",
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
