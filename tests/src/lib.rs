//! sigil's end-to-end test support: the QEMU harness that boots an EIF's own kernel, command
//! line and initramfs (the very bytes that are measured), gives the guest vsock through
//! vhost-device-vsock, answers the boot heartbeat, collects the enclave's logs and exposes its
//! API on a local TCP port; [`shim`], the real parent shim for tests of sealed state; and
//! [`deployment`], the development KMS, the shim and the enclave together in local mode.

pub mod deployment;
pub mod harness;
pub mod shim;
