import assert from "node:assert/strict";
import { canonicalBytes, canonicalJson } from "./canonical_json.ts";

// Every expected string below is the literal output of CPython 3's
// `json.dumps(value, sort_keys=True, separators=(",", ":"))` (with `ensure_ascii=False` where the
// test says raw UTF-8), which is what the SOCP majority signs (reference §6.1).

Deno.test("`canonicalJson()` sorts keys by code unit", () => {
  // json.dumps({"b":1,"a":2,"C":3,"_":4,"aa":5,"A":6}, ...)
  assert.equal(
    canonicalJson({ b: 1, a: 2, C: 3, _: 4, aa: 5, A: 6 }),
    '{"A":6,"C":3,"_":4,"a":2,"aa":5,"b":1}',
  );
  assert.equal(
    canonicalJson({ "é": 1, "z": 2, "中": 3 }),
    String.raw`{"z":2,"\u00e9":1,"\u4e2d":3}`,
  );
});

Deno.test("`canonicalJson()` ignores insertion order", () => {
  assert.equal(
    canonicalJson({ to: "b", from: "a", payload: { y: 1, x: 2 } }),
    canonicalJson({ payload: { x: 2, y: 1 }, from: "a", to: "b" }),
  );
});

Deno.test("`canonicalJson()` sorts nested objects and keeps array order", () => {
  // json.dumps({"z":{"y":[3,{"b":True,"a":None}],"x":"s"},"a":[[],{}]}, ...)
  assert.equal(
    canonicalJson({ z: { y: [3, { b: true, a: null }], x: "s" }, a: [[], {}] }),
    '{"a":[[],{}],"z":{"x":"s","y":[3,{"a":null,"b":true}]}}',
  );
  assert.equal(canonicalJson([3, 1, 2]), "[3,1,2]");
});

Deno.test("`canonicalJson()` emits no white space between tokens", () => {
  const value = { list: [1, 2, { k: "v w" }], flag: false, none: null, n: { m: {} } };
  const text = canonicalJson(value);
  assert.equal(text, '{"flag":false,"list":[1,2,{"k":"v w"}],"n":{"m":{}},"none":null}');
  assert.deepEqual(JSON.parse(text), value);
});

Deno.test("`canonicalJson()` serialises scalars", () => {
  assert.equal(canonicalJson(null), "null");
  assert.equal(canonicalJson(true), "true");
  assert.equal(canonicalJson(false), "false");
  assert.equal(canonicalJson("x"), '"x"');
  assert.equal(canonicalJson(""), '""');
  assert.equal(canonicalJson(42), "42");
});

Deno.test("`canonicalJson()` escapes non-ASCII as \\uXXXX like Python's ensure_ascii", () => {
  // json.dumps({"name":"é","emoji":"😀","cjk":"中文"}, ...)
  assert.equal(
    canonicalJson({ name: "é", emoji: "😀", cjk: "中文" }),
    String.raw`{"cjk":"\u4e2d\u6587","emoji":"\ud83d\ude00","name":"\u00e9"}`,
  );
  // json.dumps("\u2028\u2029") and json.dumps("\x7f") (DEL is outside " ".."~")
  assert.equal(canonicalJson("\u2028\u2029"), String.raw`"\u2028\u2029"`);
  assert.equal(canonicalJson("\x7f"), String.raw`"\u007f"`);
  // json.dumps("\ufeffA\uffff")
  assert.equal(canonicalJson("\ufeffA\uffff"), String.raw`"\ufeffA\uffff"`);
});

Deno.test("`canonicalJson()` escapes control characters, quotes and backslashes", () => {
  // json.dumps("\x00\x01\x08\x09\x0a\x0c\x0d\x1f\x7f\"\\/")
  assert.equal(
    canonicalJson('\x00\x01\x08\x09\x0a\x0c\x0d\x1f\x7f"\\/'),
    String.raw`"\u0000\u0001\b\t\n\f\r\u001f\u007f\"\\/"`,
  );
});

Deno.test("`canonicalJson()` keeps non-ASCII as raw UTF-8 with `ascii: false`", () => {
  // json.dumps({"name":"é😀中"}, ..., ensure_ascii=False)
  assert.equal(canonicalJson({ name: "é😀中" }, { ascii: false }), '{"name":"é😀中"}');
  // json.dumps("\x00\x01\x08\x09\x0a\x0c\x0d\x1f\x7f\"\\/", ensure_ascii=False): DEL stays raw
  assert.equal(
    canonicalJson('\x00\x01\x08\x09\x0a\x0c\x0d\x1f\x7f"\\/', { ascii: false }),
    String.raw`"\u0000\u0001\b\t\n\f\r\u001f` + "\x7f" + String.raw`\"\\/"`,
  );
  assert.equal(canonicalJson({ "é": "ü" }, { ascii: false }), '{"é":"ü"}');
});

Deno.test("`canonicalJson()` writes integers without a fraction and floats like Python", () => {
  // json.dumps([0,-1,1700000000000,1.5,-0.25,1700000000.123456,2**53])
  assert.equal(
    canonicalJson([0, -1, 1700000000000, 1.5, -0.25, 1700000000.123456, 2 ** 53]),
    "[0,-1,1700000000000,1.5,-0.25,1700000000.123456,9007199254740992]",
  );
  // JavaScript cannot tell 2.0 from 2: integral values are written as integers.
  assert.equal(canonicalJson(2.0), "2");
  assert.equal(canonicalJson(-0), "0");
  assert.equal(canonicalJson(1e20), "100000000000000000000");
});

Deno.test("`canonicalJson()` writes small floats with Python's exponent form", () => {
  // json.dumps([1e-05, 1e-07, 0.0001, 2.5e-06]) == '[1e-05,1e-07,0.0001,2.5e-06]'
  // Known deviation: JavaScript's Number#toString gives "0.00001", "1e-7" and "0.0000025".
  assert.equal(canonicalJson([1e-5, 1e-7, 0.0001, 2.5e-6]), "[1e-05,1e-07,0.0001,2.5e-06]");
});

Deno.test("`canonicalJson()` drops object members whose value is undefined", () => {
  assert.equal(canonicalJson({ a: undefined, b: 1, c: { d: undefined } }), '{"b":1,"c":{}}');
});

Deno.test("`canonicalJson()` throws TypeError on values JSON cannot carry", () => {
  const bad: unknown[] = [
    NaN,
    Infinity,
    -Infinity,
    { n: NaN },
    [1, Infinity],
    () => 1,
    { f: () => 1 },
    10n,
    { big: 1n },
    Symbol("s"),
    undefined,
    [undefined],
  ];
  for (const value of bad) {
    assert.throws(() => canonicalJson(value), TypeError, String(typeof value));
  }
});

Deno.test("`canonicalBytes()` is the UTF-8 encoding of `canonicalJson()`", () => {
  const value = { b: "é", a: "😀" };
  assert.deepEqual(
    canonicalBytes(value),
    new TextEncoder().encode(String.raw`{"a":"\ud83d\ude00","b":"\u00e9"}`),
  );
  const raw = canonicalBytes(value, { ascii: false });
  assert.deepEqual(raw, new TextEncoder().encode('{"a":"😀","b":"é"}'));
  assert.equal(raw.length, '{"a":"","b":""}'.length + 4 + 2);
});
