/**
 * Outgoing flow control: a token bucket that keeps the client under the server's rate limit
 * (1,000 frames/s, bursts of 2,000) and waits while the socket's send buffer is large.
 *
 * @module
 */

import type { Transport } from "../shared/mod.ts";
import type { Clock } from "./clock.ts";

/** Pacing limits. */
export interface PacerOptions {
  /** Sustained frames per second (default 800). */
  framesPerSecond?: number;
  /** Frames that may go out at once after a pause (default 200). */
  burst?: number;
  /** Wait while more than this many bytes are queued on the socket (default 1 MiB). */
  maxBufferedBytes?: number;
}

/** The connection closed while a frame was waiting to be sent. */
export class ConnectionClosedError extends Error {
  /** Creates the error. */
  constructor(message = "Connection is closed") {
    super(message);
    this.name = "ConnectionClosedError";
  }
}

/**
 * Sends frames no faster than the configured rate.
 *
 * @example
 * ```ts
 * import { memoryTransportPair } from "../shared/mod.ts";
 * import { systemClock } from "./clock.ts";
 * import { FramePacer } from "./pacer.ts";
 * const [a, b] = memoryTransportPair();
 * const pacer = new FramePacer(a, systemClock);
 * await pacer.send("hello");
 * console.assert((await b[Symbol.asyncIterator]().next()).value === "hello");
 * a.close();
 * await b.closed;
 * ```
 */
export class FramePacer {
  #transport: Transport;
  #clock: Clock;
  #rate: number;
  #burst: number;
  #maxBuffered: number;
  #tokens: number;
  #last: number;
  #sent = 0;

  /** Creates a pacer over a transport. */
  constructor(transport: Transport, clock: Clock, options: PacerOptions = {}) {
    this.#transport = transport;
    this.#clock = clock;
    this.#rate = options.framesPerSecond ?? 800;
    this.#burst = options.burst ?? 200;
    this.#maxBuffered = options.maxBufferedBytes ?? 1 << 20;
    this.#tokens = this.#burst;
    this.#last = clock.now();
  }

  /** Frames sent so far. */
  get sent(): number {
    return this.#sent;
  }

  /**
   * Sends one frame once the rate and the socket buffer allow; throws if the link closed.
   * Resolves with the frame's number on this pacer (1 for the first), so a caller knows which
   * frames went out before it.
   */
  async send(text: string, signal?: AbortSignal): Promise<number> {
    for (;;) {
      if (signal?.aborted) throw signal.reason ?? new DOMException("Aborted", "AbortError");
      if (!this.#transport.open) throw new ConnectionClosedError();
      const now = this.#clock.now();
      this.#tokens = Math.min(this.#burst, this.#tokens + ((now - this.#last) * this.#rate) / 1000);
      this.#last = now;
      if (this.#transport.bufferedAmount > this.#maxBuffered) {
        await this.#clock.sleep(10, signal);
        continue;
      }
      if (this.#tokens >= 1) break;
      // Sleep at least 5 ms so a long transfer wakes ~200 times a second, not per frame.
      const wait = Math.max(5, ((1 - this.#tokens) * 1000) / this.#rate);
      await this.#clock.sleep(wait, signal);
    }
    this.#tokens -= 1;
    this.#transport.send(text);
    return ++this.#sent;
  }
}
