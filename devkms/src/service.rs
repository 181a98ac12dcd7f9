//! The KMS operations, independent of transport: SigV4 check, dispatch, key policy.

use crate::blob;
use crate::config::{Config, ConfigError, KeyPolicy};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::digest;
use ring::rand::{SecureRandom, SystemRandom};
use sigil_attestation::{Policy, VerifyError};
use sigil_kms::api::{
    DecryptRequest, GenerateDataKeyRequest, GenerateRandomRequest, KeySpec, RecipientInfo,
};
use sigil_kms::sigv4::{self, Credentials, SigningParams, SigningTime};
use std::collections::BTreeMap;
use std::fmt;
use zeroize::Zeroizing;

/// Largest accepted SigV4 clock skew (AWS: 5 minutes).
pub const MAX_CLOCK_SKEW_SECONDS: u64 = 300;
/// Largest accepted attestation-document age.
pub const MAX_DOCUMENT_AGE_SECONDS: u64 = 300;
/// KMS limit for GenerateRandom and GenerateDataKey's NumberOfBytes.
pub const MAX_RANDOM_BYTES: u32 = 1024;
/// Bounds on the encryption context (KMS allows about 8 KiB in total).
const MAX_CONTEXT_ENTRIES: usize = 64;
const MAX_CONTEXT_BYTES: usize = 8 * 1024;

const KMS_NS: &str = "com.amazonaws.kms#";
const CORAL_NS: &str = "com.amazon.coral.service#";

/// A KMS-shaped error: HTTP status, `__type` and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KmsError {
    pub status: u16,
    pub kind: &'static str,
    pub message: String,
}

impl KmsError {
    fn new(kind: &'static str, message: impl Into<String>) -> Self {
        let status = if kind == "KMSInternalException" {
            500
        } else {
            400
        };
        KmsError {
            status,
            kind,
            message: message.into(),
        }
    }
    pub fn validation(m: impl Into<String>) -> Self {
        Self::new("ValidationException", m)
    }
    pub fn access_denied(m: impl Into<String>) -> Self {
        Self::new("AccessDeniedException", m)
    }
    fn signature(m: impl Into<String>) -> Self {
        Self::new("InvalidSignatureException", m)
    }
    pub(crate) fn internal(m: impl Into<String>) -> Self {
        Self::new("KMSInternalException", m)
    }
    fn invalid_ciphertext() -> Self {
        Self::new("InvalidCiphertextException", "")
    }

    /// The `__type` value, namespaced the way KMS and its front end do it.
    pub fn type_name(&self) -> String {
        let ns = match self.kind {
            "InvalidSignatureException"
            | "IncompleteSignatureException"
            | "UnrecognizedClientException"
            | "MissingAuthenticationTokenException"
            | "UnknownOperationException"
            | "SerializationException" => CORAL_NS,
            _ => KMS_NS,
        };
        format!("{ns}{}", self.kind)
    }

    /// The JSON body `{"__type":..,"message":..}`.
    pub fn body(&self) -> Vec<u8> {
        serde_json::json!({"__type": self.type_name(), "message": self.message})
            .to_string()
            .into_bytes()
    }
}

impl fmt::Display for KmsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

impl std::error::Error for KmsError {}

/// A received HTTP request, as the transport hands it over.
#[derive(Clone, Debug, Default)]
pub struct HttpRequest {
    pub method: String,
    /// Request target as on the request line.
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpRequest {
    fn header(&self, name: &str) -> Result<Option<&str>, KmsError> {
        let mut it = self
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name));
        let first = it.next().map(|(_, v)| v.as_str());
        if it.next().is_some() {
            return Err(KmsError::validation(format!("duplicate {name} header")));
        }
        Ok(first)
    }
}

/// A response: status and JSON body (wiped on drop, it may carry a plaintext).
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub body: Zeroizing<Vec<u8>>,
}

