/**
 * `/broadcast <text>`: the public message of the older system, kept for its users. It is the
 * same as `/all` (one MSG_PUBLIC_CHANNEL per online user, encrypted for each; see
 * public_channel.ts), and then waits until the server has answered every copy, so the sender is
 * told how many users could not receive it because they blocked the sender (`ERROR BLOCKED`).
 *
 * @module
 */

import type { BlockedAnswers } from "./blocked_answers.ts";
import type { Connection } from "./connection.ts";
import type { EventSink } from "./events.ts";
import type { Presence } from "./presence.ts";

/** Options for {@linkcode Broadcast}. */
export interface BroadcastOptions {
  /** Where frames go. */
  connection: Connection;
  /** The recipients (everyone online). */
  presence: Presence;
  /** Sends the public message (`/all`). */
  sendPublic: (text: string) => Promise<void>;
  /** ERROR BLOCKED answers. */
  blocked: BlockedAnswers;
  /** Receives the `not_delivered` event and warnings. */
  onEvent: EventSink;
}

/**
 * `/broadcast`.
 *
 * @example
 * ```ts ignore
 * const broadcast = new Broadcast({ connection, presence, blocked,
 *   sendPublic: (text) => channel.send(text), onEvent });
 * await broadcast.send("hello, everyone");
 * ```
 */
export class Broadcast {
  #o: BroadcastOptions;

  /** Creates the feature. */
  constructor(options: BroadcastOptions) {
    this.#o = options;
  }

  /** Sends `text` to everyone online, then reports how many refused it. */
  async send(text: string): Promise<void> {
    const { connection, presence, blocked, onEvent } = this.#o;
    const watch = blocked.watch(presence.others());
    try {
      await this.#o.sendPublic(text);
      if (!(await connection.barrier())) {
        onEvent({ event: "warn", text: "The server did not confirm that it took the broadcast" });
      }
      const count = watch.refused.length + watch.unknown.length;
      if (count > 0) {
        onEvent({ event: "not_delivered", reason: "blocked", kind: "broadcast", count });
      }
    } finally {
      blocked.unwatch(watch);
    }
  }
}
