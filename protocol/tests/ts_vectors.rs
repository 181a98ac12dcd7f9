//! One behaviour in two languages: vectors shared with the TypeScript SDK (`sdk/ts`).
//!
//! * `sdk/ts/test/vectors/rust-made.json` is made here, from fixed inputs, with this crate's
//!   own code: encapsulated requests and their sealed answers (a success and an error for each
//!   route), owner digests and BIP-340 signatures, a sealed proving result, `user_data`
//!   encodings. The TypeScript tests open every one as the enclave and as the client would and
//!   produce every deterministic byte string again. This test makes the file again in memory
//!   and refuses a committed file that differs, so it cannot fall behind the code; with
//!   `SIGIL_WRITE_TS_VECTORS=1` it writes the file instead.
//! * `sdk/ts/test/vectors/ts-made.json` is made by the SDK (`npm run vectors:ts`); this test
//!   opens every request with the enclave's path (`ServerKey::open_request`, then the
//!   endpoint's JSON type), every answer with the client's (`ResponseOpener::open`), checks
//!   every owner signature with the check the enclave makes (k256's BIP-340 over
//!   `wire::owner_message`), recomputes every digest, and produces the deterministic bytes
//!   again.
//!
//! Determinism comes from inputs that production never fixes: the ephemeral HPKE key
//! (`seal_request_with_ephemeral_seed`) and the response nonce (`seal_with_response_nonce`),
//! both only in the `test-vectors` feature, and the BIP-340 auxiliary randomness.

use std::path::PathBuf;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sigil_protocol::api::{ErrorBody, PingRequest, PingResponse};
use sigil_protocol::encap::{self, ServerKey};
use sigil_protocol::endpoint::{self, Endpoint};
use sigil_protocol::error::{ApiError, Code};
use sigil_protocol::musig2::{
    self, ApproveRequest, CreateAggregateRequest, CreateSessionRequest, GenerateKeyRequest,
    MessageView, TweakSpec,
};
use sigil_protocol::prove::{self, ProveRequest};
use sigil_protocol::user_data::{BbInfo, ImageInfo, ServedBb};
use sigil_protocol::vault::{self, NameRequest, PutRequest};
use sigil_protocol::wire;
use sigil_signing::{DigestInput, MessageSpec, SessionId, Tweak};

const WRITE_ENV: &str = "SIGIL_WRITE_TS_VECTORS";
/// Every `not_after` in the vectors: fixed, so digests and signatures are too.
const NOT_AFTER: u64 = 1_900_000_000;

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../sdk/ts/test/vectors")
}

/// A fixed 32-byte input: SHA-256 of a label, so every input is named in this file.
fn fixed(label: &str) -> [u8; 32] {
    Sha256::digest(format!("sigil cross-language vectors: {label}")).into()
}

fn h(b: &[u8]) -> String {
    hex::encode(b)
}

fn unh(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().expect("a hex string")).expect("hex")
}

fn unh32(v: &Value) -> [u8; 32] {
    unh(v).try_into().expect("32 bytes")
}

fn b64(b: &[u8]) -> String {
    B64.encode(b)
}

fn text(v: &Value) -> &str {
    v.as_str().expect("a string")
}

/// What `value` is as the wire type `T` (checked on the way), written back by `T`: the JSON
/// the Rust side itself sends.
fn canonical<T: Serialize + DeserializeOwned>(value: Value) -> String {
    let t: T = serde_json::from_value(value).expect("the wire type accepts the vector's JSON");
    serde_json::to_string(&t).unwrap()
}

// ----- owner keys and BIP-340 -----

struct Owner {
    secret: [u8; 32],
    key: k256::schnorr::SigningKey,
}

impl Owner {
    fn new(secret: [u8; 32]) -> Owner {
        let key = k256::schnorr::SigningKey::from_bytes(&secret).expect("a valid secret");
        Owner { secret, key }
    }

    fn x_only(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes().into()
    }

    fn compressed(&self) -> [u8; 33] {
        use k256::elliptic_curve::sec1::ToEncodedPoint;
        let pk = k256::SecretKey::from_slice(&self.secret)
            .unwrap()
            .public_key();
        pk.to_encoded_point(true).as_bytes().try_into().unwrap()
    }

    fn sign(&self, message: &[u8; 32], aux: &[u8; 32]) -> [u8; 64] {
        self.key.sign_raw(message, aux).unwrap().to_bytes()
    }
}

/// The enclave's check of an owner signature (enclave-image's `api/owner.rs`): BIP-340 with
/// k256 over the digest bound to the enclave's per-boot key.
fn owner_signature_verifies(
    owner: &[u8; 32],
    enclave_key: &[u8; 32],
    digest: &[u8; 32],
    sig: &[u8; 64],
) -> bool {
    let Ok(key) = k256::schnorr::VerifyingKey::from_bytes(owner) else {
        return false;
    };
    let Ok(sig) = k256::schnorr::Signature::try_from(&sig[..]) else {
        return false;
    };
    key.verify_raw(&wire::owner_message(enclave_key, digest), &sig)
        .is_ok()
}

