// The shared vectors: real Nitro documents (and tampered variants made from them), RFC 9180
// HPKE, BIP-340. Every refusal must name the check that failed.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { AttestationError, verifyAttestation, type VerifyOptions } from "../src/index.js";
import { suite } from "../src/encap.js";
import { schnorr } from "@noble/curves/secp256k1.js";
import { buf, hex, unhex } from "../src/bytes.js";
import { readBytes, readJson, shared } from "./paths.js";

const nitro = `${shared}vectors/nitro/`;
const index: any[] = readJson(`${nitro}INDEX.json`);

async function refused(doc: Uint8Array, opts: VerifyOptions, check: string): Promise<void> {
  await assert.rejects(verifyAttestation(doc, opts), (e: unknown) => {
    assert.ok(e instanceof AttestationError, `not an AttestationError: ${e}`);
    assert.equal(e.check, check, e.message);
    return true;
  });
}

function flip(doc: Uint8Array, at: number): Uint8Array {
  const t = doc.slice();
  t[at]! ^= 0x01;
  return t;
}

function find(hay: Uint8Array, needle: Uint8Array): number {
  outer: for (let i = 0; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

for (const entry of index) {
  const name: string = entry.file;
  const doc = readBytes(nitro + "docs/" + name);
  const at = new Date(entry.verify_at_unix_seconds * 1000);
  const base: VerifyOptions = { now: at, requireSigil: false };

  test(`nitro ${name}: accepted at its own time, with its measurements`, async () => {
    const v = await verifyAttestation(doc, base);
    assert.equal(v.rootName, "aws");
    assert.equal(v.simulated, false);
    assert.equal(v.moduleId, entry.module_id);
    assert.equal(v.timestamp.getTime(), entry.timestamp_ms);
    assert.equal(v.pcrs[0], entry.pcr0);
    assert.equal(v.nonce?.length ?? null, entry.nonce_len);
    // base64 form is the same document
    const b64 = readFileSync(nitro + "docs/" + name.replace(".cbor", ".b64"), "utf8").trim();
    assert.deepEqual(new Uint8Array(Buffer.from(b64, "base64")), doc);
  });

  test(`nitro ${name}: policy checks (PCR pin, nonce, age) pass when right and name themselves when wrong`, async () => {
    const v = await verifyAttestation(doc, { ...base, pcrs: { 0: entry.pcr0 }, maxAgeMs: 60_000, ...(entry.nonce_len ? { nonce: (await verifyAttestation(doc, base)).nonce! } : {}) });
    assert.equal(v.pcrs[0], entry.pcr0);
    await refused(doc, { ...base, pcrs: { 0: "00".repeat(47) + "01" } }, "pcr");
    await refused(doc, { ...base, pcrs: { 31: "11".repeat(48) } }, "pcr");
    await refused(doc, { ...base, nonce: new Uint8Array(20).fill(7) }, "nonce");
    await refused(doc, { ...base, now: new Date(at.getTime() + 600_000), maxAgeMs: 60_000 }, "age");
    await refused(doc, { ...base, now: new Date(at.getTime() - 120_000), maxAgeMs: 60_000 }, "validity");
    // A sigil client needs a 32-byte X25519 key and a sigil user_data: these are not sigil's.
    await refused(doc, { now: at }, "public_key");
  });

  test(`nitro ${name}: expired now, and the chain's ends are enforced`, async () => {
    await refused(doc, { requireSigil: false }, "validity");
    await refused(doc, { ...base, now: new Date(Date.parse(entry.chain_validity_window_utc[1]) + 1000) }, "validity");
    await refused(doc, { ...base, now: new Date(Date.parse(entry.chain_validity_window_utc[0]) - 1000) }, "validity");
  });

  test(`nitro ${name}: tampered variants are refused by the right check`, async () => {
    // The COSE signature: its last byte.
    await refused(flip(doc, doc.length - 1), base, "cose_signature");
    // The payload's timestamp/module_id region: parses, but the signature no longer covers it.
    const mid = find(doc, new TextEncoder().encode(entry.module_id));
    assert.ok(mid > 0);
    await refused(flip(doc, mid + 3), base, "cose_signature");
    // The pinned root inside cabundle: no longer the AWS root.
    const root = readBytes(`${nitro}root/AWS_NitroEnclaves_Root-G1.der`);
    const r = find(doc, root);
    assert.ok(r > 0, "the root is in the bundle");
    await refused(flip(doc, r + 200), base, "root");
    // A byte of the leaf certificate's signed part: its issuer's signature fails.
    const v = await verifyAttestation(doc, base);
    assert.ok(v);
    const leafStart = find(doc, unhex("3082")); // first DER certificate in the payload
    assert.ok(leafStart > 0);
    await refused(flip(doc, leafStart + 40), base, "chain");
    // Truncated, trailing bytes, wrong algorithm header.
    await refused(doc.subarray(0, doc.length - 10), base, "parse");
    const trailing = new Uint8Array(doc.length + 1);
    trailing.set(doc);
    await refused(trailing, base, "parse");
    const alg = find(doc, unhex("a1013822"));
    const es256 = doc.slice();
    es256[alg + 3] = 0x26; // -7, ES256
    await refused(es256, base, "parse");
    // The sigil test root is not trusted unless asked: here nothing chains to it anyway, so
    // trusting it changes nothing about an AWS document.
    const t = await verifyAttestation(doc, { ...base, trustTestRoot: true });
    assert.equal(t.rootName, "aws");
  });
}

test("RFC 9180 base mode DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 / AES-256-GCM: sender and receiver", async () => {
  const vectors: any[] = readJson(`${shared}vectors/hpke/base_x25519_hkdfsha256_aes256gcm.json`);
  assert.ok(vectors.length >= 1);
  for (const v of vectors) {
    const rkp = await suite.kem.deriveKeyPair(buf(unhex(v.ikmR)));
    assert.equal(hex(new Uint8Array(await suite.kem.serializePublicKey(rkp.publicKey))), v.pkRm);
    const sender = await suite.createSenderContext({ recipientPublicKey: rkp.publicKey, info: buf(unhex(v.info)), ekm: buf(unhex(v.ikmE)) });
    assert.equal(hex(new Uint8Array(sender.enc)), v.enc);
    const recipient = await suite.createRecipientContext({ recipientKey: rkp, enc: sender.enc, info: buf(unhex(v.info)) });
    for (const [seq, e] of v.encryptions.entries()) {
      const ct = new Uint8Array(await sender.seal(buf(unhex(e.pt)), buf(unhex(e.aad))));
      assert.equal(hex(ct), e.ct, `seq ${seq}`);
      assert.equal(hex(new Uint8Array(await recipient.open(buf(ct), buf(unhex(e.aad))))), e.pt);
    }
    for (const x of v.exports) {
      assert.equal(hex(new Uint8Array(await sender.export(buf(unhex(x.exporter_context)), x.L))), x.exported_value);
    }
  }
});

test("BIP-340 vectors: signing reproduces, verification agrees", () => {
  const rows = readFileSync(`${shared}vectors/bip340/test-vectors.csv`, "utf8").trim().split("\n").slice(1);
  assert.ok(rows.length >= 15);
  for (const row of rows) {
    const [i, sk, pk, aux, msg, sig, result] = row.split(",");
    const m = unhex(msg!.toLowerCase());
    if (sk) {
      assert.equal(hex(schnorr.sign(m, unhex(sk.toLowerCase()), unhex(aux!.toLowerCase()))), sig!.toLowerCase(), `vector ${i}`);
    }
    let ok: boolean;
    try {
      ok = schnorr.verify(unhex(sig!.toLowerCase()), m, unhex(pk!.toLowerCase()));
    } catch {
      ok = false;
    }
    assert.equal(ok, result === "TRUE", `vector ${i}`);
  }
});
