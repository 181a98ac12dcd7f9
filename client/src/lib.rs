//! The sigil client: verifies an enclave's attestation before trusting it, then talks to it
//! through bodies sealed to the attested key, so the untrusted parent in between sees only
//! ciphertext and cannot forge answers.

pub mod policy;

use std::time::Duration;

use base64::Engine;
use sigil_attestation::{Policy, TrustedRoot, Verified, VerifyError};
use sigil_protocol::api::{
    AttestationResponse, ENCAPSULATED_CONTENT_TYPE, ErrorBody, PATH_ATTESTATION, PATH_PING,
    PingRequest, PingResponse, ROUTE_PING,
};
use sigil_protocol::encap::{self, EncapError};
use sigil_protocol::user_data::ImageInfo;
use sigil_protocol::vault;

pub use owner::OwnerKey;

pub mod owner;
pub mod prove;
pub mod signing;

pub use signing::SignerKey;

/// Largest response body the client reads.
pub const MAX_RESPONSE: u64 = 4 << 20;

/// What a user is told whenever a document chains to the sigil test root.
pub const TEST_ROOT_WARNING: &str = "NOT FROM AWS HARDWARE: this document is signed by the sigil test root (a simulated NSM), so it proves nothing about what code runs where";

#[derive(Debug)]
pub enum ClientError {
    /// The endpoint could not be reached or answered with something that is not HTTP.
    Transport(String),
    /// The enclave answered with an API error.
    Api {
        status: u16,
        code: String,
        message: String,
    },
    /// The answer was not what the protocol says.
    Protocol(String),
    /// The attestation document did not verify.
    Verify(VerifyError),
    /// Encapsulation failed (including an answer not sealed by the attested enclave).
    Encap(EncapError),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Transport(m) => write!(f, "transport: {m}"),
            ClientError::Api {
                status,
                code,
                message,
            } => write!(f, "enclave error {status} {code}: {message}"),
            ClientError::Protocol(m) => write!(f, "protocol: {m}"),
            ClientError::Verify(e) => write!(f, "{e}"),
            ClientError::Encap(e) => write!(f, "encapsulation: {e}"),
        }
    }
}

impl std::error::Error for ClientError {}

/// An enclave whose attestation verified: its per-boot key and what it says it is.
#[derive(Debug)]
pub struct AttestedEnclave {
    /// The document as received (COSE_Sign1 bytes).
    pub raw: Vec<u8>,
    pub verified: Verified,
    pub public_key: [u8; 32],
    pub image: ImageInfo,
}

impl AttestedEnclave {
    /// Checks what an API client needs beyond the document's signature: an X25519 key to
    /// seal requests to, and a sigil image description.
    pub fn from_verified(raw: Vec<u8>, verified: Verified) -> Result<Self, ClientError> {
        let doc = &verified.document;
        let pk = doc
            .public_key
            .as_deref()
            .ok_or_else(|| ClientError::Protocol("document carries no public_key".into()))?;
        let public_key: [u8; 32] = pk.try_into().map_err(|_| {
            ClientError::Protocol(format!(
                "public_key is {} bytes, not a 32-byte X25519 key",
                pk.len()
            ))
        })?;
        let ud = doc
            .user_data
            .as_deref()
            .ok_or_else(|| ClientError::Protocol("document carries no user_data".into()))?;
        let image = ImageInfo::from_cbor(ud)
            .map_err(|e| ClientError::Protocol(format!("user_data is not a sigil image: {e}")))?;
        Ok(AttestedEnclave {
            raw,
            verified,
            public_key,
            image,
        })
    }

    pub fn is_test_root(&self) -> bool {
        matches!(self.verified.root, TrustedRoot::SigilTestRoot)
    }
}

pub struct Client {
    agent: ureq::Agent,
    base: String,
}

