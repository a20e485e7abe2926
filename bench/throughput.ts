/**
 * DM throughput and latency through real `socp server` processes, printed next to the raw
 * RSA-4096 sign rate of this machine on all cores, with WebCrypto and with OpenSSL (the servers'
 * default backend when libcrypto.so.3 loads; `SOCP_RSA=webcrypto` in the environment makes them
 * use WebCrypto) (run with `deno task bench`).
 *
 * Senders pipeline pre-built MSG_DIRECT frames (at most WINDOW outstanding each); receivers
 * count USER_DELIVER frames. Every delivered DM costs the receiving server one transport
 * signature (and a cross-server DM one more at the sending server), so the sign rate bounds
 * throughput. Receivers here do not decrypt or verify: that is client work, not server work.
 *
 *   deno run -A bench/throughput.ts [--dms 2000] [--pairs 4]
 *
 * @module
 */

import { parseArgs } from "node:util";
import {
  canonicalBytes,
  encodePublicKey,
  encryptText,
  type RsaBackend,
  serializeEnvelope,
  signContent,
  signedEnvelope,
  type Transport,
  webCryptoBackend,
  webSocketTransport,
} from "../shared/mod.ts";
import { installRsaBackend, loadOpenSslBackend } from "../shared/openssl_rsa.ts";
import { fixtureKeyPair, USER_KEYS } from "../tests/fixtures/keys.ts";
import { type ServerNode, startServer } from "../tests/support/mod.ts";
import { renderBootstrap } from "../server/mod.ts";
import { cpuSeconds, helloText } from "./_support.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { dms: { type: "string" }, pairs: { type: "string" } },
});
const TOTAL = Number(values.dms ?? "2000");
const PAIRS = Number(values.pairs ?? "4");
const WINDOW = 16;
/** Length of the paced (half the sign limit) phase. */
const PACED_SECONDS = 8;

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/**
 * Signs per second with `backend`, 4 per core in flight, for about `seconds`: the machine's
 * limit (the OpenSSL backend is loaded with 4 calls per core allowed in flight for this).
 */
async function signRate(backend: RsaBackend, seconds = 2): Promise<number> {
  const { privateKey } = await fixtureKeyPair("user0");
  const data = canonicalBytes({ bench: "x".repeat(600) });
  await backend.sign(privateKey, data); // parse and warm up outside the timing
  const until = performance.now() + seconds * 1000;
  let done = 0;
  const start = performance.now();
  const worker = async () => {
    while (performance.now() < until) {
      await backend.sign(privateKey, data);
      done++;
    }
  };
  await Promise.all(Array.from({ length: 4 * navigator.hardwareConcurrency }, worker));
  return done / ((performance.now() - start) / 1000);
}

interface User {
  id: string;
  transport: Transport;
  frames: AsyncIterator<string>;
}

async function connect(url: string, keyIndex: number): Promise<User> {
  const keys = await fixtureKeyPair(USER_KEYS[keyIndex % USER_KEYS.length]!);
  const id = crypto.randomUUID();
  const ws = new WebSocket(url);
  const transport = webSocketTransport(ws);
  const frames = transport[Symbol.asyncIterator]();
  transport.send(await helloText(keys, id, { displayName: `b${keyIndex}` }));
  for (;;) {
    const next = await frames.next();
    if (next.done) throw new Error("closed before ACK");
    if (next.value.includes("USER_HELLO_OK")) break;
  }
  return { id, transport, frames };
}

/** Waits until `receiver` has seen USER_ADVERTISE for `userId` (so routing knows it). */
async function waitForAdvert(receiver: User, userId: string): Promise<void> {
  for (;;) {
    const next = await receiver.frames.next();
    if (next.done) throw new Error("closed");
    if (next.value.includes('"USER_ADVERTISE"') && next.value.includes(userId)) return;
  }
}

