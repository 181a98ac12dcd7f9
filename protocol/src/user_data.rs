//! The CBOR map the enclave puts in its attestation document's `user_data`: which protocol
//! and build it runs, in which mode, with which capabilities.
//!
//! ```text
//! { ? "bb": { "sha256": text, "version": text }, ? "bbs": [* served-bb],
//!   ? "log": bytes .size 32, "mode": text, ? "node": bytes .size 32, "sigil": text,
//!   "protocol": uint, "capabilities": [* text] }
//! served-bb = { "name": text, "sha256": text, ? "runtime": text, "version": text }
//! ```
//!
//! `bb` is the default prover (what a request that names no version gets; older clients read
//! only this). `bbs` lists every bb version the image serves, the default first: `name` is what
//! a proving request gives as `bb_version`, `version` what that bb's `--version` prints,
//! `sha256` the binary's hash and `runtime`, for a bb that brings its own C/C++ runtime, the
//! sha256 of the lines `"<file> <sha256 hex>\n"` of that runtime's files sorted by name (each
//! file's hash is listed in `pcr-manifest.json`; PCR1 measures the files themselves).
//!
//! `log` is the head of the registry's hash-chained change log, when the enclave runs a
//! registry (see `crate::registry`): a client that checks the log it fetched against the head a
//! fresh document carries knows it saw every change.
//!
//! `node` is the enclave's long-term node identity (a BIP-340 x-only public key), present once
//! its sealed state is open: one NSM signature then binds the image (the PCRs), the node and
//! the per-boot key (the document's `public_key`).
//!
//! Encoded with definite lengths and keys in RFC 8949 §4.2.1 (deterministic) order. Decoding
//! accepts the keys in any order, ignores unknown keys (forward compatibility) and rejects
//! missing or repeated known keys. The document is signed, but it is still parsed by clients
//! before they decide to trust it, so every size is bounded.

use core::convert::Infallible;
use core::fmt;

use minicbor::{Decoder, Encoder, data::Type};

/// Version of the sigil wire protocol (the `encap` format and the API shapes).
pub const PROTOCOL_VERSION: u32 = 1;

/// Largest encoded map accepted (the NSM field is small; bounds parser work).
pub const MAX_USER_DATA_LEN: usize = 1024;
/// Longest text string (key, version, mode, capability), in bytes.
pub const MAX_STRING_LEN: usize = 64;
/// Most capabilities accepted.
pub const MAX_CAPABILITIES: usize = 32;
/// Most map entries accepted, known and unknown together.
pub const MAX_ENTRIES: usize = 16;

const KEY_PROTOCOL: &str = "protocol";
const KEY_SIGIL: &str = "sigil";
const KEY_MODE: &str = "mode";
const KEY_CAPABILITIES: &str = "capabilities";
const KEY_BB: &str = "bb";
const KEY_NODE: &str = "node";
const KEY_LOG: &str = "log";
const KEY_BB_VERSION: &str = "version";
const KEY_BB_SHA256: &str = "sha256";
const KEY_BBS: &str = "bbs";
const KEY_BB_NAME: &str = "name";
const KEY_BB_RUNTIME: &str = "runtime";

/// Most bb versions listed in `bbs`.
pub const MAX_BB_SERVED: usize = 8;

/// What the enclave image says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    /// [`PROTOCOL_VERSION`] of the enclave. Decoding does not check it; the verifier decides.
    pub protocol: u32,
    /// sigil release, e.g. "0.1.0" (CBOR key "sigil").
    pub sigil_version: String,
    /// "nitro", "harness" or "local".
    pub mode: String,
    pub capabilities: Vec<String>,
    /// The prover the image runs, when it has one (the same binary PCR0/PCR1 measure).
    pub bb: Option<BbInfo>,
    /// Every bb version the image serves, the default first (empty: only `bb`, as before).
    pub bb_served: Vec<ServedBb>,
    /// The node identity (x-only public key), once the enclave's sealed state is open.
    pub node: Option<[u8; 32]>,
    /// The registry's log head, when the enclave runs a registry with its state open.
    pub registry_log: Option<[u8; 32]>,
}

/// `bb --version` and the sha256 (hex) of the bb binary the enclave runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BbInfo {
    pub version: String,
    pub sha256: String,
}

