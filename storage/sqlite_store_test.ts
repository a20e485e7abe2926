import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { NameTakenError, openSqliteStore, type UserRecord } from "./mod.ts";

function user(overrides: Partial<UserRecord> & Pick<UserRecord, "user_id">): UserRecord {
  return {
    pubkey: `pub-${overrides.user_id}`,
    privkey_store: '{"blob":"x"}',
    pake_password: '{"verifier":"y"}',
    meta: '{"display_name":"Someone"}',
    version: 1,
    username: null,
    home_server: "server-a",
    updated_at: 1_000,
    registered_at: 0,
    deleted: false,
    proof: "",
    ...overrides,
  };
}

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "socp_storage_test_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("`openSqliteStore()` returns undefined for a setting never set", async () => {
  await using store = await openSqliteStore(":memory:");
  assert.equal(await store.getSetting("server_id"), undefined);
});

Deno.test("`openSqliteStore()` round-trips and overwrites settings", async () => {
  await using store = await openSqliteStore(":memory:");
  await store.setSetting("server_id", "one");
  assert.equal(await store.getSetting("server_id"), "one");
  await store.setSetting("server_id", "two");
  assert.equal(await store.getSetting("server_id"), "two");
  await store.setSetting("empty", "");
  assert.equal(await store.getSetting("empty"), "");
});

Deno.test("`openSqliteStore()` round-trips every user field", async () => {
  await using store = await openSqliteStore(":memory:");
  const alice = user({ user_id: "u-alice", username: "Alice", version: 3, updated_at: 42 });
  const keyFile = user({
    user_id: "u-key",
    privkey_store: "",
    pake_password: "",
    meta: "",
    username: null,
    home_server: null,
  });
  await store.putUser(alice);
  await store.putUser(keyFile);
  assert.deepEqual(await store.getUser("u-alice"), alice);
  assert.deepEqual(await store.getUser("u-key"), keyFile);
  assert.equal(await store.getUser("u-nobody"), undefined);
});

Deno.test("`openSqliteStore()` replaces a user row with the same id", async () => {
  await using store = await openSqliteStore(":memory:");
  await store.putUser(user({ user_id: "u1", username: "alice" }));
  const renamed = user({ user_id: "u1", username: "alicia", version: 2, meta: "{}" });
  await store.putUser(renamed);
  assert.deepEqual(await store.getUser("u1"), renamed);
  assert.equal(await store.getUserByName("alice"), undefined);
  assert.deepEqual(await store.getUserByName("ALICIA"), renamed);
  assert.equal((await store.listUsers()).length, 1);
});

Deno.test("`openSqliteStore()` finds a user by name in any case", async () => {
  await using store = await openSqliteStore(":memory:");
  const alice = user({ user_id: "u1", username: "Alice" });
  await store.putUser(alice);
  assert.deepEqual(await store.getUserByName("alice"), alice);
  assert.deepEqual(await store.getUserByName("ALICE"), alice);
  assert.deepEqual(await store.getUserByName("Alice"), alice);
  assert.equal(await store.getUserByName("bob"), undefined);
});

Deno.test("`openSqliteStore()` folds non-ASCII letters when comparing names", async () => {
  await using store = await openSqliteStore(":memory:");
  const emile = user({ user_id: "u1", username: "Émile" });
  await store.putUser(emile);
  assert.deepEqual(await store.getUserByName("émile"), emile);
  // Decomposed "e" + combining acute accent is the same name.
  assert.deepEqual(await store.getUserByName("E\u0301MILE"), emile);
  await assert.rejects(
    store.putUser(user({ user_id: "u2", username: "ÉMILE" })),
    NameTakenError,
  );
});

Deno.test("`openSqliteStore()` refuses a second live account with the same name in another case", async () => {
  await using store = await openSqliteStore(":memory:");
  const alice = user({ user_id: "u1", username: "alice" });
  await store.putUser(alice);
  await assert.rejects(
    store.putUser(user({ user_id: "u2", username: "ALICE" })),
    (error: unknown) => {
      assert.ok(error instanceof NameTakenError);
      assert.equal(error.name, "NameTakenError");
      assert.equal(error.username, "ALICE");
      assert.ok(error.cause instanceof Error);
      return true;
    },
  );
  // The holder is untouched and the newcomer was not written.
  assert.deepEqual(await store.getUser("u1"), alice);
  assert.equal(await store.getUser("u2"), undefined);
});

Deno.test("`openSqliteStore()` refuses renaming a user onto a name another live user holds", async () => {
  await using store = await openSqliteStore(":memory:");
  await store.putUser(user({ user_id: "u1", username: "alice" }));
  const bob = user({ user_id: "u2", username: "bob" });
  await store.putUser(bob);
  await assert.rejects(
    store.putUser(user({ user_id: "u2", username: "Alice", version: 2 })),
    NameTakenError,
  );
  assert.deepEqual(await store.getUser("u2"), bob);
});

