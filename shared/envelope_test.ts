import assert from "node:assert/strict";
import {
  DEFAULT_MAX_FRAME_BYTES,
  type Envelope,
  isObject,
  isUuid,
  type JsonObject,
  optArray,
  optNumber,
  optObject,
  optString,
  parseEnvelope,
  reqId,
  reqInt,
  reqString,
  serializeEnvelope,
  toEnvelope,
} from "./envelope.ts";
import { type ErrorCode, ProtocolError } from "./errors.ts";

const ALICE = "5b2c1f0e-8a7d-4c3b-9e21-0f6a7d3c2b11";
const BOB = "9d4e2a61-3f0b-4b7c-8a55-6e1f2d3c4b5a";

function frame(fields: Record<string, unknown> = {}): Record<string, unknown> {
  return { type: "MSG_DIRECT", from: ALICE, to: BOB, ts: 1700000400000, payload: {}, ...fields };
}

function text(fields: Record<string, unknown> = {}): string {
  return JSON.stringify(frame(fields));
}

/** Asserts that `fn` throws a ProtocolError with `code`. */
function throwsCode(fn: () => unknown, code: ErrorCode, label = ""): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ProtocolError, `${label}: ${e}`);
    assert.equal(e.code, code, label);
    return true;
  });
}

Deno.test("`parseEnvelope()` parses the spec's envelope", () => {
  const env = parseEnvelope(text({ payload: { ciphertext: "QQ" }, sig: "c2ln" }));
  assert.deepEqual(env, {
    type: "MSG_DIRECT",
    from: ALICE,
    to: BOB,
    ts: 1700000400000,
    payload: { ciphertext: "QQ" },
    sig: "c2ln",
  });
});

Deno.test("`parseEnvelope()` accepts a trailing newline", () => {
  assert.equal(parseEnvelope(text() + "\n").type, "MSG_DIRECT");
  assert.equal(parseEnvelope(text() + "\r\n").type, "MSG_DIRECT");
  assert.equal(parseEnvelope(" " + text() + "\n\n").type, "MSG_DIRECT");
});

Deno.test('`parseEnvelope()` treats a sig of "" or null as absent', () => {
  for (const sig of ["", null, undefined]) {
    const env = parseEnvelope(text({ sig }));
    assert.equal(env.sig, undefined);
    assert.equal("sig" in env, false, JSON.stringify(sig));
  }
});

Deno.test("`parseEnvelope()` keeps a float ts as sent", () => {
  assert.equal(parseEnvelope(text({ ts: 1700000400.123456 })).ts, 1700000400.123456);
  assert.equal(parseEnvelope(text({ ts: 0 })).ts, 0);
});

Deno.test("`parseEnvelope()` accepts HELLO_JOIN's host:port and broadcast recipients", () => {
  assert.equal(
    parseEnvelope(text({ type: "SERVER_HELLO_JOIN", to: "10.0.0.1:8765" })).to,
    "10.0.0.1:8765",
  );
  assert.equal(parseEnvelope(text({ to: "*" })).to, "*");
  assert.equal(parseEnvelope(text({ from: "auto" })).from, "auto");
});

Deno.test("`parseEnvelope()` reads a missing payload as an empty object", () => {
  const { payload: _, ...noPayload } = frame();
  assert.deepEqual(parseEnvelope(JSON.stringify(noPayload)).payload, {});
});

Deno.test("`parseEnvelope()` drops unknown top-level members", () => {
  const env = parseEnvelope(text({ extra: 1, nonce: "x" }));
  assert.deepEqual(Object.keys(env).sort(), ["from", "payload", "to", "ts", "type"]);
});

Deno.test("`parseEnvelope()` rejects text that is not JSON with BAD_FRAME", () => {
  for (const bad of ["", "{", "not json", '{"type":"X",}', text().slice(0, -1)]) {
    throwsCode(() => parseEnvelope(bad), "BAD_FRAME", bad);
  }
  try {
    parseEnvelope("{");
  } catch (e) {
    assert.ok((e as Error).cause instanceof SyntaxError);
  }
});

