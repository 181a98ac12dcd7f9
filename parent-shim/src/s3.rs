//! The blob store in an S3 bucket, so that the enclaves of a cluster on several parent
//! instances share one durable store. Same requests, answers and limits as the file store
//! ([`crate::store::Store`]); chosen with `blob_s3` (see the README).
//!
//! Layout: one object per blob, key = prefix + name. The body is the file store's blob format
//! ([`store::encode_blob`]: magic | version | length | data) and the version is also in the
//! object's metadata (`x-amz-meta-sigil-version`), so a HEAD reads it without the data.
//!
//! # Compare-and-swap between shims
//!
//! Threat: two shims (the parents of two enclaves of one cluster) race to write the same blob.
//! The sealed blobs carry their own rollback protection (the enclave checks what it reads), so
//! the store is not trusted for integrity; what it must guarantee is that it never loses an
//! acknowledged write and never accepts two writers of one version. If it did, two enclaves
//! would each hold "version N+1" as the current state, and one of them would have lost its
//! update without being told. The file store orders writers with a lock inside one process;
//! writers on different machines are ordered by S3's conditional writes, which S3 evaluates
//! atomically:
//!
//! - put with `expected_version` 0: `PUT` with `If-None-Match: *`. S3 creates the object only
//!   if the key has none; a second creator gets 412 and is told `version_conflict`.
//! - put with `expected_version` N: `HEAD` reads the current version and ETag; a version other
//!   than N is `version_conflict` without writing. Otherwise `PUT` with `If-Match: <ETag>`: S3
//!   replaces the object only if it is still the one that was read. A writer that got in
//!   between the HEAD and the PUT changed the ETag, so this writer gets 412 and is told
//!   `version_conflict` with the version it lost to (read again).
//! - delete: the same `HEAD`, then `DELETE` with `If-Match` (conditional deletes, which S3
//!   supports on general purpose buckets since September 2025).
//!
//! Why the version is in the body and not only in the metadata: a plain object's ETag is the
//! MD5 of its body. Were the body the data alone, version N+1 written with the same bytes as
//! version N would keep version N's ETag, and a writer that read version N could still pass
//! `If-Match` and overwrite the other writer's N+1 (two writers of one version). With the
//! version in the body, every version has its own ETag.
//!
//! A write is acknowledged only after S3 answered 200 (S3 stores durably before it answers).
//! An answer lost on the way (a timeout) is `storage`: the write may have happened, and a
//! retry with the same `expected_version` then gets `version_conflict`, as after a crash of
//! the file store mid-put. S3's 409 (a conflicting request in flight) counts as a lost race.
//!
//! moto 5.2.1 (the S3 the tests run against) honours `If-None-Match: *` and `If-Match` on
//! PutObject and `If-Match` on DeleteObject (412 PreconditionFailed), but it checks and writes
//! without a lock, so it cannot show that two simultaneous requests are ordered: that is S3's
//! guarantee. The tests let both shims read before either writes and then send the writes one
//! after the other, which is the race these conditions exist for (a stale read).
//!
//! Limits: `max_blob_bytes` exactly as the file store. `max_blobs` from a count of the blobs
//! under the prefix (a listing, up to `max_blobs` names), which a create refreshes when it is
//! older than [`COUNT_TTL`] or within [`RECOUNT_MARGIN`] of the limit. Near the limit every
//! create counts afresh, so it holds across shims; further from it, the other shims' new blobs
//! are seen at the next refresh, and the limit could only be passed if they created more than
//! [`RECOUNT_MARGIN`] blobs within [`COUNT_TTL`].

use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ring::digest;
use sigil_kms::sigv4::{self, SigV4Error, SigningParams, SigningTime};

use crate::creds;
use crate::store::{self, Backend, Call, Limits, NameError, check_name, conflict};
use crate::wire::{MAX_LIST, Request, Response};

/// The object metadata that holds a blob's version.
pub const VERSION_HEADER: &str = "x-amz-meta-sigil-version";
/// Default bound on one S3 request, connect to last byte of the answer (a 4 MiB blob at a
/// slow 1 Mbit/s takes 34 s; to S3 from EC2 it takes well under a second).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest answer head; S3 sends a few hundred bytes.
const MAX_HEAD: usize = 64 * 1024;
/// Error bodies are a small XML document; more is cut off (and the error stays an error).
const MAX_ERROR_BODY: u64 = 64 * 1024;
/// One ListObjectsV2 page: at most 1000 keys of at most 256 bytes with their attributes.
const MAX_LIST_BODY: u64 = 4 * 1024 * 1024;
/// Keys per ListObjectsV2 page (S3's maximum).
const PAGE: usize = 1000;
/// Pages read for one `list` request: names that are not sigil names are skipped, so a list
/// may need more than two pages, but never more than this.
const LIST_PAGES: usize = 8;
/// Temporary credentials (IMDS) are reused this long. IMDS offers new credentials at least
/// five minutes before the old ones expire, so a reused one is never expired.
const CREDENTIALS_TTL: Duration = Duration::from_secs(60);
/// The blob count for `max_blobs` is refreshed at least this often...
pub const COUNT_TTL: Duration = Duration::from_secs(60);
/// ...and before every create once it is this close to the limit.
pub const RECOUNT_MARGIN: usize = 64;
/// Longest error message sent to the enclave (the wire allows 1024 bytes).
const MAX_MESSAGE: usize = 900;

/// A `blob_s3*` setting that is refused.
#[derive(Debug, thiserror::Error)]
pub enum S3ConfigError {
    #[error(
        "blob_s3 {0:?} must be http://HOST[:PORT] or https://HOST[:PORT] (no user, path or query)"
    )]
    Endpoint(String),
    #[error("blob_s3_bucket {0:?} is not an S3 bucket name (3-63 of a-z 0-9 . -)")]
    Bucket(String),
    #[error("blob_s3_region {0:?} is not a region name like eu-west-1")]
    Region(String),
    #[error("blob_s3_prefix: {0}")]
    Prefix(#[source] NameError),
}

/// Where requests go: `http://HOST[:PORT]` (moto, tests) or `https://HOST[:PORT]`
/// (`https://s3.<region>.amazonaws.com`). Requests are path-style: `/<bucket>/<key>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// `scheme://authority`, what every URL starts with.
    base: String,
    /// The `Host` header, which SigV4 signs: the host, and the port unless the scheme's own.
    host: String,
}

