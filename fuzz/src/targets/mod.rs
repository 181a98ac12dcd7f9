//! One module per target; each exposes `run(&[u8])`.

pub mod api_json;
pub mod attestation;
pub mod eif;
pub mod encap;
pub mod http_head;
pub mod kms;
pub mod parent_frames;
pub mod sealed_blob;
