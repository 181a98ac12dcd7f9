// SigilClient: attest once (fresh nonce, full verification), then every encapsulated call is
// sealed to the attested per-boot key and only its sealed answer is believed.

import { verifyAttestation, type VerifiedAttestation, type VerifyOptions } from "./attestation/verify.js";
import { b64, concat, fromUtf8, hex, randomBytes, unb64, unhex, utf8 } from "./bytes.js";
import { sealRequest, MAX_ENCAPSULATED_RESPONSE } from "./encap.js";
import { AttestationError, ProveError, SigilError } from "./errors.js";
import { OwnerKey } from "./owner.js";
import { checkName, vaultDigest } from "./vault.js";
import * as m2 from "./musig2.js";
import { FrostCalls } from "./frost.js";
import { cancelToken, chonkInputsSha256, inputsSha256, MAX_STATUS_WAIT_S, openResult, type CancelAnswer, type JobResult, type JobStatus, type ProveResult, type Submitted } from "./prove.js";

export const ENCAPSULATED_CONTENT_TYPE = "application/sigil-encapsulated";
/** Largest response body read (as the Rust client). */
export const MAX_RESPONSE = 4 << 20;

export interface ProveRequest {
  scheme: "ultra_honk" | "chonk";
  circuit?: Uint8Array;
  witness?: Uint8Array;
  ivcInputs?: Uint8Array;
  target?: string;
  /** The bb version to prove with (the image may serve several); sent only when given. */
  bbVersion?: string;
}

export interface ProveOptions {
  onProgress?: (s: JobStatus) => void;
  signal?: AbortSignal;
  /** Each status request is a long-poll (answered when the job ends, or after up to
   * MAX_STATUS_WAIT_S); after one that did not wait (it failed, or the enclave answered early
   * with the job still running: an older enclave, or no waiting place free) the next waits
   * this long first, doubling up to 2 s. */
  pollMs?: number;
  /** Give up after this long (default 10 minutes). */
  timeoutMs?: number;
}

/** A job this client submitted: its id and the key its result is sealed under. */
export interface Job {
  submitted: Submitted;
  key: Uint8Array;
  inputsSha256: string;
}

/** The body of `resp`, refused (and the transfer cancelled) once more than `limit` bytes
 * arrive: the parent relays every answer, and a missing or lying content-length must not
 * make the client buffer gigabytes. */
export async function readLimited(resp: Response, limit: number): Promise<Uint8Array> {
  const tooLarge = (what: string) => new SigilError("transport", `response ${what} exceeds the ${limit}-byte limit`);
  const stated = resp.headers.get("content-length");
  if (stated !== null && Number(stated) > limit) {
    await resp.body?.cancel().catch(() => undefined);
    throw tooLarge(`of ${stated} bytes`);
  }
  if (!resp.body) return new Uint8Array();
  const reader = resp.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    let r: ReadableStreamReadResult<Uint8Array>;
    try {
      r = await reader.read();
    } catch (e) {
      throw new SigilError("transport", `reading the response: ${(e as Error).message}`);
    }
    if (r.done) break;
    total += r.value.length;
    if (total > limit) {
      await reader.cancel().catch(() => undefined);
      throw tooLarge("body");
    }
    chunks.push(r.value);
  }
  return concat(...chunks);
}

export interface ConnectOptions extends VerifyOptions {
  fetch?: typeof fetch;
  /** Talk to a genuine Nitro enclave whatever image it runs (no PCR0 pinned). This gives no
   * protection: anyone can run their own image on AWS hardware and would receive vault
   * values, owner-signed requests and proving inputs. Default false. */
  anyImage?: boolean;
}

/** After verification, before anything is sent: a genuine AWS document proves only that
 * *some* enclave answered; which image it runs is what PCR0 says. Refuses (check "pcr") an
 * AWS-rooted document when no PCR0 is pinned, unless `anyImage` (Rust CLI
 * `require_pinned_image`). Simulated (test-root) documents need no pin: they are accepted
 * only with trustTestRoot and prove nothing about the image anyway. */
