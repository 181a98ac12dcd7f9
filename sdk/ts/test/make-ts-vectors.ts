// The TypeScript half of the cross-language vectors: test/vectors/ts-made.json, made by the
// SDK from fixed inputs, opened and checked by the Rust side (protocol/tests/ts_vectors.rs).
// `npm run vectors:ts` writes it; cross-language.test.ts checks that this code still makes
// exactly the committed file.
//
// Determinism comes from inputs production never fixes: the ephemeral HPKE key and the
// response nonce (src/testing.ts, which the package does not export), the BIP-340
// auxiliary randomness and the proving result's nonce.

import { writeFileSync } from "node:fs";
import { sha256 } from "@noble/hashes/sha2.js";
import { b64, equal, hex, unhex, utf8 } from "../src/bytes.js";
import { ServerKey } from "../src/encap.js";
import { sealRequestWithSeed, sealResponseWithNonce } from "../src/testing.js";
import { OwnerKey, ownerMessage, verifyBip340 } from "../src/owner.js";
import { vaultDigest } from "../src/vault.js";
import * as m2 from "../src/musig2.js";
import { chonkInputsSha256, inputsSha256, openResult, sealResult } from "../src/prove.js";
import { encodeImageInfo, type ImageInfo } from "../src/userData.js";
import { pkgRoot } from "./paths.js";

export const TS_MADE = `${pkgRoot}test/vectors/ts-made.json`;
export const RUST_MADE = `${pkgRoot}test/vectors/rust-made.json`;

/** Every `not_after` in the vectors. */
const NOT_AFTER = 1_900_000_100;

/** A fixed 32-byte input: SHA-256 of a label (the Rust side names its inputs the same way). */
export function fixed(label: string): Uint8Array {
  return sha256(utf8(`sigil cross-language vectors: ${label}`));
}

/** The endpoints' body limits (protocol/src/endpoint.rs), for the vectors' `max_body`. */
const MAX_BODY: Record<string, number> = {
  "POST /v1/ping": 32 * 1024,
  "POST /v1/vault/put": Math.floor((64 * 1024) / 3) * 4 + 8 * 1024,
  "POST /v1/vault/get": Math.floor((64 * 1024) / 3) * 4 + 8 * 1024,
  "POST /v1/vault/delete": Math.floor((64 * 1024) / 3) * 4 + 8 * 1024,
  "POST /v1/musig2/keys/generate": 32 * 1024,
  "POST /v1/musig2/sessions/approve": 32 * 1024,
  "POST /v1/prove": Math.ceil((64 << 20) / 3) * 4 + 64 * 1024,
};

/** An error answer as the enclave writes it. */
const errorBody = (code: string, message: string) => JSON.stringify({ error: { code, message } });

function check(ok: boolean, what: string): void {
  if (!ok) throw new Error(`ts vectors: ${what}`);
}