interface Result {
  rate: number;
  p50: number;
  p99: number;
  idleP50: number;
  idleP99: number;
  /** Offered rate of the paced phase (DMs/s), and its latencies. */
  pacedRate: number;
  pacedP50: number;
  pacedP99: number;
  /** DMs of the paced phase that arrived (all of them, or the run fails). */
  pacedCount: number;
}

async function run(
  senderUrl: string,
  receiverUrl: string,
  pacedRate: number,
  servers: ServerNode[],
): Promise<Result> {
  const senders: User[] = [];
  const receivers: User[] = [];
  for (let i = 0; i < PAIRS; i++) receivers.push(await connect(receiverUrl, 2 * i + 1));
  for (let i = 0; i < PAIRS; i++) {
    const s = await connect(senderUrl, 2 * i);
    senders.push(s);
    // Both servers must know both users before the timing starts.
    await waitForAdvert(receivers[i]!, s.id);
    await waitForAdvert(s, receivers[i]!.id);
  }
  // One real ciphertext per pair. Every DM is a spec-conformant frame built before the clock
  // starts: its own ts, its own content_sig and the sender's transport signature.
  const templates = await Promise.all(senders.map(async (s, i) => {
    const keys = await fixtureKeyPair(USER_KEYS[(2 * i) % USER_KEYS.length]!);
    const to = receivers[i]!;
    const toKeys = await fixtureKeyPair(USER_KEYS[(2 * i + 1) % USER_KEYS.length]!);
    const ciphertext = await encryptText(toKeys.publicKey, "benchmark message");
    return { from: s.id, to: to.id, keys, ciphertext, senderPub: encodePublicKey(keys.publicKey) };
  }));
  let nextTs = Date.now() + 1_000_000;
  /** `count` signed MSG_DIRECT texts from pair `i`, with their ts. */
  async function frames(i: number, count: number): Promise<{ ts: number; text: string }[]> {
    const t = templates[i]!;
    const out: { ts: number; text: string }[] = [];
    for (let n = 0; n < count; n++) {
      const ts = nextTs++;
      const contentSig = await signContent(t.keys.privateKey, {
        ciphertext: t.ciphertext,
        from: t.from,
        to: t.to,
        ts,
      });
      const env = await signedEnvelope(t.keys.privateKey, {
        type: "MSG_DIRECT",
        from: t.from,
        to: t.to,
        ts,
        payload: { ciphertext: t.ciphertext, sender_pub: t.senderPub, content_sig: contentSig },
      });
      out.push({ ts, text: serializeEnvelope(env) });
    }
    return out;
  }
  const sentAt = new Map<number, number>();
  const latencies: number[] = [];

  /** Reads `count` USER_DELIVER frames, recording each one's latency from its send time. */
  async function receive(receiver: User, count: number, onEach?: () => void): Promise<void> {
    for (let received = 0; received < count;) {
      const next = await receiver.frames.next();
      if (next.done) throw new Error("receiver closed");
      if (!next.value.startsWith('{"type":"USER_DELIVER"')) continue;
      const ts = Number(/"ts":(\d+)/.exec(next.value)?.[1]);
      const at = sentAt.get(ts);
      if (at !== undefined) {
        latencies.push(performance.now() - at);
        sentAt.delete(ts);
      }
      received++;
      onEach?.();
    }
  }

  /** Closed loop: `window` DMs outstanding per pair; `onStart` runs once the frames are built. */
  async function phase(
    count: number,
    window: number,
    onStart?: () => Promise<void>,
  ): Promise<number> {
    const perPair = Math.ceil(count / PAIRS);
    const prepared = await Promise.all(senders.map((_, i) => frames(i, perPair)));
    await onStart?.();
    const start = performance.now();
    const pairs = senders.map(async (sender, i) => {
      const receiver = receivers[i]!;
      const batch = prepared[i]!;
      let outstanding = 0;
      let wake: (() => void) | undefined;
      const reader = receive(receiver, perPair, () => {
        outstanding--;
        wake?.();
      });
      for (let n = 0; n < perPair; n++) {
        while (outstanding >= window) await new Promise<void>((r) => (wake = r));
        const { ts, text } = batch[n]!;
        sentAt.set(ts, performance.now());
        outstanding++;
        sender.transport.send(text);
      }
      await reader;
    });
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error("no progress for 120 s (DMs lost?)")), 120_000);
    });
    try {
      await Promise.race([Promise.all(pairs), deadline]);
    } finally {
      clearTimeout(timer);
    }
    return (perPair * PAIRS) / ((performance.now() - start) / 1000);
  }

  /**
   * Open loop: `count` DMs offered at `rate` per second in total (each pair in turn), sent on
   * schedule whether or not earlier ones arrived; latency is measured from the scheduled time,
   * so a stall shows up in the tail instead of slowing the offered load.
   */
  async function paced(count: number, rate: number): Promise<void> {
    const perPair = Math.ceil(count / PAIRS);
    const prepared = await Promise.all(senders.map((_, i) => frames(i, perPair)));
    const readers = receivers.map((receiver) => receive(receiver, perPair));
    const interval = 1000 / rate;
    const start = performance.now();
    for (let n = 0; n < perPair * PAIRS; n++) {
      const due = start + n * interval;
      const wait = due - performance.now();
      if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait));
      const i = n % PAIRS;
      const { ts, text } = prepared[i]![Math.floor(n / PAIRS)]!;
      sentAt.set(ts, due);
      senders[i]!.transport.send(text);
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error("paced DMs missing after 120 s")), 120_000);
    });
    try {
      await Promise.race([Promise.all(readers), deadline]);
    } finally {
      clearTimeout(timer);
    }
  }

  await phase(PAIRS * 20, WINDOW); // warm-up
  latencies.length = 0;
  await phase(Math.min(200, TOTAL), 1); // one at a time per pair: latency without queueing
  const idle = [...latencies].sort((a, b) => a - b);
  latencies.length = 0;
  const pacedCount = Math.max(PAIRS, Math.round(pacedRate * PACED_SECONDS));
  await paced(pacedCount, pacedRate);
  const pacedLatencies = [...latencies].sort((a, b) => a - b);
  latencies.length = 0;
  let cpuBefore: number[] = [];
  let benchBefore = 0;
  const rate = await phase(TOTAL, WINDOW, async () => {
    cpuBefore = await Promise.all(servers.map((n) => cpuSeconds(n.process.pid)));
    benchBefore = await cpuSeconds(Deno.pid);
  });
  const cpuAfter = await Promise.all(servers.map((n) => cpuSeconds(n.process.pid)));
  const benchCpu = (await cpuSeconds(Deno.pid)) - benchBefore;
  const perDm = (seconds: number) => `${(seconds / TOTAL * 1000).toFixed(2)} ms`;
  cpuReport = `${"".padEnd(18)} CPU per DM (saturated): ${
    servers.map((_, i) => `server ${i + 1} ${perDm(cpuAfter[i]! - cpuBefore[i]!)}`).join(", ")
  }, this benchmark's own users ${perDm(benchCpu)}`;
  const loaded = [...latencies].sort((a, b) => a - b);
  for (const u of [...senders, ...receivers]) u.transport.close(1000, "");
  await Promise.all([...senders, ...receivers].map((u) => u.transport.closed));
  return {
    rate,
    p50: percentile(loaded, 50),
    p99: percentile(loaded, 99),
    idleP50: percentile(idle, 50),
    idleP99: percentile(idle, 99),
    pacedRate,
    pacedP50: percentile(pacedLatencies, 50),
    pacedP99: percentile(pacedLatencies, 99),
    pacedCount: pacedLatencies.length,
  };
}

