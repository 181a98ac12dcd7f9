//! The attestation document (COSE payload): model, strict CBOR parser, deterministic encoder.
//!
//! Syntax follows AWS's attestation_process.md §3.2.2 and the CDDL, with the allowances real
//! documents need: explicit `null` for unused optional fields, definite- or indefinite-length
//! maps and arrays, and user_data/nonce up to 1024 bytes.

use std::collections::BTreeMap;

use minicbor::data::Type;
use minicbor::decode::Decoder;

use crate::cbor;
use crate::verify::VerifyError;

/// Largest payload accepted (AWS: "up to 16384 bytes").
pub const MAX_PAYLOAD_BYTES: usize = 16 * 1024;
/// Certificates in `certificate` and `cabundle`: 1..=1024 bytes (CDDL `cert`).
pub const MAX_CERT_BYTES: usize = 1024;
/// At most this many CA certificates (real documents carry 4). Caps allocation and the chain
/// walk.
pub const MAX_CABUNDLE_ENTRIES: usize = 8;
/// PCR indices are 0..32 and there are at most 32 of them.
pub const MAX_PCRS: usize = 32;
/// public_key, user_data, nonce: at most 1024 bytes (CDDL `user_data`).
pub const MAX_USER_FIELD_BYTES: usize = 1024;
/// module_id has no documented bound; real ones are ~40 characters. The cap keeps error
/// messages and JSON output small.
pub const MAX_MODULE_ID_BYTES: usize = 256;
/// The only digest AWS defines.
pub const DIGEST_SHA384: &str = "SHA384";

/// A parsed attestation document. Optional fields that were CBOR `null` are `None`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttestationDocument {
    /// Issuing Nitro hypervisor module ID.
    pub module_id: String,
    /// UTC milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// Always "SHA384".
    pub digest: String,
    /// Locked PCRs: index (0..32) → 32/48/64-byte value.
    pub pcrs: BTreeMap<u8, Vec<u8>>,
    /// DER leaf certificate that signed the document.
    pub certificate: Vec<u8>,
    /// DER CA bundle, root first: `[ROOT, INTERM_1, ..., INTERM_N]`.
    pub cabundle: Vec<Vec<u8>>,
    /// Key the enclave asked to be bound to the document (1..=1024 bytes: DER, PEM or raw).
    pub public_key: Option<Vec<u8>>,
    /// Application data bound to the document (0..=1024 bytes).
    pub user_data: Option<Vec<u8>>,
    /// Verifier's challenge (0..=1024 bytes), the defence against replay.
    pub nonce: Option<Vec<u8>>,
}

/// The nine keys, in AWS's order (also the encoding order).
const KEYS: [&str; 9] = [
    "module_id",
    "digest",
    "timestamp",
    "pcrs",
    "certificate",
    "cabundle",
    "public_key",
    "user_data",
    "nonce",
];
const MANDATORY: usize = 6; // the first six keys

fn syntax(msg: impl Into<String>) -> VerifyError {
    VerifyError::Syntax(msg.into())
}

/// Wraps a minicbor error with the field being read. minicbor's messages are fixed strings
/// plus positions, so they are safe to show.
fn cbor_err(field: &str) -> impl Fn(minicbor::decode::Error) -> VerifyError + '_ {
    move |e| syntax(format!("{field}: {e}"))
}

/// Container header: `Some(n)` for definite length, `None` for indefinite.
/// Rejects a definite length above `max` before anything is allocated (a header can claim
/// 2^64 entries in 9 bytes).
fn check_count(field: &str, len: Option<u64>, max: usize) -> Result<Option<usize>, VerifyError> {
    match len {
        None => Ok(None),
        Some(n) => match usize::try_from(n) {
            Ok(n) if n <= max => Ok(Some(n)),
            _ => Err(syntax(format!("{field} has {n} entries, more than {max}"))),
        },
    }
}

/// True when the next item ends the current container: a definite container has delivered
/// `count` items, or an indefinite one reached its break byte (consumed here).
fn at_end(d: &mut Decoder<'_>, remaining: Option<usize>, field: &str) -> Result<bool, VerifyError> {
    match remaining {
        Some(n) => Ok(n == 0),
        None => {
            if d.datatype().map_err(cbor_err(field))? == Type::Break {
                d.set_position(d.position().saturating_add(1));
                Ok(true)
            } else {
                Ok(false)
            }
        }
    }
}

