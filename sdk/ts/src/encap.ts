// sigil's request/response encapsulation (protocol/src/encap.rs), on RFC 9180 HPKE base mode
// with DHKEM(X25519, HKDF-SHA256), HKDF-SHA256 and AES-256-GCM:
//
//   request  = hdr || enc || ct
//     hdr    = key_id (1) || kem_id (2) || kdf_id (2) || aead_id (2)      big-endian
//     info   = "sigil encapsulated request v1" || 0x00 || hdr
//     ct     = HPKE Seal(info, aad = route, plaintext)
//   response = response_nonce (32) || AES-256-GCM(key, nonce, aad = route, status || plaintext)
//     secret = Export("sigil encapsulated response v2", 32)
//     prk    = HKDF-Extract(salt = enc || response_nonce, secret)
//     key    = HKDF-Expand(prk, "key", 32); nonce = HKDF-Expand(prk, "nonce", 12)
//
// The route is the AEAD associated data both ways: a body cannot be replayed to another
// endpoint, nor an answer passed off as another endpoint's. The answer's status is sealed:
// a relaying parent that rewrites the HTTP status line cannot turn a failure into a success.

import { Aes256Gcm, CipherSuite, DhkemX25519HkdfSha256, HkdfSha256 } from "@hpke/core";
import { EncapError } from "./errors.js";
import { buf, concat, randomBytes, utf8 } from "./bytes.js";

export const KEY_ID = 0;
export const KEM_ID = 0x0020;
export const KDF_ID = 0x0001;
export const AEAD_ID = 0x0002;
export const MAX_ENCAPSULATED_REQUEST = 96 << 20;
export const MAX_ENCAPSULATED_RESPONSE = 1 << 20;
export const MAX_ROUTE_LEN = 256;
export const ENC_LEN = 32;
const HDR_LEN = 7;
const TAG_LEN = 16;
const RESPONSE_NONCE_LEN = 32;
export const REQUEST_OVERHEAD = HDR_LEN + ENC_LEN + TAG_LEN;
export const RESPONSE_OVERHEAD = RESPONSE_NONCE_LEN + 2 + TAG_LEN;
const REQUEST_LABEL = utf8("sigil encapsulated request v1");
const RESPONSE_LABEL = utf8("sigil encapsulated response v2");

export const suite = new CipherSuite({ kem: new DhkemX25519HkdfSha256(), kdf: new HkdfSha256(), aead: new Aes256Gcm() });

export const HEADER = Uint8Array.of(KEY_ID, 0x00, 0x20, 0x00, 0x01, 0x00, 0x02);

function requestInfo(hdr: Uint8Array): Uint8Array {
  return concat(REQUEST_LABEL, Uint8Array.of(0), hdr);
}

function checkRoute(route: string): void {
  if (utf8(route).length > MAX_ROUTE_LEN) throw new EncapError("encap_bad_route", `route too long (limit ${MAX_ROUTE_LEN} bytes)`);
}

const decryptFailed = () => new EncapError("encap_decrypt_failed", "decryption failed (wrong key, route or tampered body)");

/** The per-message AES-256-GCM key and nonce of a response. */
async function responseCipher(secret: Uint8Array, enc: Uint8Array, responseNonce: Uint8Array): Promise<{ key: CryptoKey; iv: Uint8Array }> {
  const subtle = globalThis.crypto.subtle;
  // salt = enc || response_nonce binds the key to this request and this response.
  const ikm = await subtle.importKey("raw", buf(secret), "HKDF", false, ["deriveBits"]);
  const salt = buf(concat(enc, responseNonce));
  const keyBits = await subtle.deriveBits({ name: "HKDF", hash: "SHA-256", salt, info: buf(utf8("key")) }, ikm, 256);
  const iv = new Uint8Array(await subtle.deriveBits({ name: "HKDF", hash: "SHA-256", salt, info: buf(utf8("nonce")) }, ikm, 96));
  const key = await subtle.importKey("raw", keyBits, "AES-GCM", false, ["encrypt", "decrypt"]);
  return { key, iv };
}