impl Endpoint {
    pub fn host(&self) -> &str {
        &self.host
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.base)
    }
}

impl FromStr for Endpoint {
    type Err = S3ConfigError;

    fn from_str(s: &str) -> Result<Endpoint, S3ConfigError> {
        let bad = || S3ConfigError::Endpoint(s.chars().take(200).collect());
        let (scheme, rest, default_port) = if let Some(r) = s.strip_prefix("https://") {
            ("https", r, 443)
        } else if let Some(r) = s.strip_prefix("http://") {
            ("http", r, 80)
        } else {
            return Err(bad());
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.is_empty() || authority.len() > 260 || authority.contains(['/', '?', '#', '@'])
        {
            return Err(bad());
        }
        // [v6]:port, host:port, or either without the port.
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (addr, after) = v6.split_once(']').ok_or_else(bad)?;
            if addr.is_empty() || !addr.chars().all(|c| c.is_ascii_hexdigit() || c == ':') {
                return Err(bad());
            }
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or_else(bad)?),
            };
            (format!("[{}]", addr.to_ascii_lowercase()), port)
        } else {
            let (h, p) = match authority.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            };
            if h.is_empty()
                || h.len() > 253
                || !h
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
            {
                return Err(bad());
            }
            (h.to_ascii_lowercase(), p)
        };
        let port = match port {
            None => default_port,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 && !p.starts_with('0') => n,
                _ => return Err(bad()),
            },
        };
        let host = if port == default_port {
            host
        } else {
            format!("{host}:{port}")
        };
        Ok(Endpoint {
            base: format!("{scheme}://{host}"),
            host,
        })
    }
}

/// Where the blobs are: endpoint, bucket, region (of the signature) and key prefix.
#[derive(Clone, Debug)]
pub struct S3Config {
    pub endpoint: Endpoint,
    pub bucket: String,
    pub region: String,
    /// Put in front of every blob name to make its key (`""`, or e.g. `"sigil/"`).
    pub prefix: String,
    /// Bound on each request ([`REQUEST_TIMEOUT`] unless a test wants less).
    pub timeout: Duration,
}

impl S3Config {
    pub fn new(
        endpoint: &str,
        bucket: &str,
        region: &str,
        prefix: &str,
    ) -> Result<S3Config, S3ConfigError> {
        let endpoint = endpoint.parse()?;
        // S3's rules for bucket names (the strict ones, which also fit in a host name).
        let b = bucket.as_bytes();
        if !(3..=63).contains(&b.len())
            || !b
                .iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b".-".contains(c))
            || !b[0].is_ascii_alphanumeric()
            || !b[b.len() - 1].is_ascii_alphanumeric()
            || bucket.contains("..")
        {
            return Err(S3ConfigError::Bucket(bucket.chars().take(100).collect()));
        }
        // Part of the signature's scope: the same rule as the shim's `region`.
        if region.is_empty()
            || region.len() > 32
            || !region
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err(S3ConfigError::Region(region.chars().take(100).collect()));
        }
        // The prefix becomes part of every key and of the request path: the names' rules.
        check_name(prefix, "prefix").map_err(S3ConfigError::Prefix)?;
        Ok(S3Config {
            endpoint,
            bucket: bucket.into(),
            region: region.into(),
            prefix: prefix.into(),
            timeout: REQUEST_TIMEOUT,
        })
    }
}

impl fmt::Display for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "s3://{}/{} at {} ({})",
            self.bucket, self.prefix, self.endpoint, self.region
        )
    }
}

/// Where the S3 store gets AWS credentials: in the shim, [`creds::fetch`] on the configured
/// source (IMDS or the environment).
pub type FetchCredentials =
    Box<dyn Fn() -> Result<creds::Credentials, creds::CredentialsError> + Send + Sync>;

/// The S3 store could not be opened (bucket missing, no access, unreachable...).
#[derive(Debug, thiserror::Error)]
#[error("S3 blob store {store}: {detail}")]
pub struct OpenError {
    store: String,
    detail: String,
}

/// What a HEAD found: the blob's version and the object's ETag (for `If-Match`).
struct Head {
    version: u64,
    etag: String,
}

/// One HTTP answer, its body read up to a limit.
struct Answer {
    status: u16,
    headers: ureq::http::HeaderMap,
    body: Vec<u8>,
    /// The body was longer than the limit and is not in `body`.
    cut: bool,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// S3's error code from the XML body, if there is one.
    fn code(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        xml_text(&text, "Code").map(clean).unwrap_or_default()
    }
}

struct Count {
    blobs: usize,
    at: Option<Instant>,
}

/// The blob store in S3; see the module documentation.
pub struct S3Store {
    cfg: S3Config,
    limits: Limits,
    agent: ureq::Agent,
    fetch: FetchCredentials,
    creds: Mutex<Option<(Instant, sigil_kms::Credentials)>>,
    count: Mutex<Count>,
    race_hook: Option<RaceHook>,
}

type RaceHook = Box<dyn Fn(&str) + Send + Sync>;

impl S3Store {
    /// Connects to the bucket: fetches credentials and counts the blobs under the prefix, so a
    /// missing bucket, missing permissions or a wrong endpoint stop the shim at start.
    pub fn open(
        cfg: S3Config,
        limits: Limits,
        fetch: FetchCredentials,
    ) -> Result<S3Store, OpenError> {
        let st = S3Store::new(cfg, limits, fetch);
        let blobs = st.count_blobs().map_err(|r| OpenError {
            store: st.cfg.to_string(),
            detail: r.error.map(|e| e.message).unwrap_or_default(),
        })?;
        *st.count_lock() = Count {
            blobs,
            at: Some(Instant::now()),
        };
        Ok(st)
    }

    /// The store without checking the bucket (for tests of hostile answers).
    pub fn new(cfg: S3Config, limits: Limits, fetch: FetchCredentials) -> S3Store {
        let config = ureq::Agent::config_builder()
            // Every status is handled here, with S3's error code in the message.
            .http_status_as_error(false)
            // S3 answers path-style requests itself; a redirect would come from elsewhere.
            .max_redirects(0)
            // The endpoint is what is configured; HTTP(S)_PROXY in the environment does not
            // silently send the blobs elsewhere.
            .proxy(None)
            .timeout_global(Some(cfg.timeout))
            .timeout_connect(Some(CONNECT_TIMEOUT.min(cfg.timeout)))
            .max_response_header_size(MAX_HEAD)
            .accept_encoding(ureq::config::AutoHeaderValue::None)
            .build();
        S3Store {
            cfg,
            limits,
            agent: config.into(),
            fetch,
            creds: Mutex::new(None),
            count: Mutex::new(Count { blobs: 0, at: None }),
            race_hook: None,
        }
    }

