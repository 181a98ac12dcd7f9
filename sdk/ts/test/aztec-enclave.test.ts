// The Aztec prover against a local enclave (target/debug/sigil-local) serving bb 5.0.0 and bb
// 4.1.2 with the insecure test CRS of 131,072 points that the Chonk stacks need. Missing
// prerequisites fail the test with the command that makes them: never a silent skip.
//
// Under that CRS no Chonk proof can pass bb's own final check (bb's G2 point is Ignition's, the
// CRS's tau is 2), so the expected answer is a failed job: for the good stack bb 4.1.2 folds all
// four circuits and fails only its last pairing check; the unsatisfied stack fails earlier.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Unpackr } from "msgpackr";
import { decompressWitness } from "@aztec/noir-acvm_js";
import { WASMSimulator } from "@aztec/simulator/client";
import type { PrivateExecutionStep } from "@aztec/stdlib/kernel";
import { ProveError, SigilClient, SigilError } from "../src/index.js";
import type { JobStatus } from "../src/prove.js";
import { SigilAztecProver, servedBbVersions } from "../src/aztec/index.js";
import { readBytes, readJson, repoRoot } from "./paths.js";
import { checkPrerequisites, startLocal } from "./local.js";

const bb412 = join(repoRoot, "target/bb/4.1.2/bb");
const makeCrs = join(repoRoot, "scripts/insecure-test-crs");
const fixtures = join(repoRoot, "fixtures/chonk-4.1.2/test-crs");
const work = mkdtempSync(join(tmpdir(), "sigil-sdk-aztec-"));
let proc: ChildProcess | undefined;
let client: SigilClient;
let endpoint = "";

function steps(name: string): PrivateExecutionStep[] {
  const raw = new Unpackr({ useRecords: false }).unpack(readBytes(join(fixtures, name))) as { bytecode: Uint8Array; witness: Uint8Array; vk: Uint8Array; functionName: string }[];
  return raw.map((s) => ({ functionName: s.functionName, bytecode: Buffer.from(s.bytecode), witness: decompressWitness(s.witness), vk: Buffer.from(s.vk), timings: { witgen: 0 } }));
}

before(async () => {
  checkPrerequisites([
    [join(repoRoot, "target/bb/bb"), "scripts/fetch-bb"],
    [bb412, "scripts/fetch-bb --version 4.1.2"],
    [join(repoRoot, "target/bb/4.1.2/ld-linux-x86-64.so.2"), "scripts/fetch-bb --version 4.1.2 (bb 4.1.2's runtime)"],
    [join(fixtures, "ivc-inputs.msgpack"), "scripts/make-fixtures chonk-4.1.2"],
  ]);
  // The insecure CRS, made afresh (3 s) and checked against the one the fixtures' vks used.
  const crs = join(work, "bn254_g1.dat");
  const made = spawnSync(makeCrs, ["--points", "131072", "--out", crs], { encoding: "utf8" });
  assert.equal(made.status, 0, `scripts/insecure-test-crs failed: ${made.stderr}`);
  const want = readJson(join(fixtures, "crs.json"));
  assert.equal(JSON.parse(made.stdout).crs_sha256, want.crs_sha256, "the insecure CRS is not the fixtures'");

  ({ proc, endpoint } = await startLocal(["--dir", join(work, "deployment"), "--prover-crs", crs, "--prover-crs-points", "131072", "--bb-version", `4.1.2=${bb412}`]));
  client = await SigilClient.connect(endpoint, { trustTestRoot: true, maxAgeMs: 600_000 });
  for (let i = 0; ; i++) {
    const h = await client.health();
    if (h.crs?.state === "ready") break;
    assert.ok(i < 1200, `the CRS never became ready: ${JSON.stringify(h.crs)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
});

after(() => {
  proc?.kill("SIGTERM");
  rmSync(work, { recursive: true, force: true });
});

test("aztec enclave: the attestation lists bb 5.0.0 and 4.1.2; another version is refused by name", async () => {
  assert.deepEqual(servedBbVersions(client.attestation), ["5.0.0", "4.1.2"]);
  // This one connects (and verifies the attestation) itself, on first use.
  const prover = new SigilAztecProver(new WASMSimulator(), { endpoint, verify: { trustTestRoot: true, maxAgeMs: 600_000 }, bbVersion: "4.0.0" });
  await assert.rejects(prover.createChonkProof(steps("ivc-inputs.msgpack")), (e: unknown) => e instanceof SigilError && e.code === "unknown_bb_version" && /"4\.0\.0" \(it serves: 5\.0\.0, 4\.1\.2\)/.test(e.message));
});

test("aztec enclave: the 4.1.2 stack folds and fails only bb's final pairing check (insecure CRS)", { timeout: 600_000 }, async () => {
  const seen: JobStatus["state"][] = [];
  const prover = new SigilAztecProver(new WASMSimulator(), { client, onProgress: (s) => seen.push(s.state) });
  const t0 = Date.now();
  const err = await prover.createChonkProof(steps("ivc-inputs.msgpack")).then(
    () => assert.fail("a proof under the insecure CRS: bb's final check should have failed"),
    (e: unknown) => e,
  );
  console.log(`ivc-inputs (${Date.now() - t0} ms): ${err instanceof SigilError ? `${err.code}: ${err.message}` : String(err)}`);
  assert.ok(err instanceof ProveError, String(err));
  assert.equal(err.code, "prover_failed");
  // What the Rust client gets for bb 5.0.0's stack too (tests/tests/prove.rs): the enclave
  // reports bb's last line. Before it bb 4.1.2 prints "UltraVerifier: verification failed at
  // pairing check" and "ChonkVerifier: verification failed at MegaZK verification step" (5.0.0:
  // "... at PI pairing points check"); an unsatisfied stack is told apart by its builder
  // failures (next test).
  assert.equal(err.message, "sigil Chonk proof (bb 4.1.2) failed: prover_failed: bb prove failed (exit code 1): Failed to verify the generated proof!");
  // Long-polls: each answer is reported, the last one when the job ended.
  assert.ok(seen.length > 0 && seen[seen.length - 1] === "ended", `progress was reported: ${seen.join(",")}`);
});

test("aztec enclave: the unsatisfied 4.1.2 stack fails differently", { timeout: 600_000 }, async () => {
  const prover = new SigilAztecProver(new WASMSimulator(), { client });
  const err = await prover.createChonkProof(steps("unsatisfied.msgpack")).then(
    () => assert.fail("an unsatisfied stack proved"),
    (e: unknown) => e,
  );
  console.log(`unsatisfied: ${err instanceof SigilError ? `${err.code}: ${err.message}` : String(err)}`);
  assert.ok(err instanceof ProveError, String(err));
  assert.equal(err.code, "unsatisfied");
  assert.doesNotMatch(err.message, /MegaZK verification step/);
});
