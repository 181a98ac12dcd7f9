#![doc = include_str!("../README.md")]
// The point of this crate: the system calls that need `unsafe` (AF_VSOCK, poll, signal masks,
// rlimits before exec, splice) are written once here, each block with its SAFETY argument, so
// every other crate can deny `unsafe_code`.
#![allow(unsafe_code)]

/// `AsFd` through the descriptor in field `$field`, and `AsRawFd` through `AsFd`.
macro_rules! fd_through_field {
    ($t:ty, $field:ident) => {
        impl std::os::fd::AsFd for $t {
            fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
                std::os::fd::AsFd::as_fd(&self.$field)
            }
        }

        impl std::os::fd::AsRawFd for $t {
            fn as_raw_fd(&self) -> std::os::fd::RawFd {
                std::os::fd::AsRawFd::as_raw_fd(&std::os::fd::AsFd::as_fd(self))
            }
        }
    };
}

/// `Read` and `Write` for an owned stream through those of `&$t` (nothing is buffered, so
/// flushing does nothing).
macro_rules! io_through_ref {
    ($t:ty) => {
        impl std::io::Read for $t {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                std::io::Read::read(&mut &*self, buf)
            }
        }

        impl std::io::Write for $t {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                std::io::Write::write(&mut &*self, buf)
            }

            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
    };
}

pub mod addr;
pub mod fs;
pub mod io;
pub mod net;
pub mod poll;
pub mod process;
pub mod sandbox;
pub mod signals;
pub mod splice;
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
