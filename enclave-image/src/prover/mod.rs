//! Delegated proving with Barretenberg: the CRS ([`crs`]), loaded from the parent's blob store,
//! checked against the measured configuration and kept in memory-backed storage; and the
//! proving jobs ([`jobs`]): a bounded queue, workers, and `bb` as a limited child process.

pub mod crs;
pub mod jobs;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::boot::config::ProverConfig;
use crs::CrsService;
use jobs::{Prover, Settings};

/// Why the prover could not start.
#[derive(Debug, thiserror::Error)]
pub enum ProverError {
    /// A job directory, or the `bb` binary, could not be created, run or read.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} --version failed", .0.display())]
    VersionFailed(PathBuf),
    #[error("prover worker: {0}")]
    Worker(#[source] std::io::Error),
}

fn io_at(path: &Path) -> impl FnOnce(std::io::Error) -> ProverError + '_ {
    move |source| ProverError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Starts the proving jobs for `config`, with job directories under `work_dir`. `bb` (the
/// configured path unless overridden in local mode) must answer `--version` first: a prover
/// that cannot run is reported at once, not at the first job.
pub fn start(
    config: &ProverConfig,
    crs: Arc<CrsService>,
    work_dir: &Path,
    bb_override: Option<PathBuf>,
) -> Result<Arc<Prover>, ProverError> {
    let bb = bb_override.unwrap_or_else(|| PathBuf::from(&config.bb_path));
    std::fs::create_dir_all(work_dir).map_err(io_at(work_dir))?;
    // Through a file, not a pipe: as PID 1 the reaper owns waitpid (see jobs::run_with_limit).
    let out_path = work_dir.join("bb-version");
    let out = std::fs::File::create(&out_path).map_err(io_at(&out_path))?;
    let mut cmd = std::process::Command::new(&bb);
    cmd.arg("--version")
        .stdin(std::process::Stdio::null())
        .stdout(out)
        .stderr(std::process::Stdio::null());
    let status = jobs::run_with_limit(&mut cmd, Duration::from_secs(30)).map_err(io_at(&bb))?;
    let version = std::fs::read_to_string(&out_path).unwrap_or_default();
    let _ = std::fs::remove_file(&out_path);
    if !matches!(status, jobs::Exit::Code(0)) {
        return Err(ProverError::VersionFailed(bb));
    }
    let version = version.trim().to_string();
    // The hash of what will run, for the attestation's user_data (PCR0/PCR1 measure the same
    // bytes in the image; in local mode it is the only record of which bb ran).
    let bb_sha256 = {
        use std::io::Read;
        let mut f = std::fs::File::open(&bb).map_err(io_at(&bb))?;
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = f.read(&mut buf).map_err(io_at(&bb))?;
            if n == 0 {
                break;
            }
            ctx.update(&buf[..n]);
        }
        hex::encode(ctx.finish().as_ref())
    };
    let settings = Settings {
        bb,
        bb_sha256,
        bb_version: version.chars().take(64).collect(),
        work_dir: work_dir.to_path_buf(),
        workers: config.workers.unwrap_or(1),
        max_queue: config.max_queue.unwrap_or(8),
        time_limit: Duration::from_secs(config.time_limit_secs.unwrap_or(600)),
        memory_limit: config.memory_limit_mib.unwrap_or(8192) << 20,
    };
    Prover::start(settings, crs)
}