    /// For tests: runs between the HEAD that reads the current version and the conditional
    /// PUT or DELETE that depends on it (with the blob's name), to stage a race.
    #[doc(hidden)]
    pub fn set_race_hook(&mut self, hook: impl Fn(&str) + Send + Sync + 'static) {
        self.race_hook = Some(Box::new(hook));
    }

    pub fn config(&self) -> &S3Config {
        &self.cfg
    }

    /// Blobs under the prefix, as last counted (plus this shim's creates since).
    pub fn len(&self) -> usize {
        self.count_lock().blobs
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn handle(&self, r: Request) -> Response {
        match self.try_handle(r) {
            Ok(resp) | Err(resp) => resp,
        }
    }

    fn try_handle(&self, r: Request) -> Result<Response, Response> {
        match store::check_request(r, &self.limits)? {
            Call::Put {
                name,
                expected,
                data,
            } => self.put(&name, expected, &data),
            Call::Get { name } => self.get(&name),
            Call::List { prefix } => {
                let (mut names, cut) = self.names(&prefix, MAX_LIST + 1, LIST_PAGES)?;
                names.truncate(MAX_LIST);
                Ok(Response {
                    ok: true,
                    names: Some(names),
                    more: Some(cut),
                    ..Default::default()
                })
            }
            Call::Delete { name, expected } => self.delete(&name, expected),
        }
    }

    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.cfg.prefix)
    }

    fn count_lock(&self) -> std::sync::MutexGuard<'_, Count> {
        self.count.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A `storage` error, logged (the message holds no secret: no credentials, no data).
    fn storage(&self, message: String) -> Response {
        let message = clip(&message, MAX_MESSAGE);
        crate::log::error("blobs", &format!("storage: {message}"));
        Response::err("storage", message)
    }

    /// A `storage` error for an S3 answer that is not one the operation expects.
    fn failure(&self, what: &str, a: &Answer) -> Response {
        let code = a.code();
        if matches!(
            code.as_str(),
            "ExpiredToken" | "InvalidToken" | "InvalidAccessKeyId" | "TokenRefreshRequired"
        ) {
            // Fetched afresh for the next request.
            *self.creds.lock().unwrap_or_else(|p| p.into_inner()) = None;
        }
        let detail = match code.as_str() {
            "NoSuchBucket" => format!(
                "bucket {:?} does not exist (NoSuchBucket, status {})",
                self.cfg.bucket, a.status
            ),
            "" if a.status == 403 => {
                "status 403 (access denied: see the IAM permissions in the README)".into()
            }
            "" => format!("status {}", a.status),
            c => {
                let text = String::from_utf8_lossy(&a.body);
                let message = xml_text(&text, "Message").map(clean).unwrap_or_default();
                format!("status {} {c}: {message}", a.status)
            }
        };
        self.storage(format!("S3 {what}: {detail}"))
    }

    fn credentials(&self) -> Result<sigil_kms::Credentials, String> {
        let mut cached = self.creds.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, c)) = &*cached
            && at.elapsed() < CREDENTIALS_TTL
        {
            return Ok(c.clone());
        }
        let fresh = (self.fetch)().map_err(|e| format!("no AWS credentials: {e}"))?;
        let c = sigil_kms::Credentials {
            access_key_id: fresh.access_key_id.clone(),
            secret_access_key: fresh.secret_access_key.as_str().to_owned(),
            session_token: fresh.session_token.as_ref().map(|t| t.as_str().to_owned()),
        };
        *cached = Some((Instant::now(), c.clone()));
        Ok(c)
    }

    /// One signed request to `/<bucket>[/<key>]`; the answer's body is read up to `limit`
    /// bytes (error bodies up to [`MAX_ERROR_BODY`]). Transport failures are the `Err`.
    fn send(
        &self,
        method: &'static str,
        key: Option<&str>,
        query: &[(&str, &str)],
        extra: &[(&str, String)],
        body: &[u8],
        limit: u64,
    ) -> Result<Answer, String> {
        let creds = self.credentials()?;
        // Names and the prefix are [A-Za-z0-9._/-] and bucket names [a-z0-9.-]: the path is
        // the same on the wire and in the canonical request, with nothing to encode.
        let path = match key {
            Some(k) => format!("/{}/{k}", self.cfg.bucket),
            None => format!("/{}", self.cfg.bucket),
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|_| "the clock is before 1970".to_string())?
            .as_secs();
        let time = SigningTime::from_unix(now).map_err(|e| format!("signing: {e}"))?;
        let payload = hex::encode(digest::digest(&digest::SHA256, body));
        let headers = signed_headers(
            &creds,
            &self.cfg.region,
            time,
            method,
            &self.cfg.endpoint.host,
            &path,
            query,
            extra,
            &payload,
        )
        .map_err(|e| format!("signing: {e}"))?;
        let url = format!("{}{path}{}", self.cfg.endpoint.base, query_string(query));
        fn with<B>(
            mut rb: ureq::RequestBuilder<B>,
            headers: &[(String, String)],
        ) -> ureq::RequestBuilder<B> {
            for (n, v) in headers {
                rb = rb.header(n.as_str(), v.as_str());
            }
            rb
        }
        let sent = match method {
            "PUT" => with(self.agent.put(&url), &headers).send(body),
            "HEAD" => with(self.agent.head(&url), &headers).call(),
            "DELETE" => with(self.agent.delete(&url), &headers).call(),
            _ => with(self.agent.get(&url), &headers).call(),
        };
        let mut resp = sent.map_err(|e| clip(&e.to_string(), 300))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let limit = if (200..300).contains(&status) {
            limit
        } else {
            MAX_ERROR_BODY
        };
        let (body, cut) = if method == "HEAD" {
            (Vec::new(), false)
        } else {
            // ureq's limit refuses a body of exactly `limit` bytes too (it reads once more).
            match resp
                .body_mut()
                .with_config()
                .limit(limit.saturating_add(1))
                .read_to_vec()
            {
                Ok(b) => (b, false),
                Err(ureq::Error::BodyExceedsLimit(_)) => (Vec::new(), true),
                Err(e) => {
                    return Err(format!(
                        "reading the answer (status {status}): {}",
                        clip(&e.to_string(), 300)
                    ));
                }
            }
        };
        Ok(Answer {
            status,
            headers,
            body,
            cut,
        })
    }

    /// The current version and ETag of `name`'s object, `None` if there is none.
    fn head(&self, name: &str) -> Result<Option<Head>, Response> {
        let what = format!("HeadObject {name}");
        let a = self
            .send("HEAD", Some(&self.key(name)), &[], &[], &[], 0)
            .map_err(|e| self.storage(format!("S3 {what}: {e}")))?;
        match a.status {
            200 => {
                let etag = a
                    .header("etag")
                    .filter(|e| !e.is_empty() && e.len() <= 256)
                    .ok_or_else(|| self.storage(format!("S3 {what}: the answer has no ETag")))?
                    .to_string();
                let version = parse_version(a.header(VERSION_HEADER)).ok_or_else(|| {
                    self.storage(format!(
                        "S3 {what}: the object has no valid {VERSION_HEADER}: not a sigil blob"
                    ))
                })?;
                Ok(Some(Head { version, etag }))
            }
            // A HEAD answer has no body, so a missing bucket looks the same; `open` checked
            // the bucket, and a PUT or GET names NoSuchBucket.
            404 => Ok(None),
            _ => Err(self.failure(&what, &a)),
        }
    }

    fn get(&self, name: &str) -> Result<Response, Response> {
        let what = format!("GetObject {name}");
        let limit = (store::BLOB_HEADER + self.limits.max_blob_bytes) as u64;
        let a = self
            .send("GET", Some(&self.key(name)), &[], &[], &[], limit)
            .map_err(|e| self.storage(format!("S3 {what}: {e}")))?;
        match a.status {
            200 => {
                if a.cut {
                    return Err(self.storage(format!(
                        "S3 {what}: the object is larger than the blob limit"
                    )));
                }
                let meta = parse_version(a.header(VERSION_HEADER));
                let (version, data) = store::decode_blob(a.body, self.limits.max_blob_bytes)
                    .map_err(|e| self.storage(format!("S3 {what}: not a sigil blob: {e}")))?;
                if meta != Some(version) {
                    return Err(self.storage(format!(
                        "S3 {what}: the body is version {version}, the metadata {meta:?}"
                    )));
                }
                Ok(Response {
                    ok: true,
                    version: Some(version),
                    data: Some(data),
                    ..Default::default()
                })
            }
            404 if a.code() != "NoSuchBucket" => Err(Response::err(
                "not_found",
                format!("no blob named {name:?}"),
            )),
            _ => Err(self.failure(&what, &a)),
        }
    }

    fn put(&self, name: &str, expected: u64, data: &[u8]) -> Result<Response, Response> {
        let what = format!("PutObject {name}");
        let head = self.head(name)?;
        let current = head.as_ref().map_or(0, |h| h.version);
        if current != expected {
            return Err(conflict(current, expected));
        }
        let version = current
            .checked_add(1)
            .ok_or_else(|| Response::err("limit", "version counter exhausted"))?;
        let creating = head.is_none();
        if creating {
            self.reserve()?;
        }
        if let Some(hook) = &self.race_hook {
            hook(name);
        }
        // The condition that makes this write lose to any other since the HEAD.
        let condition = match &head {
            None => ("if-none-match", "*".to_string()),
            Some(h) => ("if-match", h.etag.clone()),
        };
        let extra = [
            condition,
            ("content-type", "application/octet-stream".to_string()),
            (VERSION_HEADER, version.to_string()),
        ];
        let body = store::encode_blob(version, data);
        let sent = self.send(
            "PUT",
            Some(&self.key(name)),
            &[],
            &extra,
            &body,
            MAX_ERROR_BODY,
        );
        drop(body);
        let done = match sent {
            Err(e) => Err(self.storage(format!("S3 {what}: {e} (the write may have happened)"))),
            Ok(a) => match a.status {
                200 => Ok(Response {
                    ok: true,
                    version: Some(version),
                    ..Default::default()
                }),
                // 412: the condition failed; 409: a conflicting write was in flight; 404 with
                // If-Match: the object was deleted since the HEAD.
                412 | 409 => Err(self.lost_race(name, expected, false)),
                404 if !creating && a.code() == "NoSuchKey" => {
                    Err(self.lost_race(name, expected, false))
                }
                _ => Err(self.failure(&what, &a)),
            },
        };
        if creating && done.is_err() {
            self.release();
        }
        done
    }

    fn delete(&self, name: &str, expected: u64) -> Result<Response, Response> {
        let what = format!("DeleteObject {name}");
        let Some(head) = self.head(name)? else {
            return Err(Response::err(
                "not_found",
                format!("no blob named {name:?}"),
            ));
        };
        if head.version != expected {
            return Err(conflict(head.version, expected));
        }
        if let Some(hook) = &self.race_hook {
            hook(name);
        }
        let extra = [("if-match", head.etag)];
        let a = self
            .send(
                "DELETE",
                Some(&self.key(name)),
                &[],
                &extra,
                &[],
                MAX_ERROR_BODY,
            )
            .map_err(|e| self.storage(format!("S3 {what}: {e} (the delete may have happened)")))?;
        match a.status {
            200 | 204 => {
                self.release();
                Ok(Response {
                    ok: true,
                    version: Some(expected),
                    ..Default::default()
                })
            }
            412 | 409 => Err(self.lost_race(name, expected, true)),
            404 if a.code() != "NoSuchBucket" => Err(self.lost_race(name, expected, true)),
            _ => Err(self.failure(&what, &a)),
        }
    }

    /// The answer to a put or delete whose condition failed: another writer changed the blob
    /// since the HEAD. Reads it again to report the version it lost to, as the file store
    /// reports the current version.
    fn lost_race(&self, name: &str, expected: u64, deleting: bool) -> Response {
        match self.head(name) {
            Err(e) => e,
            Ok(None) if deleting => Response::err("not_found", format!("no blob named {name:?}")),
            Ok(h) => {
                let current = h.map_or(0, |h| h.version);
                if current != expected {
                    conflict(current, expected)
                } else {
                    // Deleted and written again at the same version in between, or a write
                    // still in flight (S3's 409): nothing was written; trying again is safe.
                    self.storage(format!(
                        "S3 {name}: changed by another writer during the request; try again"
                    ))
                }
            }
        }
    }

    /// Takes room for one new blob, or refuses with `limit` (see the module documentation).
    fn reserve(&self) -> Result<(), Response> {
        let mut c = self.count_lock();
        let stale = c.at.is_none_or(|t| t.elapsed() >= COUNT_TTL);
        if stale || c.blobs.saturating_add(RECOUNT_MARGIN) >= self.limits.max_blobs {
            c.blobs = self.count_blobs()?;
            c.at = Some(Instant::now());
        }
        if c.blobs >= self.limits.max_blobs {
            return Err(Response::err(
                "limit",
                format!("the store holds {} blobs, the limit", self.limits.max_blobs),
            ));
        }
        c.blobs += 1;
        Ok(())
    }

    /// Gives back the room of a blob that was deleted or not created.
    fn release(&self) {
        let mut c = self.count_lock();
        c.blobs = c.blobs.saturating_sub(1);
    }

    /// Blobs under the prefix, counted up to `max_blobs`.
    fn count_blobs(&self) -> Result<usize, Response> {
        let max = self.limits.max_blobs;
        let (names, cut) = self.names("", max, max / PAGE + 16)?;
        Ok(if cut {
            max.max(names.len())
        } else {
            names.len()
        })
    }

    /// Up to `want` blob names starting with `prefix`, in S3's (byte) order, reading at most
    /// `pages` pages; keys under the prefix that are not sigil names are skipped. The flag is
    /// set if there may be more.
    fn names(
        &self,
        prefix: &str,
        want: usize,
        pages: usize,
    ) -> Result<(Vec<String>, bool), Response> {
        let what = format!("ListObjectsV2 {:?}", self.key(prefix));
        let full = self.key(prefix);
        let max_keys = PAGE.to_string();
        let mut names = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..pages {
            let mut query = vec![
                ("list-type", "2"),
                ("max-keys", max_keys.as_str()),
                ("prefix", full.as_str()),
            ];
            if let Some(t) = &token {
                query.push(("continuation-token", t.as_str()));
            }
            let a = self
                .send("GET", None, &query, &[], &[], MAX_LIST_BODY)
                .map_err(|e| self.storage(format!("S3 {what}: {e}")))?;
            if a.status != 200 {
                return Err(self.failure(&what, &a));
            }
            let page = parse_list(&a).map_err(|e| self.storage(format!("S3 {what}: {e}")))?;
            for key in page.keys {
                let Some(name) = key.strip_prefix(&self.cfg.prefix) else {
                    continue;
                };
                if name.is_empty() || !name.starts_with(prefix) || check_name(name, "").is_err() {
                    continue;
                }
                names.push(name.to_string());
                if names.len() >= want {
                    return Ok((names, true));
                }
            }
            match page.next {
                None => return Ok((names, false)),
                Some(t) => token = Some(t),
            }
        }
        Ok((names, true))
    }
}

