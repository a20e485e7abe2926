/**
 * The terminal client's social commands as real processes (`main.ts client --json`) across a
 * mesh of two real servers: `/whoelse`, `/whoelsesince`, `/block` and `/unblock` (DMs, files,
 * group messages, private-chat requests and presence; also after both servers restart),
 * `/random`, named groups with an offline member and a member who left, and peer-to-peer
 * private chats whose messages never pass through a server (the servers' metrics prove it).
 * The raw frames of the same features are tested in tests/social_server_test.ts.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import {
  type ClientConfigFile,
  type ClientEvent,
  type ClientNode,
  eventually,
  onlineEvent,
  readyClient,
  type ServerNode,
  startMesh,
  TIMEOUTS,
  writeClientConfig,
} from "./support/mod.ts";

/** A client of `node` as the user in `config`, once it printed `ready`. */
function clientOf(node: ServerNode, config: ClientConfigFile): Promise<ClientNode> {
  return readyClient(node.url, config.path, {
    onReady(event) {
      assert.equal(event.user_id, config.userId);
    },
  });
}

/** Matches an event of `name` whose fields include `fields`. */
function eventOf(
  name: string,
  fields: Record<string, unknown> = {},
): (e: ClientEvent) => boolean {
  return (e) => e.event === name && Object.entries(fields).every(([k, v]) => e[k] === v);
}

function offlineEvent(user: { userId: string }): (e: ClientEvent) => boolean {
  return (e) => e.event === "presence" && e.user_id === user.userId && e.online === false;
}

function ids(users: unknown): string[] {
  return (users as { user_id: string }[]).map((u) => u.user_id).sort();
}

/** `socp_frames_in_total{type="<type>"}` of a server, from GET /metrics. */
async function framesIn(node: ServerNode, type: string): Promise<number> {
  const response = await fetch(`http://${node.host}:${node.port}/metrics`);
  const text = await response.text();
  const m = new RegExp(`^socp_frames_in_total\\{type="${type}"\\} (\\d+)$`, "m").exec(text);
  return m ? Number(m[1]) : 0;
}

/** Runs `fn` with a temporary directory for client configs and files. */
async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "socp_test_social_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test({
  name: "socp client /whoelse, /whoelsesince and /random across two servers",
  async fn(t) {
    await withDir(async (dir) => {
      await using mesh = await startMesh(2);
      const [a, b] = mesh.nodes as [ServerNode, ServerNode];
      const cfg = {
        alice: await writeClientConfig(dir, "alice", "user0"),
        bob: await writeClientConfig(dir, "bob", "user1"),
        carol: await writeClientConfig(dir, "carol", "user2"),
        dave: await writeClientConfig(dir, "dave", "user3"),
        erin: await writeClientConfig(dir, "erin", "user4"),
      };
      await using alice = await clientOf(a, cfg.alice);
      await using bob = await clientOf(b, cfg.bob);
      await using carol = await clientOf(b, cfg.carol);
      await using dave = await clientOf(a, cfg.dave);
      await using erin = await clientOf(b, cfg.erin);
      for (const other of [cfg.bob, cfg.carol, cfg.dave, cfg.erin]) {
        await alice.waitFor(onlineEvent(other));
      }
      await dave.waitFor(onlineEvent(cfg.alice));
      await erin.waitFor(onlineEvent(cfg.alice));

      await t.step("/whoelse lists the others, not me and not who blocked me", async () => {
        await alice.line("/whoelse");
        const all = await alice.waitFor("whoelse");
        assert.deepEqual(
          ids(all.users),
          [cfg.bob, cfg.carol, cfg.dave, cfg.erin].map((c) => c.userId).sort(),
        );
        await dave.line("/block alice");
        await dave.waitFor(eventOf("blocks", { action: "blocked", user_id: cfg.alice.userId }));
        await alice.waitFor(offlineEvent(cfg.dave));
        await alice.line("/whoelse");
        const after = await alice.waitFor("whoelse");
        assert.deepEqual(
          ids(after.users),
          [cfg.bob, cfg.carol, cfg.erin].map((c) => c.userId).sort(),
        );
      });

      await t.step("/random never picks me, a user who blocked me, or one I blocked", async () => {
        await alice.line("/block erin");
        await alice.waitFor(eventOf("blocks", { action: "blocked", user_id: cfg.erin.userId }));
        const allowed = new Set([cfg.bob.userId, cfg.carol.userId]);
        const got = new Map<string, number>();
        for (let i = 0; i < 6; i++) {
          await alice.line(`/random lucky ${i}`);
          const random = await alice.waitFor("random");
          const to = String(random.to);
          assert.ok(allowed.has(to), `random went to ${random.to_name}`);
          got.set(to, (got.get(to) ?? 0) + 1);
        }
        // Every message arrived where the sender was told it went.
        for (const [client, config] of [[bob, cfg.bob], [carol, cfg.carol]] as const) {
          for (let i = 0; i < (got.get(config.userId) ?? 0); i++) {
            const dm = await client.waitFor(eventOf("dm", { from: cfg.alice.userId }));
            assert.match(String(dm.text), /^lucky \d$/);
          }
        }
        for (const client of [dave, erin]) {
          assert.ok(!client.events().some((e) => e.event === "dm"), "no DM for dave or erin");
        }
      });

      await t.step("/whoelsesince lists who left inside the window, not outside it", async () => {
        await carol.line("/quit");
        assert.equal((await carol.status).code, 0);
        await alice.waitFor(offlineEvent(cfg.carol));
        await alice.line("/whoelsesince 120");
        const recent = await alice.waitFor("whoelsesince");
        const users = recent.users as { user_id: string; online: boolean }[];
        const carolRow = users.find((u) => u.user_id === cfg.carol.userId);
        assert.equal(carolRow?.online, false, "carol left within the window");
        assert.equal(users.find((u) => u.user_id === cfg.bob.userId)?.online, true);
        assert.ok(!users.some((u) => u.user_id === cfg.alice.userId), "not me");
        assert.ok(!users.some((u) => u.user_id === cfg.dave.userId), "not who blocked me");
        await eventually(async () => {
          await alice.line("/whoelsesince 1");
          const since = await alice.waitFor("whoelsesince");
          return ids(since.users).includes(cfg.carol.userId) ? undefined : since;
        }, { what: "carol to fall out of a one-second window", intervalMs: 500 });
        await alice.line("/whoelsesince 3600");
        assert.ok(ids((await alice.waitFor("whoelsesince")).users).includes(cfg.carol.userId));
        await alice.line("/whoelsesince soon");
        const error = await alice.waitFor("error");
        assert.match(String(error.detail), /"soon" is not a number of seconds/);
      });
    });
  },
});

