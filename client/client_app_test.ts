import assert from "node:assert/strict";
import { join } from "node:path";
import {
  decryptText,
  encodePublicKey,
  encryptText,
  openPrivateKey,
  signContent,
  toPrivkeyStore,
} from "../shared/mod.ts";
import { FakeAccountServer } from "./_fake_account_server.ts";
import { EventLog, fixtureKeyPair, IDS, rejectsWith } from "./_test_util.ts";
import { ClientApp } from "./client_app.ts";
import { systemClock } from "./clock.ts";
import { ChatHistory } from "./chat_history.ts";
import { ConfigTrustStore, type LoadedConfig, loadOrCreateConfig } from "./config.ts";
import { CommandError, HelloError, ServerError } from "./errors.ts";
import { silentLogger } from "./logger.ts";

const URL = "ws://test.invalid:1";

interface Setup extends AsyncDisposable {
  app: ClientApp;
  server: FakeAccountServer;
  events: EventLog;
  loaded: LoadedConfig;
  dir: string;
  /** Answers the app's password questions, in order. */
  answers: string[];
  /** The questions asked. */
  asked: string[];
}

async function setup(
  options: {
    login?: string;
    server?: FakeAccountServer;
    pin?: string;
    home?: string;
    history?: ChatHistory;
    replay?: number;
    dir?: string;
  } = {},
): Promise<Setup> {
  const dir = options.dir ?? await Deno.makeTempDir({ prefix: "socp_app_test_" });
  const server = options.server ?? await FakeAccountServer.create();
  const loaded = await loadOrCreateConfig(join(dir, "me.json"), {
    generate: () => fixtureKeyPair("user0"),
    ...(options.login !== undefined ? { noKey: true, account: options.login } : {}),
  });
  if (options.pin) loaded.config.servers[URL] = { server_id: IDS.server, pubkey: options.pin };
  const trust = new ConfigTrustStore(loaded);
  const events = new EventLog();
  const answers: string[] = [];
  const asked: string[] = [];
  const app = new ClientApp({
    loaded,
    trust,
    serverUrl: URL,
    connect: server.connect,
    emit: events.sink,
    ask: (prompt) => {
      asked.push(prompt);
      return Promise.resolve(answers.shift());
    },
    log: silentLogger,
    clock: systemClock,
    sigVariant: "A",
    downloadsDir: (id) => join(dir, "downloads", id),
    ...(options.home !== undefined ? { home: options.home } : {}),
    ...(options.history !== undefined ? { history: options.history } : {}),
    ...(options.replay !== undefined ? { replay: options.replay } : {}),
  });
  return {
    app,
    server,
    events,
    loaded,
    dir,
    answers,
    asked,
    async [Symbol.asyncDispose](): Promise<void> {
      await app.quit();
      await server.close();
      if (options.dir === undefined) await Deno.remove(dir, { recursive: true });
    },
  };
}

Deno.test("ClientApp.startLogin() proves the password, decrypts the key and says hello as the account", async () => {
  const server = await FakeAccountServer.create();
  const bobKeys = await fixtureKeyPair("user1");
  await server.addAccount("Bob", IDS.bob, bobKeys, "s3cret");
  await using s = await setup({ login: "bob", server });
  s.answers.push("wrong", "s3cret");
  await s.app.startLogin("bob");
  assert.deepEqual(s.asked, ["Password for bob: ", "Password for bob: "]);
  const wrong = await s.events.wait("error");
  assert.equal(wrong.code, "BAD_PASSWORD");
  assert.match(wrong.detail, /Wrong username or password \(2 left\)/);
  const ready = await s.events.wait("ready");
  assert.equal(ready.user_id, IDS.bob);
  assert.equal(ready.account, "Bob");
  assert.equal(ready.pinned, true);
  assert.equal(s.app.session?.userId, IDS.bob);
  assert.equal(s.app.account, "Bob");
  assert.deepEqual(s.server.received[0], [
    "LOGIN_START",
    "LOGIN_PROOF",
    "LOGIN_PROOF",
    "USER_HELLO",
  ]);
  // The config remembers the account and pins, never a key: no key file, no user id.
  await s.app.quit();
  const onDisk = JSON.parse(await Deno.readTextFile(s.loaded.path));
  assert.equal(onDisk.account, "Bob");
  assert.equal(onDisk.user_id, undefined);
  assert.equal(onDisk.private_key_file, undefined);
  assert.equal(onDisk.servers[URL].pubkey, s.server.pub);
  assert.deepEqual([...Deno.readDirSync(s.dir)].map((e) => e.name), ["me.json"]);
});

