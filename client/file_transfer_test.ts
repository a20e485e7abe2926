import assert from "node:assert/strict";
import { join } from "node:path";
import {
  encodePublicKey,
  encryptBlock,
  type Envelope,
  type JsonObject,
  serializeEnvelope,
  sha256Hex,
  verifyContent,
  verifyEnvelope,
} from "../shared/mod.ts";
import { advertise, connected, fixtureKeyPair, type Harness, harness, IDS } from "./_test_util.ts";
import { formatEvent } from "./events.ts";
import {
  AES_CHUNK_BYTES,
  chunkBytes,
  FILE_AES_CAP,
  FILE_CHUNK_BYTES,
  type FileManifest,
  FileReceiver,
  MAX_FILE_BYTES,
  sanitizeFileName,
  saveUnique,
  sendFileFrames,
} from "./file_transfer.ts";

Deno.test("sanitizeFileName() strips folders, traversal and control characters", () => {
  assert.equal(sanitizeFileName("../../etc/passwd"), "passwd");
  assert.equal(sanitizeFileName("..\\..\\windows\\win.ini"), "win.ini");
  assert.equal(sanitizeFileName("/abs/path/report.pdf"), "report.pdf");
  assert.equal(sanitizeFileName(".."), "file");
  assert.equal(sanitizeFileName("."), "file");
  assert.equal(sanitizeFileName(""), "file");
  assert.equal(sanitizeFileName("dir/"), "file");
  assert.equal(sanitizeFileName(".bashrc"), "_.bashrc");
  assert.equal(sanitizeFileName("a\x1b[2Jb\nc.txt"), "a_[2Jb_c.txt");
  assert.equal(sanitizeFileName("we<i>rd:na*me?.txt"), "we_i_rd_na_me_.txt");
  assert.equal(sanitizeFileName("CON.txt"), "_CON.txt");
  assert.equal(sanitizeFileName("evil\u202etxt.exe"), "evil_txt.exe");
  const long = sanitizeFileName("x".repeat(500) + ".tar.gz");
  assert.equal([...long].length, 200);
  assert.ok(long.endsWith(".gz"));
});

