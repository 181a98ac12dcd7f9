//! Delegated proving with Barretenberg: the CRS ([`crs`]), loaded from the parent's blob store,
//! checked against the measured configuration and kept in memory-backed storage; and the
//! proving jobs ([`jobs`]): a bounded queue, workers, and `bb` as a limited child process.

pub mod crs;
pub mod elf;
pub mod jobs;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sigil_sys::sandbox::{SANDBOX_GID, SANDBOX_UID, Sandbox, SandboxError};

use crate::boot::config::ProverConfig;
use crs::CrsService;
use jobs::{BbBinary, Prover, Settings};

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
    /// A bb or its runtime is not what the configuration pins, or versions clash.
    #[error("prover: {0}")]
    Pin(String),
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

/// A local-mode replacement of the configured binaries: `(None, path)` replaces the default
/// version's `bb_path`; `(Some(name), path)` replaces the version of that name, or adds it.
pub type BbOverride = Vec<(Option<String>, PathBuf)>;

/// The loader a bb that brings its own runtime has beside it (see [`runtime_of`]).
pub const RUNTIME_LOADER: &str = "ld-linux-x86-64.so.2";

/// Starts the proving jobs for `config`, with job directories under `work_dir`. Every bb
/// version (the configured paths unless overridden in local mode) must answer `--version` in
/// the sandbox first: a prover that cannot run is reported at once, not at the first job.
/// Without the sandbox (not root) the prover does not start: bb never runs unsandboxed. With
/// `own_fs` (PID 1), `work_dir` gets its own bounded tmpfs ([`jobs_fs_options`]); local
/// mode's job directories are on the host's file system, where the host's limits apply.
pub fn start(
    config: &ProverConfig,
    crs: Arc<CrsService>,
    work_dir: &Path,
    bb_override: &BbOverride,
    own_fs: bool,
) -> Result<Arc<Prover>, ProverError> {
    let wanted = wanted_bbs(config, bb_override);
    let sandbox = Sandbox::new()?;
    std::fs::create_dir_all(work_dir).map_err(io_at(work_dir))?;
    let workers = config.workers.unwrap_or(1);
    if own_fs {
        sigil_sys::fs::mount_tmpfs(work_dir, &jobs_fs_options(workers)).map_err(io_at(work_dir))?;
        warn_if_memory_is_short(config, workers);
    }
    let mut settings = Settings {
        bbs: Vec::new(),
        work_dir: work_dir.to_path_buf(),
        workers,
        max_queue: config.max_queue.unwrap_or(8),
        time_limit: Duration::from_secs(config.time_limit_secs.unwrap_or(600)),
        memory_limit: config.memory_limit_mib.unwrap_or(8192) << 20,
        sandbox,
    };
    for w in wanted {
        let bb = load_bb(&settings, w)?;
        if settings.bbs.iter().any(|b| b.name == bb.name) {
            return Err(ProverError::Pin(format!(
                "bb version {:?} is served twice",
                bb.name
            )));
        }
        settings.bbs.push(bb);
    }
    // The configuration was checked with its names; this is the exact list user_data carries.
    crate::boot::check_user_data_room(served(&settings.bbs)).map_err(ProverError::Pin)?;
    Prover::start(settings, crs)
}

/// The versions as the attestation's user_data lists them (`bbs`), the default first.
pub fn served(bbs: &[BbBinary]) -> Vec<sigil_protocol::user_data::ServedBb> {
    bbs.iter()
        .map(|b| sigil_protocol::user_data::ServedBb {
            name: b.name.clone(),
            version: b.version.clone(),
            sha256: b.sha256.clone(),
            runtime: b.runtime_sha256.clone(),
        })
        .collect()
}

/// One bb to start: its name (None: from `--version`), binary and pins.
struct Wanted {
    name: Option<String>,
    path: PathBuf,
    sha256: Option<String>,
    runtime_sha256: Option<String>,
    /// A configured further version: a runtime beside it must be pinned.
    runtime_pin_required: bool,
}

/// The configured versions, the default first, with local mode's replacements. A replaced
/// binary loses its pins (local mode reports the hashes of what it runs instead).
fn wanted_bbs(config: &ProverConfig, bb_override: &BbOverride) -> Vec<Wanted> {
    let mut wanted = vec![Wanted {
        name: config.bb_version.clone(),
        path: PathBuf::from(&config.bb_path),
        sha256: config.bb_sha256.clone(),
        runtime_sha256: None,
        runtime_pin_required: false,
    }];
    wanted.extend(config.bb_versions.iter().map(|v| Wanted {
        name: Some(v.version.clone()),
        path: PathBuf::from(&v.path),
        sha256: Some(v.sha256.clone()),
        runtime_sha256: v.runtime_sha256.clone(),
        runtime_pin_required: true,
    }));
    for (name, path) in bb_override {
        let at = match name {
            None => Some(0),
            Some(n) => wanted.iter().position(|w| w.name.as_ref() == Some(n)),
        };
        let w = Wanted {
            name: name.clone().or_else(|| config.bb_version.clone()),
            path: path.clone(),
            sha256: None,
            runtime_sha256: None,
            runtime_pin_required: false,
        };
        match at {
            Some(i) => wanted[i] = w,
            None => wanted.push(w),
        }
    }
    wanted
}

