//! Child processes: resource limits and the parent-death signal applied between fork and
//! exec, signals to children, and reaping (PID 1 inherits every orphan).

use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;

use crate::cvt;

/// A resource limit a child gets before it runs a single instruction of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rlimit {
    /// RLIMIT_AS: the child's whole address space, in bytes (soft and hard).
    AddressSpace(u64),
    /// RLIMIT_FSIZE: the largest file the child may write, in bytes (past it: SIGXFSZ).
    FileSize(u64),
}

impl Rlimit {
    fn resource_and_value(self) -> (libc::__rlimit_resource_t, libc::rlim_t) {
        match self {
            Rlimit::AddressSpace(bytes) => (libc::RLIMIT_AS, bytes as libc::rlim_t),
            Rlimit::FileSize(bytes) => (libc::RLIMIT_FSIZE, bytes as libc::rlim_t),
        }
    }
}

/// Makes `cmd`'s child set `limits` (soft and hard) between fork and exec; the spawn fails
/// if one cannot be set.
pub fn set_rlimits_before_exec(cmd: &mut Command, limits: &[Rlimit]) {
    // Copied now: the closure runs in the forked child, where allocating is not allowed.
    let limits: Vec<(libc::__rlimit_resource_t, libc::rlim_t)> =
        limits.iter().map(|l| l.resource_and_value()).collect();
    let hook = move || {
        for &(resource, value) in &limits {
            let rl = libc::rlimit {
                rlim_cur: value,
                rlim_max: value,
            };
            // SAFETY: setrlimit(2) is async-signal-safe; `rl` is a valid rlimit.
            cvt(unsafe { libc::setrlimit(resource, &raw const rl) })?;
        }
        Ok(())
    };
    // SAFETY: the hook only calls setrlimit (async-signal-safe) on memory allocated before the
    // fork; it neither allocates nor takes locks in the child.
    unsafe {
        cmd.pre_exec(hook);
    }
}

/// Makes `cmd`'s child receive SIGKILL when the thread that spawned it exits, so helpers
/// (QEMU, vhost-device-vsock) never outlive a test that is killed.
pub fn kill_child_with_parent(cmd: &mut Command) -> &mut Command {
    // SAFETY: the hook only calls prctl (async-signal-safe) and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            cvt(libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL))?;
            Ok(())
        })
    }
}

/// Sends `sig` to process `pid` (a child of ours: the caller must know it has not been reaped).
/// Only one process: 0 (the whole process group) and values that would be negative (a group,
/// or every process) are refused.
/// The machine's memory in bytes (in an enclave: what it was given), from `sysinfo(2)`.
pub fn total_memory() -> io::Result<u64> {
    // SAFETY: sysinfo fills the zeroed struct it is given and keeps no pointer to it.
    let mut info: libc::sysinfo = unsafe { std::mem::zeroed() };
    // SAFETY: `info` is a valid, writable sysinfo struct.
    cvt(unsafe { libc::sysinfo(&mut info) })?;
    Ok((info.totalram as u64).saturating_mul(info.mem_unit.max(1) as u64))
}

pub fn signal(pid: u32, sig: libc::c_int) -> io::Result<()> {
    let pid = libc::pid_t::try_from(pid)
        .ok()
        .filter(|&p| p > 0)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a single process id"))?;
    // SAFETY: kill(2) takes no pointers.
    cvt(unsafe { libc::kill(pid, sig) })?;
    Ok(())
}

/// Reaps one exited child, any child, without waiting: `Some((pid, wait status))`, or `None`
/// when no child has exited (or there are no children).
pub fn reap_any() -> Option<(u32, libc::c_int)> {
    let mut status: libc::c_int = 0;
    // SAFETY: `status` is a valid out-pointer.
    let pid = unsafe { libc::waitpid(-1, &raw mut status, libc::WNOHANG) };
    u32::try_from(pid)
        .ok()
        .filter(|&p| p > 0)
        .map(|p| (p, status))
}

/// How a child ended, from its wait status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

impl Exit {
    pub fn from_wait_status(status: libc::c_int) -> Exit {
        if libc::WIFEXITED(status) {
            Exit::Code(libc::WEXITSTATUS(status))
        } else {
            Exit::Signal(libc::WTERMSIG(status))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn total_memory_is_the_machines() {
        let total = total_memory().unwrap();
        // More than any test machine lacks, less than any has.
        assert!(total > 64 << 20 && total < 1 << 50, "{total}");
    }

    #[test]
    fn signal_refuses_process_groups() {
        for pid in [0, u32::MAX, 1 << 31] {
            let e = signal(pid, 0).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{pid}");
        }
    }

    #[test]
    fn address_space_limit_reaches_the_child() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "ulimit -v"]);
        set_rlimits_before_exec(&mut cmd, &[Rlimit::AddressSpace(512 << 20)]);
        let out = cmd.output().unwrap();
        assert!(out.status.success());
        // `ulimit -v` prints KiB.
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "524288");
    }

    #[test]
    fn file_size_limit_stops_a_child_writing_past_it() {
        let dir = std::env::temp_dir().join(format!("sigil-fsize-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("big");
        let mut cmd = Command::new("sh");
        // 2 blocks of 64 KiB against a 64 KiB limit: dd is stopped (SIGXFSZ) at the limit.
        cmd.args([
            "-c",
            &format!("dd if=/dev/zero of={} bs=65536 count=2", f.display()),
        ]);
        set_rlimits_before_exec(&mut cmd, &[Rlimit::FileSize(65536)]);
        let out = cmd.output().unwrap();
        assert!(!out.status.success());
        assert_eq!(std::fs::metadata(&f).unwrap().len(), 65536);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_limit_too_small_to_exec_fails_the_spawn() {
        // Lowering a limit is always allowed, but with one byte of address space exec cannot
        // map the program: the child never runs.
        let mut cmd = Command::new("true");
        set_rlimits_before_exec(&mut cmd, &[Rlimit::AddressSpace(1)]);
        assert!(!matches!(cmd.status(), Ok(s) if s.success()));
    }

    #[test]
    fn signal_and_exit_decoding() {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        signal(child.id(), libc::SIGTERM).unwrap();
        use std::os::unix::process::ExitStatusExt;
        let st = child.wait().unwrap();
        assert_eq!(st.signal(), Some(libc::SIGTERM));
        assert_eq!(
            Exit::from_wait_status(st.into_raw()),
            Exit::Signal(libc::SIGTERM)
        );
        assert_eq!(Exit::from_wait_status(3 << 8), Exit::Code(3));
    }
}