export function requirePinnedImage(attestation: Pick<VerifiedAttestation, "rootName">, opts: Pick<ConnectOptions, "pcrs" | "anyImage">): void {
  if (attestation.rootName === "aws" && !opts.pcrs?.[0] && opts.anyImage !== true) {
    throw new AttestationError(
      "pcr",
      "no image pinned: pass pcrs: pcrPinsFromManifest(pcr-manifest.json) (or pcrs: { 0: hex }), or anyImage: true, which trusts whatever image answers",
    );
  }
}

function apiError(status: number, body: Uint8Array): SigilError {
  try {
    const e = JSON.parse(fromUtf8(body)).error;
    if (typeof e?.code === "string") return new SigilError(e.code, String(e.message), status);
  } catch {
    // not an error body
  }
  return new SigilError("unknown", new TextDecoder().decode(body.subarray(0, 200)), status);
}

/** Waits `ms`, or rejects when `signal` aborts. The abort listener goes when the timer fires,
 * so a long wait polling on one signal does not pile listeners up on it. */
export const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    if (signal?.aborted) return reject(new SigilError("aborted", "aborted"));
    const onAbort = () => {
      clearTimeout(t);
      reject(new SigilError("aborted", "aborted"));
    };
    const t = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });

/** How long prove() waits for the cancellation of a job it gives up on: a relay that never
 * answers must not hold the caller's abort (or timeout) forever. */
export const CANCEL_TIMEOUT_MS = 15_000;

export class SigilClient {
  readonly base: string;
  readonly attestation: VerifiedAttestation;
  /** The attestation document as received. */
  readonly document: Uint8Array;
  private readonly f: typeof fetch;

  private constructor(base: string, attestation: VerifiedAttestation, document: Uint8Array, f: typeof fetch) {
    this.base = base;
    this.attestation = attestation;
    this.document = document;
    this.f = f;
  }

  /** GET /v1/attestation?nonce=<32 fresh bytes>, verify it (the nonce included), require a
   * pinned image (PCR0, see `requirePinnedImage`), keep the key. */
  static async connect(endpoint: string, opts: ConnectOptions = {}): Promise<SigilClient> {
    const base = endpoint.replace(/\/+$/, "");
    const f = opts.fetch ?? globalThis.fetch.bind(globalThis);
    const nonce = randomBytes(32);
    const resp = await f(`${base}/v1/attestation?nonce=${hex(nonce)}`, { redirect: "error" }).catch((e: Error) => {
      throw new SigilError("transport", `${base}: ${e.message}`);
    });
    const body = await readLimited(resp, MAX_RESPONSE);
    if (!resp.ok) throw apiError(resp.status, body);
    const doc = unb64(JSON.parse(fromUtf8(body)).document);
    // A fresh nonce proves the document was made for this connection (no replayed document).
    const attestation = await verifyAttestation(doc, { ...opts, nonce });
    requirePinnedImage(attestation, opts);
    return new SigilClient(base, attestation, doc, f);
  }

  /** Sends `plaintext` sealed for `route` (e.g. "POST /v1/ping") to `path`; returns the sealed
   * answer's plaintext. Only the sealed status counts: the HTTP status line is the relay's. */
  async callRaw(route: string, path: string, plaintext: Uint8Array, signal?: AbortSignal): Promise<Uint8Array> {
    const { body, opener } = await sealRequest(this.attestation.publicKey, route, plaintext);
    const resp = await this.f(this.base + path, {
      method: "POST",
      headers: { "content-type": ENCAPSULATED_CONTENT_TYPE },
      body: body as BodyInit,
      redirect: "error",
      ...(signal ? { signal } : {}),
    }).catch((e: Error) => {
      throw new SigilError("transport", `${route}: ${e.message}`);
    });
    const answer = await readLimited(resp, MAX_RESPONSE);
    if (resp.headers.get("content-type") !== ENCAPSULATED_CONTENT_TYPE) {
      // Refused before it was opened (too large, ...), or not from the enclave: never a success.
      const e = apiError(resp.status, answer);
      if (resp.ok) throw new SigilError("protocol", `${route}: the answer (HTTP ${resp.status}) is not sealed to this request`);
      throw e;
    }
    if (answer.length > MAX_ENCAPSULATED_RESPONSE) throw new SigilError("encap_too_large", "sealed answer too large");
    const { status, plaintext: plain } = await opener.open(answer);
    if (status >= 200 && status < 300) return plain;
    throw apiError(status, plain);
  }

