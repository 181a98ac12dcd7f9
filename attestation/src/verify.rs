//! End-to-end verification: envelope, payload syntax, chain to a pinned root, signature, policy.

use std::collections::BTreeMap;
use std::fmt;

use crate::cache::ChainCache;
use crate::chain;
use crate::cose::CoseSign1;
use crate::document::AttestationDocument;
use crate::text;

/// Allowed clock skew for documents timestamped slightly in the future (the enclave's and the
/// verifier's clocks are independent).
pub const MAX_FUTURE_SKEW_SECONDS: u64 = 60;

/// Why a document was rejected. `Display` is one line: `<check>: <detail>`.
///
/// Details never contain line breaks or control characters, even when they quote untrusted
/// text (certificate names), so the message is safe to log as is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VerifyError {
    /// The input could not be decoded (not raw CBOR nor base64, too large, empty).
    Input(String),
    /// The COSE_Sign1 envelope is malformed or not ES384.
    Cose(String),
    /// The payload breaks the attestation-document syntax rules.
    Syntax(String),
    /// The certificate path does not validate (parse, names, signatures, times, extensions).
    Chain(String),
    /// `cabundle[0]` is not a trusted pinned root.
    Root(String),
    /// The COSE signature does not verify with the leaf certificate's key.
    Signature(String),
    /// A PCR required by the policy is absent or different.
    Pcr(String),
    /// The document's nonce is absent or differs from the expected one.
    Nonce(String),
    /// The document's timestamp is too old or too far in the future.
    Freshness(String),
    /// The document comes from a debug-mode enclave and the policy does not allow it.
    Debug(String),
}

impl VerifyError {
    /// The name of the failed check: "input", "cose", "syntax", "chain", "root", "signature",
    /// "pcr", "nonce", "freshness" or "debug".
    pub fn check(&self) -> &'static str {
        match self {
            Self::Input(_) => "input",
            Self::Cose(_) => "cose",
            Self::Syntax(_) => "syntax",
            Self::Chain(_) => "chain",
            Self::Root(_) => "root",
            Self::Signature(_) => "signature",
            Self::Pcr(_) => "pcr",
            Self::Nonce(_) => "nonce",
            Self::Freshness(_) => "freshness",
            Self::Debug(_) => "debug",
        }
    }

    /// The human-readable reason, without the check name.
    pub fn detail(&self) -> &str {
        match self {
            Self::Input(d)
            | Self::Cose(d)
            | Self::Syntax(d)
            | Self::Chain(d)
            | Self::Root(d)
            | Self::Signature(d)
            | Self::Pcr(d)
            | Self::Nonce(d)
            | Self::Freshness(d)
            | Self::Debug(d) => d,
        }
    }
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Details are built by this crate; the sanitising pass is a last line of defence so
        // the message stays one line whatever a future detail quotes.
        write!(
            f,
            "{}: {}",
            self.check(),
            text::one_line(self.detail(), 2048)
        )
    }
}

impl std::error::Error for VerifyError {}

/// The pinned root a verified chain ends in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TrustedRoot {
    /// AWS Nitro Enclaves Root-G1: the document comes from real Nitro hardware.
    AwsNitroRootG1,
    /// The sigil test root. Its private key is public, so this proves nothing about the
    /// platform: only the simulator (or anyone else) could have produced the document.
    SigilTestRoot,
}

impl TrustedRoot {
    /// Stable identifier used in JSON output.
    pub fn name(self) -> &'static str {
        match self {
            Self::AwsNitroRootG1 => "aws-nitro-enclaves-root-g1",
            Self::SigilTestRoot => "sigil-test-root",
        }
    }

    /// The pinned DER certificate.
    pub fn der(self) -> &'static [u8] {
        match self {
            Self::AwsNitroRootG1 => chain::AWS_NITRO_ROOT_G1_DER,
            Self::SigilTestRoot => chain::SIGIL_TEST_ROOT_DER,
        }
    }

    /// The pinned SHA-256 fingerprint of [`Self::der`].
    pub fn sha256(self) -> &'static [u8; 32] {
        match self {
            Self::AwsNitroRootG1 => &chain::AWS_NITRO_ROOT_G1_SHA256,
            Self::SigilTestRoot => &chain::SIGIL_TEST_ROOT_SHA256,
        }
    }
}

