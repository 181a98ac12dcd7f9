//! Typed wire fields: the hex, base64 and enum-valued members of the API's JSON.
//!
//! Each type checks its shape while the JSON is decoded (lowercase hex of the exact length,
//! standard padded base64, one of the documented names), so a malformed field is refused by
//! the one decoding step of the pipeline (`malformed_json`, naming the field) and the code on
//! either side only ever sees well-formed bytes. Domain checks (is this point on the curve,
//! does this signature verify) stay with the code that knows the domain.
//!
//! The JSON is the same as when these fields were strings: lowercase hex, base64 with the
//! standard alphabet and padding, snake_case (or kebab-case, for bb's targets) names.
//!
//! Secret fields ([`SecretHex`], [`SecretBase64`]) wipe their bytes when dropped and never
//! print them: their `Debug` shows only a redaction.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Deserializer, Serialize, Serializer, de};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// An owner's signature (vault, MuSig2) may be valid for at most this long into the future:
/// a leaked signed request stops working soon.
pub const MAX_VALIDITY_SECS: u64 = 600;

/// The JSON of `value` in a buffer that leaves no copy behind: every buffer it outgrows is
/// wiped before it is freed, and the result wipes itself when dropped.
///
/// Threat: `serde_json::to_vec` grows its `Vec` by reallocation, so each answer holding a
/// secret (a vault value, an imported key's request) would leave partial copies of it in freed
/// heap memory, readable later by anything that reads that memory.
pub fn to_json_secret<T: Serialize + ?Sized>(
    value: &T,
) -> Result<Zeroizing<Vec<u8>>, serde_json::Error> {
    let mut w = SecretJson(Zeroizing::new(Vec::with_capacity(512)));
    serde_json::to_writer(&mut w, value)?;
    Ok(w.0)
}

struct SecretJson(Zeroizing<Vec<u8>>);

impl std::io::Write for SecretJson {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let need = self
            .0
            .len()
            .checked_add(buf.len())
            .ok_or_else(|| std::io::Error::other("JSON larger than memory"))?;
        if need > self.0.capacity() {
            let mut bigger = Zeroizing::new(Vec::with_capacity(need.max(self.0.capacity() * 2)));
            bigger.extend_from_slice(&self.0);
            // The outgrown buffer is wiped as it drops.
            self.0 = bigger;
        }
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Tag of what an owner signs for an owner-signed request.
pub const OWNER_BINDING_TAG: &str = "sigil/owner-signature/v1";

/// The 32 bytes an owner signs (BIP-340) for an owner-signed request (vault, MuSig2 keys,
/// aggregates, sessions, reads): the request's digest bound to the per-boot HPKE key of the
/// enclave it is for, `tagged_digest(OWNER_BINDING_TAG, [enclave_key, digest])`.
///
/// Threat: a signed request that leaks (a log, a compromised relay, a client that sealed it
/// to the wrong enclave) being rewrapped to another enclave, or to this one after a reboot,
/// within its validity. The enclave checks signatures against its own key only, and the client
/// takes the key from the attestation document it verified.
pub fn owner_message(enclave_key: &[u8; 32], digest: &[u8; 32]) -> [u8; 32] {
    tagged_digest(OWNER_BINDING_TAG, [&enclave_key[..], &digest[..]])
}

/// `SHA256(SHA256(tag) || SHA256(tag) || fields)`, each field a 4-byte big-endian length then
/// its bytes: the digest owners sign, length-prefixed so that no two field lists encode alike.
pub fn tagged_digest<'a>(tag: &str, fields: impl IntoIterator<Item = &'a [u8]>) -> [u8; 32] {
    let tag = Sha256::digest(tag.as_bytes());
    let mut h = Sha256::new();
    h.update(tag);
    h.update(tag);
    for field in fields {
        h.update((field.len() as u32).to_be_bytes());
        h.update(field);
    }
    h.finalize().into()
}

/// Why a field's text is refused. The messages never quote the text: it may be a secret.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    #[error("expected {expected} lowercase hex digits ({} bytes), got {got} characters", expected / 2)]
    HexLength { expected: usize, got: usize },
    #[error("odd number of hex digits ({0})")]
    HexOdd(usize),
    #[error("not lowercase hex (character {0})")]
    NotHex(usize),
    #[error("not base64 (standard alphabet, padded)")]
    Base64,
    #[error("unknown {what} {got:?}: use one of {}", allowed.join(", "))]
    UnknownName {
        what: &'static str,
        got: String,
        allowed: &'static [&'static str],
    },
}

