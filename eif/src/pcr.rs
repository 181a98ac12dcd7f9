//! Nitro boot measurements (PCR0, PCR1, PCR2) of an enclave image.
//!
//! Each PCR starts as 48 zero bytes and is extended once with the SHA-384 of the measured
//! bytes: `PCR = SHA384(0^48 || SHA384(measured))`.
//! - PCR0: kernel, cmdline and every ramdisk, in image order;
//! - PCR1: kernel, cmdline and the first ramdisk (the bootstrap part);
//! - PCR2: every ramdisk after the first (the application part).
//!
//! The metadata and signature sections are not measured here (PCR8, over the signing
//! certificate, is not computed by this crate).

use ring::digest::{Context, SHA384};
use serde_json::{Map, Value};

/// Length of a SHA-384 PCR value.
pub const PCR_LEN: usize = 48;

/// What nitro-cli prints as `HashAlgorithm` (the `Debug` form of its SHA-384 hasher).
pub const HASH_ALGORITHM: &str = "Sha384 { ... }";

/// The three boot PCRs of an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pcrs {
    pub pcr0: [u8; PCR_LEN],
    pub pcr1: [u8; PCR_LEN],
    pub pcr2: [u8; PCR_LEN],
}

impl Pcrs {
    /// `{"HashAlgorithm": ..., "PCR0": hex, "PCR1": hex, "PCR2": hex}`, nitro-cli's names.
    pub fn to_measurements_json(&self) -> Value {
        // Inserted in sorted order so the output is the same with or without serde_json's
        // `preserve_order` feature (another crate may switch it on).
        let mut m = Map::new();
        m.insert("HashAlgorithm".into(), Value::from(HASH_ALGORITHM));
        m.insert("PCR0".into(), Value::from(hex::encode(self.pcr0)));
        m.insert("PCR1".into(), Value::from(hex::encode(self.pcr1)));
        m.insert("PCR2".into(), Value::from(hex::encode(self.pcr2)));
        Value::Object(m)
    }
}

/// Incremental measurement of image sections, fed in image order.
///
/// Streaming keeps whole-image concatenations out of memory and lets the reader measure
/// sections in the order they appear in the file, as AWS's reader does.
pub struct Measurer {
    image: Context,
    bootstrap: Context,
    app: Context,
    ramdisks: usize,
}

impl Default for Measurer {
    fn default() -> Self {
        Self::new()
    }
}

impl Measurer {
    pub fn new() -> Self {
        Measurer {
            image: Context::new(&SHA384),
            bootstrap: Context::new(&SHA384),
            app: Context::new(&SHA384),
            ramdisks: 0,
        }
    }

    /// A kernel or cmdline section: measured into PCR0 and PCR1.
    pub fn boot_section(&mut self, data: &[u8]) {
        self.image.update(data);
        self.bootstrap.update(data);
    }

    /// A ramdisk section: the first goes to PCR1, the rest to PCR2; all to PCR0.
    pub fn ramdisk(&mut self, data: &[u8]) {
        self.image.update(data);
        if self.ramdisks == 0 {
            self.bootstrap.update(data);
        } else {
            self.app.update(data);
        }
        self.ramdisks += 1;
    }

    pub fn finish(self) -> Pcrs {
        Pcrs {
            pcr0: extend_from_zero(self.image),
            pcr1: extend_from_zero(self.bootstrap),
            pcr2: extend_from_zero(self.app),
        }
    }
}

/// One TPM-style extend of an all-zero register with the digest of `ctx`.
fn extend_from_zero(ctx: Context) -> [u8; PCR_LEN] {
    let inner = ctx.finish();
    let mut outer = Context::new(&SHA384);
    outer.update(&[0u8; PCR_LEN]);
    outer.update(inner.as_ref());
    let mut out = [0u8; PCR_LEN];
    out.copy_from_slice(outer.finish().as_ref());
    out
}

/// PCRs of an image made of `kernel`, `cmdline` and `ramdisks` (in that order).
pub fn compute(kernel: &[u8], cmdline: &[u8], ramdisks: &[&[u8]]) -> Pcrs {
    let mut m = Measurer::new();
    m.boot_section(kernel);
    m.boot_section(cmdline);
    for r in ramdisks {
        m.ramdisk(r);
    }
    m.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_app_pcr2_is_extend_of_empty_hash() {
        // SHA384(48 zero bytes || SHA384("")): the "no application ramdisk" PCR2.
        let p = compute(b"k", b"c", &[b"r"]);
        assert_eq!(
            hex::encode(p.pcr2),
            "21b9efbc184807662e966d34f390821309eeac6802309798826296bf3e8bec7c10edb30948c90ba67310f7b964fc500a"
        );
        assert_eq!(p.pcr0, p.pcr1);
    }

    #[test]
    fn measurements_json_shape() {
        let v = compute(b"", b"", &[]).to_measurements_json();
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["HashAlgorithm", "PCR0", "PCR1", "PCR2"]);
        assert_eq!(v["HashAlgorithm"], HASH_ALGORITHM);
        assert_eq!(v["PCR0"].as_str().unwrap().len(), 96);
    }
}
