// One behaviour in two languages. test/vectors/rust-made.json is made by the Rust side
// (protocol/tests/ts_vectors.rs) from fixed inputs: here every request is opened as the
// enclave opens it, every answer as the client opens it, every signature and digest checked,
// and every deterministic byte string made again by the SDK from the same inputs.
// test/vectors/ts-made.json is the SDK's own (make-ts-vectors.ts), checked by the Rust side;
// here it must still be exactly what the SDK makes.

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fromUtf8, hex, unb64, unhex, utf8 } from "../src/bytes.js";
import { ServerKey } from "../src/encap.js";
import { sealRequestWithSeed, sealResponseWithNonce } from "../src/testing.js";
import { EncapError } from "../src/errors.js";
import { SigilClient } from "../src/client.js";
import { OwnerKey, ownerMessage, verifyBip340 } from "../src/owner.js";
import { vaultDigest, type VaultOp } from "../src/vault.js";
import * as m2 from "../src/musig2.js";
import { chonkInputsSha256, inputsSha256, openResult, sealResult } from "../src/prove.js";
import { decodeImageInfo, encodeImageInfo } from "../src/userData.js";
import { makeTsVectors, RUST_MADE, TS_MADE, vectorsText } from "./make-ts-vectors.js";
import { describe, key } from "./musig2-sessions.js";

const rust = JSON.parse(readFileSync(RUST_MADE, "utf8"));

/** A digest entry's value, recomputed by the SDK from its inputs. */
function recompute(d: any): Uint8Array {
  switch (d.kind) {
    case "vault":
      return vaultDigest(d.op as VaultOp, d.name, d.expected_version, d.value === null ? undefined : unb64(d.value), d.owner === null ? undefined : unhex(d.owner, 32), d.not_after);
    case "musig2_request":
      return m2.requestDigest(d.op, d.fields.map((f: string) => unhex(f)), d.not_after);
    case "aggregate_signed_spec":
      return m2.aggregateSignedSpec(d.request.participants, d.request.order, d.request.tweaks ?? []);
    case "session_signed_spec":
      return m2.sessionSignedSpec(d.request.aggregate, d.request.messages, d.request.adaptor_point, d.request.expires_at);
    case "session_digest":
      return m2.sessionDigest(d.session);
    case "key_id_for_request":
      return m2.keyIdForRequest(unhex(d.owner, 32), unhex(d.request_id, 16));
    case "owner_message":
      return ownerMessage(unhex(d.enclave_key, 32), unhex(d.digest, 32));
    case "inputs_sha256":
      return inputsSha256(unb64(d.circuit), unb64(d.witness));
    case "chonk_inputs_sha256":
      return chonkInputsSha256(unb64(d.ivc_inputs));
    default:
      throw new Error(`unknown digest kind ${d.kind}`);
  }
}

const expectedOf = (d: any): string => d.digest ?? d.signed_spec ?? d.key_id ?? d.message;

/** The digest an owner-signed request carries, recomputed from the request's own fields as
 * the enclave does (vault and key generation; an approval signs the session digest, checked
 * with the digests). */
function requestDigestOf(route: string, r: any): Uint8Array | undefined {
  const op = { "POST /v1/vault/put": "put", "POST /v1/vault/get": "get", "POST /v1/vault/delete": "delete" }[route] as VaultOp | undefined;
  if (op) return vaultDigest(op, r.name, r.expected_version ?? 0, op === "put" ? unb64(r.value) : undefined, op === "put" ? unhex(r.owner, 32) : undefined, r.not_after);
  if (route === "POST /v1/musig2/keys/generate") return m2.requestDigest("key/generate", [unhex(r.owner, 32), unhex(r.request_id, 16)], r.not_after);
  return undefined;
}

test("rust-made: the enclave key derives from its seed", async () => {
  const server = await ServerKey.fromSeed(unhex(rust.server.seed));
  assert.equal(hex(server.publicKey), rust.server.public_key);
});

