//! COSE_Sign1 (RFC 9052) as Nitro uses it: ES384, protected header `{1: -35}`, empty
//! unprotected header, embedded payload, 96-byte raw `r || s` signature.

use minicbor::data::{Tag, Type};
use minicbor::decode::Decoder;

use crate::cbor;
use crate::document::MAX_PAYLOAD_BYTES;
use crate::verify::VerifyError;

/// The protected header `{1: -35}` (alg = ES384) as every Nitro document encodes it.
pub const PROTECTED_ES384: [u8; 4] = [0xa1, 0x01, 0x38, 0x22];
/// COSE algorithm identifier for ES384.
pub const ALG_ES384: i64 = -35;
/// ES384 signatures are raw `r || s`, 48 bytes each (not DER).
pub const ES384_SIGNATURE_LEN: usize = 96;
/// CBOR tag for COSE_Sign1 (optional; real Nitro documents are untagged).
pub const COSE_SIGN1_TAG: u64 = 18;

/// A parsed COSE_Sign1 borrowing from the input: the exact received bytes of the protected
/// header and payload are kept, because the signature covers those bytes, not a re-encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CoseSign1<'a> {
    /// Contents of the protected-header bstr (an encoded map).
    pub protected: &'a [u8],
    /// Contents of the payload bstr (the encoded attestation document).
    pub payload: &'a [u8],
    /// The 96-byte signature.
    pub signature: &'a [u8],
    /// Whether the input carried tag 18.
    pub tagged: bool,
}

fn cose(msg: impl Into<String>) -> VerifyError {
    VerifyError::Cose(msg.into())
}

fn cbor_err(what: &str) -> impl Fn(minicbor::decode::Error) -> VerifyError + '_ {
    move |e| cose(format!("{what}: {e}"))
}

/// Checks that `protected` decodes to exactly `{1: -35}`. Any other algorithm — or extra
/// header parameters such as `crit` that we would silently ignore — is rejected, so an
/// attacker cannot steer the verifier to a weaker algorithm.
fn check_protected(protected: &[u8]) -> Result<(), VerifyError> {
    let mut d = Decoder::new(protected);
    match d.map().map_err(cbor_err("protected header"))? {
        Some(1) => {}
        other => {
            return Err(cose(format!(
                "protected header must be a map of exactly one entry {{1: -35}}, found {}",
                other.map_or("an indefinite-length map".to_string(), |n| format!(
                    "{n} entries"
                ))
            )));
        }
    }
    let label = d.i64().map_err(cbor_err("protected header label"))?;
    if label != 1 {
        return Err(cose(format!(
            "protected header label {label} is not 1 (alg)"
        )));
    }
    let alg = d.i64().map_err(cbor_err("protected header alg"))?;
    if alg != ALG_ES384 {
        return Err(cose(format!("algorithm {alg} is not ES384 (-35)")));
    }
    if d.position() != protected.len() {
        return Err(cose("trailing bytes inside the protected header"));
    }
    Ok(())
}

