//! Signal masks: a program blocks the signals it handles in its first thread, before any
//! other thread starts (threads inherit the mask), and one thread takes them synchronously
//! with [`SignalSet::wait`]. No asynchronous handler ever runs.

use std::io;

pub use libc::{SIGCHLD, SIGINT, SIGKILL, SIGSEGV, SIGTERM};

/// A set of signals blocked in the thread that created it (and in threads it starts later).
#[derive(Clone, Copy)]
pub struct SignalSet(libc::sigset_t);

impl SignalSet {
    /// Blocks `signals` in the calling thread. Call before any other thread exists, so every
    /// thread inherits the mask and only the waiter takes them.
    pub fn block(signals: &[libc::c_int]) -> io::Result<SignalSet> {
        // SAFETY: sigset_t is plain old data; all-zero is a valid value, and sigemptyset
        // initializes it properly below.
        let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: `set` is a valid, writable sigset_t.
        unsafe { libc::sigemptyset(&raw mut set) };
        for &sig in signals {
            // SAFETY: `set` is an initialized sigset_t; an invalid number gives -1 (checked).
            if unsafe { libc::sigaddset(&raw mut set, sig) } != 0 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("signal {sig} is not a valid signal number"),
                ));
            }
        }
        // SAFETY: `set` is a valid sigset_t; a null old-mask pointer is allowed.
        let rc =
            unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &raw const set, std::ptr::null_mut()) };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        Ok(SignalSet(set))
    }

    /// Waits until one of the set's signals is pending and takes it; returns its number.
    pub fn wait(&self) -> io::Result<libc::c_int> {
        let mut sig: libc::c_int = 0;
        // SAFETY: self.0 is an initialized sigset_t and `sig` a valid out-pointer.
        let rc = unsafe { libc::sigwait(&raw const self.0, &raw mut sig) };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        Ok(sig)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blocked_signal_is_taken_by_wait() {
        // In a fresh thread, so the test runner's other threads keep their masks.
        std::thread::spawn(|| {
            let set = SignalSet::block(&[libc::SIGUSR2]).unwrap();
            // SAFETY: raise(3) sends a signal to the calling thread; it is blocked, so it
            // stays pending until sigwait takes it.
            assert_eq!(unsafe { libc::raise(libc::SIGUSR2) }, 0);
            assert_eq!(set.wait().unwrap(), libc::SIGUSR2);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn invalid_signal_is_refused() {
        std::thread::spawn(|| assert!(SignalSet::block(&[10_000]).is_err()))
            .join()
            .unwrap();
    }
}
