// COSE_Sign1 (RFC 9052) as Nitro uses it: ES384, protected header {1: -35}, empty
// unprotected header, embedded payload, 96-byte raw r || s signature.

import { AttestationError } from "../errors.js";
import { CborError, decodeOne, head, type Item } from "../cbor.js";
import { buf, concat, equal } from "../bytes.js";
import { MAX_PAYLOAD_BYTES } from "./document.js";

export const MAX_INPUT_BYTES = 32 * 1024;
const PROTECTED_ES384 = Uint8Array.of(0xa1, 0x01, 0x38, 0x22);

export interface CoseSign1 {
  protected: Uint8Array;
  payload: Uint8Array;
  signature: Uint8Array;
}

function parseErr(msg: string): never {
  throw new AttestationError("parse", msg);
}

export function parseCose(input: Uint8Array): CoseSign1 {
  if (input.length > MAX_INPUT_BYTES) parseErr(`input of ${input.length} bytes exceeds the ${MAX_INPUT_BYTES}-byte limit`);
  let it: Item;
  try {
    it = decodeOne(input, "COSE_Sign1");
  } catch (e) {
    if (e instanceof CborError) parseErr(e.message);
    throw e;
  }
  if (it.t === "tag") {
    if (it.tag !== 18n) parseErr(`unexpected CBOR tag ${it.tag} (only 18, COSE_Sign1, is allowed)`);
    it = it.v;
  }
  if (it.t !== "array" || !it.definite || it.v.length !== 4) parseErr("COSE_Sign1 must be a definite array of 4 elements");
  const [p, u, pl, sig] = it.v as [Item, Item, Item, Item];
  if (p.t !== "bytes") parseErr("protected header is not a byte string");
  // Only the one encoding of {1: -35}: the signature covers these bytes, and an algorithm
  // other than ES384 (or a second parameter) must not get through.
  if (!equal(p.v, PROTECTED_ES384)) parseErr("protected header must be exactly {1: -35} (ES384)");
  // Unprotected parameters are not signed: anything there is attacker-controlled.
  if (u.t !== "map" || !u.definite || u.v.length !== 0) parseErr("unprotected header must be an empty map");
  if (pl.t !== "bytes") parseErr("payload is not a byte string (detached payloads are not used)");
  if (pl.v.length === 0 || pl.v.length > MAX_PAYLOAD_BYTES) parseErr(`payload is ${pl.v.length} bytes, allowed 1..=${MAX_PAYLOAD_BYTES}`);
  if (sig.t !== "bytes") parseErr("signature is not a byte string");
  if (sig.v.length !== 96) parseErr(`signature is ${sig.v.length} bytes, ES384 needs exactly 96`);
  return { protected: p.v, payload: pl.v, signature: sig.v };
}

/** Sig_structure = ["Signature1", protected, h'', payload] (RFC 9052 §4.4). */
export function sigStructure(protectedHdr: Uint8Array, payload: Uint8Array): Uint8Array {
  const ctx = new TextEncoder().encode("Signature1");
  return concat(
    Uint8Array.of(0x84),
    head(3, ctx.length), ctx,
    head(2, protectedHdr.length), protectedHdr,
    Uint8Array.of(0x40),
    head(2, payload.length), payload,
  );
}

/** The leaf key (a 97-byte uncompressed P-384 point) signed exactly these bytes. */
export async function verifyEs384(cose: CoseSign1, leafPoint: Uint8Array): Promise<void> {
  const subtle = globalThis.crypto.subtle;
  let key: CryptoKey;
  try {
    key = await subtle.importKey("raw", buf(leafPoint), { name: "ECDSA", namedCurve: "P-384" }, false, ["verify"]);
  } catch {
    // WebCrypto refuses a point not on the curve (DataError); the Rust verifier names this
    // the signature check too (ring rejects the key when verifying).
    throw new AttestationError("cose_signature", "the leaf certificate's public key is not a valid P-384 point");
  }
  const ok = await subtle.verify(
    { name: "ECDSA", hash: "SHA-384" },
    key,
    buf(cose.signature),
    buf(sigStructure(cose.protected, cose.payload)),
  );
  if (!ok) {
    throw new AttestationError("cose_signature", "ES384 signature over the Sig_structure does not verify with the leaf certificate's key");
  }
}
