/**
 * Integration tests of accounts (docs/protocol.md, "Accounts") with real `socp server` and
 * `socp client` processes: register on one server and log in on another, taken names, the
 * login block, `/passwd`, `/delete-account` across the mesh, `/accounts` patterns, concurrent
 * registration of one name on two servers, the idle logout, and the account-less flow.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { serializeEnvelope } from "../shared/mod.ts";
import {
  accountEvent,
  accountsRequest,
  anonymousAccountsRequest,
  bootstrapYaml,
  type ClientConfigFile,
  type ClientEvent,
  clientRegister,
  connectUser,
  delay,
  errorEvent,
  eventually,
  fixturePubkey,
  isAck,
  isRegisterAnswer,
  listAccounts,
  LoginRefusedError,
  loginUser,
  readyClient,
  registerEnvelope,
  registerUser,
  startClient,
  startMesh,
  startServer,
  TIMEOUTS,
  waitForAccounts,
  withTempDir,
  writeClientConfig,
} from "./support/mod.ts";

Deno.test({
  name: "an account registered on server A logs in on server B with only its password, and chats",
  async fn() {
    await withTempDir("socp_test_accounts_", async (dir) => {
      await using mesh = await startMesh(2);
      const [a, b] = mesh.nodes as [typeof mesh.nodes[0], typeof mesh.nodes[0]];
      const alice = await writeClientConfig(dir, "alice", "user0");
      const bob = await writeClientConfig(dir, "bob", "user1");

      // Register with the local identity on A (real client, password typed twice).
      {
        await using client = await readyClient(a.url, alice.path);
        const registered = await clientRegister(client, "alice", "correct horse");
        assert.deepEqual(registered, {
          event: "account",
          action: "registered",
          username: "alice",
          user_id: alice.userId,
        });
        assert.equal((await client.close()).code, 0);
      }
      const rows = await waitForAccounts(b, "alice", (r) => r.length === 1, "alice on B");
      assert.deepEqual(rows, [{ username: "alice", user_id: alice.userId, online: false }]);

      // Log in on B from a fresh machine: a config that does not exist yet.
      const fresh = join(dir, "elsewhere", "me.json");
      await using bobClient = await readyClient(b.url, bob.path);
      await using roaming = await startClient(b.url, fresh, ["--login", "alice"]);
      await roaming.line("correct horse");
      const hello = await roaming.waitFor("ready");
      assert.equal(hello.user_id, alice.userId, "the account's identity, not a new one");
      assert.equal(hello.account, "alice");
      assert.equal(hello.pinned, true);
      await roaming.waitFor(accountEvent("logged_in", "alice"));

      await roaming.line("/tell bob hello from B");
      await roaming.waitFor((e) => e.event === "sent" && e.to === bob.userId);
      const dm = await bobClient.waitFor("dm");
      assert.equal(dm.from, alice.userId);
      assert.equal(dm.text, "hello from B");
      assert.equal(dm.verified, true);
      await bobClient.line("/tell alice and back");
      assert.equal((await roaming.waitFor("dm")).text, "and back");
      assert.equal((await roaming.close()).code, 0);
      // The password, the key and the user id never reach the new config.
      const onDisk = JSON.parse(await Deno.readTextFile(fresh));
      assert.equal(onDisk.account, "alice");
      assert.equal(onDisk.user_id, undefined);
      assert.equal(onDisk.private_key_file, undefined);
      // No key file: the config, and the messages kept on this device (never a password).
      const files = [...Deno.readDirSync(join(dir, "elsewhere"))].map((e) => e.name).sort();
      assert.deepEqual(files.filter((f) => f !== "me.history.json"), ["me.json"]);
      for (const file of files) {
        assert.ok(
          !(await Deno.readTextFile(join(dir, "elsewhere", file))).includes("correct horse"),
        );
      }
    });
  },
});

Deno.test({
  name: "a taken name is refused in any letter case, with a clear error, on every server",
  async fn() {
    await withTempDir("socp_test_accounts_", async (dir) => {
      await using mesh = await startMesh(2);
      const [a, b] = mesh.nodes as [typeof mesh.nodes[0], typeof mesh.nodes[0]];
      await using carol = await connectUser(a.url, "user2");
      assert.ok(isAck("REGISTER_OK")(await registerUser(carol, "Carol", "pw")));
      await waitForAccounts(b, "carol", (r) => r.length === 1, "Carol on B");

      const dave = await writeClientConfig(dir, "dave", "user3");
      await using client = await readyClient(b.url, dave.path);
      // A taken name is refused before any password is asked (the client looks it up first).
      await client.line("/register cAROL");
      const refused = await client.waitFor("error");
      assert.equal(refused.code, "NAME_IN_USE");
      assert.equal(refused.source, "server");
      assert.match(String(refused.detail), /The name "Carol" is already taken/);
      // A malformed name is refused before any password is asked.
      await client.line("/register no!");
      const bad = await client.waitFor("error");
      assert.match(String(bad.detail), /Username "no!" must be 3-32 letters/);
      // The same identity can still take a free name.
      const ok = await clientRegister(client, "dave", "dave-password");
      assert.equal(ok.event, "account");

      await using erin = await connectUser(a.url, "user4");
      const again = await registerUser(erin, "CAROL", "pw");
      assert.equal(again.payload["code"], "NAME_IN_USE");
    });
  },
});

Deno.test({
  name: "failed logins count across the mesh: two on A and one on B block the account on both",
  async fn() {
    await using mesh = await startMesh(2, { args: ["--login-block-seconds", "30"] });
    const [a, b] = mesh.nodes as [typeof mesh.nodes[0], typeof mesh.nodes[0]];
    await using gina = await connectUser(a.url, "user6");
    assert.ok(isAck("REGISTER_OK")(await registerUser(gina, "gina", "right")));
    await gina.close();
    await waitForAccounts(b, "gina", (r) => r.length === 1, "gina on B");
    const attempt = (node: typeof a, password: string) =>
      loginUser(node.url, "gina", password, {
        serverPub: node.pubkey,
        key: "user6",
        userId: gina.userId,
      })
        .then(async (user) => {
          await user.close();
          return "ok";
        }, (e) => (e instanceof LoginRefusedError ? e.code : String(e)));
    assert.equal(await attempt(a, "wrong1"), "BAD_PASSWORD");
    assert.equal(await attempt(a, "wrong2"), "BAD_PASSWORD");
    // B hears of A's failures (LOGIN_FAILURE gossip): its first failure is the third.
    await b.waitForLogs(
      (lines) =>
        lines.filter((l) => /failed login for "gina" from \S+ on another server/.test(l)).length ===
          2,
      "B counted A's two failures",
    );
    assert.equal(await attempt(b, "wrong3"), "BAD_PASSWORD");
    assert.equal(await attempt(b, "right"), "LOGIN_BLOCKED");
    await a.waitForLog(/failed login for "gina" from \S+ on another server; blocked/);
    assert.equal(await attempt(a, "right"), "LOGIN_BLOCKED");
  },
});

Deno.test({
  name:
    "three wrong passwords block the login for --login-block-seconds, with the time in the message",
  async fn() {
    await withTempDir("socp_test_accounts_", async (dir) => {
      await using server = await startServer({ args: ["--login-block-seconds", "2"] });
      await using frank = await connectUser(server.url, "user5");
      assert.ok(isAck("REGISTER_OK")(await registerUser(frank, "frank", "right")));
      await frank.close();
      const config = join(dir, "frank.json");

      // Three wrong passwords: two "attempts left" errors, then the block, and exit code 1.
      {
        await using client = await startClient(server.url, config, ["--login", "frank"]);
        for (const p of ["wrong1", "wrong2", "wrong3", "right"]) await client.line(p);
        const first = await client.waitFor(errorEvent("BAD_PASSWORD"));
        assert.match(String(first.detail), /Wrong username or password \(2 attempts left/);
        const second = await client.waitFor(errorEvent("BAD_PASSWORD"));
        assert.match(String(second.detail), /1 attempt left before a 2 s block/);
        const blocked = await client.waitFor(errorEvent("LOGIN_BLOCKED"));
        assert.match(String(blocked.detail), /blocked for 2 seconds/);
        assert.equal((await client.status).code, 1);
      }
      // Even the right password is refused during the block; the message says for how long.
      const during = await loginUser(server.url, "frank", "right", {
        serverPub: server.pubkey,
        key: "user5",
        userId: frank.userId,
      }).then(() => undefined, (e) => e);
      assert.ok(during instanceof LoginRefusedError, String(during));
      assert.equal(during.code, "LOGIN_BLOCKED");
      assert.match(String(during.frame.payload["detail"]), /blocked there for [12] more seconds?/);

      await delay(2100); // the block itself is about time
      await using client = await readyClient(server.url, config, {
        args: ["--login", "frank"],
        passwords: ["right"],
      });
      const hello = client.events().find((e) => e.event === "ready")!;
      assert.equal(hello.user_id, frank.userId);
    });
  },
});

Deno.test({
  name: "/passwd: the old password stops working everywhere, the new one works",
  async fn() {
    await withTempDir("socp_test_accounts_", async (dir) => {
      await using mesh = await startMesh(2);
      const [a, b] = mesh.nodes as [typeof mesh.nodes[0], typeof mesh.nodes[0]];
      await using gina = await connectUser(a.url, "user6");
      assert.ok(isAck("REGISTER_OK")(await registerUser(gina, "gina", "old-pw")));
      await gina.close();

      const config = join(dir, "gina.json");
      {
        await using client = await readyClient(a.url, config, {
          args: ["--login", "gina"],
          passwords: ["old-pw"],
        });
        await client.line("/passwd");
        await client.line("old-pw"); // current
        await client.line("new-password"); // new (8 characters at least)
        await client.line("new-typo"); // repeated wrong
        const mismatch = await client.waitFor("error");
        assert.match(String(mismatch.detail), /do not match; nothing changed/);
        await client.line("/passwd");
        for (const p of ["old-pw", "new-password", "new-password"]) await client.line(p);
        await client.waitFor(accountEvent("password_changed", "gina"));
      }
      const login = (url: string, pubkey: string, password: string) =>
        loginUser(url, "gina", password, { serverPub: pubkey, key: "user6", userId: gina.userId });
      // B learns the new verifier by gossip: retry until the new password works there.
      const onB = await eventually(
        () =>
          login(b.url, b.pubkey, "new-password").catch((e) => {
            if (e instanceof LoginRefusedError && e.code === "BAD_PASSWORD") return undefined;
            throw e;
          }),
        { what: "the new password to work on B", timeoutMs: TIMEOUTS.eventually, intervalMs: 200 },
      );
      await onB.close();
      const old = await login(a.url, a.pubkey, "old-pw").catch((e) => e);
      assert.ok(old instanceof LoginRefusedError);
      assert.equal(old.code, "BAD_PASSWORD");
      const oldB = await login(b.url, b.pubkey, "old-pw").catch((e) => e);
      assert.ok(oldB instanceof LoginRefusedError);
      await using onA = await login(a.url, a.pubkey, "new-password");
      assert.equal(onA.userId, gina.userId);
    });
  },
});

Deno.test({
  name: "/accounts lists by glob and /regex/; a malformed pattern is a clear error, not a crash",
  async fn() {
    await withTempDir("socp_test_accounts_", async (dir) => {
      await using server = await startServer();
      const names = ["anna", "Anton", "bob", "bib", "carla"];
      const keys = ["user0", "user1", "user2", "user3", "user4"] as const;
      for (const [i, name] of names.entries()) {
        await using u = await connectUser(server.url, keys[i]!);
        assert.ok(isAck("REGISTER_OK")(await registerUser(u, name, "pw")));
      }
      const me = await writeClientConfig(dir, "me", "user5");
      await using client = await readyClient(server.url, me.path);
      const query = async (pattern: string) => {
        await client.line(`/accounts ${pattern}`);
        return await client.waitFor((e) => e.event === "accounts" || e.event === "error");
      };
      const names_ = (e: ClientEvent) => {
        assert.equal(e.event, "accounts", JSON.stringify(e));
        return (e.accounts as { username: string }[]).map((a) => a.username);
      };
      assert.deepEqual(names_(await query("an*")), ["anna", "Anton"]);
      assert.deepEqual(names_(await query("b?b")), ["bib", "bob"]);
      assert.deepEqual(names_(await query("[ac]*")), ["anna", "Anton", "carla"]);
      assert.deepEqual(names_(await query("/^b.b$/")), ["bib", "bob"]);
      assert.deepEqual(names_(await query("/(la|ton)$/")), ["Anton", "carla"]);
      assert.deepEqual(names_(await query("zz*")), []);

      const badGlob = await query("[abc");
      assert.equal(badGlob.event, "error");
      assert.equal(badGlob.code, "BAD_REQUEST");
      assert.match(String(badGlob.detail), /Malformed pattern "\[abc": "\[" at 1 is never closed/);
      const badRegex = await query("/(/");
      assert.equal(badRegex.code, "BAD_REQUEST");
      assert.match(String(badRegex.detail), /Malformed regular expression "\/\(\/"/);

      // The client and the session keep working.
      await client.line("/list");
      await client.waitFor("list");
      assert.deepEqual(names_(await query("*")), ["anna", "Anton", "bib", "bob", "carla"]);

      // Logged out, /accounts says to log in: servers list names only to identified users.
      await client.line("/logout");
      await client.waitFor(accountEvent("logged_out"));
      const loggedOut = await query("c*");
      assert.equal(loggedOut.event, "error");
      assert.match(String(loggedOut.detail), /Not logged in; log in first/);
      await client.line("/tell bob hi");
      assert.match(String((await client.waitFor("error")).detail), /Not logged in/);

      // Raw: the error on an identified connection; an anonymous one is refused.
      const raw = await accountsRequest(server.url, "/[/", server.pubkey);
      assert.equal(raw.type, "ERROR");
      assert.equal(raw.payload["code"], "BAD_REQUEST");
      const anonymous = await anonymousAccountsRequest(server.url, "*", server.pubkey);
      assert.equal(anonymous.payload["code"], "NOT_LOGGED_IN");
      assert.equal((await client.close()).code, 0);
    });
  },
});

/** Resolves with the one holder of `name` once every server lists the same single account. */
async function agreedHolder(
  nodes: readonly { url: string; pubkey: string }[],
  name: string,
): Promise<string> {
  let last: unknown[] = [];
  try {
    return await eventually(async () => {
      const lists = await Promise.all(nodes.map((n) => listAccounts(n.url, name, n.pubkey)));
      last = lists;
      const ids = new Set(lists.map((rows) => (rows.length === 1 ? rows[0]!.user_id : "?")));
      const [id] = ids;
      return ids.size === 1 && id !== "?" ? id : undefined;
    }, {
      what: `every server to list one account "${name}", the same`,
      timeoutMs: TIMEOUTS.eventually,
    });
  } catch (error) {
    throw new Error(`${(error as Error).message}; last lists: ${JSON.stringify(last)}`, {
      cause: error,
    });
  }
}

