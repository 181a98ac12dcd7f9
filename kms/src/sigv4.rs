//! AWS Signature Version 4 (header-based, HMAC-SHA256) for non-S3 services such as KMS.
//!
//! Follows the algorithm in the AWS "Create a signed AWS API request" guide and the published
//! SigV4 test suites: canonical request, string to sign, derived signing key, `Authorization`
//! header. Presigned (query-string) signing is deliberately not implemented: the enclave only
//! ever sends header-signed POSTs to KMS.
//!
//! Everything that ends up in the canonical request or in a header is validated first: a CR/LF
//! in a header value or a `/` in a region would let a caller smuggle extra headers or change
//! the credential scope, so such inputs are rejected instead of being signed.

use ring::{digest, hmac};
use std::fmt;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Upper bounds on what we are willing to canonicalize. KMS requests are a few KiB (a
/// ciphertext blob of at most 6 KiB plus an attestation document), so these are generous while
/// still stopping a caller from making us hash or copy unbounded data.
pub const MAX_BODY: usize = 256 * 1024;
pub const MAX_HEADERS: usize = 64;
pub const MAX_HEADER_VALUE: usize = 8 * 1024;
pub const MAX_QUERY_PAIRS: usize = 64;
pub const MAX_PATH: usize = 2048;

const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// Errors from signing. None of them carries secret material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SigV4Error {
    /// The time string is not `YYYYMMDD'T'HHMMSS'Z'` or is out of range.
    BadTime,
    /// Region or service is empty, too long or has characters outside `[a-z0-9-]`.
    BadScope,
    /// Access key id is empty, too long or not alphanumeric.
    BadAccessKey,
    /// Secret key or session token is empty, too long or has control characters.
    BadSecret,
    /// Method is not an upper-case token.
    BadMethod,
    /// Path does not start with `/`, is too long or has `?`, `#` or control characters.
    BadPath,
    /// A header name is not an HTTP token, or a value has CR/LF/control characters.
    BadHeader,
    /// A query key or value has control characters.
    BadQuery,
    /// More headers/query pairs or a bigger body/value than the limits above.
    TooLarge,
    /// There is no `Host` header, or more than one.
    MissingHost,
    /// The request already carries a header that `sign` itself adds (double signing).
    ReservedHeader(&'static str),
}

impl fmt::Display for SigV4Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SigV4Error::BadTime => write!(f, "signing time must be YYYYMMDDTHHMMSSZ"),
            SigV4Error::BadScope => write!(f, "region/service must match [a-z0-9-]{{1,64}}"),
            SigV4Error::BadAccessKey => write!(f, "access key id must be 1-128 alphanumerics"),
            SigV4Error::BadSecret => write!(f, "secret key or session token is malformed"),
            SigV4Error::BadMethod => write!(f, "HTTP method must be an upper-case token"),
            SigV4Error::BadPath => {
                write!(f, "path must start with '/' and have no ?, # or controls")
            }
            SigV4Error::BadHeader => write!(f, "header name or value is malformed"),
            SigV4Error::BadQuery => write!(f, "query parameter has control characters"),
            SigV4Error::TooLarge => write!(f, "request exceeds signing size limits"),
            SigV4Error::MissingHost => write!(f, "request needs exactly one Host header"),
            SigV4Error::ReservedHeader(h) => write!(f, "request already has {h} header"),
        }
    }
}

impl std::error::Error for SigV4Error {}

