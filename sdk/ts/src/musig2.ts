// MuSig2 over the API (protocol/src/musig2.rs, signing/src/approval.rs): the digests owners
// sign, and an external participant whose key and nonces never leave this process
// (client/src/musig2.rs `SignerKey::join` / `Participation`). The BIP-327 arithmetic is
// @scure/btc-signer's musig2 module (audited), not hand-rolled.

import * as musig from "@scure/btc-signer/musig2.js";
import { secp256k1 } from "@noble/curves/secp256k1.js";
import { concat, equal, hex, randomBytes, u16be, u32be, u64be, unhex, utf8 } from "./bytes.js";
import { SigilError } from "./errors.js";
import { taggedDigest, taggedHash } from "./owner.js";

export const REQUEST_TAG = "sigil/musig2/request/v1";
export const APPROVAL_TAG = "sigil/musig2/approval/v1";
export const KEY_REQUEST_TAG = "sigil/musig2/key-request";

export type Op =
  | "key/generate" | "key/import" | "key/delete" | "aggregate/delete" | "session/abort" | "aggregate/create"
  | "session/create" | "key/list" | "aggregate/list" | "key/describe" | "aggregate/describe";

export type TweakKind = "plain" | "xonly" | "taproot" | "taproot_unspendable";
export interface TweakSpec { kind: TweakKind; value?: string }
export type ParticipantSpec = { key_id: string } | { public_key: string };
export interface MessageView { message: string; tweak?: TweakSpec }
export interface ParticipantView { index: number; public_key: string; key_id?: string }
export interface KeyView { id: string; public_key: string; owner: string; created: number }
export interface AggregateView {
  id: string; participants: ParticipantView[]; order: "as_given" | "sorted"; tweaks: TweakSpec[];
  internal_key: string; internal_xonly: string; output_key: string; output_xonly: string; created: number;
}
export interface SignatureView { message_index: number; output_key: string; signature?: string; adaptor_signature?: string }
export interface StatusView {
  session: string; state: string; expires_at: number; missing_approvals: string[]; missing_nonces: number[];
  missing_partial_signatures: number[]; failure?: { code: string; message: string; signer_index?: number; message_index?: number };
  signatures?: SignatureView[];
}
export interface SessionView {
  id: string; digest: string; aggregate: string; internal_key: string; tweaks: TweakSpec[]; messages: MessageView[];
  adaptor_point?: string; expires_at: number; approvers: string[]; participants: ParticipantView[]; output_keys: string[];
  status: StatusView;
}
export interface ParticipantNonces { index: number; nonces: string[] }
export interface NoncesView { session: string; participants: ParticipantNonces[] }
/** `nonces`: the enclave's held participants' public nonces (absent from older enclaves). */
export interface RoundView { session: string; round_id: string; aggregated_nonces: string[]; nonces?: ParticipantNonces[] }

/** tagged_digest(REQUEST_TAG, [op, ...fields, not_after u64 BE]). */
export function requestDigest(op: Op, fields: Uint8Array[], notAfter: number | bigint): Uint8Array {
  return taggedDigest(REQUEST_TAG, [utf8(op), ...fields, u64be(notAfter)]);
}

export function keyIdForRequest(owner: Uint8Array, requestId: Uint8Array): Uint8Array {
  return taggedHash(KEY_REQUEST_TAG, [owner, requestId]).subarray(0, 16);
}

const KIND_BYTE: Record<TweakKind, number> = { plain: 1, xonly: 2, taproot: 3, taproot_unspendable: 4 };

function checkTweak(t: TweakSpec): void {
  if (t.kind === "taproot_unspendable" ? t.value !== undefined : t.value === undefined) {
    throw new SigilError("invalid_tweak", `tweak ${t.kind} ${t.value === undefined ? "needs a value" : "takes no value"}`);
  }
}

/** kind || has_value || value? (the request's signed form). */
function pushTweak(t: TweakSpec): Uint8Array {
  checkTweak(t);
  return t.value === undefined ? Uint8Array.of(KIND_BYTE[t.kind], 0) : concat(Uint8Array.of(KIND_BYTE[t.kind], 1), unhex(t.value, 32));
}

