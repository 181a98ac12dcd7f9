// Against a real local deployment (target/debug/sigil-local: the enclave binary in local
// mode, its shim, a development KMS, a prover running the host's bb). Missing binaries fail
// the test with the command that builds them: never a silent skip.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AttestationError, OwnerKey, ProveError, SigilClient, SigilError, SignerKey, verifyAttestation } from "../src/index.js";
import { MAX_IVC_INPUTS, type JobStatus } from "../src/prove.js";
import { schnorr } from "@noble/curves/secp256k1.js";
import { hex, randomBytes, unhex } from "../src/bytes.js";
import { readBytes, repoRoot, shared } from "./paths.js";
import { checkPrerequisites, startLocal } from "./local.js";

const bb = join(repoRoot, "target/bb/bb");
const crs = join(shared, "crs/bn254_g1.dat");
let proc: ChildProcess | undefined;
let endpoint = "";
let client: SigilClient;
const work = mkdtempSync(join(tmpdir(), "sigil-sdk-"));

before(async () => {
  checkPrerequisites([
    [bb, "scripts/fetch-bb"],
    [crs, "the shared directory beside the checkout"],
  ]);
  ({ proc, endpoint } = await startLocal(["--dir", join(work, "deployment"), "--prover-crs", crs]));
  client = await SigilClient.connect(endpoint, { trustTestRoot: true, maxAgeMs: 300_000 });
});

after(() => {
  proc?.kill("SIGTERM");
  rmSync(work, { recursive: true, force: true });
});

test("attestation: the sigil test root only when asked, simulated, fresh nonce, a sigil image", async () => {
  const a = client.attestation;
  assert.equal(a.rootName, "sigil-test");
  assert.equal(a.simulated, true);
  assert.equal(a.publicKey.length, 32);
  assert.equal(a.userData.mode, "local");
  assert.equal(a.userData.protocol, 1);
  assert.match(a.userData.node ?? "", /^[0-9a-f]{64}$/, "the node identity is in user_data once sealing is open");
  assert.ok(a.userData.bb, "the prover is named in user_data");
  assert.equal(a.nonce?.length, 32);
  // The same document: refused without trustTestRoot (root), as debug when debug is refused.
  await assert.rejects(verifyAttestation(client.document), (e: unknown) => e instanceof AttestationError && e.check === "root");
  await assert.rejects(verifyAttestation(client.document, { trustTestRoot: true, allowDebug: false }), (e: unknown) => e instanceof AttestationError && e.check === "debug_mode");
  await assert.rejects(verifyAttestation(client.document, { trustTestRoot: true, nonce: randomBytes(32) }), (e: unknown) => e instanceof AttestationError && e.check === "nonce");
  await assert.rejects(SigilClient.connect(endpoint), (e: unknown) => e instanceof AttestationError && e.check === "root");
  const h = await client.health();
  assert.equal(h.mode, "local");
});

test("ping: a sealed round trip", async () => {
  const t0 = performance.now();
  const r = await client.ping("hello from TypeScript");
  const ms = performance.now() - t0;
  assert.equal(r.message, "hello from TypeScript");
  assert.ok(Math.abs(r.enclaveTimeMs - Date.now()) < 60_000);
  console.log(`# ping round trip: ${ms.toFixed(1)} ms`);
});

// A get names no owner: another key's signature is checked against the entry's owner and fails.
test("vault: put, get, delete; another owner is refused", async () => {
  const owner = OwnerKey.generate();
  const other = OwnerKey.generate();
  const value = randomBytes(1000);
  const w = await client.vault.put(owner, "ts-secret", value);
  assert.equal(w.version, 1);
  const g = await client.vault.get(owner, "ts-secret");
  assert.deepEqual(g.value, value);
  assert.equal(g.version, 1);
  await assert.rejects(client.vault.get(other, "ts-secret"), (e: unknown) => e instanceof SigilError && e.code === "bad_signature" && e.status === 401);
  await assert.rejects(client.vault.put(owner, "ts-secret", value, { expectedVersion: 5 }), (e: unknown) => e instanceof SigilError && e.code === "version_conflict" && e.status === 409);
  await client.vault.delete(owner, "ts-secret", { expectedVersion: 1 });
  await assert.rejects(client.vault.get(owner, "ts-secret"), (e: unknown) => e instanceof SigilError && e.status === 404);
});

test("MuSig2: an enclave-held key and a TypeScript external signer sign together", async () => {
  const owner = OwnerKey.generate();
  const held = await client.musig2.generateKey(owner);
  const signer = SignerKey.generate();
  const agg = await client.musig2.createAggregate(owner, { participants: [{ key_id: held.id }, { public_key: hex(signer.publicKey) }], order: "sorted" });
  const message = hex(randomBytes(32));
  const expiresAt = Math.floor(Date.now() / 1000) + 300;
  const view = await client.musig2.createSession(owner, { aggregate: agg.id, messages: [{ message }], expiresAt });
  assert.equal(view.output_keys[0], agg.output_xonly);
  // What each means to sign: the owner names the aggregate, the signer the key it signs for.
  const intended = { session: view.id, tweaks: [], messages: [{ message }], expiresBy: expiresAt };
  await assert.rejects(
    client.musig2.approve(owner, view, { ...intended, key: { aggregate: agg.id, internalKey: agg.internal_key }, messages: [{ message: hex(randomBytes(32)) }] }),
    (e: unknown) => e instanceof SigilError && e.code === "session_mismatch" && /message 0/.test(e.message),
  );
  await client.musig2.approve(owner, view, { ...intended, key: { aggregate: agg.id, internalKey: agg.internal_key } });
  const status = await client.musig2.participate(signer, view, { ...intended, key: { outputKey: agg.output_xonly } });
  let done = status;
  for (let i = 0; done.state !== "completed" && i < 50; i++) {
    await new Promise((r) => setTimeout(r, 100));
    done = (await client.musig2.session(view.id)).status;
  }
  assert.equal(done.state, "completed", JSON.stringify(done));
  const sig = done.signatures?.[0]?.signature;
  assert.ok(sig);
  assert.ok(schnorr.verify(unhex(sig), unhex(message), unhex(agg.output_xonly)), "the aggregate BIP-340 signature verifies");
  assert.ok(!schnorr.verify(unhex(sig), randomBytes(32), unhex(agg.output_xonly)));
});

