// Vault request digests (protocol/src/vault.rs).

import { sha256 } from "@noble/hashes/sha2.js";
import { u64be, utf8 } from "./bytes.js";
import { taggedDigest } from "./owner.js";

export const VAULT_TAG = "sigil/vault/v1";
export const MAX_VALUE = 64 * 1024;
export const MAX_NAME = 64;
export type VaultOp = "put" | "get" | "delete";

/** tagged_digest("sigil/vault/v1", [op, name, expected_version, sha256(value) | "", owner | "", not_after]). */
export function vaultDigest(op: VaultOp, name: string, expectedVersion: number | bigint, value: Uint8Array | undefined, owner: Uint8Array | undefined, notAfter: number | bigint): Uint8Array {
  return taggedDigest(VAULT_TAG, [utf8(op), utf8(name), u64be(expectedVersion), value ? sha256(value) : new Uint8Array(), owner ?? new Uint8Array(), u64be(notAfter)]);
}

/** 1..64 of A-Z a-z 0-9 . _ -, not starting with '.' (checked before signing). */
export function checkName(name: string): void {
  if (!/^[A-Za-z0-9_\-][A-Za-z0-9._\-]{0,63}$/.test(name)) throw new TypeError("name must be 1..64 of A-Z a-z 0-9 . _ - and must not start with '.'");
}
