// pcr-manifest.json -> PCR pins (protocol/src/manifest.rs): schema and hash algorithm checked,
// each of PCR0..2 exactly 96 lowercase hex characters and never all zeros (pinning zeros
// would accept a debug-mode enclave, whose memory the parent can read).

import { SigilError } from "./errors.js";

export const MANIFEST_SCHEMA = "sigil-pcr-manifest/1";
export const HASH_ALGORITHM_SHA384 = "Sha384 { ... }";

export function pcrPinsFromManifest(manifest: unknown): Record<number, string> {
  const m = (typeof manifest === "string" ? JSON.parse(manifest) : manifest) as Record<string, unknown> | null;
  const bad = (msg: string): never => {
    throw new SigilError("bad_manifest", `manifest ${msg}`);
  };
  if (!m || typeof m !== "object") return bad("is not an object");
  if (m.schema !== MANIFEST_SCHEMA) bad(`schema is not ${JSON.stringify(MANIFEST_SCHEMA)}`);
  const meas = m.Measurements as Record<string, unknown> | undefined;
  if (!meas || typeof meas !== "object") return bad("has no Measurements");
  if (meas.HashAlgorithm !== HASH_ALGORITHM_SHA384) bad(`HashAlgorithm is not ${JSON.stringify(HASH_ALGORITHM_SHA384)}`);
  const out: Record<number, string> = {};
  for (const i of [0, 1, 2]) {
    const v = meas[`PCR${i}`];
    if (typeof v !== "string" || !/^[0-9a-f]{96}$/.test(v)) bad(`PCR${i}: must be 96 lowercase hex chars (48 bytes)`);
    if (/^0+$/.test(v as string)) bad(`PCR${i}: all zeros (debug-mode measurement)`);
    out[i] = v as string;
  }
  return out;
}
