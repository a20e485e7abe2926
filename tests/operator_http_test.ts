/**
 * Integration tests of what operators get from `socp server` over HTTP on its port: `/healthz`,
 * `/readyz` and `/metrics` (Prometheus text) beside WebSocket upgrades, `--metrics-listen` for a
 * separate address, and `--log-format json`.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  connectUser,
  eventually,
  isAck,
  LoginRefusedError,
  loginUser,
  registerUser,
  type ServerNode,
  startMesh,
  startServer,
  withTimeout,
} from "./support/mod.ts";

/** One sample of a text exposition. */
interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const SAMPLE_LINE =
  /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*",?)*)\})? (\S+)$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"/g;
const COMMENT =
  /^# (?:HELP [a-zA-Z_:][a-zA-Z0-9_:]* .*|TYPE [a-zA-Z_:][a-zA-Z0-9_:]* (?:counter|gauge|histogram|summary|untyped))$/;

/**
 * Parses the Prometheus text format strictly enough for these tests: every line is a HELP or
 * TYPE comment or `name{label="value",...} value`; throws on anything else.
 */
function parsePrometheus(text: string): Sample[] {
  assert.ok(text.endsWith("\n"), "the exposition ends with a line feed");
  const samples: Sample[] = [];
  for (const line of text.slice(0, -1).split("\n")) {
    if (line.startsWith("#")) {
      assert.match(line, COMMENT);
      continue;
    }
    const match = SAMPLE_LINE.exec(line);
    assert.ok(match, `not a sample line: ${JSON.stringify(line)}`);
    const labels: Record<string, string> = {};
    for (const [, name, raw] of (match[2] ?? "").matchAll(LABEL)) {
      labels[name!] = raw!.replace(/\\(.)/g, (_, c) => (c === "n" ? "\n" : c));
    }
    const raw = match[3]!;
    const value = raw === "+Inf" ? Infinity : raw === "-Inf" ? -Infinity : Number(raw);
    assert.ok(raw === "NaN" || !Number.isNaN(value), `bad value in ${JSON.stringify(line)}`);
    samples.push({ name: match[1]!, labels, value });
  }
  return samples;
}

/** The value of the sample `name` with (at least) `labels`; 0 when there is none. */
function valueOf(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  const found = samples.find((s) =>
    s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)
  );
  return found?.value ?? 0;
}

async function get(url: string, init: RequestInit = {}): Promise<Response> {
  return await withTimeout(fetch(url, init), 10_000, `${init.method ?? "GET"} ${url}`);
}

async function getJson(url: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await get(url);
  return { status: response.status, body: await response.json() };
}

async function scrapeText(base: string): Promise<string> {
  const response = await get(`${base}/metrics`);
  assert.equal(response.status, 200);
  assert.match(response.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
  return await response.text();
}

async function scrape(base: string): Promise<Sample[]> {
  return parsePrometheus(await scrapeText(base));
}

function httpBase(node: ServerNode): string {
  return `http://127.0.0.1:${node.port}`;
}

/** A port that was free a moment ago (for a flag that needs a fixed port). */
function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  listener.close();
  return port;
}

Deno.test("socp server answers /healthz, /readyz, 404 and 405 on its WebSocket port", async () => {
  await using server = await startServer();
  const base = httpBase(server);

  const health = await getJson(`${base}/healthz`);
  assert.equal(health.status, 200);
  assert.deepEqual(health.body, { status: "ok" });

  const ready = await getJson(`${base}/readyz`);
  assert.equal(ready.status, 200);
  assert.deepEqual(ready.body, {
    status: "ready",
    storage: "ok",
    listening: true,
    links: [],
    users_online: 0,
  });

  const missing = await get(`${base}/nope`);
  assert.equal(missing.status, 404);
  await missing.body?.cancel();
  const post = await get(`${base}/metrics`, { method: "POST", body: "x" });
  assert.equal(post.status, 405);
  assert.equal(post.headers.get("allow"), "GET, HEAD");
  await post.body?.cancel();

  // WebSocket users still connect on the same port.
  await using alice = await connectUser(server.url, "user0", { serverPub: server.pubkey });
  const withUser = await eventually(async () => {
    const { body } = await getJson(`${base}/readyz`);
    return body.users_online === 1 ? body : undefined;
  }, { what: "users_online to be 1" });
  assert.equal(withUser.status, "ready");
  assert.equal(alice.serverId, server.serverId);
});

