//! Who the client is (shim -> enclave, in front of each ingress connection on the API port):
//! the shim writes one PROXY protocol v2 header (HAProxy's binary format) carrying the
//! client's source address before any byte of the client's; the enclave reads it with
//! [`parse`] and keys it with [`Source::of`] for its per-client limits.
//!
//! ```text
//! header = signature(12) "\r\n\r\n\0\r\nQUIT\n" | 0x21 (v2, PROXY) or 0x20 (v2, LOCAL)
//!        | family/protocol(1) 0x11 (TCP/IPv4), 0x21 (TCP/IPv6), 0x00 (LOCAL)
//!        | length(2, big-endian) | source address, destination address, source port,
//!          destination port (12 bytes for IPv4, 36 for IPv6) | TLVs (ignored)
//! ```
//!
//! The shim sends the destination as the unspecified address and port 0 (the enclave has no
//! use for it) and no TLVs; a peer that is not an IP address (a Unix-socket client) is sent
//! as `LOCAL`, which reads back as [`Source::Unknown`].
//!
//! Threat model: the parent can forge any source, but it can also refuse service outright,
//! so a source is only ever used to share capacity between clients, never to authorize.
//! A client cannot choose its own source: the shim's header comes before the client's first
//! byte, and only the first header on a connection is read.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use ppp::v2::{Addresses, Builder, Command, Header, IPv4, IPv6, Protocol, Version};

/// The 12 bytes every v2 header starts with. No HTTP request can start with them (a request
/// line starts with a method token; `\0` is in no token), so a reader can tell a header from
/// a direct client's request by its first bytes.
pub const SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// The signature, version/command, family/protocol and length.
const FIXED: usize = 16;
/// Largest header read. The shim's are at most 52 bytes (IPv6); this leaves room for the
/// TLVs another PROXY sender (a load balancer) may add, and refuses the 64 KiB a 16-bit
/// length could claim (threat: a peer making the reader buffer a large header).
pub const MAX_HEADER: usize = 512;

/// Why bytes that start like a header are not one.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SourceError {
    #[error("PROXY header of {0} bytes is over the limit of {MAX_HEADER}")]
    TooLarge(usize),
    #[error("malformed PROXY v2 header: {0}")]
    Malformed(String),
    #[error("PROXY v2 header could not be encoded: {0}")]
    Encode(String),
}

/// What the first bytes of a connection are, so far.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// Not a PROXY header: the connection's bytes are the client's from the first one.
    NotProxy,
    /// A prefix of a header (or nothing yet): read more.
    Incomplete,
    /// A whole header of `len` bytes; `peer` is the client's address (`None` for `LOCAL`
    /// or a family without an IP address). Bytes past `len` are the client's.
    Header {
        peer: Option<SocketAddr>,
        len: usize,
    },
}

/// The header for a connection from `peer` (`None`: not an IP peer, sent as `LOCAL`).
pub fn encode(peer: Option<SocketAddr>) -> Result<Vec<u8>, SourceError> {
    let (command, protocol, addresses) = match peer {
        None => (
            Command::Local,
            Protocol::Unspecified,
            Addresses::Unspecified,
        ),
        Some(SocketAddr::V4(a)) => (
            Command::Proxy,
            Protocol::Stream,
            Addresses::IPv4(IPv4::new(*a.ip(), Ipv4Addr::UNSPECIFIED, a.port(), 0)),
        ),
        Some(SocketAddr::V6(a)) => (
            Command::Proxy,
            Protocol::Stream,
            Addresses::IPv6(IPv6::new(*a.ip(), Ipv6Addr::UNSPECIFIED, a.port(), 0)),
        ),
    };
    Builder::with_addresses(Version::Two | command, protocol, addresses)
        .build()
        .map_err(|e| SourceError::Encode(e.to_string()))
}

/// Reads the start of a connection, `buf` being every byte received so far. Bounded: never
/// looks past [`MAX_HEADER`] bytes, and refuses a header that claims more before it arrives.
pub fn parse(buf: &[u8]) -> Result<Parsed, SourceError> {
    let head = &buf[..buf.len().min(SIGNATURE.len())];
    if !SIGNATURE.starts_with(head) {
        return Ok(Parsed::NotProxy);
    }
    if buf.len() < FIXED {
        return Ok(Parsed::Incomplete);
    }
    let len = FIXED + usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    if len > MAX_HEADER {
        return Err(SourceError::TooLarge(len));
    }
    if buf.len() < len {
        return Ok(Parsed::Incomplete);
    }
    let header =
        Header::try_from(&buf[..len]).map_err(|e| SourceError::Malformed(e.to_string()))?;
    let peer = match (header.command, header.addresses) {
        (Command::Local, _) => None,
        (Command::Proxy, Addresses::IPv4(a)) => {
            Some(SocketAddr::from((a.source_address, a.source_port)))
        }
        (Command::Proxy, Addresses::IPv6(a)) => {
            Some(SocketAddr::from((a.source_address, a.source_port)))
        }
        (Command::Proxy, Addresses::Unspecified | Addresses::Unix(_)) => None,
    };
    Ok(Parsed::Header { peer, len })
}

/// A client, as the per-client limits count it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    /// No header (a direct connection: local mode, tests), or one without an IP address.
    Unknown,
    /// A keyed address: see [`key`].
    Addr(IpAddr),
}

impl Source {
    /// The source a connection from `peer` counts against.
    pub fn of(peer: Option<SocketAddr>) -> Source {
        peer.map_or(Source::Unknown, |p| Source::Addr(key(p.ip())))
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Unknown => f.write_str("unknown"),
            Source::Addr(ip) => ip.fmt(f),
        }
    }
}