/// One bb version the image serves (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedBb {
    /// The name a proving request uses (`ProveRequest::bb_version`), e.g. "4.1.2".
    pub name: String,
    /// What its `bb --version` prints.
    pub version: String,
    /// sha256 (hex) of the binary.
    pub sha256: String,
    /// sha256 (hex) of its own runtime's file list, when it brings one.
    pub runtime: Option<String>,
}

/// Why `user_data` was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserDataError {
    TooLarge(usize),
    Malformed(String),
    MissingKey(&'static str),
    DuplicateKey(&'static str),
    StringTooLong,
    TooManyCapabilities,
    TooManyBbs,
    TooManyEntries,
    TrailingBytes,
}

impl fmt::Display for UserDataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UserDataError::TooLarge(n) => {
                write!(
                    f,
                    "user_data too large: {n} bytes (limit {MAX_USER_DATA_LEN})"
                )
            }
            UserDataError::Malformed(m) => write!(f, "user_data malformed: {m}"),
            UserDataError::MissingKey(k) => write!(f, "user_data missing key {k:?}"),
            UserDataError::DuplicateKey(k) => write!(f, "user_data repeats key {k:?}"),
            UserDataError::StringTooLong => {
                write!(f, "user_data string longer than {MAX_STRING_LEN} bytes")
            }
            UserDataError::TooManyCapabilities => {
                write!(f, "user_data has more than {MAX_CAPABILITIES} capabilities")
            }
            UserDataError::TooManyBbs => {
                write!(f, "user_data lists more than {MAX_BB_SERVED} bb versions")
            }
            UserDataError::TooManyEntries => {
                write!(f, "user_data map has more than {MAX_ENTRIES} entries")
            }
            UserDataError::TrailingBytes => f.write_str("user_data has bytes after the map"),
        }
    }
}

impl std::error::Error for UserDataError {}

impl From<minicbor::decode::Error> for UserDataError {
    fn from(e: minicbor::decode::Error) -> Self {
        UserDataError::Malformed(e.to_string())
    }
}

impl ImageInfo {
    /// Checks the bounds [`ImageInfo::from_cbor`] enforces, so the enclave can refuse to
    /// publish something clients would reject.
    pub fn validate(&self) -> Result<(), UserDataError> {
        if self.capabilities.len() > MAX_CAPABILITIES {
            return Err(UserDataError::TooManyCapabilities);
        }
        if self.bb_served.len() > MAX_BB_SERVED {
            return Err(UserDataError::TooManyBbs);
        }
        let strings = [&self.sigil_version, &self.mode]
            .into_iter()
            .chain(self.capabilities.iter())
            .chain(self.bb.iter().flat_map(|b| [&b.version, &b.sha256]))
            .chain(self.bb_served.iter().flat_map(|b| {
                [&b.name, &b.version, &b.sha256]
                    .into_iter()
                    .chain(&b.runtime)
            }));
        for s in strings {
            if s.len() > MAX_STRING_LEN {
                return Err(UserDataError::StringTooLong);
            }
        }
        let len = self.to_cbor().len();
        if len > MAX_USER_DATA_LEN {
            return Err(UserDataError::TooLarge(len));
        }
        Ok(())
    }

    /// Deterministic CBOR encoding. Writing to a Vec cannot fail; if minicbor ever reported an
    /// error anyway, the result is empty, which [`ImageInfo::from_cbor`] rejects (fail closed).
    pub fn to_cbor(&self) -> Vec<u8> {
        let mut e = Encoder::new(Vec::new());
        match self.encode(&mut e) {
            Ok(()) => e.into_writer(),
            Err(_) => Vec::new(),
        }
    }

