// Cancelling proving jobs against a local deployment (target/debug/sigil-local) whose bb
// stalls on the `large` fixture (as a stuck or hostile input would make it) and is the real bb
// for everything else: a queued job and a running one are cancelled, and an aborted prove()
// cancels its job in the enclave, without waiting forever for a cancellation whose answer never
// comes. Missing binaries fail the test with the command that builds them.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { type ChildProcess } from "node:child_process";
import { chmodSync, copyFileSync, linkSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { getEventListeners } from "node:events";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ProveError, SigilClient, SigilError } from "../src/index.js";
import { CANCEL_TIMEOUT_MS, sleep } from "../src/client.js";
import { readBytes, repoRoot, shared } from "./paths.js";
import { checkPrerequisites, startLocal } from "./local.js";

const bb = join(repoRoot, "target/bb/bb");
const crs = join(shared, "crs/bn254_g1.dat");
// A duration no other process on the machine sleeps for, to find the stalled bb.
const stall = `80.${process.pid}`;
let proc: ChildProcess | undefined;
let client: SigilClient;
let endpoint: string;
const work = mkdtempSync(join(tmpdir(), "sigil-sdk-cancel-"));

/** The stand-in bb: the sandbox shows its directory read-only, so the wrapper, the real bb
 * and the circuit it stalls on sit together (shell built-ins only: nothing may fork). */
function stallingBb(): string {
  chmodSync(work, 0o755);
  const bin = join(work, "bin");
  mkdirSync(bin, { mode: 0o755 });
  const real = join(bin, "bb");
  try {
    linkSync(bb, real);
  } catch {
    copyFileSync(bb, real);
  }
  copyFileSync(join(repoRoot, "fixtures/large/target.json"), join(bin, "large.json"));
  const wrapper = join(bin, "stalling-bb");
  writeFileSync(
    wrapper,
    `#!/bin/sh\nif [ "$1" = prove ]; then\n  read -r a < "$5"; read -r b < '${join(bin, "large.json")}'\n  [ "$a" = "$b" ] && exec /bin/sleep ${stall}\nfi\nexec '${real}' "$@"\n`,
    { mode: 0o755 },
  );
  return wrapper;
}

/** Processes of this machine running `sleep STALL`. */
function stalled(): number {
  const want = `/bin/sleep\0${stall}\0`;
  let n = 0;
  for (const pid of readdirSync("/proc")) {
    try {
      if (readFileSync(join("/proc", pid, "cmdline"), "latin1") === want) n++;
    } catch {
      // gone meanwhile, or not a process
    }
  }
  return n;
}

