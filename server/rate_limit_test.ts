import assert from "node:assert/strict";
import { KeyedTokenBuckets, TokenBucket } from "./rate_limit.ts";
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

Deno.test("`seenKey()` of a gossip frame covers type, ts, from, to and the payload, not the signature", () => {
  const base = { type: "PUBLIC_CHANNEL_UPDATED", from: "s1", to: "s2", ts: 5, payload: { a: 1 } };
  const k = seenKey(base);
  assert.equal(seenKey({ ...base, sig: "x" }), k);
  assert.notEqual(seenKey({ ...base, ts: 6 }), k);
  assert.notEqual(seenKey({ ...base, type: "USER_ADVERTISE" }), k);
  assert.notEqual(seenKey({ ...base, payload: { a: 2 } }), k);
  assert.notEqual(seenKey({ ...base, to: "s3" }), k);
});

Deno.test("`TokenBucket.waitMs()` says when the next token comes", () => {
  let now = 0;
  const bucket = new TokenBucket({ rate: 10 / 3600, burst: 10, clock: () => now });
  assert.equal(bucket.waitMs(), 0);
  for (let i = 0; i < 10; i++) assert.ok(bucket.take());
  assert.equal(bucket.take(), false);
  assert.equal(bucket.waitMs(), 360_000);
  now += 60_000;
  assert.equal(bucket.waitMs(), 300_000);
  assert.equal(bucket.full, false);
  now += 3_600_000;
  assert.equal(bucket.full, true);
});

Deno.test("`KeyedTokenBuckets` limits each key on its own and keeps at most `maxKeys`", () => {
  let now = 0;
  const limits = new KeyedTokenBuckets({ rate: 1, burst: 2, clock: () => now, maxKeys: 3 });
  assert.deepEqual([limits.take("a"), limits.take("a"), limits.take("a")], [true, true, false]);
  assert.equal(limits.take("b"), true);
  assert.equal(limits.waitMs("a"), 1000);
  assert.equal(limits.waitMs("unknown"), 0);
  assert.ok(limits.take("c"));
  // A fourth key: no bucket is full, so the oldest ("a") is forgotten.
  assert.ok(limits.take("d"));
  assert.equal(limits.size, 3);
  assert.equal(limits.waitMs("a"), 0);
  // Full buckets go first: after 2 s, "b", "c" and "d" are full again.
  now += 2000;
  assert.ok(limits.take("e") && limits.take("e"));
  assert.equal(limits.size, 1);
  assert.equal(limits.take("e"), false, "the busy key keeps its state");
});
