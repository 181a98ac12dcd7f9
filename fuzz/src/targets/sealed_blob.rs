//! Sealed blobs as the enclave reads them back from the parent's blob store (which can
//! return any bytes under any name): the header parser, then `open` under the name, kind,
//! version and epoch the header claims, as a parent replaying or forging blobs would hope.

use sigil_enclave::seal::format::{self, DataKey, TAG_LEN};

/// The fixed data key of the fuzzing seeds (`make-seeds` seals them under it).
pub const DATA_KEY: [u8; 32] = [0x5e; 32];

pub fn run(data: &[u8]) {
    let Ok(h) = format::parse_header(data) else {
        return;
    };
    assert!(h.len + TAG_LEN <= data.len(), "header past the blob");
    let key = DataKey::from_bytes(DATA_KEY);
    if let Ok(plain) = format::open(&key, h.kind, &h.id, Some(h.version), h.epoch, data) {
        assert_eq!(plain.len() + h.len + TAG_LEN, data.len());
    }
}
