//! `pcr-manifest.json`: the PCR values a reproducible build of the enclave image produces,
//! with the inputs that determine them. Clients pin PCR0-2 from it; anyone can rebuild from
//! `inputs` and compare.
//!
//! The JSON Schema is `pcr-manifest.schema.json` next to this crate's Cargo.toml. Parsing is
//! strict: unknown fields anywhere are rejected, so a field a reader believes is checked (say
//! a `PCR8` copied from `nitro-cli` output) can never be silently ignored.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Value of [`PcrManifest::schema`].
pub const MANIFEST_SCHEMA: &str = "sigil-pcr-manifest/1";
/// `HashAlgorithm` as `nitro-cli build-enclave` prints it.
pub const HASH_ALGORITHM_SHA384: &str = "Sha384 { ... }";
/// Largest manifest accepted (bounds JSON parser work and memory).
pub const MAX_MANIFEST_LEN: usize = 64 * 1024;
/// PCRs are SHA-384 digests.
pub const PCR_LEN: usize = 48;
/// Longest free-text field (toolchain, versions).
pub const MAX_TEXT_LEN: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PcrManifest {
    /// [`MANIFEST_SCHEMA`].
    pub schema: String,
    #[serde(rename = "Measurements")]
    pub measurements: Measurements,
    pub inputs: ManifestInputs,
}

/// Same shape and names as the `Measurements` object `nitro-cli build-enclave` prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Measurements {
    #[serde(rename = "HashAlgorithm")]
    pub hash_algorithm: String,
    /// Enclave image file (lowercase hex, 96 chars).
    #[serde(rename = "PCR0")]
    pub pcr0: String,
    /// Kernel and bootstrap.
    #[serde(rename = "PCR1")]
    pub pcr1: String,
    /// Application.
    #[serde(rename = "PCR2")]
    pub pcr2: String,
}

/// What the build consumed. Digests are lowercase hex SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestInputs {
    /// Git commit id (40 or 64 lowercase hex chars).
    pub source_commit: String,
    /// Toolchain description, e.g. "rustc 1.95.0".
    pub toolchain: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<KernelInput>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bb: Option<BbInput>,
    /// Every bb version the image serves, the default first (`bb` repeats the default).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bb_versions: Vec<BbVersionInput>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enclave_binary_sha256: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernelInput {
    pub version: String,
    pub config_sha256: String,
    pub image_sha256: String,
}

/// The busybox binary in the init ramdisk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BbInput {
    pub version: String,
    pub sha256: String,
}

/// One bb version in the image, as the attestation's user_data lists it under `bbs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BbVersionInput {
    /// The name requests use.
    pub name: String,
    /// What its `bb --version` prints.
    pub version: String,
    pub sha256: String,
    /// Where the image holds it.
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<RuntimeInput>,
}

/// A bb's own C/C++ runtime: each file's sha256 and the digest of that list that user_data
/// carries (see `crate::user_data`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeInput {
    pub sha256: String,
    pub files: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestError {
    TooLarge(usize),
    /// serde_json's message (names the offending field or position).
    Json(String),
    UnsupportedSchema,
    UnsupportedHashAlgorithm,
    BadPcr {
        index: u8,
        reason: &'static str,
    },
    BadField {
        field: &'static str,
        reason: &'static str,
    },
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ManifestError::TooLarge(n) => {
                write!(
                    f,
                    "manifest too large: {n} bytes (limit {MAX_MANIFEST_LEN})"
                )
            }
            ManifestError::Json(m) => write!(f, "manifest is not valid: {m}"),
            ManifestError::UnsupportedSchema => {
                write!(f, "manifest schema is not {MANIFEST_SCHEMA:?}")
            }
            ManifestError::UnsupportedHashAlgorithm => {
                write!(f, "manifest HashAlgorithm is not {HASH_ALGORITHM_SHA384:?}")
            }
            ManifestError::BadPcr { index, reason } => write!(f, "manifest PCR{index}: {reason}"),
            ManifestError::BadField { field, reason } => write!(f, "manifest {field}: {reason}"),
        }
    }
}

