import assert from "node:assert/strict";
import { plural } from "./plural.ts";

Deno.test("`plural()` keeps the noun singular for exactly 1", () => {
  assert.equal(plural(1, "introducer"), "1 introducer");
  assert.equal(plural(1, "more second"), "1 more second");
  assert.equal(plural(1, "entry", "entries"), "1 entry");
});

Deno.test("`plural()` uses the plural for 0, many and fractions", () => {
  assert.equal(plural(0, "link"), "0 links");
  assert.equal(plural(2, "more second"), "2 more seconds");
  assert.equal(plural(1.5, "second"), "1.5 seconds");
  assert.equal(plural(3, "entry", "entries"), "3 entries");
});
