// What an approver or external signer means to sign (ExpectedSession), checked against the
// session the enclave describes: each input of the approval digest that differs is refused by
// name, before anything is signed or sent (client/src/musig2/expected.rs's tests).
import { test } from "node:test";
import assert from "node:assert/strict";
import { hex, unhex } from "../src/bytes.js";
import { SigilClient } from "../src/client.js";
import { OwnerKey } from "../src/owner.js";
import { SessionMismatchError, SignerKey, checkSession, expectedOfRequest, type ExpectedSession, type SessionView } from "../src/musig2.js";
import { NOW, describe, intended, key } from "./musig2-sessions.js";

function refused(view: SessionView, expected: ExpectedSession): string {
  try {
    checkSession(view, expected, NOW);
  } catch (e) {
    assert.ok(e instanceof SessionMismatchError, `not a SessionMismatchError: ${e}`);
    assert.equal(e.code, "session_mismatch");
    assert.ok(e.message.startsWith(`refusing the session: ${e.field}: expected `), e.message);
    return e.field;
  }
  assert.fail("the session was accepted");
}

test("musig2 expected: the intended session passes, with its digest and output keys", () => {
  const { spec, expected } = intended();
  const view = describe(spec);
  const checked = checkSession(view, expected, NOW);
  assert.equal(hex(checked.digest), view.digest);
  assert.deepEqual(checked.outputKeys.map(hex), view.output_keys);
  assert.notEqual(view.output_keys[0], view.output_keys[1], "a per-message tweak gives that message its own key");
  // The key named by its output key (after the aggregate's tweaks), in both encodings.
  const { output_keys: [first] } = describe({ ...spec, messages: [{ message: "00" }] });
  checkSession(view, { ...expected, key: { outputKey: first! } }, NOW);
  const compressed = ["02", "03"].map((p) => p + first).find((k) => {
    try {
      checkSession(view, { ...expected, key: { outputKey: k } }, NOW);
      return true;
    } catch {
      return false;
    }
  });
  assert.ok(compressed, "the compressed output key matches with its own parity byte only");
  // Spelled in upper case, a tweak or message is still the same one.
  checkSession(view, { ...expected, tweaks: [{ kind: "taproot", value: "33".repeat(32).toUpperCase() }] }, NOW);
  // What the creator of a session expects of it.
  const fromRequest = expectedOfRequest(view.id, { id: view.aggregate, internal_key: view.internal_key, tweaks: spec.tweaks }, { messages: spec.messages, adaptorPoint: spec.adaptorPoint!, expiresAt: spec.expiresAt });
  assert.equal(hex(checkSession(view, fromRequest, NOW).digest), view.digest);
});

test("musig2 expected: another session id, or a stated digest over anything else, is refused", () => {
  let { spec, expected } = intended();
  assert.equal(refused(describe({ ...spec, id: "08".repeat(32) }), expected), "session id");
  ({ spec, expected } = intended());
  assert.equal(refused({ ...describe(spec), digest: "00".repeat(32) }, expected), "digest");
  ({ spec, expected } = intended());
  const view = describe(spec);
  assert.equal(refused({ ...view, output_keys: [view.output_keys[0]!, view.output_keys[0]!] }, expected), "output key of message 1");
  assert.equal(refused({ ...view, output_keys: [view.output_keys[0]!] }, expected), "output key of message 1");
});

test("musig2 expected: a session on another aggregate or key is refused", () => {
  // The counterparty's own aggregate over the owner's key and a key of theirs.
  let { spec, expected } = intended();
  assert.equal(refused(describe({ ...spec, aggregate: "03".repeat(16), keys: [spec.keys[0]!, key()] }), expected), "aggregate");
  // The same aggregate id, other participants.
  ({ spec, expected } = intended());
  assert.equal(refused(describe({ ...spec, keys: [spec.keys[0]!, key()] }), expected), "internal key");
  // The enclave's description of the aggregate says another key than the session's.
  ({ spec, expected } = intended());
  assert.equal(refused(describe(spec), { ...expected, key: { aggregate: spec.aggregate, internalKey: hex(key()) } }), "internal key");
  // A stated internal key that its participants do not aggregate to.
  ({ spec, expected } = intended());
  assert.equal(refused({ ...describe(spec), internal_key: hex(key()) }, expected), "internal key");
  // Named by output key: another participant makes another key.
  ({ spec, expected } = intended());
  const out = describe({ ...spec, messages: [{ message: "00" }] }).output_keys[0]!;
  assert.equal(refused(describe({ ...spec, keys: [spec.keys[0]!, key()] }), { ...expected, key: { outputKey: out } }), "output key");
});

