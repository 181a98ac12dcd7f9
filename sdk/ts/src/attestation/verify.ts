// End-to-end verification, in the Rust verifier's order (attestation/src/verify.rs): envelope,
// payload syntax, root pin, chain, COSE signature, then policy (debug, PCRs, nonce, age), so
// a tampered byte is named by the most specific check that notices it.

import { AttestationError, SigilError } from "../errors.js";
import { equal, hex } from "../bytes.js";
import { parseCose, verifyEs384 } from "./cose.js";
import { isDebug, parseDocument } from "./document.js";
import { validateChain } from "./chain.js";
import { decodeImageInfo, type ImageInfo } from "../userData.js";

/** Clock skew allowed for a document timestamped slightly in the future. */
export const MAX_FUTURE_SKEW_MS = 60_000;

export interface VerifyOptions {
  /** Also accept chains to the sigil test root (its key is public: development only). */
  trustTestRoot?: boolean;
  /** PCR index -> expected value (lowercase hex); each must be present and equal. */
  pcrs?: Record<number, string>;
  /** The document's nonce must equal this. */
  nonce?: Uint8Array;
  /** The document's timestamp must lie in [now - maxAgeMs, now + 60 s]. */
  maxAgeMs?: number;
  /** Verification time (default: now). Certificates are checked at this time. */
  now?: Date;
  /** Accept debug-mode documents (PCR0..2 zero) from AWS hardware: the parent can read such an
   * enclave's memory. Default false. Documents of the sigil test root are simulated and always
   * debug-mode: with trustTestRoot they are accepted unless this is explicitly false. */
  allowDebug?: boolean;
  /** Require a sigil enclave: a 32-byte X25519 public_key and a sigil user_data map
   * (default true; false verifies any Nitro document, e.g. the shared vectors). */
  requireSigil?: boolean;
}

export interface VerifiedAttestation {
  moduleId: string;
  timestamp: Date;
  digest: string;
  /** PCR index -> value (lowercase hex). */
  pcrs: Record<number, string>;
  /** The enclave's per-boot X25519 key (what requests are sealed to). */
  publicKey: Uint8Array;
  /** Decoded user_data (present when the document is a sigil enclave's). */
  userData: ImageInfo;
  nonce?: Uint8Array;
  /** Chained to the sigil test root: a simulated NSM, proving nothing about hardware. */
  simulated: boolean;
  rootName: "aws" | "sigil-test";
  /** PCR0..2 all zero. */
  debug: boolean;
  /** The raw user_data bytes. */
  userDataRaw?: Uint8Array;
}

export async function verifyAttestation(document: Uint8Array, opts: VerifyOptions = {}): Promise<VerifiedAttestation> {
  const cose = parseCose(document);
  const doc = parseDocument(cose.payload);
  const now = opts.now ?? new Date();
  const chain = await validateChain(doc.certificate, doc.cabundle, now, opts.trustTestRoot === true);
  // The chain vouches for the leaf key only; the payload is authentic only if the leaf
  // signed exactly these bytes.
  await verifyEs384(cose, chain.leafPublicKey);

  const debug = isDebug(doc);
  const allowDebug = chain.root === "sigil-test" ? opts.allowDebug !== false : opts.allowDebug === true;
  if (debug && !allowDebug) {
    throw new AttestationError("debug_mode", "PCR0, PCR1 and PCR2 are all zero: the enclave runs in debug mode, where the parent instance can read its memory");
  }
  for (const [k, want] of Object.entries(opts.pcrs ?? {})) {
    const got = doc.pcrs.get(Number(k));
    if (!got) throw new AttestationError("pcr", `PCR${k} is required by the policy but absent from the document`);
    // Public values: a plain comparison is fine.
    if (hex(got) !== want.toLowerCase()) throw new AttestationError("pcr", `PCR${k} mismatch (expected ${want}, got ${hex(got)})`);
  }
  if (opts.nonce) {
    // The nonce defends against replay of an old (genuine) document.
    if (!doc.nonce) throw new AttestationError("nonce", `the document has no nonce, expected ${opts.nonce.length} bytes`);
    if (!equal(doc.nonce, opts.nonce)) throw new AttestationError("nonce", `nonce mismatch (expected ${opts.nonce.length} bytes ${hex(opts.nonce.subarray(0, 32))}, got ${doc.nonce.length} bytes ${hex(doc.nonce.subarray(0, 32))})`);
  }
  if (opts.maxAgeMs !== undefined) {
    const ts = Number(doc.timestampMs);
    const at = now.getTime();
    if (ts < at - opts.maxAgeMs) throw new AttestationError("age", `document timestamp ${new Date(ts).toISOString()} is ${Math.floor((at - ts) / 1000)} s old, more than the allowed ${opts.maxAgeMs / 1000} s`);
    if (ts > at + MAX_FUTURE_SKEW_MS) throw new AttestationError("age", `document timestamp ${new Date(ts).toISOString()} is ${Math.floor((ts - at) / 1000)} s in the future, more than the allowed 60 s clock skew`);
  }

  let userData: ImageInfo | undefined;
  let publicKey = doc.publicKey ?? new Uint8Array();
  if (opts.requireSigil !== false) {
    // What an API client needs beyond the signature: a key to seal to, and a sigil image.
    if (!doc.publicKey) throw new AttestationError("public_key", "the document carries no public_key");
    if (doc.publicKey.length !== 32) throw new AttestationError("public_key", `public_key is ${doc.publicKey.length} bytes, not a 32-byte X25519 key`);
    if (!doc.userData) throw new AttestationError("user_data", "the document carries no user_data");
    try {
      userData = decodeImageInfo(doc.userData);
    } catch (e) {
      if (e instanceof SigilError) throw new AttestationError("user_data", `not a sigil image: ${e.message}`);
      throw e;
    }
  } else if (doc.userData) {
    try {
      userData = decodeImageInfo(doc.userData);
    } catch {
      userData = undefined;
    }
  }
  const pcrs: Record<number, string> = {};
  for (const [i, v] of doc.pcrs) pcrs[i] = hex(v);
  const out: VerifiedAttestation = {
    moduleId: doc.moduleId,
    timestamp: new Date(Number(doc.timestampMs)),
    digest: doc.digest,
    pcrs,
    publicKey,
    userData: userData as ImageInfo,
    simulated: chain.root === "sigil-test",
    rootName: chain.root,
    debug,
  };
  if (doc.nonce) out.nonce = doc.nonce;
  if (doc.userData) out.userDataRaw = doc.userData;
  return out;
}
