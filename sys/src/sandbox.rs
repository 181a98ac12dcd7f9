//! The prover's sandbox: how an untrusted program (Barretenberg's `bb`, which parses anonymous
//! clients' circuits and witnesses) is started so that a memory-safety bug in it gives an
//! attacker nothing of the enclave.
//!
//! Threat: code execution inside bb. Without a sandbox that is root in the signing enclave:
//! `/dev/nsm` (genuine attestations of an attacker's key), the vsock ports to the parent (the
//! KMS data key through the egress and credentials ports), other jobs' witnesses, `/proc/1/mem`
//! of the enclave, and a writable root file system (replace bb or libc for later jobs). Each
//! measure below closes some of these doors:
//!
//! - new mount, PID, network, IPC and UTS namespaces: bb's root is a fresh read-only tmpfs
//!   holding only the system directories (bb's loader and libc), bb's own directory, the CRS
//!   file and a few harmless devices, all bound read-only, and its job directory, the only
//!   writable (and non-executable) place. `/dev/nsm`, `/proc`, the enclave's state and every
//!   other job are simply not there. It is process 1 of a PID namespace of its own (the
//!   enclave and other jobs cannot be seen, signalled or traced), and its network namespace
//!   has only a loopback that is down (no vsock, no TCP);
//! - its own unprivileged user and group, no supplementary groups, and `PR_SET_NO_NEW_PRIVS`:
//!   no capabilities, nothing a set-user-ID program could give back;
//! - a seccomp filter (compiled with `seccompiler` before the fork) that allows only the system
//!   calls bb makes and refuses the rest with `EPERM`: sockets, ptrace, mount, bpf, kexec,
//!   module loading, namespaces, keyrings, `ioctl` except `TCGETS`, and everything else;
//! - no inherited descriptors beyond stdin, stdout and stderr (the enclave's sockets, the
//!   NSM device, other jobs' files);
//! - the parent-death signal: when the enclave kills the job (its time limit), bb dies too.
//!
//! Why refuse with `EPERM` rather than kill: glibc and libstdc++ probe some calls and fall back
//! (the `clone3` → `clone` fallback, see [`Sandbox::new`]), a refused call then fails like any
//! other missing permission and bb reports it on stderr, where the enclave turns it into a
//! clear error. A kill would leave only "signal 31". Nothing is lost in strength: the call is
//! not made either way.
//!
//! Process shape: namespaces of PID only apply to children, so [`Sandbox::apply`] runs, in the
//! child that `Command` forks, a `clone` with the namespace flags; that first child (still
//! root, outside the new PID namespace, with nothing open but one pipe) waits for the second
//! and ends with its status (the same exit code, or death by the same signal). The second
//! builds the root, drops privileges, installs the filter and returns to `Command`, which runs
//! `execve`. Everything between fork and exec is a raw system call on memory prepared before
//! the fork (async-signal-safe: the parent is multi-threaded).

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule,
};

use crate::cvt;

/// The user and group bb runs as: a number no account of the image (or of a usual host) has,
/// so bb owns nothing but its job directory.
pub const SANDBOX_UID: u32 = 64_023;
pub const SANDBOX_GID: u32 = 64_023;

/// What the sandbox shows of the system, read-only, when it exists on this machine: the
/// dynamic loader and libc (in the image `/lib`, `/lib64` and `/usr/lib/sigil/bb`; on a host
/// the distribution's public system directories, so a local-mode bb finds its libraries).
/// Symbolic links among them (merged /usr) are recreated as links.
const SYSTEM_PATHS: &[&str] = &[
    "/usr", "/lib", "/lib64", "/lib32", "/libx32", "/bin", "/sbin",
];

/// Files shown read-only when they exist: the number of online CPUs (glibc's `get_nprocs`,
/// which sizes bb's thread pool), the loader's cache (a host's libraries), and devices that
/// hold nothing (`/dev/nsm` is never among them).
const OPTIONAL_FILES: &[&str] = &[
    "/sys/devices/system/cpu/online",
    "/etc/ld.so.cache",
    "/dev/null",
    "/dev/zero",
    "/dev/urandom",
    "/dev/random",
];

/// Why a sandbox cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error(
        "the prover sandbox needs root (it mounts a private root and switches to user {SANDBOX_UID}); \
         run the enclave as root: bb is never run unsandboxed"
    )]
    NotRoot,
    #[error("compiling the seccomp filter: {0}")]
    Filter(String),
    #[error("{0}: a path with a NUL byte or not absolute")]
    BadPath(PathBuf),
}

