//! A blocking KMS client for the enclave: one signed `POST /` per call over TLS that ends
//! inside the enclave, whatever carries the bytes (in the enclave, the parent's egress proxy).
//!
//! HTTP/1.1 is ureq's (through its `unversioned::transport` API): this module opens the byte
//! stream with a [`Connector`], runs the rustls handshake itself (so that the trust anchors,
//! the ring provider and the error reporting stay exactly ours), and hands ureq a transport
//! whose buffers are allocated once at a fixed size and wiped on drop. What ureq parses is
//! checked again here where it is more lenient than this client wants to be (body framing).
//!
//! The parent relays every byte, so it is treated as a network attacker: it can refuse,
//! delay, truncate or rewrite the stream, but without a certificate for
//! `kms.<region>.amazonaws.com` from a trusted root it can neither read the request nor forge
//! the answer. That is why [`Trust::AmazonRoots`] trusts only the roots KMS chains to and not
//! the whole public web PKI, and why every read is bounded in bytes and time.

use crate::api::{
    self, DecryptRequest, DecryptResponse, GenerateDataKeyRequest, GenerateDataKeyResponse,
    GenerateRandomRequest, GenerateRandomResponse, KmsApiError, Operation, RecipientResponse,
};
use crate::sigv4::{Credentials, SigV4Error, SigningTime};
use rustls::pki_types::{CertificateDer, ServerName, TrustAnchor};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use std::fmt;
use std::io::{self, Read, Write};
use std::marker::PhantomData;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};
use ureq::unversioned::resolver::{ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{self, Buffers, ConnectionDetails, NextTimeout, Transport};
use zeroize::Zeroizing;

/// Largest response head (status line and headers). KMS sends a few hundred bytes. ureq
/// parses at most 128 header fields.
pub const MAX_HEAD: usize = 16 * 1024;
/// The transport's input buffer: room for a whole head, which ureq needs in one piece. Body
/// bytes pass through it in pieces; the body itself is bounded by [`api::MAX_RESPONSE`].
const INPUT_BUFFER: usize = MAX_HEAD + 4 * 1024;
/// The transport's output buffer: the request head (a few hundred bytes of signed headers)
/// must fit; the body streams through it.
const OUTPUT_BUFFER: usize = 16 * 1024;
/// Upper bound on one call from connect to the end of the response, checked before every
/// read and write (each of which is bounded by the connector's timeout). Threat: a relay
/// trickling one byte per read timeout to hold the caller for hours.
pub const CALL_DEADLINE: Duration = Duration::from_secs(60);

/// Opens byte streams to KMS. `Send + Sync + 'static` because ureq keeps the connector in
/// its agent.
pub trait Connector: Send + Sync + 'static {
    type Conn: Read + Write + Send + Sync + 'static;
    /// Opens a byte stream to host:port (in the enclave: through the parent's egress proxy).
    fn connect(&self, host: &str, port: u16) -> io::Result<Self::Conn>;
}

/// Which certificates the client accepts for `kms.<region>.amazonaws.com`.
pub enum Trust {
    /// The Amazon Trust Services roots only (what `kms.<region>.amazonaws.com` chains to).
    AmazonRoots,
    /// These DER certificates only (development KMS's CA).
    Custom(Vec<Vec<u8>>),
    /// No TLS at all: for tests against a local moto server only.
    PlainHttpForTests,
}

