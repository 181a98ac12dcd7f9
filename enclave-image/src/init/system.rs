//! The few system calls PID 1 needs: mounts, the console, entropy, power-off.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::time::Duration;

use crate::boot::BootError;

pub struct Mount {
    pub source: &'static str,
    pub target: &'static str,
    pub fstype: &'static str,
    pub flags: libc::c_ulong,
    pub data: &'static str,
}

/// What PID 1 mounts before anything else. proc hides other users' processes (hidepid=2);
/// nothing is executable from the writable file systems except /tmp, where later stages stage
/// nothing executable either (noexec would be set there once bb runs from the image).
pub const MOUNTS: &[Mount] = &[
    Mount {
        source: "devtmpfs",
        target: "/dev",
        fstype: "devtmpfs",
        flags: libc::MS_NOSUID,
        data: "mode=0755",
    },
    Mount {
        source: "proc",
        target: "/proc",
        fstype: "proc",
        flags: libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        data: "hidepid=2",
    },
    Mount {
        source: "sysfs",
        target: "/sys",
        fstype: "sysfs",
        flags: libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        data: "",
    },
    Mount {
        source: "tmpfs",
        target: "/tmp",
        fstype: "tmpfs",
        flags: libc::MS_NOSUID | libc::MS_NODEV,
        data: "mode=1777",
    },
    Mount {
        source: "tmpfs",
        target: "/run",
        fstype: "tmpfs",
        flags: libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        data: "mode=0755",
    },
];

fn cstr(s: &str) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))
}

// PID 1's own system calls: mount(2) has no safe wrapper worth a crate of its own, and the
// SAFETY argument is local to this function.
#[allow(unsafe_code)]
pub fn mount(m: &Mount) -> io::Result<()> {
    match std::fs::create_dir(m.target) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io::Error::new(e.kind(), format!("mkdir {}: {e}", m.target))),
    }
    let (src, tgt, fs, data) = (
        cstr(m.source)?,
        cstr(m.target)?,
        cstr(m.fstype)?,
        cstr(m.data)?,
    );
    // SAFETY: all pointers are valid NUL-terminated strings that outlive the call.
    let rc = unsafe {
        libc::mount(
            src.as_ptr(),
            tgt.as_ptr(),
            fs.as_ptr(),
            m.flags,
            if m.data.is_empty() {
                std::ptr::null()
            } else {
                data.as_ptr() as *const libc::c_void
            },
        )
    };
    if rc != 0 {
        let e = io::Error::last_os_error();
        // The kernel may have mounted devtmpfs itself (CONFIG_DEVTMPFS_MOUNT).
        if e.raw_os_error() == Some(libc::EBUSY) {
            return Ok(());
        }
        return Err(io::Error::new(
            e.kind(),
            format!("mount {} on {}: {e}", m.fstype, m.target),
        ));
    }
    Ok(())
}

/// Makes the NSM device (when there is one) mode 0600, owned by root.
pub fn restrict_nsm(path: &str) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if !std::path::Path::new(path).exists() {
        return Ok(());
    }
    std::os::unix::fs::chown(path, Some(0), Some(0))
        .and_then(|_| std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)))
        .map_err(|e| io::Error::new(e.kind(), format!("{path}: {e}")))
}

/// The console, write-only and non-blocking: a console that cannot keep up must never stall
/// PID 1 or the service.
pub fn open_console() -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK)
        .open("/dev/console")
}

/// Points stdin, stdout and stderr at /dev/null, so nothing (a stray print, a child that
/// inherits them) can block on the console the kernel handed to init.
pub fn detach_stdio() -> io::Result<()> {
    let null = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    sigil_sys::io::redirect_stdio(&null)
}

/// Waits until the kernel's CSPRNG is initialized (every key is drawn from it), at most
/// `limit`. On Nitro the NSM's hardware RNG and RDRAND seed it within moments of boot.
pub fn wait_for_entropy(limit: Duration) -> Result<Duration, BootError> {
    let start = std::time::Instant::now();
    loop {
        if sigil_sys::io::kernel_rng_ready().map_err(BootError::Entropy)? {
            return Ok(start.elapsed());
        }
        if start.elapsed() > limit {
            return Err(BootError::NoEntropy(limit.as_secs()));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Flushes file systems and powers the machine off. Does not return; if the kernel refuses
/// (not PID 1), the process exits instead.
// PID 1's own system calls: reboot(2) ends the machine; nothing else in sigil needs it.
#[allow(unsafe_code)]
pub fn power_off() -> ! {
    // SAFETY: sync and reboot take no pointers. RB_POWER_OFF ends the VM (Nitro: the enclave
    // terminates; QEMU: the process exits).
    unsafe {
        libc::sync();
        libc::reboot(libc::RB_POWER_OFF);
    }
    std::process::exit(1)
}
