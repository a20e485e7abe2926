/**
 * The chat client's own features and rough edges, as real processes on real servers: `/nick`
 * through USER_UPDATE (also across a mesh), a sender named for a fresh `--login` config,
 * `/file ~/…`, commands refused before a password is asked, new passwords of 8 characters,
 * `--forget-server-key`, the messages kept on the user's device.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import {
  accountEvent,
  type ClientEvent,
  type ClientNode,
  clientRegister,
  connectUser,
  onlineEvent,
  readyClient,
  startClient,
  startMesh,
  startServer,
  TIMEOUTS,
  withTempDir,
  writeClientConfig,
} from "./support/mod.ts";

const presenceOf = (id: string) => (e: ClientEvent) => e.event === "presence" && e.user_id === id;

Deno.test({
  name: "USER_UPDATE renames a user everywhere in the mesh; bad names and floods are refused",
  async fn() {
    await using mesh = await startMesh(2);
    const [a, b] = mesh.nodes as [typeof mesh.nodes[0], typeof mesh.nodes[0]];
    await using alice = await connectUser(a.url, "user0", {
      serverPub: a.pubkey,
      displayName: "alice",
    });
    await using bob = await connectUser(a.url, "user1", {
      serverPub: a.pubkey,
      displayName: "bob",
    });
    await using carol = await connectUser(b.url, "user2", {
      serverPub: b.pubkey,
      displayName: "carol",
    });
    const advertOf = (name: string) => (f: { type: string; payload: Record<string, unknown> }) =>
      f.type === "USER_ADVERTISE" && f.payload["user_id"] === alice.userId &&
      (f.payload["meta"] as Record<string, unknown>)?.["display_name"] === name;
    await carol.next(advertOf("alice"), TIMEOUTS.meshLinked);

    await alice.sendFrame("USER_UPDATE", a.serverId, { display_name: "  Alicia  " });
    const ack = await alice.next((f) => f.type === "ACK");
    assert.equal(ack.payload["msg_ref"], "USER_UPDATE_OK");
    assert.equal(ack.payload["display_name"], "Alicia");
    const local = await bob.next(advertOf("Alicia"));
    assert.equal(local.from, a.serverId, "re-advertised by alice's server");
    const remote = await carol.next(advertOf("Alicia"));
    assert.equal(remote.from, b.serverId, "and by the other server, to its own users");
    await carol.sendFrame("LIST_REQUEST", b.serverId, {});
    const list = await carol.next("LIST_RESPONSE");
    assert.equal((list.payload["display_names"] as Record<string, string>)[alice.userId], "Alicia");
    // Users who come later learn the new name from their server's catch-up.
    await using dave = await connectUser(a.url, "user3", { serverPub: a.pubkey });
    await dave.next(advertOf("Alicia"));
    await using erin = await connectUser(b.url, "user4", { serverPub: b.pubkey });
    await erin.next(advertOf("Alicia"));

    await alice.sendFrame("USER_UPDATE", a.serverId, { display_name: "a\u001b[2Jb" });
    const bad = await alice.next((f) => f.type === "ERROR");
    assert.equal(bad.payload["code"], "BAD_REQUEST");
    for (const n of [1, 2, 3]) {
      await alice.sendFrame("USER_UPDATE", a.serverId, { display_name: `A${n}` });
    }
    const limited = await alice.next((f) =>
      f.type === "ERROR" && f.payload["code"] === "RATE_LIMIT"
    );
    assert.match(String(limited.payload["detail"]), /name changes per minute/);
  },
});

/** A client with `--json` whose `ready` event has arrived; `env` for its process. */
async function chatClient(
  url: string,
  config: string,
  options: { args?: string[]; env?: Record<string, string>; passwords?: string[] } = {},
): Promise<ClientNode> {
  const client = await startClient(url, config, options.args ?? [], {
    ...(options.env ? { env: options.env } : {}),
  });
  try {
    for (const p of options.passwords ?? []) await client.line(p);
    await client.waitFor("ready");
  } catch (error) {
    await client.close().catch(() => {});
    throw error;
  }
  return client;
}