/// Decodes strict lowercase hex into `out` (whose length the caller checked).
fn decode_hex(text: &str, out: &mut [u8]) -> Result<(), FieldError> {
    // `hex` also accepts upper case; the wire has exactly one spelling of each value.
    if let Some(i) = text
        .bytes()
        .position(|b| !matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Err(FieldError::NotHex(i));
    }
    hex::decode_to_slice(text, out).map_err(|_| FieldError::HexOdd(text.len()))
}

/// A string visitor that hands the text to `parse` (no owned copy is made here, which matters
/// for secrets: serde_json lends the text from the request buffer).
pub(crate) struct TextVisitor<F>(pub(crate) &'static str, pub(crate) F);

impl<T, F: FnOnce(&str) -> Result<T, FieldError>> de::Visitor<'_> for TextVisitor<F> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        (self.1)(v).map_err(E::custom)
    }
}

// ----- fixed-size hex -----

/// Exactly `N` bytes as `2N` lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Hex<const N: usize>(pub [u8; N]);

/// 16-byte ids: keys, aggregates, proving jobs, key-creation requests.
pub type Id = Hex<16>;
/// 32 bytes: x-only public keys, session and round ids, scalars, digests, tweak values.
pub type Hex32 = Hex<32>;
/// 33-byte compressed SEC1 points: public keys, aggregate keys, adaptor points.
pub type Point = Hex<33>;
/// 64-byte BIP-340 signatures.
pub type Signature = Hex<64>;
/// 65-byte adaptor pre-signatures `R || s`.
pub type AdaptorSignature = Hex<65>;
/// 66-byte MuSig2 public (or aggregated) nonces.
pub type Nonce = Hex<66>;

impl<const N: usize> Hex<N> {
    pub fn parse(text: &str) -> Result<Self, FieldError> {
        if text.len() != 2 * N {
            return Err(FieldError::HexLength {
                expected: 2 * N,
                got: text.len(),
            });
        }
        let mut out = [0u8; N];
        decode_hex(text, &mut out)?;
        Ok(Hex(out))
    }
}

impl<const N: usize> From<[u8; N]> for Hex<N> {
    fn from(b: [u8; N]) -> Self {
        Hex(b)
    }
}

impl<const N: usize> From<Hex<N>> for [u8; N] {
    fn from(h: Hex<N>) -> Self {
        h.0
    }
}

impl<const N: usize> PartialEq<[u8; N]> for Hex<N> {
    fn eq(&self, other: &[u8; N]) -> bool {
        self.0 == *other
    }
}

impl<const N: usize> FromStr for Hex<N> {
    type Err = FieldError;
    fn from_str(s: &str) -> Result<Self, FieldError> {
        Hex::parse(s)
    }
}

impl<const N: usize> fmt::Display for Hex<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl<const N: usize> fmt::Debug for Hex<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", hex::encode(self.0))
    }
}

impl<const N: usize> Serialize for Hex<N> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(self.0))
    }
}

impl<'de, const N: usize> Deserialize<'de> for Hex<N> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(TextVisitor("a lowercase hex string", Hex::parse))
    }
}

// ----- variable-length hex -----

/// Any number of bytes as lowercase hex (messages to sign, attestation nonces). Sizes are
/// bounded by the body limit here and by the domain (for example the engine's
/// `MAX_MESSAGE_LEN`) where it is used.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct HexBytes(pub Vec<u8>);

impl HexBytes {
    pub fn parse(text: &str) -> Result<Self, FieldError> {
        if !text.len().is_multiple_of(2) {
            return Err(FieldError::HexOdd(text.len()));
        }
        let mut out = vec![0u8; text.len() / 2];
        decode_hex(text, &mut out)?;
        Ok(HexBytes(out))
    }
}

impl From<Vec<u8>> for HexBytes {
    fn from(b: Vec<u8>) -> Self {
        HexBytes(b)
    }
}

impl FromStr for HexBytes {
    type Err = FieldError;
    fn from_str(s: &str) -> Result<Self, FieldError> {
        HexBytes::parse(s)
    }
}

impl fmt::Display for HexBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(&self.0))
    }
}

impl fmt::Debug for HexBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", hex::encode(&self.0))
    }
}

impl Serialize for HexBytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for HexBytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(TextVisitor("a lowercase hex string", HexBytes::parse))
    }
}

// ----- base64 -----

/// Bytes as base64 (standard alphabet, padded): attestation documents, proofs, keys.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Base64Bytes(pub Vec<u8>);