impl fmt::Display for TrustedRoot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What the verifier requires beyond cryptographic validity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Verification time (unix seconds); injectable so tests can verify old documents.
    pub at_unix_seconds: u64,
    /// Every listed PCR must be present in the document with exactly this value.
    pub expected_pcrs: BTreeMap<u8, Vec<u8>>,
    /// If set, the document's nonce must equal it.
    pub nonce: Option<Vec<u8>>,
    /// If set, the document timestamp must lie in
    /// `[at - max_age, at + MAX_FUTURE_SKEW_SECONDS]`.
    pub max_age_seconds: Option<u64>,
    /// Accept debug-mode documents (PCR0..2 all zero). A debug enclave can be inspected by the
    /// parent instance, so its secrets are not protected.
    pub allow_debug: bool,
    /// Also accept chains to the sigil test root. Its key is public: enable only for
    /// development against the simulator, never in production.
    pub trust_test_root: bool,
}

impl Policy {
    /// The minimal policy at a given time: no PCR, nonce or freshness requirement, debug and
    /// the test root rejected.
    pub fn at(at_unix_seconds: u64) -> Self {
        Self {
            at_unix_seconds,
            expected_pcrs: BTreeMap::new(),
            nonce: None,
            max_age_seconds: None,
            allow_debug: false,
            trust_test_root: false,
        }
    }
}

/// A document that passed every check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// The authenticated payload.
    pub document: AttestationDocument,
    /// The pinned root its chain ends in.
    pub root: TrustedRoot,
    /// PCR0..2 are all zero (debug-mode enclave); only possible if the policy allowed it.
    pub debug: bool,
}

impl Verified {
    /// One JSON object summarising the verified document (byte fields in lowercase hex).
    pub fn to_json(&self) -> String {
        let d = &self.document;
        let mut out = String::with_capacity(256);
        out.push_str("{\"module_id\":");
        text::json_string(&mut out, &d.module_id);
        out.push_str(",\"timestamp\":");
        out.push_str(&d.timestamp_ms.to_string());
        out.push_str(",\"digest\":");
        text::json_string(&mut out, &d.digest);
        out.push_str(",\"pcrs\":{");
        for (i, (index, value)) in d.pcrs.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push('"');
            out.push_str(&index.to_string());
            out.push_str("\":\"");
            out.push_str(&hex::encode(value));
            out.push('"');
        }
        out.push('}');
        for (name, value) in [
            ("public_key", &d.public_key),
            ("user_data", &d.user_data),
            ("nonce", &d.nonce),
        ] {
            out.push_str(",\"");
            out.push_str(name);
            out.push_str("\":");
            match value {
                Some(v) => {
                    out.push('"');
                    out.push_str(&hex::encode(v));
                    out.push('"');
                }
                None => out.push_str("null"),
            }
        }
        out.push_str(",\"root\":\"");
        out.push_str(self.root.name());
        out.push_str("\",\"debug\":");
        out.push_str(if self.debug { "true" } else { "false" });
        out.push('}');
        out
    }
}

/// Verifies raw COSE_Sign1 bytes (see [`crate::decode_input`] for base64) against `policy`.
///
/// Checks run from the outside in — envelope, payload syntax, root pin, chain, signature, then
/// policy (debug, PCRs, nonce, freshness) — so a tampered byte is reported by the most
/// specific check that notices it.
///
/// Verified CA chains are remembered in the process-wide [`ChainCache::global`], so the next
/// document from the same host skips re-verifying its CAs; the result is the same as without
/// it (see [`verify_with`]).
pub fn verify(input: &[u8], policy: &Policy) -> Result<Verified, VerifyError> {
    verify_with(input, policy, Some(ChainCache::global()))
}

