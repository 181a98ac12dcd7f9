//! The enclave's sealed state as a service: a background thread obtains the data key
//! ([`seal::keyring`](crate::seal::keyring)) and then every caller reads and writes through one
//! [`SealedStore`] on the parent's blob store.
//!
//! The API serves from the first moment (attestation does not need state); calls that need
//! state answer `503 sealing_unavailable` with the reason until the key is there. KMS or the
//! shim being down at boot is therefore a wait with retries, not a dead enclave.

use std::ops::ControlFlow;
use std::sync::{Arc, Mutex};

use sigil_kms::client::KmsClient;
use sigil_sys::Stream;

use crate::boot::config::KmsConfig;
use crate::log;
use crate::nsm::{Mode, Nsm};
use crate::parent::egress::EgressConnector;
use crate::parent::{ParentServices, TIMEOUT, credentials, retry_with_backoff};
use crate::seal::keyring::{self, EPOCH, Keyring, KeyringError, Origin};
use crate::seal::store::RollbackGuard;
use crate::seal::{BlobClient, SealedStore, SealedStoreError, StoreError};

enum State {
    Disabled,
    Starting {
        attempts: u32,
        /// The last attempt's error: its code and its text.
        last_error: Option<(&'static str, String)>,
    },
    /// No retry helps (the configuration itself is refused): code and text.
    Failed(&'static str, String),
    Ready {
        store: Box<SealedStore<Stream>>,
        origin: Origin,
    },
}

/// What `GET /v1/health` shows of the sealing.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Status {
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    /// A short stable code for the last error (see `KeyringError::code`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Why a call that needs state cannot be served.
#[derive(Debug)]
pub enum SealingError {
    /// No `kms` section in the configuration.
    Disabled,
    /// The data key is not there (yet); the message says why.
    Unavailable(String),
    /// The store refused or failed.
    Store(SealedStoreError),
}

impl From<SealingError> for sigil_protocol::error::ApiError {
    fn from(e: SealingError) -> Self {
        use sigil_protocol::error::{ApiError, Code};
        let code = match &e {
            SealingError::Disabled => Code::SealingDisabled,
            SealingError::Unavailable(_) => Code::SealingUnavailable,
            SealingError::Store(SealedStoreError::Store(StoreError::NotFound)) => Code::NotFound,
            SealingError::Store(SealedStoreError::Store(StoreError::Limit(_))) => Code::StoreFull,
            SealingError::Store(SealedStoreError::Store(StoreError::VersionConflict {
                current,
            })) => {
                return ApiError::new(
                    Code::VersionConflict,
                    format!("the current version is {current}"),
                );
            }
            // The parent served something the seal refuses: tampered, moved or replayed.
            SealingError::Store(s @ SealedStoreError::Seal(_)) => {
                return ApiError::new(
                    Code::SealedBlobRejected,
                    format!("the parent's blob store served a blob that fails the seal: {s}"),
                );
            }
            SealingError::Store(
                s @ (SealedStoreError::Rollback { .. } | SealedStoreError::Equivocation { .. }),
            ) => return ApiError::new(Code::RollbackDetected, s.to_string()),
            SealingError::Store(_) => Code::BlobStoreFailed,
        };
        let message = match e {
            SealingError::Store(s) => s.to_string(),
            e => e.to_string(),
        };
        ApiError::new(code, message)
    }
}

impl std::fmt::Display for SealingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SealingError::Disabled => {
                f.write_str("this enclave is configured without sealed state (no kms section)")
            }
            SealingError::Unavailable(m) => write!(f, "sealed state is not available: {m}"),
            SealingError::Store(e) => write!(f, "{e}"),
        }
    }
}