Deno.test({
  name:
    "socp client /block stops DMs, files, group messages, private-chat requests and presence, also after a restart; /unblock restores them",
  async fn(t) {
    await withDir(async (dir) => {
      await using mesh = await startMesh(2);
      const [a, b] = mesh.nodes as [ServerNode, ServerNode];
      const cfg = {
        alice: await writeClientConfig(dir, "alice", "user0"),
        mallory: await writeClientConfig(dir, "mallory", "user1"),
      };
      await using alice = await clientOf(a, cfg.alice);
      await using mallory = await clientOf(b, cfg.mallory);
      await mallory.waitFor(onlineEvent(cfg.alice));
      await alice.waitFor(onlineEvent(cfg.mallory));
      const path = join(dir, "note.txt");
      await Deno.writeTextFile(path, "a small file\n");
      const aliceId = cfg.alice.userId;

      await mallory.line("/group create crew alice");
      await alice.waitFor(eventOf("group_change", { group: "crew", action: "created" }));

      /** Everything mallory sends alice is refused with "not delivered: alice has blocked you". */
      const refusedAll = async (): Promise<void> => {
        const refused = (kind: string) =>
          mallory.waitFor(eventOf("not_delivered", { kind, to_name: "alice" }));
        await mallory.line(`/tell ${aliceId} let me in`);
        await refused("message");
        await mallory.line(`/file ${aliceId} ${path}`);
        await refused("message");
        await mallory.waitFor(eventOf("sent", { kind: "file" }));
        await mallory.line("/g crew hello crew");
        const group = await refused("group");
        assert.equal(group.group, "crew");
        await mallory.line(`/startprivate ${aliceId}`);
        const error = await mallory.waitFor("error");
        assert.match(String(error.detail), /is not online/);
        await mallory.line("/whoelse");
        assert.ok(!ids((await mallory.waitFor("whoelse")).users).includes(aliceId));
      };

      await t.step("a block hides alice and refuses what mallory sends", async () => {
        await alice.line("/block mallory");
        const blocked = await alice.waitFor(eventOf("blocks", { action: "blocked" }));
        assert.deepEqual(ids(blocked.blocked), [cfg.mallory.userId]);
        await mallory.waitFor(offlineEvent(cfg.alice));
        await refusedAll();
        await alice.line("/blocks");
        assert.deepEqual(
          ids((await alice.waitFor(eventOf("blocks", { action: "list" }))).blocked),
          [
            cfg.mallory.userId,
          ],
        );
      });

      await t.step("the block holds after both servers restart", async () => {
        await a.restart({ samePort: true });
        await b.restart({ samePort: true });
        await mesh.waitFullyLinked();
        await alice.waitFor("reconnected", 2 * TIMEOUTS.event);
        await mallory.waitFor("reconnected", 2 * TIMEOUTS.event);
        // Both servers know both users again (the link is up and presence went round).
        await eventually(async () => {
          await alice.line("/whoelse");
          const users = ids((await alice.waitFor("whoelse")).users);
          return users.includes(cfg.mallory.userId) ? users : undefined;
        }, { what: "alice to see mallory again", intervalMs: 300 });
        await refusedAll();
      });

      await t.step(
        "/unblock restores presence, DMs, files, group messages and requests",
        async () => {
          await alice.line("/unblock mallory");
          await alice.waitFor(eventOf("blocks", { action: "unblocked" }));
          await mallory.waitFor(onlineEvent(cfg.alice));
          await mallory.line("/tell alice thanks");
          assert.equal((await alice.waitFor("dm")).text, "thanks");
          await mallory.line("/g crew hello again");
          const msg = await alice.waitFor("group_message");
          assert.deepEqual([msg.group, msg.text, msg.from_name], [
            "crew",
            "hello again",
            "mallory",
          ]);
          await mallory.line(`/file alice ${path}`);
          const file = await alice.waitFor("file", 2 * TIMEOUTS.event);
          assert.equal(file.ok, true);
          await mallory.line("/startprivate alice");
          await alice.waitFor(eventOf("private", { action: "invited", peer: cfg.mallory.userId }));
          // While blocked, nothing got through to alice.
          const before = alice.events();
          assert.equal(before.filter((e) => e.event === "dm").length, 1);
          assert.equal(before.filter((e) => e.event === "group_message").length, 1);
          assert.equal(before.filter((e) => e.event === "file").length, 1);
          assert.equal(before.filter((e) => e.event === "private").length, 1);
        },
      );
    });
  },
});

