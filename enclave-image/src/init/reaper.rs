//! PID 1 inherits every orphan and must reap it, or zombies pile up. Children that sigil
//! itself starts (bb, later) are registered here so their exit status reaches their owner
//! instead of being swallowed by the reaper.

use std::collections::{HashMap, HashSet};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::Duration;

use sigil_sys::process;
use sigil_sys::signals::{self, SignalSet};

use crate::boot::BootError;
use crate::log;

struct Table {
    managed: HashSet<u32>,
    exited: HashMap<u32, libc::c_int>,
}

static TABLE: OnceLock<(Mutex<Table>, Condvar)> = OnceLock::new();

fn table() -> &'static (Mutex<Table>, Condvar) {
    TABLE.get_or_init(|| {
        (
            Mutex::new(Table {
                managed: HashSet::new(),
                exited: HashMap::new(),
            }),
            Condvar::new(),
        )
    })
}

/// Blocks SIGCHLD in the calling thread; call before any other thread starts so all inherit
/// it and only the reaper takes it.
pub fn block_sigchld() -> Result<SignalSet, BootError> {
    SignalSet::block(&[signals::SIGCHLD]).map_err(BootError::BlockSigchld)
}

static RUNNING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether the reaper owns `waitpid` (PID 1): children must then go through [`spawn`].
pub fn running() -> bool {
    RUNNING.load(std::sync::atomic::Ordering::Acquire)
}

/// Starts the reaper thread.
pub fn start(set: SignalSet) -> Result<(), BootError> {
    RUNNING.store(true, std::sync::atomic::Ordering::Release);
    std::thread::Builder::new()
        .name("sigil-reaper".into())
        .spawn(move || {
            loop {
                if set.wait().is_err() {
                    std::thread::sleep(Duration::from_millis(100));
                }
                reap_all();
            }
        })
        .map(|_| ())
        .map_err(|source| BootError::Thread {
            what: "reaper thread",
            source,
        })
}

fn reap_all() {
    let (lock, cv) = table();
    loop {
        // The table is locked before reaping: `spawn` holds it across `Command::spawn`, which
        // waits for its own child when the child fails before exec; reaping that child here
        // first would make std's wait fail and panic (the prover would be gone for good).
        let mut t = lock.lock().unwrap_or_else(|e| e.into_inner());
        let Some((pid, status)) = process::reap_any() else {
            return;
        };
        if t.managed.remove(&pid) {
            t.exited.insert(pid, status);
            cv.notify_all();
        } else {
            log::debug(format_args!("reaped orphan {pid}"));
        }
    }
}

/// Spawns `cmd` as a child whose exit status the reaper keeps for [`wait`]. The table is
/// locked across the spawn, so a child that exits at once is still recognized.
pub fn spawn(cmd: &mut std::process::Command) -> std::io::Result<u32> {
    let (lock, _) = table();
    // A poisoned table is still consistent (entries are added and removed whole).
    let mut t = lock.lock().unwrap_or_else(|e| e.into_inner());
    let child = cmd.spawn()?;
    let pid = child.id();
    t.managed.insert(pid);
    Ok(pid)
}

/// Waits up to `limit` for a child from [`spawn`] to exit; returns its wait status.
pub fn wait(pid: u32, limit: Duration) -> Option<libc::c_int> {
    let (lock, cv) = table();
    let t = lock.lock().unwrap_or_else(|e| e.into_inner());
    let (mut t, _) = cv
        .wait_timeout_while(t, limit, |t| !t.exited.contains_key(&pid))
        .ok()?;
    t.exited.remove(&pid)
}

/// Sends `sig` to a child from [`spawn`], only while it is registered and not yet reaped;
/// returns whether it was sent.
///
/// Threat: signalling a pid that has been reaped and reused by another process (another
/// job's bb). The table is locked across the check and the signal, and the reaper reaps only
/// with the table locked: a registered pid is at worst a zombie, so it cannot be reused
/// before the signal lands.
pub fn kill(pid: u32, sig: libc::c_int) -> bool {
    let (lock, _) = table();
    let t = lock.lock().unwrap_or_else(|e| e.into_inner());
    t.managed.contains(&pid) && process::signal(pid, sig).is_ok()
}

/// Forgets a child from [`spawn`] that its owner no longer waits for: its exit status, kept
/// or to come, is dropped instead of piling up in the table.
pub fn forget(pid: u32) {
    let (lock, _) = table();
    let mut t = lock.lock().unwrap_or_else(|e| e.into_inner());
    t.managed.remove(&pid);
    t.exited.remove(&pid);
}