// ----- digests, from wire JSON, as the enclave computes them -----

fn tweaks_of(v: &Value) -> Vec<Tweak> {
    serde_json::from_value::<Vec<TweakSpec>>(v.clone())
        .unwrap()
        .iter()
        .map(|t| t.to_tweak().unwrap())
        .collect()
}

fn messages_of(v: &Value) -> Vec<MessageSpec> {
    serde_json::from_value::<Vec<MessageView>>(v.clone())
        .unwrap()
        .iter()
        .map(|m| MessageSpec::try_from(m).unwrap())
        .collect()
}

fn session_digest_of(v: &Value) -> [u8; 32] {
    let id = SessionId(unh32(&v["id"]));
    let internal_key: [u8; 33] = unh(&v["internal_key"]).try_into().unwrap();
    let adaptor: Option<[u8; 33]> = v.get("adaptor_point").map(|p| unh(p).try_into().unwrap());
    sigil_signing::session_digest(&DigestInput {
        session_id: &id,
        internal_key: &internal_key,
        tweaks: &tweaks_of(&v["tweaks"]),
        messages: &messages_of(&v["messages"]),
        adaptor_point: adaptor.as_ref(),
        expires_at: v["expires_at"].as_u64().unwrap(),
    })
}

fn vault_op(op: &str) -> vault::Op {
    match op {
        "put" => vault::Op::Put,
        "get" => vault::Op::Get,
        "delete" => vault::Op::Delete,
        _ => panic!("vault op {op}"),
    }
}

fn musig2_op(op: &str) -> musig2::Op {
    use musig2::Op::*;
    [
        GenerateKey,
        ImportKey,
        DeleteKey,
        DeleteAggregate,
        AbortSession,
        CreateAggregate,
        CreateSession,
        ListKeys,
        ListAggregates,
        DescribeKey,
        DescribeAggregate,
    ]
    .into_iter()
    .find(|o| o.as_str() == op)
    .unwrap_or_else(|| panic!("musig2 op {op}"))
}

/// A digest entry's value, recomputed from its inputs (the entry's `kind` says which).
fn recompute_digest(d: &Value) -> Vec<u8> {
    let opt = |k: &str| d.get(k).filter(|v| !v.is_null());
    match text(&d["kind"]) {
        "vault" => {
            let value = opt("value").map(|v| B64.decode(text(v)).unwrap());
            let owner = opt("owner").map(unh32);
            vault::digest(
                vault_op(text(&d["op"])),
                text(&d["name"]),
                d["expected_version"].as_u64().unwrap(),
                value.as_deref(),
                owner.as_ref(),
                d["not_after"].as_u64().unwrap(),
            )
            .to_vec()
        }
        "musig2_request" => {
            let fields: Vec<Vec<u8>> = d["fields"].as_array().unwrap().iter().map(unh).collect();
            let fields: Vec<&[u8]> = fields.iter().map(Vec::as_slice).collect();
            musig2::request_digest(
                musig2_op(text(&d["op"])),
                &fields,
                d["not_after"].as_u64().unwrap(),
            )
            .to_vec()
        }
        "aggregate_signed_spec" => {
            let mut req = d["request"].clone();
            fill_signed_fields(&mut req);
            serde_json::from_value::<CreateAggregateRequest>(req)
                .unwrap()
                .signed_spec()
        }
        "session_signed_spec" => {
            let mut req = d["request"].clone();
            fill_signed_fields(&mut req);
            serde_json::from_value::<CreateSessionRequest>(req)
                .unwrap()
                .signed_spec()
        }
        "session_digest" => session_digest_of(&d["session"]).to_vec(),
        "key_id_for_request" => {
            let request_id: [u8; 16] = unh(&d["request_id"]).try_into().unwrap();
            let id = sigil_signing::key_id_for_request(&unh32(&d["owner"]), &request_id);
            id.0.to_vec()
        }
        "owner_message" => {
            wire::owner_message(&unh32(&d["enclave_key"]), &unh32(&d["digest"])).to_vec()
        }
        "inputs_sha256" => prove::inputs_sha256(
            &B64.decode(text(&d["circuit"])).unwrap(),
            &B64.decode(text(&d["witness"])).unwrap(),
        )
        .0
        .to_vec(),
        "chonk_inputs_sha256" => {
            prove::chonk_inputs_sha256(&B64.decode(text(&d["ivc_inputs"])).unwrap())
                .0
                .to_vec()
        }
        other => panic!("unknown digest kind {other}"),
    }
}

/// The owner, expiry and signature a signed spec's request also carries (not covered by the
/// spec itself), so the request decodes.
fn fill_signed_fields(req: &mut Value) {
    req["owner"] = json!("00".repeat(32));
    req["not_after"] = json!(0);
    req["signature"] = json!("00".repeat(64));
}

