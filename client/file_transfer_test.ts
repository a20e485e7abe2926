import assert from "node:assert/strict";
import { join } from "node:path";
import {
  encodePublicKey,
  encryptBlock,
  type Envelope,
  sha256Hex,
  verifyContent,
  verifyEnvelope,
} from "../shared/mod.ts";
import { advertise, connected, fixtureKeyPair, type Harness, IDS } from "./_test_util.ts";
import {
  chunkBytes,
  FILE_CHUNK_BYTES,
  FileReceiver,
  MAX_FILE_BYTES,
  sanitizeFileName,
  saveUnique,
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
  const data = new TextEncoder().encode("x");
  const file_id = crypto.randomUUID();
  const common = { sender: IDS.alice };
  await bob.server.send("FILE_START", {
    file_id,
    name: "../../../tmp/evil.sh",
    size: 1,
    sha256: await sha256Hex(data),
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