impl std::error::Error for ManifestError {}

impl PcrManifest {
    /// Parses and fully validates a manifest.
    pub fn from_json(s: &str) -> Result<Self, ManifestError> {
        // Size first, before the parser runs.
        if s.len() > MAX_MANIFEST_LEN {
            return Err(ManifestError::TooLarge(s.len()));
        }
        let m: PcrManifest =
            serde_json::from_str(s).map_err(|e| ManifestError::Json(e.to_string()))?;
        m.validate()?;
        Ok(m)
    }

    /// Everything [`PcrManifest::from_json`] checks beyond the JSON shape.
    pub fn validate(&self) -> Result<(), ManifestError> {
        // Version confusion: a reader of schema 1 must not guess at another schema's meaning.
        if self.schema != MANIFEST_SCHEMA {
            return Err(ManifestError::UnsupportedSchema);
        }
        if self.measurements.hash_algorithm != HASH_ALGORITHM_SHA384 {
            return Err(ManifestError::UnsupportedHashAlgorithm);
        }
        self.expected_pcrs()?;
        let i = &self.inputs;
        if !(is_lower_hex(&i.source_commit, 40) || is_lower_hex(&i.source_commit, 64)) {
            return Err(bad(
                "inputs.source_commit",
                "must be 40 or 64 lowercase hex chars",
            ));
        }
        check_text("inputs.toolchain", &i.toolchain)?;
        check_sha256_opt("inputs.config_sha256", i.config_sha256.as_deref())?;
        check_sha256_opt(
            "inputs.enclave_binary_sha256",
            i.enclave_binary_sha256.as_deref(),
        )?;
        if let Some(k) = &i.kernel {
            check_text("inputs.kernel.version", &k.version)?;
            check_sha256_opt("inputs.kernel.config_sha256", Some(&k.config_sha256))?;
            check_sha256_opt("inputs.kernel.image_sha256", Some(&k.image_sha256))?;
        }
        if let Some(b) = &i.bb {
            check_text("inputs.bb.version", &b.version)?;
            check_sha256_opt("inputs.bb.sha256", Some(&b.sha256))?;
        }
        for b in &i.bb_versions {
            check_text("inputs.bb_versions.name", &b.name)?;
            check_text("inputs.bb_versions.version", &b.version)?;
            check_text("inputs.bb_versions.path", &b.path)?;
            check_sha256_opt("inputs.bb_versions.sha256", Some(&b.sha256))?;
            if let Some(r) = &b.runtime {
                check_sha256_opt("inputs.bb_versions.runtime.sha256", Some(&r.sha256))?;
                for (name, sum) in &r.files {
                    check_text("inputs.bb_versions.runtime.files", name)?;
                    check_sha256_opt("inputs.bb_versions.runtime.files", Some(sum))?;
                }
            }
        }
        Ok(())
    }

    /// PCR index -> expected value (exactly [`PCR_LEN`] bytes each): {0, 1, 2}.
    pub fn expected_pcrs(&self) -> Result<BTreeMap<u8, Vec<u8>>, ManifestError> {
        let m = &self.measurements;
        let mut out = BTreeMap::new();
        for (index, value) in [(0u8, &m.pcr0), (1, &m.pcr1), (2, &m.pcr2)] {
            out.insert(index, decode_pcr(index, value)?);
        }
        Ok(out)
    }
}

fn decode_pcr(index: u8, value: &str) -> Result<Vec<u8>, ManifestError> {
    // Exact length and lowercase hex, checked before decoding: a truncated or padded value
    // must not be "close enough" to match.
    if !is_lower_hex(value, PCR_LEN * 2) {
        return Err(ManifestError::BadPcr {
            index,
            reason: "must be 96 lowercase hex chars (48 bytes)",
        });
    }
    let bytes = hex::decode(value).map_err(|_| ManifestError::BadPcr {
        index,
        reason: "not hex",
    })?;
    // A debug-mode enclave reports all-zero PCRs; pinning zeros would accept an enclave whose
    // memory the parent instance can read.
    if bytes.iter().all(|&b| b == 0) {
        return Err(ManifestError::BadPcr {
            index,
            reason: "all zeros (debug-mode measurement)",
        });
    }
    Ok(bytes)
}