/// Why a KMS call failed. Messages carry no secret: no credentials, no plaintext, and what
/// comes from the server is clipped by [`api::parse_response`].
#[derive(Debug, thiserror::Error)]
pub enum KmsError {
    /// The connector could not open the stream.
    #[error("cannot connect to KMS: {0}")]
    Connect(String),
    /// TLS setup, the handshake (e.g. an untrusted certificate) or a TLS record failed.
    #[error("TLS with KMS failed: {0}")]
    Tls(String),
    /// Sending or receiving failed after connecting (reset, timeout, deadline).
    #[error("KMS connection failed: {0}")]
    Io(String),
    /// The response is not acceptable HTTP/1.1 (bad framing, too large a head, cut short).
    #[error("bad HTTP response from KMS: {0}")]
    Http(String),
    /// KMS answered with an error, or with a body that is not the expected JSON.
    #[error("{0}")]
    Api(#[from] KmsApiError),
    /// The request could not be signed (bad region, credentials or time).
    #[error("cannot sign the KMS request: {0}")]
    Sign(#[from] SigV4Error),
}

/// Tests and development only: connects to one fixed address whatever the host name, with
/// `.1` as connect, read and write timeout. In the enclave the connector is the egress proxy.
pub struct FixedAddr(pub SocketAddr, pub Duration);

impl Connector for FixedAddr {
    type Conn = TcpStream;

    fn connect(&self, _host: &str, _port: u16) -> io::Result<TcpStream> {
        let s = TcpStream::connect_timeout(&self.0, self.1)?;
        s.set_read_timeout(Some(self.1))?;
        s.set_write_timeout(Some(self.1))?;
        s.set_nodelay(true)?;
        Ok(s)
    }
}

/// The subjects (RDNSequence contents, as in [`TrustAnchor::subject`]) of the roots that
/// KMS endpoints chain to: Amazon Root CA 1-4 and the Starfield Services G2 root that
/// cross-signs them. All attributes are PrintableStrings in these certificates.
fn amazon_root_subjects() -> Vec<Vec<u8>> {
    const C: &[u8] = &[0x55, 0x04, 0x06];
    const ST: &[u8] = &[0x55, 0x04, 0x08];
    const L: &[u8] = &[0x55, 0x04, 0x07];
    const O: &[u8] = &[0x55, 0x04, 0x0a];
    const CN: &[u8] = &[0x55, 0x04, 0x03];
    let mut out: Vec<Vec<u8>> = (1..=4)
        .map(|n| {
            rdn_sequence(&[
                (C, "US"),
                (O, "Amazon"),
                (CN, &format!("Amazon Root CA {n}")),
            ])
        })
        .collect();
    out.push(rdn_sequence(&[
        (C, "US"),
        (ST, "Arizona"),
        (L, "Scottsdale"),
        (O, "Starfield Technologies, Inc."),
        (CN, "Starfield Services Root Certificate Authority - G2"),
    ]));
    out
}

/// DER of `SET { SEQUENCE { OID, PrintableString } }` per attribute, concatenated.
fn rdn_sequence(attrs: &[(&[u8], &str)]) -> Vec<u8> {
    fn tlv(tag: u8, content: &[u8], out: &mut Vec<u8>) {
        out.push(tag);
        let len = content.len();
        if len < 0x80 {
            out.push(len as u8);
        } else {
            // Names here are far below 64 KiB: at most two length octets.
            out.push(0x82);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        out.extend_from_slice(content);
    }
    let mut out = Vec::new();
    for (oid, value) in attrs {
        let mut atv = Vec::new();
        tlv(0x06, oid, &mut atv);
        tlv(0x13, value.as_bytes(), &mut atv);
        let mut seq = Vec::new();
        tlv(0x30, &atv, &mut seq);
        tlv(0x31, &seq, &mut out);
    }
    out
}

/// The Amazon roots out of `webpki-roots` (Mozilla's root program as rustls trust anchors, a
/// crate kept by the rustls project for exactly this), matched on the whole subject.
///
/// Threat: with every public root trusted, any CA that mis-issues (or is made to issue) a
/// certificate for `kms.<region>.amazonaws.com` would let the parent impersonate KMS and feed
/// the enclave a data key of its choosing.
fn amazon_anchors() -> Vec<TrustAnchor<'static>> {
    let wanted = amazon_root_subjects();
    webpki_roots::TLS_SERVER_ROOTS
        .iter()
        .filter(|a| wanted.iter().any(|w| w.as_slice() == a.subject.as_ref()))
        .cloned()
        .collect()
}

/// Fewest Amazon roots accepted from `webpki-roots`: a release that dropped them would leave
/// the enclave unable to reach KMS, so it is refused when the client is built, not at the
/// first call.
const MIN_AMAZON_ROOTS: usize = 4;

fn valid_region(region: &str) -> bool {
    // Same rule as the SigV4 scope: the region becomes part of the host name and SNI, so a
    // `.` or `/` here could point the connection elsewhere (threat: request redirection).
    !region.is_empty()
        && region.len() <= 64
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// A blocking KMS client: one connection per call.
pub struct KmsClient<C: Connector> {
    agent: ureq::Agent,
    region: String,
    host: String,
    /// `https://<host>/`, or `http://` for [`Trust::PlainHttpForTests`].
    url: String,
    _connector: PhantomData<fn() -> C>,
}

impl<C: Connector> KmsClient<C> {
    /// Builds the client for `region`, trusting `trust`.
    pub fn new(connector: C, region: &str, trust: Trust) -> Result<Self, KmsError> {
        if !valid_region(region) {
            return Err(KmsError::Sign(SigV4Error::BadScope));
        }
        let host = api::host(region);
        let roots = match trust {
            Trust::PlainHttpForTests => None,
            Trust::AmazonRoots => {
                let anchors = amazon_anchors();
                if anchors.len() < MIN_AMAZON_ROOTS {
                    return Err(KmsError::Tls(format!(
                        "webpki-roots has {} of the Amazon roots, expected at least {MIN_AMAZON_ROOTS}",
                        anchors.len()
                    )));
                }
                let mut roots = RootCertStore::empty();
                roots.extend(anchors);
                Some(roots)
            }
            Trust::Custom(ders) => {
                if ders.is_empty() {
                    return Err(KmsError::Tls("no trust anchors given".into()));
                }
                let mut roots = RootCertStore::empty();
                for (i, der) in ders.into_iter().enumerate() {
                    roots.add(CertificateDer::from(der)).map_err(|e| {
                        KmsError::Tls(format!("trust anchor {i} is not usable: {e}"))
                    })?;
                }
                Some(roots)
            }
        };
        let tls = match roots {
            None => None,
            Some(roots) => {
                // Explicit ring provider: never whatever process-wide default another crate
                // in the build may have installed.
                let provider = Arc::new(rustls::crypto::ring::default_provider());
                let config = ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .map_err(|e| KmsError::Tls(e.to_string()))?
                    .with_root_certificates(roots)
                    .with_no_client_auth();
                let name = ServerName::try_from(host.clone())
                    .map_err(|e| KmsError::Tls(format!("server name: {e}")))?;
                Some((Arc::new(config), name))
            }
        };
        let (scheme, port) = if tls.is_some() {
            ("https", 443)
        } else {
            ("http", 80)
        };
        let url = format!("{scheme}://{host}/");
        let config = ureq::Agent::config_builder()
            // KMS errors come as 4xx/5xx with a JSON body that `api::parse_response` reads.
            .http_status_as_error(false)
            // KMS never redirects; a redirect would come from whoever relays the bytes.
            .max_redirects(0)
            // The connector decides where bytes go; an HTTP(S)_PROXY in the environment must
            // not change that.
            .proxy(None)
            // One connection per call, as before: no pooled stream outlives a call.
            .max_idle_connections(0)
            .max_idle_connections_per_host(0)
            // Only the signed headers (and Content-Length) go on the wire.
            .user_agent(ureq::config::AutoHeaderValue::None)
            .accept(ureq::config::AutoHeaderValue::None)
            .accept_encoding(ureq::config::AutoHeaderValue::None)
            .max_response_header_size(MAX_HEAD)
            .input_buffer_size(INPUT_BUFFER)
            .output_buffer_size(OUTPUT_BUFFER)
            .timeout_global(Some(CALL_DEADLINE))
            .build();
        let connector = StreamConnector {
            connector,
            host: host.clone(),
            port,
            tls,
        };
        Ok(KmsClient {
            agent: ureq::Agent::with_parts(config, connector, NoResolver),
            region: region.to_owned(),
            host,
            url,
            _connector: PhantomData,
        })
    }

    /// The host every call connects to and authenticates (`kms.<region>.amazonaws.com`).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// `TrentService.GenerateDataKey`. With a `Recipient`, the response must carry
    /// `CiphertextForRecipient` and no `Plaintext` (see [`api::recipient_ciphertext`]).
    pub fn generate_data_key(
        &self,
        creds: &Credentials,
        time: SigningTime,
        req: &GenerateDataKeyRequest,
    ) -> Result<GenerateDataKeyResponse, KmsError> {
        self.call(
            Operation::GenerateDataKey,
            creds,
            time,
            req,
            req.recipient.is_some(),
        )
    }

    /// `TrentService.Decrypt`. With a `Recipient`, as for [`Self::generate_data_key`].
    pub fn decrypt(
        &self,
        creds: &Credentials,
        time: SigningTime,
        req: &DecryptRequest,
    ) -> Result<DecryptResponse, KmsError> {
        self.call(
            Operation::Decrypt,
            creds,
            time,
            req,
            req.recipient.is_some(),
        )
    }

    /// `TrentService.GenerateRandom`. With a `Recipient`, as for [`Self::generate_data_key`].
    pub fn generate_random(
        &self,
        creds: &Credentials,
        time: SigningTime,
        req: &GenerateRandomRequest,
    ) -> Result<GenerateRandomResponse, KmsError> {
        self.call(
            Operation::GenerateRandom,
            creds,
            time,
            req,
            req.recipient.is_some(),
        )
    }

    fn call<Q, R>(
        &self,
        op: Operation,
        creds: &Credentials,
        time: SigningTime,
        req: &Q,
        with_recipient: bool,
    ) -> Result<R, KmsError>
    where
        Q: serde::Serialize,
        R: serde::de::DeserializeOwned + RecipientResponse,
    {
        let body = serde_json::to_vec(req)
            .map_err(|e| KmsError::Http(format!("request encoding: {e}")))?;
        let signed = api::request(op, body, &self.region, creds, time)?;
        let (status, body) = self.send(&signed)?;
        let resp: R = api::parse_response(status, &body)?;
        if with_recipient {
            // Threat: a KMS stand-in returning the secret in the clear next to (or instead
            // of) the envelope; the enclave must never get used to such an answer.
            api::recipient_ciphertext(&resp)?;
        }
        Ok(resp)
    }

    /// Sends the signed `POST /` and reads one response: `(status, body)`.
    fn send(&self, signed: &crate::sigv4::Request) -> Result<(u16, Zeroizing<Vec<u8>>), KmsError> {
        let mut req = self.agent.post(&self.url);
        // The header values were validated by the signer (no CR/LF); `Host` is among them.
        for (n, v) in &signed.headers {
            req = req.header(n.as_str(), v.as_str());
        }
        let mut resp = req.send(&signed.body[..]).map_err(from_ureq)?;
        let status = resp.status().as_u16();
        // We never send `Expect: 100-continue` nor ask for an upgrade, so an interim response
        // means the peer is not the KMS we talk to.
        if !(200..=599).contains(&status) {
            return Err(KmsError::Http(format!("unexpected status {status}")));
        }
        check_framing(resp.headers())?;
        let mut reader = resp
            .body_mut()
            .with_config()
            .limit(api::MAX_RESPONSE as u64 + 1)
            .reader();
        // Full capacity up front: a growing Vec would leave unwiped copies of the response
        // (which may hold a plaintext key) in freed memory.
        let mut body = Zeroizing::new(vec![0u8; api::MAX_RESPONSE + 1]);
        let mut len = 0;
        loop {
            match reader.read(&mut body[len..]) {
                Ok(0) => break,
                Ok(n) => len += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(from_ureq(ureq::Error::from(e))),
            }
            if len > api::MAX_RESPONSE {
                return Err(KmsError::Api(KmsApiError::TooLarge));
            }
        }
        body.truncate(len);
        Ok((status, body))
    }
}

/// Refuses the framings ureq would accept but this client does not: both `Content-Length`
/// and `Transfer-Encoding`, two different lengths, or a coding other than one `chunked`
/// (threat: two parties disagreeing on where the body ends, the root of response smuggling).
/// A declared length over [`api::MAX_RESPONSE`] is refused before any body byte is read.
fn check_framing(headers: &ureq::http::HeaderMap) -> Result<(), KmsError> {
    let mut length: Option<usize> = None;
    for v in headers.get_all(ureq::http::header::CONTENT_LENGTH) {
        let v = v
            .to_str()
            .ok()
            .map(str::trim)
            .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|v| v.parse::<usize>().ok())
            .ok_or_else(|| KmsError::Http("bad Content-Length".into()))?;
        if length.replace(v).is_some_and(|old| old != v) {
            return Err(KmsError::Http("conflicting Content-Length".into()));
        }
    }
    let codings: Vec<_> = headers
        .get_all(ureq::http::header::TRANSFER_ENCODING)
        .iter()
        .collect();
    match codings.as_slice() {
        [] => {}
        [v] if v
            .to_str()
            .is_ok_and(|v| v.trim().eq_ignore_ascii_case("chunked")) => {}
        _ => {
            return Err(KmsError::Http(
                "unsupported Transfer-Encoding (only a single chunked)".into(),
            ));
        }
    }
    match (length, codings.is_empty()) {
        (Some(_), false) => Err(KmsError::Http(
            "both Content-Length and Transfer-Encoding".into(),
        )),
        (Some(n), true) if n > api::MAX_RESPONSE => Err(KmsError::Api(KmsApiError::TooLarge)),
        _ => Ok(()),
    }
}

/// ureq's error as ours. What this module's connector and transport raised comes back as it
/// was; the rest is sorted by kind.
fn from_ureq(e: ureq::Error) -> KmsError {
    match e {
        ureq::Error::Other(inner) => match inner.downcast::<KmsError>() {
            Ok(ours) => *ours,
            Err(other) => KmsError::Http(other.to_string()),
        },
        ureq::Error::Io(io) => match io.get_ref().and_then(|i| i.downcast_ref::<KmsError>()) {
            Some(_) => from_ureq(ureq::Error::Other(
                io.into_inner()
                    .unwrap_or_else(|| Box::new(KmsError::Io("lost error".into()))),
            )),
            None if io.kind() == io::ErrorKind::UnexpectedEof => {
                KmsError::Http("connection closed before the response was complete".into())
            }
            None => KmsError::Io(io.to_string()),
        },
        ureq::Error::Timeout(_) => KmsError::Io(format!(
            "no complete response within {} s",
            CALL_DEADLINE.as_secs()
        )),
        ureq::Error::BodyExceedsLimit(_) => KmsError::Api(KmsApiError::TooLarge),
        ureq::Error::LargeResponseHeader(..) => KmsError::Http("response head too large".into()),
        ureq::Error::Protocol(p) => KmsError::Http(format!("malformed response: {p}")),
        other => KmsError::Http(other.to_string()),
    }
}

fn boxed(e: KmsError) -> ureq::Error {
    ureq::Error::Other(Box::new(e))
}

/// Names are never resolved here: the connector decides where the bytes go (in the enclave,
/// there is no DNS at all). ureq wants an address, so it gets a placeholder it never uses.
#[derive(Debug)]
struct NoResolver;

impl Resolver for NoResolver {
    fn resolve(
        &self,
        _uri: &ureq::http::Uri,
        _config: &ureq::config::Config,
        _timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let mut addrs = self.empty();
        addrs.push(SocketAddr::from(([0, 0, 0, 0], 0)));
        Ok(addrs)
    }
}

/// ureq's connector: opens the stream with our [`Connector`] and, unless testing against
/// plain HTTP, completes the TLS handshake on it before ureq sends a byte.
struct StreamConnector<C> {
    connector: C,
    host: String,
    port: u16,
    tls: Option<(Arc<ClientConfig>, ServerName<'static>)>,
}

impl<C> fmt::Debug for StreamConnector<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamConnector")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl<C: Connector> transport::Connector for StreamConnector<C> {
    type Out = StreamTransport<C::Conn>;

    fn connect(
        &self,
        details: &ConnectionDetails,
        _chained: Option<()>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        let deadline = Deadline::from(details.timeout);
        let mut sock = self
            .connector
            .connect(&self.host, self.port)
            .map_err(|e| boxed(KmsError::Connect(e.to_string())))?;
        let Some((config, name)) = &self.tls else {
            return Ok(Some(StreamTransport::new(Io::Plain(sock))));
        };
        let mut conn = ClientConnection::new(config.clone(), name.clone())
            .map_err(|e| boxed(KmsError::Tls(e.to_string())))?;
        // The handshake is driven here, not lazily by the first write, so that an untrusted
        // certificate is reported as Tls whatever I/O error it surfaces as.
        while conn.is_handshaking() {
            deadline.check().map_err(boxed)?;
            conn.complete_io(&mut sock)
                .map_err(|e| boxed(KmsError::Tls(e.to_string())))?;
        }
        Ok(Some(StreamTransport::new(Io::Tls(Box::new(
            StreamOwned::new(conn, sock),
        )))))
    }
}

/// The end of ureq's remaining time budget as a std deadline.
struct Deadline(Option<Instant>);

impl From<NextTimeout> for Deadline {
    fn from(t: NextTimeout) -> Deadline {
        Deadline(if t.after.is_not_happening() {
            None
        } else {
            Instant::now().checked_add(*t.after)
        })
    }
}

impl Deadline {
    fn check(&self) -> Result<(), KmsError> {
        match self.0 {
            Some(d) if Instant::now() >= d => Err(KmsError::Io(format!(
                "no complete response within {} s",
                CALL_DEADLINE.as_secs()
            ))),
            _ => Ok(()),
        }
    }
}

enum Io<S: Read + Write> {
    Plain(S),
    Tls(Box<StreamOwned<ClientConnection, S>>),
}

impl<S: Read + Write> Io<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Io::Plain(s) => s.read(buf),
            Io::Tls(s) => s.read(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Io::Plain(s) => s.write_all(buf).and_then(|()| s.flush()),
            Io::Tls(s) => s.write_all(buf).and_then(|()| s.flush()),
        }
    }
}