  async call<T>(route: string, request: unknown, signal?: AbortSignal): Promise<T> {
    const [, path] = route.split(" ");
    const plain = await this.callRaw(route, path!, utf8(JSON.stringify(request)), signal);
    try {
      return JSON.parse(fromUtf8(plain)) as T;
    } catch (e) {
      throw new SigilError("protocol", `${route} answer: ${(e as Error).message}`);
    }
  }

  private async getJson<T>(path: string, signal?: AbortSignal): Promise<T> {
    const resp = await this.f(this.base + path, { redirect: "error", ...(signal ? { signal } : {}) }).catch((e: Error) => {
      // The caller's abort is not a dropped request (which a wait retries).
      if (signal?.aborted) throw new SigilError("aborted", "aborted");
      throw new SigilError("transport", `${path}: ${e.message}`);
    });
    const body = await readLimited(resp, MAX_RESPONSE);
    if (!resp.ok) throw apiError(resp.status, body);
    return JSON.parse(fromUtf8(body)) as T;
  }

  /** Liveness, mode, version, sealing and proving state (in the clear: informational only). */
  health(): Promise<any> {
    return this.getJson("/v1/health");
  }

  async ping(message: string): Promise<{ message: string; enclaveTimeMs: number }> {
    const r = await this.call<{ message: string; enclave_time_ms: number }>("POST /v1/ping", { message });
    if (r.message !== message) throw new SigilError("protocol", "ping echoed a different message");
    return { message: r.message, enclaveTimeMs: r.enclave_time_ms };
  }

  private get key(): Uint8Array {
    return this.attestation.publicKey;
  }

  readonly vault = {
    /** Stores `value` under `name` owned by `owner` (create: expectedVersion 0). */
    put: async (owner: OwnerKey, name: string, value: Uint8Array, opts: { expectedVersion?: number } = {}): Promise<{ name: string; version: number }> => {
      checkName(name);
      const ev = opts.expectedVersion ?? 0;
      const notAfter = owner.notAfter();
      const d = vaultDigest("put", name, ev, value, owner.xOnly, notAfter);
      return this.call("POST /v1/vault/put", { name, value: b64(value), owner: hex(owner.xOnly), expected_version: ev, not_after: notAfter, signature: hex(owner.signFor(this.key, d)) });
    },
    get: async (owner: OwnerKey, name: string): Promise<{ value: Uint8Array; version: number }> => {
      checkName(name);
      const notAfter = owner.notAfter();
      const d = vaultDigest("get", name, 0, undefined, undefined, notAfter);
      const e = await this.call<{ name: string; value: string; owner: string; version: number }>("POST /v1/vault/get", { name, expected_version: 0, not_after: notAfter, signature: hex(owner.signFor(this.key, d)) });
      if (e.name !== name || e.owner !== hex(owner.xOnly)) throw new SigilError("protocol", "the vault answered for another entry");
      return { value: unb64(e.value), version: e.version };
    },
    delete: async (owner: OwnerKey, name: string, opts: { expectedVersion?: number } = {}): Promise<{ name: string; version: number }> => {
      checkName(name);
      const ev = opts.expectedVersion ?? 0;
      const notAfter = owner.notAfter();
      const d = vaultDigest("delete", name, ev, undefined, undefined, notAfter);
      return this.call("POST /v1/vault/delete", { name, expected_version: ev, not_after: notAfter, signature: hex(owner.signFor(this.key, d)) });
    },
  };

  private signRequest(owner: OwnerKey, op: m2.Op, fields: Uint8Array[]): { not_after: number; signature: string } {
    const notAfter = owner.notAfter();
    return { not_after: notAfter, signature: hex(owner.signFor(this.key, m2.requestDigest(op, fields, notAfter))) };
  }

  /** The typed `/v1/frost/...` steps at this enclave; the coordinator (`frostKeygen`,
   * `frostSign`, ...) runs them across the members and checks the answers. */
  readonly frost: FrostCalls = new FrostCalls(this);

