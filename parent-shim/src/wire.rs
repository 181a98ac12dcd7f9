//! Enclave <-> shim blob frames. The definition (frames, encode/decode, limits) and its tests
//! live in `sigil_protocol::parent::blobs`, shared with the enclave's client so both sides
//! speak exactly one format; this module re-exports it under the shim's historical path.

pub use sigil_protocol::parent::blobs::*;
