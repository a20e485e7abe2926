/**
 * File throughput between socp clients on one real `socp server` (run with `deno task bench`):
 * two real client processes send an 8 MiB file in AES-GCM chunks (both clients announce
 * `file-aes-gcm`), timed from `/file` to the receiver's saved-and-checked `file` event; then the
 * spec's 446-byte RSA-OAEP path on a smaller file, to a raw user that announces no capability
 * (timed to FILE_END, without the receiver's decryption, so the ratio flatters the old path).
 *
 *   deno run -A bench/file_throughput.ts [--mib 8] [--old-kib 128]
 *
 * @module
 */

import { parseArgs } from "node:util";
import { join } from "node:path";
import { sha256Hex } from "../shared/mod.ts";
import {
  connectUser,
  onlineEvent,
  readyClient,
  startServer,
  TIMEOUTS,
  writeClientConfig,
} from "../tests/support/mod.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { mib: { type: "string" }, "old-kib": { type: "string" } },
});
const AES_BYTES = Math.round(Number(values.mib ?? "8") * 1024 * 1024);
const OLD_BYTES = Math.round(Number(values["old-kib"] ?? "128") * 1024);
const LONG = 20 * TIMEOUTS.event;

function randomBytes(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 65_536) crypto.getRandomValues(out.subarray(i, i + 65_536));
  return out;
}

function mbps(bytes: number, ms: number): number {
  return bytes / 1e6 / (ms / 1000);
}

const dir = await Deno.makeTempDir({ prefix: "socp_bench_files_" });
try {
  await using server = await startServer();
  const aliceConfig = await writeClientConfig(dir, "alice", "user0");
  const bobConfig = await writeClientConfig(dir, "bob", "user1");
  await using alice = await readyClient(server.url, aliceConfig.path);
  await using bob = await readyClient(server.url, bobConfig.path);
  await alice.waitFor(onlineEvent(bobConfig));

  // AES-GCM path: client process to client process.
  const big = randomBytes(AES_BYTES);
  const bigPath = join(dir, "big.bin");
  await Deno.writeFile(bigPath, big);
  let start = performance.now();
  await alice.line(`/file bob ${bigPath}`);
  const got = await bob.waitFor("file", LONG);
  const aesMs = performance.now() - start;
  const sent = await alice.waitFor("sent", LONG);
  if (got.ok !== true) throw new Error(`Not received: ${JSON.stringify(got)}`);
  if ((await sha256Hex(await Deno.readFile(String(got.path)))) !== (await sha256Hex(big))) {
    throw new Error("The received file differs");
  }
  const aes = mbps(AES_BYTES, aesMs);
  console.log(
    `aes-256-gcm  ${(AES_BYTES / 1048576).toFixed(1)} MiB in ${(aesMs / 1000).toFixed(2)} s: ${
      aes.toFixed(2)
    } MB/s (${sent.parts} chunks)`,
  );

  // The spec's path: 446-byte RSA-OAEP chunks to a user without the capability.
  await using carol = await connectUser(server.url, "user2", { displayName: "carol" });
  await alice.waitFor((e) => e.event === "presence" && e.display_name === "carol");
  const small = randomBytes(OLD_BYTES);
  const smallPath = join(dir, "small.bin");
  await Deno.writeFile(smallPath, small);
  start = performance.now();
  await alice.line(`/file carol ${smallPath}`);
  await carol.next("FILE_END", LONG);
  const oldMs = performance.now() - start;
  const oldSent = await alice.waitFor("sent", LONG);
  const old = mbps(OLD_BYTES, oldMs);
  console.log(
    `rsa-oaep     ${(OLD_BYTES / 1024).toFixed(0)} KiB in ${(oldMs / 1000).toFixed(2)} s: ${
      (old * 1000).toFixed(1)
    } KB/s (${oldSent.parts} chunks)`,
  );
  console.log(`ratio: AES-GCM chunks are ${(aes / old).toFixed(0)}x the 446-byte path`);
} finally {
  await Deno.remove(dir, { recursive: true });
}
