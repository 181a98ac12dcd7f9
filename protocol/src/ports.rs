//! vsock ports: where the enclave listens and where the parent (the shim, nitro-cli or the
//! QEMU harness) listens for the enclave.

/// The enclave's HTTP API.
pub const API: u32 = 5000;
/// Nitro's boot heartbeat, owned by nitro-cli (the harness echoes it too).
pub const HEARTBEAT: u32 = 9000;
/// The enclave's log stream, taken by the shim (or the harness).
pub const LOGS: u32 = 9001;

/// The byte the enclave sends and expects back on the heartbeat port.
pub const HEARTBEAT_BYTE: u8 = 0xB7;

/// The parent instance of a Nitro Enclave.
pub const NITRO_PARENT_CID: u32 = 3;
/// The host of the QEMU harness (vhost-device-vsock drops packets to CID 3).
pub const HARNESS_HOST_CID: u32 = 2;

/// The shim's blob store (opaque sealed blobs, compare-and-swap).
pub const BLOBS: u32 = 9002;
/// The shim's egress proxy (TLS to KMS terminates in the enclave, the shim only relays).
pub const EGRESS: u32 = 9003;
/// The shim's credentials endpoint (the instance role's temporary credentials).
pub const CREDENTIALS: u32 = 9004;