Deno.test({
  name:
    "socp client group chats across servers: an offline member gets it at login, a member who left gets nothing more",
  async fn(t) {
    await withDir(async (dir) => {
      await using mesh = await startMesh(2);
      const [a, b] = mesh.nodes as [ServerNode, ServerNode];
      const cfg = {
        alice: await writeClientConfig(dir, "alice", "user0"),
        bob: await writeClientConfig(dir, "bob", "user1"),
        carol: await writeClientConfig(dir, "carol", "user2"),
      };
      await using alice = await clientOf(a, cfg.alice);
      await using bob = await clientOf(b, cfg.bob);
      await using carol = await clientOf(b, cfg.carol);
      await alice.waitFor(onlineEvent(cfg.bob));
      await alice.waitFor(onlineEvent(cfg.carol));

      await t.step("members are told they were added, then get the first message", async () => {
        await alice.line("/group create team bob carol -- hello team");
        for (const member of [bob, carol]) {
          const added = await member.waitFor("group_change");
          assert.deepEqual([added.action, added.group, added.by_name], [
            "created",
            "team",
            "alice",
          ]);
          const msg = await member.waitFor("group_message");
          assert.deepEqual([msg.group, msg.from_name, msg.text], ["team", "alice", "hello team"]);
          // The added line comes before the message.
          const order = member.events().map((e) => e.event);
          assert.ok(order.indexOf("group_change") < order.indexOf("group_message"));
        }
        const sent = await alice.waitFor("group_sent");
        assert.equal(sent.recipients, 2);
        await bob.line("/group create TEAM alice");
        const taken = await bob.waitFor("error");
        assert.equal(taken.code, "NAME_IN_USE");
        assert.match(String(taken.detail), /exists already/);
      });

      await t.step("an offline member gets the message when she logs in", async () => {
        await carol.close();
        await alice.waitFor(offlineEvent(cfg.carol));
        await alice.line("/g team while you were away");
        const sent = await alice.waitFor("group_sent");
        assert.deepEqual([sent.recipients, sent.queued], [2, 1]);
        assert.equal((await bob.waitFor("group_message")).text, "while you were away");
        await using carol2 = await clientOf(b, cfg.carol);
        const late = await carol2.waitFor("group_message");
        assert.deepEqual([late.group, late.text], ["team", "while you were away"]);
        await carol2.line("/group members team");
        const members = await carol2.waitFor("group_members");
        const group = members.group as { members: { user_id: string; creator: boolean }[] };
        assert.deepEqual(
          ids(group.members),
          [cfg.alice, cfg.bob, cfg.carol].map((c) => c.userId).sort(),
        );
        assert.equal(group.members.find((m) => m.creator)?.user_id, cfg.alice.userId);
        await carol2.line("/group remove team bob");
        assert.match(String((await carol2.waitFor("error")).detail), /Only the creator of team/);
        const file = join(dir, "plan.txt");
        await Deno.writeTextFile(file, "the plan\n");
        await alice.line(`/file team ${file}`);
        const sentFile = await alice.waitFor("group_sent", 2 * TIMEOUTS.event);
        assert.deepEqual([sentFile.file, sentFile.recipients], ["plan.txt", 2]);
        for (const member of [bob, carol2]) {
          const got = await member.waitFor("file", 2 * TIMEOUTS.event);
          assert.equal(got.ok, true);
          assert.equal(await Deno.readTextFile(String(got.path)), "the plan\n");
        }
        await carol2.close();
      });

      await t.step("a member who left gets nothing sent after", async () => {
        await bob.line("/group leave team");
        const left = await alice.waitFor(eventOf("group_change", { action: "left" }));
        assert.equal(left.user_id, cfg.bob.userId);
        await alice.line("/g team after bob left");
        const sent = await alice.waitFor("group_sent");
        assert.equal(sent.recipients, 1, "only carol (queued)");
        // A DM sent after it arrives; the group message never does.
        await alice.line("/tell bob marker");
        assert.equal((await bob.waitFor("dm")).text, "marker");
        assert.ok(
          !bob.events().some((e) => e.event === "group_message" && e.text === "after bob left"),
        );
        await alice.line("/group list");
        const list = await alice.waitFor("groups");
        const groups = list.groups as { name: string; members: unknown[] }[];
        assert.deepEqual(groups.map((g) => [g.name, g.members.length]), [["team", 2]]);
      });
    });
  },
});