/**
 * One result line: the rate against `limit` (the sign rate this topology allows: all of it
 * for one server, half across one hop, where each DM is signed twice), then the latencies.
 */
function line(label: string, r: Result, limit: number, limitName: string): string {
  return `${label.padEnd(18)} ${r.rate.toFixed(0).padStart(6)} DMs/s = ${
    (r.rate / limit).toFixed(2)
  } × ${limitName} (goal ≥ 0.90)\n` +
    `${"".padEnd(18)} paced at ${r.pacedRate.toFixed(0)} DMs/s (half that limit): p50 ${
      r.pacedP50.toFixed(1)
    } ms, p99 ${r.pacedP99.toFixed(1)} ms (goal ≤ 25 ms; ${r.pacedCount} DMs)\n` +
    `${"".padEnd(18)} saturated: p50 ${r.p50.toFixed(1)} ms, p99 ${r.p99.toFixed(1)} ms;` +
    ` one at a time: p50 ${r.idleP50.toFixed(1)} ms, p99 ${r.idleP99.toFixed(1)} ms`;
}

// The bench's own users sign with the fastest backend too (their frames are built untimed).
installRsaBackend("client", { log: () => {} });
const cores = navigator.hardwareConcurrency;
const webCryptoSigns = await signRate(webCryptoBackend);
console.log(
  `RSA-4096 PSS sign rate on this machine (${cores} cores, concurrent, ~2 s each):\n` +
    `  webcrypto ${webCryptoSigns.toFixed(0).padStart(6)} signs/s`,
);
let openSslSigns: number | undefined;
{
  await using openssl = loadOpenSslBackend({ maxInFlight: 4 * cores });
  if (openssl === undefined) {
    console.log("  openssl   not available (libcrypto.so.3 missing or no --allow-ffi)");
  } else {
    openSslSigns = await signRate(openssl);
    console.log(
      `  openssl   ${openSslSigns.toFixed(0).padStart(6)} signs/s  (${
        (openSslSigns / webCryptoSigns).toFixed(2)
      } × webcrypto; ${openssl.version})`,
    );
  }
}
console.log(`${TOTAL} DMs over ${PAIRS} sender/receiver pairs, window ${WINDOW} per pair`);