/// Long-term or temporary AWS credentials.
///
/// The secret key and the session token are bearer secrets: they are wiped from memory when
/// the value is dropped (threat: a later memory disclosure in the enclave leaking them), and
/// `Debug` never prints them (threat: secrets in logs).
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Credentials {
    #[zeroize(skip)]
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl Credentials {
    fn validate(&self) -> Result<(), SigV4Error> {
        // The key id is copied verbatim into `Credential=<id>/...`; a `/`, `,` or space there
        // would change how the server splits the header.
        let id = &self.access_key_id;
        if id.is_empty() || id.len() > 128 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(SigV4Error::BadAccessKey);
        }
        let printable = |s: &str| {
            !s.is_empty() && s.len() <= 4096 && s.bytes().all(|b| (0x21..0x7f).contains(&b))
        };
        if !printable(&self.secret_access_key) {
            return Err(SigV4Error::BadSecret);
        }
        if let Some(t) = &self.session_token {
            // The token becomes a header value: refuse anything that could break the header.
            if !printable(t) {
                return Err(SigV4Error::BadSecret);
            }
        }
        Ok(())
    }
}

/// The `X-Amz-Date` instant, always held as a validated `YYYYMMDD'T'HHMMSS'Z'` string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SigningTime(String);

impl SigningTime {
    /// Parses `YYYYMMDD'T'HHMMSS'Z'`, checking every field's range.
    pub fn from_amz_date(s: &str) -> Result<Self, SigV4Error> {
        let b = s.as_bytes();
        if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
            return Err(SigV4Error::BadTime);
        }
        let digits = |r: std::ops::Range<usize>| -> Result<u32, SigV4Error> {
            let mut v = 0u32;
            for &c in &b[r] {
                if !c.is_ascii_digit() {
                    return Err(SigV4Error::BadTime);
                }
                v = v * 10 + u32::from(c - b'0');
            }
            Ok(v)
        };
        let (year, month, day) = (digits(0..4)?, digits(4..6)?, digits(6..8)?);
        let (h, m, sec) = (digits(9..11)?, digits(11..13)?, digits(13..15)?);
        if year < 1970
            || !(1..=12).contains(&month)
            || day < 1
            || day > days_in_month(year, month)
            || h > 23
            || m > 59
            || sec > 59
        {
            return Err(SigV4Error::BadTime);
        }
        Ok(SigningTime(s.to_owned()))
    }

    /// Converts seconds since the Unix epoch (UTC) to the SigV4 time format.
    pub fn from_unix(secs: u64) -> Result<Self, SigV4Error> {
        let days = secs / 86_400;
        let rem = secs % 86_400;
        // Year 9999 is the last one the 4-digit format can carry.
        if days > 2_932_896 {
            return Err(SigV4Error::BadTime);
        }
        let (y, mo, d) = civil_from_days(days);
        Ok(SigningTime(format!(
            "{y:04}{mo:02}{d:02}T{:02}{:02}{:02}Z",
            rem / 3600,
            (rem % 3600) / 60,
            rem % 60
        )))
    }

    /// The full `YYYYMMDD'T'HHMMSS'Z'` string.
    pub fn amz_date(&self) -> &str {
        &self.0
    }

    /// The `YYYYMMDD` part used in the credential scope.
    pub fn date(&self) -> &str {
        &self.0[..8]
    }
}

fn is_leap(y: u32) -> bool {
    (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400)
}

fn days_in_month(y: u32, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(y) => 29,
        _ => 28,
    }
}

/// Days since 1970-01-01 to a (year, month, day), by walking years then months. The input is
/// bounded by the caller (year <= 9999), so the loops are bounded too.
fn civil_from_days(mut days: u64) -> (u32, u32, u32) {
    let mut year = 1970u32;
    loop {
        let len = if is_leap(year) { 366 } else { 365 };
        if days < len {
            break;
        }
        days -= len;
        year += 1;
    }
    let mut month = 1u32;
    loop {
        let len = u64::from(days_in_month(year, month));
        if days < len {
            break;
        }
        days -= len;
        month += 1;
    }
    // `days` < 31 here, so the cast cannot truncate.
    (year, month, days as u32 + 1)
}

/// Scope and options for one signature.
#[derive(Clone, Debug)]
pub struct SigningParams<'a> {
    pub region: &'a str,
    pub service: &'a str,
    pub time: SigningTime,
    /// Remove `.`/`..`/empty path segments (every service except S3). Default true.
    pub normalize_path: bool,
    /// Add and sign `X-Amz-Content-Sha256` (needed by S3, optional elsewhere). Default false.
    pub content_sha256_header: bool,
    /// Add the session token header after signing instead of signing it (for the services
    /// that want it that way). Default false: KMS wants the token signed.
    pub omit_session_token: bool,
}

