//! Command-line configuration of the enclave process.

use std::time::Duration;

use sigil_sys::Addr;
use sigil_sys::addr::AddrError;

use crate::http::Limits;

pub const USAGE: &str = "\
usage: sigil-enclave --listen ADDR [options]

  --listen ADDR            tcp:HOST:PORT, unix:PATH or vsock:CID:PORT (CID any|host|parent|N)
  --max-connections N      concurrent connections (default 64)
  --max-body BYTES         largest request body (default 1049600)
  --max-body-in-flight BYTES
                           request body bytes held at once, all connections (default 64 MiB)
  --request-timeout SECS   longest one request may take (default 30)
  --idle-timeout SECS      longest silence from a client (default 10)
  --config FILE            the JSON configuration an image measures (limits, kms section)
  --blob-store ADDR        the shim's blob store (needed with a kms section)
  --egress ADDR            the shim's egress proxy (needed with a kms section)
  --credentials ADDR       the shim's credentials service (needed with a kms section)
  --simulated-pcrs FILE    claim the PCRs of this pcr-manifest.json in simulated documents
  --bb [VERSION=]PATH      a prover binary: PATH alone replaces the configuration's bb_path
                           (the default version); VERSION=PATH replaces or adds the version
                           requests name VERSION (a bb with ld-linux-x86-64.so.2 beside it
                           runs under that runtime); repeatable
  --cors-origin ORIGIN     let pages of this exact origin (https://host[:port]) read the
                           answers in a browser; repeatable, added to the configuration's
                           cors.origins (default: none, no CORS headers)
  --help, --version

Without /dev/nsm the enclave runs in local mode: a simulated NSM signs its attestation
documents under the sigil test root (not AWS), with zero PCRs unless --simulated-pcrs.
Limits given as flags override the configuration file's.";

#[derive(Debug)]
pub struct Config {
    pub listen: Addr,
    /// Limits set by flags (each overrides the file's).
    pub limit_flags: LimitFlags,
    pub config_file: Option<String>,
    pub blob_store: Option<Addr>,
    pub egress: Option<Addr>,
    pub credentials: Option<Addr>,
    pub simulated_pcrs: Option<String>,
    /// `--bb` flags: (version name, binary); no name: the default version.
    pub bb: crate::prover::BbOverride,
    /// Origins whose pages may read answers (CORS), added to the configuration's.
    pub cors_origins: Vec<String>,
}

#[derive(Debug, Default)]
pub struct LimitFlags {
    pub max_connections: Option<usize>,
    pub max_body_bytes: Option<usize>,
    pub max_body_bytes_in_flight: Option<usize>,
    pub request_timeout: Option<Duration>,
    pub idle_timeout: Option<Duration>,
}

impl LimitFlags {
    /// `base` with the flags applied.
    pub fn apply(&self, mut base: Limits) -> Limits {
        if let Some(v) = self.max_connections {
            base.max_connections = v;
        }
        if let Some(v) = self.max_body_bytes {
            base.max_body_bytes = v;
        }
        if let Some(v) = self.max_body_bytes_in_flight {
            base.max_body_bytes_in_flight = v;
        }
        if let Some(v) = self.request_timeout {
            base.request_timeout = v;
        }
        if let Some(v) = self.idle_timeout {
            base.idle_timeout = v;
        }
        base
    }
}

/// A command line that local mode refuses.
#[derive(Debug, thiserror::Error)]
pub enum ArgsError {
    #[error("{0} needs a value")]
    MissingValue(String),
    #[error("{flag} must be a positive number, not {value:?}")]
    NotPositive { flag: String, value: String },
    #[error(transparent)]
    Listen(AddrError),
    #[error("{flag}: {source}")]
    Addr {
        flag: String,
        #[source]
        source: AddrError,
    },
    #[error("unknown argument {0:?}")]
    Unknown(String),
    #[error("--listen ADDR is required")]
    ListenRequired,
    #[error("--cors-origin: {0}")]
    CorsOrigin(String),
}

#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    Help,
    Version,
}

