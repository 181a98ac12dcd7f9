// Delegated proving (protocol/src/prove.rs): a job's inputs travel sealed to the enclave; its
// result comes back sealed under a 32-byte key only this client and the enclave know:
//   sealed = nonce (12) || AES-256-GCM(result_key, nonce, aad = "sigil prove result v1 " || id, JSON)
// so the parent relaying the status can neither read the result nor forge one. Cancelling a
// job takes a token derived from the same key (cancelToken), so only its submitter can.

import { sha256 } from "@noble/hashes/sha2.js";
import { buf, concat, u64be, utf8 } from "./bytes.js";
import { SigilError } from "./errors.js";

export const MAX_PROVE_INPUT = 64 << 20;
export const MAX_CIRCUIT = MAX_PROVE_INPUT / 2;
export const MAX_WITNESS = MAX_PROVE_INPUT / 2;
export const MAX_IVC_INPUTS = MAX_CIRCUIT + MAX_WITNESS;
export const RESULT_AAD = "sigil prove result v1 ";
export const CANCEL_TOKEN_PREFIX = "sigil prove cancel v1";
/** Longest long-poll of GET /v1/prove/{id}?wait=SECONDS (the enclave refuses more with
 * bad_query): the status is answered once the job has ended, or after that many seconds. */
export const MAX_STATUS_WAIT_S = 20;

export type Scheme = "ultra_honk" | "chonk";

/** Where a job is, as anyone who knows its id sees it (nothing about how it ended, except
 * `cancelled`: a job its client cancelled, which keeps no sealed result). */
export type JobProgress = "queued" | "running" | "ended" | "cancelled";

/** Where a job is, as anyone who knows its id sees it. */
export interface JobStatus {
  id: string;
  state: JobProgress;
  queue_position?: number;
  elapsed_ms?: number;
  sealed?: string;
}

/** The answer to POST /v1/prove/cancel: never the result (fetch it with status() when the job
 * ended first). `cancelled` says whether the job is cancelled: `running` with true means it is
 * still being stopped; `ended` with false, that it finished before the cancel took effect. */
export interface CancelAnswer {
  id: string;
  state: JobProgress;
  cancelled: boolean;
}

export interface Submitted {
  id: string;
  queue_position: number;
  inputs_sha256: string;
}

/** The sealed result's JSON. */
export interface JobResult {
  id: string;
  inputs_sha256: string;
  state: "done" | "failed" | "queued" | "running";
  error?: { code: string; message: string };
  proof?: string;
  public_inputs?: string;
  vk?: string;
  vk_hash?: string;
  circuit_size?: number;
  queued_ms: number;
  prove_ms: number;
  bb_version: string;
}

export interface ProveResult {
  proof: Uint8Array;
  /** Empty for chonk (its public inputs are inside the proof). */
  publicInputs: Uint8Array;
  vk: Uint8Array;
  vkHash: Uint8Array;
  result: JobResult;
}

/** SHA-256(len(circuit) u64 BE || circuit || witness). */
export function inputsSha256(circuit: Uint8Array, witness: Uint8Array): Uint8Array {
  return sha256(concat(u64be(circuit.length), circuit, witness));
}

/** SHA-256(u64::MAX || ivc_inputs): the length field no circuit can have, so never equal to
 * an UltraHonk digest. Hashed incrementally (a stack is up to 64 MiB). */
export function chonkInputsSha256(ivcInputs: Uint8Array): Uint8Array {
  return sha256.create().update(u64be(0xffffffffffffffffn)).update(ivcInputs).digest();
}

/** SHA-256("sigil prove cancel v1" || result_key): what POST /v1/prove/cancel takes. Job ids
 * travel in the clear, so the id alone must not cancel a job; only the submitter holds the key. */
export function cancelToken(resultKey: Uint8Array): Uint8Array {
  return sha256(concat(utf8(CANCEL_TOKEN_PREFIX), resultKey));
}

export function resultAad(id: string): Uint8Array {
  return utf8(RESULT_AAD + id);
}

async function aesKey(key: Uint8Array): Promise<CryptoKey> {
  return globalThis.crypto.subtle.importKey("raw", buf(key), "AES-GCM", false, ["encrypt", "decrypt"]);
}

export async function sealResult(key: Uint8Array, id: string, nonce: Uint8Array, plain: Uint8Array): Promise<Uint8Array> {
  const ct = await globalThis.crypto.subtle.encrypt({ name: "AES-GCM", iv: buf(nonce), additionalData: buf(resultAad(id)) }, await aesKey(key), buf(plain));
  return concat(nonce, new Uint8Array(ct));
}

export async function openResult(key: Uint8Array, id: string, sealed: Uint8Array): Promise<Uint8Array> {
  if (sealed.length < 12 + 16) throw new SigilError("protocol", "sealed result is truncated");
  try {
    const pt = await globalThis.crypto.subtle.decrypt({ name: "AES-GCM", iv: buf(sealed.subarray(0, 12)), additionalData: buf(resultAad(id)) }, await aesKey(key), buf(sealed.subarray(12)));
    return new Uint8Array(pt);
  } catch {
    throw new SigilError("protocol", "the result does not open under this job's key (tampered or another job)");
  }
}