Deno.test("ClientApp.startLogin() stops when the account is blocked, with the server's message", async () => {
  const server = await FakeAccountServer.create();
  await server.addAccount("bob", IDS.bob, await fixtureKeyPair("user1"), "right");
  await using s = await setup({ login: "bob", server });
  s.answers.push("a", "b", "c", "right");
  const e = await rejectsWith(() => s.app.startLogin("bob"), HelloError, "blocked for 9 seconds");
  assert.equal(e.code, "LOGIN_BLOCKED");
  assert.equal(e.exitCode, 1);
  assert.equal(s.answers.length, 1, "no password asked after the block");
  s.answers.splice(0);
  s.answers.push("right");
  const again = await rejectsWith(() => s.app.startLogin("bob"), HelloError, "9 more seconds");
  assert.equal(again.code, "LOGIN_BLOCKED");
  assert.equal(s.app.session, undefined);
});

Deno.test("ClientApp.startLogin() gives up without a password and refuses an unpinned signer", async () => {
  const server = await FakeAccountServer.create();
  await server.addAccount("bob", IDS.bob, await fixtureKeyPair("user1"), "right");
  {
    await using s = await setup({ login: "bob", server });
    const e = await rejectsWith(() => s.app.startLogin("bob"), HelloError, "No password given");
    assert.equal(e.exitCode, 1);
  }
  const other = encodePublicKey((await fixtureKeyPair("server3")).publicKey);
  await using s = await setup({ login: "bob", server, pin: other });
  s.answers.push("right");
  const e = await rejectsWith(() => s.app.startLogin("bob"), HelloError, "pinned key");
  assert.equal(e.code, "SERVER_KEY_CHANGED");
});

Deno.test("ClientApp /register seals the key under the password; /passwd and /delete-account follow", async () => {
  await using s = await setup();
  await s.app.startLocal();
  const me = s.loaded.config.user_id!;
  s.answers.push("password-1", "password-1");
  await s.app.register("Alice");
  assert.deepEqual(await s.events.wait("account", (e) => e.action === "registered"), {
    event: "account",
    action: "registered",
    username: "Alice",
    user_id: me,
  });
  const stored = s.server.accounts.get("alice")!;
  const key = await openPrivateKey(toPrivkeyStore(stored.store), "password-1");
  assert.deepEqual(key.pkcs8, s.loaded.keys!.privateKey.pkcs8, "the blob holds the user's key");
  assert.equal(JSON.parse(await Deno.readTextFile(s.loaded.path)).account, "Alice");

  await rejectsWith(() => s.app.register("Other"), CommandError, 'is the account "Alice" already');

  s.answers.push("password-1", "password-2", "password-2");
  await s.app.passwd();
  await s.events.wait("account", (e) => e.action === "password_changed");
  await openPrivateKey(toPrivkeyStore(s.server.accounts.get("alice")!.store), "password-2");

  s.answers.push("password-1");
  await rejectsWith(() => s.app.deleteAccount(), ServerError, "Wrong username or password");
  assert.ok(s.app.session?.ready, "still logged in after a wrong password");

  s.answers.push("password-2");
  await s.app.deleteAccount();
  await s.events.wait("account", (e) => e.action === "deleted" && e.username === "Alice");
  await s.events.wait("account", (e) => e.action === "logged_out");
  assert.equal(s.server.accounts.size, 0);
  assert.equal(s.app.session, undefined);
  assert.equal(JSON.parse(await Deno.readTextFile(s.loaded.path)).account, undefined);
  await rejectsWith(() => s.app.list(), CommandError, "Not logged in; /login <username> or /quit");
  assert.deepEqual(s.events.of("error"), [], "the close after DELETE_OK is expected");
});