/** The backend a server reported in its `rsa backend: …` log line. */
async function backendOf(server: ServerNode): Promise<string> {
  const line = await server.waitForLog(/rsa backend: /);
  return line.slice(line.indexOf("rsa backend: ") + "rsa backend: ".length);
}

/** The limit every ratio is against: OpenSSL's all-core sign rate, else WebCrypto's. */
const limit = openSslSigns ?? webCryptoSigns;
const limitName = openSslSigns === undefined ? "webcrypto sign rate" : "openssl sign rate";

/** CPU use of the last run's saturated phase, printed after its result line. */
let cpuReport = "";

let one: Result;
{
  await using server = await startServer({ args: ["--rate", "100000", "--burst", "100000"] });
  console.log(`servers' rsa backend: ${await backendOf(server)}\n`);
  one = await run(server.url, server.url, limit / 2, [server]);
}
console.log(line("1 server", one, limit, limitName));
console.log(cpuReport);

{
  const a: ServerNode = await startServer({
    serverKey: "server1",
    args: ["--rate", "100000", "--burst", "100000"],
  });
  await using _a = a;
  const dir = await Deno.makeTempDir({ prefix: "socp-bench-" });
  try {
    const bootstrap = `${dir}/bootstrap.yaml`;
    await Deno.writeTextFile(
      bootstrap,
      renderBootstrap([{ host: "127.0.0.1", port: a.port, pubkey: a.pubkey }]),
    );
    await using b = await startServer({
      serverKey: "server2",
      args: ["--bootstrap", bootstrap, "--rate", "100000", "--burst", "100000"],
    });
    // Across one hop each DM is signed by both servers: the limit is half the sign rate.
    const two = await run(a.url, b.url, limit / 4, [a, b]);
    console.log(line("2 servers (1 hop)", two, limit / 2, `half the ${limitName}`));
    console.log(cpuReport);
    console.log(`\ncross-server / single-server throughput: ${(two.rate / one.rate).toFixed(2)}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
