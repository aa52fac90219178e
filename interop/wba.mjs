// Cloudflare's npm `web-bot-auth` (pinned in package.json) as an independent implementation
// for botauth's interop tests (`cargo xtask test`, xtask/src/interop.rs).
//
//   node wba.mjs sign   < spec.json   > request.http
//       spec: { "jwk": {private JWK}, "method": "GET", "url": "https://example.com/p?q",
//               "headers": [["Name", "value"], ...], "created": unix, "expires": unix,
//               "components": [ "@authority", {"name": "signature-agent", "key": "sig1"} ] }
//       (components optional: the library's default is @authority, plus signature-agent
//        when that header is present). Prints a raw HTTP/1.1 request with the signature.
//   node wba.mjs verify REQUEST_FILE PUBLIC_JWK_FILE
//       Verifies with the library's verifier (its clock is the wall clock). Prints one JSON
//       line {"ok": bool, "error": "..."}; exit 0 verified, 1 rejected, 2 bad input.
//
// Raw request files: `METHOD TARGET HTTP/1.1`, `Name: value` lines, a blank line, a body;
// CRLF or LF. The authority comes from Host, the scheme is https.
//
// The module is resolved from NODE_PATH-independent location: the xtask runs this script
// with the working directory .tools/interop/node (where `npm ci` installed the package).

import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";
import { join } from "node:path";

const modulesRoot = process.env.BOTAUTH_INTEROP_NODE_MODULES ?? join(process.cwd(), "node_modules");
const load = async (spec) => {
  const require = createRequire(join(modulesRoot, "noop.js"));
  return import(pathToFileURL(require.resolve(spec)).href);
};
const wba = await load("web-bot-auth");
const wbaCrypto = await load("web-bot-auth/crypto");

function parseRaw(text) {
  const lines = text.split(/\r?\n/);
  const [method, target] = lines[0].split(" ");
  const headers = [];
  let i = 1;
  for (; i < lines.length && lines[i] !== ""; i++) {
    const colon = lines[i].indexOf(":");
    if (colon <= 0) throw new Error(`bad header line ${i + 1}: ${lines[i]}`);
    headers.push([lines[i].slice(0, colon), lines[i].slice(colon + 1).trim()]);
  }
  const body = lines.slice(i + 1).join("\n");
  const host = headers.find(([n]) => n.toLowerCase() === "host");
  if (!host) throw new Error("request has no Host header");
  return { method, target, headers, body, url: `https://${host[1]}${target}` };
}

// A plain RequestLike: headers as an object; repeated names become arrays, which the
// library joins with ", " (RFC 9421 §2.1).
function requestLike({ method, url, headers }) {
  const obj = {};
  for (const [n, v] of headers) {
    const k = n.toLowerCase();
    obj[k] = k in obj ? [].concat(obj[k], v) : v;
  }
  return { method, url, headers: obj };
}

async function sign(spec) {
  const url = new URL(spec.url);
  const headers = [["Host", url.host], ...(spec.headers ?? [])];
  const message = requestLike({ method: spec.method ?? "GET", url: url.href, headers });
  const params = {
    created: new Date(spec.created * 1000),
    expires: new Date(spec.expires * 1000),
  };
  if (spec.components) {
    params.components = spec.components.map((c) =>
      typeof c === "string" ? c : { name: c.name, parameters: new Map([["key", c.key]]) },
    );
  }
  const signer = await wbaCrypto.signerFromJWK(spec.jwk);
  const sig = await wba.signatureHeaders(message, signer, params);
  const all = [...headers, ["Signature-Input", sig["Signature-Input"]], ["Signature", sig["Signature"]]];
  const head = `${spec.method ?? "GET"} ${url.pathname}${url.search} HTTP/1.1\r\n`;
  process.stdout.write(head + all.map(([n, v]) => `${n}: ${v}\r\n`).join("") + "\r\n");
}

async function verify(requestFile, jwkFile) {
  const raw = parseRaw(readFileSync(requestFile, "utf8"));
  const jwk = JSON.parse(readFileSync(jwkFile, "utf8"));
  const verifier = await wbaCrypto.verifierFromJWK(jwk);
  try {
    await wba.verify(requestLike(raw), verifier);
    console.log(JSON.stringify({ ok: true }));
    process.exit(0);
  } catch (e) {
    console.log(JSON.stringify({ ok: false, error: String(e?.message ?? e) }));
    process.exit(1);
  }
}

const [cmd, ...args] = process.argv.slice(2);
try {
  if (cmd === "sign") {
    await sign(JSON.parse(readFileSync(0, "utf8")));
  } else if (cmd === "verify" && args.length === 2) {
    await verify(args[0], args[1]);
  } else {
    console.error("usage: node wba.mjs sign < spec.json | node wba.mjs verify REQUEST_FILE PUBLIC_JWK_FILE");
    process.exit(2);
  }
} catch (e) {
  console.error(`wba.mjs: ${e?.stack ?? e}`);
  process.exit(2);
}
