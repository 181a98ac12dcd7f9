// The page in headless Chromium against a local enclave: attest and verify, prove the tiny
// fixture, refuse tampered documents naming the failing check, and show that a page of an
// origin the enclave does not list cannot read its answers. Fails (never skips) when
// Chromium or a binary is missing. Run by scripts/test-web.
//
//   node examples/web/test.mjs
//
// Needs Debian's chromium (/usr/bin/chromium, or $CHROMIUM), the workspace's debug binaries
// (cargo build --workspace --bins: sigil-local, sigil-enclave, sigil-shim, sigil), bb
// (scripts/fetch-bb) and sdk/ts/node_modules (npm ci). Writes target/web-test/: the built
// page, the deployment's directory, screenshot.png.

import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

import { build } from "./build.mjs";
import { serve } from "./serve.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "../..");
const out = join(root, "target/web-test");
const bin = (name) => join(root, "target/debug", name);
const chromiumPath = process.env.CHROMIUM ?? "/usr/bin/chromium";
// Chromium's own background traffic (updates, sync, field trials) fails without internet and
// slows start-up; none of it is needed.
const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
const ZERO_PCR = "0".repeat(96);

function fail(message) {
  console.error(`web-test: FAILED: ${message}`);
  process.exit(1);
}

function step(message) {
  console.log(`web-test: ${message}`);
}

// Missing tools are failures: a browser test that skips proves nothing.
const missing = [];
if (!existsSync(chromiumPath)) missing.push(`${chromiumPath} (apt-get install chromium; scripts/setup does)`);
for (const b of ["sigil-local", "sigil-enclave", "sigil-shim", "sigil"]) {
  if (!existsSync(bin(b))) missing.push(`target/debug/${b} (cargo build --workspace --bins)`);
}
const crs = join(root, "../shared/crs/bn254_g1.dat");
if (!existsSync(crs)) missing.push("../shared/crs/bn254_g1.dat (the CRS beside the checkout)");
if (!existsSync(join(root, "target/bb/bb"))) missing.push("target/bb/bb (scripts/fetch-bb)");
const playwrightEntry = join(root, "sdk/ts/node_modules/playwright-core/index.mjs");
if (!existsSync(playwrightEntry)) missing.push("sdk/ts/node_modules/playwright-core (npm ci in sdk/ts)");
if (missing.length) fail(`missing:\n  ${missing.join("\n  ")}`);

const cleanups = [];
async function cleanup() {
  for (const c of cleanups.reverse()) {
    try {
      await c();
    } catch {
      // Best effort: the rest still runs.
    }
  }
}

