import assert from "node:assert/strict";
import { Outbox } from "./outbox.ts";

Deno.test("Outbox.confirm() drops only frames written before the answered request", () => {
  const box = new Outbox();
  const written = ["a", "b", "c"].map((t) => box.push(t));
  box.markWritten(1); // a
  box.markWritten(2); // b
  // frame 3 is a request; c is written after it
  box.markWritten(4); // c
  assert.equal(box.confirm(3), 2);
  assert.deepEqual([box.size, box.written, box.unsent], [1, 1, 0]);
  assert.deepEqual(written.map((w) => w()), [true, true, true]);
  assert.equal(box.confirm(3), 0, "an older answer confirms nothing more");
  assert.equal(box.confirm(5), 1);
  assert.equal(box.size, 0);
});

Deno.test("Outbox.rewind() makes every frame unsent again, oldest first", () => {
  const box = new Outbox();
  box.push("a");
  box.push("b");
  box.markWritten(7);
  box.rewind();
  assert.deepEqual([box.written, box.unsent, box.nextUnsent()], [0, 2, "a"]);
  box.markWritten(1);
  assert.equal(box.nextUnsent(), "b");
});

Deno.test("Outbox is bounded: push() throws RangeError when full; forget() frees written frames", () => {
  const box = new Outbox({ limit: 2 });
  box.push("a");
  box.push("b");
  assert.ok(box.full);
  assert.throws(() => box.push("c"), RangeError);
  assert.equal(box.forget(1), 0, "nothing written yet: nothing to forget");
  box.markWritten(1);
  assert.equal(box.forget(5), 1);
  assert.ok(!box.full);
  assert.throws(() => new Outbox().markWritten(1), RangeError);
  assert.equal(box.clear(), 1);
});
