/**
 * Tests of groups.ts: `/group` parsing, GROUP_CREATE / GROUP_CHANGE / GROUP_LIST, sending one
 * tagged MSG_DIRECT per member, `/file <group>`, and receiving group messages, files and
 * GROUP_EVENTs.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import {
  decryptText,
  encodePublicKey,
  encryptText,
  type Envelope,
  type KeyPair,
  sha256Hex,
  signContent,
  verifyContent,
} from "../shared/mod.ts";
import {
  advertise,
  connected,
  fixtureKeyPair,
  type Harness,
  IDS,
  rejectsWith,
} from "./_test_util.ts";
import { CommandError, ServerError } from "./errors.ts";
import { AES_CHUNK_BYTES, FILE_AES_CAP, FILE_AES_ENC, FILE_CHUNK_BYTES } from "./file_transfer.ts";
import { parseGroupCommand, tagGroupText, untagGroupText } from "./groups.ts";

const GROUP_ID = "44444444-4444-4444-8444-444444444444";

function group(members: string[], creator: string = IDS.alice, version = 1) {
  return {
    group_id: GROUP_ID,
    name: "team",
    creator_id: creator,
    created_at: 1,
    version,
    members: [...members].sort(),
  };
}

/** Frames the client sends until its barrier (a PUBKEY_REQUEST for itself), which is answered. */
async function untilBarrier(h: Harness): Promise<Envelope[]> {
  const frames: Envelope[] = [];
  for (;;) {
    const env = await h.server.next();
    if (env.type === "PUBKEY_REQUEST" && env.payload["user_id"] === IDS.alice) {
      await h.server.send("PUBKEY_RESPONSE", {
        user_id: IDS.alice,
        pubkey: encodePublicKey(h.keys.publicKey),
      });
      return frames;
    }
    frames.push(env);
  }
}

async function members(h: Harness): Promise<{ bob: KeyPair; carol: KeyPair }> {
  return {
    bob: await advertise(h, IDS.bob, "bob", "user1"),
    carol: await advertise(h, IDS.carol, "carol", "user2"),
  };
}

Deno.test("parseGroupCommand() reads every subcommand and explains mistakes", () => {
  assert.deepEqual(parseGroupCommand("create team bob 'carol smith' -- hi -- all"), {
    action: "create",
    name: "team",
    users: ["bob", "carol smith"],
    first: "hi -- all",
  });
  assert.deepEqual(parseGroupCommand("create team bob"), {
    action: "create",
    name: "team",
    users: ["bob"],
  });
  assert.deepEqual(parseGroupCommand("SEND team  hello  there"), {
    action: "send",
    name: "team",
    text: "hello  there",
  });
  assert.deepEqual(parseGroupCommand("list"), { action: "list" });
  assert.deepEqual(parseGroupCommand(""), { action: "help" });
  assert.deepEqual(parseGroupCommand("remove team bob"), {
    action: "remove",
    name: "team",
    user: "bob",
  });
  assert.throws(() => parseGroupCommand("create team"), /at least one <user>/);
  assert.throws(() => parseGroupCommand("create team bob --"), /Nothing after --/);
  assert.throws(() => parseGroupCommand("add team"), /Missing <user>.*\/group add/);
  assert.throws(() => parseGroupCommand("leave a b"), /Too many arguments/);
  assert.throws(() => parseGroupCommand("dance team"), /Unknown \/group subcommand "dance"/);
});

Deno.test("tagGroupText() binds plaintext to one group", () => {
  assert.equal(untagGroupText("g", tagGroupText("g", "[group:x] hi")), "[group:x] hi");
  assert.equal(untagGroupText("g", "hi"), undefined);
});