/// The compiled filters; made once, used for every bb run.
#[derive(Clone)]
pub struct Sandbox {
    allow_list: BpfProgram,
    /// `clone3` answers ENOSYS (its flags are behind a pointer the filter cannot read), so
    /// glibc falls back to `clone`, whose flags the allow-list checks.
    /// Installed first (see [`Plan::run_in_child`]).
    no_clone3: BpfProgram,
}

/// Where one run's files are.
pub struct Spec<'a> {
    /// An empty directory the private root is mounted on (in the child's mount namespace only;
    /// one directory serves every run).
    pub root: &'a Path,
    /// The job directory: the only writable place, bound at its own path (bb's working
    /// directory).
    pub writable: &'a Path,
    /// Files and directories bound read-only at their own paths (bb's directory, the CRS).
    pub read_only: &'a [&'a Path],
}

/// The system calls bb makes, found by tracing bb 5.0.0 proving and verifying `tiny`, `large`
/// and a chonk stack (`strace -f`), plus the ones its error paths take (abort, the thread
/// fallback, sleeping) and harmless queries. Memory, files under the sandbox's mounts,
/// threads and time: nothing that reaches outside the sandbox.
const ALLOWED: &[i64] = &[
    // memory
    libc::SYS_brk,
    libc::SYS_mmap,
    libc::SYS_munmap,
    libc::SYS_mremap,
    libc::SYS_mprotect,
    libc::SYS_madvise,
    // files (confined by the mounts)
    libc::SYS_read,
    libc::SYS_write,
    libc::SYS_readv,
    libc::SYS_writev,
    libc::SYS_pread64,
    libc::SYS_pwrite64,
    libc::SYS_lseek,
    libc::SYS_open,
    libc::SYS_openat,
    libc::SYS_close,
    libc::SYS_fstat,
    libc::SYS_stat,
    libc::SYS_lstat,
    libc::SYS_newfstatat,
    libc::SYS_statx,
    libc::SYS_access,
    libc::SYS_faccessat,
    libc::SYS_faccessat2,
    libc::SYS_fcntl,
    libc::SYS_flock,
    libc::SYS_ftruncate,
    libc::SYS_fsync,
    libc::SYS_fdatasync,
    libc::SYS_mkdir,
    libc::SYS_mkdirat,
    libc::SYS_unlink,
    libc::SYS_unlinkat,
    libc::SYS_rename,
    libc::SYS_renameat,
    libc::SYS_getdents64,
    libc::SYS_getcwd,
    libc::SYS_readlink,
    libc::SYS_readlinkat,
    libc::SYS_dup,
    libc::SYS_dup2,
    libc::SYS_dup3,
    // Rust's runtime checks stdin/out/err with poll at start-up (aborting if it is refused);
    // kept so that any program can be sandboxed, harmless on three descriptors
    libc::SYS_poll,
    libc::SYS_ppoll,
    // threads and signals to itself
    libc::SYS_futex,
    libc::SYS_set_robust_list,
    libc::SYS_get_robust_list,
    libc::SYS_rseq,
    libc::SYS_set_tid_address,
    libc::SYS_arch_prctl,
    libc::SYS_gettid,
    libc::SYS_getpid,
    libc::SYS_tgkill,
    libc::SYS_rt_sigaction,
    libc::SYS_rt_sigprocmask,
    libc::SYS_rt_sigreturn,
    libc::SYS_sigaltstack,
    libc::SYS_sched_yield,
    libc::SYS_sched_getaffinity,
    libc::SYS_exit,
    libc::SYS_exit_group,
    // time, limits, identity, randomness
    libc::SYS_clock_gettime,
    libc::SYS_clock_getres,
    libc::SYS_clock_nanosleep,
    libc::SYS_nanosleep,
    libc::SYS_gettimeofday,
    libc::SYS_getrusage,
    libc::SYS_prlimit64,
    libc::SYS_getrlimit,
    libc::SYS_sysinfo,
    libc::SYS_uname,
    libc::SYS_getuid,
    libc::SYS_geteuid,
    libc::SYS_getgid,
    libc::SYS_getegid,
    libc::SYS_getrandom,
    // threads: clone3 passes this list, and the other filter answers ENOSYS (glibc then uses
    // clone, checked below)
    libc::SYS_clone3,
    // the exec of bb itself happens after the filter is installed (the job directory is
    // mounted noexec, so only the read-only binaries can be run)
    libc::SYS_execve,
];

