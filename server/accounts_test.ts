import assert from "node:assert/strict";
import {
  decodeBase64Url,
  encodeBase64Url,
  encodePublicKey,
  type KeyPair,
  ProtocolError,
  signAccountStatement,
  verifierOf,
} from "../shared/mod.ts";
import { openSqliteStore, type UserRecord } from "../storage/mod.ts";
import { fixtureKeyPair } from "../tests/fixtures/keys.ts";
import { parseServerArgs } from "./config.ts";
import { Hub } from "./hub.ts";
import { silentLogger } from "./log.ts";
import {
  Accounts,
  nameWinner,
  parseProof,
  recordFromJson,
  type RecordProof,
  recordStatement,
  recordToJson,
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
    proof: "",
    ...overrides,
  };
}

const BLOB = {
  v: 1,
  cipher: "AES-256-GCM",
  kdf: "scrypt",
  N: 1024,
  r: 8,
  p: 1,
  salt: "c2FsdHNhbHQ",
  iv: "aXY",
  ct: "Y3Q",
};

function verifierText(verifier: string): string {
  return JSON.stringify({ scheme: "scrypt-auth-sha256", verifier });
}

/** A record of `keys`' account, signed by `signer` (default: the account's own key). */
async function signed(
  keys: KeyPair,
  overrides: Partial<UserRecord> & { seq: number },
  signer: KeyPair = keys,
): Promise<UserRecord> {
  const { seq, ...fields } = overrides;
  const base = user({
    user_id: "22222222-2222-4222-8222-222222222222",
    pubkey: encodePublicKey(keys.publicKey),
    privkey_store: JSON.stringify(BLOB),
    pake_password: verifierText("dmVyaWZpZXI"),
    version: seq,
    ...fields,
  });
  const proof: RecordProof = { seq, sig: "", username: base.username };
  proof.sig = await signAccountStatement(signer.privateKey, recordStatement(base, proof));
  return { ...base, proof: JSON.stringify(proof) };
}

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
  const r = user({ username: "alice", deleted: true, proof: '{"seq":3,"sig":"x"}' });
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
  const localKeys = await fixtureKeyPair("user0");
  const remoteKeys = await fixtureKeyPair("user1");
  for (const remoteFirst of [true, false]) {
    const { store, state, accounts } = await racingAccounts();
    const local = await signed(localKeys, {
      user_id: "11111111-1111-4111-8111-111111111111",
      username: "zed",
      registered_at: 200,
      seq: 2,
    });
    const remote = await signed(remoteKeys, {
      user_id: "33333333-3333-4333-8333-333333333333",
      username: "Zed",
      registered_at: remoteFirst ? 100 : 300,
      seq: 2,
    });
    // The local REGISTER commits between applyRemote's name check and its write.
    state.between = () => store.putUser(local);
    assert.equal(await accounts.applyRemote(recordToJson(remote)), true);
    const holder = await store.getUserByName("zed");
    assert.equal(
      holder?.user_id,
      remoteFirst ? remote.user_id : local.user_id,
      "the earlier registration holds it",
    );
    const other = await store.getUser(remoteFirst ? local.user_id : remote.user_id);
    assert.equal(other?.username, null, "the other record keeps no name");
    await store.close();
  }
});

/** A fresh in-memory hub and account service; `now` is the test clock. */
async function freshAccounts(args: string[] = []) {
  const store = await openSqliteStore(":memory:");
  const keys = await fixtureKeyPair("server0");
  const clock = { now: 1_000_000 };
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
      parseServerArgs(args, {}).config,
      { clock: () => clock.now },
    );
  return { store, clock, open };
}

const code = (p: Promise<unknown>) =>
  p.then(() => "ok", (e: unknown) => (e instanceof ProtocolError ? e.code : String(e)));

Deno.test("`Accounts.applyRemote()` stores a record signed by the account's own key", async () => {
  const { store, open } = await freshAccounts();
  const keys = await fixtureKeyPair("user0");
  const record = await signed(keys, { username: "alice", seq: 5 });
  assert.equal(await open().applyRemote(recordToJson(record)), true);
  const stored = await store.getUserByName("alice");
  assert.equal(stored?.user_id, record.user_id);
  assert.equal(parseProof(stored!.proof)?.seq, 5);
  await store.close();
});

Deno.test("`Accounts.applyRemote()` refuses a record signed by another key (forged verifier)", async () => {
  const { store, open } = await freshAccounts();
  const victim = await fixtureKeyPair("user0");
  const attacker = await fixtureKeyPair("user1");
  const accounts = open();
  assert.equal(await accounts.applyRemote(recordToJson(await signed(victim, { seq: 5 }))), true);
  // A group member sends version+1 with a verifier of its choice, signed with its own key.
  const forged = await signed(victim, {
    pake_password: verifierText("YXR0YWNrZXI"),
    seq: 6,
  }, attacker);
  assert.equal(await code(accounts.applyRemote(recordToJson(forged))), "INVALID_SIG");
  // The same change claiming the attacker's key as the account key: the key is pinned.
  const swapped = await signed(attacker, {
    user_id: forged.user_id,
    pake_password: verifierText("YXR0YWNrZXI"),
    seq: 6,
  });
  assert.equal(await code(accounts.applyRemote(recordToJson(swapped))), "BAD_KEY");
  const stored = await store.getUser(forged.user_id);
  assert.equal(stored?.pake_password, verifierText("dmVyaWZpZXI"), "the verifier is unchanged");
  await store.close();
});