/// ureq's transport over the connector's stream (TLS or, in tests, plain).
struct StreamTransport<S: Read + Write> {
    io: Io<S>,
    buffers: FixedBuffers,
    open: bool,
}

impl<S: Read + Write> StreamTransport<S> {
    fn new(io: Io<S>) -> Self {
        StreamTransport {
            io,
            buffers: FixedBuffers::new(),
            open: true,
        }
    }
}

impl<S: Read + Write> fmt::Debug for StreamTransport<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamTransport")
            .field("tls", &matches!(self.io, Io::Tls(_)))
            .finish_non_exhaustive()
    }
}

/// I/O errors carrying a rustls error (bad record, alert) are TLS failures; the rest are
/// transport failures.
fn io_error(e: io::Error) -> KmsError {
    match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        Some(t) => KmsError::Tls(t.to_string()),
        None => KmsError::Io(e.to_string()),
    }
}

impl<S: Read + Write + Send + Sync + 'static> Transport for StreamTransport<S> {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        if timeout.after.is_zero() {
            return Err(ureq::Error::Timeout(timeout.reason));
        }
        let out = &self.buffers.output[..amount.min(OUTPUT_BUFFER)];
        self.io.write_all(out).map_err(|e| boxed(io_error(e)))
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        if timeout.after.is_zero() {
            return Err(ureq::Error::Timeout(timeout.reason));
        }
        let buf = self.buffers.input_append_buf();
        if buf.is_empty() {
            return Err(boxed(KmsError::Http("response head too large".into())));
        }
        loop {
            return match self.io.read(buf) {
                Ok(0) => {
                    self.open = false;
                    Ok(false)
                }
                Ok(n) => {
                    self.buffers.input_appended(n);
                    Ok(true)
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // rustls reports a TCP close without close_notify this way; a cut connection
                // must not pass as a short close-delimited body.
                Err(e)
                    if e.kind() == io::ErrorKind::UnexpectedEof
                        && matches!(self.io, Io::Tls(_)) =>
                {
                    Err(boxed(KmsError::Tls(
                        "connection closed without close_notify (response may be truncated)".into(),
                    )))
                }
                Err(e) => Err(boxed(io_error(e))),
            };
        }
    }

    fn is_open(&mut self) -> bool {
        self.open
    }

    fn is_tls(&self) -> bool {
        matches!(self.io, Io::Tls(_))
    }
}

