// The chain rules in two languages. test/vectors/chain-rules.json is made by the Rust side
// (attestation/tests/chain_rules.rs) from fixed keys and times: documents under the sigil test
// root whose chain breaks exactly one X.509 rule (leaf a CA, CA without keyCertSign, path
// length, duplicate or unknown critical extension, bundle order, v1, P-256, SHA-256, names,
// signature, validity), and controls that must be accepted. The Rust verifier refuses each
// with the recorded check; the SDK must refuse each with its own recorded check and message.

import { test } from "node:test";
import assert from "node:assert/strict";
import { AttestationError, unb64, verifyAttestation } from "../src/index.js";
import { pkgRoot, readJson } from "./paths.js";

interface Vector {
  name: string;
  rule: string;
  at_unix_seconds: number;
  document: string;
  accept: boolean;
  ts_check?: string;
  ts_detail?: string;
}

const vectors: Vector[] = readJson(`${pkgRoot}test/vectors/chain-rules.json`).vectors;

// Guards against an emptied or truncated file: the rules the review asked for are all here,
// and at least one document is accepted, so a verifier refusing everything fails.
test("chain rules: every rule has a vector, and controls exist", () => {
  const names = new Set(vectors.map((v) => v.name));
  for (const n of [
    "control",
    "leaf_is_ca",
    "leaf_with_path_len",
    "ca_without_key_cert_sign",
    "ca_basic_constraints_not_critical",
    "ca_without_basic_constraints",
    "path_len_exceeded",
    "duplicate_extension",
    "unknown_critical_extension",
    "cabundle_root_last",
    "cabundle_intermediates_swapped",
    "x509_v1_leaf",
    "leaf_p256_key",
    "leaf_signature_algorithm_sha256",
    "issuer_name_mismatch",
    "leaf_not_yet_valid",
    "leaf_expired",
    "leaf_signed_by_wrong_key",
  ]) {
    assert.ok(names.has(n), `missing vector ${n}`);
  }
  assert.ok(vectors.some((v) => v.accept));
  assert.ok(vectors.filter((v) => !v.accept).length >= 17);
});

for (const v of vectors) {
  const opts = { trustTestRoot: true, now: new Date(v.at_unix_seconds * 1000), requireSigil: false };
  const doc = unb64(v.document);
  if (v.accept) {
    test(`chain rules: ${v.name} is accepted (${v.rule})`, async () => {
      const out = await verifyAttestation(doc, opts);
      assert.equal(out.rootName, "sigil-test");
      assert.equal(out.debug, false);
    });
  } else {
    test(`chain rules: ${v.name} is refused (${v.rule})`, async () => {
      await assert.rejects(verifyAttestation(doc, opts), (e: unknown) => {
        assert.ok(e instanceof AttestationError, `not an AttestationError: ${e}`);
        assert.equal(e.check, v.ts_check, e.message);
        assert.ok(e.message.includes(v.ts_detail!), `${e.message} (wanted ${JSON.stringify(v.ts_detail)})`);
        return true;
      });
    });
  }
}
