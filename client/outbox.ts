/**
 * The frames a user sent that the server has not confirmed yet, so a reconnect can send them
 * again byte-identical (same `ts`, ciphertext and `content_sig`; receivers drop the copies they
 * already have).
 *
 * How the client knows what the server processed: a server handles one connection's frames in
 * order, so the answer to any request (LIST_REQUEST, PUBKEY_REQUEST, ...) proves that every frame
 * written before that request on the same connection was processed. Each written frame keeps its
 * number on the connection (see `FramePacer.send`); an answer to the request written as number
 * `n` confirms, and drops, every frame numbered below `n`. The connection asks for such an
 * answer (a PUBKEY_REQUEST for ourselves) every few hundred frames and before `/quit`, so the
 * buffer stays small; it is bounded, and while disconnected new frames wait in it too.
 *
 * @module
 */

/** One frame in the outbox. */
interface Entry {
  /** The serialized envelope, sent again as it is. */
  readonly text: string;
  /** Its number on the current connection once written. */
  seq?: number;
}

/**
 * A bounded queue of frames: written-but-unconfirmed ones first, then ones not written yet.
 *
 * @example
 * ```ts
 * import { Outbox } from "./outbox.ts";
 * const box = new Outbox({ limit: 10 });
 * box.push("a");
 * box.push("b");
 * box.markWritten(1); // "a" went out as frame 1
 * box.markWritten(3); // "b" as frame 3 (frame 2 was a request)
 * box.confirm(2);     // the answer to frame 2 arrived: "a" was processed
 * console.assert(box.size === 1 && box.written === 1);
 * box.rewind();       // the connection dropped: "b" must go out again
 * console.assert(box.nextUnsent() === "b");
 * ```
 */
export class Outbox {
  #entries: Entry[] = [];
  #written = 0;
  #limit: number;

  /** Creates an empty outbox holding at most `limit` frames (default 1000). */
  constructor(options: { limit?: number } = {}) {
    this.#limit = options.limit ?? 1000;
  }

  /** Frames held (unconfirmed or not written yet). */
  get size(): number {
    return this.#entries.length;
  }

  /** Frames written on the current connection and not confirmed yet. */
  get written(): number {
    return this.#written;
  }

  /** Frames not written on the current connection yet. */
  get unsent(): number {
    return this.#entries.length - this.#written;
  }

  /** True when no more frames fit. */
  get full(): boolean {
    return this.#entries.length >= this.#limit;
  }

  /** The most frames held. */
  get limit(): number {
    return this.#limit;
  }

  /** Adds a frame at the end; throws RangeError when full. Returns a check for "was written". */
  push(text: string): () => boolean {
    if (this.full) throw new RangeError(`The outbox holds ${this.#limit} frames already`);
    const entry: Entry = { text };
    this.#entries.push(entry);
    return () => entry.seq !== undefined;
  }

  /** The first frame not written yet. */
  nextUnsent(): string | undefined {
    return this.#entries[this.#written]?.text;
  }

  /** The first frame not written yet went out as frame `seq` of the connection. */
  markWritten(seq: number): void {
    const entry = this.#entries[this.#written];
    if (entry === undefined) throw new RangeError("No unsent frame to mark as written");
    entry.seq = seq;
    this.#written++;
  }

  /** The server answered the request written as frame `seq`: frames before it are done. */
  confirm(seq: number): number {
    let n = 0;
    while (n < this.#written && this.#entries[n]!.seq! < seq) n++;
    return this.forget(n);
  }

  /** Drops the `n` oldest written frames (confirmed, or given up on). Returns how many. */
  forget(n: number): number {
    const count = Math.max(0, Math.min(n, this.#written));
    this.#entries.splice(0, count);
    this.#written -= count;
    return count;
  }

  /** A new connection: nothing has been written on it yet. */
  rewind(): void {
    for (const entry of this.#entries) delete entry.seq;
    this.#written = 0;
  }

  /** Drops everything; returns how many frames were dropped. */
  clear(): number {
    const n = this.#entries.length;
    this.#entries = [];
    this.#written = 0;
    return n;
  }
}