Deno.test("ClientApp /register refuses mismatched passwords and a bad name without sending", async () => {
  await using s = await setup();
  await s.app.startLocal();
  s.answers.push("password-one", "password-two");
  await rejectsWith(() => s.app.register("alice"), CommandError, "do not match");
  await rejectsWith(() => s.app.register("a b"), CommandError, "must be 3-32 letters");
  s.server.accounts.set("taken", {
    username: "Taken",
    userId: IDS.carol,
    pubkey: "",
    store: {},
    verifier: "",
  });
  const asked = s.asked.length;
  const e = await rejectsWith(() => s.app.register("TAKEN"), ServerError, "already taken");
  assert.equal(e.code, "NAME_IN_USE");
  assert.equal(s.asked.length, asked, "a taken name is refused before any password is asked");
  assert.deepEqual(s.server.received[0]!.filter((t) => t === "REGISTER"), []);
  assert.deepEqual(s.events.of("error"), [], "a claimed ERROR is not reported twice");
});

Deno.test("ClientApp /logout ends the session; /login still works, /accounts says to log in", async () => {
  const server = await FakeAccountServer.create();
  await server.addAccount("bob", IDS.bob, await fixtureKeyPair("user1"), "pw");
  await using s = await setup({ server });
  await s.app.startLocal();
  await s.app.logout();
  await s.events.wait("account", (e) => e.action === "logged_out");
  await rejectsWith(() => s.app.sendDirect("bob", "hi"), CommandError, "Not logged in");
  // Servers list account names only to identified connections: no anonymous connection.
  await rejectsWith(() => s.app.accounts("b*"), CommandError, "log in first");
  assert.equal(s.server.received.length, 1, "no connection was opened to list accounts");
  s.answers.push("pw");
  await s.app.login("bob");
  assert.equal(s.app.session?.userId, IDS.bob);
  // A local identity logging in to another account keeps its own config fields.
  assert.equal(JSON.parse(await Deno.readTextFile(s.loaded.path)).account, undefined);
  assert.equal((await s.events.wait("ready", (e) => e.user_id === IDS.bob)).display_name, "bob");
  const inSession = await s.app.accounts("*");
  assert.deepEqual(inSession.map((a) => [a.username, a.online]), [["bob", true]]);
  const e = await rejectsWith(() => s.app.accounts("[x"), ServerError, "never closed");
  assert.equal(e.code, "BAD_REQUEST");
  assert.ok(s.app.session?.ready, "a malformed pattern does not end the session");
  s.answers.push("nope");
  await rejectsWith(() => s.app.login("nobody"), CommandError, "No password given");
  const wrong = await s.events.wait("error", (e) => e.code === "BAD_PASSWORD");
  assert.match(wrong.detail, /Wrong username or password/);
  assert.equal(s.app.session, undefined, "logged out after a failed /login");
});

Deno.test("ClientApp /tell and /file to an offline account: found by name, queued, told once", async () => {
  const server = await FakeAccountServer.create();
  const bob = await fixtureKeyPair("user1");
  await server.addAccount("bob", IDS.bob, bob, "pw");
  await using s = await setup({ server });
  await s.app.startLocal();
  const long = "x".repeat(1000);
  await s.app.sendDirect("Bob", long);
  const sent = await s.events.wait("sent");
  assert.equal(sent.to, IDS.bob);
  assert.equal(sent.parts, 3);
  assert.deepEqual(s.events.of("queued"), [{
    event: "queued",
    kind: "dm",
    to: IDS.bob,
    to_name: "bob",
  }]);
  assert.equal(s.server.queued.length, 3);
  const texts = await Promise.all(
    s.server.queued.map((f) => decryptText(bob.privateKey, String(f.payload["ciphertext"]))),
  );
  assert.equal(texts.join(""), long);

  const path = join(s.dir, "note.txt");
  await Deno.writeTextFile(path, "file for later");
  await s.app.sendFile("bob", path);
  await s.events.wait("queued", (e) => e.kind === "file" && e.name === "note.txt");
  assert.equal(s.events.of("queued").length, 2);
  await rejectsWith(() => s.app.sendDirect("nobody", "hi"), CommandError, "/accounts <pattern>");
});