async function waitCrs(): Promise<void> {
  for (let i = 0; i < 600; i++) {
    const h = await client.health();
    if (h.crs?.state === "ready") return;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail("the CRS never became ready");
}

test("prove: the tiny fixture proves, and the host's bb verifies the proof", { timeout: 600_000 }, async () => {
  await waitCrs();
  const circuit = readBytes(join(repoRoot, "fixtures/tiny/target.json"));
  const witness = readBytes(join(repoRoot, "fixtures/tiny/witness.gz"));
  const seen: JobStatus[] = [];
  const p = await client.prove({ scheme: "ultra_honk", circuit, witness }, { onProgress: (s) => seen.push(s), pollMs: 100 });
  assert.ok(p.proof.length > 1000);
  assert.ok(p.vk.length > 0);
  assert.ok(seen.length >= 1 && seen.at(-1)!.state === "ended");
  const out = join(work, "proof");
  mkdirSync(out);
  writeFileSync(join(out, "proof"), p.proof);
  writeFileSync(join(out, "public_inputs"), p.publicInputs);
  writeFileSync(join(out, "vk"), p.vk);
  // bb writes into its CRS directory: a link to the shared file in a directory of ours.
  const crsDir = join(work, "crs");
  mkdirSync(crsDir);
  symlinkSync(crs, join(crsDir, "bn254_g1.dat"));
  const v = spawnSync(bb, ["verify", "--scheme", "ultra_honk", "-t", "noir-recursive", "-p", join(out, "proof"), "-i", join(out, "public_inputs"), "-k", join(out, "vk"), "-c", crsDir]);
  assert.equal(v.status, 0, `bb verify: ${v.stderr}`);
  // A witness that does not fit the circuit: the job fails with the prover's code.
  const bad = await client.prove({ scheme: "ultra_honk", circuit, witness: randomBytes(64) }).then(
    () => assert.fail("garbage witness proved"),
    (e: unknown) => e,
  );
  assert.ok(bad instanceof ProveError, String(bad));
  assert.ok(bad.message.length > 0);
});

test("prove: dropped status polls are retried, not taken for the job's end", { timeout: 600_000 }, async () => {
  await waitCrs();
  // A relay that drops the first three status polls: the wait goes on and gets the proof.
  let dropped = 0;
  const flaky: typeof fetch = async (input, init) => {
    const url = String(input instanceof Request ? input.url : input);
    if (url.includes("/v1/prove/") && (init?.method ?? "GET") === "GET" && dropped < 3) {
      dropped++;
      throw new TypeError("connection reset");
    }
    return fetch(input, init);
  };
  const c = await SigilClient.connect(endpoint, { trustTestRoot: true, fetch: flaky });
  const circuit = readBytes(join(repoRoot, "fixtures/tiny/target.json"));
  const witness = readBytes(join(repoRoot, "fixtures/tiny/witness.gz"));
  const p = await c.prove({ scheme: "ultra_honk", circuit, witness }, { pollMs: 20 });
  assert.equal(dropped, 3);
  assert.ok(p.proof.length > 1000);
  // A long-poll on a job that ends answers when it ends, well before its wait.
  const job0 = await client.submit({ scheme: "ultra_honk", circuit, witness });
  const t = Date.now();
  const s0 = await client.status(job0.submitted.id, { waitS: 20 });
  assert.equal(s0.state, "ended");
  assert.ok(s0.sealed);
  assert.ok(Date.now() - t < 20_000, `answered after ${Date.now() - t} ms`);
  assert.ok(p.proof.length > 1000);
  // A relay that never answers a poll: the wait ends at its time limit, as a timeout.
  const dead: typeof fetch = async (input, init) => {
    const url = String(input instanceof Request ? input.url : input);
    if (url.includes("/v1/prove/") && (init?.method ?? "GET") === "GET") throw new TypeError("connection reset");
    return fetch(input, init);
  };
  const d = await SigilClient.connect(endpoint, { trustTestRoot: true, fetch: dead });
  const job = await d.submit({ scheme: "ultra_honk", circuit, witness });
  await assert.rejects(d.wait(job, { pollMs: 20, timeoutMs: 500 }), (e: unknown) => e instanceof SigilError && e.code === "timeout" && /connection reset/.test(e.message));
});

test("prove: a 64 MiB submission is accepted, one byte more is refused", { timeout: 600_000 }, async () => {
  const stack = new Uint8Array(MAX_IVC_INPUTS).fill(0xc1);
  const job = await client.submit({ scheme: "chonk", ivcInputs: stack });
  assert.match(job.submitted.id, /^[0-9a-f]{32}$/);
  const big = new Uint8Array(MAX_IVC_INPUTS + 1).fill(0xc1);
  await assert.rejects(client.submit({ scheme: "chonk", ivcInputs: big }), (e: unknown) => e instanceof SigilError && e.status === 413);
});