impl Client {
    /// `endpoint` is `http://HOST:PORT`.
    pub fn new(endpoint: &str) -> Result<Client, ClientError> {
        let base = endpoint.trim_end_matches('/').to_string();
        if !base.starts_with("http://") {
            return Err(ClientError::Transport(format!(
                "endpoint {endpoint:?} must start with http:// (the channel's security comes from attestation and HPKE, not TLS)"
            )));
        }
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(30)))
            .http_status_as_error(false)
            .max_redirects(0)
            .build()
            .into();
        Ok(Client { agent, base })
    }

    /// `GET path`: the body of a 200 answer, or the API error.
    pub fn get_json(&self, path: &str) -> Result<Vec<u8>, ClientError> {
        let resp = self
            .agent
            .get(&format!("{}{}", self.base, path))
            .call()
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        read_ok(resp)
    }

    /// Fetches a raw attestation document bound to `nonce`.
    pub fn attestation_document(&self, nonce: &[u8]) -> Result<Vec<u8>, ClientError> {
        let url = format!(
            "{}{}?nonce={}",
            self.base,
            PATH_ATTESTATION,
            hex::encode(nonce)
        );
        let resp = self
            .agent
            .get(&url)
            .call()
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        let body = read_ok(resp)?;
        let r: AttestationResponse = serde_json::from_slice(&body)
            .map_err(|e| ClientError::Protocol(format!("attestation response: {e}")))?;
        base64::engine::general_purpose::STANDARD
            .decode(r.document.as_bytes())
            .map_err(|e| ClientError::Protocol(format!("attestation document base64: {e}")))
    }

    /// Attests the enclave with a fresh random nonce and verifies the answer under `policy`
    /// (whose nonce is replaced by the fresh one).
    pub fn attest(&self, mut policy: Policy) -> Result<AttestedEnclave, ClientError> {
        let mut nonce = [0u8; 32];
        getrandom::fill(&mut nonce)
            .map_err(|e| ClientError::Transport(format!("no randomness for a nonce: {e}")))?;
        let doc = self.attestation_document(&nonce)?;
        policy.nonce = Some(nonce.to_vec());
        let verified = sigil_attestation::verify(&doc, &policy).map_err(ClientError::Verify)?;
        AttestedEnclave::from_verified(doc, verified)
    }

    /// Sends `plaintext` sealed to the enclave's attested key and opens its sealed answer.
    pub fn call_encapsulated(
        &self,
        enclave: &AttestedEnclave,
        route: &str,
        path: &str,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, ClientError> {
        let (body, opener) = encap::seal_request(&enclave.public_key, route, plaintext)
            .map_err(ClientError::Encap)?;
        let resp = self
            .agent
            .post(&format!("{}{}", self.base, path))
            .header("content-type", ENCAPSULATED_CONTENT_TYPE)
            .send(&body[..])
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        let status = resp.status().as_u16();
        let encapsulated = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            == Some(ENCAPSULATED_CONTENT_TYPE);
        if (200..300).contains(&status) || !encapsulated {
            let sealed = read_ok(resp)?;
            return opener.open(route, &sealed).map_err(ClientError::Encap);
        }
        // An error the enclave sealed to us (it came after our request was opened).
        let mut resp = resp;
        let sealed = resp
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE)
            .read_to_vec()
            .map_err(|e| ClientError::Transport(format!("reading response: {e}")))?;
        let plain = opener.open(route, &sealed).map_err(ClientError::Encap)?;
        let e: ErrorBody = serde_json::from_slice(&plain)
            .map_err(|e| ClientError::Protocol(format!("sealed error body: {e}")))?;
        Err(ClientError::Api {
            status,
            code: e.error.code,
            message: e.error.message,
        })
    }

    fn vault_call<T: serde::de::DeserializeOwned>(
        &self,
        enclave: &AttestedEnclave,
        route: &str,
        path: &str,
        req: &impl serde::Serialize,
    ) -> Result<T, ClientError> {
        let body = zeroize::Zeroizing::new(
            serde_json::to_vec(req).map_err(|e| ClientError::Protocol(e.to_string()))?,
        );
        let plain = zeroize::Zeroizing::new(self.call_encapsulated(enclave, route, path, &body)?);
        serde_json::from_slice(&plain)
            .map_err(|e| ClientError::Protocol(format!("vault response: {e}")))
    }

    /// Stores `value` under `name`, owned by `owner` (create: `expected_version` 0).
    pub fn vault_put(
        &self,
        enclave: &AttestedEnclave,
        owner: &OwnerKey,
        name: &str,
        value: &[u8],
        expected_version: u64,
    ) -> Result<vault::Written, ClientError> {
        let not_after = owner.not_after();
        let x = owner.x_only();
        let d = vault::digest(
            vault::Op::Put,
            name,
            expected_version,
            Some(value),
            Some(&x),
            not_after,
        );
        let req = vault::PutRequest {
            name: name.into(),
            value: base64::engine::general_purpose::STANDARD.encode(value),
            owner: hex::encode(x),
            expected_version,
            not_after,
            signature: owner.sign(&d)?,
        };
        self.vault_call(enclave, vault::ROUTE_VAULT_PUT, vault::PATH_VAULT_PUT, &req)
    }

    /// Reads `name` (the owner's signature is required).
    pub fn vault_get(
        &self,
        enclave: &AttestedEnclave,
        owner: &OwnerKey,
        name: &str,
    ) -> Result<(Vec<u8>, u64), ClientError> {
        let not_after = owner.not_after();
        let d = vault::digest(vault::Op::Get, name, 0, None, None, not_after);
        let req = vault::NameRequest {
            name: name.into(),
            expected_version: 0,
            not_after,
            signature: owner.sign(&d)?,
        };
        let e: vault::Entry =
            self.vault_call(enclave, vault::ROUTE_VAULT_GET, vault::PATH_VAULT_GET, &req)?;
        if e.name != name || e.owner != hex::encode(owner.x_only()) {
            return Err(ClientError::Protocol(
                "the vault answered for another entry".into(),
            ));
        }
        let value = base64::engine::general_purpose::STANDARD
            .decode(e.value.as_bytes())
            .map_err(|e| ClientError::Protocol(format!("vault value: {e}")))?;
        Ok((value, e.version))
    }

    /// Deletes `name` at `expected_version`.
    pub fn vault_delete(
        &self,
        enclave: &AttestedEnclave,
        owner: &OwnerKey,
        name: &str,
        expected_version: u64,
    ) -> Result<(), ClientError> {
        let not_after = owner.not_after();
        let d = vault::digest(
            vault::Op::Delete,
            name,
            expected_version,
            None,
            None,
            not_after,
        );
        let req = vault::NameRequest {
            name: name.into(),
            expected_version,
            not_after,
            signature: owner.sign(&d)?,
        };
        let _: vault::Written = self.vault_call(
            enclave,
            vault::ROUTE_VAULT_DELETE,
            vault::PATH_VAULT_DELETE,
            &req,
        )?;
        Ok(())
    }

    pub fn ping(
        &self,
        enclave: &AttestedEnclave,
        message: &str,
    ) -> Result<PingResponse, ClientError> {
        let req = serde_json::to_vec(&PingRequest {
            message: message.to_string(),
        })
        .map_err(|e| ClientError::Protocol(e.to_string()))?;
        let plain = self.call_encapsulated(enclave, ROUTE_PING, PATH_PING, &req)?;
        let resp: PingResponse = serde_json::from_slice(&plain)
            .map_err(|e| ClientError::Protocol(format!("ping response: {e}")))?;
        if resp.message != message {
            return Err(ClientError::Protocol(
                "ping echoed a different message".into(),
            ));
        }
        Ok(resp)
    }
}

fn read_ok(mut resp: ureq::http::Response<ureq::Body>) -> Result<Vec<u8>, ClientError> {
    let status = resp.status().as_u16();
    let body = resp
        .body_mut()
        .with_config()
        .limit(MAX_RESPONSE)
        .read_to_vec()
        .map_err(|e| ClientError::Transport(format!("reading response: {e}")))?;
    if (200..300).contains(&status) {
        return Ok(body);
    }
    match serde_json::from_slice::<ErrorBody>(&body) {
        Ok(e) => Err(ClientError::Api {
            status,
            code: e.error.code,
            message: e.error.message,
        }),
        Err(_) => Err(ClientError::Api {
            status,
            code: "unknown".into(),
            message: String::from_utf8_lossy(&body).chars().take(200).collect(),
        }),
    }
}