impl Backend for S3Store {
    fn handle(&self, r: Request) -> Response {
        S3Store::handle(self, r)
    }
}

fn parse_version(v: Option<&str>) -> Option<u64> {
    v.and_then(|v| v.parse::<u64>().ok()).filter(|&v| v > 0)
}

/// One ListObjectsV2 page: the keys (decoded) and the continuation token if truncated.
struct Page {
    keys: Vec<String>,
    next: Option<String>,
}

fn parse_list(a: &Answer) -> Result<Page, String> {
    if a.cut {
        return Err(format!("listing larger than {MAX_LIST_BODY} bytes"));
    }
    let text = std::str::from_utf8(&a.body).map_err(|_| "listing is not UTF-8".to_string())?;
    if !text.contains("<ListBucketResult") {
        return Err("the answer is not a ListBucketResult".into());
    }
    let keys = xml_texts(text, "Key")
        .into_iter()
        .take(PAGE + 1)
        // A key that needs an entity other than these is not a sigil name anyway.
        .filter_map(xml_unescape)
        .collect();
    let truncated = xml_text(text, "IsTruncated") == Some("true");
    let next = match (truncated, xml_text(text, "NextContinuationToken")) {
        (false, _) => None,
        (true, Some(t)) if !t.is_empty() && t.len() <= 1024 => {
            Some(xml_unescape(t).ok_or("unreadable continuation token")?)
        }
        (true, _) => return Err("truncated listing without a usable continuation token".into()),
    };
    Ok(Page { keys, next })
}

