//! Configuration: a TOML file (`--config FILE`) and flags, a flag overriding the file's value.
//! Every service is optional; one whose address is not set is not started. Every number is
//! range-checked here, so the services can trust their limits.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use serde::Deserialize;
use sigil_sys::Addr;
use sigil_sys::addr::AddrError;

use crate::store;

/// The file, field for field; unknown keys are refused so a typo is an error, not a default.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub region: Option<String>,
    pub ingress_listen: Option<String>,
    pub enclave_api: Option<String>,
    pub ingress_proxy_header: Option<bool>,
    pub blob_listen: Option<String>,
    pub state_dir: Option<PathBuf>,
    pub blob_s3: Option<String>,
    pub blob_s3_bucket: Option<String>,
    pub blob_s3_region: Option<String>,
    pub blob_s3_prefix: Option<String>,
    pub egress_listen: Option<String>,
    pub egress_allow: Option<Vec<String>>,
    pub egress_resolve: Option<Vec<String>>,
    pub log_listen: Option<String>,
    pub max_connections: Option<usize>,
    pub max_connections_per_source: Option<usize>,
    pub idle_timeout_secs: Option<u64>,
    pub max_blob_bytes: Option<usize>,
    pub max_blobs: Option<usize>,
    pub credentials_listen: Option<String>,
    pub credentials_source: Option<String>,
    pub crs_file: Option<PathBuf>,
}

/// sigil-shim: forwards bytes to a sigil enclave and stores its sealed blobs. It never parses
/// application payloads.
#[derive(Debug, Parser)]
#[command(name = "sigil-shim", version)]
pub struct Cli {
    /// TOML file with the settings below (flags override it).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// AWS region; the default egress allow-list is kms.<region>.amazonaws.com:443.
    #[arg(long)]
    pub region: Option<String>,
    /// Where clients connect (tcp:HOST:PORT).
    #[arg(long, value_name = "ADDR")]
    pub ingress_listen: Option<String>,
    /// The enclave's API: vsock:CID:5000, vhost-uds:PATH:5000, tcp:..., unix:...
    #[arg(long, value_name = "ADDR")]
    pub enclave_api: Option<String>,
    /// Whether each ingress connection starts with a PROXY protocol v2 header carrying the
    /// client's address, so the enclave can share its capacity (the proving queue) fairly
    /// between clients (default true; set false only for an upstream that does not read it).
    #[arg(long, value_name = "BOOL")]
    pub ingress_proxy_header: Option<bool>,
    /// Blob service address (vsock:any:9002 on Nitro, unix:PATH locally).
    #[arg(long, value_name = "ADDR")]
    pub blob_listen: Option<String>,
    /// Directory of the blob files (the default store; unused with --blob-s3).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Keep the blobs in S3 instead of files, at this endpoint (path-style requests):
    /// https://s3.REGION.amazonaws.com, or http://127.0.0.1:PORT for a local S3 such as moto.
    #[arg(long, value_name = "URL")]
    pub blob_s3: Option<String>,
    /// The S3 bucket of the blobs (with --blob-s3).
    #[arg(long, value_name = "NAME")]
    pub blob_s3_bucket: Option<String>,
    /// The bucket's region, which requests are signed for (default: --region).
    #[arg(long, value_name = "REGION")]
    pub blob_s3_region: Option<String>,
    /// Put in front of every blob name to make its S3 key, e.g. sigil/ (default: none).
    #[arg(long, value_name = "PREFIX")]
    pub blob_s3_prefix: Option<String>,
    /// Egress proxy address (vsock:any:9003 on Nitro).
    #[arg(long, value_name = "ADDR")]
    pub egress_listen: Option<String>,
    /// An allowed egress destination HOST:PORT (repeat for more; replaces the file's list).
    #[arg(long, value_name = "HOST:PORT")]
    pub egress_allow: Vec<String>,
    /// Connect an allowed HOST:PORT to another address instead of resolving it
    /// (HOST:PORT=IP:PORT, like curl's --resolve): for a development KMS on this machine.
    /// The enclave still checks the TLS certificate against the name it asked for.
    #[arg(long, value_name = "HOST:PORT=IP:PORT")]
    pub egress_resolve: Vec<String>,
    /// Enclave log sink address (vsock:any:9001 on Nitro).
    #[arg(long, value_name = "ADDR")]
    pub log_listen: Option<String>,
    /// Most concurrent ingress and egress connections (each).
    #[arg(long)]
    pub max_connections: Option<usize>,
    /// Most concurrent ingress connections from one client address, so one client cannot
    /// hold every connection (and the enclave's) for itself.
    #[arg(long)]
    pub max_connections_per_source: Option<usize>,
    /// Seconds without a byte in either direction before a connection is closed.
    #[arg(long)]
    pub idle_timeout_secs: Option<u64>,
    /// Largest blob in bytes (at most 4 MiB).
    #[arg(long)]
    pub max_blob_bytes: Option<usize>,
    /// Most blobs in the store.
    #[arg(long)]
    pub max_blobs: Option<usize>,
    /// Credentials service address (vsock:any:9004 on Nitro).
    #[arg(long, value_name = "ADDR")]
    pub credentials_listen: Option<String>,
    /// Where credentials come from: imds (IMDSv2, the default) or env (AWS_ACCESS_KEY_ID, ...).
    #[arg(long, value_name = "imds|env")]
    pub credentials_source: Option<String>,
    /// The prover's CRS (bn254_g1.dat) to put into the blob store for the enclave.
    #[arg(long = "crs", value_name = "FILE")]
    pub crs_file: Option<PathBuf>,
}

