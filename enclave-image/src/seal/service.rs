//! The enclave's sealed state as a service: a background thread obtains the data key
//! ([`seal::keyring`](crate::seal::keyring)) and then every caller reads and writes through one
//! [`SealedStore`] on the parent's blob store.
//!
//! The API serves from the first moment (attestation does not need state); calls that need
//! state answer `503 sealing_unavailable` with the reason until the key is there. KMS or the
//! shim being down at boot is therefore a wait with retries, not a dead enclave.
//!
//! The data key has up to two roots: KMS ([`keyring`]) and the quorum of administrators
//! ([`crate::seal::quorum`]). With both, the sealing thread keeps retrying KMS while the
//! administrators may unlock the state with their shares; whichever comes first opens it.
//! With the quorum only, a state starts at genesis and every later boot waits for shares.

use std::ops::ControlFlow;
use std::sync::{Arc, Mutex};

use sigil_kms::client::KmsClient;
use sigil_sys::Stream;

use std::collections::BTreeMap;

use sigil_protocol::quorum::{QuorumView, SHARE_LEN, SealedShare};
use sigil_protocol::wire::Hex;
use sigil_quorum::Share;
use zeroize::Zeroizing;

use crate::boot::config::{KmsConfig, QuorumConfig};
use crate::log;
use crate::nsm::{Mode, Nsm};
use crate::parent::egress::EgressConnector;
use crate::parent::{ParentServices, TIMEOUT, credentials, retry_with_backoff};
use crate::seal::DataKey;
use crate::seal::keyring::{self, EPOCH, Keyring, KeyringError, Origin};
use crate::seal::quorum::{self, GenesisRecord, QuorumError};
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
    /// The quorum is the only root and the parent's store holds no state: an administrator
    /// approves genesis.
    AwaitingGenesis,
    /// The quorum is the only root and holds a genesis: the state waits for shares.
    Locked,
    Ready {
        store: Box<SealedStore<Stream>>,
        origin: Origin,
        /// The data key (the store holds another copy): genesis wraps it under the quorum
        /// root.
        key: DataKey,
    },
}

/// The quorum root in memory: the measured configuration, the genesis record the parent
/// served, the good shares posted this boot, and the root once rebuilt or drawn.
struct QuorumState {
    /// The measured administrators and threshold (genesis splits among them).
    measured: QuorumConfig,
    record: Option<GenesisRecord>,
    /// The blob version `record` was read at.
    record_version: u64,
    /// The blob version of a record this state refused (another state's), so genesis can
    /// replace it.
    refused_version: Option<u64>,
    received: BTreeMap<u8, Share>,
    root: Option<Zeroizing<[u8; 32]>>,
    /// The open state has a quorum marker: it had a genesis (so a missing record is not a
    /// licence for a new one).
    marked: bool,
}

impl QuorumState {
    /// The current quorum: the last re-share's, or the measured one.
    fn current(&self) -> QuorumConfig {
        self.record
            .as_ref()
            .map(GenesisRecord::quorum)
            .unwrap_or_else(|| self.measured.clone())
    }
}

/// Why a quorum call failed.
#[derive(Debug)]
pub enum QuorumCallError {
    Disabled,
    NoGenesis,
    /// Genesis exists (its id), or another was stored meanwhile.
    GenesisExists(String),
    /// The state cannot be used yet (no data key to wrap).
    Unavailable(String),
    Quorum(QuorumError),
    Store(StoreError),
    /// The thing sent belongs to another genesis.
    WrongGenesis(String),
    /// A forwarded root that does not open or does not match.
    Refused(String),
    /// A bound is reached.
    Limit(String),
    /// The parent served a quorum record older than the state's (see [`Marker`]).
    Stale(String),
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quorum: Option<sigil_protocol::api::QuorumHealth>,
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
    /// The quorum root, when the configuration has one.
    quorum: Option<Mutex<QuorumState>>,
    /// Set when KMS, answering after the quorum opened the state, gives another key: every
    /// call that needs state is refused from then on.
    poisoned: std::sync::OnceLock<String>,
}

impl Sealing {
    /// No sealed state: every call that needs it is refused.
    pub fn disabled() -> Arc<Sealing> {
        Arc::new(Sealing {
            state: Mutex::new(State::Disabled),
            summary: Mutex::new(summarize(&State::Disabled)),
            blobs: None,
            node: std::sync::OnceLock::new(),
            quorum: None,
            poisoned: std::sync::OnceLock::new(),
        })
    }