Deno.test("`openSqliteStore()` lets a user rewrite its own name in another case", async () => {
  await using store = await openSqliteStore(":memory:");
  await store.putUser(user({ user_id: "u1", username: "alice" }));
  const renamed = user({ user_id: "u1", username: "ALICE", version: 2 });
  await store.putUser(renamed);
  assert.deepEqual(await store.getUserByName("alice"), renamed);
});

Deno.test("`openSqliteStore()` allows any number of users without a name", async () => {
  await using store = await openSqliteStore(":memory:");
  await store.putUser(user({ user_id: "u1" }));
  await store.putUser(user({ user_id: "u2" }));
  assert.equal((await store.listUsers()).length, 2);
});

Deno.test("`openSqliteStore()` frees the name of a deleted (tombstoned) user", async () => {
  await using store = await openSqliteStore(":memory:");
  await store.putUser(user({ user_id: "u1", username: "alice" }));
  const tombstone = user({ user_id: "u1", username: "alice", deleted: true, version: 2 });
  await store.putUser(tombstone);
  assert.equal(await store.getUserByName("alice"), undefined);
  assert.deepEqual(await store.getUser("u1"), tombstone);

  const newcomer = user({ user_id: "u2", username: "Alice" });
  await store.putUser(newcomer);
  assert.deepEqual(await store.getUserByName("alice"), newcomer);

  // Reviving the tombstone now collides with the new holder.
  await assert.rejects(
    store.putUser(user({ user_id: "u1", username: "alice", version: 3 })),
    NameTakenError,
  );
  // A second tombstone under the same name is fine.
  await store.putUser(user({ user_id: "u3", username: "ALICE", deleted: true }));
});

Deno.test("`openSqliteStore()` lists every user, tombstones included", async () => {
  await using store = await openSqliteStore(":memory:");
  assert.deepEqual(await store.listUsers(), []);
  const a = user({ user_id: "u-a", username: "a" });
  const b = user({ user_id: "u-b", username: "b", deleted: true });
  const c = user({ user_id: "u-c" });
  await store.putUser(c);
  await store.putUser(a);
  await store.putUser(b);
  const listed = await store.listUsers();
  assert.deepEqual(
    listed.toSorted((x, y) => x.user_id.localeCompare(y.user_id)),
    [a, b, c],
  );
});

Deno.test("`openSqliteStore()` puts, replaces and gets groups", async () => {
  await using store = await openSqliteStore(":memory:");
  assert.equal(await store.getGroup("g1"), undefined);
  const group = {
    group_id: "g1",
    creator_id: "u1",
    created_at: 5,
    meta: '{"title":"x"}',
    version: 1,
  };
  await store.putGroup(group);
  assert.deepEqual(await store.getGroup("g1"), group);
  const bumped = { ...group, meta: '{"title":"y"}', version: 2 };
  await store.putGroup(bumped);
  assert.deepEqual(await store.getGroup("g1"), bumped);
});

Deno.test("`openSqliteStore()` puts, lists, replaces and removes group members", async () => {
  await using store = await openSqliteStore(":memory:");
  await store.putGroup({ group_id: "g1", creator_id: "u1", created_at: 1, meta: "", version: 1 });
  const owner = { group_id: "g1", member_id: "u1", role: "owner", wrapped_key: "k1", added_at: 1 };
  const member = {
    group_id: "g1",
    member_id: "u2",
    role: "member",
    wrapped_key: "k2",
    added_at: 2,
  };
  const elsewhere = {
    group_id: "g2",
    member_id: "u1",
    role: "member",
    wrapped_key: "k3",
    added_at: 3,
  };
  await store.putMember(member);
  await store.putMember(owner);
  await store.putMember(elsewhere);
  assert.deepEqual(await store.listMembers("g1"), [owner, member]);
  assert.deepEqual(await store.listMembers("g2"), [elsewhere]);
  assert.deepEqual(await store.listMembers("g-none"), []);

  const rekeyed = { ...member, wrapped_key: "k2-new" };
  await store.putMember(rekeyed);
  assert.deepEqual(await store.listMembers("g1"), [owner, rekeyed]);

  // Several at once, in one transaction; an insert and a replacement.
  const third = { ...member, member_id: "u3", wrapped_key: "k4", added_at: 4 };
  await store.putMembers([third, { ...rekeyed, wrapped_key: "k2-again" }]);
  assert.deepEqual(await store.listMembers("g1"), [
    owner,
    { ...rekeyed, wrapped_key: "k2-again" },
    third,
  ]);
  await store.putMembers([]);
  await store.removeMember("g1", "u3");
  await store.putMember(rekeyed);

  await store.removeMember("g1", "u2");
  assert.deepEqual(await store.listMembers("g1"), [owner]);
  await store.removeMember("g1", "u-absent");
  assert.deepEqual(await store.listMembers("g1"), [owner]);
  assert.deepEqual(await store.listMembers("g2"), [elsewhere]);
});