impl<'a> CoseSign1<'a> {
    /// Parses the envelope strictly: optional tag 18, a definite array of 4, protected
    /// `{1: -35}`, unprotected `{}`, a non-empty payload bstr, a 96-byte signature bstr, and
    /// nothing after the array.
    pub fn parse(input: &'a [u8]) -> Result<Self, VerifyError> {
        if input.len() > crate::MAX_INPUT_BYTES {
            return Err(cose(format!(
                "input of {} bytes exceeds the {}-byte limit",
                input.len(),
                crate::MAX_INPUT_BYTES
            )));
        }
        let mut d = Decoder::new(input);
        let mut tagged = false;
        if d.datatype().map_err(cbor_err("COSE_Sign1"))? == Type::Tag {
            let tag = d.tag().map_err(cbor_err("COSE_Sign1 tag"))?;
            if tag != Tag::new(COSE_SIGN1_TAG) {
                return Err(cose(format!(
                    "unexpected CBOR tag {} (only 18, COSE_Sign1, is allowed)",
                    tag.as_u64()
                )));
            }
            tagged = true;
        }
        match d.array().map_err(cbor_err("COSE_Sign1"))? {
            Some(4) => {}
            Some(n) => {
                return Err(cose(format!(
                    "COSE_Sign1 array has {n} elements, expected 4"
                )));
            }
            None => return Err(cose("COSE_Sign1 array must have definite length 4")),
        }
        let protected = d.bytes().map_err(cbor_err("protected header"))?;
        check_protected(protected)?;
        // Unprotected parameters are not covered by the signature; anything there would be
        // attacker-controlled, so none are allowed.
        match d.map().map_err(cbor_err("unprotected header"))? {
            Some(0) => {}
            _ => return Err(cose("unprotected header must be an empty map")),
        }
        // Detached payloads (nil) are not used by Nitro; `bytes()` rejects them.
        let payload = d.bytes().map_err(cbor_err("payload"))?;
        if payload.is_empty() || payload.len() > MAX_PAYLOAD_BYTES {
            return Err(cose(format!(
                "payload is {} bytes, allowed 1..={MAX_PAYLOAD_BYTES}",
                payload.len()
            )));
        }
        let signature = d.bytes().map_err(cbor_err("signature"))?;
        if signature.len() != ES384_SIGNATURE_LEN {
            return Err(cose(format!(
                "signature is {} bytes, ES384 needs exactly {ES384_SIGNATURE_LEN}",
                signature.len()
            )));
        }
        // Trailing bytes would let two different byte strings carry the same signed content
        // (and hide data from a verifier that stops early).
        if d.position() != input.len() {
            return Err(cose(format!(
                "{} trailing bytes after the COSE_Sign1 array",
                input.len().saturating_sub(d.position())
            )));
        }
        Ok(Self {
            protected,
            payload,
            signature,
            tagged,
        })
    }

    /// The Sig_structure this message's signature covers.
    pub fn sig_structure(&self) -> Vec<u8> {
        sig_structure(self.protected, self.payload)
    }

    /// Verifies the ES384 signature with an uncompressed P-384 public key (the leaf
    /// certificate's subjectPublicKey bytes).
    pub fn verify_es384(&self, public_key: &[u8]) -> Result<(), VerifyError> {
        let key = ring::signature::UnparsedPublicKey::new(
            &ring::signature::ECDSA_P384_SHA384_FIXED,
            public_key,
        );
        key.verify(&self.sig_structure(), self.signature)
            .map_err(|_| {
                VerifyError::Signature(
                    "ES384 signature over the Sig_structure does not verify with the leaf certificate's key"
                        .into(),
                )
            })
    }
}

/// `Sig_structure = ["Signature1", body_protected, external_aad = h'', payload]` (RFC 9052
/// §4.4), with `protected` and `payload` being the exact bstr contents of the message. Used by
/// both signer and verifier so they cannot disagree on what is signed.
pub fn sig_structure(protected: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(
        protected
            .len()
            .saturating_add(payload.len())
            .saturating_add(32),
    );
    cbor::array(&mut out, 4);
    cbor::text(&mut out, "Signature1");
    cbor::bytes(&mut out, protected);
    cbor::bytes(&mut out, &[]);
    cbor::bytes(&mut out, payload);
    out
}

/// Encodes an untagged COSE_Sign1 `[protected, {}, payload, signature]`.
pub fn encode_sign1(protected: &[u8], payload: &[u8], signature: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(
        protected
            .len()
            .saturating_add(payload.len())
            .saturating_add(signature.len())
            .saturating_add(16),
    );
    cbor::array(&mut out, 4);
    cbor::bytes(&mut out, protected);
    cbor::map(&mut out, 0);
    cbor::bytes(&mut out, payload);
    cbor::bytes(&mut out, signature);
    out
}

