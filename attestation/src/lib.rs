#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs)]
// Untrusted input must never be able to abort the process: forbid the panicking shortcuts in
// library code (tests may use them).
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects
    )
)]

pub mod cache;
mod cbor;
pub mod chain;
pub mod cose;
pub mod document;
mod text;
pub mod verify;

#[cfg(feature = "simulator")]
pub mod simulator;

pub use cache::ChainCache;
pub use document::AttestationDocument;
pub use verify::{Policy, TrustedRoot, Verified, VerifyError, verify, verify_with};

/// Largest raw COSE_Sign1 accepted: a 16 KiB payload plus envelope overhead, with headroom.
/// Defends against memory exhaustion by oversized input before any parsing starts.
pub const MAX_INPUT_BYTES: usize = 32 * 1024;

/// Largest base64 text accepted by [`decode_input`] (4/3 of [`MAX_INPUT_BYTES`] plus room for
/// line breaks). Checked before decoding so a huge text cannot make us allocate.
pub const MAX_BASE64_INPUT_BYTES: usize = 48 * 1024;

/// Accepts the raw CBOR of a COSE_Sign1, or its base64 text (standard alphabet, with or without
/// `=` padding, surrounding whitespace and line breaks allowed), and returns the raw bytes.
///
/// Raw CBOR is recognised by its first byte: `0x84` (array of 4) or `0xd2` (tag 18). Neither is
/// an ASCII character, so raw input and base64 text cannot be confused.
pub fn decode_input(bytes: &[u8]) -> Result<Vec<u8>, VerifyError> {
    if matches!(bytes.first(), Some(0x84 | 0xd2)) {
        // Raw input is returned verbatim: trimming "whitespace" bytes could corrupt the CBOR.
        if bytes.len() > MAX_INPUT_BYTES {
            return Err(VerifyError::Input(format!(
                "input of {} bytes exceeds the {MAX_INPUT_BYTES}-byte limit",
                bytes.len()
            )));
        }
        return Ok(bytes.to_vec());
    }
    if bytes.len() > MAX_BASE64_INPUT_BYTES {
        return Err(VerifyError::Input(format!(
            "base64 input of {} bytes exceeds the {MAX_BASE64_INPUT_BYTES}-byte limit",
            bytes.len()
        )));
    }
    // Whitespace carries no data in base64; tolerating it (wrapped lines, trailing newline from
    // `base64` tools) cannot change what is verified, because the signature covers the decoded
    // bytes.
    let compact: Vec<u8> = bytes
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    if compact.is_empty() {
        return Err(VerifyError::Input("input is empty".into()));
    }
    use base64::Engine as _;
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    let decoded = engine.decode(&compact).map_err(|e| {
        VerifyError::Input(format!(
            "neither a raw CBOR COSE_Sign1 (first byte 0x84 or 0xd2) nor valid base64: {e}"
        ))
    })?;
    if decoded.len() > MAX_INPUT_BYTES {
        return Err(VerifyError::Input(format!(
            "decoded input of {} bytes exceeds the {MAX_INPUT_BYTES}-byte limit",
            decoded.len()
        )));
    }
    Ok(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_input_is_returned_verbatim() {
        let raw = [0x84, 0x40, 0xa0, 0x40, 0x40, 0x20];
        assert_eq!(decode_input(&raw).unwrap(), raw);
        let tagged = [0xd2, 0x84, 0x40, 0xa0, 0x40, 0x40];
        assert_eq!(decode_input(&tagged).unwrap(), tagged);
    }

    #[test]
    fn base64_variants_decode() {
        let raw = [0x84u8, 0x40, 0xa0, 0x40, 0x41];
        // "hECgQEE=" is the padded form.
        for text in [
            &b"hECgQEE="[..],
            b"hECgQEE",
            b"  hECgQEE=\n",
            b"\thECg\nQEE=\r\n",
        ] {
            assert_eq!(decode_input(text).unwrap(), raw, "{text:?}");
        }
    }

    #[test]
    fn bad_input_is_rejected_with_input_check() {
        for text in [&b""[..], b"   \n", b"not base64!", b"hECgQEE=x", b"-_-_"] {
            let err = decode_input(text).unwrap_err();
            assert_eq!(err.check(), "input", "{text:?}: {err}");
        }
        let huge = vec![b'A'; MAX_BASE64_INPUT_BYTES + 1];
        assert_eq!(decode_input(&huge).unwrap_err().check(), "input");
        let mut huge_raw = vec![0u8; MAX_INPUT_BYTES + 1];
        huge_raw[0] = 0x84;
        assert_eq!(decode_input(&huge_raw).unwrap_err().check(), "input");
        // 48 KiB of base64 decodes to 36 KiB: over the raw limit.
        let big = vec![b'A'; MAX_BASE64_INPUT_BYTES];
        assert_eq!(decode_input(&big).unwrap_err().check(), "input");
    }
}