Deno.test("`parseEnvelope()` rejects JSON that is not an object with BAD_FRAME", () => {
  for (const bad of ["[]", `[${text()}]`, "null", "1", '"MSG_DIRECT"', "true"]) {
    throwsCode(() => parseEnvelope(bad), "BAD_FRAME", bad);
  }
});

Deno.test("`parseEnvelope()` rejects a missing or non-string type, from or to with BAD_FRAME", () => {
  for (const field of ["type", "from", "to"]) {
    throwsCode(() => parseEnvelope(text({ [field]: undefined })), "BAD_FRAME", `no ${field}`);
    throwsCode(() => parseEnvelope(text({ [field]: 1 })), "BAD_FRAME", `numeric ${field}`);
    throwsCode(() => parseEnvelope(text({ [field]: null })), "BAD_FRAME", `null ${field}`);
  }
  throwsCode(() => parseEnvelope(text({ type: "" })), "BAD_FRAME", "empty type");
  throwsCode(() => parseEnvelope(text({ type: "X".repeat(65) })), "BAD_FRAME", "long type");
  throwsCode(() => parseEnvelope(text({ from: "a".repeat(257) })), "BAD_FRAME", "long from");
  throwsCode(() => parseEnvelope(text({ to: "b".repeat(257) })), "BAD_FRAME", "long to");
});

Deno.test("`parseEnvelope()` rejects a missing, non-numeric or negative ts with BAD_FRAME", () => {
  for (const ts of [undefined, null, "1700000400000", -1, [1], {}]) {
    throwsCode(() => parseEnvelope(text({ ts })), "BAD_FRAME", JSON.stringify(ts));
  }
});

Deno.test("`parseEnvelope()` rejects a payload that is not an object with BAD_FRAME", () => {
  for (const payload of [null, [], [{}], "x", 1, true]) {
    throwsCode(() => parseEnvelope(text({ payload })), "BAD_FRAME", JSON.stringify(payload));
  }
});

Deno.test("`parseEnvelope()` rejects a sig that is not a string with BAD_FRAME", () => {
  for (const sig of [0, 1, true, false, [], {}, ["c2ln"]]) {
    throwsCode(() => parseEnvelope(text({ sig })), "BAD_FRAME", JSON.stringify(sig));
  }
});

Deno.test("`parseEnvelope()` rejects a frame over maxBytes with FRAME_TOO_LARGE", () => {
  const base = text({ payload: { pad: "" } });
  const max = base.length + 20;
  const exact = text({ payload: { pad: "x".repeat(20) } });
  assert.equal(exact.length, max);
  assert.equal(parseEnvelope(exact, { maxBytes: max }).type, "MSG_DIRECT");
  const over = text({ payload: { pad: "x".repeat(21) } });
  throwsCode(() => parseEnvelope(over, { maxBytes: max }), "FRAME_TOO_LARGE");
  // The size check comes first: even garbage over the limit is FRAME_TOO_LARGE.
  throwsCode(() => parseEnvelope("x".repeat(101), { maxBytes: 100 }), "FRAME_TOO_LARGE");
});

Deno.test("`parseEnvelope()` limits frames to 1 MiB by default", () => {
  assert.equal(DEFAULT_MAX_FRAME_BYTES, 1_048_576);
  const base = text({ payload: { pad: "" } });
  const exact = text({ payload: { pad: "x".repeat(DEFAULT_MAX_FRAME_BYTES - base.length) } });
  assert.equal(parseEnvelope(exact).type, "MSG_DIRECT");
  throwsCode(() => parseEnvelope(exact + " "), "FRAME_TOO_LARGE");
});

