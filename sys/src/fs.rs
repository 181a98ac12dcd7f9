//! File-system calls std has no wrapper for: opening a file a sandboxed program wrote without
//! following anything it planted, and remounting a file system read-only.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::cvt;

fn cstr(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))
}

/// Opens `rel` under the directory `dir` for reading, only if every component is a plain
/// directory or file beneath `dir` and the last is a regular file.
///
/// Threat: the enclave (root, outside the sandbox) reads back what bb wrote in its job
/// directory. A hostile bb can leave `out/proof` as a symbolic link to another job's witness
/// or the enclave's state, or as a FIFO that would block the reader forever. Symbolic links
/// (anywhere in `rel`), `..` escapes, other mounts and anything but a regular file are
/// refused.
pub fn open_regular_beneath(dir: &Path, rel: &Path) -> io::Result<File> {
    let dir = File::open(dir)?;
    let rel = cstr(rel)?;
    // SAFETY: open_how is plain integers; all-zero is a valid value.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC) as u64;
    how.resolve = libc::RESOLVE_BENEATH
        | libc::RESOLVE_NO_SYMLINKS
        | libc::RESOLVE_NO_MAGICLINKS
        | libc::RESOLVE_NO_XDEV;
    // SAFETY: `rel` is NUL-terminated and `how` a valid open_how of the size passed; both
    // outlive the call.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir.as_raw_fd(),
            rel.as_ptr(),
            &raw const how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    let fd = cvt(fd as libc::c_int)?;
    // SAFETY: openat2 returned a new descriptor that nothing else owns.
    let file = unsafe { File::from_raw_fd(fd) };
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a regular file",
        ));
    }
    Ok(file)
}

/// Remounts the file system mounted at `path` read-only (and without set-user-ID programs or
/// devices).
///
/// Threat: in the enclave image the root is the initramfs, writable by PID 1's process tree;
/// a compromised child could replace bb or libc for later jobs. Read-only, nothing on it can
/// change while the enclave serves.
pub fn remount_read_only(path: &Path) -> io::Result<()> {
    let path = cstr(path)?;
    // SAFETY: `path` is NUL-terminated and outlives the call; the other pointers are null,
    // which remount accepts.
    cvt(unsafe {
        libc::mount(
            std::ptr::null(),
            path.as_ptr(),
            std::ptr::null(),
            libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV,
            std::ptr::null(),
        )
    })?;
    Ok(())
}

/// Mounts a fresh tmpfs at `path` (no set-user-ID programs, devices or executables) with
/// `options`, e.g. `size=64m,nr_inodes=256,mode=0700`.
pub fn mount_tmpfs(path: &Path, options: &str) -> io::Result<()> {
    let path = cstr(path)?;
    let fstype = c"tmpfs";
    let options = CString::new(options)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in mount options"))?;
    // SAFETY: every pointer is a NUL-terminated string that outlives the call.
    cvt(unsafe {
        libc::mount(
            fstype.as_ptr(),
            path.as_ptr(),
            fstype.as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            options.as_ptr() as *const libc::c_void,
        )
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn only_regular_files_beneath_the_directory_open() {
        let dir = std::env::temp_dir().join(format!("sigil-sys-fs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("out")).unwrap();
        std::fs::write(dir.join("out/proof"), b"proof").unwrap();
        std::fs::write(dir.join("secret"), b"secret").unwrap();
        std::os::unix::fs::symlink(dir.join("secret"), dir.join("out/link")).unwrap();
        std::os::unix::fs::symlink(dir.join("out"), dir.join("linked-dir")).unwrap();
        let mut s = String::new();
        open_regular_beneath(&dir, Path::new("out/proof"))
            .unwrap()
            .read_to_string(&mut s)
            .unwrap();
        assert_eq!(s, "proof");
        for bad in [
            "out/link",
            "linked-dir/proof",
            "../secret",
            "/etc/passwd",
            "out",
        ] {
            assert!(
                open_regular_beneath(&dir, Path::new(bad)).is_err(),
                "{bad} opened"
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[cfg(test)]
mod tmpfs_tests {
    use super::*;
    use std::os::unix::process::CommandExt;
    use std::process::Command;

    /// A child in a mount namespace of its own mounts the tmpfs (so nothing outlives it) and
    /// tries to write past its bounds, in bytes and in files. Needs root, as the sandbox does.
    #[test]
    fn a_tmpfs_bounds_what_is_written_in_bytes_and_in_files() {
        let dir = std::env::temp_dir().join(format!("sigil-sys-tmpfs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(
                r#"cd "$1" || exit 9
                head -c 3000000 /dev/zero > big 2>/dev/null; echo "big=$?"
                rm big; i=0
                while [ $i -lt 50 ] && (: > "f$i") 2>/dev/null; do i=$((i+1)); done
                echo "files=$i""#,
            )
            .arg("sh")
            .arg(&dir);
        let target = dir.clone();
        let hook = move || -> io::Result<()> {
            // SAFETY: unshare and mount take no pointers but valid NUL-terminated strings.
            cvt(unsafe { libc::unshare(libc::CLONE_NEWNS) })?;
            // SAFETY: as above; null pointers are accepted for a propagation change.
            cvt(unsafe {
                libc::mount(
                    std::ptr::null(),
                    c"/".as_ptr(),
                    std::ptr::null(),
                    libc::MS_REC | libc::MS_PRIVATE,
                    std::ptr::null(),
                )
            })?;
            mount_tmpfs(&target, "size=1m,nr_inodes=8,mode=0700")
        };
        // SAFETY: the hook runs in the forked child before exec and only makes system calls
        // (and allocates the mount's strings, which glibc allows after fork).
        unsafe {
            cmd.pre_exec(hook);
        }
        let out = cmd.output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{text} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // 3 MB do not fit in 1 MiB; 8 inodes (the root among them) hold fewer than 8 files.
        assert!(text.contains("big=1"), "{text}");
        let files: usize = text
            .split("files=")
            .nth(1)
            .and_then(|n| n.trim().parse().ok())
            .unwrap();
        assert!((1..8).contains(&files), "{text}");
        // The mount lived in the child's namespace only: here the directory is still empty.
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