pub struct Sealing {
    state: Mutex<State>,
    /// What `status` reports, kept apart from `state`: a parent that stalls a blob call holds
    /// the state lock, and health must still answer.
    summary: Mutex<Status>,
    /// Where to reconnect to the blob store (`None` when disabled).
    blobs: Option<sigil_sys::Addr>,
    /// The node id, known once the state is open (see `seal::node`).
    node: std::sync::OnceLock<[u8; 32]>,
}

impl Sealing {
    /// No sealed state: every call that needs it is refused.
    pub fn disabled() -> Arc<Sealing> {
        Arc::new(Sealing {
            state: Mutex::new(State::Disabled),
            summary: Mutex::new(summarize(&State::Disabled)),
            blobs: None,
            node: std::sync::OnceLock::new(),
        })
    }

    /// Starts getting the data key in the background.
    pub fn start(
        config: KmsConfig,
        nsm: Arc<dyn Nsm>,
        mode: Mode,
        services: ParentServices,
    ) -> Arc<Sealing> {
        let starting = State::Starting {
            attempts: 0,
            last_error: None,
        };
        let sealing = Arc::new(Sealing {
            summary: Mutex::new(summarize(&starting)),
            state: Mutex::new(starting),
            blobs: Some(services.blobs.clone()),
            node: std::sync::OnceLock::new(),
        });
        let me = sealing.clone();
        let spawned = std::thread::Builder::new()
            .name("sigil-sealing".into())
            .spawn(move || me.run(&config, nsm.as_ref(), mode, &services));
        if let Err(e) = spawned {
            sealing.set(State::Failed(
                "internal",
                format!("cannot start the sealing thread: {e}"),
            ));
        }
        sealing
    }

    fn set(&self, s: State) {
        *self.summary.lock().unwrap_or_else(|p| p.into_inner()) = summarize(&s);
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = s;
    }

    fn run(&self, config: &KmsConfig, nsm: &dyn Nsm, mode: Mode, services: &ParentServices) {
        retry_with_backoff(|attempt, delay| {
            let started = std::time::Instant::now();
            match attempt_once(config, nsm, mode, services) {
                Ok((store, origin, node)) => {
                    let _ = self.node.set(node);
                    log::info(format_args!(
                        "sealed state ready: data key {} in {} ms (KMS key {}, region {})",
                        match origin {
                            Origin::Generated => "generated on this first boot",
                            Origin::Recovered => "recovered",
                        },
                        started.elapsed().as_millis(),
                        config.key_id,
                        config.region
                    ));
                    self.set(State::Ready {
                        store: Box::new(store),
                        origin,
                    });
                    ControlFlow::Break(())
                }
                Err(e @ KeyringError::DevelopmentTrustOnNitro) => {
                    log::warn(format_args!("sealing: {e}"));
                    self.set(State::Failed(e.code(), e.to_string()));
                    ControlFlow::Break(())
                }
                Err(e) => {
                    log::warn(format_args!(
                        "sealing attempt {attempt} failed: {e}; retrying in {} ms",
                        delay.as_millis()
                    ));
                    self.set(State::Starting {
                        attempts: attempt,
                        last_error: Some((e.code(), e.to_string())),
                    });
                    ControlFlow::Continue(())
                }
            }
        });
    }

    /// The node id (an x-only public key), once the sealed state is open.
    pub fn node_id(&self) -> Option<[u8; 32]> {
        self.node.get().copied()
    }

