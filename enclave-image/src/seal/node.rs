//! The enclave's long-term node key: its identity among peer enclaves. Its x-only public key
//! (the node id) goes into every attestation document's `user_data`, beside the per-boot key,
//! once the sealed state is open.
//!
//! The key is derived from the state's data key (HKDF, its own label), not stored: the same
//! state always has the same node, and there is no record a parent could withhold, swap or
//! roll back apart from the state itself (a stored key could be hidden to make the enclave
//! mint a second identity over the same state). Two enclaves given the same state are the same
//! node, which is what running one state twice means; `kms.first_boot` keeps a parent from
//! making a second state of one image.

use k256::schnorr::SigningKey;

use super::DataKey;

/// The HKDF label of the node key.
const LABEL: &[u8] = b"node key";

/// The node id of the state sealed under `key`.
pub fn identity(key: &DataKey) -> Result<[u8; 32], String> {
    let secret = key.derive_secret(LABEL);
    // Zero or at least the group order: chance 2^-128; refused rather than reduced.
    let signing = SigningKey::from_bytes(secret.as_ref())
        .map_err(|_| "the derived node key is not a valid secret")?;
    Ok(signing.verifying_key().to_bytes().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_state_one_node() {
        let a = DataKey::from_bytes([1; 32]);
        assert_eq!(identity(&a).unwrap(), identity(&a).unwrap());
        assert_ne!(
            identity(&a).unwrap(),
            identity(&DataKey::from_bytes([2; 32])).unwrap()
        );
        // Not the key any blob is sealed under: a derived secret has its own label.
        assert_ne!(
            a.derive_secret(LABEL).as_ref(),
            a.derive_secret(b"another label").as_ref()
        );
    }
}
