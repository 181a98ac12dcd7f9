//! The enclave's long-term node key: its identity among peer enclaves. It is made the first
//! time this state is opened without one, sealed like every secret (`Kind::NodeKey`), and
//! never rewritten; its x-only public key (the node id) goes into every attestation
//! document's `user_data`, beside the per-boot key, once the state is open.
//!
//! What the parent can do: withhold or delete the record. The enclave then makes a new
//! identity, which peers see as a new node: a denial of service, as withholding the state
//! is. It cannot make the enclave take a key it knows (the record is sealed), nor swap in
//! another node's key (another state's data key does not open it).

use k256::schnorr::SigningKey;
use sigil_sys::Stream;
use zeroize::Zeroizing;

use super::{Kind, SealedStore, SealedStoreError, StoreError};
use crate::nsm::Nsm;

/// The record's id (one node key per state).
const ID: &str = "node";

/// The node id: loads the sealed node key, or makes and seals one.
pub fn identity(store: &mut SealedStore<Stream>, nsm: &dyn Nsm) -> Result<[u8; 32], String> {
    match store.get_sealed(Kind::NodeKey, ID) {
        Ok((_, secret)) => public_of(&secret),
        Err(SealedStoreError::Store(StoreError::NotFound)) => {
            let seed = Zeroizing::new(
                nsm.random(32)
                    .map_err(|e| format!("randomness for the node key: {e}"))?,
            );
            let id = public_of(&seed)?;
            store
                .put_sealed(Kind::NodeKey, ID, &seed)
                .map_err(|e| format!("sealing the node key: {e}"))?;
            Ok(id)
        }
        Err(e) => Err(format!("reading the node key: {e}")),
    }
}

/// The x-only public key of a 32-byte secret.
fn public_of(secret: &[u8]) -> Result<[u8; 32], String> {
    let key = SigningKey::from_bytes(secret).map_err(|_| "the node key is not a valid secret")?;
    Ok(key.verifying_key().to_bytes().into())
}
