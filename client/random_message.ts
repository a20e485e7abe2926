/**
 * `/random <text>`: a direct message to one online user picked at random, never the sender,
 * never a user the sender blocked, and never one who blocked the sender (the server hides those
 * from `LIST_RESPONSE` anyway, and refuses the message with `ERROR BLOCKED` if the list was
 * stale). The sender is told who got it.
 *
 * @module
 */

import type { BlockedAnswers } from "./blocked_answers.ts";
import type { Blocks } from "./blocks.ts";
import type { Connection, Identity } from "./connection.ts";
import { CommandError } from "./errors.ts";
import type { EventSink } from "./events.ts";
import type { Presence } from "./presence.ts";

/** Options for {@linkcode RandomMessages}. */
export interface RandomMessagesOptions {
  /** The user. */
  identity: Identity;
  /** Where frames go. */
  connection: Connection;
  /** Names users. */
  presence: Presence;
  /** The users we blocked. */
  blocks: Blocks;
  /** ERROR BLOCKED answers. */
  blocked: BlockedAnswers;
  /** Sends the DM (`/tell`). */
  sendDirect: (userId: string, text: string) => Promise<void>;
  /** Receives `random` and `not_delivered` events. */
  onEvent: EventSink;
  /** A number in [0, 1) (default from `crypto.getRandomValues`). */
  random?: () => number;
}

function cryptoRandom(): number {
  return crypto.getRandomValues(new Uint32Array(1))[0]! / 2 ** 32;
}

/**
 * Picks an index in `[0, n)`.
 *
 * @example
 * ```ts
 * import { pickIndex } from "./random_message.ts";
 * console.assert(pickIndex(3, () => 0.99) === 2);
 * ```
 */
export function pickIndex(n: number, random: () => number = cryptoRandom): number {
  return Math.min(n - 1, Math.floor(random() * n));
}

/**
 * `/random`.
 *
 * @example
 * ```ts ignore
 * const random = new RandomMessages({ identity, connection, presence, blocks, blocked,
 *   sendDirect: (id, text) => dms.send(id, text), onEvent });
 * await random.send("guess who");
 * ```
 */
export class RandomMessages {
  #o: RandomMessagesOptions;

  /** Creates the feature. */
  constructor(options: RandomMessagesOptions) {
    this.#o = options;
  }

  /** The users a random message may go to now (asks the server who is online). */
  async candidates(): Promise<string[]> {
    const { connection, identity, blocks } = this.#o;
    connection.requireReady();
    const reply = await connection.request("LIST_REQUEST", {}, (f) => f.type === "LIST_RESPONSE");
    if (reply?.type !== "LIST_RESPONSE") {
      throw new CommandError("The server did not say who is online; try again");
    }
    const blocked = await blocks.current();
    return reply.p.users.filter((id) => id !== identity.userId && !blocked.has(id)).sort();
  }

  /** Sends `text` to one random candidate and says who got it. */
  async send(text: string): Promise<void> {
    const { connection, presence, blocked, onEvent } = this.#o;
    if (text.length === 0) throw new CommandError("Nothing to send");
    const candidates = await this.candidates();
    if (candidates.length === 0) {
      throw new CommandError("No one else is online (that you have not blocked); nothing sent");
    }
    const to = candidates[pickIndex(candidates.length, this.#o.random)]!;
    const watch = blocked.watch([to]);
    try {
      await this.#o.sendDirect(to, text);
      await connection.barrier();
      if (blocked.report(watch, "random") > 0) return;
      onEvent({ event: "random", to, to_name: presence.nameOf(to) });
    } finally {
      blocked.unwatch(watch);
    }
  }
}
