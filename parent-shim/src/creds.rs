//! Credentials for the enclave's KMS calls: the parent's own AWS credentials, from the
//! environment or from IMDSv2. The enclave needs them to sign KMS requests; KMS releases the
//! data key only to an attested enclave (`Recipient`), so these credentials alone are worth
//! no more to the enclave than they already are to the parent.
//!
//! Protocol: the enclave connects; the shim sends one frame (4-byte big-endian length + CBOR
//! map) and closes. There is no request to parse: the connection is the request.
//! `{v: 1, ok: true, access_key_id, secret_access_key, session_token?, expiration?}` or
//! `{v: 1, ok: false, error: {code, message}}`.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use minicbor::Encoder;

#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
    pub expiration: Option<String>,
}

// Never print the secret parts (they would end up in the journal).
impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("expiration", &self.expiration)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    Env,
    /// IMDSv2 at this `host:port` (169.254.169.254:80 on EC2).
    Imds(String),
}

pub const IMDS: &str = "169.254.169.254:80";
/// Every IMDS exchange is small; a bigger answer is not IMDS.
const MAX_HTTP_RESPONSE: u64 = 64 * 1024;
/// IMDS answers in milliseconds; a hung endpoint must not hold the enclave's request.
const IMDS_TIMEOUT: Duration = Duration::from_secs(3);

pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<Credentials, String> {
    let need = |k: &str| {
        get(k)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| format!("{k} is not set"))
    };
    Ok(Credentials {
        access_key_id: need("AWS_ACCESS_KEY_ID")?,
        secret_access_key: need("AWS_SECRET_ACCESS_KEY")?,
        session_token: get("AWS_SESSION_TOKEN").filter(|v| !v.is_empty()),
        expiration: None,
    })
}

pub fn fetch(source: &Source) -> Result<Credentials, String> {
    match source {
        Source::Env => from_env(|k| std::env::var(k).ok()),
        Source::Imds(at) => imds(at),
    }
}

/// One HTTP/1.1 exchange with `Connection: close`; returns the body of a 200 answer.
fn http(at: &str, method: &str, path: &str, headers: &[(&str, &str)]) -> Result<String, String> {
    let sa = at
        .to_socket_addrs()
        .map_err(|e| format!("IMDS address {at}: {e}"))?
        .next()
        .ok_or_else(|| format!("IMDS address {at} resolved to nothing"))?;
    let mut s =
        TcpStream::connect_timeout(&sa, IMDS_TIMEOUT).map_err(|e| format!("IMDS {at}: {e}"))?;
    s.set_read_timeout(Some(IMDS_TIMEOUT))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(IMDS_TIMEOUT))
        .map_err(|e| e.to_string())?;
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: 169.254.169.254\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if method == "PUT" {
        req.push_str("Content-Length: 0\r\n");
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())
        .map_err(|e| format!("IMDS {path}: {e}"))?;
    let mut raw = Vec::new();
    s.take(MAX_HTTP_RESPONSE + 1)
        .read_to_end(&mut raw)
        .map_err(|e| format!("IMDS {path}: {e}"))?;
    if raw.len() as u64 > MAX_HTTP_RESPONSE {
        return Err(format!(
            "IMDS {path}: answer larger than {MAX_HTTP_RESPONSE} bytes"
        ));
    }
    parse_http(&raw).map_err(|e| format!("IMDS {method} {path}: {e}"))
}

