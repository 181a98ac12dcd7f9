//! Addresses, written as in the enclave: `tcp:HOST:PORT`, `unix:PATH`, `vsock:CID:PORT`, plus
//! `vhost-uds:PATH:PORT` for the QEMU harness (connect to the Unix socket of
//! vhost-device-vsock, write `CONNECT <PORT>\n`, expect `OK <n>\n`).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// Any CID (listen on every CID this host has).
pub const VMADDR_CID_ANY: u32 = u32::MAX;
/// The host CID (the QEMU harness's peer).
pub const VMADDR_CID_HOST: u32 = 2;
/// The parent instance of a Nitro Enclave.
pub const NITRO_PARENT_CID: u32 = 3;

/// `sun_path` holds 108 bytes including the terminating NUL.
const MAX_UNIX_PATH: usize = 107;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VsockAddr {
    pub cid: u32,
    pub port: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Addr {
    Tcp(String),
    Unix(PathBuf),
    Vsock(VsockAddr),
    /// The Unix socket of vhost-device-vsock and the guest port to reach through it.
    VhostUds(PathBuf, u32),
}

#[derive(Debug, PartialEq, Eq)]
pub struct AddrError(pub String);

impl fmt::Display for AddrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for AddrError {}

fn err<T>(msg: String) -> Result<T, AddrError> {
    Err(AddrError(msg))
}

fn parse_port(p: &str, what: &str) -> Result<u32, AddrError> {
    match p.parse::<u16>() {
        Ok(n) => Ok(u32::from(n)),
        Err(_) => err(format!("{what} port {p:?} is not a number 0-65535")),
    }
}

fn unix_path(p: &str, what: &str) -> Result<PathBuf, AddrError> {
    if p.is_empty() {
        return err(format!("{what} address needs a path"));
    }
    if p.len() > MAX_UNIX_PATH {
        return err(format!(
            "{what} socket path is {} bytes; the limit is {MAX_UNIX_PATH}",
            p.len()
        ));
    }
    if p.contains('\0') {
        return err(format!("{what} socket path contains a NUL byte"));
    }
    Ok(PathBuf::from(p))
}

impl FromStr for VsockAddr {
    type Err = AddrError;
    fn from_str(s: &str) -> Result<Self, AddrError> {
        let Some((cid, port)) = s.split_once(':') else {
            return err(format!("vsock address {s:?} needs CID:PORT"));
        };
        let cid = match cid {
            "any" => VMADDR_CID_ANY,
            "host" => VMADDR_CID_HOST,
            "parent" => NITRO_PARENT_CID,
            n => match n.parse::<u32>() {
                Ok(c) => c,
                Err(_) => {
                    return err(format!(
                        "vsock CID {n:?} is not a number, any, host or parent"
                    ));
                }
            },
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
        let Some((scheme, rest)) = s.split_once(':') else {
            return err(format!(
                "address {s:?} has no scheme: use tcp:HOST:PORT, unix:PATH, vsock:CID:PORT \
                 or vhost-uds:PATH:PORT"
            ));
        };
        match scheme {
            "tcp" => {
                let Some((host, port)) = rest.rsplit_once(':') else {
                    return err(format!("tcp address {rest:?} needs HOST:PORT"));
                };
                if host.is_empty() {
                    return err(format!("tcp address {rest:?} has an empty host"));
                }
                parse_port(port, "tcp")?;
                Ok(Addr::Tcp(rest.to_string()))
            }
            "unix" => Ok(Addr::Unix(unix_path(rest, "unix")?)),
            "vsock" => rest.parse().map(Addr::Vsock),
            "vhost-uds" => {
                let Some((path, port)) = rest.rsplit_once(':') else {
                    return err(format!("vhost-uds address {rest:?} needs PATH:PORT"));
                };
                let port = parse_port(port, "vhost-uds")?;
                Ok(Addr::VhostUds(unix_path(path, "vhost-uds")?, port))
            }
            other => err(format!(
                "unknown address scheme {other:?}: use tcp, unix, vsock or vhost-uds"
            )),
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
            ("vsock:16:5000", "vsock:16:5000"),
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
            assert!(e.0.contains(reason), "{input}: {e} lacks {reason}");
        }
        let long = format!("unix:/{}", "a".repeat(200));
        assert!(long.parse::<Addr>().unwrap_err().0.contains("limit is 107"));
        let long = format!("vhost-uds:/{}:5", "a".repeat(200));
        assert!(long.parse::<Addr>().unwrap_err().0.contains("limit is 107"));
    }
}
