import assert from "node:assert/strict";
import { ProtocolError } from "../shared/mod.ts";
import { accountPattern, MAX_PATTERN_LENGTH } from "./account_pattern.ts";

function refused(pattern: string, message: RegExp): void {
  assert.throws(() => accountPattern(pattern), (e: unknown) => {
    assert.ok(e instanceof ProtocolError, String(e));
    assert.equal(e.code, "BAD_REQUEST");
    assert.match(e.message, message);
    return true;
  });
}

Deno.test("`accountPattern()` turns globs into anchored, case-insensitive patterns", () => {
  assert.ok(accountPattern("al*").test("Alice"));
  assert.ok(!accountPattern("al*").test("Malice"));
  assert.ok(accountPattern("b?b").test("bob"));
  assert.ok(!accountPattern("b?b").test("boob"));
  assert.ok(accountPattern("[a-c]*").test("carol"));
  assert.ok(!accountPattern("[!a-c]*").test("carol"));
  assert.ok(accountPattern("[!a-c]*").test("dave"));
  assert.ok(!accountPattern("[^a-c]*").test("carol"));
  assert.ok(accountPattern("ANNA").test("anna"));
  assert.ok(accountPattern("*").test("x.y-z_0"));
  assert.ok(!accountPattern("").test("anna"));
});

Deno.test("`accountPattern()` takes every other glob character literally", () => {
  assert.ok(accountPattern("a.b").test("a.b"));
  assert.ok(!accountPattern("a.b").test("axb"));
  for (const name of ["a+b", "a(b", "a|b", "a{2}", "a$b", "a^b", "a\\b"]) {
    assert.ok(accountPattern(name).test(name), name);
  }
  assert.ok(!accountPattern("a+").test("aa"));
  assert.ok(!accountPattern("a|b").test("a"));
  // "]" right after "[" or "[!" is a member; "[" and "\" inside a class are members too.
  assert.ok(accountPattern("[]]x").test("]x"));
  assert.ok(accountPattern("[!]]x").test("ax"));
  assert.ok(!accountPattern("[!]]x").test("]x"));
  assert.ok(accountPattern("[[]").test("["));
  assert.ok(accountPattern("[\\]").test("\\"));
  assert.ok(!accountPattern("[:alpha:]").test("b"), "no POSIX classes in globs");
});

Deno.test("`accountPattern()` searches with a /regex/, case-insensitively", () => {
  assert.ok(accountPattern("/^b.+b$/").test("bob"));
  assert.ok(accountPattern("/ob/").test("Bob"));
  assert.ok(!accountPattern("/^ob/").test("Bob"));
  assert.ok(accountPattern("/(la|ton)$/").test("Anton"));
  assert.ok(accountPattern("//").test("anyone"));
  assert.ok(!accountPattern("/").test("anyone"), "a lone slash is a glob");
});

Deno.test("`accountPattern()` matches a catastrophic-backtracking regex in linear time", () => {
  // A backtracking engine takes hours on this (doubling per character); RE2 answers at once.
  const pattern = accountPattern("/^(a+)+$/");
  assert.equal(pattern.test("a".repeat(40) + "!"), false);
  assert.equal(pattern.test("a".repeat(40)), true);
  assert.equal(accountPattern("/(x+x+)+y/").test("x".repeat(5000)), false);
  assert.equal(accountPattern("*a*a*a*a*a*a*a*b").test("a".repeat(5000)), false);
});

Deno.test("`accountPattern()` refuses malformed patterns with BAD_REQUEST saying what is wrong", () => {
  refused("[abc", /^Malformed pattern "\[abc": "\[" at 1 is never closed$/);
  refused("a]", /^Malformed pattern "a\]": "\]" at 2 has no "\["$/);
  refused("[z-a]", /^Malformed pattern "\[z-a\]": invalid character class range `z-a`$/);
  refused("/(/", /^Malformed regular expression "\/\(\/": missing closing \)$/);
  refused("/[z-a]/", /^Malformed regular expression "\/\[z-a\]\/": invalid character class/);
  // RE2 has no backreferences and no lookaround.
  refused("/(a)\\1/", /^Malformed regular expression "\/\(a\)\\1\/": invalid escape sequence/);
  refused("/(?=a)/", /^Malformed regular expression .*unsupported Perl syntax/);
  refused("/(a{1000}){1000}/", /^Malformed regular expression .*invalid repeat count/);
});

Deno.test("`accountPattern()` refuses a pattern longer than 64 characters, quoting its start", () => {
  assert.equal(MAX_PATTERN_LENGTH, 64);
  assert.ok(accountPattern("a".repeat(64)).test("a".repeat(64)));
  refused("b".repeat(65), /^Pattern "b{64}…" is 65 characters long; at most 64 are allowed$/);
  refused(`/${"(a+)+".repeat(20)}/`, /is 102 characters long/);
});