Deno.test({
  name:
    "one name registered on two servers at the same moment ends as one account on both; the loser can pick another",
  async fn() {
    await using mesh = await startMesh(2);
    const [a, b] = mesh.nodes as [typeof mesh.nodes[0], typeof mesh.nodes[0]];
    await using onA = await connectUser(a.url, "user0");
    await using onB = await connectUser(b.url, "user1");
    // Both frames are ready before either is sent, so they reach A and B together.
    const [fa, fb] = await Promise.all([
      registerEnvelope(onA, "Zed", "pw-a"),
      registerEnvelope(onB, "zed", "pw-b"),
    ]);
    onA.send(serializeEnvelope(fa));
    onB.send(serializeEnvelope(fb));
    const [ra, rb] = await Promise.all([onA.next(isRegisterAnswer), onB.next(isRegisterAnswer)]);
    const oks = [ra, rb].filter(isAck("REGISTER_OK")).length;
    assert.ok(oks >= 1, "at least one registration succeeded");
    for (const r of [ra, rb].filter((f) => f.type === "ERROR")) {
      assert.equal(r.payload["code"], "NAME_IN_USE"); // the other's record arrived first
    }

    const holder = await agreedHolder([a, b], "zed");
    const winner = holder === onA.userId ? onA : onB;
    const loser = winner === onA ? onB : onA;
    assert.equal(holder, winner.userId);
    if (oks === 2) {
      // Both were accepted locally: the loser is told that its name went elsewhere.
      const lost = await loser.nextError("NAME_IN_USE");
      assert.match(String(lost.payload["detail"]), /registered elsewhere first/);
    }

    // The winner's password logs in on both servers; the loser's does not.
    const winnerPw = winner === onA ? "pw-a" : "pw-b";
    const loserPw = winner === onA ? "pw-b" : "pw-a";
    const key = winner === onA ? "user0" : "user1";
    for (const node of [a, b]) {
      const refused = await loginUser(node.url, "ZED", loserPw, {
        serverPub: node.pubkey,
        key,
        userId: winner.userId,
      }).catch((e) => e);
      assert.ok(refused instanceof LoginRefusedError);
    }
    await winner.close();
    await using back = await loginUser(b.url, "zed", winnerPw, {
      serverPub: b.pubkey,
      key,
      userId: winner.userId,
    });
    assert.equal(back.userId, winner.userId);

    // The loser registers another name.
    const second = await registerUser(loser, "zed2", "pw");
    assert.ok(isAck("REGISTER_OK")(second), JSON.stringify(second.payload));
    for (const node of [a, b]) {
      const all = await waitForAccounts(node, "zed*", (r) => r.length === 2, "zed and zed2");
      assert.deepEqual(all.map((r) => r.user_id).sort(), [onA.userId, onB.userId].sort());
    }
  },
});

