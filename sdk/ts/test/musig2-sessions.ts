// Test helper: sessions as an honest enclave would describe them (consistent internal key,
// output keys and digest), and the expected description an owner states for one.
import * as musig from "@scure/btc-signer/musig2.js";
import { hex, randomBytes } from "../src/bytes.js";
import { SignerKey, aggregateOutputXonly, sessionDigest, type ExpectedSession, type MessageView, type SessionView, type TweakSpec } from "../src/musig2.js";

export const NOW = 1_900_000_000;

export interface Spec {
  id: string;
  aggregate: string;
  keys: Uint8Array[];
  tweaks: TweakSpec[];
  messages: MessageView[];
  adaptorPoint?: string;
  expiresAt: number;
}

export const key = (): Uint8Array => SignerKey.generate().publicKey;

export function describe(s: Spec): SessionView {
  const internal = hex(musig.keyAggregate(s.keys).aggPublicKey.toBytes(true));
  const body = {
    id: s.id,
    internal_key: internal,
    tweaks: s.tweaks,
    messages: s.messages,
    ...(s.adaptorPoint ? { adaptor_point: s.adaptorPoint } : {}),
    expires_at: s.expiresAt,
  };
  return {
    ...body,
    digest: hex(sessionDigest(body)),
    aggregate: s.aggregate,
    approvers: [],
    participants: s.keys.map((k, index) => ({ index, public_key: hex(k) })),
    output_keys: s.messages.map((m) => hex(aggregateOutputXonly(s.keys, m.tweak ? [...s.tweaks, m.tweak] : s.tweaks))),
    status: { session: s.id, state: "waiting_for_approvals", expires_at: s.expiresAt, missing_approvals: [], missing_nonces: [], missing_partial_signatures: [] },
  };
}

/** The owner's intended session (an adaptor session on a taproot-tweaked 2-of-2, one message
 * with its own tweak), and the expected description the owner states for it. */
export function intended(): { spec: Spec; expected: ExpectedSession } {
  const spec: Spec = {
    id: "01".repeat(32),
    aggregate: "02".repeat(16),
    keys: [key(), key()],
    tweaks: [{ kind: "taproot", value: "33".repeat(32) }],
    messages: [{ message: "a0".repeat(32) }, { message: "a1".repeat(32), tweak: { kind: "plain", value: "05".repeat(32) } }],
    adaptorPoint: hex(key()),
    expiresAt: NOW + 300,
  };
  const view = describe(spec);
  const expected: ExpectedSession = {
    session: view.id,
    key: { aggregate: view.aggregate, internalKey: view.internal_key },
    tweaks: structuredClone(spec.tweaks),
    messages: structuredClone(spec.messages),
    adaptorPoint: spec.adaptorPoint!,
    expiresBy: NOW + 600,
  };
  return { spec, expected };
}

export const randomMessage = (): MessageView => ({ message: hex(randomBytes(32)) });