/// Checks one bb against its pins, runs its `--version` and hashes what will run.
///
/// Threat: a bb binary or runtime library other than the pinned one (a wrong file put in the
/// image, or one changed after the build). The image's PCRs measure the files; the pins in the
/// measured configuration make the prover itself refuse to start with anything else.
fn load_bb(settings: &Settings, w: Wanted) -> Result<BbBinary, ProverError> {
    // The sandbox shows bb's directory at its own path: no link may lead elsewhere.
    let path = std::fs::canonicalize(&w.path).map_err(io_at(&w.path))?;
    let dir = path.parent().unwrap_or(Path::new("/")).to_path_buf();
    let sha256 = sha256_file(&path)?;
    if let Some(pin) = &w.sha256
        && !pin.eq_ignore_ascii_case(&sha256)
    {
        return Err(ProverError::Pin(format!(
            "{} has sha256 {sha256}, not the pinned {pin}",
            path.display()
        )));
    }
    let (runtime, runtime_sha256) = match runtime_of(&dir)? {
        Some(digest) => (Some(dir.clone()), Some(digest)),
        None => (None, None),
    };
    match (&w.runtime_sha256, &runtime_sha256) {
        (Some(pin), Some(have)) if !pin.eq_ignore_ascii_case(have) => {
            return Err(ProverError::Pin(format!(
                "the runtime beside {} has sha256 {have}, not the pinned {pin}",
                path.display()
            )));
        }
        (Some(_), None) => {
            return Err(ProverError::Pin(format!(
                "{} is pinned with a runtime, but no {RUNTIME_LOADER} is beside it",
                path.display()
            )));
        }
        (None, Some(have)) if w.runtime_pin_required => {
            return Err(ProverError::Pin(format!(
                "the runtime beside {} (sha256 {have}) is not pinned: its bb_versions entry \
                 needs runtime_sha256",
                path.display()
            )));
        }
        _ => {}
    }
    if runtime.is_some() {
        runtime_has_every_library(&path, &dir)?;
    }
    let mut bb = BbBinary {
        name: String::new(),
        path,
        runtime,
        version: String::new(),
        sha256,
        runtime_sha256,
    };
    let version: String = bb_version(settings, &bb)?.chars().take(64).collect();
    bb.name = match w.name {
        Some(n) => n,
        // "5.0.0-nightly.20260710" is served as "5.0.0".
        None => version.split('-').next().unwrap_or_default().to_string(),
    };
    if !crate::boot::config::valid_bb_name(&bb.name) {
        return Err(ProverError::Pin(format!(
            "{}: {:?} is no version name",
            bb.path.display(),
            bb.name
        )));
    }
    bb.version = version;
    Ok(bb)
}

fn sha256_file(path: &Path) -> Result<String, ProverError> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(io_at(path))?;
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(io_at(path))?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
    }
    Ok(hex::encode(ctx.finish().as_ref()))
}

/// When `dir` holds [`RUNTIME_LOADER`], the bb in it brings its own C/C++ runtime (every
/// `*.so*` file of `dir`, which must be regular files) and runs through that loader; the
/// answer is the sha256 of the lines `"<file> <sha256 hex>\n"` sorted by name, as the
/// attestation's user_data lists it.
fn runtime_of(dir: &Path) -> Result<Option<String>, ProverError> {
    if !dir.join(RUNTIME_LOADER).exists() {
        return Ok(None);
    }
    let mut files = Vec::new();
    for e in std::fs::read_dir(dir).map_err(io_at(dir))? {
        let e = e.map_err(io_at(dir))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.contains(".so") {
            continue;
        }
        let kind = e.file_type().map_err(io_at(&e.path()))?;
        if !kind.is_file() {
            return Err(ProverError::Pin(format!(
                "{}: a runtime library must be a regular file",
                e.path().display()
            )));
        }
        files.push(name);
    }
    files.sort();
    let mut list = String::new();
    for f in &files {
        list.push_str(&format!("{f} {}\n", sha256_file(&dir.join(f))?));
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, list.as_bytes());
    Ok(Some(hex::encode(digest.as_ref())))
}