Deno.test({
  name: "socp client: /nick, names for a fresh --login, /file ~/, and refusals before passwords",
  async fn(t) {
    await withTempDir("socp_test_chat_", async (dir) => {
      await using server = await startServer();
      const aliceConfig = await writeClientConfig(dir, "alice", "user0");
      const bobConfig = await writeClientConfig(dir, "bob", "user1");
      const home = join(dir, "home");
      await Deno.mkdir(home);
      await using alice = await chatClient(server.url, aliceConfig.path, { env: { HOME: home } });

      await t.step("/register checks the name and the password length before it asks", async () => {
        await using bob = await readyClient(server.url, bobConfig.path);
        const short = await clientRegister(bob, "bob", "short");
        assert.match(String(short.detail), /at least 8 characters; nothing changed/);
        const ok = await clientRegister(bob, "bob", "correct horse");
        assert.ok(accountEvent("registered")(ok), JSON.stringify(ok));
        // A taken name is refused at once: the next line is a command, not a password.
        await alice.line("/register BOB");
        await alice.line("/list");
        const taken = await alice.waitFor("error");
        assert.equal(taken.code, "NAME_IN_USE");
        assert.match(String(taken.detail), /"bob" is already taken/);
        await alice.waitFor("list");
        // Logged in as bob, /login bob is refused before a password is read.
        await bob.line("/login bob");
        await bob.line("/tell nobody hi");
        const refused = await bob.waitFor("error");
        assert.match(String(refused.detail), /logged in to "bob" already/);
        const next = await bob.waitFor("error");
        assert.match(String(next.detail), /Unknown user "nobody"/, "the next line was a command");
        await bob.line("/quit");
        assert.equal((await bob.status).code, 0);
      });

      await t.step(
        "a message queued for bob names alice in bob's fresh --login config",
        async () => {
          await alice.line("/tell bob sent while you were away");
          await alice.waitFor("queued");
          await alice.line("/quit");
          assert.equal((await alice.status).code, 0);
          const history = await Deno.readTextFile(join(dir, "alice.history.json"));
          assert.ok(history.includes("sent while you were away"), "kept on alice's device");
          await using fresh = await chatClient(server.url, join(dir, "laptop.json"), {
            args: ["--login", "bob"],
            passwords: ["correct horse"],
          });
          const dm = await fresh.waitFor("dm");
          assert.equal(dm.text, "sent while you were away");
          assert.equal(dm.from, aliceConfig.userId);
          assert.equal(dm.from_name, "alice", "named, not only an id");
          assert.ok(typeof dm.ts === "number" && dm.ts <= Date.now(), "with when it was sent");
        },
      );

      await t.step("/nick renames alice for bob at once, and /file ~/ finds her file", async () => {
        await using alice2 = await chatClient(server.url, aliceConfig.path, {
          env: { HOME: home },
        });
        await using bob = await chatClient(server.url, bobConfig.path);
        await alice2.waitFor(onlineEvent(bobConfig));
        await alice2.line("/nick Alicia");
        const renamed = await bob.waitFor((e) =>
          presenceOf(aliceConfig.userId)(e) && !!e.previous_name
        );
        assert.equal(renamed.display_name, "Alicia");
        assert.equal(renamed.previous_name, "alice");
        await bob.line("/tell Alicia hello Alicia");
        assert.equal((await alice2.waitFor("dm")).text, "hello Alicia");
        const saved = JSON.parse(await Deno.readTextFile(aliceConfig.path));
        assert.equal(saved.display_name, "Alicia");

        const bytes = new Uint8Array(3000).map((_, i) => i % 251);
        await Deno.writeFile(join(home, "photo.bin"), bytes);
        await alice2.line("/file bob ~/photo.bin");
        const file = await bob.waitFor("file", 2 * TIMEOUTS.event);
        assert.equal(file.ok, true, JSON.stringify(file));
        assert.deepEqual(await Deno.readFile(String(file.path)), bytes);
        const sent = await alice2.waitFor((e) => e.event === "sent" && e.kind === "file");
        assert.equal(sent.unconfirmed, undefined, "reported sent once, confirmed");
        assert.deepEqual(
          alice2.events().filter((e) => e.event === "warn"),
          [],
          "no warning about the file",
        );
      });
    });
  },
});

Deno.test({
  name:
    "socp client --forget-server-key: a server with a new key is accepted once the user says so",
  async fn() {
    await withTempDir("socp_test_forget_", async (dir) => {
      const config = await writeClientConfig(dir, "ann", "user0");
      let port: number;
      {
        await using first = await startServer({ serverKey: "server0" });
        port = first.port;
        await using ann = await chatClient(first.url, config.path);
        await ann.line("/quit");
        await ann.status;
      }
      await using second = await startServer({ serverKey: "server1", port });
      const url = second.url;
      const refused = await startClient(url, config.path);
      const error = await refused.waitFor("error");
      assert.equal(error.code, "SERVER_KEY_CHANGED");
      assert.match(String(error.detail), new RegExp(`--forget-server-key ${url}`));
      assert.equal((await refused.status).code, 1);
      await refused.close();

      await using ann = await startClient(url, config.path, ["--forget-server-key", url]);
      const forgot = await ann.waitFor((e) => e.event === "info" && /^Forgot/.test(String(e.text)));
      const pinned = await ann.waitFor((e) => e.event === "info" && /^Pinned/.test(String(e.text)));
      const oldFp = /fp ([0-9a-f:]+)\)/.exec(String(forgot.text))![1]!;
      assert.match(String(pinned.text), new RegExp(`replacing the forgotten key fp ${oldFp}$`));
      const ready = await ann.waitFor("ready");
      assert.equal(ready.pinned, true);
      assert.equal((await ann.close()).code, 0);
      const saved = JSON.parse(await Deno.readTextFile(config.path));
      assert.equal(saved.servers[url].pubkey, second.pubkey);
    });
  },
});
