//! What the sigil enclave, the parent-instance shim and the client share: the encrypted
//! request/response format ([`encap`]), the HTTP API's endpoint table ([`endpoint`]), error
//! registry ([`error`]) and JSON shapes ([`api`] and the modules per service), the image
//! description the enclave puts in its attestation `user_data` ([`user_data`]), and the
//! reproducible-build PCR manifest ([`manifest`]), and every enclave <-> parent format
//! ([`parent`]: blobs, credentials, egress, logs) beside the vsock [`ports`].
//!
//! Everything here parses untrusted bytes, so every parser bounds its input before doing work
//! and reports errors instead of panicking.

#![forbid(unsafe_code)]

#[cfg(feature = "app")]
pub mod api;
#[cfg(feature = "app")]
pub mod encap;
#[cfg(feature = "app")]
pub mod endpoint;
#[cfg(feature = "app")]
pub mod error;
#[cfg(feature = "app")]
pub mod manifest;
#[cfg(feature = "app")]
pub mod musig2;
pub mod parent;
pub mod ports;
#[cfg(feature = "app")]
pub mod prove;
#[cfg(feature = "app")]
pub mod user_data;
#[cfg(feature = "app")]
pub mod vault;
#[cfg(feature = "app")]
pub mod wire;

/// The blob-store frames under their first path, kept for the code that already names it.
pub use parent::blobs as blob_wire;