    fn encode(&self, e: &mut Encoder<Vec<u8>>) -> Result<(), minicbor::encode::Error<Infallible>> {
        // RFC 8949 §4.2.1 order: shorter encoded key first ("bb" < "bbs" < "log" < "mode" <
        // "node" < "sigil" < "protocol" < "capabilities"; inside bb, "sha256" < "version";
        // inside a bbs entry, "name" < "sha256" < "runtime" < "version").
        e.map(
            4 + u64::from(self.bb.is_some())
                + u64::from(!self.bb_served.is_empty())
                + u64::from(self.node.is_some())
                + u64::from(self.registry_log.is_some()),
        )?;
        if let Some(bb) = &self.bb {
            e.str(KEY_BB)?.map(2)?;
            e.str(KEY_BB_SHA256)?.str(&bb.sha256)?;
            e.str(KEY_BB_VERSION)?.str(&bb.version)?;
        }
        if !self.bb_served.is_empty() {
            e.str(KEY_BBS)?.array(self.bb_served.len() as u64)?;
            for b in &self.bb_served {
                e.map(3 + u64::from(b.runtime.is_some()))?;
                e.str(KEY_BB_NAME)?.str(&b.name)?;
                e.str(KEY_BB_SHA256)?.str(&b.sha256)?;
                if let Some(r) = &b.runtime {
                    e.str(KEY_BB_RUNTIME)?.str(r)?;
                }
                e.str(KEY_BB_VERSION)?.str(&b.version)?;
            }
        }
        if let Some(log) = &self.registry_log {
            e.str(KEY_LOG)?.bytes(log)?;
        }
        e.str(KEY_MODE)?.str(&self.mode)?;
        if let Some(node) = &self.node {
            e.str(KEY_NODE)?.bytes(node)?;
        }
        e.str(KEY_SIGIL)?.str(&self.sigil_version)?;
        e.str(KEY_PROTOCOL)?.u32(self.protocol)?;
        e.str(KEY_CAPABILITIES)?
            .array(self.capabilities.len() as u64)?;
        for c in &self.capabilities {
            e.str(c)?;
        }
        Ok(())
    }

    /// Bounded decoding; see the module docs for the rules.
    pub fn from_cbor(b: &[u8]) -> Result<Self, UserDataError> {
        // Total size first (parser work and memory bounded by the input).
        if b.len() > MAX_USER_DATA_LEN {
            return Err(UserDataError::TooLarge(b.len()));
        }
        let mut d = Decoder::new(b);
        // Definite lengths only: indefinite ones have no count to bound up front.
        let entries = match d.map()? {
            Some(n) => n,
            None => return Err(UserDataError::Malformed("indefinite-length map".into())),
        };
        if entries > MAX_ENTRIES as u64 {
            return Err(UserDataError::TooManyEntries);
        }

        let mut protocol = None;
        let mut sigil = None;
        let mut mode = None;
        let mut capabilities = None;
        let mut bb = None;
        let mut bb_served = None;
        let mut node = None;
        let mut registry_log = None;
        for _ in 0..entries {
            let key = bounded_str(&mut d)?;
            match key {
                KEY_PROTOCOL => set_once(&mut protocol, KEY_PROTOCOL, d.u32()?)?,
                KEY_SIGIL => set_once(&mut sigil, KEY_SIGIL, bounded_str(&mut d)?.to_owned())?,
                KEY_MODE => set_once(&mut mode, KEY_MODE, bounded_str(&mut d)?.to_owned())?,
                KEY_CAPABILITIES => {
                    set_once(&mut capabilities, KEY_CAPABILITIES, decode_caps(&mut d)?)?
                }
                KEY_BB => set_once(&mut bb, KEY_BB, decode_bb(&mut d)?)?,
                KEY_BBS => set_once(&mut bb_served, KEY_BBS, decode_bbs(&mut d)?)?,
                KEY_NODE => set_once(&mut node, KEY_NODE, decode_32(&mut d, KEY_NODE)?)?,
                KEY_LOG => set_once(&mut registry_log, KEY_LOG, decode_32(&mut d, KEY_LOG)?)?,
                // Forward compatibility. minicbor's skip is iterative (no recursion, so no
                // stack exhaustion from deep nesting) and cannot read past the bounded input.
                _ => d.skip()?,
            }
        }
        // One value, nothing after it: no room for smuggled data a different parser might see.
        if d.position() != b.len() {
            return Err(UserDataError::TrailingBytes);
        }
        Ok(ImageInfo {
            protocol: protocol.ok_or(UserDataError::MissingKey(KEY_PROTOCOL))?,
            sigil_version: sigil.ok_or(UserDataError::MissingKey(KEY_SIGIL))?,
            mode: mode.ok_or(UserDataError::MissingKey(KEY_MODE))?,
            capabilities: capabilities.ok_or(UserDataError::MissingKey(KEY_CAPABILITIES))?,
            bb,
            bb_served: bb_served.unwrap_or_default(),
            node,
            registry_log,
        })
    }