/// Parses a complete `Connection: close` response: status 200, optional Content-Length,
/// no chunked encoding (IMDS does not use it).
pub fn parse_http(raw: &[u8]) -> Result<String, String> {
    let text = std::str::from_utf8(raw).map_err(|_| "answer is not UTF-8".to_string())?;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or("answer has no end of headers")?;
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or_default();
    let code = status.split(' ').nth(1).unwrap_or_default();
    if !status.starts_with("HTTP/1.") || code != "200" {
        return Err(format!(
            "status {:?}",
            status.chars().take(60).collect::<String>()
        ));
    }
    let mut body = body;
    for l in lines {
        let (k, v) = l.split_once(':').unwrap_or((l, ""));
        if k.eq_ignore_ascii_case("transfer-encoding") {
            return Err("chunked answers are not supported".into());
        }
        if k.eq_ignore_ascii_case("content-length") {
            let n: usize = v
                .trim()
                .parse()
                .map_err(|_| "bad Content-Length".to_string())?;
            body = body
                .get(..n)
                .ok_or("answer shorter than its Content-Length")?;
        }
    }
    Ok(body.to_string())
}

fn imds(at: &str) -> Result<Credentials, String> {
    let token = http(
        at,
        "PUT",
        "/latest/api/token",
        &[("X-aws-ec2-metadata-token-ttl-seconds", "60")],
    )?;
    let token = token.trim();
    if token.is_empty() || token.len() > 1024 || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("IMDS token is not a printable token".into());
    }
    let h = [("X-aws-ec2-metadata-token", token)];
    let roles = http(at, "GET", "/latest/meta-data/iam/security-credentials/", &h)?;
    let role = roles.lines().next().unwrap_or_default().trim();
    // IAM role names are [\w+=,.@-]{1,64}; anything else must not reach a request path.
    if role.is_empty()
        || role.len() > 64
        || !role
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c))
    {
        return Err("the instance has no usable IAM role".into());
    }
    let body = http(
        at,
        "GET",
        &format!("/latest/meta-data/iam/security-credentials/{role}"),
        &h,
    )?;
    parse_imds_credentials(&body)
}

pub fn parse_imds_credentials(body: &str) -> Result<Credentials, String> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct J {
        code: String,
        access_key_id: String,
        secret_access_key: String,
        token: Option<String>,
        expiration: Option<String>,
    }
    let j: J = serde_json::from_str(body).map_err(|e| format!("IMDS credentials: {e}"))?;
    if j.code != "Success" {
        return Err(format!(
            "IMDS credentials: Code is {:?}",
            j.code.chars().take(40).collect::<String>()
        ));
    }
    Ok(Credentials {
        access_key_id: j.access_key_id,
        secret_access_key: j.secret_access_key,
        session_token: j.token,
        expiration: j.expiration,
    })
}

pub fn encode(r: &Result<Credentials, String>) -> Vec<u8> {
    let mut e = Encoder::new(Vec::new());
    // Writing to a Vec cannot fail.
    let _ = (|| -> Result<(), minicbor::encode::Error<std::convert::Infallible>> {
        match r {
            Ok(c) => {
                let n =
                    4 + u64::from(c.session_token.is_some()) + u64::from(c.expiration.is_some());
                e.map(n)?.str("v")?.u8(1)?.str("ok")?.bool(true)?;
                e.str("access_key_id")?.str(&c.access_key_id)?;
                e.str("secret_access_key")?.str(&c.secret_access_key)?;
                if let Some(t) = &c.session_token {
                    e.str("session_token")?.str(t)?;
                }
                if let Some(x) = &c.expiration {
                    e.str("expiration")?.str(x)?;
                }
            }
            Err(m) => {
                e.map(3)?
                    .str("v")?
                    .u8(1)?
                    .str("ok")?
                    .bool(false)?
                    .str("error")?
                    .map(2)?;
                e.str("code")?.str("unavailable")?.str("message")?.str(m)?;
            }
        }
        Ok(())
    })();
    e.into_writer()
}

