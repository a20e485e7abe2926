import assert from "node:assert/strict";
import type { Envelope, JsonObject } from "./envelope.ts";
import { ProtocolError } from "./errors.ts";
import { decodeFrame, type Frame, TYPE_ALIASES } from "./frames.ts";

const ALICE = "5b2c1f0e-8a7d-4c3b-9e21-0f6a7d3c2b11";
const BOB = "9d4e2a61-3f0b-4b7c-8a55-6e1f2d3c4b5a";
const S1 = "aa11bb22-cc33-4d44-8e55-ff6677889900";
const S2 = "3f1c9a2e-6b7d-4e8f-9a01-2b3c4d5e6f70";
const S3 = "0b8f6c1d-2e3a-4f5b-8c7d-9e0f1a2b3c4d";
const FILE = "7c9e6679-7425-40de-944b-e07fc1f90ae7";
const KEY = "MIICIjANBgkqhkiG9w0BAQEFAAOCAg8AMIICCgKCAgEA";

function env(type: string, payload: JsonObject, extra: Partial<Envelope> = {}): Envelope {
  return { type, from: ALICE, to: BOB, ts: 1700000400000, payload, ...extra };
}

/** Decodes and asserts the frame's type, returning its payload for deep comparison. */
function decode(type: string, payload: JsonObject, expectType: string = type): Frame["p"] {
  const e = env(type, payload);
  const frame = decodeFrame(e);
  assert.ok(frame, `${type} decoded to undefined`);
  assert.equal(frame.type, expectType);
  assert.equal(frame.env, e);
  return frame.p;
}

/** Asserts that decoding throws ProtocolError("BAD_FRAME"). */
function badFrame(type: string, payload: JsonObject, label = ""): void {
  assert.throws(() => decodeFrame(env(type, payload)), (e: unknown) => {
    assert.ok(e instanceof ProtocolError, `${type} ${label}: ${e}`);
    assert.equal(e.code, "BAD_FRAME", `${type} ${label}`);
    return true;
  });
}

Deno.test("`decodeFrame()` returns undefined for an unknown type", () => {
  for (const type of ["NOPE", "msg_direct", "USER_REGISTER", "CTRL_LIST", "MSG_GROUP", ""]) {
    assert.equal(decodeFrame(env(type, {})), undefined, type);
  }
});

Deno.test("`TYPE_ALIASES` maps legacy names to socp's", () => {
  assert.deepEqual(TYPE_ALIASES, {
    MSG_PRIVATE: "MSG_DIRECT",
    SERVER_FILE_START: "FILE_START",
    SERVER_FILE_CHUNK: "FILE_CHUNK",
    SERVER_FILE_END: "FILE_END",
    PUB_KEY_REQUEST: "PUBKEY_REQUEST",
  });
});

Deno.test("`decodeFrame()` decodes USER_HELLO", () => {
  assert.deepEqual(
    decode("USER_HELLO", {
      client: "cli-v1",
      pubkey: KEY,
      enc_pubkey: KEY,
      meta: { display_name: "Alice" },
    }),
    { pubkey: KEY, enc_pubkey: KEY, client: "cli-v1", meta: { display_name: "Alice" } },
  );
  assert.deepEqual(decode("USER_HELLO", { pubkey: KEY }), { pubkey: KEY, meta: {} });
});

Deno.test("`decodeFrame()` reads USER_HELLO display names from meta or the payload", () => {
  assert.deepEqual(decode("USER_HELLO", { pubkey: KEY, meta: { username: "al" } }), {
    pubkey: KEY,
    meta: { display_name: "al" },
  });
  assert.deepEqual(decode("USER_HELLO", { pubkey: KEY, meta: { name: "n", pubkey: "pk" } }), {
    pubkey: KEY,
    meta: { display_name: "n", pubkey: "pk" },
  });
  assert.deepEqual(decode("USER_HELLO", { pubkey: KEY, display_name: "top" }), {
    pubkey: KEY,
    meta: { display_name: "top" },
  });
  assert.deepEqual(
    decode("USER_HELLO", { pubkey: KEY, display_name: "top", meta: { display_name: "m" } }),
    { pubkey: KEY, meta: { display_name: "m" } },
  );
  // Non-string meta members are ignored rather than fatal.
  assert.deepEqual(decode("USER_HELLO", { pubkey: KEY, meta: { display_name: 5, pubkey: [] } }), {
    pubkey: KEY,
    meta: {},
  });
});

