import assert from "node:assert/strict";
import { ProtocolError } from "../shared/mod.ts";
import type { UserRecord } from "../storage/mod.ts";
import {
  accountPattern,
  nameWinner,
  recordFromJson,
  recordToJson,
  supersedes,
} from "./accounts.ts";

function user(overrides: Partial<UserRecord>): UserRecord {
  return {
    user_id: "11111111-1111-4111-8111-111111111111",
    pubkey: "k",
    privkey_store: "{}",
    pake_password: "{}",
    meta: "",
    version: 1,
    username: "alice",
    home_server: null,
    updated_at: 10,
    registered_at: 10,
    deleted: false,
    ...overrides,
  };
}

Deno.test("`accountPattern()` turns globs into anchored, case-insensitive patterns", () => {
  assert.ok(accountPattern("al*").test("Alice"));
  assert.ok(!accountPattern("al*").test("Malice"));
  assert.ok(accountPattern("b?b").test("bob"));
  assert.ok(!accountPattern("b?b").test("boob"));
  assert.ok(accountPattern("[a-c]*").test("carol"));
  assert.ok(!accountPattern("[!a-c]*").test("carol"));
  assert.ok(accountPattern("a.b").test("a.b"));
  assert.ok(!accountPattern("a.b").test("axb"));
  assert.ok(accountPattern("/^b.+b$/").test("bob"));
});

Deno.test("`accountPattern()` refuses malformed patterns with BAD_REQUEST saying what is wrong", () => {
  for (const bad of ["/(/", "[abc", "a]", "/[z-a]/"]) {
    assert.throws(() => accountPattern(bad), (e: unknown) => {
      assert.ok(e instanceof ProtocolError);
      assert.equal(e.code, "BAD_REQUEST");
      assert.match(e.message, /Malformed/);
      return true;
    });
  }
});

Deno.test("`supersedes()` orders by version, then update time", () => {
  assert.ok(supersedes(user({ version: 2 }), user({ version: 1, updated_at: 99 })));
  assert.ok(!supersedes(user({ version: 1 }), user({ version: 2 })));
  assert.ok(supersedes(user({ updated_at: 11 }), user({ updated_at: 10 })));
  const a = user({ pake_password: "a" });
  const b = user({ pake_password: "b" });
  assert.notEqual(supersedes(a, b), supersedes(b, a)); // a total order, so servers agree
});

Deno.test("`nameWinner()` keeps the earlier registration, then the lower id, on every server", () => {
  const early = user({ user_id: "b", registered_at: 5 });
  const late = user({ user_id: "a", registered_at: 6 });
  assert.equal(nameWinner(early, late), early);
  assert.equal(nameWinner(late, early), early);
  const x = user({ user_id: "a", registered_at: 5 });
  const y = user({ user_id: "b", registered_at: 5 });
  assert.equal(nameWinner(x, y), x);
  assert.equal(nameWinner(y, x), x);
});

Deno.test("`recordFromJson()` round-trips a record and drops an invalid username", () => {
  const r = user({ username: "alice", deleted: true });
  assert.deepEqual(recordFromJson(recordToJson(r)), r);
  assert.equal(recordFromJson({ ...recordToJson(r), username: "bad name!" }).username, null);
  assert.throws(() => recordFromJson({ ...recordToJson(r), version: "2" }), ProtocolError);
});