/// Every namespace flag: a thread may be created, but never with a namespace of its own.
const CLONE_NEW_ANY: u64 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWCGROUP
    | libc::CLONE_NEWTIME) as u64;

fn filter_error(e: impl std::fmt::Display) -> SandboxError {
    SandboxError::Filter(e.to_string())
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("uid", &SANDBOX_UID)
            .field("gid", &SANDBOX_GID)
            .finish_non_exhaustive()
    }
}

impl Sandbox {
    /// Compiles the filters (before any fork: compiling allocates). Refuses when not root:
    /// there is no weaker fallback, bb never runs unsandboxed.
    pub fn new() -> Result<Sandbox, SandboxError> {
        // SAFETY: geteuid takes no arguments and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            return Err(SandboxError::NotRoot);
        }
        let arch = std::env::consts::ARCH.try_into().map_err(filter_error)?;
        let mut rules: std::collections::BTreeMap<i64, Vec<SeccompRule>> =
            ALLOWED.iter().map(|&nr| (nr, Vec::new())).collect();
        let cond = |arg, op, value| {
            SeccompCondition::new(arg, SeccompCmpArgLen::Qword, op, value).map_err(filter_error)
        };
        // Threads only: CLONE_THREAD set and no namespace flag (a fork would be harmless in
        // the sandbox, but bb does not fork, so it is refused).
        let thread = SeccompRule::new(vec![cond(
            0,
            SeccompCmpOp::MaskedEq(libc::CLONE_THREAD as u64 | CLONE_NEW_ANY),
            libc::CLONE_THREAD as u64,
        )?])
        .map_err(filter_error)?;
        rules.insert(libc::SYS_clone, vec![thread]);
        // ioctl: only TCGETS (isatty on stdout, the one request bb makes).
        let tcgets = SeccompRule::new(vec![cond(1, SeccompCmpOp::Eq, libc::TCGETS)?])
            .map_err(filter_error)?;
        rules.insert(libc::SYS_ioctl, vec![tcgets]);
        let allow_list = SeccompFilter::new(
            rules,
            SeccompAction::Errno(libc::EPERM as u32),
            SeccompAction::Allow,
            arch,
        )
        .and_then(BpfProgram::try_from)
        .map_err(filter_error)?;
        let no_clone3 = SeccompFilter::new(
            [(libc::SYS_clone3, Vec::new())].into_iter().collect(),
            SeccompAction::Allow,
            SeccompAction::Errno(libc::ENOSYS as u32),
            arch,
        )
        .and_then(BpfProgram::try_from)
        .map_err(filter_error)?;
        Ok(Sandbox {
            allow_list,
            no_clone3,
        })
    }

    /// Makes `cmd` run in the sandbox described by `spec`. The program must be an absolute
    /// path that the sandbox shows (under [`SYSTEM_PATHS`] or `spec.read_only`). Register
    /// other `pre_exec` hooks (rlimits) before this one.
    pub fn apply(&self, cmd: &mut Command, spec: &Spec<'_>) -> Result<(), SandboxError> {
        let plan = Plan::new(spec)?;
        let allow_list = self.allow_list.clone();
        let no_clone3 = self.no_clone3.clone();
        let hook = move || -> io::Result<()> { plan.run_in_child(&allow_list, &no_clone3) };
        // SAFETY: the hook makes only raw system calls (clone, waitpid, mount, mkdir, chdir,
        // pivot_root, set*id, prctl, close_range, seccomp, _exit) on memory allocated before
        // the fork; it neither allocates nor takes a lock in the child.
        unsafe {
            cmd.pre_exec(hook);
        }
        Ok(())
    }
}

enum Node {
    Dir(CString),
    /// An empty file to bind a file over.
    File(CString),
    Symlink {
        target: CString,
        at: CString,
    },
    Bind {
        src: CString,
        dst: CString,
        flags: libc::c_ulong,
    },
}

/// Everything the child does, as NUL-terminated paths prepared before the fork.
struct Plan {
    root: CString,
    nodes: Vec<Node>,
    workdir: CString,
}

fn c(p: &Path) -> Result<CString, SandboxError> {
    if !p.is_absolute() {
        return Err(SandboxError::BadPath(p.to_path_buf()));
    }
    CString::new(p.as_os_str().as_bytes()).map_err(|_| SandboxError::BadPath(p.to_path_buf()))
}

const RO: libc::c_ulong = libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV;

/// Collects the plan's nodes, creating each directory once.
struct Builder<'a> {
    root: &'a Path,
    nodes: Vec<Node>,
    made: Vec<PathBuf>,
}

