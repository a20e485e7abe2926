import assert from "node:assert/strict";
import { decodeFrame, parseEnvelope, serializeEnvelope } from "../shared/mod.ts";
import { PRESENCE_BATCH_MAX_CHARS, PresenceBatcher } from "./presence_batch.ts";

const SERVER = "99999999-9999-4999-8999-999999999999";
const USER = "11111111-1111-4111-8111-111111111111";

/** A USER_ADVERTISE text as a server signs it (the signature is a stand-in here). */
function advert(n: number, pad = 0): string {
  return serializeEnvelope({
    type: "USER_ADVERTISE",
    from: SERVER,
    to: "*",
    ts: n,
    payload: {
      user_id: `00000000-0000-4000-8000-${String(n).padStart(12, "0")}`,
      meta: { display_name: `u${n}${"x".repeat(pad)}`, pubkey: "k" },
    },
    sig: `sig${n}`,
  });
}

function batcher(sent: string[], delayMs = 60_000) {
  return new PresenceBatcher({
    from: SERVER,
    to: USER,
    send: (t) => sent.push(t),
    clock: () => 42,
    delayMs,
  });
}

Deno.test("`PresenceBatcher` sends collected frames as one PRESENCE_BATCH, in order, untouched", () => {
  const sent: string[] = [];
  using b = batcher(sent);
  const texts = [advert(1), advert(2), advert(3)];
  for (const t of texts) b.add(t);
  assert.equal(sent.length, 0);
  assert.equal(b.waiting, 3);
  b.flush();
  assert.equal(sent.length, 1);
  const frame = decodeFrame(parseEnvelope(sent[0]!));
  assert.equal(frame?.type, "PRESENCE_BATCH");
  if (frame?.type !== "PRESENCE_BATCH") return;
  assert.equal(frame.env.from, SERVER);
  assert.equal(frame.env.to, USER);
  assert.equal(frame.env.ts, 42);
  assert.equal(frame.env.sig, undefined, "the batch itself is not signed");
  assert.deepEqual(frame.p.frames.map((e) => serializeEnvelope(e)), texts);
  b.flush();
  assert.equal(sent.length, 1, "an empty flush sends nothing");
});

Deno.test("`PresenceBatcher` sends a lone frame as it is", () => {
  const sent: string[] = [];
  using b = batcher(sent);
  b.add(advert(7));
  b.flush();
  assert.deepEqual(sent, [advert(7)]);
});

Deno.test("`PresenceBatcher` starts a new batch before one would exceed its size", () => {
  const sent: string[] = [];
  using b = batcher(sent);
  const big = advert(1, 5_000);
  const count = Math.floor(PRESENCE_BATCH_MAX_CHARS / big.length) + 2;
  for (let i = 0; i < count; i++) b.add(advert(i, 5_000));
  b.flush();
  assert.ok(sent.length >= 2);
  let total = 0;
  for (const text of sent) {
    const frame = decodeFrame(parseEnvelope(text));
    const inner = frame?.type === "PRESENCE_BATCH" ? frame.p.frames.length : 1;
    total += inner;
    assert.ok(text.length <= PRESENCE_BATCH_MAX_CHARS + 200, `batch of ${text.length} chars`);
  }
  assert.equal(total, count);
});

Deno.test("`PresenceBatcher` sends by itself after its delay", async () => {
  const sent: string[] = [];
  using b = batcher(sent, 1);
  let done!: () => void;
  const arrived = new Promise<void>((resolve) => (done = resolve));
  const wrapped = new PresenceBatcher({
    from: SERVER,
    to: USER,
    send: (t) => {
      sent.push(t);
      done();
    },
    delayMs: 1,
  });
  wrapped.add(advert(1));
  wrapped.add(advert(2));
  await arrived;
  assert.equal(sent.length, 1);
  wrapped[Symbol.dispose]();
  b.add(advert(3));
  b[Symbol.dispose]();
  assert.equal(sent.length, 1, "a disposed batcher sends nothing");
});