Deno.test("socp server /metrics is Prometheus text whose counters move as a DM flows", async () => {
  await using server = await startServer();
  const base = httpBase(server);
  const text = await scrapeText(base);
  const before = parsePrometheus(text);
  assert.equal(valueOf(before, "socp_users_connected"), 0);
  assert.equal(valueOf(before, "socp_servers_linked"), 0);
  assert.equal(valueOf(before, "socp_offline_queue_frames"), 0);
  for (
    const [name, type] of [
      ["socp_users_connected", "gauge"],
      ["socp_servers_linked", "gauge"],
      ["socp_link_up", "gauge"],
      ["socp_offline_queue_frames", "gauge"],
      ["socp_frames_in_total", "counter"],
      ["socp_frames_out_total", "counter"],
      ["socp_errors_sent_total", "counter"],
      ["socp_signatures_total", "counter"],
      ["socp_login_failures_total", "counter"],
      ["socp_login_blocks_total", "counter"],
      ["socp_sign_seconds", "histogram"],
      ["socp_dm_delivery_seconds", "histogram"],
    ]
  ) assert.ok(text.includes(`\n# TYPE ${name} ${type}\n`), `${name} is a ${type}`);

  const opts = { serverPub: server.pubkey };
  await using alice = await connectUser(server.url, "user0", { ...opts, displayName: "alice" });
  await using bob = await connectUser(server.url, "user1", { ...opts, displayName: "bob" });
  const connected = await eventually(async () => {
    const samples = await scrape(base);
    return valueOf(samples, "socp_users_connected") === 2 ? samples : undefined;
  }, { what: "socp_users_connected to be 2" });

  await alice.dm(bob, "counted");
  assert.equal((await bob.nextDm(alice)).text, "counted");
  const after = await scrape(base);

  const moved = (name: string, labels: Record<string, string> = {}) =>
    valueOf(after, name, labels) - valueOf(connected, name, labels);
  assert.equal(moved("socp_frames_in_total", { type: "MSG_DIRECT" }), 1);
  assert.equal(moved("socp_frames_out_total", { type: "USER_DELIVER" }), 1);
  assert.equal(moved("socp_dm_delivery_seconds_count"), 1);
  assert.equal(
    moved("socp_dm_delivery_seconds_bucket", { le: "+Inf" }),
    1,
    "the +Inf bucket counts every observation",
  );
  assert.ok(moved("socp_signatures_total") >= 1);
  assert.equal(valueOf(after, "socp_sign_seconds_count"), valueOf(after, "socp_signatures_total"));
  assert.ok(valueOf(after, "socp_frames_in_total", { type: "USER_HELLO" }) >= 2);

  // A frame type the server does not know is counted as `other`, never under its own name.
  alice.send({ type: "NO_SUCH_TYPE_X", from: alice.userId, to: "server", ts: 1, payload: {} });
  await alice.nextError("UNKNOWN_TYPE");
  const unknown = await scrape(base);
  assert.ok(valueOf(unknown, "socp_frames_in_total", { type: "other" }) >= 1);
  assert.ok(!unknown.some((s) => s.labels.type === "NO_SUCH_TYPE_X"));
  assert.ok(valueOf(unknown, "socp_errors_sent_total", { code: "UNKNOWN_TYPE" }) >= 1);
});

Deno.test("socp server /readyz and /metrics list the links of two linked servers", async () => {
  await using mesh = await startMesh(2, { args: ["--log-format", "json"] });
  const [a, b] = mesh.nodes as [ServerNode, ServerNode];
  for (const [node, other] of [[a, b], [b, a]] as const) {
    const up = JSON.parse(await node.waitForLog(/"event":"link_up"/));
    assert.equal(up.peer_server_id, other.serverId);
    const ready = await getJson(`${httpBase(node)}/readyz`);
    assert.equal(ready.status, 200, JSON.stringify(ready.body));
    assert.equal(ready.body.status, "ready");
    assert.equal(ready.body.storage, "ok");
    assert.equal(ready.body.listening, true);
    assert.equal(ready.body.users_online, 0);
    assert.deepEqual(ready.body.links, [{ server_id: other.serverId, state: "up", group: true }]);

    const samples = await scrape(httpBase(node));
    assert.equal(valueOf(samples, "socp_servers_linked"), 1);
    assert.equal(
      valueOf(samples, "socp_link_up", { server_id: other.serverId, group: "true" }),
      1,
    );
  }
});

