import assert from "node:assert/strict";
import { Fifo } from "./_fifo.ts";

Deno.test("`Fifo` gives items back in order across compactions", () => {
  const queue = new Fifo<number>();
  assert.equal(queue.shift(), undefined);
  let next = 0;
  let expected = 0;
  // Interleave pushes and shifts so the head passes the compaction threshold many times.
  for (let round = 0; round < 50; round++) {
    for (let i = 0; i < 100; i++) queue.push(next++);
    for (let i = 0; i < 60; i++) assert.equal(queue.shift(), expected++);
  }
  assert.equal(queue.length, next - expected);
  while (queue.length > 0) assert.equal(queue.shift(), expected++);
  assert.equal(expected, next);
  assert.equal(queue.shift(), undefined);
});