/// The address a client counts as: its IPv4 address (an IPv4-mapped IPv6 address is the
/// IPv4 one), or its IPv6 /64 (one subscriber usually holds a whole /64, so single IPv6
/// addresses would be free to mint). The shim's per-source connection limit keys the same.
pub fn key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut o = v6.octets();
                o[8..].fill(0);
                IpAddr::V6(o.into())
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ppp::v2;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn signature_is_haproxys() {
        assert_eq!(&SIGNATURE[..], v2::PROTOCOL_PREFIX);
    }

    #[test]
    fn round_trip_ipv4_ipv6_and_local() {
        for peer in [
            Some(sa("192.0.2.7:4242")),
            Some(sa("[2001:db8:1:2::9]:65535")),
            Some(sa("127.0.0.2:1")),
            None,
        ] {
            let h = encode(peer).unwrap();
            assert!(h.starts_with(SIGNATURE));
            assert!(h.len() <= 52);
            assert_eq!(parse(&h), Ok(Parsed::Header { peer, len: h.len() }));
            // Client bytes after the header are not part of it.
            let mut with_body = h.clone();
            with_body.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
            assert_eq!(parse(&with_body), Ok(Parsed::Header { peer, len: h.len() }));
        }
    }

    #[test]
    fn the_pinned_ipv4_encoding() {
        let h = encode(Some(sa("127.0.0.2:258"))).unwrap();
        let mut want = SIGNATURE.to_vec();
        want.extend_from_slice(&[0x21, 0x11, 0, 12, 127, 0, 0, 2, 0, 0, 0, 0, 1, 2, 0, 0]);
        assert_eq!(h, want);
        assert_eq!(
            encode(None).unwrap(),
            [&SIGNATURE[..], &[0x20, 0, 0, 0]].concat()
        );
    }

    #[test]
    fn every_truncation_is_incomplete() {
        for peer in [Some(sa("192.0.2.7:1")), Some(sa("[2001:db8::1]:2")), None] {
            let h = encode(peer).unwrap();
            for cut in 0..h.len() {
                assert_eq!(
                    parse(&h[..cut]),
                    Ok(Parsed::Incomplete),
                    "{peer:?} cut at {cut}"
                );
            }
        }
    }

    #[test]
    fn http_and_other_bytes_are_not_a_header() {
        for b in [
            &b"GET / HTTP/1.1\r\n\r\n"[..],
            b"P",
            b"\r\n\r\n\0\r\nQUIX\n",
            b"\r\n\r\nX",
            // Version 1 (text) is not taken either.
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
        ] {
            assert_eq!(parse(b), Ok(Parsed::NotProxy), "{b:?}");
        }
    }

    #[test]
    fn oversize_is_refused_before_it_arrives() {
        let mut h = SIGNATURE.to_vec();
        h.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
        assert_eq!(parse(&h), Err(SourceError::TooLarge(16 + 0xffff)));
        let mut h = SIGNATURE.to_vec();
        let body = MAX_HEADER - FIXED;
        h.extend_from_slice(&[0x21, 0x11]);
        h.extend_from_slice(&(body as u16).to_be_bytes());
        assert_eq!(
            parse(&h),
            Ok(Parsed::Incomplete),
            "at the limit: wait for it"
        );
        h.resize(MAX_HEADER, 0);
        assert!(matches!(
            parse(&h),
            Ok(Parsed::Header {
                len: MAX_HEADER,
                ..
            })
        ));
        h[15] += 1;
        assert_eq!(parse(&h), Err(SourceError::TooLarge(MAX_HEADER + 1)));
    }

    #[test]
    fn malformed_headers_are_typed_errors() {
        let good = encode(Some(sa("192.0.2.7:1"))).unwrap();
        // Version 1 in the binary form, an unknown command, an unknown family, an address
        // block shorter than its family needs.
        for (at, byte) in [(12, 0x11), (12, 0x2f), (13, 0x41), (15, 4)] {
            let mut h = good.clone();
            h[at] = byte;
            assert!(
                matches!(parse(&h), Err(SourceError::Malformed(_))),
                "byte {at} = {byte:#x}: {:?}",
                parse(&h)
            );
        }
    }

    #[test]
    fn random_bytes_never_panic() {
        // A small deterministic generator (xorshift) so failures reproduce.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for i in 0..20_000 {
            let n = (next() % 80) as usize;
            let mut b: Vec<u8> = (0..n).map(|_| next() as u8).collect();
            // Half of them behind the signature, so the parser's inner paths are reached.
            if i % 2 == 0 {
                b.splice(0..0, SIGNATURE.iter().copied());
                if b.len() > 13 {
                    b[12] = 0x20 | (b[12] & 1);
                }
            }
            if let Ok(Parsed::Header { len, .. }) = parse(&b) {
                assert!(len <= b.len() && len <= MAX_HEADER);
            }
        }
    }

    #[test]
    fn sources_key_ipv6_by_64_and_mapped_ipv4_as_ipv4() {
        let k = |s: &str| key(s.parse().unwrap());
        assert_eq!(k("2001:db8:1:2::1"), k("2001:db8:1:2:ffff::9"));
        assert_ne!(k("2001:db8:1:2::1"), k("2001:db8:1:3::1"));
        assert_eq!(k("::ffff:192.0.2.7"), k("192.0.2.7"));
        assert_ne!(k("192.0.2.7"), k("192.0.2.8"));
        assert_eq!(Source::of(None), Source::Unknown);
        assert_eq!(
            Source::of(Some(sa("[2001:db8:1:2::1]:9"))),
            Source::of(Some(sa("[2001:db8:1:2::7]:10")))
        );
    }
}
