// One sealed round trip from the SDK (POST /v1/ping, encapsulated both ways) against a local
// deployment, and the in-process HPKE cost beside it (npm run build and
// `cargo build --workspace --bins` first):
//   node bench/roundtrip.mjs [iterations]
// The deployment runs the release enclave (`reproducible-build/build` makes it), as the Rust
// benches do: a debug enclave spends about 20 ms of its own per sealed request.
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SigilClient } from "../dist/src/index.js";
import { startLocal } from "../dist/test/local.js";
import { ServerKey, sealRequest } from "../dist/src/encap.js";

const n = Number(process.argv[2] ?? 200);
const median = (xs) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const work = mkdtempSync(join(tmpdir(), "sigil-sdk-bench-"));
const enclave = fileURLToPath(new URL("../../../target/reproducible/x86_64-unknown-linux-gnu/release/sigil-enclave", import.meta.url));
if (!existsSync(enclave)) throw new Error(`${enclave} is missing: reproducible-build/build`);
const { proc, endpoint } = await startLocal(["--dir", join(work, "deployment"), "--enclave", enclave]);
try {
  const t0 = performance.now();
  const client = await SigilClient.connect(endpoint, { trustTestRoot: true });
  console.log(`connect (fetch the document, verify it): ${(performance.now() - t0).toFixed(1)} ms`);
  for (let i = 0; i < 20; i++) await client.ping("warm up");
  const rt = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await client.ping("hello");
    rt.push(performance.now() - t);
  }
  // The client's own share: sealing a request to a key (what each call does before sending).
  const key = await ServerKey.fromSeed(new Uint8Array(32).fill(7));
  const pk = key.publicKey;
  const seal = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await sealRequest(pk, "POST /v1/ping", new TextEncoder().encode('{"message":"hello"}'));
    seal.push(performance.now() - t);
  }
  const r = median(rt);
  const s = median(seal);
  console.log(`ping round trip: median ${r.toFixed(2)} ms (${n} runs)`);
  console.log(`sealing one request in-process: median ${s.toFixed(2)} ms (ratio round trip / seal ${(r / s).toFixed(1)})`);
} finally {
  proc.kill("SIGTERM");
  rmSync(work, { recursive: true, force: true });
}