#[derive(Clone, Debug)]
pub struct Settings {
    /// (listen, enclave API)
    pub ingress: Option<(Addr, Addr)>,
    /// Write a PROXY v2 header with the client's address before its bytes (see
    /// `sigil_protocol::parent::source`).
    pub ingress_proxy_header: bool,
    /// (listen, where the blobs are kept)
    pub blobs: Option<(Addr, BlobStore)>,
    /// (listen, allow-list of lower-case host:port)
    pub egress: Option<(Addr, Vec<String>)>,
    /// Fixed addresses for allowed destinations: (host:port, ip:port).
    pub egress_resolve: Vec<(String, String)>,
    pub logs: Option<Addr>,
    pub credentials: Option<(Addr, crate::creds::Source)>,
    /// Where AWS credentials come from (for the credentials service and the S3 blob store).
    pub credentials_source: crate::creds::Source,
    /// The CRS file imported into the blob store at start.
    pub crs_file: Option<PathBuf>,
    pub max_connections: usize,
    pub max_connections_per_source: usize,
    pub idle_timeout: Duration,
    pub store: store::Limits,
}

/// Where the blob service keeps the blobs.
#[derive(Clone, Debug)]
pub enum BlobStore {
    /// One file per blob in this directory ([`store::Store`]), the default.
    Dir(PathBuf),
    /// One object per blob in an S3 bucket ([`crate::s3::S3Store`]), shared by the shims of
    /// a cluster.
    S3(crate::s3::S3Config),
}

pub const DEFAULT_MAX_CONNECTIONS: usize = 256;
/// A quarter of the enclave's 64 connection slots: one client address cannot take them all.
pub const DEFAULT_MAX_CONNECTIONS_PER_SOURCE: usize = 16;
pub const DEFAULT_IDLE_SECS: u64 = 300;
pub const DEFAULT_STATE_DIR: &str = "/var/lib/sigil";
pub const DEFAULT_MAX_BLOBS: usize = 10_000;
/// The config file is small; refusing a huge one avoids reading an arbitrary file into memory.
const MAX_CONFIG_BYTES: u64 = 64 * 1024;