    /// The same content as JSON, with the CBOR keys (for logs and the client's report).
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::json!({
            "protocol": self.protocol,
            "sigil": self.sigil_version,
            "mode": self.mode,
            "capabilities": self.capabilities,
        });
        if let Some(b) = &self.bb {
            v["bb"] = serde_json::json!({"version": b.version, "sha256": b.sha256});
        }
        if !self.bb_served.is_empty() {
            v["bbs"] = self
                .bb_served
                .iter()
                .map(|b| {
                    let mut e = serde_json::json!({
                        "name": b.name, "version": b.version, "sha256": b.sha256,
                    });
                    if let Some(r) = &b.runtime {
                        e["runtime"] = serde_json::Value::String(r.clone());
                    }
                    e
                })
                .collect();
        }
        if let Some(n) = &self.node {
            v["node"] = serde_json::Value::String(hex::encode(n));
        }
        if let Some(l) = &self.registry_log {
            v["log"] = serde_json::Value::String(hex::encode(l));
        }
        v
    }
}

/// `{"sha256": text, "version": text}`, both required, nothing else.
fn decode_bb(d: &mut Decoder<'_>) -> Result<BbInfo, UserDataError> {
    let n = d
        .map()?
        .ok_or_else(|| UserDataError::Malformed("indefinite-length bb map".into()))?;
    if n != 2 {
        return Err(UserDataError::Malformed(
            "bb must hold sha256 and version".into(),
        ));
    }
    let (mut version, mut sha256) = (None, None);
    for _ in 0..2 {
        match bounded_str(d)? {
            KEY_BB_VERSION => set_once(&mut version, KEY_BB_VERSION, bounded_str(d)?.to_owned())?,
            KEY_BB_SHA256 => set_once(&mut sha256, KEY_BB_SHA256, bounded_str(d)?.to_owned())?,
            _ => return Err(UserDataError::Malformed("unknown key in bb".into())),
        }
    }
    Ok(BbInfo {
        version: version.ok_or(UserDataError::MissingKey(KEY_BB_VERSION))?,
        sha256: sha256.ok_or(UserDataError::MissingKey(KEY_BB_SHA256))?,
    })
}

/// `[* {"name", "sha256", ? "runtime", "version"}]`: bounded in count, strict in keys.
fn decode_bbs(d: &mut Decoder<'_>) -> Result<Vec<ServedBb>, UserDataError> {
    let n = d
        .array()?
        .ok_or_else(|| UserDataError::Malformed("indefinite-length bbs array".into()))?;
    // Count checked before allocating.
    if n > MAX_BB_SERVED as u64 {
        return Err(UserDataError::TooManyBbs);
    }
    let mut out = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let fields = d
            .map()?
            .ok_or_else(|| UserDataError::Malformed("indefinite-length bbs entry".into()))?;
        if !(3..=4).contains(&fields) {
            return Err(UserDataError::Malformed(
                "a bbs entry holds name, sha256, version and optionally runtime".into(),
            ));
        }
        let (mut name, mut version, mut sha256, mut runtime) = (None, None, None, None);
        for _ in 0..fields {
            let key = bounded_str(d)?;
            let value = bounded_str(d)?.to_owned();
            match key {
                KEY_BB_NAME => set_once(&mut name, KEY_BB_NAME, value)?,
                KEY_BB_VERSION => set_once(&mut version, KEY_BB_VERSION, value)?,
                KEY_BB_SHA256 => set_once(&mut sha256, KEY_BB_SHA256, value)?,
                KEY_BB_RUNTIME => set_once(&mut runtime, KEY_BB_RUNTIME, value)?,
                _ => {
                    return Err(UserDataError::Malformed(
                        "unknown key in a bbs entry".into(),
                    ));
                }
            }
        }
        out.push(ServedBb {
            name: name.ok_or(UserDataError::MissingKey(KEY_BB_NAME))?,
            version: version.ok_or(UserDataError::MissingKey(KEY_BB_VERSION))?,
            sha256: sha256.ok_or(UserDataError::MissingKey(KEY_BB_SHA256))?,
            runtime,
        });
    }
    Ok(out)
}

