// The CBOR map the enclave puts in its attestation's user_data (protocol/src/user_data.rs):
//   { ? "bb": { "sha256": text, "version": text }, ? "bbs": [* served-bb],
//     ? "log": bytes .size 32, "mode": text, ? "node": bytes .size 32, "sigil": text,
//     "protocol": uint, "capabilities": [* text] }
//   served-bb = { "name": text, "sha256": text, ? "runtime": text, "version": text }
// Decoding accepts keys in any order, ignores unknown keys (forward compatibility), refuses
// missing or repeated known keys (two parsers keeping first vs last would disagree), and
// bounds every size: the document is parsed before the client decides to trust it.

import { CborError, Reader, head, type Item } from "./cbor.js";
import { concat, hex, utf8 } from "./bytes.js";
import { SigilError } from "./errors.js";

export const PROTOCOL_VERSION = 1;
export const MAX_USER_DATA_LEN = 1024;
export const MAX_STRING_LEN = 64;
export const MAX_CAPABILITIES = 32;
export const MAX_ENTRIES = 16;
/** Most bb versions listed in `bbs`. */
export const MAX_BB_SERVED = 8;

export interface BbInfo {
  version: string;
  sha256: string;
}

/** One bb version the image serves (`bbs`). */
export interface ServedBb {
  /** What a proving request names as `bbVersion`. */
  name: string;
  /** What that bb's `--version` prints. */
  version: string;
  /** sha256 of the binary (hex). */
  sha256: string;
  /** For a bb with its own C/C++ runtime: sha256 of the lines "<file> <sha256>\n" of its files, sorted. */
  runtime?: string;
}

/** What the enclave image says about itself. */
export interface ImageInfo {
  protocol: number;
  /** sigil release (CBOR key "sigil"). */
  sigil: string;
  /** "nitro", "harness" or "local". */
  mode: string;
  capabilities: string[];
  /** The default prover (what a request naming no version gets). */
  bb?: BbInfo;
  /** Every bb version served, the default first (absent in older images: then only `bb`). */
  bbs?: ServedBb[];
  /** The node identity (x-only key, hex), once the enclave's sealed state is open. */
  node?: string;
  /** The registry's log head (hex). */
  log?: string;
}

function bad(msg: string): never {
  throw new SigilError("bad_user_data", `user_data ${msg}`);
}

function str(it: Item): string {
  if (it.t !== "text") bad("malformed: expected a text string");
  if (utf8(it.v).length > MAX_STRING_LEN) bad(`string longer than ${MAX_STRING_LEN} bytes`);
  return it.v;
}

function b32(it: Item, what: string): string {
  if (it.t !== "bytes") bad(`malformed: ${what} must be a byte string`);
  if (it.v.length !== 32) bad(`malformed: ${what} must be 32 bytes`);
  return hex(it.v);
}