pub fn parse(args: &[String]) -> Result<Result<Config, Parsed>, ArgsError> {
    let mut listen = None;
    let mut limits = LimitFlags::default();
    let (mut config_file, mut simulated_pcrs, mut bb) = (None, None, Vec::new());
    let (mut blob_store, mut egress, mut credentials) = (None, None, None);
    let mut cors_origins = Vec::new();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| ArgsError::MissingValue(name.into()))
        };
        let number = |name: &str, v: String| {
            v.parse::<u64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| ArgsError::NotPositive {
                    flag: name.into(),
                    value: v,
                })
        };
        match flag.as_str() {
            "--help" | "-h" => return Ok(Err(Parsed::Help)),
            "--version" | "-V" => return Ok(Err(Parsed::Version)),
            "--listen" => {
                let v = value("--listen")?;
                listen = Some(v.parse::<Addr>().map_err(ArgsError::Listen)?);
            }
            "--max-connections" => {
                limits.max_connections = Some(number(flag, value(flag)?)?.min(4096) as usize)
            }
            "--max-body" => {
                limits.max_body_bytes = Some(
                    number(flag, value(flag)?)?
                        .min(sigil_protocol::encap::MAX_ENCAPSULATED_REQUEST as u64)
                        as usize,
                )
            }
            "--max-body-in-flight" => {
                limits.max_body_bytes_in_flight =
                    Some(number(flag, value(flag)?)?.min(1 << 30) as usize)
            }
            "--request-timeout" => {
                limits.request_timeout =
                    Some(Duration::from_secs(number(flag, value(flag)?)?.min(3600)))
            }
            "--idle-timeout" => {
                limits.idle_timeout =
                    Some(Duration::from_secs(number(flag, value(flag)?)?.min(3600)))
            }
            "--config" => config_file = Some(value(flag)?),
            "--simulated-pcrs" => simulated_pcrs = Some(value(flag)?),
            "--bb" => {
                let v = value(flag)?;
                // A path may hold '=' too: only a valid version name before it is one.
                bb.push(match v.split_once('=') {
                    Some((name, path)) if crate::boot::config::valid_bb_name(name) => {
                        (Some(name.to_string()), std::path::PathBuf::from(path))
                    }
                    _ => (None, std::path::PathBuf::from(v)),
                });
            }
            "--cors-origin" => {
                let o = value(flag)?;
                crate::http::cors::check_origin(&o).map_err(ArgsError::CorsOrigin)?;
                cors_origins.push(o);
            }
            "--blob-store" | "--egress" | "--credentials" => {
                let a = value(flag)?
                    .parse::<Addr>()
                    .map_err(|source| ArgsError::Addr {
                        flag: flag.clone(),
                        source,
                    })?;
                match flag.as_str() {
                    "--blob-store" => blob_store = Some(a),
                    "--egress" => egress = Some(a),
                    _ => credentials = Some(a),
                }
            }
            other => return Err(ArgsError::Unknown(other.into())),
        }
    }
    let listen = listen.ok_or(ArgsError::ListenRequired)?;
    Ok(Ok(Config {
        listen,
        limit_flags: limits,
        config_file,
        blob_store,
        egress,
        credentials,
        simulated_pcrs,
        bb,
        cors_origins,
    }))
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
        let l = c.limit_flags.apply(Limits::default());
        assert_eq!(l.max_connections, 8);
        assert_eq!(l.request_timeout, Duration::from_secs(5));
        assert_eq!(l.idle_timeout, Limits::default().idle_timeout);
        assert_eq!(parse(&args("--help")).unwrap().unwrap_err(), Parsed::Help);
        let c = parse(&args(
            "--listen tcp:127.0.0.1:0 --cors-origin https://a.example --cors-origin http://127.0.0.1:8080",
        ))
        .unwrap()
        .unwrap();
        assert_eq!(
            c.cors_origins,
            ["https://a.example", "http://127.0.0.1:8080"]
        );
    }

    #[test]
    fn errors_are_clear() {
        assert!(parse(&[]).unwrap_err().to_string().contains("--listen"));
        for (argv, needle) in [
            ("--listen", "needs a value"),
            ("--listen nope", "scheme"),
            ("--listen tcp:a:1 --max-connections 0", "positive"),
            ("--bogus", "unknown argument"),
            ("--listen tcp:a:1 --cors-origin *", "exact origins"),
            (
                "--listen tcp:a:1 --cors-origin https://a.example/",
                "without path",
            ),
        ] {
            let e = parse(&args(argv)).unwrap_err().to_string();
            assert!(e.contains(needle), "{argv}: {e}");
        }
    }
}
