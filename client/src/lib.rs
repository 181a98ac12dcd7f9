#![doc = include_str!("../README.md")]

pub mod policy;

use std::time::Duration;

use sigil_attestation::{Policy, TrustedRoot, Verified, VerifyError};
use sigil_protocol::api::{AttestationQuery, ENCAPSULATED_CONTENT_TYPE, ErrorBody, PingRequest};
use sigil_protocol::encap::{self, EncapError};
use sigil_protocol::endpoint::{self as ep, Endpoint, EndpointInfo, Method};
use sigil_protocol::user_data::ImageInfo;
use sigil_protocol::vault;
use sigil_protocol::wire::{Hex, HexBytes, SecretBase64};
use zeroize::Zeroizing;

pub use sigil_protocol::api::PingResponse;
pub use sigil_protocol::error::{Code, ServerCode};

pub use owner::OwnerKey;

pub mod frost;
pub mod musig2;
pub mod owner;
pub mod prove;
pub mod quorum;
pub mod registry;

pub use musig2::SignerKey;

/// Asks the enclave to keep the connection for the next request (it closes after each answer
/// otherwise): a session's requests then share one connection, with no connect, PROXY header
/// or connection thread per request.
const KEEP_ALIVE: (&str, &str) = ("connection", "keep-alive");

/// Largest response body the client reads.
pub const MAX_RESPONSE: u64 = 4 << 20;

/// What a user is told whenever a document chains to the sigil test root.
pub const TEST_ROOT_WARNING: &str = "NOT FROM AWS HARDWARE: this document is signed by the sigil test root (a simulated NSM), so it proves nothing about what code runs where";

