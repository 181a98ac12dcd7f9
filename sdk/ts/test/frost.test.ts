// FROST coordinator, the pure parts: the Taproot output key, the digests the owner signs, and
// the checks made on what the members answer (client/src/frost.rs is the specification).
import { test } from "node:test";
import assert from "node:assert/strict";
import { schnorr, secp256k1 } from "@noble/curves/secp256k1.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { taprootTweakPubkey } from "@scure/btc-signer/utils.js";
import { hex, randomBytes, unhex, utf8 } from "../src/bytes.js";
import { SigilError } from "../src/errors.js";
import { taggedDigest } from "../src/owner.js";
import { checkSignatures, checkViews, commitDigest, dkgDigest, groupOfView, refreshDigest, repairDigest, signDigest, taprootOutputKey, type GroupView } from "../src/frost.js";

const b = (x: number, n = 32) => new Uint8Array(n).fill(x);

test("taprootOutputKey: BIP-86's vector and an independent implementation", () => {
  // BIP-86, m/86'/0'/0'/0/0.
  assert.equal(
    hex(taprootOutputKey(unhex("cc8a4bc64d897bddc5fbc2f670f7a8ba0b386779106cf1223c6fc5d7cd6fc115"))),
    "a60869f0dbcf1dc659c9cecbaf8050135ea9e8cdc487053f1dc6880949dc684c",
  );
  for (let i = 0; i < 8; i++) {
    const p = schnorr.getPublicKey(schnorr.utils.randomSecretKey());
    const root = randomBytes(32);
    assert.equal(hex(taprootOutputKey(p)), hex(taprootTweakPubkey(p, new Uint8Array())[0]));
    assert.equal(hex(taprootOutputKey(p, root)), hex(taprootTweakPubkey(p, root)[0]));
  }
  // x = 5 is not on the curve.
  assert.throws(() => taprootOutputKey(unhex("00".repeat(31) + "05")), (e: unknown) => e instanceof SigilError && e.code === "protocol");
});

test("digests: the protocol's framing, and every field bound", () => {
  const nodes = [b(4), b(5)];
  assert.equal(
    hex(dkgDigest(b(1), 2, nodes, b(6), 9)),
    hex(taggedDigest("sigil/frost-dkg/v1", [b(1), Uint8Array.of(0, 2), new Uint8Array([...b(4), ...b(5)]), b(6), unhex("0000000000000009")])),
  );
  assert.notEqual(hex(dkgDigest(b(1), 2, nodes, b(6), 9)), hex(dkgDigest(b(1), 2, [b(5), b(4)], b(6), 9)));
  assert.notEqual(hex(dkgDigest(b(1), 2, nodes, b(6), 9)), hex(dkgDigest(b(1), 1, nodes, b(6), 9)));
  const base = hex(signDigest(b(1), b(2), [1, 2], [b(3)], undefined, 9));
  assert.equal(base, hex(taggedDigest("sigil/frost-sign/v1", [b(1), b(2), Uint8Array.of(0, 1, 0, 2), b(3), new Uint8Array(), unhex("0000000000000009")])));
  for (const other of [
    signDigest(b(1), b(2), [1, 3], [b(3)], undefined, 9),
    signDigest(b(1), b(2), [1, 2], [b(3)], b(0), 9),
    signDigest(b(1), b(2), [1, 2], [b(3), b(3)], undefined, 9),
    signDigest(b(1), b(2), [1, 2], [b(3)], undefined, 10),
    signDigest(b(7), b(2), [1, 2], [b(3)], undefined, 9),
  ]) assert.notEqual(hex(other), base);
  assert.equal(hex(refreshDigest(b(1), b(2), b(3), nodes, 9)), hex(taggedDigest("sigil/frost-refresh/v1", [b(1), b(2), b(3), new Uint8Array([...b(4), ...b(5)]), unhex("0000000000000009")])));
  assert.equal(hex(commitDigest(b(2), b(3), 9)), hex(taggedDigest("sigil/frost-refresh-commit/v1", [b(2), b(3), unhex("0000000000000009")])));
  assert.equal(hex(repairDigest(b(1), b(2), 3, [1, 2], b(8), 9)), hex(taggedDigest("sigil/frost-repair/v1", [b(1), b(2), Uint8Array.of(0, 3), Uint8Array.of(0, 1, 0, 2), b(8), unhex("0000000000000009")])));
});