/// [`verify`] with a chosen cache of verified CA chains, or none (`None`: every certificate is
/// parsed and every signature verified). Every check that depends on the document or the
/// time, each certificate's validity window included, runs either way.
pub fn verify_with(
    input: &[u8],
    policy: &Policy,
    cache: Option<&ChainCache>,
) -> Result<Verified, VerifyError> {
    if input.len() > crate::MAX_INPUT_BYTES {
        return Err(VerifyError::Input(format!(
            "input of {} bytes exceeds the {}-byte limit",
            input.len(),
            crate::MAX_INPUT_BYTES
        )));
    }
    let cose = CoseSign1::parse(input)?;
    let document = AttestationDocument::from_cbor(cose.payload)?;
    let (chain, new_chain) = match cache {
        Some(cache) => chain::validate_cached(
            &document.certificate,
            &document.cabundle,
            policy.at_unix_seconds,
            policy.trust_test_root,
            cache,
        )?,
        None => (
            chain::validate(
                &document.certificate,
                &document.cabundle,
                policy.at_unix_seconds,
                policy.trust_test_root,
            )?,
            None,
        ),
    };
    // The chain vouches for the leaf key only; the payload is authentic only if the leaf
    // signed exactly these protected-header and payload bytes.
    cose.verify_es384(&chain.leaf_public_key)?;

    let debug = document.is_debug();
    if debug && !policy.allow_debug {
        return Err(VerifyError::Debug(
            "PCR0, PCR1 and PCR2 are all zero: the enclave runs in debug mode, where the parent \
             instance can read its memory (set allow_debug to accept)"
                .into(),
        ));
    }
    check_pcrs(&document, &policy.expected_pcrs)?;
    check_nonce(&document, policy.nonce.as_deref())?;
    if let Some(max_age) = policy.max_age_seconds {
        check_freshness(document.timestamp_ms, policy.at_unix_seconds, max_age)?;
    }
    // Cached only now: a chain is remembered only from a document that verified in full,
    // which a hostile sender cannot produce for a chain it made up or re-encoded.
    if let (Some(cache), Some(facts)) = (cache, new_chain) {
        cache.insert(policy.trust_test_root, &document.cabundle, facts);
    }
    Ok(Verified {
        document,
        root: chain.root,
        debug,
    })
}