fn expected(d: &Value) -> Vec<u8> {
    for k in ["digest", "signed_spec", "key_id", "message"] {
        if let Some(v) = d.get(k) {
            return unh(v);
        }
    }
    panic!("digest entry without a value: {d}")
}

// ----- making the Rust vectors -----

struct Maker {
    server_seed: [u8; 32],
    server: ServerKey,
    encap: Vec<Value>,
    signatures: Vec<Value>,
    digests: Vec<Value>,
}

impl Maker {
    fn new() -> Maker {
        let server_seed = fixed("rust server key");
        Maker {
            server: ServerKey::from_seed(&server_seed).unwrap(),
            server_seed,
            encap: Vec::new(),
            signatures: Vec::new(),
            digests: Vec::new(),
        }
    }

    fn enclave_key(&self) -> [u8; 32] {
        self.server.public_key()
    }

    /// A digest entry (checked against its recomputation before it is kept).
    fn digest(&mut self, entry: Value) -> Vec<u8> {
        let value = recompute_digest(&entry);
        let mut entry = entry;
        let key = match text(&entry["kind"]) {
            "aggregate_signed_spec" | "session_signed_spec" => "signed_spec",
            "key_id_for_request" => "key_id",
            "owner_message" => "message",
            _ => "digest",
        };
        entry[key] = json!(h(&value));
        self.digests.push(entry);
        value
    }

    /// An owner's signature over `digest`, bound to the enclave key unless `bound` is false
    /// (a MuSig2 approval signs the session digest itself).
    fn sign(&mut self, name: &str, owner: &Owner, digest: &[u8; 32], bound: bool) -> [u8; 64] {
        let aux = fixed(&format!("rust aux {name}"));
        let message = if bound {
            wire::owner_message(&self.enclave_key(), digest)
        } else {
            *digest
        };
        let sig = owner.sign(&message, &aux);
        assert!(sigil_signing::verify_bip340(
            &owner.x_only(),
            &message,
            &sig
        ));
        if bound {
            assert!(owner_signature_verifies(
                &owner.x_only(),
                &self.enclave_key(),
                digest,
                &sig
            ));
        }
        self.signatures.push(json!({
            "name": name,
            "secret_key": h(&owner.secret),
            "x_only": h(&owner.x_only()),
            "digest": h(digest),
            "enclave_key": if bound { json!(h(&self.enclave_key())) } else { Value::Null },
            "message": h(&message),
            "aux": h(&aux),
            "signature": h(&sig),
        }));
        sig
    }

    /// Marks the last route's request as signed by `owner` over `digest` (bound to the
    /// enclave key, or not: a MuSig2 approval), for the checkers to verify.
    fn signed(&mut self, owner: &Owner, digest: &[u8; 32], bound: bool) {
        let last = self.encap.last_mut().unwrap();
        last["signed"] = json!({
            "owner": h(&owner.x_only()), "digest": h(digest), "enclave_bound": bound,
        });
    }

    /// One route: the request sealed with a fixed ephemeral key, opened here as the enclave
    /// opens it, and each answer sealed with a fixed nonce and opened as the client opens it.
    fn encap<E: Endpoint>(&mut self, name: &str, request: &str, answers: &[(u16, String)]) {
        let route = E::ROUTE;
        let seed = fixed(&format!("rust ephemeral {name}"));
        let mut out_answers = Vec::new();
        let mut body = None;
        for (i, (status, plain)) in answers.iter().enumerate() {
            let (b, opener) = encap::seal_request_with_ephemeral_seed(
                &self.enclave_key(),
                route,
                request.as_bytes(),
                &seed,
            )
            .unwrap();
            // The same seed gives the same request every time.
            assert!(body.as_ref().is_none_or(|prev| *prev == b));
            let (opened, sealer) = self.server.open_request(route, &b, E::MAX_BODY).unwrap();
            assert_eq!(opened, request.as_bytes());
            serde_json::from_slice::<E::Request>(&opened).expect("the endpoint's request");
            let nonce = fixed(&format!("rust response nonce {name} {i}"));
            let response = sealer
                .seal_with_response_nonce(route, *status, plain.as_bytes(), &nonce)
                .unwrap();
            assert_eq!(
                opener.open(route, &response).unwrap(),
                (*status, plain.as_bytes().to_vec())
            );
            out_answers.push(json!({
                "status": status,
                "response_nonce": h(&nonce),
                "plaintext": plain,
                "response": h(&response),
            }));
            body = Some(b);
        }
        self.encap.push(json!({
            "name": name,
            "route": route,
            "max_body": E::MAX_BODY,
            "ephemeral_seed": h(&seed),
            "request_plaintext": request,
            "request": h(&body.unwrap()),
            "answers": out_answers,
        }));
    }
}

/// A sealed error answer as the enclave makes it (`api/pipeline.rs`): the registry's status
/// for the code, `ErrorBody` JSON.
fn error_answer(code: Code, message: &str) -> (u16, String) {
    let e = ApiError::new(code, message);
    (
        e.status,
        serde_json::to_string(&ErrorBody::from(e)).unwrap(),
    )
}

