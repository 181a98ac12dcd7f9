//! sigil's enclave: the binary that is `/init` of the measured image (PID 1 on Nitro, and in
//! the QEMU harness) and that also runs as an ordinary process in local mode.
//!
//! Layers, from the outside in:
//!
//! - [`boot`]: the composition root shared by local mode and PID 1, the command line
//!   ([`boot::args`]) and the measured configuration ([`boot::config`]);
//! - [`init`]: the PID-1 runtime (mounts, console, heartbeat, reaping, power-off);
//! - [`http`]: hyper driven by a per-connection minimal executor, with every limit enforced;
//! - [`api`]: one module per endpoint group (health, attestation and ping in [`api`] itself,
//!   [`api::vault`], [`api::musig2`], [`api::prove`]);
//! - the services the handlers use: [`seal`] (the sealed-blob format, the data key, the
//!   store and [`seal::service`]), [`parent`] (the parent's egress proxy and credentials),
//!   [`prover`] (the CRS and the proving jobs), [`nsm`] (the Nitro Secure Module, real or
//!   simulated);
//! - [`log`]: the bounded log. Addresses and sockets (vsock, TCP, Unix) come from `sigil-sys`.

pub mod api;
pub mod boot;
pub mod http;
pub mod init;
pub mod log;
pub mod nsm;
pub mod parent;
pub mod prover;
pub mod seal;