Deno.test("`decodeFrame()` truncates display names to 64 code units", () => {
  const p = decode("USER_HELLO", { pubkey: KEY, meta: { display_name: "x".repeat(100) } });
  assert.deepEqual(p, { pubkey: KEY, meta: { display_name: "x".repeat(64) } });
});

Deno.test("`decodeFrame()` truncates display names without splitting a surrogate pair", () => {
  // "a" × 63 + "😀": code units 64 and 65 are the emoji's surrogate pair.
  const name = "a".repeat(63) + "😀";
  for (const type of ["USER_HELLO", "USER_ADVERTISE"]) {
    const p = decode(type, { pubkey: KEY, user_id: BOB, meta: { display_name: name } });
    const got = (p as { meta: { display_name?: string } }).meta.display_name!;
    assert.ok(got.length <= 64);
    assert.ok(name.startsWith(got));
    assert.ok(got.isWellFormed(), `${type} left a lone surrogate: ${JSON.stringify(got)}`);
  }
});

Deno.test("`decodeFrame()` rejects USER_HELLO without a string pubkey or with a bad meta", () => {
  badFrame("USER_HELLO", {}, "no pubkey");
  badFrame("USER_HELLO", { pubkey: "" }, "empty pubkey");
  badFrame("USER_HELLO", { pubkey: 1 }, "numeric pubkey");
  badFrame("USER_HELLO", { pubkey: KEY, meta: "Alice" }, "string meta");
  badFrame("USER_HELLO", { pubkey: KEY, enc_pubkey: 5 }, "numeric enc_pubkey");
});

Deno.test("`decodeFrame()` decodes MSG_DIRECT", () => {
  assert.deepEqual(
    decode("MSG_DIRECT", { ciphertext: "Y3Q", sender_pub: KEY, content_sig: "c2ln" }),
    { ciphertext: "Y3Q", sender_pub: KEY, content_sig: "c2ln" },
  );
  assert.deepEqual(decode("MSG_DIRECT", { ciphertext: "Y3Q", content_sig: "" }), {
    ciphertext: "Y3Q",
  });
});

Deno.test("`decodeFrame()` decodes MSG_PRIVATE as MSG_DIRECT and keeps the envelope", () => {
  const e = env("MSG_PRIVATE", { ciphertext: "Y3Q" });
  const frame = decodeFrame(e);
  assert.equal(frame?.type, "MSG_DIRECT");
  assert.equal(frame?.env.type, "MSG_PRIVATE");
  assert.deepEqual(frame?.p, { ciphertext: "Y3Q" });
});

Deno.test("`decodeFrame()` decodes MSG_PUBLIC_CHANNEL with an optional sender", () => {
  assert.deepEqual(
    decode("MSG_PUBLIC_CHANNEL", {
      ciphertext: "aGk",
      sender_pub: KEY,
      content_sig: "c2ln",
      sender: ALICE,
      group_id: "public",
    }),
    { ciphertext: "aGk", sender_pub: KEY, content_sig: "c2ln", sender: ALICE },
  );
  // A MSG_DIRECT never carries `sender`.
  assert.deepEqual(decode("MSG_DIRECT", { ciphertext: "aGk", sender: ALICE }), {
    ciphertext: "aGk",
  });
});

Deno.test("`decodeFrame()` rejects MSG_DIRECT and MSG_PUBLIC_CHANNEL without ciphertext", () => {
  for (const type of ["MSG_DIRECT", "MSG_PRIVATE", "MSG_PUBLIC_CHANNEL"]) {
    badFrame(type, {}, "no ciphertext");
    badFrame(type, { ciphertext: "" }, "empty ciphertext");
    badFrame(type, { ciphertext: ["x"] }, "array ciphertext");
    badFrame(type, { ciphertext: "x", content_sig: 1 }, "numeric content_sig");
  }
});