impl From<KmsError> for HttpResponse {
    fn from(e: KmsError) -> Self {
        HttpResponse {
            status: e.status,
            body: Zeroizing::new(e.body()),
        }
    }
}

struct Key {
    key_id: String,
    arn: String,
    aliases: Vec<String>,
    master: Zeroizing<[u8; 32]>,
    policy: KeyPolicy,
    pcrs: BTreeMap<u8, Vec<u8>>,
    image_sha384: Option<Vec<u8>>,
}

/// The development KMS state: keys, credentials and randomness.
pub struct DevKms {
    region: String,
    keys: Vec<Key>,
    rng: SystemRandom,
}

impl fmt::Debug for DevKms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DevKms")
            .field("region", &self.region)
            .field(
                "keys",
                &self.keys.iter().map(|k| &k.arn).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

fn parse_pcr_hex(what: String, s: &str) -> Result<Vec<u8>, ConfigError> {
    let v = match hex::decode(s.trim()) {
        Ok(v) => v,
        Err(source) => return Err(ConfigError::PcrHex { what, source }),
    };
    if v.len() != 48 {
        return Err(ConfigError::PcrLength { what, len: v.len() });
    }
    Ok(v)
}

impl DevKms {
    /// Validates the config and builds the state (generating missing master keys).
    pub fn new(config: &Config) -> Result<Self, ConfigError> {
        let rng = SystemRandom::new();
        // The region becomes part of ARNs, host names and the SigV4 scope.
        if config.region.is_empty()
            || config.region.len() > 64
            || !config
                .region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(ConfigError::Region);
        }
        if !config.account_id.bytes().all(|b| b.is_ascii_digit()) || config.account_id.len() != 12 {
            return Err(ConfigError::AccountId);
        }
        if config.keys.is_empty() || config.keys.len() > crate::config::MAX_KEYS {
            return Err(ConfigError::KeyCount);
        }
        let mut keys: Vec<Key> = Vec::new();
        for k in &config.keys {
            let id = &k.key_id;
            if id.is_empty()
                || id.len() > 64
                || !id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(ConfigError::KeyId(id.clone()));
            }
            let arn = format!(
                "arn:aws:kms:{}:{}:key/{id}",
                config.region, config.account_id
            );
            let names = std::iter::once(id)
                .chain(std::iter::once(&arn))
                .chain(&k.aliases);
            for n in names {
                if keys.iter().any(|o| o.matches(n)) {
                    return Err(ConfigError::DuplicateName(n.clone()));
                }
            }
            let mut master = Zeroizing::new([0u8; 32]);
            match &k.master_key_hex {
                Some(h) => {
                    let v = Zeroizing::new(
                        hex::decode(h.trim()).map_err(|_| ConfigError::MasterKeyHex(id.clone()))?,
                    );
                    if v.len() != 32 {
                        return Err(ConfigError::MasterKeyLength(id.clone()));
                    }
                    master.copy_from_slice(&v);
                }
                None => rng.fill(&mut *master).map_err(|_| ConfigError::Random)?,
            }
            let p = &k.policy;
            if p.allowed_credentials.is_empty()
                || p.allowed_credentials.len() > crate::config::MAX_KEYS
            {
                return Err(ConfigError::CredentialCount(id.clone()));
            }
            for c in &p.allowed_credentials {
                let creds = Credentials {
                    access_key_id: c.access_key_id.clone(),
                    secret_access_key: c.secret_access_key.clone(),
                    session_token: None,
                };
                // Reuse the signer's own validation via a throwaway signature.
                let params = SigningParams::new(
                    &config.region,
                    "kms",
                    SigningTime::from_unix(0).map_err(ConfigError::SigningTime)?,
                );
                sigv4::signature(&creds, &params, "").map_err(|source| {
                    ConfigError::Credential {
                        key: id.clone(),
                        access_key_id: c.access_key_id.clone(),
                        source,
                    }
                })?;
            }
            let mut pcrs = BTreeMap::new();
            for (i, h) in &p.allowed_pcrs {
                if *i > 31 {
                    return Err(ConfigError::PcrIndex {
                        key: id.clone(),
                        index: *i,
                    });
                }
                pcrs.insert(*i, parse_pcr_hex(format!("key {id}: PCR{i}"), h)?);
            }
            let image_sha384 = match &p.allowed_image_sha384 {
                Some(h) => Some(parse_pcr_hex(format!("key {id}: ImageSha384"), h)?),
                None => None,
            };
            if let (Some(img), Some(p0)) = (&image_sha384, pcrs.get(&0))
                && img != p0
            {
                return Err(ConfigError::ImageMismatch(id.clone()));
            }
            keys.push(Key {
                key_id: id.clone(),
                arn,
                aliases: k.aliases.clone(),
                master,
                policy: p.clone(),
                pcrs,
                image_sha384,
            });
        }
        Ok(DevKms {
            region: config.region.clone(),
            keys,
            rng,
        })
    }

    /// The configured region.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// ARNs of the configured keys, in config order.
    pub fn key_arns(&self) -> Vec<String> {
        self.keys.iter().map(|k| k.arn.clone()).collect()
    }

    fn find_key(&self, name: &str) -> Result<&Key, KmsError> {
        self.keys.iter().find(|k| k.matches(name)).ok_or_else(|| {
            KmsError::new(
                "NotFoundException",
                format!("Key '{}' does not exist", clip(name)),
            )
        })
    }

    fn secret_for(&self, access_key_id: &str) -> Option<&str> {
        self.keys
            .iter()
            .flat_map(|k| &k.policy.allowed_credentials)
            .find(|c| c.access_key_id == access_key_id)
            .map(|c| c.secret_access_key.as_str())
    }

    /// Handles one request at `now` (unix seconds). Never panics on any input.
    pub fn handle(&self, req: &HttpRequest, now: u64) -> HttpResponse {
        match self.handle_inner(req, now) {
            Ok(body) => HttpResponse { status: 200, body },
            Err(e) => e.into(),
        }
    }

    fn handle_inner(&self, req: &HttpRequest, now: u64) -> Result<Zeroizing<Vec<u8>>, KmsError> {
        if req.method != "POST" || req.target != "/" {
            return Err(KmsError::new(
                "UnknownOperationException",
                "only POST / is served",
            ));
        }
        let principal = self.verify_sigv4(req, now)?;
        let ct = req.header("content-type")?.unwrap_or("");
        if !ct.trim().eq_ignore_ascii_case("application/x-amz-json-1.1") {
            return Err(KmsError::new(
                "SerializationException",
                "Content-Type must be application/x-amz-json-1.1",
            ));
        }
        let op = req.header("x-amz-target")?.unwrap_or("");
        match op {
            "TrentService.GenerateDataKey" => {
                self.generate_data_key(&principal, parse(&req.body)?, now)
            }
            "TrentService.Decrypt" => self.decrypt(&principal, parse(&req.body)?, now),
            "TrentService.GenerateRandom" => {
                self.generate_random(&principal, parse(&req.body)?, now)
            }
            _ => Err(KmsError::new(
                "UnknownOperationException",
                format!("unsupported operation {:?}", clip(op)),
            )),
        }
    }

    /// Recomputes the SigV4 signature over the received request; returns the access key id.
    fn verify_sigv4(&self, req: &HttpRequest, now: u64) -> Result<String, KmsError> {
        let incomplete = |m: &str| KmsError::new("IncompleteSignatureException", m.to_string());
        let auth = req.header("authorization")?.ok_or_else(|| {
            KmsError::new(
                "MissingAuthenticationTokenException",
                "Missing Authentication Token",
            )
        })?;
        let rest = auth
            .strip_prefix("AWS4-HMAC-SHA256 ")
            .ok_or_else(|| incomplete("Authorization must use AWS4-HMAC-SHA256"))?;
        let (mut credential, mut signed, mut sig) = (None, None, None);
        for part in rest.split(',') {
            let part = part.trim();
            if let Some(v) = part.strip_prefix("Credential=") {
                credential = Some(v);
            } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
                signed = Some(v);
            } else if let Some(v) = part.strip_prefix("Signature=") {
                sig = Some(v);
            } else {
                return Err(incomplete("unexpected Authorization component"));
            }
        }
        let (Some(credential), Some(signed), Some(sig)) = (credential, signed, sig) else {
            return Err(incomplete(
                "Authorization needs Credential, SignedHeaders and Signature",
            ));
        };
        let scope: Vec<&str> = credential.split('/').collect();
        let [akid, date, region, service, term] = scope.as_slice() else {
            return Err(incomplete("malformed Credential scope"));
        };
        let amz_date = req
            .header("x-amz-date")?
            .ok_or_else(|| incomplete("missing X-Amz-Date"))?;
        let time =
            SigningTime::from_amz_date(amz_date).map_err(|_| incomplete("malformed X-Amz-Date"))?;
        let t = amz_unix(amz_date).ok_or_else(|| incomplete("malformed X-Amz-Date"))?;
        if t.abs_diff(now) > MAX_CLOCK_SKEW_SECONDS {
            return Err(KmsError::signature(format!(
                "Signature expired: {amz_date} is more than {MAX_CLOCK_SKEW_SECONDS} s from the server time"
            )));
        }
        if *date != time.date() || *service != "kms" || *term != "aws4_request" {
            return Err(KmsError::signature(
                "Credential scope does not match the request date/service",
            ));
        }
        if *region != self.region {
            return Err(KmsError::signature(format!(
                "Credential should be scoped to a valid region, not '{}'",
                clip(region)
            )));
        }
        let secret = self.secret_for(akid).ok_or_else(|| {
            KmsError::new(
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
            )
        })?;
        let names: Vec<&str> = signed.split(';').collect();
        if names.len() > sigv4::MAX_HEADERS
            || !names.contains(&"host")
            || !names.contains(&"x-amz-date")
            || names
                .iter()
                .any(|n| n.bytes().any(|b| b.is_ascii_uppercase()))
            || !names.windows(2).all(|w| w[0] < w[1])
        {
            return Err(incomplete(
                "SignedHeaders must be sorted, lower-case and include host and x-amz-date",
            ));
        }
        if req.header("x-amz-security-token")?.is_some() {
            return Err(KmsError::new(
                "UnrecognizedClientException",
                "session tokens are not supported by the development KMS",
            ));
        }
        let headers: Vec<(String, String)> = req
            .headers
            .iter()
            .filter(|(n, _)| names.iter().any(|s| n.eq_ignore_ascii_case(s)))
            .cloned()
            .collect();
        for n in &names {
            if !headers.iter().any(|(h, _)| h.eq_ignore_ascii_case(n)) {
                return Err(KmsError::signature(format!(
                    "signed header {n:?} is missing"
                )));
            }
        }
        let creds = Credentials {
            access_key_id: (*akid).to_string(),
            secret_access_key: secret.to_string(),
            session_token: None,
        };
        let params = SigningParams::new(&self.region, "kms", time);
        let sreq = sigv4::Request {
            method: req.method.clone(),
            path: req.target.clone(),
            query: Vec::new(),
            headers,
            body: req.body.clone(),
        };
        let bad = |_| KmsError::signature("The request signature could not be computed");
        let creq = sigv4::canonical_request(&sreq, &params).map_err(bad)?;
        let sts = sigv4::string_to_sign(&creq, &params);
        let want = sigv4::signature(&creds, &params, &sts).map_err(bad)?;
        if !ct_eq(want.as_bytes(), sig.as_bytes()) {
            return Err(KmsError::signature(
                "The request signature we calculated does not match the signature you provided.",
            ));
        }
        Ok((*akid).to_string())
    }

    fn authorize(&self, principal: &str, key: &Key, action: &str) -> Result<(), KmsError> {
        if key
            .policy
            .allowed_credentials
            .iter()
            .any(|c| c.access_key_id == principal)
        {
            Ok(())
        } else {
            Err(KmsError::access_denied(format!(
                "User: {principal} is not authorized to perform: kms:{action} on resource: {} because no key policy allows it",
                key.arn
            )))
        }
    }

    /// Applies the key policy's attestation conditions; returns the recipient's SPKI if a
    /// Recipient was given, `None` if not (only allowed without `require_recipient`).
    fn recipient_spki(
        &self,
        key: &Key,
        recipient: Option<&RecipientInfo>,
        now: u64,
    ) -> Result<Option<Vec<u8>>, KmsError> {
        let Some(r) = recipient else {
            if key.policy.require_recipient {
                return Err(KmsError::access_denied(format!(
                    "kms:RecipientAttestation condition not met for {}: the request has no Recipient",
                    key.arn
                )));
            }
            return Ok(None);
        };
        let mut policy = Policy::at(now);
        policy.max_age_seconds = Some(MAX_DOCUMENT_AGE_SECONDS);
        policy.allow_debug = key.policy.allow_debug;
        policy.trust_test_root = key.policy.trust_test_root;
        let verified =
            sigil_attestation::verify(&r.attestation_document, &policy).map_err(verify_error)?;
        let doc = &verified.document;
        if let Some(img) = &key.image_sha384 {
            check_pcr(doc.pcrs.get(&0), img, "ImageSha384", &key.arn)?;
        }
        for (i, want) in &key.pcrs {
            check_pcr(doc.pcrs.get(i), want, &format!("PCR{i}"), &key.arn)?;
        }
        let spki = doc
            .public_key
            .clone()
            .ok_or_else(|| KmsError::validation("the attestation document has no public_key"))?;
        Ok(Some(spki))
    }

    /// Either `"Plaintext"` or `"CiphertextForRecipient"` for `plaintext`.
    fn secret_field(
        spki: Option<&[u8]>,
        plaintext: &[u8],
    ) -> Result<(&'static str, Zeroizing<String>), KmsError> {
        match spki {
            None => Ok(("Plaintext", Zeroizing::new(STANDARD.encode(plaintext)))),
            Some(spki) => {
                let rid = digest::digest(&digest::SHA256, spki);
                let cms = sigil_kms::cms::build(plaintext, spki, rid.as_ref()).map_err(|e| {
                    KmsError::validation(format!(
                        "the attestation document's public_key is not usable: {e}"
                    ))
                })?;
                Ok((
                    "CiphertextForRecipient",
                    Zeroizing::new(STANDARD.encode(cms)),
                ))
            }
        }
    }

    fn random(&self, n: usize) -> Result<Zeroizing<Vec<u8>>, KmsError> {
        let mut v = Zeroizing::new(vec![0u8; n]);
        self.rng
            .fill(&mut v)
            .map_err(|_| KmsError::internal("random source failed"))?;
        Ok(v)
    }

    fn generate_data_key(
        &self,
        principal: &str,
        req: GenerateDataKeyRequest,
        now: u64,
    ) -> Result<Zeroizing<Vec<u8>>, KmsError> {
        let key = self.find_key(&req.key_id)?;
        self.authorize(principal, key, "GenerateDataKey")?;
        let n = match (req.key_spec, req.number_of_bytes) {
            (Some(KeySpec::Aes256), None) => 32,
            (Some(KeySpec::Aes128), None) => 16,
            (None, Some(n)) if (1..=MAX_RANDOM_BYTES).contains(&n) => n as usize,
            (None, Some(_)) => {
                return Err(KmsError::validation(format!(
                    "NumberOfBytes must be between 1 and {MAX_RANDOM_BYTES}"
                )));
            }
            _ => {
                return Err(KmsError::validation(
                    "Please specify either number of bytes or key spec (not both)",
                ));
            }
        };
        let ctx = context(req.encryption_context)?;
        let spki = self.recipient_spki(key, req.recipient.as_ref(), now)?;
        let plaintext = self.random(n)?;
        let ciphertext = blob::seal(&key.master, &key.key_id, &ctx, &plaintext, &self.rng)
            .map_err(|_| KmsError::internal("encryption failed"))?;
        let (field, value) = Self::secret_field(spki.as_deref(), &plaintext)?;
        Ok(json_body(&[
            ("CiphertextBlob", &STANDARD.encode(ciphertext), true),
            ("KeyId", &key.arn, false),
            (field, &value, true),
        ]))
    }

    fn decrypt(
        &self,
        principal: &str,
        req: DecryptRequest,
        now: u64,
    ) -> Result<Zeroizing<Vec<u8>>, KmsError> {
        let id = blob::key_id(&req.ciphertext_blob).map_err(|_| KmsError::invalid_ciphertext())?;
        let key = self
            .keys
            .iter()
            .find(|k| k.key_id == id)
            .ok_or_else(KmsError::invalid_ciphertext)?;
        if let Some(named) = &req.key_id
            && !key.matches(named)
        {
            // Resolve first so an unknown name is NotFound, a different key IncorrectKey.
            self.find_key(named)?;
            return Err(KmsError::new(
                "IncorrectKeyException",
                "The key ID in the request does not identify the key that encrypted the ciphertext",
            ));
        }
        self.authorize(principal, key, "Decrypt")?;
        let ctx = context(req.encryption_context)?;
        let spki = self.recipient_spki(key, req.recipient.as_ref(), now)?;
        let plaintext = blob::open(&key.master, &ctx, &req.ciphertext_blob)
            .map_err(|_| KmsError::invalid_ciphertext())?;
        let (field, value) = Self::secret_field(spki.as_deref(), &plaintext)?;
        Ok(json_body(&[
            ("KeyId", &key.arn, false),
            ("EncryptionAlgorithm", "SYMMETRIC_DEFAULT", false),
            (field, &value, true),
        ]))
    }

    /// GenerateRandom is not tied to a key. It is allowed when some key the caller may use
    /// allows it: with a Recipient, the document must satisfy that key's attestation
    /// conditions; without one, that key must not require a Recipient.
    fn generate_random(
        &self,
        principal: &str,
        req: GenerateRandomRequest,
        now: u64,
    ) -> Result<Zeroizing<Vec<u8>>, KmsError> {
        if !(1..=MAX_RANDOM_BYTES).contains(&req.number_of_bytes) {
            return Err(KmsError::validation(format!(
                "NumberOfBytes must be between 1 and {MAX_RANDOM_BYTES}"
            )));
        }
        let mut first_err = None;
        let mut spki = None;
        let mut allowed = false;
        for key in self
            .keys
            .iter()
            .filter(|k| self.authorize(principal, k, "GenerateRandom").is_ok())
        {
            match self.recipient_spki(key, req.recipient.as_ref(), now) {
                Ok(s) => {
                    spki = s;
                    allowed = true;
                    break;
                }
                Err(e) => {
                    if first_err.is_none() {
                        first_err = Some(e);
                    }
                }
            }
        }
        if !allowed {
            return Err(first_err.unwrap_or_else(|| {
                KmsError::access_denied(format!(
                    "User: {principal} is not authorized to perform: kms:GenerateRandom"
                ))
            }));
        }
        let plaintext = self.random(req.number_of_bytes as usize)?;
        let (field, value) = Self::secret_field(spki.as_deref(), &plaintext)?;
        Ok(json_body(&[(field, &value, true)]))
    }
}

