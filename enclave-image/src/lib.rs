//! sigil's enclave: the binary that is `/init` of the measured image (PID 1 on Nitro, and in
//! the QEMU harness) and that also runs as an ordinary process in local mode.
//!
//! - addresses and sockets (vsock, TCP, Unix) come from `sigil-sys`;
//! - [`nsm`]: the Nitro Secure Module, real or simulated;
//! - [`http`]: hyper driven by a per-connection minimal executor, with every limit enforced;
//! - [`api`]: the endpoints;
//! - [`init`]: the PID-1 runtime (mounts, console, heartbeat, reaping, power-off);
//! - [`measured_config`]: the deployment configuration from the measured ramdisk;
//! - [`parent`]: clients for the parent's blob store, egress proxy and credentials;
//! - [`seal`] and [`sealing`]: sealed state under a data key only KMS releases to this image;
//! - [`vault`]: owner-signed secrets kept in the sealed state;
//! - [`signing_api`]: MuSig2 keys, aggregate keys and signing sessions.

pub mod api;
pub mod config;
pub mod http;
pub mod init;
pub mod log;
pub mod measured_config;
pub mod nsm;
pub mod parent;
pub mod prove_api;
pub mod prover;
pub mod seal;
pub mod sealing;
pub mod service;
pub mod signing_api;
pub mod vault;