/** Opens the one answer to a sealed request. Use once. */
export class ResponseOpener {
  #used = false;
  constructor(
    readonly route: string,
    private readonly secret: Uint8Array,
    readonly enc: Uint8Array,
  ) {}

  /** Decrypts and authenticates the answer: its sealed status and plaintext. Success proves
   * it came from the holder of the key the request was sealed to. */
  async open(body: Uint8Array): Promise<{ status: number; plaintext: Uint8Array }> {
    if (this.#used) throw new EncapError("encap_internal", "this opener was already used");
    this.#used = true;
    let pt: Uint8Array;
    try {
      // Size first: a hostile server cannot make the client buffer or decrypt much.
      if (body.length > MAX_ENCAPSULATED_RESPONSE) throw new EncapError("encap_too_large", `body too large (limit ${MAX_ENCAPSULATED_RESPONSE} bytes)`);
      if (body.length < RESPONSE_NONCE_LEN + TAG_LEN) throw new EncapError("encap_malformed", "body too short");
      const { key, iv } = await responseCipher(this.secret, this.enc, body.subarray(0, RESPONSE_NONCE_LEN));
      try {
        pt = new Uint8Array(await globalThis.crypto.subtle.decrypt({ name: "AES-GCM", iv: buf(iv), additionalData: buf(utf8(this.route)) }, key, buf(body.subarray(RESPONSE_NONCE_LEN))));
      } catch {
        throw decryptFailed();
      }
    } finally {
      // The exported secret opens (and forges) this one answer: with the opener used, nothing
      // needs it. Overwriting it is best effort in JS (WebCrypto and the engine may keep
      // copies), but no reference of ours keeps it readable.
      this.secret.fill(0);
    }
    if (pt.length < 2) throw new EncapError("encap_malformed", "body too short");
    return { status: (pt[0]! << 8) | pt[1]!, plaintext: pt.subarray(2) };
  }
}

/** Seals `plaintext` for `route` to the attested enclave key, with a fresh ephemeral key. */
export function sealRequest(serverPublicKey: Uint8Array, route: string, plaintext: Uint8Array): Promise<{ body: Uint8Array; opener: ResponseOpener }> {
  return sealRequestInternal(serverPublicKey, route, plaintext, undefined);
}

/** @internal `sealRequest` with an optional fixed ephemeral seed (32 bytes, fed to
 * DeriveKeyPair). Not exported by the package: only `src/testing.ts` (vectors) passes a seed,
 * since a fixed ephemeral key makes every request to one enclave readable to whoever knows it. */
export async function sealRequestInternal(serverPublicKey: Uint8Array, route: string, plaintext: Uint8Array, ephemeralSeed: Uint8Array | undefined): Promise<{ body: Uint8Array; opener: ResponseOpener }> {
  checkRoute(route);
  if (plaintext.length + REQUEST_OVERHEAD > MAX_ENCAPSULATED_REQUEST) {
    throw new EncapError("encap_too_large", `body too large (limit ${MAX_ENCAPSULATED_REQUEST} bytes)`);
  }
  if (serverPublicKey.length !== 32) throw new EncapError("encap_bad_public_key", "bad public key");
  let pk: CryptoKey;
  try {
    pk = await suite.kem.deserializePublicKey(buf(serverPublicKey));
  } catch {
    throw new EncapError("encap_bad_public_key", "bad public key");
  }
  let ctx;
  try {
    ctx = await suite.createSenderContext({
      recipientPublicKey: pk,
      info: buf(requestInfo(HEADER)),
      ...(ephemeralSeed ? { ekm: buf(ephemeralSeed) } : {}),
    });
  } catch {
    // A low-order "public key" makes the shared secret public (RFC 9180 §7.1.4).
    throw new EncapError("encap_bad_public_key", "bad public key");
  }
  const ct = new Uint8Array(await ctx.seal(buf(plaintext), buf(utf8(route))));
  const secret = new Uint8Array(await ctx.export(buf(RESPONSE_LABEL), 32));
  const enc = new Uint8Array(ctx.enc);
  return { body: concat(HEADER, enc, ct), opener: new ResponseOpener(route, secret, enc) };
}

/** The enclave side, for tests and vectors: a key derived from `seed` (RFC 9180 §7.1.3). */
export class ServerKey {
  private constructor(
    private readonly kp: CryptoKeyPair,
    readonly publicKey: Uint8Array,
  ) {}

