// FROST across three local enclaves (target/debug/sigil-local, each its own shim and
// development KMS, peers: enclaves attesting the same PCRs under the sigil test root), this
// SDK as the untrusted coordinator: a 2-of-3 key generation, signatures by {1,2} and {2,3}
// verified here, refusals by the SDK and by the enclaves, a refresh, a repair. Missing binaries fail the
// test with the command that builds them: never a silent skip.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { schnorr } from "@noble/curves/secp256k1.js";
import { OwnerKey, SigilClient, SigilError, frostKeygen, frostRefresh, frostRepair, frostSign, taprootOutputKey, type FrostGroup } from "../src/index.js";
import { b64, hex, randomBytes, unhex } from "../src/bytes.js";
import { dkgDigest, nodeOf, signDigest, type PeerMessage } from "../src/frost.js";
import { checkPrerequisites, startLocal } from "./local.js";

const work = mkdtempSync(join(tmpdir(), "sigil-sdk-frost-"));
const procs: ChildProcess[] = [];
let clients: SigilClient[] = [];
const owner = OwnerKey.generate();
let group: FrostGroup;

before(async () => {
  checkPrerequisites();
  const started = await Promise.all([1, 2, 3].map((i) => startLocal(["--dir", join(work, `member-${i}`)])));
  procs.push(...started.map((s) => s.proc));
  clients = await Promise.all(started.map((s) => SigilClient.connect(s.endpoint, { trustTestRoot: true, maxAgeMs: 300_000 })));
});

after(() => {
  for (const p of procs) p.kill("SIGTERM");
  rmSync(work, { recursive: true, force: true });
});

const refusedWith = (code: string, status?: number, text?: RegExp) => (e: unknown) => {
  assert.ok(e instanceof SigilError, String(e));
  assert.equal(e.code, code, e.message);
  if (status !== undefined) assert.equal(e.status, status, e.message);
  if (text) assert.match(e.message, text);
  return true;
};

test("key generation: 2 of 3, every member agrees, nodes from the verified attestations", async () => {
  const t0 = performance.now();
  group = await frostKeygen(clients, { threshold: 2 }, owner);
  console.log(`# 2-of-3 key generation: ${(performance.now() - t0).toFixed(0)} ms`);
  assert.equal(group.threshold, 2);
  assert.equal(group.owner, hex(owner.xOnly));
  assert.deepEqual(group.participants.map((p) => [p.participant, p.node]), clients.map((c, i) => [i + 1, c.attestation.userData.node]));
  assert.equal(group.verifyingKey.slice(2), group.id);
  assert.equal(group.outputKey, hex(taprootOutputKey(unhex(group.id))));
  // Each member holds it at its own place.
  for (const [i, c] of clients.entries()) {
    const v = await c.frost.group(group.id);
    assert.equal(v.participant, i + 1);
    assert.equal(v.output_key, group.outputKey);
  }
});

test("signing: {1,2} on the key path, {2,3} a batch under a script tree; verified here", async () => {
  const m1 = randomBytes(32);
  const t0 = performance.now();
  const a = await frostSign(group, [clients[0]!, clients[1]!], [m1], owner);
  console.log(`# 2-of-2 signing session: ${(performance.now() - t0).toFixed(0)} ms`);
  assert.deepEqual(a.signers, [1, 2]);
  assert.equal(hex(a.outputKey), group.outputKey);
  assert.ok(schnorr.verify(a.signatures[0]!, m1, unhex(group.outputKey)));

  // Given in any order: each signer's number comes from its attested node.
  const batch = [randomBytes(32), randomBytes(32)];
  const root = randomBytes(32);
  const b = await frostSign(group, [clients[2]!, clients[1]!], batch, owner, { merkleRoot: root });
  assert.deepEqual(b.signers, [2, 3]);
  const tweaked = taprootOutputKey(unhex(group.id), root);
  assert.equal(hex(b.outputKey), hex(tweaked));
  assert.notEqual(hex(tweaked), group.outputKey);
  batch.forEach((m, i) => assert.ok(schnorr.verify(b.signatures[i]!, m, tweaked), `message ${i + 1}`));
  assert.ok(!schnorr.verify(b.signatures[0]!, batch[0]!, unhex(group.outputKey)));
});