Deno.test("`decodeFrame()` decodes FILE_START and SERVER_FILE_START", () => {
  const manifest = { file_id: FILE, name: "report.pdf", size: 1234567, sha256: "ab".repeat(32) };
  for (const type of ["FILE_START", "SERVER_FILE_START"]) {
    assert.deepEqual(decode(type, { ...manifest, mode: "dm" }, "FILE_START"), {
      ...manifest,
      mode: "dm",
    });
    assert.deepEqual(decode(type, { ...manifest, mode: "public" }, "FILE_START"), {
      ...manifest,
      mode: "public",
    });
  }
  assert.deepEqual(decode("FILE_START", manifest), { ...manifest, mode: "dm" });
  assert.deepEqual(decode("FILE_START", { ...manifest, mode: "" }), { ...manifest, mode: "dm" });
  assert.deepEqual(decode("FILE_START", { ...manifest, size: 0 }), {
    ...manifest,
    size: 0,
    mode: "dm",
  });
});

Deno.test("`decodeFrame()` rejects FILE_START with a bad mode or manifest", () => {
  const manifest = { file_id: FILE, name: "a.txt", size: 3, sha256: "ab".repeat(32) };
  badFrame("FILE_START", { ...manifest, mode: "group" }, "bad mode");
  badFrame("FILE_START", { ...manifest, mode: "DM" }, "upper-case mode");
  badFrame("FILE_START", { ...manifest, mode: 1 }, "numeric mode");
  for (const field of ["file_id", "name", "size"]) {
    badFrame("FILE_START", { ...manifest, [field]: null }, `no ${field}`);
  }
  badFrame("FILE_START", { ...manifest, sha256: 3 }, "numeric sha256");
  badFrame("FILE_START", { ...manifest, size: -1 }, "negative size");
  badFrame("FILE_START", { ...manifest, size: 1.5 }, "fractional size");
  badFrame("FILE_START", { ...manifest, size: "3" }, "string size");
  badFrame("FILE_START", { ...manifest, file_id: "f".repeat(129) }, "long file_id");
  badFrame("FILE_START", { ...manifest, name: "n".repeat(1025) }, "long name");
});

Deno.test("`decodeFrame()` decodes FILE_CHUNK, its `chunk` spelling and SERVER_FILE_CHUNK", () => {
  const want = { file_id: FILE, index: 2, ciphertext: "Y2h1bms" };
  assert.deepEqual(decode("FILE_CHUNK", { ...want, total: 5 }), want);
  assert.deepEqual(decode("FILE_CHUNK", { file_id: FILE, index: 2, chunk: "Y2h1bms" }), want);
  assert.deepEqual(decode("SERVER_FILE_CHUNK", want, "FILE_CHUNK"), want);
  assert.deepEqual(decode("FILE_CHUNK", { ...want, index: 0 }), { ...want, index: 0 });
});

Deno.test("`decodeFrame()` rejects FILE_CHUNK without ciphertext or a valid index", () => {
  badFrame("FILE_CHUNK", { file_id: FILE, index: 0 }, "no ciphertext");
  badFrame("FILE_CHUNK", { file_id: FILE, index: 0, ciphertext: "" }, "empty ciphertext");
  badFrame("FILE_CHUNK", { file_id: FILE, ciphertext: "x" }, "no index");
  badFrame("FILE_CHUNK", { file_id: FILE, index: -1, ciphertext: "x" }, "negative index");
  badFrame("FILE_CHUNK", { file_id: FILE, index: "0", ciphertext: "x" }, "string index");
  badFrame("FILE_CHUNK", { index: 0, ciphertext: "x" }, "no file_id");
});

Deno.test("`decodeFrame()` decodes FILE_END and SERVER_FILE_END", () => {
  assert.deepEqual(decode("FILE_END", { file_id: FILE }), { file_id: FILE });
  assert.deepEqual(decode("SERVER_FILE_END", { file_id: FILE }, "FILE_END"), { file_id: FILE });
  badFrame("FILE_END", {}, "no file_id");
});

Deno.test("`decodeFrame()` decodes USER_DELIVER with original timestamps", () => {
  assert.deepEqual(
    decode("USER_DELIVER", {
      ciphertext: "Y3Q",
      sender: ALICE,
      sender_pub: KEY,
      content_sig: "c2ln",
      orig_ts: 1700000400000,
      msg_ts: 1700000400000.5,
    }),
    {
      ciphertext: "Y3Q",
      sender: ALICE,
      sender_pub: KEY,
      content_sig: "c2ln",
      orig_ts: 1700000400000,
      msg_ts: 1700000400000.5,
    },
  );
  assert.deepEqual(decode("USER_DELIVER", { ciphertext: "Y3Q", sender: ALICE, msg_ts: null }), {
    ciphertext: "Y3Q",
    sender: ALICE,
  });
});