function views(): { vs: GroupView[]; nodes: string[]; owner: string; key: Uint8Array } {
  const sk = schnorr.utils.randomSecretKey();
  const key = schnorr.getPublicKey(sk);
  const nodes = [hex(b(0x11)), hex(b(0x22)), hex(b(0x33))];
  const owner = hex(b(0x44));
  const v: GroupView = {
    group: hex(key), verifying_key: "02" + hex(key), output_key: hex(taprootOutputKey(key)), threshold: 2, members: nodes,
    verifying_shares: ["02" + "aa".repeat(32), "02" + "bb".repeat(32), "03" + "cc".repeat(32)], owner, participant: 1, generation: "ee".repeat(32),
  };
  return { vs: [1, 2, 3].map((participant) => ({ ...v, participant })), nodes, owner, key };
}

test("checkViews: members that agree pass; any difference is refused by name", () => {
  const { vs, nodes, owner } = views();
  checkViews(vs, nodes, 2, owner);
  const refused = (f: (vs: GroupView[]) => void, text: RegExp, n = nodes, t = 2, o = owner) => {
    const mine = vs.map((v) => ({ ...v, members: [...v.members], verifying_shares: [...v.verifying_shares] }));
    f(mine);
    assert.throws(() => checkViews(mine, n, t, o), (e: unknown) => e instanceof SigilError && e.code === "protocol" && text.test(e.message));
  };
  refused((vs) => (vs[2]!.verifying_shares[0] = "02" + "dd".repeat(32)), /member 3 describes another group/);
  refused((vs) => (vs[1]!.pending = "ff".repeat(32)), /member 2 describes another group/);
  refused((vs) => (vs[1]!.participant = 3), /member 2 says it is participant 3/);
  refused(() => undefined, /not the ones asked for/, [nodes[1]!, nodes[0]!, nodes[2]!]);
  refused(() => undefined, /not the ones asked for/, nodes, 3);
  refused(() => undefined, /not the ones asked for/, nodes, 2, hex(b(0x45)));
  refused((vs) => vs.forEach((v) => (v.output_key = v.group)), /not the BIP-86 tweak/);
  refused((vs) => vs.forEach((v) => (v.verifying_key = "04" + v.group)), /malformed/);
  assert.throws(() => checkViews([], nodes, 2, owner), /no member answered/);
});

test("checkSignatures: believed only when each verifies under the output key computed here", () => {
  const sk = schnorr.utils.randomSecretKey();
  const internal = schnorr.getPublicKey(sk);
  const group = groupOfView({ ...views().vs[0]!, group: hex(internal), verifying_key: "02" + hex(internal), output_key: hex(taprootOutputKey(internal)) });
  const out = taprootOutputKey(internal);
  const msg = randomBytes(32);
  // The key-path secret (BIP-341): the internal secret with an even-y point, plus the tweak.
  const n = secp256k1.Point.CURVE().n;
  const big = (x: Uint8Array) => BigInt("0x" + hex(x));
  let d = big(sk);
  if (secp256k1.Point.BASE.multiply(d).toAffine().y % 2n === 1n) d = n - d;
  const tag = sha256(utf8("TapTweak"));
  const tweaked = unhex(((d + big(sha256(new Uint8Array([...tag, ...tag, ...internal])))) % n).toString(16).padStart(64, "0"));
  const good = schnorr.sign(msg, tweaked);
  const checked = checkSignatures(group, [msg], undefined, { output_key: hex(out), signatures: [hex(good)] });
  assert.deepEqual(checked.signatures, [good]);
  assert.equal(hex(checked.outputKey), hex(out));
  const wrongSig = schnorr.sign(msg, sk);
  assert.throws(() => checkSignatures(group, [msg], undefined, { output_key: hex(out), signatures: [hex(wrongSig)] }), /signature 1 does not verify/);
  assert.throws(() => checkSignatures(group, [msg], undefined, { output_key: hex(internal), signatures: [hex(wrongSig)] }), /another output key/);
  assert.throws(() => checkSignatures(group, [msg], b(9), { output_key: hex(out), signatures: [hex(wrongSig)] }), /another output key/);
  assert.throws(() => checkSignatures(group, [msg, msg], undefined, { output_key: hex(out), signatures: [hex(wrongSig)] }), /another number/);
  assert.throws(() => checkSignatures(group, [msg], undefined, { output_key: hex(out), signatures: ["zz"] }), /malformed/);
});
