//! Delegated proving with Barretenberg: the CRS ([`crs`]), loaded from the parent's blob store,
//! checked against the measured configuration and kept in memory-backed storage; and the
//! proving jobs ([`jobs`]): a bounded queue, workers, and `bb` as a limited child process.

pub mod crs;
pub mod jobs;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sigil_sys::sandbox::{SANDBOX_GID, SANDBOX_UID, Sandbox, SandboxError};

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
    #[error("prover sandbox: {0}")]
    Sandbox(#[from] SandboxError),
}

fn io_at(path: &Path) -> impl FnOnce(std::io::Error) -> ProverError + '_ {
    move |source| ProverError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Room for one running job's directory: its inputs (at most `MAX_PROVE_INPUT`, 64 MiB) and
/// what bb writes (each file at most 64 MiB by RLIMIT_FSIZE, the real outputs a few MiB).
pub const JOB_FS_BYTES_PER_WORKER: u64 = 256 << 20;
/// Files and directories one running job may make (bb writes a handful).
pub const JOB_FS_INODES_PER_WORKER: u64 = 256;

/// The options of the job directories' own tmpfs for `workers` jobs at once.
///
/// Threat: a compromised bb filling the enclave's memory through its job directory, with many
/// files each below RLIMIT_FSIZE. The job directories live on a tmpfs of their own, bounded
/// in bytes and in files: a bb that fills it fails its own job (and at worst the others
/// running beside it, which it could slow down anyway), never the enclave.
pub fn jobs_fs_options(workers: usize) -> String {
    let w = workers.max(1) as u64;
    format!(
        "size={},nr_inodes={},mode=0700",
        w * JOB_FS_BYTES_PER_WORKER,
        w * JOB_FS_INODES_PER_WORKER + 16
    )
}

/// The prover's worst case in memory: the CRS, every queued input, and every running job's
/// directory full. A deployment that gives the enclave less is told at boot (nothing breaks at
/// once: a job that finds no room fails alone).
fn warn_if_memory_is_short(config: &ProverConfig, workers: usize) {
    let queue = config.max_queue.unwrap_or(8) as u64;
    let worst = config.crs_points * 64
        + queue * sigil_protocol::prove::MAX_PROVE_INPUT as u64
        + workers as u64 * JOB_FS_BYTES_PER_WORKER;
    if let Ok(total) = sigil_sys::process::total_memory()
        && worst > total
    {
        crate::log::warn(format_args!(
            "the prover may need {} MiB at worst (CRS, {queue} queued inputs, {workers} job directories) but the enclave has {} MiB",
            worst >> 20,
            total >> 20
        ));
    }
}

/// Starts the proving jobs for `config`, with job directories under `work_dir`. `bb` (the
/// configured path unless overridden in local mode) must answer `--version` in the sandbox
/// first: a prover that cannot run is reported at once, not at the first job. Without the
/// sandbox (not root) the prover does not start: bb never runs unsandboxed. With `own_fs`
/// (PID 1), `work_dir` gets its own bounded tmpfs ([`jobs_fs_options`]); local mode's job
/// directories are on the host's file system, where the host's limits apply.
pub fn start(
    config: &ProverConfig,
    crs: Arc<CrsService>,
    work_dir: &Path,
    bb_override: Option<PathBuf>,
    own_fs: bool,
) -> Result<Arc<Prover>, ProverError> {
    let bb = bb_override.unwrap_or_else(|| PathBuf::from(&config.bb_path));
    // The sandbox shows bb's directory at its own path: no link may lead elsewhere.
    let bb = std::fs::canonicalize(&bb).map_err(io_at(&bb))?;
    let sandbox = Sandbox::new()?;
    std::fs::create_dir_all(work_dir).map_err(io_at(work_dir))?;
    let workers = config.workers.unwrap_or(1);
    if own_fs {
        sigil_sys::fs::mount_tmpfs(work_dir, &jobs_fs_options(workers)).map_err(io_at(work_dir))?;
        warn_if_memory_is_short(config, workers);
    }
    let mut settings = Settings {
        bb: bb.clone(),
        bb_sha256: String::new(),
        bb_version: String::new(),
        work_dir: work_dir.to_path_buf(),
        workers,
        max_queue: config.max_queue.unwrap_or(8),
        time_limit: Duration::from_secs(config.time_limit_secs.unwrap_or(600)),
        memory_limit: config.memory_limit_mib.unwrap_or(8192) << 20,
        sandbox,
    };
    let version = bb_version(&settings)?;
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
    settings.bb_sha256 = bb_sha256;
    settings.bb_version = version.chars().take(64).collect();
    Prover::start(settings, crs)
}

/// `bb --version`, run in the sandbox like every job (so a bb that cannot run there is
/// reported at start).
fn bb_version(settings: &Settings) -> Result<String, ProverError> {
    let bb = &settings.bb;
    let root = jobs::sandbox_root(&settings.work_dir);
    std::fs::create_dir_all(&root).map_err(io_at(&root))?;
    let dir = settings.work_dir.join("version");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).map_err(io_at(&dir))?;
    // Through a file, not a pipe: as PID 1 the reaper owns waitpid (see jobs::run_with_limit).
    let out_path = dir.join("bb-version");
    let run = || -> std::io::Result<(jobs::Exit, String)> {
        std::os::unix::fs::lchown(&dir, Some(SANDBOX_UID), Some(SANDBOX_GID))?;
        let out = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&out_path)?;
        let mut cmd = std::process::Command::new(bb);
        cmd.arg("--version");
        let read_only = [bb.parent().unwrap_or(Path::new("/"))];
        let mut settings = settings.clone();
        settings.time_limit = Duration::from_secs(30);
        let status = jobs::run_sandboxed(&settings, &mut cmd, &dir, &read_only, &out, &out)?;
        Ok((
            status,
            std::fs::read_to_string(&out_path).unwrap_or_default(),
        ))
    };
    let result = run();
    let _ = std::fs::remove_dir_all(&dir);
    let (status, version) = result.map_err(io_at(bb))?;
    if !matches!(status, jobs::Exit::Code(0)) {
        return Err(ProverError::VersionFailed(bb.clone()));
    }
    Ok(version.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_jobs_file_system_grows_with_the_workers() {
        assert_eq!(
            jobs_fs_options(1),
            format!("size={},nr_inodes=272,mode=0700", 256u64 << 20)
        );
        assert_eq!(
            jobs_fs_options(2),
            format!("size={},nr_inodes=528,mode=0700", 512u64 << 20)
        );
        // Enough for the largest input a job may carry.
        assert!(JOB_FS_BYTES_PER_WORKER > 2 * sigil_protocol::prove::MAX_PROVE_INPUT as u64);
    }
}
