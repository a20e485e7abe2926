import assert from "node:assert/strict";
import {
  httpHandler,
  METRICS_CONTENT_TYPE,
  type OperatorEndpoints,
  type Readiness,
  WEB_CSP,
} from "./http.ts";
import { WEB_FILES, type WebAssets } from "./web_assets.ts";

const INFO: Deno.ServeHandlerInfo<Deno.NetAddr> = {
  remoteAddr: { transport: "tcp", hostname: "127.0.0.1", port: 40000 },
  completed: Promise.resolve(),
};

function endpoints(ready: Partial<Readiness> = {}): OperatorEndpoints {
  return {
    readiness: () =>
      Promise.resolve({
        status: "ready",
        storage: "ok",
        listening: true,
        links: [],
        users_online: 0,
        ...ready,
      }),
    metricsText: () => Promise.resolve("# TYPE up gauge\nup 1\n"),
  };
}

const upgraded = new Response(null, { status: 299 });
const mainPort = (e = endpoints(), metrics = true) =>
  httpHandler(e, { metrics, upgrade: () => upgraded });

function get(path: string, init: RequestInit = {}): Request {
  return new Request(`http://127.0.0.1${path}`, init);
}

Deno.test("`httpHandler()` answers /healthz with 200 and {status: ok}", async () => {
  const response = await mainPort()(get("/healthz"), INFO);
  assert.equal(response.status, 200);
  assert.deepEqual(await response.json(), { status: "ok" });
});

Deno.test("`httpHandler()` answers /readyz with 200 when ready and 503 with the reason otherwise", async () => {
  const ok = await mainPort()(get("/readyz"), INFO);
  assert.equal(ok.status, 200);
  assert.equal((await ok.json()).status, "ready");
  const handler = mainPort(endpoints({ status: "not_ready", reason: "not listening" }));
  const down = await handler(get("/readyz"), INFO);
  assert.equal(down.status, 503);
  assert.equal((await down.json()).reason, "not listening");
});

Deno.test("`httpHandler()` serves /metrics as Prometheus text, or 404 when disabled", async () => {
  const response = await mainPort()(get("/metrics"), INFO);
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("content-type"), METRICS_CONTENT_TYPE);
  assert.equal(await response.text(), "# TYPE up gauge\nup 1\n");
  const off = await mainPort(endpoints(), false)(get("/metrics"), INFO);
  assert.equal(off.status, 404);
  await off.body?.cancel();
});

Deno.test("`httpHandler()` hands WebSocket upgrades over and answers other requests for / with 426", async () => {
  const handler = mainPort();
  const ws = await handler(get("/", { headers: { upgrade: "WebSocket" } }), INFO);
  assert.equal(ws, upgraded);
  const plain = await handler(get("/"), INFO);
  assert.equal(plain.status, 426);
  assert.match(await plain.text(), /WebSocket/);
});

Deno.test("`httpHandler()` answers unknown paths with 404 and other methods with 405", async () => {
  const handler = mainPort();
  const missing = await handler(get("/nope"), INFO);
  assert.equal(missing.status, 404);
  await missing.body?.cancel();
  for (const path of ["/healthz", "/readyz", "/metrics", "/"]) {
    const response = await handler(get(path, { method: "POST", body: "x" }), INFO);
    assert.equal(response.status, 405, path);
    assert.equal(response.headers.get("allow"), "GET, HEAD");
    await response.body?.cancel();
  }
});

Deno.test("`httpHandler()` without `upgrade` (the metrics address) has no WebSocket and no /", async () => {
  const handler = httpHandler(endpoints(), { metrics: true });
  for (const request of [get("/"), get("/", { headers: { upgrade: "websocket" } })]) {
    const response = await handler(request, INFO);
    assert.equal(response.status, 404);
    await response.body?.cancel();
  }
  const metrics = await handler(get("/metrics"), INFO);
  assert.equal(metrics.status, 200);
  await metrics.body?.cancel();
});

const WEB: WebAssets = {
  get: (path) =>
    ({
      "/": {
        body: new TextEncoder().encode("<!doctype html>"),
        contentType: WEB_FILES["/"]!.contentType,
      },
      "/app.js": {
        body: new TextEncoder().encode("export {};"),
        contentType: WEB_FILES["/app.js"]!.contentType,
      },
    })[path],
};

Deno.test("`httpHandler()` serves the web client at / with a strict CSP and nosniff", async () => {
  const handler = httpHandler(endpoints(), { metrics: true, upgrade: () => upgraded, web: WEB });
  const page = await handler(get("/"), INFO);
  assert.equal(page.status, 200);
  assert.equal(page.headers.get("content-type"), "text/html; charset=utf-8");
  assert.equal(page.headers.get("content-security-policy"), WEB_CSP);
  assert.match(WEB_CSP, /default-src 'self'; script-src 'self'; style-src 'self'/);
  assert.match(WEB_CSP, /object-src 'none'; base-uri 'none'; frame-ancestors 'none'/);
  assert.equal(page.headers.get("x-content-type-options"), "nosniff");
  assert.equal(await page.text(), "<!doctype html>");
  const script = await handler(get("/app.js"), INFO);
  assert.equal(script.headers.get("content-type"), "text/javascript; charset=utf-8");
  assert.equal(script.headers.get("x-content-type-options"), "nosniff");
  await script.body?.cancel();
  const ws = await handler(get("/", { headers: { upgrade: "websocket" } }), INFO);
  assert.equal(ws, upgraded, "WebSocket upgrades on / still work");
  for (const path of ["/style.css", "/app.bundle.js", "/index.html", "/../deno.json"]) {
    const missing = await handler(get(path), INFO);
    assert.equal(missing.status, 404, path);
    await missing.body?.cancel();
  }
  const post = await handler(get("/app.js", { method: "POST", body: "x" }), INFO);
  assert.equal(post.status, 405);
  await post.body?.cancel();
});