/// Signs `payload` as an untagged ES384 COSE_Sign1 with protected header `{1: -35}`.
/// `key` must be a P-384 key loaded for `ECDSA_P384_SHA384_FIXED_SIGNING` (raw `r || s`).
#[cfg(feature = "simulator")]
pub fn sign_es384(
    key: &ring::signature::EcdsaKeyPair,
    rng: &dyn ring::rand::SecureRandom,
    payload: &[u8],
) -> Result<Vec<u8>, ring::error::Unspecified> {
    let to_sign = sig_structure(&PROTECTED_ES384, payload);
    let signature = key.sign(rng, &to_sign)?;
    Ok(encode_sign1(&PROTECTED_ES384, payload, signature.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sig_structure_prefix_matches_the_spec() {
        let payload = vec![0xa0; 300];
        let s = sig_structure(&PROTECTED_ES384, &payload);
        let want = hex::decode("846a5369676e61747572653144a10138224059012c").unwrap();
        assert_eq!(&s[..want.len()], &want[..]);
        assert_eq!(&s[want.len()..], &payload[..]);
    }

    fn msg(protected: &[u8], unprotected: &[u8], payload: &[u8], sig_len: usize) -> Vec<u8> {
        let mut out = vec![0x84];
        cbor::bytes(&mut out, protected);
        out.extend_from_slice(unprotected);
        cbor::bytes(&mut out, payload);
        cbor::bytes(&mut out, &vec![7; sig_len]);
        out
    }

    #[test]
    fn parses_well_formed_and_tagged() {
        let m = msg(&PROTECTED_ES384, &[0xa0], b"\xa0", 96);
        let c = CoseSign1::parse(&m).unwrap();
        assert_eq!(c.payload, b"\xa0");
        assert!(!c.tagged);
        let mut t = vec![0xd2];
        t.extend_from_slice(&m);
        assert!(CoseSign1::parse(&t).unwrap().tagged);
    }

    #[test]
    fn rejects_envelope_deviations() {
        let ok = msg(&PROTECTED_ES384, &[0xa0], b"\xa0", 96);
        let mut cases: Vec<(&str, Vec<u8>)> = vec![
            ("alg ES256", msg(&[0xa1, 0x01, 0x26], &[0xa0], b"\xa0", 96)),
            (
                "extra header",
                msg(&[0xa2, 0x01, 0x38, 0x22, 0x02, 0x00], &[0xa0], b"\xa0", 96),
            ),
            ("empty protected", msg(&[], &[0xa0], b"\xa0", 96)),
            (
                "protected trailing",
                msg(&[0xa1, 0x01, 0x38, 0x22, 0x00], &[0xa0], b"\xa0", 96),
            ),
            (
                "unprotected kid",
                msg(&PROTECTED_ES384, &[0xa1, 0x04, 0x41, 0x00], b"\xa0", 96),
            ),
            (
                "indefinite unprotected",
                msg(&PROTECTED_ES384, &[0xbf, 0xff], b"\xa0", 96),
            ),
            ("short sig", msg(&PROTECTED_ES384, &[0xa0], b"\xa0", 95)),
            ("long sig", msg(&PROTECTED_ES384, &[0xa0], b"\xa0", 97)),
            ("empty payload", msg(&PROTECTED_ES384, &[0xa0], b"", 96)),
            ("tag 61", [&[0xd8, 0x3d][..], &ok].concat()),
            ("trailing", [&ok[..], &[0x00]].concat()),
            ("array of 3", [&[0x83][..], &ok[1..]].concat()),
            (
                "indefinite array",
                [&[0x9f][..], &ok[1..], &[0xff]].concat(),
            ),
            ("empty", vec![]),
            ("map", vec![0xa0]),
        ];
        // Null payload (detached).
        let mut detached = vec![0x84];
        cbor::bytes(&mut detached, &PROTECTED_ES384);
        detached.push(0xa0);
        detached.push(0xf6);
        cbor::bytes(&mut detached, &[0; 96]);
        cases.push(("detached", detached));
        for (name, bytes) in cases {
            let e = CoseSign1::parse(&bytes).unwrap_err();
            assert_eq!(e.check(), "cose", "{name}: {e}");
        }
        for n in 0..ok.len() {
            assert_eq!(CoseSign1::parse(&ok[..n]).unwrap_err().check(), "cose");
        }
    }
}
