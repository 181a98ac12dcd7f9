//! Sealed state: the sealed-blob format ([`format`](self::format)) and the client for the parent shim's
//! blob store that reads and writes it ([`store`]).
//!
//! Everything the enclave persists goes through here: it is encrypted and authenticated under
//! a data key that only the attested enclave holds, and stored by the untrusted parent. See
//! [`format`](self::format) for the header layout and for what a parent that replays old blobs can and
//! cannot achieve.

pub mod format;
pub mod keyring;
pub mod node;
pub mod quorum;
pub mod service;
pub mod store;

pub use format::{DataKey, Kind, SealError, open, seal};
pub use service::{Sealing, SealingError};
pub use store::{BlobClient, SealedStore, SealedStoreError, StoreError};
