// X.509 path validation from the document's leaf to a pinned root, with the same rules as
// the Rust verifier (attestation/src/chain.rs). The path is [certificate, cabundle[n-1], ...,
// cabundle[0]]; "certificate i" counts along it (0 = leaf, last = root). The root must be
// byte-identical to a pinned certificate: a bundle's root is never trusted because it is in the
// bundle. Revocation is not checked (AWS publishes no CRL for this PKI).

import { AttestationError } from "../errors.js";
import { buf, equal, hex, unb64 } from "../bytes.js";
import { certParts, children, ecdsaDerToRaw, type CertParts } from "./der.js";
import { AWS_NITRO_ROOT_G1_B64, AWS_NITRO_ROOT_G1_SHA256, SIGIL_TEST_ROOT_B64, SIGIL_TEST_ROOT_SHA256 } from "./roots.js";

export type RootName = "aws" | "sigil-test";

const AWS_ROOT = unb64(AWS_NITRO_ROOT_G1_B64);
const TEST_ROOT = unb64(SIGIL_TEST_ROOT_B64);

// AlgorithmIdentifier DER: ecdsa-with-SHA384 without parameters; id-ecPublicKey on P-384.
const ALG_ECDSA_SHA384 = Uint8Array.of(0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03);
const ALG_EC_P384 = Uint8Array.of(0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22);
const OID_BASIC_CONSTRAINTS = Uint8Array.of(0x06, 0x03, 0x55, 0x1d, 0x13);
const OID_KEY_USAGE = Uint8Array.of(0x06, 0x03, 0x55, 0x1d, 0x0f);

const chainErr = (msg: string): never => {
  throw new AttestationError("chain", msg);
};

async function sha256(b: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await globalThis.crypto.subtle.digest("SHA-256", buf(b)));
}

export async function pinRoot(der: Uint8Array, trustTestRoot: boolean): Promise<RootName> {
  const fp = hex(await sha256(der));
  // Both the fingerprint and the bytes: a changed constant cannot pass silently.
  if (fp === AWS_NITRO_ROOT_G1_SHA256 && equal(der, AWS_ROOT)) return "aws";
  if (fp === SIGIL_TEST_ROOT_SHA256 && equal(der, TEST_ROOT)) {
    if (!trustTestRoot) {
      throw new AttestationError(
        "root",
        `cabundle[0] is the sigil test root (sha256 ${fp}), whose private key is public; it is not the pinned AWS Nitro Enclaves Root-G1 (sha256 ${AWS_NITRO_ROOT_G1_SHA256}) and is trusted only with trustTestRoot`,
      );
    }
    return "sigil-test";
  }
  const also = trustTestRoot ? ` nor the sigil test root (sha256 ${SIGIL_TEST_ROOT_SHA256})` : "";
  throw new AttestationError("root", `cabundle[0] (sha256 ${fp}) is not the pinned AWS Nitro Enclaves Root-G1 (sha256 ${AWS_NITRO_ROOT_G1_SHA256})${also}`);
}

interface Cert {
  der: Uint8Array;
  parts: CertParts;
  label: string;
}

function load(i: number, der: Uint8Array): Cert {
  return { der, parts: certParts(der), label: `certificate ${i}` };
}

interface BasicConstraints { critical: boolean; ca: boolean; pathLength?: number }

function basicConstraints(c: Cert): BasicConstraints | undefined {
  const e = c.parts.extensions.find((x) => equal(x.oid, OID_BASIC_CONSTRAINTS));
  if (!e) return undefined;
  const [seq] = children(e.value);
  if (!seq || seq.tag !== 0x30) return chainErr(`${c.label} has a malformed extension BasicConstraints`);
  const f = children(seq.value);
  let ca = false;
  let k = 0;
  if (f[0]?.tag === 0x01) {
    if (f[0].value.length !== 1 || f[0].value[0] !== 0xff) chainErr(`${c.label} has a malformed extension BasicConstraints`);
    ca = true;
    k = 1;
  }
  const out: BasicConstraints = { critical: e.critical, ca };
  const pl = f[k];
  if (pl) {
    // A non-negative INTEGER of at most 32 bits, as the Rust verifier reads it: a negative one
    // must not pass as a large limit.
    if (pl.tag !== 0x02 || pl.value.length === 0 || pl.value.length > 5 || (pl.value[0]! & 0x80) !== 0 || f.length !== k + 1) {
      chainErr(`${c.label} has a malformed extension BasicConstraints`);
    }
    out.pathLength = pl.value.reduce((a, b) => a * 256 + b, 0);
    if (out.pathLength > 0xffffffff) chainErr(`${c.label} has a malformed extension BasicConstraints`);
  }
  return out;
}

/** KeyUsage bits as (byte 0, byte 1) flags: digitalSignature = 0x80 of byte 0, keyCertSign = 0x04. */
function keyUsage(c: Cert): Uint8Array | undefined {
  const e = c.parts.extensions.find((x) => equal(x.oid, OID_KEY_USAGE));
  if (!e) return undefined;
  const [bits] = children(e.value);
  if (!bits || bits.tag !== 0x03 || bits.value.length < 2) return chainErr(`${c.label} has a malformed extension KeyUsage`);
  return bits.value.subarray(1);
}