Deno.test("create() sends GROUP_CREATE with member ids, then the first message to each member", async () => {
  await using h = await connected();
  const keys = await members(h);
  const creating = h.session.group({
    action: "create",
    name: "team",
    users: ["bob", "carol", "alice"],
    first: "welcome",
  });
  const create = await h.server.nextOf("GROUP_CREATE");
  assert.deepEqual(create.payload, { name: "team", members: [IDS.bob, IDS.carol] });
  await h.server.send("GROUP_EVENT", {
    group: group([IDS.alice, IDS.bob, IDS.carol]),
    action: "created",
    user_id: IDS.alice,
    by: IDS.alice,
  });
  await h.server.send("ACK", {
    msg_ref: "GROUP_OK",
    group: group([IDS.alice, IDS.bob, IDS.carol]),
  });
  const frames = await untilBarrier(h);
  await creating;
  const dms = frames.filter((f) => f.type === "MSG_DIRECT");
  assert.deepEqual(dms.map((f) => f.to), [IDS.bob, IDS.carol]);
  for (const f of dms) {
    assert.equal(f.payload["group_id"], GROUP_ID);
    const key = f.to === IDS.bob ? keys.bob : keys.carol;
    const plain = await decryptText(key.privateKey, f.payload["ciphertext"] as string);
    assert.equal(untagGroupText(GROUP_ID, plain), "welcome");
  }
  const change = await h.events.wait("group_change");
  assert.deepEqual([change.action, change.by_self], ["created", true]);
  const sent = await h.events.wait("group_sent");
  assert.deepEqual([sent.group, sent.recipients, sent.queued], ["team", 2, 0]);
});

Deno.test("create() reports a taken name clearly", async () => {
  await using h = await connected();
  await members(h);
  const creating = h.session.group({ action: "create", name: "team", users: ["bob"] });
  await h.server.nextOf("GROUP_CREATE");
  await h.server.send("ERROR", {
    code: "NAME_IN_USE",
    detail: 'A group named "team" exists already',
  });
  const e = await rejectsWith(() => creating, ServerError, "exists already; choose another name");
  assert.equal(e.code, "NAME_IN_USE");
});

Deno.test("send() asks for the current members and reports who blocked us and who is offline", async () => {
  await using h = await connected();
  await members(h);
  await h.server.send("USER_REMOVE", { user_id: IDS.carol }, { to: "*" });
  const sending = h.session.group({ action: "send", name: "TEAM", text: "x".repeat(900) });
  await h.server.nextOf("GROUP_LIST_REQUEST");
  await h.server.send("GROUP_LIST", { groups: [group([IDS.alice, IDS.bob, IDS.carol])] });
  // Bob blocked alice: his copies are refused; carol is offline: hers are queued.
  let bobRefused = false;
  const frames: Envelope[] = [];
  for (;;) {
    const env = await h.server.next();
    if (env.type === "PUBKEY_REQUEST" && env.payload["user_id"] === IDS.alice) {
      await h.server.send("PUBKEY_RESPONSE", {
        user_id: IDS.alice,
        pubkey: encodePublicKey(h.keys.publicKey),
      });
      break;
    }
    frames.push(env);
    if (env.to === IDS.bob && !bobRefused) {
      bobRefused = true;
      await h.server.send("ERROR", {
        code: "BLOCKED",
        detail: "Not delivered: bob has blocked you",
      });
    }
    if (env.to === IDS.carol) {
      await h.server.send("ACK", { msg_ref: "QUEUED", user_id: IDS.carol });
    }
  }
  await sending;
  assert.equal(frames.filter((f) => f.to === IDS.carol).length, 3, "900 bytes: three pieces");
  const refused = await h.events.wait("not_delivered");
  assert.deepEqual([refused.to, refused.kind, refused.group], [IDS.bob, "group", "team"]);
  const sent = await h.events.wait("group_sent");
  assert.deepEqual([sent.recipients, sent.parts, sent.queued], [1, 3, 1]);
  assert.equal(h.events.of("queued").length, 0, "queued copies are counted, not listed");
  assert.equal(h.events.of("error").length, 0);
});

Deno.test("send() to a group we are not in is a clear error", async () => {
  await using h = await connected();
  const sending = h.session.group({ action: "send", name: "nope", text: "hi" });
  await h.server.nextOf("GROUP_LIST_REQUEST");
  await h.server.send("GROUP_LIST", { groups: [] });
  await rejectsWith(() => sending, CommandError, 'You are not in a group named "nope"');
});