Deno.test("`parseEnvelope()` measures maxBytes in UTF-8 bytes, not UTF-16 code units", () => {
  const base = text({ payload: { name: "" } });
  const max = base.length + 60;
  // 40 × "é" is 40 code units but 80 UTF-8 bytes, so this frame is 20 bytes over the limit.
  const wide = text({ payload: { name: "é".repeat(40) } });
  assert.ok(wide.length <= max);
  assert.equal(new TextEncoder().encode(wide).length, max + 20);
  throwsCode(() => parseEnvelope(wide, { maxBytes: max }), "FRAME_TOO_LARGE");
  // Same for CJK (3 bytes per code unit): 30,000 × "中" is about 90 KB on the wire.
  const cjk = text({ payload: { name: "中".repeat(30_000) } });
  assert.ok(cjk.length < 65_536);
  throwsCode(() => parseEnvelope(cjk, { maxBytes: 65_536 }), "FRAME_TOO_LARGE");
});

Deno.test("`toEnvelope()` validates an already-parsed value", () => {
  assert.deepEqual(toEnvelope(frame({ sig: "c2ln" })), { ...frame(), sig: "c2ln" });
  throwsCode(() => toEnvelope([]), "BAD_FRAME");
  throwsCode(() => toEnvelope(null), "BAD_FRAME");
  throwsCode(() => toEnvelope("x"), "BAD_FRAME");
  throwsCode(() => toEnvelope(frame({ ts: NaN })), "BAD_FRAME");
  throwsCode(() => toEnvelope(frame({ ts: Infinity })), "BAD_FRAME");
});

Deno.test('`serializeEnvelope()` omits an absent or empty sig and never emits "sig":""', () => {
  const env: Envelope = { type: "HEARTBEAT", from: ALICE, to: BOB, ts: 1, payload: {} };
  const unsigned = serializeEnvelope(env);
  assert.equal(
    unsigned,
    `{"type":"HEARTBEAT","from":"${ALICE}","to":"${BOB}","ts":1,"payload":{}}`,
  );
  assert.equal(serializeEnvelope({ ...env, sig: "" }), unsigned);
  assert.ok(!serializeEnvelope({ ...env, sig: "" }).includes('"sig"'));
});

Deno.test("`serializeEnvelope()` includes a present sig", () => {
  const env: Envelope = {
    type: "HEARTBEAT",
    from: ALICE,
    to: BOB,
    ts: 1,
    payload: {},
    sig: "c2ln",
  };
  assert.ok(serializeEnvelope(env).endsWith(',"sig":"c2ln"}'));
});

Deno.test("`serializeEnvelope()` output parses back to the same envelope", () => {
  const env: Envelope = {
    type: "USER_ADVERTISE",
    from: ALICE,
    to: "*",
    ts: 1700000100000,
    payload: { user_id: BOB, meta: { display_name: "Zoë 😀" }, list: [1, null, true] },
    sig: "c2ln",
  };
  assert.deepEqual(parseEnvelope(serializeEnvelope(env)), env);
  const { sig: _, ...unsigned } = env;
  assert.deepEqual(parseEnvelope(serializeEnvelope(unsigned)), unsigned);
});

Deno.test("`isUuid()` accepts any RFC 4122 UUID shape and rejects the rest", () => {
  assert.ok(isUuid(ALICE));
  assert.ok(isUuid("5b2c1f0e-8a7d-1c3b-9e21-0f6a7d3c2b11"));
  assert.ok(isUuid("00000000-0000-0000-0000-000000000000"));
  assert.ok(isUuid(ALICE.toUpperCase()));
  const bad: unknown[] = [
    "5b2c1f0e8a7d4c3b9e210f6a7d3c2b11",
    `{${ALICE}}`,
    ` ${ALICE}`,
    `${ALICE}\n`,
    "5b2c1f0e-8a7d-4c3b-9e21-0f6a7d3c2b1g",
    "auto",
    "",
    `${ALICE}x`,
    1,
    null,
    undefined,
    {},
  ];
  for (const value of bad) assert.equal(isUuid(value), false, String(value));
});