fn success<E: Endpoint>(response: Value) -> (u16, String) {
    (E::SUCCESS, canonical::<E::Response>(response))
}

fn user_data_entry(name: &str, info: &ImageInfo) -> Value {
    info.validate().unwrap();
    let cbor = info.to_cbor();
    assert_eq!(&ImageInfo::from_cbor(&cbor).unwrap(), info);
    json!({"name": name, "json": info.to_json(), "cbor": h(&cbor)})
}

fn rust_made() -> Value {
    let mut m = Maker::new();
    let owner = Owner::new(fixed("rust owner 1"));
    let owner2 = Owner::new(fixed("rust owner 2"));
    let external = Owner::new(fixed("rust external signer"));
    let xo = owner.x_only();

    // ping, with a message that is not ASCII (UTF-8 both ways).
    let ping = canonical::<PingRequest>(json!({"message": "ping from Rust: héllo ✓"}));
    m.encap::<endpoint::Ping>(
        "ping",
        &ping,
        &[
            success::<endpoint::Ping>(
                json!({"message": "ping from Rust: héllo ✓", "enclave_time_ms": 1_700_000_000_123u64}),
            ),
            error_answer(
                Code::MalformedJson,
                "encapsulated body is not a POST /v1/ping request",
            ),
        ],
    );
    let _: PingResponse = serde_json::from_str(r#"{"message":"","enclave_time_ms":0}"#).unwrap();

    // vault put / get / delete, each signed by the owner.
    let name = "wallet-1.seed";
    let value = b"\x00\x01 a vault value \xff".to_vec();
    let put_digest: [u8; 32] = m
        .digest(
            json!({"kind": "vault", "op": "put", "name": name, "expected_version": 0,
                       "value": b64(&value), "owner": h(&xo), "not_after": NOT_AFTER}),
        )
        .try_into()
        .unwrap();
    let sig = m.sign("vault_put", &owner, &put_digest, true);
    let put = canonical::<PutRequest>(json!({
        "name": name, "value": b64(&value), "owner": h(&xo), "expected_version": 0,
        "not_after": NOT_AFTER, "signature": h(&sig),
    }));
    m.encap::<endpoint::VaultPut>(
        "vault_put",
        &put,
        &[
            success::<endpoint::VaultPut>(json!({"name": name, "version": 1})),
            error_answer(Code::BadSignature, "the owner's signature does not verify"),
        ],
    );
    m.signed(&owner, &put_digest, true);

    let get_digest: [u8; 32] = m
        .digest(
            json!({"kind": "vault", "op": "get", "name": name, "expected_version": 0,
                       "value": null, "owner": null, "not_after": NOT_AFTER}),
        )
        .try_into()
        .unwrap();
    let sig = m.sign("vault_get", &owner, &get_digest, true);
    let get = canonical::<NameRequest>(json!({
        "name": name, "expected_version": 0, "not_after": NOT_AFTER, "signature": h(&sig),
    }));
    m.encap::<endpoint::VaultGet>(
        "vault_get",
        &get,
        &[
            success::<endpoint::VaultGet>(
                json!({"name": name, "value": b64(&value), "owner": h(&xo), "version": 1}),
            ),
            error_answer(Code::NotFound, "no vault entry wallet-1.seed"),
        ],
    );
    m.signed(&owner, &get_digest, true);

    let delete_digest: [u8; 32] = m
        .digest(
            json!({"kind": "vault", "op": "delete", "name": name, "expected_version": 1,
                       "value": null, "owner": null, "not_after": NOT_AFTER}),
        )
        .try_into()
        .unwrap();
    let sig = m.sign("vault_delete", &owner, &delete_digest, true);
    let delete = canonical::<NameRequest>(json!({
        "name": name, "expected_version": 1, "not_after": NOT_AFTER, "signature": h(&sig),
    }));
    m.encap::<endpoint::VaultDelete>(
        "vault_delete",
        &delete,
        &[
            success::<endpoint::VaultDelete>(json!({"name": name, "version": 2})),
            error_answer(
                Code::VersionConflict,
                "expected_version 1 is not the current version 3",
            ),
        ],
    );
    m.signed(&owner, &delete_digest, true);

    // MuSig2: a key generated for the owner (request digest, key id), an aggregate and a
    // session (signed specs), and the owner's approval of the session.
    let request_id = fixed("rust request id")[..16].to_vec();
    let keygen_digest: [u8; 32] = m
        .digest(json!({"kind": "musig2_request", "op": "key/generate",
                       "fields": [h(&xo), h(&request_id)], "not_after": NOT_AFTER}))
        .try_into()
        .unwrap();
    let key_id = m.digest(
        json!({"kind": "key_id_for_request", "owner": h(&xo), "request_id": h(&request_id)}),
    );
    let sig = m.sign("musig2_key_generate", &owner, &keygen_digest, true);
    let keygen = canonical::<GenerateKeyRequest>(json!({
        "owner": h(&xo), "request_id": h(&request_id), "not_after": NOT_AFTER,
        "signature": h(&sig),
    }));
    m.encap::<endpoint::KeyGenerate>(
        "musig2_key_generate",
        &keygen,
        &[
            success::<endpoint::KeyGenerate>(json!({
                "id": h(&key_id), "public_key": h(&owner2.compressed()), "owner": h(&xo),
                "created": 1_700_000_000u64,
            })),
            error_answer(
                Code::OwnerNotAdmitted,
                "the owner key is not on this image's measured owner allow-list",
            ),
        ],
    );
    m.signed(&owner, &keygen_digest, true);

    let aggregate = json!({
        "participants": [{"key_id": h(&key_id)}, {"public_key": h(&external.compressed())}],
        "order": "sorted",
        "tweaks": [
            {"kind": "xonly", "value": h(&fixed("rust xonly tweak"))},
            {"kind": "taproot_unspendable"},
        ],
    });
    let aggregate_spec = m.digest(json!({"kind": "aggregate_signed_spec", "request": aggregate}));
    m.digest(json!({"kind": "musig2_request", "op": "aggregate/create",
                    "fields": [h(&xo), h(&aggregate_spec)], "not_after": NOT_AFTER}));

    let aggregate_id = h(&fixed("rust aggregate id")[..16]);
    let messages = json!([
        {"message": h(&fixed("rust sighash 0"))},
        {"message": "00ff", "tweak": {"kind": "taproot", "value": h(&fixed("rust merkle root"))}},
        {"message": ""},
    ]);
    let adaptor = h(&owner2.compressed());
    let session_spec = m.digest(json!({"kind": "session_signed_spec", "request": {
        "aggregate": aggregate_id, "messages": messages, "adaptor_point": adaptor,
        "expires_at": 1_900_000_600u64,
    }}));
    m.digest(json!({"kind": "musig2_request", "op": "session/create",
                    "fields": [h(&xo), h(&session_spec)], "not_after": NOT_AFTER}));

    let session_id = fixed("rust session id");
    let session = json!({
        "id": h(&session_id),
        "internal_key": h(&external.compressed()),
        "tweaks": [
            {"kind": "plain", "value": h(&fixed("rust plain tweak"))},
            {"kind": "taproot_unspendable"},
        ],
        "messages": messages,
        "adaptor_point": adaptor,
        "expires_at": 1_900_000_600u64,
    });
    let approval: [u8; 32] = m
        .digest(json!({"kind": "session_digest", "session": session}))
        .try_into()
        .unwrap();
    let sig = m.sign("musig2_approval", &owner, &approval, false);
    assert!(sigil_signing::verify_bip340(&xo, &approval, &sig));
    let approve = canonical::<ApproveRequest>(json!({
        "session": h(&session_id), "owner": h(&xo), "signature": h(&sig),
    }));
    m.encap::<endpoint::SessionApprove>(
        "musig2_approval",
        &approve,
        &[
            success::<endpoint::SessionApprove>(json!({
                "session": h(&session_id), "state": "waiting_for_nonces",
                "expires_at": 1_900_000_600u64, "missing_approvals": [],
                "missing_nonces": [1], "missing_partial_signatures": [0, 1],
            })),
            error_answer(Code::BadApproval, "the approval signature does not verify"),
        ],
    );
    m.signed(&owner, &approval, false);

    // Proving: an UltraHonk and a chonk submission (each with its result key), the inputs'
    // digests, and sealed results (done, failed).
    let circuit = b"{\"noir_version\":\"1.0.0\",\"bytecode\":\"H4sIAAAA\"}".to_vec();
    let witness = vec![0x1f, 0x8b, 0x08, 0x00, 0x01, 0x02, 0x03];
    let result_key = fixed("rust result key");
    let inputs = m.digest(json!({"kind": "inputs_sha256", "circuit": b64(&circuit),
                                 "witness": b64(&witness)}));
    let job_id = h(&fixed("rust job id")[..16]);
    let submit = canonical::<ProveRequest>(json!({
        "scheme": "ultra_honk", "circuit": b64(&circuit), "witness": b64(&witness),
        "target": "evm", "bb_version": "5.0.0", "result_key": b64(&result_key),
    }));
    m.encap::<endpoint::ProveSubmit>(
        "prove_ultra_honk",
        &submit,
        &[
            success::<endpoint::ProveSubmit>(
                json!({"id": job_id, "queue_position": 0, "inputs_sha256": h(&inputs)}),
            ),
            error_answer(
                Code::UnknownBbVersion,
                "bb 9.9.9 is not served here (served: 5.0.0, 4.1.2)",
            ),
        ],
    );

    let ivc_inputs = b"\x91\x84\xa8bytecode\xc4\x01\x00".to_vec();
    let chonk_key = fixed("rust chonk result key");
    let chonk_inputs = m.digest(json!({"kind": "chonk_inputs_sha256",
                                       "ivc_inputs": b64(&ivc_inputs)}));
    let chonk_id = h(&fixed("rust chonk job id")[..16]);
    let chonk = canonical::<ProveRequest>(json!({
        "scheme": "chonk", "ivc_inputs": b64(&ivc_inputs), "result_key": b64(&chonk_key),
    }));
    m.encap::<endpoint::ProveSubmit>(
        "prove_chonk",
        &chonk,
        &[
            success::<endpoint::ProveSubmit>(
                json!({"id": chonk_id, "queue_position": 3, "inputs_sha256": h(&chonk_inputs)}),
            ),
            error_answer(Code::QueueFull, "the proving queue is full"),
        ],
    );

    let done = canonical::<prove::JobResult>(json!({
        "id": job_id, "inputs_sha256": h(&inputs), "state": "done",
        "proof": b64(b"a proof"), "public_inputs": b64(&[0u8; 32]), "vk": b64(b"a vk"),
        "vk_hash": h(&fixed("rust vk hash")), "circuit_size": 4096, "queued_ms": 12,
        "prove_ms": 3456, "bb_version": "5.0.0",
    }));
    let failed = canonical::<prove::JobResult>(json!({
        "id": chonk_id, "inputs_sha256": h(&chonk_inputs), "state": "failed",
        "error": {"code": "unsatisfied", "message": "the witness does not satisfy the circuit"},
        "queued_ms": 0, "prove_ms": 17, "bb_version": "4.1.2",
    }));
    let sealed_result = |name: &str, key: &[u8; 32], id: &str, plain: String, pad: usize| {
        // Padded with JSON whitespace as the enclave pads (to a smaller unit here).
        let mut plain = plain.into_bytes();
        plain.resize(plain.len().next_multiple_of(pad), b' ');
        let nonce: [u8; 12] = fixed(&format!("rust result nonce {name}"))[..12]
            .try_into()
            .unwrap();
        let sealed = prove::seal_result(key, id, nonce, &plain).unwrap();
        assert_eq!(prove::open_result(key, id, &sealed).unwrap(), plain);
        json!({
            "name": name, "result_key": h(key), "id": id, "nonce": h(&nonce),
            "plaintext": String::from_utf8(plain).unwrap(), "sealed": h(&sealed),
        })
    };
    let prove_results = vec![
        sealed_result("done", &result_key, &job_id, done, 512),
        sealed_result("failed", &chonk_key, &chonk_id, failed, 256),
    ];

    // user_data: the least a map holds, and one with every optional key.
    let user_data = vec![
        user_data_entry(
            "minimal",
            &ImageInfo {
                protocol: 1,
                sigil_version: "0.1.0".into(),
                mode: "local".into(),
                capabilities: vec![],
                bb: None,
                bb_served: vec![],
                node: None,
                registry_log: None,
            },
        ),
        user_data_entry(
            "bb_node_log",
            &ImageInfo {
                protocol: 1,
                sigil_version: "0.1.0".into(),
                mode: "nitro".into(),
                capabilities: vec![
                    "ping".into(),
                    "vault".into(),
                    "musig2".into(),
                    "prove".into(),
                ],
                bb: Some(BbInfo {
                    version: "5.0.0".into(),
                    sha256: h(&fixed("rust bb 5.0.0")),
                }),
                bb_served: vec![],
                node: Some(owner.x_only()),
                registry_log: Some(fixed("rust registry log head")),
            },
        ),
        user_data_entry(
            "several_bbs",
            &ImageInfo {
                protocol: 1,
                sigil_version: "0.1.0".into(),
                mode: "harness".into(),
                capabilities: vec!["prove".into()],
                bb: Some(BbInfo {
                    version: "5.0.0".into(),
                    sha256: h(&fixed("rust bb 5.0.0")),
                }),
                bb_served: vec![
                    ServedBb {
                        name: "5.0.0".into(),
                        version: "5.0.0".into(),
                        sha256: h(&fixed("rust bb 5.0.0")),
                        runtime: None,
                    },
                    ServedBb {
                        name: "4.1.2".into(),
                        version: "4.1.2".into(),
                        sha256: h(&fixed("rust bb 4.1.2")),
                        runtime: Some(h(&fixed("rust bb 4.1.2 runtime"))),
                    },
                ],
                node: None,
                registry_log: None,
            },
        ),
    ];

    json!({
        "about": "Made by protocol/tests/ts_vectors.rs from fixed inputs; checked by \
                  sdk/ts/test/cross-language.test.ts. Regenerate: SIGIL_WRITE_TS_VECTORS=1 \
                  cargo test -p sigil-protocol --test ts_vectors",
        "server": {"seed": h(&m.server_seed), "public_key": h(&m.enclave_key())},
        "not_after": NOT_AFTER,
        "encap": m.encap,
        "signatures": m.signatures,
        "digests": m.digests,
        "prove_results": prove_results,
        "user_data": user_data,
    })
}

fn pretty(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap();
    s.push('\n');
    s
}

#[test]
fn rust_made_vectors_are_the_committed_ones() {
    let made = pretty(&rust_made());
    let path = vectors_dir().join("rust-made.json");
    if std::env::var_os(WRITE_ENV).is_some_and(|v| v == "1") {
        std::fs::create_dir_all(vectors_dir()).unwrap();
        std::fs::write(&path, &made).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == made,
        "{} is not what this code makes; regenerate it with {WRITE_ENV}=1 cargo test -p \
         sigil-protocol --test ts_vectors (and run the TypeScript tests)",
        path.display()
    );
}

// ----- checking the TypeScript vectors -----

/// Opens one TS-made request as the enclave does and checks what it carries.
fn check_ts_request<E: Endpoint>(server: &ServerKey, e: &Value, enclave_key: &[u8; 32]) {
    let name = text(&e["name"]);
    let route = text(&e["route"]);
    assert_eq!(route, E::ROUTE, "{name}");
    assert_eq!(
        e["max_body"].as_u64(),
        Some(E::MAX_BODY as u64),
        "{name}: max_body"
    );
    let body = unh(&e["request"]);
    let plain = text(&e["request_plaintext"]).as_bytes();
    let seed = unh32(&e["ephemeral_seed"]);

    let (opened, _) = server.open_request(route, &body, E::MAX_BODY).unwrap();
    assert_eq!(opened, plain, "{name}: request plaintext");
    let request: Value = serde_json::from_slice(plain).unwrap();
    serde_json::from_slice::<E::Request>(plain)
        .unwrap_or_else(|err| panic!("{name}: not a {} request: {err}", E::ROUTE));
    // Another route's key does not open it.
    assert!(
        server
            .open_request("POST /v1/other", &body, E::MAX_BODY)
            .is_err()
    );

    // Owner-signed requests: the digest recomputed from the request, the signature checked as
    // the enclave checks it.
    if let Some(signed) = e.get("signed") {
        let digest = unh32(&signed["digest"]);
        let owner = unh32(&signed["owner"]);
        let sig: [u8; 64] = unh(&request["signature"]).try_into().unwrap();
        let nf = || request["not_after"].as_u64().unwrap();
        let recomputed = match E::ROUTE {
            r if r == endpoint::VaultPut::ROUTE => {
                let value = B64.decode(text(&request["value"])).unwrap();
                Some(vault::digest(
                    vault::Op::Put,
                    text(&request["name"]),
                    request["expected_version"].as_u64().unwrap(),
                    Some(&value),
                    Some(&unh32(&request["owner"])),
                    nf(),
                ))
            }
            r if r == endpoint::VaultGet::ROUTE || r == endpoint::VaultDelete::ROUTE => {
                let op = if r == endpoint::VaultGet::ROUTE {
                    vault::Op::Get
                } else {
                    vault::Op::Delete
                };
                Some(vault::digest(
                    op,
                    text(&request["name"]),
                    request["expected_version"].as_u64().unwrap_or(0),
                    None,
                    None,
                    nf(),
                ))
            }
            r if r == endpoint::KeyGenerate::ROUTE => Some(musig2::request_digest(
                musig2::Op::GenerateKey,
                &[&unh(&request["owner"]), &unh(&request["request_id"])],
                nf(),
            )),
            _ => None,
        };
        if let Some(d) = recomputed {
            assert_eq!(d, digest, "{name}: digest");
        }
        if signed["enclave_bound"].as_bool().unwrap() {
            assert!(
                owner_signature_verifies(&owner, enclave_key, &digest, &sig),
                "{name}: the owner's signature does not verify as the enclave checks it"
            );
            let mut other = *enclave_key;
            other[0] ^= 1;
            assert!(!owner_signature_verifies(&owner, &other, &digest, &sig));
        } else {
            assert!(
                sigil_signing::verify_bip340(&owner, &digest, &sig),
                "{name}: approval"
            );
        }
    }

    // Deterministic: the same inputs seal to the same bytes here.
    for (i, a) in e["answers"].as_array().unwrap().iter().enumerate() {
        let (again, opener) =
            encap::seal_request_with_ephemeral_seed(enclave_key, route, plain, &seed).unwrap();
        assert_eq!(again, body, "{name}: request bytes");
        let response = unh(&a["response"]);
        let status = a["status"].as_u64().unwrap() as u16;
        let answer = text(&a["plaintext"]).as_bytes();
        // As the client: the TS enclave's answer opens with its status.
        let (got_status, got) = opener.open(route, &response).unwrap();
        assert_eq!((got_status, got.as_slice()), (status, answer), "{name} {i}");
        if (200..300).contains(&status) {
            serde_json::from_slice::<E::Response>(answer)
                .unwrap_or_else(|err| panic!("{name}: not a {} answer: {err}", E::ROUTE));
        } else {
            let b: ErrorBody = serde_json::from_slice(answer).unwrap();
            assert!(!b.error.message.is_empty());
        }
        // As the enclave: the same nonce seals to the same bytes.
        let (_, sealer) = server.open_request(route, &body, E::MAX_BODY).unwrap();
        let nonce = unh32(&a["response_nonce"]);
        let sealed = sealer
            .seal_with_response_nonce(route, status, answer, &nonce)
            .unwrap();
        assert_eq!(sealed, response, "{name} {i}: response bytes");
    }
}

#[test]
fn ts_made_vectors_open_and_verify_here() {
    let path = vectors_dir().join("ts-made.json");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();

    let seed = unh(&v["server"]["seed"]);
    let server = ServerKey::from_seed(&seed).unwrap();
    let enclave_key = server.public_key();
    assert_eq!(unh32(&v["server"]["public_key"]), enclave_key);

    let mut routes = Vec::new();
    for e in v["encap"].as_array().unwrap() {
        let route = text(&e["route"]);
        routes.push(route.to_owned());
        match route {
            r if r == endpoint::Ping::ROUTE => {
                check_ts_request::<endpoint::Ping>(&server, e, &enclave_key)
            }
            r if r == endpoint::VaultPut::ROUTE => {
                check_ts_request::<endpoint::VaultPut>(&server, e, &enclave_key)
            }
            r if r == endpoint::VaultGet::ROUTE => {
                check_ts_request::<endpoint::VaultGet>(&server, e, &enclave_key)
            }
            r if r == endpoint::VaultDelete::ROUTE => {
                check_ts_request::<endpoint::VaultDelete>(&server, e, &enclave_key)
            }
            r if r == endpoint::KeyGenerate::ROUTE => {
                check_ts_request::<endpoint::KeyGenerate>(&server, e, &enclave_key)
            }
            r if r == endpoint::SessionApprove::ROUTE => {
                check_ts_request::<endpoint::SessionApprove>(&server, e, &enclave_key)
            }
            r if r == endpoint::ProveSubmit::ROUTE => {
                check_ts_request::<endpoint::ProveSubmit>(&server, e, &enclave_key)
            }
            other => panic!("no check for route {other}"),
        }
    }
    for want in [
        endpoint::Ping::ROUTE,
        endpoint::VaultPut::ROUTE,
        endpoint::VaultGet::ROUTE,
        endpoint::VaultDelete::ROUTE,
        endpoint::SessionApprove::ROUTE,
        endpoint::ProveSubmit::ROUTE,
    ] {
        assert!(routes.iter().any(|r| r == want), "ts-made has no {want}");
    }

    // Owner signatures: the same secret, message and aux sign to the same bytes here, and
    // verify as the enclave verifies them.
    let sigs = v["signatures"].as_array().unwrap();
    assert!(!sigs.is_empty());
    for s in sigs {
        let name = text(&s["name"]);
        let owner = Owner::new(unh32(&s["secret_key"]));
        assert_eq!(owner.x_only(), unh32(&s["x_only"]), "{name}");
        let digest = unh32(&s["digest"]);
        let message = unh32(&s["message"]);
        let sig: [u8; 64] = unh(&s["signature"]).try_into().unwrap();
        if s["enclave_key"].is_null() {
            assert_eq!(message, digest, "{name}");
        } else {
            let key = unh32(&s["enclave_key"]);
            assert_eq!(wire::owner_message(&key, &digest), message, "{name}");
            assert!(owner_signature_verifies(
                &owner.x_only(),
                &key,
                &digest,
                &sig
            ));
        }
        assert!(sigil_signing::verify_bip340(
            &owner.x_only(),
            &message,
            &sig
        ));
        assert_eq!(owner.sign(&message, &unh32(&s["aux"])), sig, "{name}");
    }

    // Digests: recomputed from their inputs.
    let digests = v["digests"].as_array().unwrap();
    assert!(!digests.is_empty());
    for d in digests {
        assert_eq!(recompute_digest(d), expected(d), "digest {d}");
    }

    // Sealed results: open under their key and id, and seal again to the same bytes.
    for r in v["prove_results"].as_array().unwrap() {
        let key = unh32(&r["result_key"]);
        let id = text(&r["id"]);
        let sealed = unh(&r["sealed"]);
        let plain = prove::open_result(&key, id, &sealed).unwrap();
        assert_eq!(plain, text(&r["plaintext"]).as_bytes());
        serde_json::from_slice::<prove::JobResult>(&plain).unwrap();
        assert!(prove::open_result(&key, &format!("{id}0"), &sealed).is_err());
        let nonce: [u8; 12] = unh(&r["nonce"]).try_into().unwrap();
        assert_eq!(prove::seal_result(&key, id, nonce, &plain).unwrap(), sealed);
    }

    // user_data: decoded here, and encoded again byte for byte.
    for u in v["user_data"].as_array().unwrap() {
        let cbor = unh(&u["cbor"]);
        let info = ImageInfo::from_cbor(&cbor).unwrap();
        assert_eq!(info.to_cbor(), cbor, "{}", u["name"]);
        assert_eq!(info.to_json(), u["json"], "{}", u["name"]);
    }
}