async function until(what: string, ok: () => boolean | Promise<boolean>, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > end) assert.fail(`timed out waiting: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const fixture = (name: string) => ({
  scheme: "ultra_honk" as const,
  circuit: readBytes(join(repoRoot, `fixtures/${name}/target.json`)),
  witness: readBytes(join(repoRoot, `fixtures/${name}/witness.gz`)),
});

before(async () => {
  checkPrerequisites([
    [bb, "scripts/fetch-bb"],
    [crs, "the shared directory beside the checkout"],
  ]);
  ({ proc, endpoint } = await startLocal(["--dir", join(work, "deployment"), "--prover-crs", crs, "--bb", stallingBb()]));
  client = await SigilClient.connect(endpoint, { trustTestRoot: true, maxAgeMs: 300_000 });
  await until("the CRS", async () => (await client.health()).crs?.state === "ready");
});

after(() => {
  proc?.kill("SIGTERM");
  rmSync(work, { recursive: true, force: true });
});

const cancelled = (e: unknown) => e instanceof ProveError && e.code === "cancelled";

test("prove: cancelling a queued and a running job; only its client can, once", { timeout: 300_000 }, async () => {
  // One worker: `large` runs (stalled), `tiny` waits behind it.
  const running = await client.submit(fixture("large"));
  await until("bb running", () => stalled() > 0);
  const queued = await client.submit(fixture("tiny"));
  assert.equal((await client.status(queued.submitted.id)).state, "queued");

  // Another key's token is refused as an unknown job would be.
  const other = { ...queued, key: new Uint8Array(32) };
  await assert.rejects(client.cancelProve(other), (e: unknown) => e instanceof SigilError && e.code === "unknown_job" && e.status === 404);
  assert.equal((await client.status(queued.submitted.id)).state, "queued");

  // A long-poll on each: the running one's runs out first and says so; the queued one's
  // answers as soon as its job is cancelled, long before its wait.
  let t = Date.now();
  assert.equal((await client.status(running.submitted.id, { waitS: 1 })).state, "running");
  assert.ok(Date.now() - t >= 1000, `answered after ${Date.now() - t} ms`);
  t = Date.now();
  const polled = client.status(queued.submitted.id, { waitS: 20 });
  await sleep(200);
  const q = await client.cancelProve(queued);
  assert.deepEqual([q.state, q.cancelled], ["cancelled", true]);
  assert.equal((await polled).state, "cancelled");
  assert.ok(Date.now() - t < 20_000, `answered after ${Date.now() - t} ms`);
  assert.equal((await client.status(queued.submitted.id)).sealed, undefined);
  await assert.rejects(client.wait(queued), cancelled);

  t = Date.now();
  const polledRunning = client.status(running.submitted.id, { waitS: 20 });
  await sleep(200);
  const r = await client.cancelProve(running);
  assert.deepEqual([r.state, r.cancelled], ["cancelled", true]);
  assert.equal((await polledRunning).state, "cancelled");
  assert.ok(Date.now() - t < 20_000, `answered after ${Date.now() - t} ms`);
  await until("the stalled bb killed", () => stalled() === 0, 10_000);
  await assert.rejects(client.wait(running), cancelled);
  // Again: answered at once, nothing changes.
  assert.deepEqual(await client.cancelProve(running), r);

  // The worker is free again. A job that ended otherwise cannot be cancelled.
  const done = await client.submit(fixture("tiny"));
  const p = await client.wait(done);
  assert.ok(p.proof.length > 0);
  await assert.rejects(client.cancelProve(done), (e: unknown) => e instanceof SigilError && e.code === "job_ended" && e.status === 409);
});

test("prove: aborting prove() cancels its job in the enclave", { timeout: 300_000 }, async () => {
  const ac = new AbortController();
  let id = "";
  const p = client.prove(fixture("large"), {
    signal: ac.signal,
    pollMs: 50,
    onProgress: (s) => {
      id = s.id;
      if (s.state === "running" && stalled() > 0) ac.abort();
    },
  });
  await assert.rejects(p, (e: unknown) => e instanceof SigilError && e.code === "aborted");
  // Rejected only after the cancellation: the job has ended and its bb is gone.
  assert.equal((await client.status(id)).state, "cancelled");
  await until("the stalled bb killed", () => stalled() === 0, 10_000);
});

test("prove: an abort ends the long-poll in flight, and the job is cancelled", { timeout: 300_000 }, async () => {
  // The status polls are seen on their way, to know the job (no answer comes before the abort:
  // the first long-poll waits on a job that never ends).
  let id = "";
  let polls = 0;
  const seeing: typeof fetch = async (input, init) => {
    const m = /\/v1\/prove\/([0-9a-f]{32})\?wait=(\d+)$/.exec(String(input));
    if (m) {
      id = m[1]!;
      polls++;
      assert.ok(Number(m[2]) > 1, `a long-poll asks to wait: ${String(input)}`);
    }
    return fetch(input, init);
  };
  const c = await SigilClient.connect(endpoint, { trustTestRoot: true, maxAgeMs: 300_000, fetch: seeing });
  const ac = new AbortController();
  let answers = 0;
  const p = c.prove(fixture("large"), { signal: ac.signal, onProgress: () => answers++ });
  await until("bb running and polled", () => stalled() > 0 && polls > 0);
  const t = Date.now();
  ac.abort();
  await assert.rejects(p, (e: unknown) => e instanceof SigilError && e.code === "aborted");
  // Not held by the long-poll (20 s) it interrupted.
  assert.ok(Date.now() - t < 15_000, `rejected ${Date.now() - t} ms after the abort`);
  assert.equal(answers, 0);
  assert.equal((await c.status(id)).state, "cancelled");
  await until("the stalled bb killed", () => stalled() === 0, 10_000);
});

test("prove: a bad wait is refused by the enclave (bad_query) and by the client", async () => {
  const job = await client.submit(fixture("tiny"));
  const p = await client.wait(job);
  assert.ok(p.proof.length > 0);
  for (const q of ["wait=21", "wait=abc", "wait=-1", "wait=1&wait=2", "wiat=5"]) {
    const resp = await fetch(`${endpoint}/v1/prove/${job.submitted.id}?${q}`);
    assert.equal(resp.status, 400, q);
    assert.equal((await resp.json()).error.code, "bad_query", q);
  }
  // An ended job's long-poll answers at once, with its sealed result.
  const ended = await client.status(job.submitted.id, { waitS: 20 });
  assert.equal(ended.state, "ended");
  assert.ok(ended.sealed);
  for (const waitS of [21, -1, 1.5]) {
    assert.throws(() => client.status(job.submitted.id, { waitS }), RangeError);
  }
});

test("prove: an abort is not held by a cancellation whose answer never comes", { timeout: 120_000 }, async () => {
  // A relay that passes the cancellation on to the enclave and never answers it: it holds the
  // request until the caller gives up (as fetch does, through its signal).
  let cancels = 0;
  const relay: typeof fetch = async (input, init) => {
    if (!String(input).endsWith("/v1/prove/cancel")) return fetch(input, init);
    cancels++;
    await fetch(input, { ...init, signal: null });
    return new Promise<Response>((_, reject) => {
      const s = init?.signal;
      if (s?.aborted) return reject(s.reason);
      s?.addEventListener("abort", () => reject(s.reason), { once: true });
    });
  };
  const c = await SigilClient.connect(endpoint, { trustTestRoot: true, maxAgeMs: 300_000, fetch: relay });
  const ac = new AbortController();
  let aborted = 0;
  const p = c.prove(fixture("large"), {
    signal: ac.signal,
    pollMs: 50,
    onProgress: (s) => {
      if (s.state === "running" && stalled() > 0 && !aborted) {
        aborted = Date.now();
        ac.abort();
      }
    },
  });
  // The abort's error, not the cancellation's timeout, once the cancellation's time is up.
  await assert.rejects(p, (e: unknown) => e instanceof SigilError && e.code === "aborted");
  const held = Date.now() - aborted;
  assert.equal(cancels, 1);
  assert.ok(held >= CANCEL_TIMEOUT_MS - 1000 && held < CANCEL_TIMEOUT_MS + 10_000, `rejected ${held} ms after the abort`);
  // The enclave did cancel it: the stalled bb is gone.
  await until("the stalled bb killed", () => stalled() === 0, 10_000);
});

test("sleep: a timer that fires takes its abort listener with it", async () => {
  const ac = new AbortController();
  for (let i = 0; i < 5; i++) await sleep(1, ac.signal);
  assert.equal(getEventListeners(ac.signal, "abort").length, 0);
  const pending = sleep(60_000, ac.signal);
  assert.equal(getEventListeners(ac.signal, "abort").length, 1);
  ac.abort();
  await assert.rejects(pending, (e: unknown) => e instanceof SigilError && e.code === "aborted");
});