/// Every library bb names (`DT_NEEDED`), and every library those name in turn, is a regular
/// file of its runtime directory `dir`.
///
/// Threat: `ld.so --library-path DIR` looks in DIR first but falls back to the system's
/// directories for a library it does not find there: a runtime that misses one would load the
/// image's own copy (another version, not in the runtime's pinned digest) without a word.
/// Checked at start, so a runtime that is not whole stops the prover instead.
fn runtime_has_every_library(bb: &Path, dir: &Path) -> Result<(), ProverError> {
    let refuse = |m: String| ProverError::Pin(m);
    let mut seen = std::collections::BTreeSet::new();
    let mut todo = vec![bb.to_path_buf()];
    while let Some(file) = todo.pop() {
        let names = elf::needed(&file)
            .map_err(|e| refuse(format!("{}: reading its libraries: {e}", file.display())))?;
        for name in names {
            if name.contains('/') || name == "." || name == ".." {
                return Err(refuse(format!(
                    "{} names the library {name:?} by path, outside its runtime",
                    file.display()
                )));
            }
            let lib = dir.join(&name);
            let regular = std::fs::symlink_metadata(&lib).is_ok_and(|m| m.is_file());
            if !regular {
                return Err(refuse(format!(
                    "{} needs {name}, which its runtime {} lacks (the loader would take the \
                     system's)",
                    file.display(),
                    dir.display()
                )));
            }
            if seen.insert(name) {
                todo.push(lib);
            }
        }
    }
    Ok(())
}

/// `bb --version`, run in the sandbox like every job (so a bb that cannot run there is
/// reported at start).
fn bb_version(settings: &Settings, bb: &BbBinary) -> Result<String, ProverError> {
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
        let mut cmd = bb.command();
        cmd.arg("--version");
        let read_only = [bb.dir()];
        let mut settings = settings.clone();
        settings.time_limit = Duration::from_secs(30);
        let status =
            jobs::run_sandboxed(&settings, &mut cmd, &dir, &read_only, (&out, &out), None)?;
        Ok((
            status,
            std::fs::read_to_string(&out_path).unwrap_or_default(),
        ))
    };
    let result = run();
    let _ = std::fs::remove_dir_all(&dir);
    let (status, version) = result.map_err(io_at(&bb.path))?;
    if !matches!(status, jobs::Exit::Code(0)) {
        return Err(ProverError::VersionFailed(bb.path.clone()));
    }
    Ok(version.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory beside the test binary (hard links need the same file system).
    fn scratch(name: &str) -> PathBuf {
        let exe = std::env::current_exe().unwrap();
        let dir = exe
            .parent()
            .unwrap()
            .join(format!("prover-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_runtime_must_hold_every_library_bb_names() {
        let exe = std::env::current_exe().unwrap();
        let needed = elf::needed(&exe).unwrap();
        assert!(!needed.is_empty(), "the test binary links dynamically");
        let dir = scratch("runtime");
        let bb = dir.join("bb");
        std::fs::hard_link(&exe, &bb).unwrap();
        // Every library present (each a copy of an ELF naming the same ones): accepted.
        for n in &needed {
            std::fs::hard_link(&exe, dir.join(n)).unwrap();
        }
        runtime_has_every_library(&bb, &dir).unwrap();
        // One missing: the loader would fall back to the system's copy; refused, by name.
        let gone = needed.last().unwrap();
        std::fs::remove_file(dir.join(gone)).unwrap();
        let e = runtime_has_every_library(&bb, &dir)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&format!("needs {gone}")) && e.contains("lacks"),
            "{e}"
        );
        // A symbolic link is no runtime file.
        std::os::unix::fs::symlink(&exe, dir.join(gone)).unwrap();
        assert!(runtime_has_every_library(&bb, &dir).is_err());
        // Transitively: a library present but itself needing one that is absent.
        std::fs::remove_file(dir.join(gone)).unwrap();
        let dir2 = scratch("runtime-deep");
        let lib = dir2.join("libonly.so");
        std::fs::hard_link(&exe, &lib).unwrap();
        let e = runtime_has_every_library(&lib, &dir2)
            .unwrap_err()
            .to_string();
        assert!(e.contains("lacks"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_dir_all(&dir2);
    }

    #[test]
    fn elf_reading_is_bounded_and_refuses_junk() {
        let dir = scratch("elf");
        let junk = dir.join("junk");
        std::fs::write(&junk, b"#!/bin/sh\n").unwrap();
        assert!(elf::needed(&junk).is_err());
        // A header cut short, and one claiming a huge table: errors, no panic.
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        std::fs::write(&junk, &exe[..40]).unwrap();
        assert!(elf::needed(&junk).is_err());
        let mut big = exe[..64].to_vec();
        big[0x38..0x3a].copy_from_slice(&u16::MAX.to_le_bytes());
        std::fs::write(&junk, &big).unwrap();
        assert!(elf::needed(&junk).unwrap_err().contains("program headers"));
        let _ = std::fs::remove_dir_all(&dir);
    }

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