/// Exactly 32 bytes (a definite-length byte string).
fn decode_32(d: &mut Decoder<'_>, what: &str) -> Result<[u8; 32], UserDataError> {
    if d.datatype()? != Type::Bytes {
        return Err(UserDataError::Malformed(format!(
            "{what} must be a byte string"
        )));
    }
    d.bytes()?
        .try_into()
        .map_err(|_| UserDataError::Malformed(format!("{what} must be 32 bytes")))
}

/// A repeated key is refused: two parsers keeping first vs last value would disagree
/// (parser differential).
fn set_once<T>(slot: &mut Option<T>, key: &'static str, v: T) -> Result<(), UserDataError> {
    if slot.is_some() {
        return Err(UserDataError::DuplicateKey(key));
    }
    *slot = Some(v);
    Ok(())
}

fn bounded_str<'b>(d: &mut Decoder<'b>) -> Result<&'b str, UserDataError> {
    // Definite-length text only (minicbor's str() refuses indefinite strings).
    if d.datatype()? != Type::String {
        return Err(UserDataError::Malformed("expected a text string".into()));
    }
    let s = d.str()?;
    if s.len() > MAX_STRING_LEN {
        return Err(UserDataError::StringTooLong);
    }
    Ok(s)
}

fn decode_caps(d: &mut Decoder<'_>) -> Result<Vec<String>, UserDataError> {
    let n = match d.array()? {
        Some(n) => n,
        None => return Err(UserDataError::Malformed("indefinite-length array".into())),
    };
    // Count checked before allocating (memory exhaustion via a huge declared length).
    if n > MAX_CAPABILITIES as u64 {
        return Err(UserDataError::TooManyCapabilities);
    }
    let mut caps = Vec::with_capacity(MAX_CAPABILITIES.min(n as usize));
    for _ in 0..n {
        caps.push(bounded_str(d)?.to_owned());
    }
    Ok(caps)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ImageInfo {
        ImageInfo {
            protocol: PROTOCOL_VERSION,
            sigil_version: "0.1.0".into(),
            mode: "nitro".into(),
            capabilities: vec!["encap-hpke-x25519-aes256gcm".into(), "ping".into()],
            bb: None,
            bb_served: Vec::new(),
            node: None,
            registry_log: None,
        }
    }

    #[test]
    fn served_bb_versions_round_trip_and_old_documents_still_decode() {
        let mut info = sample();
        info.bb = Some(BbInfo {
            version: "5.0.0-nightly.20260710".into(),
            sha256: "c3".repeat(32),
        });
        let old = info.to_cbor();
        info.bb_served = vec![
            ServedBb {
                name: "5.0.0".into(),
                version: "5.0.0-nightly.20260710".into(),
                sha256: "c3".repeat(32),
                runtime: None,
            },
            ServedBb {
                name: "4.1.2".into(),
                version: "4.1.2".into(),
                sha256: "51".repeat(32),
                runtime: Some("8f".repeat(32)),
            },
        ];
        let cbor = info.to_cbor();
        assert_eq!(ImageInfo::from_cbor(&cbor).unwrap(), info);
        assert!(info.validate().is_ok());
        let at = |k: &[u8]| cbor.windows(k.len()).position(|w| w == k).unwrap();
        assert!(at(b"bbs") < at(b"mode"));
        assert_eq!(info.to_json()["bbs"][1]["runtime"], "8f".repeat(32));
        // A document without "bbs" (older images) decodes with an empty list.
        assert!(ImageInfo::from_cbor(&old).unwrap().bb_served.is_empty());
        // An unknown key in an entry is refused, like in bb.
        let mut bad = cbor.clone();
        let at = bad.windows(7).position(|w| w == b"runtime").unwrap();
        bad[at..at + 7].copy_from_slice(b"runtimx");
        assert!(ImageInfo::from_cbor(&bad).is_err());
        // Too many entries are refused before they are read (short ones, under the size bound).
        let short = ServedBb {
            name: "x".into(),
            version: "x".into(),
            sha256: "x".into(),
            runtime: None,
        };
        info.bb_served = vec![short; MAX_BB_SERVED + 1];
        assert_eq!(info.validate(), Err(UserDataError::TooManyBbs));
        assert_eq!(
            ImageInfo::from_cbor(&info.to_cbor()),
            Err(UserDataError::TooManyBbs)
        );
    }

    #[test]
    fn node_round_trips_in_order_and_is_exactly_32_bytes() {
        let mut info = sample();
        info.node = Some([0x4e; 32]);
        info.bb = Some(BbInfo {
            version: "5.0.0".into(),
            sha256: "c3".repeat(32),
        });
        let cbor = info.to_cbor();
        assert_eq!(ImageInfo::from_cbor(&cbor).unwrap(), info);
        assert!(info.validate().is_ok());
        // Deterministic order: "mode" then "node" (same length, bytewise), then "sigil".
        let at = |k: &[u8]| cbor.windows(k.len()).position(|w| w == k).unwrap();
        assert!(at(b"mode") < at(b"node") && at(b"node") < at(b"sigil"));
        assert_eq!(info.to_json()["node"], "4e".repeat(32));
        // The registry's log head: after "bb", before "mode".
        info.registry_log = Some([0x1a; 32]);
        let cbor = info.to_cbor();
        assert_eq!(ImageInfo::from_cbor(&cbor).unwrap(), info);
        let at = |k: &[u8]| cbor.windows(k.len()).position(|w| w == k).unwrap();
        assert!(at(b"bb") < at(b"log") && at(b"log") < at(b"mode"));
        assert_eq!(info.to_json()["log"], "1a".repeat(32));
        // 31 bytes, or text, are refused.
        let short = map(&[
            (text("node"), [head(2, 31), vec![0; 31]].concat()),
            (text("mode"), text("nitro")),
            (text("sigil"), text("0.1.0")),
            (text("protocol"), uint(1)),
            (text("capabilities"), caps(&[])),
        ]);
        assert!(
            ImageInfo::from_cbor(&short)
                .unwrap_err()
                .to_string()
                .contains("32 bytes")
        );
        let as_text = map(&[
            (text("node"), text("4e4e")),
            (text("mode"), text("nitro")),
            (text("sigil"), text("0.1.0")),
            (text("protocol"), uint(1)),
            (text("capabilities"), caps(&[])),
        ]);
        assert!(ImageInfo::from_cbor(&as_text).is_err());
    }

    #[test]
    fn bb_round_trips_and_is_strict() {
        let mut info = sample();
        info.bb = Some(BbInfo {
            version: "5.0.0-nightly.20260710".into(),
            sha256: "c3".repeat(32),
        });
        let cbor = info.to_cbor();
        assert_eq!(ImageInfo::from_cbor(&cbor).unwrap(), info);
        assert!(info.validate().is_ok());
        // Deterministic order: "bb" is the shortest key, so it comes first.
        assert_eq!(&cbor[1..4], &[0x62, b'b', b'b']);
        // An image without bb still parses, as before.
        assert_eq!(ImageInfo::from_cbor(&sample().to_cbor()).unwrap().bb, None);
        // A bb map with another key is refused.
        let mut bad = cbor.clone();
        let at = bad.windows(6).position(|w| w == b"sha256").unwrap();
        bad[at..at + 6].copy_from_slice(b"sha512");
        assert!(ImageInfo::from_cbor(&bad).is_err());
    }

    /// Hand-rolled CBOR heads (RFC 8949 §3) so tests can build inputs our encoder never would.
    fn head(major: u8, n: u64) -> Vec<u8> {
        let m = major << 5;
        match n {
            0..=23 => vec![m | n as u8],
            24..=0xff => vec![m | 24, n as u8],
            0x100..=0xffff => [vec![m | 25], (n as u16).to_be_bytes().to_vec()].concat(),
            0x1_0000..=0xffff_ffff => [vec![m | 26], (n as u32).to_be_bytes().to_vec()].concat(),
            _ => [vec![m | 27], n.to_be_bytes().to_vec()].concat(),
        }
    }
    fn text(s: &str) -> Vec<u8> {
        [head(3, s.len() as u64), s.as_bytes().to_vec()].concat()
    }
    fn uint(n: u64) -> Vec<u8> {
        head(0, n)
    }
    fn caps(c: &[&str]) -> Vec<u8> {
        let mut v = head(4, c.len() as u64);
        for s in c {
            v.extend(text(s));
        }
        v
    }
    fn map(entries: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
        let mut v = head(5, entries.len() as u64);
        for (k, val) in entries {
            v.extend_from_slice(k);
            v.extend_from_slice(val);
        }
        v
    }
    fn base_entries() -> Vec<(Vec<u8>, Vec<u8>)> {
        vec![
            (text("protocol"), uint(1)),
            (text("sigil"), text("0.1.0")),
            (text("mode"), text("local")),
            (text("capabilities"), caps(&["ping"])),
        ]
    }

    #[test]
    fn round_trip() {
        let i = sample();
        let b = i.to_cbor();
        assert_eq!(ImageInfo::from_cbor(&b).unwrap(), i);
        i.validate().unwrap();
        // Deterministic key order and definite lengths.
        assert_eq!(b[0], 0xa4);
        assert_eq!(&b[1..6], b"\x64mode");
    }

    #[test]
    fn empty_capabilities_round_trip() {
        let mut i = sample();
        i.capabilities.clear();
        assert_eq!(ImageInfo::from_cbor(&i.to_cbor()).unwrap(), i);
    }

    #[test]
    fn any_key_order_and_unknown_keys() {
        let mut e = base_entries();
        e.reverse();
        // Unknown keys with nested values are skipped.
        e.insert(1, (text("future"), map(&[(text("x"), caps(&["a", "b"]))])));
        e.push((text("n"), uint(1 << 40)));
        let i = ImageInfo::from_cbor(&map(&e)).unwrap();
        assert_eq!(i.mode, "local");
        assert_eq!(i.capabilities, vec!["ping"]);
    }

    #[test]
    fn missing_keys() {
        for k in ["protocol", "sigil", "mode", "capabilities"] {
            let e: Vec<_> = base_entries()
                .into_iter()
                .filter(|(key, _)| *key != text(k))
                .collect();
            assert_eq!(
                ImageInfo::from_cbor(&map(&e)).unwrap_err(),
                UserDataError::MissingKey(match k {
                    "protocol" => KEY_PROTOCOL,
                    "sigil" => KEY_SIGIL,
                    "mode" => KEY_MODE,
                    _ => KEY_CAPABILITIES,
                })
            );
        }
    }

    #[test]
    fn duplicate_key() {
        let mut e = base_entries();
        e.push((text("mode"), text("nitro")));
        assert_eq!(
            ImageInfo::from_cbor(&map(&e)).unwrap_err(),
            UserDataError::DuplicateKey("mode")
        );
    }

    #[test]
    fn bounds() {
        // Too many capabilities (declared count checked before reading them).
        let mut e = base_entries();
        e[3].1 = head(4, 33);
        assert_eq!(
            ImageInfo::from_cbor(&map(&e)).unwrap_err(),
            UserDataError::TooManyCapabilities
        );
        let mut e = base_entries();
        e[3].1 = head(4, u64::MAX);
        assert_eq!(
            ImageInfo::from_cbor(&map(&e)).unwrap_err(),
            UserDataError::TooManyCapabilities
        );
        // 32 is fine.
        let c: Vec<String> = (0..32).map(|i| format!("c{i}")).collect();
        let cr: Vec<&str> = c.iter().map(|s| s.as_str()).collect();
        let mut e = base_entries();
        e[3].1 = caps(&cr);
        assert_eq!(
            ImageInfo::from_cbor(&map(&e)).unwrap().capabilities.len(),
            32
        );
        // Long strings, as values and as keys.
        let long = "x".repeat(65);
        let mut e = base_entries();
        e[1].1 = text(&long);
        assert_eq!(
            ImageInfo::from_cbor(&map(&e)).unwrap_err(),
            UserDataError::StringTooLong
        );
        let mut e = base_entries();
        e[3].1 = caps(&["ok", &long]);
        assert_eq!(
            ImageInfo::from_cbor(&map(&e)).unwrap_err(),
            UserDataError::StringTooLong
        );
        let mut e = base_entries();
        e.push((text(&long), uint(0)));
        assert_eq!(
            ImageInfo::from_cbor(&map(&e)).unwrap_err(),
            UserDataError::StringTooLong
        );
        // 64 bytes is fine.
        let mut e = base_entries();
        e[1].1 = text(&"y".repeat(64));
        assert!(ImageInfo::from_cbor(&map(&e)).is_ok());
        // Total size.
        let mut e = base_entries();
        e.push((text("pad"), [head(2, 1000), vec![0; 1000]].concat()));
        assert!(matches!(
            ImageInfo::from_cbor(&map(&e)).unwrap_err(),
            UserDataError::TooLarge(_)
        ));
        // Entry count.
        let mut e = base_entries();
        for i in 0..13 {
            e.push((text(&format!("k{i}")), uint(0)));
        }
        assert_eq!(
            ImageInfo::from_cbor(&map(&e)).unwrap_err(),
            UserDataError::TooManyEntries
        );
    }

    #[test]
    fn validate_matches_decoder_bounds() {
        let mut i = sample();
        i.capabilities = (0..33).map(|n| n.to_string()).collect();
        assert_eq!(i.validate(), Err(UserDataError::TooManyCapabilities));
        let mut i = sample();
        i.mode = "m".repeat(65);
        assert_eq!(i.validate(), Err(UserDataError::StringTooLong));
        let mut i = sample();
        i.capabilities = (0..32).map(|n| format!("{n:0>64}")).collect();
        assert!(matches!(i.validate(), Err(UserDataError::TooLarge(_))));
        assert!(ImageInfo::from_cbor(&i.to_cbor()).is_err());
    }

    #[test]
    fn malformed_inputs() {
        let good = map(&base_entries());
        let cases: Vec<Vec<u8>> = vec![
            vec![],
            vec![0xa4],                          // map with no entries present
            vec![0x80],                          // array, not map
            vec![0xbf, 0xff],                    // indefinite map
            [good.clone(), vec![0x00]].concat(), // trailing byte
            good[..good.len() - 1].to_vec(),     // truncated
            map(&[(uint(1), uint(1))]),          // non-text key
            map(&[(text("protocol"), text("1"))]),
            map(&[(text("protocol"), uint(1 << 33))]), // protocol above u32
            {
                let mut e = base_entries();
                e[3].1 = vec![0x9f, 0xff]; // indefinite array
                map(&e)
            },
            {
                let mut e = base_entries();
                e[3].1 = [head(4, 1), uint(5)].concat(); // non-text capability
                map(&e)
            },
            {
                let mut e = base_entries();
                e[2].1 = vec![0x7f, 0x61, b'a', 0xff]; // indefinite text
                map(&e)
            },
            {
                let mut e = base_entries();
                e[2].1 = vec![0x62, 0xff, 0xfe]; // invalid UTF-8
                map(&e)
            },
        ];
        for (i, c) in cases.iter().enumerate() {
            assert!(ImageInfo::from_cbor(c).is_err(), "case {i}");
        }
    }

    #[test]
    fn deep_nesting_in_unknown_value_does_not_overflow() {
        let mut e = base_entries();
        // 900 nested arrays fits in 1024 bytes; skip must not recurse.
        let mut nested = vec![0x81u8; 900];
        nested.push(0x00);
        e.push((text("deep"), nested));
        let b = map(&e);
        assert!(b.len() <= MAX_USER_DATA_LEN);
        assert!(ImageInfo::from_cbor(&b).is_ok());
        // Indefinite nesting too.
        let mut e = base_entries();
        let mut nested = vec![0x9fu8; 400];
        nested.extend(vec![0xffu8; 400]);
        e.push((text("deep"), nested));
        assert!(ImageInfo::from_cbor(&map(&e)).is_ok());
    }

    #[test]
    fn random_garbage_never_panics() {
        let mut s: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        let good = sample().to_cbor();
        for _ in 0..20_000 {
            // Mutations of a valid encoding reach deeper than pure noise.
            let mut b = good.clone();
            for _ in 0..(next() % 4 + 1) {
                let i = (next() as usize) % b.len();
                b[i] = next() as u8;
            }
            let _ = ImageInfo::from_cbor(&b);
            let len = (next() % 64) as usize;
            let noise: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            let _ = ImageInfo::from_cbor(&noise);
        }
    }

    #[test]
    fn json_view() {
        assert_eq!(
            sample().to_json(),
            serde_json::json!({
                "protocol": 1,
                "sigil": "0.1.0",
                "mode": "nitro",
                "capabilities": ["encap-hpke-x25519-aes256gcm", "ping"]
            })
        );
    }
}
