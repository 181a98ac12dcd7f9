//! Building a verification policy from what a person types: a manifest, `INDEX=HEX` pins.

use std::collections::BTreeMap;

use sigil_protocol::manifest::PcrManifest;

/// Parses `INDEX=HEX` (a PCR pin from the command line).
pub fn parse_pcr_pin(s: &str) -> Result<(u8, Vec<u8>), String> {
    let (i, v) = s
        .split_once('=')
        .ok_or_else(|| format!("--pcr {s:?}: expected INDEX=HEX"))?;
    let index: u8 = i
        .parse()
        .ok()
        .filter(|i| *i < 32)
        .ok_or_else(|| format!("--pcr {s:?}: index must be 0..31"))?;
    let value = hex::decode(v).map_err(|e| format!("--pcr {s:?}: value is not hex: {e}"))?;
    if ![32, 48, 64].contains(&value.len()) {
        return Err(format!(
            "--pcr {s:?}: value is {} bytes; PCRs are 32, 48 or 64 bytes",
            value.len()
        ));
    }
    Ok((index, value))
}

/// The PCRs to pin: those of the manifest, then `--pcr` pins. A pin that contradicts the
/// manifest is an error, not silently preferred.
pub fn expected_pcrs(
    manifest: Option<&str>,
    pins: &[String],
) -> Result<BTreeMap<u8, Vec<u8>>, String> {
    let mut pcrs = BTreeMap::new();
    if let Some(path) = manifest {
        let text = std::fs::read_to_string(path).map_err(|e| format!("--pcrs {path}: {e}"))?;
        let m = PcrManifest::from_json(&text).map_err(|e| format!("--pcrs {path}: {e}"))?;
        pcrs = m
            .expected_pcrs()
            .map_err(|e| format!("--pcrs {path}: {e}"))?;
    }
    for pin in pins {
        let (i, v) = parse_pcr_pin(pin)?;
        if let Some(old) = pcrs.get(&i)
            && *old != v
        {
            return Err(format!("--pcr {i} contradicts the manifest's PCR{i}"));
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
        assert!(parse_pcr_pin("2").unwrap_err().contains("INDEX=HEX"));
        assert!(parse_pcr_pin("32=00").unwrap_err().contains("0..31"));
        assert!(parse_pcr_pin("1=zz").unwrap_err().contains("not hex"));
        assert!(
            parse_pcr_pin("1=0000")
                .unwrap_err()
                .contains("32, 48 or 64")
        );
    }
}
