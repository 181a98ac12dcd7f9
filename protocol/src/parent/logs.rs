//! The log stream (enclave -> shim, port `LOGS`): UTF-8 text, one `\n`-terminated line per
//! record, no other framing. The enclave writes whole lines; the reader splits them with
//! [`LineSplitter`], which keeps at most [`MAX_LINE`] bytes of a line and marks the rest as
//! cut, so a peer that never sends a newline costs a bounded buffer, not memory.

/// Longest line the reader keeps; the enclave's own lines are shorter.
pub const MAX_LINE: usize = 4096;

/// Splits a byte stream into lines of at most [`MAX_LINE`] bytes.
#[derive(Debug, Default)]
pub struct LineSplitter {
    line: Vec<u8>,
    truncated: bool,
}

impl LineSplitter {
    pub fn new() -> LineSplitter {
        LineSplitter::default()
    }

    /// Feeds received bytes; `emit(line, truncated)` gets each complete line, without its
    /// newline, and whether bytes past [`MAX_LINE`] were dropped from it.
    pub fn push(&mut self, bytes: &[u8], emit: &mut dyn FnMut(&[u8], bool)) {
        for &b in bytes {
            if b == b'\n' {
                self.emit(emit);
            } else if self.line.len() < MAX_LINE {
                self.line.push(b);
            } else {
                self.truncated = true;
            }
        }
    }

    /// At the end of the stream: emits a last line that had no newline, if any.
    pub fn finish(&mut self, emit: &mut dyn FnMut(&[u8], bool)) {
        if !self.line.is_empty() || self.truncated {
            self.emit(emit);
        }
    }

    fn emit(&mut self, emit: &mut dyn FnMut(&[u8], bool)) {
        emit(&self.line, self.truncated);
        self.line.clear();
        self.truncated = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(chunks: &[&[u8]]) -> Vec<(Vec<u8>, bool)> {
        let mut s = LineSplitter::new();
        let mut got = Vec::new();
        let mut emit = |l: &[u8], t: bool| got.push((l.to_vec(), t));
        for c in chunks {
            s.push(c, &mut emit);
        }
        s.finish(&mut emit);
        got
    }

    #[test]
    fn lines_across_chunks_and_a_last_line_without_newline() {
        assert_eq!(
            split(&[b"a\nb", b"c\n", b"tail"]),
            [
                (b"a".to_vec(), false),
                (b"bc".to_vec(), false),
                (b"tail".to_vec(), false)
            ]
        );
        assert!(split(&[]).is_empty());
        assert_eq!(split(&[b"\n"]), [(vec![], false)]);
    }

    #[test]
    fn oversized_lines_are_cut_and_marked() {
        let mut long = vec![b'a'; MAX_LINE + 10];
        long.extend_from_slice(b"\nnext\n");
        let got = split(&[&long]);
        assert_eq!(got.len(), 2);
        assert_eq!((got[0].0.len(), got[0].1), (MAX_LINE, true));
        assert_eq!(got[1], (b"next".to_vec(), false));
        // A line that never ends is still bounded and still emitted at the end.
        let got = split(&[&vec![b'b'; 3 * MAX_LINE]]);
        assert_eq!((got[0].0.len(), got[0].1), (MAX_LINE, true));
    }
}
