//! Every frame the enclave and the parent exchange (each side treats the other as hostile):
//! blob store requests and answers, the credentials frame, the egress request and answer
//! lines, the log stream.

use std::io::Cursor;

use sigil_protocol::parent::{blobs, credentials, egress, logs};

/// What the selector byte (modulo [`KINDS`]) feeds the rest to.
pub const KINDS: u8 = 7;
pub const BLOB_REQUEST: u8 = 0;
pub const BLOB_RESPONSE: u8 = 1;
pub const BLOB_FRAME: u8 = 2;
pub const CREDENTIALS: u8 = 3;
pub const EGRESS_REQUEST: u8 = 4;
pub const EGRESS_ANSWER: u8 = 5;
pub const LOGS: u8 = 6;

pub fn run(data: &[u8]) {
    let Some((selector, rest)) = crate::split_selector(data) else {
        return;
    };
    match selector % KINDS {
        BLOB_REQUEST => {
            if let Ok(r) = blobs::decode_request(rest) {
                let again = blobs::decode_request(&blobs::encode_request(&r));
                assert_eq!(again.ok().as_ref(), Some(&r), "blob request round trip");
            }
        }
        BLOB_RESPONSE => {
            if let Ok(r) = blobs::decode_response(rest) {
                let again = blobs::decode_response(&blobs::encode_response(&r));
                assert_eq!(again.ok().as_ref(), Some(&r), "blob response round trip");
            }
        }
        BLOB_FRAME => {
            let mut cur = Cursor::new(rest);
            while let Ok(body) = blobs::read_frame(&mut cur) {
                assert!(body.len() <= blobs::MAX_FRAME);
                let _ = blobs::decode_response(&body);
            }
        }
        CREDENTIALS => {
            if let Ok(answer) = credentials::read(&mut Cursor::new(rest)) {
                // Whatever was accepted can be sent on again (the shim's encoder clips
                // refusal text, so only decodability is asserted).
                assert!(credentials::decode(&credentials::encode(&answer)).is_ok());
            }
        }
        EGRESS_REQUEST => {
            if let Ok(line) = egress::read_request(&mut Cursor::new(rest)) {
                assert!(line.len() <= egress::MAX_REQUEST);
                assert!(!line.contains('\n'));
            }
        }
        EGRESS_ANSWER => {
            if let Ok(Err(refusal)) = egress::read_answer(&mut Cursor::new(rest)) {
                // The parent's words reach the operator's terminal and the log: printable
                // ASCII only.
                for s in [&refusal.code, &refusal.message] {
                    assert!(
                        s.bytes().all(|b| b.is_ascii_graphic() || b == b' '),
                        "{s:?}"
                    );
                    assert!(s.len() <= egress::MAX_ANSWER);
                }
            }
        }
        _ => {
            // The selector's high bits are the size of each read.
            let piece = usize::from(selector >> 3) + 1;
            let mut split = logs::LineSplitter::new();
            let mut kept = 0usize;
            let mut lines = 0usize;
            let mut emit = |line: &[u8], _cut: bool| {
                assert!(line.len() <= logs::MAX_LINE);
                assert!(!line.contains(&b'\n'));
                kept += line.len();
                lines += 1;
            };
            for chunk in rest.chunks(piece) {
                split.push(chunk, &mut emit);
            }
            split.finish(&mut emit);
            let newlines = rest.iter().filter(|&&b| b == b'\n').count();
            assert!(lines >= newlines && lines <= newlines + 1);
            assert!(kept + newlines <= rest.len());
        }
    }
}