Deno.test("`openSqliteStore()` puts, replaces and lists peers", async () => {
  await using store = await openSqliteStore(":memory:");
  assert.deepEqual(await store.listPeers(), []);
  const b = { server_id: "s-b", host: "10.0.0.2", port: 9001, pubkey: "pb", last_seen: 10 };
  const a = { server_id: "s-a", host: "127.0.0.1", port: 9000, pubkey: "pa", last_seen: 20 };
  await store.putPeer(b);
  await store.putPeer(a);
  assert.deepEqual(await store.listPeers(), [a, b]);
  const moved = { ...b, host: "10.0.0.3", port: 9002, last_seen: 30 };
  await store.putPeer(moved);
  assert.deepEqual(await store.listPeers(), [a, moved]);
});

Deno.test("`openSqliteStore()` returns a user's queue oldest first with increasing seqs", async () => {
  await using store = await openSqliteStore(":memory:");
  const s1 = await store.enqueue({
    recipient: "bob",
    sender: "a",
    frame: '{"n":1}',
    queued_at: 30,
  });
  const s2 = await store.enqueue({
    recipient: "carol",
    sender: "a",
    frame: '{"n":2}',
    queued_at: 10,
  });
  const s3 = await store.enqueue({
    recipient: "bob",
    sender: "c",
    frame: '{"n":3}',
    queued_at: 20,
  });
  assert.ok(s1 < s2 && s2 < s3);
  assert.deepEqual(await store.listQueue("bob"), [
    { seq: s1, recipient: "bob", sender: "a", frame: '{"n":1}', queued_at: 30, entry_id: null },
    { seq: s3, recipient: "bob", sender: "c", frame: '{"n":3}', queued_at: 20, entry_id: null },
  ]);
  assert.deepEqual(await store.listQueue("carol"), [
    { seq: s2, recipient: "carol", sender: "a", frame: '{"n":2}', queued_at: 10, entry_id: null },
  ]);
  assert.deepEqual(await store.listQueue("nobody"), []);
});

Deno.test("`openSqliteStore()` counts queued frames per recipient and in all", async () => {
  await using store = await openSqliteStore(":memory:");
  assert.equal(await store.queueLength("bob"), 0);
  assert.equal(await store.queueSize(), 0);
  for (let i = 0; i < 3; i++) {
    await store.enqueue({ recipient: "bob", sender: "a", frame: "{}", queued_at: i });
  }
  await store.enqueue({ recipient: "carol", sender: "a", frame: "{}", queued_at: 0 });
  assert.equal(await store.queueLength("bob"), 3);
  assert.equal(await store.queueLength("carol"), 1);
  assert.equal(await store.queueSize(), 4);
});

Deno.test("`openSqliteStore()` deletes queued frames by seq only", async () => {
  await using store = await openSqliteStore(":memory:");
  const seqs: number[] = [];
  for (let i = 0; i < 4; i++) {
    seqs.push(await store.enqueue({ recipient: "bob", sender: "a", frame: `${i}`, queued_at: i }));
  }
  const [s0, s1, s2, s3] = seqs;
  assert.ok(s0 !== undefined && s1 !== undefined && s2 !== undefined && s3 !== undefined);
  await store.deleteQueued([s0, s2, 999_999]);
  assert.deepEqual((await store.listQueue("bob")).map((f) => f.seq), [s1, s3]);
  await store.deleteQueued([]);
  assert.equal(await store.queueLength("bob"), 2);
  await assert.rejects(store.deleteQueued([1.5]), TypeError);
});

Deno.test("`openSqliteStore()` clears one user's queue and leaves others", async () => {
  await using store = await openSqliteStore(":memory:");
  await store.enqueue({ recipient: "bob", sender: "a", frame: "{}", queued_at: 1 });
  await store.enqueue({ recipient: "bob", sender: "a", frame: "{}", queued_at: 2 });
  await store.enqueue({ recipient: "carol", sender: "a", frame: "{}", queued_at: 3 });
  await store.clearQueue("bob");
  assert.equal(await store.queueLength("bob"), 0);
  assert.equal(await store.queueLength("carol"), 1);
});

