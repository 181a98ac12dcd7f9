// A local deployment (target/debug/sigil-local: the enclave binary in local mode, its shim, a
// development KMS, a prover running the host's bb) for the tests that need one.
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { repoRoot } from "./paths.js";

/** A file a test needs, and the command that makes it. */
export type Prerequisite = readonly [path: string, how: string];

const sigilLocal = join(repoRoot, "target/debug/sigil-local");
const BUILD = "cargo build --workspace --bins";

/**
 * Fails the test (never a silent skip) when sigil-local's binaries or one of `more` are
 * missing, naming the command that makes it.
 */
export function checkPrerequisites(more: readonly Prerequisite[] = []): void {
  const binaries: Prerequisite[] = ["sigil-local", "sigil-enclave", "sigil-shim"].map((b) => [join(repoRoot, "target/debug", b), BUILD]);
  for (const [p, how] of [...binaries, ...more]) {
    assert.ok(existsSync(p), `${p} is missing: ${how}`);
  }
}

/** Starts sigil-local with `args`; resolves once it prints `ready URL` (at most 120 s). */
export async function startLocal(args: readonly string[]): Promise<{ proc: ChildProcess; endpoint: string }> {
  const proc = spawn(sigilLocal, args, { stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  proc.stderr!.on("data", (d) => {
    stderr += d;
  });
  const endpoint = await new Promise<string>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`sigil-local did not get ready in 120 s:\n${stderr.slice(-2000)}`)), 120_000);
    let out = "";
    proc.stdout!.on("data", (d) => {
      out += d;
      const m = /ready (http:\/\/\S+)/.exec(out);
      if (m) {
        clearTimeout(t);
        resolve(m[1]!);
      }
    });
    proc.on("exit", (code) => reject(new Error(`sigil-local exited (${code}):\n${stderr.slice(-2000)}`)));
  });
  return { proc, endpoint };
}
