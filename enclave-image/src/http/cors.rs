//! Cross-origin resource sharing (CORS): which web origins' scripts a browser lets read the
//! API's answers.
//!
//! Threat note. CORS is no access control for the enclave: any client that is not a browser
//! ignores it, and every answer that matters is sealed to its requester anyway. What it
//! decides is whether a page from another origin, running in a user's browser, may drive this
//! enclave with that browser and read the answers (attest, submit proving jobs, poll them). A
//! page of an origin not listed gets no CORS header at all, so the browser keeps the answer
//! from its script, and its preflights fail, so it cannot send encapsulated bodies. The list
//! is part of the measured configuration (the parent cannot widen it) and names exact origins
//! only: no wildcard (`*` would hand every site on the web the user's browser), no `null`
//! (sent by sandboxed frames and local files, which any site can create), no credentials
//! (the API uses no cookies or HTTP authentication, so none are allowed).
//!
//! Preflights (`OPTIONS` with `Access-Control-Request-Method`) go through the same limits as
//! every request (head size, timeouts, connection count; no body: the route table gives
//! `OPTIONS` a body limit of 0) and are answered only for paths that are routes.

use std::collections::BTreeSet;

use bytes::Bytes;
use http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_METHOD, CACHE_CONTROL, HeaderMap, HeaderValue,
    ORIGIN, VARY,
};
use http_body_util::Full;

/// The most origins a configuration lists.
pub const MAX_ORIGINS: usize = 32;
/// The longest origin accepted (scheme, host and port).
pub const MAX_ORIGIN_LEN: usize = 256;
/// How long a browser may cache a preflight's answer, seconds.
pub const MAX_AGE_SECS: u32 = 600;
/// The request headers a page may send: the SDK sets only `content-type`
/// (`application/sigil-encapsulated`, which is not a CORS-safelisted type, hence preflights).
pub const ALLOW_HEADERS: &str = "content-type";

/// The origins whose scripts may read answers; empty (the default) sends no CORS header.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cors {
    origins: BTreeSet<String>,
}

impl Cors {
    /// No origin: no CORS header on any answer.
    pub fn none() -> Cors {
        Cors::default()
    }

    /// Each origin checked by [`check_origin`]; at most [`MAX_ORIGINS`] different ones.
    pub fn new<I, S>(origins: I) -> Result<Cors, String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut set = BTreeSet::new();
        for o in origins {
            let o = o.as_ref();
            check_origin(o)?;
            set.insert(o.to_string());
        }
        if set.len() > MAX_ORIGINS {
            return Err(format!(
                "{} origins; at most {MAX_ORIGINS} are allowed",
                set.len()
            ));
        }
        Ok(Cors { origins: set })
    }

    pub fn is_empty(&self) -> bool {
        self.origins.is_empty()
    }

    pub fn origins(&self) -> impl Iterator<Item = &str> {
        self.origins.iter().map(String::as_str)
    }

    /// The request's `Origin` when it is one of ours (compared byte for byte, as browsers
    /// serialize origins); `None` without one, with several, or with another.
    pub fn allowed(&self, headers: &HeaderMap) -> Option<HeaderValue> {
        if self.origins.is_empty() {
            return None;
        }
        let mut all = headers.get_all(ORIGIN).iter();
        let origin = all.next()?;
        if all.next().is_some() {
            return None;
        }
        let s = origin.to_str().ok()?;
        self.origins.contains(s).then(|| origin.clone())
    }
}

/// Whether a request is a CORS preflight (an `OPTIONS` naming the method it prepares).
pub fn is_preflight(method: &http::Method, headers: &HeaderMap) -> bool {
    method == http::Method::OPTIONS && headers.contains_key(ACCESS_CONTROL_REQUEST_METHOD)
}

/// The answer to a preflight from an allowed origin for a route taking `methods`
/// (`"GET"`, `"POST"`, ...); the origin headers are added by [`expose`].
pub fn preflight(methods: &str) -> hyper::Response<Full<Bytes>> {
    let mut resp = hyper::Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = http::StatusCode::NO_CONTENT;
    let h = resp.headers_mut();
    if let Ok(m) = HeaderValue::from_str(methods) {
        h.insert(ACCESS_CONTROL_ALLOW_METHODS, m);
    }
    h.insert(
        ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(ALLOW_HEADERS),
    );
    h.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from(MAX_AGE_SECS));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// Lets the page of `origin` read this answer (errors included, so it can show why). No