export function decodeImageInfo(b: Uint8Array): ImageInfo {
  if (b.length > MAX_USER_DATA_LEN) bad(`too large: ${b.length} bytes (limit ${MAX_USER_DATA_LEN})`);
  const r = new Reader(b);
  let top: Item;
  try {
    top = r.item();
  } catch (e) {
    if (e instanceof CborError) bad(`malformed: ${e.message}`);
    throw e;
  }
  if (top.t !== "map") bad("malformed: not a map");
  // Definite lengths only: an indefinite one has no count to bound up front.
  if (!top.definite) bad("malformed: indefinite-length map");
  if (top.v.length > MAX_ENTRIES) bad(`map has more than ${MAX_ENTRIES} entries`);
  const out: Partial<ImageInfo> = {};
  const seen = new Set<string>();
  const once = (k: string) => {
    if (seen.has(k)) bad(`repeats key ${JSON.stringify(k)}`);
    seen.add(k);
  };
  for (const [k, v] of top.v) {
    const key = str(k);
    switch (key) {
      case "protocol":
        once(key);
        if (v.t !== "uint" || v.v > 0xffffffffn) bad("malformed: protocol must be a u32");
        out.protocol = Number(v.v);
        break;
      case "sigil":
        once(key);
        out.sigil = str(v);
        break;
      case "mode":
        once(key);
        out.mode = str(v);
        break;
      case "capabilities":
        once(key);
        if (v.t !== "array" || !v.definite) bad("malformed: capabilities must be a definite array");
        if (v.v.length > MAX_CAPABILITIES) bad(`has more than ${MAX_CAPABILITIES} capabilities`);
        out.capabilities = v.v.map(str);
        break;
      case "bb": {
        once(key);
        if (v.t !== "map" || !v.definite) bad("malformed: bb must be a definite map");
        if (v.v.length !== 2) bad("malformed: bb must hold sha256 and version");
        const bb: Partial<BbInfo> = {};
        for (const [bk, bv] of v.v) {
          const name = str(bk);
          if (name !== "version" && name !== "sha256") bad("malformed: unknown key in bb");
          if (bb[name] !== undefined) bad(`repeats key ${JSON.stringify(name)}`);
          bb[name] = str(bv);
        }
        out.bb = bb as BbInfo;
        break;
      }
      case "bbs": {
        once(key);
        if (v.t !== "array" || !v.definite) bad("malformed: bbs must be a definite array");
        if (v.v.length > MAX_BB_SERVED) bad(`lists more than ${MAX_BB_SERVED} bb versions`);
        out.bbs = v.v.map((e) => {
          if (e.t !== "map" || !e.definite) bad("malformed: a bbs entry must be a definite map");
          if (e.v.length < 3 || e.v.length > 4) bad("malformed: a bbs entry holds name, sha256, version and optionally runtime");
          const b: Partial<ServedBb> = {};
          for (const [bk, bv] of e.v) {
            const name = str(bk);
            if (name !== "name" && name !== "sha256" && name !== "version" && name !== "runtime") bad("malformed: unknown key in a bbs entry");
            if (b[name] !== undefined) bad(`repeats key ${JSON.stringify(name)}`);
            b[name] = str(bv);
          }
          for (const k of ["name", "sha256", "version"] as const) {
            if (b[k] === undefined) bad(`a bbs entry lacks ${JSON.stringify(k)}`);
          }
          return b as ServedBb;
        });
        break;
      }
      case "node":
        once(key);
        out.node = b32(v, "node");
        break;
      case "log":
        once(key);
        out.log = b32(v, "log");
        break;
      default:
      // Unknown keys: skipped (forward compatibility); the reader already bounded them.
    }
  }
  if (!r.atEnd()) bad("has bytes after the map");
  for (const k of ["protocol", "sigil", "mode", "capabilities"] as const) {
    if (out[k] === undefined) bad(`missing key ${JSON.stringify(k)}`);
  }
  return out as ImageInfo;
}

const text = (s: string) => concat(head(3, utf8(s).length), utf8(s));
const bytes = (b: Uint8Array) => concat(head(2, b.length), b);

/** Deterministic encoding (RFC 8949 §4.2.1 key order), byte-identical to the Rust side. */
export function encodeImageInfo(i: ImageInfo, unhex: (s: string) => Uint8Array): Uint8Array {
  const bbs = i.bbs ?? [];
  const parts: Uint8Array[] = [head(5, 4 + (i.bb ? 1 : 0) + (bbs.length ? 1 : 0) + (i.node ? 1 : 0) + (i.log ? 1 : 0))];
  if (i.bb) parts.push(text("bb"), head(5, 2), text("sha256"), text(i.bb.sha256), text("version"), text(i.bb.version));
  if (bbs.length) {
    // Inside an entry: "name" < "sha256" < "runtime" < "version" (shorter key first).
    parts.push(text("bbs"), head(4, bbs.length));
    for (const b of bbs) {
      parts.push(head(5, b.runtime === undefined ? 3 : 4), text("name"), text(b.name), text("sha256"), text(b.sha256));
      if (b.runtime !== undefined) parts.push(text("runtime"), text(b.runtime));
      parts.push(text("version"), text(b.version));
    }
  }
  if (i.log) parts.push(text("log"), bytes(unhex(i.log)));
  parts.push(text("mode"), text(i.mode));
  if (i.node) parts.push(text("node"), bytes(unhex(i.node)));
  parts.push(text("sigil"), text(i.sigil), text("protocol"), head(0, i.protocol), text("capabilities"), head(4, i.capabilities.length));
  for (const c of i.capabilities) parts.push(text(c));
  return concat(...parts);
}
