//! A blocking KMS client for the enclave: one signed `POST /` per call over TLS that ends
//! inside the enclave, whatever carries the bytes (in the enclave, the parent's egress proxy).
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
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// Largest response head (status line and headers). KMS sends a few hundred bytes.
pub const MAX_HEAD: usize = 16 * 1024;
/// Most response headers parsed.
pub const MAX_RESPONSE_HEADERS: usize = 64;
/// Largest response on the wire: head, body ([`api::MAX_RESPONSE`]) and chunk framing. The
/// whole response is read into one buffer of this capacity, so a hostile relay cannot make
/// the enclave allocate more (threat: memory exhaustion).
pub const MAX_WIRE: usize = MAX_HEAD + api::MAX_RESPONSE + 16 * 1024;
/// Upper bound on one call from connect to the end of the response, checked between reads
/// (each read is bounded by the connector's timeout). Threat: a relay trickling one byte per
/// read timeout to hold the caller for hours.
pub const CALL_DEADLINE: Duration = Duration::from_secs(60);

/// Opens byte streams to KMS.
pub trait Connector {
    type Conn: Read + Write;
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
#[derive(Debug)]
pub enum ClientError {
    /// The connector could not open the stream.
    Connect(String),
    /// TLS setup, the handshake (e.g. an untrusted certificate) or a TLS record failed.
    Tls(String),
    /// Sending or receiving failed after connecting (reset, timeout, deadline).
    Io(String),
    /// The response is not acceptable HTTP/1.1 (bad framing, too large a head, cut short).
    Http(String),
    /// KMS answered with an error, or with a body that is not the expected JSON.
    Api(KmsApiError),
    /// The request could not be signed (bad region, credentials or time).
    Sign(SigV4Error),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Connect(e) => write!(f, "cannot connect to KMS: {e}"),
            ClientError::Tls(e) => write!(f, "TLS with KMS failed: {e}"),
            ClientError::Io(e) => write!(f, "KMS connection failed: {e}"),
            ClientError::Http(e) => write!(f, "bad HTTP response from KMS: {e}"),
            ClientError::Api(e) => write!(f, "{e}"),
            ClientError::Sign(e) => write!(f, "cannot sign the KMS request: {e}"),
        }
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ClientError::Api(e) => Some(e),
            ClientError::Sign(e) => Some(e),
            _ => None,
        }
    }
}

impl From<KmsApiError> for ClientError {
    fn from(e: KmsApiError) -> Self {
        ClientError::Api(e)
    }
}