Deno.test("`Accounts.applyRemote()` ignores a replayed older version and refuses unsigned account records", async () => {
  const { store, open } = await freshAccounts();
  const keys = await fixtureKeyPair("user0");
  const accounts = open();
  const v5 = await signed(keys, { seq: 5 });
  const v7 = await signed(keys, { pake_password: verifierText("bmV3"), seq: 7 });
  assert.equal(await accounts.applyRemote(recordToJson(v7)), true);
  assert.equal(await accounts.applyRemote(recordToJson(v5)), false, "old version not applied");
  assert.equal(await accounts.applyRemote(recordToJson(v7)), false, "same version not applied");
  assert.equal((await store.getUser(v7.user_id))?.pake_password, verifierText("bmV3"));
  // A tombstone without a signature (what any server could make up) deletes nothing.
  const tomb = { ...recordToJson(v7), deleted: true, proof: "", version: 99 };
  assert.equal(await code(accounts.applyRemote(tomb)), "INVALID_SIG");
  // Nor may a relay rename the account: the name is covered by the signature.
  const renamed = { ...recordToJson(await signed(keys, { seq: 8 })), username: "mallory" };
  assert.equal(await code(accounts.applyRemote(renamed)), "INVALID_SIG");
  assert.equal((await store.getUser(v7.user_id))?.deleted, false);
  await store.close();
});

Deno.test("`Accounts.register()` needs the identity's own signature over the new record", async () => {
  const { store, open } = await freshAccounts();
  const keys = await fixtureKeyPair("user0");
  const other = await fixtureKeyPair("user1");
  const accounts = open();
  const id = "44444444-4444-4444-8444-444444444444";
  await store.putUser(user({
    user_id: id,
    pubkey: encodePublicKey(keys.publicKey),
    username: null,
    privkey_store: "",
    pake_password: "",
  }));
  const statement = {
    user_id: id,
    pubkey: encodePublicKey(keys.publicKey),
    username: "carol",
    privkey_store: BLOB,
    verifier: "dmVyaWZpZXI",
    deleted: false,
    seq: 1_000_000,
  };
  const bad = await signAccountStatement(other.privateKey, statement);
  assert.equal(
    await code(
      accounts.register(id, "carol", BLOB, "dmVyaWZpZXI", { seq: 1_000_000, recordSig: bad }),
    ),
    "INVALID_SIG",
  );
  const good = await signAccountStatement(keys.privateKey, statement);
  const record = await accounts.register(id, "carol", BLOB, "dmVyaWZpZXI", {
    seq: 1_000_000,
    recordSig: good,
  });
  assert.equal(record.username, "carol");
  assert.equal((await store.getUserByName("carol"))?.user_id, id);
  await store.close();
});

/** An account "alice" whose auth key is `right`. */
async function aliceAccount(store: Awaited<ReturnType<typeof openSqliteStore>>) {
  const right = encodeBase64Url(new Uint8Array(32).fill(7));
  const wrong = encodeBase64Url(new Uint8Array(32).fill(8));
  await store.putUser(user({
    username: "alice",
    pake_password: verifierText(await verifierOf(decodeBase64Url(right))),
  }));
  return { right, wrong };
}

Deno.test("`Accounts.login()` blocks an address after 3 failures, not the owner at another address", async () => {
  const { store, clock, open } = await freshAccounts(["--login-block-seconds", "60"]);
  const { right, wrong } = await aliceAccount(store);
  let accounts = open();
  assert.equal(await code(accounts.login("alice", right, "10.0.0.1")), "ok");
  for (let i = 0; i < 3; i++) {
    assert.equal(await code(accounts.login("Alice", wrong, "10.6.6.6")), "BAD_PASSWORD");
  }
  assert.equal(await code(accounts.login("alice", right, "10.6.6.6")), "LOGIN_BLOCKED");
  assert.equal(await code(accounts.login("alice", right, "10.0.0.1")), "ok", "owner unaffected");
  assert.equal(await code(accounts.login("alice", right, "10.0.0.2")), "ok", "new address too");

  accounts = open(); // a restarted server: nothing in memory
  clock.now += 59_000;
  await assert.rejects(
    accounts.login("alice", right, "10.6.6.6"),
    /blocked there for 1 more second\b/,
  );
  clock.now += 2_000;
  assert.equal(await code(accounts.login("alice", right, "10.6.6.6")), "ok");
  await store.close();
});

Deno.test("`Accounts.login()` slows guessing from many addresses, but not at an address that logged in before", async () => {
  const { store, clock, open } = await freshAccounts(["--account-failure-limit", "5"]);
  const { right, wrong } = await aliceAccount(store);
  const accounts = open();
  assert.equal(await code(accounts.login("alice", right, "10.0.0.1")), "ok");
  for (let i = 0; i < 5; i++) {
    assert.equal(await code(accounts.login("alice", wrong, `10.9.0.${i}`)), "BAD_PASSWORD");
  }
  // The budget is spent: a new address is refused before its password is even checked ...
  await assert.rejects(
    accounts.login("alice", right, "10.9.1.1"),
    /several addresses; try again in \d+ seconds/,
  );
  // ... while the owner at a known address still gets in.
  assert.equal(await code(accounts.login("alice", right, "10.0.0.1")), "ok");
  clock.now += 10 * 60_000 + 1;
  assert.equal(await code(accounts.login("alice", right, "10.9.1.1")), "ok", "budget refilled");
  await store.close();
});

Deno.test("`Accounts.noteFailure()` counts group-wide failures per address", async () => {
  const { store, open } = await freshAccounts();
  const { right } = await aliceAccount(store);
  const accounts = open();
  for (let i = 0; i < 3; i++) await accounts.noteFailure("alice", "10.6.6.6");
  assert.equal(await code(accounts.login("alice", right, "10.6.6.6")), "LOGIN_BLOCKED");
  assert.equal(await code(accounts.login("alice", right, "10.0.0.1")), "ok");
  await store.close();
});
