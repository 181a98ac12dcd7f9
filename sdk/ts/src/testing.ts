// Deterministic sealing, for the cross-language vectors and tests only. The package does not
// export this module (package.json `exports` lists "." and "./aztec"; index.ts does not
// re-export it): production always draws the ephemeral HPKE key and the response nonce
// fresh. Tests import it by relative path. (Rust: `seal_request_with_ephemeral_seed`, only in
// the protocol crate's `test-vectors` feature.)

import { sealRequestInternal, sealResponseInternal, type ResponseOpener, type ResponseSealer } from "./encap.js";

/** `sealRequest` with a fixed ephemeral key: `seed` (32 bytes) is fed to DeriveKeyPair, so
 * whoever knows it can read the request. */
export function sealRequestWithSeed(serverPublicKey: Uint8Array, route: string, plaintext: Uint8Array, seed: Uint8Array): Promise<{ body: Uint8Array; opener: ResponseOpener }> {
  return sealRequestInternal(serverPublicKey, route, plaintext, seed);
}

/** `sealer.seal` with a fixed 32-byte response nonce. */
export function sealResponseWithNonce(sealer: ResponseSealer, route: string, status: number, plaintext: Uint8Array, responseNonce: Uint8Array): Promise<Uint8Array> {
  return sealResponseInternal(sealer, route, status, plaintext, responseNonce);
}