Deno.test("`decodeFrame()` rejects USER_DELIVER without ciphertext or sender", () => {
  badFrame("USER_DELIVER", { sender: ALICE }, "no ciphertext");
  badFrame("USER_DELIVER", { ciphertext: "Y3Q" }, "no sender");
  badFrame("USER_DELIVER", { ciphertext: "Y3Q", sender: "s".repeat(257) }, "long sender");
  badFrame("USER_DELIVER", { ciphertext: "Y3Q", sender: ALICE, orig_ts: "1" }, "string orig_ts");
});

Deno.test("`decodeFrame()` decodes USER_ADVERTISE with meta and without", () => {
  assert.deepEqual(
    decode("USER_ADVERTISE", {
      user_id: ALICE,
      server_id: S1,
      meta: { display_name: "Alice", pubkey: KEY, extras: {} },
    }),
    { user_id: ALICE, server_id: S1, meta: { display_name: "Alice", pubkey: KEY } },
  );
  // G17 sends {user_id, server_id} with no meta.
  assert.deepEqual(decode("USER_ADVERTISE", { user_id: ALICE, server_id: S1 }), {
    user_id: ALICE,
    server_id: S1,
    meta: {},
  });
  badFrame("USER_ADVERTISE", { server_id: S1 }, "no user_id");
  badFrame("USER_ADVERTISE", { user_id: ALICE, meta: [] }, "array meta");
});

Deno.test("`decodeFrame()` decodes USER_REMOVE with and without server_id", () => {
  assert.deepEqual(decode("USER_REMOVE", { user_id: ALICE, server_id: S1 }), {
    user_id: ALICE,
    server_id: S1,
  });
  assert.deepEqual(decode("USER_REMOVE", { user_id: ALICE }), { user_id: ALICE });
  badFrame("USER_REMOVE", { server_id: S1 }, "no user_id");
});

Deno.test("`decodeFrame()` decodes LIST_REQUEST, ignoring its payload", () => {
  assert.deepEqual(decode("LIST_REQUEST", {}), {});
  assert.deepEqual(decode("LIST_REQUEST", { anything: 1 }), {});
});

Deno.test("`decodeFrame()` decodes LIST_RESPONSE from online_users or users", () => {
  assert.deepEqual(decode("LIST_RESPONSE", { online_users: [ALICE, BOB] }), {
    users: [ALICE, BOB],
    display_names: {},
  });
  assert.deepEqual(decode("LIST_RESPONSE", { users: [BOB] }), { users: [BOB], display_names: {} });
  assert.deepEqual(
    decode("LIST_RESPONSE", {
      online_users: [ALICE, 7, null],
      users: [BOB],
      display_names: { [ALICE]: "Alice", [BOB]: 3 },
    }),
    { users: [ALICE], display_names: { [ALICE]: "Alice" } },
  );
  assert.deepEqual(decode("LIST_RESPONSE", { online_users: [], users: [BOB] }), {
    users: [BOB],
    display_names: {},
  });
  assert.deepEqual(decode("LIST_RESPONSE", {}), { users: [], display_names: {} });
  badFrame("LIST_RESPONSE", { online_users: ALICE }, "string list");
  badFrame("LIST_RESPONSE", { users: [ALICE], display_names: [] }, "array names");
});

Deno.test("`decodeFrame()` decodes PUBKEY_REQUEST and its PUB_KEY_REQUEST spelling", () => {
  assert.deepEqual(decode("PUBKEY_REQUEST", { user_id: BOB }), { user_id: BOB });
  assert.deepEqual(decode("PUB_KEY_REQUEST", { user_id: BOB }, "PUBKEY_REQUEST"), {
    user_id: BOB,
  });
  badFrame("PUBKEY_REQUEST", {}, "no user_id");
});

Deno.test("`decodeFrame()` decodes PUBKEY_RESPONSE", () => {
  assert.deepEqual(decode("PUBKEY_RESPONSE", { user_id: BOB, pubkey: KEY, display_name: "Bob" }), {
    user_id: BOB,
    pubkey: KEY,
    display_name: "Bob",
  });
  assert.deepEqual(decode("PUBKEY_RESPONSE", { user_id: BOB, pubkey: KEY }), {
    user_id: BOB,
    pubkey: KEY,
  });
  // Group 17 answers an unknown user with `pubkey: null`: not found, not malformed.
  assert.deepEqual(decode("PUBKEY_RESPONSE", { user_id: BOB, pubkey: null }), { user_id: BOB });
  badFrame("PUBKEY_RESPONSE", { pubkey: KEY }, "no user_id");
});

