//! Writes the committed seed corpora (`corpus/<target>/`) from the project's own encoders, so
//! the seeds follow the formats as they change: `cargo run --bin make-seeds [TARGET...]` in
//! `fuzz/`, then commit what changed. Real documents and envelopes from the shared test vectors are added
//! at run time by `scripts/fuzz`, not committed.
//!
//! Randomness (HPKE ephemeral keys, ES384 signatures, the simulated chain) makes some seeds
//! differ from run to run; each is still a valid input of its format, which is all a seed is.

use std::fs;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_json::json;
use sigil_attestation::simulator::SimulatedIssuer;
use sigil_eif::{EifBuilder, Entry, default_metadata, gzip, write_newc};
use sigil_fuzz::targets::{api_json, encap, kms, parent_frames, sealed_blob};
use sigil_kms::cms;
use sigil_protocol::endpoint::ENDPOINTS;
use sigil_protocol::parent::{Refusal, blobs, credentials, egress};
use sigil_protocol::user_data::{BbInfo, ImageInfo, PROTOCOL_VERSION, ServedBb};
use zeroize::Zeroizing;

/// Writes one target's seeds into the folder it is given.
type Writer = fn(&Path);

fn main() {
    // With target names, only those folders are rewritten (the others keep their bytes).
    let only: Vec<String> = std::env::args().skip(1).collect();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let writers: [(&str, Writer); 8] = [
        ("attestation", attestation),
        ("encap", encapsulated),
        ("http_head", heads),
        ("parent_frames", frames),
        ("sealed_blob", sealed),
        ("kms", kms_answers),
        ("eif", images),
        ("api_json", requests),
    ];
    for (name, make) in writers {
        if only.is_empty() || only.iter().any(|o| o == name) {
            make(&root.join(name));
        }
    }
}

/// Replaces `dir`'s seeds with `seeds` (name, bytes).
fn write(dir: &Path, seeds: Vec<(String, Vec<u8>)>) {
    if dir.exists() {
        fs::remove_dir_all(dir).expect("clearing the old seeds");
    }
    fs::create_dir_all(dir).expect("creating the corpus folder");
    let n = seeds.len();
    for (name, bytes) in seeds {
        fs::write(dir.join(name), bytes).expect("writing a seed");
    }
    println!("{}: {n} seeds", dir.display());
}

fn with_selector(selector: u8, body: &[u8]) -> Vec<u8> {
    [&[selector][..], body].concat()
}

fn image_info() -> ImageInfo {
    ImageInfo {
        protocol: PROTOCOL_VERSION,
        sigil_version: "0.1.0".into(),
        mode: "local".into(),
        capabilities: vec!["ping".into(), "vault".into(), "musig2".into()],
        bb: Some(BbInfo {
            version: "5.0.0".into(),
            sha256: "ab".repeat(32),
        }),
        bb_served: vec![
            ServedBb {
                name: "5.0.0".into(),
                version: "5.0.0".into(),
                sha256: "ab".repeat(32),
                runtime: None,
            },
            ServedBb {
                name: "4.1.2".into(),
                version: "4.1.2".into(),
                sha256: "cd".repeat(32),
                runtime: Some("ef".repeat(32)),
            },
        ],
        node: Some([0x4e; 32]),
        registry_log: None,
    }
}

fn attestation(dir: &Path) {
    let issuer = SimulatedIssuer::new().expect("simulated issuer");
    let user_data = image_info().to_cbor();
    let full = issuer
        .attest(Some(&[0x42; 32]), Some(&user_data), Some(&[7; 16]))
        .expect("simulated document");
    let bare = issuer.attest(None, None, None).expect("simulated document");
    let b64 = base64::engine::general_purpose::STANDARD.encode(&bare);
    write(
        dir,
        vec![
            ("simulated-full.cbor".into(), full),
            ("simulated-bare.cbor".into(), bare),
            ("simulated-bare.b64".into(), b64.into_bytes()),
            ("user-data.cbor".into(), user_data),
        ],
    );
}