  static async fromSeed(seed: Uint8Array): Promise<ServerKey> {
    if (seed.length < 32 || seed.length > 64) throw new EncapError("encap_bad_seed", "bad key seed (need 32 to 64 bytes)");
    const kp = await suite.kem.deriveKeyPair(buf(seed));
    return new ServerKey(kp, new Uint8Array(await suite.kem.serializePublicKey(kp.publicKey)));
  }

  async openRequest(route: string, body: Uint8Array, maxBody = MAX_ENCAPSULATED_REQUEST): Promise<{ plaintext: Uint8Array; sealer: ResponseSealer }> {
    checkRoute(route);
    const limit = Math.min(maxBody, MAX_ENCAPSULATED_REQUEST);
    if (body.length > limit) throw new EncapError("encap_too_large", `body too large (limit ${limit} bytes)`);
    if (body.length < HDR_LEN) throw new EncapError("encap_malformed", "body too short");
    const hdr = body.subarray(0, HDR_LEN);
    if (hdr[0] !== KEY_ID) throw new EncapError("encap_unsupported_key_id", `unsupported key id ${hdr[0]}`);
    if (hdr.some((b, i) => b !== HEADER[i])) throw new EncapError("encap_unsupported_suite", "unsupported HPKE suite");
    if (body.length < HDR_LEN + ENC_LEN + TAG_LEN) throw new EncapError("encap_malformed", "body too short");
    const enc = body.subarray(HDR_LEN, HDR_LEN + ENC_LEN);
    let ctx;
    try {
      ctx = await suite.createRecipientContext({ recipientKey: this.kp, enc: buf(enc), info: buf(requestInfo(hdr)) });
    } catch {
      throw decryptFailed();
    }
    let pt: Uint8Array;
    try {
      pt = new Uint8Array(await ctx.open(buf(body.subarray(HDR_LEN + ENC_LEN)), buf(utf8(route))));
    } catch {
      throw decryptFailed();
    }
    const secret = new Uint8Array(await ctx.export(buf(RESPONSE_LABEL), 32));
    return { plaintext: pt, sealer: new ResponseSealer(secret, enc.slice()) };
  }
}

/** Seals the one answer to an opened request. */
export class ResponseSealer {
  constructor(
    private readonly secret: Uint8Array,
    readonly enc: Uint8Array,
  ) {}

  /** Seals the answer under a fresh response nonce (RFC 9458 §4.4). */
  seal(route: string, status: number, plaintext: Uint8Array): Promise<Uint8Array> {
    return sealResponseInternal(this, route, status, plaintext, randomBytes(RESPONSE_NONCE_LEN));
  }
}

/** @internal `ResponseSealer.seal` with a given response nonce. Not exported by the package:
 * only `src/testing.ts` (vectors) fixes the nonce. */
export async function sealResponseInternal(sealer: ResponseSealer, route: string, status: number, plaintext: Uint8Array, responseNonce: Uint8Array): Promise<Uint8Array> {
  checkRoute(route);
  if (responseNonce.length !== RESPONSE_NONCE_LEN) throw new EncapError("encap_internal", `the response nonce is ${RESPONSE_NONCE_LEN} bytes`);
  if (plaintext.length + RESPONSE_OVERHEAD > MAX_ENCAPSULATED_RESPONSE) throw new EncapError("encap_too_large", `body too large (limit ${MAX_ENCAPSULATED_RESPONSE} bytes)`);
  const { key, iv } = await responseCipher(sealer["secret"], sealer.enc, responseNonce);
  const ct = new Uint8Array(
    await globalThis.crypto.subtle.encrypt({ name: "AES-GCM", iv: buf(iv), additionalData: buf(utf8(route)) }, key, buf(concat(Uint8Array.of(status >> 8, status & 255), plaintext))),
  );
  return concat(responseNonce, ct);
}
