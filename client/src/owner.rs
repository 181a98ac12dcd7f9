//! An owner key: the secp256k1 secret whose BIP-340 signatures authorize vault operations
//! (and, later, signing sessions). Kept in a file of 64 hex characters, readable by its user
//! only.

use std::time::{SystemTime, UNIX_EPOCH};

use k256::schnorr::SigningKey;
use sigil_protocol::wire::{Hex, Signature};
use zeroize::Zeroizing;

use crate::ClientError;

/// How long a request's signature stays valid (the enclave accepts up to 600 s).
pub const VALIDITY_SECS: u64 = 120;

pub struct OwnerKey {
    key: SigningKey,
}

impl OwnerKey {
    pub fn generate() -> Result<OwnerKey, ClientError> {
        random_secret(|b| SigningKey::from_bytes(b).ok().map(|key| OwnerKey { key }))
    }

    pub fn from_bytes(b: &[u8]) -> Result<OwnerKey, ClientError> {
        SigningKey::from_bytes(b)
            .map(|key| OwnerKey { key })
            .map_err(|_| ClientError::Protocol("not a valid secp256k1 secret key".into()))
    }

    /// Reads a key file (64 hex characters, surrounding whitespace ignored).
    pub fn load(path: &str) -> Result<OwnerKey, ClientError> {
        OwnerKey::from_bytes(&read_secret_file(path, "owner key")?)
    }

    /// Writes the key file, created with mode 0600 and never overwritten.
    pub fn save(&self, path: &str) -> Result<(), ClientError> {
        write_secret_file(path, "owner key", &self.key.to_bytes())
    }

    /// The x-only public key the enclave records as owner.
    pub fn x_only(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes().into()
    }

    pub(crate) fn not_after(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
            + VALIDITY_SECS
    }

    /// The owner's signature of a request's `digest` for the attested `enclave`: the digest
    /// bound to the enclave's per-boot key (`wire::owner_message`), so the signature is good
    /// at that boot of that enclave only.
    pub fn sign_for(
        &self,
        enclave: &crate::AttestedEnclave,
        digest: &[u8; 32],
    ) -> Result<Signature, ClientError> {
        self.sign(&sigil_protocol::wire::owner_message(
            &enclave.public_key,
            digest,
        ))
    }

    /// BIP-340 signature over a 32-byte digest, with fresh auxiliary randomness.
    pub fn sign(&self, digest: &[u8; 32]) -> Result<Signature, ClientError> {
        let mut aux = [0u8; 32];
        getrandom::fill(&mut aux)
            .map_err(|e| ClientError::Protocol(format!("no randomness: {e}")))?;
        let sig = self
            .key
            .sign_raw(digest, &aux)
            .map_err(|e| ClientError::Protocol(format!("signing: {e}")))?;
        Ok(Hex(sig.to_bytes()))
    }
}

/// Draws 32 random bytes until `make` accepts them: out-of-range scalars (probability
/// ~2^-128) are simply drawn again.
pub(crate) fn random_secret<T>(make: impl Fn(&[u8]) -> Option<T>) -> Result<T, ClientError> {
    loop {
        let mut b = Zeroizing::new([0u8; 32]);
        getrandom::fill(&mut b[..])
            .map_err(|e| ClientError::Protocol(format!("no randomness: {e}")))?;
        if let Some(key) = make(&b[..]) {
            return Ok(key);
        }
    }
}

/// Reads a secret key file (64 hex characters, surrounding whitespace ignored); errors name
/// the file as `{what} {path}`.
pub(crate) fn read_secret_file(path: &str, what: &str) -> Result<Zeroizing<Vec<u8>>, ClientError> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .map_err(|e| ClientError::Protocol(format!("{what} {path}: {e}")))?,
    );
    hex::decode(text.trim())
        .map(Zeroizing::new)
        .map_err(|_| ClientError::Protocol(format!("{what} {path}: not 64 hex characters")))
}

/// Writes a secret key file as hex, created with mode 0600 and never overwritten.
pub(crate) fn write_secret_file(path: &str, what: &str, secret: &[u8]) -> Result<(), ClientError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let fail = |e: std::io::Error| ClientError::Protocol(format!("{what} {path}: {e}"));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(fail)?;
    let hex = Zeroizing::new(hex::encode(secret));
    writeln!(f, "{}", hex.as_str())
        .and_then(|_| f.sync_all())
        .map_err(fail)
}