export async function makeTsVectors(): Promise<any> {
  const server = await ServerKey.fromSeed(fixed("ts server key"));
  const pk = server.publicKey;
  const encap: any[] = [];
  const signatures: any[] = [];
  const digests: any[] = [];

  const sign = (name: string, owner: OwnerKey, digest: Uint8Array, bound: boolean): Uint8Array => {
    const aux = fixed(`ts aux ${name}`);
    const message = bound ? ownerMessage(pk, digest) : digest;
    const sig = bound ? owner.signFor(pk, digest, aux) : owner.sign(digest, aux);
    check(verifyBip340(owner.xOnly, message, sig), `${name}: signature verifies`);
    signatures.push({
      name,
      secret_key: hex(secrets.get(owner)!),
      x_only: hex(owner.xOnly),
      digest: hex(digest),
      enclave_key: bound ? hex(pk) : null,
      message: hex(message),
      aux: hex(aux),
      signature: hex(sig),
    });
    return sig;
  };
  const secrets = new Map<OwnerKey, Uint8Array>();
  const ownerOf = (label: string) => {
    const s = fixed(label);
    const o = new OwnerKey(s);
    secrets.set(o, s);
    return o;
  };

  /** One route: the request sealed with a fixed ephemeral key, opened as the enclave opens
   * it, each answer sealed with a fixed nonce and opened as the client opens it. */
  const route = async (name: string, r: string, request: unknown, answers: [number, string][], signed?: { owner: OwnerKey; digest: Uint8Array; bound: boolean }) => {
    const plaintext = JSON.stringify(request);
    const seed = fixed(`ts ephemeral ${name}`);
    let body: Uint8Array | undefined;
    const out: any[] = [];
    for (const [i, [status, answer]] of answers.entries()) {
      const sealed = await sealRequestWithSeed(pk, r, utf8(plaintext), seed);
      check(!body || equal(body, sealed.body), `${name}: one seed, one request`);
      body = sealed.body;
      const { plaintext: opened, sealer } = await server.openRequest(r, sealed.body, MAX_BODY[r]);
      check(equal(opened, utf8(plaintext)), `${name}: request opens`);
      const nonce = fixed(`ts response nonce ${name} ${i}`);
      const response = await sealResponseWithNonce(sealer, r, status, utf8(answer), nonce);
      const back = await sealed.opener.open(response);
      check(back.status === status && equal(back.plaintext, utf8(answer)), `${name}: answer opens`);
      out.push({ status, response_nonce: hex(nonce), plaintext: answer, response: hex(response) });
    }
    const entry: any = { name, route: r, max_body: MAX_BODY[r], ephemeral_seed: hex(seed), request_plaintext: plaintext, request: hex(body!), answers: out };
    if (signed) entry.signed = { owner: hex(signed.owner.xOnly), digest: hex(signed.digest), enclave_bound: signed.bound };
    encap.push(entry);
  };

  const owner = ownerOf("ts owner 1");
  const other = ownerOf("ts owner 2");
  const xo = hex(owner.xOnly);

  // ping (not ASCII: UTF-8 both ways)
  await route("ping", "POST /v1/ping", { message: "ping from TypeScript: ünïcode ✓" }, [
    [200, JSON.stringify({ message: "ping from TypeScript: ünïcode ✓", enclave_time_ms: 1_700_000_000_456 })],
    [400, errorBody("malformed_json", "encapsulated body is not a POST /v1/ping request")],
  ]);

  // vault: the request objects in the order client.ts sends them.
  const name = "ts.entry-2";
  const value = Uint8Array.of(0xff, 0, 1, 2, 0x80, 0x7f);
  const putDigest = vaultDigest("put", name, 3, value, owner.xOnly, NOT_AFTER);
  digests.push({ kind: "vault", op: "put", name, expected_version: 3, value: b64(value), owner: xo, not_after: NOT_AFTER, digest: hex(putDigest) });
  let sig = sign("vault_put", owner, putDigest, true);
  await route("vault_put", "POST /v1/vault/put", { name, value: b64(value), owner: xo, expected_version: 3, not_after: NOT_AFTER, signature: hex(sig) }, [
    [200, JSON.stringify({ name, version: 4 })],
    [403, errorBody("not_owner", "the signer does not own what the request acts on")],
  ], { owner, digest: putDigest, bound: true });

  const getDigest = vaultDigest("get", name, 0, undefined, undefined, NOT_AFTER);
  digests.push({ kind: "vault", op: "get", name, expected_version: 0, value: null, owner: null, not_after: NOT_AFTER, digest: hex(getDigest) });
  sig = sign("vault_get", owner, getDigest, true);
  await route("vault_get", "POST /v1/vault/get", { name, expected_version: 0, not_after: NOT_AFTER, signature: hex(sig) }, [
    [200, JSON.stringify({ name, value: b64(value), owner: xo, version: 4 })],
    [401, errorBody("signature_expired", `not_after ${NOT_AFTER} has passed (enclave time ${NOT_AFTER + 1})`)],
  ], { owner, digest: getDigest, bound: true });

  const delDigest = vaultDigest("delete", name, 4, undefined, undefined, NOT_AFTER);
  digests.push({ kind: "vault", op: "delete", name, expected_version: 4, value: null, owner: null, not_after: NOT_AFTER, digest: hex(delDigest) });
  sig = sign("vault_delete", owner, delDigest, true);
  await route("vault_delete", "POST /v1/vault/delete", { name, expected_version: 4, not_after: NOT_AFTER, signature: hex(sig) }, [
    [200, JSON.stringify({ name, version: 5 })],
    [409, errorBody("version_conflict", "expected_version 4 is not the current version 5")],
  ], { owner, digest: delDigest, bound: true });

  // MuSig2: key generation, signed specs, a session approval.
  const requestId = fixed("ts request id").subarray(0, 16);
  const keygenDigest = m2.requestDigest("key/generate", [owner.xOnly, requestId], NOT_AFTER);
  digests.push({ kind: "musig2_request", op: "key/generate", fields: [xo, hex(requestId)], not_after: NOT_AFTER, digest: hex(keygenDigest) });
  const keyId = m2.keyIdForRequest(owner.xOnly, requestId);
  digests.push({ kind: "key_id_for_request", owner: xo, request_id: hex(requestId), key_id: hex(keyId) });
  sig = sign("musig2_key_generate", owner, keygenDigest, true);
  const external = new m2.SignerKey(fixed("ts external signer"));
  await route("musig2_key_generate", "POST /v1/musig2/keys/generate", { owner: xo, request_id: hex(requestId), not_after: NOT_AFTER, signature: hex(sig) }, [
    [200, JSON.stringify({ id: hex(keyId), public_key: hex(external.publicKey), owner: xo, created: 1_700_000_001 })],
    [429, errorBody("limit_exceeded", "this owner holds the most keys allowed")],
  ], { owner, digest: keygenDigest, bound: true });

  const participants: m2.ParticipantSpec[] = [{ public_key: hex(external.publicKey) }, { key_id: hex(keyId) }];
  const aggTweaks: m2.TweakSpec[] = [{ kind: "taproot", value: hex(fixed("ts merkle root")) }];
  const aggSpec = m2.aggregateSignedSpec(participants, "as_given", aggTweaks);
  digests.push({ kind: "aggregate_signed_spec", request: { participants, order: "as_given", tweaks: aggTweaks }, signed_spec: hex(aggSpec) });
  digests.push({ kind: "musig2_request", op: "aggregate/create", fields: [xo, hex(aggSpec)], not_after: NOT_AFTER, digest: hex(m2.requestDigest("aggregate/create", [owner.xOnly, aggSpec], NOT_AFTER)) });

  const aggregateId = hex(fixed("ts aggregate id").subarray(0, 16));
  const messages: m2.MessageView[] = [
    { message: hex(fixed("ts sighash 0")), tweak: { kind: "xonly", value: hex(fixed("ts xonly tweak")) } },
    { message: "01" },
  ];
  const sessSpec = m2.sessionSignedSpec(aggregateId, messages, undefined, 1_900_000_700);
  digests.push({ kind: "session_signed_spec", request: { aggregate: aggregateId, messages, expires_at: 1_900_000_700 }, signed_spec: hex(sessSpec) });
  digests.push({ kind: "musig2_request", op: "session/create", fields: [xo, hex(sessSpec)], not_after: NOT_AFTER, digest: hex(m2.requestDigest("session/create", [owner.xOnly, sessSpec], NOT_AFTER)) });

  const sessionId = hex(fixed("ts session id"));
  const session = { id: sessionId, internal_key: hex(external.publicKey), tweaks: [{ kind: "taproot_unspendable" as const }], messages, expires_at: 1_900_000_700 };
  const approval = m2.sessionDigest(session);
  digests.push({ kind: "session_digest", session, digest: hex(approval) });
  sig = sign("musig2_approval", owner, approval, false);
  await route("musig2_approval", "POST /v1/musig2/sessions/approve", { session: sessionId, owner: xo, signature: hex(sig) }, [
    [200, JSON.stringify({ session: sessionId, state: "waiting_for_approvals", expires_at: 1_900_000_700, missing_approvals: [hex(other.xOnly)], missing_nonces: [0, 1], missing_partial_signatures: [0, 1] })],
    [403, errorBody("not_an_approver", "the key approves nothing in this session")],
  ], { owner, digest: approval, bound: false });

  // Proving: a submission as client.ts sends it, the inputs' digests, sealed results.
  const circuit = utf8('{"noir_version":"1.0.0","bytecode":"H4sIAAAB"}');
  const witness = Uint8Array.of(0x1f, 0x8b, 0x08, 0x00, 9, 8, 7);
  const resultKey = fixed("ts result key");
  const inputs = inputsSha256(circuit, witness);
  digests.push({ kind: "inputs_sha256", circuit: b64(circuit), witness: b64(witness), digest: hex(inputs) });
  const jobId = hex(fixed("ts job id").subarray(0, 16));
  await route("prove_ultra_honk", "POST /v1/prove", { scheme: "ultra_honk", target: "default", result_key: b64(resultKey), circuit: b64(circuit), witness: b64(witness), bb_version: "4.1.2" }, [
    [202, JSON.stringify({ id: jobId, queue_position: 1, inputs_sha256: hex(inputs) })],
    [400, errorBody("unknown_bb_version", "bb 4.1.3 is not served here (served: 5.0.0, 4.1.2)")],
  ]);
  const ivc = Uint8Array.of(0x91, 0x84, 0xa8, 0x62, 0x79, 0x74, 0x65);
  const chonkKey = fixed("ts chonk result key");
  const chonkInputs = chonkInputsSha256(ivc);
  digests.push({ kind: "chonk_inputs_sha256", ivc_inputs: b64(ivc), digest: hex(chonkInputs) });
  const chonkId = hex(fixed("ts chonk job id").subarray(0, 16));
  await route("prove_chonk", "POST /v1/prove", { scheme: "chonk", target: "default", result_key: b64(chonkKey), circuit: "", witness: "", ivc_inputs: b64(ivc) }, [
    [202, JSON.stringify({ id: chonkId, queue_position: 0, inputs_sha256: hex(chonkInputs) })],
    [413, errorBody("bad_input", "the chonk input stack is larger than 67108864 bytes")],
  ]);

  const sealed = async (label: string, key: Uint8Array, id: string, result: unknown, pad: number) => {
    let plain = JSON.stringify(result);
    plain = plain.padEnd(Math.ceil(plain.length / pad) * pad, " ");
    const nonce = fixed(`ts result nonce ${label}`).subarray(0, 12);
    const s = await sealResult(key, id, nonce, utf8(plain));
    check(equal(await openResult(key, id, s), utf8(plain)), `${label}: result opens`);
    return { name: label, result_key: hex(key), id, nonce: hex(nonce), plaintext: plain, sealed: hex(s) };
  };
  const proveResults = [
    await sealed("done", resultKey, jobId, { id: jobId, inputs_sha256: hex(inputs), state: "done", proof: b64(utf8("ts proof")), public_inputs: b64(new Uint8Array(64)), vk: b64(utf8("ts vk")), vk_hash: hex(fixed("ts vk hash")), circuit_size: 8192, queued_ms: 5, prove_ms: 999, bb_version: "4.1.2" }, 384),
    await sealed("failed", chonkKey, chonkId, { id: chonkId, inputs_sha256: hex(chonkInputs), state: "failed", error: { code: "time_limit", message: "bb ran past its time limit" }, queued_ms: 1, prove_ms: 600000, bb_version: "5.0.0" }, 200),
  ];

  // user_data as the SDK encodes it (the keys it knows).
  const infos: [string, ImageInfo][] = [
    ["minimal", { protocol: 1, sigil: "0.2.0", mode: "harness", capabilities: ["ping"] }],
    ["bb_node_log", { protocol: 1, sigil: "0.2.0", mode: "nitro", capabilities: ["ping", "prove"], bb: { version: "4.1.2", sha256: hex(fixed("ts bb 4.1.2")) }, node: hex(other.xOnly), log: hex(fixed("ts log head")) }],
  ];
  const userData = infos.map(([n, info]) => {
    const json: any = { protocol: info.protocol, sigil: info.sigil, mode: info.mode, capabilities: info.capabilities };
    if (info.bb) json.bb = { version: info.bb.version, sha256: info.bb.sha256 };
    if (info.node) json.node = info.node;
    if (info.log) json.log = info.log;
    return { name: n, json, cbor: hex(encodeImageInfo(info, (s) => unhex(s))) };
  });

  return {
    about: "Made by sdk/ts/test/make-ts-vectors.ts (npm run vectors:ts) from fixed inputs; checked by protocol/tests/ts_vectors.rs and sdk/ts/test/cross-language.test.ts.",
    server: { seed: hex(fixed("ts server key")), public_key: hex(pk) },
    not_after: NOT_AFTER,
    encap,
    signatures,
    digests,
    prove_results: proveResults,
    user_data: userData,
  };
}

export const vectorsText = (v: unknown): string => JSON.stringify(v, null, 2) + "\n";

// `node dist/test/make-ts-vectors.js --write` (npm run vectors:ts). The test runner also loads
// this file (it is under test/), so nothing is written without the flag.
if (process.argv.includes("--write")) {
  writeFileSync(TS_MADE, vectorsText(await makeTsVectors()));
  console.log(`wrote ${TS_MADE}`);
}
