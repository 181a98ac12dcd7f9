// The attestation document (the COSE payload), parsed as strictly as the Rust verifier:
// exactly the nine known keys, no duplicates, explicit null for unused optional fields,
// definite- or indefinite-length maps and arrays, every size bounded.

import { AttestationError } from "../errors.js";
import { CborError, decodeOne, isNull, type Item } from "../cbor.js";

export const MAX_PAYLOAD_BYTES = 16 * 1024;
export const MAX_CERT_BYTES = 1024;
export const MAX_CABUNDLE_ENTRIES = 8;
export const MAX_PCRS = 32;
export const MAX_USER_FIELD_BYTES = 1024;
export const MAX_MODULE_ID_BYTES = 256;

export interface AttestationDocument {
  moduleId: string;
  timestampMs: bigint;
  digest: string;
  pcrs: Map<number, Uint8Array>;
  certificate: Uint8Array;
  cabundle: Uint8Array[];
  publicKey?: Uint8Array;
  userData?: Uint8Array;
  nonce?: Uint8Array;
}

const KEYS = ["module_id", "digest", "timestamp", "pcrs", "certificate", "cabundle", "public_key", "user_data", "nonce"];

function syntax(msg: string): never {
  throw new AttestationError("parse", msg);
}

function bytesIn(it: Item, field: string, min: number, max: number): Uint8Array {
  if (it.t !== "bytes") syntax(`${field}: expected a byte string`);
  if (it.v.length < min || it.v.length > max) syntax(`${field} is ${it.v.length} bytes, allowed ${min}..=${max}`);
  return it.v;
}

function optBytesIn(it: Item, field: string, min: number, max: number): Uint8Array | undefined {
  return isNull(it) ? undefined : bytesIn(it, field, min, max);
}

export function parseDocument(payload: Uint8Array): AttestationDocument {
  if (payload.length > MAX_PAYLOAD_BYTES) syntax(`payload of ${payload.length} bytes exceeds the ${MAX_PAYLOAD_BYTES}-byte limit`);
  let top: Item;
  try {
    top = decodeOne(payload, "payload");
  } catch (e) {
    if (e instanceof CborError) syntax(e.message);
    throw e;
  }
  if (top.t !== "map") syntax("payload is not a map");
  const seen = new Set<string>();
  const doc: Partial<AttestationDocument> = {};
  for (const [k, v] of top.v) {
    if (k.t !== "text") syntax("payload key is not text");
    const key = k.v;
    if (!KEYS.includes(key)) syntax(`unknown key ${JSON.stringify(key.slice(0, 64))}`);
    if (seen.has(key)) syntax(`duplicate key ${JSON.stringify(key)}`);
    seen.add(key);
    switch (key) {
      case "module_id": {
        if (v.t !== "text") syntax("module_id: expected text");
        const len = new TextEncoder().encode(v.v).length;
        if (len === 0 || len > MAX_MODULE_ID_BYTES) syntax(`module_id is ${len} bytes, allowed 1..=${MAX_MODULE_ID_BYTES}`);
        doc.moduleId = v.v;
        break;
      }
      case "digest":
        if (v.t !== "text") syntax("digest: expected text");
        if (v.v !== "SHA384") syntax(`digest is ${JSON.stringify(v.v.slice(0, 32))}, expected "SHA384"`);
        doc.digest = v.v;
        break;
      case "timestamp":
        if (v.t !== "uint") syntax("timestamp: expected an unsigned integer");
        if (v.v === 0n) syntax("timestamp is 0");
        doc.timestampMs = v.v;
        break;
      case "pcrs": {
        if (v.t !== "map") syntax("pcrs: expected a map");
        if (v.v.length > MAX_PCRS) syntax(`pcrs has more than ${MAX_PCRS} entries`);
        const pcrs = new Map<number, Uint8Array>();
        for (const [ik, iv] of v.v) {
          if (ik.t !== "uint") syntax("pcrs index: expected an unsigned integer");
          if (ik.v >= BigInt(MAX_PCRS)) syntax(`pcrs index ${ik.v} is not in 0..32`);
          const index = Number(ik.v);
          if (iv.t !== "bytes") syntax("pcrs value: expected a byte string");
          if (![32, 48, 64].includes(iv.v.length)) syntax(`PCR${index} is ${iv.v.length} bytes, expected 32, 48 or 64`);
          // A repeated index would let a later value shadow the one a verifier checked.
          if (pcrs.has(index)) syntax(`pcrs index ${index} appears twice`);
          pcrs.set(index, iv.v);
        }
        if (pcrs.size === 0) syntax("pcrs is empty");
        doc.pcrs = pcrs;
        break;
      }
      case "certificate":
        doc.certificate = bytesIn(v, "certificate", 1, MAX_CERT_BYTES);
        break;
      case "cabundle":
        if (v.t !== "array") syntax("cabundle: expected an array");
        if (v.v.length > MAX_CABUNDLE_ENTRIES) syntax(`cabundle has more than ${MAX_CABUNDLE_ENTRIES} entries`);
        if (v.v.length === 0) syntax("cabundle is empty");
        doc.cabundle = v.v.map((c, i) => bytesIn(c, `cabundle[${i}]`, 1, MAX_CERT_BYTES));
        break;
      case "public_key": {
        const b = optBytesIn(v, "public_key", 1, MAX_USER_FIELD_BYTES);
        if (b) doc.publicKey = b;
        break;
      }
      case "user_data": {
        const b = optBytesIn(v, "user_data", 0, MAX_USER_FIELD_BYTES);
        if (b) doc.userData = b;
        break;
      }
      default: {
        const b = optBytesIn(v, "nonce", 0, MAX_USER_FIELD_BYTES);
        if (b) doc.nonce = b;
      }
    }
  }
  for (const key of KEYS.slice(0, 6)) if (!seen.has(key)) syntax(`mandatory key ${JSON.stringify(key)} is missing`);
  return doc as AttestationDocument;
}

/** PCR0, PCR1 and PCR2 all zero: a debug-mode enclave, whose memory the parent can read. */
export function isDebug(doc: AttestationDocument): boolean {
  return [0, 1, 2].every((i) => {
    const v = doc.pcrs.get(i);
    // Absent counts as zero, as in the Rust verifier: a document cannot escape the check by
    // leaving PCR0..2 out.
    return v === undefined || v.every((x) => x === 0);
  });
}