Deno.test("`decodeFrame()` accepts Group 17's FILE_START without sha256", () => {
  const g17 = { file_id: FILE, name: "a.txt", size: 3, sender_pub: KEY };
  assert.deepEqual(decode("FILE_START", g17), {
    file_id: FILE,
    name: "a.txt",
    size: 3,
    mode: "dm",
  });
});

Deno.test("`decodeFrame()` decodes PUBLIC_CHANNEL_ADD", () => {
  assert.deepEqual(decode("PUBLIC_CHANNEL_ADD", { add: [ALICE, BOB], if_version: 1 }), {
    add: [ALICE, BOB],
    if_version: 1,
  });
  assert.deepEqual(decode("PUBLIC_CHANNEL_ADD", { add: [ALICE, 3] }), { add: [ALICE] });
  assert.deepEqual(decode("PUBLIC_CHANNEL_ADD", {}), { add: [] });
  badFrame("PUBLIC_CHANNEL_ADD", { add: ALICE }, "string add");
  badFrame("PUBLIC_CHANNEL_ADD", { add: [], if_version: "1" }, "string if_version");
});

Deno.test("`decodeFrame()` decodes PUBLIC_CHANNEL_UPDATED, dropping malformed wraps", () => {
  assert.deepEqual(
    decode("PUBLIC_CHANNEL_UPDATED", {
      version: 2,
      wraps: [
        { member_id: ALICE, wrapped_key: "a2V5" },
        { member: BOB, wrapped_key: "a2V5Mg" },
        { member_id: ALICE },
        { wrapped_key: "a2V5" },
        { member_id: 7, wrapped_key: "a2V5" },
        { member_id: ALICE, wrapped_key: null },
        "fake_key_for_demo",
        null,
        [ALICE, "a2V5"],
      ],
    }),
    {
      version: 2,
      wraps: [{ member_id: ALICE, wrapped_key: "a2V5" }, { member_id: BOB, wrapped_key: "a2V5Mg" }],
    },
  );
  assert.deepEqual(decode("PUBLIC_CHANNEL_UPDATED", {}), { version: 0, wraps: [] });
  badFrame("PUBLIC_CHANNEL_UPDATED", { version: 1, wraps: {} }, "object wraps");
  badFrame("PUBLIC_CHANNEL_UPDATED", { version: "2", wraps: [] }, "string version");
});

Deno.test("`decodeFrame()` decodes PUBLIC_CHANNEL_KEY_SHARE with `wrapped_public_channel_key`", () => {
  assert.deepEqual(
    decode("PUBLIC_CHANNEL_KEY_SHARE", {
      shares: [{ member: ALICE, wrapped_public_channel_key: "a2V5" }],
      creator_pub: KEY,
      content_sig: "c2ln",
    }),
    {
      shares: [{ member_id: ALICE, wrapped_key: "a2V5" }],
      creator_pub: KEY,
      content_sig: "c2ln",
    },
  );
});

Deno.test("`decodeFrame()` decodes PUBLIC_CHANNEL_KEY_SHARE with G17's `wrapped`", () => {
  assert.deepEqual(
    decode("PUBLIC_CHANNEL_KEY_SHARE", {
      shares: [
        { member: ALICE, wrapped: "a2V5" },
        { member_id: BOB, wrapped_key: "a2V5Mg" },
        { member: BOB },
      ],
    }),
    {
      shares: [
        { member_id: ALICE, wrapped_key: "a2V5" },
        { member_id: BOB, wrapped_key: "a2V5Mg" },
      ],
    },
  );
  // The spec's field name wins when both are present.
  assert.deepEqual(
    decode("PUBLIC_CHANNEL_KEY_SHARE", {
      shares: [{ member: ALICE, wrapped: "b2xk", wrapped_public_channel_key: "bmV3" }],
    }),
    { shares: [{ member_id: ALICE, wrapped_key: "bmV3" }] },
  );
  badFrame("PUBLIC_CHANNEL_KEY_SHARE", { shares: "x" }, "string shares");
});

