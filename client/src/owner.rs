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
        loop {
            let mut b = Zeroizing::new([0u8; 32]);
            getrandom::fill(&mut b[..])
                .map_err(|e| ClientError::Protocol(format!("no randomness: {e}")))?;
            // Out-of-range scalars (probability ~2^-128) are simply drawn again.
            if let Ok(key) = SigningKey::from_bytes(&b[..]) {
                return Ok(OwnerKey { key });
            }
        }
    }

    pub fn from_bytes(b: &[u8]) -> Result<OwnerKey, ClientError> {
        SigningKey::from_bytes(b)
            .map(|key| OwnerKey { key })
            .map_err(|_| ClientError::Protocol("not a valid secp256k1 secret key".into()))
    }

    /// Reads a key file (64 hex characters, surrounding whitespace ignored).
    pub fn load(path: &str) -> Result<OwnerKey, ClientError> {
        let text = Zeroizing::new(
            std::fs::read_to_string(path)
                .map_err(|e| ClientError::Protocol(format!("owner key {path}: {e}")))?,
        );
        let bytes = Zeroizing::new(hex::decode(text.trim()).map_err(|_| {
            ClientError::Protocol(format!("owner key {path}: not 64 hex characters"))
        })?);
        OwnerKey::from_bytes(&bytes)
    }

    /// Writes the key file, created with mode 0600 and never overwritten.
    pub fn save(&self, path: &str) -> Result<(), ClientError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| ClientError::Protocol(format!("owner key {path}: {e}")))?;
        let hex = Zeroizing::new(hex::encode(self.key.to_bytes()));
        writeln!(f, "{}", hex.as_str())
            .and_then(|_| f.sync_all())
            .map_err(|e| ClientError::Protocol(format!("owner key {path}: {e}")))
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