/** kind || 32-byte body (the engine's `Tweak::encode`, in the approval digest). */
export function encodeTweak(t: TweakSpec): Uint8Array {
  checkTweak(t);
  return concat(Uint8Array.of(KIND_BYTE[t.kind]), t.value === undefined ? new Uint8Array(32) : unhex(t.value, 32));
}

export function aggregateSignedSpec(participants: ParticipantSpec[], order: "as_given" | "sorted", tweaks: TweakSpec[]): Uint8Array {
  const parts: Uint8Array[] = [Uint8Array.of(order === "sorted" ? 1 : 0), u16be(participants.length)];
  for (const p of participants) {
    parts.push("key_id" in p ? concat(Uint8Array.of(1), unhex(p.key_id, 16)) : concat(Uint8Array.of(2), unhex(p.public_key, 33)));
  }
  parts.push(Uint8Array.of(tweaks.length), ...tweaks.map(pushTweak));
  return concat(...parts);
}

export function sessionSignedSpec(aggregate: string, messages: MessageView[], adaptorPoint: string | undefined, expiresAt: number): Uint8Array {
  const parts: Uint8Array[] = [unhex(aggregate, 16), u64be(expiresAt), u16be(messages.length)];
  for (const m of messages) {
    const msg = unhex(m.message);
    parts.push(u32be(msg.length), msg, m.tweak ? concat(Uint8Array.of(1), pushTweak(m.tweak)) : Uint8Array.of(0));
  }
  parts.push(adaptorPoint ? concat(Uint8Array.of(1), unhex(adaptorPoint, 33)) : Uint8Array.of(0));
  return concat(...parts);
}

/** What an approver signs (signing/src/approval.rs `session_digest`). */
export function sessionDigest(v: { id: string; internal_key: string; tweaks: TweakSpec[]; messages: MessageView[]; adaptor_point?: string; expires_at: number }): Uint8Array {
  const parts: Uint8Array[] = [unhex(v.id, 32), unhex(v.internal_key, 33), Uint8Array.of(v.tweaks.length), ...v.tweaks.map(encodeTweak), u64be(v.expires_at)];
  parts.push(v.adaptor_point ? concat(Uint8Array.of(1), unhex(v.adaptor_point, 33)) : Uint8Array.of(0));
  parts.push(u32be(v.messages.length));
  for (const m of v.messages) {
    const msg = unhex(m.message);
    parts.push(u32be(msg.length), msg, m.tweak ? concat(Uint8Array.of(1), encodeTweak(m.tweak)) : Uint8Array.of(0));
  }
  return taggedHash(APPROVAL_TAG, [concat(...parts)]);
}

/** The key-aggregation context after `tweaks`, as the arguments scure's Session takes.
 * Taproot tweaks depend on the key they tweak, so they are resolved one at a time. */
function tweakChain(publicKeys: Uint8Array[], tweaks: TweakSpec[]): { tweaks: Uint8Array[]; isXonly: boolean[] } {
  const out = { tweaks: [] as Uint8Array[], isXonly: [] as boolean[] };
  for (const t of tweaks) {
    checkTweak(t);
    if (t.kind === "plain" || t.kind === "xonly") {
      out.tweaks.push(unhex(t.value!, 32));
      out.isXonly.push(t.kind === "xonly");
    } else {
      const q = musig.keyAggExport(musig.keyAggregate(publicKeys, out.tweaks, out.isXonly));
      out.tweaks.push(taggedHash("TapTweak", t.kind === "taproot" ? [q, unhex(t.value!, 32)] : [q]));
      out.isXonly.push(true);
    }
  }
  return out;
}

export function aggregateOutputXonly(publicKeys: Uint8Array[], tweaks: TweakSpec[]): Uint8Array {
  const c = tweakChain(publicKeys, tweaks);
  return musig.keyAggExport(musig.keyAggregate(publicKeys, c.tweaks, c.isXonly));
}

