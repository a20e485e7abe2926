import assert from "node:assert/strict";
import type { CloseInfo, Transport } from "../shared/mod.ts";
import type { Clock } from "./clock.ts";
import { ConnectionClosedError, FramePacer } from "./pacer.ts";

class FakeClock implements Clock {
  t = 1_000_000;
  slept: number[] = [];
  onSleep: () => void = () => {};
  now(): number {
    return this.t;
  }
  sleep(ms: number): Promise<void> {
    this.slept.push(ms);
    this.t += ms;
    this.onSleep();
    return Promise.resolve();
  }
}

function fakeTransport(): Transport & { sent: string[]; buffered: number; isOpen: boolean } {
  const t = {
    sent: [] as string[],
    buffered: 0,
    isOpen: true,
    send(text: string): void {
      t.sent.push(text);
    },
    [Symbol.asyncIterator]: (): AsyncIterator<string> => ({
      next: () => Promise.resolve({ value: undefined, done: true as const }),
    }),
    close(): void {
      t.isOpen = false;
    },
    closed: new Promise<CloseInfo>(() => {}),
    get open(): boolean {
      return t.isOpen;
    },
    get bufferedAmount(): number {
      return t.buffered;
    },
    [Symbol.asyncDispose]: () => Promise.resolve(),
  };
  return t;
}

Deno.test("FramePacer lets a burst through, then keeps to the frame rate", async () => {
  const clock = new FakeClock();
  const t = fakeTransport();
  const pacer = new FramePacer(t, clock, { framesPerSecond: 100, burst: 5 });
  for (let i = 0; i < 25; i++) await pacer.send(`f${i}`);
  assert.equal(t.sent.length, 25);
  assert.deepEqual(t.sent.slice(0, 3), ["f0", "f1", "f2"]);
  // 20 frames beyond the burst at 100/s need about 200 ms of waiting.
  const waited = clock.slept.reduce((a, b) => a + b, 0);
  assert.ok(waited >= 195 && waited <= 260, `waited ${waited} ms`);
});

Deno.test("FramePacer waits while the socket buffer is over the limit", async () => {
  const clock = new FakeClock();
  const t = fakeTransport();
  t.buffered = 5_000_000;
  let sleeps = 0;
  clock.onSleep = () => {
    if (++sleeps === 3) t.buffered = 0;
  };
  const pacer = new FramePacer(t, clock, { maxBufferedBytes: 1 << 20 });
  await pacer.send("x");
  assert.equal(sleeps, 3);
  assert.deepEqual(t.sent, ["x"]);
});

Deno.test("FramePacer refuses to send on a closed transport", async () => {
  const t = fakeTransport();
  t.close();
  await assert.rejects(() => new FramePacer(t, new FakeClock()).send("x"), ConnectionClosedError);
});
