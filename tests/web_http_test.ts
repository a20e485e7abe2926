/**
 * The browser client as a real `socp server` serves it on its own port, next to the WebSocket
 * endpoint: the page with its Content-Security-Policy, the committed bundle and the style sheet
 * with their media types, and 404 for anything else.
 */
import assert from "node:assert/strict";
import { WEB_CSP } from "../server/http.ts";
import { connectUser, startServer } from "./support/mod.ts";

Deno.test("socp server serves the web client with a CSP, the bundle as JavaScript, and 404 elsewhere", async () => {
  await using server = await startServer();
  const base = `http://127.0.0.1:${server.port}`;

  const page = await fetch(`${base}/`);
  const html = await page.text();
  assert.equal(page.status, 200);
  assert.equal(page.headers.get("content-type"), "text/html; charset=utf-8");
  assert.equal(page.headers.get("content-security-policy"), WEB_CSP);
  assert.equal(page.headers.get("x-content-type-options"), "nosniff");
  assert.match(html, /<script type="module" src="\/app.js"><\/script>/);
  assert.doesNotMatch(html, /https?:\/\//, "no external resources");

  const script = await fetch(`${base}/app.js`);
  assert.equal(script.status, 200);
  assert.equal(script.headers.get("content-type"), "text/javascript; charset=utf-8");
  assert.equal(script.headers.get("x-content-type-options"), "nosniff");
  const committed = await Deno.readTextFile(
    new URL("../client/web/app.bundle.js", import.meta.url),
  );
  assert.equal(await script.text(), committed);

  const style = await fetch(`${base}/style.css`);
  assert.equal(style.headers.get("content-type"), "text/css; charset=utf-8");
  assert.doesNotMatch(await style.text(), /@import|url\(\s*["']?https?:/, "no external resources");

  for (
    const path of ["/nope", "/app.ts", "/client/web/state.ts", "/index.html", "/app.bundle.js"]
  ) {
    const missing = await fetch(`${base}${path}`);
    assert.equal(missing.status, 404, path);
    await missing.body?.cancel();
  }

  // The WebSocket endpoint on the same port keeps working.
  await using alice = await connectUser(server.url, "user0", { serverPub: server.pubkey });
  assert.equal(alice.serverId, server.serverId);
});