fn is_lower_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn check_sha256_opt(field: &'static str, v: Option<&str>) -> Result<(), ManifestError> {
    match v {
        Some(s) if !is_lower_hex(s, 64) => Err(bad(field, "must be 64 lowercase hex chars")),
        _ => Ok(()),
    }
}

fn check_text(field: &'static str, s: &str) -> Result<(), ManifestError> {
    if s.is_empty() || s.len() > MAX_TEXT_LEN {
        return Err(bad(field, "must be 1 to 256 bytes"));
    }
    // Control characters could forge lines in logs or terminals that display the manifest.
    if s.chars().any(char::is_control) {
        return Err(bad(field, "must not contain control characters"));
    }
    Ok(())
}

fn bad(field: &'static str, reason: &'static str) -> ManifestError {
    ManifestError::BadField { field, reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../testdata/pcr-manifest.example.json");
    const SCHEMA: &str = include_str!("../pcr-manifest.schema.json");

    fn example_value() -> serde_json::Value {
        serde_json::from_str(EXAMPLE).unwrap()
    }

    fn parse(v: &serde_json::Value) -> Result<PcrManifest, ManifestError> {
        PcrManifest::from_json(&v.to_string())
    }

    #[test]
    fn example_parses() {
        let m = PcrManifest::from_json(EXAMPLE).unwrap();
        assert_eq!(m.schema, MANIFEST_SCHEMA);
        let pcrs = m.expected_pcrs().unwrap();
        assert_eq!(pcrs.keys().copied().collect::<Vec<_>>(), vec![0, 1, 2]);
        assert!(pcrs.values().all(|v| v.len() == PCR_LEN));
        assert_eq!(hex::encode(&pcrs[&0]), m.measurements.pcr0);
        // Serializing and parsing again gives the same manifest.
        let again = PcrManifest::from_json(&serde_json::to_string(&m).unwrap()).unwrap();
        assert_eq!(again, m);
    }

    #[test]
    fn optional_inputs_may_be_absent_or_null() {
        let mut v = example_value();
        let inputs = v["inputs"].as_object_mut().unwrap();
        inputs.remove("kernel");
        inputs.remove("bb");
        inputs.insert("config_sha256".into(), serde_json::Value::Null);
        inputs.remove("enclave_binary_sha256");
        let m = parse(&v).unwrap();
        assert!(m.inputs.kernel.is_none() && m.inputs.config_sha256.is_none());
    }

    #[test]
    fn wrong_length_pcrs_are_rejected() {
        for (key, index) in [("PCR0", 0u8), ("PCR1", 1), ("PCR2", 2)] {
            let good = example_value()["Measurements"][key]
                .as_str()
                .unwrap()
                .to_owned();
            for bad_value in [
                good[..94].to_owned(),        // 47 bytes
                format!("{good}00"),          // 49 bytes
                good[..95].to_owned(),        // odd length
                String::new(),                // empty
                good.to_uppercase(),          // not canonical
                format!("{}zz", &good[..94]), // not hex
                "0".repeat(96),               // debug-mode zeros
            ] {
                let mut v = example_value();
                v["Measurements"][key] = bad_value.clone().into();
                match parse(&v) {
                    Err(ManifestError::BadPcr { index: i, .. }) => assert_eq!(i, index),
                    other => panic!("{key}={bad_value}: {other:?}"),
                }
            }
        }
    }

    #[test]
    fn unknown_fields_are_rejected_everywhere() {
        let paths: [&[&str]; 5] = [
            &[],
            &["Measurements"],
            &["inputs"],
            &["inputs", "kernel"],
            &["inputs", "bb"],
        ];
        for path in paths {
            let mut v = example_value();
            let mut o = &mut v;
            for p in path {
                o = &mut o[*p];
            }
            o.as_object_mut()
                .unwrap()
                .insert("PCR8".into(), "00".into());
            assert!(matches!(parse(&v), Err(ManifestError::Json(_))), "{path:?}");
        }
    }

    #[test]
    fn missing_required_fields_are_rejected() {
        for key in ["schema", "Measurements", "inputs"] {
            let mut v = example_value();
            v.as_object_mut().unwrap().remove(key);
            assert!(matches!(parse(&v), Err(ManifestError::Json(_))), "{key}");
        }
        let mut v = example_value();
        v["Measurements"].as_object_mut().unwrap().remove("PCR2");
        assert!(matches!(parse(&v), Err(ManifestError::Json(_))));
    }

    #[test]
    fn header_values_are_checked() {
        let mut v = example_value();
        v["schema"] = "sigil-pcr-manifest/2".into();
        assert_eq!(parse(&v).unwrap_err(), ManifestError::UnsupportedSchema);
        let mut v = example_value();
        v["Measurements"]["HashAlgorithm"] = "Sha256 { ... }".into();
        assert_eq!(
            parse(&v).unwrap_err(),
            ManifestError::UnsupportedHashAlgorithm
        );
    }

    #[test]
    fn input_fields_are_checked() {
        let cases: [(&[&str], serde_json::Value); 6] = [
            (&["inputs", "source_commit"], "abc".into()),
            (&["inputs", "toolchain"], "".into()),
            (&["inputs", "toolchain"], "rustc\n1.95".into()),
            (&["inputs", "config_sha256"], "AB".repeat(32).into()),
            (&["inputs", "kernel", "image_sha256"], "0".repeat(63).into()),
            (&["inputs", "bb", "sha256"], 5.into()),
        ];
        for (path, value) in cases {
            let mut v = example_value();
            let mut o = &mut v;
            for p in path {
                o = &mut o[*p];
            }
            *o = value;
            assert!(parse(&v).is_err(), "{path:?}");
        }
    }

    #[test]
    fn oversize_is_rejected_before_parsing() {
        let s = " ".repeat(MAX_MANIFEST_LEN + 1);
        assert_eq!(
            PcrManifest::from_json(&s).unwrap_err(),
            ManifestError::TooLarge(MAX_MANIFEST_LEN + 1)
        );
    }

    /// The schema file and the Rust types must describe the same fields.
    #[test]
    fn schema_matches_types() {
        let schema: serde_json::Value = serde_json::from_str(SCHEMA).unwrap();
        assert_eq!(
            schema["$schema"],
            "https://json-schema.org/draft/2020-12/schema"
        );
        fn keys(v: &serde_json::Value) -> Vec<String> {
            let mut k: Vec<_> = v["properties"]
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect();
            k.sort();
            k
        }
        fn required(v: &serde_json::Value) -> Vec<String> {
            let mut k: Vec<String> = v["required"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap().to_owned())
                .collect();
            k.sort();
            k
        }
        let defs = &schema["$defs"];
        let objects = [
            (&schema, vec!["Measurements", "inputs", "schema"], 3),
            (
                &defs["Measurements"],
                vec!["HashAlgorithm", "PCR0", "PCR1", "PCR2"],
                4,
            ),
            (
                &defs["ManifestInputs"],
                vec![
                    "bb",
                    "config_sha256",
                    "enclave_binary_sha256",
                    "kernel",
                    "source_commit",
                    "toolchain",
                ],
                2,
            ),
            (
                &defs["KernelInput"],
                vec!["config_sha256", "image_sha256", "version"],
                3,
            ),
            (&defs["BbInput"], vec!["sha256", "version"], 2),
        ];
        for (obj, want, n_required) in objects {
            assert_eq!(keys(obj), want);
            assert_eq!(required(obj).len(), n_required);
            assert_eq!(obj["additionalProperties"], false);
        }
        assert_eq!(schema["properties"]["schema"]["const"], MANIFEST_SCHEMA);
        assert_eq!(
            defs["Measurements"]["properties"]["HashAlgorithm"]["const"],
            HASH_ALGORITHM_SHA384
        );
        // The example manifest satisfies the schema's patterns for PCRs.
        assert_eq!(defs["pcr"]["pattern"], "^[0-9a-f]{96}$");
        assert!(defs["pcr"]["not"].is_object());
    }
}