impl Base64Bytes {
    pub fn parse(text: &str) -> Result<Self, FieldError> {
        B64.decode(text.as_bytes())
            .map(Base64Bytes)
            .map_err(|_| FieldError::Base64)
    }
}

impl From<Vec<u8>> for Base64Bytes {
    fn from(b: Vec<u8>) -> Self {
        Base64Bytes(b)
    }
}

impl fmt::Debug for Base64Bytes {
    // Documents and proofs run to megabytes: their size says enough in a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Base64Bytes({} bytes)", self.0.len())
    }
}

impl Serialize for Base64Bytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&B64.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for Base64Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(TextVisitor("a base64 string", Base64Bytes::parse))
    }
}

// ----- secrets -----

/// A secret of exactly `N` bytes as lowercase hex (an imported secret key). Wiped on drop;
/// `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretHex<const N: usize>(Zeroizing<[u8; N]>);

impl<const N: usize> SecretHex<N> {
    pub fn new(bytes: Zeroizing<[u8; N]>) -> Self {
        SecretHex(bytes)
    }

    pub fn parse(text: &str) -> Result<Self, FieldError> {
        if text.len() != 2 * N {
            return Err(FieldError::HexLength {
                expected: 2 * N,
                got: text.len(),
            });
        }
        let mut out = Zeroizing::new([0u8; N]);
        decode_hex(text, &mut out[..])?;
        Ok(SecretHex(out))
    }

    pub fn expose(&self) -> &Zeroizing<[u8; N]> {
        &self.0
    }
}

impl<const N: usize> fmt::Debug for SecretHex<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretHex(<redacted>)")
    }
}

impl<const N: usize> Serialize for SecretHex<N> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&Zeroizing::new(hex::encode(&self.0[..])))
    }
}

impl<'de, const N: usize> Deserialize<'de> for SecretHex<N> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(TextVisitor("a lowercase hex string", SecretHex::parse))
    }
}

/// Secret bytes as base64 (a vault value, a circuit and witness, a result key). Wiped on drop;
/// `Debug` shows only the size.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretBase64(Zeroizing<Vec<u8>>);

impl SecretBase64 {
    pub fn new(bytes: Zeroizing<Vec<u8>>) -> Self {
        SecretBase64(bytes)
    }

    /// A copy of `bytes` (the caller wipes its own).
    pub fn copy_of(bytes: &[u8]) -> Self {
        SecretBase64(Zeroizing::new(bytes.to_vec()))
    }

    pub fn parse(text: &str) -> Result<Self, FieldError> {
        B64.decode(text.as_bytes())
            .map(|v| SecretBase64(Zeroizing::new(v)))
            .map_err(|_| FieldError::Base64)
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    pub fn into_inner(self) -> Zeroizing<Vec<u8>> {
        self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for SecretBase64 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBase64(<{} bytes redacted>)", self.0.len())
    }
}

impl Serialize for SecretBase64 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&Zeroizing::new(B64.encode(&self.0[..])))
    }
}

impl<'de> Deserialize<'de> for SecretBase64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(TextVisitor("a base64 string", SecretBase64::parse))
    }
}

// ----- names -----

/// A closed set of names on the wire: an enum that (de)serializes as one of its names and
/// refuses any other.
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident ($what:literal) {
            $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every name, in declaration order.
            pub const NAMES: &'static [&'static str] = &[$($text),+];

            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::wire::FieldError;
            fn from_str(s: &str) -> Result<Self, $crate::wire::FieldError> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err($crate::wire::FieldError::UnknownName {
                        what: $what,
                        got: other.chars().take(64).collect(),
                        allowed: Self::NAMES,
                    }),
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_str($crate::wire::TextVisitor(concat!("a ", $what), |s: &str| s.parse()))
            }
        }
    };
}

pub(crate) use wire_enum;

/// A name that may be outside the set `T` knows, kept as given: for request fields whose
/// unknown values the handler refuses with its own error code (a prover's `bad_scheme`
/// rather than `malformed_json`), and that the client names in its refusal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Open<T> {
    Known(T),
    Unknown(String),
}

impl<T: Copy> Open<T> {
    /// The known value, or the text that is not one.
    pub fn known(&self) -> Result<T, &str> {
        match self {
            Open::Known(t) => Ok(*t),
            Open::Unknown(s) => Err(s),
        }
    }
}

impl<T> From<T> for Open<T> {
    fn from(t: T) -> Self {
        Open::Known(t)
    }
}

