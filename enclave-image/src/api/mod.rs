//! The enclave's HTTP API: one module per endpoint group, one router, one pipeline.
//!
//! The endpoints are declared once in `sigil_protocol::endpoint`: the router ([`App`]'s
//! `Handler`), the body limits and the method check (405 with `Allow`) come from that table.
//! Every encapsulated endpoint runs through [`pipeline::sealed`] around a typed handler, every
//! plain one through [`pipeline::plain`]: [`health`], [`attestation`] and [`prove`]'s status
//! are plain; [`ping`], [`vault`], [`musig2`] and [`prove`]'s submission and cancellation
//! are encapsulated.
//! Errors are `sigil_protocol::error::ApiError`s: a code from the registry and its status.
//!
//! Encapsulated bodies are HPKE-sealed to the per-boot key that the attestation document
//! carries, and answers are sealed back under the same context: the parent that relays them
//! sees only ciphertext and cannot forge an answer.

mod attestation;
pub mod frost;
mod health;
pub mod musig2;
pub mod owner;
mod peers;
mod ping;
mod pipeline;
pub mod prove;
mod quorum;
mod registry;
pub mod vault;

pub use ping::MAX_PING_MESSAGE;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use sigil_protocol::encap::ServerKey;
use sigil_protocol::endpoint::{self as ep, Endpoint, EndpointInfo, Lookup};
use sigil_protocol::error::{ApiError, Code};
use sigil_protocol::prove::JobRef;
use sigil_protocol::user_data::ImageInfo;
use sigil_protocol::wire::Id;

use crate::http::{Handler, Request, Response};
use crate::nsm::Nsm;
use crate::seal::service::Sealing;
use musig2::Musig2Api;
use owner::{Admission, OwnerCheck};
use pipeline::error;

pub struct App {
    nsm: Arc<dyn Nsm>,
    key: ServerKey,
    /// The image's description; each attestation adds the node identity when it is known.
    image_info: ImageInfo,
    sealing: Arc<Sealing>,
    /// Who may sign owner requests, and for which boot.
    owners: OwnerCheck,
    /// Which enclaves this one accepts as peers (measured).
    peers: crate::peers::PeerPolicy,
    /// Sequence numbers and recently verified peers of the sealed peer messages.
    channel: crate::peers::channel::Channel,
    /// FROST key generations and signing sessions of this boot.
    frost: Arc<frost::FrostApi>,
    /// One MuSig2 engine per boot: its sessions die with this process.
    musig2: Musig2Api,
    /// The prover's CRS, when the configuration has a `prover` section.
    crs: Option<Arc<crate::prover::crs::CrsService>>,
    /// The proving jobs, when `bb` is available.
    prover: Option<Arc<crate::prover::jobs::Prover>>,
    /// The registry, when the configuration has a `registry` section.
    registry: Option<(
        crate::boot::config::RegistryConfig,
        crate::registry::Registry,
    )>,
}

impl App {
    pub fn new(
        nsm: Arc<dyn Nsm>,
        key: ServerKey,
        image_info: ImageInfo,
        sealing: Arc<Sealing>,
    ) -> App {
        let owners = OwnerCheck::new(key.public_key(), Admission::Any);
        let musig2 = Musig2Api::new(nsm.clone(), sealing.clone(), owners.clone());
        App {
            nsm,
            key,
            image_info,
            sealing,
            owners,
            peers: crate::peers::PeerPolicy::none(),
            channel: Default::default(),
            frost: frost::FrostApi::new(),
            musig2,
            crs: None,
            prover: None,
            registry: None,
        }
    }

    /// Serves the registry (`/v1/registry`).
    pub fn with_registry(
        mut self,
        config: crate::boot::config::RegistryConfig,
    ) -> Result<App, crate::registry::RegistryError> {
        self.registry = Some((config, crate::registry::Registry::new()?));
        Ok(self)
    }