fn dec(remaining: &mut Option<usize>) {
    if let Some(n) = remaining {
        *n = n.saturating_sub(1);
    }
}

/// A definite-length byte string whose length is in `min..=max`.
fn bytes_in(
    d: &mut Decoder<'_>,
    field: &str,
    min: usize,
    max: usize,
) -> Result<Vec<u8>, VerifyError> {
    // minicbor checks the claimed length against the remaining input before slicing, so a
    // huge length claim fails without allocating.
    let b = d.bytes().map_err(cbor_err(field))?;
    if b.len() < min || b.len() > max {
        return Err(syntax(format!(
            "{field} is {} bytes, allowed {min}..={max}",
            b.len()
        )));
    }
    Ok(b.to_vec())
}

/// An optional byte string: `null` means absent.
fn opt_bytes_in(
    d: &mut Decoder<'_>,
    field: &str,
    min: usize,
    max: usize,
) -> Result<Option<Vec<u8>>, VerifyError> {
    if d.datatype().map_err(cbor_err(field))? == Type::Null {
        d.null().map_err(cbor_err(field))?;
        return Ok(None);
    }
    bytes_in(d, field, min, max).map(Some)
}

fn parse_pcrs(d: &mut Decoder<'_>) -> Result<BTreeMap<u8, Vec<u8>>, VerifyError> {
    let mut remaining = check_count("pcrs", d.map().map_err(cbor_err("pcrs"))?, MAX_PCRS)?;
    let mut pcrs = BTreeMap::new();
    while !at_end(d, remaining, "pcrs")? {
        // An indefinite map is bounded by the same limit as a definite one.
        if pcrs.len() >= MAX_PCRS {
            return Err(syntax(format!("pcrs has more than {MAX_PCRS} entries")));
        }
        let index = d.u64().map_err(cbor_err("pcrs index"))?;
        let index = match u8::try_from(index) {
            Ok(i) if usize::from(i) < MAX_PCRS => i,
            _ => return Err(syntax(format!("pcrs index {index} is not in 0..32"))),
        };
        let value = d.bytes().map_err(cbor_err("pcrs value"))?;
        if !matches!(value.len(), 32 | 48 | 64) {
            return Err(syntax(format!(
                "PCR{index} is {} bytes, expected 32, 48 or 64",
                value.len()
            )));
        }
        // A repeated index would let a later value silently shadow the one a verifier checked.
        if pcrs.insert(index, value.to_vec()).is_some() {
            return Err(syntax(format!("pcrs index {index} appears twice")));
        }
        dec(&mut remaining);
    }
    if pcrs.is_empty() {
        return Err(syntax("pcrs is empty"));
    }
    Ok(pcrs)
}

fn parse_cabundle(d: &mut Decoder<'_>) -> Result<Vec<Vec<u8>>, VerifyError> {
    let mut remaining = check_count(
        "cabundle",
        d.array().map_err(cbor_err("cabundle"))?,
        MAX_CABUNDLE_ENTRIES,
    )?;
    let mut out = Vec::new();
    while !at_end(d, remaining, "cabundle")? {
        if out.len() >= MAX_CABUNDLE_ENTRIES {
            return Err(syntax(format!(
                "cabundle has more than {MAX_CABUNDLE_ENTRIES} entries"
            )));
        }
        let field = format!("cabundle[{}]", out.len());
        out.push(bytes_in(d, &field, 1, MAX_CERT_BYTES)?);
        dec(&mut remaining);
    }
    if out.is_empty() {
        return Err(syntax("cabundle is empty"));
    }
    Ok(out)
}