/// ureq's buffers, allocated once at a fixed size (a reallocation would leave an unwiped
/// copy of what passed through, possibly a key, in freed memory) and wiped on drop.
struct FixedBuffers {
    input: Zeroizing<Vec<u8>>,
    /// `input[consumed..filled]` is received and not yet used.
    consumed: usize,
    filled: usize,
    output: Zeroizing<Vec<u8>>,
    progress: bool,
}

impl FixedBuffers {
    fn new() -> Self {
        FixedBuffers {
            input: Zeroizing::new(vec![0; INPUT_BUFFER]),
            consumed: 0,
            filled: 0,
            output: Zeroizing::new(vec![0; OUTPUT_BUFFER]),
            progress: false,
        }
    }

    /// Moves unused input to the front, making room behind it.
    fn compact(&mut self) {
        if self.consumed > 0 {
            self.input.copy_within(self.consumed..self.filled, 0);
            self.filled -= self.consumed;
            self.consumed = 0;
        }
    }
}

impl Buffers for FixedBuffers {
    fn output(&mut self) -> &mut [u8] {
        &mut self.output
    }

    fn input(&self) -> &[u8] {
        &self.input[self.consumed..self.filled]
    }

    fn input_append_buf(&mut self) -> &mut [u8] {
        self.compact();
        &mut self.input[self.filled..]
    }