    fn registry_ctx(&self) -> Result<registry::RegistryCtx<'_>, ApiError> {
        let (config, registry) = self.registry.as_ref().ok_or_else(|| {
            ApiError::new(
                Code::RegistryDisabled,
                "this image's measured configuration has no registry section",
            )
        })?;
        Ok(registry::RegistryCtx {
            config,
            registry,
            sealing: &self.sealing,
            key: &self.key,
            boot_key: self.key.public_key(),
        })
    }

    /// The registry's log head for attestation documents, read once the state is open.
    fn registry_head(&self) -> Option<[u8; 32]> {
        let ctx = self.registry_ctx().ok()?;
        if let Some(h) = ctx.registry.head() {
            return Some(h);
        }
        self.sealing.ready().ok()?;
        registry::log(&ctx, Default::default())
            .ok()
            .map(|v| v.head.0)
    }

    /// Serves only the owners `admission` lets in (the default admits any key).
    pub fn with_admission(mut self, admission: Admission) -> App {
        self.owners = OwnerCheck::new(self.key.public_key(), admission);
        self.musig2 = Musig2Api::new(self.nsm.clone(), self.sealing.clone(), self.owners.clone());
        self
    }

    /// Accepts as peers the enclaves `policy` allows (the default accepts none).
    pub fn with_peers(mut self, policy: crate::peers::PeerPolicy) -> App {
        self.peers = policy;
        self
    }

    /// Adds the proving jobs (`/v1/prove`).
    pub fn with_prover(mut self, prover: Arc<crate::prover::jobs::Prover>) -> App {
        self.prover = Some(prover);
        self
    }

    /// Adds the prover's CRS service (its state shows in `/v1/health`).
    pub fn with_crs(mut self, crs: Arc<crate::prover::crs::CrsService>) -> App {
        self.crs = Some(crs);
        self
    }

    fn dispatch(&self, info: &EndpointInfo, param: Option<&str>, req: &Request) -> Response {
        let now = now_secs();
        let musig = &self.musig2;
        let sealing = &self.sealing;
        let owners = &self.owners;
        match info.route {
            ep::Health::ROUTE => pipeline::plain::<ep::Health>(Ok(health::health(self))),
            ep::Attestation::ROUTE => pipeline::plain::<ep::Attestation>(attestation::attestation(
                self,
                req.query.as_deref(),
            )),
            ep::Ping::ROUTE => pipeline::sealed::<ep::Ping>(self, req, ping::ping),
            ep::VaultPut::ROUTE => {
                pipeline::sealed::<ep::VaultPut>(self, req, |r| vault::put(sealing, owners, r))
            }
            ep::VaultGet::ROUTE => {
                pipeline::sealed::<ep::VaultGet>(self, req, |r| vault::get(sealing, owners, r))
            }
            ep::VaultDelete::ROUTE => pipeline::sealed::<ep::VaultDelete>(self, req, |r| {
                vault::delete(sealing, owners, r)
            }),
            ep::KeyGenerate::ROUTE => {
                pipeline::sealed::<ep::KeyGenerate>(self, req, |r| musig.generate_key(r, now))
            }
            ep::KeyImport::ROUTE => {
                pipeline::sealed::<ep::KeyImport>(self, req, |r| musig.import_key(r, now))
            }
            ep::KeyList::ROUTE => {
                pipeline::sealed::<ep::KeyList>(self, req, |r| musig.list_keys(r, now))
            }
            ep::KeyDescribe::ROUTE => {
                pipeline::sealed::<ep::KeyDescribe>(self, req, |r| musig.describe_key(r, now))
            }
            ep::KeyDelete::ROUTE => {
                pipeline::sealed::<ep::KeyDelete>(self, req, |r| musig.delete_key(r, now))
            }
            ep::AggregateCreate::ROUTE => pipeline::sealed::<ep::AggregateCreate>(self, req, |r| {
                musig.create_aggregate(r, now)
            }),
            ep::AggregateList::ROUTE => {
                pipeline::sealed::<ep::AggregateList>(self, req, |r| musig.list_aggregates(r, now))
            }
            ep::AggregateDescribe::ROUTE => {
                pipeline::sealed::<ep::AggregateDescribe>(self, req, |r| {
                    musig.describe_aggregate(r, now)
                })
            }
            ep::AggregateDelete::ROUTE => pipeline::sealed::<ep::AggregateDelete>(self, req, |r| {
                musig.delete_aggregate(r, now)
            }),
            ep::SessionCreate::ROUTE => {
                pipeline::sealed::<ep::SessionCreate>(self, req, |r| musig.create_session(r, now))
            }
            ep::SessionStatus::ROUTE => {
                pipeline::sealed::<ep::SessionStatus>(self, req, |r| musig.session_status(r, now))
            }
            ep::SessionApprove::ROUTE => {
                pipeline::sealed::<ep::SessionApprove>(self, req, |r| musig.approve(r, now))
            }
            ep::SessionNonces::ROUTE => {
                pipeline::sealed::<ep::SessionNonces>(self, req, |r| musig.nonces(r, now))
            }
            ep::SessionSubmitNonces::ROUTE => {
                pipeline::sealed::<ep::SessionSubmitNonces>(self, req, |r| {
                    musig.submit_nonces(r, now)
                })
            }
            ep::SessionRound::ROUTE => {
                pipeline::sealed::<ep::SessionRound>(self, req, |r| musig.round(r, now))
            }
            ep::SessionPartialSignatures::ROUTE => {
                pipeline::sealed::<ep::SessionPartialSignatures>(self, req, |r| {
                    musig.submit_partial_signatures(r, now)
                })
            }
            ep::SessionAbort::ROUTE => {
                pipeline::sealed::<ep::SessionAbort>(self, req, |r| musig.abort(r, now))
            }
            ep::SessionPeerSend::ROUTE => pipeline::sealed::<ep::SessionPeerSend>(self, req, |r| {
                musig.peer_send(&self.peer_ctx(), r, now)
            }),
            ep::SessionPeerReceive::ROUTE => {
                pipeline::sealed::<ep::SessionPeerReceive>(self, req, |r| {
                    musig.peer_receive(&self.peer_ctx(), r, now)
                })
            }
            ep::ProveSubmit::ROUTE => pipeline::sealed::<ep::ProveSubmit>(self, req, |r| {
                prove::submit(self.prover.as_deref(), req.source, r)
            }),
            ep::ProveStatus::ROUTE => {
                // The router let through only 32 lowercase hex digits, which always parse.
                let answer = param
                    .map(Id::parse)
                    .and_then(Result::ok)
                    .ok_or_else(|| ApiError::new(Code::NotFound, "no such endpoint"))
                    .and_then(|id| {
                        let wait = prove::status_query(req.query.as_deref())?;
                        prove::status(self.prover.as_deref(), req.source, JobRef { id, wait })
                    });
                pipeline::plain::<ep::ProveStatus>(answer)
            }
            ep::ProveCancel::ROUTE => pipeline::sealed::<ep::ProveCancel>(self, req, |r| {
                prove::cancel(self.prover.as_deref(), r)
            }),
            ep::PeersVerify::ROUTE => pipeline::sealed::<ep::PeersVerify>(self, req, |r| {
                peers::verify(&self.peers, r, now)
            }),
            ep::PeersPingSend::ROUTE => pipeline::sealed::<ep::PeersPingSend>(self, req, |r| {
                peers::ping_send(
                    (&self.peers, &self.channel),
                    (self.sealing.node_id(), &self.key),
                    r,
                    now,
                )
            }),
            ep::PeersPingReceive::ROUTE => {
                pipeline::sealed::<ep::PeersPingReceive>(self, req, |r| {
                    peers::ping_receive(
                        (&self.peers, &self.channel),
                        (self.sealing.node_id(), &self.key),
                        r,
                        now,
                    )
                })
            }
            ep::FrostDkgStart::ROUTE => pipeline::sealed::<ep::FrostDkgStart>(self, req, |r| {
                self.frost.dkg_start(&self.peer_ctx(), r, now)
            }),
            ep::FrostDkgRound2::ROUTE => pipeline::sealed::<ep::FrostDkgRound2>(self, req, |r| {
                self.frost.dkg_round2(&self.peer_ctx(), r, now)
            }),
            ep::FrostDkgFinish::ROUTE => pipeline::sealed::<ep::FrostDkgFinish>(self, req, |r| {
                self.frost.dkg_finish(&self.peer_ctx(), r, now)
            }),
            ep::FrostRefreshStart::ROUTE => {
                pipeline::sealed::<ep::FrostRefreshStart>(self, req, |r| {
                    self.frost.refresh_start(&self.peer_ctx(), r, now)
                })
            }
            ep::FrostRefreshCommit::ROUTE => {
                pipeline::sealed::<ep::FrostRefreshCommit>(self, req, |r| {
                    self.frost.refresh_commit(&self.peer_ctx(), r, now)
                })
            }
            ep::FrostRepairStart::ROUTE => {
                pipeline::sealed::<ep::FrostRepairStart>(self, req, |r| {
                    self.frost.repair_start(&self.peer_ctx(), r, now)
                })
            }
            ep::FrostRepairForward::ROUTE => {
                pipeline::sealed::<ep::FrostRepairForward>(self, req, |r| {
                    self.frost.repair_forward(&self.peer_ctx(), r, now)
                })
            }
            ep::FrostRepairFinish::ROUTE => {
                pipeline::sealed::<ep::FrostRepairFinish>(self, req, |r| {
                    self.frost.repair_finish(&self.peer_ctx(), r, now)
                })
            }
            ep::FrostGroup::ROUTE => pipeline::sealed::<ep::FrostGroup>(self, req, |r| {
                self.frost.group(&self.peer_ctx(), r)
            }),
            ep::FrostSignCommit::ROUTE => pipeline::sealed::<ep::FrostSignCommit>(self, req, |r| {
                self.frost.sign_commit(&self.peer_ctx(), r, now)
            }),
            ep::FrostSignShare::ROUTE => {
                pipeline::sealed::<ep::FrostSignShare>(self, req, |r| self.frost.sign_share(r, now))
            }
            ep::FrostSignAggregate::ROUTE => {
                pipeline::sealed::<ep::FrostSignAggregate>(self, req, |r| {
                    self.frost.sign_aggregate(&self.peer_ctx(), r)
                })
            }
            ep::QuorumStatus::ROUTE => {
                pipeline::sealed::<ep::QuorumStatus>(self, req, |r| quorum::status(sealing, r))
            }
            ep::QuorumGenesis::ROUTE => pipeline::sealed::<ep::QuorumGenesis>(self, req, |r| {
                quorum::genesis(sealing, &self.key.public_key(), r)
            }),
            ep::QuorumShare::ROUTE => {
                pipeline::sealed::<ep::QuorumShare>(self, req, |r| quorum::share(sealing, r))
            }
            ep::QuorumUnlock::ROUTE => pipeline::sealed::<ep::QuorumUnlock>(self, req, |r| {
                quorum::unlock(sealing, &self.key.public_key(), r)
            }),
            ep::QuorumReshare::ROUTE => pipeline::sealed::<ep::QuorumReshare>(self, req, |r| {
                quorum::reshare(sealing, &self.key.public_key(), r)
            }),
            ep::QuorumForward::ROUTE => pipeline::sealed::<ep::QuorumForward>(self, req, |r| {
                quorum::forward(sealing, &self.peers, &self.key, r, now)
            }),
            ep::QuorumReceive::ROUTE => pipeline::sealed::<ep::QuorumReceive>(self, req, |r| {
                quorum::receive(sealing, &self.peers, &self.key, r, now)
            }),
            ep::RegistryChange::ROUTE => pipeline::sealed::<ep::RegistryChange>(self, req, |r| {
                registry::change(&self.registry_ctx()?, r)
            }),
            ep::RegistryLog::ROUTE => pipeline::sealed::<ep::RegistryLog>(self, req, |r| {
                registry::log(&self.registry_ctx()?, r)
            }),
            ep::RegistryChallenge::ROUTE => {
                pipeline::sealed::<ep::RegistryChallenge>(self, req, |r| {
                    registry::challenge(&self.registry_ctx()?, r, now)
                })
            }
            ep::RegistryRegister::ROUTE => {
                pipeline::sealed::<ep::RegistryRegister>(self, req, |r| {
                    registry::register(&self.registry_ctx()?, r, now)
                })
            }
            // Declared in the table but not served: a bug, which the tests catch.
            route => error(ApiError::new(
                Code::InternalError,
                format!("{route} is declared but not served"),
            )),
        }
    }
}

