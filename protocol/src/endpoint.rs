//! The API's endpoint table: each endpoint declared once, with its method, path, body limit,
//! whether its body is encapsulated, whether it needs sealed state, its success status and its
//! request and response types.
//!
//! Each endpoint is a zero-sized type implementing [`Endpoint`], for code that knows which
//! endpoint it calls (the client's `call::<E>`, the enclave's typed handlers). [`ENDPOINTS`]
//! is the same table at run time, for code that routes a request it has not parsed yet (the
//! enclave's router and body limits, the OpenAPI check).
//!
//! The route string (`"POST /v1/ping"`) is the HPKE associated data of an encapsulated body,
//! so a body sealed for one endpoint is refused by every other.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::api::{AttestationResponse, HealthResponse, PingRequest, PingResponse};
use crate::frost::{
    DkgContinue, DkgMessages, DkgStart, GroupRequest, GroupView, MAX_BATCH, MAX_FROST_ITEM,
    MAX_MEMBERS, RefreshCommit, RefreshStart, RepairFinish, RepairStart, SignAggregate, SignCommit,
    SignShare, Signatures, SignerItems,
};
use crate::musig2::{
    AbortRequest, AggregateView, ApproveRequest, CreateAggregateRequest, CreateSessionRequest,
    DeleteAggregateRequest, DeleteKeyRequest, Deleted, GenerateKeyRequest, IdList, IdRequest,
    ImportKeyRequest, KeyView, ListRequest, NoncesView, PartialSignaturesRequest,
    PeerReceiveRequest, PeerSendRequest, RoundView, SessionRef, SessionView, StatusView,
    SubmitNoncesRequest,
};
use crate::peers::{
    MAX_PEER_DOCUMENT, MAX_PEER_PAYLOAD, PeerMessage, PeerPingReceive, PeerPingReceived,
    PeerPingSend, PeerView, VerifyPeerRequest,
};
use crate::prove::{
    CancelAnswer, CancelRequest, JobRef, JobStatus, MAX_CIRCUIT, MAX_PROVE_INPUT, MAX_WITNESS,
    ProveRequest, Submitted,
};
use crate::quorum::{
    ForwardRequest, Forwarded, GenesisRequest, QuorumView, ReceiveRequest, ReshareRequest,
    SealedShare, ShareRequest, StatusRequest, UnlockRequest,
};
use crate::registry::{
    Challenge, ChallengeRequest, ChangeRequest, LogRequest, LogView, Provisioned, RegisterRequest,
};
use crate::vault::{Entry, MAX_VALUE, NameRequest, PutRequest, Written};

/// The methods the API uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    Get,
    Post,
}

impl Method {
    pub const fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
        }
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A path parameter: the path segment written `{name}` in the path template, which must be
/// exactly `hex_digits` lowercase hex digits. Anything else in that segment is no endpoint
/// (404), so a handler never sees an id it has to re-validate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PathParam {
    pub name: &'static str,
    pub hex_digits: usize,
}

impl PathParam {
    fn accepts(&self, segment: &str) -> bool {
        segment.len() == self.hex_digits
            && segment
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    }
}

/// An endpoint at run time (see [`ENDPOINTS`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EndpointInfo {
    /// The endpoint type's name, for messages and tests.
    pub name: &'static str,
    pub method: Method,
    /// The path template, as OpenAPI writes it (`/v1/prove/{id}`).
    pub path: &'static str,
    /// `METHOD path`: the HPKE associated data of encapsulated bodies.
    pub route: &'static str,
    /// The largest request body, checked before any of it is read (0: no body).
    pub max_body: usize,
    /// The body is an HPKE-sealed request and the answer is sealed back.
    pub encapsulated: bool,
    /// The handler uses the sealed store (and answers 503 while it is unavailable).
    pub needs_sealed_state: bool,
    /// The status of a successful answer.
    pub success: u16,
    pub param: Option<PathParam>,
}