Deno.test("saveUnique() never overwrites: it adds (1), (2)...", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const a = await saveUnique(dir, "r.txt", new Uint8Array([1]));
    const b = await saveUnique(dir, "r.txt", new Uint8Array([2]));
    const c = await saveUnique(dir, "r.txt", new Uint8Array([3]));
    assert.deepEqual([a, b, c], [
      join(dir, "r.txt"),
      join(dir, "r (1).txt"),
      join(dir, "r (2).txt"),
    ]);
    assert.deepEqual(await Deno.readFile(a), new Uint8Array([1]));
    if (Deno.build.os !== "windows") assert.equal((await Deno.stat(b)).mode! & 0o777, 0o600);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("chunkBytes() cuts 446-byte pieces", () => {
  const data = new Uint8Array(1000);
  assert.deepEqual(chunkBytes(data).map((c) => c.length), [446, 446, 108]);
  assert.deepEqual(chunkBytes(new Uint8Array(0)), []);
  assert.equal(FILE_CHUNK_BYTES, 446);
});

async function receiver(dir: string): Promise<{ r: FileReceiver; key: CryptoKeyPairLike }> {
  const pair = await fixtureKeyPair("user1");
  return {
    r: new FileReceiver({ privateKey: pair.privateKey, downloadsDir: dir, now: Date.now }),
    key: pair,
  };
}
type CryptoKeyPairLike = Awaited<ReturnType<typeof fixtureKeyPair>>;

Deno.test("FileReceiver reassembles chunks in any order and checks the hash", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const { r, key } = await receiver(dir);
    const data = crypto.getRandomValues(new Uint8Array(1500));
    const sha256 = await sha256Hex(data);
    const chunks = chunkBytes(data, 400);
    assert.equal(
      r.start(IDS.alice, { file_id: "f1", name: "x.bin", size: data.length, sha256, mode: "dm" }),
      undefined,
    );
    for (const i of [3, 1, 0, 2]) {
      assert.ok(await r.chunk(IDS.alice, "f1", i, await encryptBlock(key.publicKey, chunks[i]!)));
    }
    assert.equal(await r.chunk(IDS.bob, "f1", 0, "zz"), false, "other sender's file id is unknown");
    const result = await r.end(IDS.alice, "f1");
    assert.ok(result?.ok);
    assert.deepEqual(await Deno.readFile(result.path), data);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("FileReceiver refuses oversized manifests, bad indices and missing chunks", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const { r, key } = await receiver(dir);
    const sha = "0".repeat(64);
    assert.match(
      r.start(IDS.alice, {
        file_id: "big",
        name: "b",
        size: MAX_FILE_BYTES + 1,
        sha256: sha,
        mode: "dm",
      })!,
      /limit/,
    );
    assert.match(
      r.start(IDS.alice, { file_id: "h", name: "b", size: 1, sha256: "xyz", mode: "dm" })!,
      /hex/,
    );

    r.start(IDS.alice, { file_id: "idx", name: "b", size: 10, sha256: sha, mode: "dm" });
    await r.chunk(IDS.alice, "idx", 10, await encryptBlock(key.publicKey, new Uint8Array(1)));
    const idx = await r.end(IDS.alice, "idx");
    assert.ok(idx && !idx.ok && /out of range/.test(idx.reason));

    r.start(IDS.alice, { file_id: "gap", name: "b", size: 10, sha256: sha, mode: "dm" });
    await r.chunk(IDS.alice, "gap", 1, await encryptBlock(key.publicKey, new Uint8Array(5)));
    const gap = await r.end(IDS.alice, "gap");
    assert.ok(gap && !gap.ok && /chunk 0 is missing/.test(gap.reason));

    r.start(IDS.alice, { file_id: "over", name: "b", size: 3, sha256: sha, mode: "dm" });
    await r.chunk(IDS.alice, "over", 0, await encryptBlock(key.publicKey, new Uint8Array(5)));
    const over = await r.end(IDS.alice, "over");
    assert.ok(over && !over.ok && /more data/.test(over.reason));
    assert.deepEqual([...Deno.readDirSync(dir)], [], "nothing saved");
    assert.equal(r.activeCount, 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** Collects the FILE_* frames a sender's session sent, up to FILE_END. */
async function collectFile(h: Harness): Promise<Envelope[]> {
  const frames: Envelope[] = [];
  for (;;) {
    const env = await h.server.next();
    if (!env.type.startsWith("FILE_")) continue;
    frames.push(env);
    if (env.type === "FILE_END") return frames;
  }
}

/** Answers the PUBKEY_REQUEST for itself that a sender uses to learn the server took it all. */
async function answerBarrier(h: Harness): Promise<void> {
  const req = await h.server.nextOf("PUBKEY_REQUEST");
  assert.equal(req.payload["user_id"], IDS.alice);
  await h.server.send("PUBKEY_RESPONSE", {
    user_id: IDS.alice,
    pubkey: encodePublicKey(h.keys.publicKey),
  });
}

/** Delivers frames to a receiver as a socp server would: server-signed, payload plus sender. */
async function relay(to: Harness, frames: Envelope[]): Promise<void> {
  for (const f of frames) {
    await to.server.send(f.type, { ...f.payload, sender: f.from }, { to: f.to, ts: f.ts });
  }
}

Deno.test("a file sent with sendFile() arrives intact through a relay and is saved", async () => {
  const src = await Deno.makeTempDir();
  try {
    const data = crypto.getRandomValues(new Uint8Array(2000));
    const path = join(src, "report.bin");
    await Deno.writeFile(path, data);
    await using alice = await connected();
    await advertise(alice, IDS.bob, "bob", "user1");
    await using bob = await connected({ user: "user1", userId: IDS.bob, name: "bob" });
    await advertise(bob, IDS.alice, "alice", "user0");

    const sending = alice.session.sendFile("bob", path);
    const frames = await collectFile(alice);
    await answerBarrier(alice);
    await sending;
    assert.deepEqual(alice.events.of("warn"), []);
    const start = frames[0]!;
    assert.equal(start.type, "FILE_START");
    assert.equal(start.to, IDS.bob);
    assert.equal(start.payload["enc"], undefined, "bob announced no capability: spec chunks");
    const p = start.payload;
    assert.deepEqual(
      [p["name"], p["size"], p["sha256"], p["mode"]],
      ["report.bin", 2000, await sha256Hex(data), "dm"],
    );
    const chunks = frames.filter((f) => f.type === "FILE_CHUNK");
    assert.equal(chunks.length, 5);
    assert.deepEqual(chunks.map((c) => c.payload["index"]), [0, 1, 2, 3, 4]);
    assert.ok(chunks.every((c) => c.payload["file_id"] === p["file_id"]));
    // Every user frame is signed by the user; chunks carry what Group 17's client reads.
    for (const c of [start, ...chunks]) {
      assert.ok(await verifyEnvelope(alice.keys.publicKey, c), `${c.type} is signed`);
    }
    assert.ok(
      chunks.every((c) => c.payload["total"] === 5 && typeof c.payload["sender_pub"] === "string"),
    );
    assert.equal(
      await verifyContent(alice.keys.publicKey, String(chunks[1]!.payload["content_sig"]), {
        ciphertext: String(chunks[1]!.payload["ciphertext"]),
        from: IDS.alice,
        to: IDS.bob,
        extra: [String(p["file_id"]), 1, 5],
      }, [chunks[1]!.ts]),
      "A",
      "chunk content_sig covers ciphertext, from, to, ts, file_id, index, total",
    );
    const sent = await alice.events.wait("sent");
    assert.deepEqual([sent.kind, sent.name, sent.size, sent.parts], [
      "file",
      "report.bin",
      2000,
      5,
    ]);

    // Chunks out of order on the way.
    await relay(bob, [frames[0]!, ...chunks.reverse(), frames.at(-1)!]);
    const got = await bob.events.wait("file");
    assert.ok(got.ok, got.reason);
    assert.deepEqual(
      [got.from, got.from_name, got.name, got.size, got.mode],
      [IDS.alice, "alice", "report.bin", 2000, "dm"],
    );
    assert.equal(got.path, join(bob.downloads, "report.bin"));
    assert.deepEqual(await Deno.readFile(got.path!), data);
  } finally {
    await Deno.remove(src, { recursive: true });
  }
});

Deno.test("sendFile() to public sends the file to each other member", async () => {
  const src = await Deno.makeTempDir();
  try {
    const path = join(src, "pub.txt");
    await Deno.writeTextFile(path, "for everyone");
    await using h = await connected();
    await advertise(h, IDS.bob, "bob", "user1");
    await advertise(h, IDS.carol, "carol", "user2");
    const sending = h.session.sendFile("public", path);
    const a = await collectFile(h);
    const b = await collectFile(h);
    await answerBarrier(h);
    await sending;
    assert.deepEqual(new Set([a[0]!.to, b[0]!.to]), new Set([IDS.bob, IDS.carol]));
    assert.ok(
      [...a, ...b].filter((f) => f.type === "FILE_START").every((f) =>
        f.payload["mode"] === "public"
      ),
    );
    assert.notEqual(a[0]!.payload["file_id"], b[0]!.payload["file_id"]);
    const sent = await h.events.wait("sent");
    assert.deepEqual([sent.to, sent.recipients], ["public", 2]);
  } finally {
    await Deno.remove(src, { recursive: true });
  }
});

Deno.test("a file whose sha256 does not match is rejected and not saved", async () => {
  await using bob = await connected({ user: "user1", userId: IDS.bob, name: "bob" });
  const data = new TextEncoder().encode("tampered content");
  const file_id = crypto.randomUUID();
  await bob.server.send("FILE_START", {
    file_id,
    name: "x.txt",
    size: data.length,
    sha256: await sha256Hex(new TextEncoder().encode("original content")),
    mode: "dm",
    sender: IDS.alice,
  });
  await bob.server.send("FILE_CHUNK", {
    file_id,
    index: 0,
    ciphertext: await encryptBlock(bob.keys.publicKey, data),
    sender: IDS.alice,
  });
  await bob.server.send("FILE_END", { file_id, sender: IDS.alice });
  const got = await bob.events.wait("file");
  assert.equal(got.ok, false);
  assert.match(got.reason!, /sha256 mismatch/);
  assert.deepEqual([...Deno.readDirSync(bob.downloads)], []);
});

Deno.test("a received file name with path traversal is saved inside the downloads folder", async () => {
  await using bob = await connected({ user: "user1", userId: IDS.bob, name: "bob" });
  await sendOneChunkFile(bob, "x", { name: "../../../tmp/evil.sh" });
  const got = await bob.events.wait("file");
  assert.ok(got.ok);
  assert.equal(got.path, join(bob.downloads, "evil.sh"));
});

Deno.test("sendFile() refuses a missing file and a folder with a clear message", async () => {
  await using h = await connected();
  await advertise(h, IDS.bob, "bob", "user1");
  await assert.rejects(() => h.session.sendFile("bob", "/nonexistent/zzz.bin"), /does not exist/);
  await assert.rejects(() => h.session.sendFile("bob", h.downloads), /not a regular file/);
});

Deno.test("the client announces file-aes-gcm in USER_HELLO", async () => {
  await using h = await harness();
  const started = h.session.start();
  const hello = await h.server.nextOf("USER_HELLO");
  assert.ok((hello.payload["caps"] as string[]).includes(FILE_AES_CAP));
  await h.server.ack();
  await started;
});

Deno.test("sendFile() to a client with file-aes-gcm sends AES-GCM chunks that arrive intact", async () => {
  const src = await Deno.makeTempDir();
  try {
    const data = randomBytes(AES_CHUNK_BYTES * 2 + 100);
    const path = join(src, "big.bin");
    await Deno.writeFile(path, data);
    await using alice = await connected();
    const bobKeys = await fixtureKeyPair("user1");
    await alice.server.send("USER_ADVERTISE", {
      user_id: IDS.bob,
      server_id: alice.server.id,
      meta: {
        display_name: "bob",
        pubkey: encodePublicKey(bobKeys.publicKey),
        caps: ["x", FILE_AES_CAP],
      },
    }, { to: "*" });
    await alice.events.wait("presence", (e) => e.user_id === IDS.bob && e.online);
    await using bob = await connected({ user: "user1", userId: IDS.bob, name: "bob" });
    await advertise(bob, IDS.alice, "alice", "user0");

    const sending = alice.session.sendFile("bob", path);
    const frames = await collectFile(alice);
    await answerBarrier(alice);
    await sending;
    const start = frames[0]!;
    assert.deepEqual(
      [start.payload["enc"], start.payload["size"], start.payload["sha256"]],
      ["aes-256-gcm", data.length, await sha256Hex(data)],
    );
    assert.equal(typeof start.payload["key"], "string");
    const chunks = frames.filter((f) => f.type === "FILE_CHUNK");
    assert.equal(chunks.length, 3);
    for (const c of chunks) {
      assert.ok(await verifyEnvelope(alice.keys.publicKey, c), "each chunk is transport-signed");
      assert.equal(c.payload["content_sig"], undefined);
      assert.equal(c.payload["sender_pub"], undefined);
      // A full chunk with the longest ids stays under the 65,536-byte user frame limit.
      const worst = { ...c, from: "x".repeat(64), to: "y".repeat(64) };
      assert.ok(serializeEnvelope(worst).length < 65_536 - 2048, "room to spare");
    }
    const end = frames.at(-1)!;
    assert.deepEqual([end.payload["sha256"], end.payload["size"]], [
      start.payload["sha256"],
      data.length,
    ]);
    assert.equal((await alice.events.wait("sent")).parts, 3);

    await relay(bob, [start, chunks[2]!, chunks[0]!, chunks[1]!, end]);
    const got = await bob.events.wait("file");
    assert.ok(got.ok, got.reason);
    assert.equal(got.unverified, undefined);
    assert.deepEqual(await Deno.readFile(got.path!), data);
  } finally {
    await Deno.remove(src, { recursive: true });
  }
});

/** `n` random bytes (getRandomValues gives at most 64 KiB at once). */
function randomBytes(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 65_536) crypto.getRandomValues(out.subarray(i, i + 65_536));
  return out;
}

/** An AES-GCM transfer from user0 to user1, as frames (type, payload). */
async function aesFrames(data: Uint8Array): Promise<{ type: string; payload: JsonObject }[]> {
  const alice = await fixtureKeyPair("user0");
  const bob = await fixtureKeyPair("user1");
  const frames: { type: string; payload: JsonObject }[] = [];
  await sendFileFrames({
    file: { name: "f.bin", data, sha256: await sha256Hex(data) },
    key: bob.publicKey,
    mode: "dm",
    send: (type, payload) => Promise.resolve(void frames.push({ type, payload: { ...payload } })),
    aes: { from: IDS.alice, to: IDS.bob, privateKey: alice.privateKey },
  });
  return frames;
}

/** Feeds frames to a fresh receiver for user1 and returns the outcome. */
async function receiveAes(
  frames: { type: string; payload: JsonObject }[],
  dir: string,
): Promise<{ ok: boolean; reason?: string }> {
  const alice = await fixtureKeyPair("user0");
  const bob = await fixtureKeyPair("user1");
  const r = new FileReceiver({
    privateKey: bob.privateKey,
    downloadsDir: dir,
    now: () => 0,
    self: IDS.bob,
    senderKey: () => Promise.resolve(alice.publicKey),
  });
  let fileId = "";
  for (const { type, payload: p } of frames) {
    if (type === "FILE_START") {
      fileId = String(p["file_id"]);
      const refused = r.start(IDS.alice, p as unknown as FileManifest);
      if (refused) return { ok: false, reason: refused };
    } else if (type === "FILE_CHUNK") {
      await r.chunk(IDS.alice, fileId, Number(p["index"]), String(p["ciphertext"]));
    } else {
      const result = await r.end(IDS.alice, fileId, p);
      assert.ok(result);
      return result.ok ? { ok: true } : { ok: false, reason: result.reason };
    }
  }
  throw new Error("no FILE_END");
}

Deno.test("FileReceiver refuses AES-GCM files with a tampered chunk, a wrong hash or signature", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const data = crypto.getRandomValues(new Uint8Array(AES_CHUNK_BYTES + 10));
    const good = await aesFrames(data);
    assert.deepEqual(await receiveAes(good, dir), { ok: true });
    const saved = [...Deno.readDirSync(dir)].length;
    const edit = (i: number, change: JsonObject) =>
      good.map((f, j) => (j === i ? { type: f.type, payload: { ...f.payload, ...change } } : f));
    const c = String(good[1]!.payload["ciphertext"]);
    const flipped = c[10] === "A" ? "B" : "A";
    const cases: [string, { type: string; payload: JsonObject }[], RegExp][] = [
      [
        "tampered chunk",
        edit(1, { ciphertext: c.slice(0, 10) + flipped + c.slice(11) }),
        /chunk 0 could not be decrypted/,
      ],
      ["chunks swapped", edit(1, { index: 1 }), /could not be decrypted/],
      ["wrong hash", edit(3, { sha256: "0".repeat(64) }), /sha256 mismatch with FILE_END/],
      ["wrong size", edit(3, { size: data.length + 1 }), /size mismatch/],
      ["no signature", edit(3, { file_sig: undefined as unknown as string }), /no signed size/],
      [
        "signature for another file",
        edit(3, { file_sig: String((await aesFrames(data)).at(-1)!.payload["file_sig"]) }),
        /signature over the file does not verify/,
      ],
      ["unknown encryption", edit(0, { enc: "rot13" }), /encryption "rot13" is not known/],
      [
        "bad key",
        edit(0, {
          key: await encryptBlock((await fixtureKeyPair("user1")).publicKey, new Uint8Array(5)),
        }),
        /could not be unwrapped|32/,
      ],
    ];
    for (const [what, frames, reason] of cases) {
      const got = await receiveAes(frames, dir);
      assert.equal(got.ok, false, what);
      assert.match(got.reason!, reason, what);
    }
    assert.equal([...Deno.readDirSync(dir)].length, saved, "nothing else saved");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

const GROUP_ID = "44444444-4444-4444-8444-444444444444";

/**
 * Sends a one-chunk file from alice to bob's session as its server would (spec form): `claimed`
 * is the text whose SHA-256 FILE_START announces (default the text itself), `extra` goes on
 * every frame (e.g. `group_id`).
 */
async function sendOneChunkFile(
  bob: Harness,
  text: string,
  options: { name?: string; claimed?: string; extra?: JsonObject } = {},
): Promise<void> {
  const data = new TextEncoder().encode(text);
  const file_id = crypto.randomUUID();
  const common = { sender: IDS.alice, ...options.extra };
  await bob.server.send("FILE_START", {
    file_id,
    name: options.name ?? "x.txt",
    size: data.length,
    sha256: await sha256Hex(new TextEncoder().encode(options.claimed ?? text)),
    mode: "dm",
    ...common,
  });
  await bob.server.send("FILE_CHUNK", {
    file_id,
    index: 0,
    ciphertext: await encryptBlock(bob.keys.publicKey, data),
    ...common,
  });
  await bob.server.send("FILE_END", { file_id, ...common });
}

/** {@linkcode sendOneChunkFile} with the test group's `group_id`. */
function sendGroupFile(bob: Harness, text: string, options: { claimed?: string } = {}) {
  return sendOneChunkFile(bob, text, { ...options, extra: { group_id: GROUP_ID } });
}

/** Answers the next GROUP_LIST_REQUEST with the group "team" of `members`. */
async function answerTeam(h: Harness, members: string[]): Promise<void> {
  await h.server.nextOf("GROUP_LIST_REQUEST");
  await h.server.send("GROUP_LIST", {
    groups: [{
      group_id: GROUP_ID,
      name: "team",
      creator_id: IDS.alice,
      created_at: 1,
      version: 1,
      members,
    }],
  });
}

Deno.test("a file that came with a group_id is reported in its group, by name", async () => {
  await using bob = await connected({ user: "user1", userId: IDS.bob, name: "bob" });
  await advertise(bob, IDS.alice, "alice", "user0");
  await sendGroupFile(bob, "the plan");
  await answerTeam(bob, [IDS.alice, IDS.bob, IDS.carol]);
  const got = await bob.events.wait("file");
  assert.ok(got.ok, got.reason);
  assert.deepEqual([got.from_name, got.group, got.group_id], ["alice", "team", GROUP_ID]);
  assert.equal(await Deno.readTextFile(got.path!), "the plan");
  assert.match(
    formatEvent(got),
    /alice → group team: file "x\.txt" \(8 bytes, sha256 ok\), saved to /,
  );

  // A refused one is labelled too (the group is known now: no second GROUP_LIST).
  await sendGroupFile(bob, "tampered", { claimed: "original" });
  const bad = await bob.events.wait("file", (e) => !e.ok);
  assert.equal(bad.group, "team");
  assert.match(formatEvent(bad), /file "x\.txt" from alice \(\w+\) in group team rejected: sha256/);
  assert.deepEqual(bob.events.of("warn"), []);
});

Deno.test("a group file from a sender the server does not list as a member is not shown in the group", async () => {
  await using bob = await connected({ user: "user1", userId: IDS.bob, name: "bob" });
  await advertise(bob, IDS.alice, "alice", "user0");
  await sendGroupFile(bob, "let me in");
  await answerTeam(bob, [IDS.bob, IDS.carol]);
  const got = await bob.events.wait("file");
  assert.ok(got.ok, got.reason);
  assert.deepEqual([got.group, got.group_id], [undefined, undefined]);
  assert.match(formatEvent(got), /alice → me: file/);
  const warn = await bob.events.wait("warn");
  assert.match(
    warn.text,
    /"x\.txt" from alice .*marked for team, which the sender is not a member/,
  );
});