for (const e of rust.encap) {
  test(`rust-made ${e.name}: the request opens as the enclave opens it, and seals again to the same bytes`, async () => {
    const server = await ServerKey.fromSeed(unhex(rust.server.seed));
    const body = unhex(e.request);
    const { plaintext } = await server.openRequest(e.route, body, e.max_body);
    assert.equal(fromUtf8(plaintext), e.request_plaintext);
    const again = await sealRequestWithSeed(server.publicKey, e.route, utf8(e.request_plaintext), unhex(e.ephemeral_seed, 32));
    assert.equal(hex(again.body), e.request);
    // Bound to its route: no other endpoint opens it.
    await assert.rejects(server.openRequest("POST /v1/other", body), (err: unknown) => err instanceof EncapError && err.code === "encap_decrypt_failed");
    if (e.signed) {
      const request = JSON.parse(e.request_plaintext);
      const digest = unhex(e.signed.digest, 32);
      const mine = requestDigestOf(e.route, request);
      if (mine) assert.equal(hex(mine), e.signed.digest, "digest from the request's fields");
      const owner = unhex(e.signed.owner, 32);
      const sig = unhex(request.signature, 64);
      const message = e.signed.enclave_bound ? ownerMessage(server.publicKey, digest) : digest;
      assert.ok(verifyBip340(owner, message, sig), "the owner's signature verifies");
      if (e.signed.enclave_bound) {
        const otherKey = server.publicKey.slice();
        otherKey[0]! ^= 1;
        assert.ok(!verifyBip340(owner, ownerMessage(otherKey, digest), sig), "bound to this enclave key");
      }
    }
  });

  for (const [i, a] of e.answers.entries()) {
    test(`rust-made ${e.name} answer ${i} (${a.status}): opens as the client opens it, and seals again to the same bytes`, async () => {
      const server = await ServerKey.fromSeed(unhex(rust.server.seed));
      const { opener } = await sealRequestWithSeed(server.publicKey, e.route, utf8(e.request_plaintext), unhex(e.ephemeral_seed, 32));
      const opened = await opener.open(unhex(a.response));
      assert.equal(opened.status, a.status);
      assert.equal(fromUtf8(opened.plaintext), a.plaintext);
      const answer = JSON.parse(a.plaintext);
      if (a.status >= 300) {
        assert.equal(typeof answer.error.code, "string");
        assert.equal(typeof answer.error.message, "string");
      }
      const { sealer } = await server.openRequest(e.route, unhex(e.request), e.max_body);
      const sealed = await sealResponseWithNonce(sealer, e.route, a.status, utf8(a.plaintext), unhex(a.response_nonce, 32));
      assert.equal(hex(sealed), a.response);
      // A changed answer does not open.
      const t = unhex(a.response);
      t[t.length - 1]! ^= 1;
      const { opener: o2 } = await sealRequestWithSeed(server.publicKey, e.route, utf8(e.request_plaintext), unhex(e.ephemeral_seed, 32));
      await assert.rejects(o2.open(t), (err: unknown) => err instanceof EncapError && err.code === "encap_decrypt_failed");
    });
  }
}

test("rust-made signatures: the SDK signs the same bytes with the same key and aux, and verifies them", () => {
  assert.ok(rust.signatures.length >= 5);
  for (const s of rust.signatures) {
    const owner = new OwnerKey(unhex(s.secret_key, 32));
    assert.equal(hex(owner.xOnly), s.x_only, s.name);
    const digest = unhex(s.digest, 32);
    const aux = unhex(s.aux, 32);
    if (s.enclave_key === null) {
      assert.equal(s.message, s.digest, s.name);
      assert.equal(hex(owner.sign(digest, aux)), s.signature, s.name);
    } else {
      const key = unhex(s.enclave_key, 32);
      assert.equal(hex(ownerMessage(key, digest)), s.message, s.name);
      assert.equal(hex(owner.signFor(key, digest, aux)), s.signature, s.name);
    }
    assert.ok(verifyBip340(owner.xOnly, unhex(s.message, 32), unhex(s.signature, 64)), s.name);
    const other = unhex(s.message, 32);
    other[0]! ^= 1;
    assert.ok(!verifyBip340(owner.xOnly, other, unhex(s.signature, 64)), s.name);
  }
});

test("rust-made digests: the SDK computes every one from the same inputs", () => {
  const kinds = new Set<string>();
  for (const d of rust.digests) {
    kinds.add(d.kind);
    assert.equal(hex(recompute(d)), expectedOf(d), JSON.stringify(d));
  }
  for (const k of ["vault", "musig2_request", "aggregate_signed_spec", "session_signed_spec", "session_digest", "key_id_for_request", "inputs_sha256", "chonk_inputs_sha256"]) {
    assert.ok(kinds.has(k), `no ${k} digest`);
  }
});