  readonly musig2 = {
    generateKey: async (owner: OwnerKey): Promise<m2.KeyView> => {
      const requestId = randomBytes(16);
      const k = await this.call<m2.KeyView>("POST /v1/musig2/keys/generate", { owner: hex(owner.xOnly), request_id: hex(requestId), ...this.signRequest(owner, "key/generate", [owner.xOnly, requestId]) });
      if (k.owner !== hex(owner.xOnly)) throw new SigilError("protocol", "the key was created for another owner");
      if (k.id !== hex(m2.keyIdForRequest(owner.xOnly, requestId))) throw new SigilError("protocol", "the enclave named the key with an id its request does not derive");
      return k;
    },
    listKeys: async (owner: OwnerKey): Promise<string[]> =>
      (await this.call<{ ids: string[] }>("POST /v1/musig2/keys/list", { owner: hex(owner.xOnly), ...this.signRequest(owner, "key/list", [owner.xOnly]) })).ids,
    deleteKey: async (owner: OwnerKey, id: string): Promise<void> => {
      await this.call("POST /v1/musig2/keys/delete", { id, ...this.signRequest(owner, "key/delete", [unhex(id, 16)]) });
    },
    createAggregate: async (owner: OwnerKey, spec: { participants: m2.ParticipantSpec[]; order?: "as_given" | "sorted"; tweaks?: m2.TweakSpec[] }): Promise<m2.AggregateView> => {
      const order = spec.order ?? "as_given";
      const tweaks = spec.tweaks ?? [];
      const signed = m2.aggregateSignedSpec(spec.participants, order, tweaks);
      return this.call("POST /v1/musig2/aggregates/create", { participants: spec.participants, order, tweaks, owner: hex(owner.xOnly), ...this.signRequest(owner, "aggregate/create", [owner.xOnly, signed]) });
    },
    createSession: async (owner: OwnerKey, spec: { aggregate: string; messages: m2.MessageView[]; adaptorPoint?: string; expiresAt: number }): Promise<m2.SessionView> => {
      const signed = m2.sessionSignedSpec(spec.aggregate, spec.messages, spec.adaptorPoint, spec.expiresAt);
      const v = await this.call<m2.SessionView>("POST /v1/musig2/sessions/create", {
        aggregate: spec.aggregate, messages: spec.messages, ...(spec.adaptorPoint ? { adaptor_point: spec.adaptorPoint } : {}), expires_at: spec.expiresAt,
        owner: hex(owner.xOnly), ...this.signRequest(owner, "session/create", [owner.xOnly, signed]),
      });
      if (JSON.stringify(v.messages) !== JSON.stringify(spec.messages) || v.aggregate !== spec.aggregate) throw new SigilError("protocol", "the session was created for another request");
      if (hex(m2.sessionDigest(v)) !== v.digest) throw new SigilError("protocol", "the session's digest does not match its description");
      return v;
    },
    session: (session: string): Promise<m2.SessionView> => this.call("POST /v1/musig2/sessions/status", { session }),
    /** The owner's approval of `view`, if it is the session `expected` describes
     * (`checkSession`: throws SessionMismatchError naming the first field that differs): a
     * BIP-340 signature over the digest computed from `expected`, never the one stated. */
    approve: async (owner: OwnerKey, view: m2.SessionView, expected: m2.ExpectedSession): Promise<m2.StatusView> => {
      const checked = m2.checkSession(view, expected);
      return this.call("POST /v1/musig2/sessions/approve", { session: view.id, owner: hex(owner.xOnly), signature: hex(owner.sign(checked.digest)) });
    },
    nonces: (session: string): Promise<m2.NoncesView> => this.call("POST /v1/musig2/sessions/nonces", { session }),
    submitNonces: (session: string, index: number, nonces: Uint8Array[]): Promise<m2.StatusView> =>
      this.call("POST /v1/musig2/sessions/nonces/submit", { session, index, nonces: nonces.map(hex) }),
    round: (session: string): Promise<m2.RoundView> => this.call("POST /v1/musig2/sessions/round", { session }),
    submitPartialSignatures: (session: string, roundId: string, index: number, sigs: Uint8Array[]): Promise<m2.StatusView> =>
      this.call("POST /v1/musig2/sessions/partial-signatures", { session, round_id: roundId, index, partial_signatures: sigs.map(hex) }),
    abort: async (owner: OwnerKey, session: string): Promise<m2.StatusView> =>
      this.call("POST /v1/musig2/sessions/abort", { session, owner: hex(owner.xOnly), ...this.signRequest(owner, "session/abort", [unhex(session, 32), owner.xOnly]) }),
    /** Takes part as an external signer, if `view` is the session `expected` describes
     * (`checkSession`): nonces, wait for the round, check it, sign. */
    participate: async (signer: m2.SignerKey, view: m2.SessionView, expected: m2.ExpectedSession, opts: { pollMs?: number; timeoutMs?: number } = {}): Promise<m2.StatusView> => {
      m2.checkSession(view, expected);
      const part = signer.join(view);
      await this.musig2.submitNonces(view.id, part.index, part.publicNonces);
      const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
      let round: m2.RoundView;
      for (;;) {
        try {
          round = await this.musig2.round(view.id);
          break;
        } catch (e) {
          if (!(e instanceof SigilError && e.code === "wrong_state")) throw e;
        }
        if (Date.now() > deadline) throw new SigilError("timeout", "timed out waiting for the other participants");
        await sleep(opts.pollMs ?? 200);
      }
      // The round carries the engine's nonces; an older enclave's does not.
      const engine = round.nonces?.length ? { session: round.session, participants: round.nonces } : await this.musig2.nonces(view.id);
      part.checkRound(engine, round);
      return this.musig2.submitPartialSignatures(view.id, round.round_id, part.index, part.sign(round));
    },
  };