/** Starts sigil-local and resolves to its endpoint once it prints `ready URL`. */
function startEnclave(args) {
  const child = spawn(bin("sigil-local"), args, { stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (d) => {
    stderr = (stderr + d).slice(-8000);
  });
  cleanups.push(
    () =>
      new Promise((done) => {
        if (child.exitCode !== null) return done();
        child.once("exit", done);
        // SIGTERM: sigil-local stops its enclave, shim and KMS.
        child.kill("SIGTERM");
        setTimeout(() => child.kill("SIGKILL"), 10_000).unref();
      }),
  );
  return new Promise((ok, bad) => {
    const timer = setTimeout(() => bad(new Error(`sigil-local not ready after 180 s:\n${stderr}`)), 180_000);
    let buf = "";
    child.stdout.on("data", (d) => {
      buf += d;
      const m = /^ready (\S+)$/m.exec(buf);
      if (m) {
        clearTimeout(timer);
        ok(m[1]);
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      bad(new Error(`sigil-local exited (${code}) before it was ready:\n${stderr}`));
    });
  });
}

async function waitState(page, id, timeout) {
  await page.waitForFunction(
    (id) => ["ok", "error"].includes(document.getElementById(id)?.dataset.state ?? ""),
    id,
    { timeout },
  );
  return page.evaluate((id) => {
    const el = document.getElementById(id);
    return { state: el.dataset.state, text: el.textContent, check: el.dataset.check };
  }, id);
}

const text = (page, id) => page.$eval(`#${id}`, (el) => el.textContent);

async function main() {
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  step("building the page");
  const site = build(join(out, "site"));

  // Two servers of the same page: two origins, one allowed by the enclave, one not.
  const allowed = await serve(site);
  const other = await serve(site);
  cleanups.push(() => new Promise((d) => allowed.close(d)), () => new Promise((d) => other.close(d)));
  const originOf = (s) => `http://127.0.0.1:${s.address().port}`;
  const origin = originOf(allowed);
  const otherOrigin = originOf(other);

  step(`starting a local enclave with the prover, allowing ${origin}`);
  const endpoint = await startEnclave(["--dir", join(out, "deployment"), "--prover-crs", crs, "--cors-origin", origin]);
  step(`enclave at ${endpoint}`);

  // What the Rust side says: the node identity the CLI verifies, the prover's bb.
  const rust = JSON.parse(execFileSync(bin("sigil"), ["attest", "--endpoint", endpoint, "--trust-test-root"], { stdio: ["ignore", "pipe", "ignore"] }).toString());
  const node = rust.image?.node;
  assert.match(node ?? "", /^[0-9a-f]{64}$/, `the Rust CLI shows no node identity: ${JSON.stringify(rust)}`);
  const health = await (await fetch(`${endpoint}/v1/health`)).json();
  const bbVersion = health.prover?.bb_version;
  assert.ok(bbVersion, `the enclave runs no prover: ${JSON.stringify(health)}`);

  const { chromium } = await import(pathToFileURL(playwrightEntry).href);
  const profile = mkdtempSync(join(out, "chromium-profile-"));
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1100, height: 900 },
  });
  cleanups.push(() => browser.close());
  step(`Chromium ${browser.browser()?.version() ?? "(version unknown)"}`);

  const page = await browser.newPage();
  const consoleErrors = [];
  page.on("console", (m) => m.type() === "error" && consoleErrors.push(m.text()));
  page.on("pageerror", (e) => consoleErrors.push(String(e)));
  const query = `?endpoint=${encodeURIComponent(endpoint)}&trust-test-root=1`;
  await page.goto(`${origin}/${query}`);
  await page.waitForSelector("body[data-ready='1']", { timeout: 30_000 });

  try {
    // 0. "any image" is loud about what it gives up.
    assert.equal(await page.isVisible("#any-image-warning"), false);
    await page.check("#any-image");
    assert.ok(await page.isVisible("#any-image-warning"), "the no-pin warning is not shown");
    await page.uncheck("#any-image");

    // 1. Attest and verify in the browser (a simulated document: no image pin needed).
    step("attesting in the browser");
    await page.click("#attest");
    const a = await waitState(page, "attest-status", 60_000);
    assert.equal(a.state, "ok", `attestation refused in the browser: ${a.text}\n${consoleErrors.join("\n")}`);
    for (const i of [0, 1, 2]) assert.equal(await text(page, `pcr${i}`), ZERO_PCR, `PCR${i}`);
    assert.match(await text(page, "root"), /SIMULATED/);
    assert.ok(await page.isVisible("#simulated-warning"), "the simulated-document warning is not shown");
    assert.match(await text(page, "module-id"), /simulated/);
    assert.equal(await text(page, "mode"), "local");
    assert.equal(await text(page, "node"), node, "the page's node identity differs from the Rust CLI's");
    assert.match(await text(page, "bb"), new RegExp(bbVersion.replace(/\./g, "\\.")));
    const coldMs = Number(await page.$eval("#verify-ms", (el) => el.dataset.ms));
    assert.ok(coldMs > 0);
    const bench = await page.evaluate(() => window.sigilPage.benchVerify(20));
    step(`verified: node ${node}, bb ${bbVersion}`);

    // 2. Prove the tiny fixture (served next to the page).
    step("proving the tiny fixture from the browser");
    await page.click("#prove");
    const p = await waitState(page, "prove-status", 300_000);
    assert.equal(p.state, "ok", `proving failed in the browser: ${p.text}\n${consoleErrors.join("\n")}`);
    const proofBytes = Number(await page.$eval("#proof-size", (el) => el.dataset.bytes));
    assert.ok(proofBytes > 0, "empty proof");
    // The fixture's one public input: y = 9.
    assert.equal(await text(page, "public-inputs"), `0x${"0".repeat(63)}9`);
    step(`proved: ${proofBytes}-byte proof, public input y = 9`);

    // 3. Tampered documents are refused, naming the failing check.
    step("checking tampered documents in the browser");
    const own = await page.evaluate(() => window.sigilPage.lastDocument());
    const flippedPcr = await page.evaluate(
      (d) => window.sigilPage.checkDocument(window.sigilPage.tampered(d)),
      own,
    );
    assert.equal(flippedPcr.ok, false);
    assert.equal(flippedPcr.check, "cose_signature", `enclave document with a PCR byte flipped: ${flippedPcr.message}`);
    const untrusted = await page.evaluate((d) => window.sigilPage.checkDocument(d, { trustTestRoot: false }), own);
    assert.equal(untrusted.check, "root", `simulated document without the test root: ${untrusted.message}`);

    const vectors = join(root, "../shared/vectors/nitro");
    const index = JSON.parse(readFileSync(join(vectors, "INDEX.json"), "utf8"));
    const real = index[0];
    const realB64 = readFileSync(join(vectors, "docs", real.file.replace(/\.cbor$/, ".b64")), "utf8").trim();
    const at = new Date(real.verify_at_unix_seconds * 1000).toISOString();
    const realOpts = { now: at, requireSigil: false, trustTestRoot: false };
    const genuine = await page.evaluate(([d, o]) => window.sigilPage.checkDocument(d, o), [realB64, realOpts]);
    assert.equal(genuine.ok, true, `the real AWS document ${real.file} is refused: ${genuine.message}`);
    const realBytes = Buffer.from(realB64, "base64");
    realBytes[realBytes.length - 1] ^= 0x01; // the last byte of the ES384 signature
    const badSig = await page.evaluate(([d, o]) => window.sigilPage.checkDocument(d, o), [realBytes.toString("base64"), realOpts]);
    assert.equal(badSig.check, "cose_signature", `AWS document with a flipped signature byte: ${badSig.message}`);
    const expired = await page.evaluate((d) => window.sigilPage.checkDocument(d, { requireSigil: false, trustTestRoot: false }), realB64);
    assert.equal(expired.ok, false);
    step(`refused: flipped PCR byte -> ${flippedPcr.check}; test root not trusted -> ${untrusted.check}; AWS document with a flipped signature byte -> ${badSig.check}; AWS document today -> ${expired.check}`);
    // What the screenshot shows: the page's own tamper button on the enclave's document.
    await page.click("#tamper");
    await page.waitForFunction(() => document.getElementById("check-status")?.dataset.check === "cose_signature", null, { timeout: 10_000 });

    // 4. Another origin: the enclave answers, but the browser keeps the answer from its page.
    step(`a page of ${otherOrigin} (not allowed) tries the same`);
    const blocked = await browser.newPage();
    await blocked.goto(`${otherOrigin}/${query}`);
    await blocked.waitForSelector("body[data-ready='1']", { timeout: 30_000 });
    await blocked.click("#attest");
    const b = await waitState(blocked, "attest-status", 60_000);
    assert.equal(b.state, "error", "a page of a disallowed origin read the attestation");
    assert.match(b.text, /transport/);
    const read = (pg) =>
      pg.evaluate((e) => fetch(`${e}/v1/health`).then((r) => `read ${r.status}`, (err) => `blocked: ${err.message}`), endpoint);
    assert.match(await read(blocked), /^blocked/);
    assert.equal(await read(page), "read 200");
    // Not unreachable: the enclave did answer that origin, only without CORS headers.
    const direct = await fetch(`${endpoint}/v1/health`, { headers: { origin: otherOrigin } });
    assert.equal(direct.status, 200);
    assert.equal(direct.headers.get("access-control-allow-origin"), null);
    await blocked.close();
    step("refused: the other origin's page cannot read the enclave's answers");

    const shot = join(out, "screenshot.png");
    await page.screenshot({ path: shot, fullPage: true });
    console.log(`web-test: screenshot ${shot}`);
    console.log(
      `web-test: verify time in Chromium: first ${coldMs.toFixed(1)} ms; ${bench.runs} more: median ${bench.median.toFixed(1)} ms (min ${bench.min.toFixed(1)}, max ${bench.max.toFixed(1)})`,
    );
    console.log("web-test: ok");
  } catch (e) {
    const shot = join(out, "failure.png");
    await page.screenshot({ path: shot, fullPage: true }).catch(() => {});
    console.error(`web-test: screenshot of the failure: ${shot}`);
    if (consoleErrors.length) console.error(`web-test: page console errors:\n${consoleErrors.join("\n")}`);
    throw e;
  }
}

try {
  await main();
} catch (e) {
  process.exitCode = 1;
  console.error(`web-test: FAILED: ${e?.stack ?? e}`);
} finally {
  await cleanup();
}