/** The key a session must sign with: an aggregate of the enclave's by id, with its untweaked
 * key as the enclave describes it (`AggregateView.internal_key`); or the key signatures verify
 * under (the aggregate's key after its tweaks, before any per-message tweak), x-only (64 hex)
 * or compressed (66 hex). */
export type ExpectedKey = { aggregate: string; internalKey: string } | { outputKey: string };

/** Everything an approval (or an external signer's partial signature) commits to, as the owner
 * or signer intends it (client/src/musig2/expected.rs `ExpectedSession`). Anyone may create a
 * session, so the one offered may be a counterparty's second session on the same message:
 * without the adaptor point, on another aggregate or tweak, or living longer than agreed. */
export interface ExpectedSession {
  /** The session id (64 hex). */
  session: string;
  key: ExpectedKey;
  /** The aggregate's tweaks, in order (none: an untweaked aggregate). */
  tweaks: TweakSpec[];
  /** The messages, in order, each with its per-message tweak. */
  messages: MessageView[];
  /** Absent: plain signatures, no adaptor point. */
  adaptorPoint?: string;
  /** The latest acceptable expiry (Unix seconds): an approval is good until the session
   * expires, so its lifetime is the owner's to bound. */
  expiresBy: number;
}

/** Exactly what `request` asked for on `aggregate` (as the enclave describes it): what the
 * creator of session `session` expects of it (Rust `ExpectedSession::of_request`). */
export function expectedOfRequest(
  session: string,
  aggregate: Pick<AggregateView, "id" | "internal_key" | "tweaks">,
  request: { messages: MessageView[]; adaptorPoint?: string; expiresAt: number },
): ExpectedSession {
  return {
    session,
    key: { aggregate: aggregate.id, internalKey: aggregate.internal_key },
    tweaks: aggregate.tweaks.map((t) => ({ ...t })),
    messages: request.messages.map((m) => ({ ...m })),
    ...(request.adaptorPoint !== undefined ? { adaptorPoint: request.adaptorPoint } : {}),
    expiresBy: request.expiresAt,
  };
}

/** A session refused because it is not the one expected: `field` names the first input of the
 * approval that differs ("session id", "aggregate", "internal key", "output key", "tweaks",
 * "number of messages", "message N", "message N tweak", "adaptor point", "expiry",
 * "output key of message N", "digest"). */
export class SessionMismatchError extends SigilError {
  readonly field: string;
  readonly expected: string;
  readonly found: string;
  constructor(field: string, expected: string, found: string) {
    super("session_mismatch", `refusing the session: ${field}: expected ${expected}, the session has ${found}`);
    this.name = "SessionMismatchError";
    this.field = field;
    this.expected = expected;
    this.found = found;
  }
}

/** A session that matched what its approver expects. */
export interface CheckedSession {
  /** The approval digest, computed from the expected description. */
  digest: Uint8Array;
  /** Per message, the x-only key its signature will verify under (computed here). */
  outputKeys: Uint8Array[];
}

const tweakText = (t: TweakSpec) => (t.value !== undefined ? `${t.kind}:${t.value}` : t.kind);
const tweaksText = (ts: TweakSpec[]) => (ts.length ? ts.map(tweakText).join(", ") : "none");
const optTweakText = (t?: TweakSpec) => (t ? tweakText(t) : "none");
const expiryText = (at: number, now: number) => (at >= now ? `${at} (in ${at - now} s)` : `${at} (${now - at} s ago)`);
/** Hex in one spelling (lowercase), refusing what is not hex of whole bytes. */
function hexOf(s: string, what: string, len?: number): string {
  try {
    return hex(unhex(String(s).toLowerCase(), len));
  } catch (e) {
    throw new SigilError("protocol", `${what}: ${(e as Error).message}`);
  }
}
/** A tweak's engine form (kind || 32-byte body), so two spellings of one tweak compare equal. */
const tweakBytes = (t: TweakSpec) => hex(encodeTweak({ kind: t.kind, ...(t.value !== undefined ? { value: hexOf(t.value, "tweak value", 32) } : {}) }));
const sameTweaks = (a: TweakSpec[], b: TweakSpec[]) => a.length === b.length && a.every((t, i) => tweakBytes(t) === tweakBytes(b[i]!));
const sameOptTweak = (a?: TweakSpec, b?: TweakSpec) => (a === undefined || b === undefined ? a === b : tweakBytes(a) === tweakBytes(b));
const optPoint = (p?: string) => (p === undefined ? "none" : hexOf(p, "adaptor point", 33));