impl<'a> SigningParams<'a> {
    pub fn new(region: &'a str, service: &'a str, time: SigningTime) -> Self {
        SigningParams {
            region,
            service,
            time,
            normalize_path: true,
            content_sha256_header: false,
            omit_session_token: false,
        }
    }

    fn validate(&self) -> Result<(), SigV4Error> {
        // Region and service are part of the credential scope and (for KMS) of the host name:
        // a `/` or `.` there could re-scope the signature or redirect the request.
        let ok = |s: &str| {
            !s.is_empty()
                && s.len() <= 64
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        };
        if ok(self.region) && ok(self.service) {
            Ok(())
        } else {
            Err(SigV4Error::BadScope)
        }
    }

    fn scope(&self) -> String {
        format!(
            "{}/{}/{}/aws4_request",
            self.time.date(),
            self.region,
            self.service
        )
    }
}

/// A minimal HTTP request as the signer sees it.
///
/// `path` is the request target's path exactly as it will appear on the request line (it is
/// percent-encoded once more for the canonical form, the non-S3 rule). `query` holds decoded
/// keys and values; the signer encodes them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// First value of a header, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn count_header(&self, name: &str) -> usize {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .count()
    }
}

fn hex_sha256(data: &[u8]) -> String {
    hex::encode(digest::digest(&digest::SHA256, data))
}