Deno.test("remove() is refused locally for members who did not create the group", async () => {
  await using h = await connected();
  await members(h);
  const removing = h.session.group({ action: "remove", name: "team", user: "carol" });
  await h.server.nextOf("GROUP_LIST_REQUEST");
  await h.server.send("GROUP_LIST", { groups: [group([IDS.alice, IDS.bob, IDS.carol], IDS.bob)] });
  await rejectsWith(() => removing, CommandError, "Only the creator of team");
});

/** Delivers a group message from `sender` as its server would. */
async function deliver(
  h: Harness,
  sender: { id: string; key: KeyPair },
  plaintext: string,
  groupId: string = GROUP_ID,
): Promise<void> {
  const ciphertext = await encryptText(h.keys.publicKey, plaintext);
  const ts = Date.now();
  const content_sig = await signContent(sender.key.privateKey, {
    ciphertext,
    from: sender.id,
    to: IDS.alice,
    ts,
  });
  await h.server.send("USER_DELIVER", {
    ciphertext,
    sender: sender.id,
    sender_pub: encodePublicKey(sender.key.publicKey),
    content_sig,
    group_id: groupId,
  }, { ts });
}

Deno.test("a group message is shown after GROUP_EVENT, only when its tag and sender check out", async () => {
  await using h = await connected();
  const keys = await members(h);
  await h.server.send("GROUP_EVENT", {
    group: group([IDS.alice, IDS.bob, IDS.carol], IDS.bob),
    action: "created",
    user_id: IDS.bob,
    by: IDS.bob,
  });
  await deliver(h, { id: IDS.bob, key: keys.bob }, tagGroupText(GROUP_ID, "hello team"));
  const added = await h.events.wait("group_change");
  assert.deepEqual([added.action, added.self, added.by_name], ["created", false, "bob"]);
  const msg = await h.events.wait("group_message");
  assert.deepEqual([msg.group, msg.from_name, msg.text, msg.verified], [
    "team",
    "bob",
    "hello team",
    true,
  ]);
  // The tag inside the encryption names another group: not shown.
  await deliver(h, { id: IDS.bob, key: keys.bob }, tagGroupText(IDS.server, "moved"));
  await h.events.wait("warn", (w) => w.text.includes("not inside its encryption"));
  assert.equal(h.events.of("group_message").length, 1);
});

Deno.test("a group message from a non-member is dropped after checking with the server", async () => {
  await using h = await connected();
  const keys = await members(h);
  await deliver(h, { id: IDS.carol, key: keys.carol }, tagGroupText(GROUP_ID, "let me in"));
  await h.server.nextOf("GROUP_LIST_REQUEST");
  await h.server.send("GROUP_LIST", { groups: [group([IDS.alice, IDS.bob])] });
  const warn = await h.events.wait("warn", (w) => w.text.includes("Dropped a group message"));
  assert.match(warn.text, /carol .*not a member of team/);
  assert.equal(h.events.of("group_message").length, 0);
});

/** Advertises a user whose client announced {@linkcode FILE_AES_CAP}. */
async function advertiseAes(h: Harness, userId: string, name: string, key: "user1" | "user2") {
  const pair = await fixtureKeyPair(key);
  await h.server.send("USER_ADVERTISE", {
    user_id: userId,
    server_id: h.server.id,
    meta: { display_name: name, pubkey: encodePublicKey(pair.publicKey), caps: [FILE_AES_CAP] },
  }, { to: "*" });
  await h.events.wait("presence", (e) => e.user_id === userId && e.online);
  return pair;
}

/** Answers the next GROUP_LIST_REQUEST with `groups`. */
async function answerGroupList(h: Harness, groups: ReturnType<typeof group>[]): Promise<void> {
  await h.server.nextOf("GROUP_LIST_REQUEST");
  await h.server.send("GROUP_LIST", { groups });
}

/** Delivers frames to a receiver as a socp server would: server-signed, payload plus sender. */
async function relay(to: Harness, frames: Envelope[]): Promise<void> {
  for (const f of frames) {
    await to.server.send(f.type, { ...f.payload, sender: f.from }, { to: f.to, ts: f.ts });
  }
}