/// Measurements are public values, so a plain comparison is fine (no timing secret).
fn check_pcrs(
    doc: &AttestationDocument,
    expected: &BTreeMap<u8, Vec<u8>>,
) -> Result<(), VerifyError> {
    for (index, want) in expected {
        match doc.pcrs.get(index) {
            None => {
                return Err(VerifyError::Pcr(format!(
                    "PCR{index} is required by the policy but absent from the document"
                )));
            }
            Some(got) if got != want => {
                return Err(VerifyError::Pcr(format!(
                    "PCR{index} mismatch (expected {}, got {})",
                    hex::encode(want),
                    hex::encode(got)
                )));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// The nonce defends against replay of an old (genuine) document.
fn check_nonce(doc: &AttestationDocument, expected: Option<&[u8]>) -> Result<(), VerifyError> {
    let Some(want) = expected else {
        return Ok(());
    };
    match doc.nonce.as_deref() {
        None => Err(VerifyError::Nonce(format!(
            "the document has no nonce, expected {} bytes ({})",
            want.len(),
            short_hex(want)
        ))),
        Some(got) if got != want => Err(VerifyError::Nonce(format!(
            "nonce mismatch (expected {} bytes {}, got {} bytes {})",
            want.len(),
            short_hex(want),
            got.len(),
            short_hex(got)
        ))),
        Some(_) => Ok(()),
    }
}

/// Bounds the document's age; without a nonce this is the only defence against replaying an
/// old document whose chain is still valid.
fn check_freshness(
    timestamp_ms: u64,
    at_unix_seconds: u64,
    max_age: u64,
) -> Result<(), VerifyError> {
    // Milliseconds in u128: no overflow for any u64 inputs.
    let ts = u128::from(timestamp_ms);
    let at = u128::from(at_unix_seconds).saturating_mul(1000);
    let oldest = at.saturating_sub(u128::from(max_age).saturating_mul(1000));
    let newest = at.saturating_add(u128::from(MAX_FUTURE_SKEW_SECONDS).saturating_mul(1000));
    if ts < oldest {
        return Err(VerifyError::Freshness(format!(
            "document timestamp {} is {} s old, more than the allowed {max_age} s (verification time {})",
            text::rfc3339_ms(timestamp_ms),
            at.saturating_sub(ts) / 1000,
            text::rfc3339_u(at_unix_seconds)
        )));
    }
    if ts > newest {
        return Err(VerifyError::Freshness(format!(
            "document timestamp {} is {} s in the future, more than the allowed {MAX_FUTURE_SKEW_SECONDS} s clock skew (verification time {})",
            text::rfc3339_ms(timestamp_ms),
            ts.saturating_sub(at) / 1000,
            text::rfc3339_u(at_unix_seconds)
        )));
    }
    Ok(())
}

/// Hex of at most the first 32 bytes, so messages stay short for 1 KiB nonces.
fn short_hex(b: &[u8]) -> String {
    match b.get(..32) {
        Some(head) if b.len() > 32 => format!("{}…", hex::encode(head)),
        _ => hex::encode(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> AttestationDocument {
        AttestationDocument {
            module_id: "i-1\"\n".into(),
            timestamp_ms: 1_000_000,
            digest: "SHA384".into(),
            pcrs: [(0u8, vec![1u8; 48]), (3, vec![0u8; 48])]
                .into_iter()
                .collect(),
            certificate: vec![1],
            cabundle: vec![vec![1]],
            public_key: None,
            user_data: Some(vec![0xab]),
            nonce: Some(vec![]),
        }
    }

    #[test]
    fn json_is_one_valid_object() {
        let v = Verified {
            document: doc(),
            root: TrustedRoot::SigilTestRoot,
            debug: true,
        };
        let json = v.to_json();
        assert_eq!(
            json,
            format!(
                "{{\"module_id\":\"i-1\\\"\\n\",\"timestamp\":1000000,\"digest\":\"SHA384\",\"pcrs\":{{\"0\":\"{}\",\"3\":\"{}\"}},\"public_key\":null,\"user_data\":\"ab\",\"nonce\":\"\",\"root\":\"sigil-test-root\",\"debug\":true}}",
                "01".repeat(48),
                "00".repeat(48)
            )
        );
        let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(parsed["module_id"], "i-1\"\n");
    }

    #[test]
    fn errors_display_one_line_with_check_name() {
        let e = VerifyError::Chain("certificate 0 (CN=a\nb) expired".into());
        assert_eq!(e.check(), "chain");
        assert_eq!(e.to_string(), "chain: certificate 0 (CN=a?b) expired");
    }

    #[test]
    fn pcr_policy() {
        let d = doc();
        let mut want = BTreeMap::new();
        want.insert(0u8, vec![1u8; 48]);
        assert!(check_pcrs(&d, &want).is_ok());
        want.insert(3, vec![1u8; 48]);
        let e = check_pcrs(&d, &want).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("pcr: PCR3 mismatch (expected 0101"),
            "{e}"
        );
        want.clear();
        want.insert(8, vec![0u8; 48]);
        assert_eq!(check_pcrs(&d, &want).unwrap_err().check(), "pcr");
    }

    #[test]
    fn nonce_policy() {
        let d = doc();
        assert!(check_nonce(&d, None).is_ok());
        assert!(check_nonce(&d, Some(&[])).is_ok());
        assert_eq!(check_nonce(&d, Some(&[1])).unwrap_err().check(), "nonce");
        let mut d2 = doc();
        d2.nonce = None;
        assert_eq!(check_nonce(&d2, Some(&[])).unwrap_err().check(), "nonce");
    }

    #[test]
    fn freshness_window_edges() {
        let at = 10_000u64;
        let ts = at * 1000;
        assert!(check_freshness(ts - 60_000, at, 60).is_ok());
        assert!(check_freshness(ts - 60_001, at, 60).is_err());
        assert!(check_freshness(ts + 60_000, at, 0).is_ok());
        let e = check_freshness(ts + 60_001, at, 0).unwrap_err();
        assert!(e.to_string().contains("in the future"), "{e}");
        // Extremes do not overflow.
        assert!(check_freshness(u64::MAX, u64::MAX, u64::MAX).is_ok());
        assert!(check_freshness(1, u64::MAX, 0).is_err());
        assert!(check_freshness(u64::MAX, 0, u64::MAX).is_err());
    }
}