impl AttestationDocument {
    /// Parses and syntax-checks a payload. Every rule failure is a `syntax` error.
    ///
    /// Unknown and duplicate keys are rejected: a parser that kept the first of two `nonce`
    /// entries while another kept the last would let one signed document mean two things.
    pub fn from_cbor(payload: &[u8]) -> Result<Self, VerifyError> {
        if payload.len() > MAX_PAYLOAD_BYTES {
            return Err(syntax(format!(
                "payload of {} bytes exceeds the {MAX_PAYLOAD_BYTES}-byte limit",
                payload.len()
            )));
        }
        let mut d = Decoder::new(payload);
        // No count cap here: by the tenth key the loop has necessarily met an unknown or
        // duplicate key and stopped, and that is the more useful message.
        let mut remaining = check_count(
            "payload map",
            d.map().map_err(cbor_err("payload"))?,
            usize::MAX,
        )?;

        let mut seen = [false; KEYS.len()];
        let mut module_id = None;
        let mut digest = None;
        let mut timestamp = None;
        let mut pcrs = None;
        let mut certificate = None;
        let mut cabundle = None;
        let mut public_key = None;
        let mut user_data = None;
        let mut nonce = None;

        while !at_end(&mut d, remaining, "payload map")? {
            let key = d.str().map_err(cbor_err("payload key"))?;
            let Some(slot) = KEYS.iter().position(|k| *k == key) else {
                return Err(syntax(format!(
                    "unknown key {:?}",
                    crate::text::one_line(key, 64)
                )));
            };
            // `slot` comes from `position` over KEYS, so it indexes `seen` (same length).
            match seen.get_mut(slot) {
                Some(s) if !*s => *s = true,
                _ => return Err(syntax(format!("duplicate key {key:?}"))),
            }
            match key {
                "module_id" => {
                    let s = d.str().map_err(cbor_err("module_id"))?;
                    if s.is_empty() || s.len() > MAX_MODULE_ID_BYTES {
                        return Err(syntax(format!(
                            "module_id is {} bytes, allowed 1..={MAX_MODULE_ID_BYTES}",
                            s.len()
                        )));
                    }
                    module_id = Some(s.to_owned());
                }
                "digest" => {
                    let s = d.str().map_err(cbor_err("digest"))?;
                    if s != DIGEST_SHA384 {
                        return Err(syntax(format!(
                            "digest is {:?}, expected \"SHA384\"",
                            crate::text::one_line(s, 32)
                        )));
                    }
                    digest = Some(s.to_owned());
                }
                "timestamp" => {
                    let t = d.u64().map_err(cbor_err("timestamp"))?;
                    if t == 0 {
                        return Err(syntax("timestamp is 0"));
                    }
                    timestamp = Some(t);
                }
                "pcrs" => pcrs = Some(parse_pcrs(&mut d)?),
                "certificate" => {
                    certificate = Some(bytes_in(&mut d, "certificate", 1, MAX_CERT_BYTES)?)
                }
                "cabundle" => cabundle = Some(parse_cabundle(&mut d)?),
                "public_key" => {
                    public_key = opt_bytes_in(&mut d, "public_key", 1, MAX_USER_FIELD_BYTES)?
                }
                "user_data" => {
                    user_data = opt_bytes_in(&mut d, "user_data", 0, MAX_USER_FIELD_BYTES)?
                }
                _ => nonce = opt_bytes_in(&mut d, "nonce", 0, MAX_USER_FIELD_BYTES)?,
            }
            dec(&mut remaining);
        }
        if d.position() != payload.len() {
            return Err(syntax(format!(
                "{} trailing bytes after the payload map",
                payload.len().saturating_sub(d.position())
            )));
        }
        for (key, present) in KEYS.iter().zip(seen).take(MANDATORY) {
            if !present {
                return Err(syntax(format!("mandatory key {key:?} is missing")));
            }
        }
        match (module_id, digest, timestamp, pcrs, certificate, cabundle) {
            (
                Some(module_id),
                Some(digest),
                Some(timestamp_ms),
                Some(pcrs),
                Some(certificate),
                Some(cabundle),
            ) => Ok(Self {
                module_id,
                timestamp_ms,
                digest,
                pcrs,
                certificate,
                cabundle,
                public_key,
                user_data,
                nonce,
            }),
            _ => Err(syntax("a mandatory key is missing")),
        }
    }