/** Compares every input of the approval digest in `view` with `expected` at `now` (Unix
 * seconds), refusing the first difference by name (SessionMismatchError), and returns the
 * digest computed from `expected`, never the `digest` the session came with (Rust
 * `check_session`). */
export function checkSession(view: SessionView, expected: ExpectedSession, now = Math.floor(Date.now() / 1000)): CheckedSession {
  const mismatch = (field: string, want: unknown, got: unknown) => new SessionMismatchError(field, String(want), String(got));
  if (hexOf(view.id, "session id", 32) !== hexOf(expected.session, "expected session id", 32)) throw mismatch("session id", expected.session, view.id);

  // The participants, in signer order, must aggregate to the key the session names.
  const participants = [...view.participants].sort((a, b) => a.index - b.index);
  if (participants.length === 0 || participants.some((p, i) => p.index !== i)) throw new SigilError("protocol", "the session's participants are not numbered 0..n");
  const keys = participants.map((p) => unhex(hexOf(p.public_key, "participant key", 33), 33));
  let internal: string;
  let base: { tweaks: Uint8Array[]; isXonly: boolean[] };
  let output: Uint8Array;
  try {
    internal = hex(musig.keyAggregate(keys).aggPublicKey.toBytes(true));
    base = tweakChain(keys, expected.tweaks);
    output = musig.keyAggregate(keys, base.tweaks, base.isXonly).aggPublicKey.toBytes(true);
  } catch (e) {
    if (e instanceof SigilError) throw e;
    throw new SigilError("protocol", `the session's participants: ${(e as Error).message}`);
  }
  const viewInternal = hexOf(view.internal_key, "internal key", 33);
  if (internal !== viewInternal) throw mismatch("internal key", `the aggregate of the session's participants, ${internal}`, view.internal_key);

  // The aggregate, or the key after its tweaks.
  if ("aggregate" in expected.key) {
    if (hexOf(view.aggregate, "aggregate", 16) !== hexOf(expected.key.aggregate, "expected aggregate", 16)) throw mismatch("aggregate", expected.key.aggregate, view.aggregate);
    if (viewInternal !== hexOf(expected.key.internalKey, "expected internal key", 33)) throw mismatch("internal key", expected.key.internalKey, view.internal_key);
  } else {
    const k = expected.key.outputKey.toLowerCase();
    if (k.length !== 64 && !(k.length === 66 && /^0[23]/.test(k))) throw new SigilError("protocol", "expected output key: 64 hex characters (x-only) or 66 (compressed, 02/03)");
    const matches = k.length === 64 ? hex(output.subarray(1)) === hexOf(k, "expected output key", 32) : hex(output) === hexOf(k, "expected output key", 33);
    // With the expected tweaks on the session's key: a different tweak is named below.
    if (!matches) throw mismatch("output key", expected.key.outputKey, `${hex(output.subarray(1))} (its key after the tweaks ${tweaksText(expected.tweaks)})`);
  }
  if (!sameTweaks(view.tweaks, expected.tweaks)) throw mismatch("tweaks", tweaksText(expected.tweaks), tweaksText(view.tweaks));

  if (view.messages.length !== expected.messages.length) throw mismatch("number of messages", expected.messages.length, view.messages.length);
  for (const [i, want] of expected.messages.entries()) {
    const got = view.messages[i]!;
    if (hexOf(got.message, `message ${i}`) !== hexOf(want.message, `expected message ${i}`)) throw mismatch(`message ${i}`, want.message, got.message);
    if (!sameOptTweak(got.tweak, want.tweak)) throw mismatch(`message ${i} tweak`, optTweakText(want.tweak), optTweakText(got.tweak));
  }

  if (optPoint(view.adaptor_point) !== optPoint(expected.adaptorPoint)) throw mismatch("adaptor point", optPoint(expected.adaptorPoint), optPoint(view.adaptor_point));

  if (!Number.isSafeInteger(view.expires_at) || view.expires_at > expected.expiresBy) throw mismatch("expiry", `at most ${expiryText(expected.expiresBy, now)}`, expiryText(view.expires_at, now));
  if (view.expires_at <= now) throw mismatch("expiry", "a time to come", expiryText(view.expires_at, now));

  // What each message's signature will verify under, computed here (the enclave's own list
  // must agree: an external signer checks its partial signatures against these).
  const outputKeys: Uint8Array[] = [];
  for (const [i, m] of expected.messages.entries()) {
    const key = aggregateOutputXonly(keys, m.tweak ? [...expected.tweaks, m.tweak] : expected.tweaks);
    const listed = view.output_keys[i];
    if (listed === undefined || listed.toLowerCase() !== hex(key)) throw mismatch(`output key of message ${i}`, hex(key), listed ?? "none");
    outputKeys.push(key);
  }

  // The digest from the expected description (the expiry is the session's, within the bound).
  const digest = sessionDigest({
    id: hexOf(expected.session, "session id", 32),
    internal_key: internal,
    tweaks: expected.tweaks.map((t) => ({ kind: t.kind, ...(t.value !== undefined ? { value: hexOf(t.value, "tweak value", 32) } : {}) })),
    messages: expected.messages.map((m) => ({ message: hexOf(m.message, "message"), ...(m.tweak ? { tweak: { kind: m.tweak.kind, ...(m.tweak.value !== undefined ? { value: hexOf(m.tweak.value, "tweak value", 32) } : {}) } } : {}) })),
    ...(expected.adaptorPoint !== undefined ? { adaptor_point: hexOf(expected.adaptorPoint, "adaptor point", 33) } : {}),
    expires_at: view.expires_at,
  });
  if (String(view.digest).toLowerCase() !== hex(digest)) throw mismatch("digest", hex(digest), `${view.digest} (the enclave would refuse this approval)`);
  return { digest, outputKeys };
}

