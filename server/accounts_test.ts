import assert from "node:assert/strict";
import {
  decodeBase64Url,
  encodeBase64Url,
  encodePublicKey,
  ProtocolError,
  verifierOf,
} from "../shared/mod.ts";
import { openSqliteStore, type UserRecord } from "../storage/mod.ts";
import { fixtureKeyPair } from "../tests/fixtures/keys.ts";
import { parseServerArgs } from "./config.ts";
import { Hub } from "./hub.ts";
import { silentLogger } from "./log.ts";
import {
  accountPattern,
  Accounts,
  nameWinner,
  recordFromJson,
  recordToJson,
  supersedes,
} from "./accounts.ts";

function user(overrides: Partial<UserRecord>): UserRecord {
  return {
    user_id: "11111111-1111-4111-8111-111111111111",
    pubkey: "k",
    privkey_store: "{}",
    pake_password: "{}",
    meta: "",
    version: 1,
    username: "alice",
    home_server: null,
    updated_at: 10,
    registered_at: 10,
    deleted: false,
    ...overrides,
  };
}

Deno.test("`accountPattern()` turns globs into anchored, case-insensitive patterns", () => {
  assert.ok(accountPattern("al*").test("Alice"));
  assert.ok(!accountPattern("al*").test("Malice"));
  assert.ok(accountPattern("b?b").test("bob"));
  assert.ok(!accountPattern("b?b").test("boob"));
  assert.ok(accountPattern("[a-c]*").test("carol"));
  assert.ok(!accountPattern("[!a-c]*").test("carol"));
  assert.ok(accountPattern("a.b").test("a.b"));
  assert.ok(!accountPattern("a.b").test("axb"));
  assert.ok(accountPattern("/^b.+b$/").test("bob"));
});

Deno.test("`accountPattern()` refuses malformed patterns with BAD_REQUEST saying what is wrong", () => {
  for (const bad of ["/(/", "[abc", "a]", "/[z-a]/"]) {
    assert.throws(() => accountPattern(bad), (e: unknown) => {
      assert.ok(e instanceof ProtocolError);
      assert.equal(e.code, "BAD_REQUEST");
      assert.match(e.message, /Malformed/);
      return true;
    });
  }
});

Deno.test("`supersedes()` orders by version, then update time", () => {
  assert.ok(supersedes(user({ version: 2 }), user({ version: 1, updated_at: 99 })));
  assert.ok(!supersedes(user({ version: 1 }), user({ version: 2 })));
  assert.ok(supersedes(user({ updated_at: 11 }), user({ updated_at: 10 })));
  const a = user({ pake_password: "a" });
  const b = user({ pake_password: "b" });
  assert.notEqual(supersedes(a, b), supersedes(b, a)); // a total order, so servers agree
});

Deno.test("`nameWinner()` keeps the earlier registration, then the lower id, on every server", () => {
  const early = user({ user_id: "b", registered_at: 5 });
  const late = user({ user_id: "a", registered_at: 6 });
  assert.equal(nameWinner(early, late), early);
  assert.equal(nameWinner(late, early), early);
  const x = user({ user_id: "a", registered_at: 5 });
  const y = user({ user_id: "b", registered_at: 5 });
  assert.equal(nameWinner(x, y), x);
  assert.equal(nameWinner(y, x), x);
});

Deno.test("`recordFromJson()` round-trips a record and drops an invalid username", () => {
  const r = user({ username: "alice", deleted: true });
  assert.deepEqual(recordFromJson(recordToJson(r)), r);
  assert.equal(recordFromJson({ ...recordToJson(r), username: "bad name!" }).username, null);
  assert.throws(() => recordFromJson({ ...recordToJson(r), version: "2" }), ProtocolError);
});

/** A hub on an in-memory store whose `getUserByName` can run `between` once, right after it. */
async function racingAccounts() {
  const store = await openSqliteStore(":memory:");
  const state: { between: (() => Promise<void>) | undefined } = { between: undefined };
  const racing = new Proxy(store, {
    get(target, prop, receiver) {
      if (prop === "getUserByName") {
        return async (name: string) => {
          const found = await target.getUserByName(name);
          const between = state.between;
          state.between = undefined;
          await between?.();
          return found;
        };
      }
      const value = Reflect.get(target, prop, receiver);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  const keys = await fixtureKeyPair("server0");
  const hub = new Hub({
    identity: {
      serverId: "99999999-9999-4999-8999-999999999999",
      privateKey: keys.privateKey,
      publicKey: keys.publicKey,
      publicKeyText: encodePublicKey(keys.publicKey),
    },
    store: racing,
    log: silentLogger,
  });
  const accounts = new Accounts(hub, parseServerArgs([], {}).config);
  return { store, state, accounts };
}

Deno.test("`Accounts.applyRemote()` decides again when a local registration takes the name meanwhile", async () => {
  for (const remoteFirst of [true, false]) {
    const { store, state, accounts } = await racingAccounts();
    const local = user({ user_id: "l", username: "zed", registered_at: 200, version: 2 });
    const remote = user({
      user_id: "r",
      username: "Zed",
      registered_at: remoteFirst ? 100 : 300,
      version: 2,
    });
    // The local REGISTER commits between applyRemote's name check and its write.
    state.between = () => store.putUser(local);
    assert.equal(await accounts.applyRemote(recordToJson(remote)), true);
    const holder = await store.getUserByName("zed");
    assert.equal(holder?.user_id, remoteFirst ? "r" : "l", "the earlier registration holds it");
    const other = await store.getUser(remoteFirst ? "l" : "r");
    assert.equal(other?.username, null, "the other record keeps no name");
    await store.close();
  }
});

Deno.test("`Accounts.login()` blocks after 3 failures, and the block survives a restart", async () => {
  await using store = await openSqliteStore(":memory:");
  const keys = await fixtureKeyPair("server0");
  let now = 1_000_000;
  const open = () =>
    new Accounts(
      new Hub({
        identity: {
          serverId: crypto.randomUUID(),
          privateKey: keys.privateKey,
          publicKey: keys.publicKey,
          publicKeyText: encodePublicKey(keys.publicKey),
        },
        store,
        log: silentLogger,
      }),
      parseServerArgs(["--login-block-seconds", "60"], {}).config,
      { clock: () => now },
    );
  const right = encodeBase64Url(new Uint8Array(32).fill(7));
  const wrong = encodeBase64Url(new Uint8Array(32).fill(8));
  await store.putUser(user({
    username: "alice",
    pake_password: JSON.stringify({
      scheme: "scrypt-auth-sha256",
      verifier: await verifierOf(decodeBase64Url(right)),
    }),
  }));
  const code = (p: Promise<unknown>) =>
    p.then(() => "ok", (e: unknown) => (e instanceof ProtocolError ? e.code : String(e)));

  let accounts = open();
  assert.equal(await code(accounts.login("alice", right)), "ok");
  for (let i = 0; i < 3; i++) {
    assert.equal(await code(accounts.login("Alice", wrong)), "BAD_PASSWORD");
  }
  assert.equal(await code(accounts.login("alice", right)), "LOGIN_BLOCKED");

  accounts = open(); // a restarted server: nothing in memory
  now += 59_000;
  await assert.rejects(accounts.login("alice", right), /blocked for 1 more seconds/);
  now += 2_000;
  assert.equal(await code(accounts.login("alice", right)), "ok");
});
