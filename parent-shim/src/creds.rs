//! Credentials for the enclave's KMS calls: the parent's own AWS credentials, from the
//! environment or from IMDSv2. The enclave needs them to sign KMS requests; KMS releases the
//! data key only to an attested enclave (`Recipient`), so these credentials alone are worth
//! no more to the enclave than they already are to the parent.
//!
//! Protocol: [`sigil_protocol::parent::credentials`]: the enclave connects, the shim sends
//! one frame and closes. There is no request to parse: the connection is the request.

use std::time::Duration;

use sigil_protocol::parent::credentials::{self as frame, Refusal};
use zeroize::Zeroizing;

pub use sigil_protocol::parent::credentials::Credentials;

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

/// Why the shim has no credentials for the enclave; the text is sent to the enclave as the
/// refusal's message (it holds no secret).
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("{0} is not set")]
    NotSet(&'static str),
    #[error("IMDS {method} {path}: {source}")]
    Http {
        method: String,
        path: String,
        #[source]
        source: ureq::Error,
    },
    #[error("IMDS {method} {path}: status {status}")]
    Status {
        method: String,
        path: String,
        status: ureq::http::StatusCode,
    },
    #[error("IMDS {path}: answer larger than {MAX_HTTP_RESPONSE} bytes")]
    TooLarge { path: String },
    #[error("IMDS token is not a printable token")]
    BadToken,
    #[error("the instance has no usable IAM role")]
    NoRole,
    #[error("IMDS credentials: {0}")]
    Json(#[source] serde_json::Error),
    #[error("IMDS credentials: Code is {0:?}")]
    Code(String),
    /// Answering the enclave failed.
    #[error(transparent)]
    Io(std::io::Error),
}

pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<Credentials, CredentialsError> {
    let need = |k: &'static str| {
        get(k)
            .filter(|v| !v.is_empty())
            .ok_or(CredentialsError::NotSet(k))
    };
    Ok(Credentials {
        access_key_id: need("AWS_ACCESS_KEY_ID")?,
        secret_access_key: Zeroizing::new(need("AWS_SECRET_ACCESS_KEY")?),
        session_token: get("AWS_SESSION_TOKEN")
            .filter(|v| !v.is_empty())
            .map(Zeroizing::new),
        expiration: None,
    })
}

pub fn fetch(source: &Source) -> Result<Credentials, CredentialsError> {
    match source {
        Source::Env => from_env(|k| std::env::var(k).ok()),
        Source::Imds(at) => imds(at),
    }
}

/// The IMDS agent: plain HTTP (IMDS has no TLS), every exchange bounded by [`IMDS_TIMEOUT`],
/// no proxy from the environment (IMDSv2 tokens must not cross a hop), no redirects.
fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(IMDS_TIMEOUT))
        .proxy(None)
        .max_redirects(0)
        .max_idle_connections(0)
        .http_status_as_error(false)
        .max_response_header_size(MAX_HTTP_RESPONSE as usize)
        .build()
        .into()
}

/// One exchange; returns the body of a 200 answer, at most [`MAX_HTTP_RESPONSE`] bytes.
fn http(
    agent: &ureq::Agent,
    at: &str,
    method: &str,
    path: &str,
    header: (&str, &str),
) -> Result<String, CredentialsError> {
    let url = format!("http://{at}{path}");
    let fail = |source: ureq::Error| CredentialsError::Http {
        method: method.into(),
        path: path.into(),
        source,
    };
    let mut resp = match method {
        // A PUT with an empty body, as IMDSv2 wants for the token.
        "PUT" => agent
            .put(&url)
            .header(header.0, header.1)
            .send_empty()
            .map_err(fail)?,
        _ => agent
            .get(&url)
            .header(header.0, header.1)
            .call()
            .map_err(fail)?,
    };
    let status = resp.status();
    if status != 200 {
        return Err(CredentialsError::Status {
            method: method.into(),
            path: path.into(),
            status,
        });
    }
    resp.body_mut()
        .with_config()
        .limit(MAX_HTTP_RESPONSE)
        .read_to_string()
        .map_err(|e| match e {
            ureq::Error::BodyExceedsLimit(_) => CredentialsError::TooLarge { path: path.into() },
            e => fail(e),
        })
}

fn imds(at: &str) -> Result<Credentials, CredentialsError> {
    let agent = agent();
    let token = http(
        &agent,
        at,
        "PUT",
        "/latest/api/token",
        ("X-aws-ec2-metadata-token-ttl-seconds", "60"),
    )?;
    let token = token.trim();
    if token.is_empty() || token.len() > 1024 || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(CredentialsError::BadToken);
    }
    let h = ("X-aws-ec2-metadata-token", token);
    let roles = http(
        &agent,
        at,
        "GET",
        "/latest/meta-data/iam/security-credentials/",
        h,
    )?;
    let role = roles.lines().next().unwrap_or_default().trim();
    // IAM role names are [\w+=,.@-]{1,64}; anything else must not reach a request path.
    if role.is_empty()
        || role.len() > 64
        || !role
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c))
    {
        return Err(CredentialsError::NoRole);
    }
    let body = Zeroizing::new(http(
        &agent,
        at,
        "GET",
        &format!("/latest/meta-data/iam/security-credentials/{role}"),
        h,
    )?);
    parse_imds_credentials(&body)
}