impl Key {
    fn matches(&self, name: &str) -> bool {
        self.key_id == name || self.arn == name || self.aliases.iter().any(|a| a == name)
    }
}

fn check_pcr(got: Option<&Vec<u8>>, want: &[u8], cond: &str, arn: &str) -> Result<(), KmsError> {
    match got {
        Some(g) if g.as_slice() == want => Ok(()),
        Some(g) => Err(KmsError::access_denied(format!(
            "kms:RecipientAttestation:{cond} condition not met for {arn}: expected {}, got {}",
            hex::encode(want),
            hex::encode(g)
        ))),
        None => Err(KmsError::access_denied(format!(
            "kms:RecipientAttestation:{cond} condition not met for {arn}: the document has no such PCR"
        ))),
    }
}

fn verify_error(e: VerifyError) -> KmsError {
    match e {
        VerifyError::Input(_) | VerifyError::Cose(_) | VerifyError::Syntax(_) => {
            KmsError::validation(format!("Recipient.AttestationDocument is malformed: {e}"))
        }
        _ => KmsError::access_denied(format!(
            "kms:RecipientAttestation condition not met: attestation document rejected ({}): {}",
            e.check(),
            e.detail()
        )),
    }
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, KmsError> {
    serde_json::from_slice(body)
        .map_err(|e| KmsError::validation(format!("malformed request: {}", clip(&e.to_string()))))
}

fn context(ctx: Option<BTreeMap<String, String>>) -> Result<BTreeMap<String, String>, KmsError> {
    let ctx = ctx.unwrap_or_default();
    let total: usize = ctx.iter().map(|(k, v)| k.len() + v.len()).sum();
    if ctx.len() > MAX_CONTEXT_ENTRIES || total > MAX_CONTEXT_BYTES {
        return Err(KmsError::validation("EncryptionContext is too large"));
    }
    if ctx.keys().any(String::is_empty) {
        return Err(KmsError::validation(
            "EncryptionContext keys must not be empty",
        ));
    }
    Ok(ctx)
}

/// `{"name":value,...}`; `raw` values are base64 (no escaping needed) and may be secret, so the
/// body is built in a wiped buffer without intermediate copies in serde values.
fn json_body(fields: &[(&str, &str, bool)]) -> Zeroizing<Vec<u8>> {
    let cap = fields
        .iter()
        .map(|(n, v, _)| n.len() + v.len() + 8)
        .sum::<usize>()
        + 2;
    let mut out = Zeroizing::new(Vec::with_capacity(cap));
    out.push(b'{');
    for (i, (name, value, raw)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'"');
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\":");
        if *raw {
            out.push(b'"');
            out.extend_from_slice(value.as_bytes());
            out.push(b'"');
        } else {
            let s = serde_json::Value::String((*value).to_string()).to_string();
            out.extend_from_slice(s.as_bytes());
        }
    }
    out.push(b'}');
    out
}

