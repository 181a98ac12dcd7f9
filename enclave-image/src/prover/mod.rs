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
/// version (the configured paths unless overridden in local mode) is checked against its pins
/// and must answer `--version` in the sandbox before any job runs: a prover that cannot run is
/// reported, not found out at the first job. Without the sandbox (not root) the prover does
/// not start: bb never runs unsandboxed. With `own_fs` (PID 1), `work_dir` gets its own
/// bounded tmpfs ([`jobs_fs_options`]); local mode's job directories are on the host's file
/// system, where the host's limits apply.
///
/// When the configuration pins everything the attestation says of each version (its name, its
/// hashes and what its `--version` prints), those checks run after the service is ready: they
/// hash about 100 MB and start bb twice, which is most of the boot under an emulated CPU.
/// Jobs submitted meanwhile wait in the queue; a check that fails stops the prover (health
/// and every submission say why) and never lets a job run. Otherwise they run here, before the
/// service starts, and a failure stops the boot.
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
    let pinned: Option<Vec<BbBinary>> = wanted.iter().map(pinned_bb).collect();
    let check = match pinned {
        Some(bbs) => {
            settings.bbs = bbs;
            let (settings, promised) = (settings.clone(), settings.bbs.clone());
            Some(Box::new(move || check_pinned(&settings, wanted, &promised)) as jobs::Check)
        }
        None => {
            for (i, w) in wanted.into_iter().enumerate() {
                settings.bbs.push(load_bb(&settings, w, i)?);
            }
            None
        }
    };
    refuse_twice_served(settings.bbs.iter().map(|b| b.name.as_str()))?;
    // The configuration was checked with its names; this is the exact list user_data carries.
    crate::boot::check_user_data_room(served(&settings.bbs)).map_err(ProverError::Pin)?;
    Prover::start(settings, crs, check)
}

fn refuse_twice_served<'a>(names: impl Iterator<Item = &'a str>) -> Result<(), ProverError> {
    let mut seen = std::collections::BTreeSet::new();
    for name in names {
        if !seen.insert(name) {
            return Err(ProverError::Pin(format!(
                "bb version {name:?} is served twice"
            )));
        }
    }
    Ok(())
}

/// The bb as its pins describe it, when they say all the attestation shows of it (name,
/// binary hash, `--version` output, and the runtime's hash when a runtime is beside it).
/// Nothing is read but the directory: [`check_pinned`] holds the files to these words.
fn pinned_bb(w: &Wanted) -> Option<BbBinary> {
    let (name, sha256, version) = (
        w.name.clone()?,
        w.sha256.clone()?,
        w.version_output.clone()?,
    );
    let path = std::fs::canonicalize(&w.path).ok()?;
    let dir = path.parent().unwrap_or(Path::new("/")).to_path_buf();
    let runtime = dir.join(RUNTIME_LOADER).exists().then_some(dir);
    if runtime.is_some() && w.runtime_sha256.is_none() {
        // Refused by load_bb at once, with the setting that is missing.
        return None;
    }
    Some(BbBinary {
        name,
        path,
        runtime_sha256: runtime
            .as_ref()
            .and(w.runtime_sha256.as_ref().map(|h| h.to_ascii_lowercase())),
        runtime,
        version,
        sha256: sha256.to_ascii_lowercase(),
    })
}

/// Checks each bb against the pins the service already attests ([`pinned_bb`]), in parallel:
/// the same checks as an unpinned start ([`load_bb`]) and then that each matches, word for
/// word, what was promised. The first failure is the answer.
fn check_pinned(
    settings: &Settings,
    wanted: Vec<Wanted>,
    promised: &[BbBinary],
) -> Result<(), String> {
    std::thread::scope(|scope| {
        let checks: Vec<_> = wanted
            .into_iter()
            .zip(promised)
            .enumerate()
            .map(|(i, (w, p))| scope.spawn(move || check_one(settings, w, p, i)))
            .collect();
        // Every check is joined (a panicked one too) before the first failure is answered.
        let outcomes: Vec<Result<(), String>> = checks
            .into_iter()
            .map(|c| {
                c.join()
                    .unwrap_or_else(|_| Err("prover: internal error while checking a bb".into()))
            })
            .collect();
        outcomes.into_iter().collect()
    })
}

fn check_one(settings: &Settings, w: Wanted, promised: &BbBinary, i: usize) -> Result<(), String> {
    let have = load_bb(settings, w, i).map_err(|e| e.to_string())?;
    // load_bb held the hashes and what --version prints to the same pins; the paths and the
    // runtime come from the same files.
    let same = have.version == promised.version
        && have.name == promised.name
        && have.path == promised.path
        && have.runtime == promised.runtime
        && have.sha256 == promised.sha256
        && have.runtime_sha256 == promised.runtime_sha256;
    if !same {
        return Err(format!(
            "prover: {} is not what its pins describe",
            have.path.display()
        ));
    }
    Ok(())
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
    /// A configured version (not a local-mode replacement): a runtime beside it must be
    /// pinned, by the setting named here.
    runtime_pin_setting: Option<&'static str>,
    /// What its `--version` must print, when pinned.
    version_output: Option<String>,
}

