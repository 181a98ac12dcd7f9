//! Command-line configuration of the enclave process.

use std::time::Duration;

use crate::http::Limits;
use crate::transport::Addr;

pub const USAGE: &str = "\
usage: sigil-enclave --listen ADDR [options]

  --listen ADDR            tcp:HOST:PORT, unix:PATH or vsock:CID:PORT (CID any|host|parent|N)
  --max-connections N      concurrent connections (default 64)
  --max-body BYTES         largest request body (default 1049600)
  --request-timeout SECS   longest one request may take (default 30)
  --idle-timeout SECS      longest silence from a client (default 10)
  --help, --version

Without /dev/nsm the enclave runs in local mode: a simulated NSM signs its attestation
documents under the sigil test root (not AWS), with zero PCRs.";

#[derive(Debug)]
pub struct Config {
    pub listen: Addr,
    pub limits: Limits,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    Help,
    Version,
}

pub fn parse(args: &[String]) -> Result<Result<Config, Parsed>, String> {
    let mut listen = None;
    let mut limits = Limits::default();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        let number = |name: &str, v: String| {
            v.parse::<u64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("{name} must be a positive number, not {v:?}"))
        };
        match flag.as_str() {
            "--help" | "-h" => return Ok(Err(Parsed::Help)),
            "--version" | "-V" => return Ok(Err(Parsed::Version)),
            "--listen" => {
                let v = value("--listen")?;
                listen = Some(v.parse::<Addr>().map_err(|e| e.to_string())?);
            }
            "--max-connections" => {
                limits.max_connections = number(flag, value(flag)?)?.min(4096) as usize
            }
            "--max-body" => {
                limits.max_body_bytes = number(flag, value(flag)?)?.min(64 << 20) as usize
            }
            "--request-timeout" => {
                limits.request_timeout = Duration::from_secs(number(flag, value(flag)?)?.min(3600))
            }
            "--idle-timeout" => {
                limits.idle_timeout = Duration::from_secs(number(flag, value(flag)?)?.min(3600))
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let listen = listen.ok_or("--listen ADDR is required")?;
    Ok(Ok(Config { listen, limits }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn parses_flags() {
        let c = parse(&args(
            "--listen tcp:127.0.0.1:0 --max-connections 8 --request-timeout 5",
        ))
        .unwrap()
        .unwrap();
        assert_eq!(c.listen.to_string(), "tcp:127.0.0.1:0");
        assert_eq!(c.limits.max_connections, 8);
        assert_eq!(c.limits.request_timeout, Duration::from_secs(5));
        assert_eq!(parse(&args("--help")).unwrap().unwrap_err(), Parsed::Help);
    }

    #[test]
    fn errors_are_clear() {
        assert!(parse(&[]).unwrap_err().contains("--listen"));
        assert!(
            parse(&args("--listen"))
                .unwrap_err()
                .contains("needs a value")
        );
        assert!(
            parse(&args("--listen nope"))
                .unwrap_err()
                .contains("scheme")
        );
        assert!(
            parse(&args("--listen tcp:a:1 --max-connections 0"))
                .unwrap_err()
                .contains("positive")
        );
        assert!(
            parse(&args("--bogus"))
                .unwrap_err()
                .contains("unknown argument")
        );
    }
}
