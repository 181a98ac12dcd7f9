//! Reproducible AWS Nitro Enclave images without AWS's tool chain at build time.
//!
//! - [`cpio`]: deterministic initramfs archives (newc) and gzip;
//! - [`eif`]: the Enclave Image Format v4, written byte for byte as AWS's `eif_build` writes
//!   it, and read back with strict bounds and CRC checks;
//! - [`pcr`]: the boot measurements PCR0/1/2 that attestation documents carry.
//!
//! Everything works on in-memory buffers; the `sigil-eif` binary adds file handling.

pub mod cpio;
pub mod eif;
pub mod pcr;

pub use cpio::{CpioError, Entry, gzip, write_newc};
pub use eif::{
    Description, Eif, EifBuilder, EifError, Header, ImageMetadata, Section, SectionKind, build_eif,
    default_metadata, parse_eif,
};
pub use pcr::{Pcrs, compute};
