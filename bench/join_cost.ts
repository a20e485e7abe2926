/**
 * What a join costs a socp server: N idle users connect, `--parallel` at a time (each with a
 * signed, fresh USER_HELLO, signed before the clock starts), and the run prints the time until
 * an already-connected user has every newcomer's advert, the
 * server's CPU per joining user (also in "signatures' worth" against the server's own sign time,
 * measured in the same run), the bytes an already-connected user receives per later join, the
 * server's resident memory and JS heap per connection, and this benchmark's own CPU per user
 * (it plays every client on the same cores).
 *
 *   deno run -A bench/join_cost.ts [--users 100,1000,2000] [--parallel 16] [--no-batch]
 *
 * @module
 */

import { parseArgs } from "node:util";
import { canonicalBytes, rsa, type Transport, webSocketTransport } from "../shared/mod.ts";
import { installRsaBackend } from "../shared/openssl_rsa.ts";
import { fixtureKeyPair } from "../tests/fixtures/keys.ts";
import { startServer } from "../tests/support/mod.ts";
import { cpuSeconds, helloText, rssKb } from "./_support.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    users: { type: "string" },
    "no-batch": { type: "boolean" },
    parallel: { type: "string" },
  },
});
/** Users connecting at the same time (each waits for its ACK before the next takes its place). */
const PARALLEL = Number(values.parallel ?? "16");
const SIZES = (values.users ?? "100,1000,2000").split(",").map(Number);
/**
 * The capabilities socp's client announces; `--no-batch` leaves out `presence-batch`, as
 * other implementations' clients do (then every presence frame goes alone).
 */
const CAPS = values["no-batch"] ? ["file-aes-gcm"] : ["file-aes-gcm", "presence-batch"];

const backend = installRsaBackend("client", { log: () => {} });

/** The server's JavaScript heap in use, in KB, from its /metrics. */
async function heapKb(wsUrl: string): Promise<number> {
  const response = await fetch(`${wsUrl.replace(/^ws/, "http")}/metrics`);
  const text = await response.text();
  return Number(/^socp_heap_used_bytes (\d+)/m.exec(text)?.[1] ?? "0") / 1024;
}

interface Conn {
  transport: Transport;
  bytes: number;
  acked: Promise<void>;
  /** USER_ADVERTISE frames received (also inside PRESENCE_BATCH frames). */
  adverts: number;
  /** Called on every frame. */
  onFrame?: () => void;
}

/** A signed, fresh USER_HELLO for a new user id (built before the clock starts). */
async function newHello(): Promise<string> {
  const id = crypto.randomUUID();
  return await helloText(await fixtureKeyPair("user3"), id, {
    displayName: id.slice(0, 8),
    caps: CAPS,
  });
}

async function join(url: string, hello: string): Promise<Conn> {
  const ws = new WebSocket(url);
  const opened = new Promise<void>((resolve, reject) => {
    ws.addEventListener("open", () => resolve(), { once: true });
    ws.addEventListener("error", () => reject(new Error("connect failed")), { once: true });
  });
  const transport = webSocketTransport(ws);
  const conn: Conn = { transport, bytes: 0, acked: Promise.resolve(), adverts: 0 };
  conn.acked = new Promise<void>((resolve, reject) => {
    (async () => {
      for await (const text of transport) {
        conn.bytes += text.length;
        conn.adverts += text.split('"type":"USER_ADVERTISE"').length - 1;
        conn.onFrame?.();
        if (text.includes('"USER_HELLO_OK"')) resolve();
        if (text.includes('"ERROR"') && !text.includes("USER_HELLO_OK")) {
          reject(new Error(`refused: ${text.slice(0, 200)}`));
        }
      }
    })().catch(reject);
  });
  await opened;
  transport.send(hello);
  return conn;
}

async function serverSignSeconds(): Promise<number> {
  const { privateKey } = await fixtureKeyPair("server0");
  const data = canonicalBytes({ bench: "x".repeat(300) });
  const n = 40;
  const start = performance.now();
  for (let i = 0; i < n; i++) await rsa().sign(privateKey, data);
  return (performance.now() - start) / 1000 / n;
}

const signSeconds = await serverSignSeconds();
console.log(
  `rsa backend: ${backend.description}; one RSA-4096 sign here: ${
    (signSeconds * 1000).toFixed(1)
  } ms`,
);
console.log(`clients' caps: ${CAPS.join(", ")}`);
console.log(
  `${PARALLEL} users connect at a time; hellos are signed before the clock starts (each user ` +
    `signs its own on its own machine)`,
);
console.log(
  "users  time     cpu/user   ≈signatures/user  bytes to a watcher per join  RSS/conn" +
    "                      bench cpu/user",
);
for (const n of SIZES) {
  await using server = await startServer({
    args: ["--rate", "100000", "--burst", "100000"],
    env: { SOCP_RSA: backend.name },
  });
  const pid = server.process.pid;
  const conns: Conn[] = [];
  const watcher = await join(server.url, await newHello());
  await watcher.acked;
  conns.push(watcher);
  const hellos = await Promise.all(Array.from({ length: n }, () => newHello()));
  const rssBefore = await rssKb(pid);
  const heapBefore = await heapKb(server.url);
  const cpuBefore = await cpuSeconds(pid);
  const benchBefore = await cpuSeconds(Deno.pid);
  const bytesBefore = watcher.bytes;
  const start = performance.now();
  let next = 0;
  await Promise.all(Array.from({ length: PARALLEL }, async () => {
    while (next < n) {
      const c = await join(server.url, hellos[next++]!);
      conns.push(c);
      await c.acked;
    }
  }));
  // Connected means announced: the watcher (alone before them, so its catch-up was empty) has
  // every newcomer's advert.
  await new Promise<void>((resolve) => {
    watcher.onFrame = () => {
      if (watcher.adverts >= n) resolve();
    };
    watcher.onFrame();
  });
  const seconds = (performance.now() - start) / 1000;
  const cpu = (await cpuSeconds(pid)) - cpuBefore;
  const benchCpu = (await cpuSeconds(Deno.pid)) - benchBefore;
  const perJoinBytes = (watcher.bytes - bytesBefore) / n;
  const rss = ((await rssKb(pid)) - rssBefore) / n;
  const heap = ((await heapKb(server.url)) - heapBefore) / n;
  console.log(
    `${String(n).padStart(5)}  ${seconds.toFixed(1).padStart(5)} s  ${
      (cpu / n * 1000).toFixed(1).padStart(6)
    } ms  ${(cpu / n / signSeconds).toFixed(2).padStart(10)}        ${
      perJoinBytes.toFixed(0).padStart(10)
    } B                ${rss.toFixed(1)} KB (JS heap ${heap.toFixed(1)} KB)   ${
      (benchCpu / n * 1000).toFixed(1)
    } ms`,
  );
  for (const c of conns) c.transport.close(1000, "");
}