Deno.test({
  name:
    "two servers that each accepted one name while apart agree when they link: the earlier registration keeps it",
  async fn() {
    await withTempDir("socp_test_accounts_", async (dir) => {
      // Two standalone servers of one server group: nothing links them yet.
      const group = [await fixturePubkey("server0"), await fixturePubkey("server1")];
      for (const name of ["x", "y"]) {
        await Deno.mkdir(join(dir, name));
        await Deno.writeTextFile(join(dir, name, "bootstrap.yaml"), bootstrapYaml([], group));
      }
      await using x = await startServer({ dataDir: join(dir, "x"), serverKey: "server0" });
      await using y = await startServer({ dataDir: join(dir, "y"), serverKey: "server1" });
      const first = await connectUser(x.url, "user0");
      assert.ok(isAck("REGISTER_OK")(await registerUser(first, "Yara", "pw-first")));
      await first.close();
      await using second = await connectUser(y.url, "user1");
      assert.ok(isAck("REGISTER_OK")(await registerUser(second, "yara", "pw-second")));
      assert.equal((await listAccounts(y.url, "yara", y.pubkey))[0]!.user_id, second.userId);

      // X restarts with Y as its introducer; the directories merge.
      await Deno.writeTextFile(
        join(x.dataDir, "bootstrap.yaml"),
        bootstrapYaml([{ host: "127.0.0.1", port: y.port, pubkey: y.pubkey }], group),
      );
      await x.restart();
      const lost = await second.nextError("NAME_IN_USE");
      assert.match(
        String(lost.payload["detail"]),
        /The name "yara" was registered elsewhere first/,
      );
      assert.equal(await agreedHolder([x, y], "yara"), first.userId);
      const refused = await loginUser(y.url, "yara", "pw-second", {
        serverPub: y.pubkey,
        key: "user1",
        userId: second.userId,
      }).catch((e) => e);
      assert.ok(refused instanceof LoginRefusedError);
      await using back = await loginUser(y.url, "YARA", "pw-first", {
        serverPub: y.pubkey,
        key: "user0",
        userId: first.userId,
      });
      assert.equal(back.userId, first.userId);
      assert.ok(isAck("REGISTER_OK")(await registerUser(second, "yara2", "pw")));
    });
  },
});

