// The Aztec prover without an enclave: the stack it sends is byte for byte what Aztec's native
// prover writes for bb (checked on the committed bb 4.1.2 fixture), it refuses an image that
// does not serve its bb version, and it turns bb's answer into what the local prover returns.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { Unpackr } from "msgpackr";
import { decompressWitness } from "@aztec/noir-acvm_js";
import { CHONK_PROOF_LENGTH } from "@aztec/constants";
import { WASMSimulator } from "@aztec/simulator/client";
import { serializePrivateExecutionSteps, type PrivateExecutionStep } from "@aztec/stdlib/kernel";
import { ChonkProofWithPublicInputs } from "@aztec/stdlib/proofs";
import { ProveError, SigilError, type ProveRequest, type ProveResult } from "../src/index.js";
import type { VerifiedAttestation } from "../src/attestation/verify.js";
import { encodeImageInfo, type ImageInfo } from "../src/userData.js";
import { unhex } from "../src/bytes.js";
import { SigilAztecProver, chonkInputs, chonkProofFromBb, servedBbVersions, type ChonkProvingClient } from "../src/aztec/index.js";
import { readBytes, repoRoot } from "./paths.js";

const fixture412 = (name: string) => join(repoRoot, "fixtures/chonk-4.1.2/test-crs", name);

/** PrivateExecutionSteps from a bb input stack, with Aztec's own decoders: the witness back to
 * the WitnessMap a PXE holds (Aztec's serializeWitness wrote it). */
function stepsFromStack(stack: Uint8Array): PrivateExecutionStep[] {
  const raw = new Unpackr({ useRecords: false }).unpack(stack) as { bytecode: Uint8Array; witness: Uint8Array; vk: Uint8Array; functionName: string }[];
  return raw.map((s) => ({
    functionName: s.functionName,
    bytecode: Buffer.from(s.bytecode),
    witness: decompressWitness(s.witness),
    vk: Buffer.from(s.vk),
    timings: { witgen: 0 },
  }));
}

test("aztec: the 4.1.2 fixture stack is exactly Aztec's serialization of its steps", () => {
  for (const name of ["ivc-inputs.msgpack", "unsatisfied.msgpack"]) {
    const stack = readBytes(fixture412(name));
    const steps = stepsFromStack(stack);
    assert.deepEqual(steps.map((s) => s.functionName), ["app", "init", "tail", "hiding"]);
    assert.ok(steps.every((s) => s.vk.length === 127 * 32), "bb 4.1.2's Mega vks");
    // Compared as bytes (msgpackr hangs a DataView on the buffers it returns).
    assert.ok(Buffer.from(serializePrivateExecutionSteps(steps)).equals(stack), `${name}: Aztec's serialization differs`);
    assert.ok(Buffer.from(chonkInputs(steps)).equals(stack), `${name}: the prover's stack differs`);
  }
});

// A client that records what it is asked and answers as told.
function fakeClient(served: string[] | undefined, answer: (req: ProveRequest) => ProveResult): ChonkProvingClient & { requests: ProveRequest[] } {
  const info: ImageInfo = { protocol: 1, sigil: "0.1.0", mode: "local", capabilities: ["prove"], bb: { version: "5.0.0-nightly.20260710", sha256: "00".repeat(32) } };
  if (served) info.bbs = served.map((name) => ({ name, version: name, sha256: "00".repeat(32) }));
  const raw = encodeImageInfo(info, unhex);
  const requests: ProveRequest[] = [];
  return {
    requests,
    attestation: { userData: info, userDataRaw: raw } as unknown as VerifiedAttestation,
    async prove(req) {
      requests.push(req);
      return answer(req);
    },
  };
}

const fakeProof = () => {
  const p = new Uint8Array((CHONK_PROOF_LENGTH + 1) * 32);
  for (let i = 0; i < p.length; i += 32) p[i + 31] = i / 32;
  return p;
};

test("aztec: createChonkProof sends Aztec's stack with bbVersion 4.1.2 and returns what the local prover would", async () => {
  const stack = readBytes(fixture412("ivc-inputs.msgpack"));
  const proof = fakeProof();
  const client = fakeClient(["5.0.0", "4.1.2"], () => ({ proof, publicInputs: new Uint8Array(), vk: new Uint8Array(), vkHash: new Uint8Array(), result: {} as ProveResult["result"] }));
  const prover = new SigilAztecProver(new WASMSimulator(), { client });
  const got = await prover.createChonkProof(stepsFromStack(stack));
  assert.equal(client.requests.length, 1);
  assert.equal(client.requests[0]!.scheme, "chonk");
  assert.equal(client.requests[0]!.bbVersion, "4.1.2");
  assert.ok(Buffer.from(client.requests[0]!.ivcInputs!).equals(stack), "the stack sent is Aztec's");
  // What BBPrivateKernelProver does with bb.js's answer (one 32-byte buffer per field).
  const fields = Array.from({ length: proof.length / 32 }, (_, i) => proof.subarray(32 * i, 32 * i + 32));
  const local = ChonkProofWithPublicInputs.fromBufferArray(fields);
  assert.ok(got instanceof ChonkProofWithPublicInputs);
  assert.deepEqual(got.toBuffer(), local.toBuffer());
  assert.equal(got.getPublicInputs().length, 1);
  assert.throws(() => chonkProofFromBb(proof.subarray(1)), (e: unknown) => e instanceof SigilError && e.code === "protocol");
});

test("aztec: an image that does not serve bb 4.1.2 is refused by name, before anything is sent", async () => {
  for (const served of [undefined, ["5.0.0"]]) {
    const client = fakeClient(served, () => assert.fail("nothing may be sent"));
    assert.deepEqual(servedBbVersions(client.attestation), served ?? ["5.0.0"]);
    const prover = new SigilAztecProver(new WASMSimulator(), { client });
    await assert.rejects(prover.createChonkProof([]), (e: unknown) => {
      assert.ok(e instanceof SigilError);
      assert.equal(e.code, "unknown_bb_version");
      assert.match(e.message, /does not serve bb "4\.1\.2" \(it serves: 5\.0\.0\)/);
      return true;
    });
    assert.equal(client.requests.length, 0);
  }
});

test("aztec: a failed job surfaces as a ProveError naming the job's code and bb's message", async () => {
  const client = fakeClient(["4.1.2"], () => {
    throw new ProveError("prover_failed", "Failed to verify the generated proof!", "0".repeat(32));
  });
  const prover = new SigilAztecProver(new WASMSimulator(), { client });
  await assert.rejects(prover.createChonkProof(stepsFromStack(readBytes(fixture412("ivc-inputs.msgpack")))), (e: unknown) => {
    assert.ok(e instanceof ProveError);
    assert.equal(e.code, "prover_failed");
    assert.equal(e.message, "sigil Chonk proof (bb 4.1.2) failed: prover_failed: Failed to verify the generated proof!");
    return true;
  });
});