/// The text of the first `<tag>...</tag>` (S3 writes these elements without attributes).
fn xml_text<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    xml_texts_iter(xml, tag).next()
}

fn xml_texts<'a>(xml: &'a str, tag: &str) -> Vec<&'a str> {
    xml_texts_iter(xml, tag).collect()
}

fn xml_texts_iter<'a>(xml: &'a str, tag: &str) -> impl Iterator<Item = &'a str> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let mut rest = xml;
    std::iter::from_fn(move || {
        let start = rest.find(&open)? + open.len();
        let len = rest[start..].find(&close)?;
        let text = &rest[start..start + len];
        rest = &rest[start + len + close.len()..];
        Some(text)
    })
}

/// XML's five predefined entities; `None` for anything else after `&`.
fn xml_unescape(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let after = &rest[i..];
        let (c, n) = [
            ("&amp;", '&'),
            ("&lt;", '<'),
            ("&gt;", '>'),
            ("&quot;", '"'),
            ("&apos;", '\''),
        ]
        .iter()
        .find(|(e, _)| after.starts_with(e))
        .map(|(e, c)| (*c, e.len()))?;
        out.push(c);
        rest = &after[n..];
    }
    out.push_str(rest);
    Some(out)
}

/// Server text made safe for a log line and an error message: printable ASCII, clipped.
fn clean(s: &str) -> String {
    s.chars()
        .take(200)
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect()
}

fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

/// SigV4's encoding of a query key or value: RFC 3986 unreserved characters stay.
fn uri_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `?k=v&...` encoded as the signer encodes it for the canonical request, so both agree.
fn query_string(query: &[(&str, &str)]) -> String {
    if query.is_empty() {
        return String::new();
    }
    let pairs: Vec<String> = query
        .iter()
        .map(|(k, v)| format!("{}={}", uri_encode(k), uri_encode(v)))
        .collect();
    format!("?{}", pairs.join("&"))
}

