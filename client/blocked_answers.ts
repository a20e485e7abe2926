/**
 * `ERROR BLOCKED`: a server refused to deliver a frame because its recipient blocked the sender
 * ("Not delivered: <name> has blocked you"). The ERROR names no frame, but a server handles one
 * connection's frames in order and answers each refused one before it reads the next, so every
 * answer that arrives before the answer to a later request (`Connection.barrier`) belongs to a
 * frame sent before it. A send that wants to know (a group message, `/broadcast`, `/random`, a
 * private-chat request) watches while it sends and then waits for the barrier, as queued_acks.ts
 * does for `ACK QUEUED`; any other refusal (a `/tell`, a file) becomes a `not_delivered` event
 * at once.
 *
 * @module
 */

import { isUuid } from "../shared/mod.ts";
import type { EventSink } from "./events.ts";

/** The refusals collected while one send was in progress. */
export interface BlockedWatch {
  /** The recipients of the send. */
  readonly recipients: readonly string[];
  /** Recipients (ids) named by a refusal, in order, without repeats. */
  readonly refused: string[];
  /** Names from refusals that match no recipient (the server's text). */
  readonly unknown: string[];
}

/** Options for {@linkcode BlockedAnswers}. */
export interface BlockedAnswersOptions {
  /** Receives `not_delivered` events for refusals nobody watches. */
  onEvent: EventSink;
  /** The name shown for a user id. */
  nameOf: (userId: string) => string;
}

const DETAIL = /^not delivered: (.*) has blocked (?:you|the sender)$/i;

/**
 * The name a `BLOCKED` detail gives for the recipient (a display name or a user id).
 *
 * @example
 * ```ts
 * import { blockerName } from "./blocked_answers.ts";
 * console.assert(blockerName("Not delivered: bob has blocked you") === "bob");
 * ```
 */
export function blockerName(detail: string): string | undefined {
  return DETAIL.exec(detail.trim())?.[1];
}

/**
 * Tracks `ERROR BLOCKED` answers.
 *
 * @example
 * ```ts
 * import { BlockedAnswers } from "./blocked_answers.ts";
 * const answers = new BlockedAnswers({ onEvent: () => {}, nameOf: (id) => id === "b1" ? "bob" : id });
 * const watch = answers.watch(["b1", "c1"]);
 * answers.onBlocked("Not delivered: bob has blocked you");
 * answers.unwatch(watch);
 * console.assert(watch.refused.join() === "b1");
 * ```
 */
export class BlockedAnswers {
  #o: BlockedAnswersOptions;
  #watches: Set<BlockedWatch> = new Set();

  /** Creates the tracker. */
  constructor(options: BlockedAnswersOptions) {
    this.#o = options;
  }

  /** Starts collecting refusals for a send to `recipients`. */
  watch(recipients: readonly string[]): BlockedWatch {
    const watch: BlockedWatch = { recipients: [...recipients], refused: [], unknown: [] };
    this.#watches.add(watch);
    return watch;
  }

  /** Stops collecting. */
  unwatch(watch: BlockedWatch | undefined): void {
    if (watch) this.#watches.delete(watch);
  }

  /** Handles the detail of an `ERROR BLOCKED`. */
  onBlocked(detail: string): void {
    const name = blockerName(detail) ?? "";
    const lower = name.toLowerCase();
    const match = (w: BlockedWatch): string | undefined => {
      const byId = w.recipients.find((id) => id === name);
      if (byId) return byId;
      const byName = w.recipients.filter((id) => this.#o.nameOf(id).toLowerCase() === lower);
      return byName.length === 1 ? byName[0] : undefined;
    };
    // The watch that sent to the recipient named; else the only watch there is.
    let target: BlockedWatch | undefined;
    let id: string | undefined;
    for (const w of this.#watches) {
      const hit = match(w);
      if (hit !== undefined) {
        target = w;
        id = hit;
        break;
      }
    }
    if (!target && this.#watches.size === 1) {
      target = [...this.#watches][0]!;
      if (target.recipients.length === 1) id = target.recipients[0];
    }
    if (target) {
      if (id !== undefined) {
        if (!target.refused.includes(id)) target.refused.push(id);
      } else if (!target.unknown.includes(name)) target.unknown.push(name);
      return;
    }
    // A `/tell` or a file: the server names the recipient by display name, or by id.
    this.#o.onEvent({
      event: "not_delivered",
      reason: "blocked",
      kind: "message",
      count: 1,
      ...(isUuid(name) ? { to: name, to_name: this.#o.nameOf(name) } : {
        to_name: name || "the recipient",
      }),
    });
  }

  /** Reports what a finished watch collected, one event per refusing recipient. */
  report(
    watch: BlockedWatch,
    kind: "message" | "random" | "group" | "private",
    extra: { group?: string } = {},
  ): number {
    for (const id of watch.refused) {
      this.#o.onEvent({
        event: "not_delivered",
        reason: "blocked",
        kind,
        to: id,
        to_name: this.#o.nameOf(id),
        count: 1,
        ...extra,
      });
    }
    for (const name of watch.unknown) {
      this.#o.onEvent({
        event: "not_delivered",
        reason: "blocked",
        kind,
        to_name: name || "the recipient",
        count: 1,
        ...extra,
      });
    }
    return watch.refused.length + watch.unknown.length;
  }
}