  /** Queues a proving job with a fresh result key; checks the enclave acknowledged our inputs. */
  async submit(req: ProveRequest): Promise<Job> {
    const key = randomBytes(32);
    let mine: Uint8Array;
    const body: Record<string, unknown> = { scheme: req.scheme, target: req.target ?? "default", result_key: b64(key) };
    if (req.scheme === "chonk") {
      const ivc = req.ivcInputs ?? new Uint8Array();
      body.circuit = "";
      body.witness = "";
      body.ivc_inputs = b64(ivc);
      mine = chonkInputsSha256(ivc);
    } else {
      const c = req.circuit ?? new Uint8Array();
      const w = req.witness ?? new Uint8Array();
      body.circuit = b64(c);
      body.witness = b64(w);
      mine = inputsSha256(c, w);
    }
    if (req.bbVersion !== undefined) body.bb_version = req.bbVersion;
    const submitted = await this.call<Submitted>("POST /v1/prove", body);
    if (submitted.inputs_sha256 !== hex(mine)) throw new SigilError("protocol", "the enclave acknowledged other inputs than the ones sent");
    return { submitted, key, inputsSha256: hex(mine) };
  }

  /** A job's state, in the clear (its result inside is sealed). With `waitS` (whole seconds, at
   * most MAX_STATUS_WAIT_S), a long-poll: answered once the job has ended, or after that long
   * (sooner, still running, if the enclave has no waiting place free). `signal` aborts it. */
  status(id: string, opts: { waitS?: number; signal?: AbortSignal } = {}): Promise<JobStatus> {
    if (!/^[0-9a-f]{32}$/.test(id)) throw new TypeError("a job id is 32 lowercase hex characters");
    const w = opts.waitS;
    if (w !== undefined && !(Number.isInteger(w) && w >= 0 && w <= MAX_STATUS_WAIT_S)) {
      throw new RangeError(`waitS is a whole number of seconds from 0 to ${MAX_STATUS_WAIT_S}`);
    }
    return this.getJson(`/v1/prove/${id}${w === undefined ? "" : `?wait=${w}`}`, opts.signal);
  }

  /** Cancels a job this client submitted: a queued job leaves the queue, a running one's bb is
   * stopped, and its status becomes `cancelled`, with no result (wait() then throws ProveError
   * "cancelled"). Encapsulated, with the token derived from the job's result key, so only this
   * client can. Answers whether it is cancelled (see CancelAnswer; never the result). Throws
   * SigilError `job_ended` if it had ended already, `unknown_job` if the enclave does not know
   * it. */
  cancelProve(job: Job, signal?: AbortSignal): Promise<CancelAnswer> {
    return this.call<CancelAnswer>("POST /v1/prove/cancel", { id: job.submitted.id, token: hex(cancelToken(job.key)) }, signal);
  }