Deno.test("`openSqliteStore()` prunes frames queued strictly before a time and counts them", async () => {
  await using store = await openSqliteStore(":memory:");
  await store.enqueue({ recipient: "bob", sender: "a", frame: "old", queued_at: 100 });
  await store.enqueue({ recipient: "carol", sender: "a", frame: "old", queued_at: 150 });
  await store.enqueue({ recipient: "bob", sender: "a", frame: "edge", queued_at: 200 });
  await store.enqueue({ recipient: "bob", sender: "a", frame: "new", queued_at: 300 });
  assert.equal(await store.pruneQueue(200), 2);
  assert.deepEqual((await store.listQueue("bob")).map((f) => f.frame), ["edge", "new"]);
  assert.equal(await store.queueLength("carol"), 0);
  assert.equal(await store.pruneQueue(200), 0);
});

Deno.test("`openSqliteStore()` keeps everything across close and reopen of a file", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "nested", "deeper", "socp.db");
    const alice = user({ user_id: "u1", username: "Alice" });
    const group = { group_id: "g1", creator_id: "u1", created_at: 1, meta: "{}", version: 1 };
    const member = {
      group_id: "g1",
      member_id: "u1",
      role: "owner",
      wrapped_key: "k",
      added_at: 1,
    };
    const peer = { server_id: "s1", host: "127.0.0.1", port: 1, pubkey: "p", last_seen: 2 };
    let seq: number;
    {
      await using store = await openSqliteStore(path);
      await store.setSetting("server_id", "s0");
      await store.putUser(alice);
      await store.putGroup(group);
      await store.putMember(member);
      await store.putPeer(peer);
      seq = await store.enqueue({ recipient: "u1", sender: "u2", frame: "{}", queued_at: 3 });
    }
    assert.ok((await Deno.stat(path)).isFile);
    {
      await using store = await openSqliteStore(path);
      assert.equal(await store.getSetting("server_id"), "s0");
      assert.deepEqual(await store.getUserByName("alice"), alice);
      assert.deepEqual(await store.getGroup("g1"), group);
      assert.deepEqual(await store.listMembers("g1"), [member]);
      assert.deepEqual(await store.listPeers(), [peer]);
      assert.deepEqual(await store.listQueue("u1"), [
        { seq, recipient: "u1", sender: "u2", frame: "{}", queued_at: 3, entry_id: null },
      ]);
      // The name index survived too.
      await assert.rejects(
        store.putUser(user({ user_id: "u9", username: "ALICE" })),
        NameTakenError,
      );
      // Seqs keep increasing after a reopen, even once the queue is emptied.
      await store.clearQueue("u1");
      const next = await store.enqueue({
        recipient: "u1",
        sender: "u2",
        frame: "{}",
        queued_at: 4,
      });
      assert.ok(next > seq);
    }
  });
});

Deno.test("`openSqliteStore()` opens a file in WAL mode and records its schema version", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "socp.db");
    {
      await using _store = await openSqliteStore(path);
    }
    const db = new DatabaseSync(path);
    try {
      assert.deepEqual({ ...db.prepare("PRAGMA journal_mode").get() }, { journal_mode: "wal" });
      assert.deepEqual({ ...db.prepare("PRAGMA user_version").get() }, { user_version: 5 });
    } finally {
      db.close();
    }
  });
});

Deno.test("`openSqliteStore()` refuses a database from a newer schema version", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "socp.db");
    const db = new DatabaseSync(path);
    db.exec("PRAGMA user_version = 99");
    db.close();
    await assert.rejects(openSqliteStore(path), RangeError);
  });
});

Deno.test("`openSqliteStore()` close is idempotent and later calls reject", async () => {
  const store = await openSqliteStore(":memory:");
  await store.close();
  await store.close();
  await store[Symbol.asyncDispose]();
  await assert.rejects(store.getSetting("x"), /Store is closed/);
  await assert.rejects(store.enqueue({ recipient: "b", sender: "a", frame: "", queued_at: 0 }));
});

Deno.test("`openSqliteStore()` queues an entry id once and never again once it was delivered", async () => {
  await using store = await openSqliteStore(":memory:");
  const item = { recipient: "bob", sender: "a", frame: "{}", queued_at: 5, entry_id: "e1" };
  assert.ok((await store.enqueue(item)) > 0);
  assert.equal(await store.enqueue(item), 0, "a second copy of the same entry is ignored");
  assert.equal(await store.queueLength("bob"), 1);
  assert.equal(await store.isQueueDone("e1"), false);
  assert.equal(await store.markQueueDone(["e1", "e2"], 100), 1);
  assert.equal(await store.queueLength("bob"), 0);
  assert.equal(await store.isQueueDone("e1"), true);
  assert.deepEqual(await store.listQueueDone(), ["e1", "e2"]);
  // What was delivered is remembered until the age cap prunes it.
  assert.equal(await store.pruneQueue(50), 0);
  assert.deepEqual(await store.listQueueDone(), ["e1", "e2"]);
  await store.pruneQueue(101);
  assert.deepEqual(await store.listQueueDone(), []);
});
