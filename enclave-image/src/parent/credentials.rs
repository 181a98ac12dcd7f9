//! Fetches AWS credentials from the shim's credentials port: the shim sends one frame
//! (4-byte big-endian length, then a CBOR map) and closes.
//!
//! The credentials are the parent's own; they let the enclave sign KMS requests, and the key
//! policy's attestation conditions make them useless for getting the data key without this
//! enclave's attestation. They are still secrets of the parent: wiped on drop, never logged.

use std::io::Read;

use minicbor::Decoder;
use minicbor::data::Type;
use sigil_kms::Credentials;
use sigil_sys::{Addr, Stream};
use zeroize::Zeroizing;

use super::TIMEOUT;

/// A credentials frame is a few hundred bytes (a session token is up to ~2 KiB).
const MAX_FRAME: usize = 16 * 1024;
/// Longest text field accepted.
const MAX_FIELD: usize = 8 * 1024;

pub fn fetch(addr: &Addr) -> Result<Credentials, String> {
    let mut s = Stream::connect(addr).map_err(|e| format!("credentials service {addr}: {e}"))?;
    s.set_timeouts(Some(TIMEOUT))
        .map_err(|e| format!("credentials service: {e}"))?;
    let mut len = [0u8; 4];
    s.read_exact(&mut len)
        .map_err(|e| format!("credentials service: reading the frame length: {e}"))?;
    let len = u32::from_be_bytes(len) as usize;
    if len == 0 || len > MAX_FRAME {
        return Err(format!(
            "credentials service: frame of {len} bytes (1..{MAX_FRAME} accepted)"
        ));
    }
    let mut body = Zeroizing::new(vec![0u8; len]);
    s.read_exact(&mut body)
        .map_err(|e| format!("credentials service: reading the frame: {e}"))?;
    parse(&body)
}

/// Parses `{v: 1, ok: true, access_key_id, secret_access_key, session_token?, expiration?}`
/// or `{v: 1, ok: false, error: {code, message}}`.
pub fn parse(body: &[u8]) -> Result<Credentials, String> {
    let bad = |m: &str| format!("credentials service: malformed answer: {m}");
    let mut d = Decoder::new(body);
    let n = d
        .map()
        .map_err(|_| bad("not a CBOR map"))?
        .ok_or_else(|| bad("indefinite map"))?;
    if n > 16 {
        return Err(bad("too many fields"));
    }
    let mut version = None;
    let mut ok = None;
    let mut key_id = None;
    let mut secret: Option<Zeroizing<String>> = None;
    let mut token: Option<Zeroizing<String>> = None;
    let mut error = None;
    for _ in 0..n {
        let k = d.str().map_err(|_| bad("non-text key"))?;
        let text = |d: &mut Decoder<'_>| -> Result<String, String> {
            let v = d.str().map_err(|_| bad("a field is not text"))?;
            if v.len() > MAX_FIELD {
                return Err(bad("a field is too long"));
            }
            Ok(v.to_string())
        };
        match k {
            "v" => version = Some(d.u8().map_err(|_| bad("v"))?),
            "ok" => ok = Some(d.bool().map_err(|_| bad("ok"))?),
            "access_key_id" => key_id = Some(text(&mut d)?),
            "secret_access_key" => secret = Some(Zeroizing::new(text(&mut d)?)),
            "session_token" => token = Some(Zeroizing::new(text(&mut d)?)),
            "error" => {
                // {code, message}: shown to the operator, so bounded and printable.
                let mut msg = String::new();
                let m = d.map().map_err(|_| bad("error"))?.unwrap_or(0).min(4);
                for _ in 0..m {
                    let ek = d.str().map_err(|_| bad("error key"))?.to_string();
                    let ev = text(&mut d)?;
                    msg.push_str(&format!(
                        "{ek}={} ",
                        ev.chars().take(200).collect::<String>()
                    ));
                }
                error = Some(msg.trim_end().to_string());
            }
            _ => {
                // `expiration` and later additions: skipped, but only if they are simple.
                if d.datatype().map_err(|_| bad("truncated"))? == Type::Map {
                    return Err(bad("unexpected nested map"));
                }
                d.skip().map_err(|_| bad("truncated"))?;
            }
        }
    }
    if version != Some(1) {
        return Err(bad("version is not 1"));
    }
    match ok {
        Some(true) => {}
        Some(false) => {
            return Err(format!(
                "the parent has no credentials to give: {}",
                error.unwrap_or_default()
            ));
        }
        None => return Err(bad("no ok field")),
    }
    Ok(Credentials {
        access_key_id: key_id.ok_or_else(|| bad("no access_key_id"))?,
        secret_access_key: secret
            .ok_or_else(|| bad("no secret_access_key"))?
            .to_string(),
        session_token: token.map(|t| t.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(f: impl FnOnce(&mut minicbor::Encoder<&mut Vec<u8>>)) -> Vec<u8> {
        let mut v = Vec::new();
        f(&mut minicbor::Encoder::new(&mut v));
        v
    }

    #[test]
    fn parses_the_shims_answers() {
        let ok = frame(|e| {
            e.map(5).unwrap();
            e.str("v")
                .unwrap()
                .u8(1)
                .unwrap()
                .str("ok")
                .unwrap()
                .bool(true)
                .unwrap();
            e.str("access_key_id").unwrap().str("AKIDEXAMPLE").unwrap();
            e.str("secret_access_key").unwrap().str("secret").unwrap();
            e.str("expiration")
                .unwrap()
                .str("2030-01-01T00:00:00Z")
                .unwrap();
        });
        let c = parse(&ok).unwrap();
        assert_eq!(c.access_key_id, "AKIDEXAMPLE");
        assert_eq!(c.secret_access_key, "secret");
        assert_eq!(c.session_token, None);

        let refused = frame(|e| {
            e.map(3).unwrap();
            e.str("v")
                .unwrap()
                .u8(1)
                .unwrap()
                .str("ok")
                .unwrap()
                .bool(false)
                .unwrap();
            e.str("error").unwrap().map(2).unwrap();
            e.str("code").unwrap().str("unavailable").unwrap();
            e.str("message").unwrap().str("IMDS down").unwrap();
        });
        let err = parse(&refused).unwrap_err();
        assert!(err.contains("IMDS down"), "{err}");
    }

    #[test]
    fn refuses_malformed_answers() {
        for (body, why) in [
            (vec![0x01], "map"),
            (
                frame(|e| {
                    e.map(1).unwrap().str("v").unwrap().u8(2).unwrap();
                }),
                "version",
            ),
            (
                frame(|e| {
                    e.map(2).unwrap().str("v").unwrap().u8(1).unwrap();
                    e.str("ok").unwrap().bool(true).unwrap();
                }),
                "access_key_id",
            ),
        ] {
            let e = parse(&body).unwrap_err();
            assert!(e.contains(why), "{e}");
        }
    }
}