/// Everything a call to an enclave can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The endpoint could not be reached or answered with something that is not HTTP.
    #[error("transport: {0}")]
    Transport(String),
    /// The enclave answered with an API error. `code` is one of [`Code`], or text this build
    /// does not know (an enclave of another version).
    #[error("enclave error {status} {code}: {message}")]
    Api {
        status: u16,
        code: ServerCode,
        message: String,
    },
    /// A wait gave up: its time limit passed before what it waited for happened (the
    /// operation may still be under way in the enclave).
    #[error("timed out: {0}")]
    Timeout(String),
    /// The answer was not what the protocol says.
    #[error("protocol: {0}")]
    Protocol(String),
    /// A MuSig2 session is not the one its approver or signer expects: `field` names the
    /// first input of the approval that differs.
    #[error("refusing the session: {field}: expected {expected}, the session has {found}")]
    SessionMismatch {
        field: String,
        expected: String,
        found: String,
    },
    /// The attestation document did not verify.
    #[error("{0}")]
    Verify(#[from] VerifyError),
    /// Encapsulation failed (including an answer not sealed by the attested enclave).
    #[error("encapsulation: {0}")]
    Encap(#[from] EncapError),
}

impl ClientError {
    /// The API error's code, if the enclave answered with one.
    pub fn code(&self) -> Option<&ServerCode> {
        match self {
            ClientError::Api { code, .. } => Some(code),
            _ => None,
        }
    }
}

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

/// ureq resolves the endpoint's host before every request, kept-alive connection or not, and
/// with a timeout set (always, here) its resolver spawns a thread for each lookup. An
/// endpoint given as an IP address (`http://127.0.0.1:8443`, `http://[::1]:8443`) needs no
/// lookup: its address is parsed here, without a thread. Other hosts go to ureq's resolver.
#[derive(Debug, Default)]
struct LiteralResolver(ureq::unversioned::resolver::DefaultResolver);

impl ureq::unversioned::resolver::Resolver for LiteralResolver {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        config: &ureq::config::Config,
        timeout: ureq::unversioned::transport::NextTimeout,
    ) -> Result<ureq::unversioned::resolver::ResolvedSocketAddrs, ureq::Error> {
        let literal = uri.authority().and_then(|a| {
            let host = a.host();
            let host = host
                .strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .unwrap_or(host);
            Some(std::net::SocketAddr::new(host.parse().ok()?, a.port_u16()?))
        });
        match literal {
            Some(addr) => {
                let mut addrs = self.empty();
                addrs.push(addr);
                Ok(addrs)
            }
            None => self.0.resolve(uri, config, timeout),
        }
    }
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
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(30)))
            .http_status_as_error(false)
            .max_redirects(0)
            // Reused connections (see KEEP_ALIVE): idle ones are dropped before the enclave
            // would close them (it keeps one 5 s, and says 4).
            .max_idle_age(Duration::from_secs(3))
            .build();
        let agent = ureq::Agent::with_parts(
            config,
            ureq::unversioned::transport::DefaultConnector::default(),
            LiteralResolver::default(),
        );
        Ok(Client { agent, base })
    }

    /// Calls endpoint `E`: sealed to the attested enclave when `E` is encapsulated (and the
    /// answer opened), in the clear otherwise.
    pub fn call<E: Endpoint>(
        &self,
        enclave: &AttestedEnclave,
        request: &E::Request,
    ) -> Result<E::Response, ClientError> {
        if !E::ENCAPSULATED {
            return self.call_plain::<E>(request);
        }
        // Requests may hold secrets (a vault value, an imported key, a witness): encoded
        // without leaving copies behind.
        let body = sigil_protocol::wire::to_json_secret(request)
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        let plain = Zeroizing::new(self.call_raw::<E>(enclave, &body)?);
        serde_json::from_slice(&plain)
            .map_err(|e| ClientError::Protocol(format!("{} answer: {e}", E::ROUTE)))
    }

    /// Calls a plain endpoint (no attested enclave needed: nothing in it is secret, and a
    /// client must verify what it gets, e.g. the attestation document).
    pub fn call_plain<E: Endpoint>(
        &self,
        request: &E::Request,
    ) -> Result<E::Response, ClientError> {
        if E::ENCAPSULATED {
            return Err(ClientError::Protocol(format!(
                "{} is encapsulated: call it with an attested enclave",
                E::ROUTE
            )));
        }
        let url = format!("{}{}", self.base, E::target(request));
        let resp = match E::METHOD {
            Method::Get => self
                .agent
                .get(&url)
                .header(KEEP_ALIVE.0, KEEP_ALIVE.1)
                .call(),
            Method::Post => {
                let body = serde_json::to_vec(request)
                    .map_err(|e| ClientError::Protocol(e.to_string()))?;
                self.agent
                    .post(&url)
                    .header(KEEP_ALIVE.0, KEEP_ALIVE.1)
                    .header("content-type", "application/json")
                    .send(&body[..])
            }
        }
        .map_err(|e| ClientError::Transport(e.to_string()))?;
        let body = read_ok(resp)?;
        serde_json::from_slice(&body)
            .map_err(|e| ClientError::Protocol(format!("{} answer: {e}", E::ROUTE)))
    }

    /// Fetches a raw attestation document bound to `nonce`.
    pub fn attestation_document(&self, nonce: &[u8]) -> Result<Vec<u8>, ClientError> {
        let r = self.call_plain::<ep::Attestation>(&AttestationQuery {
            nonce: Some(HexBytes(nonce.to_vec())),
        })?;
        Ok(r.document.0)
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

    /// Sends `plaintext` to `E` sealed to the enclave's attested key and opens its sealed
    /// answer. [`Client::call`] is the typed form; this one sends any bytes (tests use it to
    /// send what the typed request cannot express).
    pub fn call_raw<E: Endpoint>(
        &self,
        enclave: &AttestedEnclave,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, ClientError> {
        self.call_raw_at(enclave, &E::INFO, plaintext)
    }

    /// As [`Client::call_raw`], for an encapsulated endpoint known only at run time (tests
    /// walk the endpoint table with it).
    pub fn call_raw_at(
        &self,
        enclave: &AttestedEnclave,
        info: &EndpointInfo,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, ClientError> {
        let route = info.route;
        let (body, opener) = encap::seal_request(&enclave.public_key, route, plaintext)?;
        // A large body (a proving submission of tens of MiB) gets time to travel: the usual
        // 30 s, plus a second per MiB.
        let timeout = Duration::from_secs(30 + (body.len() >> 20) as u64);
        let resp = self
            .agent
            .post(&format!("{}{}", self.base, info.path))
            .header(KEEP_ALIVE.0, KEEP_ALIVE.1)
            .header("content-type", ENCAPSULATED_CONTENT_TYPE)
            .config()
            .timeout_global(Some(timeout))
            .build()
            .send(&body[..])
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        let encapsulated = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            == Some(ENCAPSULATED_CONTENT_TYPE);
        if !encapsulated {
            // An answer in the clear: the request was refused before it was opened (too
            // large, not for this key...), or did not come from the enclave. Never a success.
            let status = resp.status().as_u16();
            read_ok(resp)?;
            return Err(ClientError::Protocol(format!(
                "{route}: the answer (HTTP {status}) is not sealed to this request"
            )));
        }
        // Only the sealed status counts: the HTTP status line is the relay's to rewrite.
        let sealed = read_body(resp)?;
        let (status, plain) = opener.open(route, &sealed)?;
        if (200..300).contains(&status) {
            return Ok(plain);
        }
        let plain = Zeroizing::new(plain);
        let e: ErrorBody = serde_json::from_slice(&plain)
            .map_err(|e| ClientError::Protocol(format!("sealed error body: {e}")))?;
        Err(ClientError::Api {
            status,
            code: e.error.code,
            message: e.error.message,
        })
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
            value: SecretBase64::copy_of(value),
            owner: Hex(x),
            expected_version,
            not_after,
            signature: owner.sign_for(enclave, &d)?,
        };
        self.call::<ep::VaultPut>(enclave, &req)
    }

    /// Reads `name` (the owner's signature is required).
    pub fn vault_get(
        &self,
        enclave: &AttestedEnclave,
        owner: &OwnerKey,
        name: &str,
    ) -> Result<(Zeroizing<Vec<u8>>, u64), ClientError> {
        let req = name_request(owner, enclave, vault::Op::Get, name, 0)?;
        let e = self.call::<ep::VaultGet>(enclave, &req)?;
        if e.name != name || e.owner != owner.x_only() {
            return Err(ClientError::Protocol(
                "the vault answered for another entry".into(),
            ));
        }
        let version = e.version;
        Ok((e.value.into_inner(), version))
    }

    /// Deletes `name` at `expected_version`.
    pub fn vault_delete(
        &self,
        enclave: &AttestedEnclave,
        owner: &OwnerKey,
        name: &str,
        expected_version: u64,
    ) -> Result<(), ClientError> {
        let req = name_request(owner, enclave, vault::Op::Delete, name, expected_version)?;
        self.call::<ep::VaultDelete>(enclave, &req)?;
        Ok(())
    }

    /// Asks `enclave` to verify another enclave's attestation `document` against its measured
    /// peer policy; its sealed answer names the peer's node and per-boot key.
    pub fn peers_verify(
        &self,
        enclave: &AttestedEnclave,
        document: &[u8],
    ) -> Result<sigil_protocol::peers::PeerView, ClientError> {
        let req = sigil_protocol::peers::VerifyPeerRequest {
            document: sigil_protocol::wire::Base64Bytes(document.to_vec()),
        };
        self.call::<sigil_protocol::endpoint::PeersVerify>(enclave, &req)
    }

    /// Asks `enclave` to seal a ping to the enclave whose attestation `recipient_document` is:
    /// the sealed peer message, for the caller to carry to the recipient.
    pub fn peers_ping_send(
        &self,
        enclave: &AttestedEnclave,
        recipient_document: &[u8],
        session: [u8; 32],
        text: &str,
    ) -> Result<sigil_protocol::peers::PeerMessage, ClientError> {
        let req = sigil_protocol::peers::PeerPingSend {
            recipient_document: sigil_protocol::wire::Base64Bytes(recipient_document.to_vec()),
            session: sigil_protocol::wire::Hex(session),
            text: text.to_string(),
        };
        self.call::<sigil_protocol::endpoint::PeersPingSend>(enclave, &req)
    }

    /// Hands `enclave` a peer message addressed to it, with its sender's attestation
    /// document unless the enclave verified that sender recently.
    pub fn peers_ping_receive(
        &self,
        enclave: &AttestedEnclave,
        message: &sigil_protocol::peers::PeerMessage,
        sender_document: Option<&[u8]>,
    ) -> Result<sigil_protocol::peers::PeerPingReceived, ClientError> {
        let req = sigil_protocol::peers::PeerPingReceive {
            message: message.clone(),
            sender_document: sender_document.map(|d| sigil_protocol::wire::Base64Bytes(d.to_vec())),
        };
        self.call::<sigil_protocol::endpoint::PeersPingReceive>(enclave, &req)
    }

    pub fn ping(
        &self,
        enclave: &AttestedEnclave,
        message: &str,
    ) -> Result<PingResponse, ClientError> {
        let resp = self.call::<ep::Ping>(
            enclave,
            &PingRequest {
                message: message.to_string(),
            },
        )?;
        if resp.message != message {
            return Err(ClientError::Protocol(
                "ping echoed a different message".into(),
            ));
        }
        Ok(resp)
    }
}

/// A vault request naming an entry (get, delete), signed by `owner`.
fn name_request(
    owner: &OwnerKey,
    enclave: &AttestedEnclave,
    op: vault::Op,
    name: &str,
    expected_version: u64,
) -> Result<vault::NameRequest, ClientError> {
    let not_after = owner.not_after();
    let d = vault::digest(op, name, expected_version, None, None, not_after);
    Ok(vault::NameRequest {
        name: name.into(),
        expected_version,
        not_after,
        signature: owner.sign_for(enclave, &d)?,
    })
}

/// A response's body, up to [`MAX_RESPONSE`] bytes.
fn read_body(mut resp: ureq::http::Response<ureq::Body>) -> Result<Vec<u8>, ClientError> {
    resp.body_mut()
        .with_config()
        .limit(MAX_RESPONSE)
        .read_to_vec()
        .map_err(|e| ClientError::Transport(format!("reading response: {e}")))
}

fn read_ok(resp: ureq::http::Response<ureq::Body>) -> Result<Vec<u8>, ClientError> {
    let status = resp.status().as_u16();
    let body = read_body(resp)?;
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
            code: ServerCode::Other("unknown".into()),
            message: String::from_utf8_lossy(&body).chars().take(200).collect(),
        }),
    }
}