    pub fn status(&self) -> Status {
        self.summary
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Whether the sealed store can be used now; the error is what [`Sealing::with_store`]
    /// would answer. The API checks it before it decodes a request for an endpoint that needs
    /// sealed state, so such a request is refused at once, whatever it holds.
    pub fn ready(&self) -> Result<(), SealingError> {
        let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match &*st {
            State::Disabled => Err(SealingError::Disabled),
            State::Starting { last_error, .. } => Err(SealingError::Unavailable(
                last_error
                    .as_ref()
                    .map(|(_, text)| text.clone())
                    .unwrap_or_else(|| "the data key is being fetched from KMS".into()),
            )),
            State::Failed(_, e) => Err(SealingError::Unavailable(e.clone())),
            State::Ready { .. } => Ok(()),
        }
    }

    /// Runs `f` on the sealed store. One caller at a time: the store's rollback tracking and
    /// the compare-and-swap checks the callers make are then atomic within this enclave.
    pub fn with_store<R>(
        &self,
        mut f: impl FnMut(&mut SealedStore<Stream>) -> Result<R, SealedStoreError>,
    ) -> Result<R, SealingError> {
        self.ready()?;
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        // Ready cannot go back to another state, so the check above still holds.
        let State::Ready { store, .. } = &mut *st else {
            return Err(SealingError::Unavailable(
                "the data key is being fetched from KMS".into(),
            ));
        };
        // A call that fails on I/O (the shim restarted, a timeout) runs once more on a new
        // connection: the callers' reads are idempotent and their writes compare-and-swap, so
        // a write that did land the first time is never made twice (the vault recognises its
        // own write at expected + 1 and reports it done).
        for attempt in 0..2 {
            self.reconnect_if_poisoned(store)?;
            match f(store) {
                Err(SealedStoreError::Store(StoreError::Io(_))) if attempt == 0 => continue,
                r => return r.map_err(SealingError::Store),
            }
        }
        unreachable!("the second attempt returns")
    }

    /// Replaces a connection that failed earlier. The rollback tracking stays, so a restarted
    /// shim cannot serve older blobs than this boot has seen.
    fn reconnect_if_poisoned(&self, store: &mut SealedStore<Stream>) -> Result<(), SealingError> {
        if let (true, Some(addr)) = (store.client().is_poisoned(), &self.blobs) {
            let client = BlobClient::connect(addr, TIMEOUT)?;
            store.reconnect(client);
        }
        Ok(())
    }
}

fn summarize(st: &State) -> Status {
    match st {
        State::Disabled => Status {
            state: "disabled",
            origin: None,
            attempts: None,
            error_code: None,
            error: None,
        },
        State::Starting {
            attempts,
            last_error,
        } => Status {
            state: "starting",
            origin: None,
            attempts: Some(*attempts),
            error_code: last_error.as_ref().map(|(code, _)| *code),
            error: last_error.as_ref().map(|(_, text)| text.clone()),
        },
        State::Failed(code, e) => Status {
            state: "failed",
            origin: None,
            attempts: None,
            error_code: Some(code),
            error: Some(e.clone()),
        },
        State::Ready { origin, .. } => Status {
            state: "ready",
            origin: Some(match origin {
                Origin::Generated => "generated",
                Origin::Recovered => "recovered",
            }),
            attempts: None,
            error_code: None,
            error: None,
        },
    }
}

fn attempt_once(
    config: &KmsConfig,
    nsm: &dyn Nsm,
    mode: Mode,
    services: &ParentServices,
) -> Result<(SealedStore<Stream>, Origin, [u8; 32]), KeyringError> {
    let trust = keyring::trust(config, mode)?;
    let kms = KmsClient::new(
        EgressConnector {
            proxy: services.egress.clone(),
        },
        &config.region,
        trust,
    )?;
    let creds_addr = services.credentials.clone();
    let fetch = move || credentials::fetch(&creds_addr);
    let keyring = Keyring {
        config,
        nsm,
        kms,
        credentials: &fetch,
    };
    let mut blobs = BlobClient::connect(&services.blobs, TIMEOUT)?;
    let (key, origin) = keyring.establish(&mut blobs)?;
    let node = super::node::identity(&key).map_err(KeyringError::NodeKey)?;
    let store = SealedStore::new(blobs, key, EPOCH, RollbackGuard::new());
    Ok((store, origin, node))
}

impl From<StoreError> for SealingError {
    fn from(e: StoreError) -> Self {
        SealingError::Store(SealedStoreError::Store(e))
    }
}