fn encapsulated(dir: &Path) {
    let pk = encap::server_key().public_key();
    let mut seeds = Vec::new();
    for (i, e) in ENDPOINTS.iter().enumerate() {
        if !e.encapsulated {
            continue;
        }
        let selector = u8::try_from(i * 2).expect("few endpoints");
        let (body, _) = sigil_protocol::encap::seal_request(&pk, e.route, b"{\"message\":\"hi\"}")
            .expect("sealing a seed");
        assert_eq!(encap::route(selector), e.route);
        seeds.push((
            format!("request-{}", e.name),
            with_selector(selector, &body),
        ));
    }
    // A response: nonce, ciphertext, tag (nobody can forge one; the shape is what matters).
    seeds.push(("response".into(), with_selector(5, &[0x33; 32 + 20 + 16])));
    write(dir, seeds);
}

fn heads(dir: &Path) {
    let id = "0123456789abcdef0123456789abcdef";
    let heads: Vec<(&str, String)> = vec![
        ("health", "GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n".into()),
        (
            "attestation",
            "GET /v1/attestation?nonce=00ff HTTP/1.1\r\nHost: x\r\n\r\n".into(),
        ),
        (
            "ping",
            "POST /v1/ping HTTP/1.1\r\nHost: x\r\nContent-Type: message/sigil-encapsulated-request\r\nContent-Length: 3\r\n\r\nabc".into(),
        ),
        ("prove-status", format!("GET /v1/prove/{id} HTTP/1.1\nHost: x\n\n")),
        ("wrong-method", "DELETE /v1/ping HTTP/1.0\r\n\r\n".into()),
    ];
    let mut seeds: Vec<(String, Vec<u8>)> = heads
        .into_iter()
        .enumerate()
        .map(|(i, (name, h))| {
            // Pieces of 64, 1, 7, ... bytes.
            let selector = [63u8, 0, 6, 13, 31][i % 5];
            (name.to_string(), with_selector(selector, h.as_bytes()))
        })
        .collect();
    // Behind the shim: its PROXY v2 header (IPv4 and IPv6 clients) in front of the head.
    use sigil_protocol::parent::source;
    for (name, peer, selector) in [
        ("proxy-v4-health", "192.0.2.7:4242", 5u8),
        ("proxy-v6-health", "[2001:db8::1]:1", 63),
    ] {
        let mut s = source::encode(Some(peer.parse().expect("an address"))).expect("a header");
        s.extend_from_slice(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n");
        seeds.push((name.to_string(), with_selector(selector, &s)));
    }
    write(dir, seeds);
}

fn frames(dir: &Path) {
    use parent_frames::*;
    let put = blobs::Request {
        op: blobs::Op::Put,
        name: Some("seal/vault/a".into()),
        expected_version: Some(3),
        data: Some(vec![1, 2, 3, 4]),
        prefix: None,
    };
    let list = blobs::Request {
        op: blobs::Op::List,
        name: None,
        expected_version: None,
        data: None,
        prefix: Some("seal/".into()),
    };
    let ok = blobs::Response {
        ok: true,
        version: Some(4),
        data: Some(vec![9; 8]),
        names: Some(vec!["a".into(), "b".into()]),
        more: Some(false),
        error: None,
    };
    let err = blobs::Response::err("conflict", "version mismatch");
    let mut framed = Vec::new();
    blobs::write_frame(&mut framed, &blobs::encode_response(&ok)).expect("frame");
    blobs::write_frame(&mut framed, &blobs::encode_response(&err)).expect("frame");
    let creds = Ok(credentials::Credentials {
        access_key_id: "AKIDEXAMPLE".into(),
        secret_access_key: Zeroizing::new("wJalrXUtnFEMI/K7MDENG".into()),
        session_token: Some(Zeroizing::new("token".into())),
        expiration: Some("2030-01-01T00:00:00Z".into()),
    });
    let refusal = Refusal {
        code: credentials::UNAVAILABLE.into(),
        message: "no role".into(),
    };
    let mut creds_frame = Vec::new();
    credentials::write(&mut creds_frame, &creds).expect("frame");
    let mut refusal_frame = Vec::new();
    credentials::write(&mut refusal_frame, &Err(refusal.clone())).expect("frame");
    let seeds = vec![
        ("blob-put", BLOB_REQUEST, blobs::encode_request(&put)),
        ("blob-list", BLOB_REQUEST, blobs::encode_request(&list)),
        ("blob-ok", BLOB_RESPONSE, blobs::encode_response(&ok)),
        ("blob-err", BLOB_RESPONSE, blobs::encode_response(&err)),
        ("blob-frames", BLOB_FRAME, framed),
        ("credentials", CREDENTIALS, creds_frame),
        ("credentials-refused", CREDENTIALS, refusal_frame),
        (
            "egress-request",
            EGRESS_REQUEST,
            egress::encode_request("kms.eu-west-1.amazonaws.com", 443).expect("request"),
        ),
        ("egress-ok", EGRESS_ANSWER, egress::encode_answer(&Ok(()))),
        (
            "egress-refused",
            EGRESS_ANSWER,
            egress::encode_answer(&Err(Refusal {
                code: egress::NOT_ALLOWED.into(),
                message: "example.com:443 is not on the allow-list".into(),
            })),
        ),
        (
            "logs",
            LOGS + 8 * 5,
            b"sigil: ready\nsigil: sealed state ready\npartial".to_vec(),
        ),
    ];
    write(
        dir,
        seeds
            .into_iter()
            .map(|(n, s, b)| (n.to_string(), with_selector(s, &b)))
            .collect(),
    );
}

fn sealed(dir: &Path) {
    use sigil_enclave::seal::{DataKey, Kind, seal};
    let key = DataKey::from_bytes(sealed_blob::DATA_KEY);
    let seeds = [
        ("key", Kind::Key, "keys/alice-1", &b"secret share"[..]),
        ("aggregate", Kind::AggregateKey, "aggregates/0123", b"{}"),
        (
            "secret",
            Kind::Secret,
            "vault/db-password",
            b"owner and value",
        ),
        ("counter", Kind::Counter, "counter", &7u64.to_be_bytes()),
    ]
    .into_iter()
    .map(|(name, kind, id, plain)| {
        let blob = seal(&key, kind, id, 5, 2, plain).expect("sealing a seed");
        (name.to_string(), blob)
    })
    .collect();
    write(dir, seeds);
}

fn kms_answers(dir: &Path) {
    use kms::*;
    let key = recipient_key();
    let envelope = cms::build(&[0x5a; 32], &key.spki_der(), &[0x01; 20]).expect("envelope");
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let gdk = json!({
        "CiphertextBlob": b64(b"opaque blob"),
        "KeyId": "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        "CiphertextForRecipient": b64(&envelope),
    });
    let decrypt = json!({
        "KeyId": "arn:aws:kms:eu-west-1:111122223333:key/1234abcd",
        "EncryptionAlgorithm": "SYMMETRIC_DEFAULT",
        "CiphertextForRecipient": b64(&envelope),
    });
    let random = json!({ "CiphertextForRecipient": b64(&envelope) });
    let error = json!({
        "__type": "com.amazonaws.kms#AccessDeniedException",
        "message": "not authorized",
    });
    let js = |v: serde_json::Value| serde_json::to_vec(&v).expect("json");
    let seeds = vec![
        ("generate-data-key", GENERATE_DATA_KEY, js(gdk)),
        ("decrypt", DECRYPT, js(decrypt)),
        ("generate-random", GENERATE_RANDOM, js(random)),
        ("error", ERROR, js(error)),
        ("cms", CMS, envelope),
    ];
    write(
        dir,
        seeds
            .into_iter()
            .map(|(n, s, b)| (n.to_string(), with_selector(s, &b)))
            .collect(),
    );
}

fn images(dir: &Path) {
    let ramdisk = gzip(
        &write_newc(&[
            Entry::Dir {
                path: "etc".into(),
                mode: 0o755,
            },
            Entry::File {
                path: "init".into(),
                mode: 0o755,
                data: b"#!/bin/sh\n".to_vec(),
            },
        ])
        .expect("cpio"),
    );
    let one = EifBuilder::new(vec![0x4b; 256], "console=ttyS0")
        .ramdisk(ramdisk.clone())
        .metadata(default_metadata("1970-01-01T00:00:00+00:00", None))
        .build()
        .expect("eif");
    let two = EifBuilder::new(vec![0x4b; 64], "")
        .ramdisk(ramdisk)
        .ramdisk(b"second".to_vec())
        .build()
        .expect("eif");
    write(
        dir,
        vec![
            ("one-ramdisk.eif".into(), one),
            ("two-ramdisks.eif".into(), two),
        ],
    );
}

fn requests(dir: &Path) {
    let h = |byte: &str, n: usize| byte.repeat(n);
    let point = "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798";
    let sig = h("ab", 64);
    let id = h("01", 16);
    let session = h("22", 32);
    let owner = h("33", 32);
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let body = |name: &str| -> Option<serde_json::Value> {
        Some(match name {
            "Health" => json!(null),
            "Attestation" => json!({ "nonce": "00ff" }),
            "Ping" => json!({ "message": "hello" }),
            "VaultPut" => json!({
                "name": "db-password", "value": b64(b"secret"), "owner": owner,
                "expected_version": 0, "not_after": 1_900_000_000u64, "signature": sig,
            }),
            "VaultGet" | "VaultDelete" => json!({
                "name": "db-password", "expected_version": 1, "not_after": 1_900_000_000u64,
                "signature": sig,
            }),
            "KeyGenerate" => json!({
                "owner": owner, "request_id": id, "not_after": 1_900_000_000u64, "signature": sig,
            }),
            "KeyImport" => json!({
                "secret": h("44", 32), "owner": owner, "request_id": id,
                "not_after": 1_900_000_000u64, "signature": sig,
            }),
            "KeyList" | "AggregateList" => json!({
                "owner": owner, "not_after": 1_900_000_000u64, "signature": sig,
            }),
            "KeyDescribe" | "AggregateDescribe" => json!({
                "id": id, "owner": owner, "not_after": 1_900_000_000u64, "signature": sig,
            }),
            "KeyDelete" => json!({ "id": id, "not_after": 1_900_000_000u64, "signature": sig }),
            "AggregateCreate" => json!({
                "participants": [{ "key_id": id }, { "public_key": point }],
                "order": "sorted",
                "tweaks": [{ "kind": "taproot_unspendable" }, { "kind": "plain", "value": h("05", 32) }],
                "owner": owner, "not_after": 1_900_000_000u64, "signature": sig,
            }),
            "AggregateDelete" => json!({
                "id": id, "owner": owner, "not_after": 1_900_000_000u64, "signature": sig,
            }),
            "SessionCreate" => json!({
                "aggregate": id,
                "messages": [{ "message": h("66", 32) }, { "message": "00", "tweak": { "kind": "xonly", "value": h("07", 32) } }],
                "adaptor_point": point,
                "expires_at": 1_900_000_000u64,
                "owner": owner, "not_after": 1_900_000_000u64, "signature": sig,
            }),
            "SessionStatus" | "SessionNonces" | "SessionRound" => json!({ "session": session }),
            "SessionApprove" => json!({ "session": session, "owner": owner, "signature": sig }),
            "SessionSubmitNonces" => json!({
                "session": session, "index": 1, "nonces": [format!("{point}{point}")],
            }),
            "SessionPartialSignatures" => json!({
                "session": session, "round_id": h("88", 32), "index": 1,
                "partial_signatures": [h("09", 32)],
            }),
            "SessionAbort" => json!({
                "session": session, "owner": owner, "not_after": 1_900_000_000u64, "signature": sig,
            }),
            "SessionPeerSend" => json!({
                "session": session, "step": "nonces",
                "recipient_document": b64(b"\xd2\x84"), "recipient_session": h("23", 32),
            }),
            "SessionPeerReceive" => json!({
                "session": session,
                "message": {
                    "v": 1, "protocol": "musig2", "session": session, "round": 2,
                    "sender": owner, "recipient": h("44", 32), "seq": 1,
                    "enc": h("55", 32), "ct": b64(&[0; 48]),
                },
                "sender_document": b64(b"\xd2\x84"),
            }),
            "ProveSubmit" => json!({
                "scheme": "ultra_honk", "circuit": b64(b"{}"), "witness": b64(b"\x1f\x8b"),
                "target": "evm", "result_key": b64(&[0x11; 32]),
            }),
            "ProveStatus" => json!({ "id": id }),
            "ProveCancel" => json!({ "id": id, "token": h("77", 32) }),
            "PeersVerify" => json!({ "document": b64(b"\xd2\x84\x44\xa1\x01\x38\x22\xa0") }),
            "PeersPingSend" => json!({
                "recipient_document": b64(b"\xd2\x84"), "session": session, "text": "hello",
            }),
            "PeersPingReceive" => json!({
                "message": {
                    "v": 1, "protocol": "ping", "session": session, "round": 0,
                    "sender": owner, "recipient": h("44", 32), "seq": 1,
                    "enc": h("55", 32), "ct": b64(&[0; 32]),
                },
                "sender_document": b64(b"\xd2\x84"),
            }),
            "FrostDkgStart" => json!({
                "session": session, "threshold": 2,
                "members": [b64(b"\xd2\x84"), b64(b"\xd2\x84\x44"), b64(b"\xd2\x84\x45")],
                "owner": owner, "not_after": 1_900_000_000u64, "signature": sig,
            }),
            "FrostDkgRound2" | "FrostDkgFinish" => json!({
                "session": session,
                "messages": [{
                    "v": 1, "protocol": "frost-dkg", "session": session, "round": 1,
                    "sender": owner, "recipient": h("44", 32), "seq": 1,
                    "enc": h("55", 32), "ct": b64(&[0; 32]),
                }],
            }),
            "FrostRepairStart" => json!({
                "session": session, "group": h("66", 32), "lost": 3, "helpers": [1, 2],
                "helper_documents": [b64(b"\xd2\x84"), b64(b"\xd2\x84\x44")],
                "new_member": b64(b"\xd2\x84\x45"),
                "not_after": 1_900_000_000u64, "signature": sig,
            }),
            "FrostRepairForward" => json!({
                "session": session,
                "messages": [{
                    "v": 1, "protocol": "frost-repair", "session": session, "round": 1,
                    "sender": owner, "recipient": h("44", 32), "seq": 1,
                    "enc": h("55", 32), "ct": b64(&[0; 48]),
                }],
            }),
            "FrostRepairFinish" => json!({
                "session": session, "group": h("66", 32), "lost": 3, "helpers": [1, 2],
                "helper_documents": [b64(b"\xd2\x84"), b64(b"\xd2\x84\x44")],
                "messages": [{
                    "v": 1, "protocol": "frost-repair", "session": session, "round": 2,
                    "sender": h("45", 32), "recipient": h("46", 32), "seq": 1,
                    "enc": h("55", 32), "ct": b64(&[0; 96]),
                }],
                "owner": owner, "not_after": 1_900_000_000u64, "signature": sig,
            }),
            "FrostRefreshStart" => json!({
                "session": session, "group": h("66", 32), "generation": h("67", 32),
                "members": [b64(b"\xd2\x84"), b64(b"\xd2\x84\x44"), b64(b"\xd2\x84\x45")],
                "not_after": 1_900_000_000u64, "signature": sig,
            }),
            "FrostRefreshCommit" => json!({
                "group": h("66", 32), "generation": h("67", 32),
                "not_after": 1_900_000_000u64, "signature": sig,
            }),
            "FrostGroup" => json!({ "group": h("66", 32) }),
            "FrostSignCommit" => json!({
                "session": session, "group": h("66", 32), "signers": [1, 2],
                "messages": [h("77", 32), h("78", 32)], "merkle_root": h("88", 32),
                "not_after": 1_900_000_000u64, "signature": sig,
            }),
            "FrostSignShare" => json!({
                "session": session,
                "commitments": [
                    { "participant": 1, "items": [b64(&[2; 66])] },
                    { "participant": 2, "items": [b64(&[3; 66])] },
                ],
            }),
            "FrostSignAggregate" => json!({
                "group": h("66", 32), "messages": [h("77", 32)],
                "commitments": [
                    { "participant": 1, "items": [b64(&[2; 66])] },
                    { "participant": 2, "items": [b64(&[3; 66])] },
                ],
                "shares": [
                    { "participant": 1, "items": [b64(&[4; 32])] },
                    { "participant": 2, "items": [b64(&[5; 32])] },
                ],
            }),
            "QuorumStatus" => json!({}),
            "QuorumGenesis" => json!({ "admin": 1, "signature": sig }),
            "QuorumShare" => json!({ "index": 2 }),
            "QuorumUnlock" => json!({
                "genesis": h("88", 32), "index": 1, "share": format!("01{}", h("09", 32)),
                "signature": sig,
            }),
            "QuorumReshare" => json!({
                "threshold": 2,
                "admins": [
                    { "name": "alice", "sign": h("11", 32), "hpke": h("12", 32) },
                    { "name": "bob", "sign": h("13", 32), "hpke": h("14", 32) },
                ],
                "approvals": [{ "admin": 1, "signature": sig }, { "admin": 2, "signature": sig }],
            }),
            "QuorumForward" => json!({ "document": b64(b"\xd2\x84\x44\xa1\x01\x38\x22\xa0") }),
            "QuorumReceive" => json!({
                "document": b64(b"\xd2\x84\x44\xa1\x01\x38\x22\xa0"),
                "forwarded": {
                    "genesis": h("88", 32), "enc": h("55", 32), "ciphertext": b64(&[0; 48]),
                },
            }),
            "RegistryChange" => json!({
                "change": {
                    "kind": "config", "app": "wallet",
                    "template": { "port": 8443, "db": { "$secret": "db-password" } },
                },
                "head": h("99", 32),
                "approvals": [{ "admin": 1, "signature": sig }, { "admin": 2, "signature": sig }],
            }),
            "RegistryLog" | "RegistryChallenge" => json!({}),
            "RegistryRegister" => json!({ "document": b64(b"\xd2\x84\x44\xa1\x01\x38\x22\xa0") }),
            _ => return None,
        })
    };
    let mut seeds = Vec::new();
    for (i, e) in ENDPOINTS.iter().enumerate() {
        let Some(v) = body(e.name) else {
            eprintln!("make-seeds: no request seed for {} (add one)", e.name);
            continue;
        };
        let json = serde_json::to_vec(&v).expect("json");
        let selector = api_json::selector(i, false);
        // Each seed must decode as its request type, or it seeds nothing useful.
        if !api_json::decodes(selector, &json) {
            eprintln!("make-seeds: the {} seed does not decode; fix it", e.name);
        }
        seeds.push((
            format!("request-{}", e.name),
            with_selector(selector, &json),
        ));
    }
    write(dir, seeds);
}