impl App {
    fn peer_ctx(&self) -> peers::PeerCtx<'_> {
        peers::PeerCtx {
            node: self.sealing.node_id(),
            key: &self.key,
            policy: &self.peers,
            channel: &self.channel,
            sealing: &self.sealing,
            owners: &self.owners,
        }
    }
}

impl Handler for App {
    /// From the endpoint table; a path that is no endpoint takes no body.
    fn body_limit(&self, method: &http::Method, path: &str) -> Option<usize> {
        Some(match ep::lookup(method.as_str(), path) {
            Lookup::Found(e, _) => e.max_body,
            _ => 0,
        })
    }

    /// From the endpoint table: what a CORS preflight for `path` may ask for.
    fn methods(&self, path: &str) -> Option<String> {
        match ep::lookup("OPTIONS", path) {
            Lookup::MethodNotAllowed { allow } => Some(allow),
            Lookup::Found(e, _) => Some(e.method.as_str().to_string()),
            Lookup::NotFound => None,
        }
    }

    fn handle(&self, req: Request) -> Response {
        match ep::lookup(req.method.as_str(), &req.path) {
            Lookup::Found(info, param) => self.dispatch(info, param, &req),
            Lookup::MethodNotAllowed { allow } => {
                let mut r = error(ApiError::new(
                    Code::MethodNotAllowed,
                    format!("{} takes {allow}, not {}", req.path, req.method),
                ));
                r.allow = Some(allow);
                r
            }
            Lookup::NotFound => error(ApiError::new(
                Code::NotFound,
                format!("no such endpoint: {}", req.path),
            )),
        }
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