Deno.test("ClientApp forgets an account name lost to a concurrent registration", async () => {
  await using s = await setup();
  await s.app.startLocal();
  s.answers.push("password", "password");
  await s.app.register("zed");
  await s.server.broadcast("ERROR", {
    code: "NAME_IN_USE",
    detail: 'The name "zed" was registered elsewhere first; your account lost it',
  });
  const lost = await s.events.wait("error", (e) => e.code === "NAME_IN_USE");
  assert.match(lost.detail, /registered elsewhere first/);
  assert.equal(s.app.account, undefined);
  await rejectsWith(() => s.app.passwd(), CommandError, "has no account");
  assert.ok(s.app.session?.ready, "still connected");
  await s.app.quit();
  assert.equal(JSON.parse(await Deno.readTextFile(s.loaded.path)).account, undefined);
});

Deno.test("ClientApp /passwd for an identity registered in an earlier run fetches the KDF parameters", async () => {
  await using s = await setup();
  await s.server.addAccount("alice", s.loaded.config.user_id!, s.loaded.keys!, "old");
  s.loaded.config.account = "alice";
  await s.app.startLocal();
  assert.equal(s.app.account, "alice");
  s.answers.push("old", "new-password", "new-password");
  await s.app.passwd();
  await s.events.wait("account", (e) => e.action === "password_changed" && e.username === "alice");
  assert.deepEqual(s.server.received[1], ["LOGIN_START", "CTRL_CLOSE"]);
  await openPrivateKey(toPrivkeyStore(s.server.accounts.get("alice")!.store), "new-password");
});

Deno.test("ClientApp /login to the account already logged in is refused before a password is asked", async () => {
  const server = await FakeAccountServer.create();
  await server.addAccount("bob", IDS.bob, await fixtureKeyPair("user1"), "s3cret-pw");
  await using s = await setup({ login: "bob", server });
  s.answers.push("s3cret-pw");
  await s.app.startLogin("bob");
  const asked = s.asked.length;
  // In a script the next lines are commands, not passwords: nothing may be read as one.
  s.answers.push("/tell nobody hi", "/quit");
  await rejectsWith(() => s.app.login("BOB"), CommandError, 'logged in to "bob" already');
  assert.equal(s.asked.length, asked, "no password asked");
  assert.equal(s.answers.length, 2, "no line taken as a password");
  assert.ok(s.app.session?.ready, "still logged in");
  const proofs = s.server.received.flat().filter((t) => t === "LOGIN_PROOF");
  assert.equal(proofs.length, 1, "no failed login counted");
});

Deno.test("ClientApp new passwords need 8 characters, with a clear message; old short ones still log in", async () => {
  const server = await FakeAccountServer.create();
  await server.addAccount("bob", IDS.bob, await fixtureKeyPair("user1"), "pw");
  {
    await using s = await setup({ server });
    await s.app.startLocal();
    s.answers.push("1", "1");
    await rejectsWith(() => s.app.register("alice"), CommandError, "at least 8 characters");
    assert.equal(s.answers.length, 0, "both answers read, so a script stays in step");
    assert.deepEqual(s.server.received[0]!.filter((t) => t === "REGISTER"), []);
    assert.match(s.asked[0]!, /at least 8 characters/, "the prompt says so up front");
  }
  await using s = await setup({ login: "bob", server });
  s.answers.push("pw");
  await s.app.startLogin("bob");
  assert.equal(s.app.account, "bob", "a short existing password still logs in");
  s.answers.push("pw", "1234567", "1234567");
  await rejectsWith(() => s.app.passwd(), CommandError, "at least 8 characters; nothing changed");
  assert.equal(s.server.received.flat().filter((t) => t === "PASSWD").length, 0);
});

Deno.test("ClientApp /file expands ~ to the home folder", async () => {
  const server = await FakeAccountServer.create();
  await server.addAccount("bob", IDS.bob, await fixtureKeyPair("user1"), "pw");
  const home = await Deno.makeTempDir({ prefix: "socp_home_" });
  try {
    await Deno.writeTextFile(join(home, "x.txt"), "from home");
    await using s = await setup({ server, home });
    await s.app.startLocal();
    await s.app.sendFile("bob", "~/x.txt");
    const sent = await s.events.wait("sent", (e) => e.kind === "file");
    assert.equal(sent.name, "x.txt");
    assert.equal(sent.size, 9);
    await rejectsWith(() => s.app.sendFile("bob", "~/missing.txt"), CommandError, home);
  } finally {
    await Deno.remove(home, { recursive: true });
  }
});