function checkAlgorithms(c: Cert): void {
  const p = c.parts;
  if (p.version !== 3) chainErr(`${c.label} is X.509 version ${p.version}, expected 3`);
  if (!equal(p.outerAlg, ALG_ECDSA_SHA384)) chainErr(`${c.label} signature algorithm is not ecdsa-with-SHA384`);
  // RFC 5280 §4.1.1.2: the signed copy of the algorithm must match the unsigned one.
  if (!equal(p.tbsAlg, p.outerAlg)) chainErr(`${c.label} TBS signature algorithm differs from the outer one`);
  if (!equal(p.spkiAlg, ALG_EC_P384)) chainErr(`${c.label} public key is not an EC P-384 key`);
  const k = p.spkiKey;
  if (k[0] !== 0 || k.length !== 98 || k[1] !== 0x04) chainErr(`${c.label} P-384 public key is not a 97-byte uncompressed point`);
}

function checkValidity(c: Cert, at: Date): void {
  // Whole seconds, as the Rust verifier compares (certificate times have no fractions).
  const t = Math.floor(at.getTime() / 1000);
  const nb = Math.floor(c.parts.notBefore.getTime() / 1000);
  const na = Math.floor(c.parts.notAfter.getTime() / 1000);
  if (t < nb) throw new AttestationError("validity", `${c.label} is not valid before ${c.parts.notBefore.toISOString()} (verification time ${at.toISOString()})`);
  if (t > na) throw new AttestationError("validity", `${c.label} expired at ${c.parts.notAfter.toISOString()} (verification time ${at.toISOString()})`);
}

function checkExtensions(i: number, c: Cert): void {
  const exts = c.parts.extensions;
  for (const [k, e] of exts.entries()) {
    // A second copy of an extension could say something different to another parser.
    if (exts.slice(k + 1).some((x) => equal(x.oid, e.oid))) chainErr(`${c.label} has a duplicate extension`);
    // RFC 5280 §4.2: a critical extension we do not act on must make us refuse.
    if (e.critical && !equal(e.oid, OID_BASIC_CONSTRAINTS) && !equal(e.oid, OID_KEY_USAGE)) {
      chainErr(`${c.label} has an unsupported critical extension`);
    }
  }
  const bc = basicConstraints(c);
  const ku = keyUsage(c);
  if (i === 0) {
    // A leaf that is a CA could mint further "leaves".
    if (bc && (bc.ca || bc.pathLength !== undefined)) chainErr(`${c.label} is the leaf and must not be a CA or carry a pathLenConstraint`);
    if (ku && !((ku[0] ?? 0) & 0x80)) chainErr(`${c.label} is the leaf but its KeyUsage lacks digitalSignature`);
    return;
  }
  // Only a certificate that explicitly (and critically) says it is a CA may issue the next.
  if (!bc) chainErr(`${c.label} issues a certificate but has no BasicConstraints`);
  else if (!bc.ca) chainErr(`${c.label} issues a certificate but BasicConstraints says cA=false`);
  else if (!bc.critical) chainErr(`${c.label} is a CA but its BasicConstraints is not critical`);
  else if (bc.pathLength !== undefined && i - 1 > bc.pathLength) {
    chainErr(`${c.label} has pathLenConstraint ${bc.pathLength} but ${i - 1} intermediate CAs below it`);
  }
  if (!ku) chainErr(`${c.label} is a CA without KeyUsage`);
  else if (!((ku[0] ?? 0) & 0x04)) chainErr(`${c.label} is a CA but its KeyUsage lacks keyCertSign`);
}

async function checkLink(i: number, child: Cert, issuer: Cert): Promise<void> {
  // Exact DER comparison: stricter than RFC 5280 name matching, and what AWS's chains satisfy.
  if (!equal(child.parts.issuer, issuer.parts.subject)) {
    chainErr(`${child.label} issuer does not match the subject of certificate ${i + 1}`);
  }
  const subtle = globalThis.crypto.subtle;
  let key: CryptoKey;
  try {
    key = await subtle.importKey("raw", buf(issuer.parts.spkiKey.subarray(1)), { name: "ECDSA", namedCurve: "P-384" }, false, ["verify"]);
  } catch {
    // WebCrypto refuses a point not on the curve (DataError): a chain failure, by name.
    return chainErr(`${issuer.label} public key is not a valid P-384 point`);
  }
  let ok = false;
  try {
    ok = await subtle.verify({ name: "ECDSA", hash: "SHA-384" }, key, buf(ecdsaDerToRaw(child.parts.signature, 48)), buf(child.parts.tbs));
  } catch {
    ok = false;
  }
  if (!ok) chainErr(`${child.label} signature does not verify with the key of certificate ${i + 1}`);
}

export interface ValidatedChain {
  root: RootName;
  /** The leaf's P-384 key, a 97-byte uncompressed point. */
  leafPublicKey: Uint8Array;
}

export async function validateChain(leaf: Uint8Array, cabundle: Uint8Array[], at: Date, trustTestRoot: boolean): Promise<ValidatedChain> {
  const rootDer = cabundle[0];
  if (!rootDer) return chainErr("cabundle is empty");
  // The pin first: nothing else in a chain to an unknown root is worth checking.
  const root = await pinRoot(rootDer, trustTestRoot);
  const path = [leaf, ...cabundle.slice().reverse()].map((d, i) => load(i, d));
  // The Rust verifier's order, so a tampered chain is named by the same check.
  for (const c of path) checkAlgorithms(c);
  for (const [i, c] of path.entries()) {
    const next = path[i + 1];
    if (next) await checkLink(i, c, next);
  }
  for (const c of path) checkValidity(c, at);
  for (const [i, c] of path.entries()) checkExtensions(i, c);
  return { root, leafPublicKey: path[0]!.parts.spkiKey.subarray(1) };
}