Deno.test("`decodeFrame()` decodes the four server handshake types", () => {
  for (
    const type of ["SERVER_HELLO_JOIN", "SERVER_HELLO_LINK", "PEER_HELLO_LINK", "SERVER_ANNOUNCE"]
  ) {
    assert.deepEqual(decode(type, { host: "10.0.0.5", port: 8765, pubkey: KEY }), {
      host: "10.0.0.5",
      port: 8765,
      pubkey: KEY,
    });
    assert.deepEqual(decode(type, { server_id: S2, server_pub: KEY }), {
      pubkey: KEY,
      server_id: S2,
    });
    assert.deepEqual(decode(type, {}), {});
  }
});

Deno.test("`decodeFrame()` rejects a handshake port outside 0..65535", () => {
  for (const port of [-1, 65536, 80.5, "8765"]) {
    badFrame("SERVER_HELLO_JOIN", { host: "h", port, pubkey: KEY }, JSON.stringify(port));
  }
  assert.deepEqual(decode("SERVER_ANNOUNCE", { port: 0 }), { port: 0 });
  assert.deepEqual(decode("SERVER_ANNOUNCE", { port: 65535 }), { port: 65535 });
});

Deno.test("`decodeFrame()` decodes SERVER_WELCOME with `servers` keyed server_id", () => {
  assert.deepEqual(
    decode("SERVER_WELCOME", {
      assigned_id: S2,
      servers: [
        { server_id: S1, host: "127.0.0.1", port: 8765, pubkey: KEY },
        { server_id: S3, host: "127.0.0.1", port: 8766 },
      ],
    }),
    {
      assigned_id: S2,
      servers: [
        { server_id: S1, host: "127.0.0.1", port: 8765, pubkey: KEY },
        { server_id: S3, host: "127.0.0.1", port: 8766 },
      ],
    },
  );
});

Deno.test("`decodeFrame()` decodes SERVER_WELCOME with `clients` keyed user_id", () => {
  assert.deepEqual(
    decode("SERVER_WELCOME", {
      assigned_id: S2,
      clients: [
        { user_id: S1, host: "H1", port: 8765, pubkey: KEY },
        { user_id: S3, host: "H2", port: 8766, pubkey: KEY },
      ],
    }),
    {
      assigned_id: S2,
      servers: [
        { server_id: S1, host: "H1", port: 8765, pubkey: KEY },
        { server_id: S3, host: "H2", port: 8766, pubkey: KEY },
      ],
    },
  );
});

Deno.test("`decodeFrame()` decodes SERVER_WELCOME entries keyed id or server_id in `clients`", () => {
  assert.deepEqual(
    decode("SERVER_WELCOME", {
      clients: [{ server_id: S1, port: 1 }],
      servers: [{ id: S3, host: "h" }],
    }),
    { servers: [{ server_id: S3, host: "h" }, { server_id: S1, port: 1 }] },
  );
});

Deno.test("`decodeFrame()` merges and de-duplicates both SERVER_WELCOME lists", () => {
  const entry = { server_id: S1, user_id: S1, host: "h", port: 1, pubkey: KEY };
  assert.deepEqual(
    decode("SERVER_WELCOME", { assigned_id: S2, servers: [entry], clients: [entry] }),
    { assigned_id: S2, servers: [{ server_id: S1, host: "h", port: 1, pubkey: KEY }] },
  );
});

Deno.test("`decodeFrame()` skips SERVER_WELCOME entries without a UUID", () => {
  assert.deepEqual(
    decode("SERVER_WELCOME", {
      servers: [
        { server_id: "introducer-0000-0000", host: "h" },
        { server_id: "auto", user_id: S1 },
        "x",
        null,
        { host: "h" },
        { server_id: S3, host: 5, port: "1", pubkey: 2 },
      ],
      clients: "not a list",
    }),
    { servers: [{ server_id: S1 }, { server_id: S3 }] },
  );
});

Deno.test("`decodeFrame()` decodes G17's SERVER_WELCOME snapshot form", () => {
  assert.deepEqual(
    decode("SERVER_WELCOME", {
      server_id: S1,
      server_pub: KEY,
      snapshot: { user_locations: { [ALICE]: { server_id: S1, ts: 1 } } },
      assigned_id: S2,
    }),
    { servers: [], assigned_id: S2, server_pub: KEY, server_id: S1 },
  );
  assert.deepEqual(decode("SERVER_WELCOME", { pubkey: KEY }), { servers: [], server_pub: KEY });
});