pub fn parse_imds_credentials(body: &str) -> Result<Credentials, CredentialsError> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct J {
        code: String,
        access_key_id: String,
        secret_access_key: String,
        token: Option<String>,
        expiration: Option<String>,
    }
    let j: J = serde_json::from_str(body).map_err(CredentialsError::Json)?;
    if j.code != "Success" {
        return Err(CredentialsError::Code(j.code.chars().take(40).collect()));
    }
    Ok(Credentials {
        access_key_id: j.access_key_id,
        secret_access_key: Zeroizing::new(j.secret_access_key),
        session_token: j.token.map(Zeroizing::new),
        expiration: j.expiration,
    })
}

/// Serves one request: fetch fresh (temporary credentials rotate), send, close.
pub fn handle(mut s: sigil_sys::Stream, source: &Source) -> Result<(), CredentialsError> {
    s.set_write_timeout(Some(IMDS_TIMEOUT))
        .map_err(CredentialsError::Io)?;
    // The error text is ours (no secret in it); the credentials themselves are never logged.
    let (answer, failed) = match fetch(source) {
        Ok(c) => (Ok(c), None),
        Err(e) => {
            let refusal = Refusal {
                code: frame::UNAVAILABLE.into(),
                message: e.to_string(),
            };
            (Err(refusal), Some(e))
        }
    };
    frame::write(&mut s, &answer).map_err(CredentialsError::Io)?;
    failed.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};

    const CREDS: &str = r#"{
  "Code" : "Success",
  "LastUpdated" : "2026-11-21T10:00:00Z",
  "Type" : "AWS-HMAC",
  "AccessKeyId" : "ASIAEXAMPLE",
  "SecretAccessKey" : "secretEXAMPLE",
  "Token" : "tokenEXAMPLE",
  "Expiration" : "2026-11-21T16:00:00Z"
}"#;

    /// A server on 127.0.0.1 that runs `handle` on every connection; returns its address.
    fn local_server(handle: impl Fn(TcpStream) + Send + 'static) -> String {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let at = l.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            for s in l.incoming() {
                handle(s.unwrap());
            }
        });
        at
    }

    /// A fake IMDSv2 on 127.0.0.1 that insists on the token, like the real one.
    fn fake_imds() -> String {
        local_server(|mut s| {
            let mut buf = [0u8; 4096];
            let n = s.read(&mut buf).unwrap();
            let req = String::from_utf8_lossy(&buf[..n]).to_string();
            // Header names are case-insensitive (ureq sends them in lower case).
            let headers = req.to_ascii_lowercase();
            let body = if req.starts_with("PUT /latest/api/token ")
                && headers.contains("x-aws-ec2-metadata-token-ttl-seconds: 60")
            {
                Some("TOKEN123".to_string())
            } else if !headers.contains("x-aws-ec2-metadata-token: token123") {
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
        })
    }

    #[test]
    fn imdsv2_against_a_local_fake() {
        let c = fetch(&Source::Imds(fake_imds())).unwrap();
        assert_eq!(c.access_key_id, "ASIAEXAMPLE");
        assert_eq!(c.secret_access_key.as_str(), "secretEXAMPLE");
        assert_eq!(
            c.session_token.as_deref().map(|t| t.as_str()),
            Some("tokenEXAMPLE")
        );
        assert_eq!(c.expiration.as_deref(), Some("2026-11-21T16:00:00Z"));
        assert!(
            !format!("{c:?}").contains("secret"),
            "Debug must not show the secret"
        );
    }

    /// A server that answers every connection with `raw`, whatever was asked.
    fn canned(raw: Vec<u8>) -> String {
        local_server(move |mut s| {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = s.write_all(&raw);
        })
    }

    #[test]
    fn http_and_json_errors() {
        let agent = agent();
        let get = |at: &str| http(&agent, at, "GET", "/x", ("X-a", "b"));
        let ok = canned(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nabXX".to_vec());
        assert_eq!(get(&ok).unwrap(), "ab");
        let mut big = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
            MAX_HTTP_RESPONSE + 1
        )
        .into_bytes();
        big.resize(big.len() + MAX_HTTP_RESPONSE as usize + 1, b'a');
        for (raw, want) in [
            (
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec(),
                "status 404",
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nab".to_vec(),
                "IMDS GET /x",
            ),
            (b"garbage\r\n\r\n".to_vec(), "IMDS GET /x"),
            (big, "larger than"),
        ] {
            let e = get(&canned(raw)).unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        }
        assert!(parse_imds_credentials(r#"{"Code":"Failed"}"#).is_err());
        assert!(
            parse_imds_credentials("not json")
                .unwrap_err()
                .to_string()
                .contains("IMDS credentials")
        );
    }

    #[test]
    fn environment() {
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
                .to_string()
                .contains("AWS_ACCESS_KEY_ID")
        );
    }
}
