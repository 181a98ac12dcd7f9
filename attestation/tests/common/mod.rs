//! Shared helpers for the integration tests: vector loading, byte surgery, a tiny CBOR writer.
#![allow(dead_code)]

use std::time::{SystemTime, UNIX_EPOCH};

pub const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/vectors/nitro");

/// One real document from INDEX.json.
pub struct RealDoc {
    pub file: String,
    pub cbor: Vec<u8>,
    pub b64: Vec<u8>,
    pub module_id: String,
    pub timestamp_ms: u64,
    pub at: u64,
    pub pcr0: String,
    pub nonce_len: Option<usize>,
}

pub fn real_docs() -> Vec<RealDoc> {
    let index = std::fs::read_to_string(format!("{VECTORS}/INDEX.json"))
        .expect("INDEX.json (shared/ must be checked out beside the repo)");
    let index: serde_json::Value = serde_json::from_str(&index).unwrap();
    let docs: Vec<RealDoc> = index
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let file = e["file"].as_str().unwrap().to_string();
            let cbor = std::fs::read(format!("{VECTORS}/docs/{file}")).unwrap();
            let b64_name = file.replace(".cbor", ".b64");
            let b64 = std::fs::read(format!("{VECTORS}/docs/{b64_name}")).unwrap();
            RealDoc {
                module_id: e["module_id"].as_str().unwrap().to_string(),
                timestamp_ms: e["timestamp_ms"].as_u64().unwrap(),
                at: e["verify_at_unix_seconds"].as_u64().unwrap(),
                pcr0: e["pcr0"].as_str().unwrap().to_string(),
                nonce_len: e["nonce_len"].as_u64().map(|n| n as usize),
                file,
                cbor,
                b64,
            }
        })
        .collect();
    assert_eq!(docs.len(), 2, "expected the two documented real vectors");
    docs
}

pub fn real_doc(prefix: &str) -> RealDoc {
    real_docs()
        .into_iter()
        .find(|d| d.file.starts_with(prefix))
        .unwrap()
}

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Offset of the only occurrence of `needle` in `hay`.
pub fn find_unique(hay: &[u8], needle: &[u8]) -> usize {
    let hits: Vec<usize> = hay
        .windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(hits.len(), 1, "needle must occur exactly once");
    hits[0]
}

/// Offset of the first occurrence of `needle` in `hay`.
pub fn find_first(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len()).position(|w| w == needle).unwrap()
}

pub fn flipped(bytes: &[u8], at: usize, mask: u8) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out[at] ^= mask;
    out
}

// ---- a tiny CBOR writer for building (possibly invalid) payloads ----

pub fn head(major: u8, n: u64) -> Vec<u8> {
    let m = major << 5;
    if n < 24 {
        vec![m | n as u8]
    } else if n < 256 {
        vec![m | 24, n as u8]
    } else if n < 65536 {
        let mut v = vec![m | 25];
        v.extend_from_slice(&(n as u16).to_be_bytes());
        v
    } else if n < (1 << 32) {
        let mut v = vec![m | 26];
        v.extend_from_slice(&(n as u32).to_be_bytes());
        v
    } else {
        let mut v = vec![m | 27];
        v.extend_from_slice(&n.to_be_bytes());
        v
    }
}

pub fn uint(n: u64) -> Vec<u8> {
    head(0, n)
}

pub fn nint(n: u64) -> Vec<u8> {
    head(1, n - 1)
}

pub fn bstr(b: &[u8]) -> Vec<u8> {
    let mut v = head(2, b.len() as u64);
    v.extend_from_slice(b);
    v
}

pub fn tstr(s: &str) -> Vec<u8> {
    let mut v = head(3, s.len() as u64);
    v.extend_from_slice(s.as_bytes());
    v
}

pub fn null() -> Vec<u8> {
    vec![0xf6]
}

pub fn array(items: &[Vec<u8>], indefinite: bool) -> Vec<u8> {
    let mut v = if indefinite {
        vec![0x9f]
    } else {
        head(4, items.len() as u64)
    };
    for i in items {
        v.extend_from_slice(i);
    }
    if indefinite {
        v.push(0xff);
    }
    v
}

pub fn map(entries: &[(Vec<u8>, Vec<u8>)], indefinite: bool) -> Vec<u8> {
    let mut v = if indefinite {
        vec![0xbf]
    } else {
        head(5, entries.len() as u64)
    };
    for (k, val) in entries {
        v.extend_from_slice(k);
        v.extend_from_slice(val);
    }
    if indefinite {
        v.push(0xff);
    }
    v
}

/// A document payload as (text key, encoded value) entries, so tests can drop, duplicate,
/// add or re-encode entries freely.
pub type Entries = Vec<(String, Vec<u8>)>;

pub fn entries_of(doc: &sigil_attestation::AttestationDocument) -> Entries {
    let pcrs: Vec<(Vec<u8>, Vec<u8>)> = doc
        .pcrs
        .iter()
        .map(|(i, v)| (uint(u64::from(*i)), bstr(v)))
        .collect();
    let opt = |o: &Option<Vec<u8>>| o.as_deref().map_or_else(null, bstr);
    vec![
        ("module_id".into(), tstr(&doc.module_id)),
        ("digest".into(), tstr(&doc.digest)),
        ("timestamp".into(), uint(doc.timestamp_ms)),
        ("pcrs".into(), map(&pcrs, false)),
        ("certificate".into(), bstr(&doc.certificate)),
        (
            "cabundle".into(),
            array(
                &doc.cabundle.iter().map(|c| bstr(c)).collect::<Vec<_>>(),
                false,
            ),
        ),
        ("public_key".into(), opt(&doc.public_key)),
        ("user_data".into(), opt(&doc.user_data)),
        ("nonce".into(), opt(&doc.nonce)),
    ]
}

pub fn encode_entries(entries: &Entries, indefinite: bool) -> Vec<u8> {
    let e: Vec<(Vec<u8>, Vec<u8>)> = entries.iter().map(|(k, v)| (tstr(k), v.clone())).collect();
    map(&e, indefinite)
}

pub fn set(entries: &mut Entries, key: &str, value: Vec<u8>) {
    let slot = entries.iter_mut().find(|(k, _)| k == key).unwrap();
    slot.1 = value;
}

pub fn remove(entries: &mut Entries, key: &str) {
    entries.retain(|(k, _)| k != key);
}

/// Re-encodes the document's `pcrs` map and `cabundle` array with indefinite lengths.
pub fn indefinite_pcrs_and_cabundle(
    entries: &mut Entries,
    doc: &sigil_attestation::AttestationDocument,
) {
    let pcrs: Vec<_> = doc
        .pcrs
        .iter()
        .map(|(i, v)| (uint(u64::from(*i)), bstr(v)))
        .collect();
    set(entries, "pcrs", map(&pcrs, true));
    let certs: Vec<_> = doc.cabundle.iter().map(|c| bstr(c)).collect();
    set(entries, "cabundle", array(&certs, true));
}