  /** Long-polls until the job ends (each status request waits up to MAX_STATUS_WAIT_S, or what
   * is left of the time limit, for the job to end, so its end is seen when it happens; onProgress
   * gets every answer), then opens and checks its sealed result. Throws ProveError for a failed
   * job (its code and bb's message). Abort with `signal`: it also ends a long-poll in flight
   * (the job itself runs on here; prove() cancels it, or call cancelProve). */
  async wait(job: Job, opts: ProveOptions = {}): Promise<ProveResult> {
    const start = Date.now();
    const first = opts.pollMs ?? 100;
    const timeout = opts.timeoutMs ?? 600_000;
    let delay = first;
    // After a poll that did not wait: a pause (doubling), never past the time limit.
    const pause = async () => {
      await sleep(Math.max(0, Math.min(delay, timeout - (Date.now() - start))), opts.signal);
      delay = Math.min(delay * 2, 2000);
    };
    let s: JobStatus;
    for (;;) {
      if (opts.signal?.aborted) throw new SigilError("aborted", "aborted");
      // Whole seconds, rounded down: never past the time limit.
      const waitS = Math.max(0, Math.min(MAX_STATUS_WAIT_S, Math.floor((timeout - (Date.now() - start)) / 1000)));
      const asked = Date.now();
      try {
        s = await this.status(job.submitted.id, { waitS, ...(opts.signal ? { signal: opts.signal } : {}) });
      } catch (e) {
        // A dropped status poll (a flaky relay, or one reset by someone on the path) is a
        // missed poll, not the job's end: giving up here would make prove() cancel a proof
        // that may have run for many minutes. Only the time limit ends the wait.
        if (!(e instanceof SigilError) || e.code !== "transport") throw e;
        if (Date.now() - start > timeout) throw new SigilError("timeout", `job ${job.submitted.id}: no status (${e.message})`);
        await pause();
        continue;
      }
      opts.onProgress?.(s);
      if (s.sealed) break;
      if (s.state === "cancelled") throw new ProveError("cancelled", `job ${s.id} was cancelled by its client`, s.id);
      if (s.state === "ended") throw new SigilError("protocol", `job ${s.id} ended without a sealed result`);
      if (Date.now() - start > timeout) throw new SigilError("timeout", `job ${s.id} still ${s.state}`);
      if (waitS > 0 && Date.now() - asked >= waitS * 1000) {
        // The enclave held the poll for its whole wait: ask again at once.
        delay = first;
      } else {
        await pause();
      }
    }
    const plain = await openResult(job.key, job.submitted.id, unb64(s.sealed!));
    const result = JSON.parse(fromUtf8(plain)) as JobResult;
    if (result.id !== job.submitted.id || result.inputs_sha256 !== job.inputsSha256) throw new SigilError("protocol", "the sealed result is for another job or other inputs");
    if (result.error) throw new ProveError(result.error.code, result.error.message, result.id);
    return {
      proof: unb64(result.proof ?? ""),
      publicInputs: unb64(result.public_inputs ?? ""),
      vk: unb64(result.vk ?? ""),
      vkHash: unhex(result.vk_hash ?? ""),
      result,
    };
  }

  /** submit() and wait(). When `signal` aborts or the wait times out, the job is cancelled in
   * the enclave (best effort: its bb stops and its place is freed) before the promise rejects,
   * with the abort or timeout error (never the cancellation's). The cancellation gets
   * CANCEL_TIMEOUT_MS: an answer that never comes does not hold the rejection longer. */
  async prove(req: ProveRequest, opts: ProveOptions = {}): Promise<ProveResult> {
    const job = await this.submit(req);
    try {
      return await this.wait(job, opts);
    } catch (e) {
      if (e instanceof SigilError && !(e instanceof ProveError) && (e.code === "aborted" || e.code === "timeout")) {
        await this.cancelProve(job, AbortSignal.timeout(CANCEL_TIMEOUT_MS)).catch(() => undefined);
      }
      throw e;
    }
  }
}

