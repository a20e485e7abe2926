/**
 * `ACK QUEUED`: the server stored a message or file for a user who is offline. While a send to
 * an offline user is in progress its ACKs are counted, so the user hears once per message that
 * it was queued; other ACKs become a `queued` event at once.
 *
 * @module
 */

import type { JsonObject } from "../shared/mod.ts";
import type { EventSink } from "./events.ts";

/** Counts ACK QUEUED frames about one recipient while a send is in progress. */
export interface QueueWatch {
  /** The recipient. */
  readonly userId: string;
  /** ACK QUEUED frames seen for them so far. */
  acks: number;
}

/** Options for {@linkcode QueuedAcks}. */
export interface QueuedAcksOptions {
  /** Receives `queued` events for ACKs nobody watches. */
  onEvent: EventSink;
  /** True when the user is online (no ACK QUEUED is expected then). */
  isOnline: (userId: string) => boolean;
  /** The name to show for an id. */
  nameOf: (userId: string) => string;
  /** The user's own id. */
  selfId: string;
}

/**
 * Tracks ACK QUEUED frames.
 *
 * @example
 * ```ts
 * import { QueuedAcks } from "./queued_acks.ts";
 * const events: unknown[] = [];
 * const acks = new QueuedAcks({ onEvent: (e) => events.push(e), isOnline: () => false,
 *   nameOf: (id) => id, selfId: "me" });
 * const watch = acks.watch("bob")!;
 * acks.onQueued({ msg_ref: "QUEUED", user_id: "bob" });
 * acks.unwatch(watch);
 * console.assert(watch.acks === 1 && events.length === 0);
 * ```
 */
export class QueuedAcks {
  #o: QueuedAcksOptions;
  #watches: Set<QueueWatch> = new Set();

  /** Creates the tracker. */
  constructor(options: QueuedAcksOptions) {
    this.#o = options;
  }

  /** Starts counting ACK QUEUED for a recipient who is not online (undefined if online). */
  watch(userId: string): QueueWatch | undefined {
    if (userId === this.#o.selfId || this.#o.isOnline(userId)) return undefined;
    const watch = { userId, acks: 0 };
    this.#watches.add(watch);
    return watch;
  }

  /** Stops counting. */
  unwatch(watch: QueueWatch | undefined): void {
    if (watch) this.#watches.delete(watch);
  }

  /** Handles an `ACK QUEUED` payload. */
  onQueued(payload: JsonObject): void {
    const userId = typeof payload["user_id"] === "string" ? payload["user_id"] : "";
    let watched = false;
    for (const w of this.#watches) {
      if (w.userId === userId) {
        w.acks++;
        watched = true;
      }
    }
    if (watched) return;
    this.#o.onEvent({
      event: "queued",
      kind: "message",
      to: userId,
      to_name: this.#o.nameOf(userId),
    });
  }
}