test("musig2 expected: a session with another tweak is refused", () => {
  let { spec, expected } = intended();
  assert.equal(refused(describe({ ...spec, tweaks: [{ kind: "taproot", value: "44".repeat(32) }] }), expected), "tweaks");
  ({ spec, expected } = intended());
  assert.equal(refused(describe({ ...spec, tweaks: [] }), expected), "tweaks");
  ({ spec, expected } = intended());
  assert.equal(refused(describe({ ...spec, tweaks: [{ kind: "taproot_unspendable" }] }), expected), "tweaks");
  // Named by output key, the session's aggregate untweaked: still the tweaks.
  ({ spec, expected } = intended());
  const out = describe({ ...spec, messages: [{ message: "00" }] }).output_keys[0]!;
  assert.equal(refused(describe({ ...spec, tweaks: [] }), { ...expected, key: { outputKey: out } }), "tweaks");
  // A per-message tweak dropped, changed or added.
  ({ spec, expected } = intended());
  assert.equal(refused(describe({ ...spec, messages: [spec.messages[0]!, { message: spec.messages[1]!.message }] }), expected), "message 1 tweak");
  ({ spec, expected } = intended());
  assert.equal(refused(describe({ ...spec, messages: [spec.messages[0]!, { message: spec.messages[1]!.message, tweak: { kind: "xonly", value: "05".repeat(32) } }] }), expected), "message 1 tweak");
  ({ spec, expected } = intended());
  assert.equal(refused(describe({ ...spec, messages: [{ ...spec.messages[0]!, tweak: { kind: "taproot", value: "55".repeat(32) } }, spec.messages[1]!] }), expected), "message 0 tweak");
});

test("musig2 expected: a session on other messages is refused", () => {
  let { spec, expected } = intended();
  assert.equal(refused(describe({ ...spec, messages: [{ message: "b0".repeat(32) }, spec.messages[1]!] }), expected), "message 0");
  ({ spec, expected } = intended());
  assert.equal(refused(describe({ ...spec, messages: [...spec.messages, { message: "a2".repeat(32) }] }), expected), "number of messages");
  ({ spec, expected } = intended());
  assert.equal(refused(describe({ ...spec, messages: [spec.messages[1]!, spec.messages[0]!] }), expected), "message 0");
});

test("musig2 expected: a session without the adaptor point, or with another, is refused", () => {
  let { spec, expected } = intended();
  const { adaptorPoint: _, ...plain } = spec;
  assert.equal(refused(describe(plain), expected), "adaptor point");
  ({ spec, expected } = intended());
  const { adaptorPoint: __, ...plainExpected } = expected;
  assert.equal(refused(describe(spec), plainExpected), "adaptor point");
  ({ spec, expected } = intended());
  assert.equal(refused(describe({ ...spec, adaptorPoint: hex(key()) }), expected), "adaptor point");
});

test("musig2 expected: a session expiring later than agreed, or already, is refused", () => {
  const { spec, expected } = intended();
  assert.equal(refused(describe({ ...spec, expiresAt: expected.expiresBy + 1 }), expected), "expiry");
  checkSession(describe({ ...spec, expiresAt: expected.expiresBy }), expected, NOW);
  assert.equal(refused(describe({ ...spec, expiresAt: NOW }), expected), "expiry");
});

/** A client whose enclave side records every request and answers nothing useful. */
function recordingClient(): { client: SigilClient; sent: string[] } {
  const sent: string[] = [];
  const fakeFetch = async (url: string): Promise<Response> => {
    sent.push(new URL(url).pathname);
    return new Response("{}", { status: 500 });
  };
  const client = new (SigilClient as any)("http://enclave.invalid", { publicKey: unhex("09".repeat(32)) }, new Uint8Array(), fakeFetch) as SigilClient;
  return { client, sent };
}

test("musig2 expected: approve and participate refuse a session that differs, sending nothing", async () => {
  const owner = OwnerKey.generate();
  const signer = SignerKey.generate();
  const now = Math.floor(Date.now() / 1000);
  const keys = [key(), signer.publicKey];
  const spec = { id: "01".repeat(32), aggregate: "02".repeat(16), keys, tweaks: [], messages: [{ message: "a0".repeat(32) }], expiresAt: now + 300 };
  const view = describe(spec);
  const expected: ExpectedSession = { session: view.id, key: { aggregate: view.aggregate, internalKey: view.internal_key }, tweaks: [], messages: [{ message: "a0".repeat(32) }], expiresBy: now + 600 };
  // The same message, but the counterparty's session lives for a day.
  const longer = describe({ ...spec, expiresAt: now + 86_400 });
  const { client, sent } = recordingClient();
  const mismatch = (field: string) => (e: unknown) => e instanceof SessionMismatchError && e.field === field;
  await assert.rejects(client.musig2.approve(owner, longer, expected), mismatch("expiry"));
  await assert.rejects(client.musig2.participate(signer, longer, expected), mismatch("expiry"));
  // Another message, consistently described (its own digest recomputes): still refused.
  const other = describe({ ...spec, messages: [{ message: "b0".repeat(32) }] });
  await assert.rejects(client.musig2.approve(owner, other, expected), mismatch("message 0"));
  await assert.rejects(client.musig2.participate(signer, other, expected), mismatch("message 0"));
  assert.deepEqual(sent, [], "nothing was sent for a refused session");
  // The intended one goes out (and the fake enclave's answer is then refused).
  await assert.rejects(client.musig2.approve(owner, view, expected), (e: unknown) => !(e instanceof SessionMismatchError));
  await assert.rejects(client.musig2.participate(signer, view, expected), (e: unknown) => !(e instanceof SessionMismatchError));
  assert.deepEqual(sent, ["/v1/musig2/sessions/approve", "/v1/musig2/sessions/nonces/submit"]);
});
