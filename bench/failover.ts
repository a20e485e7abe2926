/**
 * Seconds from `kill -9` of a client's server to its first message delivered through another
 * server of the group, with the default server timings (a real `socp client` process that
 * learned its group from the server; a receiver on the surviving server). Repeated a few times;
 * prints each figure and the median.
 *
 *   deno run -A bench/failover.ts [--runs 3]
 *
 * @module
 */

import { parseArgs } from "node:util";
import {
  type ClientEvent,
  onlineEvent,
  readyClient,
  type ServerNode,
  startMesh,
  withTempDir,
  writeClientConfig,
} from "../tests/support/mod.ts";

const { values } = parseArgs({ args: Deno.args, options: { runs: { type: "string" } } });
const RUNS = Number(values.runs ?? "3");

function dm(text: string): (event: ClientEvent) => boolean {
  return (e) => e.event === "dm" && e.text === text;
}

const figures: number[] = [];
for (let run = 0; run < RUNS; run++) {
  await withTempDir("socp_bench_failover_", async (dir) => {
    await using mesh = await startMesh(3);
    const [a, b] = mesh.nodes as [ServerNode, ServerNode];
    const alice = await writeClientConfig(dir, "alice", "user0");
    const bob = await writeClientConfig(dir, "bob", "user1");
    await using receiver = await readyClient(b.url, bob.path);
    // Alice is given only her own server: she learns the group from it.
    await using sender = await readyClient(a.url, alice.path);
    await sender.waitFor(onlineEvent(bob));
    await receiver.waitFor(onlineEvent(alice));
    await sender.line("/tell bob warm-up");
    await receiver.waitFor(dm("warm-up"));

    const start = performance.now();
    await a.kill("SIGKILL");
    await sender.line("/tell bob after the kill");
    await receiver.waitFor(dm("after the kill"), 120_000);
    const seconds = (performance.now() - start) / 1000;
    figures.push(seconds);
    console.log(`run ${run + 1}: ${seconds.toFixed(2)} s from kill -9 to the first DM delivered`);
  });
}
const sorted = [...figures].sort((x, y) => x - y);
const median = sorted[Math.floor(sorted.length / 2)]!;
console.log(`median ${median.toFixed(2)} s over ${figures.length} runs (goal: under 2 s)`);