impl EndpointInfo {
    /// Whether `path` is this endpoint's; `Some(param)` carries the path parameter's segment,
    /// if the template has one.
    pub fn match_path<'p>(&self, path: &'p str) -> Option<Option<&'p str>> {
        let Some(param) = self.param else {
            return (path == self.path).then_some(None);
        };
        let mut found = None;
        let mut want = self.path.split('/');
        let mut got = path.split('/');
        loop {
            match (want.next(), got.next()) {
                (None, None) => return Some(found),
                (Some(w), Some(g)) if w.starts_with('{') => {
                    if !param.accepts(g) {
                        return None;
                    }
                    found = Some(g);
                }
                (Some(w), Some(g)) if w == g => {}
                _ => return None,
            }
        }
    }
}

/// What the table says about a request line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup<'p> {
    /// The endpoint, and its path parameter's segment if it has one.
    Found(&'static EndpointInfo, Option<&'p str>),
    /// The path exists under other methods (the `Allow` header's value).
    MethodNotAllowed {
        allow: String,
    },
    NotFound,
}

/// Finds the endpoint of `method` (as sent, e.g. `"GET"`) and `path`.
pub fn lookup<'p>(method: &str, path: &'p str) -> Lookup<'p> {
    let mut allow: Vec<&str> = Vec::new();
    for e in ENDPOINTS {
        if let Some(param) = e.match_path(path) {
            if e.method.as_str() == method {
                return Lookup::Found(e, param);
            }
            allow.push(e.method.as_str());
        }
    }
    if allow.is_empty() {
        Lookup::NotFound
    } else {
        Lookup::MethodNotAllowed {
            allow: allow.join(", "),
        }
    }
}

/// One endpoint of the API, known at compile time.
pub trait Endpoint {
    const METHOD: Method;
    /// The path template (`/v1/prove/{id}` for one with a [`PathParam`]).
    const PATH: &'static str;
    /// `METHOD path`: the HPKE associated data of encapsulated bodies.
    const ROUTE: &'static str;
    const MAX_BODY: usize;
    const ENCAPSULATED: bool;
    const NEEDS_SEALED_STATE: bool;
    const SUCCESS: u16;
    const PARAM: Option<PathParam>;
    const INFO: EndpointInfo;
    /// The JSON request: the (encapsulated) body of a POST; for a GET, what its URL carries.
    type Request: Serialize + DeserializeOwned;
    type Response: Serialize + DeserializeOwned;

    /// The path and query a request is sent to.
    fn target(req: &Self::Request) -> String;
}

/// Largest encapsulated ping: the message, JSON and HPKE overhead, with room to spare.
pub const MAX_PING_BODY: usize = 32 * 1024;
/// Largest encapsulated vault request: a base64 value of [`MAX_VALUE`] bytes plus the fields.
pub const MAX_VAULT_BODY: usize = MAX_VALUE / 3 * 4 + 8 * 1024;
/// Largest encapsulated `sessions/create`: `MAX_MESSAGES` messages of `MAX_MESSAGE_LEN` bytes
/// in hex, each with a tweak, plus JSON and HPKE overhead.
pub const MAX_SESSION_CREATE_BODY: usize = 256 * 1024;
/// Largest encapsulated body of every other MuSig2 endpoint (64 participants, 64 nonces or
/// partial signatures fit several times over).
pub const MAX_MUSIG2_BODY: usize = 32 * 1024;
/// Largest encapsulated proving submission: base64 of the largest inputs (a circuit and its
/// witness, or a chonk stack), plus JSON and HPKE overhead.
/// A peer's attestation document, base64 in JSON, encapsulated.
pub const MAX_PEER_BODY: usize = MAX_PEER_DOCUMENT.div_ceil(3) * 4 + 1024;
/// A peer message (its payload base64) and the sender's document, encapsulated.
pub const MAX_PEER_MESSAGE_BODY: usize =
    (MAX_PEER_PAYLOAD + 16).div_ceil(3) * 4 + MAX_PEER_BODY + 1024;
/// `frost/dkg/start`: every member's document, plus the fields.
///
/// `repair/finish` carries up to 15 helpers' documents and their round-2 messages as well.
pub const MAX_FROST_START_BODY: usize =
    MAX_MEMBERS * (MAX_PEER_DOCUMENT.div_ceil(3) * 4 + 4096) + 4096;
