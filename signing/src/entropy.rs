//! The randomness the engine consumes comes from the caller (the enclave mixes NSM output with
//! the kernel's RNG); the engine only sanity-checks it.

use std::fmt;
use std::sync::Mutex;

use zeroize::Zeroizing;

use crate::codec::tagged_hash;

/// Why randomness could not be drawn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntropyError(pub String);

impl fmt::Display for EntropyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for EntropyError {}

/// A source of cryptographically secure random bytes. Implemented for any
/// `Fn(&mut [u8]) -> Result<(), EntropyError>`.
pub trait Entropy: Send + Sync {
    /// Fill `out` entirely with fresh random bytes.
    fn fill(&self, out: &mut [u8]) -> Result<(), EntropyError>;
}

impl<F> Entropy for F
where
    F: Fn(&mut [u8]) -> Result<(), EntropyError> + Send + Sync,
{
    fn fill(&self, out: &mut [u8]) -> Result<(), EntropyError> {
        self(out)
    }
}

/// Wraps the caller's source with checks that catch a dead device.
pub(crate) struct CheckedEntropy {
    source: Box<dyn Entropy>,
    /// Fingerprint of the previous draw (not the draw itself, so no secret lingers here).
    last: Mutex<[u8; 32]>,
}

impl CheckedEntropy {
    pub(crate) fn new(source: Box<dyn Entropy>) -> Self {
        Self {
            source,
            last: Mutex::new([0u8; 32]),
        }
    }

    /// 32 fresh bytes. Threat: a failed or stuck RNG (all zeros, or the same block twice) would
    /// make secret keys guessable and, worse, repeat secret nonces across sessions, which leaks
    /// the key. Both patterns are refused here; nonce generation additionally mixes the secret
    /// key, the messages and a per-process unique session id (see `nonce.rs`).
    pub(crate) fn draw32(&self) -> Result<Zeroizing<[u8; 32]>, EntropyError> {
        let mut out = Zeroizing::new([0u8; 32]);
        self.source.fill(out.as_mut())?;
        if out.iter().all(|&b| b == 0) {
            return Err(EntropyError("entropy source returned all zeros".into()));
        }
        let fingerprint = tagged_hash("sigil/entropy-fingerprint", &[out.as_ref()]);
        let mut last = self
            .last
            .lock()
            .map_err(|_| EntropyError("entropy state poisoned".into()))?;
        if *last == fingerprint {
            return Err(EntropyError("entropy source repeated its output".into()));
        }
        *last = fingerprint;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_zero_and_repeated_output() {
        let zero = CheckedEntropy::new(Box::new(|out: &mut [u8]| {
            out.fill(0);
            Ok(())
        }));
        assert!(zero.draw32().is_err());

        let stuck = CheckedEntropy::new(Box::new(|out: &mut [u8]| {
            out.fill(7);
            Ok(())
        }));
        assert!(stuck.draw32().is_ok());
        assert!(stuck.draw32().is_err());

        let failing = CheckedEntropy::new(Box::new(|_: &mut [u8]| Err(EntropyError("nsm".into()))));
        assert_eq!(failing.draw32().unwrap_err(), EntropyError("nsm".into()));
    }
}