/** An external co-signer's key (a secp256k1 secret), kept client-side. */
export class SignerKey {
  readonly #secret: Uint8Array;
  /** The 33-byte compressed public key the aggregate names. */
  readonly publicKey: Uint8Array;
  constructor(secret: Uint8Array) {
    this.publicKey = musig.IndividualPubkey(secret);
    this.#secret = secret.slice();
  }
  static generate(): SignerKey {
    for (;;) {
      try {
        return new SignerKey(randomBytes(32));
      } catch {
        // out of range: draw again
      }
    }
  }
  /** Joins a session this key is an external participant of: checks the session's output keys
   * against our own aggregation, then makes one nonce pair per message. */
  join(view: SessionView): Participation {
    return new Participation(view, this.publicKey, this.#secret);
  }
}

export class Participation {
  readonly index: number;
  readonly publicNonces: Uint8Array[] = [];
  #secnonces: Uint8Array[] | undefined = [];
  readonly #secret: Uint8Array;
  readonly #keys: Uint8Array[];
  readonly #perMessage: { tweaks: Uint8Array[]; isXonly: boolean[]; message: Uint8Array }[] = [];
  readonly #held: number[];
  readonly #externals: number;
  readonly session: string;

  constructor(view: SessionView, me: Uint8Array, secret: Uint8Array) {
    const proto = (m: string) => new SigilError("protocol", m);
    const p = view.participants.find((q) => q.public_key === hex(me) && q.key_id === undefined);
    if (!p) throw proto("this key is not an external participant of the session");
    // The engine verifies adaptor partial signatures with its own math; scure's musig2 has no
    // adaptor signing, so such sessions are refused here rather than signed wrongly.
    if (view.adaptor_point) throw proto("adaptor sessions are not supported by the TypeScript signer");
    // What is approved must be what is described: recompute the digest.
    if (hex(sessionDigest(view)) !== view.digest) throw proto("the session's digest does not match its description");
    this.session = view.id;
    this.index = p.index;
    this.#secret = secret;
    const sorted = [...view.participants].sort((a, b) => a.index - b.index);
    this.#keys = sorted.map((q) => unhex(q.public_key, 33));
    this.#held = view.participants.filter((q) => q.key_id !== undefined).map((q) => q.index);
    this.#externals = view.participants.length - this.#held.length;
    if (view.messages.length !== view.output_keys.length) throw proto("one output key per message expected");
    for (const [mi, m] of view.messages.entries()) {
      const chain = tweakChain(this.#keys, m.tweak ? [...view.tweaks, m.tweak] : view.tweaks);
      const out = musig.keyAggExport(musig.keyAggregate(this.#keys, chain.tweaks, chain.isXonly));
      if (hex(out) !== view.output_keys[mi]) throw proto(`message ${mi}: the output key does not match the session's`);
      const message = unhex(m.message);
      // BIP-327 NonceGen with every input (fresh randomness, the secret key, the output key,
      // the message, and session/signer/message as extra input): a weak RNG alone cannot
      // repeat a nonce, which would leak the key.
      const extra = concat(unhex(view.id, 32), u32be(p.index), u32be(mi));
      const n = musig.nonceGen(me, secret, out, message, extra, randomBytes(32));
      this.publicNonces.push(n.public);
      this.#secnonces!.push(n.secret);
      this.#perMessage.push({ ...chain, message });
    }
  }

  /** With one external signer, the aggregated nonce must be ours plus the engine's: checked
   * so a relay cannot swap in nonces of its choosing. */
  checkRound(engine: NoncesView, round: RoundView): void {
    if (this.#externals !== 1) return;
    const got = engine.participants.map((p) => p.index).sort();
    const want = [...this.#held].sort();
    if (got.join() !== want.join()) throw new SigilError("protocol", "the engine's nonces are not for its held participants");
    for (const [mi, agg] of round.aggregated_nonces.entries()) {
      const ours = this.publicNonces[mi];
      if (!ours) throw new SigilError("protocol", "the round has more aggregated nonces than messages");
      const all = [ours, ...engine.participants.map((p) => unhex(p.nonces[mi] ?? "", 66))];
      if (!equal(musig.nonceAggregate(all), unhex(agg, 66))) throw new SigilError("protocol", `message ${mi}: the aggregated nonce does not include ours`);
    }
  }

  /** Partial signatures, one per message. A participation signs at most once (its secret
   * nonces are dropped): signing twice with one nonce would leak the key. */
  sign(round: RoundView): Uint8Array[] {
    const secnonces = this.#secnonces;
    if (!secnonces) throw new SigilError("protocol", "this participation has already signed");
    this.#secnonces = undefined;
    try {
      if (round.aggregated_nonces.length !== this.#perMessage.length) throw new SigilError("protocol", "one aggregated nonce per message expected");
      return this.#perMessage.map((m, mi) => {
        const s = new musig.Session(unhex(round.aggregated_nonces[mi]!, 66), this.#keys, m.message, m.tweaks, m.isXonly);
        return s.sign(secnonces[mi]!, this.#secret);
      });
    } finally {
      // A secret nonce used twice (or left for a heap dump to find) leaks the signing key.
      // Overwriting the arrays is best effort in JS: the engine may hold copies made while
      // computing (and strings, BigInts are immutable), but no reference of ours keeps them.
      for (const n of secnonces) n.fill(0);
    }
  }
}

/** Parses a compressed point (throws if it is not on the curve). */
export function checkPoint(p: Uint8Array): void {
  secp256k1.Point.fromBytes(p);
}
