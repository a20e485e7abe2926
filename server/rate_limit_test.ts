import assert from "node:assert/strict";
import { TokenBucket } from "./rate_limit.ts";
import { SeenCache, seenKey } from "./seen_cache.ts";

Deno.test("`TokenBucket` allows a burst, then refills at the rate", () => {
  let now = 0;
  const bucket = new TokenBucket({ rate: 10, burst: 3, clock: () => now });
  assert.deepEqual([bucket.take(), bucket.take(), bucket.take(), bucket.take()], [
    true,
    true,
    true,
    false,
  ]);
  now += 100; // one token
  assert.equal(bucket.take(), true);
  assert.equal(bucket.take(), false);
  now += 10_000; // never more than the burst
  assert.deepEqual([bucket.take(), bucket.take(), bucket.take(), bucket.take()], [
    true,
    true,
    true,
    false,
  ]);
});

Deno.test("`SeenCache` reports duplicates until the TTL passes", () => {
  let now = 0;
  const seen = new SeenCache({ ttlMs: 1000, clock: () => now });
  assert.equal(seen.add("a"), true);
  assert.equal(seen.add("a"), false);
  now = 999;
  assert.equal(seen.add("a"), false);
  now = 1001;
  assert.equal(seen.add("a"), true);
});

Deno.test("`SeenCache` stays within its size bound", () => {
  const seen = new SeenCache({ max: 3 });
  for (const k of ["a", "b", "c", "d"]) seen.add(k);
  assert.equal(seen.size, 3);
  assert.equal(seen.add("a"), true); // the oldest was evicted
});

Deno.test("`seenKey()` covers type, ts, from, to and the payload, not the signature", async () => {
  const base = { type: "SERVER_DELIVER", from: "s1", to: "s2", ts: 5, payload: { a: 1 } };
  const k = await seenKey(base);
  assert.equal(await seenKey({ ...base, sig: "x" }), k);
  assert.notEqual(await seenKey({ ...base, ts: 6 }), k);
  assert.notEqual(await seenKey({ ...base, type: "USER_ADVERTISE" }), k);
  assert.notEqual(await seenKey({ ...base, payload: { a: 2 } }), k);
  assert.notEqual(await seenKey({ ...base, to: "s3" }), k);
});
