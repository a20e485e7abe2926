/**
 * Keeps a session's events in order when one of them has to wait: a message from a sender the
 * client has no name for is shown once the server named the sender (a short wait, see
 * presence.ts), and every event reported meanwhile is shown after it, in order. While nothing
 * waits, events go straight through.
 *
 * @module
 */

import type { ClientEvent, EventSink } from "./events.ts";

/**
 * An ordered event sink with an occasional wait.
 *
 * @example
 * ```ts
 * import { EventGate } from "./event_gate.ts";
 * const seen: string[] = [];
 * const gate = new EventGate((e) => seen.push(e.event));
 * const named = Promise.withResolvers<void>();
 * gate.after(named.promise, () => ({ event: "info", text: "first" }));
 * gate.emit({ event: "warn", text: "second" });
 * console.assert(seen.length === 0);
 * named.resolve();
 * await gate.idle();
 * console.assert(seen.join() === "info,warn");
 * ```
 */
export class EventGate {
  #sink: EventSink;
  #tail: Promise<void> | undefined;

  /** Passes events on to `sink`. */
  constructor(sink: EventSink) {
    this.#sink = sink;
  }

  /** True while an event waits (later ones are held behind it). */
  get busy(): boolean {
    return this.#tail !== undefined;
  }

  /** Reports an event: at once, or after those that wait. */
  readonly emit: EventSink = (event: ClientEvent): void => {
    if (this.#tail === undefined) this.#sink(event);
    else this.#chain(() => this.#sink(event));
  };

  /** Reports the event `make` returns once `wait` settled (and after earlier events). */
  after(wait: Promise<unknown>, make: () => ClientEvent): void {
    const settled = wait.then(() => {}, () => {});
    this.#chain(async () => {
      await settled;
      this.#sink(make());
    });
  }

  /** Resolves once no event waits. */
  async idle(): Promise<void> {
    while (this.#tail !== undefined) await this.#tail;
  }

  #chain(step: () => void | Promise<void>): void {
    const run: Promise<void> = (this.#tail ?? Promise.resolve()).then(step).catch(() => {})
      .finally(() => {
        if (this.#tail === run) this.#tail = undefined;
      });
    this.#tail = run;
  }
}