impl Builder<'_> {
    fn inside(&self, p: &Path) -> PathBuf {
        self.root.join(p.strip_prefix("/").unwrap_or(p))
    }

    /// `p` and its ancestors, as directories of the new root.
    fn dirs(&mut self, p: &Path) -> Result<(), SandboxError> {
        let mut acc = PathBuf::from("/");
        for part in p.iter().skip(1) {
            acc.push(part);
            if !self.made.contains(&acc) {
                self.made.push(acc.clone());
                let at = c(&self.inside(&acc))?;
                self.nodes.push(Node::Dir(at));
            }
        }
        Ok(())
    }

    /// Binds `p` (a file or a directory) at its own path with `flags`.
    fn bind(&mut self, p: &Path, flags: libc::c_ulong) -> Result<(), SandboxError> {
        let meta = std::fs::metadata(p).map_err(|_| SandboxError::BadPath(p.into()))?;
        if meta.is_dir() {
            self.dirs(p)?;
        } else {
            self.dirs(p.parent().unwrap_or(Path::new("/")))?;
            let at = c(&self.inside(p))?;
            self.nodes.push(Node::File(at));
        }
        let (src, dst) = (c(p)?, c(&self.inside(p))?);
        self.nodes.push(Node::Bind { src, dst, flags });
        Ok(())
    }
}

impl Plan {
    fn new(spec: &Spec<'_>) -> Result<Plan, SandboxError> {
        let mut b = Builder {
            root: spec.root,
            nodes: Vec::new(),
            made: Vec::new(),
        };
        let mut shown: Vec<&Path> = Vec::new();
        for sys in SYSTEM_PATHS.iter().map(Path::new) {
            let Ok(meta) = std::fs::symlink_metadata(sys) else {
                continue;
            };
            if meta.file_type().is_symlink() {
                let bad = || SandboxError::BadPath(sys.into());
                let target = std::fs::read_link(sys).map_err(|_| bad())?;
                let target = CString::new(target.as_os_str().as_bytes()).map_err(|_| bad())?;
                let at = c(&b.inside(sys))?;
                b.nodes.push(Node::Symlink { target, at });
            } else if meta.is_dir() {
                b.bind(sys, RO)?;
                shown.push(sys);
            }
        }
        for f in OPTIONAL_FILES.iter().map(Path::new) {
            if f.exists() {
                // Devices need device access; the rest is data.
                let flags = if f.starts_with("/dev") {
                    libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NOEXEC
                } else {
                    RO | libc::MS_NOEXEC
                };
                b.bind(f, flags)?;
            }
        }
        for p in spec.read_only {
            // Already there (bb under /usr in the image).
            if !shown.iter().any(|s| p.starts_with(s)) {
                b.bind(p, RO)?;
            }
        }
        // Writable, but nothing written there can be run (bb would otherwise exec a program
        // it wrote and escape the read-only rule).
        b.bind(
            spec.writable,
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        )?;
        Ok(Plan {
            root: c(spec.root)?,
            nodes: b.nodes,
            workdir: c(spec.writable)?,
        })
    }

