//! The few CBOR pieces this crate writes, encoded by hand.
//!
//! Only definite-length items with shortest-form heads are produced, so encodings are
//! deterministic (signing and re-encoding tests rely on that). Decoding uses `minicbor`'s
//! `Decoder` directly in the modules that parse.

pub(crate) const MAJOR_UNSIGNED: u8 = 0;
pub(crate) const MAJOR_BYTES: u8 = 2;
pub(crate) const MAJOR_TEXT: u8 = 3;
pub(crate) const MAJOR_ARRAY: u8 = 4;
pub(crate) const MAJOR_MAP: u8 = 5;
/// Simple value `null` (major 7, value 22).
pub(crate) const NULL: u8 = 0xf6;

/// Writes an item head: major type plus argument in its shortest form.
pub(crate) fn head(out: &mut Vec<u8>, major: u8, value: u64) {
    let m = major << 5;
    if let Ok(small) = u8::try_from(value) {
        if small < 24 {
            out.push(m | small);
        } else {
            out.push(m | 24);
            out.push(small);
        }
    } else if let Ok(v) = u16::try_from(value) {
        out.push(m | 25);
        out.extend_from_slice(&v.to_be_bytes());
    } else if let Ok(v) = u32::try_from(value) {
        out.push(m | 26);
        out.extend_from_slice(&v.to_be_bytes());
    } else {
        out.push(m | 27);
        out.extend_from_slice(&value.to_be_bytes());
    }
}

/// `usize` to `u64` without a cast that could truncate on exotic targets.
fn len64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

pub(crate) fn bytes(out: &mut Vec<u8>, b: &[u8]) {
    head(out, MAJOR_BYTES, len64(b.len()));
    out.extend_from_slice(b);
}

pub(crate) fn text(out: &mut Vec<u8>, s: &str) {
    head(out, MAJOR_TEXT, len64(s.len()));
    out.extend_from_slice(s.as_bytes());
}

pub(crate) fn array(out: &mut Vec<u8>, n: usize) {
    head(out, MAJOR_ARRAY, len64(n));
}

pub(crate) fn map(out: &mut Vec<u8>, n: usize) {
    head(out, MAJOR_MAP, len64(n));
}

pub(crate) fn unsigned(out: &mut Vec<u8>, v: u64) {
    head(out, MAJOR_UNSIGNED, v);
}

pub(crate) fn opt_bytes(out: &mut Vec<u8>, b: Option<&[u8]>) {
    match b {
        Some(b) => bytes(out, b),
        None => out.push(NULL),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_are_shortest_form() {
        let cases: [(u64, &[u8]); 7] = [
            (0, &[0x00]),
            (23, &[0x17]),
            (24, &[0x18, 24]),
            (255, &[0x18, 0xff]),
            (256, &[0x19, 0x01, 0x00]),
            (65536, &[0x1a, 0, 1, 0, 0]),
            (1 << 32, &[0x1b, 0, 0, 0, 1, 0, 0, 0, 0]),
        ];
        for (v, want) in cases {
            let mut out = Vec::new();
            unsigned(&mut out, v);
            assert_eq!(out, want, "{v}");
        }
        let mut out = Vec::new();
        text(&mut out, "SHA384");
        assert_eq!(out, b"\x66SHA384");
    }
}