const DEFAULT_RUNTIME_PIN: &str = "prover.bb_runtime_sha256";
const VERSION_RUNTIME_PIN: &str = "its bb_versions entry's runtime_sha256";

/// The configured versions, the default first, with local mode's replacements. A replaced
/// binary loses its pins (local mode reports the hashes of what it runs instead).
fn wanted_bbs(config: &ProverConfig, bb_override: &BbOverride) -> Vec<Wanted> {
    let mut wanted = vec![Wanted {
        name: config.bb_version.clone(),
        path: PathBuf::from(&config.bb_path),
        sha256: config.bb_sha256.clone(),
        runtime_sha256: config.bb_runtime_sha256.clone(),
        runtime_pin_setting: Some(DEFAULT_RUNTIME_PIN),
        version_output: config.bb_version_output.clone(),
    }];
    wanted.extend(config.bb_versions.iter().map(|v| Wanted {
        name: Some(v.version.clone()),
        path: PathBuf::from(&v.path),
        sha256: Some(v.sha256.clone()),
        runtime_sha256: v.runtime_sha256.clone(),
        runtime_pin_setting: Some(VERSION_RUNTIME_PIN),
        version_output: v.version_output.clone(),
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
            runtime_pin_setting: None,
            version_output: None,
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
fn load_bb(settings: &Settings, w: Wanted, i: usize) -> Result<BbBinary, ProverError> {
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
        (None, Some(have)) => {
            if let Some(setting) = w.runtime_pin_setting {
                return Err(ProverError::Pin(format!(
                    "the runtime beside {} (sha256 {have}) is not pinned: {setting} is needed",
                    path.display()
                )));
            }
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
    let version: String = bb_version(settings, &bb, i)?.chars().take(64).collect();
    // Threat: a measured configuration that says one thing of a bb while the attestation says
    // another (what it prints is attested, so a pin on it is held whichever way it starts).
    if let Some(pin) = &w.version_output
        && *pin != version
    {
        return Err(ProverError::Pin(format!(
            "{} --version prints {version:?}, not the pinned {pin:?}",
            bb.path.display()
        )));
    }
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

/// The library glibc loads at run time (`dlopen`, for thread cancellation and unwinding), which
/// no `DT_NEEDED` names: a runtime must hold it too.
pub const RUNTIME_UNWINDER: &str = "libgcc_s.so.1";

/// Every library bb names (`DT_NEEDED`), and every library those name in turn, is a regular
/// file of its runtime directory `dir`, as are the loader and [`RUNTIME_UNWINDER`] (whose own
/// libraries are checked likewise); none of these files names a search path (`DT_RPATH`,
/// `DT_RUNPATH`).
///
/// Threat: `ld.so --library-path DIR` looks in DIR first but falls back to the system's
/// directories for a library it does not find there: a runtime that misses one would load the
/// image's own copy (another version, not in the runtime's pinned digest) without a word. The
/// loader searches a file's `DT_RPATH` even before DIR, and a `DT_RUNPATH` may name `$ORIGIN`
/// or a directory outside the runtime: either could bring in libraries the pin does not cover.
/// Checked at start, so a runtime that is not whole stops the prover instead.
fn runtime_has_every_library(bb: &Path, dir: &Path) -> Result<(), ProverError> {
    let refuse = |m: String| ProverError::Pin(m);
    let mut seen = std::collections::BTreeSet::new();
    let mut todo = vec![bb.to_path_buf()];
    for name in [RUNTIME_LOADER, RUNTIME_UNWINDER] {
        let lib = dir.join(name);
        if !std::fs::symlink_metadata(&lib).is_ok_and(|m| m.is_file()) {
            return Err(refuse(format!(
                "the runtime {} lacks {name} (a regular file)",
                dir.display()
            )));
        }
        seen.insert(name.to_string());
        todo.push(lib);
    }
    while let Some(file) = todo.pop() {
        let d = elf::dynamic(&file)
            .map_err(|e| refuse(format!("{}: reading its libraries: {e}", file.display())))?;
        if let Some(path) = d.rpath.first().or(d.runpath.first()) {
            return Err(refuse(format!(
                "{} names the library search path {path:?} (DT_RPATH/DT_RUNPATH): a runtime \
                 file may name none",
                file.display()
            )));
        }
        for name in d.needed {
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
fn bb_version(settings: &Settings, bb: &BbBinary, i: usize) -> Result<String, ProverError> {
    let root = jobs::sandbox_root(&settings.work_dir);
    std::fs::create_dir_all(&root).map_err(io_at(&root))?;
    // One directory per version: the pinned start checks them side by side.
    let dir = settings.work_dir.join(format!("version-{i}"));
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

    /// A minimal 64-bit ELF file whose dynamic segment names `needed`, and `search` as
    /// (DT_RPATH or DT_RUNPATH tag, path).
    fn synthetic_elf(path: &Path, needed: &[&str], search: &[(u64, &str)]) {
        let entries: Vec<(u64, &str)> = needed
            .iter()
            .map(|n| (1u64, *n))
            .chain(search.iter().copied())
            .collect();
        // header (64) | 2 program headers (112) | dynamic (entries + STRTAB, STRSZ, NULL) | strings
        let dyn_off = 64 + 2 * 56;
        let dyn_len = (entries.len() + 3) * 16;
        let str_off = dyn_off + dyn_len;
        let mut strings = vec![0u8];
        let mut dynamic = Vec::new();
        for (tag, name) in &entries {
            dynamic.extend_from_slice(&tag.to_le_bytes());
            dynamic.extend_from_slice(&(strings.len() as u64).to_le_bytes());
            strings.extend_from_slice(name.as_bytes());
            strings.push(0);
        }
        for (tag, val) in [(5u64, str_off as u64), (10, strings.len() as u64), (0, 0)] {
            dynamic.extend_from_slice(&tag.to_le_bytes());
            dynamic.extend_from_slice(&val.to_le_bytes());
        }
        let total = (str_off + strings.len()) as u64;
        let mut f = vec![0u8; 64];
        f[..7].copy_from_slice(b"\x7fELF\x02\x01\x01");
        f[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
        f[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        f[0x38..0x3a].copy_from_slice(&2u16.to_le_bytes());
        // (type, offset, address, size): one loaded segment over the whole file, the dynamic one
        for (kind, off, size) in [(1u32, 0u64, total), (2, dyn_off as u64, dyn_len as u64)] {
            let mut ph = vec![0u8; 56];
            ph[..4].copy_from_slice(&kind.to_le_bytes());
            ph[8..16].copy_from_slice(&off.to_le_bytes());
            ph[16..24].copy_from_slice(&off.to_le_bytes());
            ph[32..40].copy_from_slice(&size.to_le_bytes());
            ph[40..48].copy_from_slice(&size.to_le_bytes());
            f.extend_from_slice(&ph);
        }
        f.extend_from_slice(&dynamic);
        f.extend_from_slice(&strings);
        std::fs::write(path, f).unwrap();
    }

    /// A runtime as bb 4.1.2's: bb, its libraries and what they need, the loader, libgcc_s.
    fn whole_runtime(dir: &Path) -> PathBuf {
        let ld = RUNTIME_LOADER;
        let files: [(&str, &[&str]); 6] = [
            ("bb", &["libstdc++.so.6", "libm.so.6", "libc.so.6", ld]),
            (
                "libstdc++.so.6",
                &["libm.so.6", "libc.so.6", ld, RUNTIME_UNWINDER],
            ),
            ("libm.so.6", &["libc.so.6", ld]),
            ("libc.so.6", &[ld]),
            (RUNTIME_UNWINDER, &["libc.so.6", ld]),
            (ld, &[]),
        ];
        for (name, needed) in files {
            synthetic_elf(&dir.join(name), needed, &[]);
        }
        dir.join("bb")
    }

    #[test]
    fn a_runtime_must_hold_every_library_bb_names() {
        let dir = scratch("runtime");
        let bb = whole_runtime(&dir);
        let check = || runtime_has_every_library(&bb, &dir).map_err(|e| e.to_string());
        check().unwrap();
        assert_eq!(
            elf::dynamic(&bb).unwrap().needed,
            ["libstdc++.so.6", "libm.so.6", "libc.so.6", RUNTIME_LOADER]
        );
        // One bb names missing: the loader would fall back to the system's copy; refused.
        std::fs::remove_file(dir.join("libm.so.6")).unwrap();
        let e = check().unwrap_err();
        assert!(e.contains("needs libm.so.6") && e.contains("lacks"), "{e}");
        // A symbolic link is no runtime file.
        std::os::unix::fs::symlink(dir.join("libc.so.6"), dir.join("libm.so.6")).unwrap();
        assert!(check().is_err());
        std::fs::remove_file(dir.join("libm.so.6")).unwrap();
        synthetic_elf(&dir.join("libm.so.6"), &["libc.so.6"], &[]);
        check().unwrap();

        // Transitively: every library bb names is there; one only a library needs is not.
        synthetic_elf(
            &dir.join("libc.so.6"),
            &[RUNTIME_LOADER, "libdeep.so.1"],
            &[],
        );
        let e = check().unwrap_err();
        assert!(
            e.contains("libc.so.6 needs libdeep.so.1") && e.contains("lacks"),
            "{e}"
        );
        synthetic_elf(&dir.join("libdeep.so.1"), &[], &[]);
        check().unwrap();

        // libgcc_s, which glibc loads without naming it, even when nothing names it.
        synthetic_elf(&dir.join("libstdc++.so.6"), &["libc.so.6"], &[]);
        check().unwrap();
        std::fs::remove_file(dir.join(RUNTIME_UNWINDER)).unwrap();
        let e = check().unwrap_err();
        assert!(e.contains(&format!("lacks {RUNTIME_UNWINDER}")), "{e}");
        // ... and what it needs.
        synthetic_elf(&dir.join(RUNTIME_UNWINDER), &["libunwind.so.8"], &[]);
        let e = check().unwrap_err();
        assert!(e.contains("needs libunwind.so.8"), "{e}");
        synthetic_elf(&dir.join(RUNTIME_UNWINDER), &["libc.so.6"], &[]);
        check().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn no_runtime_file_may_name_a_search_path() {
        const DT_RPATH: u64 = 15;
        const DT_RUNPATH: u64 = 29;
        let dir = scratch("rpath");
        let bb = whole_runtime(&dir);
        runtime_has_every_library(&bb, &dir).unwrap();
        let d = elf::dynamic(&bb).unwrap();
        assert!(d.rpath.is_empty() && d.runpath.is_empty());
        let needs = ["libstdc++.so.6", "libm.so.6", "libc.so.6", RUNTIME_LOADER];
        for (tag, file) in [
            (DT_RPATH, "bb"),
            (DT_RUNPATH, "bb"),
            (DT_RPATH, "libm.so.6"),
        ] {
            let path = dir.join(file);
            let own: &[&str] = if file == "bb" { &needs } else { &["libc.so.6"] };
            synthetic_elf(&path, own, &[(tag, "$ORIGIN/../lib")]);
            let d = elf::dynamic(&path).unwrap();
            let named = if tag == DT_RPATH {
                &d.rpath
            } else {
                &d.runpath
            };
            assert_eq!(named, &["$ORIGIN/../lib"]);
            assert_eq!(d.needed, own);
            let e = runtime_has_every_library(&bb, &dir)
                .unwrap_err()
                .to_string();
            assert!(e.contains("search path") && e.contains(file), "{e}");
            synthetic_elf(&path, own, &[]);
            runtime_has_every_library(&bb, &dir).unwrap();
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn every_configured_bb_runtime_needs_a_pin() {
        let pin = "a".repeat(64);
        let config: ProverConfig = serde_json::from_value(serde_json::json!({
            "crs_sha256": "0".repeat(64),
            "crs_points": 1,
            "bb_runtime_sha256": pin,
            "bb_versions": [{"version": "4.1.2", "path": "/b/bb", "sha256": pin}],
        }))
        .unwrap();
        let w = wanted_bbs(&config, &Vec::new());
        // The default as every further version: its runtime pin carried, one required.
        assert_eq!(w[0].runtime_sha256.as_deref(), Some(pin.as_str()));
        assert_eq!(w[0].runtime_pin_setting, Some(DEFAULT_RUNTIME_PIN));
        assert_eq!(w[1].runtime_sha256, None);
        assert_eq!(w[1].runtime_pin_setting, Some(VERSION_RUNTIME_PIN));
        // Local mode's replacement runs unpinned (its hashes are reported instead).
        let w = wanted_bbs(&config, &vec![(None, PathBuf::from("/local/bb"))]);
        assert_eq!(w[0].runtime_sha256, None);
        assert_eq!(w[0].runtime_pin_setting, None);
    }

    #[test]
    fn the_real_test_binary_reads_as_elf() {
        let exe = std::env::current_exe().unwrap();
        let d = elf::dynamic(&exe).unwrap();
        assert!(!d.needed.is_empty(), "the test binary links dynamically");
    }

    #[test]
    fn elf_reading_is_bounded_and_refuses_junk() {
        let dir = scratch("elf");
        let junk = dir.join("junk");
        std::fs::write(&junk, b"#!/bin/sh\n").unwrap();
        assert!(elf::dynamic(&junk).is_err());
        // A header cut short, and one claiming a huge table: errors, no panic.
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        std::fs::write(&junk, &exe[..40]).unwrap();
        assert!(elf::dynamic(&junk).is_err());
        let mut big = exe[..64].to_vec();
        big[0x38..0x3a].copy_from_slice(&u16::MAX.to_le_bytes());
        std::fs::write(&junk, &big).unwrap();
        assert!(elf::dynamic(&junk).unwrap_err().contains("program headers"));
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