Deno.test({
  name: "/delete-account frees the name everywhere and drops queued messages on every server",
  async fn() {
    await withTempDir("socp_test_accounts_", async (dir) => {
      await using mesh = await startMesh(2);
      const [a, b] = mesh.nodes as [typeof mesh.nodes[0], typeof mesh.nodes[0]];
      const hanna = await connectUser(a.url, "user2");
      assert.ok(isAck("REGISTER_OK")(await registerUser(hanna, "hanna", "pw")));
      await hanna.close();
      await waitForAccounts(b, "hanna", (r) => r.length === 1 && !r[0]!.online, "hanna on B");

      // A DM for hanna waits in B's queue.
      await using ivan = await connectUser(b.url, "user3");
      await ivan.dm(hanna, "for the old hanna");
      await ivan.next(isAck("QUEUED"));
      await ivan.close();

      // B is down while hanna logs in on A and deletes the account.
      await b.kill();
      const config = join(dir, "hanna.json");
      {
        await using client = await readyClient(a.url, config, {
          args: ["--login", "hanna"],
          passwords: ["pw"],
        });
        await client.line("/delete-account");
        await client.line("wrong");
        const wrong = await client.waitFor("error");
        assert.equal(wrong.code, "BAD_PASSWORD");
        await client.line("/delete-account");
        await client.line("pw");
        await client.waitFor(accountEvent("deleted", "hanna"));
        await client.waitFor(accountEvent("logged_out"));
        await client.line("/list");
        assert.match(String((await client.waitFor("error")).detail), /Not logged in/);
        assert.equal((await client.close()).code, 0);
      }
      assert.deepEqual(await listAccounts(a.url, "hanna", a.pubkey), []);
      const gone = await loginUser(a.url, "hanna", "pw", {
        serverPub: a.pubkey,
        key: "user2",
        userId: hanna.userId,
      }).catch((e) => e);
      assert.ok(gone instanceof LoginRefusedError);
      assert.equal(gone.code, "BAD_PASSWORD");

      // B comes back, catches up with the tombstone: the name is free there too.
      await b.restart({ samePort: true });
      await mesh.waitFullyLinked();
      await waitForAccounts(b, "hanna", (r) => r.length === 0, "hanna gone from B");

      // The old identity (its key still known to the test) finds no queued message on B.
      await using ghost = await connectUser(b.url, "user2", { userId: hanna.userId });
      await ghost.expectNone("USER_DELIVER", 1500);

      // Another identity takes the name, on B, and can log in with it on A.
      await using newcomer = await connectUser(b.url, "user4");
      assert.ok(isAck("REGISTER_OK")(await registerUser(newcomer, "Hanna", "new")));
      await newcomer.close();
      await waitForAccounts(a, "hanna", (r) => r[0]?.user_id === newcomer.userId, "new on A");
      await using back = await loginUser(a.url, "hanna", "new", {
        serverPub: a.pubkey,
        key: "user4",
        userId: newcomer.userId,
      });
      assert.equal(back.userId, newcomer.userId);
    });
  },
});

