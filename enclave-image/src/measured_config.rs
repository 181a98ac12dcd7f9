//! The deployment's configuration as PID 1 reads it: a file in the image's second ramdisk,
//! so it is measured into PCR2 (and PCR0). The parent can supply nothing that changes trust:
//! there is no other source of configuration in the enclave.

use std::time::Duration;

use serde::Deserialize;
use sigil_protocol::ports;

use crate::http::Limits;

/// Where the second ramdisk puts the configuration.
pub const PATH: &str = "/etc/sigil/enclave.json";
/// Larger files are refused before parsing.
pub const MAX_BYTES: u64 = 64 * 1024;

#[derive(Debug, Deserialize, PartialEq, Eq)]
// An unknown field is a typo or a newer format: refuse to boot rather than ignore it.
#[serde(deny_unknown_fields)]
pub struct MeasuredConfig {
    #[serde(default = "default_api_port")]
    pub api_port: u32,
    #[serde(default = "default_log_port")]
    pub log_port: u32,
    #[serde(default)]
    pub max_connections: Option<usize>,
    #[serde(default)]
    pub max_body_bytes: Option<usize>,
    #[serde(default)]
    pub request_timeout_secs: Option<u64>,
    #[serde(default)]
    pub idle_timeout_secs: Option<u64>,
}

fn default_api_port() -> u32 {
    ports::API
}

fn default_log_port() -> u32 {
    ports::LOGS
}

impl Default for MeasuredConfig {
    fn default() -> Self {
        MeasuredConfig {
            api_port: ports::API,
            log_port: ports::LOGS,
            max_connections: None,
            max_body_bytes: None,
            request_timeout_secs: None,
            idle_timeout_secs: None,
        }
    }
}

impl MeasuredConfig {
    pub fn parse(text: &[u8]) -> Result<MeasuredConfig, String> {
        let c: MeasuredConfig = serde_json::from_slice(text).map_err(|e| format!("{PATH}: {e}"))?;
        let check = |name: &str, v: Option<u64>, max: u64| match v {
            Some(0) => Err(format!("{PATH}: {name} must be positive")),
            Some(n) if n > max => Err(format!("{PATH}: {name} {n} exceeds {max}")),
            _ => Ok(()),
        };
        check("max_connections", c.max_connections.map(|v| v as u64), 4096)?;
        check(
            "max_body_bytes",
            c.max_body_bytes.map(|v| v as u64),
            64 << 20,
        )?;
        check("request_timeout_secs", c.request_timeout_secs, 3600)?;
        check("idle_timeout_secs", c.idle_timeout_secs, 3600)?;
        if c.api_port == 0 || c.api_port > u16::MAX as u32 {
            return Err(format!("{PATH}: api_port {} out of range", c.api_port));
        }
        Ok(c)
    }

    /// The file if the image has one, else the defaults.
    pub fn load() -> Result<MeasuredConfig, String> {
        let meta = match std::fs::metadata(PATH) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(MeasuredConfig::default());
            }
            Err(e) => return Err(format!("{PATH}: {e}")),
        };
        if meta.len() > MAX_BYTES {
            return Err(format!(
                "{PATH} is {} bytes; the limit is {MAX_BYTES}",
                meta.len()
            ));
        }
        let text = std::fs::read(PATH).map_err(|e| format!("{PATH}: {e}"))?;
        MeasuredConfig::parse(&text)
    }

    pub fn limits(&self) -> Limits {
        let mut l = Limits::default();
        if let Some(v) = self.max_connections {
            l.max_connections = v;
        }
        if let Some(v) = self.max_body_bytes {
            l.max_body_bytes = v;
        }
        if let Some(v) = self.request_timeout_secs {
            l.request_timeout = Duration::from_secs(v);
        }
        if let Some(v) = self.idle_timeout_secs {
            l.idle_timeout = Duration::from_secs(v);
        }
        l
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let c = MeasuredConfig::parse(b"{}").unwrap();
        assert_eq!(c, MeasuredConfig::default());
        let c =
            MeasuredConfig::parse(br#"{"max_connections": 8, "request_timeout_secs": 5}"#).unwrap();
        assert_eq!(c.limits().max_connections, 8);
        assert_eq!(c.limits().request_timeout, Duration::from_secs(5));
    }

    #[test]
    fn refuses_what_it_does_not_understand() {
        for (bad, why) in [
            (r#"{"max_conections": 8}"#.as_bytes(), "unknown field"),
            (br#"{"max_connections": 0}"#, "positive"),
            (br#"{"api_port": 70000}"#, "out of range"),
            (br#"{"request_timeout_secs": 99999}"#, "exceeds"),
            (b"not json", "expected"),
        ] {
            let e = MeasuredConfig::parse(bad).unwrap_err();
            assert!(e.contains(why), "{e}");
        }
    }
}