/// `Access-Control-Expose-Headers`: the SDK reads only the status and `content-type`, which
/// browsers always expose. The `Vary` header is [`vary`]'s.
pub fn expose(headers: &mut HeaderMap, origin: HeaderValue) {
    headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
}

/// Marks an answer as depending on the request's `Origin`, whoever asked, whenever the policy
/// lists any origin.
///
/// Threat: a shared cache between browsers and the enclave storing an answer given to a
/// request without an allowed `Origin` (no CORS header) and serving that copy to a page of an
/// allowed origin (which the browser then keeps from its script), or the other way round. With
/// `Vary: origin` on every answer, a cache keys each copy by the origin it was made for.
pub fn vary(cors: &Cors, headers: &mut HeaderMap) {
    if !cors.is_empty() {
        headers.append(VARY, HeaderValue::from_static("origin"));
    }
}

/// An origin as browsers send it: `http` or `https`, `://`, a lowercase host (a name, an
/// IPv4 address or a bracketed IPv6 one), and a port only when it is not the scheme's
/// default. Anything else could never match a browser's `Origin`, so it is refused rather
/// than silently useless.
pub fn check_origin(o: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("CORS origin {o:?}: {why}"));
    if o.is_empty() || o.len() > MAX_ORIGIN_LEN {
        return bad(&format!("must be 1..={MAX_ORIGIN_LEN} characters"));
    }
    if o == "*" || o == "null" {
        return bad("only exact origins are allowed (no \"*\", no \"null\")");
    }
    let (scheme, rest) = match o.split_once("://") {
        Some(("https", rest)) => ("https", rest),
        Some(("http", rest)) => ("http", rest),
        _ => return bad("must start with https:// or http://"),
    };
    if rest.contains('/') || rest.contains('?') || rest.contains('#') || rest.contains('@') {
        return bad("an origin is scheme://host[:port], without path, query or user");
    }
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let Some((addr, after)) = v6.split_once(']') else {
            return bad("unclosed [ in an IPv6 host");
        };
        if addr.is_empty() || !addr.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return bad("not an IPv6 address in brackets");
        }
        match after {
            "" => (&rest[..addr.len() + 2], None),
            p => match p.strip_prefix(':') {
                Some(port) => (&rest[..addr.len() + 2], Some(port)),
                None => return bad("junk after the IPv6 host"),
            },
        }
    } else {
        match rest.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        }
    };
    if host.is_empty() {
        return bad("no host");
    }
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        return bad("browsers send hosts in lowercase");
    }
    let host_ok = host.starts_with('[')
        || host
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    if !host_ok {
        return bad("the host may hold only a-z, 0-9, '-' and '.' (IDNs in punycode)");
    }
    if let Some(p) = port {
        let n = match p.parse::<u16>() {
            Ok(n) if n > 0 && !p.starts_with('0') => n,
            _ => return bad("the port must be 1..=65535 without leading zeros"),
        };
        if (scheme, n) == ("https", 443) || (scheme, n) == ("http", 80) {
            return bad("browsers leave the scheme's default port out");
        }
    }
    // Threat: a page served over plain HTTP can be replaced by anyone on its network path,
    // whose script would then drive the enclave from the user's browser as that origin. Only
    // a loopback page (this machine, for development) may be http.
    if scheme == "http" && !matches!(host, "127.0.0.1" | "localhost" | "[::1]") {
        return bad(
            "an http:// origin must be loopback (127.0.0.1, localhost or [::1]); \
             pages of other hosts need https://",
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(origins: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for o in origins {
            h.append(ORIGIN, HeaderValue::from_str(o).unwrap());
        }
        h
    }

    #[test]
    fn origins_are_exact() {
        for ok in [
            "https://wallet.example",
            "http://127.0.0.1:8080",
            "https://a-b.example.co:8443",
            "http://[::1]:3000",
            "http://[::1]",
            "http://localhost",
            "http://localhost:5173",
            "http://127.0.0.1",
            "https://10.0.0.1:8443",
        ] {
            check_origin(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for (bad, why) in [
            ("*", "exact origins"),
            ("null", "exact origins"),
            ("", "1..="),
            ("wallet.example", "https://"),
            ("ftp://wallet.example", "https://"),
            ("https://wallet.example/", "without path"),
            ("https://wallet.example/app", "without path"),
            ("https://user@wallet.example", "without path"),
            ("https://Wallet.example", "lowercase"),
            ("https://wallet.example:443", "default port"),
            ("http://wallet.example:80", "default port"),
            ("https://wallet.example:0", "1..=65535"),
            ("https://wallet.example:08443", "leading zeros"),
            ("https://wallet.example:99999", "1..=65535"),
            ("https://*.example", "a-z"),
            ("https://", "no host"),
            ("http://[::1", "unclosed"),
            ("http://[zz]:1", "IPv6"),
            ("http://wallet.example", "must be loopback"),
            ("http://wallet.example:8080", "must be loopback"),
            ("http://10.0.0.1:8080", "must be loopback"),
            ("http://127.0.0.2:8080", "must be loopback"),
            ("http://localhost.example", "must be loopback"),
            ("http://[::2]:3000", "must be loopback"),
        ] {
            let e = check_origin(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
        let many: Vec<String> = (0..=MAX_ORIGINS)
            .map(|i| format!("https://o{i}.example"))
            .collect();
        assert!(Cors::new(&many).unwrap_err().contains("at most"));
    }

    #[test]
    fn only_a_listed_origin_is_allowed() {
        let cors = Cors::new(["https://wallet.example", "http://127.0.0.1:8080"]).unwrap();
        let o = cors.allowed(&headers(&["https://wallet.example"]));
        assert_eq!(o.unwrap(), "https://wallet.example");
        for h in [
            headers(&[]),
            headers(&["https://evil.example"]),
            headers(&["https://wallet.example.evil.example"]),
            headers(&["https://WALLET.example"]),
            headers(&["https://wallet.example/"]),
            headers(&["null"]),
            // Two Origin headers: no browser sends that; refuse rather than pick one.
            headers(&["https://wallet.example", "https://wallet.example"]),
        ] {
            assert_eq!(cors.allowed(&h), None, "{h:?}");
        }
        // None by default: no origin is allowed, whatever it sends.
        assert_eq!(
            Cors::none().allowed(&headers(&["https://wallet.example"])),
            None
        );
    }

    #[test]
    fn preflight_answer() {
        let mut h = HeaderMap::new();
        assert!(!is_preflight(&http::Method::OPTIONS, &h));
        h.insert(
            ACCESS_CONTROL_REQUEST_METHOD,
            HeaderValue::from_static("POST"),
        );
        assert!(is_preflight(&http::Method::OPTIONS, &h));
        assert!(!is_preflight(&http::Method::POST, &h));
        let mut r = preflight("POST");
        assert_eq!(r.status(), 204);
        expose(
            r.headers_mut(),
            HeaderValue::from_static("https://w.example"),
        );
        let h = r.headers();
        assert_eq!(h[ACCESS_CONTROL_ALLOW_ORIGIN], "https://w.example");
        assert_eq!(h[ACCESS_CONTROL_ALLOW_METHODS], "POST");
        assert_eq!(h[ACCESS_CONTROL_ALLOW_HEADERS], "content-type");
        assert_eq!(h[ACCESS_CONTROL_MAX_AGE], "600");
    }

    #[test]
    fn every_answer_varies_by_origin_once_an_origin_is_listed() {
        let cors = Cors::new(["https://wallet.example"]).unwrap();
        // An answer to a request without an allowed origin varies too: a cache must not hand
        // its header-less copy to the allowed page.
        let mut h = HeaderMap::new();
        vary(&cors, &mut h);
        assert_eq!(h[VARY], "origin");
        assert!(!h.contains_key(ACCESS_CONTROL_ALLOW_ORIGIN));
        // No origin listed: no CORS header at all.
        let mut h = HeaderMap::new();
        vary(&Cors::none(), &mut h);
        assert!(h.is_empty());
    }
}