Deno.test({
  name: "socp client private chat: a direct link whose messages never pass through a server",
  async fn(t) {
    await withDir(async (dir) => {
      await using mesh = await startMesh(2);
      const [a, b] = mesh.nodes as [ServerNode, ServerNode];
      const cfg = {
        alice: await writeClientConfig(dir, "alice", "user0"),
        bob: await writeClientConfig(dir, "bob", "user1"),
      };
      await using alice = await clientOf(a, cfg.alice);
      await using bob = await clientOf(b, cfg.bob);
      await alice.waitFor(onlineEvent(cfg.bob));
      await bob.waitFor(onlineEvent(cfg.alice));

      const open = async (by: ClientNode, to: ClientNode, byName: string, toName: string) => {
        await by.line(`/startprivate ${toName}`);
        const requested = await by.waitFor(eventOf("private", { action: "requested" }));
        assert.match(String(requested.address), /^127\.0\.0\.1:\d+$/);
        const invited = await to.waitFor(eventOf("private", { action: "invited" }));
        assert.equal(invited.address, requested.address);
        await to.line(`/accept ${byName}`);
        await by.waitFor(eventOf("private", { action: "opened" }));
        await to.waitFor(eventOf("private", { action: "opened" }));
      };

      await t.step("/private needs an open chat", async () => {
        await alice.line("/private bob not yet");
        assert.match(String((await alice.waitFor("error")).detail), /No private chat with bob/);
      });

      await t.step("messages go over the direct link; the servers see none of them", async () => {
        await open(alice, bob, "alice", "bob");
        const counts = async () =>
          await Promise.all(
            [a, b].flatMap((n) =>
              ["MSG_DIRECT", "SERVER_DELIVER", "MSG_PUBLIC_CHANNEL"].map((type) =>
                framesIn(n, type)
              )
            ),
          );
        const before = await counts();
        for (let i = 0; i < 3; i++) {
          await alice.line(`/private bob secret ${i}`);
          await bob.line(`/private alice reply ${i}`);
        }
        for (let i = 0; i < 3; i++) {
          const toBob = await bob.waitFor("private_message");
          assert.deepEqual([toBob.from, toBob.text], [cfg.alice.userId, `secret ${i}`]);
          const toAlice = await alice.waitFor("private_message");
          assert.deepEqual([toAlice.from, toAlice.text], [cfg.bob.userId, `reply ${i}`]);
        }
        assert.deepEqual(await counts(), before, "no message frame reached a server");
        assert.ok(!bob.events().some((e) => e.event === "dm"), "nothing arrived as a DM");
      });

      await t.step("/stopprivate closes it, and the peer is told", async () => {
        await alice.line("/stopprivate bob");
        const closed = await bob.waitFor(eventOf("private", { action: "closed" }));
        assert.deepEqual([closed.by_peer, closed.reason], [true, "alice closed it"]);
        await alice.waitFor(eventOf("private", { action: "closed" }));
        await bob.line("/private alice still there?");
        assert.match(String((await bob.waitFor("error")).detail), /No private chat with alice/);
      });

      await t.step("quitting closes it, and the peer is told", async () => {
        await open(bob, alice, "bob", "alice");
        await bob.line("/quit");
        const closed = await alice.waitFor(eventOf("private", { action: "closed" }));
        assert.deepEqual([closed.by_peer, closed.reason], [true, "bob quit"]);
        assert.equal((await bob.status).code, 0);
        await bob.close();
      });
    });
  },
});