    /// In the child `Command` forked: clone into the namespaces, wait, end like the sandboxed
    /// process. Returns only in that process (then `Command` execs).
    fn run_in_child(&self, allow_list: &BpfProgram, no_clone3: &BpfProgram) -> io::Result<()> {
        let mut alive = [0 as libc::c_int; 2];
        // SAFETY: `alive` is a valid array of two ints.
        cvt(unsafe { libc::pipe2(alive.as_mut_ptr(), libc::O_CLOEXEC) })?;
        let [alive_r, alive_w] = alive;
        let flags = libc::CLONE_NEWNS
            | libc::CLONE_NEWPID
            | libc::CLONE_NEWNET
            | libc::CLONE_NEWIPC
            | libc::CLONE_NEWUTS
            | libc::SIGCHLD;
        // SAFETY: clone without CLONE_VM and with a null stack behaves like fork: the child
        // continues on a copy of this stack. Only raw system calls follow in both processes.
        let pid = unsafe {
            libc::syscall(
                libc::SYS_clone,
                flags as libc::c_ulong,
                0usize,
                0usize,
                0usize,
                0usize,
            )
        };
        if pid < 0 {
            return Err(io::Error::last_os_error());
        }
        if pid > 0 {
            // The first child: keep only the write end of `alive` (its closing tells the
            // sandboxed process that we are gone). Closing the rest, `Command`'s exec-error
            // pipe among them, lets the spawn return as soon as the sandboxed process execs.
            // SAFETY: close_range and close take no pointers.
            unsafe {
                libc::close(alive_r);
                close_range_except(alive_w);
            }
            wait_and_mirror(pid as libc::pid_t)
        }
        // SAFETY: close takes no pointers.
        unsafe { libc::close(alive_w) };
        self.enter_root()?;
        drop_privileges()?;
        // Dies with the first child (killed at the time limit). Set after the identity
        // change, which clears it; then check that the first child is still there.
        // SAFETY: prctl with integer arguments.
        cvt(unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) })?;
        let mut byte = 0u8;
        // SAFETY: `byte` is a valid one-byte buffer. A read of 0 means every write end is
        // closed: the first child is gone, so nobody would reap or stop us.
        cvt(unsafe { libc::fcntl(alive_r, libc::F_SETFL, libc::O_NONBLOCK) })?;
        // SAFETY: as above.
        if unsafe { libc::read(alive_r, (&raw mut byte).cast(), 1) } == 0 {
            // SAFETY: _exit ends the process at once.
            unsafe { libc::_exit(1) };
        }
        // No inherited descriptor reaches bb (the enclave's sockets, other jobs' files):
        // everything above stderr closes at exec.
        // SAFETY: close_range takes no pointers.
        cvt(unsafe {
            libc::syscall(
                libc::SYS_close_range,
                3u32,
                u32::MAX,
                libc::CLOSE_RANGE_CLOEXEC,
            ) as libc::c_int
        })?;
        // Each call sets PR_SET_NO_NEW_PRIVS, then installs a filter; neither allocates. The
        // kernel runs both filters and keeps the stricter answer: for clone3 the allow-list
        // says allow and the first filter ENOSYS. The allow-list goes last because it refuses
        // the prctl and seccomp calls that installing a filter makes.
        let errors = |e: seccompiler::Error| match e {
            seccompiler::Error::Prctl(e) | seccompiler::Error::Seccomp(e) => e,
            _ => io::Error::from_raw_os_error(libc::EINVAL),
        };
        seccompiler::apply_filter(no_clone3).map_err(errors)?;
        seccompiler::apply_filter(allow_list).map_err(errors)?;
        Ok(())
    }

    /// Builds the private root and moves into it (in the new mount namespace).
    fn enter_root(&self) -> io::Result<()> {
        let null = std::ptr::null::<libc::c_char>();
        // Nothing done here may propagate back to the enclave's mounts.
        // SAFETY: here and in the blocks below that say "see above", mount, mkdir, open,
        // close, symlink, chdir, pivot_root, umount2 and chroot get valid NUL-terminated
        // strings prepared before the fork, or null where the kernel accepts it.
        cvt(unsafe {
            libc::mount(
                null,
                c"/".as_ptr(),
                null,
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            )
        })?;
        // SAFETY: see above.
        cvt(unsafe {
            libc::mount(
                c"tmpfs".as_ptr(),
                self.root.as_ptr(),
                c"tmpfs".as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV,
                c"mode=0755,size=1m,nr_inodes=4096".as_ptr().cast(),
            )
        })?;
        for node in &self.nodes {
            match node {
                Node::Dir(p) => {
                    // SAFETY: see above.
                    if unsafe { libc::mkdir(p.as_ptr(), 0o755) } != 0
                        && io::Error::last_os_error().raw_os_error() != Some(libc::EEXIST)
                    {
                        return Err(io::Error::last_os_error());
                    }
                }
                Node::File(p) => {
                    // SAFETY: see above.
                    let fd = unsafe {
                        libc::open(
                            p.as_ptr(),
                            libc::O_RDONLY | libc::O_CREAT | libc::O_CLOEXEC,
                            0o444,
                        )
                    };
                    cvt(fd)?;
                    // SAFETY: our own descriptor.
                    unsafe { libc::close(fd) };
                }
                Node::Symlink { target, at } => {
                    // SAFETY: see above.
                    cvt(unsafe { libc::symlink(target.as_ptr(), at.as_ptr()) })?;
                }
                Node::Bind { src, dst, flags } => {
                    // SAFETY: see above.
                    cvt(unsafe {
                        libc::mount(
                            src.as_ptr(),
                            dst.as_ptr(),
                            null,
                            libc::MS_BIND,
                            std::ptr::null(),
                        )
                    })?;
                    // SAFETY: see above.
                    cvt(unsafe {
                        libc::mount(
                            null,
                            dst.as_ptr(),
                            null,
                            libc::MS_BIND | libc::MS_REMOUNT | flags,
                            std::ptr::null(),
                        )
                    })?;
                }
            }
        }
        // SAFETY: see above.
        cvt(unsafe { libc::chdir(self.root.as_ptr()) })?;
        // pivot_root detaches the old root entirely. The enclave image runs from the initramfs,
        // which cannot be pivoted away from (EINVAL): there the new root is moved over "/" and
        // chrooted into; the old tree is then unreachable by path, and getting out of a chroot
        // needs a capability bb does not have.
        // SAFETY: see above.
        let pivoted = unsafe { libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()) };
        if pivoted == 0 {
            // SAFETY: see above.
            cvt(unsafe { libc::umount2(c".".as_ptr(), libc::MNT_DETACH) })?;
        } else {
            // SAFETY: see above.
            cvt(unsafe {
                libc::mount(
                    c".".as_ptr(),
                    c"/".as_ptr(),
                    null,
                    libc::MS_MOVE,
                    std::ptr::null(),
                )
            })?;
            // SAFETY: see above.
            cvt(unsafe { libc::chroot(c".".as_ptr()) })?;
        }
        // SAFETY: see above.
        cvt(unsafe { libc::chdir(c"/".as_ptr()) })?;
        // The root itself is read-only too: bb can create nothing outside its job directory.
        // SAFETY: see above.
        cvt(unsafe {
            libc::mount(
                null,
                c"/".as_ptr(),
                null,
                libc::MS_BIND | libc::MS_REMOUNT | RO,
                std::ptr::null(),
            )
        })?;
        // SAFETY: see above.
        cvt(unsafe { libc::chdir(self.workdir.as_ptr()) })?;
        // SAFETY: a valid string and its length.
        cvt(unsafe { libc::sethostname(c"sandbox".as_ptr(), 7) })?;
        Ok(())
    }
}