Deno.test("ClientApp /nick advertises the new name through the server and saves it", async () => {
  await using s = await setup();
  await s.app.startLocal();
  await s.app.nick("  Robert the Bold ");
  const info = await s.events.wait("info", (e) => e.text.includes("known as"));
  assert.equal(info.text, "You are now known as Robert the Bold");
  assert.equal(s.server.names.get(s.loaded.config.user_id!), "Robert the Bold");
  assert.equal(s.app.session?.displayName, "Robert the Bold", "the next hello says it too");
  assert.equal(JSON.parse(await Deno.readTextFile(s.loaded.path)).display_name, "Robert the Bold");
  await rejectsWith(() => s.app.nick("   "), CommandError, "Display name is empty");
  await rejectsWith(() => s.app.nick("a\x1b[2Jb"), CommandError, "control characters");
  s.server.noRename = true;
  await s.app.nick("Bob");
  const later = await s.events.wait("info", (e) => e.text.includes("next connection"));
  assert.match(later.text, /You will be known as Bob from the next connection/);
  assert.equal(s.app.session?.displayName, "Bob");
});

Deno.test("ClientApp keeps the last messages, shows them after a restart, and /history shows more", async () => {
  const server = await FakeAccountServer.create();
  await server.addAccount("bob", IDS.bob, await fixtureKeyPair("user1"), "pw");
  const dir = await Deno.makeTempDir({ prefix: "socp_app_test_" });
  const history = ChatHistory.memory();
  try {
    {
      await using s = await setup({ server, dir, history, replay: 20 });
      await s.app.startLocal();
      await s.app.sendDirect("bob", "see you tomorrow");
      await s.app.sendDirect("bob", "/me waves");
      assert.deepEqual(s.events.of("info").filter((e) => e.text.includes("kept")), []);
    }
    // A restart: the conversation is shown again before the new session starts.
    await using s = await setup({ server, dir, history, replay: 20 });
    await s.app.startLocal();
    const head = s.events.events.findIndex((e) => e.event === "info" && e.text.includes("kept"));
    const ready = s.events.events.findIndex((e) => e.event === "ready");
    assert.ok(head >= 0 && head < ready, "history first, then the new session");
    const replayed = s.events.of("sent").filter((e) => e.history);
    assert.deepEqual(replayed.map((e) => [e.text, e.action ?? false, e.to_name]), [
      ["see you tomorrow", false, "bob"],
      ["waves", true, "bob"],
    ]);
    s.events.events.length = 0;
    await s.app.history("bob");
    assert.equal(s.events.of("sent").length, 2);
    await s.app.history("public");
    assert.match(s.events.of("info")[0]!.text, /No messages on the public channel are kept/);
    await rejectsWith(() => s.app.history("nobody"), CommandError, 'No conversation with "nobody"');
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ClientApp names a sender unknown to a fresh --login config with its account's name", async () => {
  const server = await FakeAccountServer.create();
  const bob = await fixtureKeyPair("user1");
  const alice = await fixtureKeyPair("user0");
  await server.addAccount("bob", IDS.bob, bob, "pw");
  server.known.set(IDS.alice, encodePublicKey(alice.publicKey));
  server.names.set(IDS.alice, "alice");
  await using s = await setup({ login: "bob", server });
  s.answers.push("pw");
  await s.app.startLogin("bob");
  // A message alice sent while bob was away, delivered at his login: nothing names her yet.
  const ts = Date.now() - 3_600_000;
  const ciphertext = await encryptText(bob.publicKey, "welcome back");
  const content_sig = await signContent(alice.privateKey, {
    ciphertext,
    from: IDS.alice,
    to: IDS.bob,
    ts,
  }, "A");
  await s.server.broadcast("USER_DELIVER", {
    ciphertext,
    sender: IDS.alice,
    sender_pub: encodePublicKey(alice.publicKey),
    content_sig,
    msg_ts: ts,
  });
  const dm = await s.events.wait("dm");
  assert.equal(dm.from_name, "alice");
  assert.equal(dm.text, "welcome back");
  assert.equal(dm.ts, ts, "shown with when it was sent");
  assert.equal(dm.verified, true);
});