Deno.test("`decodeFrame()` decodes SERVER_DELIVER", () => {
  const payload = {
    user_id: BOB,
    ciphertext: "Y3Q",
    sender: ALICE,
    sender_pub: KEY,
    content_sig: "c2ln",
    orig_ts: 1700000400000,
    msg_ts: 1700000400000,
    inner_type: "FILE_CHUNK",
  };
  assert.deepEqual(decode("SERVER_DELIVER", payload), payload);
  assert.deepEqual(decode("SERVER_DELIVER", { user_id: BOB, file_id: FILE }), { user_id: BOB });
  badFrame("SERVER_DELIVER", { ciphertext: "Y3Q" }, "no user_id");
  badFrame("SERVER_DELIVER", { user_id: "bob" }, "non-UUID user_id");
  badFrame("SERVER_DELIVER", { user_id: BOB, orig_ts: "1" }, "string orig_ts");
});

Deno.test("`decodeFrame()` decodes HEARTBEAT and CTRL_CLOSE with any payload", () => {
  assert.deepEqual(decode("HEARTBEAT", {}), {});
  assert.deepEqual(decode("HEARTBEAT", { now: 1700000000.5 }), { now: 1700000000.5 });
  assert.deepEqual(decode("CTRL_CLOSE", {}), {});
  assert.deepEqual(decode("CTRL_CLOSE", { reason: "bye" }), { reason: "bye" });
});

Deno.test("`decodeFrame()` decodes ACK", () => {
  assert.deepEqual(decode("ACK", { msg_ref: "USER_HELLO_OK", server_pub: KEY }), {
    msg_ref: "USER_HELLO_OK",
  });
  assert.deepEqual(decode("ACK", {}), {});
  badFrame("ACK", { msg_ref: 1 }, "numeric msg_ref");
});

Deno.test("`decodeFrame()` decodes ERROR with detail or message", () => {
  assert.deepEqual(decode("ERROR", { code: "USER_NOT_FOUND", detail: "Bob not registered" }), {
    code: "USER_NOT_FOUND",
    detail: "Bob not registered",
  });
  assert.deepEqual(decode("ERROR", { code: "BAD_CONTENT_SIG", message: "nope" }), {
    code: "BAD_CONTENT_SIG",
    detail: "nope",
  });
  assert.deepEqual(decode("ERROR", {}), { code: "UNKNOWN" });
  badFrame("ERROR", { code: 1 }, "numeric code");
});

Deno.test("`decodeFrame()` takes PRESENCE_BATCH of adverts and removes only, at most 4,096", () => {
  const advert = {
    type: "USER_ADVERTISE",
    from: "s",
    to: "*",
    ts: 1,
    payload: { user_id: "u", meta: {} },
    sig: "x",
  };
  const remove = { type: "USER_REMOVE", from: "s", to: "*", ts: 2, payload: { user_id: "u" } };
  const batch = (frames: unknown) => ({
    type: "PRESENCE_BATCH",
    from: "s",
    to: "u",
    ts: 3,
    payload: { frames } as JsonObject,
  });
  const ok = decodeFrame(batch([advert, remove]) as Envelope);
  assert.equal(ok?.type, "PRESENCE_BATCH");
  if (ok?.type === "PRESENCE_BATCH") {
    assert.deepEqual(ok.p.frames.map((f) => f.type), ["USER_ADVERTISE", "USER_REMOVE"]);
    assert.equal(ok.p.frames[0]!.sig, "x");
  }
  const deliver = { ...remove, type: "USER_DELIVER" };
  assert.throws(() => decodeFrame(batch([advert, deliver]) as Envelope), /only USER_ADVERTISE/);
  assert.throws(() => decodeFrame(batch([batch([])]) as Envelope), /only USER_ADVERTISE/);
  assert.throws(() => decodeFrame(batch("nope") as Envelope), /must be a list/);
  assert.throws(() => decodeFrame(batch(Array(4097).fill(remove)) as Envelope), /at most 4096/);
  assert.throws(() => decodeFrame(batch([42]) as Envelope), /not a JSON object/);
});