/// RFC 3986 unreserved characters stay, everything else becomes `%XX` (upper-case hex), as
/// SigV4 requires. `keep_slash` is for paths.
fn uri_encode(input: &str, keep_slash: bool, out: &mut String) {
    for &b in input.as_bytes() {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b'~')
            || (keep_slash && b == b'/')
        {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

fn canonical_path(path: &str, normalize: bool) -> String {
    let mut out = String::with_capacity(path.len() * 3);
    if !normalize {
        uri_encode(path, true, &mut out);
        return out;
    }
    // RFC 3986 section 5.2.4 dot-segment removal, plus dropping empty segments (`//`), which
    // is what the SigV4 suite expects for non-S3 services.
    let mut segs: Vec<&str> = Vec::new();
    let mut trailing = path.ends_with('/');
    for seg in path.split('/') {
        match seg {
            "" => {}
            "." => trailing = true,
            ".." => {
                segs.pop();
                trailing = true;
            }
            s => {
                segs.push(s);
                trailing = path.ends_with('/');
            }
        }
    }
    out.push('/');
    for (i, s) in segs.iter().enumerate() {
        if i > 0 {
            out.push('/');
        }
        uri_encode(s, false, &mut out);
    }
    if trailing && !segs.is_empty() {
        out.push('/');
    }
    out
}

fn has_ctl(s: &str) -> bool {
    s.bytes().any(|b| b < 0x20 || b == 0x7f)
}

fn is_token(s: &str) -> bool {
    // RFC 9110 token characters.
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn validate_request(req: &Request) -> Result<(), SigV4Error> {
    if !is_token(&req.method)
        || req.method.len() > 32
        || req.method.bytes().any(|b| b.is_ascii_lowercase())
    {
        return Err(SigV4Error::BadMethod);
    }
    let p = &req.path;
    if !p.starts_with('/') || p.len() > MAX_PATH || p.contains(['?', '#']) || has_ctl(p) {
        return Err(SigV4Error::BadPath);
    }
    if req.query.len() > MAX_QUERY_PAIRS
        || req.headers.len() > MAX_HEADERS
        || req.body.len() > MAX_BODY
    {
        return Err(SigV4Error::TooLarge);
    }
    for (k, v) in &req.query {
        if k.len() > MAX_HEADER_VALUE || v.len() > MAX_HEADER_VALUE {
            return Err(SigV4Error::TooLarge);
        }
        if has_ctl(k) || has_ctl(v) {
            return Err(SigV4Error::BadQuery);
        }
    }
    for (n, v) in &req.headers {
        if v.len() > MAX_HEADER_VALUE || n.len() > 256 {
            return Err(SigV4Error::TooLarge);
        }
        // Threat: header injection. A CR/LF in a value would let the signed request carry
        // extra, differently-interpreted headers; tabs are legal whitespace and allowed.
        if !is_token(n) || v.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            return Err(SigV4Error::BadHeader);
        }
    }
    Ok(())
}

/// Trims and collapses runs of whitespace to one space (the SigV4 "Trimall" rule).
fn trim_all(v: &str) -> String {
    v.split([' ', '\t'])
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Builds the canonical request for `req` as it stands (every header present is signed).
pub fn canonical_request(req: &Request, params: &SigningParams<'_>) -> Result<String, SigV4Error> {
    validate_request(req)?;
    let mut out = String::new();
    out.push_str(&req.method);
    out.push('\n');
    out.push_str(&canonical_path(&req.path, params.normalize_path));
    out.push('\n');

    let mut q: Vec<(String, String)> = req
        .query
        .iter()
        .map(|(k, v)| {
            let (mut ek, mut ev) = (String::new(), String::new());
            uri_encode(k, false, &mut ek);
            uri_encode(v, false, &mut ev);
            (ek, ev)
        })
        .collect();
    q.sort();
    let q: Vec<String> = q.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    out.push_str(&q.join("&"));
    out.push('\n');

    // Group values by lower-cased name, keeping their order, then sort by name.
    let mut hs: Vec<(String, Vec<String>)> = Vec::new();
    for (n, v) in &req.headers {
        let n = n.to_ascii_lowercase();
        let v = trim_all(v);
        match hs.iter_mut().find(|(k, _)| *k == n) {
            Some((_, vals)) => vals.push(v),
            None => hs.push((n, vec![v])),
        }
    }
    hs.sort_by(|a, b| a.0.cmp(&b.0));
    for (n, vals) in &hs {
        out.push_str(n);
        out.push(':');
        out.push_str(&vals.join(","));
        out.push('\n');
    }
    out.push('\n');
    out.push_str(&signed_headers(&hs));
    out.push('\n');
    out.push_str(&hex_sha256(&req.body));
    Ok(out)
}

fn signed_headers(hs: &[(String, Vec<String>)]) -> String {
    hs.iter()
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join(";")
}

/// The string to sign for a canonical request.
pub fn string_to_sign(canonical_request: &str, params: &SigningParams<'_>) -> String {
    format!(
        "{ALGORITHM}\n{}\n{}\n{}",
        params.time.amz_date(),
        params.scope(),
        hex_sha256(canonical_request.as_bytes())
    )
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Zeroizing<[u8; 32]> {
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data);
    let mut out = Zeroizing::new([0u8; 32]);
    out.copy_from_slice(tag.as_ref());
    out
}

/// Hex signature of `string_to_sign` under the key derived from `creds` and the scope.
///
/// The intermediate keys are kept in `Zeroizing` buffers so they are wiped after use
/// (threat: the derived key is valid for a whole day and service, so it must not linger).
pub fn signature(
    creds: &Credentials,
    params: &SigningParams<'_>,
    string_to_sign: &str,
) -> Result<String, SigV4Error> {
    creds.validate()?;
    params.validate()?;
    let mut k_secret = Zeroizing::new(Vec::with_capacity(4 + creds.secret_access_key.len()));
    k_secret.extend_from_slice(b"AWS4");
    k_secret.extend_from_slice(creds.secret_access_key.as_bytes());
    let k_date = hmac_sha256(&k_secret, params.time.date().as_bytes());
    let k_region = hmac_sha256(&*k_date, params.region.as_bytes());
    let k_service = hmac_sha256(&*k_region, params.service.as_bytes());
    let k_signing = hmac_sha256(&*k_service, b"aws4_request");
    Ok(hex::encode(*hmac_sha256(
        &*k_signing,
        string_to_sign.as_bytes(),
    )))
}

/// Signs `request` in place: adds `X-Amz-Date`, the session token (if any), optionally
/// `X-Amz-Content-Sha256`, and `Authorization`. The request is left unchanged on error.
pub fn sign(
    request: &mut Request,
    creds: &Credentials,
    params: &SigningParams<'_>,
) -> Result<(), SigV4Error> {
    creds.validate()?;
    params.validate()?;
    if request.count_header("host") != 1 {
        // Host is mandatory in SigV4; two Host headers would make which one was signed ambiguous.
        return Err(SigV4Error::MissingHost);
    }
    // Refuse to sign over headers we are about to add: a pre-set Authorization or X-Amz-Date
    // would otherwise end up duplicated and let a caller pick which one the server reads.
    for (name, label) in [
        ("authorization", "Authorization"),
        ("x-amz-date", "X-Amz-Date"),
        ("x-amz-security-token", "X-Amz-Security-Token"),
        ("x-amz-content-sha256", "X-Amz-Content-Sha256"),
    ] {
        if request.count_header(name) != 0 {
            return Err(SigV4Error::ReservedHeader(label));
        }
    }

    let mut signed = request.clone();
    signed
        .headers
        .push(("X-Amz-Date".into(), params.time.amz_date().into()));
    if params.content_sha256_header {
        signed
            .headers
            .push(("X-Amz-Content-Sha256".into(), hex_sha256(&signed.body)));
    }
    if let (Some(t), false) = (&creds.session_token, params.omit_session_token) {
        signed
            .headers
            .push(("X-Amz-Security-Token".into(), t.clone()));
    }
    let creq = canonical_request(&signed, params)?;
    let sts = string_to_sign(&creq, params);
    let sig = signature(creds, params, &sts)?;
    let names = creq.rsplit('\n').nth(1).unwrap_or_default().to_owned();
    signed.headers.push((
        "Authorization".into(),
        format!(
            "{ALGORITHM} Credential={}/{}, SignedHeaders={names}, Signature={sig}",
            creds.access_key_id,
            params.scope()
        ),
    ));
    if let (Some(t), true) = (&creds.session_token, params.omit_session_token) {
        signed
            .headers
            .push(("X-Amz-Security-Token".into(), t.clone()));
    }
    *request = signed;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_time_conversion() {
        // 2015-08-30T12:36:00Z, the suites' instant.
        assert_eq!(
            SigningTime::from_unix(1_440_938_160).unwrap().amz_date(),
            "20150830T123600Z"
        );
        assert_eq!(
            SigningTime::from_unix(0).unwrap().amz_date(),
            "19700101T000000Z"
        );
        // 2024-02-29 (leap day) 23:59:59.
        assert_eq!(
            SigningTime::from_unix(1_709_251_199).unwrap().amz_date(),
            "20240229T235959Z"
        );
        assert!(SigningTime::from_unix(u64::MAX).is_err());
    }

    #[test]
    fn amz_date_validation() {
        assert!(SigningTime::from_amz_date("20150830T123600Z").is_ok());
        for bad in [
            "20150830T123600",
            "2015083OT123600Z",
            "20150230T123600Z",
            "20151301T000000Z",
            "20150830T246000Z",
            "",
            "２015",
        ] {
            assert_eq!(
                SigningTime::from_amz_date(bad),
                Err(SigV4Error::BadTime),
                "{bad}"
            );
        }
    }

    #[test]
    fn path_normalization() {
        assert_eq!(canonical_path("/a/b/../c/./d//", true), "/a/c/d/");
        assert_eq!(canonical_path("/a/b/..", true), "/a/");
        assert_eq!(canonical_path("/../..", true), "/");
        assert_eq!(canonical_path("/a b/%", false), "/a%20b/%25");
    }
}