Deno.test({
  name: "an idle client is logged out after --idle-timeout-seconds with a TIMEOUT error",
  async fn() {
    await withTempDir("socp_test_accounts_", async (dir) => {
      await using server = await startServer({ args: ["--idle-timeout-seconds", "1"] });
      const me = await writeClientConfig(dir, "idle", "user0");
      await using client = await readyClient(server.url, me.path);
      const timeout = await client.waitFor(errorEvent("TIMEOUT"));
      assert.equal(timeout.source, "server");
      assert.equal(timeout.detail, "Logged out after 1 s without activity");
      const closed = await client.waitFor(errorEvent("CONNECTION_CLOSED"));
      assert.match(String(closed.detail), /connection closed \(1000\): Idle timeout/);
      assert.equal((await client.status).code, 2);

      // Activity keeps a session alive.
      await using busy = await readyClient(server.url, me.path);
      for (let i = 0; i < 4; i++) {
        await delay(400);
        await busy.line("/list");
        await busy.waitFor("list");
      }
      assert.equal(busy.events().filter((e) => e.event === "error").length, 0);
    });
  },
});

Deno.test({
  name: "the locally generated config (no account) still connects, chats and lists accounts",
  async fn() {
    await withTempDir("socp_test_accounts_", async (dir) => {
      await using server = await startServer();
      const one: ClientConfigFile = await writeClientConfig(dir, "one", "user0");
      const two = await writeClientConfig(dir, "two", "user1");
      await using c1 = await readyClient(server.url, one.path);
      await using c2 = await readyClient(server.url, two.path);
      await c1.waitFor((e) => e.event === "presence" && e.user_id === two.userId);
      await c1.line("/tell two no account needed");
      assert.equal((await c2.waitFor("dm")).text, "no account needed");
      await c1.line("/accounts *");
      assert.deepEqual((await c1.waitFor("accounts")).accounts, []);
      await c1.line("/passwd");
      assert.match(String((await c1.waitFor("error")).detail), /has no account; \/register/);
      const config = JSON.parse(await Deno.readTextFile(one.path));
      assert.equal(config.user_id, one.userId);
      assert.equal(config.account, undefined);
    });
  },
});
