//! Building a verification policy from what a person types: a manifest, `INDEX=HEX` pins.

use std::collections::BTreeMap;

use sigil_protocol::manifest::PcrManifest;

/// Why a `--pcr INDEX=HEX` pin is refused; the message quotes the pin as typed.
#[derive(Debug, thiserror::Error)]
pub enum PcrPinError {
    #[error("--pcr {0:?}: expected INDEX=HEX")]
    Form(String),
    #[error("--pcr {0:?}: index must be 0..31")]
    Index(String),
    #[error("--pcr {pin:?}: value is not hex: {source}")]
    Hex {
        pin: String,
        #[source]
        source: hex::FromHexError,
    },
    #[error("--pcr {pin:?}: value is {len} bytes; PCRs are 32, 48 or 64 bytes")]
    Length { pin: String, len: usize },
}

/// Parses `INDEX=HEX` (a PCR pin from the command line).
pub fn parse_pcr_pin(s: &str) -> Result<(u8, Vec<u8>), PcrPinError> {
    let (i, v) = s
        .split_once('=')
        .ok_or_else(|| PcrPinError::Form(s.into()))?;
    let index: u8 = i
        .parse()
        .ok()
        .filter(|i| *i < 32)
        .ok_or_else(|| PcrPinError::Index(s.into()))?;
    let value = hex::decode(v).map_err(|source| PcrPinError::Hex {
        pin: s.into(),
        source,
    })?;
    if ![32, 48, 64].contains(&value.len()) {
        return Err(PcrPinError::Length {
            pin: s.into(),
            len: value.len(),
        });
    }
    Ok((index, value))
}

/// Why the PCRs to pin could not be worked out.
#[derive(Debug, thiserror::Error)]
pub enum PinsError {
    #[error("--pcrs {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("--pcrs {path}: {source}")]
    Manifest {
        path: String,
        #[source]
        source: sigil_protocol::manifest::ManifestError,
    },
    #[error(transparent)]
    Pin(#[from] PcrPinError),
    #[error("--pcr {0} contradicts the manifest's PCR{0}")]
    Contradicts(u8),
}

/// The PCRs to pin: those of the manifest, then `--pcr` pins. A pin that contradicts the
/// manifest is an error, not silently preferred.
pub fn expected_pcrs(
    manifest: Option<&str>,
    pins: &[String],
) -> Result<BTreeMap<u8, Vec<u8>>, PinsError> {
    let mut pcrs = BTreeMap::new();
    if let Some(path) = manifest {
        let text = std::fs::read_to_string(path).map_err(|source| PinsError::Read {
            path: path.to_string(),
            source,
        })?;
        let bad = |source| PinsError::Manifest {
            path: path.to_string(),
            source,
        };
        pcrs = PcrManifest::from_json(&text)
            .and_then(|m| m.expected_pcrs())
            .map_err(bad)?;
    }
    for pin in pins {
        let (i, v) = parse_pcr_pin(pin)?;
        if let Some(old) = pcrs.get(&i)
            && *old != v
        {
            return Err(PinsError::Contradicts(i));
        }
        pcrs.insert(i, v);
    }
    Ok(pcrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins() {
        let (i, v) = parse_pcr_pin(&format!("2={}", "ab".repeat(48))).unwrap();
        assert_eq!((i, v.len()), (2, 48));
        let err = |s: &str| parse_pcr_pin(s).unwrap_err().to_string();
        assert!(err("2").contains("INDEX=HEX"));
        assert!(err("32=00").contains("0..31"));
        assert!(err("1=zz").contains("not hex"));
        assert!(err("1=0000").contains("32, 48 or 64"));
    }
}
