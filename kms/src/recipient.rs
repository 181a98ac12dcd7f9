//! The enclave's ephemeral RSA key for KMS `Recipient` calls.
//!
//! A fresh RSA-2048 key is made for every KMS call; its public half (DER SubjectPublicKeyInfo)
//! goes into the NSM attestation document's `public_key`, and KMS encrypts the response's
//! content-encryption key to it.
//!
//! Why one key per call: the `rsa` crate's decryption is not constant time (RUSTSEC-2023-0071,
//! the "Marvin" timing attack). That attack needs many decryption timings against the SAME key.
//! The untrusted parent instance relays KMS responses and could feed us chosen ciphertexts, but
//! with a key that decrypts exactly one response and is then dropped it gets one sample per key.

use rand_core::OsRng;
use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey};
use rsa::traits::PublicKeyParts;
use rsa::{Oaep, RsaPrivateKey};
use sha2::Sha256;
use std::fmt;
use zeroize::Zeroizing;

/// Size of keys made by [`RecipientKey::generate`]; what KMS and the AWS Nitro SDK use.
pub const GENERATED_BITS: usize = 2048;
/// Smallest and largest modulus accepted from PKCS#8 input. The upper bound stops a hostile
/// key file from making us do very slow big-number work (threat: denial of service).
pub const MIN_BITS: usize = 2048;
pub const MAX_BITS: usize = 4096;

/// Errors about recipient keys. They never include key material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecipientError {
    /// The OS random source or the prime search failed.
    KeyGeneration,
    /// The PKCS#8 input is not a valid RSA private key.
    BadKey,
    /// The modulus is smaller than 2048 or larger than 4096 bits.
    BadKeySize(usize),
    /// The public key could not be encoded as SPKI.
    Encoding,
}

impl fmt::Display for RecipientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecipientError::KeyGeneration => write!(f, "RSA key generation failed"),
            RecipientError::BadKey => write!(f, "not a PKCS#8 RSA private key"),
            RecipientError::BadKeySize(b) => write!(
                f,
                "RSA modulus of {b} bits is outside {MIN_BITS}..={MAX_BITS}"
            ),
            RecipientError::Encoding => write!(f, "public key could not be encoded"),
        }
    }
}

impl std::error::Error for RecipientError {}

/// An RSA private key used to receive one KMS `CiphertextForRecipient`.
///
/// `rsa::RsaPrivateKey` zeroizes its private exponent and primes when dropped, so dropping a
/// `RecipientKey` wipes it (threat: key recovery from a later enclave memory disclosure).
pub struct RecipientKey {
    key: RsaPrivateKey,
    spki: Vec<u8>,
}

impl fmt::Debug for RecipientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Threat: private key material in logs. Only the public half is shown.
        f.debug_struct("RecipientKey")
            .field("spki", &hex::encode(&self.spki))
            .finish_non_exhaustive()
    }
}

impl RecipientKey {
    /// Makes a fresh RSA-2048 key from the OS random source (the NSM-seeded kernel RNG inside
    /// a Nitro Enclave).
    pub fn generate() -> Result<Self, RecipientError> {
        let key = RsaPrivateKey::new(&mut OsRng, GENERATED_BITS)
            .map_err(|_| RecipientError::KeyGeneration)?;
        Self::from_key(key)
    }

    /// Loads a PKCS#8 PEM private key (`-----BEGIN PRIVATE KEY-----`); meant for tests and the
    /// development KMS.
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, RecipientError> {
        // Bound the input before parsing: a 4096-bit PKCS#8 key is about 3.3 KiB of PEM.
        if pem.len() > 16 * 1024 {
            return Err(RecipientError::BadKey);
        }
        let key = RsaPrivateKey::from_pkcs8_pem(pem).map_err(|_| RecipientError::BadKey)?;
        Self::from_key(key)
    }

    /// Loads a PKCS#8 DER private key.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, RecipientError> {
        if der.len() > 8 * 1024 {
            return Err(RecipientError::BadKey);
        }
        let key = RsaPrivateKey::from_pkcs8_der(der).map_err(|_| RecipientError::BadKey)?;
        Self::from_key(key)
    }

    fn from_key(key: RsaPrivateKey) -> Result<Self, RecipientError> {
        let bits = key.n().bits();
        if !(MIN_BITS..=MAX_BITS).contains(&bits) {
            return Err(RecipientError::BadKeySize(bits));
        }
        // The SPKI is computed once here so `spki_der` cannot fail later.
        let spki = key
            .to_public_key()
            .to_public_key_der()
            .map_err(|_| RecipientError::Encoding)?
            .as_bytes()
            .to_vec();
        Ok(RecipientKey { key, spki })
    }

    /// DER SubjectPublicKeyInfo (RFC 5280) of the public key: the attestation document's
    /// `public_key`.
    pub fn spki_der(&self) -> Vec<u8> {
        self.spki.clone()
    }

    /// Modulus size in bytes (the exact length an encrypted key must have).
    pub fn modulus_len(&self) -> usize {
        self.key.size()
    }

    /// RSAES-OAEP (SHA-256, MGF1-SHA-256, empty label) decryption.
    ///
    /// The error is deliberately unit-like: telling apart "bad padding" from other failures is
    /// what padding-oracle attacks on RSA feed on.
    pub(crate) fn oaep_sha256_decrypt(&self, ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>, ()> {
        if ciphertext.len() != self.key.size() {
            return Err(());
        }
        self.key
            .decrypt(Oaep::new::<Sha256>(), ciphertext)
            .map(Zeroizing::new)
            .map_err(|_| ())
    }
}
