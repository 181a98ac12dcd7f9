#![doc = include_str!("../README.md")]
// The point of this crate: the system calls that need `unsafe` (AF_VSOCK, poll, signal masks,
// rlimits before exec) are written once here, each block with its SAFETY argument, so every
// other crate can deny `unsafe_code`.
#![allow(unsafe_code)]

pub mod addr;
pub mod io;
pub mod net;
pub mod poll;
pub mod process;
pub mod signals;
pub mod vsock;

pub use addr::{Addr, AddrError, VsockAddr};
pub use net::{Listener, ShutdownHandle, Stream};

/// Turns a `-1`-style return value into the thread's `errno`.
pub(crate) fn cvt(rc: libc::c_int) -> std::io::Result<libc::c_int> {
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}