Deno.test("`isObject()` is true only for non-array, non-null objects", () => {
  assert.ok(isObject({}));
  assert.ok(isObject({ a: 1 }));
  for (const value of [null, [], "x", 1, undefined, true]) {
    assert.equal(isObject(value), false, String(value));
  }
});

const P: JsonObject = {
  s: "text",
  empty: "",
  nil: null,
  n: 7,
  f: 1.5,
  neg: -1,
  big: 2 ** 53,
  id: ALICE,
  obj: { a: 1 },
  arr: [1, "x"],
};

/** Asserts a BAD_FRAME error naming `field` and the frame type. */
function throwsField(fn: () => unknown, field: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ProtocolError);
    assert.equal(e.code, "BAD_FRAME");
    assert.match(e.message, new RegExp(`^T payload field "${field}" must be `));
    return true;
  });
}

Deno.test("`reqString()` returns a non-empty string and rejects anything else", () => {
  assert.equal(reqString(P, "T", "s"), "text");
  for (const field of ["empty", "nil", "n", "obj", "arr", "missing"]) {
    throwsField(() => reqString(P, "T", field), field);
  }
  assert.equal(reqString(P, "T", "s", 4), "text");
  throwsField(() => reqString(P, "T", "s", 3), "s");
});

Deno.test("`optString()` gives undefined for absent, null or empty and rejects non-strings", () => {
  assert.equal(optString(P, "T", "s"), "text");
  assert.equal(optString(P, "T", "empty"), undefined);
  assert.equal(optString(P, "T", "nil"), undefined);
  assert.equal(optString(P, "T", "missing"), undefined);
  for (const field of ["n", "obj", "arr"]) throwsField(() => optString(P, "T", field), field);
});

Deno.test("`reqInt()` returns a non-negative safe integer and rejects anything else", () => {
  assert.equal(reqInt(P, "T", "n"), 7);
  assert.equal(reqInt({ z: 0 }, "T", "z"), 0);
  for (const field of ["f", "neg", "big", "s", "nil", "missing", "arr"]) {
    throwsField(() => reqInt(P, "T", field), field);
  }
});

Deno.test("`optNumber()` returns a finite number, undefined when absent or null", () => {
  assert.equal(optNumber(P, "T", "f"), 1.5);
  assert.equal(optNumber(P, "T", "neg"), -1);
  assert.equal(optNumber(P, "T", "nil"), undefined);
  assert.equal(optNumber(P, "T", "missing"), undefined);
  for (const field of ["s", "empty", "obj"]) throwsField(() => optNumber(P, "T", field), field);
  throwsField(() => optNumber({ x: Infinity }, "T", "x"), "x");
});

Deno.test("`reqId()` returns a UUID and rejects anything else", () => {
  assert.equal(reqId(P, "T", "id"), ALICE);
  for (const field of ["s", "empty", "nil", "n", "missing"]) {
    throwsField(() => reqId(P, "T", field), field);
  }
});

Deno.test("`optObject()` returns an object, undefined when absent or null", () => {
  assert.deepEqual(optObject(P, "T", "obj"), { a: 1 });
  assert.equal(optObject(P, "T", "nil"), undefined);
  assert.equal(optObject(P, "T", "missing"), undefined);
  for (const field of ["arr", "s", "n"]) throwsField(() => optObject(P, "T", field), field);
});

Deno.test("`optArray()` returns an array, undefined when absent or null", () => {
  assert.deepEqual(optArray(P, "T", "arr"), [1, "x"]);
  assert.equal(optArray(P, "T", "nil"), undefined);
  assert.equal(optArray(P, "T", "missing"), undefined);
  for (const field of ["obj", "s", "n"]) throwsField(() => optArray(P, "T", field), field);
});
