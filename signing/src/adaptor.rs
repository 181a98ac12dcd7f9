//! Completing adaptor signatures (done by whoever knows the adaptor secret, usually outside the
//! enclave) and recovering the secret from a completed signature.

use musig2::secp::MaybeScalar;
use musig2::{AdaptorSignature, BinaryEncoding, LiftedSignature};
use zeroize::Zeroizing;

use crate::approval::verify_bip340;
use crate::error::Error;

/// Adapts a 65-byte adaptor pre-signature (`R[33] || s[32]`) with the adaptor secret `t` into
/// a BIP-340 signature, and returns it only if it verifies under `output_key` for `message`.
pub fn complete_adaptor_signature(
    presignature: &[u8; 65],
    adaptor_secret: &Zeroizing<[u8; 32]>,
    output_key: &[u8; 32],
    message: &[u8],
) -> Result<[u8; 64], Error> {
    let pre = AdaptorSignature::from_bytes(presignature).map_err(|_| Error::InvalidSignature)?;
    let t = MaybeScalar::try_from(**adaptor_secret).map_err(|_| Error::InvalidSignature)?;
    let sig: LiftedSignature = pre.adapt(t).ok_or(Error::InvalidSignature)?;
    let bytes = sig.to_bytes();
    if !verify_bip340(output_key, message, &bytes) {
        return Err(Error::InvalidSignature);
    }
    Ok(bytes)
}

/// Given the pre-signature and the completed signature, recovers the adaptor secret (the point
/// of an adaptor signature: publishing the final signature reveals `t`).
pub fn reveal_adaptor_secret(
    presignature: &[u8; 65],
    signature: &[u8; 64],
) -> Option<Zeroizing<[u8; 32]>> {
    let pre = AdaptorSignature::from_bytes(presignature).ok()?;
    let sig = LiftedSignature::from_bytes(signature).ok()?;
    let t: MaybeScalar = pre.reveal_secret(&sig)?;
    Some(Zeroizing::new(t.serialize()))
}