/// Caps untrusted text quoted in an error message.
fn clip(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(256).collect()
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `YYYYMMDD'T'HHMMSS'Z'` (already validated) to unix seconds.
fn amz_unix(s: &str) -> Option<u64> {
    let n = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (n(0..4)?, n(4..6)?, n(6..8)?);
    let (hh, mm, ss) = (n(9..11)?, n(11..13)?, n(13..15)?);
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + hh * 3600 + mm * 60 + ss).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amz_time() {
        assert_eq!(amz_unix("20150830T123600Z"), Some(1_440_938_160));
        assert_eq!(amz_unix("19700101T000000Z"), Some(0));
        assert_eq!(amz_unix("20240229T235959Z"), Some(1_709_251_199));
    }

    #[test]
    fn error_shape() {
        let e = KmsError::signature("x");
        let v: serde_json::Value = serde_json::from_slice(&e.body()).unwrap();
        assert_eq!(
            v["__type"],
            "com.amazon.coral.service#InvalidSignatureException"
        );
        assert_eq!(v["message"], "x");
        assert_eq!(e.status, 400);
    }

    #[test]
    fn json_body_escapes_non_raw() {
        let b = json_body(&[("A", "x\"y", false), ("B", "QUJD", true)]);
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["A"], "x\"y");
        assert_eq!(v["B"], "QUJD");
    }
}
