// Owner keys: the secp256k1 secrets whose BIP-340 signatures authorize vault operations and
// MuSig2 requests (client/src/owner.rs, protocol/src/wire.rs). A request's digest is bound to
// the enclave's per-boot key (`ownerMessage`), so a signature is good at that boot of that
// enclave only: a captured signed request cannot be replayed to another enclave or boot.

import { schnorr } from "@noble/curves/secp256k1.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { concat, randomBytes, u32be, utf8 } from "./bytes.js";

/** How long a request's signature stays valid (the enclave accepts up to 600 s). */
export const VALIDITY_SECS = 120;
export const OWNER_BINDING_TAG = "sigil/owner-signature/v1";

/** SHA256(SHA256(tag) || SHA256(tag) || for each field: len (u32 BE) || field). */
export function taggedDigest(tag: string, fields: Uint8Array[]): Uint8Array {
  const t = sha256(utf8(tag));
  const parts: Uint8Array[] = [t, t];
  for (const f of fields) parts.push(u32be(f.length), f);
  return sha256(concat(...parts));
}

/** BIP-340 tagged hash without length prefixes (the MuSig2 engine's `tagged_hash`). */
export function taggedHash(tag: string, parts: Uint8Array[]): Uint8Array {
  const t = sha256(utf8(tag));
  return sha256(concat(t, t, ...parts));
}

export function ownerMessage(enclaveKey: Uint8Array, digest: Uint8Array): Uint8Array {
  return taggedDigest(OWNER_BINDING_TAG, [enclaveKey, digest]);
}

/** Holds a BIP-340 secret key. The SDK signs with it; it never leaves this object. */
export class OwnerKey {
  readonly #secret: Uint8Array;
  /** The x-only public key the enclave records as owner. */
  readonly xOnly: Uint8Array;

  constructor(secret: Uint8Array) {
    if (secret.length !== 32) throw new TypeError("an owner key is 32 bytes");
    this.xOnly = schnorr.getPublicKey(secret); // throws on an out-of-range scalar
    this.#secret = secret.slice();
  }

  static generate(): OwnerKey {
    for (;;) {
      try {
        return new OwnerKey(randomBytes(32));
      } catch {
        // Out of range (probability ~2^-128): draw again.
      }
    }
  }

  /** BIP-340 signature over a 32-byte digest; `aux` is fresh randomness unless given (vectors). */
  sign(digest: Uint8Array, aux: Uint8Array = randomBytes(32)): Uint8Array {
    return schnorr.sign(digest, this.#secret, aux);
  }

  /** The signature of a request digest for the attested enclave key (its per-boot key). */
  signFor(enclaveKey: Uint8Array, digest: Uint8Array, aux?: Uint8Array): Uint8Array {
    return this.sign(ownerMessage(enclaveKey, digest), aux);
  }

  notAfter(nowMs = Date.now()): number {
    return Math.floor(nowMs / 1000) + VALIDITY_SECS;
  }
}

export function verifyBip340(xOnly: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  try {
    return schnorr.verify(signature, message, xOnly);
  } catch {
    return false;
  }
}