/// A shim configuration (file and flags) that is refused; the message names the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: larger than {MAX_CONFIG_BYTES} bytes", .0.display())]
    TooLarge(PathBuf),
    #[error("{}: {source}", path.display())]
    Toml {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
    #[error("{key}: {source}")]
    Addr {
        key: &'static str,
        #[source]
        source: AddrError,
    },
    #[error("{key} = {value} is outside {lo}..={hi}")]
    OutOfRange {
        key: &'static str,
        value: String,
        lo: String,
        hi: String,
    },
    #[error("destination {0:?} needs HOST:PORT")]
    DestinationForm(String),
    #[error("destination host in {0:?} must be 1-253 bytes")]
    DestinationHostLength(String),
    #[error("destination host in {0:?} may hold only letters, digits, '.' and '-'")]
    DestinationHostCharacters(String),
    #[error("destination port in {0:?} is not 1-65535")]
    DestinationPort(String),
    #[error("region {0:?} is not a region name like eu-west-1")]
    Region(String),
    #[error("ingress_listen is set but enclave_api is not")]
    IngressWithoutEnclave,
    #[error("egress_listen is set but neither egress_allow nor region is")]
    EgressWithoutAllowList,
    #[error("egress_allow holds more than 64 entries")]
    EgressAllowTooLong,
    #[error("egress_resolve {0:?} must be HOST:PORT=IP:PORT")]
    ResolveForm(String),
    #[error("egress_resolve {entry:?}: {to:?} is not IP:PORT")]
    ResolveTarget { entry: String, to: String },
    #[error("egress_resolve names {0}, which is not on the egress allow-list")]
    ResolveNotAllowed(String),
    #[error("credentials_source {0:?} is not imds or env")]
    CredentialsSource(String),
    #[error(transparent)]
    BlobS3(#[from] crate::s3::S3ConfigError),
    #[error("{0} is set but blob_s3 is not")]
    BlobS3Missing(&'static str),
    #[error("blob_s3 is set but {0} is not")]
    BlobS3Needs(&'static str),
    #[error("blob_s3 is set but blob_listen is not (the S3 store serves the blob service)")]
    BlobS3WithoutBlobListen,
    #[error("crs_file is set but blob_listen is not (the CRS goes into the blob store)")]
    CrsWithoutBlobStore,
    #[error(
        "nothing to do: set at least one of ingress_listen, blob_listen, egress_listen, log_listen, credentials_listen"
    )]
    NothingToDo,
}

fn addr(v: &Option<String>, key: &'static str) -> Result<Option<Addr>, ConfigError> {
    v.as_deref()
        .map(|s| {
            s.parse::<Addr>()
                .map_err(|source| ConfigError::Addr { key, source })
        })
        .transpose()
}

fn in_range<T: PartialOrd + std::fmt::Display + Copy>(
    v: T,
    lo: T,
    hi: T,
    key: &'static str,
) -> Result<T, ConfigError> {
    if v < lo || v > hi {
        return Err(ConfigError::OutOfRange {
            key,
            value: v.to_string(),
            lo: lo.to_string(),
            hi: hi.to_string(),
        });
    }
    Ok(v)
}

/// `host:port` with a DNS-name host, lower-cased (the allow-list compares exact strings).
pub fn check_destination(d: &str) -> Result<String, ConfigError> {
    let Some((host, port)) = d.rsplit_once(':') else {
        return Err(ConfigError::DestinationForm(d.into()));
    };
    if host.is_empty() || host.len() > 253 {
        return Err(ConfigError::DestinationHostLength(d.into()));
    }
    if !host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
    {
        return Err(ConfigError::DestinationHostCharacters(d.into()));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(format!("{}:{p}", host.to_ascii_lowercase())),
        _ => Err(ConfigError::DestinationPort(d.into())),
    }
}

pub fn load_file(path: &Path) -> Result<FileConfig, ConfigError> {
    use std::io::Read;
    let read = |source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    };
    let f = std::fs::File::open(path).map_err(read)?;
    let mut text = String::new();
    f.take(MAX_CONFIG_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(read)?;
    if text.len() as u64 > MAX_CONFIG_BYTES {
        return Err(ConfigError::TooLarge(path.to_path_buf()));
    }
    toml::from_str(&text).map_err(|source| ConfigError::Toml {
        path: path.to_path_buf(),
        source,
    })
}

impl Cli {
    /// Reads the file named by `--config` (if any), applies the flags over it and checks it.
    pub fn settings(&self) -> Result<Settings, ConfigError> {
        let f = match &self.config {
            Some(p) => load_file(p)?,
            None => FileConfig::default(),
        };
        merge(self, f)
    }
}

fn merge(c: &Cli, f: FileConfig) -> Result<Settings, ConfigError> {
    let pick = |flag: &Option<String>, file: Option<String>| flag.clone().or(file);
    let region = pick(&c.region, f.region);
    if let Some(r) = &region {
        // The region becomes part of a host name: keep it to what AWS region names look like.
        if r.is_empty()
            || r.len() > 32
            || !r
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err(ConfigError::Region(r.clone()));
        }
    }
    let max_connections = in_range(
        c.max_connections
            .or(f.max_connections)
            .unwrap_or(DEFAULT_MAX_CONNECTIONS),
        1,
        10_000,
        "max_connections",
    )?;
    let max_connections_per_source = in_range(
        c.max_connections_per_source
            .or(f.max_connections_per_source)
            .unwrap_or(DEFAULT_MAX_CONNECTIONS_PER_SOURCE.min(max_connections)),
        1,
        max_connections,
        "max_connections_per_source",
    )?;
    let idle = in_range(
        c.idle_timeout_secs
            .or(f.idle_timeout_secs)
            .unwrap_or(DEFAULT_IDLE_SECS),
        1,
        86_400,
        "idle_timeout_secs",
    )?;
    let store = store::Limits {
        max_blob_bytes: in_range(
            c.max_blob_bytes
                .or(f.max_blob_bytes)
                .unwrap_or(crate::wire::MAX_DATA),
            1,
            crate::wire::MAX_DATA,
            "max_blob_bytes",
        )?,
        max_blobs: in_range(
            c.max_blobs.or(f.max_blobs).unwrap_or(DEFAULT_MAX_BLOBS),
            1,
            1_000_000,
            "max_blobs",
        )?,
    };

    let ingress = match (
        addr(&pick(&c.ingress_listen, f.ingress_listen), "ingress_listen")?,
        addr(&pick(&c.enclave_api, f.enclave_api), "enclave_api")?,
    ) {
        (Some(l), Some(e)) => Some((l, e)),
        (Some(_), None) => return Err(ConfigError::IngressWithoutEnclave),
        (None, _) => None,
    };
    let ingress_proxy_header = c
        .ingress_proxy_header
        .or(f.ingress_proxy_header)
        .unwrap_or(true);
    let blob_listen = addr(&pick(&c.blob_listen, f.blob_listen), "blob_listen")?;
    let s3_bucket = pick(&c.blob_s3_bucket, f.blob_s3_bucket);
    let s3_region = pick(&c.blob_s3_region, f.blob_s3_region);
    let s3_prefix = pick(&c.blob_s3_prefix, f.blob_s3_prefix);
    let blob_store = match pick(&c.blob_s3, f.blob_s3) {
        // A bucket, region or prefix without the endpoint is a mistake, not a file store.
        None => {
            for (v, key) in [
                (&s3_bucket, "blob_s3_bucket"),
                (&s3_region, "blob_s3_region"),
                (&s3_prefix, "blob_s3_prefix"),
            ] {
                if v.is_some() {
                    return Err(ConfigError::BlobS3Missing(key));
                }
            }
            BlobStore::Dir(
                c.state_dir
                    .clone()
                    .or(f.state_dir)
                    .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR)),
            )
        }
        // state_dir is left alone (the systemd unit always passes it): it is not used.
        Some(endpoint) => {
            if blob_listen.is_none() {
                return Err(ConfigError::BlobS3WithoutBlobListen);
            }
            let bucket = s3_bucket.ok_or(ConfigError::BlobS3Needs("blob_s3_bucket"))?;
            let region = s3_region
                .or(region.clone())
                .ok_or(ConfigError::BlobS3Needs("blob_s3_region (or region)"))?;
            BlobStore::S3(crate::s3::S3Config::new(
                &endpoint,
                &bucket,
                &region,
                s3_prefix.as_deref().unwrap_or_default(),
            )?)
        }
    };
    let blobs = blob_listen.map(|l| (l, blob_store));
    let egress = match addr(&pick(&c.egress_listen, f.egress_listen), "egress_listen")? {
        None => None,
        Some(l) => {
            let list = if !c.egress_allow.is_empty() {
                c.egress_allow.clone()
            } else if let Some(list) = f.egress_allow {
                list
            } else if let Some(r) = &region {
                vec![format!("kms.{r}.amazonaws.com:443")]
            } else {
                return Err(ConfigError::EgressWithoutAllowList);
            };
            if list.len() > 64 {
                return Err(ConfigError::EgressAllowTooLong);
            }
            let list = list
                .iter()
                .map(|d| check_destination(d))
                .collect::<Result<Vec<_>, _>>()?;
            Some((l, list))
        }
    };
    let resolve_list = if !c.egress_resolve.is_empty() {
        c.egress_resolve.clone()
    } else {
        f.egress_resolve.unwrap_or_default()
    };
    let mut egress_resolve = Vec::new();
    for r in &resolve_list {
        let (dest, to) = r
            .split_once('=')
            .ok_or_else(|| ConfigError::ResolveForm(r.clone()))?;
        let dest = check_destination(dest)?;
        let to: std::net::SocketAddr = to.parse().map_err(|_| ConfigError::ResolveTarget {
            entry: r.clone(),
            to: to.into(),
        })?;
        match &egress {
            Some((_, allow)) if allow.contains(&dest) => {}
            _ => {
                return Err(ConfigError::ResolveNotAllowed(dest));
            }
        }
        egress_resolve.push((dest, to.to_string()));
    }
    let logs = addr(&pick(&c.log_listen, f.log_listen), "log_listen")?;
    let source = match pick(&c.credentials_source, f.credentials_source).as_deref() {
        None | Some("imds") => crate::creds::Source::Imds(crate::creds::IMDS.into()),
        Some("env") => crate::creds::Source::Env,
        Some(other) => return Err(ConfigError::CredentialsSource(other.into())),
    };
    let credentials = addr(
        &pick(&c.credentials_listen, f.credentials_listen),
        "credentials_listen",
    )?
    .map(|a| (a, source.clone()));
    let crs_file = c.crs_file.clone().or(f.crs_file);
    if crs_file.is_some() && blobs.is_none() {
        return Err(ConfigError::CrsWithoutBlobStore);
    }
    if ingress.is_none()
        && blobs.is_none()
        && egress.is_none()
        && logs.is_none()
        && credentials.is_none()
    {
        return Err(ConfigError::NothingToDo);
    }
    Ok(Settings {
        ingress,
        ingress_proxy_header,
        blobs,
        egress,
        egress_resolve,
        logs,
        credentials,
        credentials_source: source,
        crs_file,
        max_connections,
        max_connections_per_source,
        idle_timeout: Duration::from_secs(idle),
        store,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("sigil-shim").chain(args.iter().copied())).unwrap()
    }

    fn write(name: &str, text: &str) -> PathBuf {
        let p =
            std::env::temp_dir().join(format!("sigil-shim-cfg-{}-{name}.toml", std::process::id()));
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn file_then_flags_override() {
        let p = write(
            "full",
            r#"
region = "eu-west-1"
ingress_listen = "tcp:0.0.0.0:8443"
enclave_api = "vsock:16:5000"
blob_listen = "vsock:any:9002"
state_dir = "/var/lib/sigil"
egress_listen = "vsock:any:9003"
log_listen = "vsock:any:9001"
max_connections = 100
idle_timeout_secs = 60
"#,
        );
        let s = cli(&["--config", p.to_str().unwrap()]).settings().unwrap();
        assert_eq!(s.ingress.as_ref().unwrap().1.to_string(), "vsock:16:5000");
        assert_eq!(
            s.egress.as_ref().unwrap().1,
            ["kms.eu-west-1.amazonaws.com:443"]
        );
        assert_eq!(s.max_connections, 100);
        assert_eq!(s.idle_timeout, Duration::from_secs(60));
        assert!(s.ingress_proxy_header, "on unless turned off");
        let s = cli(&[
            "--config",
            p.to_str().unwrap(),
            "--enclave-api",
            "vhost-uds:/tmp/v.sock:5000",
            "--egress-allow",
            "KMS.us-east-1.amazonaws.com:443",
            "--max-connections",
            "7",
            "--ingress-proxy-header",
            "false",
        ])
        .settings()
        .unwrap();
        assert!(!s.ingress_proxy_header);
        assert_eq!(
            s.ingress.unwrap().1.to_string(),
            "vhost-uds:/tmp/v.sock:5000"
        );
        assert_eq!(s.egress.unwrap().1, ["kms.us-east-1.amazonaws.com:443"]);
        assert_eq!(s.max_connections, 7);
        let _ = std::fs::remove_file(p);
    }

    #[test]
    fn blob_store_in_s3() {
        let s = cli(&["--blob-listen", "unix:/b", "--state-dir", "/var/lib/sigil"])
            .settings()
            .unwrap();
        assert!(
            matches!(&s.blobs, Some((_, BlobStore::Dir(d))) if d == Path::new("/var/lib/sigil"))
        );
        let p = write(
            "s3",
            r#"
region = "eu-west-1"
blob_listen = "vsock:any:9002"
blob_s3 = "https://s3.eu-west-1.amazonaws.com"
blob_s3_bucket = "sigil-blobs"
blob_s3_prefix = "cluster-1/"
credentials_source = "env"
"#,
        );
        let s = cli(&["--config", p.to_str().unwrap()]).settings().unwrap();
        let Some((_, BlobStore::S3(c))) = &s.blobs else {
            panic!("{:?}", s.blobs)
        };
        assert_eq!(
            (
                c.endpoint.host(),
                c.bucket.as_str(),
                c.region.as_str(),
                c.prefix.as_str()
            ),
            (
                "s3.eu-west-1.amazonaws.com",
                "sigil-blobs",
                "eu-west-1",
                "cluster-1/"
            )
        );
        assert_eq!(s.credentials_source, crate::creds::Source::Env);
        // Flags override the file; the bucket's own region overrides `region`; state_dir (which
        // the systemd unit always passes) is not used.
        let s = cli(&[
            "--config",
            p.to_str().unwrap(),
            "--blob-s3",
            "http://127.0.0.1:4566",
            "--blob-s3-region",
            "us-east-2",
            "--state-dir",
            "/var/lib/sigil",
        ])
        .settings()
        .unwrap();
        let Some((_, BlobStore::S3(c))) = &s.blobs else {
            panic!("{:?}", s.blobs)
        };
        assert_eq!(
            (c.endpoint.host(), c.region.as_str()),
            ("127.0.0.1:4566", "us-east-2")
        );
        let _ = std::fs::remove_file(p);
        for (args, want) in [
            (
                &["--blob-listen", "unix:/b", "--blob-s3-bucket", "b-1"][..],
                "blob_s3_bucket is set but blob_s3 is not",
            ),
            (
                &[
                    "--blob-listen",
                    "unix:/b",
                    "--blob-s3",
                    "http://h:1",
                    "--region",
                    "x",
                ][..],
                "blob_s3 is set but blob_s3_bucket is not",
            ),
            (
                &[
                    "--blob-listen",
                    "unix:/b",
                    "--blob-s3",
                    "http://h:1",
                    "--blob-s3-bucket",
                    "b-1",
                ][..],
                "blob_s3_region (or region)",
            ),
            (
                &["--log-listen", "unix:/l", "--blob-s3", "http://h:1"][..],
                "blob_listen is not",
            ),
            (
                &[
                    "--blob-listen",
                    "unix:/b",
                    "--blob-s3",
                    "s3.amazonaws.com",
                    "--blob-s3-bucket",
                    "b-1",
                    "--region",
                    "eu-west-1",
                ][..],
                "must be http://HOST",
            ),
            (
                &[
                    "--blob-listen",
                    "unix:/b",
                    "--blob-s3",
                    "http://h:1",
                    "--blob-s3-bucket",
                    "B_1",
                    "--region",
                    "eu-west-1",
                ][..],
                "not an S3 bucket name",
            ),
            (
                &[
                    "--blob-listen",
                    "unix:/b",
                    "--blob-s3",
                    "http://h:1",
                    "--blob-s3-bucket",
                    "b-1",
                    "--region",
                    "eu-west-1",
                    "--blob-s3-prefix",
                    "../x",
                ][..],
                "blob_s3_prefix",
            ),
        ] {
            let e = cli(args).settings().unwrap_err().to_string();
            assert!(e.contains(want), "{args:?}: {e}");
        }
    }

    #[test]
    fn errors_are_clear() {
        let p = write("typo", "ingres_listen = \"tcp:0.0.0.0:1\"\n");
        let e = cli(&["--config", p.to_str().unwrap()])
            .settings()
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field"), "{e}");
        let _ = std::fs::remove_file(p);
        for (args, want) in [
            (
                &["--log-listen", "vsock:any:9001", "--max-connections", "0"][..],
                "outside",
            ),
            (
                &["--ingress-listen", "tcp:0.0.0.0:1"][..],
                "enclave_api is not",
            ),
            (
                &["--egress-listen", "vsock:any:9003"][..],
                "neither egress_allow nor region",
            ),
            (
                &["--log-listen", "vsock:1"][..],
                "log_listen: vsock address",
            ),
            (
                &["--egress-listen", "tcp:127.0.0.1:0", "--region", "eu/../x"][..],
                "region",
            ),
            (
                &[
                    "--egress-listen",
                    "tcp:127.0.0.1:0",
                    "--egress-allow",
                    "a b:1",
                ][..],
                "letters",
            ),
            (
                &[
                    "--egress-listen",
                    "tcp:127.0.0.1:0",
                    "--egress-allow",
                    "host:0",
                ][..],
                "port",
            ),
            (
                &["--blob-listen", "unix:/x", "--max-blob-bytes", "99999999"][..],
                "max_blob_bytes",
            ),
            (&[][..], "nothing to do"),
            (
                &[
                    "--credentials-listen",
                    "tcp:127.0.0.1:0",
                    "--credentials-source",
                    "file",
                ][..],
                "not imds or env",
            ),
        ] {
            let e = cli(args).settings().unwrap_err().to_string();
            assert!(e.contains(want), "{args:?}: {e}");
        }
        let e = cli(&["--config", "/nonexistent/shim.toml"])
            .settings()
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/shim.toml"), "{e}");
    }
}
