// A tiny static file server for the page (Node, no dependencies), on 127.0.0.1 only.
//
//   node examples/web/serve.mjs [--dir DIR] [--port N]     (default: dist/ here, port 8080)
//
// Serves regular files under DIR and nothing else: no listing, no path outside DIR, GET and
// HEAD only. The page's origin is http://127.0.0.1:PORT; the enclave must list it in its
// measured configuration's cors.origins (or local mode's --cors-origin) for the page to read
// its answers.

import { createServer } from "node:http";
import { readFile, stat } from "node:fs/promises";
import { dirname, extname, join, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";

const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".map": "application/json",
  ".json": "application/json",
  ".gz": "application/octet-stream",
  ".cbor": "application/cbor",
  ".png": "image/png",
};

/** Starts serving `dir`; resolves to the server once it listens (port 0: a free one). */
export function serve(dir, { port = 0, host = "127.0.0.1" } = {}) {
  const base = resolve(dir);
  const server = createServer(async (req, res) => {
    const fail = (status) => {
      res.writeHead(status, { "content-type": "text/plain" });
      res.end(`${status}\n`);
    };
    if (req.method !== "GET" && req.method !== "HEAD") return fail(405);
    let path;
    try {
      path = decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname);
    } catch {
      return fail(400);
    }
    if (path.endsWith("/")) path += "index.html";
    const file = resolve(join(base, path));
    if (!file.startsWith(base + sep) || path.includes("\0")) return fail(404);
    try {
      if (!(await stat(file)).isFile()) return fail(404);
      const body = await readFile(file);
      res.writeHead(200, {
        "content-type": TYPES[extname(file)] ?? "application/octet-stream",
        "cache-control": "no-store",
      });
      res.end(req.method === "HEAD" ? undefined : body);
    } catch {
      fail(404);
    }
  });
  return new Promise((ok, bad) => {
    server.once("error", bad);
    server.listen(port, host, () => ok(server));
  });
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const arg = (name, dflt) => {
    const i = process.argv.indexOf(name);
    return i > 0 ? process.argv[i + 1] : dflt;
  };
  const here = dirname(fileURLToPath(import.meta.url));
  const server = await serve(arg("--dir", join(here, "dist")), { port: Number(arg("--port", "8080")) });
  const { address, port } = server.address();
  console.log(`serving http://${address}:${port}/`);
}