Deno.test("`/file <group>` sends each member the /file <user> form: AES-GCM or spec chunks, all with group_id", async () => {
  const src = await Deno.makeTempDir();
  try {
    const data = crypto.getRandomValues(new Uint8Array(2000));
    const path = join(src, "plan.bin");
    await Deno.writeFile(path, data);
    await using alice = await connected();
    await advertiseAes(alice, IDS.bob, "bob", "user1"); // takes AES-GCM chunks
    await advertise(alice, IDS.carol, "carol", "user2"); // announced nothing
    const team = group([IDS.alice, IDS.bob, IDS.carol]);

    const sending = alice.session.sendFile("team", path);
    await answerGroupList(alice, [team]); // finding the group
    await answerGroupList(alice, [team]); // the members just before sending
    const frames = (await untilBarrier(alice)).filter((f) => f.type.startsWith("FILE_"));
    await sending;
    assert.deepEqual(alice.events.of("warn"), []);
    assert.ok(frames.every((f) => f.payload["group_id"] === GROUP_ID), "group_id on every frame");
    const toBob = frames.filter((f) => f.to === IDS.bob);
    const toCarol = frames.filter((f) => f.to === IDS.carol);
    assert.equal(toBob.length + toCarol.length, frames.length, "nobody else got a copy");

    // Bob: a per-file key wrapped for him, chunks of up to 44 KiB (one here), a signed FILE_END.
    assert.deepEqual(toBob.map((f) => f.type), ["FILE_START", "FILE_CHUNK", "FILE_END"]);
    assert.ok(data.length <= AES_CHUNK_BYTES);
    const [bobStart, , bobEnd] = toBob as [Envelope, Envelope, Envelope];
    assert.deepEqual(
      [bobStart.payload["enc"], bobStart.payload["mode"], bobStart.payload["sha256"]],
      [FILE_AES_ENC, "dm", await sha256Hex(data)],
    );
    assert.equal(typeof bobStart.payload["key"], "string");
    assert.deepEqual([bobEnd.payload["size"], typeof bobEnd.payload["file_sig"]], [
      data.length,
      "string",
    ]);

    // Carol: the spec's 446-byte RSA-OAEP chunks with the fields Group 17's client reads.
    const carolStart = toCarol[0]!;
    assert.equal(carolStart.payload["enc"], undefined);
    assert.equal(typeof carolStart.payload["sender_pub"], "string");
    const chunks = toCarol.filter((f) => f.type === "FILE_CHUNK");
    const total = Math.ceil(data.length / FILE_CHUNK_BYTES);
    assert.equal(chunks.length, total);
    assert.ok(chunks.every((c) => c.payload["total"] === total && c.payload["sender_pub"]));
    assert.equal(
      await verifyContent(alice.keys.publicKey, String(chunks[2]!.payload["content_sig"]), {
        ciphertext: String(chunks[2]!.payload["ciphertext"]),
        from: IDS.alice,
        to: IDS.carol,
        extra: [String(carolStart.payload["file_id"]), 2, total],
      }, [chunks[2]!.ts]),
      "A",
    );
    const sent = await alice.events.wait("group_sent");
    assert.deepEqual([sent.group, sent.file, sent.size, sent.recipients], [
      "team",
      "plan.bin",
      data.length,
      2,
    ]);

    // Both copies arrive intact, each shown as a file in the group.
    for (
      const [user, userId, name, copy] of [
        ["user1", IDS.bob, "bob", toBob],
        ["user2", IDS.carol, "carol", toCarol],
      ] as const
    ) {
      await using member = await connected({ user, userId, name });
      await advertise(member, IDS.alice, "alice", "user0");
      await relay(member, copy);
      await answerGroupList(member, [team]);
      const got = await member.events.wait("file");
      assert.ok(got.ok, got.reason);
      assert.deepEqual([got.from_name, got.group, got.group_id], ["alice", "team", GROUP_ID]);
      assert.deepEqual(await Deno.readFile(got.path!), data);
    }
  } finally {
    await Deno.remove(src, { recursive: true });
  }
});
