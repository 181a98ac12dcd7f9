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