    /// Deterministic encoding: definite-length map in AWS's key order, shortest-form integers,
    /// absent optional fields as `null` (as real documents carry them). Performs no validation,
    /// so tests can build invalid documents.
    pub fn to_cbor(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            self.certificate
                .len()
                .saturating_add(self.cabundle.iter().map(Vec::len).sum::<usize>())
                .saturating_add(1024),
        );
        cbor::map(&mut out, KEYS.len());
        cbor::text(&mut out, "module_id");
        cbor::text(&mut out, &self.module_id);
        cbor::text(&mut out, "digest");
        cbor::text(&mut out, &self.digest);
        cbor::text(&mut out, "timestamp");
        cbor::unsigned(&mut out, self.timestamp_ms);
        cbor::text(&mut out, "pcrs");
        cbor::map(&mut out, self.pcrs.len());
        for (index, value) in &self.pcrs {
            cbor::unsigned(&mut out, u64::from(*index));
            cbor::bytes(&mut out, value);
        }
        cbor::text(&mut out, "certificate");
        cbor::bytes(&mut out, &self.certificate);
        cbor::text(&mut out, "cabundle");
        cbor::array(&mut out, self.cabundle.len());
        for cert in &self.cabundle {
            cbor::bytes(&mut out, cert);
        }
        cbor::text(&mut out, "public_key");
        cbor::opt_bytes(&mut out, self.public_key.as_deref());
        cbor::text(&mut out, "user_data");
        cbor::opt_bytes(&mut out, self.user_data.as_deref());
        cbor::text(&mut out, "nonce");
        cbor::opt_bytes(&mut out, self.nonce.as_deref());
        out
    }

    /// A debug-mode enclave reports PCR0, PCR1 and PCR2 as zeros. A missing one counts as zero,
    /// so a document cannot look like production by leaving them out.
    pub fn is_debug(&self) -> bool {
        (0u8..=2).all(|i| self.pcrs.get(&i).is_none_or(|v| v.iter().all(|b| *b == 0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> AttestationDocument {
        AttestationDocument {
            module_id: "i-0123-enc0123".into(),
            timestamp_ms: 1_700_000_000_000,
            digest: "SHA384".into(),
            pcrs: (0u8..16).map(|i| (i, vec![i; 48])).collect(),
            certificate: vec![0x30; 600],
            cabundle: vec![vec![0x30; 500], vec![0x31; 600]],
            public_key: Some(vec![1, 2, 3]),
            user_data: None,
            nonce: Some(vec![9; 20]),
        }
    }

    #[test]
    fn round_trip() {
        let d = sample();
        assert_eq!(AttestationDocument::from_cbor(&d.to_cbor()).unwrap(), d);
    }

    #[test]
    fn debug_detection() {
        let mut d = sample();
        assert!(!d.is_debug()); // PCR1 and PCR2 are non-zero
        for i in 0..=2 {
            d.pcrs.insert(i, vec![0; 48]);
        }
        assert!(d.is_debug());
        d.pcrs.remove(&1);
        assert!(d.is_debug());
        d.pcrs.insert(2, vec![1; 48]);
        assert!(!d.is_debug());
    }

    #[test]
    fn huge_length_claims_fail_without_allocating() {
        // Map claiming 2^64-1 entries, array claiming 2^64-1 entries, bstr claiming 2^64-1 bytes.
        for bad in [
            &[0xbb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff][..],
            &[
                0xa1, 0x68, b'c', b'a', b'b', b'u', b'n', b'd', b'l', b'e', 0x9b, 0xff, 0xff, 0xff,
                0xff, 0xff, 0xff, 0xff, 0xff,
            ],
            &[
                0xa1, 0x6b, b'c', b'e', b'r', b't', b'i', b'f', b'i', b'c', b'a', b't', b'e', 0x5b,
                0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            ],
        ] {
            let e = AttestationDocument::from_cbor(bad).unwrap_err();
            assert_eq!(e.check(), "syntax", "{e}");
        }
    }

    #[test]
    fn every_truncation_is_a_clean_error() {
        let bytes = sample().to_cbor();
        for n in 0..bytes.len() {
            let e = AttestationDocument::from_cbor(&bytes[..n]).unwrap_err();
            assert_eq!(e.check(), "syntax");
        }
    }
}