/// The headers of one S3 request, signed with SigV4 by the workspace's signer
/// (`sigil_kms::sigv4`): `host`, the `extra` headers, `x-amz-content-sha256`, `x-amz-date`,
/// the session token if any, and `authorization`.
///
/// The signer's canonical request ends with the SHA-256 of the body it is given, and it bounds
/// that body at 256 KiB (KMS requests are small). S3 takes the payload's hash from
/// `x-amz-content-sha256` instead, so the request is canonicalized without its body and the
/// last line (the hash) is that header's value: the canonical form, the string to sign and the
/// key derivation are all the signer's. Every header sent is signed, except Content-Length,
/// which ureq adds.
#[allow(clippy::too_many_arguments)]
pub fn signed_headers(
    creds: &sigil_kms::Credentials,
    region: &str,
    time: SigningTime,
    method: &str,
    host: &str,
    path: &str,
    query: &[(&str, &str)],
    extra: &[(&str, String)],
    payload_sha256: &str,
) -> Result<Vec<(String, String)>, SigV4Error> {
    let mut headers: Vec<(String, String)> = vec![("host".into(), host.into())];
    headers.extend(extra.iter().map(|(n, v)| (n.to_string(), v.clone())));
    headers.push(("x-amz-content-sha256".into(), payload_sha256.into()));
    headers.push(("x-amz-date".into(), time.amz_date().into()));
    if let Some(t) = &creds.session_token {
        headers.push(("x-amz-security-token".into(), t.clone()));
    }
    let req = sigv4::Request {
        method: method.into(),
        path: path.into(),
        query: query
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        headers: headers.clone(),
        body: Vec::new(),
    };
    let date = time.date().to_string();
    let mut params = SigningParams::new(region, "s3", time);
    // S3 signs the path as sent: no dot-segment removal.
    params.normalize_path = false;
    let canonical = sigv4::canonical_request(&req, &params)?;
    let (head, _empty_body_hash) = canonical.rsplit_once('\n').ok_or(SigV4Error::BadPath)?;
    let signed = head.rsplit('\n').next().unwrap_or_default().to_string();
    let canonical = format!("{head}\n{payload_sha256}");
    let sts = sigv4::string_to_sign(&canonical, &params);
    let signature = sigv4::signature(creds, &params, &sts)?;
    headers.push((
        "authorization".into(),
        format!(
            "AWS4-HMAC-SHA256 Credential={}/{date}/{region}/s3/aws4_request, \
             SignedHeaders={signed}, Signature={signature}",
            creds.access_key_id
        ),
    ));
    Ok(headers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Op;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    fn example_creds() -> sigil_kms::Credentials {
        sigil_kms::Credentials {
            access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
            session_token: None,
        }
    }

    fn authorization(headers: &[(String, String)]) -> &str {
        &headers
            .iter()
            .find(|(n, _)| n == "authorization")
            .unwrap()
            .1
    }

    const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    /// The examples of AWS's "Signature Calculations for the Authorization Header:
    /// Transferring Payload in a Single Chunk" (S3 API reference): GET Object, PUT Object,
    /// GET Bucket (list).
    #[test]
    fn signing_matches_the_aws_s3_examples() {
        let t = || SigningTime::from_amz_date("20130524T000000Z").unwrap();
        let host = "examplebucket.s3.amazonaws.com";
        let get = signed_headers(
            &example_creds(),
            "us-east-1",
            t(),
            "GET",
            host,
            "/test.txt",
            &[],
            &[("range", "bytes=0-9".into())],
            EMPTY_SHA256,
        )
        .unwrap();
        assert_eq!(
            authorization(&get),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, \
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
        let body = b"Welcome to Amazon S3.";
        let hash = hex::encode(digest::digest(&digest::SHA256, body));
        assert_eq!(
            hash,
            "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072"
        );
        let put = signed_headers(
            &example_creds(),
            "us-east-1",
            t(),
            "PUT",
            host,
            "/test$file.text",
            &[],
            &[
                ("date", "Fri, 24 May 2013 00:00:00 GMT".into()),
                ("x-amz-storage-class", "REDUCED_REDUNDANCY".into()),
            ],
            &hash,
        )
        .unwrap();
        assert!(
            authorization(&put).ends_with(
                "SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class, \
                 Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"
            ),
            "{}",
            authorization(&put)
        );
        let list = signed_headers(
            &example_creds(),
            "us-east-1",
            t(),
            "GET",
            host,
            "/",
            &[("max-keys", "2"), ("prefix", "J")],
            &[],
            EMPTY_SHA256,
        )
        .unwrap();
        assert!(
            authorization(&list).ends_with(
                "SignedHeaders=host;x-amz-content-sha256;x-amz-date, \
                 Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"
            ),
            "{}",
            authorization(&list)
        );
        // A session token is sent and signed.
        let mut c = example_creds();
        c.session_token = Some("TOKEN".into());
        let h = signed_headers(
            &c,
            "us-east-1",
            t(),
            "GET",
            host,
            "/",
            &[],
            &[],
            EMPTY_SHA256,
        )
        .unwrap();
        assert!(h.contains(&("x-amz-security-token".into(), "TOKEN".into())));
        assert!(authorization(&h).contains("x-amz-date;x-amz-security-token,"));
        // Header injection is refused by the signer, not sent.
        let e = signed_headers(
            &example_creds(),
            "us-east-1",
            t(),
            "PUT",
            host,
            "/x",
            &[],
            &[("if-match", "\"a\"\r\nx-evil: 1".into())],
            EMPTY_SHA256,
        );
        assert_eq!(e.unwrap_err(), SigV4Error::BadHeader);
    }

    #[test]
    fn query_strings_encode_as_the_signer_does() {
        assert_eq!(query_string(&[]), "");
        assert_eq!(
            query_string(&[("list-type", "2"), ("continuation-token", "a+b/c= d")]),
            "?list-type=2&continuation-token=a%2Bb%2Fc%3D%20d"
        );
    }

    #[test]
    fn settings_are_checked() {
        let ok = |e: &str| e.parse::<Endpoint>().unwrap();
        let e = ok("http://127.0.0.1:4566");
        assert_eq!(
            (e.base.as_str(), e.host()),
            ("http://127.0.0.1:4566", "127.0.0.1:4566")
        );
        let e = ok("https://S3.eu-west-1.amazonaws.com/");
        assert_eq!(e.host(), "s3.eu-west-1.amazonaws.com");
        assert_eq!(ok("https://s3.x:443").host(), "s3.x");
        assert_eq!(ok("http://[::1]:9000").host(), "[::1]:9000");
        for bad in [
            "s3.amazonaws.com",
            "ftp://x",
            "http://",
            "http://a/b",
            "http://u@h",
            "http://h?x",
            "http://h:0",
            "http://h:99999",
            "http://h:",
            "http://h :1",
            "http://[zz]:1",
            "http://h\r\n:1",
        ] {
            assert!(bad.parse::<Endpoint>().is_err(), "{bad:?}");
        }
        let cfg = |b: &str, r: &str, p: &str| S3Config::new("http://h:1", b, r, p);
        assert!(cfg("my-bucket.1", "eu-west-1", "sigil/").is_ok());
        for b in [
            "ab",
            "Upper",
            "-a-b",
            "a-b-",
            "a..b",
            "a_b",
            &"a".repeat(64),
        ] {
            assert!(
                matches!(cfg(b, "eu-west-1", ""), Err(S3ConfigError::Bucket(_))),
                "{b:?}"
            );
        }
        assert!(matches!(
            cfg("bucket", "EU/1", ""),
            Err(S3ConfigError::Region(_))
        ));
        for p in ["/abs", "a/../b", "sp ace", "a?b"] {
            assert!(
                matches!(cfg("bucket", "eu-west-1", p), Err(S3ConfigError::Prefix(_))),
                "{p:?}"
            );
        }
    }

    #[test]
    fn xml_pieces() {
        let x = "<?xml version=\"1.0\"?><ListBucketResult><Name>b</Name>\
                 <KeyCount>2</KeyCount><IsTruncated>true</IsTruncated>\
                 <NextContinuationToken>t&amp;1</NextContinuationToken>\
                 <Contents><Key>p/a</Key></Contents><Contents><Key>p/&lt;b&gt;</Key></Contents>\
                 <Contents><Key>p/&#x41;</Key></Contents></ListBucketResult>";
        assert_eq!(xml_texts(x, "Key"), ["p/a", "p/&lt;b&gt;", "p/&#x41;"]);
        let page = parse_list(&Answer {
            status: 200,
            headers: Default::default(),
            body: x.as_bytes().to_vec(),
            cut: false,
        })
        .unwrap();
        assert_eq!(page.keys, ["p/a", "p/<b>"]);
        assert_eq!(page.next.as_deref(), Some("t&1"));
        assert_eq!(
            xml_text("<Code>NoSuchKey</Code>", "Code"),
            Some("NoSuchKey")
        );
        assert_eq!(xml_text("<Code>NoSuchKey", "Code"), None);
        assert_eq!(clip("aé", 2), "a...");
        assert_eq!(clean("a\r\nb\u{1b}é"), "a??b??");
    }

    /// A server on 127.0.0.1 that answers every request with what `answer` returns for its
    /// request head (`None`: say nothing and hold the connection).
    fn fake_s3(answer: impl Fn(&str) -> Option<Vec<u8>> + Send + Sync + 'static) -> String {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let at = l.local_addr().unwrap().to_string();
        let answer = std::sync::Arc::new(answer);
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { return };
                let answer = answer.clone();
                std::thread::spawn(move || {
                    let mut head = Vec::new();
                    let mut b = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") && s.read(&mut b).unwrap_or(0) == 1 {
                        head.push(b[0]);
                    }
                    let head = String::from_utf8_lossy(&head).to_string();
                    // Drain a request body, if any.
                    let len = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length: ")
                                .map(|v| v.trim().parse::<u64>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    let _ = std::io::copy(&mut (&mut s).take(len), &mut std::io::sink());
                    match answer(&head) {
                        Some(raw) => {
                            let _ = s.write_all(&raw);
                        }
                        None => std::thread::sleep(Duration::from_secs(10)),
                    }
                });
            }
        });
        at
    }

    fn store_at(at: &str, timeout: Duration) -> S3Store {
        let mut cfg = S3Config::new(&format!("http://{at}"), "bucket", "eu-west-1", "p/").unwrap();
        cfg.timeout = timeout;
        S3Store::new(
            cfg,
            Limits {
                max_blob_bytes: 1024,
                max_blobs: 10,
            },
            Box::new(|| {
                creds::from_env(|k| match k {
                    "AWS_ACCESS_KEY_ID" => Some("AKIDTEST".into()),
                    "AWS_SECRET_ACCESS_KEY" => Some("secret".into()),
                    _ => None,
                })
            }),
        )
    }

    fn req(op: Op, name: &str, ev: Option<u64>, data: Option<&[u8]>) -> Request {
        Request {
            op,
            name: (op != Op::List).then(|| name.into()),
            expected_version: ev,
            data: data.map(|d| d.to_vec()),
            prefix: (op == Op::List).then(|| name.into()),
        }
    }

    fn http(status: &str, headers: &str, body: &[u8]) -> Vec<u8> {
        let mut v = format!(
            "HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        v.extend_from_slice(body);
        v
    }

    /// Whatever the server answers, the store answers with an error code (never a panic, never
    /// an unbounded read, never a hang past the timeout).
    #[test]
    fn hostile_answers_are_storage_errors() {
        let blob = store::encode_blob(1, b"x");
        let mut huge = format!(
            "HTTP/1.1 200 OK\r\nx-amz-meta-sigil-version: 1\r\nContent-Length: {}\r\n\r\n",
            10 << 20
        )
        .into_bytes();
        huge.resize(huge.len() + (10 << 20), b'a');
        let cases: Vec<(Vec<u8>, Request, &str)> = vec![
            // HEAD without an ETag, without a version, with a bad version.
            (
                http("200 OK", "", b""),
                req(Op::Put, "a", Some(1), Some(b"x")),
                "no ETag",
            ),
            (
                http("200 OK", "ETag: \"e\"\r\n", b""),
                req(Op::Put, "a", Some(1), Some(b"x")),
                "not a sigil blob",
            ),
            (
                http(
                    "200 OK",
                    "ETag: \"e\"\r\nx-amz-meta-sigil-version: -1\r\n",
                    b"",
                ),
                req(Op::Delete, "a", Some(1), None),
                "not a sigil blob",
            ),
            // GET: too big, not our format, metadata and body disagree, cut short.
            (
                huge,
                req(Op::Get, "a", None, None),
                "larger than the blob limit",
            ),
            (
                http("200 OK", "x-amz-meta-sigil-version: 1\r\n", b"garbage"),
                req(Op::Get, "a", None, None),
                "not a sigil blob",
            ),
            (
                http("200 OK", "x-amz-meta-sigil-version: 2\r\n", &blob),
                req(Op::Get, "a", None, None),
                "metadata",
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort".to_vec(),
                req(Op::Get, "a", None, None),
                "S3 GetObject a",
            ),
            // Lists: not XML, truncated without a token.
            (
                http("200 OK", "", b"{}"),
                req(Op::List, "", None, None),
                "not a ListBucketResult",
            ),
            (
                http(
                    "200 OK",
                    "",
                    b"<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>",
                ),
                req(Op::List, "", None, None),
                "continuation token",
            ),
            // Errors: with S3's XML, without, with an oversized body, and garbage.
            (
                http(
                    "403 Forbidden",
                    "",
                    b"<Error><Code>AccessDenied</Code><Message>no\r\n</Message></Error>",
                ),
                req(Op::Get, "a", None, None),
                "status 403 AccessDenied: no??",
            ),
            (
                http("500 Oops", "", b""),
                req(Op::Get, "a", None, None),
                "status 500",
            ),
            (
                http("503 Slow Down", "", &vec![b'<'; 1 << 20]),
                req(Op::Get, "a", None, None),
                "status 503",
            ),
            (
                b"garbage\r\n\r\n".to_vec(),
                req(Op::Get, "a", None, None),
                "S3 GetObject a",
            ),
            (
                http(
                    "404 Not Found",
                    "",
                    b"<Error><Code>NoSuchBucket</Code></Error>",
                ),
                req(Op::Get, "a", None, None),
                "does not exist (NoSuchBucket",
            ),
        ];
        for (raw, r, want) in cases {
            let raw = std::sync::Arc::new(raw);
            let at = fake_s3(move |_| Some(raw.to_vec()));
            let s = store_at(&at, Duration::from_secs(10));
            let resp = s.handle(r.clone());
            let e = resp.error.expect("an error");
            assert_eq!(e.code, "storage", "{r:?}: {}", e.message);
            assert!(e.message.contains(want), "{r:?}: {}", e.message);
            assert!(e.message.len() <= MAX_MESSAGE + 3);
        }
        // A server that never answers: a storage error once the request's time is up.
        let at = fake_s3(|_| None);
        let s = store_at(&at, Duration::from_secs(1));
        let t = Instant::now();
        let e = s.handle(req(Op::Get, "a", None, None)).error.unwrap();
        assert_eq!(e.code, "storage", "{}", e.message);
        assert!(t.elapsed() < Duration::from_secs(5));
        // Nothing listens: a storage error.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let s = store_at(&port.to_string(), Duration::from_secs(2));
        let e = s.handle(req(Op::Get, "a", None, None)).error.unwrap();
        assert_eq!(e.code, "storage", "{}", e.message);
    }

    /// https endpoints speak TLS (ureq's rustls, compiled in): a server that answers in plain
    /// HTTP fails the handshake, as a storage error.
    #[test]
    fn https_endpoints_use_tls() {
        // Answers at once, without waiting for a request head (a ClientHello has none).
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let at = l.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            for mut c in l.incoming().flatten() {
                let _ = c.write_all(&http("200 OK", "", b""));
            }
        });
        let cfg = S3Config::new(&format!("https://{at}"), "bucket", "eu-west-1", "").unwrap();
        let s = S3Store::new(
            cfg,
            Limits {
                max_blob_bytes: 1024,
                max_blobs: 10,
            },
            store_at(&at, Duration::from_secs(5)).fetch,
        );
        let e = s.handle(req(Op::Get, "a", None, None)).error.unwrap();
        assert_eq!(e.code, "storage");
        // rustls's alert for a record that is not TLS.
        assert!(e.message.contains("InvalidContentType"), "{}", e.message);
    }

    /// The requests the store sends, as the fake sees them: path-style, conditional headers,
    /// the version in the metadata, every header signed.
    #[test]
    fn requests_are_path_style_conditional_and_signed() {
        let seen = std::sync::Arc::new(Mutex::new(Vec::<String>::new()));
        let log = seen.clone();
        let at = fake_s3(move |head| {
            log.lock().unwrap().push(head.to_string());
            Some(if head.starts_with("HEAD ") {
                http("404 Not Found", "", b"")
            } else if head.starts_with("GET ") {
                http("200 OK", "", b"<ListBucketResult></ListBucketResult>")
            } else {
                http("200 OK", "ETag: \"e\"\r\n", b"")
            })
        });
        let s = store_at(&at, Duration::from_secs(10));
        // HEAD, then the count for max_blobs (a listing), then the conditional PUT.
        assert!(s.handle(req(Op::Put, "dir/x", Some(0), Some(b"data"))).ok);
        let seen = seen.lock().unwrap().clone();
        let lower: Vec<String> = seen.iter().map(|h| h.to_ascii_lowercase()).collect();
        assert!(
            lower[0].starts_with("head /bucket/p/dir/x http/1.1"),
            "{}",
            seen[0]
        );
        assert!(
            lower[1].starts_with("get /bucket?list-type=2&max-keys=1000&prefix=p%2f http/1.1"),
            "{}",
            seen[1]
        );
        let put = &lower[2];
        assert!(put.starts_with("put /bucket/p/dir/x http/1.1"), "{put}");
        assert!(put.contains("\r\nif-none-match: *\r\n"), "{put}");
        assert!(put.contains("\r\nx-amz-meta-sigil-version: 1\r\n"), "{put}");
        assert!(put.contains(&format!("\r\nhost: {at}\r\n")), "{put}");
        assert!(put.contains(&format!("content-length: {}\r\n", store::BLOB_HEADER + 4)));
        let blob_hash = hex::encode(digest::digest(
            &digest::SHA256,
            &store::encode_blob(1, b"data"),
        ));
        assert!(
            put.contains(&format!("x-amz-content-sha256: {blob_hash}")),
            "{put}"
        );
        assert!(
            put.contains(
                "signedheaders=content-type;host;if-none-match;x-amz-content-sha256;x-amz-date;\
                 x-amz-meta-sigil-version,"
            ),
            "{put}"
        );
    }
}