    /// Starts getting the data key in the background: from KMS (`kms`), or from the
    /// quorum's administrators (`quorum`), or whichever opens it first.
    pub fn start(
        kms: Option<KmsConfig>,
        quorum: Option<QuorumConfig>,
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
            poisoned: std::sync::OnceLock::new(),
            quorum: quorum.map(|measured| {
                Mutex::new(QuorumState {
                    measured,
                    record: None,
                    record_version: 0,
                    refused_version: None,
                    received: BTreeMap::new(),
                    root: None,
                    marked: false,
                })
            }),
        });
        let me = sealing.clone();
        let spawned = std::thread::Builder::new()
            .name("sigil-sealing".into())
            .spawn(move || me.run(kms.as_ref(), nsm.as_ref(), mode, &services));
        if let Err(e) = spawned {
            sealing.set(State::Failed(
                "internal",
                format!("cannot start the sealing thread: {e}"),
            ));
        }
        sealing
    }

    fn set(&self, s: State) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        // Ready never goes back: a KMS attempt that fails after the administrators unlocked
        // the state does not close it.
        if matches!(*st, State::Ready { .. }) {
            return;
        }
        *self.summary.lock().unwrap_or_else(|p| p.into_inner()) = summarize(&s);
        *st = s;
    }

    /// The origin and data key of the open state.
    fn ready_key(&self) -> Option<(Origin, DataKey)> {
        let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match &*st {
            State::Ready { origin, key, .. } => Some((*origin, key.clone())),
            _ => None,
        }
    }

    /// Opens the state once: the first of KMS and the quorum wins; a later one (the same key)
    /// is dropped, so the store's rollback tracking is never reset.
    fn become_ready(&self, store: SealedStore<Stream>, origin: Origin, key: DataKey) -> bool {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if matches!(*st, State::Ready { .. }) {
            return false;
        }
        let s = State::Ready {
            store: Box::new(store),
            origin,
            key,
        };
        *self.summary.lock().unwrap_or_else(|p| p.into_inner()) = summarize(&s);
        *st = s;
        true
    }

    fn run(&self, kms: Option<&KmsConfig>, nsm: &dyn Nsm, mode: Mode, services: &ParentServices) {
        retry_with_backoff(|attempt, delay| {
            if let Some((origin, key)) = self.ready_key() {
                // Opened by the administrators (or a forwarded root) meanwhile. With KMS
                // configured, KMS is still asked, once it answers, and must give the same key.
                // Threat: a parent that blocked KMS and served a record of its own making
                // which administrators who had not pinned their genesis unlocked: the state
                // would be sealed under a key the parent knows. A disagreement stops the
                // sealed state for good (fail closed).
                let Some(config) =
                    kms.filter(|_| matches!(origin, Origin::Quorum | Origin::Forwarded))
                else {
                    return ControlFlow::Break(());
                };
                return match attempt_once(config, nsm, mode, services) {
                    Ok((_, _, _, kms_key)) if kms_key.expose() == key.expose() => {
                        log::info(format_args!(
                            "KMS answers again and agrees with the key the quorum opened"
                        ));
                        ControlFlow::Break(())
                    }
                    Ok(_) => {
                        let m = "KMS's data key differs from the one the quorum's record \
                                 unwrapped: the record was not this state's; the sealed state is \
                                 stopped"
                            .to_string();
                        log::warn(format_args!("{m}"));
                        let _ = self.poisoned.set(m);
                        ControlFlow::Break(())
                    }
                    Err(_) => ControlFlow::Continue(()),
                };
            }
            if let Err(e) = self.load_quorum_record(services) {
                log::warn(format_args!(
                    "sealing attempt {attempt}: reading the quorum record: {e}; retrying in {} ms",
                    delay.as_millis()
                ));
                self.set(State::Starting {
                    attempts: attempt,
                    last_error: Some(("blob_store", e.to_string())),
                });
                return ControlFlow::Continue(());
            }
            let Some(config) = kms else {
                return self.quorum_only(services);
            };
            let started = std::time::Instant::now();
            match attempt_once(config, nsm, mode, services) {
                Ok((mut store, origin, node, key)) => {
                    if let Err(e) = self.check_quorum_record(&key, &mut store) {
                        log::warn(format_args!(
                            "sealing attempt {attempt}: checking the quorum record: {e}; \
                             retrying in {} ms",
                            delay.as_millis()
                        ));
                        return ControlFlow::Continue(());
                    }
                    let _ = self.node.set(node);
                    log::info(format_args!(
                        "sealed state ready: data key {} in {} ms (KMS key {}, region {})",
                        match origin {
                            Origin::Generated => "generated on this first boot",
                            Origin::Recovered => "recovered",
                            Origin::Quorum => "unlocked by the quorum",
                            Origin::Forwarded => "forwarded by a peer",
                        },
                        started.elapsed().as_millis(),
                        config.key_id,
                        config.region
                    ));
                    self.become_ready(store, origin, key);
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
        let mut s = self
            .summary
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();

        if let Some(q) = &self.quorum {
            let q = q.lock().unwrap_or_else(|p| p.into_inner());
            let state = quorum_state(&q, s.state == "ready", s.state == "awaiting_genesis");
            if state == "locked" {
                // KMS may still be retried; the administrators can open it now.
                s.state = "locked";
            }
            s.quorum = Some(sigil_protocol::api::QuorumHealth {
                state: state.into(),
                threshold: q.current().threshold,
                admins: q.current().admins.len() as u16,
                received: q.received.len() as u16,
                genesis: q.record.as_ref().map(|r| hex::encode(r.id.0)),
            });
        }
        // Last: nothing else may paint over a stopped state.
        if let Some(m) = self.poisoned.get() {
            s.state = "failed";
            s.error_code = Some("keys_disagree");
            s.error = Some(m.clone());
        }
        s
    }

    /// Whether the sealed store can be used now; the error is what [`Sealing::with_store`]
    /// would answer. The API checks it before it decodes a request for an endpoint that needs
    /// sealed state, so such a request is refused at once, whatever it holds.
    pub fn ready(&self) -> Result<(), SealingError> {
        if let Some(m) = self.poisoned.get() {
            return Err(SealingError::Unavailable(m.clone()));
        }
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
            State::AwaitingGenesis => Err(SealingError::Unavailable(
                "the quorum has no genesis yet: an administrator approves one (quorum/genesis)"
                    .into(),
            )),
            State::Locked => Err(SealingError::Unavailable(
                "locked: the state waits for the quorum administrators' shares (quorum/unlock)"
                    .into(),
            )),
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
            quorum: None,
        },
        State::AwaitingGenesis | State::Locked => Status {
            state: if matches!(st, State::Locked) {
                "locked"
            } else {
                "awaiting_genesis"
            },
            origin: None,
            attempts: None,
            error_code: None,
            error: None,
            quorum: None,
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
            quorum: None,
        },
        State::Failed(code, e) => Status {
            state: "failed",
            origin: None,
            attempts: None,
            error_code: Some(code),
            error: Some(e.clone()),
            quorum: None,
        },
        State::Ready { origin, .. } => Status {
            state: "ready",
            origin: Some(match origin {
                Origin::Generated => "generated",
                Origin::Recovered => "recovered",
                Origin::Quorum => "quorum",
                Origin::Forwarded => "forwarded",
            }),
            attempts: None,
            error_code: None,
            error: None,
            quorum: None,
        },
    }
}

fn attempt_once(
    config: &KmsConfig,
    nsm: &dyn Nsm,
    mode: Mode,
    services: &ParentServices,
) -> Result<(SealedStore<Stream>, Origin, [u8; 32], DataKey), KeyringError> {
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
    let store = SealedStore::new(blobs, key.clone(), EPOCH, RollbackGuard::new());
    Ok((store, origin, node, key))
}

impl From<StoreError> for SealingError {
    fn from(e: StoreError) -> Self {
        SealingError::Store(SealedStoreError::Store(e))
    }
}

/// The sealed marker of the state's quorum (kind `counter`, id [`MARKER_ID`]): the genesis and
/// the number of re-shares the state has seen. Threat: a parent that serves an older quorum
/// record (before a re-share) so that administrators who were removed can unlock the state,
/// or that deletes the record so one measured administrator can run genesis again. The marker
/// is sealed under the data key, so a record that does not descend from it is refused once
/// the state is open, and genesis is refused while it exists. (A parent that rolls back the
/// marker too, across a reboot, meets the sealed store's general limit: see the README.)
const MARKER_ID: &str = "quorum-marker";
/// The marker is a rollback-detection record: the `counter` kind, whose names nothing else
/// fills (the registry's objects are `config`).
const MARKER_KIND: crate::seal::Kind = crate::seal::Kind::Counter;

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Marker {
    genesis: sigil_protocol::wire::Hex32,
    generation: u32,
}

impl Marker {
    fn of(r: &GenesisRecord) -> Marker {
        Marker {
            genesis: r.id,
            generation: r.lineage.len() as u32,
        }
    }

    /// Whether `r` is the marked genesis or a re-share of it (a re-share stored before its
    /// marker was: a crash between the two writes).
    fn admits(&self, r: &GenesisRecord) -> bool {
        r.lineage.len() as u32 >= self.generation
            && (r.id == self.genesis || r.lineage.iter().any(|l| l.from_genesis == self.genesis))
    }

    fn read(store: &mut SealedStore<Stream>) -> Result<Option<Marker>, SealedStoreError> {
        match store.get_sealed(MARKER_KIND, MARKER_ID) {
            Ok((_, bytes)) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                SealedStoreError::Store(StoreError::Protocol(format!("the quorum marker: {e}")))
            }),
            Err(SealedStoreError::Store(StoreError::NotFound)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes the marker if it moves the state's quorum forward (none yet, or a higher
    /// re-share count), over the version read: a marker never goes back, whoever races to
    /// write it (two enclaves of a cluster, a stale record served to one of them).
    fn advance(&self, store: &mut SealedStore<Stream>) -> Result<(), SealedStoreError> {
        for _ in 0..2 {
            let (version, current) = match store.get_sealed(MARKER_KIND, MARKER_ID) {
                Ok((v, bytes)) => (
                    v,
                    Some(serde_json::from_slice::<Marker>(&bytes).map_err(|e| {
                        SealedStoreError::Store(StoreError::Protocol(format!(
                            "the quorum marker: {e}"
                        )))
                    })?),
                ),
                Err(SealedStoreError::Store(StoreError::NotFound)) => (0, None),
                Err(e) => return Err(e),
            };
            if current.is_some_and(|m| m.generation >= self.generation) {
                return Ok(());
            }
            let bytes = serde_json::to_vec(self).unwrap_or_default();
            match store.put_sealed_at(MARKER_KIND, MARKER_ID, version, &bytes) {
                Ok(_) => return Ok(()),
                Err(SealedStoreError::Store(StoreError::VersionConflict { .. })) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(SealedStoreError::Store(StoreError::Protocol(
            "the quorum marker keeps changing under us".into(),
        )))
    }
}

/// The quorum's state as `quorum/status` names it.
fn quorum_state(q: &QuorumState, ready: bool, awaiting: bool) -> &'static str {
    match (&q.record, ready) {
        (None, _) if ready || awaiting => "awaiting_genesis",
        // No record read yet (the store is not reachable): nothing to unlock with.
        (None, _) => "starting",
        (Some(_), false) => "locked",
        (Some(_), true) if q.root.is_some() => "unlocked",
        (Some(_), true) => "open",
    }
}

impl std::fmt::Display for QuorumCallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QuorumCallError::Disabled => {
                f.write_str("this image's measured configuration has no quorum section")
            }
            QuorumCallError::NoGenesis => f.write_str(
                "the quorum has no genesis yet (or its record is not read yet): an \
                 administrator approves one with quorum/genesis",
            ),
            QuorumCallError::GenesisExists(m) => f.write_str(m),
            QuorumCallError::Unavailable(m) => write!(f, "sealed state is not available: {m}"),
            QuorumCallError::Quorum(e) => write!(f, "{e}"),
            QuorumCallError::Store(e) => write!(f, "blob store: {e}"),
            QuorumCallError::WrongGenesis(m)
            | QuorumCallError::Refused(m)
            | QuorumCallError::Limit(m)
            | QuorumCallError::Stale(m) => f.write_str(m),
        }
    }
}

impl From<StoreError> for QuorumCallError {
    fn from(e: StoreError) -> Self {
        QuorumCallError::Store(e)
    }
}

impl From<QuorumError> for QuorumCallError {
    fn from(e: QuorumError) -> Self {
        QuorumCallError::Quorum(e)
    }
}

/// The quorum root's side of the sealing.
impl Sealing {
    fn quorum(&self) -> Result<std::sync::MutexGuard<'_, QuorumState>, QuorumCallError> {
        self.quorum
            .as_ref()
            .map(|q| q.lock().unwrap_or_else(|p| p.into_inner()))
            .ok_or(QuorumCallError::Disabled)
    }

    /// The measured quorum configuration, when there is one.
    pub fn quorum_measured(&self) -> Option<QuorumConfig> {
        self.quorum().ok().map(|q| q.measured.clone())
    }

    /// The current quorum (the last re-share's, or the measured one).
    pub fn quorum_current(&self) -> Option<QuorumConfig> {
        self.quorum().ok().map(|q| q.current())
    }

    /// The quorum whose approvals count now: the record's, read again from the store first.
    /// Threat: an enclave of a cluster still holding the record from before another enclave's
    /// re-share, and so accepting the approvals of administrators who were removed. Without a
    /// record there is no quorum to approve anything (never the measured fallback: a parent
    /// that hides the record must not bring removed administrators back).
    pub fn quorum_for_approvals(&self) -> Result<QuorumConfig, QuorumCallError> {
        self.refresh_record()?;
        self.quorum()?
            .record
            .as_ref()
            .map(GenesisRecord::quorum)
            .ok_or(QuorumCallError::NoGenesis)
    }

    /// Reads the record again before a share or a forwarded root is taken (a re-share by
    /// another enclave of the cluster since this one read it).
    pub fn quorum_refresh(&self) -> Result<(), QuorumCallError> {
        self.refresh_record()
    }

    /// Reads the record again; a newer one replaces the one in memory (a re-share by another
    /// enclave on the same store) if it is acceptable: with the state open, it must wrap this
    /// state's data key and descend from the state's marker (threat: the parent planting a
    /// record of its own making, with the real id copied, for administrators to fetch shares
    /// of from a trusted enclave); with the state locked, it is what a boot would read, and
    /// the marker is checked when the state opens. The I/O happens without the quorum's lock
    /// held, so `/v1/health` never waits on the parent.
    fn refresh_record(&self) -> Result<(), QuorumCallError> {
        let (Some(addr), measured) = (self.blobs.clone(), self.quorum()?.measured.clone()) else {
            return Ok(());
        };
        let mut blobs = BlobClient::connect(&addr, TIMEOUT)?;
        let (version, bytes) = match blobs.get(quorum::RECORD_NAME) {
            Ok(v) => v,
            Err(StoreError::NotFound) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let Ok(record) = GenesisRecord::parse(&bytes, &measured) else {
            return Ok(());
        };
        let key = {
            let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            match &*st {
                State::Ready { key, .. } => Some(key.clone()),
                _ => None,
            }
        };
        if let Some(key) = &key {
            if !record.wraps(key) {
                return Ok(());
            }
            let marker = self
                .with_store(Marker::read)
                .map_err(|e| QuorumCallError::Unavailable(e.to_string()))?;
            if marker.as_ref().is_some_and(|m| !m.admits(&record)) {
                return Ok(());
            }
        }
        let mut q = self.quorum()?;
        if version <= q.record_version && q.record.is_some() {
            return Ok(());
        }
        if q.record.as_ref().is_none_or(|r| r.id != record.id) {
            // Another root: the one in memory (if any) no longer opens this record.
            q.root = None;
            q.received.clear();
        } else if q
            .record
            .as_ref()
            .is_some_and(|r| r.to_bytes() != record.to_bytes())
        {
            // The same id with other content: not a re-share of ours; keep what we have.
            return Ok(());
        }
        q.record = Some(record);
        q.record_version = version;
        Ok(())
    }

    /// Reads the genesis record once (it needs only the blob store); a missing one is not an
    /// error. A record for another configuration is refused here, and never unlocked.
    fn load_quorum_record(&self, services: &ParentServices) -> Result<(), String> {
        let Ok(mut q) = self.quorum() else {
            return Ok(());
        };
        if q.record.is_some() {
            return Ok(());
        }
        let mut blobs = BlobClient::connect(&services.blobs, TIMEOUT).map_err(|e| e.to_string())?;
        match blobs.get(quorum::RECORD_NAME) {
            Ok((version, bytes)) => match GenesisRecord::parse(&bytes, &q.measured) {
                Ok(r) => {
                    log::info(format_args!(
                        "quorum: genesis {} ({} of {})",
                        hex::encode(r.id.0),
                        r.threshold,
                        r.admins.len()
                    ));
                    q.record = Some(r);
                    q.record_version = version;
                }
                Err(e) => {
                    log::warn(format_args!("quorum: {e}; refusing it"));
                    q.refused_version = Some(version);
                }
            },
            Err(StoreError::NotFound) => {}
            Err(e) => return Err(e.to_string()),
        }
        Ok(())
    }

    /// A state opened by KMS checks that the record wraps its own key. Threat: a parent
    /// that swaps in a record of its own making (its root, a data key it knows), for the
    /// administrators to fetch shares of and later unlock a state it can read.
    fn check_quorum_record(
        &self,
        key: &DataKey,
        store: &mut SealedStore<Stream>,
    ) -> Result<(), SealedStoreError> {
        let Ok(mut q) = self.quorum() else {
            return Ok(());
        };
        if let Some(r) = &q.record
            && !r.wraps(key)
        {
            log::warn(format_args!(
                "quorum: the record {} wraps another data key than this state's (the parent \
                 replaced it); refusing it",
                hex::encode(r.id.0)
            ));
            q.record = None;
            q.refused_version = Some(q.record_version);
        }
        let marker = Marker::read(store)?;
        match (&q.record, &marker) {
            (Some(r), Some(m)) if !m.admits(r) => {
                log::warn(format_args!(
                    "quorum: the record {} is older than this state's quorum (genesis {}, \
                     {} re-share(s)): the parent served an old record; refusing it",
                    hex::encode(r.id.0),
                    hex::encode(m.genesis.0),
                    m.generation
                ));
                q.record = None;
                q.refused_version = Some(q.record_version);
            }
            (Some(r), _) => Marker::of(r).advance(store)?,
            (None, _) => {}
        }
        q.marked = marker.is_some() || q.record.is_some();
        Ok(())
    }

    /// Quorum only: a stored genesis means locked; no state at all means awaiting genesis;
    /// sealed blobs without a record are refused (as KMS's missing record is).
    fn quorum_only(&self, services: &ParentServices) -> ControlFlow<()> {
        let has_record = self.quorum().map(|q| q.record.is_some()).unwrap_or(false);
        if has_record {
            log::info(format_args!(
                "sealed state locked: waiting for the quorum administrators' shares"
            ));
            self.set(State::Locked);
            return ControlFlow::Break(());
        }
        let listed =
            BlobClient::connect(&services.blobs, TIMEOUT).and_then(|mut b| b.list("seal/"));
        match listed {
            Ok((sealed, truncated)) if sealed.is_empty() && !truncated => {
                log::info(format_args!(
                    "no state yet: the quorum awaits genesis (an administrator approves it)"
                ));
                self.set(State::AwaitingGenesis);
            }
            Ok((sealed, _)) => self.set(State::Failed(
                "record_missing",
                format!(
                    "{} sealed blob(s) exist but the quorum record {} is missing or refused; \
                     refusing to start a new state over them (restore the record)",
                    sealed.len(),
                    quorum::RECORD_NAME
                ),
            )),
            Err(e) => {
                self.set(State::Starting {
                    attempts: 1,
                    last_error: Some(("blob_store", e.to_string())),
                });
                return ControlFlow::Continue(());
            }
        }
        ControlFlow::Break(())
    }

    /// What `quorum/status` answers.
    pub fn quorum_view(&self) -> Result<QuorumView, QuorumCallError> {
        let status = self
            .summary
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let q = self.quorum()?;
        let current = q.current();
        Ok(QuorumView {
            generation: q.record.as_ref().map_or(0, |r| r.lineage.len() as u32),
            state: quorum_state(
                &q,
                status.state == "ready",
                status.state == "awaiting_genesis",
            )
            .into(),
            threshold: current.threshold,
            config: Hex(current.digest()),
            measured: Hex(q.measured.digest()),
            genesis: q.record.as_ref().map(|r| r.id),
            commitments: q
                .record
                .as_ref()
                .map(|r| r.commitments.clone())
                .unwrap_or_default(),
            received: q
                .received
                .keys()
                .filter_map(|i| current.admins.get(usize::from(*i) - 1))
                .map(|a| a.name.clone())
                .collect(),
            admins: current.admins,
        })
    }

    /// The genesis id, once there is one.
    pub fn quorum_genesis_id(&self) -> Result<[u8; 32], QuorumCallError> {
        self.quorum()?
            .record
            .as_ref()
            .map(|r| r.id.0)
            .ok_or(QuorumCallError::NoGenesis)
    }

    /// Administrator `index`'s sealed share.
    pub fn quorum_share(&self, index: u8) -> Result<Option<SealedShare>, QuorumCallError> {
        let q = self.quorum()?;
        let r = q.record.as_ref().ok_or(QuorumCallError::NoGenesis)?;
        let Some(s) = r.shares.get(usize::from(index).wrapping_sub(1)) else {
            return Ok(None);
        };
        Ok(Some(SealedShare {
            genesis: r.id,
            index,
            admin: r.admins[usize::from(index) - 1].name.clone(),
            threshold: r.threshold,
            enc: s.enc,
            ciphertext: s.ciphertext.clone(),
            commitments: r.commitments.clone(),
        }))
    }

    /// Genesis (an administrator approved it): a fresh root wraps the open state's data key,
    /// or, with the quorum as the only root and no state yet, a new data key.
    pub fn quorum_genesis(&self) -> Result<QuorumView, QuorumCallError> {
        let addr = self
            .blobs
            .clone()
            .ok_or_else(|| QuorumCallError::Unavailable("no blob store".into()))?;
        {
            let mut q = self.quorum()?;
            if let Some(r) = &q.record {
                return Err(QuorumCallError::GenesisExists(format!(
                    "genesis {} exists; a new set of administrators is a re-share",
                    hex::encode(r.id.0)
                )));
            }
            if q.marked {
                return Err(QuorumCallError::GenesisExists(
                    "this state had a genesis, whose record the parent no longer serves (or \
                     served an older one): restore the record instead"
                        .into(),
                ));
            }
            // The state lock is taken after the quorum's, here as everywhere.
            let (key, fresh) = {
                let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
                match &*st {
                    State::Ready { key, .. } => (key.clone(), false),
                    State::AwaitingGenesis => (
                        DataKey::generate().map_err(|e| {
                            QuorumCallError::Unavailable(format!("a new data key: {e}"))
                        })?,
                        true,
                    ),
                    _ => {
                        return Err(QuorumCallError::Unavailable(
                            "genesis wraps the state's data key: wait until the state is open"
                                .into(),
                        ));
                    }
                }
            };
            let started = std::time::Instant::now();
            let (record, root) = quorum::genesis(&q.measured, &key, Vec::new())?;
            let mut blobs = BlobClient::connect(&addr, TIMEOUT)?;
            // A refused record (another configuration's, another state's) is replaced.
            let expected = q.refused_version.unwrap_or(0);
            match blobs.put(quorum::RECORD_NAME, expected, &record.to_bytes()) {
                Ok(_) => {}
                Err(StoreError::VersionConflict { .. }) => {
                    return Err(QuorumCallError::GenesisExists(
                        "another genesis record was stored meanwhile".into(),
                    ));
                }
                Err(e) => return Err(e.into()),
            }
            log::info(format_args!(
                "quorum: genesis {} ({} of {}) in {} ms",
                hex::encode(record.id.0),
                record.threshold,
                record.admins.len(),
                started.elapsed().as_millis()
            ));
            if fresh {
                self.open_with(key, blobs, Origin::Generated, &record)?;
            } else {
                let marker = Marker::of(&record);
                self.with_store(|s| marker.advance(s))
                    .map_err(|e| QuorumCallError::Unavailable(e.to_string()))?;
            }
            q.record = Some(record);
            q.record_version = expected + 1;
            q.refused_version = None;
            q.root = Some(root);
            q.marked = true;
        }
        self.quorum_view()
    }

    /// A share an administrator posted (its signature checked by the caller): checked
    /// against the commitments, kept until the threshold, then the root rebuilt, the data key
    /// unwrapped, the state opened if it was locked, and every share copy wiped.
    pub fn quorum_unlock(&self, share: &[u8; SHARE_LEN]) -> Result<QuorumView, QuorumCallError> {
        let unlocked = {
            let mut q = self.quorum()?;
            let record = q.record.clone().ok_or(QuorumCallError::NoGenesis)?;
            let share = quorum::check_share(&record, share)?;
            q.received.insert(share.index, share);
            if q.received.len() < usize::from(record.threshold) {
                None
            } else {
                // The shares are dropped (wiped) whatever happens next.
                let shares: Vec<Share> = std::mem::take(&mut q.received).into_values().collect();
                let started = std::time::Instant::now();
                let root = quorum::combine(&record, &shares)?;
                drop(shares);
                let key = record.unwrap_key(&root)?;
                log::info(format_args!(
                    "quorum: root rebuilt from {} shares in {} ms",
                    record.threshold,
                    started.elapsed().as_millis()
                ));
                Some((key, root, record))
            }
        };
        if let Some((key, root, record)) = unlocked {
            self.open_and_keep(key, root, &record, Origin::Quorum)?;
        }
        self.quorum_view()
    }

    /// Re-share (the approvals are checked here, against the current administrators): a
    /// new root for the new quorum, the data key wrapped under it, the record replaced.
    /// Needs the root in memory.
    pub fn quorum_reshare(
        &self,
        boot_key: &[u8; 32],
        threshold: u16,
        admins: Vec<sigil_protocol::quorum::Admin>,
        approvals: &[sigil_protocol::quorum::Approval],
    ) -> Result<QuorumView, QuorumCallError> {
        let addr = self
            .blobs
            .clone()
            .ok_or_else(|| QuorumCallError::Unavailable("no blob store".into()))?;
        {
            self.refresh_record()?;
            let mut q = self.quorum()?;
            let record = q.record.clone().ok_or(QuorumCallError::NoGenesis)?;
            quorum::check_approvals(
                record.threshold,
                &record.admins,
                &record.id.0,
                threshold,
                &admins,
                boot_key,
                approvals,
            )?;
            let root = q.root.as_ref().ok_or_else(|| {
                QuorumCallError::Unavailable(
                    "the quorum root is not in memory (this state was opened by KMS): the \
                     current administrators post their shares (quorum/unlock) first"
                        .into(),
                )
            })?;
            let key = record.unwrap_key(root)?;
            let mut lineage = record.lineage.clone();
            if lineage.len() >= quorum::MAX_LINEAGE {
                return Err(QuorumCallError::Limit(format!(
                    "the record keeps at most {} re-shares; run genesis on a new state",
                    quorum::MAX_LINEAGE
                )));
            }
            lineage.push(quorum::Reshare {
                from_genesis: record.id,
                threshold,
                admins: admins.clone(),
                boot_key: Hex(*boot_key),
                approvals: approvals.to_vec(),
            });
            let started = std::time::Instant::now();
            let new_quorum = QuorumConfig { threshold, admins };
            let (next, root) = quorum::genesis(&new_quorum, &key, lineage)?;
            let mut blobs = BlobClient::connect(&addr, TIMEOUT)?;
            let version = match blobs.put(quorum::RECORD_NAME, q.record_version, &next.to_bytes()) {
                Ok(v) => v,
                Err(StoreError::VersionConflict { .. }) => {
                    return Err(QuorumCallError::GenesisExists(
                        "the quorum record changed meanwhile".into(),
                    ));
                }
                Err(e) => return Err(e.into()),
            };
            log::info(format_args!(
                "quorum: re-shared genesis {} to {} ({} of {}) in {} ms; the old shares are void",
                hex::encode(record.id.0),
                hex::encode(next.id.0),
                next.threshold,
                next.admins.len(),
                started.elapsed().as_millis()
            ));
            let marker = Marker::of(&next);
            self.with_store(|s| marker.advance(s))
                .map_err(|e| QuorumCallError::Unavailable(e.to_string()))?;
            q.record = Some(next);
            q.record_version = version;
            q.root = Some(root);
            q.received.clear();
        }
        self.quorum_view()
    }

    /// Seals the root to `recipient` (the per-boot key of an enclave of this very image, which
    /// the caller verified), bound to the current quorum, the genesis and that key.
    pub fn quorum_forward(
        &self,
        key: &sigil_protocol::encap::ServerKey,
        recipient: &[u8; 32],
    ) -> Result<sigil_protocol::quorum::Forwarded, QuorumCallError> {
        let q = self.quorum()?;
        let record = q.record.as_ref().ok_or(QuorumCallError::NoGenesis)?;
        let root = q.root.as_ref().ok_or_else(|| {
            QuorumCallError::Unavailable(
                "the quorum root is not in memory: unlock this enclave with the administrators' \
                 shares first (an enclave opened by KMS does not hold it)"
                    .into(),
            )
        })?;
        let info = sigil_protocol::quorum::forward_info(&record.config.0, &record.id.0, recipient);
        let (enc, ct) = key
            .seal_auth(recipient, &info, &[], &root[..])
            .map_err(|e| QuorumCallError::Quorum(QuorumError::Crypto(e.to_string())))?;
        log::info(format_args!(
            "quorum: root of genesis {} forwarded to the enclave with key {}",
            hex::encode(record.id.0),
            hex::encode(recipient)
        ));
        Ok(sigil_protocol::quorum::Forwarded {
            genesis: record.id,
            enc: Hex(enc),
            ciphertext: sigil_protocol::wire::Base64Bytes(ct),
        })
    }

    /// Opens a root another enclave of this image (`sender`, its per-boot key, verified by
    /// the caller) sealed to this one: it must be for this enclave's quorum, genesis and key,
    /// match the record's commitments and unwrap the data key. Then the state opens.
    pub fn quorum_receive(
        &self,
        key: &sigil_protocol::encap::ServerKey,
        sender: &[u8; 32],
        forwarded: &sigil_protocol::quorum::Forwarded,
    ) -> Result<QuorumView, QuorumCallError> {
        let opened = {
            let mut q = self.quorum()?;
            let record = q.record.clone().ok_or(QuorumCallError::NoGenesis)?;
            if forwarded.genesis != record.id {
                return Err(QuorumCallError::WrongGenesis(format!(
                    "the root is for genesis {}, this enclave's record is genesis {}",
                    hex::encode(forwarded.genesis.0),
                    hex::encode(record.id.0)
                )));
            }
            let info = sigil_protocol::quorum::forward_info(
                &record.config.0,
                &record.id.0,
                &key.public_key(),
            );
            let plain = Zeroizing::new(
                key.open_auth(
                    sender,
                    &forwarded.enc.0,
                    &info,
                    &[],
                    &forwarded.ciphertext.0,
                )
                .map_err(|_| {
                    QuorumCallError::Refused(
                        "the forwarded root does not open: not sealed by that enclave to this \
                             one for this quorum and genesis, or altered"
                            .into(),
                    )
                })?,
            );
            let root: Zeroizing<[u8; 32]> = Zeroizing::new(
                plain[..]
                    .try_into()
                    .map_err(|_| QuorumCallError::Refused("the root is not 32 bytes".into()))?,
            );
            sigil_quorum::check_root(&root, &record.commitments())
                .map_err(|e| QuorumCallError::Refused(format!("the forwarded root: {e}")))?;
            let data_key = record.unwrap_key(&root)?;
            q.received.clear();
            (data_key, root, record)
        };
        self.open_and_keep(opened.0, opened.1, &opened.2, Origin::Forwarded)?;
        self.quorum_view()
    }

    /// A root rebuilt or received for `record`: the state opens under `key` if it is not
    /// open yet (the record checked against the state's marker first), and the root is kept
    /// for re-shares and forwarding; a refused record leaves nothing behind.
    fn open_and_keep(
        &self,
        key: DataKey,
        root: Zeroizing<[u8; 32]>,
        record: &GenesisRecord,
        origin: Origin,
    ) -> Result<(), QuorumCallError> {
        if self.ready().is_err() {
            let addr = self
                .blobs
                .clone()
                .ok_or_else(|| QuorumCallError::Unavailable("no blob store".into()))?;
            let blobs = BlobClient::connect(&addr, TIMEOUT)?;
            self.open_with(key, blobs, origin, record)?;
        } else {
            // Already open: the root is kept only for a record the state's marker admits
            // (threat: removed administrators' shares of an older record, served to an enclave
            // that still held it, putting the old root in memory to re-share or forward).
            let marker = self
                .with_store(Marker::read)
                .map_err(|e| QuorumCallError::Unavailable(e.to_string()))?;
            if let Some(m) = marker.filter(|m| !m.admits(record)) {
                return Err(QuorumCallError::Stale(format!(
                    "the quorum record (genesis {}) is older than this state's quorum (genesis \
                     {}, {} re-share(s))",
                    hex::encode(record.id.0),
                    hex::encode(m.genesis.0),
                    m.generation
                )));
            }
        }
        let mut q = self.quorum()?;
        if q.record.as_ref().map(|r| r.id) == Some(record.id) {
            q.root = Some(root);
            q.marked = true;
        }
        Ok(())
    }

    /// Opens the state under `key` (genesis, unlock or a forwarded root), after checking
    /// `record` against the state's quorum marker (written if the state has none yet).
    fn open_with(
        &self,
        key: DataKey,
        blobs: BlobClient<Stream>,
        origin: Origin,
        record: &GenesisRecord,
    ) -> Result<(), QuorumCallError> {
        let node = super::node::identity(&key).map_err(QuorumCallError::Unavailable)?;
        let mut store = SealedStore::new(blobs, key.clone(), EPOCH, RollbackGuard::new());
        match Marker::read(&mut store) {
            Ok(Some(m)) if !m.admits(record) => {
                return Err(QuorumCallError::Stale(format!(
                    "the quorum record (genesis {}) is older than this state's quorum (genesis \
                     {}, {} re-share(s)): the parent served an old record; the state stays \
                     locked",
                    hex::encode(record.id.0),
                    hex::encode(m.genesis.0),
                    m.generation
                )));
            }
            // Admitted: moved forward if this record is a later re-share than it says.
            Ok(Some(_)) | Ok(None) => Marker::of(record)
                .advance(&mut store)
                .map_err(|e| QuorumCallError::Unavailable(format!("the quorum marker: {e}")))?,
            Err(e) => {
                return Err(QuorumCallError::Unavailable(format!(
                    "reading the quorum marker: {e}"
                )));
            }
        }
        if self.become_ready(store, origin, key) {
            let _ = self.node.set(node);
            log::info(format_args!(
                "sealed state ready: {}",
                match origin {
                    Origin::Quorum => "unlocked by the quorum administrators",
                    Origin::Forwarded => "the quorum root forwarded by an enclave of this image",
                    _ => "a new state, its data key under the quorum root",
                }
            ));
        }
        Ok(())
    }
}