/// Serves one request: fetch fresh (temporary credentials rotate), send, close.
pub fn handle(mut s: sigil_sys::Stream, source: &Source) -> Result<(), String> {
    s.set_write_timeout(Some(IMDS_TIMEOUT))
        .map_err(|e| e.to_string())?;
    let r = fetch(source);
    crate::wire::write_frame(&mut s, &encode(&r)).map_err(|e| e.to_string())?;
    // The error text is ours (no secret in it); the credentials themselves are never logged.
    r.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    const CREDS: &str = r#"{
  "Code" : "Success",
  "LastUpdated" : "2026-11-21T10:00:00Z",
  "Type" : "AWS-HMAC",
  "AccessKeyId" : "ASIAEXAMPLE",
  "SecretAccessKey" : "secretEXAMPLE",
  "Token" : "tokenEXAMPLE",
  "Expiration" : "2026-11-21T16:00:00Z"
}"#;

    /// A fake IMDSv2 on 127.0.0.1 that insists on the token, like the real one.
    fn fake_imds() -> String {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let at = l.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let mut s = s.unwrap();
                let mut buf = [0u8; 4096];
                let n = s.read(&mut buf).unwrap();
                let req = String::from_utf8_lossy(&buf[..n]).to_string();
                let body = if req.starts_with("PUT /latest/api/token ")
                    && req.contains("ttl-seconds: 60")
                {
                    Some("TOKEN123".to_string())
                } else if !req.contains("X-aws-ec2-metadata-token: TOKEN123") {
                    None
                } else if req.starts_with("GET /latest/meta-data/iam/security-credentials/ ") {
                    Some("sigil-parent\n".to_string())
                } else if req
                    .starts_with("GET /latest/meta-data/iam/security-credentials/sigil-parent ")
                {
                    Some(CREDS.to_string())
                } else {
                    None
                };
                let resp = match body {
                    Some(b) => format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{b}", b.len()),
                    None => "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n".to_string(),
                };
                s.write_all(resp.as_bytes()).unwrap();
            }
        });
        at
    }

    #[test]
    fn imdsv2_against_a_local_fake() {
        let c = fetch(&Source::Imds(fake_imds())).unwrap();
        assert_eq!(c.access_key_id, "ASIAEXAMPLE");
        assert_eq!(c.secret_access_key, "secretEXAMPLE");
        assert_eq!(c.session_token.as_deref(), Some("tokenEXAMPLE"));
        assert_eq!(c.expiration.as_deref(), Some("2026-11-21T16:00:00Z"));
        assert!(
            !format!("{c:?}").contains("secret"),
            "Debug must not show the secret"
        );
    }

    #[test]
    fn http_and_json_errors() {
        assert_eq!(
            parse_http(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nabXX").unwrap(),
            "ab"
        );
        for (raw, want) in [
            (&b"HTTP/1.1 404 Not Found\r\n\r\n"[..], "status"),
            (b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nab", "shorter"),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                "chunked",
            ),
            (b"HTTP/1.1 200 OK\r\n", "end of headers"),
            (b"\xff", "UTF-8"),
        ] {
            let e = parse_http(raw).unwrap_err();
            assert!(e.contains(want), "{e}");
        }
        assert!(parse_imds_credentials(r#"{"Code":"Failed"}"#).is_err());
        assert!(
            parse_imds_credentials("not json")
                .unwrap_err()
                .contains("IMDS credentials")
        );
    }

    #[test]
    fn environment_and_encoding() {
        let env = |k: &str| match k {
            "AWS_ACCESS_KEY_ID" => Some("AKIA".to_string()),
            "AWS_SECRET_ACCESS_KEY" => Some("s".to_string()),
            _ => None,
        };
        let c = from_env(env).unwrap();
        assert_eq!(c.session_token, None);
        assert!(
            from_env(|_| None)
                .unwrap_err()
                .contains("AWS_ACCESS_KEY_ID")
        );
        // Same framing conventions as the blob replies: a map with v and ok.
        let enc = encode(&Ok(c));
        let mut d = minicbor::Decoder::new(&enc);
        assert_eq!(d.map().unwrap(), Some(4));
        assert_eq!(d.str().unwrap(), "v");
        let err = encode(&Err("no role".into()));
        assert!(err.windows(7).any(|w| w == b"no role"));
    }
}