impl<T: fmt::Display> Serialize for Open<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Open::Known(t) => s.collect_str(t),
            Open::Unknown(u) => s.serialize_str(u),
        }
    }
}

impl<'de, T: FromStr> Deserialize<'de> for Open<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(TextVisitor("a string", |s: &str| {
            Ok(match s.parse() {
                Ok(t) => Open::Known(t),
                // Bounded by the body limit; refused by the handler.
                Err(_) => Open::Unknown(s.to_string()),
            })
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    wire_enum! {
        pub enum Color ("color") {
            Red = "red",
            DarkBlue = "dark_blue",
        }
    }

    fn json<T: serde::de::DeserializeOwned>(s: &str) -> serde_json::Result<T> {
        serde_json::from_str(s)
    }

    #[test]
    fn fixed_hex_is_exact_and_lowercase() {
        let h: Hex<2> = json(r#""00ff""#).unwrap();
        assert_eq!(h, [0, 255]);
        assert_eq!(serde_json::to_string(&h).unwrap(), r#""00ff""#);
        assert_eq!(h.to_string(), "00ff");
        assert!(
            json::<Hex<2>>(r#""00FF""#)
                .unwrap_err()
                .to_string()
                .contains("lowercase")
        );
        assert!(
            json::<Hex<2>>(r#""00""#)
                .unwrap_err()
                .to_string()
                .contains("4 lowercase hex digits")
        );
        assert!(json::<Hex<2>>(r#""00zz""#).is_err());
        assert!(json::<Hex<2>>("1").is_err());
        assert!("0g00".parse::<Hex<2>>().is_err());
    }

    #[test]
    fn variable_hex() {
        let h: HexBytes = json(r#""0a0b0c""#).unwrap();
        assert_eq!(h.0, vec![10, 11, 12]);
        assert_eq!(serde_json::to_string(&h).unwrap(), r#""0a0b0c""#);
        assert_eq!(json::<HexBytes>(r#""""#).unwrap().0, Vec::<u8>::new());
        assert!(json::<HexBytes>(r#""abc""#).is_err());
        assert!(json::<HexBytes>(r#""AB""#).is_err());
    }

    #[test]
    fn base64_standard_padded() {
        let b: Base64Bytes = json(r#""AAEC/w==""#).unwrap();
        assert_eq!(b.0, vec![0, 1, 2, 255]);
        assert_eq!(serde_json::to_string(&b).unwrap(), r#""AAEC/w==""#);
        // URL-safe alphabet and missing padding are other encodings, refused.
        assert!(json::<Base64Bytes>(r#""AAEC_w==""#).is_err());
        assert!(json::<Base64Bytes>(r#""AAEC/w""#).is_err());
        let s: SecretBase64 = json(r#""AAEC/w==""#).unwrap();
        assert_eq!(s.expose(), &[0, 1, 2, 255]);
        assert_eq!(serde_json::to_string(&s).unwrap(), r#""AAEC/w==""#);
    }

    #[test]
    fn secrets_never_print() {
        let s: SecretHex<2> = json(r#""beef""#).unwrap();
        assert_eq!(**s.expose(), [0xbe, 0xef]);
        assert_eq!(serde_json::to_string(&s).unwrap(), r#""beef""#);
        assert!(!format!("{s:?}").contains("beef"));
        let b = SecretBase64::copy_of(b"hunter2");
        assert!(!format!("{b:?}").contains("hunter2"));
        assert!(!format!("{b:?}").contains(&B64.encode(b"hunter2")));
        // A refused secret is not quoted in the error either.
        let e = json::<SecretHex<2>>(r#""be!f""#).unwrap_err().to_string();
        assert!(!e.contains("be!f"), "{e}");
    }

    #[test]
    fn names() {
        assert_eq!(json::<Color>(r#""dark_blue""#).unwrap(), Color::DarkBlue);
        assert_eq!(serde_json::to_string(&Color::Red).unwrap(), r#""red""#);
        let e = json::<Color>(r#""green""#).unwrap_err().to_string();
        assert!(
            e.contains("unknown color \"green\": use one of red, dark_blue"),
            "{e}"
        );
        assert_eq!(
            json::<Open<Color>>(r#""green""#).unwrap(),
            Open::Unknown("green".into())
        );
        assert_eq!(
            json::<Open<Color>>(r#""red""#).unwrap().known(),
            Ok(Color::Red)
        );
        assert_eq!(
            serde_json::to_string(&Open::<Color>::Unknown("x".into())).unwrap(),
            r#""x""#
        );
    }
}
