// Test-only paths (Node). From dist/test/ the package root is two levels up.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

export const pkgRoot = fileURLToPath(new URL("../../", import.meta.url));
export const repoRoot = fileURLToPath(new URL("../../../../", import.meta.url));
/** The shared directory beside the checkout (never copied into the repository). */
export const shared = fileURLToPath(new URL("../../../../../shared/", import.meta.url));

export const readBytes = (p: string): Uint8Array => new Uint8Array(readFileSync(p));
export const readJson = (p: string): any => JSON.parse(readFileSync(p, "utf8"));
