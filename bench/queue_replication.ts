/**
 * The cost of replicated offline queues: DMs/s to an offline account through one server alone
 * and through a server whose group has three members (every queued DM is stored by all live
 * members before the sender hears QUEUED). Printed as a ratio measured in the same run.
 *
 *   deno run -A bench/queue_replication.ts [--dms 300]
 *
 * @module
 */

import { parseArgs } from "node:util";
import { fixtureKeyPair } from "../tests/fixtures/keys.ts";
import {
  connectUser,
  isAck,
  registerUser,
  startMesh,
  waitForAccounts,
} from "../tests/support/mod.ts";

const { values } = parseArgs({ args: Deno.args, options: { dms: { type: "string" } } });
const TOTAL = Number(values.dms ?? "300");
const WINDOW = 8;

async function queuedRate(members: number): Promise<number> {
  await using mesh = await startMesh(members, {
    args: ["--rate", "100000", "--burst", "100000", "--queue-max", "1000000"],
  });
  const [a] = mesh.nodes;
  const target = mesh.nodes[members - 1]!;
  const bob = await connectUser(target.url, "user1", { serverPub: target.pubkey });
  if (!isAck("REGISTER_OK")(await registerUser(bob, "bob", "bob password"))) {
    throw new Error("registration failed");
  }
  const bobId = bob.userId;
  await bob.close();
  await waitForAccounts(a!, "bob", (rows) => rows.length === 1, "the sender's server to know bob");
  await using alice = await connectUser(a!.url, "user0", { serverPub: a!.pubkey });
  const bobKeys = await fixtureKeyPair("user1");
  const start = performance.now();
  let acked = 0;
  for (let sent = 0; sent < TOTAL; sent++) {
    await alice.dm({ userId: bobId, keys: bobKeys }, `queued ${sent}`);
    if (sent - acked >= WINDOW) {
      await alice.next(isAck("QUEUED"), 60_000);
      acked++;
    }
  }
  while (acked < TOTAL) {
    await alice.next(isAck("QUEUED"), 60_000);
    acked++;
  }
  return TOTAL / ((performance.now() - start) / 1000);
}

const one = await queuedRate(1);
console.log(`queued DMs/s, 1 server:              ${one.toFixed(0)}`);
const three = await queuedRate(3);
console.log(`queued DMs/s, group of 3 (replicated): ${three.toFixed(0)}`);
console.log(`replicated / single: ${(three / one).toFixed(2)}`);
