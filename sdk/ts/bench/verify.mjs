// Time to verify a real AWS attestation document in Node (npm run build first):
//   node bench/verify.mjs [iterations]
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { verifyAttestation } from "../dist/src/index.js";

const shared = fileURLToPath(new URL("../../../../shared/vectors/nitro/", import.meta.url));
const index = JSON.parse(readFileSync(shared + "INDEX.json", "utf8"));
const n = Number(process.argv[2] ?? 200);
for (const e of index) {
  const doc = new Uint8Array(readFileSync(shared + "docs/" + e.file));
  const opts = { now: new Date(e.verify_at_unix_seconds * 1000), requireSigil: false };
  for (let i = 0; i < 20; i++) await verifyAttestation(doc, opts); // warm up
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await verifyAttestation(doc, opts);
  const ms = (performance.now() - t0) / n;
  console.log(`${e.file}: ${ms.toFixed(3)} ms per verification (${n} runs)`);
}
