// A minimal DER walker: raw slices of the certificate fields the chain check compares byte
// for byte (issuer and subject names, the signed TBS, algorithm identifiers, the key).
// Re-encoding a parsed name could differ from the bytes that were signed; slices cannot.

import { AttestationError } from "../errors.js";

export interface Tlv {
  tag: number;
  /** The whole element (tag, length, value). */
  raw: Uint8Array;
  value: Uint8Array;
}

function fail(msg: string): never {
  throw new AttestationError("chain", msg);
}

export function readTlv(b: Uint8Array, pos: number): Tlv & { end: number } {
  if (pos + 2 > b.length) fail("DER: truncated element");
  const tag = b[pos]!;
  if ((tag & 0x1f) === 0x1f) fail("DER: multi-byte tags are not used in certificates");
  let len = b[pos + 1]!;
  let p = pos + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 3) fail("DER: unsupported length form");
    if (p + n > b.length) fail("DER: truncated length");
    len = 0;
    for (let i = 0; i < n; i++) len = (len << 8) | b[p + i]!;
    // DER: shortest length form only (a second encoding of the same certificate).
    if (len < 128 || (n > 1 && b[p] === 0)) fail("DER: non-minimal length");
    p += n;
  }
  if (p + len > b.length) fail("DER: element longer than its container");
  return { tag, raw: b.subarray(pos, p + len), value: b.subarray(p, p + len), end: p + len };
}

export function children(b: Uint8Array): Tlv[] {
  const out: Tlv[] = [];
  let p = 0;
  while (p < b.length) {
    const t = readTlv(b, p);
    out.push(t);
    p = t.end;
  }
  return out;
}

export interface CertParts {
  tbs: Uint8Array;
  outerAlg: Uint8Array;
  tbsAlg: Uint8Array;
  signature: Uint8Array; // DER ECDSA-Sig-Value
  version: number;
  issuer: Uint8Array;
  subject: Uint8Array;
  spki: Uint8Array;
  spkiAlg: Uint8Array;
  spkiKey: Uint8Array; // BIT STRING contents, unused-bits byte included
  notBefore: Date;
  notAfter: Date;
  extensions: Extension[];
}

export interface Extension {
  /** The OID's DER (tag and length included). */
  oid: Uint8Array;
  critical: boolean;
  value: Uint8Array;
}

/** RFC 5280 §4.1.2.5: UTCTime (years 1950..2049) or GeneralizedTime, both in Z form. */
function parseTime(t: Tlv): Date {
  const s = new TextDecoder().decode(t.value);
  const m = t.tag === 0x17 ? /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(s) : t.tag === 0x18 ? /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(s) : null;
  if (!m) fail(`bad certificate time ${JSON.stringify(s)}`);
  let y = Number(m[1]);
  if (t.tag === 0x17) y += y < 50 ? 2000 : 1900;
  const d = new Date(Date.UTC(y, Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6])));
  if (Number.isNaN(d.getTime())) fail(`bad certificate time ${JSON.stringify(s)}`);
  return d;
}

function parseExtensions(t: Tlv | undefined): Extension[] {
  if (!t) return [];
  const [seq, ...rest] = children(t.value);
  if (!seq || rest.length || seq.tag !== 0x30) fail("bad extensions");
  return children(seq.value).map((e) => {
    const f = children(e.value);
    const oid = f[0];
    if (e.tag !== 0x30 || !oid || oid.tag !== 0x06) fail("bad extension");
    let critical = false;
    let i = 1;
    if (f[1]?.tag === 0x01) {
      // DER: a default (FALSE) is never encoded, and TRUE is 0xff.
      if (f[1].value.length !== 1 || f[1].value[0] !== 0xff) fail("bad extension critical flag");
      critical = true;
      i = 2;
    }
    const v = f[i];
    if (!v || v.tag !== 0x04 || f.length !== i + 1) fail("bad extension value");
    return { oid: oid.raw, critical, value: v.value };
  });
}

export function certParts(der: Uint8Array): CertParts {
  const top = readTlv(der, 0);
  if (top.tag !== 0x30 || top.end !== der.length) fail("certificate is not one DER SEQUENCE");
  const [tbs, alg, sig, ...rest] = children(top.value);
  if (!tbs || !alg || !sig || rest.length) fail("certificate must hold tbsCertificate, algorithm, signature");
  if (tbs.tag !== 0x30 || alg.tag !== 0x30 || sig.tag !== 0x03) fail("certificate fields have wrong types");
  if (sig.value[0] !== 0) fail("signature BIT STRING has unused bits");
  const f = children(tbs.value);
  let i = 0;
  let version = 1;
  if (f[0]?.tag === 0xa0) {
    const v = children(f[0].value)[0];
    if (!v || v.tag !== 0x02 || v.value.length !== 1) fail("bad version");
    version = v.value[0]! + 1;
    i = 1;
  }
  const [serial, tbsAlg, issuer, validity, subject, spki, ...tail] = f.slice(i);
  if (!serial || !tbsAlg || !issuer || !validity || !subject || !spki) fail("tbsCertificate is truncated");
  const [spkiAlg, spkiKey] = children(spki.value);
  if (!spkiAlg || !spkiKey || spkiKey.tag !== 0x03) fail("bad SubjectPublicKeyInfo");
  const [nb, na, ...vrest] = children(validity.value);
  if (!nb || !na || vrest.length) fail("bad validity");
  // Optional issuerUniqueID [1], subjectUniqueID [2], then extensions [3].
  const ext = tail.find((t) => t.tag === 0xa3);
  if (tail.some((t) => t.tag !== 0xa3 && t.tag !== 0x81 && t.tag !== 0x82 && t.tag !== 0xa1 && t.tag !== 0xa2)) fail("unexpected field in tbsCertificate");
  return {
    tbs: tbs.raw,
    outerAlg: alg.raw,
    tbsAlg: tbsAlg.raw,
    signature: sig.value.subarray(1),
    version,
    issuer: issuer.raw,
    subject: subject.raw,
    spki: spki.raw,
    spkiAlg: spkiAlg.raw,
    spkiKey: spkiKey.value,
    notBefore: parseTime(nb),
    notAfter: parseTime(na),
    extensions: parseExtensions(ext),
  };
}

/** DER ECDSA-Sig-Value to the fixed r || s form WebCrypto verifies (`n` bytes each). */
export function ecdsaDerToRaw(sig: Uint8Array, n: number): Uint8Array {
  const seq = readTlv(sig, 0);
  if (seq.tag !== 0x30 || seq.end !== sig.length) fail("ECDSA signature is not a SEQUENCE");
  const [r, s, ...rest] = children(seq.value);
  if (!r || !s || rest.length || r.tag !== 2 || s.tag !== 2) fail("ECDSA signature is not two INTEGERs");
  const out = new Uint8Array(2 * n);
  for (const [k, x] of [r, s].entries()) {
    let v = x.value;
    while (v.length > 1 && v[0] === 0) v = v.subarray(1);
    if (v.length > n) fail("ECDSA signature integer too large");
    out.set(v, k * n + n - v.length);
  }
  return out;
}
