//! Fetches AWS credentials from the shim's credentials port; the frame is
//! [`sigil_protocol::parent::credentials`].
//!
//! The credentials are the parent's own; they let the enclave sign KMS requests, and the key
//! policy's attestation conditions make them useless for getting the data key without this
//! enclave's attestation. They are still secrets of the parent: wiped on drop, never logged.

use sigil_kms::Credentials;
use sigil_protocol::parent::credentials as frame;
use sigil_sys::{Addr, Stream};

use super::TIMEOUT;

/// Why no credentials came from the parent.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("credentials service {addr}: {source}")]
    Connect {
        addr: Addr,
        #[source]
        source: std::io::Error,
    },
    #[error("credentials service: {0}")]
    Io(#[source] std::io::Error),
    #[error("credentials service: {0}")]
    Frame(#[source] frame::CredentialsError),
    /// The shim's refusal, made printable.
    #[error("the parent has no credentials to give: code={code} message={message}")]
    Refused { code: String, message: String },
}

pub fn fetch(addr: &Addr) -> Result<Credentials, CredentialsError> {
    let mut s = Stream::connect(addr).map_err(|source| CredentialsError::Connect {
        addr: addr.clone(),
        source,
    })?;
    s.set_timeouts(Some(TIMEOUT))
        .map_err(CredentialsError::Io)?;
    let answer = frame::read(&mut s).map_err(CredentialsError::Frame)?;
    into_kms(answer)
}

/// The frame's answer as the KMS client's credentials, or the shim's refusal as an error.
fn into_kms(answer: frame::Answer) -> Result<Credentials, CredentialsError> {
    match answer {
        Ok(c) => Ok(Credentials {
            access_key_id: c.access_key_id.clone(),
            // The protocol copies are wiped when `c` drops at the end of this arm.
            secret_access_key: c.secret_access_key.as_str().to_owned(),
            session_token: c.session_token.as_ref().map(|t| t.as_str().to_owned()),
        }),
        // Shown to the operator: bounded by the frame, made printable here.
        Err(r) => Err(CredentialsError::Refused {
            code: printable(&r.code, 64),
            message: printable(&r.message, 200),
        }),
    }
}

fn printable(s: &str, max: usize) -> String {
    s.chars()
        .take(max)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use zeroize::Zeroizing;

    #[test]
    fn answers_become_kms_credentials_or_errors() {
        let c = into_kms(Ok(frame::Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: Zeroizing::new("secret".into()),
            session_token: None,
            expiration: Some("2030-01-01T00:00:00Z".into()),
        }))
        .unwrap();
        assert_eq!(c.access_key_id, "AKIDEXAMPLE");
        assert_eq!(c.secret_access_key, "secret");
        assert_eq!(c.session_token, None);

        let err = into_kms(Err(frame::Refusal {
            code: frame::UNAVAILABLE.into(),
            message: "IMDS down\x1b[2J".into(),
        }))
        .unwrap_err()
        .to_string();
        assert!(err.contains("IMDS down?[2J"), "{err}");
    }
}