test("refused: below the threshold (here and at the enclave), a message other than the approved one, an approval used twice, a changed peer message", async () => {
  const m = randomBytes(32);
  await assert.rejects(frostSign(group, [clients[1]!], [m], owner), refusedWith("below_threshold", undefined, /1 signers; the group needs 2/));
  await assert.rejects(frostSign(group, [clients[0]!, clients[0]!], [m], owner), refusedWith("invalid_request", undefined, /twice/));

  const c = clients[1]!;
  const commit = (signers: number[], approved: Uint8Array[], sent: Uint8Array[], session = randomBytes(32)) => {
    const notAfter = owner.notAfter();
    const digest = signDigest(session, unhex(group.id), signers, approved, undefined, notAfter);
    return c.frost.signCommit({
      session: hex(session), group: group.id, signers, messages: sent.map(hex), not_after: notAfter,
      signature: hex(owner.signFor(c.attestation.publicKey, digest)),
    });
  };
  // The enclave's own check, past the SDK's.
  await assert.rejects(commit([2], [m], [m]), refusedWith("invalid_request", 400, /1 signers; the group needs 2/));
  // The coordinator changes the message after the owner approved another.
  const other = m.slice();
  other[0]! ^= 1;
  await assert.rejects(commit([1, 2], [m], [other]), refusedWith("bad_signature", 401));
  // An approval starts one session only.
  const session = randomBytes(32);
  const notAfter = owner.notAfter();
  const digest = signDigest(session, unhex(group.id), [2, 3], [m], undefined, notAfter);
  const req = { session: hex(session), group: group.id, signers: [2, 3], messages: [hex(m)], not_after: notAfter, signature: hex(owner.signFor(c.attestation.publicKey, digest)) };
  const made = await c.frost.signCommit(req);
  assert.equal(made.participant, 2);
  await assert.rejects(c.frost.signCommit({ ...req, session: hex(randomBytes(32)) }), refusedWith("bad_signature", 401));
  await assert.rejects(c.frost.signCommit(req), refusedWith("approval_used", 409));

  // A key generation whose round-1 message the coordinator changes: its recipient refuses it.
  const dkgSession = randomBytes(32);
  const nodes = clients.map(nodeOf);
  const na = owner.notAfter();
  const d = dkgDigest(dkgSession, 2, nodes.map((n) => unhex(n)), owner.xOnly, na);
  const round1: PeerMessage[] = [];
  for (const cl of clients) {
    const r = await cl.frost.dkgStart({ session: hex(dkgSession), threshold: 2, members: clients.map((x) => b64(x.document)), owner: hex(owner.xOnly), not_after: na, signature: hex(owner.signFor(cl.attestation.publicKey, d)) });
    round1.push(...r.messages);
  }
  const to1 = round1.filter((x) => x.recipient === nodes[0]);
  assert.equal(to1.length, 2);
  const ct = Uint8Array.from(atob(to1[0]!.ct), (ch) => ch.charCodeAt(0));
  ct[ct.length - 1]! ^= 1;
  const changed = [{ ...to1[0]!, ct: b64(ct) }, to1[1]!];
  await assert.rejects(clients[0]!.frost.dkgRound2({ session: hex(dkgSession), messages: changed }), refusedWith("peer_message_refused", 400));
  // Redirected to another member: refused as well.
  await assert.rejects(clients[1]!.frost.dkgRound2({ session: hex(dkgSession), messages: [to1[1]!] }), refusedWith("peer_message_refused", 400));
});

test("refresh: new shares, the same group key, and the members still sign", async () => {
  const before = group;
  const t0 = performance.now();
  const after = await frostRefresh([clients[2]!, clients[0]!, clients[1]!], group.id, owner);
  console.log(`# refresh (3 members, with the commit): ${(performance.now() - t0).toFixed(0)} ms`);
  assert.equal(after.outputKey, before.outputKey);
  assert.equal(after.verifyingKey, before.verifyingKey);
  assert.notEqual(after.generation, before.generation);
  after.participants.forEach((p, i) => assert.notEqual(p.verifyingShare, before.participants[i]!.verifyingShare));
  group = after;
  const m = randomBytes(32);
  const s = await frostSign(group, [clients[0]!, clients[2]!], [m], owner);
  assert.deepEqual(s.signers, [1, 3]);
  assert.ok(schnorr.verify(s.signatures[0]!, m, unhex(group.outputKey)));
});

test("repair: a new enclave takes participant 3's place, rebuilt by 1 and 2; the group key stays", async () => {
  const { proc, endpoint } = await startLocal(["--dir", join(work, "member-4")]);
  procs.push(proc);
  const fresh = await SigilClient.connect(endpoint, { trustTestRoot: true, maxAgeMs: 300_000 });
  const helpers = [clients[1]!, clients[0]!];
  // Without the group owner's approval: refused by the helpers.
  await assert.rejects(frostRepair(helpers, fresh, group.id, 3, OwnerKey.generate()), refusedWith("bad_signature", 401));
  const repaired = await frostRepair(helpers, fresh, group.id, 3, owner);
  assert.equal(repaired.outputKey, group.outputKey);
  assert.equal(repaired.participants[2]!.node, nodeOf(fresh));
  assert.deepEqual(repaired.participants.map((p) => p.verifyingShare), group.participants.map((p) => p.verifyingShare));
  group = repaired;
  for (const pair of [[clients[0]!, fresh], [fresh, clients[1]!]]) {
    const m = randomBytes(32);
    const s = await frostSign(group, pair, [m], owner);
    assert.ok(schnorr.verify(s.signatures[0]!, m, unhex(group.outputKey)), `signers ${s.signers}`);
  }
  // The enclave that held participant 3 before is no longer the group's participant 3.
  await assert.rejects(frostSign(group, [clients[2]!, clients[0]!], [randomBytes(32)], owner), refusedWith("not_a_member"));
});