    fn input_appended(&mut self, amount: usize) {
        self.filled = (self.filled + amount).min(self.input.len());
    }

    fn input_consume(&mut self, amount: usize) {
        self.progress = amount > 0;
        self.consumed = (self.consumed + amount).min(self.filled);
    }

    fn tmp_and_output(&mut self) -> (&mut [u8], &mut [u8]) {
        self.compact();
        (&mut self.input[self.filled..], &mut self.output)
    }

    fn can_use_input(&self) -> bool {
        self.consumed < self.filled && self.progress
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::Mutex;

    /// An in-memory peer: reads come from `input` in pieces of `step` bytes.
    struct Mock {
        input: Arc<Vec<u8>>,
        at: usize,
        step: usize,
        written: Arc<Mutex<Vec<u8>>>,
    }

    impl Read for Mock {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = self.step.min(out.len()).min(self.input.len() - self.at);
            out[..n].copy_from_slice(&self.input[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }

    impl Write for Mock {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.written.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    struct MockConnector {
        input: Arc<Vec<u8>>,
        step: usize,
        written: Arc<Mutex<Vec<u8>>>,
    }

    impl Connector for MockConnector {
        type Conn = Mock;
        fn connect(&self, host: &str, port: u16) -> io::Result<Mock> {
            assert_eq!((host, port), ("kms.eu-west-1.amazonaws.com", 80));
            Ok(Mock {
                input: self.input.clone(),
                at: 0,
                step: self.step,
                written: self.written.clone(),
            })
        }
    }

    fn signed() -> crate::sigv4::Request {
        crate::sigv4::Request {
            method: "POST".into(),
            path: "/".into(),
            query: vec![],
            headers: vec![
                ("Host".into(), "kms.eu-west-1.amazonaws.com".into()),
                ("X-Amz-Target".into(), "TrentService.GenerateRandom".into()),
            ],
            body: b"{}".to_vec(),
        }
    }

    /// Each of `bad` is refused as malformed HTTP.
    #[track_caller]
    fn assert_http_errors(bad: &[&[u8]]) {
        for b in bad {
            assert!(
                matches!(run(b), Err(KmsError::Http(_))),
                "{:?}",
                String::from_utf8_lossy(b)
            );
        }
    }

    fn run(input: &[u8]) -> Result<(u16, Vec<u8>), KmsError> {
        // Small and large reads must agree: framing may not depend on read sizes. (Big
        // inputs skip 1-byte reads: they are slow in debug builds.)
        let steps = if input.len() <= 4096 {
            [1, 7, usize::MAX]
        } else {
            [7, 4093, usize::MAX]
        };
        let input = Arc::new(input.to_vec());
        let mut results = Vec::new();
        for step in steps {
            let written = Arc::new(Mutex::new(Vec::new()));
            let connector = MockConnector {
                input: input.clone(),
                step,
                written: written.clone(),
            };
            let client = KmsClient::new(connector, "eu-west-1", Trust::PlainHttpForTests).unwrap();
            let out = client.send(&signed()).map(|(s, b)| (s, b.to_vec()));
            let written = String::from_utf8(written.lock().unwrap().clone()).unwrap();
            assert!(written.starts_with("POST / HTTP/1.1\r\n"), "{written}");
            assert!(written.ends_with("\r\n\r\n{}"), "{written}");
            let lower = written.to_ascii_lowercase();
            assert_eq!(lower.matches("host: ").count(), 1, "{written}");
            assert!(lower.contains("content-length: 2\r\n"), "{written}");
            assert!(!lower.contains("user-agent"), "{written}");
            results.push(out);
        }
        let last = results.pop().unwrap();
        for r in &results {
            assert_eq!(format!("{r:?}"), format!("{last:?}"));
        }
        last
    }

    #[test]
    fn amazon_roots_are_exactly_the_five_kms_roots() {
        let anchors = amazon_anchors();
        let mut names: Vec<String> = anchors
            .iter()
            .map(|a| {
                // The common name is the last attribute; its value follows its OID 55 04 03.
                let s = a.subject.as_ref();
                let at = s.windows(3).rposition(|w| w == [0x55, 0x04, 0x03]).unwrap();
                String::from_utf8(s[at + 5..].to_vec()).unwrap()
            })
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "Amazon Root CA 1",
                "Amazon Root CA 2",
                "Amazon Root CA 3",
                "Amazon Root CA 4",
                "Starfield Services Root Certificate Authority - G2",
            ]
        );
        // The filter really filters: the source holds ~150 roots, among them the similar
        // "Starfield Root Certificate Authority - G2", which KMS does not chain to.
        assert!(webpki_roots::TLS_SERVER_ROOTS.len() > 100);
        assert!(webpki_roots::TLS_SERVER_ROOTS.iter().any(|a| {
            a.subject
                .as_ref()
                .ends_with(b"Starfield Root Certificate Authority - G2")
        }));
        // Every selected anchor is byte-for-byte one of the expected subjects, each once.
        let wanted = amazon_root_subjects();
        for w in &wanted {
            assert_eq!(
                anchors.iter().filter(|a| a.subject.as_ref() == w).count(),
                1
            );
        }
        assert_eq!(anchors.len(), wanted.len());

        let client = KmsClient::new(
            FixedAddr("127.0.0.1:1".parse().unwrap(), Duration::from_secs(1)),
            "eu-west-1",
            Trust::AmazonRoots,
        )
        .unwrap();
        assert_eq!(client.host(), "kms.eu-west-1.amazonaws.com");
        assert_eq!(client.url, "https://kms.eu-west-1.amazonaws.com/");
    }

    #[test]
    fn construction_errors() {
        let fixed = || FixedAddr("127.0.0.1:1".parse().unwrap(), Duration::from_secs(1));
        for region in ["", "EU-WEST-1", "evil.example/x", "eu-west-1.attacker.com"] {
            assert!(matches!(
                KmsClient::new(fixed(), region, Trust::PlainHttpForTests),
                Err(KmsError::Sign(SigV4Error::BadScope))
            ));
        }
        assert!(matches!(
            KmsClient::new(fixed(), "eu-west-1", Trust::Custom(vec![])),
            Err(KmsError::Tls(_))
        ));
        let e = KmsClient::new(fixed(), "eu-west-1", Trust::Custom(vec![vec![0x30, 0x00]]))
            .err()
            .unwrap();
        assert!(
            matches!(e, KmsError::Tls(ref m) if m.contains("trust anchor 0")),
            "{e}"
        );
    }

    #[test]
    fn content_length_body() {
        let (status, body) =
            run(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhelloEXTRA")
                .unwrap();
        assert_eq!((status, body.as_slice()), (200, &b"hello"[..]));
        // Same length repeated is harmless; different lengths are refused.
        assert!(
            run(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nhi").is_ok()
        );
        assert_http_errors(&[
            &b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nhey"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nhi",
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\nhi",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            b"HTTP/1.1 100 Continue\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
            b"HTTP/1.1 200 OK\r\nContent-Le",
            b"garbage\r\n\r\n",
        ]);
    }

    #[test]
    fn chunked_body_and_close_delimited_body() {
        let (status, body) = run(
            b"HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=1\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\nX-Trailer: y\r\n\r\n",
        )
        .unwrap();
        assert_eq!((status, body.as_slice()), (400, &b"{\"a\":1}"[..]));
        assert_http_errors(&[
            &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcdX\r\n0\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nab",
        ]);
        // ureq ends the body at the last chunk and does not wait for the end of the trailer
        // section: every body byte has arrived by then (and, over TLS, authenticated).
        let (_, body) =
            run(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n").unwrap();
        assert_eq!(body, b"ab");
        let (status, body) = run(b"HTTP/1.1 200 OK\r\n\r\n{}").unwrap();
        assert_eq!((status, body.as_slice()), (200, &b"{}"[..]));
    }

    #[test]
    fn oversized_responses_are_refused() {
        let big = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
            api::MAX_RESPONSE + 1
        );
        assert!(matches!(
            run(big.as_bytes()),
            Err(KmsError::Api(KmsApiError::TooLarge))
        ));
        // Chunks adding up to more than the limit, and an endless close-delimited body.
        let mut chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for _ in 0..=api::MAX_RESPONSE / 4096 {
            chunked.extend_from_slice(b"1000\r\n");
            chunked.extend_from_slice(&[b'a'; 4096]);
            chunked.extend_from_slice(b"\r\n");
        }
        assert!(matches!(
            run(&chunked),
            Err(KmsError::Api(KmsApiError::TooLarge))
        ));
        let mut endless = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
        endless.resize(2 * api::MAX_RESPONSE + MAX_HEAD, b'a');
        assert!(matches!(
            run(&endless),
            Err(KmsError::Api(KmsApiError::TooLarge))
        ));
        let mut head = b"HTTP/1.1 200 OK\r\n".to_vec();
        head.resize(MAX_HEAD + 100, b'a');
        assert!(matches!(run(&head), Err(KmsError::Http(_))));
    }
}
