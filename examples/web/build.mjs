// Builds the page into a directory (default: dist/ here): type-checks main.ts together with
// the SDK's sources, bundles both for the browser with esbuild (the SDK's own dev
// dependencies; run `npm ci` in sdk/ts first), and copies index.html and the tiny fixture.
//
//   node examples/web/build.mjs [--out DIR]

import { execFileSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "../..");
const sdk = join(root, "sdk/ts");

export function build(out = join(here, "dist")) {
  const bin = (name) => join(sdk, "node_modules/.bin", name);
  for (const tool of ["tsc", "esbuild"]) {
    if (!existsSync(bin(tool))) {
      throw new Error(`${bin(tool)} is missing: run \`npm ci\` in sdk/ts first`);
    }
  }
  execFileSync(bin("tsc"), ["-p", join(here, "tsconfig.json")], { stdio: "inherit" });
  mkdirSync(join(out, "fixtures/tiny"), { recursive: true });
  execFileSync(
    bin("esbuild"),
    [
      join(here, "main.ts"),
      "--bundle",
      "--format=esm",
      "--platform=browser",
      "--target=es2022",
      // The tsconfig's paths map @sigil/sdk to the SDK's sources.
      `--tsconfig=${join(here, "tsconfig.json")}`,
      "--minify",
      "--sourcemap",
      "--log-level=warning",
      `--outfile=${join(out, "main.js")}`,
    ],
    { stdio: "inherit" },
  );
  copyFileSync(join(here, "index.html"), join(out, "index.html"));
  for (const f of ["target.json", "witness.gz"]) {
    copyFileSync(join(root, "fixtures/tiny", f), join(out, "fixtures/tiny", f));
  }
  return out;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const i = process.argv.indexOf("--out");
  const out = build(i > 0 ? resolve(process.argv[i + 1] ?? "") : undefined);
  console.log(`built ${out}`);
}
