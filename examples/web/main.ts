// The page's script: attest a sigil enclave, show what was verified, prove the tiny fixture,
// and check any document, naming the failing check. Bundled for the browser by build.mjs.
//
// Nothing shown here is trusted before verifyAttestation has accepted it: the document comes
// from the network, through the untrusted parent.

import {
  AttestationError,
  SigilClient,
  SigilError,
  hex,
  pcrPinsFromManifest,
  requirePinnedImage,
  unb64,
  verifyAttestation,
  type JobStatus,
  type VerifiedAttestation,
  type VerifyOptions,
} from "@sigil/sdk";

/** How old a fresh document may be (it was asked for a moment ago). */
const MAX_AGE_MS = 5 * 60_000;

const $ = <T extends HTMLElement = HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} is missing from the page`);
  return el as T;
};

type State = "idle" | "busy" | "ok" | "error";

function status(id: string, state: State, text: string): void {
  const el = $(id);
  el.dataset.state = state;
  el.textContent = text;
}

function describe(e: unknown): { check?: string; code?: string; text: string } {
  if (e instanceof AttestationError) {
    const why = e.message.startsWith(`${e.check}: `) ? e.message.slice(e.check.length + 2) : e.message;
    return { check: e.check, code: e.code, text: `Refused by the "${e.check}" check: ${why}` };
  }
  if (e instanceof SigilError) return { code: e.code, text: `${e.code}: ${e.message}` };
  return { text: String(e instanceof Error ? e.message : e) };
}

function endpoint(): string {
  return $<HTMLInputElement>("endpoint").value.trim().replace(/\/+$/, "");
}

function trustTestRoot(): boolean {
  return $<HTMLInputElement>("trust-test-root").checked;
}

function anyImage(): boolean {
  return $<HTMLInputElement>("any-image").checked;
}

/** PCR0..2 from the pasted pcr-manifest.json (none when the field is empty). A genuine AWS
 * document proves only that some enclave answered: without PCR0 pinned, anyone's image on AWS
 * hardware would be trusted with this page's proving inputs. */
function pcrPins(): Record<number, string> | undefined {
  const text = $<HTMLTextAreaElement>("pcr-manifest").value.trim();
  return text ? pcrPinsFromManifest(text) : undefined;
}

function verifyOptions(): VerifyOptions {
  const pcrs = pcrPins();
  return { trustTestRoot: trustTestRoot(), maxAgeMs: MAX_AGE_MS, ...(pcrs ? { pcrs } : {}) };
}

/** The last document this page verified, for the tamper demonstration and the benchmark. */
let last: { document: Uint8Array; nonce: Uint8Array } | undefined;

function show(v: VerifiedAttestation, nonce: Uint8Array, ms: number): void {
  const set = (id: string, text: string) => ($(id).textContent = text);
  set("root", v.simulated ? `${v.rootName} (SIMULATED)` : v.rootName);
  set("module-id", v.moduleId);
  set("timestamp", v.timestamp.toISOString());
  for (const i of [0, 1, 2]) set(`pcr${i}`, v.pcrs[i] ?? "(absent)");
  const info = v.userData;
  set("mode", info.mode);
  set("sigil-version", `${info.sigil} (protocol ${info.protocol}; ${info.capabilities.join(", ")})`);
  const bbs: string[] = [];
  if (info.bb) bbs.push(`${info.bb.version} sha256 ${info.bb.sha256} (default)`);
  // Further versions when the SDK knows the image's list of served versions.
  const served = (info as { bbs?: { name?: string; version: string; sha256: string }[] }).bbs ?? [];
  for (const b of served) bbs.push(`${b.name ?? b.version}: ${b.version} sha256 ${b.sha256}`);
  set("bb", bbs.length ? bbs.join("\n") : "(no prover)");
  set("node", info.node ?? "(none: the enclave's sealed state is not open)");
  set("public-key", hex(v.publicKey));
  set("nonce", hex(nonce));
  set("verify-ms", `${ms.toFixed(1)} ms`);
  $("verify-ms").dataset.ms = String(ms);
  $("simulated-warning").hidden = !v.simulated;
  $("attestation").hidden = false;
}

async function attest(): Promise<void> {
  status("attest-status", "busy", "Attesting…");
  $("attestation").hidden = true;
  $("simulated-warning").hidden = true;
  try {
    // A fresh nonce: the document must have been made for this request, not replayed.
    const nonce = crypto.getRandomValues(new Uint8Array(32));
    const resp = await fetch(`${endpoint()}/v1/attestation?nonce=${hex(nonce)}`, { redirect: "error" }).catch((e: Error) => {
      // A browser says no more: an unreachable enclave and one that does not allow this
      // page's origin (CORS) look the same from a script.
      throw new SigilError("transport", `${endpoint()}: ${e.message} (unreachable, or this page's origin is not in the enclave's cors.origins)`);
    });
    const body = (await resp.json()) as { document?: string; error?: { code: string; message: string } };
    if (!resp.ok || !body.document) {
      throw new SigilError(body.error?.code ?? "protocol", body.error?.message ?? `HTTP ${resp.status}`, resp.status);
    }
    const doc = unb64(body.document);
    const t0 = performance.now();
    const opts = verifyOptions();
    const v = await verifyAttestation(doc, { ...opts, nonce });
    const ms = performance.now() - t0;
    // What SigilClient.connect refuses too: an AWS enclave whose image is not pinned.
    requirePinnedImage(v, { ...opts, anyImage: anyImage() });
    last = { document: doc, nonce };
    $<HTMLButtonElement>("tamper").disabled = false;
    show(v, nonce, ms);
    status(
      "attest-status",
      "ok",
      `Verified: ${v.simulated ? "SIMULATED (sigil test root)" : "AWS Nitro root"}, mode ${v.userData.mode}, ${doc.length}-byte document, verified in ${ms.toFixed(1)} ms.`,
    );
  } catch (e) {
    const d = describe(e);
    $("attest-status").dataset.check = d.check ?? "";
    status("attest-status", "error", d.text);
  }
}

async function readInput(fileId: string, url: string): Promise<Uint8Array> {
  const f = $<HTMLInputElement>(fileId).files?.[0];
  if (f) return new Uint8Array(await f.arrayBuffer());
  const resp = await fetch(url);
  if (!resp.ok) throw new Error(`${url}: HTTP ${resp.status} (pick the file instead)`);
  return new Uint8Array(await resp.arrayBuffer());
}

function progress(s: JobStatus): void {
  const bar = $<HTMLProgressElement>("prove-bar");
  bar.hidden = false;
  const where =
    s.state === "queued"
      ? `queued (position ${s.queue_position ?? "?"})`
      : s.state === "running"
        ? `running, ${((s.elapsed_ms ?? 0) / 1000).toFixed(1)} s`
        : "ended, opening the sealed result";
  status("prove-status", "busy", `Job ${s.id}: ${where}`);
}

async function prove(): Promise<void> {
  status("prove-status", "busy", "Attesting, then submitting…");
  $("proof").hidden = true;
  try {
    const [circuit, witness] = await Promise.all([
      readInput("circuit-file", "fixtures/tiny/target.json"),
      readInput("witness-file", "fixtures/tiny/witness.gz"),
    ]);
    // The client attests again, with its own nonce, and seals the inputs to that key.
    const client = await SigilClient.connect(endpoint(), { ...verifyOptions(), anyImage: anyImage() });
    const t0 = performance.now();
    const r = await client.prove({ scheme: "ultra_honk", circuit, witness }, { onProgress: progress });
    const ms = performance.now() - t0;
    const inputs: string[] = [];
    for (let i = 0; i + 32 <= r.publicInputs.length; i += 32) inputs.push(`0x${hex(r.publicInputs.subarray(i, i + 32))}`);
    $("proof-size").textContent = `${r.proof.length} bytes`;
    $("proof-size").dataset.bytes = String(r.proof.length);
    $("public-inputs").textContent = inputs.join("\n") || "(none)";
    $("vk-hash").textContent = hex(r.vkHash);
    $("proof-bb").textContent = r.result.bb_version;
    $("proof-timing").textContent = `queued ${r.result.queued_ms} ms, proved and verified in the enclave in ${r.result.prove_ms} ms, ${ms.toFixed(0)} ms in all`;
    $("proof").hidden = false;
    status("prove-status", "ok", `Proved: job ${r.result.id}, a ${r.proof.length}-byte proof, verified by the enclave before it was sealed to this page.`);
  } catch (e) {
    status("prove-status", "error", describe(e).text);
  } finally {
    $("prove-bar").hidden = true;
  }
}

export interface CheckResult {
  ok: boolean;
  check?: string;
  code?: string;
  message: string;
  simulated?: boolean;
  moduleId?: string;
}

/** Verifies `document` (bytes, or base64 text) with the page's options and `extra`, shows the
 * outcome, and returns it: what the headless test drives. */
async function checkDocument(document: Uint8Array | string, extra: VerifyOptions & { now?: Date | string } = {}): Promise<CheckResult> {
  status("check-status", "busy", "Checking…");
  let result: CheckResult;
  try {
    const bytes = typeof document === "string" ? unb64(document.trim()) : document;
    const opts: VerifyOptions = { ...verifyOptions(), ...extra } as VerifyOptions;
    if (typeof extra.now === "string") opts.now = new Date(extra.now);
    const v = await verifyAttestation(bytes, opts);
    result = { ok: true, message: `accepted: ${v.moduleId}, ${v.timestamp.toISOString()}`, simulated: v.simulated, moduleId: v.moduleId };
  } catch (e) {
    const d = describe(e);
    result = { ok: false, message: d.text, ...(d.check ? { check: d.check } : {}), ...(d.code ? { code: d.code } : {}) };
  }
  const el = $("check-status");
  el.dataset.check = result.check ?? "";
  status("check-status", result.ok ? "ok" : "error", result.message);
  return result;
}

async function checkFile(): Promise<void> {
  const f = $<HTMLInputElement>("check-file").files?.[0];
  if (!f) return;
  const bytes = new Uint8Array(await f.arrayBuffer());
  // Base64 text or raw CBOR (whose first byte is never printable base64 for a COSE array).
  const text = new TextDecoder().decode(bytes).trim();
  await checkDocument(/^[A-Za-z0-9+/=\s]+$/.test(text) ? text : bytes);
}

/** Flips one byte inside PCR0's value of the last document (its bytes are signed, so the
 * signature check must refuse it). */
function tampered(doc: Uint8Array): Uint8Array {
  const out = doc.slice();
  // PCR index 0 followed by a 48-byte byte string header: 0x00 0x58 0x30.
  for (let i = 0; i + 3 < out.length; i++) {
    if (out[i] === 0x00 && out[i + 1] === 0x58 && out[i + 2] === 0x30) {
      out[i + 3]! ^= 0x01;
      return out;
    }
  }
  out[Math.floor(out.length / 2)]! ^= 0x01;
  return out;
}

async function tamper(): Promise<void> {
  if (last) await checkDocument(tampered(last.document), { nonce: last.nonce });
}

/** Verifies the last document `n` more times: the first (cold) and the median time, ms. */
async function benchVerify(n = 20): Promise<{ runs: number; median: number; min: number; max: number }> {
  if (!last) throw new Error("attest first");
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await verifyAttestation(last.document, { ...verifyOptions(), nonce: last.nonce });
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return { runs: n, median: times[Math.floor(n / 2)]!, min: times[0]!, max: times[n - 1]! };
}

$("trust-test-root").addEventListener("change", () => {
  $("test-root-warning").hidden = !trustTestRoot();
});
$("any-image").addEventListener("change", () => {
  $("any-image-warning").hidden = !anyImage();
});
$("attest").addEventListener("click", () => void attest());
$("prove").addEventListener("click", () => void prove());
$("tamper").addEventListener("click", () => void tamper());
$("check-file").addEventListener("change", () => void checkFile());

// `?endpoint=URL&trust-test-root=1` fill the form (links and the headless test use them).
const params = new URLSearchParams(location.search);
const ep = params.get("endpoint");
if (ep) $<HTMLInputElement>("endpoint").value = ep;
if (params.get("trust-test-root") === "1") {
  $<HTMLInputElement>("trust-test-root").checked = true;
  $("test-root-warning").hidden = false;
}

declare global {
  interface Window {
    sigilPage: {
      checkDocument: typeof checkDocument;
      tampered: (doc: Uint8Array | string) => Uint8Array;
      benchVerify: typeof benchVerify;
      lastDocument: () => string | undefined;
    };
  }
}

window.sigilPage = {
  checkDocument,
  tampered: (doc) => tampered(typeof doc === "string" ? unb64(doc) : doc),
  benchVerify,
  lastDocument: () => (last ? btoa(String.fromCharCode(...last.document)) : undefined),
};
document.body.dataset.ready = "1";
