// Refusals a security review asked for: an AWS enclave whose image is not pinned, a hostile
// relay streaming an endless answer, a certificate key that is not a curve point, and no
// deterministic sealing in the package's API.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import { readFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import * as sdk from "../src/index.js";
import { AttestationError, ResponseOpener, ServerKey, SigilClient, SigilError, requirePinnedImage, sealRequest, verifyAttestation, type VerifyOptions } from "../src/index.js";
import { parseCose, verifyEs384 } from "../src/attestation/cose.js";
import { MAX_RESPONSE } from "../src/client.js";
import { equal, hex, unhex, utf8 } from "../src/bytes.js";
import { pkgRoot, readBytes, readJson, shared } from "./paths.js";

const nitro = `${shared}vectors/nitro/`;
const index: any[] = readJson(`${nitro}INDEX.json`);

function find(hay: Uint8Array, needle: Uint8Array, from = 0): number {
  outer: for (let i = from; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

async function refused(p: Promise<unknown>, check: string): Promise<AttestationError> {
  let err: unknown;
  await assert.rejects(p, (e: unknown) => {
    err = e;
    assert.ok(e instanceof AttestationError, `not an AttestationError: ${e}`);
    assert.equal(e.check, check, e.message);
    return true;
  });
  return err as AttestationError;
}

// 1. An AWS document proves only that some enclave answered; PCR0 says which image.
for (const entry of index) {
  test(`pin: a genuine AWS document (${entry.file}) is refused without a PCR0 pin, unless anyImage`, async () => {
    const doc = readBytes(nitro + "docs/" + entry.file);
    const v = await verifyAttestation(doc, { now: new Date(entry.verify_at_unix_seconds * 1000), requireSigil: false });
    assert.equal(v.rootName, "aws");
    const e = await refused(Promise.resolve().then(() => requirePinnedImage(v, {})), "pcr");
    assert.match(e.message, /pcrPinsFromManifest\(pcr-manifest\.json\)/);
    await refused(Promise.resolve().then(() => requirePinnedImage(v, { pcrs: { 1: "11".repeat(48) } })), "pcr");
    await refused(Promise.resolve().then(() => requirePinnedImage(v, { pcrs: { 0: "" } })), "pcr");
    requirePinnedImage(v, { pcrs: { 0: entry.pcr0 } });
    requirePinnedImage(v, { anyImage: true });
    // A simulated document is accepted only with trustTestRoot, and needs no pin.
    requirePinnedImage({ rootName: "sigil-test" }, {});
  });
}

test("pin: the Aztec prover needs verify.pcrs, anyImage, the test root or a client", async () => {
  const { SigilAztecProver } = await import("../src/aztec/index.js");
  const { WASMSimulator } = await import("@aztec/simulator/client");
  const sim = new WASMSimulator();
  for (const verify of [undefined, {}, { maxAgeMs: 1000 }, { pcrs: { 1: "11".repeat(48) } }]) {
    assert.throws(
      () => new SigilAztecProver(sim, { endpoint: "https://prover.example", ...(verify ? { verify } : {}) }),
      (e: unknown) => e instanceof AttestationError && e.check === "pcr" && /verify\.pcrs/.test(e.message),
    );
  }
  new SigilAztecProver(sim, { endpoint: "https://prover.example", verify: { pcrs: { 0: "11".repeat(48) } } });
  new SigilAztecProver(sim, { endpoint: "https://prover.example", verify: { anyImage: true } });
  new SigilAztecProver(sim, { endpoint: "https://prover.example", verify: { trustTestRoot: true } });
});

// 3. The parent relays every answer: a missing or lying content-length must not make the client
// buffer more than its limit.
async function listen(handler: Parameters<typeof createServer>[1]): Promise<{ server: Server; url: string }> {
  const server = createServer(handler);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

test("readLimited: an endless answer without content-length is cut off past the limit", { timeout: 120_000 }, async () => {
  const total = 128 << 20;
  let written = 0;
  let ended = false;
  let onClose = () => {};
  const closed = new Promise<void>((r) => (onClose = r));
  const { server, url } = await listen(async (_req, res) => {
    res.on("close", onClose);
    res.writeHead(200, { "content-type": "application/json" }); // chunked: no length stated
    const chunk = new Uint8Array(64 << 10).fill(0x20);
    while (written < total && !res.destroyed) {
      written += chunk.length;
      if (!res.write(chunk)) {
        await new Promise<void>((r) => {
          const go = () => {
            res.off("drain", go).off("close", go);
            r();
          };
          res.on("drain", go).on("close", go);
        });
      }
    }
    ended = !res.destroyed;
    res.end();
  });
  try {
    await assert.rejects(SigilClient.connect(url, { anyImage: true }), (e: unknown) => e instanceof SigilError && e.code === "transport" && /exceeds the \d+-byte limit/.test(e.message));
    await closed;
  } finally {
    server.close();
  }
  // Cancelled once past the limit: the relay never got to send its 128 MiB (socket buffers
  // hold a few MiB at most).
  assert.equal(ended, false, `the whole ${total}-byte answer was read`);
  assert.ok(written < MAX_RESPONSE + (32 << 20), `${written} bytes were sent before the client hung up`);
});

test("readLimited: a stated content-length over the limit is refused before the body is read", async () => {
  let sent = 0;
  const { server, url } = await listen((_req, res) => {
    res.writeHead(200, { "content-type": "application/json", "content-length": String(10 * 2 ** 30) });
    const chunk = new Uint8Array(1 << 20);
    const pump = () => {
      while (!res.destroyed && sent < 64 << 20 && res.write(chunk)) sent += chunk.length;
      if (!res.destroyed && sent < 64 << 20) res.once("drain", pump);
    };
    pump();
  });
  try {
    await assert.rejects(SigilClient.connect(url, { anyImage: true }), (e: unknown) => e instanceof SigilError && e.code === "transport" && /of 10737418240 bytes/.test(e.message));
  } finally {
    server.closeAllConnections();
    server.close();
  }
});

test("readLimited: an answer within the limit is read whole, whatever its chunking", async () => {
  const { server, url } = await listen((_req, res) => {
    res.writeHead(404, { "content-type": "application/json" });
    res.write('{"error":{"code":"not_found",');
    res.end('"message":"no such route"}}');
  });
  try {
    await assert.rejects(SigilClient.connect(url, { anyImage: true }), (e: unknown) => e instanceof SigilError && e.code === "not_found" && e.status === 404);
  } finally {
    server.close();
  }
});

// 4. A certificate key that is not a P-384 point: named by the check, not WebCrypto's DataError.
const SPKI_P384 = unhex("036200" + "04"); // BIT STRING, 98 bytes, no unused bits, uncompressed

for (const entry of index) {
  const doc = readBytes(nitro + "docs/" + entry.file);
  const base: VerifyOptions = { now: new Date(entry.verify_at_unix_seconds * 1000), requireSigil: false };
  // In payload order: the leaf's key, then cabundle's (root first, the leaf's issuer last).
  const keys: number[] = [];
  for (let at = find(doc, SPKI_P384); at >= 0; at = find(doc, SPKI_P384, at + 1)) keys.push(at + SPKI_P384.length);

  test(`key import: ${entry.file}: a flipped byte in an intermediate's or the leaf's key is named`, async () => {
    assert.ok(keys.length >= 4, `${keys.length} P-384 keys found`);
    const flipped = (at: number) => {
      const t = doc.slice();
      t[at + 10]! ^= 0x01; // inside x: no longer a point on the curve
      return t;
    };
    // Every intermediate (cabundle[1..]): its key checks the signature of the one below it.
    for (const at of keys.slice(2)) await refused(verifyAttestation(flipped(at), base), "chain");
    // The leaf's key is inside its signed part: its issuer's signature fails first (as in Rust).
    await refused(verifyAttestation(flipped(keys[0]!), base), "chain");
    // Given the COSE signature check directly, an off-curve leaf key is that check's failure.
    const leaf = doc.slice(keys[0]!, keys[0]! + 97);
    leaf[10]! ^= 0x01;
    await refused(verifyEs384(parseCose(doc), leaf), "cose_signature");
  });
}

// 5. Deterministic sealing is not in the package's API.
test("encap: the published API draws its own ephemeral keys and response nonces", async () => {
  const server = await ServerKey.fromSeed(new Uint8Array(32).fill(3));
  const seed = new Uint8Array(32).fill(7);
  const a = await (sealRequest as any)(server.publicKey, "POST /v1/ping", utf8("{}"), seed);
  const b = await (sealRequest as any)(server.publicKey, "POST /v1/ping", utf8("{}"), seed);
  assert.ok(!equal(a.body, b.body), "a seed passed to sealRequest was used");
  const { sealer } = await server.openRequest("POST /v1/ping", a.body);
  const nonce = new Uint8Array(32).fill(9);
  const answer: Uint8Array = await (sealer.seal as any)("POST /v1/ping", 200, utf8("{}"), nonce);
  assert.ok(!equal(answer.subarray(0, 32), nonce), "a nonce passed to ResponseSealer.seal was used");
  for (const name of ["sealRequestWithSeed", "sealResponseWithNonce", "sealRequestInternal", "sealResponseInternal"]) {
    assert.equal(name in sdk, false, `${name} is exported by the package`);
  }
  const exports = JSON.parse(readFileSync(`${pkgRoot}package.json`, "utf8")).exports;
  assert.deepEqual(Object.keys(exports), [".", "./aztec"]);
  // The opener forgets its secret once used.
  const opened = await a.opener.open(answer);
  assert.equal(opened.status, 200);
  assert.ok(a.opener instanceof ResponseOpener);
  assert.equal(hex((a.opener as any).secret), "00".repeat(32), "the opener's secret is zeroed after open");
  await assert.rejects(a.opener.open(answer), (e: unknown) => e instanceof SigilError && e.code === "encap_internal");
  // Also after a failed open.
  const c = await sealRequest(server.publicKey, "POST /v1/ping", utf8("{}"));
  await assert.rejects(c.opener.open(new Uint8Array(10)), (e: unknown) => e instanceof SigilError && e.code === "encap_malformed");
  assert.equal(hex((c.opener as any).secret), "00".repeat(32));
});