impl From<SigV4Error> for ClientError {
    fn from(e: SigV4Error) -> Self {
        ClientError::Sign(e)
    }
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
    connector: C,
    region: String,
    host: String,
    /// `None` only for [`Trust::PlainHttpForTests`].
    tls: Option<(Arc<ClientConfig>, ServerName<'static>)>,
}

impl<C: Connector> KmsClient<C> {
    /// Builds the client for `region`, trusting `trust`.
    pub fn new(connector: C, region: &str, trust: Trust) -> Result<Self, ClientError> {
        if !valid_region(region) {
            return Err(ClientError::Sign(SigV4Error::BadScope));
        }
        let host = api::host(region);
        let roots = match trust {
            Trust::PlainHttpForTests => None,
            Trust::AmazonRoots => {
                let anchors = amazon_anchors();
                if anchors.len() < MIN_AMAZON_ROOTS {
                    return Err(ClientError::Tls(format!(
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
                    return Err(ClientError::Tls("no trust anchors given".into()));
                }
                let mut roots = RootCertStore::empty();
                for (i, der) in ders.into_iter().enumerate() {
                    roots.add(CertificateDer::from(der)).map_err(|e| {
                        ClientError::Tls(format!("trust anchor {i} is not usable: {e}"))
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
                    .map_err(|e| ClientError::Tls(e.to_string()))?
                    .with_root_certificates(roots)
                    .with_no_client_auth();
                let name = ServerName::try_from(host.clone())
                    .map_err(|e| ClientError::Tls(format!("server name: {e}")))?;
                Some((Arc::new(config), name))
            }
        };
        Ok(KmsClient {
            connector,
            region: region.to_owned(),
            host,
            tls,
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
    ) -> Result<GenerateDataKeyResponse, ClientError> {
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
    ) -> Result<DecryptResponse, ClientError> {
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
    ) -> Result<GenerateRandomResponse, ClientError> {
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
    ) -> Result<R, ClientError>
    where
        Q: serde::Serialize,
        R: serde::de::DeserializeOwned + RecipientResponse,
    {
        let body = serde_json::to_vec(req)
            .map_err(|e| ClientError::Http(format!("request encoding: {e}")))?;
        let signed = api::request(op, body, &self.region, creds, time)?;
        let wire = serialize_request(&signed);
        let deadline = Instant::now() + CALL_DEADLINE;

        let port = if self.tls.is_some() { 443 } else { 80 };
        let mut sock = self
            .connector
            .connect(&self.host, port)
            .map_err(|e| ClientError::Connect(e.to_string()))?;
        let (status, body) = match &self.tls {
            None => exchange(&mut sock, &wire, deadline)?,
            Some((config, name)) => {
                let mut conn = ClientConnection::new(config.clone(), name.clone())
                    .map_err(|e| ClientError::Tls(e.to_string()))?;
                // The handshake is driven here, not lazily by the first write, so that an
                // untrusted certificate is reported as Tls whatever I/O error it surfaces as.
                while conn.is_handshaking() {
                    check_deadline(deadline)?;
                    conn.complete_io(&mut sock)
                        .map_err(|e| ClientError::Tls(e.to_string()))?;
                }
                let mut tls = StreamOwned::new(conn, sock);
                exchange(&mut tls, &wire, deadline)?
            }
        };
        let resp: R = api::parse_response(status, &body)?;
        if with_recipient {
            // Threat: a KMS stand-in returning the secret in the clear next to (or instead
            // of) the envelope; the enclave must never get used to such an answer.
            api::recipient_ciphertext(&resp)?;
        }
        Ok(resp)
    }
}

/// `POST /` as HTTP/1.1. The header values were validated by the signer (no CR/LF), and
/// `Connection: close` lets the server end the exchange cleanly.
fn serialize_request(req: &crate::sigv4::Request) -> Vec<u8> {
    let mut wire = Vec::with_capacity(req.body.len() + 1024);
    wire.extend_from_slice(format!("{} {} HTTP/1.1\r\n", req.method, req.path).as_bytes());
    for (n, v) in &req.headers {
        wire.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
    }
    wire.extend_from_slice(
        format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n",
            req.body.len()
        )
        .as_bytes(),
    );
    wire.extend_from_slice(&req.body);
    wire
}

fn check_deadline(deadline: Instant) -> Result<(), ClientError> {
    if Instant::now() > deadline {
        return Err(ClientError::Io(format!(
            "no complete response within {} s",
            CALL_DEADLINE.as_secs()
        )));
    }
    Ok(())
}

/// I/O errors carrying a rustls error (bad record, alert) are TLS failures; the rest are
/// transport failures.
fn io_error(e: io::Error) -> ClientError {
    match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        Some(t) => ClientError::Tls(t.to_string()),
        None => ClientError::Io(e.to_string()),
    }
}

/// How the response body is delimited.
enum Framing {
    Length(usize),
    Chunked,
    /// Neither header: the body runs to the end of the stream.
    Close,
}

/// Sends `wire`, reads one response: `(status, body)`.
fn exchange<S: Read + Write>(
    s: &mut S,
    wire: &[u8],
    deadline: Instant,
) -> Result<(u16, Zeroizing<Vec<u8>>), ClientError> {
    s.write_all(wire).map_err(io_error)?;
    s.flush().map_err(io_error)?;
    let mut r = WireReader {
        stream: s,
        // Allocated once at full size so it never reallocates: a reallocation would leave an
        // unwiped copy of the response (which may hold a plaintext key) in freed memory.
        buf: Zeroizing::new(vec![0; MAX_WIRE]),
        len: 0,
        deadline,
    };
    read_response(&mut r)
}

struct WireReader<'a, S> {
    stream: &'a mut S,
    /// `MAX_WIRE` bytes, of which the first `len` have been received.
    buf: Zeroizing<Vec<u8>>,
    len: usize,
    deadline: Instant,
}

impl<S: Read> WireReader<'_, S> {
    /// What has been received so far.
    fn data(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// Reads more bytes; `Ok(0)` at a clean end of stream (for TLS: close_notify).
    fn fill(&mut self) -> Result<usize, ClientError> {
        loop {
            check_deadline(self.deadline)?;
            if self.len >= MAX_WIRE {
                return Err(ClientError::Api(KmsApiError::TooLarge));
            }
            return match self.stream.read(&mut self.buf[self.len..]) {
                Ok(n) => {
                    self.len += n;
                    Ok(n)
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(ClientError::Tls(
                    "connection closed without close_notify (response may be truncated)".into(),
                )),
                Err(e) => Err(io_error(e)),
            };
        }
    }

    /// Makes sure `buf` holds at least `len` bytes.
    fn need(&mut self, len: usize, what: &str) -> Result<(), ClientError> {
        while self.len < len {
            if self.fill()? == 0 {
                return Err(ClientError::Http(format!(
                    "connection closed in the {what}"
                )));
            }
        }
        Ok(())
    }
}

fn read_response<S: Read>(
    r: &mut WireReader<'_, S>,
) -> Result<(u16, Zeroizing<Vec<u8>>), ClientError> {
    let (head_len, status, framing) = loop {
        let mut headers = [httparse::EMPTY_HEADER; MAX_RESPONSE_HEADERS];
        let mut resp = httparse::Response::new(&mut headers);
        match resp.parse(r.data()) {
            Ok(httparse::Status::Complete(n)) => {
                if n > MAX_HEAD {
                    return Err(ClientError::Http("response head too large".into()));
                }
                let status = resp.code.unwrap_or(0);
                break (n, status, framing(&resp)?);
            }
            Ok(httparse::Status::Partial) => {}
            Err(e) => return Err(ClientError::Http(format!("malformed response head: {e}"))),
        }
        if r.len > MAX_HEAD {
            return Err(ClientError::Http("response head too large".into()));
        }
        if r.fill()? == 0 {
            return Err(ClientError::Http(
                "connection closed before a complete response head".into(),
            ));
        }
    };
    // We never send `Expect: 100-continue` nor ask for an upgrade, so an interim response
    // means the peer is not the KMS we talk to.
    if !(200..=599).contains(&status) {
        return Err(ClientError::Http(format!("unexpected status {status}")));
    }

    let body = match framing {
        Framing::Length(n) => {
            if n > api::MAX_RESPONSE {
                return Err(ClientError::Api(KmsApiError::TooLarge));
            }
            r.need(head_len + n, "response body")?;
            Zeroizing::new(r.data()[head_len..head_len + n].to_vec())
        }
        Framing::Chunked => read_chunked(r, head_len)?,
        Framing::Close => {
            // A clean end of stream is required (`fill` refuses a TLS close without
            // close_notify), otherwise a cut connection would pass as a short body.
            while r.fill()? != 0 {
                if r.len - head_len > api::MAX_RESPONSE {
                    return Err(ClientError::Api(KmsApiError::TooLarge));
                }
            }
            Zeroizing::new(r.data()[head_len..].to_vec())
        }
    };
    if body.len() > api::MAX_RESPONSE {
        return Err(ClientError::Api(KmsApiError::TooLarge));
    }
    Ok((status, body))
}

/// Picks the body framing. Both `Content-Length` and `Transfer-Encoding`, two different
/// lengths, or a coding other than `chunked` are refused rather than guessed at (threat:
/// two parties disagreeing on where the body ends, the root of response smuggling).
fn framing(resp: &httparse::Response<'_, '_>) -> Result<Framing, ClientError> {
    let mut length: Option<usize> = None;
    let mut chunked = false;
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let v = std::str::from_utf8(h.value)
                .ok()
                .map(str::trim)
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse::<usize>().ok())
                .ok_or_else(|| ClientError::Http("bad Content-Length".into()))?;
            if length.replace(v).is_some_and(|old| old != v) {
                return Err(ClientError::Http("conflicting Content-Length".into()));
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            let v = std::str::from_utf8(h.value).unwrap_or("").trim();
            if !v.eq_ignore_ascii_case("chunked") || chunked {
                return Err(ClientError::Http(
                    "unsupported Transfer-Encoding (only a single chunked)".into(),
                ));
            }
            chunked = true;
        }
    }
    match (length, chunked) {
        (Some(_), true) => Err(ClientError::Http(
            "both Content-Length and Transfer-Encoding".into(),
        )),
        (Some(n), false) => Ok(Framing::Length(n)),
        (None, true) => Ok(Framing::Chunked),
        (None, false) => Ok(Framing::Close),
    }
}

/// Decodes a chunked body starting at `pos`, trailers skipped.
fn read_chunked<S: Read>(
    r: &mut WireReader<'_, S>,
    mut pos: usize,
) -> Result<Zeroizing<Vec<u8>>, ClientError> {
    // Full capacity up front, for the same no-reallocation reason as the wire buffer.
    let mut body = Zeroizing::new(Vec::with_capacity(api::MAX_RESPONSE));
    loop {
        let (consumed, size) = loop {
            match httparse::parse_chunk_size(&r.data()[pos..]) {
                Ok(httparse::Status::Complete(c)) => break c,
                Ok(httparse::Status::Partial) => {
                    // A chunk-size line is short; a long one is an attack on the parser.
                    if r.len - pos > 1024 {
                        return Err(ClientError::Http("chunk size line too long".into()));
                    }
                    if r.fill()? == 0 {
                        return Err(ClientError::Http("connection closed in a chunk".into()));
                    }
                }
                Err(_) => return Err(ClientError::Http("bad chunk size".into())),
            }
        };
        pos += consumed;
        if size == 0 {
            break;
        }
        let size = usize::try_from(size)
            .ok()
            .filter(|&s| s <= api::MAX_RESPONSE - body.len())
            .ok_or(ClientError::Api(KmsApiError::TooLarge))?;
        r.need(pos + size + 2, "chunked body")?;
        body.extend_from_slice(&r.data()[pos..pos + size]);
        if &r.data()[pos + size..pos + size + 2] != b"\r\n" {
            return Err(ClientError::Http("chunk not followed by CRLF".into()));
        }
        pos += size + 2;
    }
    // Trailer section up to the empty line; the fields themselves are not used.
    loop {
        let mut trailers = [httparse::EMPTY_HEADER; 16];
        match httparse::parse_headers(&r.data()[pos..], &mut trailers) {
            Ok(httparse::Status::Complete(_)) => return Ok(body),
            Ok(httparse::Status::Partial) => {
                if r.len - pos > MAX_HEAD {
                    return Err(ClientError::Http("trailers too large".into()));
                }
                if r.fill()? == 0 {
                    return Err(ClientError::Http(
                        "connection closed in the trailers".into(),
                    ));
                }
            }
            Err(e) => return Err(ClientError::Http(format!("malformed trailers: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An in-memory peer: reads come from `input` in pieces of `step` bytes.
    struct Mock {
        input: Vec<u8>,
        at: usize,
        step: usize,
        written: Vec<u8>,
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
            self.written.extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn run(input: &[u8]) -> Result<(u16, Vec<u8>), ClientError> {
        // Small and large reads must agree: framing may not depend on read sizes. (Big
        // inputs skip 1-byte reads: re-parsing a 16 KiB head per byte is slow in debug builds.)
        let steps = if input.len() <= 4096 {
            [1, 7, usize::MAX]
        } else {
            [7, 4093, usize::MAX]
        };
        let mut results = Vec::new();
        for step in steps {
            let mut m = Mock {
                input: input.to_vec(),
                at: 0,
                step,
                written: Vec::new(),
            };
            let out = exchange(&mut m, b"REQ", Instant::now() + Duration::from_secs(30))
                .map(|(s, b)| (s, b.to_vec()));
            assert_eq!(m.written, b"REQ");
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
        assert!(client.tls.is_some());
    }

    #[test]
    fn construction_errors() {
        let fixed = || FixedAddr("127.0.0.1:1".parse().unwrap(), Duration::from_secs(1));
        for region in ["", "EU-WEST-1", "evil.example/x", "eu-west-1.attacker.com"] {
            assert!(matches!(
                KmsClient::new(fixed(), region, Trust::PlainHttpForTests),
                Err(ClientError::Sign(SigV4Error::BadScope))
            ));
        }
        assert!(matches!(
            KmsClient::new(fixed(), "eu-west-1", Trust::Custom(vec![])),
            Err(ClientError::Tls(_))
        ));
        let e = KmsClient::new(fixed(), "eu-west-1", Trust::Custom(vec![vec![0x30, 0x00]]))
            .err()
            .unwrap();
        assert!(
            matches!(e, ClientError::Tls(ref m) if m.contains("trust anchor 0")),
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
        for bad in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nhey"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nhi",
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\nhi",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            b"HTTP/1.1 100 Continue\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
            b"HTTP/1.1 200 OK\r\nContent-Le",
            b"garbage\r\n\r\n",
        ] {
            assert!(
                matches!(run(bad), Err(ClientError::Http(_))),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn chunked_body_and_close_delimited_body() {
        let (status, body) = run(
            b"HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=1\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\nX-Trailer: y\r\n\r\n",
        )
        .unwrap();
        assert_eq!((status, body.as_slice()), (400, &b"{\"a\":1}"[..]));
        for bad in [
            &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcdX\r\n0\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nab",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n",
        ] {
            assert!(
                matches!(run(bad), Err(ClientError::Http(_))),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
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
            Err(ClientError::Api(KmsApiError::TooLarge))
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
            Err(ClientError::Api(KmsApiError::TooLarge))
        ));
        let mut endless = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
        endless.resize(MAX_WIRE * 2, b'a');
        assert!(matches!(
            run(&endless),
            Err(ClientError::Api(KmsApiError::TooLarge))
        ));
        let mut head = b"HTTP/1.1 200 OK\r\n".to_vec();
        head.resize(MAX_HEAD + 100, b'a');
        assert!(matches!(run(&head), Err(ClientError::Http(_))));
    }
}