/// Every other `frost/...` body: a message from each other member (round-1 packages are the
/// largest, a few KiB for 16 members), or a commitment and share per signer and message.
pub const MAX_FROST_BODY: usize = 256 * 1024;
const _: () = assert!(
    MAX_MEMBERS * MAX_BATCH * 2 * (MAX_FROST_ITEM.div_ceil(3) * 4 + 8) + 64 * 1024
        <= MAX_FROST_BODY
);
/// Every `quorum/...` body: an index, a share and a signature, with JSON and HPKE overhead.
pub const MAX_QUORUM_BODY: usize = 4 * 1024;
/// `quorum/reshare`: up to 16 administrators (two keys and a name each) and 16 approvals.
pub const MAX_QUORUM_RESHARE_BODY: usize = 16 * 1024;
/// `registry/change`: a configuration template or a secret (base64) with 16 approvals.
pub const MAX_REGISTRY_BODY: usize = 64 * 1024;
pub const MAX_PROVE_BODY: usize = MAX_PROVE_INPUT.div_ceil(3) * 4 + 64 * 1024;
const _: () = assert!(MAX_PROVE_BODY <= crate::encap::MAX_ENCAPSULATED_REQUEST);
const _: () = assert!(MAX_CIRCUIT + MAX_WITNESS <= MAX_PROVE_INPUT);
/// Largest encapsulated cancellation: a job id and a token in hex, with JSON and HPKE
/// overhead.
pub const MAX_PROVE_CANCEL_BODY: usize = 1024;

fn fixed_path<R>(path: &'static str) -> impl Fn(&R) -> String {
    move |_| path.to_string()
}

fn attestation_target(q: &crate::api::AttestationQuery) -> String {
    match &q.nonce {
        Some(n) => format!("{}?nonce={n}", Attestation::PATH),
        None => Attestation::PATH.to_string(),
    }
}

fn prove_status_target(r: &JobRef) -> String {
    let path = format!("{}{}", crate::prove::PATH_PROVE_STATUS_PREFIX, r.id);
    match r.wait {
        Some(w) => format!("{path}?wait={w}"),
        None => path,
    }
}

macro_rules! method_str {
    (Get) => {
        "GET"
    };
    (Post) => {
        "POST"
    };
}