test("rust-made sealed proving results: open under their key and id, and seal again to the same bytes", async () => {
  for (const r of rust.prove_results) {
    const key = unhex(r.result_key, 32);
    const plain = await openResult(key, r.id, unhex(r.sealed));
    assert.equal(fromUtf8(plain), r.plaintext);
    assert.equal(JSON.parse(r.plaintext).id, r.id);
    await assert.rejects(openResult(key, r.id + "0", unhex(r.sealed)));
    assert.equal(hex(await sealResult(key, r.id, unhex(r.nonce, 12), plain)), r.sealed);
  }
});

for (const u of rust.user_data) {
  test(`rust-made user_data ${u.name}: decoded with the same fields`, () => {
    assert.deepEqual({ ...decodeImageInfo(unhex(u.cbor)) }, u.json);
  });
  test(`rust-made user_data ${u.name}: encoded again byte for byte`, () => {
    const info = decodeImageInfo(unhex(u.cbor));
    assert.equal(hex(encodeImageInfo(info, (s) => unhex(s))), u.cbor);
  });
}

test("ts-made: the SDK still makes exactly the committed vectors", async () => {
  const made = vectorsText(await makeTsVectors());
  assert.ok(made === readFileSync(TS_MADE, "utf8"), "test/vectors/ts-made.json is not what the SDK makes: run `npm run vectors:ts` (and the Rust test)");
});

test("ts-made requests have the fields, in the order, that the SDK's client sends", async () => {
  // The client itself, against an in-process enclave side that records each opened request
  // and answers with the ts-made success answer for its route (the client's own checks may
  // then refuse that answer: only the request matters here).
  const ts = JSON.parse(readFileSync(TS_MADE, "utf8"));
  const server = await ServerKey.fromSeed(unhex(ts.server.seed));
  const sent = new Map<string, string[][]>();
  const fakeFetch = async (url: string, init: RequestInit): Promise<Response> => {
    const route = `POST ${new URL(url).pathname}`;
    const { plaintext, sealer } = await server.openRequest(route, init.body as Uint8Array);
    const keys = Object.keys(JSON.parse(fromUtf8(plaintext)));
    sent.set(route, [...(sent.get(route) ?? []), keys]);
    const answer = ts.encap.find((e: any) => e.route === route).answers[0];
    const body = await sealer.seal(route, answer.status, utf8(answer.plaintext));
    return new Response(body as BodyInit, { status: 200, headers: { "content-type": "application/sigil-encapsulated" } });
  };
  const client = new (SigilClient as any)("http://enclave.invalid", { publicKey: server.publicKey }, new Uint8Array(), fakeFetch) as SigilClient;
  const owner = new OwnerKey(unhex("11".repeat(32)));
  const quiet = (p: Promise<unknown>) => p.catch(() => undefined);
  await quiet(client.ping("ping from TypeScript: ünïcode ✓"));
  await quiet(client.vault.put(owner, "ts.entry-2", Uint8Array.of(1), { expectedVersion: 3 }));
  await quiet(client.vault.get(owner, "ts.entry-2"));
  await quiet(client.vault.delete(owner, "ts.entry-2", { expectedVersion: 4 }));
  await quiet(client.musig2.generateKey(owner));
  const approved = describe({ id: "01".repeat(32), aggregate: "02".repeat(16), keys: [key(), key()], tweaks: [], messages: [{ message: "a0".repeat(32) }], expiresAt: Math.floor(Date.now() / 1000) + 300 });
  await quiet(client.musig2.approve(owner, approved, { session: approved.id, key: { aggregate: approved.aggregate, internalKey: approved.internal_key }, tweaks: [], messages: approved.messages, expiresBy: approved.expires_at }));
  await quiet(client.submit({ scheme: "ultra_honk", circuit: Uint8Array.of(1), witness: Uint8Array.of(2), bbVersion: "4.1.2" }));
  await quiet(client.submit({ scheme: "chonk", ivcInputs: Uint8Array.of(3) }));
  for (const e of ts.encap) {
    const keys = Object.keys(JSON.parse(e.request_plaintext));
    assert.ok(sent.get(e.route)?.some((k) => k.join() === keys.join()), `${e.name}: the client sends ${JSON.stringify(sent.get(e.route))}, the vector ${JSON.stringify(keys)}`);
  }
});
