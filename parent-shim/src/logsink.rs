//! The enclave's log stream ([`sigil_protocol::parent::logs`]): each incoming line goes to
//! stdout with a prefix.

use std::io::{self, Read, Write};
use std::sync::Mutex;

use sigil_protocol::parent::logs::LineSplitter;

/// Longest line printed; the rest of a longer line is dropped (memory and journal flooding).
pub use sigil_protocol::parent::logs::MAX_LINE;
/// Concurrent log connections: the enclave opens one; a few allow a reconnect overlap.
pub const MAX_CONNECTIONS: usize = 4;

static STDOUT_LOCK: Mutex<()> = Mutex::new(());

/// Copies lines from `r` to `out`, each prefixed. Control characters become '?' so an enclave
/// (or whatever reaches this port) cannot forge extra log lines with '\r' or drive the
/// operator's terminal with escape sequences.
pub fn copy_lines(mut r: impl Read, out: &mut dyn FnMut(&str), prefix: &str) -> io::Result<()> {
    let mut lines = LineSplitter::new();
    let mut emit = |line: &[u8], truncated: bool| {
        let text: String = String::from_utf8_lossy(line)
            .chars()
            .map(|c| if c.is_control() && c != '\t' { '?' } else { c })
            .collect();
        let mark = if truncated { " [truncated]" } else { "" };
        out(&format!("{prefix}{text}{mark}"));
    };
    let mut buf = [0u8; 8192];
    loop {
        match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => lines.push(&buf[..n], &mut emit),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    lines.finish(&mut emit);
    Ok(())
}

pub fn handle(s: impl Read, peer: &str) -> io::Result<()> {
    let prefix = format!("enclave[{peer}]: ");
    let mut print = |l: &str| {
        // One lock: lines from two connections never interleave mid-line.
        let _g = STDOUT_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        let mut o = io::stdout().lock();
        let _ = writeln!(o, "{l}");
        let _ = o.flush();
    };
    copy_lines(s, &mut print, &prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8]) -> Vec<String> {
        let mut got = Vec::new();
        copy_lines(input, &mut |l| got.push(l.to_string()), "p: ").unwrap();
        got
    }

    #[test]
    fn prefixes_bounds_and_sanitises() {
        assert_eq!(lines(b"a\nb\n"), ["p: a", "p: b"]);
        assert_eq!(lines(b"tail"), ["p: tail"]);
        assert_eq!(lines(b"x\rFAKE\x1b[31m\n"), ["p: x?FAKE?[31m"]);
        assert_eq!(lines(b"\xff\n"), ["p: \u{fffd}"]);
        let mut long = vec![b'a'; MAX_LINE + 10];
        long.extend_from_slice(b"\nnext\n");
        let got = lines(&long);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].len(), 3 + MAX_LINE + " [truncated]".len());
        assert_eq!(got[1], "p: next");
    }
}
