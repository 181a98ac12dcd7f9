//! sigil-shim: the parent-instance side of a sigil enclave. It forwards bytes (TCP <-> vsock),
//! stores opaque sealed blobs, proxies allow-listed egress and prints the enclave's log lines.
//! It is untrusted by design and never parses application payloads.

pub mod blobs;
pub mod config;
pub mod creds;
pub mod crs;
pub mod egress;
pub mod log;
pub mod logsink;
pub mod relay;
pub mod store;
pub mod wire;