macro_rules! endpoints {
    ($(
        $(#[doc = $doc:literal])*
        $name:ident = $method:ident $path:literal, $req:ty => $resp:ty {
            max_body: $max:expr,
            encapsulated: $enc:literal,
            sealed_state: $state:literal,
            success: $success:literal,
            param: $param:expr,
            target: $target:expr $(,)?
        }
    )*) => {
        $(
            $(#[doc = $doc])*
            #[derive(Clone, Copy, Debug, Default)]
            pub struct $name;

            impl Endpoint for $name {
                const METHOD: Method = Method::$method;
                const PATH: &'static str = $path;
                const ROUTE: &'static str = concat!(method_str!($method), " ", $path);
                const MAX_BODY: usize = $max;
                const ENCAPSULATED: bool = $enc;
                const NEEDS_SEALED_STATE: bool = $state;
                const SUCCESS: u16 = $success;
                const PARAM: Option<PathParam> = $param;
                const INFO: EndpointInfo = EndpointInfo {
                    name: stringify!($name),
                    method: Self::METHOD,
                    path: Self::PATH,
                    route: Self::ROUTE,
                    max_body: Self::MAX_BODY,
                    encapsulated: Self::ENCAPSULATED,
                    needs_sealed_state: Self::NEEDS_SEALED_STATE,
                    success: Self::SUCCESS,
                    param: Self::PARAM,
                };
                type Request = $req;
                type Response = $resp;

                fn target(req: &Self::Request) -> String {
                    ($target)(req)
                }
            }
        )*

        /// Every endpoint, in the order of the declarations.
        pub const ENDPOINTS: &[EndpointInfo] = &[$(<$name as Endpoint>::INFO),*];

        /// Calls `v` with every endpoint type, in the order of [`ENDPOINTS`]: for code that
        /// must treat each endpoint's request and response types alike (the fuzz target that
        /// decodes every request type), so a new endpoint cannot be left out of it.
        pub fn for_each_endpoint(v: &mut impl EndpointVisitor) {
            $(v.visit::<$name>();)*
        }
    };
}

/// What [`for_each_endpoint`] calls with each endpoint type.
pub trait EndpointVisitor {
    fn visit<E: Endpoint>(&mut self);
}

endpoints! {
    /// Liveness, mode, version and the state of sealing and proving.
    Health = Get "/v1/health", () => HealthResponse {
        max_body: 0, encapsulated: false, sealed_state: false, success: 200, param: None,
        target: fixed_path(Health::PATH),
    }
    /// A fresh attestation document, with the caller's nonce.
    Attestation = Get "/v1/attestation", crate::api::AttestationQuery => AttestationResponse {
        max_body: 0, encapsulated: false, sealed_state: false, success: 200, param: None,
        target: attestation_target,
    }
    /// Encapsulated echo: proves the channel.
    Ping = Post "/v1/ping", PingRequest => PingResponse {
        max_body: MAX_PING_BODY, encapsulated: true, sealed_state: false, success: 200,
        param: None, target: fixed_path(Ping::PATH),
    }
    /// Create or replace a sealed secret.
    VaultPut = Post "/v1/vault/put", PutRequest => Written {
        max_body: MAX_VAULT_BODY, encapsulated: true, sealed_state: true, success: 200,
        param: None, target: fixed_path(VaultPut::PATH),
    }
    /// Read a sealed secret.
    VaultGet = Post "/v1/vault/get", NameRequest => Entry {
        max_body: MAX_VAULT_BODY, encapsulated: true, sealed_state: true, success: 200,
        param: None, target: fixed_path(VaultGet::PATH),
    }
    /// Delete a sealed secret (a tombstone keeps its version).
    VaultDelete = Post "/v1/vault/delete", NameRequest => Written {
        max_body: MAX_VAULT_BODY, encapsulated: true, sealed_state: true, success: 200,
        param: None, target: fixed_path(VaultDelete::PATH),
    }
    /// A key generated inside the enclave.
    KeyGenerate = Post "/v1/musig2/keys/generate", GenerateKeyRequest => KeyView {
        max_body: MAX_MUSIG2_BODY, encapsulated: true, sealed_state: true, success: 200,
        param: None, target: fixed_path(KeyGenerate::PATH),
    }
    /// A secret key the client already has.
    KeyImport = Post "/v1/musig2/keys/import", ImportKeyRequest => KeyView {
        max_body: MAX_MUSIG2_BODY, encapsulated: true, sealed_state: true, success: 200,
        param: None, target: fixed_path(KeyImport::PATH),
    }
    KeyList = Post "/v1/musig2/keys/list", ListRequest => IdList {
        max_body: MAX_MUSIG2_BODY, encapsulated: true, sealed_state: true, success: 200,
        param: None, target: fixed_path(KeyList::PATH),
    }
    KeyDescribe = Post "/v1/musig2/keys/describe", IdRequest => KeyView {
        max_body: MAX_MUSIG2_BODY, encapsulated: true, sealed_state: true, success: 200,
        param: None, target: fixed_path(KeyDescribe::PATH),
    }
    KeyDelete = Post "/v1/musig2/keys/delete", DeleteKeyRequest => Deleted {
        max_body: MAX_MUSIG2_BODY, encapsulated: true, sealed_state: true, success: 200,
        param: None, target: fixed_path(KeyDelete::PATH),
    }
    AggregateCreate = Post "/v1/musig2/aggregates/create", CreateAggregateRequest => AggregateView {
        max_body: MAX_MUSIG2_BODY, encapsulated: true, sealed_state: true, success: 200,
        param: None, target: fixed_path(AggregateCreate::PATH),
    }
    AggregateList = Post "/v1/musig2/aggregates/list", ListRequest => IdList {
        max_body: MAX_MUSIG2_BODY, encapsulated: true, sealed_state: true, success: 200,
        param: None, target: fixed_path(AggregateList::PATH),
    }
    AggregateDescribe = Post "/v1/musig2/aggregates/describe", IdRequest => AggregateView {
        max_body: MAX_MUSIG2_BODY, encapsulated: true, sealed_state: true, success: 200,
        param: None, target: fixed_path(AggregateDescribe::PATH),
    }
    AggregateDelete = Post "/v1/musig2/aggregates/delete", DeleteAggregateRequest => Deleted {
        max_body: MAX_MUSIG2_BODY, encapsulated: true, sealed_state: true, success: 200,
        param: None, target: fixed_path(AggregateDelete::PATH),
    }
    SessionCreate = Post "/v1/musig2/sessions/create", CreateSessionRequest => SessionView {
        max_body: MAX_SESSION_CREATE_BODY, encapsulated: true, sealed_state: true,
        success: 200, param: None, target: fixed_path(SessionCreate::PATH),
    }
    SessionStatus = Post "/v1/musig2/sessions/status", SessionRef => SessionView {
        max_body: MAX_MUSIG2_BODY, encapsulated: true, sealed_state: false, success: 200,
        param: None, target: fixed_path(SessionStatus::PATH),
    }
    /// An owner's approval of the session digest; the last one makes the engine's nonces.
    SessionApprove = Post "/v1/musig2/sessions/approve", ApproveRequest => StatusView {
        max_body: MAX_MUSIG2_BODY, encapsulated: true, sealed_state: true, success: 200,
        param: None, target: fixed_path(SessionApprove::PATH),
    }
    SessionNonces = Post "/v1/musig2/sessions/nonces", SessionRef => NoncesView {
        max_body: MAX_MUSIG2_BODY, encapsulated: true, sealed_state: false, success: 200,
        param: None, target: fixed_path(SessionNonces::PATH),
    }
    SessionSubmitNonces = Post "/v1/musig2/sessions/nonces/submit", SubmitNoncesRequest => StatusView {
        max_body: MAX_MUSIG2_BODY, encapsulated: true, sealed_state: true, success: 200,
        param: None, target: fixed_path(SessionSubmitNonces::PATH),
    }
    SessionRound = Post "/v1/musig2/sessions/round", SessionRef => RoundView {
        max_body: MAX_MUSIG2_BODY, encapsulated: true, sealed_state: false, success: 200,
        param: None, target: fixed_path(SessionRound::PATH),
    }
    SessionPartialSignatures = Post "/v1/musig2/sessions/partial-signatures", PartialSignaturesRequest => StatusView {
        max_body: MAX_MUSIG2_BODY, encapsulated: true, sealed_state: false, success: 200,
        param: None, target: fixed_path(SessionPartialSignatures::PATH),
    }
    SessionAbort = Post "/v1/musig2/sessions/abort", AbortRequest => StatusView {
        max_body: MAX_MUSIG2_BODY, encapsulated: true, sealed_state: false, success: 200,
        param: None, target: fixed_path(SessionAbort::PATH),
    }
    /// Seal this enclave's nonces or partial signatures for a session to the enclave that
    /// holds another of its keys (a session that spans enclaves).
    SessionPeerSend = Post "/v1/musig2/sessions/peer-send", PeerSendRequest => PeerMessage {
        max_body: MAX_PEER_BODY + 1024, encapsulated: true, sealed_state: true, success: 200,
        param: None, target: fixed_path(SessionPeerSend::PATH),
    }
    /// Open a peer enclave's sealed nonces or partial signatures into this enclave's session.
    SessionPeerReceive = Post "/v1/musig2/sessions/peer-receive", PeerReceiveRequest => StatusView {
        max_body: MAX_PEER_MESSAGE_BODY, encapsulated: true, sealed_state: true, success: 200,
        param: None, target: fixed_path(SessionPeerReceive::PATH),
    }
    /// Queue a proving job (answered 202 with its id).
    ProveSubmit = Post "/v1/prove", ProveRequest => Submitted {
        max_body: MAX_PROVE_BODY, encapsulated: true, sealed_state: false, success: 202,
        param: None, target: fixed_path(ProveSubmit::PATH),
    }
    /// A job's state in the clear; its result sealed under the client's key.
    ProveStatus = Get "/v1/prove/{id}", JobRef => JobStatus {
        max_body: 0, encapsulated: false, sealed_state: false, success: 200,
        param: Some(PathParam { name: "id", hex_digits: 32 }),
        target: prove_status_target,
    }
    /// Verify another enclave's attestation document against this enclave's measured peer
    /// policy: its node identity and per-boot key, or why it is not a peer.
    PeersVerify = Post "/v1/peers/verify", VerifyPeerRequest => PeerView {
        max_body: MAX_PEER_BODY, encapsulated: true, sealed_state: false, success: 200,
        param: None, target: fixed_path(PeersVerify::PATH),
    }
    /// Seal a ping to a peer (a channel check between enclaves): the message, for the
    /// coordinator to carry.
    PeersPingSend = Post "/v1/peers/ping/send", PeerPingSend => PeerMessage {
        max_body: MAX_PEER_BODY + 4096, encapsulated: true, sealed_state: true, success: 200,
        param: None, target: fixed_path(PeersPingSend::PATH),
    }
    /// Open a ping a peer sealed to this enclave.
    PeersPingReceive = Post "/v1/peers/ping/receive", PeerPingReceive => PeerPingReceived {
        max_body: MAX_PEER_MESSAGE_BODY, encapsulated: true, sealed_state: true, success: 200,
        param: None, target: fixed_path(PeersPingReceive::PATH),
    }
    /// FROST key generation, step 1: verify the members, answer round-1 packages sealed to
    /// each other member.
    FrostDkgStart = Post "/v1/frost/dkg/start", DkgStart => DkgMessages {
        max_body: MAX_FROST_START_BODY, encapsulated: true, sealed_state: true, success: 200,
        param: None, target: fixed_path(FrostDkgStart::PATH),
    }
    /// FROST key generation, step 2: open the round-1 packages, answer round-2 packages.
    FrostDkgRound2 = Post "/v1/frost/dkg/round2", DkgContinue => DkgMessages {
        max_body: MAX_FROST_BODY, encapsulated: true, sealed_state: true, success: 200,
        param: None, target: fixed_path(FrostDkgRound2::PATH),
    }
    /// FROST key generation, step 3: check the members agree, seal this member's share.
    FrostDkgFinish = Post "/v1/frost/dkg/finish", DkgContinue => GroupView {
        max_body: MAX_FROST_BODY, encapsulated: true, sealed_state: true, success: 200,
        param: None, target: fixed_path(FrostDkgFinish::PATH),
    }
    /// Share refresh, step 1 (every member): round-1 packages of a zero-secret key
    /// generation sealed to each other member; steps 2 and 3 are `dkg/round2` and
    /// `dkg/finish`.
    FrostRefreshStart = Post "/v1/frost/refresh/start", RefreshStart => DkgMessages {
        max_body: MAX_FROST_START_BODY, encapsulated: true, sealed_state: true, success: 200,
        param: None, target: fixed_path(FrostRefreshStart::PATH),
    }
    /// Share refresh, last step (every member): the owner puts the new shares into use.
    FrostRefreshCommit = Post "/v1/frost/refresh/commit", RefreshCommit => GroupView {
        max_body: MAX_FROST_BODY, encapsulated: true, sealed_state: true, success: 200,
        param: None, target: fixed_path(FrostRefreshCommit::PATH),
    }
    /// Share repair, step 1 (each helper): deltas sealed to each other helper.
    FrostRepairStart = Post "/v1/frost/repair/start", RepairStart => DkgMessages {
        max_body: MAX_FROST_START_BODY, encapsulated: true, sealed_state: true, success: 200,
        param: None, target: fixed_path(FrostRepairStart::PATH),
    }
    /// Share repair, step 2 (each helper): its sigma sealed to the new holder.
    FrostRepairForward = Post "/v1/frost/repair/forward", DkgContinue => DkgMessages {
        max_body: MAX_FROST_BODY, encapsulated: true, sealed_state: true, success: 200,
        param: None, target: fixed_path(FrostRepairForward::PATH),
    }
    /// Share repair, step 3 (the new holder): the share rebuilt, checked and sealed.
    FrostRepairFinish = Post "/v1/frost/repair/finish", RepairFinish => GroupView {
        max_body: MAX_FROST_START_BODY, encapsulated: true, sealed_state: true, success: 200,
        param: None, target: fixed_path(FrostRepairFinish::PATH),
    }
    /// A group this enclave is a member of.
    FrostGroup = Post "/v1/frost/group", GroupRequest => GroupView {
        max_body: MAX_FROST_BODY, encapsulated: true, sealed_state: true, success: 200,
        param: None, target: fixed_path(FrostGroup::PATH),
    }
    /// FROST signing, step 1: check the owner's approval, answer commitments.
    FrostSignCommit = Post "/v1/frost/sign/commit", SignCommit => SignerItems {
        max_body: MAX_FROST_BODY, encapsulated: true, sealed_state: true, success: 200,
        param: None, target: fixed_path(FrostSignCommit::PATH),
    }
    /// FROST signing, step 2: answer signature shares, consuming the session's nonces.
    FrostSignShare = Post "/v1/frost/sign/share", SignShare => SignerItems {
        max_body: MAX_FROST_BODY, encapsulated: true, sealed_state: true, success: 200,
        param: None, target: fixed_path(FrostSignShare::PATH),
    }
    /// FROST signing, step 3: verify the shares (naming a bad one's signer) and answer the
    /// verified signatures.
    FrostSignAggregate = Post "/v1/frost/sign/aggregate", SignAggregate => Signatures {
        max_body: MAX_FROST_BODY, encapsulated: true, sealed_state: true, success: 200,
        param: None, target: fixed_path(FrostSignAggregate::PATH),
    }
    /// The quorum root: its administrators, genesis, commitments and whose shares are held.
    QuorumStatus = Post "/v1/quorum/status", StatusRequest => QuorumView {
        max_body: MAX_QUORUM_BODY, encapsulated: true, sealed_state: false, success: 200,
        param: None, target: fixed_path(QuorumStatus::PATH),
    }
    /// Quorum genesis, approved by one administrator: the root drawn, split and sealed to
    /// each administrator, the data key wrapped under it.
    QuorumGenesis = Post "/v1/quorum/genesis", GenesisRequest => QuorumView {
        max_body: MAX_QUORUM_BODY, encapsulated: true, sealed_state: false, success: 200,
        param: None, target: fixed_path(QuorumGenesis::PATH),
    }
    /// An administrator's share, sealed to its HPKE key, with the commitments to check it.
    QuorumShare = Post "/v1/quorum/share", ShareRequest => SealedShare {
        max_body: MAX_QUORUM_BODY, encapsulated: true, sealed_state: false, success: 200,
        param: None, target: fixed_path(QuorumShare::PATH),
    }
    /// An administrator posts its share, signed: at the threshold the root is rebuilt and a
    /// locked state opens.
    QuorumUnlock = Post "/v1/quorum/unlock", UnlockRequest => QuorumView {
        max_body: MAX_QUORUM_BODY, encapsulated: true, sealed_state: false, success: 200,
        param: None, target: fixed_path(QuorumUnlock::PATH),
    }
    /// A new set of administrators or threshold, approved by k current ones: a new root
    /// split among them, the old shares void.
    QuorumReshare = Post "/v1/quorum/reshare", ReshareRequest => QuorumView {
        max_body: MAX_QUORUM_RESHARE_BODY, encapsulated: true, sealed_state: false, success: 200,
        param: None, target: fixed_path(QuorumReshare::PATH),
    }
    /// Seal this enclave's quorum root to another enclave of the same image (its fresh
    /// document), for the coordinator to carry.
    QuorumForward = Post "/v1/quorum/forward", ForwardRequest => Forwarded {
        max_body: MAX_PEER_BODY, encapsulated: true, sealed_state: false, success: 200,
        param: None, target: fixed_path(QuorumForward::PATH),
    }
    /// Open a quorum root another enclave of this image sealed to this one: the state opens.
    QuorumReceive = Post "/v1/quorum/receive", ReceiveRequest => QuorumView {
        max_body: MAX_PEER_BODY + 1024, encapsulated: true, sealed_state: false, success: 200,
        param: None, target: fixed_path(QuorumReceive::PATH),
    }
    /// A change of the registry (allow-list, configuration, secret), approved by k
    /// administrators: applied and appended to the log, whose new head it answers.
    RegistryChange = Post "/v1/registry/change", ChangeRequest => LogView {
        max_body: MAX_REGISTRY_BODY, encapsulated: true, sealed_state: true, success: 200,
        param: None, target: fixed_path(RegistryChange::PATH),
    }
    /// The registry's hash-chained change log.
    RegistryLog = Post "/v1/registry/log", LogRequest => LogView {
        max_body: MAX_QUORUM_BODY, encapsulated: true, sealed_state: true, success: 200,
        param: None, target: fixed_path(RegistryLog::PATH),
    }
    /// A single-use nonce for an instance's attestation document.
    RegistryChallenge = Post "/v1/registry/challenge", ChallengeRequest => Challenge {
        max_body: MAX_QUORUM_BODY, encapsulated: true, sealed_state: true, success: 200,
        param: None, target: fixed_path(RegistryChallenge::PATH),
    }
    /// An instance registers with its fresh attestation document: its provision (resolved
    /// configuration, secrets, TLS certificate) sealed to its attested key.
    RegistryRegister = Post "/v1/registry/register", RegisterRequest => Provisioned {
        max_body: MAX_PEER_BODY, encapsulated: true, sealed_state: true, success: 200,
        param: None, target: fixed_path(RegistryRegister::PATH),
    }
    /// Cancel a proving job (its client's token derived from the result key): a queued job
    /// leaves the queue, a running one's bb is stopped; it ends as `cancelled`, with no result.
    /// (Last in the table so the fuzz seeds' selectors of the others stay put.)
    ProveCancel = Post "/v1/prove/cancel", CancelRequest => CancelAnswer {
        max_body: MAX_PROVE_CANCEL_BODY, encapsulated: true, sealed_state: false, success: 200,
        param: None, target: fixed_path(ProveCancel::PATH),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_method_and_path() {
        for e in ENDPOINTS {
            assert_eq!(e.route, format!("{} {}", e.method, e.path), "{}", e.name);
            assert_eq!(e.encapsulated, e.max_body > 0, "{}", e.name);
            assert_eq!(e.param.is_some(), e.path.contains('{'), "{}", e.name);
        }
        assert_eq!(Ping::ROUTE, "POST /v1/ping");
    }

    #[test]
    fn for_each_endpoint_visits_the_table_in_order() {
        struct Names(Vec<&'static str>);
        impl EndpointVisitor for Names {
            fn visit<E: Endpoint>(&mut self) {
                self.0.push(E::INFO.name);
            }
        }
        let mut names = Names(Vec::new());
        for_each_endpoint(&mut names);
        let want: Vec<_> = ENDPOINTS.iter().map(|e| e.name).collect();
        assert_eq!(names.0, want);
    }

    #[test]
    fn method_and_path_pick_one_endpoint() {
        for (i, a) in ENDPOINTS.iter().enumerate() {
            for b in &ENDPOINTS[i + 1..] {
                assert!((a.method, a.path) != (b.method, b.path), "{}", a.name);
            }
        }
    }

    #[test]
    fn lookup_routes_params_and_methods() {
        let id = "0123456789abcdef0123456789abcdef";
        let path = format!("/v1/prove/{id}");
        assert_eq!(
            lookup("GET", &path),
            Lookup::Found(&ProveStatus::INFO, Some(id))
        );
        assert_eq!(lookup("POST", "/v1/ping"), Lookup::Found(&Ping::INFO, None));
        assert_eq!(
            lookup("POST", &path),
            Lookup::MethodNotAllowed {
                allow: "GET".into()
            }
        );
        assert_eq!(
            lookup("DELETE", "/v1/attestation"),
            Lookup::MethodNotAllowed {
                allow: "GET".into()
            }
        );
        for bad in [
            "/v1/prove/0123",
            "/v1/prove/0123456789ABCDEF0123456789ABCDEF",
            "/v1/prove/",
            "/v1/prove/0123456789abcdef0123456789abcdef/x",
            "/v1/nope",
            "/v1/ping/",
        ] {
            assert_eq!(lookup("GET", bad), Lookup::NotFound, "{bad}");
        }
    }

    #[test]
    fn targets_carry_url_requests() {
        assert_eq!(
            Ping::target(&PingRequest {
                message: "x".into()
            }),
            "/v1/ping"
        );
        assert_eq!(
            Attestation::target(&crate::api::AttestationQuery {
                nonce: Some(crate::wire::HexBytes(vec![0, 255]))
            }),
            "/v1/attestation?nonce=00ff"
        );
        assert_eq!(
            ProveStatus::target(&JobRef {
                id: crate::wire::Hex([0xab; 16]),
                wait: None,
            }),
            format!("/v1/prove/{}", "ab".repeat(16))
        );
        assert_eq!(
            ProveStatus::target(&JobRef {
                id: crate::wire::Hex([0xab; 16]),
                wait: Some(20),
            }),
            format!("/v1/prove/{}?wait=20", "ab".repeat(16))
        );
    }
}
