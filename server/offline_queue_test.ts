import assert from "node:assert/strict";
import { encodePublicKey } from "../shared/mod.ts";
import { openSqliteStore } from "../storage/mod.ts";
import { fixtureKeyPair } from "../tests/fixtures/keys.ts";
import { parseServerArgs } from "./config.ts";
import { type Delivery, Hub, type UserLink } from "./hub.ts";
import { silentLogger } from "./log.ts";
import { OfflineQueue } from "./offline_queue.ts";

Deno.test("`OfflineQueue.flush()` delivers in order and keeps what a vanished link did not get", async () => {
  await using store = await openSqliteStore(":memory:");
  const serverKeys = await fixtureKeyPair("server0");
  const hub = new Hub({
    identity: {
      serverId: crypto.randomUUID(),
      privateKey: serverKeys.privateKey,
      publicKey: serverKeys.publicKey,
      publicKeyText: encodePublicKey(serverKeys.publicKey),
    },
    store,
    log: silentLogger,
  });
  await hub.init();
  await using queue = new OfflineQueue(hub, parseServerArgs([], {}).config);
  hub.hooks = { online: (id) => queue.flush(id) };

  const userKeys = await fixtureKeyPair("user0");
  const recipient = crypto.randomUUID();
  const sender = crypto.randomUUID();
  await store.putUser({
    user_id: recipient,
    pubkey: encodePublicKey(userKeys.publicKey),
    privkey_store: "",
    pake_password: "",
    meta: "",
    version: 1,
    username: null,
    home_server: hub.serverId,
    updated_at: 1,
    registered_at: 0,
    deleted: false,
    proof: "",
  });
  for (let i = 0; i < 5; i++) {
    const d: Delivery = {
      type: "MSG_DIRECT",
      sender,
      recipient,
      ts: 1000 + i,
      payload: { ciphertext: `c${i}`, sender_pub: "k", content_sig: `s${i}` },
    };
    assert.equal(await queue.offline(d), "queued");
  }
  const stranger: Delivery = {
    type: "MSG_DIRECT",
    sender,
    recipient: crypto.randomUUID(),
    ts: 1,
    payload: {},
  };
  assert.equal(await queue.offline(stranger), "not_found", "unknown users are not queued");

  /** A link that drops (as a closing connection does) after `keep` deliveries. */
  const connect = async (keep: number) => {
    const got: number[] = [];
    const link: UserLink = {
      userId: recipient,
      sendText(text: string) {
        const frame = JSON.parse(text) as { type: string; ts: number };
        if (frame.type !== "USER_DELIVER") return;
        got.push(frame.ts);
        if (got.length === keep) void hub.removeLocalUser(link);
      },
      close() {},
    };
    await hub.addLocalUser(link, { userId: recipient, pubkey: undefined, displayName: undefined });
    await queue.flush(recipient);
    return got;
  };
  assert.deepEqual(await connect(2), [1000, 1001]);
  assert.equal(await store.queueLength(recipient), 3, "the rest stays queued");
  assert.deepEqual(await connect(99), [1002, 1003, 1004]);
  assert.equal(await store.queueLength(recipient), 0);
  assert.deepEqual(await connect(99), [], "delivered once");
});
