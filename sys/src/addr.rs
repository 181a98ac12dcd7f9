//! Addresses, one syntax for every binary: `tcp:HOST:PORT`, `unix:PATH`, `vsock:CID:PORT`
//! (`CID` may be `any`, `host`, `parent` or a number) and, for the QEMU harness,
//! `vhost-uds:PATH:PORT` (connect to vhost-device-vsock's Unix socket, write
//! `CONNECT <PORT>\n`, expect `OK <n>\n`).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use sigil_protocol::ports::{HARNESS_HOST_CID, NITRO_PARENT_CID};

/// Listen on every CID this machine has.
pub const VMADDR_CID_ANY: u32 = libc::VMADDR_CID_ANY;

/// `sun_path` holds 108 bytes including the terminating NUL.
pub const MAX_UNIX_PATH: usize = 107;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VsockAddr {
    pub cid: u32,
    pub port: u32,
}

impl fmt::Display for VsockAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.cid, self.port)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Addr {
    Tcp(String),
    Unix(PathBuf),
    Vsock(VsockAddr),
    /// The Unix socket of vhost-device-vsock and the guest port to reach through it
    /// (connect-only).
    VhostUds(PathBuf, u32),
}

/// Why an address string was refused; the message says what the syntax should be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddrError {
    #[error(
        "address {0:?} has no scheme: use tcp:HOST:PORT, unix:PATH, vsock:CID:PORT or vhost-uds:PATH:PORT"
    )]
    NoScheme(String),
    #[error("unknown address scheme {0:?}: use tcp, unix, vsock or vhost-uds")]
    UnknownScheme(String),
    #[error("tcp address {0:?} needs HOST:PORT")]
    TcpNeedsHostPort(String),
    #[error("tcp address {0:?} has an empty host")]
    EmptyHost(String),
    #[error("{scheme} port {port:?} is not a number 0-65535")]
    BadPort { scheme: &'static str, port: String },
    #[error("{0} address needs a path")]
    EmptyPath(&'static str),
    #[error("{scheme} socket path is {len} bytes; the limit is {MAX_UNIX_PATH}")]
    PathTooLong { scheme: &'static str, len: usize },
    #[error("{0} socket path contains a NUL byte")]
    NulInPath(&'static str),
    #[error("vsock address {0:?} needs CID:PORT")]
    VsockNeedsCidPort(String),
    #[error("vsock CID {0:?} is not a number, any, host or parent")]
    BadCid(String),
    #[error("vhost-uds address {0:?} needs PATH:PORT")]
    VhostNeedsPathPort(String),
}

fn parse_port(p: &str, scheme: &'static str) -> Result<u32, AddrError> {
    p.parse::<u16>()
        .map(u32::from)
        .map_err(|_| AddrError::BadPort {
            scheme,
            port: p.to_string(),
        })
}

fn unix_path(p: &str, scheme: &'static str) -> Result<PathBuf, AddrError> {
    if p.is_empty() {
        return Err(AddrError::EmptyPath(scheme));
    }
    if p.len() > MAX_UNIX_PATH {
        return Err(AddrError::PathTooLong {
            scheme,
            len: p.len(),
        });
    }
    if p.contains('\0') {
        return Err(AddrError::NulInPath(scheme));
    }
    Ok(PathBuf::from(p))
}

/// `s` split at its first (or, with `last`, its last) ':'; `missing(s)` if it has none.
fn split_at_colon(
    s: &str,
    last: bool,
    missing: fn(String) -> AddrError,
) -> Result<(&str, &str), AddrError> {
    let split = if last {
        s.rsplit_once(':')
    } else {
        s.split_once(':')
    };
    split.ok_or_else(|| missing(s.to_string()))
}

impl FromStr for VsockAddr {
    type Err = AddrError;

    fn from_str(s: &str) -> Result<Self, AddrError> {
        let (cid, port) = split_at_colon(s, false, AddrError::VsockNeedsCidPort)?;
        let cid = match cid {
            "any" => VMADDR_CID_ANY,
            "host" => HARNESS_HOST_CID,
            "parent" => NITRO_PARENT_CID,
            n => n
                .parse::<u32>()
                .map_err(|_| AddrError::BadCid(n.to_string()))?,
        };
        // Ports above 65535 are legal for vsock but sigil uses none; refusing them catches
        // swapped CID/port arguments early.
        let port = parse_port(port, "vsock")?;
        Ok(VsockAddr { cid, port })
    }
}

impl FromStr for Addr {
    type Err = AddrError;

    fn from_str(s: &str) -> Result<Self, AddrError> {
        let (scheme, rest) = split_at_colon(s, false, AddrError::NoScheme)?;
        match scheme {
            "tcp" => {
                let (host, port) = split_at_colon(rest, true, AddrError::TcpNeedsHostPort)?;
                if host.is_empty() {
                    return Err(AddrError::EmptyHost(rest.to_string()));
                }
                parse_port(port, "tcp")?;
                Ok(Addr::Tcp(rest.to_string()))
            }
            "unix" => Ok(Addr::Unix(unix_path(rest, "unix")?)),
            "vsock" => rest.parse().map(Addr::Vsock),
            "vhost-uds" => {
                let (path, port) = split_at_colon(rest, true, AddrError::VhostNeedsPathPort)?;
                let port = parse_port(port, "vhost-uds")?;
                Ok(Addr::VhostUds(unix_path(path, "vhost-uds")?, port))
            }
            other => Err(AddrError::UnknownScheme(other.to_string())),
        }
    }
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Addr::Tcp(a) => write!(f, "tcp:{a}"),
            Addr::Unix(p) => write!(f, "unix:{}", p.display()),
            Addr::Vsock(v) => write!(f, "vsock:{}:{}", v.cid, v.port),
            Addr::VhostUds(p, port) => write!(f, "vhost-uds:{}:{port}", p.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        for (input, shown) in [
            ("tcp:127.0.0.1:5000", "tcp:127.0.0.1:5000"),
            ("tcp:[::1]:80", "tcp:[::1]:80"),
            (
                "tcp:kms.eu-west-1.amazonaws.com:443",
                "tcp:kms.eu-west-1.amazonaws.com:443",
            ),
            ("unix:/run/sigil.sock", "unix:/run/sigil.sock"),
            ("vsock:any:9002", "vsock:4294967295:9002"),
            ("vsock:any:5000", "vsock:4294967295:5000"),
            ("vsock:16:5000", "vsock:16:5000"),
            ("vsock:3:9000", "vsock:3:9000"),
            ("vsock:parent:9000", "vsock:3:9000"),
            ("vsock:host:9000", "vsock:2:9000"),
            (
                "vhost-uds:/tmp/vhost4.socket:5000",
                "vhost-uds:/tmp/vhost4.socket:5000",
            ),
            ("vhost-uds:/tmp/a:b.sock:7", "vhost-uds:/tmp/a:b.sock:7"),
        ] {
            let a: Addr = input.parse().unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(a.to_string(), shown);
        }
    }

    #[test]
    fn rejects_with_reasons() {
        for (input, reason) in [
            ("127.0.0.1:5000", "unknown address scheme"),
            ("localhost", "no scheme"),
            ("tcp:127.0.0.1", "needs HOST:PORT"),
            ("tcp:127.0.0.1:99999", "not a number"),
            ("tcp::80", "empty host"),
            ("unix:", "needs a path"),
            ("quic:1.2.3.4:5", "unknown address scheme"),
            ("vsock:3", "CID:PORT"),
            ("vsock:x:5000", "CID"),
            ("vsock:3:70000", "port"),
            ("vsock:-1:5000", "CID"),
            ("vsock:99999999999:1", "CID"),
            ("vhost-uds:/tmp/s", "PATH:PORT"),
            ("vhost-uds:/tmp/s:", "not a number"),
            ("vhost-uds::5000", "needs a path"),
            ("vhost-uds:nocolon", "PATH:PORT"),
            ("unix:/a\0b", "NUL"),
        ] {
            let e = input.parse::<Addr>().expect_err(input);
            assert!(
                e.to_string().contains(reason),
                "{input}: {e} lacks {reason}"
            );
        }
        let long = format!("unix:/{}", "a".repeat(200));
        let e = long.parse::<Addr>().unwrap_err();
        assert!(e.to_string().contains("limit is 107"), "{e}");
        let long = format!("vhost-uds:/{}:5", "a".repeat(200));
        let e = long.parse::<Addr>().unwrap_err();
        assert!(e.to_string().contains("limit is 107"), "{e}");
    }

    #[test]
    fn named_cids() {
        assert_eq!("any:5000".parse::<VsockAddr>().unwrap().cid, u32::MAX);
        assert_eq!("host:1".parse::<VsockAddr>().unwrap().cid, HARNESS_HOST_CID);
        assert_eq!(
            "parent:9000".parse::<VsockAddr>().unwrap(),
            VsockAddr {
                cid: NITRO_PARENT_CID,
                port: 9000
            }
        );
        assert_eq!("16:5000".parse::<VsockAddr>().unwrap().cid, 16);
    }

    #[test]
    fn bad_vsock_addresses() {
        for bad in [
            "",
            "3",
            "3:",
            ":5000",
            "-1:5000",
            "3:port",
            "3:65536",
            "99999999999:1",
        ] {
            assert!(bad.parse::<VsockAddr>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn errors_are_typed() {
        assert_eq!(
            "vsock:x:1".parse::<Addr>(),
            Err(AddrError::BadCid("x".into()))
        );
        assert!(matches!(
            "tcp:h:port".parse::<Addr>(),
            Err(AddrError::BadPort { scheme: "tcp", .. })
        ));
    }
}
