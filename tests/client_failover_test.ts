/**
 * Failover of a real `socp client` process between two linked real servers: given both URLs
 * (`--server` twice), the client reconnects through the surviving server when its own is killed
 * with SIGKILL, says `reconnected via`, and a DM sent after the kill reaches a user on the
 * surviving server exactly once.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  type ClientEvent,
  FAST_HEARTBEAT_ARGS,
  onlineEvent,
  readyClient,
  type ServerNode,
  startMesh,
  withTempDir,
  writeClientConfig,
} from "./support/mod.ts";

/** Reconnecting may take a backoff round or two while the survivor notices the loss. */
const RECONNECT_TIMEOUT_MS = 30_000;

function dm(text: string): (event: ClientEvent) => boolean {
  return (e) => e.event === "dm" && e.text === text;
}

Deno.test({
  name:
    "a client given two servers reconnects through the other when its server is killed, and a DM sent after the kill arrives once",
  async fn() {
    await withTempDir("socp_test_failover_", async (dir) => {
      await using mesh = await startMesh(2, { args: FAST_HEARTBEAT_ARGS });
      const [a, b] = mesh.nodes as [ServerNode, ServerNode];
      const aliceConfig = await writeClientConfig(dir, "alice", "user0");
      const bobConfig = await writeClientConfig(dir, "bob", "user1");
      await using bob = await readyClient(b.url, bobConfig.path);
      await using alice = await readyClient(a.url, aliceConfig.path, {
        args: ["--server", b.url],
      });
      await alice.waitFor(onlineEvent(bobConfig));
      await bob.waitFor(onlineEvent(aliceConfig));
      await alice.line("/tell bob before the kill");
      await bob.waitFor(dm("before the kill"));

      const killed = await a.kill("SIGKILL");
      assert.equal(killed.signal, "SIGKILL");
      // Typed at once: the client may not have noticed yet (the frame then goes out again after
      // the reconnect) or may be reconnecting (the frame waits in its queue).
      await alice.line("/tell bob sent after the kill");
      const back = await alice.waitFor("reconnected", RECONNECT_TIMEOUT_MS);
      assert.equal(back.server, b.url);
      const lost = alice.events().find((e) => e.event === "disconnected");
      assert.equal(lost?.server, a.url);

      const got = await bob.waitFor(dm("sent after the kill"), RECONNECT_TIMEOUT_MS);
      assert.equal(got.from, aliceConfig.userId);
      assert.equal(got.verified, true);
      // A later message on the same path comes behind any copy of the first.
      await alice.line("/tell bob marker");
      await bob.waitFor(dm("marker"));
      const texts = bob.events().filter((e) => e.event === "dm").map((e) => e.text);
      assert.deepEqual(texts, ["before the kill", "sent after the kill", "marker"]);

      // The client carries on: /list through the new server shows both users, alice once.
      await alice.line("/list");
      const list = await alice.waitFor("list");
      const ids = (list.users as { user_id: string }[]).map((u) => u.user_id).sort();
      assert.deepEqual(ids, [aliceConfig.userId, bobConfig.userId].sort());
      assert.equal((await alice.close()).code, 0);
    });
  },
});

Deno.test({
  name:
    "a client given one server learns the others of its group from the server, remembers them, and fails over to them",
  async fn() {
    await withTempDir("socp_test_failover_", async (dir) => {
      await using mesh = await startMesh(2, { args: FAST_HEARTBEAT_ARGS });
      const [a, b] = mesh.nodes as [ServerNode, ServerNode];
      const carolConfig = await writeClientConfig(dir, "carol", "user2");
      await using carol = await readyClient(a.url, carolConfig.path);
      await a.kill("SIGKILL");
      const back = await carol.waitFor("reconnected", RECONNECT_TIMEOUT_MS);
      assert.equal(back.server, b.url);
      assert.equal((await carol.close()).code, 0);
      const config = JSON.parse(await Deno.readTextFile(carolConfig.path));
      assert.deepEqual(config.failover_servers?.toSorted(), [a.url, b.url].toSorted());
      assert.equal(config.servers[b.url].pubkey, b.pubkey, "B's key pinned from the group list");
    });
  },
});
