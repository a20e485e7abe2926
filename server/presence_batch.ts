/**
 * Presence in batches, for clients that announce the `presence-batch` capability.
 *
 * Every join sends the newcomer one USER_ADVERTISE per online user (catch-up) and every online
 * user one USER_ADVERTISE for the newcomer. Sent one frame each, a join storm of N users costs
 * the server N² WebSocket frames. For a client that takes them, a connection's presence frames
 * are collected for a moment ({@linkcode PRESENCE_BATCH_MS}) and sent as one
 * `PRESENCE_BATCH` frame, `{"payload":{"frames":[<envelope>, …]}}`: the catch-up of a join is a
 * few frames whatever N is, and during a storm each user gets one frame per moment, not one
 * per join.
 *
 * The inner envelopes are the very USER_ADVERTISE / USER_REMOVE texts the server signed (once,
 * for everyone), joined without re-encoding; the client checks each one's signature with the
 * server's key, so the batch itself needs none and costs no signature. Order is kept: any
 * other frame to the connection first sends the batch collected so far.
 *
 * @example
 * ```ts
 * import { PresenceBatcher } from "./presence_batch.ts";
 *
 * const sent: string[] = [];
 * const batcher = new PresenceBatcher({ from: "s", to: "u", send: (t) => sent.push(t) });
 * batcher.add('{"type":"USER_REMOVE","from":"s","to":"*","ts":1,"payload":{"user_id":"a"}}');
 * batcher.add('{"type":"USER_REMOVE","from":"s","to":"*","ts":2,"payload":{"user_id":"b"}}');
 * batcher.flush();
 * const batch = JSON.parse(sent[0]!);
 * console.assert(batch.type === "PRESENCE_BATCH" && batch.payload.frames[1].payload.user_id === "b");
 * batcher[Symbol.dispose]();
 * ```
 *
 * @module
 */

/** The capability a client announces in USER_HELLO `caps` to get presence in batches. */
export const PRESENCE_BATCH_CAP = "presence-batch";

/**
 * How long presence frames are collected before they are sent (ms). Long enough that joins a
 * few per second apart share a frame per user; short enough that "online" still feels at once
 * (and any other frame to the user sends the batch first anyway).
 */
export const PRESENCE_BATCH_MS = 250;

/**
 * Most characters of inner frames in one batch (some 6 adverts). Small on purpose: a Deno
 * WebSocket keeps a write buffer as large as the largest message it ever sent, for as long as
 * the connection lives (measured: one 64 KB message adds about 62 KB to every connection's
 * resident memory; a burst of many small messages adds little). A catch-up of 2,000 users is
 * then some 330 frames instead of 2,000, and no connection holds a large buffer for it.
 */
export const PRESENCE_BATCH_MAX_CHARS = 16_000;

/** Options for {@linkcode PresenceBatcher}. */
export interface PresenceBatcherOptions {
  /** This server's id (the batch's `from`). */
  from: string;
  /** The user's id (the batch's `to`). */
  to: string;
  /** Sends one text to the user, in order with everything else. */
  send: (text: string) => void;
  /** Clock for the batch's `ts` (ms). */
  clock?: () => number;
  /** Collection time (default {@linkcode PRESENCE_BATCH_MS}). */
  delayMs?: number;
}

/** Collects one connection's presence frames; see the module doc. */
export class PresenceBatcher implements Disposable {
  #options: PresenceBatcherOptions;
  #texts: string[] = [];
  #chars = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(options: PresenceBatcherOptions) {
    this.#options = options;
  }

  /** Frames waiting to be sent. */
  get waiting(): number {
    return this.#texts.length;
  }

  /** Adds one signed USER_ADVERTISE or USER_REMOVE text to the next batch. */
  add(text: string): void {
    if (this.#chars + text.length > PRESENCE_BATCH_MAX_CHARS) this.flush();
    this.#texts.push(text);
    this.#chars += text.length;
    this.#timer ??= setTimeout(() => {
      this.#timer = undefined;
      this.flush();
    }, this.#options.delayMs ?? PRESENCE_BATCH_MS);
  }

  /** Sends what was collected now (nothing when empty). */
  flush(): void {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    if (this.#texts.length === 0) return;
    const texts = this.#texts;
    this.#texts = [];
    this.#chars = 0;
    if (texts.length === 1) return this.#options.send(texts[0]!);
    const { from, to } = this.#options;
    const ts = (this.#options.clock ?? Date.now)();
    // The inner texts are whole JSON objects already: joined as they are, not re-encoded.
    this.#options.send(
      `{"type":"PRESENCE_BATCH","from":${JSON.stringify(from)},"to":${JSON.stringify(to)},` +
        `"ts":${ts},"payload":{"frames":[${texts.join(",")}]}}`,
    );
  }

  /** Drops what was collected (the connection is gone) and stops the timer. */
  [Symbol.dispose](): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#texts = [];
    this.#chars = 0;
  }
}