Deno.test("socp server --metrics-listen serves /metrics there; the main port answers 404", async () => {
  const port = freePort();
  await using server = await startServer({ args: ["--metrics-listen", `127.0.0.1:${port}`] });
  const separate = `http://127.0.0.1:${port}`;
  const samples = await scrape(separate);
  assert.equal(valueOf(samples, "socp_users_connected"), 0);
  assert.equal((await getJson(`${separate}/healthz`)).status, 200);
  assert.equal((await getJson(`${separate}/readyz`)).status, 200);

  const main = await get(`${httpBase(server)}/metrics`);
  assert.equal(main.status, 404);
  await main.body?.cancel();
  assert.equal((await getJson(`${httpBase(server)}/healthz`)).status, 200);

  const listening = server.stdoutLines().map((l) => JSON.parse(l)).find((v) =>
    v.event === "listening"
  );
  assert.equal(listening?.metrics_url, `${separate}/metrics`);
});

Deno.test("socp server --log-format json writes one JSON object per log line", async () => {
  await using server = await startServer({ args: ["--log-format", "json"] });
  await server.waitForLog(/"event":"listening"/);
  {
    await using _alice = await connectUser(server.url, "user0", { serverPub: server.pubkey });
    await server.waitForLog(/"event":"user_online"/);
  }
  await server.waitForLog(/"event":"user_offline"/);
  // main.ts prints its `rsa backend: …` notice before the server's configuration (and logger)
  // exists; every line of the server's own logger is JSON.
  const lines = server.logLines().filter((l) => !l.startsWith("rsa backend: "));
  assert.ok(lines.length >= 3);
  for (const line of lines) {
    const entry = JSON.parse(line);
    assert.equal(typeof entry.time, "string", line);
    assert.ok(!Number.isNaN(Date.parse(entry.time)), line);
    assert.ok(["debug", "info", "warn", "error"].includes(entry.level), line);
    assert.equal(entry.server_id, server.serverId, line);
    assert.equal(typeof entry.msg, "string", line);
  }
  const listening = lines.map((l) => JSON.parse(l)).find((e) => e.event === "listening");
  assert.equal(listening.url, server.url);
  assert.match(listening.msg, /^listening on ws:\/\//);
});

Deno.test("socp server counts failed logins and the blocks they start, and logs login_failure", async () => {
  await using server = await startServer({
    args: ["--log-format", "json", "--login-attempts", "2", "--login-block-seconds", "30"],
  });
  await using hana = await connectUser(server.url, "user5", { serverPub: server.pubkey });
  assert.ok(isAck("REGISTER_OK")(await registerUser(hana, "hana", "right")));
  const userId = hana.userId;
  const attempt = (password: string) =>
    loginUser(server.url, "hana", password, { serverPub: server.pubkey, key: "user5", userId })
      .then(async (user) => {
        await user.close();
        return "ok";
      }, (e) => (e instanceof LoginRefusedError ? e.code : String(e)));
  assert.equal(await attempt("wrong1"), "BAD_PASSWORD");
  assert.equal(await attempt("wrong2"), "BAD_PASSWORD");
  assert.equal(await attempt("right"), "LOGIN_BLOCKED");

  const samples = await scrape(httpBase(server));
  assert.equal(valueOf(samples, "socp_login_failures_total"), 2);
  assert.equal(valueOf(samples, "socp_login_blocks_total"), 1);
  assert.equal(valueOf(samples, "socp_errors_sent_total", { code: "BAD_PASSWORD" }), 2);
  assert.equal(valueOf(samples, "socp_errors_sent_total", { code: "LOGIN_BLOCKED" }), 1);
  const failures = server.logLines().filter((l) => l.includes('"event":"login_failure"'))
    .map((l) => JSON.parse(l));
  assert.equal(failures.length, 2);
  assert.deepEqual(failures.map((f) => f.blocked), [false, true]);
});