/// The unprivileged identity: no supplementary groups, then the group, then the user (after
/// which no capability is left).
fn drop_privileges() -> io::Result<()> {
    // SAFETY: setgroups with a count of 0 reads no memory; the others take integers.
    unsafe {
        cvt(libc::setgroups(0, std::ptr::null()))?;
        cvt(libc::setresgid(SANDBOX_GID, SANDBOX_GID, SANDBOX_GID))?;
        cvt(libc::setresuid(SANDBOX_UID, SANDBOX_UID, SANDBOX_UID))?;
    }
    Ok(())
}

/// Closes every descriptor from 3 up except `keep`.
///
/// # Safety
/// Only between fork and exec: descriptors other code may own are closed.
unsafe fn close_range_except(keep: libc::c_int) {
    let keep = keep as u32;
    // SAFETY: close_range takes no pointers; the caller owns every descriptor of the process.
    unsafe {
        if keep > 3 {
            libc::syscall(libc::SYS_close_range, 3u32, keep - 1, 0u32);
        }
        libc::syscall(libc::SYS_close_range, keep + 1, u32::MAX, 0u32);
    }
}

/// The first child's life: wait for the sandboxed process and end the same way, so the
/// enclave sees bb's exit code or signal (a SIGSEGV under the memory limit, its own SIGKILL).
fn wait_and_mirror(pid: libc::pid_t) -> ! {
    let mut status: libc::c_int = 0;
    loop {
        // SAFETY: `status` is a valid out-pointer.
        let rc = unsafe { libc::waitpid(pid, &raw mut status, 0) };
        if rc == pid {
            break;
        }
        if rc < 0 && io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            // SAFETY: _exit ends the process at once.
            unsafe { libc::_exit(127) };
        }
    }
    if libc::WIFSIGNALED(status) {
        let sig = libc::WTERMSIG(status);
        let no_core = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: setrlimit reads a valid struct; signal/sigprocmask/kill take integers or
        // valid sets. The default action of `sig` ends this process like bb ended.
        unsafe {
            libc::setrlimit(libc::RLIMIT_CORE, &raw const no_core);
            libc::signal(sig, libc::SIG_DFL);
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&raw mut set);
            libc::sigaddset(&raw mut set, sig);
            libc::sigprocmask(libc::SIG_UNBLOCK, &raw const set, std::ptr::null_mut());
            libc::kill(libc::getpid(), sig);
            libc::_exit(128 + sig)
        }
    }
    // SAFETY: _exit ends the process at once.
    unsafe { libc::_exit(libc::WEXITSTATUS(status)) }
}
