//! What the sigil enclave, the parent-instance shim and the client share: the encrypted
//! request/response format ([`encap`]), the HTTP API's JSON shapes ([`api`]), the image
//! description the enclave puts in its attestation `user_data` ([`user_data`]), and the
//! reproducible-build PCR manifest ([`manifest`]).
//!
//! Everything here parses untrusted bytes, so every parser bounds its input before doing work
//! and reports errors instead of panicking.

#![forbid(unsafe_code)]

pub mod api;
pub mod encap;
pub mod manifest;
pub mod ports;
pub mod user_data;
