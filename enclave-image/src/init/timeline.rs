//! PID 1's boot phases on the kernel's clock (`CLOCK_BOOTTIME`, time since the kernel started,
//! the clock its printk times are close to), so a boot can be profiled from outside: the QEMU
//! harness puts them beside the kernel's timestamps and its own clock in one table.
//!
//! After the heartbeat PID 1 logs one line (console and log port):
//! `boot timeline (ms since kernel start): pid1=612.3 mounted=615.0 ...`, phases in order.
//! Marks are `Instant`s; they are put on the kernel's clock when the line is made, through
//! `/proc/uptime` (which is not mounted at the first mark, and reads in centiseconds: the
//! whole line may sit up to 5 ms off, the gaps between phases are exact). No system call of
//! our own: std has no absolute monotonic time, and `unsafe` stays in the system layer.

use std::sync::Mutex;
use std::time::Instant;

/// What the harness looks for (`tests/src/harness.rs` parses the line).
pub const PREFIX: &str = "boot timeline (ms since kernel start):";

/// More than PID 1 marks; further marks are dropped rather than grow the list.
const MAX_MARKS: usize = 32;

static MARKS: Mutex<Vec<(&'static str, Instant)>> = Mutex::new(Vec::new());

/// Records that `phase` ended now.
pub fn mark(phase: &'static str) {
    // The clock is read under the lock, so the list stays in time order.
    if let Ok(mut m) = MARKS.lock()
        && m.len() < MAX_MARKS
    {
        m.push((phase, Instant::now()));
    }
}

/// The marks so far as one log line, in ms since the kernel started (since now, as negative
/// numbers, if `/proc/uptime` cannot be read).
pub fn line() -> String {
    let marks = MARKS.lock().map(|m| m.clone()).unwrap_or_default();
    let now = Instant::now();
    let uptime = std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|t| parse_uptime(&t))
        .unwrap_or(0.0);
    let mut s = String::from(PREFIX);
    for (phase, at) in marks {
        let ms = uptime - now.duration_since(at).as_secs_f64() * 1000.0;
        s.push_str(&format!(" {phase}={ms:.1}"));
    }
    s
}

/// `/proc/uptime`'s first field in ms, plus half its 10 ms resolution (it is truncated).
fn parse_uptime(text: &str) -> Option<f64> {
    let secs: f64 = text.split_whitespace().next()?.parse().ok()?;
    Some(secs * 1000.0 + 5.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_are_in_order_and_bounded() {
        for _ in 0..(MAX_MARKS + 5) {
            mark("x");
        }
        let l = line();
        assert!(l.starts_with(PREFIX));
        let times: Vec<f64> = l[PREFIX.len()..]
            .split_whitespace()
            .map(|kv| kv.split_once('=').unwrap().1.parse().unwrap())
            .collect();
        assert_eq!(times.len(), MAX_MARKS);
        assert!(times.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn uptime_is_read_in_ms() {
        assert_eq!(parse_uptime("12.34 45.67\n"), Some(12_345.0));
        assert_eq!(parse_uptime(""), None);
    }
}
